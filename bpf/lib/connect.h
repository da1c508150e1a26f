/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * connect4 / connect6: the decision for a TCP connect() of a registered pod
 * (docs/datapath.md, "connect4 / connect6" and "Istio semantics"), and the
 * rewrite of the socket address that carries it out. UDP connect() to port
 * 53 goes to lib/dns.h.
 */
#ifndef MESHLANE_LIB_CONNECT_H
#define MESHLANE_LIB_CONNECT_H

#include "lib/common.h"
#include "lib/policy.h"
#include "lib/dns.h"

enum ml_verdict {
	ML_VERDICT_PASS = 0,         /* not ours: leave the socket alone */
	ML_VERDICT_EXCLUDED = 1,     /* a meshed pod's traffic excluded by its rules */
	ML_VERDICT_REDIRECT_OUT = 2, /* app -> local outbound listener */
	ML_VERDICT_REDIRECT_IN = 3,  /* proxy -> peer pod's inbound listener */
};

/* What connect() asked for, in the 128-bit space. */
struct ml_connect_req {
	struct ml_addr dst;  /* destination as the caller gave it (v4-mapped for AF_INET) */
	struct ml_addr src;  /* source the socket is already bound to, zero if none */
	__u16 dport;         /* host order */
	__u16 sport;         /* host order, bound source port, 0 if none */
	__u8 v6_socket;      /* the socket is AF_INET6 */
};

/* What to do about it. */
struct ml_connect_res {
	struct ml_addr dst;  /* new destination */
	struct ml_addr bind; /* source to bind, zero = do not bind */
	__u16 port;          /* new destination port, host order */
	__u8 odst_flags;     /* ML_ODST_F_* for the record */
};

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

static __always_inline int ml_is_passthrough_src(const struct ml_addr *src)
{
	if (ml_addr_is_v4(src))
		return src->w[3] == bpf_htonl(ML_INBOUND_PASSTHROUGH_IP4);
	return src->w[0] == 0 && src->w[1] == 0 && src->w[2] == 0 &&
	       src->w[3] == bpf_htonl(ML_INBOUND_PASSTHROUGH_IP6);
}

/* The decision, shared by IPv4 and IPv6. */
static __always_inline enum ml_verdict ml_connect_decide(const struct ml_connect_req *req,
							 struct ml_connect_res *res)
{
	struct ml_pod_config *pc;
	struct ml_pod_cg *pod;
	struct ml_cfg cfg;
	int is_v4 = ml_addr_is_v4(&req->dst);

	pod = ml_current_pod();
	if (!pod || !(pod->flags & ML_POD_F_MESHED))
		return ML_VERDICT_PASS;
	if (ml_addr_is_local(&req->dst))
		return ML_VERDICT_PASS;

	ml_settings_get(&cfg);

	if (ml_current_is_proxy(pod, &cfg)) {
		/* The proxy. Its passthrough to the local app and its calls to
		 * its own pod go straight; to another meshed pod on this node it
		 * goes to that pod's inbound listener (what ISTIO_INBOUND would
		 * do when the packet arrived there); anything else is untouched. */
		if (ml_is_passthrough_src(&req->src))
			return ML_VERDICT_PASS;
		if (ml_is_own_ip(pod, &req->dst))
			return ML_VERDICT_PASS;
		pc = bpf_map_lookup_elem(&ml_pods_ip, req->dst.w);
		if (!pc)
			return ML_VERDICT_PASS; /* not a meshed pod on this node */
		if (!ml_inbound_captured(pc, req->dport, cfg.inbound_port, cfg.outbound_port))
			return ML_VERDICT_EXCLUDED;
		res->dst = req->dst;
		res->port = cfg.inbound_port;
		__builtin_memset(&res->bind, 0, sizeof(res->bind));
		res->odst_flags = ML_ODST_F_INBOUND;
		return ML_VERDICT_REDIRECT_IN;
	}

	/* An application socket. Traffic to its own pod IP stays on lo and is
	 * not captured (ISTIO_OUTPUT: -o lo ! --uid-owner 1337 -j RETURN). */
	if (ml_is_own_ip(pod, &req->dst))
		return ML_VERDICT_PASS;

	/* The pod's config is stored under each of its IPs; any one will do. */
	if (pod->flags & ML_POD_F_HAS_V4)
		pc = bpf_map_lookup_elem(&ml_pods_ip, pod->ip4);
	else if (pod->flags & ML_POD_F_HAS_V6)
		pc = bpf_map_lookup_elem(&ml_pods_ip, pod->ip6);
	else
		pc = NULL;
	if (!pc) {
		ml_count(ML_CNT_ERR_NO_POD_CONFIG);
		return ML_VERDICT_PASS;
	}
	if (!ml_outbound_captured(pc, &req->dst, req->dport))
		return ML_VERDICT_EXCLUDED;

	/* -> 127.0.0.1 / ::ffff:127.0.0.1 (v4 destination) or ::1 */
	ml_addr_loopback(&res->dst, is_v4);
	res->port = cfg.outbound_port;
	res->odst_flags = ML_ODST_F_OUTBOUND;

	/* Bind the source to the pod IP of the destination's family, so that
	 * the proxy and, through it, the server see the pod's address. Only
	 * for an unbound socket: the kernel refuses a second bind. */
	__builtin_memset(&res->bind, 0, sizeof(res->bind));
	if (ml_addr_is_zero(&req->src) && req->sport == 0) {
		if (is_v4 && (pod->flags & ML_POD_F_HAS_V4))
			ml_addr_load(&res->bind, pod->ip4);
		else if (!is_v4 && (pod->flags & ML_POD_F_HAS_V6))
			ml_addr_load(&res->bind, pod->ip6);
	}
	return ML_VERDICT_REDIRECT_OUT;
}

/* Counter of a verdict: the CONNECT6 ids parallel the CONNECT4 ones. */
_Static_assert(ML_CNT_CONNECT6_REDIRECT_OUT - ML_CNT_CONNECT4_REDIRECT_OUT == 4 &&
		       ML_CNT_CONNECT6_REDIRECT_IN - ML_CNT_CONNECT4_REDIRECT_IN == 4 &&
		       ML_CNT_CONNECT6_PASS - ML_CNT_CONNECT4_PASS == 4 &&
		       ML_CNT_CONNECT6_EXCLUDED - ML_CNT_CONNECT4_EXCLUDED == 4,
	       "connect6 counters must parallel connect4 counters");
#define ML_CNT_CONNECT_FAMILY_STRIDE 4

static __always_inline void ml_count_verdict(enum ml_verdict v, int v6)
{
	__u32 id;

	switch (v) {
	case ML_VERDICT_REDIRECT_OUT:
		id = ML_CNT_CONNECT4_REDIRECT_OUT;
		break;
	case ML_VERDICT_REDIRECT_IN:
		id = ML_CNT_CONNECT4_REDIRECT_IN;
		break;
	case ML_VERDICT_EXCLUDED:
		id = ML_CNT_CONNECT4_EXCLUDED;
		break;
	default:
		id = ML_CNT_CONNECT4_PASS;
		break;
	}
	ml_count((enum ml_counter)(id + (v6 ? ML_CNT_CONNECT_FAMILY_STRIDE : 0)));
}

/* Remember the original destination under the socket cookie. */
static __always_inline void ml_remember(struct bpf_sock_addr *ctx, const struct ml_connect_req *req,
					const struct ml_connect_res *res)
{
	struct ml_orig_dst od = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	ml_addr_store(od.addr, &req->dst);
	od.port = bpf_htons(req->dport);
	od.family = ml_addr_is_v4(&req->dst) ? ML_FAMILY_V4 : ML_FAMILY_V6;
	od.flags = res->odst_flags | (req->v6_socket ? ML_ODST_F_V6_SOCKET : 0);
	if (bpf_map_update_elem(&ml_odst_ck, &cookie, &od, BPF_ANY))
		ml_count(ML_CNT_ERR_ODST_CK_UPDATE);
}

static __always_inline int ml_is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == ML_SOCK_STREAM && ctx->protocol == IPPROTO_TCP;
}

/* cgroup/connect4: AF_INET sockets. */
static __always_inline void ml_connect4_impl(struct bpf_sock_addr *ctx)
{
	struct ml_connect_req req = {};
	struct ml_connect_res res = {};
	struct bpf_sock *sk = ctx->sk;
	enum ml_verdict v;
	__be32 src4;

	if (!ml_is_tcp(ctx) || !sk) {
		if (ml_dns_redirect4(ctx)) /* UDP to port 53 of a pod with DNS capture */
			return;
		ml_count(ML_CNT_CONNECT4_PASS);
		return;
	}
	ml_addr_from_v4(&req.dst, ctx->user_ip4);
	req.dport = bpf_ntohs((__u16)ctx->user_port);
	src4 = ML_CTX_READ(sk->src_ip4);
	if (src4)
		ml_addr_from_v4(&req.src, src4);
	req.sport = (__u16)sk->src_port;

	v = ml_connect_decide(&req, &res);
	ml_count_verdict(v, req.v6_socket);
	if (v != ML_VERDICT_REDIRECT_OUT && v != ML_VERDICT_REDIRECT_IN)
		return;

	ml_remember(ctx, &req, &res);
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in sa = {};

		sa.sin_family = ML_FAMILY_V4;
		sa.sin_addr.s_addr = ml_addr_v4(&res.bind);
		sa.sin_port = 0; /* like IP_BIND_ADDRESS_NO_PORT: port chosen at connect */
		if (bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa)))
			ml_count(ML_CNT_ERR_BIND);
	}
	ctx->user_ip4 = ml_addr_v4(&res.dst);
	ctx->user_port = bpf_htons(res.port);
}

/* cgroup/connect6: AF_INET6 sockets (v4-mapped destinations included). */
static __always_inline void ml_connect6_impl(struct bpf_sock_addr *ctx)
{
	struct ml_connect_req req = {};
	struct ml_connect_res res = {};
	struct bpf_sock *sk = ctx->sk;
	enum ml_verdict v;

	if (!ml_is_tcp(ctx) || !sk) {
		if (ml_dns_redirect6(ctx)) /* UDP to port 53 of a pod with DNS capture */
			return;
		ml_count(ML_CNT_CONNECT6_PASS);
		return;
	}
	ML_READ_ADDR6(&req.dst, ctx->user_ip6);
	req.dport = bpf_ntohs((__u16)ctx->user_port);
	ML_READ_ADDR6(&req.src, sk->src_ip6);
	req.sport = (__u16)sk->src_port;
	req.v6_socket = 1;

	v = ml_connect_decide(&req, &res);
	ml_count_verdict(v, req.v6_socket);
	if (v != ML_VERDICT_REDIRECT_OUT && v != ML_VERDICT_REDIRECT_IN)
		return;

	ml_remember(ctx, &req, &res);
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in6 sa = {};

		sa.sin6_family = ML_FAMILY_V6;
		__builtin_memcpy(&sa.sin6_addr, &res.bind, sizeof(sa.sin6_addr));
		sa.sin6_port = 0;
		if (bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa)))
			ml_count(ML_CNT_ERR_BIND);
	}
	ML_WRITE_ADDR6(ctx->user_ip6, &res.dst);
	ctx->user_port = bpf_htons(res.port);
}

#endif /* MESHLANE_LIB_CONNECT_H */
