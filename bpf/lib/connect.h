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
#include "lib/tuple.h"

enum ml_verdict {
	ML_VERDICT_PASS = 0,          /* not ours: leave the socket alone */
	ML_VERDICT_EXCLUDED = 1,      /* a meshed pod's traffic excluded by its rules */
	ML_VERDICT_REDIRECT_OUT = 2,  /* -> local outbound listener (loopback:15001) */
	ML_VERDICT_REDIRECT_IN = 3,   /* proxy -> peer pod's inbound listener (peer:15006) */
	ML_VERDICT_REDIRECT_SELF = 4, /* the proxy over lo -> its own inbound listener (loopback:15006) */
	ML_VERDICT_REDIRECT_DNS = 5,  /* TCP to port 53 -> the DNS listener (loopback:15053) */
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

/* Does the connection leave by the pod's lo? Its destination is loopback
 * (127/8, ::1), unspecified, the passthrough address ::6 (on lo in every
 * Istio pod), or one of the pod's own IPs. Istio's "-o lo" rules match
 * exactly these (other addresses of the pod netns are not known here). */
static __always_inline int ml_dst_on_lo(const struct ml_pod_cg *pod, const struct ml_addr *dst)
{
	return ml_addr_is_local(dst) || ml_addr_is_passthrough(dst) || ml_is_own_ip(pod, dst);
}

/*
 * Istio's nat OUTPUT chain ISTIO_OUTPUT for a TCP connect() of a meshed pod,
 * rule by rule in its order (docs/datapath.md, "Istio's rules, line by
 * line"). `proxy` is ml_proxy_match(): the uid rules and the gid rules are
 * separate, as in Istio. PASS and EXCLUDED are both Istio's RETURN.
 */
static __always_inline enum ml_verdict ml_output_chain(const struct ml_pod_cg *pod, const struct ml_pod_config *pc,
							const struct ml_connect_req *req, __u32 proxy)
{
	int on_lo = ml_dst_on_lo(pod, &req->dst);
	int localhost = ml_addr_is_localhost(&req->dst);
	int dns53 = (pod->flags & ML_POD_F_DNS_CAPTURE) && req->dport == ML_DNS_SERVER_PORT;
	int to_self;

	/* -p tcp --dport <excludeOutboundPorts> -j RETURN (15020 by default) */
	if (ml_port_listed(pc->exclude_out_ports, req->dport))
		return ML_VERDICT_EXCLUDED;
	/* -o lo -s 127.0.0.6/32 -j RETURN (IPv6: ::6). An unbound socket
	 * connecting to ::6 gets ::6 as its source (the address is on lo;
	 * IPv4's 127.0.0.6 gets 127.0.0.1, the source of lo's 127/8 route). */
	if (on_lo && (ml_addr_is_passthrough(&req->src) ||
		      (ml_addr_is_zero(&req->src) && !ml_addr_is_v4(&req->dst) && ml_addr_is_passthrough(&req->dst))))
		return ML_VERDICT_PASS;
	/* -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 (with DNS capture:
	 * ! --dports 53,15008) -m owner --uid-owner U -j ISTIO_IN_REDIRECT */
	to_self = on_lo && !localhost && req->dport != ML_PORT_TUNNEL;
	if (proxy & ML_PROXY_UID)
		return to_self && !dns53 ? ML_VERDICT_REDIRECT_SELF : ML_VERDICT_PASS; /* --uid-owner U -j RETURN */
	/* -o lo [-p tcp ! --dport 53] -m owner ! --uid-owner U -j RETURN, left
	 * out by Istio when includeOutboundIPRanges holds a loopback range; the
	 * same for ! --gid-owner G */
	if (on_lo && !dns53 && !ml_out_includes_loopback(pc))
		return ML_VERDICT_PASS;
	/* -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner G
	 * -j ISTIO_IN_REDIRECT (no port 53 exception in Istio's gid rule) */
	if (proxy & ML_PROXY_GID)
		return to_self ? ML_VERDICT_REDIRECT_SELF : ML_VERDICT_PASS; /* --gid-owner G -j RETURN */
	/* ISTIO_OUTPUT_DNS: -p tcp --dport 53 -j REDIRECT --to-ports 15053 */
	if (dns53)
		return ML_VERDICT_REDIRECT_DNS;
	/* -d 127.0.0.1/32 -j RETURN */
	if (localhost)
		return ML_VERDICT_PASS;
	/* excluded ranges, included ports, included ranges (lib/policy.h) */
	return ml_outbound_captured(pc, &req->dst, req->dport) ? ML_VERDICT_REDIRECT_OUT : ML_VERDICT_EXCLUDED;
}

/* A connection of the proxy that its own pod's rules let go (RETURN), to
 * another meshed pod on this node: that pod's ISTIO_INBOUND would send it to
 * its inbound listener when it arrives; do it here, at connect(). */
static __always_inline enum ml_verdict ml_peer_inbound(const struct ml_connect_req *req, const struct ml_cfg *cfg,
							struct ml_connect_res *res, enum ml_verdict v)
{
	struct ml_pod_config *peer = bpf_map_lookup_elem(&ml_pods_ip, req->dst.w);

	if (!peer)
		return v; /* not a meshed pod on this node */
	if (!ml_inbound_captured(peer, req->dport, cfg->inbound_port))
		return ML_VERDICT_EXCLUDED;
	res->dst = req->dst;
	res->port = cfg->inbound_port;
	res->odst_flags = ML_ODST_F_INBOUND;
	return ML_VERDICT_REDIRECT_IN;
}

/* The decision, shared by IPv4 and IPv6. */
static __always_inline enum ml_verdict ml_connect_decide(const struct ml_connect_req *req,
							 struct ml_connect_res *res)
{
	struct ml_pod_config *pc;
	struct ml_pod_cg *pod;
	struct ml_cfg cfg;
	enum ml_verdict v;
	__u32 proxy;
	int is_v4 = ml_addr_is_v4(&req->dst);

	pod = ml_current_pod();
	if (!pod || !(pod->flags & ML_POD_F_MESHED))
		return ML_VERDICT_PASS;
	pc = ml_pod_own_config(pod);
	if (!pc) {
		ml_count(ML_CNT_ERR_NO_POD_CONFIG);
		return ML_VERDICT_PASS;
	}
	ml_settings_get(&cfg);
	proxy = ml_proxy_match(pod, &cfg);

	__builtin_memset(&res->bind, 0, sizeof(res->bind));
	v = ml_output_chain(pod, pc, req, proxy);
	switch (v) {
	case ML_VERDICT_REDIRECT_SELF:
		/* REDIRECT in nat OUTPUT goes to the loopback address */
		ml_addr_loopback(&res->dst, is_v4);
		res->port = cfg.inbound_port;
		res->odst_flags = ML_ODST_F_INBOUND;
		return v;
	case ML_VERDICT_REDIRECT_DNS:
		ml_addr_loopback(&res->dst, is_v4);
		res->port = cfg.dns_port;
		res->odst_flags = ML_ODST_F_OUTBOUND;
		return v;
	case ML_VERDICT_REDIRECT_OUT:
		break;
	default:
		if (proxy && !ml_dst_on_lo(pod, &req->dst))
			return ml_peer_inbound(req, &cfg, res, v);
		return v;
	}

	/* -> 127.0.0.1 / ::ffff:127.0.0.1 (v4 destination); IPv6: the pod's own
	 * IPv6 address, or ::1 when the socket is bound to ::1 or the pod has
	 * none. Not ::1 with a global source: the kernel loses the ACKs and
	 * RSTs it sends for such a connection from its control socket (a
	 * TIME_WAIT socket's ACK of the peer's FIN, the RST of a SYN_SENT
	 * socket), so the proxy's socket stays in LAST_ACK for minutes and a
	 * new connection that gets the same source port back (tcp_tw_reuse
	 * counts ::1 as loopback) stalls in SYN_SENT against it
	 * (docs/datapath.md, "IPv6 outbound listener address"). */
	ml_addr_loopback(&res->dst, is_v4);
	if (!is_v4 && (pod->flags & ML_POD_F_HAS_V6) && !ml_addr_is_loopback(&req->src))
		ml_addr_load(&res->dst, pod->ip6);
	res->port = cfg.outbound_port;
	res->odst_flags = ML_ODST_F_OUTBOUND;

	/* Bind the source to the pod IP of the destination's family, so that
	 * the proxy and, through it, the server see the pod's address. Only
	 * for an unbound socket (the kernel refuses a second bind) going to a
	 * non-loopback address (over lo Istio's source is loopback too). */
	if (ml_addr_is_zero(&req->src) && req->sport == 0 && !ml_addr_is_local(&req->dst)) {
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
	case ML_VERDICT_REDIRECT_DNS:
		ml_count(ML_CNT_DNS_REDIRECTED);
		return;
	case ML_VERDICT_REDIRECT_OUT:
		id = ML_CNT_CONNECT4_REDIRECT_OUT;
		break;
	case ML_VERDICT_REDIRECT_IN:
	case ML_VERDICT_REDIRECT_SELF:
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
#ifdef ML_NETNS_FROM_STORAGE
	/* A socket made before the datapath was loaded has no netns record
	 * yet (ml_sock_create makes it for the others). */
	if (ctx->sk)
		ML_SK_NETNS_SET(ctx, ctx->sk);
#endif
}

/* Decide and count; 1 when the socket is to be rewritten (the original
 * destination is remembered then). */
static __always_inline int ml_connect_rewrite(struct bpf_sock_addr *ctx, const struct ml_connect_req *req,
					      struct ml_connect_res *res)
{
	enum ml_verdict v = ml_connect_decide(req, res);

	ml_count_verdict(v, req->v6_socket);
	if (v == ML_VERDICT_PASS || v == ML_VERDICT_EXCLUDED)
		return 0;
	ml_remember(ctx, req, res);
	return 1;
}

/* Bind the source address, port 0 (like IP_BIND_ADDRESS_NO_PORT: the port is
 * chosen at connect). */
static __always_inline void ml_bind_source(struct bpf_sock_addr *ctx, struct sockaddr *sa, int len)
{
	if (bpf_bind(ctx, sa, len))
		ml_count(ML_CNT_ERR_BIND);
}

static __always_inline int ml_is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == ML_SOCK_STREAM && ctx->protocol == IPPROTO_TCP;
}

/* A connect() that is not TCP: UDP to port 53 of a pod with DNS capture is
 * DNS (lib/dns.h); anything else passes. */
static __always_inline void ml_connect_not_tcp(struct bpf_sock_addr *ctx, int v6)
{
	if (v6 ? ml_dns_redirect6(ctx) : ml_dns_redirect4(ctx))
		return;
	ml_count(v6 ? ML_CNT_CONNECT6_PASS : ML_CNT_CONNECT4_PASS);
}

/* cgroup/connect4: AF_INET sockets. */
static __always_inline void ml_connect4_impl(struct bpf_sock_addr *ctx)
{
	struct ml_connect_req req = {};
	struct ml_connect_res res = {};
	struct bpf_sock *sk = ctx->sk;
	__be32 src4;

	if (!ml_is_tcp(ctx) || !sk) {
		ml_connect_not_tcp(ctx, 0);
		return;
	}
	ml_addr_from_v4(&req.dst, ctx->user_ip4);
	req.dport = bpf_ntohs((__u16)ctx->user_port);
	src4 = ML_CTX_READ(sk->src_ip4);
	if (src4)
		ml_addr_from_v4(&req.src, src4);
	req.sport = (__u16)sk->src_port;

	if (!ml_connect_rewrite(ctx, &req, &res))
		return;
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in sa = {.sin_family = ML_FAMILY_V4, .sin_addr.s_addr = ml_addr_v4(&res.bind)};

		ml_bind_source(ctx, (struct sockaddr *)&sa, sizeof(sa));
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

	if (!ml_is_tcp(ctx) || !sk) {
		ml_connect_not_tcp(ctx, 1);
		return;
	}
	ML_READ_ADDR6(&req.dst, ctx->user_ip6);
	req.dport = bpf_ntohs((__u16)ctx->user_port);
	ML_READ_ADDR6(&req.src, sk->src_ip6);
	req.sport = (__u16)sk->src_port;
	req.v6_socket = 1;

	if (!ml_connect_rewrite(ctx, &req, &res))
		return;
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in6 sa = {.sin6_family = ML_FAMILY_V6};

		__builtin_memcpy(&sa.sin6_addr, &res.bind, sizeof(sa.sin6_addr));
		ml_bind_source(ctx, (struct sockaddr *)&sa, sizeof(sa));
	}
	ML_WRITE_ADDR6(ctx->user_ip6, &res.dst);
	ctx->user_port = bpf_htons(res.port);
}

#endif /* MESHLANE_LIB_CONNECT_H */
