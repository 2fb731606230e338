// SPDX-License-Identifier: GPL-2.0
/* Director side of TOA: a tc ingress program (direct action) on the director's
 * client-facing interface. It runs before netfilter, so it sees the client's own address
 * and port; for a connection to a VIP:port listed in the map "toa_vips" it appends the
 * TOA option (kind 254, length 8: client port + IPv4 address) to the connection's first
 * ACK, the packet acknowledging the realserver's SYN-ACK, as DPVS does. netfilter's full
 * NAT then rewrites addresses and ports but keeps the option, and the realserver reads it.
 *
 * The first ACK is recognised without conntrack: the SYN's sequence number is kept per
 * connection (LRU map "toa_syns"); an ACK with sequence number ISN + 1 gets the option
 * after the header's own options; if it carries data (up to MAX_PAYLOAD bytes), the data
 * moves 8 bytes towards the tail. The first packet that is not such an ACK forgets the
 * connection. Not handled (counted in toa_stats[1], the packet passes unchanged): a header
 * without 8 free option bytes, a first ACK with more data. IP options are kept; VLAN tags
 * and IPv6 are not parsed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "toa.h"

#define ETH_P_IP 0x0800
#define ETH_HLEN 14
#define IPPROTO_TCP 6
#define TC_ACT_OK 0
#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define CHUNK 64
#define MAX_CHUNKS 24
#define MAX_PAYLOAD (CHUNK * MAX_CHUNKS)

struct toa_conn {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct toa_vip);
	__type(value, __u8);
} toa_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct toa_conn);
	__type(value, __u32); /* the client's initial sequence number, host order */
} toa_syns SEC(".maps");

/* Counters for tests and operators: [0] options inserted, [1] first ACKs skipped. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} toa_stats SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&toa_stats, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

/* Move [start, start + len) 8 bytes towards the tail, last chunk first (the packet has
 * grown already). Moving by an even number of bytes keeps its one's complement sum, so the
 * TCP checksum needs no change for it. */
static __always_inline int move_payload(struct __sk_buff *skb, __u32 start, __u32 len)
{
	__u8 buf[CHUNK];
	__u32 done = 0, chunk, from;
	int i;

	for (i = 0; i < MAX_CHUNKS; i++) {
		if (done >= len)
			break;
		chunk = len - done;
		if (chunk > CHUNK)
			chunk = CHUNK;
		from = start + len - done - chunk;
		/* for the verifier, which loses the bound clang relies on: 0 < chunk <= CHUNK */
		asm volatile("" : "+r"(chunk));
		chunk &= 2 * CHUNK - 1;
		if (chunk == 0 || chunk > CHUNK)
			return -1;
		if (bpf_skb_load_bytes(skb, from, buf, chunk))
			return -1;
		if (bpf_skb_store_bytes(skb, from + TOA_LEN_IPV4, buf, chunk, 0))
			return -1;
		done += chunk;
	}
	return done >= len ? 0 : -1;
}

static __always_inline int insert_option(struct __sk_buff *skb, __u32 ip_off, __u32 tcp_off, __u32 tcp_len,
					  __u16 ip_total, __u32 payload, __u32 saddr, __u16 sport)
{
	__u32 opt_off = tcp_off + tcp_len;
	__u32 csum_off = tcp_off + offsetof(struct tcphdr, check);
	__u16 old_word, new_word, old_total = bpf_htons(ip_total), new_total = bpf_htons(ip_total + TOA_LEN_IPV4);
	__u8 option[TOA_LEN_IPV4];
	__u32 words[2];

	if (bpf_skb_load_bytes(skb, tcp_off + 12, &old_word, 2))
		return -1;
	/* data offset += 2 (32-bit words), the flags stay */
	new_word = bpf_htons(bpf_ntohs(old_word) + (2 << 12));

	/* drop Ethernet padding, then grow by the option */
	if (bpf_skb_change_tail(skb, ip_off + ip_total + TOA_LEN_IPV4, 0))
		return -1;
	if (payload && move_payload(skb, opt_off, payload))
		return -1;

	option[0] = TOA_KIND;
	option[1] = TOA_LEN_IPV4;
	__builtin_memcpy(&option[2], &sport, 2);
	__builtin_memcpy(&option[4], &saddr, 4);
	__builtin_memcpy(words, option, sizeof(words));

	if (bpf_skb_store_bytes(skb, opt_off, option, sizeof(option), 0))
		return -1;
	if (bpf_skb_store_bytes(skb, tcp_off + 12, &new_word, 2, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, tot_len), &new_total, 2, 0))
		return -1;

	/* TCP checksum: the data offset word, the new option bytes (both 4-byte aligned),
	 * and the TCP length of the pseudo header. With CHECKSUM_PARTIAL the kernel ignores
	 * all but the pseudo-header change, as it sums the segment itself later. */
	if (bpf_l4_csum_replace(skb, csum_off, old_word, new_word, 2))
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, 0, words[0], 4))
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, 0, words[1], 4))
		return -1;
	if (bpf_l4_csum_replace(skb, csum_off, bpf_htons(tcp_len + payload),
				bpf_htons(tcp_len + payload + TOA_LEN_IPV4),
				BPF_F_PSEUDO_HDR | 2))
		return -1;
	/* IPv4 header checksum: the total length */
	if (bpf_l3_csum_replace(skb, ip_off + offsetof(struct iphdr, check), old_total, new_total, 2))
		return -1;
	return 0;
}

SEC("tc")
int toa_director(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct toa_vip vip = {};
	struct toa_conn conn = {};
	__u32 ihl, tcp_len, payload, seq, *isn;
	__u16 ip_total;
	__u32 saddr;
	__u16 sport;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP || ip->version != 4)
		return TC_ACT_OK;
	if (ip->frag_off & bpf_htons(0x3fff)) /* fragments */
		return TC_ACT_OK;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip) || ihl > 60)
		return TC_ACT_OK;
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;

	vip.addr = ip->daddr;
	vip.port = tcp->dest;
	if (!bpf_map_lookup_elem(&toa_vips, &vip))
		return TC_ACT_OK;

	conn.saddr = ip->saddr;
	conn.daddr = ip->daddr;
	conn.sport = tcp->source;
	conn.dport = tcp->dest;
	seq = bpf_ntohl(tcp->seq);

	if (tcp->syn && !tcp->ack) {
		bpf_map_update_elem(&toa_syns, &conn, &seq, BPF_ANY);
		return TC_ACT_OK;
	}
	isn = bpf_map_lookup_elem(&toa_syns, &conn);
	if (!isn)
		return TC_ACT_OK;

	tcp_len = tcp->doff * 4;
	ip_total = bpf_ntohs(ip->tot_len);
	payload = ip_total - ihl - tcp_len;
	if (!tcp->ack || tcp->syn || tcp->rst || tcp->fin || seq != *isn + 1) {
		/* not the first ACK: this connection is past its handshake */
		bpf_map_delete_elem(&toa_syns, &conn);
		return TC_ACT_OK;
	}
	if (tcp_len < sizeof(*tcp) || tcp_len + TOA_LEN_IPV4 > 60 || payload > MAX_PAYLOAD) {
		count(1);
		return TC_ACT_OK;
	}
	saddr = ip->saddr;
	sport = tcp->source;
	if (insert_option(skb, ETH_HLEN, ETH_HLEN + ihl, tcp_len, ip_total, payload, saddr, sport)) {
		count(1);
		return TC_ACT_OK;
	}
	count(0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
