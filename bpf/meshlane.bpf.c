// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * meshlane datapath: sidecar interception without iptables.
 *
 *   ml_connect4/6  cgroup/connect4, connect6   redirect app -> 15001, proxy -> peer:15006
 *   ml_sockops     sockops                     cookie record -> 4-tuple record, sockhash
 *   ml_getsockopt  cgroup/getsockopt           SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST
 *   ml_redirect    sk_msg (ml_sock_pairs)      same-node app <-> proxy bypass
 *
 * Maps, structs and constants: meshlane.h. Documentation: docs/datapath.md.
 * Nothing here ever blocks a syscall: every error path lets the call go on
 * and is counted.
 */
#include "lib/common.h"
#include "lib/policy.h"
#include "lib/inbound.h"
#include "lib/dns.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ======================================================================
 * connect4 / connect6
 * ==================================================================== */

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

/* The pod of the current task: the first ancestor cgroup (from the top)
 * that is registered. */
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
	if (is_v4) {
		ml_addr_from_v4(&res->dst, bpf_htonl(INADDR_LOOPBACK));
	} else {
		res->dst.w[0] = 0;
		res->dst.w[1] = 0;
		res->dst.w[2] = 0;
		res->dst.w[3] = bpf_htonl(1);
	}
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

SEC("cgroup/connect4")
int ml_connect4(struct bpf_sock_addr *ctx)
{
	struct ml_connect_req req = {};
	struct ml_connect_res res = {};
	struct bpf_sock *sk = ctx->sk;
	enum ml_verdict v;
	__be32 src4;

	if (!ml_is_tcp(ctx) || !sk) {
		if (ml_dns_redirect4(ctx)) /* UDP to port 53 of a pod with DNS capture */
			return ML_CG_ALLOW;
		ml_count(ML_CNT_CONNECT4_PASS);
		return ML_CG_ALLOW;
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
		return ML_CG_ALLOW;

	ml_remember(ctx, &req, &res);
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in sa = {};

		sa.sin_family = ML_FAMILY_V4;
		sa.sin_addr.s_addr = res.bind.w[3];
		sa.sin_port = 0; /* like IP_BIND_ADDRESS_NO_PORT: port chosen at connect */
		if (bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa)))
			ml_count(ML_CNT_ERR_BIND);
	}
	ctx->user_ip4 = res.dst.w[3];
	ctx->user_port = bpf_htons(res.port);
	return ML_CG_ALLOW;
}

SEC("cgroup/connect6")
int ml_connect6(struct bpf_sock_addr *ctx)
{
	struct ml_connect_req req = {};
	struct ml_connect_res res = {};
	struct bpf_sock *sk = ctx->sk;
	enum ml_verdict v;

	if (!ml_is_tcp(ctx) || !sk) {
		if (ml_dns_redirect6(ctx)) /* UDP to port 53 of a pod with DNS capture */
			return ML_CG_ALLOW;
		ml_count(ML_CNT_CONNECT6_PASS);
		return ML_CG_ALLOW;
	}
	req.dst.w[0] = ML_CTX_READ(ctx->user_ip6[0]);
	req.dst.w[1] = ML_CTX_READ(ctx->user_ip6[1]);
	req.dst.w[2] = ML_CTX_READ(ctx->user_ip6[2]);
	req.dst.w[3] = ML_CTX_READ(ctx->user_ip6[3]);
	req.dport = bpf_ntohs((__u16)ctx->user_port);
	req.src.w[0] = ML_CTX_READ(sk->src_ip6[0]);
	req.src.w[1] = ML_CTX_READ(sk->src_ip6[1]);
	req.src.w[2] = ML_CTX_READ(sk->src_ip6[2]);
	req.src.w[3] = ML_CTX_READ(sk->src_ip6[3]);
	req.sport = (__u16)sk->src_port;
	req.v6_socket = 1;

	v = ml_connect_decide(&req, &res);
	ml_count_verdict(v, req.v6_socket);
	if (v != ML_VERDICT_REDIRECT_OUT && v != ML_VERDICT_REDIRECT_IN)
		return ML_CG_ALLOW;

	ml_remember(ctx, &req, &res);
	if (!ml_addr_is_zero(&res.bind)) {
		struct sockaddr_in6 sa = {};

		sa.sin6_family = ML_FAMILY_V6;
		__builtin_memcpy(&sa.sin6_addr, &res.bind, sizeof(sa.sin6_addr));
		sa.sin6_port = 0;
		if (bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa)))
			ml_count(ML_CNT_ERR_BIND);
	}
	ctx->user_ip6[0] = res.dst.w[0];
	ctx->user_ip6[1] = res.dst.w[1];
	ctx->user_ip6[2] = res.dst.w[2];
	ctx->user_ip6[3] = res.dst.w[3];
	ctx->user_port = bpf_htons(res.port);
	return ML_CG_ALLOW;
}

/* ======================================================================
 * Tuples
 * ==================================================================== */

/* netns is part of the key only when the tuple is loopback (see meshlane.h). */
static __always_inline int ml_tuple_needs_netns(const struct ml_addr *a, const struct ml_addr *b)
{
	return ml_addr_is_loopback(a) || ml_addr_is_loopback(b);
}

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

#define ML_READ_ADDR6(a, arr)                       \
	do {                                        \
		(a)->w[0] = ML_CTX_READ((arr)[0]); \
		(a)->w[1] = ML_CTX_READ((arr)[1]); \
		(a)->w[2] = ML_CTX_READ((arr)[2]); \
		(a)->w[3] = ML_CTX_READ((arr)[3]); \
	} while (0)

/* The socket's own ends from a sock_ops context. */
static __always_inline void ml_sockops_ends(struct bpf_sock_ops *skops, struct ml_addr *local,
					    struct ml_addr *remote)
{
	__be32 l4 = ML_CTX_READ(skops->local_ip4), r4 = ML_CTX_READ(skops->remote_ip4);
	struct ml_addr l6, r6;

	ML_READ_ADDR6(&l6, skops->local_ip6);
	ML_READ_ADDR6(&r6, skops->remote_ip6);
	ml_pick_ends(skops->family, l4, r4, &l6, &r6, local, remote);
}

/* ======================================================================
 * sockops
 * ==================================================================== */

/* Both ends as the kernel sees them from this socket. */
struct ml_sock_view {
	struct ml_addr local, remote;
	__u16 lport, rport; /* host order */
	__u64 netns;        /* 0 unless loopback */
};

static __always_inline void ml_sockops_view(struct bpf_sock_ops *skops, struct ml_sock_view *v)
{
	ml_sockops_ends(skops, &v->local, &v->remote);
	v->lport = (__u16)skops->local_port;
	v->rport = (__u16)bpf_ntohl(skops->remote_port);
	v->netns = ml_tuple_needs_netns(&v->local, &v->remote) ? bpf_get_netns_cookie(skops) : 0;
}

/* Key of this socket in ml_sock_pairs: local -> remote. */
static __always_inline void ml_view_own(const struct ml_sock_view *v, struct ml_tuple *t)
{
	ml_tuple_set(t, &v->local, v->lport, &v->remote, v->rport);
	t->netns = v->netns;
}

/* The same tuple from the other end: remote -> local. */
static __always_inline void ml_view_peer(const struct ml_sock_view *v, struct ml_tuple *t)
{
	ml_tuple_set(t, &v->remote, v->rport, &v->local, v->lport);
	t->netns = v->netns;
}

static __always_inline void ml_watch_close(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void ml_sockhash_add(struct bpf_sock_ops *skops, struct ml_tuple *own,
					    __u8 odst_flags)
{
	struct ml_cfg cfg;

	/* With the switch off no socket enters the sockhash: a socket in a
	 * sockmap changes recv, FIONREAD and splice behaviour even when every
	 * message is passed (FACTS.md, docs/datapath.md). */
	ml_settings_get(&cfg);
	if (!(cfg.flags & ML_SET_F_SOCKMAP_REDIRECT))
		return;
	if ((cfg.flags & ML_SET_F_SOCKMAP_PROXY_ONLY) && !(odst_flags & ML_ODST_F_INBOUND))
		return;
	if (bpf_sock_hash_update(skops, &ml_sock_pairs, own, BPF_NOEXIST))
		ml_count(ML_CNT_ERR_SOCKHASH_UPDATE);
	else
		ml_count(ML_CNT_SOCKOPS_SOCKHASH_ADDED);
}

/* The connecting side (app, or proxy towards 15006): its cookie record,
 * written at connect, becomes the connection's 4-tuple record. */
static __always_inline void ml_active_established(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct ml_orig_dst *found, od;
	struct ml_sock_view v;
	struct ml_tuple t;

	found = bpf_map_lookup_elem(&ml_odst_ck, &cookie);
	if (!found)
		return; /* not a connection meshlane redirected */
	od = *found;
	bpf_map_delete_elem(&ml_odst_ck, &cookie);

	ml_sockops_view(skops, &v);
	ml_view_own(&v, &t); /* connection view: connecting end -> listener */
	if (bpf_map_update_elem(&ml_odst_tup, &t, &od, BPF_ANY)) {
		ml_count(ML_CNT_ERR_ODST_TUP_UPDATE);
		return;
	}
	ml_count(ML_CNT_SOCKOPS_ODST_SAVED);
	ml_watch_close(skops);
	ml_sockhash_add(skops, &t, od.flags);
}

/* The listener side (proxy at 15001 / 15006): joins the sockhash when the
 * connection is one meshlane redirected, i.e. has a 4-tuple record (the
 * connecting side is established, and recorded, before this one). */
static __always_inline void ml_passive_established(struct bpf_sock_ops *skops)
{
	struct ml_sock_view v;
	struct ml_tuple conn, own;

	struct ml_orig_dst *od;

	ml_sockops_view(skops, &v);
	ml_view_peer(&v, &conn);
	od = bpf_map_lookup_elem(&ml_odst_tup, &conn);
	if (!od)
		return;
	ml_watch_close(skops);
	ml_view_own(&v, &own);
	ml_sockhash_add(skops, &own, od->flags);
}

/* A redirected connect is under way: watch it, so that a connection that
 * never gets established (refused, timed out) drops its cookie record at
 * once instead of waiting for the LRU. */
static __always_inline void ml_connecting(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);

	if (bpf_map_lookup_elem(&ml_odst_ck, &cookie))
		ml_watch_close(skops);
}

/* Either end closing ends the record (the listener side reads it right
 * after accept(), long before the connecting side can reach TCP_CLOSE). */
static __always_inline void ml_closed(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct ml_sock_view v;
	struct ml_tuple t;
	int deleted;

	if (bpf_map_delete_elem(&ml_odst_ck, &cookie) == 0)
		ml_count(ML_CNT_SOCKOPS_CONNECT_FAILED);

	ml_sockops_view(skops, &v);
	ml_view_own(&v, &t);
	deleted = bpf_map_delete_elem(&ml_odst_tup, &t) == 0;
	ml_view_peer(&v, &t);
	deleted |= bpf_map_delete_elem(&ml_odst_tup, &t) == 0;
	if (deleted)
		ml_count(ML_CNT_SOCKOPS_ODST_DELETED);
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != ML_FAMILY_V4 && skops->family != ML_FAMILY_V6)
		return ML_CG_ALLOW;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		ml_connecting(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		ml_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		ml_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == ML_TCP_CLOSE)
			ml_closed(skops);
		break;
	default:
		break;
	}
	return ML_CG_ALLOW;
}

/* ======================================================================
 * getsockopt: SO_ORIGINAL_DST (SOL_IP, 80) and IP6T_SO_ORIGINAL_DST
 * (SOL_IPV6, 80)
 * ==================================================================== */

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
	conn->netns = ml_tuple_needs_netns(remote, &pre) ? bpf_get_netns_cookie(ctx) : 0;
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
		conn.netns = bpf_get_netns_cookie(ctx);
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
		__builtin_memcpy(&sin->sin_addr.s_addr, &od->addr[12], sizeof(sin->sin_addr.s_addr));
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

SEC("cgroup/getsockopt")
int ml_getsockopt(struct bpf_sockopt *ctx)
{
	if ((ctx->level == ML_SOL_IP && ctx->optname == ML_SO_ORIGINAL_DST) ||
	    (ctx->level == ML_SOL_IPV6 && ctx->optname == ML_IP6T_SO_ORIGINAL_DST)) {
		if (ml_answer_original_dst(ctx))
			return ML_CG_ALLOW;
	}
	/* Not ours: optlen 0 tells the kernel to hand the caller exactly what
	 * its own getsockopt produced (buffer, length and return value), for
	 * any size: replies larger than the page the program sees
	 * (iptables' 15 KB IPT_SO_GET_ENTRIES) would otherwise fail with
	 * EFAULT, and a failed call would get our zeroed copy of the buffer
	 * (Documentation/bpf/prog_cgroup_sockopt.rst, "Large optval";
	 * kernel/bpf/cgroup.c copies nothing back when optlen is 0). */
	ctx->optlen = 0;
	return ML_CG_ALLOW;
}

/* ======================================================================
 * sk_msg on ml_sock_pairs
 * ==================================================================== */

SEC("sk_msg")
int ml_redirect(struct sk_msg_md *msg)
{
	struct ml_addr local, remote, l6, r6;
	__be32 l4, r4;
	struct ml_tuple peer;

	/* No look at the switch here: the switch decides which sockets join
	 * ml_sock_pairs (sockops), and a socket that joined keeps the bypass
	 * until it closes. Passing its bytes the normal way once the switch is
	 * off would change a live connection under the application: a socket
	 * in a sockmap answers FIONREAD from its psock queue only (6.18.14+), so
	 * the bytes its peer then sends on the normal TCP queue stay invisible
	 * to a FIONREAD reader, which waits forever (test/kernel/
	 * datapath-sockmap.test.ts, "switch flipped on -> off"). */
	l4 = ML_CTX_READ(msg->local_ip4);
	r4 = ML_CTX_READ(msg->remote_ip4);
	ML_READ_ADDR6(&l6, msg->local_ip6);
	ML_READ_ADDR6(&r6, msg->remote_ip6);
	ml_pick_ends(msg->family, l4, r4, &l6, &r6, &local, &remote);
	/* The peer's own key: its local end is our remote end. */
	ml_tuple_set(&peer, &remote, (__u16)bpf_ntohl(msg->remote_port), &local,
		     (__u16)msg->local_port);
	if (ml_tuple_needs_netns(&local, &remote))
		peer.netns = bpf_get_netns_cookie(msg);

	/* On a miss the helper returns SK_DROP without choosing a target;
	 * returning SK_PASS then sends the bytes the normal way. On a hit,
	 * SK_PASS with the target chosen means "redirect". */
	if (bpf_msg_redirect_hash(msg, &ml_sock_pairs, &peer, BPF_F_INGRESS) == SK_PASS)
		ml_count(ML_CNT_REDIRECT_OK);
	else
		ml_count(ML_CNT_REDIRECT_NO_PEER);
	return SK_PASS;
}

/* ======================================================================
 * DNS capture: sendmsg4/6, recvmsg4/6 (lib/dns.h; UDP connect() is
 * handled in ml_connect4/6)
 * ==================================================================== */

SEC("cgroup/sendmsg4")
int ml_sendmsg4(struct bpf_sock_addr *ctx)
{
	ml_dns_sendmsg4(ctx);
	return ML_CG_ALLOW;
}

SEC("cgroup/sendmsg6")
int ml_sendmsg6(struct bpf_sock_addr *ctx)
{
	ml_dns_sendmsg6(ctx);
	return ML_CG_ALLOW;
}

SEC("cgroup/recvmsg4")
int ml_recvmsg4(struct bpf_sock_addr *ctx)
{
	ml_dns_recvmsg4(ctx);
	return ML_CG_ALLOW;
}

SEC("cgroup/recvmsg6")
int ml_recvmsg6(struct bpf_sock_addr *ctx)
{
	ml_dns_recvmsg6(ctx);
	return ML_CG_ALLOW;
}

/* ======================================================================
 * Inbound from other nodes: tc clsact on the pod's interface, inside its
 * netns (lib/inbound.h)
 * ==================================================================== */

SEC("tc")
int ml_tc_ingress(struct __sk_buff *skb)
{
	return ml_tc_ingress_impl(skb);
}

SEC("tc")
int ml_tc_egress(struct __sk_buff *skb)
{
	return ml_tc_egress_impl(skb);
}
