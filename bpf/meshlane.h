/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * meshlane: the one contract between the eBPF programs and user space.
 *
 * Every map, every struct stored in a map, every constant, flag and counter
 * id is defined here exactly once. src/bpf/ mirrors these layouts; a test
 * checks the mirror against the BTF in dist/bpf/meshlane.o.
 *
 * ABI rules (the maps are pinned and outlive upgrades of the programs):
 *   - every struct has a fixed layout: fixed-width types only, explicit
 *     padding named pad* / reserved*, no implicit padding (checked below
 *     with _Static_assert on sizes and offsets);
 *   - reserved fields are written as zero and ignored by the programs;
 *     a retired field becomes reservedN, it is never removed or reused
 *     with another meaning;
 *   - capacities (max_entries) never shrink; a change of key/value size or
 *     capacity makes a pinned map incompatible (the loader must then
 *     migrate it explicitly).
 *
 * Byte order, once for all:
 *   - IP addresses: always 16 bytes in network byte order; an IPv4 address
 *     is stored IPv4-mapped, ::ffff:a.b.c.d (bytes 0..9 zero, bytes 10..11
 *     0xff, bytes 12..15 the IPv4 address);
 *   - ports written by user space (config and settings): HOST byte order;
 *   - ports taken from the kernel (ml_tuple, ml_orig_dst): NETWORK byte
 *     order (type __be16);
 *   - all other integers: host byte order (little endian on x86_64).
 *
 * The file is also valid C for a user-space compiler (only the map
 * definitions are limited to the BPF target), so a probe can check
 * sizeof/offsetof from the host side.
 */
#ifndef MESHLANE_H
#define MESHLANE_H

#include <linux/types.h>

/* ------------------------------------------------------------------------
 * Istio's well-known ports and identities. Host byte order.
 * ---------------------------------------------------------------------- */
#define ML_DEFAULT_PROXY_UID      1337  /* istio-proxy runAsUser */
#define ML_DEFAULT_OUTBOUND_PORT  15001 /* Envoy virtualOutbound listener */
#define ML_DEFAULT_INBOUND_PORT   15006 /* Envoy virtualInbound listener */
#define ML_DEFAULT_DNS_PORT       15053 /* istio-agent DNS proxy */
#define ML_DEFAULT_STATUS_PORT    15021 /* status.sidecar.istio.io/port default */
#define ML_PORT_TUNNEL            15008 /* HBONE tunnel: never redirected inbound */
#define ML_PORT_AGENT_METRICS     15020 /* merged Prometheus metrics: always excluded inbound */
#define ML_PORT_HEALTH            15021 /* health checks: always excluded inbound */
#define ML_PORT_ENVOY_PROMETHEUS  15090 /* Envoy Prometheus: always excluded inbound */

/* The inbound passthrough cluster of the proxy binds these source addresses
 * (127.0.0.6 and ::6); such connections are never touched. Host byte order:
 * the IPv4 address as a number, the IPv6 one as the value of its last
 * 32-bit word (the first three words are zero). */
#define ML_INBOUND_PASSTHROUGH_IP4 0x7f000006u /* 127.0.0.6 */
#define ML_INBOUND_PASSTHROUGH_IP6 0x00000006u /* ::6 */

/* Address families: the kernel's AF_INET / AF_INET6 values, so they can be
 * written straight into a sockaddr. */
#define ML_FAMILY_NONE 0
#define ML_FAMILY_V4   2  /* AF_INET */
#define ML_FAMILY_V6   10 /* AF_INET6 */

/* ------------------------------------------------------------------------
 * Capacities. Sized for one node: >= 1,024 pods, >= 65,536 connections.
 * ---------------------------------------------------------------------- */
#define ML_MAX_PODS          4096   /* ml_pods_cg: one entry per meshed pod */
#define ML_MAX_POD_IPS       8192   /* ml_pods_ip: one entry per pod IP (v4 + v6 per pod) */
#define ML_MAX_CONNS         65536  /* ml_odst_ck (LRU), connects not yet established */
#define ML_MAX_TUPLES        131072 /* ml_odst_tup (LRU), established redirected connections */
#define ML_MAX_SOCKS         131072 /* ml_sock_pairs: two sockets per redirected connection */
#define ML_MAX_COUNTERS      64     /* ml_counters slots; ML_CNT__COUNT of them are in use */
#define ML_MAX_PORTS         32     /* entries per port list in ml_pod_config */
#define ML_MAX_CIDRS         32     /* entries per CIDR list in ml_pod_config */
#define ML_MAX_CGROUP_LEVEL  16     /* cgroup ancestor levels searched for the pod cgroup (1..16) */

/* ------------------------------------------------------------------------
 * ml_pods_cg: pod-level cgroup id -> pod. Written by the CNI plugin (ADD/DEL).
 * Key: __u64 cgroup id = inode number of the pod cgroup directory on cgroup2.
 * ---------------------------------------------------------------------- */
#define ML_POD_F_MESHED      (1u << 0) /* interception on (an entry without it is ignored) */
#define ML_POD_F_HAS_V4      (1u << 1) /* ip4 is valid */
#define ML_POD_F_HAS_V6      (1u << 2) /* ip6 is valid */
#define ML_POD_F_DNS_CAPTURE (1u << 3) /* UDP/53 -> dns_port (lib/dns.h) */

struct ml_pod_cg {
	__u8  ip4[16];   /*  0: pod IPv4 as ::ffff:a.b.c.d, zero if none */
	__u8  ip6[16];   /* 16: pod IPv6, zero if none */
	__u32 flags;     /* 32: ML_POD_F_* */
	__u32 proxy_uid; /* 36: proxy uid of this pod; 0 = ml_settings.proxy_uid */
	__u32 proxy_gid; /* 40: proxy gid also counts as proxy; 0 = ml_settings.proxy_gid */
	__u32 reserved0; /* 44: zero */
};                       /* 48 bytes */

/* ------------------------------------------------------------------------
 * ml_pods_ip: pod IP (16 bytes, v4-mapped) -> interception config.
 * Written by the CNI plugin, one entry per pod IP, the same config for the
 * v4 and the v6 address of a pod.
 *
 * Zero means Istio's defaults, so a half-written config never silently
 * captures nothing:
 *   flags == 0           -> includeInboundPorts "*", includeOutboundIPRanges "*"
 *   status_port == 0     -> 15021
 * Lists: a port list ends at the first 0 (or after ML_MAX_PORTS entries);
 * a CIDR list ends at the first entry whose family is ML_FAMILY_NONE (or
 * after ML_MAX_CIDRS). User space must reject (not truncate) longer lists.
 * ---------------------------------------------------------------------- */
/* includeInboundPorts is an explicit list (include_in_ports, possibly
 * empty = capture no inbound); unset = "*" (every port not excluded). */
#define ML_CFG_F_IN_PORTS_LISTED     (1u << 0)
/* includeOutboundIPRanges is an explicit list (include_out_cidrs, possibly
 * empty = capture nothing by address); unset = "*". */
#define ML_CFG_F_OUT_CIDRS_LISTED    (1u << 1)
/* excludeOutboundIPRanges is "*": no destination is captured by address
 * and neither by includeOutboundPorts (exclusion beats inclusion). */
#define ML_CFG_F_OUT_CIDRS_EXCL_ALL  (1u << 2)

struct ml_cidr {
	__u8  addr[16];   /*  0: network byte order; IPv4 as ::ffff:a.b.c.d */
	__u8  prefix_len; /* 16: in the 128-bit space: IPv4 /n is stored as 96+n; IPv6 0..128 */
	__u8  family;     /* 17: ML_FAMILY_V4 / ML_FAMILY_V6; ML_FAMILY_NONE ends the list.
			   *     A V6 CIDR never matches an IPv4 address and vice versa. */
	__u16 reserved0;  /* 18: zero */
};                        /* 20 bytes */

struct ml_pod_config {
	__u32 flags;                                   /*    0: ML_CFG_F_* */
	__u16 status_port;                             /*    4: host order; 0 = 15021 */
	__u16 reserved0;                               /*    6: zero */
	__u16 include_in_ports[ML_MAX_PORTS];          /*    8: host order, 0 ends */
	__u16 exclude_in_ports[ML_MAX_PORTS];          /*   72: host order, 0 ends */
	__u16 include_out_ports[ML_MAX_PORTS];         /*  136: host order, 0 ends */
	__u16 exclude_out_ports[ML_MAX_PORTS];         /*  200: host order, 0 ends */
	struct ml_cidr include_out_cidrs[ML_MAX_CIDRS]; /* 264: */
	struct ml_cidr exclude_out_cidrs[ML_MAX_CIDRS]; /* 904: */
};                                                     /* 1544 bytes */

/* ------------------------------------------------------------------------
 * ml_odst_ck / ml_odst_tup values: the original destination of a redirected
 * connection. Written by the programs only.
 * ---------------------------------------------------------------------- */
#define ML_ODST_F_OUTBOUND  (1u << 0) /* app -> outbound listener (15001) */
#define ML_ODST_F_INBOUND   (1u << 1) /* proxy -> peer pod's inbound listener (15006) */
#define ML_ODST_F_V6_SOCKET (1u << 2) /* the app's socket was AF_INET6 (v4 dst then v4-mapped) */

struct ml_orig_dst {
	__u8   addr[16]; /*  0: network order; IPv4 as ::ffff:a.b.c.d */
	__be16 port;     /* 16: NETWORK byte order */
	__u8   family;   /* 18: ML_FAMILY_V4 / ML_FAMILY_V6 of the destination address */
	__u8   flags;    /* 19: ML_ODST_F_* */
};                       /* 20 bytes */

/* ------------------------------------------------------------------------
 * ml_tuple: key of ml_odst_tup and ml_sock_pairs.
 *
 * ml_odst_tup (connection view): saddr/sport = the end that called
 * connect() (the app, or the proxy for 15006), daddr/dport = the listener
 * end as it was after the rewrite (127.0.0.1:15001, peer pod IP:15006).
 *
 * ml_sock_pairs (socket view): saddr/sport = the socket's local end,
 * daddr/dport = its remote end. A sender redirects to the key with the two
 * ends swapped, which is the peer socket's own key.
 *
 * netns: the network namespace cookie (bpf_get_netns_cookie, or in
 * meshlane-compat.o the same cookie read from ml_sk_netns) when either
 * address is loopback (127/8, ::1, ::ffff:127/104: both ends are then in
 * one netns and the same loopback tuple may exist in every pod), else 0
 * (pod IPs are unique on the node and the two ends may sit in different
 * netns, e.g. proxy A -> pod B:15006).
 * ---------------------------------------------------------------------- */
struct ml_tuple {
	__u8   saddr[16]; /*  0: network order, v4-mapped */
	__u8   daddr[16]; /* 16: network order, v4-mapped */
	__be16 sport;     /* 32: NETWORK byte order */
	__be16 dport;     /* 34: NETWORK byte order */
	__u32  reserved0; /* 36: zero */
	__u64  netns;     /* 40: netns cookie or 0, see above */
};                        /* 48 bytes */

/* ------------------------------------------------------------------------
 * ml_settings: ARRAY with one entry (key 0). Written by the installer.
 * Every zero field means its default, so an all-zero entry (a map that was
 * created but never written) is the Istio default setup with sockmap off.
 * ---------------------------------------------------------------------- */
/* Same-node app<->proxy bytes bypass TCP/IP (sk_msg redirect). Checked
 * when a socket would join ml_sock_pairs (established): with it off no
 * socket joins. A socket that joined keeps the bypass until it closes, so
 * turning it off takes effect for new connections only (switching a live
 * connection's path would leave FIONREAD readers waiting, see ml_redirect). */
#define ML_SET_F_SOCKMAP_REDIRECT (1u << 0)
/* With SOCKMAP_REDIRECT: only proxy <-> proxy connections (to a peer pod's
 * inbound listener) join ml_sock_pairs; application sockets never do. On
 * 6.18 a blocking recv() on a socket in a sockmap can fail with EAGAIN
 * (docs/datapath.md, "Kernel caveats"); proxies use non-blocking sockets
 * and cope, arbitrary applications may not. */
#define ML_SET_F_SOCKMAP_PROXY_ONLY (1u << 1)

struct ml_settings {
	__u32 proxy_uid;     /*  0: 0 = 1337 */
	__u32 proxy_gid;     /*  4: 0 = the proxy gid is not matched (uid only) */
	__u16 outbound_port; /*  8: host order; 0 = 15001 */
	__u16 inbound_port;  /* 10: host order; 0 = 15006 */
	__u16 dns_port;      /* 12: host order; 0 = 15053 */
	__u16 reserved0;     /* 14: zero */
	__u32 flags;         /* 16: ML_SET_F_* */
	__u32 reserved1;     /* 20: zero */
	__u64 reserved2;     /* 24: zero */
};                           /* 32 bytes */

/* ------------------------------------------------------------------------
 * ml_sk_netns: the network namespace cookie of a TCP socket, for the
 * object built for kernels whose sock_ops, sk_msg and cgroup getsockopt programs cannot call
 * bpf_get_netns_cookie (before 5.15; bpf/meshlane.bpf.c built with
 * ML_NETNS_FROM_STORAGE, dist/bpf/meshlane-compat.o). Socket-local storage:
 * written where the helper is callable (cgroup/sock_create when the socket is
 * made, connect4/6 for a socket made before the datapath was loaded) and
 * copied by the kernel to every socket a listener accepts (BPF_F_CLONE), so
 * both ends of a loopback connection carry their netns. Declared (and
 * pinned) by both objects, so their maps are the same set; the object for
 * newer kernels never touches it.
 * ---------------------------------------------------------------------- */
struct ml_sk_netns {
	__u64 netns;     /* 0: bpf_get_netns_cookie() of the socket's netns */
};                       /* 8 bytes */

/* ------------------------------------------------------------------------
 * ml_counters: PERCPU_ARRAY of __u64, index = enum ml_counter. User space
 * sums the per-CPU values. Ids are append-only.
 * ---------------------------------------------------------------------- */
enum ml_counter {
	ML_CNT_CONNECT4_REDIRECT_OUT = 0,  /* app -> 127.0.0.1:15001 */
	ML_CNT_CONNECT4_REDIRECT_IN = 1,   /* proxy -> peer pod :15006, or over lo -> its own loopback:15006 */
	ML_CNT_CONNECT4_PASS = 2,          /* not ours: unregistered cgroup, not TCP, loopback, own pod, non-pod dst of the proxy */
	ML_CNT_CONNECT4_EXCLUDED = 3,      /* a meshed pod's traffic left alone by include/exclude rules */
	ML_CNT_CONNECT6_REDIRECT_OUT = 4,
	ML_CNT_CONNECT6_REDIRECT_IN = 5,
	ML_CNT_CONNECT6_PASS = 6,
	ML_CNT_CONNECT6_EXCLUDED = 7,
	ML_CNT_SOCKOPS_ODST_SAVED = 8,     /* cookie record turned into a 4-tuple record */
	ML_CNT_SOCKOPS_ODST_DELETED = 9,   /* 4-tuple record removed at close */
	ML_CNT_SOCKOPS_SOCKHASH_ADDED = 10, /* socket added to ml_sock_pairs */
	ML_CNT_GETSOCKOPT_ANSWERED = 11,   /* SO_ORIGINAL_DST answered from ml_odst_tup */
	ML_CNT_GETSOCKOPT_MISS = 12,       /* SO_ORIGINAL_DST without record: kernel's answer kept */
	ML_CNT_REDIRECT_OK = 13,           /* sk_msg redirected to the peer */
	ML_CNT_REDIRECT_PASS = 14,         /* no longer counted: sockets that joined keep the bypass when the switch goes off */
	ML_CNT_REDIRECT_NO_PEER = 15,      /* sk_msg passed: peer socket not in ml_sock_pairs */
	ML_CNT_ERR_BIND = 16,              /* bpf_bind to the pod IP failed (socket already bound?) */
	ML_CNT_ERR_ODST_CK_UPDATE = 17,    /* ml_odst_ck update failed (connection still redirected) */
	ML_CNT_ERR_ODST_TUP_UPDATE = 18,   /* ml_odst_tup update failed */
	ML_CNT_ERR_SOCKHASH_UPDATE = 19,   /* ml_sock_pairs update failed (or key already present) */
	ML_CNT_ERR_NO_POD_CONFIG = 20,     /* pod in ml_pods_cg but its IP not in ml_pods_ip: passed */
	ML_CNT_ERR_BUFFER = 21,            /* getsockopt buffer too small for the sockaddr: passed */
	ML_CNT_SOCKOPS_CONNECT_FAILED = 22, /* redirected connect closed before established: cookie record dropped */
	/* DNS capture (cgroup sendmsg/recvmsg, lib/dns.h) */
	ML_CNT_DNS_REDIRECTED = 23,        /* UDP or TCP to port 53 of a pod with DNS capture -> dns_port on loopback */
	ML_CNT_DNS_PASS = 24,              /* UDP sendmsg left alone (no capture, proxy uid, not port 53) */
	ML_CNT_DNS_REPLY_REWRITTEN = 25,   /* recvmsg: the reply's source set back to the server asked */
	ML_CNT_ERR_DNS_RECORD = 26,        /* the original-server record could not be written */
	/* Inbound from other nodes (tc in the pod netns, lib/inbound.h) */
	ML_CNT_TC_IN_REDIRECTED = 27,      /* TCP to a captured pod port steered to the inbound listener */
	ML_CNT_TC_IN_PASS = 28,            /* ingress packet left alone (not TCP, not to the pod, proxy port ...) */
	ML_CNT_TC_IN_EXCLUDED = 29,        /* ingress TCP to an excluded inbound port or the status port */
	ML_CNT_TC_OUT_RESTORED = 30,       /* egress reply: source port set back to the original port */
	ML_CNT_TC_UNSUPPORTED = 31,        /* packet passed untouched: IPv6 extension headers, fragments ... */
	ML_CNT_ERR_TC_NAT = 32,            /* the per-connection record could not be written: packet passed */
	ML_CNT__COUNT = 33,
};

/* ------------------------------------------------------------------------
 * Names fixed by the contract (<= 15 characters, the kernel's limit).
 * ---------------------------------------------------------------------- */
#define ML_PROG_CONNECT4   "ml_connect4"
#define ML_PROG_CONNECT6   "ml_connect6"
#define ML_PROG_SOCKOPS    "ml_sockops"
#define ML_PROG_GETSOCKOPT "ml_getsockopt"
#define ML_PROG_REDIRECT   "ml_redirect"
#define ML_PROG_SOCK_CREATE "ml_sock_create" /* dist/bpf/meshlane-compat.o only */

/* ------------------------------------------------------------------------
 * Layout checks (both for the BPF target and a host compiler).
 * ---------------------------------------------------------------------- */
#define ML_ASSERT_SIZE(T, N) _Static_assert(sizeof(T) == (N), #T " must be " #N " bytes")
#define ML_ASSERT_OFF(T, F, N) \
	_Static_assert(__builtin_offsetof(T, F) == (N), #T "." #F " must be at offset " #N)

ML_ASSERT_SIZE(struct ml_pod_cg, 48);
ML_ASSERT_OFF(struct ml_pod_cg, ip6, 16);
ML_ASSERT_OFF(struct ml_pod_cg, flags, 32);
ML_ASSERT_OFF(struct ml_pod_cg, proxy_uid, 36);
ML_ASSERT_OFF(struct ml_pod_cg, proxy_gid, 40);
ML_ASSERT_SIZE(struct ml_cidr, 20);
ML_ASSERT_OFF(struct ml_cidr, prefix_len, 16);
ML_ASSERT_OFF(struct ml_cidr, family, 17);
ML_ASSERT_SIZE(struct ml_pod_config, 1544);
ML_ASSERT_OFF(struct ml_pod_config, status_port, 4);
ML_ASSERT_OFF(struct ml_pod_config, include_in_ports, 8);
ML_ASSERT_OFF(struct ml_pod_config, exclude_in_ports, 72);
ML_ASSERT_OFF(struct ml_pod_config, include_out_ports, 136);
ML_ASSERT_OFF(struct ml_pod_config, exclude_out_ports, 200);
ML_ASSERT_OFF(struct ml_pod_config, include_out_cidrs, 264);
ML_ASSERT_OFF(struct ml_pod_config, exclude_out_cidrs, 904);
ML_ASSERT_SIZE(struct ml_orig_dst, 20);
ML_ASSERT_OFF(struct ml_orig_dst, port, 16);
ML_ASSERT_OFF(struct ml_orig_dst, family, 18);
ML_ASSERT_OFF(struct ml_orig_dst, flags, 19);
ML_ASSERT_SIZE(struct ml_tuple, 48);
ML_ASSERT_OFF(struct ml_tuple, daddr, 16);
ML_ASSERT_OFF(struct ml_tuple, sport, 32);
ML_ASSERT_OFF(struct ml_tuple, dport, 34);
ML_ASSERT_OFF(struct ml_tuple, netns, 40);
ML_ASSERT_SIZE(struct ml_settings, 32);
ML_ASSERT_OFF(struct ml_settings, outbound_port, 8);
ML_ASSERT_OFF(struct ml_settings, inbound_port, 10);
ML_ASSERT_OFF(struct ml_settings, dns_port, 12);
ML_ASSERT_OFF(struct ml_settings, flags, 16);
ML_ASSERT_SIZE(struct ml_sk_netns, 8);
_Static_assert(ML_CNT__COUNT <= ML_MAX_COUNTERS, "ml_counters too small");

/* ------------------------------------------------------------------------
 * Maps (BTF-defined, pinned by the loader under <bpffs>/meshlane/).
 * Registrations live in plain HASH maps (an LRU may evict them);
 * per-connection records in LRU maps.
 * ---------------------------------------------------------------------- */
#ifdef __bpf__
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* pod-level cgroup id -> pod. Writer: CNI plugin. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_MAX_PODS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct ml_pod_cg);
} ml_pods_cg SEC(".maps");

/* pod IP (16 bytes, v4-mapped) -> config. Writer: CNI plugin. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_MAX_POD_IPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u8[16]);
	__type(value, struct ml_pod_config);
} ml_pods_ip SEC(".maps");

/* socket cookie -> original destination, from connect to established.
 * Writer: ml_connect4/6 (insert), ml_sockops (delete). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ML_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct ml_orig_dst);
} ml_odst_ck SEC(".maps");

/* connection 4-tuple -> original destination, read by getsockopt.
 * Writer: ml_sockops (insert at established, delete at close). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ML_MAX_TUPLES);
	__type(key, struct ml_tuple);
	__type(value, struct ml_orig_dst);
} ml_odst_tup SEC(".maps");

/* socket 4-tuple -> socket; msg_verdict program ml_redirect attached.
 * Writer: ml_sockops; the kernel removes a socket when it closes. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, ML_MAX_SOCKS);
	__type(key, struct ml_tuple);
	__type(value, __u32);
} ml_sock_pairs SEC(".maps");

/* one entry, key 0. Writer: installer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_settings);
} ml_settings SEC(".maps");

/* enum ml_counter -> per-CPU __u64. Writer: programs; reader: status/metrics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_MAX_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} ml_counters SEC(".maps");

/* struct ml_sk_netns (above): socket -> its netns cookie. Writers:
 * ml_sock_create, ml_connect4/6 (meshlane-compat.o only). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ml_sk_netns);
} ml_sk_netns SEC(".maps");

/* DNS capture: socket cookie -> the DNS server a captured UDP socket last
 * sent to (or connected to), before its destination was rewritten to the
 * DNS listener on loopback. Read by recvmsg4/6 to show the reply as coming
 * from that server. Value: struct ml_orig_dst (flags: ML_ODST_F_V6_SOCKET
 * only). Writer: sendmsg4/6 and connect4/6 (UDP, port 53); entries age out
 * (LRU): a socket has no close hook here. */
#define ML_MAX_DNS_SOCKS 16384
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ML_MAX_DNS_SOCKS);
	__type(key, __u64);
	__type(value, struct ml_orig_dst);
} ml_dns_ck SEC(".maps");
#endif /* __bpf__ */

/* ------------------------------------------------------------------------
 * Inbound from other nodes (tc programs in the pod netns, lib/inbound.h).
 * ---------------------------------------------------------------------- */
#define ML_PROG_TC_INGRESS "ml_tc_ingress"
#define ML_PROG_TC_EGRESS  "ml_tc_egress"

/* ml_orig_dst.flags of a record written by ml_tc_ingress (client on another
 * node or outside the mesh -> pod port steered to the inbound listener).
 * Not ML_ODST_F_INBOUND: with ML_SET_F_SOCKMAP_PROXY_ONLY the proxy's
 * accepted socket of such a connection has no peer on this node to join. */
#define ML_ODST_F_TC_INBOUND (1u << 3)

/* ml_tc_flows key: one steered connection, as the pod sees it. */
struct ml_tc_flow_key {
	__u8   pod[16];   /*  0: pod IP, network order, v4-mapped */
	__u8   peer[16];  /* 16: client IP, network order, v4-mapped */
	__be16 peer_port; /* 32: client port, NETWORK byte order */
	__u16  reserved0; /* 34: zero */
	__u32  reserved1; /* 36: zero */
};                        /* 40 bytes */

/* ml_tc_flows value: the port the client asked for. */
struct ml_tc_flow {
	__be16 orig_port; /*  0: NETWORK byte order */
	__u16  reserved0; /*  2: zero */
	__u32  reserved1; /*  4: zero */
};                        /*  8 bytes */

ML_ASSERT_SIZE(struct ml_tc_flow_key, 40);
ML_ASSERT_OFF(struct ml_tc_flow_key, peer, 16);
ML_ASSERT_OFF(struct ml_tc_flow_key, peer_port, 32);
ML_ASSERT_OFF(struct ml_tc_flow_key, reserved1, 36);
ML_ASSERT_SIZE(struct ml_tc_flow, 8);
ML_ASSERT_OFF(struct ml_tc_flow, reserved1, 4);

#ifdef __bpf__
/* (client, client port, pod IP) -> original pod port of a connection
 * ml_tc_ingress steered to the inbound listener; read by ml_tc_egress to
 * set the replies' source port back. Entries age out (LRU). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ML_MAX_TUPLES);
	__type(key, struct ml_tc_flow_key);
	__type(value, struct ml_tc_flow);
} ml_tc_flows SEC(".maps");
#endif /* __bpf__ */

/* ------------------------------------------------------------------------
 * DNS capture programs (cgroup sendmsg/recvmsg, lib/dns.h; UDP connect()
 * to port 53 is handled by ML_PROG_CONNECT4/6). Map: ml_dns_ck.
 * ---------------------------------------------------------------------- */
#define ML_PROG_SENDMSG4 "ml_sendmsg4"
#define ML_PROG_SENDMSG6 "ml_sendmsg6"
#define ML_PROG_RECVMSG4 "ml_recvmsg4"
#define ML_PROG_RECVMSG6 "ml_recvmsg6"

#endif /* MESHLANE_H */
