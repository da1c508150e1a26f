// Shared helpers of the test programs in testing/tools: address parsing and
// formatting, one-line JSON output that many threads can share, clocks.
#ifndef MESHLANE_TEST_TOOLS_COMMON_H
#define MESHLANE_TEST_TOOLS_COMMON_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// netfilter's original-destination options (linux/netfilter_ipv4.h, ip6_tables.h).
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define TOOL_FN static __attribute__((unused))

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

// Print one line on stdout (a JSON object, built by the caller) and flush.
__attribute__((format(printf, 1, 2))) TOOL_FN void emit(const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&out_lock);
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
}

TOOL_FN int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// "1.2.3.4:80" or "[::1]:80"; "?" when unknown. out must hold 64 bytes.
TOOL_FN void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN];
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    snprintf(out, len, "?");
  }
}

TOOL_FN void local_addr(int fd, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) ss.ss_family = AF_UNSPEC;
  fmt_addr(&ss, out, len);
}

TOOL_FN void peer_addr(int fd, char *out, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) ss.ss_family = AF_UNSPEC;
  fmt_addr(&ss, out, len);
}

// Parse an IP (no port) into ss with the given port. Returns 0 or -1.
TOOL_FN int parse_ip(const char *ip, unsigned port, struct sockaddr_storage *ss, socklen_t *sl) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *sl = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *sl = sizeof *a6;
    return 0;
  }
  return -1;
}

// Parse "1.2.3.4:80" or "[::1]:80". Returns 0 or -1.
TOOL_FN int parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *sl) {
  char host[INET6_ADDRSTRLEN + 2];
  const char *colon;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return -1;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
  }
  char *e = NULL;
  unsigned long port = strtoul(colon + 1, &e, 10);
  if (e == colon + 1 || *e != '\0' || port > 65535) return -1;
  return parse_ip(host, (unsigned)port, ss, sl);
}

TOOL_FN long long parse_num(const char *s, const char *flag) {
  char *e = NULL;
  errno = 0;
  long long v = strtoll(s, &e, 10);
  if (errno != 0 || e == s || *e != '\0' || v < 0) {
    fprintf(stderr, "bad value for %s: '%s'\n", flag, s);
    exit(2);
  }
  return v;
}

TOOL_FN int set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

// Non-blocking connect bounded by timeout_ms; the socket is left non-blocking.
// Returns 0, or -1 with errno set (ETIMEDOUT on timeout).
TOOL_FN int connect_timeout(int fd, const struct sockaddr *sa, socklen_t sl, int timeout_ms) {
  if (set_nonblock(fd, 1) != 0) return -1;
  if (connect(fd, sa, sl) == 0) return 0;
  if (errno != EINPROGRESS) return -1;
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r == 0) { errno = ETIMEDOUT; return -1; }
  if (r < 0) return -1;
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) return -1;
  if (err != 0) { errno = err; return -1; }
  return 0;
}

// A socket bound to ip:port (TCP listening, backlog 1024, or UDP), SO_REUSEADDR,
// IPV6_V6ONLY for an IPv6 address. Exits with a message naming `tool` on failure.
TOOL_FN int bound_socket(const char *tool, const char *ip, int port, int type) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (parse_ip(ip, (unsigned)port, &ss, &sl) != 0) { fprintf(stderr, "%s: bad address %s\n", tool, ip); exit(2); }
  int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) { fprintf(stderr, "%s: socket: %s\n", tool, strerror(errno)); exit(1); }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) { fprintf(stderr, "%s: bind %s port %d: %s\n", tool, ip, port, strerror(errno)); exit(1); }
  if (type == SOCK_STREAM && listen(fd, 1024) != 0) { fprintf(stderr, "%s: listen: %s\n", tool, strerror(errno)); exit(1); }
  return fd;
}

// The deterministic test pattern: byte at stream offset i.
TOOL_FN inline unsigned char pattern_byte(uint64_t i) { return (unsigned char)(i % 251); }

// Minimal JSON string escaping for error texts (ASCII only in practice).
TOOL_FN void json_str(char *out, size_t len, const char *s) {
  size_t o = 0;
  if (len < 3) { if (len) out[0] = '\0'; return; }
  out[o++] = '"';
  for (; *s != '\0' && o + 3 < len; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c < 0x20) out[o++] = ' ';
    else out[o++] = (char)c;
  }
  out[o++] = '"';
  out[o] = '\0';
}

// Start fn(arg) on a detached thread with a small stack. 0 on success.
TOOL_FN int start_detached(void *(*fn)(void *), void *arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t th;
  int rc = pthread_create(&th, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return rc;
}

// Accept on the n listening sockets in p until lifetime_ms is over (0: forever).
// Each accepted socket goes to on_accept(fd, index of its listener, arg).
// Returns 0 at the end of the lifetime, 1 when poll fails (`tool` names the error).
TOOL_FN int accept_loop(struct pollfd *p, int n, int64_t lifetime_ms, const char *tool,
                        void (*on_accept)(int fd, int listener, void *arg), void *arg) {
  int64_t end = lifetime_ms > 0 ? now_ms() + lifetime_ms : INT64_MAX;
  for (;;) {
    int64_t left = end - now_ms();
    if (left <= 0) return 0;
    for (int i = 0; i < n; i++) { p[i].events = POLLIN; p[i].revents = 0; }
    int r = poll(p, (nfds_t)n, left > 1000 ? 1000 : (int)left);
    if (r < 0 && errno != EINTR) { fprintf(stderr, "%s: poll: %s\n", tool, strerror(errno)); return 1; }
    for (int i = 0; r > 0 && i < n; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      for (int k = 0; k < 256; k++) {
        int fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) break;
        on_accept(fd, i, arg);
      }
    }
  }
}

#endif
