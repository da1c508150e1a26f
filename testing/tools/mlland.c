// mlland: where does a connection or a datagram land? For the differential
// tests against Istio's iptables rules (test/kernel/istio-parity.test.ts) and
// Istio's istio-validation check (test/kernel/istio-validation.test.ts).
//
// mlland listen [--tcp PORT]... [--udp PORT]... [--bind4 ADDR] [--bind6 ADDR] [--lifetime-ms N]
//   TCP and UDP listeners on 0.0.0.0 and :: (IPV6_V6ONLY) for each port. An
//   accepted TCP connection gets one JSON line written back and is closed:
//     {"listener":P,"local":"ip:port","orig_dst":"ip:port"|null}
//   (orig_dst: SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST of the accepted socket).
//   A datagram gets one JSON datagram back from the socket it arrived on:
//     {"listener":P,"proto":"udp"}
//   stdout: {"event":"listening",...} once.
//
// mlland probe [--timeout-ms N] SPEC...
//   SPEC is "tcp|udp HOST:PORT [SRC]" (one argument, spaces inside; SRC binds
//   the source address, port 0). For each SPEC one JSON line on stdout, in order:
//     {"spec":"...","result":"land","listener":P,"orig_dst":...,"peer":"ip:port","local":"ip:port"}
//     {"spec":"...","result":"other","reply":"..."}       (an answer that is not mlland's)
//     {"spec":"...","result":"refused"|"timeout"|"error","errno":N}
//   For UDP, "peer" is the source recvfrom() reported for the reply.
//
// mlland validate [--family 4|6] [--timeout-ms N]
//   Istio's istio-validation (tools/istio-iptables/pkg/validation): listeners
//   on 127.0.0.1:15001 and 127.0.0.1:15006 ([::1] for --family 6), then once a
//   second a connection from 127.0.0.1:0 to 127.0.0.6:15002 ([::1]:0 to
//   [::6]:15002); passes when a listener accepts it and SO_ORIGINAL_DST says
//   port 15002. One JSON line: {"ok":bool,"attempts":N,"listener":P,"orig_dst":...,"error":...};
//   exit 0 on pass, 1 when the timeout (default 5000 ms) passes first.
#include "common.h"
#include <netinet/tcp.h>


#define MAX_LISTEN 64

static void orig_dst(int fd, int family, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int rc;

  memset(&ss, 0, sizeof(ss));
  if (family == AF_INET6)
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &sl);
  else
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &sl);
  if (rc != 0) {
    snprintf(out, len, "null");
    return;
  }
  char a[96];
  fmt_addr(&ss, a, sizeof(a));
  snprintf(out, len, "\"%s\"", a);
}

static int cmd_listen(int argc, char **argv) {
  struct pollfd p[MAX_LISTEN];
  int ports[MAX_LISTEN], types[MAX_LISTEN], fams[MAX_LISTEN];
  int n = 0;
  const char *bind4 = "0.0.0.0", *bind6 = "::";
  int64_t lifetime_ms = 600000;
  int tcp[MAX_LISTEN / 4], udp[MAX_LISTEN / 4], nt = 0, nu = 0;

  for (int i = 0; i + 1 < argc; i += 2) {
    const char *f = argv[i], *v = argv[i + 1];
    if (strcmp(f, "--tcp") == 0 && nt < MAX_LISTEN / 4) tcp[nt++] = (int)parse_num(v, f);
    else if (strcmp(f, "--udp") == 0 && nu < MAX_LISTEN / 4) udp[nu++] = (int)parse_num(v, f);
    else if (strcmp(f, "--bind4") == 0) bind4 = v;
    else if (strcmp(f, "--bind6") == 0) bind6 = v;
    else if (strcmp(f, "--lifetime-ms") == 0) lifetime_ms = parse_num(v, f);
    else {
      fprintf(stderr, "mlland listen: unknown flag %s\n", f);
      return 2;
    }
  }
  for (int k = 0; k < nt + nu; k++) {
    int type = k < nt ? SOCK_STREAM : SOCK_DGRAM;
    int port = k < nt ? tcp[k] : udp[k - nt];
    const char *addrs[2] = {bind4, bind6};
    for (int fi = 0; fi < 2; fi++) {
      if (strcmp(addrs[fi], "none") == 0) continue;
      p[n].fd = bound_socket("mlland", addrs[fi], port, type);
      p[n].events = POLLIN;
      ports[n] = port;
      types[n] = type;
      fams[n] = fi == 0 ? AF_INET : AF_INET6;
      n++;
    }
  }
  emit("{\"event\":\"listening\",\"sockets\":%d}", n);
  int64_t end = now_ms() + lifetime_ms;
  while (now_ms() < end) {
    int r = poll(p, (nfds_t)n, 200);
    if (r < 0 && errno != EINTR) return 1;
    for (int i = 0; r > 0 && i < n; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      char line[512];
      if (types[i] == SOCK_STREAM) {
        int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        char local[96], od[112];
        local_addr(c, local, sizeof(local));
        orig_dst(c, fams[i], od, sizeof(od));
        int len = snprintf(line, sizeof(line), "{\"listener\":%d,\"local\":\"%s\",\"orig_dst\":%s}\n", ports[i], local, od);
        if (send(c, line, (size_t)len, MSG_NOSIGNAL) < 0) { /* the prober left: nothing to tell */ }
        shutdown(c, SHUT_WR);
        close(c);
      } else {
        char buf[512];
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t got = recvfrom(p[i].fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (got < 0) continue;
        int len = snprintf(line, sizeof(line), "{\"listener\":%d,\"proto\":\"udp\"}", ports[i]);
        sendto(p[i].fd, line, (size_t)len, 0, (struct sockaddr *)&from, fl);
      }
    }
  }
  return 0;
}

// Read until EOF or the deadline; returns bytes read (NUL terminated) or -1 on timeout.
static int read_reply(int fd, char *buf, size_t len, int timeout_ms) {
  size_t got = 0;
  int64_t end = now_ms() + timeout_ms;
  while (got + 1 < len) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int left = (int)(end - now_ms());
    if (left <= 0) return -1;
    int r = poll(&p, 1, left);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return -1;
    }
    ssize_t n = recv(fd, buf + got, len - 1 - got, 0);
    if (n < 0) return errno == ECONNRESET ? (int)got : -2;
    if (n == 0) break;
    got += (size_t)n;
  }
  buf[got] = 0;
  return (int)got;
}

static void print_result(const char *spec, const char *reply, const char *peer, const char *local) {
  char s[256];
  json_str(s, sizeof(s), spec);
  const char *lp = strstr(reply, "{\"listener\":");
  if (lp) {
    char body[400];
    size_t l = strcspn(lp + 1, "\n");
    if (l > sizeof(body) - 2) l = sizeof(body) - 2;
    memcpy(body, lp + 1, l);
    body[l] = 0;
    if (l > 0 && body[l - 1] == '}') body[l - 1] = 0;
    emit("{\"spec\":%s,\"result\":\"land\",%s,\"peer\":\"%s\",\"client_local\":\"%s\"}", s, body, peer, local);
  } else {
    char r[256];
    json_str(r, sizeof(r), reply);
    emit("{\"spec\":%s,\"result\":\"other\",\"reply\":%s,\"peer\":\"%s\"}", s, r, peer);
  }
}

static void print_failure(const char *spec, const char *what, int err) {
  char s[256];
  json_str(s, sizeof(s), spec);
  emit("{\"spec\":%s,\"result\":\"%s\",\"errno\":%d}", s, what, err);
}

static void probe_one(const char *spec, int timeout_ms) {
  char proto[8], hp[128], src[64] = "";
  if (sscanf(spec, "%7s %127s %63s", proto, hp, src) < 2) {
    print_failure(spec, "error", EINVAL);
    return;
  }
  struct sockaddr_storage dst;
  socklen_t dl;
  if (parse_hostport(hp, &dst, &dl) != 0) {
    print_failure(spec, "error", EINVAL);
    return;
  }
  int udp = strcmp(proto, "udp") == 0;
  int fd = socket(dst.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    print_failure(spec, "error", errno);
    return;
  }
  if (src[0]) {
    struct sockaddr_storage sa;
    socklen_t sl;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
    if (parse_ip(src, 0, &sa, &sl) != 0 || bind(fd, (struct sockaddr *)&sa, sl) != 0) {
      print_failure(spec, "error", errno ? errno : EINVAL);
      close(fd);
      return;
    }
  }
  char reply[600], peer[96] = "", local[96] = "";
  if (udp) {
    const char msg[] = "mlland probe";
    if (sendto(fd, msg, sizeof(msg) - 1, 0, (struct sockaddr *)&dst, dl) < 0) {
      print_failure(spec, errno == ECONNREFUSED ? "refused" : "error", errno);
      close(fd);
      return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) {
      print_failure(spec, "timeout", 0);
      close(fd);
      return;
    }
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd, reply, sizeof(reply) - 1, 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      print_failure(spec, errno == ECONNREFUSED ? "refused" : "error", errno);
      close(fd);
      return;
    }
    reply[n] = 0;
    fmt_addr(&from, peer, sizeof(peer));
    local_addr(fd, local, sizeof(local));
    print_result(spec, reply, peer, local);
    close(fd);
    return;
  }
  if (connect_timeout(fd, (struct sockaddr *)&dst, dl, timeout_ms) != 0) {
    int e = errno;
    print_failure(spec, e == ECONNREFUSED ? "refused" : e == ETIMEDOUT ? "timeout" : "error", e);
    close(fd);
    return;
  }
  peer_addr(fd, peer, sizeof(peer));
  local_addr(fd, local, sizeof(local));
  int n = read_reply(fd, reply, sizeof(reply), timeout_ms);
  if (n == -1) print_failure(spec, "timeout", 0);
  else if (n < 0) print_failure(spec, "error", errno);
  else print_result(spec, reply, peer, local);
  close(fd);
}

static int cmd_probe(int argc, char **argv) {
  int timeout_ms = 1500;
  int i = 0;
  if (argc >= 2 && strcmp(argv[0], "--timeout-ms") == 0) {
    timeout_ms = (int)parse_num(argv[1], argv[0]);
    i = 2;
  }
  for (; i < argc; i++) probe_one(argv[i], timeout_ms);
  return 0;
}

static int cmd_validate(int argc, char **argv) {
  int v6 = 0;
  int timeout_ms = 5000;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--family") == 0) v6 = strcmp(argv[i + 1], "6") == 0;
    else if (strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = (int)parse_num(argv[i + 1], argv[i]);
    else {
      fprintf(stderr, "mlland validate: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  const char *lo = v6 ? "::1" : "127.0.0.1";
  const char *target = v6 ? "[::6]:15002" : "127.0.0.6:15002";
  struct pollfd ls[2];
  int lports[2] = {15001, 15006};
  for (int k = 0; k < 2; k++) {
    ls[k].fd = bound_socket("mlland", lo, lports[k], SOCK_STREAM);
    ls[k].events = POLLIN;
  }
  struct sockaddr_storage dst, src;
  socklen_t dl, sl;
  parse_hostport(target, &dst, &dl);
  parse_ip(lo, 0, &src, &sl);
  int64_t end = now_ms() + timeout_ms;
  int attempts = 0;
  char err[160] = "none";
  while (now_ms() < end) {
    attempts++;
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sl) == 0 &&
        connect_timeout(fd, (struct sockaddr *)&dst, dl, 1000) == 0) {
      int r = poll(ls, 2, 1000);
      for (int k = 0; r > 0 && k < 2; k++) {
        if (!(ls[k].revents & POLLIN)) continue;
        int c = accept4(ls[k].fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        struct sockaddr_storage od;
        socklen_t ol = sizeof(od);
        int rc = v6 ? getsockopt(c, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &od, &ol) : getsockopt(c, SOL_IP, SO_ORIGINAL_DST, &od, &ol);
        char a[96] = "";
        if (rc == 0) fmt_addr(&od, a, sizeof(a));
        int port = rc != 0 ? -1 : ntohs(od.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&od)->sin6_port : ((struct sockaddr_in *)&od)->sin_port);
        close(c);
        if (port == 15002) {
          emit("{\"ok\":true,\"attempts\":%d,\"listener\":%d,\"orig_dst\":\"%s\",\"error\":null}", attempts, lports[k], a);
          close(fd);
          return 0;
        }
        snprintf(err, sizeof(err), "accepted on %d, SO_ORIGINAL_DST %s (errno %d)", lports[k], rc == 0 ? a : "failed", rc == 0 ? 0 : errno);
      }
    } else {
      snprintf(err, sizeof(err), "connect to %s: %s", target, strerror(errno));
    }
    if (fd >= 0) close(fd);
    int64_t left = end - now_ms();
    if (left > 0) usleep((useconds_t)((left < 1000 ? left : 1000) * 1000));
  }
  char e[200];
  json_str(e, sizeof(e), err);
  emit("{\"ok\":false,\"attempts\":%d,\"listener\":null,\"orig_dst\":null,\"error\":%s}", attempts, e);
  return 1;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "listen") == 0) return cmd_listen(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "probe") == 0) return cmd_probe(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "validate") == 0) return cmd_validate(argc - 2, argv + 2);
  fprintf(stderr, "usage: mlland listen|probe|validate ...\n");
  return 2;
}
