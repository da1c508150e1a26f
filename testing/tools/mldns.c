// mldns: a test DNS server and a resolver client for the DNS capture tests.
//
// mldns server --bind IP:PORT [--bind IP:PORT ...] [--a A.B.C.D] [--aaaa IP6]
//              [--lifetime-ms N (600000)]
//   UDP on every --bind address (an IPv6 one is V6ONLY); answers every query
//   with one record: A (--a, default 192.0.2.1) for type A, AAAA (--aaaa,
//   default 2001:db8::1) for type AAAA, no answer for other types.
//   lines: {"event":"listening","local":["ip:port",...]}
//          {"event":"query","client":"ip:port","local":"ip:port","id":N,"name":"..","qtype":N}
//   "local" is the address the query was sent to (IP_PKTINFO / IPV6_PKTINFO)
//   with the bound port.
//
// mldns query --server IP:PORT [--name NAME (svc.test)] [--type A|AAAA (A)]
//             [--mode sendto|connect (sendto)] [--family 4|6] [--timeout-ms T (3000)]
//   sendto: an unconnected socket, sendto() the server, recvfrom().
//   connect: connect() the server, send(), recvfrom() (what glibc's resolver does).
//   --family 6 with an IPv4 server uses an AF_INET6 socket and the v4-mapped
//   address. Prints one line:
//     {"ok":bool,"mode":..,"server":"ip:port","local":"ip:port","peer":"ip:port"|null,
//      "from":"ip:port"|null,"id_match":bool,"rcode":N,"answer":"ip"|null,"error":null|".."}
//   "from" is the source address recvfrom() reported; "peer" the connected
//   address (getpeername, connect mode). Exit 0 on an answer, 1 otherwise.
#include "common.h"
#include <netinet/in.h>

#define MAX_BINDS 8

// ---------------------------------------------------------------- DNS wire

static size_t put_name(unsigned char *p, size_t cap, const char *name) {
  size_t o = 0;
  const char *s = name;
  while (*s != '\0') {
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : strlen(s);
    if (n == 0 || n > 63 || o + n + 2 > cap) return 0;
    p[o++] = (unsigned char)n;
    memcpy(p + o, s, n);
    o += n;
    s += n;
    if (*s == '.') s++;
  }
  if (o + 1 > cap) return 0;
  p[o++] = 0;
  return o;
}

// Skip a (possibly compressed) name at off; returns the offset after it, 0 on error.
static size_t skip_name(const unsigned char *p, size_t len, size_t off) {
  while (off < len) {
    unsigned c = p[off];
    if (c == 0) return off + 1;
    if ((c & 0xc0) == 0xc0) return off + 2 <= len ? off + 2 : 0;
    off += 1 + c;
  }
  return 0;
}

// Read an uncompressed question name into out (dotted). Returns offset after it or 0.
static size_t read_qname(const unsigned char *p, size_t len, size_t off, char *out, size_t cap) {
  size_t o = 0;
  while (off < len) {
    unsigned c = p[off++];
    if (c == 0) {
      if (o == 0 && cap > 0) out[o++] = '.';
      out[o < cap ? o : cap - 1] = '\0';
      return off;
    }
    if ((c & 0xc0) != 0 || off + c > len) return 0;
    if (o != 0 && o + 1 < cap) out[o++] = '.';
    for (unsigned i = 0; i < c; i++) {
      unsigned char ch = p[off + i];
      if (o + 1 < cap) out[o++] = (ch >= 0x21 && ch < 0x7f && ch != '"' && ch != '\\') ? (char)ch : '_';
    }
    off += c;
  }
  return 0;
}

// ---------------------------------------------------------------- server

static int srv_bind(const char *spec, char *label, size_t label_len) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_hostport(spec, &ss, &sl) != 0) { fprintf(stderr, "mldns: bad address %s\n", spec); exit(2); }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("mldns: socket"); exit(1); }
  int one = 1;
  if (ss.ss_family == AF_INET6) {
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  } else {
    setsockopt(fd, SOL_IP, IP_PKTINFO, &one, sizeof one);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) { fprintf(stderr, "mldns: bind %s: %s\n", spec, strerror(errno)); exit(1); }
  local_addr(fd, label, label_len);
  return fd;
}

static void srv_answer(int fd, const struct in_addr *a4, const struct in6_addr *a6) {
  unsigned char q[1500], r[1600];
  struct sockaddr_storage from;
  char cbuf[256];
  struct iovec iov = {.iov_base = q, .iov_len = sizeof q};
  struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1,
                      .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  memset(&from, 0, sizeof from);
  ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
  if (n < 0) return;

  // The address the datagram was sent to, with our bound port.
  struct sockaddr_storage bound, to;
  socklen_t bl = sizeof bound;
  memset(&bound, 0, sizeof bound);
  getsockname(fd, (struct sockaddr *)&bound, &bl);
  to = bound;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO && to.ss_family == AF_INET) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ((struct sockaddr_in *)&to)->sin_addr = pi.ipi_addr;
    } else if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO && to.ss_family == AF_INET6) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      ((struct sockaddr_in6 *)&to)->sin6_addr = pi.ipi6_addr;
    }
  }
  char client[64], local[64], name[256] = "";
  fmt_addr(&from, client, sizeof client);
  fmt_addr(&to, local, sizeof local);

  size_t len = (size_t)n;
  unsigned id = len >= 2 ? ((unsigned)q[0] << 8 | q[1]) : 0;
  size_t qend = len >= 12 ? read_qname(q, len, 12, name, sizeof name) : 0;
  unsigned qtype = 0;
  if (qend != 0 && qend + 4 <= len) qtype = (unsigned)q[qend] << 8 | q[qend + 1];
  emit("{\"event\":\"query\",\"client\":\"%s\",\"local\":\"%s\",\"id\":%u,\"name\":\"%s\",\"qtype\":%u}", client, local, id,
       name, qtype);
  if (qend == 0 || qend + 4 > len) return; // not a query we can answer
  size_t o = qend + 4;                      // header + question, copied
  memcpy(r, q, o);
  r[2] = 0x80 | (q[2] & 0x79); // QR, opcode kept, RD kept
  r[3] = 0x80;                  // RA, rcode 0
  r[4] = 0; r[5] = 1;           // QDCOUNT 1
  r[6] = 0; r[7] = 0;           // ANCOUNT
  r[8] = r[9] = r[10] = r[11] = 0;
  const void *rdata = NULL;
  unsigned rdlen = 0;
  if (qtype == 1) { rdata = a4; rdlen = 4; }
  if (qtype == 28) { rdata = a6; rdlen = 16; }
  if (rdata != NULL) {
    r[7] = 1;
    unsigned char rr[12] = {0xc0, 0x0c, (unsigned char)(qtype >> 8), (unsigned char)qtype, 0, 1, 0, 0, 0, 60, 0, (unsigned char)rdlen};
    memcpy(r + o, rr, sizeof rr);
    o += sizeof rr;
    memcpy(r + o, rdata, rdlen);
    o += rdlen;
  }
  // Reply from the address the query reached (as a real server bound to it would).
  sendto(fd, r, o, 0, (struct sockaddr *)&from, mh.msg_namelen);
}

static int server_main(int argc, char **argv) {
  const char *binds[MAX_BINDS];
  int nb = 0;
  struct in_addr a4;
  struct in6_addr a6;
  inet_pton(AF_INET, "192.0.2.1", &a4);
  inet_pton(AF_INET6, "2001:db8::1", &a6);
  long long lifetime_ms = 600000;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "mldns: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--bind") == 0) {
      if (nb == MAX_BINDS) { fprintf(stderr, "mldns: too many --bind\n"); return 2; }
      binds[nb++] = v;
    } else if (strcmp(f, "--a") == 0) {
      if (inet_pton(AF_INET, v, &a4) != 1) { fprintf(stderr, "mldns: bad --a %s\n", v); return 2; }
    } else if (strcmp(f, "--aaaa") == 0) {
      if (inet_pton(AF_INET6, v, &a6) != 1) { fprintf(stderr, "mldns: bad --aaaa %s\n", v); return 2; }
    } else if (strcmp(f, "--lifetime-ms") == 0) lifetime_ms = parse_num(v, f);
    else { fprintf(stderr, "mldns: unknown server flag %s\n", f); return 2; }
  }
  if (nb == 0) { fprintf(stderr, "mldns: server needs --bind\n"); return 2; }
  struct pollfd p[MAX_BINDS];
  char labels[MAX_BINDS][64];
  char list[MAX_BINDS * 70] = "";
  for (int i = 0; i < nb; i++) {
    p[i].fd = srv_bind(binds[i], labels[i], sizeof labels[i]);
    p[i].events = POLLIN;
    size_t l = strlen(list);
    snprintf(list + l, sizeof list - l, "%s\"%s\"", i ? "," : "", labels[i]);
  }
  emit("{\"event\":\"listening\",\"local\":[%s]}", list);
  int64_t end = lifetime_ms > 0 ? now_ms() + lifetime_ms : INT64_MAX;
  for (;;) {
    int64_t left = end - now_ms();
    if (left <= 0) break;
    int r = poll(p, (nfds_t)nb, left > 1000 ? 1000 : (int)left);
    if (r < 0 && errno != EINTR) { perror("mldns: poll"); return 1; }
    for (int i = 0; r > 0 && i < nb; i++)
      if (p[i].revents & POLLIN) srv_answer(p[i].fd, &a4, &a6);
  }
  return 0;
}

// ---------------------------------------------------------------- client

static int query_main(int argc, char **argv) {
  const char *server = NULL, *name = "svc.test", *type = "A", *mode = "sendto";
  int family = 0, timeout_ms = 3000;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "mldns: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--server") == 0) server = v;
    else if (strcmp(f, "--name") == 0) name = v;
    else if (strcmp(f, "--type") == 0) type = v;
    else if (strcmp(f, "--mode") == 0) mode = v;
    else if (strcmp(f, "--family") == 0) family = (int)parse_num(v, f);
    else if (strcmp(f, "--timeout-ms") == 0) timeout_ms = (int)parse_num(v, f);
    else { fprintf(stderr, "mldns: unknown query flag %s\n", f); return 2; }
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (server == NULL || parse_hostport(server, &ss, &sl) != 0) { fprintf(stderr, "mldns: query needs --server IP:PORT\n"); return 2; }
  int connect_mode = strcmp(mode, "connect") == 0;
  if (!connect_mode && strcmp(mode, "sendto") != 0) { fprintf(stderr, "mldns: bad --mode %s\n", mode); return 2; }
  unsigned qtype = strcmp(type, "AAAA") == 0 ? 28 : 1;
  if (family == 6 && ss.ss_family == AF_INET) { // v4-mapped on an AF_INET6 socket
    struct sockaddr_in a4 = *(struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = a4.sin_port;
    a6->sin6_addr.s6_addr[10] = 0xff;
    a6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&a6->sin6_addr.s6_addr[12], &a4.sin_addr, 4);
    sl = sizeof *a6;
  }
  char srv[64], local[64] = "?", peer[64] = "", from_s[64] = "", answer[INET6_ADDRSTRLEN] = "";
  fmt_addr(&ss, srv, sizeof srv);
  const char *error = NULL;
  int err = 0, id_match = 0, rcode = -1;

  unsigned char q[512], r[1500];
  unsigned id = (unsigned)(getpid() ^ now_ms()) & 0xffff;
  memset(q, 0, 12);
  q[0] = (unsigned char)(id >> 8); q[1] = (unsigned char)id;
  q[2] = 0x01; // RD
  q[5] = 1;    // QDCOUNT
  size_t nl = put_name(q + 12, sizeof q - 16, name);
  if (nl == 0) { fprintf(stderr, "mldns: bad --name %s\n", name); return 2; }
  size_t qlen = 12 + nl;
  q[qlen++] = (unsigned char)(qtype >> 8); q[qlen++] = (unsigned char)qtype;
  q[qlen++] = 0; q[qlen++] = 1; // IN

  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { error = "socket"; err = errno; goto out; }
  if (connect_mode) {
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) { error = "connect"; err = errno; goto out; }
    peer_addr(fd, peer, sizeof peer);
    if (send(fd, q, qlen, 0) != (ssize_t)qlen) { error = "send"; err = errno; goto out; }
  } else {
    if (sendto(fd, q, qlen, 0, (struct sockaddr *)&ss, sl) != (ssize_t)qlen) { error = "sendto"; err = errno; goto out; }
  }
  local_addr(fd, local, sizeof local);
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  int pr;
  do pr = poll(&pf, 1, timeout_ms); while (pr < 0 && errno == EINTR);
  if (pr == 0) { error = "no reply"; err = ETIMEDOUT; goto out; }
  if (pr < 0) { error = "poll"; err = errno; goto out; }
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  memset(&from, 0, sizeof from);
  ssize_t n = recvfrom(fd, r, sizeof r, 0, (struct sockaddr *)&from, &fl);
  if (n < 0) { error = "recvfrom"; err = errno; goto out; }
  fmt_addr(&from, from_s, sizeof from_s);
  if (n < 12) { error = "short reply"; goto out; }
  id_match = ((unsigned)r[0] << 8 | r[1]) == id;
  rcode = r[3] & 0x0f;
  unsigned an = (unsigned)r[6] << 8 | r[7];
  size_t off = skip_name(r, (size_t)n, 12);
  if (off == 0 || off + 4 > (size_t)n) { error = "bad question in reply"; goto out; }
  off += 4;
  if (an > 0) {
    off = skip_name(r, (size_t)n, off);
    if (off == 0 || off + 10 > (size_t)n) { error = "bad answer"; goto out; }
    unsigned t = (unsigned)r[off] << 8 | r[off + 1];
    unsigned rdlen = (unsigned)r[off + 8] << 8 | r[off + 9];
    off += 10;
    if (off + rdlen > (size_t)n) { error = "bad rdata"; goto out; }
    if (t == 1 && rdlen == 4) inet_ntop(AF_INET, r + off, answer, sizeof answer);
    else if (t == 28 && rdlen == 16) inet_ntop(AF_INET6, r + off, answer, sizeof answer);
  }
  if (!id_match) error = "id mismatch";
  else if (answer[0] == '\0') error = "no answer record";

out:;
  char ej[160] = "null";
  if (error != NULL) {
    char text[128];
    if (err != 0) snprintf(text, sizeof text, "%s: %s", error, strerror(err));
    else snprintf(text, sizeof text, "%s", error);
    json_str(ej, sizeof ej, text);
  }
#define JS(s) ((s)[0] ? "\"" : ""), ((s)[0] ? (s) : "null"), ((s)[0] ? "\"" : "")
  emit("{\"ok\":%s,\"mode\":\"%s\",\"server\":\"%s\",\"local\":\"%s\",\"peer\":%s%s%s,\"from\":%s%s%s,\"id_match\":%s,"
       "\"rcode\":%d,\"answer\":%s%s%s,\"error\":%s}",
       error == NULL ? "true" : "false", mode, srv, local, JS(peer), JS(from_s), id_match ? "true" : "false", rcode,
       JS(answer), ej);
  if (fd >= 0) close(fd);
  return error == NULL ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "server") == 0) return server_main(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "query") == 0) return query_main(argc - 2, argv + 2);
  fprintf(stderr, "usage: mldns server --bind IP:PORT ... | mldns query --server IP:PORT [...]\n");
  return 2;
}
