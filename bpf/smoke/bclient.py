import socket, sys, errno
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.connect((host, port))   # blocking socket, no timeout
s.sendall(b'hello' + b'x' * max(0, size - 5)); s.shutdown(socket.SHUT_WR)
out = b''; eagain = 0
while True:
    try: d = s.recv(65536)
    except BlockingIOError: eagain += 1; continue
    if not d: break
    out += d
print('eagain', eagain, out[:30])
