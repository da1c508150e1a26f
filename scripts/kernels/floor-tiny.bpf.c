// Two trivial cgroup programs named like meshlane's, for the read-back check in
// a guest (scripts/kernels/floor-check.ts): they load on every kernel of the
// matrix, so what is attached can be read back where the datapath itself does
// not load yet. They allow everything.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("cgroup/connect4") int ml_connect4(struct bpf_sock_addr *ctx) { return 1; }
SEC("cgroup/sendmsg4") int ml_sendmsg4(struct bpf_sock_addr *ctx) { return 1; }

char LICENSE[] SEC("license") = "GPL";
