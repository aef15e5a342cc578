/* The contract between the XDP demux program and its Rust loader.
 *
 * Every struct here is mirrored in ebpf/src/abi.rs with compile-time size and
 * offset checks: change both together. Fields are host byte order unless the
 * name says otherwise; MAC addresses are kept in wire order.
 */
#ifndef MVDP_ABI_H
#define MVDP_ABI_H

#include <linux/types.h>

/* XSKMAP index = slot * MVDP_MAX_QUEUES + rx queue. An XSKMAP redirect only
 * reaches a socket bound to the frame's own device and queue, so a port needs
 * one socket per parent rx queue; the map is laid out to give each its entry. */
#define MVDP_MAX_QUEUES 64
#define MVDP_MAX_SLOTS 1024
#define MVDP_XSKS_ENTRIES (MVDP_MAX_QUEUES * MVDP_MAX_SLOTS)
#define MVDP_MAX_PORTS 4096

/* 802.1Q VLAN id 0 means "priority tag only": such frames are keyed as untagged. */
#define MVDP_VLAN_UNTAGGED 0

/* Key of the `ports` hash map: which (VLAN, destination MAC) belongs to a port. */
struct mvdp_port_key {
	__u8 mac[6];
	__u16 vlan;
};

/* mvdp_port_val.flags: a broadcast/multicast frame arriving from the wire with this port's
 * MAC as its source is the wire reflecting the port's own flood. Kernel macvlan hands such a
 * frame back to the sender only, with no host copy, for private, passthru and source ports. */
#define MVDP_PORT_F_REFLECT_TO_SELF (1u << 0)

/* Value of the `ports` hash map. */
struct mvdp_port_val {
	__u32 slot; /* row of the XSKMAP, < MVDP_MAX_SLOTS */
	__u32 flags; /* MVDP_PORT_F_* */
};

/* config.flags */
#define MVDP_CFG_PASSTHRU (1u << 0)

/* The single entry of the `config` array map. */
struct mvdp_config {
	__u32 flags;
	__u32 passthru_slot; /* with MVDP_CFG_PASSTHRU: the one port's slot */
	__u16 passthru_vlan; /* with MVDP_CFG_PASSTHRU: the VLAN it owns (0 = untagged) */
	__u16 pad0;
	__u32 pad1;
};

/* The single entry of the port program's `port_flood_cap` array map: the broadcasts and
 * multicasts one port may send per second (`pps`, 0 = no cap) in bursts of up to `burst`.
 * The switch's own per-port bucket (mvdp_switch::FloodRate) has the same figures; the port
 * program applies them first, in the sender's softirq, so a storm's excess never costs the
 * worker a frame off its ring. */
struct mvdp_flood_cap {
	__u64 pps;
	__u64 burst;
};

/* One port's bucket in the `port_flood_buckets` array map (by slot). `credit` is in
 * frame-nanoseconds: a frame costs 10^9, a nanosecond adds `pps`. Zeroed when a port takes
 * the slot: a zero `stamp_ns` reads as a long idle spell, i.e. a full bucket. */
struct mvdp_flood_bucket {
	__u64 stamp_ns;
	__u64 credit;
	__u64 dropped; /* group frames dropped over the cap */
	__u64 flags; /* MVDP_FLOOD_F_* */
};

/* mvdp_flood_bucket.flags: the port is not capped (passthru: it owns the parent, as in the
 * switch's own bucket). */
#define MVDP_FLOOD_F_EXEMPT (1ull << 0)

/* Index of the per-CPU `counters` array map. Append only: the numbers are ABI. */
enum mvdp_counter {
	MVDP_CNT_RX = 0, /* every frame the program saw */
	MVDP_CNT_REDIRECT = 1, /* handed to a port's AF_XDP socket */
	MVDP_CNT_PASS_HOST = 2, /* unicast for no port: host stack */
	MVDP_CNT_PASS_GROUP = 3, /* broadcast/multicast: host stack + flood tap */
	MVDP_CNT_PASS_QINQ = 4, /* 802.1ad outer tag: not ours, host stack */
	MVDP_CNT_DROP_RUNT = 5, /* shorter than an Ethernet header */
	MVDP_CNT_DROP_TRUNC_VLAN = 6, /* 802.1Q ethertype but no room for the tag */
	MVDP_CNT_DROP_NO_SOCKET = 7, /* port known, no socket on this rx queue */
	MVDP_CNT_DROP_BAD_QUEUE = 8, /* rx queue >= MVDP_MAX_QUEUES */
	MVDP_CNT__MAX = 9,
};

/* Index of the port program's per-CPU `port_counters` map. Append only. */
enum mvdp_port_counter {
	MVDP_PORT_CNT_REDIRECT = 0, /* handed to the port's AF_XDP socket */
	MVDP_PORT_CNT_NO_PORT = 1, /* ingress ifindex not a registered port: dropped */
	MVDP_PORT_CNT_NO_SOCKET = 2, /* port registered, socket missing: dropped */
	MVDP_PORT_CNT_FLOOD_CAP = 3, /* group frame over its port's flood cap: dropped */
	MVDP_PORT_COUNTERS = 4,
};

/* XDP metadata written in front of a frame when hop tracing is on (`mvdp daemon --trace-hops`):
 * copy-mode AF_XDP copies it into the UMEM chunk right before the frame (xsk_copy_xdp), so the
 * worker finds it at rx desc addr - sizeof(struct mvdp_hop_meta). */
#define MVDP_HOP_MAGIC 0x6d766470u /* "mvdp" */
struct mvdp_hop_meta {
	__u32 magic;
	__u32 pad;
	__u64 xdp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};

#ifdef __BPF__
/* Set by the loader before the program is loaded (read-only data): with 0 the verifier removes
 * the stamping as dead code, so a daemon without --trace-hops runs exactly the old program. */
volatile const __u32 mvdp_trace_hops = 0;

static __always_inline void mvdp_stamp(struct xdp_md *ctx)
{
	struct mvdp_hop_meta *m;

	if (!mvdp_trace_hops)
		return;
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return;
	m->magic = MVDP_HOP_MAGIC;
	m->pad = 0;
	m->xdp_ns = bpf_ktime_get_ns();
}
#endif

#endif
