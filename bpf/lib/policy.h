/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Istio's include/exclude semantics, one implementation for IPv4 and IPv6
 * (IPv4 is handled as v4-mapped addresses), see docs/datapath.md.
 *
 * Outbound (app socket), in the order of Istio's ISTIO_OUTPUT chain:
 *   1. dport in excludeOutboundPorts          -> not captured
 *   2. excludeOutboundIPRanges "*" or dst in it -> not captured
 *   3. dport in includeOutboundPorts          -> captured
 *   4. includeOutboundIPRanges "*"            -> captured
 *      dst in includeOutboundIPRanges         -> captured
 *      otherwise (including an empty list)    -> not captured
 * Inbound (port of the destination pod), ISTIO_INBOUND:
 *   1. 15008, 15020, 15021, 15090, the status port, and the inbound
 *      listener itself                        -> not captured (a connection
 *      to 15001 from outside the pod is captured, as in Istio)
 *   2. dport in excludeInboundPorts           -> not captured
 *   3. includeInboundPorts "*"                -> captured
 *      dport in includeInboundPorts           -> captured
 *      otherwise (including an empty list)    -> not captured
 */
#ifndef MESHLANE_LIB_POLICY_H
#define MESHLANE_LIB_POLICY_H

#include "lib/common.h"

/*
 * The rule functions are global BPF functions (not static, not inlined):
 * the verifier checks each of them once, on its own, instead of once per
 * path of every caller. Their pointer arguments may be NULL as far as the
 * verifier knows, hence the checks. This header is included by exactly one
 * object (meshlane.bpf.c).
 *
 * The verifier takes global functions with pointer arguments from 5.12 on
 * (5.10: "Arg#0 type PTR in ml_inbound_captured() is not supported yet"):
 * in the object built for older kernels (ML_NETNS_FROM_STORAGE) they are
 * static subprograms, checked in the context of each call.
 */
#ifdef ML_NETNS_FROM_STORAGE
#define ML_RULE_FN static __noinline
#else
#define ML_RULE_FN __noinline
#endif

/* Is port (host order) in a 0-terminated list of ML_MAX_PORTS? */
static __always_inline int ml_port_listed(const __u16 *list, __u32 port)
{
	int i;

	for (i = 0; i < ML_MAX_PORTS; i++) {
		__u16 p = list[i];

		if (p == 0)
			return 0;
		if (p == port)
			return 1;
	}
	return 0;
}

/* Does addr fall in c (same family, prefix in the 128-bit space)? */
ML_RULE_FN int ml_cidr_match(const struct ml_cidr *c, const struct ml_addr *addr)
{
	struct ml_addr net;

	if (!c || !addr)
		return 0;
	if (c->family != (ml_addr_is_v4(addr) ? ML_FAMILY_V4 : ML_FAMILY_V6))
		return 0;
	ml_addr_load(&net, c->addr);
	return ml_addr_in_prefix(addr, &net, c->prefix_len);
}

/* Is addr in a CIDR list (ends at family ML_FAMILY_NONE)? */
static __always_inline int ml_cidr_listed(const struct ml_cidr *list, const struct ml_addr *addr)
{
	int i;

	for (i = 0; i < ML_MAX_CIDRS; i++) {
		if (list[i].family == ML_FAMILY_NONE)
			return 0;
		if (ml_cidr_match(&list[i], addr))
			return 1;
	}
	return 0;
}

/* Would Istio's ISTIO_OUTPUT chain send this app connection to the proxy? */
ML_RULE_FN int ml_outbound_captured(const struct ml_pod_config *pc, const struct ml_addr *dst,
				    __u32 dport)
{
	if (!pc || !dst)
		return 0;
	if (ml_port_listed(pc->exclude_out_ports, dport))
		return 0;
	if (pc->flags & ML_CFG_F_OUT_CIDRS_EXCL_ALL)
		return 0;
	if (ml_cidr_listed(pc->exclude_out_cidrs, dst))
		return 0;
	if (ml_port_listed(pc->include_out_ports, dport))
		return 1;
	if (!(pc->flags & ML_CFG_F_OUT_CIDRS_LISTED))
		return 1;
	return ml_cidr_listed(pc->include_out_cidrs, dst);
}

/* Does includeOutboundIPRanges hold a range whose address is loopback
 * (127.x.x.x or ::1, either family)? Then istio-iptables leaves out its
 * "-o lo ! --uid-owner/--gid-owner -j RETURN" rules, and an application's
 * traffic over lo goes through the outbound rules like any other. */
static __always_inline int ml_out_includes_loopback(const struct ml_pod_config *pc)
{
	struct ml_addr a;
	int i;

	if (!(pc->flags & ML_CFG_F_OUT_CIDRS_LISTED))
		return 0;
	for (i = 0; i < ML_MAX_CIDRS; i++) {
		if (pc->include_out_cidrs[i].family == ML_FAMILY_NONE)
			return 0;
		ml_addr_load(&a, pc->include_out_cidrs[i].addr);
		if (ml_addr_is_loopback(&a))
			return 1;
	}
	return 0;
}

/* Would Istio's ISTIO_INBOUND chain of the destination pod send a
 * connection to this port to its proxy? */
ML_RULE_FN int ml_inbound_captured(const struct ml_pod_config *pc, __u32 dport, __u32 inbound_port)
{
	__u32 status_port;

	if (!pc)
		return 0;
	status_port = pc->status_port ? pc->status_port : ML_DEFAULT_STATUS_PORT;
	if (dport == ML_PORT_TUNNEL || dport == ML_PORT_AGENT_METRICS ||
	    dport == ML_PORT_HEALTH || dport == ML_PORT_ENVOY_PROMETHEUS ||
	    dport == status_port || dport == inbound_port)
		return 0;
	if (ml_port_listed(pc->exclude_in_ports, dport))
		return 0;
	if (!(pc->flags & ML_CFG_F_IN_PORTS_LISTED))
		return 1;
	return ml_port_listed(pc->include_in_ports, dport);
}

#endif /* MESHLANE_LIB_POLICY_H */
