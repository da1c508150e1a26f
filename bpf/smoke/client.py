import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 5
af = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(af, socket.SOCK_STREAM); s.settimeout(10)
s.connect((host, port))
local = s.getsockname()[:2]
payload = b'hello' + b'x' * max(0, size - 5)
s.sendall(payload); s.shutdown(socket.SHUT_WR)
out = b''
while True:
    d = s.recv(65536)
    if not d: break
    out += d
print(f'local={local} ->', out[:80].decode(errors="replace"))
