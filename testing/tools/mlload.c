// mlload: an open-loop HTTP/1.1 load generator for the benchmarks. Requests
// are due at a fixed rate (request k at start + k / rate), spread round-robin
// over C keep-alive connections (request k on connection k % C). A request
// whose connection is still busy with the previous one is sent as soon as that
// one completes, and its latency is still measured from the time it was due:
// a stall shows up in every request it delayed (no coordinated omission, as
// wrk2 and fortio do it). Requests due before the end are sent and measured
// even when that takes past the end; after the timeout the rest count as
// unsent. One JSON line at the end; exit 1 when any request failed, timed out
// or was never sent (the rate was not sustained: its latency is unknown).
//
//   mlload --connect IP:PORT [--path /] [--host h] --rate R --connections C
//          --duration-ms D [--warmup-ms W] [--timeout-ms T]
//
// Requests due in the first W ms are sent but not measured. After D ms no new
// request is due; those in flight get T ms (default 5000) to finish.
#include "common.h"
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#define MAX_CONNS 1024
#define RBUF 65536

struct conn {
  int fd;
  int busy;
  uint64_t next;       // index of this connection's next request (k = conn + m * C)
  int64_t due_ns;      // due time of the request in flight
  int64_t sent_ns;     // when it was actually written
  size_t got;          // bytes of the response read so far
  size_t want;         // header + body length, 0 until the header is complete
  char buf[RBUF];
};

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  emit("{\"event\":\"error\",\"what\":\"%s\",\"errno\":%d,\"message\":\"%s\"}", what, errno, strerror(errno));
  exit(2);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

// Nearest-rank percentile of a sorted array, in µs (-1 when empty).
static double pct_us(const int64_t *v, size_t n, double p) {
  if (n == 0) return -1;
  size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)v[rank - 1] / 1000.0;
}

struct samples {
  int64_t *v;
  size_t n, cap;
};

static void push(struct samples *s, int64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("realloc");
  }
  s->v[s->n++] = x;
}

// The response is complete when the header and Content-Length bytes are in.
// Returns 1 complete, 0 more needed, -1 malformed or not a 2xx.
static int parse_response(struct conn *c) {
  if (c->want == 0) {
    char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
    if (!end) return c->got >= RBUF ? -1 : 0;
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (c->got < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0 || c->buf[9] != '2') return -1;
    long clen = -1;
    for (char *p = c->buf; p < end; p++) {
      if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
        clen = strtol(p + 15, NULL, 10);
        break;
      }
    }
    if (clen < 0 || hlen + (size_t)clen > RBUF) return -1;
    c->want = hlen + (size_t)clen;
  }
  if (c->got > c->want) return -1;  // bytes we did not ask for: no pipelining here
  return c->got == c->want;
}

int main(int argc, char **argv) {
  const char *connect_to = NULL, *path = "/", *host = NULL;
  double rate = 0;
  int nconn = 0;
  int64_t duration_ms = 0, warmup_ms = 0, timeout_ms = 5000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "mlload: %s needs a value\n", a);
      return 2;
    }
    if (!strcmp(a, "--connect")) connect_to = v;
    else if (!strcmp(a, "--path")) path = v;
    else if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--rate")) rate = atof(v);
    else if (!strcmp(a, "--connections")) nconn = atoi(v);
    else if (!strcmp(a, "--duration-ms")) duration_ms = atoll(v);
    else if (!strcmp(a, "--warmup-ms")) warmup_ms = atoll(v);
    else if (!strcmp(a, "--timeout-ms")) timeout_ms = atoll(v);
    else {
      fprintf(stderr, "mlload: unknown option %s\n", a);
      return 2;
    }
    i++;
  }
  if (!connect_to || rate <= 0 || nconn < 1 || nconn > MAX_CONNS || duration_ms <= 0 || warmup_ms < 0) {
    fprintf(stderr, "usage: mlload --connect IP:PORT --rate R --connections C (1..%d) --duration-ms D [--warmup-ms W] [--path P] [--host H] [--timeout-ms T]\n", MAX_CONNS);
    return 2;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_hostport(connect_to, &ss, &sl) != 0) {
    fprintf(stderr, "mlload: bad address %s\n", connect_to);
    return 2;
  }
  char req[512];
  int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host ? host : connect_to);
  if (reqlen <= 0 || (size_t)reqlen >= sizeof req) {
    fprintf(stderr, "mlload: path or host too long\n");
    return 2;
  }

  struct conn *cs = calloc((size_t)nconn, sizeof *cs);
  if (!cs) die("calloc");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep < 0 || tfd < 0) die("epoll/timerfd");
  struct epoll_event tev = {.events = EPOLLIN, .data.u64 = (uint64_t)nconn};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) != 0) die("epoll_ctl");

  struct samples conn_ns = {0};
  for (int i = 0; i < nconn; i++) {
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int64_t t0 = mono_ns();
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) die("connect");
    push(&conn_ns, mono_ns() - t0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    cs[i].fd = fd;
    cs[i].next = (uint64_t)i;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  }

  const double interval = 1e9 / rate;
  const int64_t start = mono_ns() + 1000000;  // 1 ms to settle
  const int64_t measure_from = start + warmup_ms * 1000000LL;
  const int64_t end = measure_from + duration_ms * 1000000LL;
  struct samples lat = {0}, svc = {0};
  uint64_t sent = 0, completed = 0, errors = 0, late = 0, measured_sent = 0;
  int64_t deadline = end + timeout_ms * 1000000LL;
#define DUE(k) (start + (int64_t)((double)(k) * interval))

  for (;;) {
    int64_t now = mono_ns();
    int inflight = 0;
    int64_t next_due = INT64_MAX;
    for (int i = 0; i < nconn; i++) {
      struct conn *c = &cs[i];
      if (c->fd < 0) continue;
      if (!c->busy) {
        int64_t due = DUE(c->next);
        if (due >= end) continue;
        if (due <= now) {  // after the end too: a request due before it is still sent, and measured
          ssize_t w = send(c->fd, req, (size_t)reqlen, MSG_NOSIGNAL);
          if (w != reqlen) {  // a 100-byte request on an idle socket goes in one piece
            errors++;
            close(c->fd);
            c->fd = -1;
            continue;
          }
          c->busy = 1;
          c->due_ns = due;
          c->sent_ns = now;
          c->got = c->want = 0;
          sent++;
          if (due >= measure_from) measured_sent++;
          if (now - due > 1000000) late++;
        } else if (due < next_due) {
          next_due = due;
        }
      }
      if (c->busy) inflight++;
    }
    if (now >= end && inflight == 0) break;
    if (now >= deadline) break;
    struct itimerspec its = {0};
    int64_t wake = next_due != INT64_MAX ? next_due : now < end ? end : deadline;
    its.it_value.tv_sec = wake / 1000000000LL;
    its.it_value.tv_nsec = wake % 1000000000LL;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int e = 0; e < n; e++) {
      uint64_t id = evs[e].data.u64;
      if (id == (uint64_t)nconn) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN) die("timerfd read");
        continue;
      }
      struct conn *c = &cs[id];
      if (c->fd < 0) continue;
      for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->got, RBUF - c->got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {  // closed or failed: the request in flight (if any) failed
          if (c->busy) errors++;
          close(c->fd);
          c->fd = -1;
          break;
        }
        if (!c->busy) {  // bytes nobody asked for
          errors++;
          close(c->fd);
          c->fd = -1;
          break;
        }
        c->got += (size_t)r;
        int done = parse_response(c);
        if (done < 0) {
          errors++;
          close(c->fd);
          c->fd = -1;
          break;
        }
        if (done == 1) {
          int64_t t = mono_ns();
          completed++;
          if (c->due_ns >= measure_from) {
            push(&lat, t - c->due_ns);
            push(&svc, t - c->sent_ns);
          }
          c->busy = 0;
          c->next += (uint64_t)nconn;
          break;
        }
      }
    }
  }
  int64_t finished = mono_ns();
  uint64_t timeouts = 0, unsent = 0;
  for (int i = 0; i < nconn; i++) {
    struct conn *c = &cs[i];
    if (c->fd >= 0 && c->busy) timeouts++;
    if (c->fd >= 0) close(c->fd);
    // Requests due before the end that were never sent (the drain timed out, or the connection failed).
    for (uint64_t k = c->next + (c->busy ? (uint64_t)nconn : 0); DUE(k) < end; k += (uint64_t)nconn) unsent++;
  }
  qsort(lat.v, lat.n, sizeof *lat.v, cmp_i64);
  qsort(svc.v, svc.n, sizeof *svc.v, cmp_i64);
  qsort(conn_ns.v, conn_ns.n, sizeof *conn_ns.v, cmp_i64);
  double sum = 0;
  for (size_t i = 0; i < lat.n; i++) sum += (double)lat.v[i];
  double measured_s = (double)(end - measure_from) / 1e9;
  emit("{\"event\":\"done\",\"rate\":%.1f,\"connections\":%d,\"duration_ms\":%lld,\"warmup_ms\":%lld,"
       "\"sent\":%llu,\"completed\":%llu,\"measured\":%zu,\"measured_sent\":%llu,\"errors\":%llu,\"timeouts\":%llu,\"unsent\":%llu,\"late_sends\":%llu,"
       "\"achieved_rps\":%.1f,\"drain_ms\":%.1f,"
       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
       "\"svc_p50_us\":%.1f,\"svc_p99_us\":%.1f,\"connect_p50_us\":%.1f,\"connect_max_us\":%.1f}",
       rate, nconn, (long long)duration_ms, (long long)warmup_ms, (unsigned long long)sent, (unsigned long long)completed, lat.n,
       (unsigned long long)measured_sent, (unsigned long long)errors, (unsigned long long)timeouts, (unsigned long long)unsent, (unsigned long long)late,
       (double)lat.n / measured_s, (double)(finished > end ? finished - end : 0) / 1e6,
       pct_us(lat.v, lat.n, 50), pct_us(lat.v, lat.n, 90), pct_us(lat.v, lat.n, 99), pct_us(lat.v, lat.n, 99.9),
       lat.n ? (double)lat.v[lat.n - 1] / 1000.0 : -1, lat.n ? sum / (double)lat.n / 1000.0 : -1, pct_us(svc.v, svc.n, 50),
       pct_us(svc.v, svc.n, 99), pct_us(conn_ns.v, conn_ns.n, 50), conn_ns.n ? (double)conn_ns.v[conn_ns.n - 1] / 1000.0 : -1);
  return errors > 0 || timeouts > 0 || unsent > 0 ? 1 : 0;
}
