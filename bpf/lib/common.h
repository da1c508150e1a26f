/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Small building blocks shared by every meshlane program: addresses in the
 * 128-bit (v4-mapped) space, settings with defaults, counters. */
#ifndef MESHLANE_LIB_COMMON_H
#define MESHLANE_LIB_COMMON_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "meshlane.h"

/* Kernel constants that uapi headers do not export to BPF programs. */
#define ML_SOCK_STREAM        1   /* SOCK_STREAM (include/linux/net.h) */
#define ML_SOL_IP             0   /* SOL_IP */
#define ML_SOL_IPV6           41  /* SOL_IPV6 */
#define ML_SO_ORIGINAL_DST    80  /* SO_ORIGINAL_DST (linux/netfilter_ipv4.h) */
#define ML_IP6T_SO_ORIGINAL_DST 80 /* IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h) */
#define ML_TCP_CLOSE          7   /* BPF_TCP_CLOSE */

/* Return values of cgroup sock_addr / sockops / sockopt programs. */
#define ML_CG_ALLOW 1 /* let the syscall go on */
#define ML_CG_DENY  0 /* never used by meshlane: we do not block */

/* Read a context field with a load of its own. Without it clang may merge
 * the loads of two branches (src_ip4 vs src_ip6[3]) into one load through a
 * computed pointer, and the verifier rejects pointer arithmetic on ctx and
 * socket pointers. */
#define ML_CTX_READ(field) (*(volatile typeof(field) *)&(field))

/* A 128-bit address in network byte order, handled as four words. */
struct ml_addr {
	__u32 w[4];
};

#define ML_V4MAPPED_PREFIX bpf_htonl(0x0000ffffu)

/* A 16-byte address held in a context as four __u32 words (user_ip6,
 * local_ip6, src_ip6, ...), read word by word with loads of their own
 * (ML_CTX_READ), or written back word by word. */
#define ML_READ_ADDR6(a, arr)                       \
	do {                                        \
		(a)->w[0] = ML_CTX_READ((arr)[0]); \
		(a)->w[1] = ML_CTX_READ((arr)[1]); \
		(a)->w[2] = ML_CTX_READ((arr)[2]); \
		(a)->w[3] = ML_CTX_READ((arr)[3]); \
	} while (0)

#define ML_WRITE_ADDR6(arr, a)          \
	do {                            \
		(arr)[0] = (a)->w[0];   \
		(arr)[1] = (a)->w[1];   \
		(arr)[2] = (a)->w[2];   \
		(arr)[3] = (a)->w[3];   \
	} while (0)

static __always_inline void ml_addr_from_v4(struct ml_addr *a, __be32 ip4)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = ML_V4MAPPED_PREFIX;
	a->w[3] = ip4;
}

/* Every 16-byte address in meshlane.h sits at a 4-byte aligned offset, so
 * it is read and written as four words (a byte-wise memcpy would cost the
 * verifier 16 loads and shifts per address). */
static __always_inline void ml_addr_load(struct ml_addr *a, const __u8 *bytes)
{
	*a = *(const struct ml_addr *)bytes;
}

static __always_inline void ml_addr_store(__u8 *bytes, const struct ml_addr *a)
{
	*(struct ml_addr *)bytes = *a;
}

/* The IPv4 address (network order) of a v4-mapped address. */
static __always_inline __be32 ml_addr_v4(const struct ml_addr *a)
{
	return a->w[3];
}

/* The loopback address of a family: ::ffff:127.0.0.1 (v4 != 0) or ::1. */
static __always_inline void ml_addr_loopback(struct ml_addr *a, int v4)
{
	if (v4) {
		ml_addr_from_v4(a, bpf_htonl(INADDR_LOOPBACK));
		return;
	}
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = 0;
	a->w[3] = bpf_htonl(1);
}

static __always_inline int ml_addr_is_v4(const struct ml_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == ML_V4MAPPED_PREFIX;
}

static __always_inline int ml_addr_eq(const struct ml_addr *a, const struct ml_addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] &&
	       a->w[3] == b->w[3];
}

static __always_inline int ml_addr_is_zero(const struct ml_addr *a)
{
	return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

/* 127.0.0.0/8 (mapped), ::1, and the unspecified addresses 0.0.0.0 / ::
 * (connect() to them reaches the local host as well). */
static __always_inline int ml_addr_is_local(const struct ml_addr *a)
{
	if (ml_addr_is_v4(a)) {
		__u32 h = bpf_ntohl(a->w[3]);
		return (h >> 24) == 127 || h == 0;
	}
	if (a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0)
		return a->w[3] == 0 || a->w[3] == bpf_htonl(1);
	return 0;
}

static __always_inline int ml_addr_is_loopback(const struct ml_addr *a)
{
	if (ml_addr_is_v4(a))
		return (bpf_ntohl(a->w[3]) >> 24) == 127;
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == bpf_htonl(1);
}

/* What Istio's "-d 127.0.0.1/32" (IPv6: "::1/128") matches after routing:
 * 127.0.0.1 / ::1, and the unspecified address, which connect() turns into
 * it. */
static __always_inline int ml_addr_is_localhost(const struct ml_addr *a)
{
	if (ml_addr_is_v4(a)) {
		__u32 h = bpf_ntohl(a->w[3]);
		return h == INADDR_LOOPBACK || h == 0;
	}
	if (a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0)
		return a->w[3] == 0 || a->w[3] == bpf_htonl(1);
	return 0;
}

/* The proxy's inbound passthrough address, 127.0.0.6 or ::6. */
static __always_inline int ml_addr_is_passthrough(const struct ml_addr *a)
{
	if (ml_addr_is_v4(a))
		return a->w[3] == bpf_htonl(ML_INBOUND_PASSTHROUGH_IP4);
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 &&
	       a->w[3] == bpf_htonl(ML_INBOUND_PASSTHROUGH_IP6);
}

/* Does addr lie in the prefix? Both in the 128-bit space. */
static __always_inline int ml_addr_in_prefix(const struct ml_addr *addr, const struct ml_addr *net,
					     __u32 prefix_len)
{
	int i;

	if (prefix_len > 128)
		return 0;
#pragma unroll
	for (i = 0; i < 4; i++) {
		__u32 bits, mask;

		if (prefix_len >= 32 * (i + 1))
			bits = 32;
		else if (prefix_len <= 32 * i)
			bits = 0;
		else
			bits = prefix_len - 32 * i;
		mask = bits == 0 ? 0 : bpf_htonl(0xffffffffu << (32 - bits));
		if ((addr->w[i] ^ net->w[i]) & mask)
			return 0;
	}
	return 1;
}

/* ---- settings ------------------------------------------------------------ */

/* ml_settings with every zero field replaced by its default. */
struct ml_cfg {
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u16 outbound_port;
	__u16 inbound_port;
	__u16 dns_port;
	__u32 flags;
};

static __always_inline void ml_settings_get(struct ml_cfg *c)
{
	__u32 zero = 0;
	struct ml_settings *s = bpf_map_lookup_elem(&ml_settings, &zero);

	c->proxy_uid = ML_DEFAULT_PROXY_UID;
	c->proxy_gid = 0;
	c->outbound_port = ML_DEFAULT_OUTBOUND_PORT;
	c->inbound_port = ML_DEFAULT_INBOUND_PORT;
	c->dns_port = ML_DEFAULT_DNS_PORT;
	c->flags = 0;
	if (!s)
		return;
	if (s->proxy_uid)
		c->proxy_uid = s->proxy_uid;
	c->proxy_gid = s->proxy_gid;
	if (s->outbound_port)
		c->outbound_port = s->outbound_port;
	if (s->inbound_port)
		c->inbound_port = s->inbound_port;
	if (s->dns_port)
		c->dns_port = s->dns_port;
	c->flags = s->flags;
}

/* ---- counters ------------------------------------------------------------ */

/* Is the current task this pod's proxy, by uid (ML_PROXY_UID) and, separately,
 * by gid (ML_PROXY_GID, only when a proxy gid is set)? Istio has a rule for
 * each (--uid-owner / --gid-owner) and they differ on lo. The pod's own
 * identity wins over the node's settings. */
#define ML_PROXY_UID (1u << 0)
#define ML_PROXY_GID (1u << 1)

static __always_inline __u32 ml_proxy_match(const struct ml_pod_cg *pod, const struct ml_cfg *cfg)
{
	__u32 proxy_uid = pod->proxy_uid ? pod->proxy_uid : cfg->proxy_uid;
	__u32 proxy_gid = pod->proxy_gid ? pod->proxy_gid : cfg->proxy_gid;
	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 m = 0;

	if ((__u32)uid_gid == proxy_uid)
		m |= ML_PROXY_UID;
	if (proxy_gid != 0 && (__u32)(uid_gid >> 32) == proxy_gid)
		m |= ML_PROXY_GID;
	return m;
}

/* The pod of the current task: the first ancestor cgroup (from the top)
 * that is registered in ml_pods_cg, or NULL. */
static __always_inline struct ml_pod_cg *ml_current_pod(void)
{
	int level;

	for (level = 1; level <= ML_MAX_CGROUP_LEVEL; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		struct ml_pod_cg *pod;

		if (id == 0)
			return NULL; /* deeper than the task's cgroup */
		pod = bpf_map_lookup_elem(&ml_pods_cg, &id);
		if (pod)
			return pod;
	}
	return NULL;
}

/* Is a one of the pod's own IPs? */
static __always_inline int ml_is_own_ip(const struct ml_pod_cg *pod, const struct ml_addr *a)
{
	struct ml_addr ip;

	if (pod->flags & ML_POD_F_HAS_V4) {
		ml_addr_load(&ip, pod->ip4);
		if (ml_addr_eq(&ip, a))
			return 1;
	}
	if (pod->flags & ML_POD_F_HAS_V6) {
		ml_addr_load(&ip, pod->ip6);
		if (ml_addr_eq(&ip, a))
			return 1;
	}
	return 0;
}

/* The pod's own config: stored under each of its IPs, any one will do. */
static __always_inline struct ml_pod_config *ml_pod_own_config(const struct ml_pod_cg *pod)
{
	if (pod->flags & ML_POD_F_HAS_V4)
		return bpf_map_lookup_elem(&ml_pods_ip, pod->ip4);
	if (pod->flags & ML_POD_F_HAS_V6)
		return bpf_map_lookup_elem(&ml_pods_ip, pod->ip6);
	return NULL;
}

/* Not inlined on purpose: this keeps enum ml_counter in the object's BTF
 * (as this function's parameter type) for user space to read. */
static __noinline void ml_count(enum ml_counter id)
{
	__u32 key = id;
	__u64 *v = bpf_map_lookup_elem(&ml_counters, &key);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

#endif /* MESHLANE_LIB_COMMON_H */
