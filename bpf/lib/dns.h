/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * DNS capture: UDP to port 53 of a pod with ML_POD_F_DNS_CAPTURE
 * goes to the proxy's DNS listener on loopback (127.0.0.1 / ::1 :dns_port),
 * and the reply appears to come from the server the application asked.
 *
 *   cgroup/sendmsg4/6   sendto()/sendmsg() with an address: rewrite it
 *   cgroup/connect4/6   connect() of a UDP socket (glibc's resolver does
 *                       that): rewrite it (called from ml_connect4/6 for
 *                       non-TCP sockets only: TCP is never touched here)
 *   cgroup/recvmsg4/6   recvfrom()/recvmsg() asking for the source: a reply
 *                       from the DNS listener is shown as coming from the
 *                       original server
 *
 * Istio's rules being matched (istio-iptables with DNS capture):
 *   -p udp --dport 53 -m owner --uid-owner 1337 -j RETURN
 *   -p udp --dport 53 -m owner --gid-owner 1337 -j RETURN   (when a gid is set)
 *   -p udp --dport 53 -j REDIRECT --to-ports 15053
 * and conntrack's reverse NAT of the reply, done here per socket: socket
 * cookie -> the server last asked (ml_dns_ck). A resolver on loopback
 * (127.0.0.53) is captured too, as Istio does; TCP to port 53 is
 * ml_connect4/6's (lib/connect.h).
 *
 * Included once, by meshlane.bpf.c (through lib/connect.h).
 */
#ifndef MESHLANE_LIB_DNS_H
#define MESHLANE_LIB_DNS_H

#include "lib/common.h"
#include "lib/policy.h"

#define ML_DNS_SERVER_PORT 53
#define ML_SOCK_DGRAM      2 /* SOCK_DGRAM */

static __always_inline int ml_dns_is_udp(struct bpf_sock_addr *ctx)
{
	return ctx->type == ML_SOCK_DGRAM && ctx->protocol == IPPROTO_UDP;
}

/* Is this UDP datagram (or connect) to dst:dport one to capture? On yes,
 * *dns_port is the listener port (host order). Istio's order: excluded
 * outbound ports RETURN first, then the proxy's uid and gid RETURN, then
 * every UDP datagram to port 53, loopback resolvers (127.0.0.53) included. */
static __always_inline int ml_dns_should_capture(const struct ml_addr *dst, __u16 dport, __u16 *dns_port)
{
	struct ml_pod_config *pc;
	struct ml_pod_cg *pod;
	struct ml_cfg cfg;

	if (dport != ML_DNS_SERVER_PORT)
		return 0;
	pod = ml_current_pod();
	if (!pod)
		return 0;
	if ((pod->flags & (ML_POD_F_MESHED | ML_POD_F_DNS_CAPTURE)) !=
	    (ML_POD_F_MESHED | ML_POD_F_DNS_CAPTURE))
		return 0;
	pc = ml_pod_own_config(pod);
	if (pc && ml_port_listed(pc->exclude_out_ports, dport))
		return 0;

	ml_settings_get(&cfg);
	if (ml_proxy_match(pod, &cfg))
		return 0; /* the proxy's own upstream DNS */
	*dns_port = cfg.dns_port;
	return 1;
}

/* Remember the server asked under the socket cookie. 0 on success. */
static __always_inline int ml_dns_remember(struct bpf_sock_addr *ctx, const struct ml_addr *dst, __u16 dport,
					   int v6_socket)
{
	struct ml_orig_dst od = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	ml_addr_store(od.addr, dst);
	od.port = bpf_htons(dport);
	od.family = ml_addr_is_v4(dst) ? ML_FAMILY_V4 : ML_FAMILY_V6;
	od.flags = v6_socket ? ML_ODST_F_V6_SOCKET : 0;
	if (bpf_map_update_elem(&ml_dns_ck, &cookie, &od, BPF_ANY)) {
		ml_count(ML_CNT_ERR_DNS_RECORD);
		return -1;
	}
	return 0;
}

/* AF_INET socket (sendmsg4, connect4). Returns 1 when redirected. A
 * v4-mapped destination on an AF_INET6 socket arrives here as well: the
 * kernel hands such a sendmsg to udp_sendmsg with a sockaddr_in. */
static __always_inline int ml_dns_redirect4(struct bpf_sock_addr *ctx)
{
	struct ml_addr dst;
	__u16 dport, dns_port;

	if (!ml_dns_is_udp(ctx))
		return 0;
	ml_addr_from_v4(&dst, ctx->user_ip4);
	dport = bpf_ntohs((__u16)ctx->user_port);
	if (!ml_dns_should_capture(&dst, dport, &dns_port))
		return 0;
	if (ml_dns_remember(ctx, &dst, dport, 0))
		return 0; /* without a record the reply would be rejected: leave it */
	ctx->user_ip4 = bpf_htonl(INADDR_LOOPBACK);
	ctx->user_port = bpf_htons(dns_port);
	ml_count(ML_CNT_DNS_REDIRECTED);
	return 1;
}

/* AF_INET6 socket (sendmsg6, connect6): IPv6 -> ::1, v4-mapped ->
 * ::ffff:127.0.0.1. Returns 1 when redirected. */
static __always_inline int ml_dns_redirect6(struct bpf_sock_addr *ctx)
{
	struct ml_addr dst, lo;
	__u16 dport, dns_port;

	if (!ml_dns_is_udp(ctx))
		return 0;
	ML_READ_ADDR6(&dst, ctx->user_ip6);
	dport = bpf_ntohs((__u16)ctx->user_port);
	if (!ml_dns_should_capture(&dst, dport, &dns_port))
		return 0;
	if (ml_dns_remember(ctx, &dst, dport, 1))
		return 0;
	ml_addr_loopback(&lo, ml_addr_is_v4(&dst));
	ML_WRITE_ADDR6(ctx->user_ip6, &lo);
	ctx->user_port = bpf_htons(dns_port);
	ml_count(ML_CNT_DNS_REDIRECTED);
	return 1;
}

/* The record of this socket when the datagram comes from the DNS
 * listener (loopback:dns_port, as redirected to), else NULL. */
static __always_inline struct ml_orig_dst *ml_dns_reply_record(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct ml_orig_dst *od;
	struct ml_cfg cfg;

	od = bpf_map_lookup_elem(&ml_dns_ck, &cookie);
	if (!od)
		return NULL;
	ml_settings_get(&cfg);
	if ((__u16)ctx->user_port != bpf_htons(cfg.dns_port))
		return NULL;
	return od;
}

static __always_inline void ml_dns_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct ml_orig_dst *od = ml_dns_reply_record(ctx);
	struct ml_addr orig;

	if (!od || od->family != ML_FAMILY_V4)
		return;
	if (ctx->user_ip4 != bpf_htonl(INADDR_LOOPBACK))
		return;
	ml_addr_load(&orig, od->addr);
	ctx->user_ip4 = ml_addr_v4(&orig);
	ctx->user_port = od->port;
	ml_count(ML_CNT_DNS_REPLY_REWRITTEN);
}

static __always_inline void ml_dns_recvmsg6(struct bpf_sock_addr *ctx)
{
	struct ml_orig_dst *od = ml_dns_reply_record(ctx);
	struct ml_addr src, orig, lo;

	if (!od)
		return;
	ML_READ_ADDR6(&src, ctx->user_ip6);
	/* The listener address the datagram was sent to: ::ffff:127.0.0.1 for
	 * an IPv4 server, ::1 for an IPv6 one. */
	ml_addr_loopback(&lo, od->family == ML_FAMILY_V4);
	if (!ml_addr_eq(&src, &lo))
		return;
	ml_addr_load(&orig, od->addr);
	ML_WRITE_ADDR6(ctx->user_ip6, &orig);
	ctx->user_port = od->port;
	ml_count(ML_CNT_DNS_REPLY_REWRITTEN);
}

/* Entry bodies for the SEC() programs in meshlane.bpf.c. */
static __always_inline void ml_dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (!ml_dns_redirect4(ctx))
		ml_count(ML_CNT_DNS_PASS);
}

static __always_inline void ml_dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (!ml_dns_redirect6(ctx))
		ml_count(ML_CNT_DNS_PASS);
}

#endif /* MESHLANE_LIB_DNS_H */
