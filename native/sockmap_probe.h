// The sockmap fault probe (src/bpf/sockmap-probe.ts): does this kernel keep
// the promises of a TCP socket once the socket sits in a sockhash with an
// sk_msg program, as meshlane's sockets do with the bypass on?
//
// Everything is its own and short-lived: a sockhash of 2 entries, a hand-
// assembled sk_msg program of 11 instructions attached to that map only (no
// cgroup, nothing pinned), one TCP connection on 127.0.0.1 (A connects, B is
// accepted). The program redirects a message to the socket stored under the
// sender's local port, with BPF_F_INGRESS, as meshlane's ml_redirect does;
// B is stored under A's port, A under key 0 (no sender has port 0), so
//   A -> B  is redirected: the bytes land in B's psock queue, never on TCP;
//   B -> A  finds no target and goes the normal TCP way, into the receive
//           queue of A, a socket that is in the sockhash.
// For each direction the probe asks what an application would: does an epoll
// registered before the send wake up, does poll() say readable, does FIONREAD
// report the bytes, does splice() move them (redirected direction), and does
// recv() get exactly the bytes sent. Every wait is bounded by timeout_ms, so a
// kernel with every fault costs about 7 x timeout_ms; a sound one a few ms.
// Closing the sockets takes them out of the map; closing the map and program
// fds frees both.
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <time.h>

#define PROBE_BYTES 1000

struct probe_dir {
  int epoll;     // an epoll registered before the send woke up for the receiver
  int poll;      // poll() said readable
  int fionread;  // the largest FIONREAD seen (want PROBE_BYTES)
  int splice;    // bytes splice() moved (-errno of the last failure when none); -1000: not tried
  int received;  // bytes read in the end (splice + recv)
  int intact;    // those bytes are the ones sent
  long long tcp_bytes; // tcpi_bytes_received growth on the receiver (0: nothing came the TCP way)
};

struct probe_result {
  const char *stage; // NULL: the probe ran; else the step that failed
  int err;
  char log[1024];    // the verifier's log when the program was refused
  struct probe_dir redirected, tcp;
  double ms;
};

static double probe_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long probe_bpf(int cmd, union bpf_attr *a) { return syscall(__NR_bpf, cmd, a, sizeof(*a)); }

#define PROBE_FAIL(r, name) do { (r)->stage = (name); (r)->err = errno; goto out; } while (0)

static long long probe_bytes_received(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  memset(&ti, 0, sizeof(ti));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return -1;
  if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received)) return -1;
  return (long long)ti.tcpi_bytes_received;
}

static int probe_fionread(int fd) {
  int n = 0;
  return ioctl(fd, FIONREAD, &n) < 0 ? -errno : n;
}

static void probe_pattern(unsigned char *buf, int len, unsigned char seed) {
  for (int i = 0; i < len; i++) buf[i] = (unsigned char)(seed + i * 7);
}

// One direction: `from` sends PROBE_BYTES, `to` is asked. `ep` has `to` registered (EPOLLIN | EPOLLET).
static int probe_direction(int from, int to, int ep, int try_splice, int timeout_ms, unsigned char seed, struct probe_dir *d) {
  unsigned char sent[PROBE_BYTES], got[PROBE_BYTES];
  probe_pattern(sent, PROBE_BYTES, seed);
  long long before = probe_bytes_received(to);
  d->splice = -1000;
  if (send(from, sent, PROBE_BYTES, MSG_NOSIGNAL) != PROBE_BYTES) return -1;

  struct epoll_event ev;
  d->epoll = epoll_wait(ep, &ev, 1, timeout_ms) == 1 && (ev.events & EPOLLIN);
  struct pollfd p = { .fd = to, .events = POLLIN };
  d->poll = poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
  // FIONREAD, as nginx, Java NIO and .NET size their reads: until it reports every byte, or the bound.
  double end = probe_now_ms() + timeout_ms;
  for (;;) {
    int n = probe_fionread(to);
    if (n > d->fionread) d->fionread = n;
    if (d->fionread >= PROBE_BYTES || probe_now_ms() > end) break;
    usleep(2000);
  }

  int have = 0;
  if (try_splice) {
    // splice() into a pipe, as Go's io.Copy between TCP sockets and splicing proxies read.
    int pipefd[2];
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) == 0) {
      end = probe_now_ms() + timeout_ms;
      int moved = 0, last = 0;
      while (moved < PROBE_BYTES && probe_now_ms() <= end) {
        ssize_t r = splice(to, NULL, pipefd[1], NULL, PROBE_BYTES - moved, SPLICE_F_NONBLOCK);
        if (r > 0) moved += (int)r;
        else if (r == 0) break; // EOF: never here, the peer is open
        else {
          last = -errno;
          if (errno != EAGAIN) break;
          usleep(2000);
        }
      }
      d->splice = moved > 0 ? moved : last;
      while (have < moved) {
        ssize_t r = read(pipefd[0], got + have, (size_t)(moved - have));
        if (r <= 0) break;
        have += (int)r;
      }
      close(pipefd[0]);
      close(pipefd[1]);
    } else {
      d->splice = -errno;
    }
  }
  // What is left, the plain way (the sockets are non-blocking; bounded).
  end = probe_now_ms() + timeout_ms;
  while (have < PROBE_BYTES && probe_now_ms() <= end) {
    ssize_t r = recv(to, got + have, (size_t)(PROBE_BYTES - have), 0);
    if (r > 0) have += (int)r;
    else if (r == 0) break;
    else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd q = { .fd = to, .events = POLLIN };
      poll(&q, 1, 5);
    } else break;
  }
  d->received = have;
  d->intact = have == PROBE_BYTES && memcmp(sent, got, PROBE_BYTES) == 0;
  long long after = probe_bytes_received(to);
  d->tcp_bytes = before < 0 || after < 0 ? -1 : after - before;
  return 0;
}

// The sk_msg program: key = msg->local_port; bpf_msg_redirect_hash(msg, map, &key, BPF_F_INGRESS); return SK_PASS.
static int probe_load_program(int map_fd, char *log, size_t log_size) {
  struct bpf_insn insns[] = {
    { .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = 6, .src_reg = 1 },                                 // r6 = ctx
    { .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = 2, .src_reg = 1, .off = offsetof(struct sk_msg_md, local_port) },
    { .code = BPF_STX | BPF_MEM | BPF_W, .dst_reg = 10, .src_reg = 2, .off = -4 },                      // key on the stack
    { .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = 1, .src_reg = 6 },                                 // r1 = ctx
    { .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 2, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map_fd },   // r2 = map
    { .code = 0 },
    { .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = 3, .src_reg = 10 },                                // r3 = &key
    { .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = 3, .imm = -4 },
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 4, .imm = BPF_F_INGRESS },                         // r4 = flags
    { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_msg_redirect_hash },
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = SK_PASS },
    { .code = BPF_JMP | BPF_EXIT },
  };
  static const char license[] = "GPL";
  union bpf_attr a;
  memset(&a, 0, sizeof(a));
  a.prog_type = BPF_PROG_TYPE_SK_MSG;
  a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
  a.insns = (uint64_t)(uintptr_t)insns;
  a.license = (uint64_t)(uintptr_t)license;
  a.log_level = 1;
  a.log_size = (uint32_t)log_size;
  a.log_buf = (uint64_t)(uintptr_t)log;
  memcpy(a.prog_name, "ml_probe_msg", sizeof("ml_probe_msg"));
  return (int)probe_bpf(BPF_PROG_LOAD, &a);
}

static int probe_map_put(int map_fd, uint32_t key, int sock) {
  union bpf_attr a;
  uint32_t value = (uint32_t)sock;
  memset(&a, 0, sizeof(a));
  a.map_fd = (uint32_t)map_fd;
  a.key = (uint64_t)(uintptr_t)&key;
  a.value = (uint64_t)(uintptr_t)&value;
  a.flags = BPF_ANY;
  return (int)probe_bpf(BPF_MAP_UPDATE_ELEM, &a);
}

static uint16_t probe_local_port(int fd) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return 0;
  return ntohs(sa.sin_port);
}

static void probe_run(int timeout_ms, struct probe_result *r) {
  int map_fd = -1, prog_fd = -1, lst = -1, a_fd = -1, b_fd = -1, ep_a = -1, ep_b = -1;
  double start = probe_now_ms();
  union bpf_attr attr;

  memset(&attr, 0, sizeof(attr));
  attr.map_type = BPF_MAP_TYPE_SOCKHASH;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 2;
  memcpy(attr.map_name, "ml_probe_sh", sizeof("ml_probe_sh"));
  map_fd = (int)probe_bpf(BPF_MAP_CREATE, &attr);
  if (map_fd < 0) PROBE_FAIL(r, "BPF_MAP_CREATE (sockhash)");

  prog_fd = probe_load_program(map_fd, r->log, sizeof(r->log));
  if (prog_fd < 0) PROBE_FAIL(r, "BPF_PROG_LOAD (sk_msg)");
  r->log[0] = '\0';

  memset(&attr, 0, sizeof(attr));
  attr.target_fd = (uint32_t)map_fd;
  attr.attach_bpf_fd = (uint32_t)prog_fd;
  attr.attach_type = BPF_SK_MSG_VERDICT;
  if (probe_bpf(BPF_PROG_ATTACH, &attr) < 0) PROBE_FAIL(r, "BPF_PROG_ATTACH (sk_msg verdict on the sockhash)");

  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof(sa);
  lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lst < 0) PROBE_FAIL(r, "socket");
  if (bind(lst, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lst, 1) < 0 || getsockname(lst, (struct sockaddr *)&sa, &len) < 0) PROBE_FAIL(r, "listen on 127.0.0.1");
  a_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (a_fd < 0) PROBE_FAIL(r, "socket");
  if (connect(a_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) PROBE_FAIL(r, "connect to 127.0.0.1");
  b_fd = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
  if (b_fd < 0) PROBE_FAIL(r, "accept");
  if (fcntl(a_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(b_fd, F_SETFL, O_NONBLOCK) < 0) PROBE_FAIL(r, "O_NONBLOCK");
  uint16_t pa = probe_local_port(a_fd);
  if (pa == 0) PROBE_FAIL(r, "getsockname");
  if (probe_map_put(map_fd, pa, b_fd) < 0) PROBE_FAIL(r, "BPF_MAP_UPDATE_ELEM (accepted socket)");
  if (probe_map_put(map_fd, 0, a_fd) < 0) PROBE_FAIL(r, "BPF_MAP_UPDATE_ELEM (connected socket)");

  struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
  ep_a = epoll_create1(EPOLL_CLOEXEC);
  ep_b = epoll_create1(EPOLL_CLOEXEC);
  if (ep_a < 0 || ep_b < 0) PROBE_FAIL(r, "epoll_create1");
  ev.data.fd = a_fd;
  if (epoll_ctl(ep_a, EPOLL_CTL_ADD, a_fd, &ev) < 0) PROBE_FAIL(r, "epoll_ctl");
  ev.data.fd = b_fd;
  if (epoll_ctl(ep_b, EPOLL_CTL_ADD, b_fd, &ev) < 0) PROBE_FAIL(r, "epoll_ctl");

  if (probe_direction(a_fd, b_fd, ep_b, 1, timeout_ms, 1, &r->redirected) < 0) PROBE_FAIL(r, "send (redirected)");
  if (probe_direction(b_fd, a_fd, ep_a, 0, timeout_ms, 2, &r->tcp) < 0) PROBE_FAIL(r, "send (TCP path)");
out:
  if (ep_a >= 0) close(ep_a);
  if (ep_b >= 0) close(ep_b);
  if (a_fd >= 0) close(a_fd);
  if (b_fd >= 0) close(b_fd);
  if (lst >= 0) close(lst);
  if (prog_fd >= 0) close(prog_fd);
  if (map_fd >= 0) close(map_fd);
  r->ms = probe_now_ms() - start;
}

static int probe_set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value x;
  return napi_create_double(env, v, &x) != napi_ok || napi_set_named_property(env, obj, name, x) != napi_ok ? -1 : 0;
}

static int probe_set_str(napi_env env, napi_value obj, const char *name, const char *s) {
  napi_value x;
  return napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &x) != napi_ok || napi_set_named_property(env, obj, name, x) != napi_ok ? -1 : 0;
}

static napi_value probe_dir_object(napi_env env, const struct probe_dir *d) {
  napi_value o;
  if (napi_create_object(env, &o) != napi_ok) return NULL;
  if (probe_set_num(env, o, "epoll", d->epoll) || probe_set_num(env, o, "poll", d->poll) || probe_set_num(env, o, "fionread", d->fionread) ||
      probe_set_num(env, o, "splice", d->splice) || probe_set_num(env, o, "received", d->received) || probe_set_num(env, o, "intact", d->intact) ||
      probe_set_num(env, o, "tcpBytes", (double)d->tcp_bytes))
    return NULL;
  return o;
}

// sockmapProbe(timeoutMs) -> { stage, errno, log, bytes, redirected: {...}, tcp: {...}, ms }
static napi_value js_sockmap_probe(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, x;
  int32_t timeout_ms;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &timeout_ms) || timeout_ms < 1 || timeout_ms > 5000) return fail(env, "sockmapProbe(timeoutMs 1..5000)");
  struct probe_result r;
  memset(&r, 0, sizeof(r));
  probe_run(timeout_ms, &r);
  CHECK(napi_create_object(env, &out));
  if (probe_set_str(env, out, "stage", r.stage ? r.stage : "") || probe_set_num(env, out, "errno", r.err) || probe_set_str(env, out, "log", r.log) ||
      probe_set_num(env, out, "bytes", PROBE_BYTES) || probe_set_num(env, out, "ms", r.ms))
    return NULL;
  if (!r.stage) {
    if (!(x = probe_dir_object(env, &r.redirected)) || napi_set_named_property(env, out, "redirected", x) != napi_ok) return NULL;
    if (!(x = probe_dir_object(env, &r.tcp)) || napi_set_named_property(env, out, "tcp", x) != napi_ok) return NULL;
  }
  return out;
}
