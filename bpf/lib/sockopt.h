/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * getsockopt: SO_ORIGINAL_DST (SOL_IP, 80) and IP6T_SO_ORIGINAL_DST
 * (SOL_IPV6, 80) answered from ml_odst_tup (docs/datapath.md, "getsockopt");
 * every other call is left exactly as the kernel answered it.
 */
#ifndef MESHLANE_LIB_SOCKOPT_H
#define MESHLANE_LIB_SOCKOPT_H

#include "lib/common.h"
#include "lib/tuple.h"

/* Beside istio-cni, Istio's ISTIO_INBOUND rules REDIRECT a connection that
 * meshlane already sent to pod:15006 once more, to port 15006 of the
 * interface's first address (nf_nat_redirect: the primary IPv4, the newest
 * global IPv6). When the pod has more than one address, that changes the
 * destination address: the accepted socket's local end is no longer the
 * listener end meshlane recorded, and the kernel's own answer (conntrack's
 * pre-NAT destination) is meshlane's rewritten pod:15006, which would send
 * the proxy to itself. That pre-NAT destination is exactly the recorded
 * listener end, so look the record up again with it. `conn` holds the first
 * key (remote -> local); returns the record or NULL. */
static __always_inline struct ml_orig_dst *ml_lookup_pre_nat(struct bpf_sockopt *ctx, struct ml_tuple *conn,
							     const struct ml_addr *remote)
{
	void *optval = ctx->optval;
	void *optval_end = ctx->optval_end;
	struct ml_addr pre, cur;
	__be16 pre_port;

	if (ctx->retval != 0)
		return NULL; /* no conntrack answer */
	if (ctx->level == ML_SOL_IP) {
		struct sockaddr_in *sin = optval;

		if ((void *)(sin + 1) > optval_end || ctx->optlen < (int)sizeof(*sin) ||
		    sin->sin_family != ML_FAMILY_V4)
			return NULL;
		ml_addr_from_v4(&pre, sin->sin_addr.s_addr);
		pre_port = sin->sin_port;
	} else {
		struct sockaddr_in6 *sin6 = optval;

		if ((void *)(sin6 + 1) > optval_end || ctx->optlen < (int)sizeof(*sin6) ||
		    sin6->sin6_family != ML_FAMILY_V6)
			return NULL;
		ml_addr_load(&pre, (const __u8 *)&sin6->sin6_addr);
		pre_port = sin6->sin6_port;
	}
	ml_addr_load(&cur, conn->daddr);
	if (pre_port == conn->dport && ml_addr_eq(&pre, &cur))
		return NULL; /* no NAT on our end: the first lookup was the one */
	ml_addr_store(conn->daddr, &pre);
	conn->dport = pre_port;
	conn->netns = ml_tuple_needs_netns(remote, &pre) ? ML_SOCK_NETNS(ctx, ctx->sk) : 0;
	return bpf_map_lookup_elem(&ml_odst_tup, conn);
}

/* Fill the answer; 0 when there is none (then the kernel's answer stands). */
static __always_inline int ml_answer_original_dst(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	void *optval = ctx->optval;
	void *optval_end = ctx->optval_end;
	struct ml_addr local, remote, l6, r6;
	struct ml_orig_dst *od;
	struct ml_addr orig;
	struct ml_tuple conn;
	__u16 lport, rport;
	__be32 l4, r4;
	__u32 family;

	if (!sk || sk->protocol != IPPROTO_TCP)
		return 0;
	family = sk->family;
	if (family != ML_FAMILY_V4 && family != ML_FAMILY_V6)
		return 0;
	l4 = ML_CTX_READ(sk->src_ip4);
	r4 = ML_CTX_READ(sk->dst_ip4);
	ML_READ_ADDR6(&l6, sk->src_ip6);
	ML_READ_ADDR6(&r6, sk->dst_ip6);
	ml_pick_ends(family, l4, r4, &l6, &r6, &local, &remote);
	lport = (__u16)sk->src_port;
	rport = bpf_ntohs(sk->dst_port);

	/* The caller is the accepting (listener) end: the connection's
	 * connecting end is our remote one. */
	ml_tuple_set(&conn, &remote, rport, &local, lport);
	if (ml_tuple_needs_netns(&local, &remote))
		conn.netns = ML_SOCK_NETNS(ctx, sk);
	od = bpf_map_lookup_elem(&ml_odst_tup, &conn);
	if (!od)
		od = ml_lookup_pre_nat(ctx, &conn, &remote);
	if (!od) {
		ml_count(ML_CNT_GETSOCKOPT_MISS);
		return 0;
	}

	if (ctx->level == ML_SOL_IP) {
		struct sockaddr_in *sin = optval;

		if (od->family != ML_FAMILY_V4) {
			ml_count(ML_CNT_GETSOCKOPT_MISS);
			return 0;
		}
		if ((void *)(sin + 1) > optval_end) {
			ml_count(ML_CNT_ERR_BUFFER);
			return 0;
		}
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = ML_FAMILY_V4;
		sin->sin_port = od->port;
		ml_addr_load(&orig, od->addr);
		sin->sin_addr.s_addr = ml_addr_v4(&orig);
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = optval;

		if ((void *)(sin6 + 1) > optval_end) {
			ml_count(ML_CNT_ERR_BUFFER);
			return 0;
		}
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = ML_FAMILY_V6;
		sin6->sin6_port = od->port;
		__builtin_memcpy(&sin6->sin6_addr, od->addr, sizeof(sin6->sin6_addr));
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	ml_count(ML_CNT_GETSOCKOPT_ANSWERED);
	return 1;
}

static __always_inline void ml_getsockopt_impl(struct bpf_sockopt *ctx)
{
	if ((ctx->level == ML_SOL_IP && ctx->optname == ML_SO_ORIGINAL_DST) ||
	    (ctx->level == ML_SOL_IPV6 && ctx->optname == ML_IP6T_SO_ORIGINAL_DST)) {
		if (ml_answer_original_dst(ctx))
			return;
	}
	/* Not ours: optlen 0 tells the kernel to hand the caller exactly what
	 * its own getsockopt produced (buffer, length and return value), for
	 * any size: replies larger than the page the program sees
	 * (iptables' 15 KB IPT_SO_GET_ENTRIES) would otherwise fail with
	 * EFAULT, and a failed call would get our zeroed copy of the buffer
	 * (Documentation/bpf/prog_cgroup_sockopt.rst, "Large optval";
	 * kernel/bpf/cgroup.c copies nothing back when optlen is 0). */
	ctx->optlen = 0;
}

#endif /* MESHLANE_LIB_SOCKOPT_H */
