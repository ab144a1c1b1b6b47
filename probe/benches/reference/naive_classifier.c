// The reference the datapath benchmark measures vxflow against: a TC
// classifier written the obvious way, as one would in C. It parses what
// vxflow parses (Ethernet, up to two VLAN tags, IPv4 / IPv6, TCP / UDP /
// ICMP; VXLAN on UDP 4789 and 8472, Geneve on 6081, GRE with its optional
// fields, IP in IP, down to the inner packet) with direct
// packet access, builds a key of vxflow's size (92 bytes), reads the boot
// clock, and adds to one hash map shared by every CPU with atomic adds into
// a value of vxflow's size (48 bytes). It has none of vxflow's features
// (generations, fallback ring, counters, export exclusion, GSO counts,
// IPv6 extension headers, tunnel trust); it is a yardstick, not a probe.
//
// Built by the benchmark: clang -O2 -g -target bpf -c naive_classifier.c,
// and again with -DPERCPU: a per-CPU hash with plain adds, the layout whose
// memory grows with the CPU count, to time against under contention.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct key {
	__u8 src[16], dst[16], outer_src[16], outer_dst[16];
	__u32 ifindex, vni;
	__u16 sport, dport, outer_sport, outer_dport, vlan;
	__u8 proto, ipver, outer_ipver, dir, encap, flags, tos, pad[3];
};
_Static_assert(sizeof(struct key) == 92, "vxflow's FlowKey is 92 bytes");

struct value {
	__u64 packets, bytes, outer_bytes, first, last, tcp_flags;
};
_Static_assert(sizeof(struct value) == 48, "vxflow's FlowStats is 48 bytes");

struct {
#ifdef PERCPU
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
#else
	__uint(type, BPF_MAP_TYPE_HASH);
#endif
	__uint(max_entries, 65536);
	__type(key, struct key);
	__type(value, struct value);
} flows SEC(".maps");

struct vlan_hdr {
	__be16 tci, proto;
};

// Parses the IP header and transport ports at l3 into k's plain fields;
// returns the transport offset's end pointer (NULL when malformed).
static __always_inline void *parse_ip(void *l3, void *end, __u16 proto, struct key *k, __u64 *ip_len,
				      __u8 *tcp_flags)
{
	void *l4;
	if (proto == ETH_P_IP) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return NULL;
		__builtin_memcpy(k->src, &ip->saddr, 4);
		__builtin_memcpy(k->dst, &ip->daddr, 4);
		k->proto = ip->protocol;
		k->ipver = 4;
		k->tos = ip->tos;
		*ip_len = bpf_ntohs(ip->tot_len);
		l4 = l3 + ip->ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return NULL;
		__builtin_memcpy(k->src, &ip6->saddr, 16);
		__builtin_memcpy(k->dst, &ip6->daddr, 16);
		k->proto = ip6->nexthdr;
		k->ipver = 6;
		*ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		l4 = ip6 + 1;
	} else {
		return NULL;
	}
	if (k->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return NULL;
		k->sport = bpf_ntohs(tcp->source);
		k->dport = bpf_ntohs(tcp->dest);
		*tcp_flags = ((__u8 *)tcp)[13];
		return tcp + 1;
	}
	if (k->proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return NULL;
		k->sport = bpf_ntohs(udp->source);
		k->dport = bpf_ntohs(udp->dest);
		return udp + 1;
	}
	return l4;
}

static __always_inline void *skip_l2(void *eth_start, void *end, __u16 *proto)
{
	struct ethhdr *eth = eth_start;
	if ((void *)(eth + 1) > end)
		return NULL;
	*proto = bpf_ntohs(eth->h_proto);
	void *p = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (*proto != ETH_P_8021Q && *proto != ETH_P_8021AD)
			break;
		struct vlan_hdr *v = p;
		if ((void *)(v + 1) > end)
			return NULL;
		*proto = bpf_ntohs(v->proto);
		p = v + 1;
	}
	return p;
}

static __always_inline int account(struct __sk_buff *skb, __u8 dir)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct key k = {};
	__u64 ip_len = 0, outer_len = 0;
	__u8 tcp_flags = 0;
	__u16 proto;

	k.ifindex = skb->ifindex;
	k.dir = dir;
	void *l3 = skip_l2(data, end, &proto);
	if (!l3)
		return TC_ACT_UNSPEC;
	void *l4_end = parse_ip(l3, end, proto, &k, &ip_len, &tcp_flags);
	if (!l4_end)
		return TC_ACT_UNSPEC;
	// A tunnel: its id, and where its payload starts (an Ethernet frame,
	// or an IP packet of inner_proto).
	__u8 *t = l4_end, *inner = NULL;
	__u16 inner_proto = 0;
	if (k.proto == IPPROTO_UDP && (k.dport == 4789 || k.dport == 8472)) {
		if ((void *)(t + 8) > end)
			return TC_ACT_UNSPEC;
		k.vni = (t[4] << 16) | (t[5] << 8) | t[6];
		k.encap = 1;
		inner = t + 8;
	} else if (k.proto == IPPROTO_UDP && k.dport == 6081) {
		if ((void *)(t + 8) > end)
			return TC_ACT_UNSPEC;
		__u16 p = (t[2] << 8) | t[3];
		k.vni = (t[4] << 16) | (t[5] << 8) | t[6];
		k.encap = 2;
		inner = t + 8 + (t[0] & 0x3f) * 4;
		inner_proto = p == 0x6558 ? 0 : p;
	} else if (k.proto == IPPROTO_GRE) {
		if ((void *)(t + 4) > end)
			return TC_ACT_UNSPEC;
		__u16 f = (t[0] << 8) | t[1], p = (t[2] << 8) | t[3];
		__u8 *o = t + 4;
		if (f & 0x8000)
			o += 4;
		if (f & 0x2000) {
			if ((void *)(o + 4) > end)
				return TC_ACT_UNSPEC;
			k.vni = ((__u32)o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3];
			o += 4;
		}
		if (f & 0x1000)
			o += 4;
		k.encap = 4;
		inner = o;
		inner_proto = p == 0x6558 ? 0 : p;
	} else if (k.proto == IPPROTO_IPIP || k.proto == IPPROTO_IPV6) {
		k.encap = 3;
		inner = t;
		inner_proto = k.proto == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6;
	}
	if (inner) {
		__builtin_memcpy(k.outer_src, k.src, 16);
		__builtin_memcpy(k.outer_dst, k.dst, 16);
		k.outer_sport = k.sport;
		k.outer_dport = k.dport;
		k.outer_ipver = k.ipver;
		outer_len = ip_len;
		__builtin_memset(k.src, 0, 32);
		k.sport = k.dport = 0;
		if (inner_proto == 0) {
			l3 = skip_l2(inner, end, &proto);
			if (!l3)
				return TC_ACT_UNSPEC;
		} else {
			l3 = inner;
			proto = inner_proto;
		}
		if (!parse_ip(l3, end, proto, &k, &ip_len, &tcp_flags))
			return TC_ACT_UNSPEC;
	}

	__u64 now = bpf_ktime_get_boot_ns();
	struct value *v = bpf_map_lookup_elem(&flows, &k);
	if (v) {
#ifdef PERCPU
		v->packets += 1;
		v->bytes += ip_len;
		v->outer_bytes += outer_len;
		v->tcp_flags |= tcp_flags;
#else
		__sync_fetch_and_add(&v->packets, 1);
		__sync_fetch_and_add(&v->bytes, ip_len);
		__sync_fetch_and_add(&v->outer_bytes, outer_len);
		__sync_fetch_and_or(&v->tcp_flags, tcp_flags);
#endif
		v->last = now;
	} else {
		struct value nv = {1, ip_len, outer_len, now, now, tcp_flags};
		bpf_map_update_elem(&flows, &k, &nv, BPF_NOEXIST);
	}
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int naive_ingress(struct __sk_buff *skb)
{
	return account(skb, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
