// meshlane's native module: the few syscalls the CNI plugin makes itself, so
// that no process (bpftool, tc, ip, nsenter) runs on the pod path.
// N-API only (no V8 or libuv headers), libc only. Every call returns the
// syscall's result, or -errno on failure; src/sys/native.ts names the errno.
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)

static napi_value num(napi_env env, int64_t v) {
  napi_value out;
  if (napi_create_int64(env, v, &out) != napi_ok) return NULL;
  return out;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -1;
  return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length, offset;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok || type != napi_uint8_array) return -1;
    *len = length;
    return 0;
  }
  return -1;
}

// (int, Uint8Array): the arguments of bpf, send and recv.
static int int_and_bytes(napi_env env, napi_callback_info info, int32_t *n, void **data, size_t *len) {
  napi_value argv[2];
  return args(env, info, 2, argv) || get_i32(env, argv[0], n) || get_bytes(env, argv[1], data, len) ? -1 : 0;
}

// bpf(cmd, attr): attr is copied into a zeroed union bpf_attr, so its unused
// tail is always zero (the kernel refuses stale bytes there).
static napi_value js_bpf(napi_env env, napi_callback_info info) {
  int32_t cmd;
  void *data;
  size_t len;
  if (int_and_bytes(env, info, &cmd, &data, &len)) return fail(env, "bpf(cmd, Uint8Array attr)");
  union bpf_attr attr;
  if (len > sizeof(attr)) return fail(env, "bpf: attr larger than union bpf_attr");
  memset(&attr, 0, sizeof(attr));
  memcpy(&attr, data, len);
  long r = syscall(__NR_bpf, cmd, &attr, sizeof(attr));
  int err = r < 0 ? errno : 0;
  // Commands answer in attr too (OBJ_GET_INFO_BY_FD: info_len; the batch commands: count, also with ENOENT).
  memcpy(data, &attr, len);
  return num(env, err ? -err : r);
}

// addressOf(bytes): where a Uint8Array's bytes are, for the pointer fields of bpf_attr.
// The caller keeps the array referenced for as long as the kernel may use the address.
static napi_value js_address_of(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  void *data;
  size_t len;
  if (args(env, info, 1, argv) || get_bytes(env, argv[0], &data, &len)) return fail(env, "addressOf(Uint8Array)");
  CHECK(napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)data, &out));
  return out;
}

// raiseMemlock(): RLIMIT_MEMLOCK to infinity, as libbpf and bpftool do. Before
// Linux 5.11 BPF maps and programs are charged to the user's locked memory,
// checked against the creating process's limit: once the datapath's maps exist
// (created by bpftool for root), any further map or program made by a process
// with the default limit fails with EPERM. 0, or -errno.
static napi_value js_raise_memlock(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };
  return num(env, setrlimit(RLIMIT_MEMLOCK, &r) < 0 ? -errno : 0);
}

// setns(fd, nstype) on the calling (main) thread.
static napi_value js_setns(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, type;
  if (args(env, info, 2, argv) || get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &type)) return fail(env, "setns(fd, nstype)");
  return num(env, setns(fd, type) < 0 ? -errno : 0);
}

static napi_value js_if_nametoindex(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IF_NAMESIZE + 1];
  size_t len;
  if (args(env, info, 1, argv) || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len) != napi_ok) return fail(env, "ifNameToIndex(name)");
  if (len >= IF_NAMESIZE) return num(env, -ENODEV);
  unsigned idx = if_nametoindex(name);
  return num(env, idx == 0 ? -errno : (int64_t)idx);
}

// netlinkSocket(protocol): a blocking netlink socket with a receive timeout (no call hangs for good).
static napi_value js_netlink_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t proto;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &proto)) return fail(env, "netlinkSocket(protocol)");
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return num(env, -errno);
  struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  return num(env, fd);
}

// send(fd, bytes) and recv(fd, bytes) on a netlink socket.
static napi_value io(napi_env env, napi_callback_info info, int receive) {
  int32_t fd;
  void *data;
  size_t len;
  if (int_and_bytes(env, info, &fd, &data, &len)) return fail(env, receive ? "recv(fd, Uint8Array)" : "send(fd, Uint8Array)");
  ssize_t r;
  do r = receive ? recv(fd, data, len, 0) : send(fd, data, len, 0); while (r < 0 && errno == EINTR);
  return num(env, r < 0 ? -errno : r);
}

static napi_value js_send(napi_env env, napi_callback_info info) { return io(env, info, 0); }
static napi_value js_recv(napi_env env, napi_callback_info info) { return io(env, info, 1); }

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (args(env, info, 1, argv) || get_i32(env, argv[0], &fd)) return fail(env, "close(fd)");
  return num(env, close(fd) < 0 ? -errno : 0);
}

// rawGetsockopt(family, level, optname, bytes): getsockopt on a raw socket of
// `family` opened for the call, in the calling thread's netns (legacy
// iptables' IPT_SO_GET_INFO / IPT_SO_GET_ENTRIES: read-only). `bytes` carries
// the request in and the answer out. The answer's length, or -errno.
static napi_value js_raw_getsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t family, level, optname;
  void *data;
  size_t len;
  if (args(env, info, 4, argv) || get_i32(env, argv[0], &family) || get_i32(env, argv[1], &level) || get_i32(env, argv[2], &optname) ||
      get_bytes(env, argv[3], &data, &len))
    return fail(env, "rawGetsockopt(family, level, optname, Uint8Array)");
  int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return num(env, -errno);
  socklen_t optlen = (socklen_t)len;
  int r = getsockopt(fd, level, optname, data, &optlen);
  int err = r < 0 ? errno : 0;
  close(fd);
  return num(env, err ? -err : (int64_t)optlen);
}

#include "sockmap_probe.h"

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = {
    { "bpf", js_bpf }, { "addressOf", js_address_of }, { "setns", js_setns },
    { "ifNameToIndex", js_if_nametoindex }, { "netlinkSocket", js_netlink_socket },
    { "raiseMemlock", js_raise_memlock }, { "send", js_send }, { "recv", js_recv }, { "close", js_close },
    { "sockmapProbe", js_sockmap_probe }, { "rawGetsockopt", js_raw_getsockopt },
  };
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    napi_value f;
    CHECK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f));
    CHECK(napi_set_named_property(env, exports, fns[i].name, f));
  }
  napi_value v;
  CHECK(napi_create_int32(env, (int32_t)sizeof(union bpf_attr), &v));
  CHECK(napi_set_named_property(env, exports, "bpfAttrSize", v));
  CHECK(napi_create_int32(env, 3, &v));
  CHECK(napi_set_named_property(env, exports, "abi", v));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
