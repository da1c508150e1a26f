# echo server: replies "peer=<ip> " + data
import socket, sys, threading
def h(c):
    peer = c.getpeername()[0]
    data = b''
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
    c.sendall(f'peer={peer} len={len(data)} '.encode() + data[:32]); c.close()
def serve(af, a):
    s = socket.socket(af, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if af == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((a, int(sys.argv[1]))); s.listen(128)
    while True:
        c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
for af, a in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    threading.Thread(target=serve, args=(af, a), daemon=True).start()
threading.Event().wait()
