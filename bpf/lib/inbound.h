/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Inbound from other nodes: tc (clsact) programs on the pod's own interface,
 * inside its netns, attached by the CNI plugin at ADD (docs/datapath.md,
 * "Inbound from other nodes").
 *
 *   ml_tc_ingress  A new TCP connection (SYN without ACK) to the pod IP on a
 *                  port the pod's inbound rules capture (lib/policy.h,
 *                  ml_inbound_captured) -> the destination port becomes
 *                  the inbound listener (15006). On that SYN the flow is
 *                  remembered in ml_tc_flows (client addr/port + pod addr
 *                  -> original port), and every later packet of the flow
 *                  (a record whose original port is the packet's
 *                  destination port) is rewritten the same way; nothing
 *                  else is (replies to the pod's own outbound connections
 *                  arrive on "captured" ephemeral ports). On the SYN the
 *                  connection's ml_odst_tup record is written, keyed the
 *                  way ml_getsockopt looks it up for the proxy's accepted
 *                  socket: saddr/sport = the client (the connecting end),
 *                  daddr/dport = pod IP:15006 (the listener end after the
 *                  rewrite), netns 0 (neither end is loopback).
 *   ml_tc_egress   TCP from the pod IP's inbound listener port to a client
 *                  with a flow record -> the source port becomes the
 *                  original port again, so the client sees its own
 *                  connection.
 *
 * Only the L4 port changes, never an address, so only the TCP checksum is
 * fixed (bpf_l4_csum_replace: for CHECKSUM_PARTIAL skbs it leaves the
 * pseudo-header sum alone, as it must).
 *
 * What is left alone: non-TCP; packets not to (ingress) / from (egress) a
 * registered pod IP; ports the rules do not capture (status port, 15008,
 * 15020, 15021, 15090, excluded ports, the inbound listener 15006 itself:
 * the same-node inbound path of ml_connect4/6 already arrives there; a
 * connection to 15001 is steered to 15006, as ISTIO_INBOUND does). The
 * proxy's passthrough to its own app (from 127.0.0.6 / ::6, or to its own
 * pod IP) runs over lo and never crosses the pod interface.
 *
 * Never a corrupted packet: IPv4 fragments, IPv6 fragments, AH, a routing
 * header with segments left, or more extension headers than we walk pass
 * untouched and are counted as ML_CNT_TC_UNSUPPORTED. IPv4 options (ihl > 5)
 * and IPv6 hop-by-hop / destination options / exhausted routing headers
 * are walked and handled.
 *
 * Counters: TC_IN_REDIRECTED and TC_IN_EXCLUDED count connections (the
 * client's SYN), TC_OUT_RESTORED counts the SYN-ACKs restored; TC_IN_PASS
 * and TC_UNSUPPORTED count packets.
 */
#ifndef MESHLANE_LIB_INBOUND_H
#define MESHLANE_LIB_INBOUND_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include "lib/common.h"
#include "lib/policy.h"

#define ML_TCP_FLAG_SYN 0x02
#define ML_TCP_FLAG_ACK 0x10
#define ML_IP_FRAG_MASK 0x3fff /* MF | fragment offset */
#define ML_IPV6_EXT_MAX 6      /* extension headers walked before giving up */

/* IPv6 next-header values (linux/in6.h has them as an enum for user space). */
#define ML_NH_HOPOPTS  0
#define ML_NH_TCP      6
#define ML_NH_ROUTING  43
#define ML_NH_FRAGMENT 44
#define ML_NH_AH       51
#define ML_NH_DSTOPTS  60

enum ml_tc_parse {
	ML_TC_OTHER = 0,       /* not TCP (or not IP): not ours */
	ML_TC_TCP = 1,         /* TCP, header found at l4_off */
	ML_TC_UNSUPPORTED = 2, /* TCP (or maybe TCP) we do not rewrite */
};

struct ml_tc_pkt {
	struct ml_addr saddr;
	struct ml_addr daddr;
	__u32 l4_off;  /* offset of the TCP header from the start of the frame */
	__be16 sport;
	__be16 dport;
	__u8 tcp_flags;
	__u8 family;   /* ML_FAMILY_V4 / ML_FAMILY_V6 */
};

/* The first 14 bytes of a TCP header (ports, sequence numbers, flags). */
struct ml_tcp_head {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags;
};

static __always_inline enum ml_tc_parse ml_tc_parse_v4(struct __sk_buff *skb, struct ml_tc_pkt *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return ML_TC_OTHER;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP)
		return ML_TC_OTHER;
	ml_addr_from_v4(&p->saddr, ip.saddr);
	ml_addr_from_v4(&p->daddr, ip.daddr);
	p->family = ML_FAMILY_V4;
	if (ip.frag_off & bpf_htons(ML_IP_FRAG_MASK))
		return ML_TC_UNSUPPORTED; /* a fragment: ports not (all) there */
	p->l4_off = ETH_HLEN + (__u32)ip.ihl * 4; /* IP options included */
	return ML_TC_TCP;
}

static __always_inline enum ml_tc_parse ml_tc_parse_v6(struct __sk_buff *skb, struct ml_tc_pkt *p)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + sizeof(struct ipv6hdr);
	__u8 nh;
	int i;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
		return ML_TC_OTHER;
	if (ip6.version != 6)
		return ML_TC_OTHER;
	__builtin_memcpy(&p->saddr, &ip6.saddr, sizeof(p->saddr));
	__builtin_memcpy(&p->daddr, &ip6.daddr, sizeof(p->daddr));
	p->family = ML_FAMILY_V6;
	nh = ip6.nexthdr;

#pragma unroll
	for (i = 0; i < ML_IPV6_EXT_MAX; i++) {
		__u8 h[4]; /* next header, length, (routing:) type, segments left */

		if (nh == ML_NH_TCP) {
			p->l4_off = off;
			return ML_TC_TCP;
		}
		if (nh == ML_NH_HOPOPTS || nh == ML_NH_DSTOPTS || nh == ML_NH_ROUTING) {
			if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
				return ML_TC_OTHER;
			/* Segments left: the header's daddr is not the final
			 * destination yet; not ours to steer. */
			if (nh == ML_NH_ROUTING && h[3] != 0)
				return ML_TC_UNSUPPORTED;
			nh = h[0];
			off += ((__u32)h[1] + 1) * 8;
			continue;
		}
		if (nh == ML_NH_FRAGMENT) {
			if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
				return ML_TC_OTHER;
			return h[0] == ML_NH_TCP ? ML_TC_UNSUPPORTED : ML_TC_OTHER;
		}
		if (nh == ML_NH_AH)
			return ML_TC_UNSUPPORTED; /* rewriting would break its integrity check */
		return ML_TC_OTHER;           /* ICMPv6, UDP, ESP, no next header ... */
	}
	return ML_TC_UNSUPPORTED; /* longer chain than we walk */
}

static __always_inline enum ml_tc_parse ml_tc_parse(struct __sk_buff *skb, struct ml_tc_pkt *p)
{
	struct ml_tcp_head th;
	enum ml_tc_parse r;

	if (skb->protocol == bpf_htons(ETH_P_IP))
		r = ml_tc_parse_v4(skb, p);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6))
		r = ml_tc_parse_v6(skb, p);
	else
		return ML_TC_OTHER;
	if (r != ML_TC_TCP)
		return r;
	if (bpf_skb_load_bytes(skb, p->l4_off, &th, sizeof(th)))
		return ML_TC_UNSUPPORTED; /* truncated TCP header: leave it to the stack */
	p->sport = th.sport;
	p->dport = th.dport;
	p->tcp_flags = th.flags;
	return ML_TC_TCP;
}

/* Rewrite one port of the TCP header (at l4_off + port_off) and fix the
 * TCP checksum. 0 on success. */
static __always_inline int ml_tc_set_port(struct __sk_buff *skb, __u32 l4_off, __u32 port_off, __be16 from,
					  __be16 to)
{
	if (bpf_l4_csum_replace(skb, l4_off + __builtin_offsetof(struct tcphdr, check), from, to, sizeof(__u16)))
		return -1;
	if (bpf_skb_store_bytes(skb, l4_off + port_off, &to, sizeof(to), 0))
		return -1;
	return 0;
}

static __always_inline void ml_tc_flow_key(struct ml_tc_flow_key *k, const struct ml_addr *pod,
					   const struct ml_addr *peer, __be16 peer_port)
{
	ml_addr_store(k->pod, pod);
	ml_addr_store(k->peer, peer);
	k->peer_port = peer_port;
	k->reserved0 = 0;
	k->reserved1 = 0;
}

static __always_inline int ml_is_syn(const struct ml_tc_pkt *p)
{
	return (p->tcp_flags & (ML_TCP_FLAG_SYN | ML_TCP_FLAG_ACK)) == ML_TCP_FLAG_SYN;
}

static __always_inline int ml_is_syn_ack(const struct ml_tc_pkt *p)
{
	return (p->tcp_flags & (ML_TCP_FLAG_SYN | ML_TCP_FLAG_ACK)) == (ML_TCP_FLAG_SYN | ML_TCP_FLAG_ACK);
}

/* A new connection to a captured port: remember it for the replies and for
 * SO_ORIGINAL_DST. 0 when both records are written. */
static __always_inline int ml_tc_remember(const struct ml_tc_pkt *p, __u16 inbound_port)
{
	struct ml_tc_flow_key k;
	struct ml_tc_flow f = {};
	struct ml_orig_dst od = {};
	struct ml_tuple t;

	ml_tc_flow_key(&k, &p->daddr, &p->saddr, p->sport);
	f.orig_port = p->dport;
	if (bpf_map_update_elem(&ml_tc_flows, &k, &f, BPF_ANY)) {
		ml_count(ML_CNT_ERR_TC_NAT);
		return -1;
	}
	/* The connection view ml_getsockopt looks up for the accepted socket:
	 * connecting end (the client) -> listener end (pod IP:15006). */
	ml_addr_store(t.saddr, &p->saddr);
	ml_addr_store(t.daddr, &p->daddr);
	t.sport = p->sport;
	t.dport = bpf_htons(inbound_port);
	t.reserved0 = 0;
	t.netns = 0;
	ml_addr_store(od.addr, &p->daddr);
	od.port = p->dport;
	od.family = p->family;
	od.flags = ML_ODST_F_TC_INBOUND;
	if (bpf_map_update_elem(&ml_odst_tup, &t, &od, BPF_ANY)) {
		ml_count(ML_CNT_ERR_ODST_TUP_UPDATE);
		bpf_map_delete_elem(&ml_tc_flows, &k);
		return -1;
	}
	return 0;
}

static __always_inline int ml_tc_ingress_impl(struct __sk_buff *skb)
{
	struct ml_tc_flow_key k;
	struct ml_pod_config *pc;
	struct ml_tc_flow *f;
	struct ml_tc_pkt p = {};
	struct ml_cfg cfg;
	enum ml_tc_parse r;
	__u16 dport;

	r = ml_tc_parse(skb, &p);
	if (r == ML_TC_OTHER) {
		ml_count(ML_CNT_TC_IN_PASS);
		return TC_ACT_OK;
	}
	pc = bpf_map_lookup_elem(&ml_pods_ip, p.daddr.w);
	if (!pc) {
		ml_count(ML_CNT_TC_IN_PASS); /* not to a registered pod IP */
		return TC_ACT_OK;
	}
	if (r == ML_TC_UNSUPPORTED) {
		ml_count(ML_CNT_TC_UNSUPPORTED);
		return TC_ACT_OK;
	}
	ml_settings_get(&cfg);

	if (!ml_is_syn(&p)) {
		/* Only connections that started with a SYN we steered: the
		 * replies to the pod's own outbound connections (to an
		 * ephemeral port, which the rules would "capture") and every
		 * connection that was not steered pass, as conntrack makes
		 * ISTIO_INBOUND see only new connections. */
		ml_tc_flow_key(&k, &p.daddr, &p.saddr, p.sport);
		f = bpf_map_lookup_elem(&ml_tc_flows, &k);
		if (!f || f->orig_port != p.dport) {
			ml_count(ML_CNT_TC_IN_PASS);
			return TC_ACT_OK;
		}
		if (ml_tc_set_port(skb, p.l4_off, __builtin_offsetof(struct ml_tcp_head, dport), p.dport,
				   bpf_htons(cfg.inbound_port)))
			ml_count(ML_CNT_ERR_TC_NAT);
		return TC_ACT_OK;
	}

	/* A new connection to the pod. */
	dport = bpf_ntohs(p.dport);
	if (!ml_inbound_captured(pc, dport, cfg.inbound_port)) {
		if (dport == cfg.inbound_port || dport == ML_PORT_TUNNEL) {
			/* Already at a proxy listener (e.g. the same-node inbound
			 * path of ml_connect4/6). A new connection straight to
			 * 15006 must not inherit an old flow's port on its replies. */
			if (dport == cfg.inbound_port) {
				ml_tc_flow_key(&k, &p.daddr, &p.saddr, p.sport);
				bpf_map_delete_elem(&ml_tc_flows, &k);
			}
			ml_count(ML_CNT_TC_IN_PASS);
		} else {
			ml_count(ML_CNT_TC_IN_EXCLUDED);
		}
		return TC_ACT_OK;
	}
	if (ml_tc_remember(&p, cfg.inbound_port))
		return TC_ACT_OK; /* counted; the connection goes to the port it asked for */
	if (ml_tc_set_port(skb, p.l4_off, __builtin_offsetof(struct ml_tcp_head, dport), p.dport,
			   bpf_htons(cfg.inbound_port))) {
		ml_count(ML_CNT_ERR_TC_NAT);
		return TC_ACT_OK;
	}
	ml_count(ML_CNT_TC_IN_REDIRECTED);
	return TC_ACT_OK;
}

static __always_inline int ml_tc_egress_impl(struct __sk_buff *skb)
{
	struct ml_tc_flow_key k;
	struct ml_tc_flow *f;
	struct ml_tc_pkt p = {};
	struct ml_cfg cfg;
	enum ml_tc_parse r;

	r = ml_tc_parse(skb, &p);
	if (r == ML_TC_OTHER)
		return TC_ACT_OK;
	ml_settings_get(&cfg);
	if (r == ML_TC_UNSUPPORTED) {
		if (p.family == ML_FAMILY_V4 || p.family == ML_FAMILY_V6) {
			/* Only count what could have been a steered reply. */
			if (bpf_map_lookup_elem(&ml_pods_ip, p.saddr.w))
				ml_count(ML_CNT_TC_UNSUPPORTED);
		}
		return TC_ACT_OK;
	}
	if (p.sport != bpf_htons(cfg.inbound_port))
		return TC_ACT_OK;
	ml_tc_flow_key(&k, &p.saddr, &p.daddr, p.dport);
	f = bpf_map_lookup_elem(&ml_tc_flows, &k);
	if (!f)
		return TC_ACT_OK; /* a connection that really was to 15006 */
	if (ml_tc_set_port(skb, p.l4_off, __builtin_offsetof(struct ml_tcp_head, sport), p.sport, f->orig_port)) {
		ml_count(ML_CNT_ERR_TC_NAT);
		return TC_ACT_OK;
	}
	if (ml_is_syn_ack(&p))
		ml_count(ML_CNT_TC_OUT_RESTORED);
	return TC_ACT_OK;
}

#endif /* MESHLANE_LIB_INBOUND_H */
