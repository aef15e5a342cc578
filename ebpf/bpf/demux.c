// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mvdp's XDP demux: sorts frames arriving on a parent NIC into the AF_XDP
 * sockets of mvdp's ports, keyed by (VLAN id, destination MAC).
 *
 *   unicast for a port              -> XSKMAP redirect to that port's socket on this rx queue
 *   broadcast / multicast           -> XDP_PASS; the host stack gets it and mvdp's flood tap
 *                                      (an AF_PACKET socket on the parent) copies it to userspace
 *   ... reflected, from a port flagged REFLECT_TO_SELF -> that port's socket only (no host copy)
 *   anything else                   -> XDP_PASS, the host keeps using the NIC
 *   passthru (config flag)          -> every unicast frame of the passthru VLAN to the one port
 *   runt / truncated 802.1Q header  -> XDP_DROP, counted
 *
 * XDP cannot clone a frame, so a frame that must reach both the host stack and
 * userspace is passed up once and copied by the flood tap; the flood path has
 * to copy into every port anyway.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mvdp_abi.h"

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MVDP_MAX_PORTS);
	__type(key, struct mvdp_port_key);
	__type(value, struct mvdp_port_val);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MVDP_XSKS_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mvdp_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MVDP_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

static __always_inline int to_slot(struct xdp_md *ctx, __u32 slot)
{
	__u32 queue = ctx->rx_queue_index;
	__u32 key;

	if (queue >= MVDP_MAX_QUEUES || slot >= MVDP_MAX_SLOTS) {
		count(MVDP_CNT_DROP_BAD_QUEUE);
		return XDP_DROP;
	}
	key = slot * MVDP_MAX_QUEUES + queue;
	mvdp_stamp(ctx);
	/* On a miss the helper returns the low bits of flags: XDP_DROP. */
	if (bpf_redirect_map(&xsks, key, XDP_DROP) != XDP_REDIRECT) {
		count(MVDP_CNT_DROP_NO_SOCKET);
		return XDP_DROP;
	}
	count(MVDP_CNT_REDIRECT);
	return XDP_REDIRECT;
}

SEC("xdp")
int demux(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct mvdp_port_key key = {};
	struct mvdp_port_val *port;
	struct mvdp_config *cfg;
	__u32 zero = 0;
	__u16 proto;

	count(MVDP_CNT_RX);
	if ((void *)(eth + 1) > data_end) {
		count(MVDP_CNT_DROP_RUNT);
		return XDP_DROP;
	}

	proto = bpf_ntohs(eth->h_proto);
	if (proto == ETH_P_8021AD) {
		/* mvdp networks are 802.1Q only; a service-tagged frame is someone else's. */
		count(MVDP_CNT_PASS_QINQ);
		return XDP_PASS;
	}
	if (proto == ETH_P_8021Q) {
		struct vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > data_end) {
			count(MVDP_CNT_DROP_TRUNC_VLAN);
			return XDP_DROP;
		}
		key.vlan = bpf_ntohs(vh->tci) & 0x0fff;
	}

	if (eth->h_dest[0] & 1) {
		struct mvdp_port_key src = { .vlan = key.vlan };

		__builtin_memcpy(src.mac, eth->h_source, ETH_ALEN);
		port = bpf_map_lookup_elem(&ports, &src);
		if (port && (port->flags & MVDP_PORT_F_REFLECT_TO_SELF))
			return to_slot(ctx, port->slot);
		count(MVDP_CNT_PASS_GROUP);
		return XDP_PASS;
	}

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && (cfg->flags & MVDP_CFG_PASSTHRU) && cfg->passthru_vlan == key.vlan)
		return to_slot(ctx, cfg->passthru_slot);

	__builtin_memcpy(key.mac, eth->h_dest, ETH_ALEN);
	port = bpf_map_lookup_elem(&ports, &key);
	if (!port) {
		count(MVDP_CNT_PASS_HOST);
		return XDP_PASS;
	}
	return to_slot(ctx, port->slot);
}

char _license[] SEC("license") = "Dual MIT/GPL";
