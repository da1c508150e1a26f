// mlproxy: a test sidecar proxy, the part of Envoy that interception needs.
//
// Listens on the outbound (15001) and inbound (15006) ports on 0.0.0.0 and on
// :: (IPV6_V6ONLY=1). For each accepted connection it asks the kernel for the
// original destination (SOL_IP/SO_ORIGINAL_DST for IPv4, SOL_IPV6/
// IP6T_SO_ORIGINAL_DST for IPv6), prints one JSON line, connects to that
// destination and relays bytes both ways until both halves are closed
// (half-close is passed on with shutdown(SHUT_WR)), then prints a close line.
//
// Flags:
//   --outbound-port P   (15001; 0 = off)     --inbound-port P (15006; 0 = off)
//   --bind4 ADDR|none   (0.0.0.0)            --bind6 ADDR|none (::)
//   --inbound-src ADDR  IPv4 source for connections from the inbound listener
//                       (Istio uses 127.0.0.6); IP_FREEBIND is set
//   --inbound-src6 ADDR the same for IPv6
//   --connect-timeout-ms N (5000)  --idle-timeout-ms N (30000)
//   --lifetime-ms N     exit after N ms (600000; 0 = until signalled)
//
// An original destination that is one of the proxy's own listeners (on
// loopback or the accepted socket's address) is refused (error, errno ELOOP)
// instead of looping.
//
// Lines (stdout, one JSON object each, flushed):
//   {"event":"listening","ports":[15001,15006],"v4":true,"v6":true}
//   {"event":"accept","listener":15001,"peer":"ip:port","local":"ip:port","orig_dst":"ip:port"|null,"errno":N}
//   {"event":"upstream","listener":15001,"peer":"ip:port","upstream_local":"ip:port"}   (connected; relaying)
//   {"event":"close","listener":15001,"peer":...,"local":...,"orig_dst":...,"upstream_local":...|null,
//    "bytes_up":N,"bytes_down":N,"error":null|"text","errno":N}
#include "common.h"
#include <netinet/tcp.h>
#include <signal.h>


static int connect_timeout_ms = 5000;
static int listen_ports[2] = {15001, 15006};
static int idle_timeout_ms = 30000;
static const char *inbound_src4 = NULL;
static const char *inbound_src6 = NULL;

struct conn {
  int fd;
  int listener_port;
  int inbound;
};

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

static void set_timeouts(int fd) {
  struct timeval tv = {.tv_sec = idle_timeout_ms / 1000, .tv_usec = (idle_timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Relay until both directions have seen EOF. Returns NULL or an error text.
static const char *relay(int a, int b, unsigned long long *up, unsigned long long *down, int *err) {
  static const size_t BUF = 65536;
  char *buf = malloc(BUF);
  if (buf == NULL) { *err = ENOMEM; return "malloc"; }
  int fds[2] = {a, b};
  int open_rd[2] = {1, 1};
  unsigned long long *count[2] = {up, down};
  const char *error = NULL;
  while (open_rd[0] || open_rd[1]) {
    struct pollfd p[2];
    for (int i = 0; i < 2; i++) {
      p[i].fd = open_rd[i] ? fds[i] : -1;
      p[i].events = POLLIN;
      p[i].revents = 0;
    }
    int r = poll(p, 2, idle_timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno; error = "poll"; break;
    }
    if (r == 0) { *err = ETIMEDOUT; error = "idle timeout"; break; }
    for (int i = 0; i < 2 && error == NULL; i++) {
      if (!open_rd[i] || p[i].revents == 0) continue;
      ssize_t n = recv(fds[i], buf, BUF, MSG_DONTWAIT);
      if (n > 0) {
        if (write_all(fds[1 - i], buf, (size_t)n) != 0) { *err = errno; error = "write"; }
        *count[i] += (unsigned long long)n;
      } else if (n == 0) {
        shutdown(fds[1 - i], SHUT_WR);
        open_rd[i] = 0;
      } else if (errno != EAGAIN && errno != EINTR) {
        *err = errno; error = "read";
      }
    }
    if (error != NULL) break;
  }
  free(buf);
  return error;
}

// True when `od` is one of our listener ports on a loopback address or on
// the accepted socket's own local address.
static int is_self(const struct sockaddr_storage *od, const struct sockaddr_storage *local) {
  unsigned port;
  int loop, same;
  if (od->ss_family == AF_INET) {
    const struct sockaddr_in *o = (const struct sockaddr_in *)od, *l = (const struct sockaddr_in *)local;
    port = ntohs(o->sin_port);
    loop = (ntohl(o->sin_addr.s_addr) >> 24) == 127;
    same = local->ss_family == AF_INET && o->sin_addr.s_addr == l->sin_addr.s_addr;
  } else {
    const struct sockaddr_in6 *o = (const struct sockaddr_in6 *)od, *l = (const struct sockaddr_in6 *)local;
    port = ntohs(o->sin6_port);
    loop = IN6_IS_ADDR_LOOPBACK(&o->sin6_addr);
    same = local->ss_family == AF_INET6 && IN6_ARE_ADDR_EQUAL(&o->sin6_addr, &l->sin6_addr);
  }
  return (port == (unsigned)listen_ports[0] || port == (unsigned)listen_ports[1]) && (loop || same);
}

static void *serve(void *arg) {
  struct conn c = *(struct conn *)arg;
  free(arg);
  char peer[64], local[64], orig[64] = "", up_local[64] = "";
  peer_addr(c.fd, peer, sizeof peer);
  local_addr(c.fd, local, sizeof local);

  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  getsockname(c.fd, (struct sockaddr *)&ss, &sl);
  int family = ss.ss_family;

  struct sockaddr_storage od;
  memset(&od, 0, sizeof od);
  socklen_t odl;
  int rc, od_errno = 0;
  if (family == AF_INET6) {
    odl = sizeof(struct sockaddr_in6);
    rc = getsockopt(c.fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &od, &odl);
  } else {
    odl = sizeof(struct sockaddr_in);
    rc = getsockopt(c.fd, SOL_IP, SO_ORIGINAL_DST, &od, &odl);
  }
  if (rc != 0) od_errno = errno;
  else fmt_addr(&od, orig, sizeof orig);

  char orig_json[80];
  if (rc == 0) snprintf(orig_json, sizeof orig_json, "\"%s\"", orig);
  else snprintf(orig_json, sizeof orig_json, "null");
  emit("{\"event\":\"accept\",\"listener\":%d,\"peer\":\"%s\",\"local\":\"%s\",\"orig_dst\":%s,\"errno\":%d}",
       c.listener_port, peer, local, orig_json, od_errno);

  unsigned long long up = 0, down = 0;
  const char *error = NULL;
  int err = 0;
  int u = -1;
  if (rc != 0) {
    error = "no original destination";
    err = od_errno;
  } else if (is_self(&od, &ss)) {
    // A datapath bug can hand back the listener itself: refuse rather than loop.
    error = "original destination is this proxy";
    err = ELOOP;
  } else {
    u = socket(od.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u < 0) { err = errno; error = "socket"; }
    const char *src = c.inbound ? (od.ss_family == AF_INET6 ? inbound_src6 : inbound_src4) : NULL;
    if (error == NULL && src != NULL) {
      struct sockaddr_storage bs;
      socklen_t bl;
      int one = 1;
      if (od.ss_family == AF_INET6) setsockopt(u, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one);
      else setsockopt(u, SOL_IP, IP_FREEBIND, &one, sizeof one);
      if (parse_ip(src, 0, &bs, &bl) != 0 || bs.ss_family != od.ss_family) { err = EINVAL; error = "inbound source address"; }
      else if (bind(u, (struct sockaddr *)&bs, bl) != 0) { err = errno; error = "bind inbound source"; }
    }
    socklen_t ol = od.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (error == NULL && connect_timeout(u, (struct sockaddr *)&od, ol, connect_timeout_ms) != 0) { err = errno; error = "connect"; }
    if (error == NULL) {
      set_nonblock(u, 0);
      set_timeouts(u);
      set_timeouts(c.fd);
      local_addr(u, up_local, sizeof up_local);
      // Before relaying: a connection that stalls in the relay still shows
      // which upstream connection it is (followed hop by hop in a failure).
      emit("{\"event\":\"upstream\",\"listener\":%d,\"peer\":\"%s\",\"upstream_local\":\"%s\"}", c.listener_port, peer,
           up_local);
      error = relay(c.fd, u, &up, &down, &err);
    }
  }
  char up_json[80], err_json[128];
  if (up_local[0] != '\0') snprintf(up_json, sizeof up_json, "\"%s\"", up_local);
  else snprintf(up_json, sizeof up_json, "null");
  if (error != NULL) {
    char text[96];
    snprintf(text, sizeof text, "%s: %s", error, strerror(err));
    json_str(err_json, sizeof err_json, text);
  } else {
    snprintf(err_json, sizeof err_json, "null");
  }
  emit("{\"event\":\"close\",\"listener\":%d,\"peer\":\"%s\",\"local\":\"%s\",\"orig_dst\":%s,\"upstream_local\":%s,"
       "\"bytes_up\":%llu,\"bytes_down\":%llu,\"error\":%s,\"errno\":%d}",
       c.listener_port, peer, local, orig_json, up_json, up, down, err_json, err);
  if (u >= 0) close(u);
  close(c.fd);
  return NULL;
}

static int listen_on(const char *ip, int port) {
  int fd = bound_socket("mlproxy", ip, port, SOCK_STREAM);
  set_nonblock(fd, 1);
  return fd;
}

struct listeners {
  const int *port_of;
  const int *inbound_of;
};

static void proxy_accepted(int fd, int listener, void *arg) {
  const struct listeners *ls = arg;
  struct conn *c = malloc(sizeof *c);
  if (c == NULL) { close(fd); return; }
  c->fd = fd;
  c->listener_port = ls->port_of[listener];
  c->inbound = ls->inbound_of[listener];
  if (start_detached(serve, c) != 0) { close(fd); free(c); }
}

int main(int argc, char **argv) {
  int out_port = 15001, in_port = 15006;
  const char *bind4 = "0.0.0.0", *bind6 = "::";
  long long lifetime_ms = 600000;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "mlproxy: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--outbound-port") == 0) out_port = (int)parse_num(v, f);
    else if (strcmp(f, "--inbound-port") == 0) in_port = (int)parse_num(v, f);
    else if (strcmp(f, "--bind4") == 0) bind4 = strcmp(v, "none") == 0 ? NULL : v;
    else if (strcmp(f, "--bind6") == 0) bind6 = strcmp(v, "none") == 0 ? NULL : v;
    else if (strcmp(f, "--inbound-src") == 0) inbound_src4 = v;
    else if (strcmp(f, "--inbound-src6") == 0) inbound_src6 = v;
    else if (strcmp(f, "--connect-timeout-ms") == 0) connect_timeout_ms = (int)parse_num(v, f);
    else if (strcmp(f, "--idle-timeout-ms") == 0) idle_timeout_ms = (int)parse_num(v, f);
    else if (strcmp(f, "--lifetime-ms") == 0) lifetime_ms = parse_num(v, f);
    else { fprintf(stderr, "mlproxy: unknown flag %s\n", f); return 2; }
  }
  if (out_port > 65535 || in_port > 65535) { fprintf(stderr, "mlproxy: bad port\n"); return 2; }
  listen_ports[0] = out_port;
  listen_ports[1] = in_port;
  signal(SIGPIPE, SIG_IGN);

  struct pollfd p[4];
  int port_of[4], inbound_of[4], n = 0;
  int ports[2] = {out_port, in_port};
  for (int k = 0; k < 2; k++) {
    if (ports[k] == 0) continue;
    if (bind4 != NULL) { p[n].fd = listen_on(bind4, ports[k]); port_of[n] = ports[k]; inbound_of[n] = k == 1; n++; }
    if (bind6 != NULL) { p[n].fd = listen_on(bind6, ports[k]); port_of[n] = ports[k]; inbound_of[n] = k == 1; n++; }
  }
  if (n == 0) { fprintf(stderr, "mlproxy: nothing to listen on\n"); return 2; }
  emit("{\"event\":\"listening\",\"ports\":[%d,%d],\"v4\":%s,\"v6\":%s}", out_port, in_port,
       bind4 ? "true" : "false", bind6 ? "true" : "false");

  struct listeners ls = {port_of, inbound_of};
  if (accept_loop(p, n, lifetime_ms, "mlproxy", proxy_accepted, &ls) != 0) return 1;
  emit("{\"event\":\"exit\",\"reason\":\"lifetime\"}");
  return 0;
}
