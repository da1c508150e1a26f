/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sockops: the connection's life after a redirected connect()
 * (docs/datapath.md, "sockops"): the cookie record written at connect becomes
 * the 4-tuple record getsockopt reads, both are dropped at close, and the
 * ends of app <-> proxy connections join ml_sock_pairs when the switch is on.
 */
#ifndef MESHLANE_LIB_SOCKOPS_H
#define MESHLANE_LIB_SOCKOPS_H

#include "lib/common.h"
#include "lib/tuple.h"

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
	v->netns = ml_tuple_needs_netns(&v->local, &v->remote) ? ML_SOCK_NETNS(skops, skops->sk) : 0;
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
	 * message is passed (docs/datapath.md, "Kernel caveats"). */
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

static __always_inline void ml_sockops_impl(struct bpf_sock_ops *skops)
{
	if (skops->family != ML_FAMILY_V4 && skops->family != ML_FAMILY_V6)
		return;

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
}

#endif /* MESHLANE_LIB_SOCKOPS_H */
