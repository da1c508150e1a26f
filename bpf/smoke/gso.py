import socket, errno, ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
def gso(fd, lvl, opt, bl, fill=0xAB):
    buf = ctypes.create_string_buffer(bytes([fill]) * bl, bl); ln = ctypes.c_uint32(bl)
    r = libc.getsockopt(fd, lvl, opt, buf, ctypes.byref(ln))
    e = ctypes.get_errno() if r else 0
    return r, errno.errorcode.get(e, e) if e else 0, ln.value, buf.raw
s = socket.socket(); s.settimeout(3); s.connect(('10.99.0.3', 8080)); fd = s.fileno()
for bl in (104, 232, 4096, 4097, 8192, 20000):
    r, e, ln, raw = gso(fd, socket.IPPROTO_TCP, socket.TCP_INFO, bl)
    print('TCP_INFO buf', bl, '->', r, e, 'optlen', ln, 'tail-untouched', raw[ln:] == b'\xab' * (bl - ln))
print('TCP_CONGESTION', gso(fd, 6, 13, 16)[:3], gso(fd, 6, 13, 16)[3].rstrip(b'\0'))
for lvl, bl in ((0, 16), (0, 8192), (41, 28), (0, 4)):
    r, e, ln, raw = gso(fd, lvl, 80, bl)
    print('ORIGDST lvl', lvl, 'buf', bl, '->', r, e, 'optlen', ln, 'buf-untouched', raw == b'\xab' * bl)
for bl in (16, 8192):
    r, e, ln, raw = gso(fd, 1, 9999, bl)
    print('bogus opt buf', bl, '->', r, e, 'optlen', ln, 'buf-untouched', raw == b'\xab' * bl)
