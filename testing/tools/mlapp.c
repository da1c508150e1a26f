// mlapp: a long-running app that opens a new TCP connection to one address
// every interval, from the same process: so a test can watch what happens to
// a process that started before its pod was registered.
//
// mlapp --connect IP:PORT|[IP6]:PORT [--interval-ms N (200)] [--count K (100)] [--timeout-ms T (2000)]
//   one line per attempt:
//     {"seq":i,"ok":bool,"local":"ip:port","peer":"ip:port","errno":E}
//   each connection sends "ping\n" and reads until EOF or the timeout; then closes.
//   exit 0 after K attempts, 2 on bad usage.
#include "common.h"

int main(int argc, char **argv) {
  const char *connect_to = NULL;
  long interval = 200, count = 100, timeout_ms = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *f = argv[i], *v = argv[i + 1];
    if (strcmp(f, "--connect") == 0) connect_to = v;
    else if (strcmp(f, "--interval-ms") == 0) interval = strtol(v, NULL, 10);
    else if (strcmp(f, "--count") == 0) count = strtol(v, NULL, 10);
    else if (strcmp(f, "--timeout-ms") == 0) timeout_ms = strtol(v, NULL, 10);
    else { fprintf(stderr, "mlapp: unknown flag %s\n", f); return 2; }
  }
  struct sockaddr_storage dst;
  socklen_t dst_len;
  if (connect_to == NULL || parse_hostport(connect_to, &dst, &dst_len) != 0 || interval < 1 || count < 1 || count > 100000 || timeout_ms < 1) {
    fprintf(stderr, "mlapp: --connect IP:PORT [--interval-ms N>0] [--count 1..100000] [--timeout-ms T>0]\n");
    return 2;
  }
  for (long seq = 0; seq < count; seq++) {
    int64_t start = now_ms();
    char local[64] = "?", peer[64] = "?";
    int ok = 0, err = 0;
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) err = errno;
    else if (connect(fd, (struct sockaddr *)&dst, dst_len) != 0) err = errno;
    else {
      local_addr(fd, local, sizeof local);
      peer_addr(fd, peer, sizeof peer);
      struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (write(fd, "ping\n", 5) == 5) {
        shutdown(fd, SHUT_WR);
        char buf[256];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
        }
        if (n == 0) ok = 1;
        else err = errno;
      } else {
        err = errno;
      }
    }
    if (fd >= 0) close(fd);
    emit("{\"seq\":%ld,\"ok\":%s,\"local\":\"%s\",\"peer\":\"%s\",\"errno\":%d}", seq, ok ? "true" : "false", local, peer, err);
    int64_t left = interval - (now_ms() - start);
    if (left > 0 && seq + 1 < count) usleep((useconds_t)left * 1000);
  }
  return 0;
}
