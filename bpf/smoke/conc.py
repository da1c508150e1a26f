import socket, sys, threading
host, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = [0]; bad = []
def one(i):
    try:
        s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET); s.settimeout(30)
        s.connect((host, 8080)); s.sendall(b'hello' + b'x' * (size - 5)); s.shutdown(socket.SHUT_WR)
        out = b''
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
        if out.startswith(f'peer='.encode()) and f'len={size} '.encode() in out: ok[0] += 1
        else: bad.append(out[:40])
    except Exception as e: bad.append(repr(e))
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(host, 'ok', ok[0], 'bad', len(bad), bad[:3])
