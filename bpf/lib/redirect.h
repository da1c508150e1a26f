/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sk_msg on ml_sock_pairs: same-node app <-> proxy bytes go straight to the
 * peer socket (docs/datapath.md, "redirect").
 */
#ifndef MESHLANE_LIB_REDIRECT_H
#define MESHLANE_LIB_REDIRECT_H

#include "lib/common.h"
#include "lib/tuple.h"

static __always_inline int ml_redirect_impl(struct sk_msg_md *msg)
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
		peer.netns = ML_SOCK_NETNS(msg, msg->sk);

	/* On a miss the helper returns SK_DROP without choosing a target;
	 * returning SK_PASS then sends the bytes the normal way. On a hit,
	 * SK_PASS with the target chosen means "redirect". */
	if (bpf_msg_redirect_hash(msg, &ml_sock_pairs, &peer, BPF_F_INGRESS) == SK_PASS)
		ml_count(ML_CNT_REDIRECT_OK);
	else
		ml_count(ML_CNT_REDIRECT_NO_PEER);
	return SK_PASS;
}

#endif /* MESHLANE_LIB_REDIRECT_H */
