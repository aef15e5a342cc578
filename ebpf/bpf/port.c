// SPDX-License-Identifier: GPL-2.0 OR MIT
/* mvdp's port program, attached to the host end of every port's veth: every
 * frame a container sends goes to the switch's AF_XDP socket for that port.
 * A frame with no socket registered yet (a port being set up or torn down) is
 * dropped: nothing from a container may bypass the switch into the host stack.
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

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&port_counters, &which);

	if (c)
		*c += 1;
}

SEC("xdp")
int port_redirect(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *slot = bpf_map_lookup_elem(&port_slots, &ifindex);
	long verdict;

	if (!slot) {
		count(MVDP_PORT_CNT_NO_PORT);
		return XDP_DROP;
	}
	mvdp_stamp(ctx);
	verdict = bpf_redirect_map(&port_xsks, *slot, XDP_DROP);
	count(verdict == XDP_REDIRECT ? MVDP_PORT_CNT_REDIRECT : MVDP_PORT_CNT_NO_SOCKET);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
