# tiny test proxy: listens on 15001 and 15006 (v4 and v6), asks SO_ORIGINAL_DST,
# forwards to it (inbound: from 127.0.0.6 / ::6 like Istio), logs what it saw.
import socket, struct, sys, threading, select
eagain = [0]
name = sys.argv[1]
log = open(sys.argv[2], 'a', buffering=1)
def pipe(a, b, tag=''):
    n = 0
    try:
        while True:
            try:
                d = a.recv(65536)
            except BlockingIOError:
                eagain[0] += 1
                select.select([a], [], [], 1.0)
                continue
            if not d: break
            n += len(d)
            b.sendall(d)
    except OSError as e: log.write(f'{name} {tag} error {e}\n')
    log.write(f'{name} {tag} {n} bytes then EOF (eagain so far {eagain[0]})\n')
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
def orig_dst(c):
    if c.family == socket.AF_INET:
        raw = c.getsockopt(socket.SOL_IP, 80, 16)
        port, = struct.unpack('!H', raw[2:4]); return ('v4', socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    raw = c.getsockopt(41, 80, 28)
    port, = struct.unpack('!H', raw[2:4]); return ('v6', socket.inet_ntop(socket.AF_INET6, raw[8:24]), port)
def handle(c, lport):
    try:
        fam, ip, port = orig_dst(c)
    except OSError as e:
        log.write(f'{name} :{lport} peer={c.getpeername()[:2]} getsockopt-error {e}\n'); c.close(); return
    log.write(f'{name} :{lport} peer={c.getpeername()[:2]} odst={ip}:{port}\n')
    af = socket.AF_INET if fam == 'v4' else socket.AF_INET6
    u = socket.socket(af, socket.SOCK_STREAM)
    if lport == 15006:
        u.bind(('127.0.0.6' if af == socket.AF_INET else '::6', 0))
    try:
        u.connect((ip, port))
    except OSError as e:
        log.write(f'{name} connect {ip}:{port} failed {e}\n'); c.close(); return
    threading.Thread(target=pipe, args=(c, u, f':{lport} down'), daemon=True).start()
    pipe(u, c, f':{lport} up')
def serve(af, addr, port):
    s = socket.socket(af, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if af == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c, port), daemon=True).start()
for af, a in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    for p in (15001, 15006):
        threading.Thread(target=serve, args=(af, a, p), daemon=True).start()
threading.Event().wait()
