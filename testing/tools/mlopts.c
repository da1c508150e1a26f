// mlopts: a TCP echo client whose packets carry IP options or IPv6 extension
// headers, for the datapath's header parsing (IPv4 ihl > 5, IPv6 hop-by-hop and
// destination options headers).
//
// mlopts --connect IP:PORT|[IP6]:PORT [--bytes N (10000)] [--timeout-ms T (10000)]
//        [--ip-options] (IPv4: 4 bytes of NOP, NOP, NOP, EOL on every segment)
//        [--dstopts]    (IPv6: an 8-byte destination options header, PadN)
//        [--hopopts]    (IPv6: an 8-byte hop-by-hop options header, PadN)
//   sends N bytes of the pattern, half-closes, reads the echo until EOF and
//   checks it (server: mlpeer server in echo mode); prints one line:
//     {"ok":bool,"sent":S,"received":R,"local":"ip:port","peer":"ip:port","error":null|"..."}
//   exit 0 when every byte came back intact, 1 otherwise, 2 on bad usage.
#include "common.h"
#include <netinet/ip.h>

int main(int argc, char **argv) {
  const char *target = NULL;
  long long bytes = 10000, timeout_ms = 10000;
  int ipopts = 0, dstopts = 0, hopopts = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--connect") && i + 1 < argc) target = argv[++i];
    else if (!strcmp(argv[i], "--bytes") && i + 1 < argc) bytes = parse_num(argv[++i], "--bytes");
    else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) timeout_ms = parse_num(argv[++i], "--timeout-ms");
    else if (!strcmp(argv[i], "--ip-options")) ipopts = 1;
    else if (!strcmp(argv[i], "--dstopts")) dstopts = 1;
    else if (!strcmp(argv[i], "--hopopts")) hopopts = 1;
    else {
      fprintf(stderr, "usage: mlopts --connect IP:PORT [--bytes N] [--timeout-ms T] [--ip-options] [--dstopts] [--hopopts]\n");
      return 2;
    }
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (target == NULL || parse_hostport(target, &ss, &sl) != 0) {
    fprintf(stderr, "mlopts: bad or missing --connect\n");
    return 2;
  }
  char err[256] = "";
  long long sent = 0, received = 0;
  char local[64] = "", peer[64] = "";
  int fd = socket(ss.ss_family, SOCK_STREAM, 0);
  if (fd < 0) { snprintf(err, sizeof err, "socket: %s", strerror(errno)); goto out; }
  if (ipopts) {
    unsigned char o[4] = {IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END};
    if (setsockopt(fd, IPPROTO_IP, IP_OPTIONS, o, sizeof o) != 0) { snprintf(err, sizeof err, "IP_OPTIONS: %s", strerror(errno)); goto out; }
  }
  // An 8-byte extension header: next header and length are filled by the kernel; PadN of 4 zero bytes.
  unsigned char ext[8] = {0, 0, 1, 4, 0, 0, 0, 0};
  if (dstopts && setsockopt(fd, IPPROTO_IPV6, IPV6_DSTOPTS, ext, sizeof ext) != 0) { snprintf(err, sizeof err, "IPV6_DSTOPTS: %s", strerror(errno)); goto out; }
  if (hopopts && setsockopt(fd, IPPROTO_IPV6, IPV6_HOPOPTS, ext, sizeof ext) != 0) { snprintf(err, sizeof err, "IPV6_HOPOPTS: %s", strerror(errno)); goto out; }
  int64_t deadline = now_ms() + timeout_ms;
  if (connect_timeout(fd, (struct sockaddr *)&ss, sl, (int)timeout_ms) != 0) { snprintf(err, sizeof err, "connect: %s", strerror(errno)); goto out; }
  local_addr(fd, local, sizeof local);
  peer_addr(fd, peer, sizeof peer);
  int wr_done = 0;
  unsigned char buf[16384];
  for (;;) {
    if (!wr_done && sent == bytes) { shutdown(fd, SHUT_WR); wr_done = 1; }
    struct pollfd p = {.fd = fd, .events = POLLIN | (wr_done ? 0 : POLLOUT)};
    int64_t left = deadline - now_ms();
    if (left <= 0) { snprintf(err, sizeof err, "timeout after %lld of %lld bytes back", received, bytes); break; }
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { snprintf(err, sizeof err, "poll: %s", strerror(errno)); break; }
    if (!wr_done && (p.revents & POLLOUT)) {
      size_t n = (size_t)(bytes - sent) < sizeof buf ? (size_t)(bytes - sent) : sizeof buf;
      for (size_t k = 0; k < n; k++) buf[k] = pattern_byte((uint64_t)sent + k);
      ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) { snprintf(err, sizeof err, "send: %s", strerror(errno)); break; }
      if (w > 0) sent += w;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EAGAIN) continue;
      if (n < 0) { snprintf(err, sizeof err, "recv: %s", strerror(errno)); break; }
      if (n == 0) {
        if (received != bytes) snprintf(err, sizeof err, "EOF after %lld of %lld bytes", received, bytes);
        break;
      }
      for (ssize_t k = 0; k < n; k++) {
        if (buf[k] != pattern_byte((uint64_t)received + (uint64_t)k)) {
          snprintf(err, sizeof err, "byte %lld differs", received + k);
          break;
        }
      }
      if (err[0]) break;
      received += n;
    }
  }
out:;
  char e[300];
  json_str(e, sizeof e, err);
  printf("{\"ok\":%s,\"sent\":%lld,\"received\":%lld,\"local\":\"%s\",\"peer\":\"%s\",\"error\":%s}\n",
         err[0] ? "false" : "true", sent, received, local, peer, err[0] ? e : "null");
  return err[0] ? 1 : 0;
}
