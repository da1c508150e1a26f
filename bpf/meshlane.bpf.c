// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * meshlane datapath: sidecar interception without iptables. This file is the
 * table of entry points; each body lives in a header of lib/.
 *
 *   program        section                     job                                        body
 *   ml_connect4/6  cgroup/connect4, connect6   app -> 15001, proxy -> 15006 (peer, self)   lib/connect.h
 *                                              UDP connect() to port 53 -> DNS listener     lib/dns.h
 *   ml_sockops     sockops                     cookie record -> 4-tuple record, sockhash   lib/sockops.h
 *   ml_getsockopt  cgroup/getsockopt           SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST      lib/sockopt.h
 *   ml_redirect    sk_msg (ml_sock_pairs)      same-node app <-> proxy bypass              lib/redirect.h
 *   ml_sendmsg4/6  cgroup/sendmsg4, sendmsg6   UDP DNS -> the DNS listener                 lib/dns.h
 *   ml_recvmsg4/6  cgroup/recvmsg4, recvmsg6   DNS replies shown from the server asked     lib/dns.h
 *   ml_tc_ingress  tc (pod interface, ingress) inbound from other nodes -> 15006           lib/inbound.h
 *   ml_tc_egress   tc (pod interface, egress)  replies get the original port back          lib/inbound.h
 *   ml_sock_create cgroup/sock_create          a TCP socket's netns cookie -> ml_sk_netns  lib/tuple.h
 *                  (only in meshlane-compat.o, built with ML_NETNS_FROM_STORAGE for kernels
 *                  before 5.15, whose sock_ops, sk_msg and getsockopt programs cannot call
 *                  bpf_get_netns_cookie)
 *
 * Maps, structs and constants: meshlane.h. Documentation: docs/datapath.md.
 * Nothing here ever blocks a syscall: every error path lets the call go on
 * and is counted.
 */
#include "lib/common.h"
#include "lib/connect.h"
#include "lib/sockops.h"
#include "lib/sockopt.h"
#include "lib/redirect.h"
#include "lib/dns.h"
#include "lib/inbound.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Which build this is: 1 = netns cookies from bpf_get_netns_cookie (5.15
 * on), 2 = from socket storage (ML_NETNS_FROM_STORAGE, meshlane-compat.o).
 * Also gives .rodata a named variable: the compiler puts anonymous
 * constants there, and 5.10's BTF checker refuses a DATASEC without
 * variables ("vlen == 0"), which would make libbpf load without BTF. */
#ifdef ML_NETNS_FROM_STORAGE
const volatile __u32 ml_object_variant = 2;
#else
const volatile __u32 ml_object_variant = 1;
#endif

SEC("cgroup/connect4")
int ml_connect4(struct bpf_sock_addr *ctx)
{
	ml_connect4_impl(ctx);
	return ML_CG_ALLOW;
}

SEC("cgroup/connect6")
int ml_connect6(struct bpf_sock_addr *ctx)
{
	ml_connect6_impl(ctx);
	return ML_CG_ALLOW;
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	ml_sockops_impl(skops);
	return ML_CG_ALLOW;
}

SEC("cgroup/getsockopt")
int ml_getsockopt(struct bpf_sockopt *ctx)
{
	ml_getsockopt_impl(ctx);
	return ML_CG_ALLOW;
}

SEC("sk_msg")
int ml_redirect(struct sk_msg_md *msg)
{
	return ml_redirect_impl(msg);
}

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

#ifdef ML_NETNS_FROM_STORAGE
SEC("cgroup/sock_create")
int ml_sock_create(struct bpf_sock *sk)
{
	if (sk->type == ML_SOCK_STREAM && sk->protocol == IPPROTO_TCP &&
	    (sk->family == ML_FAMILY_V4 || sk->family == ML_FAMILY_V6))
		ML_SK_NETNS_SET(sk, sk);
	return ML_CG_ALLOW;
}
#endif
