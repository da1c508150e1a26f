# print bpftool "hex" byte lists for meshlane structs (layouts from bpf/meshlane.h)
import socket, struct, sys
def mapped(ip):
    if ':' in ip: return socket.inet_pton(socket.AF_INET6, ip)
    return b'\0'*10 + b'\xff\xff' + socket.inet_aton(ip)
def hx(b): return ' '.join(f'{x:02x}' for x in b)
cmd = sys.argv[1]
if cmd == 'u64': print(hx(struct.pack('<Q', int(sys.argv[2]))))
elif cmd == 'ip': print(hx(mapped(sys.argv[2])))
elif cmd == 'podcg':  # ip4 ip6 flags proxy_uid
    print(hx(mapped(sys.argv[2]) + mapped(sys.argv[3]) + struct.pack('<IIII', int(sys.argv[4]), int(sys.argv[5]), 0, 0)))
elif cmd == 'cfg':  # flags status [k=v ...] lists: ii= ei= io= eo= (ports, comma) ic= ec= (cidrs ip/len)
    flags, status = int(sys.argv[2]), int(sys.argv[3])
    lists = {'ii': [], 'ei': [], 'io': [], 'eo': [], 'ic': [], 'ec': []}
    for a in sys.argv[4:]:
        k, v = a.split('='); lists[k] = [x for x in v.split(',') if x]
    b = struct.pack('<IHH', flags, status, 0)
    for k in ('ii', 'ei', 'io', 'eo'):
        ports = [int(p) for p in lists[k]] + [0] * (32 - len(lists[k]))
        b += struct.pack('<32H', *ports)
    for k in ('ic', 'ec'):
        ent = b''
        for c in lists[k]:
            ip, plen = c.split('/'); v6 = ':' in ip
            ent += mapped(ip) + struct.pack('<BBH', int(plen) + (0 if v6 else 96), 10 if v6 else 2, 0)
        ent += b'\0' * (20 * 32 - len(ent)); b += ent
    assert len(b) == 1544, len(b)
    print(hx(b))
elif cmd == 'settings':  # flags
    print(hx(struct.pack('<IIHHHHIIQ', 0, 0, 0, 0, 0, 0, int(sys.argv[2]), 0, 0)))
