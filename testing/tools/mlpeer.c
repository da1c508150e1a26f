// mlpeer: a test server and client for the datapath tests.
//
// mlpeer server --port P [--family 4|6|both] [--bind4 ADDR] [--bind6 ADDR]
//               [--mode echo|sink|source] [--bytes N (source)]
//               [--idle-timeout-ms N (30000)] [--lifetime-ms N (600000; 0 = until signalled)]
//   lines: {"event":"listening","port":P,"v4":bool,"v6":bool}
//          {"event":"accept","peer":"ip:port","local":"ip:port"}
//          {"event":"close","peer":...,"local":...,"bytes_in":N,"bytes_out":N,"error":null|"..."}
//   echo: writes back what it reads; on EOF it shuts its write side (half-close).
//   sink: counts what it reads; source: writes --bytes of the pattern, then shuts.
//
// mlpeer client --connect IP:PORT|[IP6]:PORT [--bind ADDR] [--bytes N (1024)]
//               [--mode echo|send|recv] [--half-close] [--read plain|fionread|splice]
//               [--fionread-min M (1)] [--chunk C (65536)] [--concurrency K (1)] [--pause-ms P (0)]
//               [--timeout-ms T (10000)]
//   echo: sends N bytes of the pattern, reads N back and checks them; with
//         --half-close shuts its write side after sending and expects EOF.
//   send: sends N bytes, shuts its write side, waits for EOF (server: sink).
//   recv: reads until EOF and checks the pattern; N bytes expected (server: source).
//   fionread: waits with poll + ioctl(FIONREAD) until at least min(M, left)
//         bytes are reported, then reads that many (the pattern some clients use;
//         it hangs when FIONREAD under-reports); the timeout reports it.
//   splice: moves bytes socket -> pipe with splice(), then reads the pipe.
//   prints one summary line:
//     {"ok":bool,"mode":..,"read":..,"connections":K,"failed":F,"bytes":N,"sent":S,"received":R,
//      "local":"ip:port","peer":"ip:port","elapsed_ms":T,"errors":[...],
//      "failed_local":["ip:port", ...]}   (errors and failed_local: the first 5 failed connections)
//   exit 0 when every connection succeeded, 1 otherwise, 2 on bad usage.
//
// mlpeer getsockopt (or --getsockopt) [--connect IP:PORT] [--buflen N (16384)] [--filter-insns N (1024)]
//   runs getsockopt probes in this process (so in its cgroup) and prints
//     {"event":"getsockopt","probes":[{"name":..,"level":L,"optname":O,"buflen":B,
//       "ret":R,"errno":E,"optlen":N,"sum":"fnv1a32 hex"|null},...]}
#include "common.h"
#include <linux/filter.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/ioctl.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

// ---------------------------------------------------------------- server

static const char *srv_mode = "echo";
static unsigned long long srv_bytes = 0;
static int srv_idle_ms = 30000;

static void *srv_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  char peer[64], local[64];
  peer_addr(fd, peer, sizeof peer);
  local_addr(fd, local, sizeof local);
  emit("{\"event\":\"accept\",\"peer\":\"%s\",\"local\":\"%s\"}", peer, local);
  struct timeval tv = {.tv_sec = srv_idle_ms / 1000, .tv_usec = (srv_idle_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  unsigned long long in = 0, out = 0;
  const char *error = NULL;
  int err = 0;
  static const size_t BUF = 65536;
  unsigned char *buf = malloc(BUF);
  if (buf == NULL) { error = "malloc"; err = ENOMEM; }
  if (error == NULL && strcmp(srv_mode, "source") == 0) {
    while (out < srv_bytes) {
      size_t n = srv_bytes - out < BUF ? (size_t)(srv_bytes - out) : BUF;
      for (size_t k = 0; k < n; k++) buf[k] = pattern_byte(out + k);
      ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
      if (w < 0) { if (errno == EINTR) continue; err = errno; error = "write"; break; }
      out += (unsigned long long)w;
    }
    shutdown(fd, SHUT_WR);
  }
  while (error == NULL) {
    ssize_t n = recv(fd, buf, BUF, 0);
    if (n < 0) { if (errno == EINTR) continue; err = errno; error = "read"; break; }
    if (n == 0) break;
    in += (unsigned long long)n;
    if (strcmp(srv_mode, "echo") == 0) {
      ssize_t off = 0;
      while (off < n) {
        ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0) { if (errno == EINTR) continue; err = errno; error = "write"; break; }
        off += w;
        out += (unsigned long long)w;
      }
    }
  }
  if (strcmp(srv_mode, "source") != 0) shutdown(fd, SHUT_WR);
  char ej[128] = "null";
  if (error != NULL) {
    char text[96];
    snprintf(text, sizeof text, "%s: %s", error, strerror(err));
    json_str(ej, sizeof ej, text);
  }
  emit("{\"event\":\"close\",\"peer\":\"%s\",\"local\":\"%s\",\"bytes_in\":%llu,\"bytes_out\":%llu,\"error\":%s}",
       peer, local, in, out, ej);
  free(buf);
  close(fd);
  return NULL;
}

static int srv_listen(const char *ip, int port) {
  int fd = bound_socket("mlpeer", ip, port, SOCK_STREAM);
  set_nonblock(fd, 1);
  return fd;
}

static void srv_accepted(int fd, int listener, void *arg) {
  (void)listener;
  (void)arg;
  if (start_detached(srv_conn, (void *)(intptr_t)fd) != 0) close(fd);
}

static int server_main(int argc, char **argv) {
  int port = -1;
  const char *family = "both", *bind4 = "0.0.0.0", *bind6 = "::";
  long long lifetime_ms = 600000;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "mlpeer: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--port") == 0) port = (int)parse_num(v, f);
    else if (strcmp(f, "--family") == 0) family = v;
    else if (strcmp(f, "--bind4") == 0) bind4 = v;
    else if (strcmp(f, "--bind6") == 0) bind6 = v;
    else if (strcmp(f, "--mode") == 0) srv_mode = v;
    else if (strcmp(f, "--bytes") == 0) srv_bytes = (unsigned long long)parse_num(v, f);
    else if (strcmp(f, "--idle-timeout-ms") == 0) srv_idle_ms = (int)parse_num(v, f);
    else if (strcmp(f, "--lifetime-ms") == 0) lifetime_ms = parse_num(v, f);
    else { fprintf(stderr, "mlpeer: unknown server flag %s\n", f); return 2; }
  }
  if (port < 0 || port > 65535) { fprintf(stderr, "mlpeer: server needs --port\n"); return 2; }
  if (strcmp(srv_mode, "echo") && strcmp(srv_mode, "sink") && strcmp(srv_mode, "source")) {
    fprintf(stderr, "mlpeer: bad --mode %s\n", srv_mode);
    return 2;
  }
  int v4 = strcmp(family, "6") != 0, v6 = strcmp(family, "4") != 0;
  struct pollfd p[2];
  int n = 0;
  if (v4) p[n++].fd = srv_listen(bind4, port);
  if (v6) p[n++].fd = srv_listen(bind6, port);
  emit("{\"event\":\"listening\",\"port\":%d,\"v4\":%s,\"v6\":%s,\"mode\":\"%s\"}", port, v4 ? "true" : "false",
       v6 ? "true" : "false", srv_mode);
  if (accept_loop(p, n, lifetime_ms, "mlpeer", srv_accepted, NULL) != 0) return 1;
  emit("{\"event\":\"exit\",\"reason\":\"lifetime\"}");
  return 0;
}

// ---------------------------------------------------------------- client

enum cmode { C_ECHO, C_SEND, C_RECV };
enum rmode { R_PLAIN, R_FIONREAD, R_SPLICE };

static struct sockaddr_storage c_dst, c_bind;
static socklen_t c_dst_len, c_bind_len;
static int c_has_bind = 0;
static unsigned long long c_bytes = 1024;
static enum cmode c_mode = C_ECHO;
static enum rmode c_read = R_PLAIN;
static int c_half_close = 0;
static unsigned long long c_fionread_min = 1;
static size_t c_chunk = 65536;
static unsigned long c_pause_ms = 0; /* client: sleep after each chunk sent (a slow, long-lived connection) */
static int c_timeout_ms = 10000;
static int64_t c_deadline;

struct cres {
  int ok;
  unsigned long long sent, received;
  char local[64], peer[64];
  char error[160];
  int fionread_last;
  unsigned long long fionread_waits;
};

static void cfail(struct cres *r, const char *what, int err, const char *phase) {
  if (r->error[0] != '\0') return;
  if (err != 0) snprintf(r->error, sizeof r->error, "%s: %s (%s)", what, strerror(err), phase);
  else snprintf(r->error, sizeof r->error, "%s (%s)", what, phase);
}

// Read up to `want` bytes by the chosen mode; returns bytes read, 0 on EOF,
// -1 with EAGAIN when nothing is ready yet, -1 with another errno on error.
static ssize_t c_readsome(int fd, unsigned char *buf, size_t want, int pipefd[2], struct cres *r,
                          unsigned long long expect_left) {
  if (c_read == R_FIONREAD && expect_left > 0) {
    int avail = 0;
    if (ioctl(fd, FIONREAD, &avail) != 0) return -1;
    r->fionread_last = avail;
    unsigned long long need = c_fionread_min < expect_left ? c_fionread_min : expect_left;
    if (avail <= 0 || (unsigned long long)avail < need) {
      r->fionread_waits++;
      errno = EAGAIN;
      return -1;
    }
    if ((size_t)avail < want) want = (size_t)avail;
    return recv(fd, buf, want, MSG_DONTWAIT);
  }
  if (c_read == R_SPLICE) {
    ssize_t n = splice(fd, NULL, pipefd[1], NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n <= 0) return n;
    size_t got = 0;
    while (got < (size_t)n) {
      ssize_t m = read(pipefd[0], buf + got, (size_t)n - got);
      if (m < 0) { if (errno == EINTR) continue; return -1; }
      if (m == 0) break;
      got += (size_t)m;
    }
    return (ssize_t)got;
  }
  return recv(fd, buf, want, MSG_DONTWAIT);
}

static void *client_conn(void *arg) {
  struct cres *r = arg;
  int pipefd[2] = {-1, -1};
  unsigned char *out = malloc(c_chunk), *in = malloc(c_chunk);
  int fd = socket(c_dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int wr_shut = 0, eof = 0;
  unsigned long long expect = c_mode == C_SEND ? 0 : c_bytes;
  unsigned long long to_send = c_mode == C_RECV ? 0 : c_bytes;
  int want_eof = c_mode != C_ECHO || c_half_close;
  if (out == NULL || in == NULL) { cfail(r, "malloc", ENOMEM, "setup"); goto done; }
  if (fd < 0) { cfail(r, "socket", errno, "setup"); goto done; }
  if (c_read == R_SPLICE && pipe2(pipefd, O_CLOEXEC) != 0) { cfail(r, "pipe", errno, "setup"); goto done; }
  if (c_has_bind && bind(fd, (struct sockaddr *)&c_bind, c_bind_len) != 0) { cfail(r, "bind", errno, "setup"); goto done; }
  int64_t left = c_deadline - now_ms();
  if (left <= 0 || connect_timeout(fd, (struct sockaddr *)&c_dst, c_dst_len, (int)left) != 0) {
    cfail(r, "connect", left <= 0 ? ETIMEDOUT : errno, "connect");
    goto done;
  }
  local_addr(fd, r->local, sizeof r->local);
  peer_addr(fd, r->peer, sizeof r->peer);
  if (to_send == 0 && (c_mode == C_RECV ? c_half_close : 1)) { shutdown(fd, SHUT_WR); wr_shut = 1; }
  for (;;) {
    int reading_done = r->received >= expect && (!want_eof || eof);
    int sending_done = r->sent >= to_send;
    if (sending_done && !wr_shut && (c_half_close || c_mode == C_SEND)) { shutdown(fd, SHUT_WR); wr_shut = 1; }
    if (reading_done && sending_done) break;
    int64_t now = now_ms();
    if (now >= c_deadline) {
      char ph[96];
      snprintf(ph, sizeof ph, "sent %llu/%llu, received %llu/%llu, eof %d", r->sent, to_send, r->received, expect, eof);
      cfail(r, "timeout", 0, ph);
      goto done;
    }
    struct pollfd p = {.fd = fd, .events = 0};
    if (!sending_done) p.events |= POLLOUT;
    if (!reading_done) p.events |= POLLIN;
    int wait = (int)(c_deadline - now);
    if (c_read == R_FIONREAD && r->fionread_waits > 0 && !reading_done) wait = wait > 1 ? 1 : wait;
    int pr = poll(&p, 1, wait);
    if (pr < 0) { if (errno == EINTR) continue; cfail(r, "poll", errno, "io"); goto done; }
    if (pr == 0 && !(c_read == R_FIONREAD)) continue;
    if (!sending_done && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      size_t n = to_send - r->sent < c_chunk ? (size_t)(to_send - r->sent) : c_chunk;
      for (size_t k = 0; k < n; k++) out[k] = pattern_byte(r->sent + k);
      ssize_t w = send(fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EINTR) { cfail(r, "write", errno, "send"); goto done; }
      if (w > 0) r->sent += (unsigned long long)w;
      if (w > 0 && c_pause_ms > 0) usleep((useconds_t)(c_pause_ms * 1000));
    }
    if (!reading_done && (p.revents & (POLLIN | POLLERR | POLLHUP) || c_read == R_FIONREAD)) {
      unsigned long long exp_left = r->received < expect ? expect - r->received : 0;
      size_t want = c_chunk;
      if (exp_left > 0 && exp_left < want) want = (size_t)exp_left;
      ssize_t n = c_readsome(fd, in, want, pipefd, r, exp_left);
      if (n < 0 && errno != EAGAIN && errno != EINTR) { cfail(r, "read", errno, "recv"); goto done; }
      if (n < 0 && c_read == R_FIONREAD && sending_done) usleep(1000);  // FIONREAD says not enough yet
      if (n == 0) {
        if (r->received < expect) { cfail(r, "early EOF", 0, "recv"); goto done; }
        eof = 1;
      }
      if (n > 0) {
        for (ssize_t k = 0; k < n; k++) {
          if (in[k] != pattern_byte(r->received + (unsigned long long)k)) {
            char ph[64];
            snprintf(ph, sizeof ph, "offset %llu", r->received + (unsigned long long)k);
            cfail(r, "data mismatch", 0, ph);
            goto done;
          }
        }
        r->received += (unsigned long long)n;
        if (r->received > expect && c_mode != C_RECV) { cfail(r, "more data than sent", 0, "recv"); goto done; }
      }
    }
  }
  if (c_mode == C_RECV && r->received != c_bytes) { cfail(r, "wrong length", 0, "recv"); goto done; }
  r->ok = 1;
done:
  if (fd >= 0) close(fd);
  if (pipefd[0] >= 0) { close(pipefd[0]); close(pipefd[1]); }
  free(out);
  free(in);
  return NULL;
}

static int client_main(int argc, char **argv) {
  int conc = 1;
  const char *connect_to = NULL;
  const char *mode = "echo", *rmode = "plain";
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (strcmp(f, "--half-close") == 0) { c_half_close = 1; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "mlpeer: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--connect") == 0) connect_to = v;
    else if (strcmp(f, "--bind") == 0) {
      if (parse_ip(v, 0, &c_bind, &c_bind_len) != 0) { fprintf(stderr, "mlpeer: bad --bind %s\n", v); return 2; }
      c_has_bind = 1;
    } else if (strcmp(f, "--bytes") == 0) c_bytes = (unsigned long long)parse_num(v, f);
    else if (strcmp(f, "--mode") == 0) mode = v;
    else if (strcmp(f, "--read") == 0) rmode = v;
    else if (strcmp(f, "--fionread-min") == 0) c_fionread_min = (unsigned long long)parse_num(v, f);
    else if (strcmp(f, "--chunk") == 0) c_chunk = (size_t)parse_num(v, f);
    else if (strcmp(f, "--pause-ms") == 0) c_pause_ms = (unsigned long)parse_num(v, f);
    else if (strcmp(f, "--concurrency") == 0) conc = (int)parse_num(v, f);
    else if (strcmp(f, "--timeout-ms") == 0) c_timeout_ms = (int)parse_num(v, f);
    else { fprintf(stderr, "mlpeer: unknown client flag %s\n", f); return 2; }
  }
  if (connect_to == NULL || parse_hostport(connect_to, &c_dst, &c_dst_len) != 0) {
    fprintf(stderr, "mlpeer: client needs --connect IP:PORT or [IPv6]:PORT\n");
    return 2;
  }
  if (strcmp(mode, "echo") == 0) c_mode = C_ECHO;
  else if (strcmp(mode, "send") == 0) c_mode = C_SEND;
  else if (strcmp(mode, "recv") == 0) c_mode = C_RECV;
  else { fprintf(stderr, "mlpeer: bad --mode %s\n", mode); return 2; }
  if (strcmp(rmode, "plain") == 0) c_read = R_PLAIN;
  else if (strcmp(rmode, "fionread") == 0) c_read = R_FIONREAD;
  else if (strcmp(rmode, "splice") == 0) c_read = R_SPLICE;
  else { fprintf(stderr, "mlpeer: bad --read %s\n", rmode); return 2; }
  if (conc < 1 || conc > 4096 || c_chunk < 1 || c_chunk > (16u << 20) || c_fionread_min < 1) {
    fprintf(stderr, "mlpeer: --concurrency 1..4096, --chunk 1..16M, --fionread-min >= 1\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct cres *res = calloc((size_t)conc, sizeof *res);
  pthread_t *th = calloc((size_t)conc, sizeof *th);
  if (res == NULL || th == NULL) { perror("mlpeer: calloc"); return 1; }
  int64_t start = now_ms();
  c_deadline = start + c_timeout_ms;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int started = 0;
  for (int i = 0; i < conc; i++) {
    if (pthread_create(&th[i], &attr, client_conn, &res[i]) != 0) {
      snprintf(res[i].error, sizeof res[i].error, "pthread_create failed");
      break;
    }
    started++;
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  int failed = 0;
  unsigned long long sent = 0, received = 0;
  for (int i = 0; i < conc; i++) {
    if (!res[i].ok) failed++;
    sent += res[i].sent;
    received += res[i].received;
  }
  char errs[1200] = "", flocal[400] = "";
  size_t eo = 0, fo = 0;
  int shown = 0;
  for (int i = 0; i < conc && shown < 5; i++) {
    if (res[i].ok) continue;
    char e[200];
    json_str(e, sizeof e, res[i].error[0] ? res[i].error : "not started");
    eo += (size_t)snprintf(errs + eo, sizeof errs - eo, "%s%s", shown ? "," : "", e);
    fo += (size_t)snprintf(flocal + fo, sizeof flocal - fo, "%s\"%s\"", shown ? "," : "", res[i].local[0] ? res[i].local : "?");
    shown++;
  }
  struct cres *f = &res[0];
  emit("{\"ok\":%s,\"mode\":\"%s\",\"read\":\"%s\",\"half_close\":%s,\"connections\":%d,\"failed\":%d,\"bytes\":%llu,"
       "\"sent\":%llu,\"received\":%llu,\"local\":\"%s\",\"peer\":\"%s\",\"fionread_last\":%d,\"fionread_waits\":%llu,"
       "\"elapsed_ms\":%lld,\"errors\":[%s],\"failed_local\":[%s]}",
       failed == 0 ? "true" : "false", mode, rmode, c_half_close ? "true" : "false", conc, failed, c_bytes, sent,
       received, f->local[0] ? f->local : "?", f->peer[0] ? f->peer : "?", f->fionread_last, f->fionread_waits,
       (long long)(now_ms() - start), errs, flocal);
  return failed == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- getsockopt

static char probes[8192];
static size_t probes_len = 0;

static void probe_out(const char *name, int level, int optname, int buflen, int ret, int err, socklen_t optlen,
                      const unsigned char *buf, int with_sum) {
  char sum[16] = "null";
  if (with_sum && ret == 0) {
    uint32_t h = 2166136261u;
    size_t n = optlen < (socklen_t)buflen ? optlen : (socklen_t)buflen;
    for (size_t i = 0; i < n; i++) { h ^= buf[i]; h *= 16777619u; }
    snprintf(sum, sizeof sum, "\"%08x\"", h);
  }
  probes_len += (size_t)snprintf(probes + probes_len, sizeof probes - probes_len,
                                 "%s{\"name\":\"%s\",\"level\":%d,\"optname\":%d,\"buflen\":%d,\"ret\":%d,\"errno\":%d,"
                                 "\"optlen\":%u,\"sum\":%s}",
                                 probes_len ? "," : "", name, level, optname, buflen, ret, err, (unsigned)optlen, sum);
}

static void probe(int fd, const char *name, int level, int optname, unsigned char *buf, int buflen, int with_sum) {
  socklen_t len = (socklen_t)buflen;
  memset(buf, 0, (size_t)buflen);
  int ret = getsockopt(fd, level, optname, buf, &len);
  probe_out(name, level, optname, buflen, ret, ret == 0 ? 0 : errno, ret == 0 ? len : 0, buf, with_sum);
}

static int getsockopt_main(int argc, char **argv) {
  int buflen = 16384, insns = 1024;
  const char *connect_to = NULL;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (i + 1 >= argc) { fprintf(stderr, "mlpeer: %s needs a value\n", f); return 2; }
    const char *v = argv[++i];
    if (strcmp(f, "--connect") == 0) connect_to = v;
    else if (strcmp(f, "--buflen") == 0) buflen = (int)parse_num(v, f);
    else if (strcmp(f, "--filter-insns") == 0) insns = (int)parse_num(v, f);
    else { fprintf(stderr, "mlpeer: unknown getsockopt flag %s\n", f); return 2; }
  }
  if (buflen < 256 || buflen > (1 << 20) || insns < 1 || insns > BPF_MAXINSNS) {
    fprintf(stderr, "mlpeer: --buflen 256..1M, --filter-insns 1..%d\n", BPF_MAXINSNS);
    return 2;
  }
  unsigned char *buf = malloc((size_t)buflen + sizeof(struct ipt_get_entries));
  if (buf == NULL) return 1;
  struct sockaddr_storage dst;
  socklen_t dl = 0;
  int family = AF_INET;
  if (connect_to != NULL) {
    if (parse_hostport(connect_to, &dst, &dl) != 0) { fprintf(stderr, "mlpeer: bad --connect\n"); return 2; }
    family = dst.ss_family;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("mlpeer: socket"); return 1; }
  if (connect_to != NULL && connect_timeout(fd, (struct sockaddr *)&dst, dl, 5000) != 0) {
    fprintf(stderr, "mlpeer: connect %s: %s\n", connect_to, strerror(errno));
    return 1;
  }
  probe(fd, "TCP_INFO", IPPROTO_TCP, TCP_INFO, buf, buflen, 0);
  probe(fd, "SO_RCVBUF", SOL_SOCKET, SO_RCVBUF, buf, (int)sizeof(int), 1);
  probe(fd, "TCP_CONGESTION", IPPROTO_TCP, TCP_CONGESTION, buf, 64, 1);
  if (family == AF_INET6) probe(fd, "IP6T_SO_ORIGINAL_DST", SOL_IPV6, 80, buf, (int)sizeof(struct sockaddr_in6), 1);
  else probe(fd, "SO_ORIGINAL_DST", SOL_IP, SO_ORIGINAL_DST, buf, (int)sizeof(struct sockaddr_in), 1);

  // A classic BPF filter of `insns` instructions: SO_GET_FILTER replies with
  // insns * 8 bytes (8 KiB by default, more than a page), sized by the kernel. optlen counts
  // instructions, not bytes. `A += 0` becomes one eBPF instruction each, so the
  // filter the socket is charged for (~8 KiB) fits the 20 KiB net.core.optmem_max
  // kernels before 6.9 default to (a packet load becomes several: ENOMEM there).
  {
    struct sock_filter *prog = calloc((size_t)insns, sizeof *prog);
    if (prog == NULL) return 1;
    for (int k = 0; k < insns - 1; k++) prog[k] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 0);
    prog[insns - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
    struct sock_fprog fp = {.len = (unsigned short)insns, .filter = prog};
    int fs = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fs >= 0 && setsockopt(fs, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) == 0) {
      int cap = buflen / (int)sizeof(struct sock_filter);
      socklen_t len = (socklen_t)cap;
      memset(buf, 0, (size_t)buflen);
      int ret = getsockopt(fs, SOL_SOCKET, SO_GET_FILTER, buf, &len);
      int err = ret == 0 ? 0 : errno;
      probe_out("SO_GET_FILTER", SOL_SOCKET, SO_GET_FILTER, cap, ret, err, ret == 0 ? len : 0, buf, 0);
      if (ret == 0) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < (size_t)len * sizeof(struct sock_filter); i++) { h ^= buf[i]; h *= 16777619u; }
        probes_len--;  // replace the closing brace to add the byte sum
        probes_len += (size_t)snprintf(probes + probes_len, sizeof probes - probes_len, ",\"bytes_sum\":\"%08x\"}", h);
      }
    } else {
      probe_out("SO_GET_FILTER", SOL_SOCKET, SO_GET_FILTER, 0, -1, errno, 0, buf, 0);
    }
    if (fs >= 0) close(fs);
    free(prog);
  }

  // iptables' own reads: IPT_SO_GET_INFO then IPT_SO_GET_ENTRIES (its size
  // comes from the info reply; iptables reads ~15 KB on a busy table).
  {
    int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (raw < 0) {
      probe_out("IPT_SO_GET_INFO", SOL_IP, IPT_SO_GET_INFO, 0, -1, errno, 0, buf, 0);
    } else {
      struct ipt_getinfo info;
      memset(&info, 0, sizeof info);
      snprintf(info.name, sizeof info.name, "filter");
      socklen_t len = sizeof info;
      int ret = getsockopt(raw, SOL_IP, IPT_SO_GET_INFO, &info, &len);
      probe_out("IPT_SO_GET_INFO", SOL_IP, IPT_SO_GET_INFO, (int)sizeof info, ret, ret == 0 ? 0 : errno,
                ret == 0 ? len : 0, (unsigned char *)&info, 1);
      if (ret == 0 && info.size <= (unsigned)buflen) {
        struct ipt_get_entries *ge = (struct ipt_get_entries *)buf;
        memset(buf, 0, (size_t)buflen + sizeof *ge);
        snprintf(ge->name, sizeof ge->name, "filter");
        ge->size = info.size;
        socklen_t el = (socklen_t)(sizeof *ge + info.size);
        int r2 = getsockopt(raw, SOL_IP, IPT_SO_GET_ENTRIES, ge, &el);
        probe_out("IPT_SO_GET_ENTRIES", SOL_IP, IPT_SO_GET_ENTRIES, (int)(sizeof *ge + info.size), r2,
                  r2 == 0 ? 0 : errno, r2 == 0 ? el : 0, buf, 1);
      }
      close(raw);
    }
  }
  emit("{\"event\":\"getsockopt\",\"family\":%d,\"connected\":%s,\"probes\":[%s]}", family == AF_INET6 ? 6 : 4,
       connect_to ? "true" : "false", probes);
  close(fd);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: mlpeer server|client|getsockopt [flags]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "server") == 0) return server_main(argc - 2, argv + 2);
  if (strcmp(argv[1], "client") == 0) return client_main(argc - 2, argv + 2);
  if (strcmp(argv[1], "getsockopt") == 0 || strcmp(argv[1], "--getsockopt") == 0) return getsockopt_main(argc - 2, argv + 2);
  fprintf(stderr, "mlpeer: unknown mode %s\n", argv[1]);
  return 2;
}
