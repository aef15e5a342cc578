// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mvdp's port program, attached to the host end of every port's veth: every
 * frame a container sends goes to the switch's AF_XDP socket for that port.
 * A frame with no socket registered yet (a port being set up or torn down) is
 * dropped: nothing from a container may bypass the switch into the host stack.
 *
 * Group frames over the port's flood cap are dropped here and counted on its
 * bucket (see mvdp_abi.h).
 *
 * One loaded program serves every port; it finds the port by the ingress
 * ifindex, so attaching a new port is two map updates and a link.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mvdp_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MVDP_MAX_SLOTS);
	__type(key, __u32);   /* ingress ifindex */
	__type(value, __u32); /* slot: index into port_xsks */
} port_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MVDP_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} port_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MVDP_PORT_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} port_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mvdp_flood_cap);
} port_flood_cap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MVDP_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct mvdp_flood_bucket);
} port_flood_buckets SEC(".maps");

#define NSEC_PER_FRAME 1000000000ULL
/* Longest idle spell credited: 10 s * the largest pps (10^7) stays far below 2^64. */
#define MAX_IDLE_NS (10 * NSEC_PER_FRAME)

/* Whether a group frame from `slot` is over its port's flood cap (then it is counted and
 * dropped here, before a worker ever takes it off a ring). The bucket is shared by CPUs
 * without a lock: two CPUs racing can let one extra frame through, which the switch's own
 * bucket still catches. */
static __always_inline int over_flood_cap(__u32 slot)
{
	__u32 zero = 0;
	struct mvdp_flood_cap *cap = bpf_map_lookup_elem(&port_flood_cap, &zero);
	struct mvdp_flood_bucket *b;
	__u64 now, idle, credit, full;

	if (!cap || !cap->pps)
		return 0;
	b = bpf_map_lookup_elem(&port_flood_buckets, &slot);
	if (!b || (b->flags & MVDP_FLOOD_F_EXEMPT))
		return 0;
	now = bpf_ktime_get_ns();
	idle = now - b->stamp_ns;
	if (idle > MAX_IDLE_NS)
		idle = MAX_IDLE_NS;
	full = cap->burst * NSEC_PER_FRAME;
	credit = b->credit + idle * cap->pps;
	if (credit > full)
		credit = full;
	b->stamp_ns = now;
	if (credit < NSEC_PER_FRAME) {
		b->credit = credit;
		__sync_fetch_and_add(&b->dropped, 1);
		return 1;
	}
	b->credit = credit - NSEC_PER_FRAME;
	return 0;
}

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&port_counters, &which);

	if (c)
		*c += 1;
}

SEC("xdp")
int port_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *slot = bpf_map_lookup_elem(&port_slots, &ifindex);
	long verdict;

	if (!slot) {
		count(MVDP_PORT_CNT_NO_PORT);
		return XDP_DROP;
	}
	/* Broadcast and multicast (the group bit of the destination MAC) are policed. */
	if (data + 1 <= data_end && (*(__u8 *)data & 1) && over_flood_cap(*slot)) {
		count(MVDP_PORT_CNT_FLOOD_CAP);
		return XDP_DROP;
	}
	mvdp_stamp(ctx);
	verdict = bpf_redirect_map(&port_xsks, *slot, XDP_DROP);
	count(verdict == XDP_REDIRECT ? MVDP_PORT_CNT_REDIRECT : MVDP_PORT_CNT_NO_SOCKET);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
