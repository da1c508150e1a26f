#!/usr/bin/env python3
# A focused datapath check for one kernel, run INSIDE a kernel-matrix guest
# (scripts/kernels/boot.ts), until the datapath tests run there:
#
#   python3 compat-smoke.py <object>
#
# Loads the object the loader's way (bpftool prog loadall, pinmaps), attaches
# the cgroup programs to a cgroup made here and ml_redirect to the sockhash,
# registers one pod (that cgroup, 10.0.0.1, Istio's defaults), turns the
# sockmap switch on, and then in TWO network namespaces made here, each with
# an app (uid 1000) and a proxy (uid 1337) in the pod cgroup:
#   - the app binds 0.0.0.0:40000 and connects to 10.0.0.<8|9>:80: the connect
#     is sent to 127.0.0.1:15001, so both netns have the SAME loopback 4-tuple
#     127.0.0.1:40000 -> 127.0.0.1:15001 at the same time;
#   - the proxy accepts, asks SO_ORIGINAL_DST and must get its own netns'
#     original destination (10.0.0.8:80 in one, 10.0.0.9:80 in the other);
#   - bytes go both ways (sk_msg redirect: the redirect_ok counter moves).
# Prints one line `@@ML-SMOKE <json>`; exit 0 when every check holds.
import json, os, socket, struct, subprocess, sys, time

obj = sys.argv[1]
BPFTOOL = '/usr/sbin/bpftool'
PIN = '/sys/fs/bpf/ml-smoke'
CG = '/sys/fs/cgroup/ml-smoke-pod'
out = {'kernel': open('/proc/sys/kernel/osrelease').read().strip(), 'object': os.path.basename(obj), 'checks': {}}

def sh(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'{" ".join(args)}: exit {r.returncode}: {r.stderr[-1500:]}')
    return r.stdout

def hexb(b):
    return [f'{x:02x}' for x in b]

os.makedirs(PIN, exist_ok=True)
os.makedirs(CG, exist_ok=True)
sh(BPFTOOL, 'prog', 'loadall', obj, f'{PIN}/progs', 'pinmaps', f'{PIN}/maps')
progs = sorted(os.listdir(f'{PIN}/progs'))
out['programs'] = progs
hooks = {'ml_connect4': 'connect4', 'ml_connect6': 'connect6', 'ml_sockops': 'sock_ops', 'ml_getsockopt': 'getsockopt',
         'ml_sendmsg4': 'sendmsg4', 'ml_sendmsg6': 'sendmsg6', 'ml_recvmsg4': 'recvmsg4', 'ml_recvmsg6': 'recvmsg6',
         'ml_sock_create': 'sock_create'}
for p, h in hooks.items():
    if p in progs:
        sh(BPFTOOL, 'cgroup', 'attach', CG, h, 'pinned', f'{PIN}/progs/{p}', 'multi')
sh(BPFTOOL, 'prog', 'attach', 'pinned', f'{PIN}/progs/ml_redirect', 'msg_verdict', 'pinned', f'{PIN}/maps/ml_sock_pairs')

pod_ip = bytes(10) + b'\xff\xff' + socket.inet_aton('10.0.0.1')
cgid = os.stat(CG).st_ino
sh(BPFTOOL, 'map', 'update', 'pinned', f'{PIN}/maps/ml_pods_cg', 'key', 'hex', *hexb(struct.pack('<Q', cgid)),
   'value', 'hex', *hexb(pod_ip + bytes(16) + struct.pack('<IIII', 3, 0, 0, 0)))
sh(BPFTOOL, 'map', 'update', 'pinned', f'{PIN}/maps/ml_pods_ip', 'key', 'hex', *hexb(pod_ip), 'value', 'hex', *hexb(bytes(1544)))
sh(BPFTOOL, 'map', 'update', 'pinned', f'{PIN}/maps/ml_settings', 'key', 'hex', *hexb(bytes(4)),
   'value', 'hex', *hexb(bytes(16) + struct.pack('<I', 1) + bytes(12)))

# One child per netns: unshare(CLONE_NEWNET), lo up, join the pod cgroup; the
# proxy's listener (root: the proxy uid only matters for the proxy's own
# connects), then the app (uid 1000) connects and the proxy answers.
PROXY = r'''
import os, socket, struct, sys, time
dst = sys.argv[1]
os.system("ip link set lo up")
open(sys.argv[2] + "/cgroup.procs", "w").write(str(os.getpid()))
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 15001)); ls.listen(8)
pid = os.fork()
if pid == 0:
    os.setgid(1000); os.setuid(1000)
    c = socket.socket(); c.bind(("0.0.0.0", 40000))
    time.sleep(0.5)
    c.connect((dst, 80))
    c.sendall(b"ping " + dst.encode())
    reply = c.recv(100)
    print("APP", c.getsockname(), c.getpeername(), reply.decode(), flush=True)
    c.close(); os._exit(0)
s, peer = ls.accept()
raw = s.getsockopt(socket.SOL_IP, 80, 16)
port, ip = struct.unpack("!2xH4s8x", raw)
got = s.recv(100)
time.sleep(1.0)  # the other netns holds the same 4-tuple meanwhile
s.sendall(b"pong")
print("PROXY", peer, socket.inet_ntoa(ip), port, got.decode(), flush=True)
os.waitpid(pid, 0)
'''

kids = [subprocess.Popen(['unshare', '-n', 'python3', '-c', PROXY, dst, CG], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for dst in ('10.0.0.8', '10.0.0.9')]
texts = [k.communicate(timeout=60)[0] for k in kids]
out['netns'] = texts
ok = True
for dst, text in zip(('10.0.0.8', '10.0.0.9'), texts):
    proxy = [l for l in text.splitlines() if l.startswith('PROXY')]
    app = [l for l in text.splitlines() if l.startswith('APP')]
    c1 = bool(proxy) and f"('127.0.0.1', 40000) {dst} 80 ping {dst}" in proxy[0]
    c2 = bool(app) and 'pong' in app[0] and "('127.0.0.1', 40000)" in app[0]
    out['checks'][f'{dst}: the proxy got SO_ORIGINAL_DST {dst}:80 for 127.0.0.1:40000 -> 127.0.0.1:15001'] = c1
    out['checks'][f'{dst}: the app got the reply'] = c2
    ok = ok and c1 and c2

counters = json.loads(sh(BPFTOOL, '-j', 'map', 'dump', 'pinned', f'{PIN}/maps/ml_counters'))
def counter(i):
    for e in counters:
        k = e.get('key')
        key = int(k, 0) if isinstance(k, (int, str)) and not isinstance(k, list) else int.from_bytes(bytes(int(x, 16) for x in k), 'little')
        if key == i:
            vals = e.get('values') or []
            return sum(v['value'] if isinstance(v['value'], int) else int.from_bytes(bytes(int(x, 16) for x in v['value']), 'little') for v in vals)
    return None
names = {0: 'connect4_redirect_out', 8: 'sockops_odst_saved', 10: 'sockops_sockhash_added', 11: 'getsockopt_answered', 12: 'getsockopt_miss', 13: 'redirect_ok', 15: 'redirect_no_peer'}
out['counters'] = {n: counter(i) for i, n in names.items()}
for n, want in (('connect4_redirect_out', 2), ('getsockopt_answered', 2), ('sockops_sockhash_added', 4)):
    out['checks'][f'counter {n} == {want}'] = out['counters'][n] == want
    ok = ok and out['counters'][n] == want
out['checks']['counter redirect_ok >= 4 (sockmap bypass both ways, both netns)'] = (out['counters']['redirect_ok'] or 0) >= 4
ok = ok and out['checks']['counter redirect_ok >= 4 (sockmap bypass both ways, both netns)']
out['ok'] = ok
print('@@ML-SMOKE ' + json.dumps(out))
sys.exit(0 if ok else 1)
