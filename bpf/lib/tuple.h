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
