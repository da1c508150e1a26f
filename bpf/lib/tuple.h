/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection 4-tuples (struct ml_tuple, meshlane.h): building them from the
 * ends of a socket, shared by sockops, getsockopt and sk_msg. */
#ifndef MESHLANE_LIB_TUPLE_H
#define MESHLANE_LIB_TUPLE_H

#include "lib/common.h"

/* netns is part of the key only when the tuple is loopback (see meshlane.h). */
static __always_inline int ml_tuple_needs_netns(const struct ml_addr *a, const struct ml_addr *b)
{
	return ml_addr_is_loopback(a) || ml_addr_is_loopback(b);
}

/* The netns cookie of a socket for a loopback tuple key. `ctx` is the
 * program's context, `sk` its socket (struct bpf_sock *, may be NULL). Kernels
 * before 5.15 do not let sock_ops, sk_msg and cgroup getsockopt programs call
 * bpf_get_netns_cookie (the verifier says "unknown func
 * bpf_get_netns_cookie#122"): the object built for them
 * (ML_NETNS_FROM_STORAGE) reads the same cookie from the socket's storage,
 * written by ml_sock_create and connect4/6 and cloned to accepted sockets
 * (meshlane.h, ml_sk_netns). A socket without it (made before the datapath
 * was loaded, and not by a redirected connect) reads 0. */
#ifdef ML_NETNS_FROM_STORAGE
static __always_inline __u64 ml_sk_netns_of(struct bpf_sock *sk)
{
	struct ml_sk_netns *v;

	if (!sk)
		return 0;
	v = bpf_sk_storage_get(&ml_sk_netns, sk, 0, 0);
	return v ? v->netns : 0;
}
#define ML_SOCK_NETNS(ctx, sk) ml_sk_netns_of(sk)

/* Record the netns of a socket in its storage. `ctx` is a program context
 * that may call bpf_get_netns_cookie (cgroup sock and sock_addr programs,
 * 5.7 on), `sk` its socket (the context itself for cgroup sock). */
#define ML_SK_NETNS_SET(ctx, sk)                                                                        \
	do {                                                                                             \
		struct ml_sk_netns *_v = bpf_sk_storage_get(&ml_sk_netns, (sk), 0,                     \
							    BPF_SK_STORAGE_GET_F_CREATE);               \
		if (_v)                                                                                  \
			_v->netns = bpf_get_netns_cookie(ctx);                                           \
	} while (0)
#else
#define ML_SOCK_NETNS(ctx, sk) bpf_get_netns_cookie(ctx)
#endif

static __always_inline void ml_tuple_set(struct ml_tuple *t, const struct ml_addr *s, __u16 sport_host,
					 const struct ml_addr *d, __u16 dport_host)
{
	ml_addr_store(t->saddr, s);
	ml_addr_store(t->daddr, d);
	t->sport = bpf_htons(sport_host);
	t->dport = bpf_htons(dport_host);
	t->reserved0 = 0;
	t->netns = 0;
}

/* Pick the two ends of a socket from its IPv4 and IPv6 context fields.
 * All fields are read unconditionally (volatile) by the callers, so clang
 * cannot merge the loads of the two families into one load through a
 * computed pointer, which the verifier rejects on ctx and socket pointers. */
static __always_inline void ml_pick_ends(__u32 family, __be32 l4, __be32 r4, const struct ml_addr *l6,
					 const struct ml_addr *r6, struct ml_addr *local,
					 struct ml_addr *remote)
{
	if (family == ML_FAMILY_V4) {
		ml_addr_from_v4(local, l4);
		ml_addr_from_v4(remote, r4);
	} else {
		*local = *l6;
		*remote = *r6;
	}
}

#endif /* MESHLANE_LIB_TUPLE_H */
