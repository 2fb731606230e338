// SPDX-License-Identifier: GPL-2.0
/* Realserver side of TOA, attached to a cgroup v2 directory (the cgroup of the servers
 * whose clients should be visible; the cgroup root for every process):
 *
 * - "toa_sockops" (sock_ops): when a passive connection becomes established, the kernel
 *   passes the ACK that completed the handshake; the program walks its TCP options and,
 *   if it finds the TOA option (kind 254, length 8), keeps the client's address and port
 *   in the socket's storage (map "toa_clients"). bpf_load_hdr_opt() cannot be used: for
 *   kind 254 it matches two "magic" bytes, which in TOA are the client's port.
 * - "toa_getpeername4" (cgroup/getpeername4): for a socket with such storage, getpeername()
 *   and accept() return the client instead of the director's local address.
 *
 * Sockets without the option are untouched. When a packet carries several TOA options the
 * last one counts: the director appends its own after any the client sent. Otherwise the
 * option is trusted as it comes: only directors must be able to reach the realservers'
 * service ports (as with the TOA module).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "toa.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct toa_client);
} toa_clients SEC(".maps");

struct parse {
	__u8 opts[TCP_MAX_OPTIONS];
	__u32 len;  /* option bytes present */
	__u32 next; /* offset of the next option */
	__u32 found;
	struct toa_client client;
};

/* One option per call: 1 stops bpf_loop. */
static long parse_option(__u32 index, struct parse *p)
{
	__u32 off = p->next;
	__u8 kind, len;

	if (off >= p->len || off >= TCP_MAX_OPTIONS)
		return 1;
	kind = p->opts[off & 63]; /* off < 40, the mask is for the verifier */
	if (kind == 0) /* end of options */
		return 1;
	if (kind == 1) { /* no-operation */
		p->next = off + 1;
		return 0;
	}
	if (off + 1 >= p->len || off + 1 >= TCP_MAX_OPTIONS)
		return 1;
	len = p->opts[(off + 1) & 63];
	if (len < 2 || off + len > p->len)
		return 1;
	if (kind == TOA_KIND && len == TOA_LEN_IPV4 && off + TOA_LEN_IPV4 <= TCP_MAX_OPTIONS) {
		__u32 o = off & 63; /* off + 8 <= 40: the mask and test are for the verifier */

		if (o + TOA_LEN_IPV4 > TCP_MAX_OPTIONS)
			return 1;
		/* keep going: the last one counts, the director appends after the client's options */
		__builtin_memcpy(&p->client.port, &p->opts[o + 2], 2);
		__builtin_memcpy(&p->client.addr, &p->opts[o + 4], 4);
		p->found = 1;
	}
	p->next = off + len;
	return 0;
}

SEC("sockops")
int toa_sockops(struct bpf_sock_ops *skops)
{
	struct parse p = {};
	struct toa_client *stored;
	struct bpf_sock *sk;
	void *data, *data_end;
	struct tcphdr *tcp;
	__u32 i, hdr_len;

	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	data = (void *)(long)skops->skb_data;
	data_end = (void *)(long)skops->skb_data_end;
	tcp = data;
	if ((void *)(tcp + 1) > data_end)
		return 1;
	hdr_len = tcp->doff * 4;
	if (hdr_len <= sizeof(*tcp) || hdr_len > 60)
		return 1;
	p.len = hdr_len - sizeof(*tcp);
	/* copy the options to the stack, byte by byte within the packet's bounds */
	for (i = 0; i < TCP_MAX_OPTIONS; i++) {
		__u8 *byte = data + sizeof(*tcp) + i;

		if (i >= p.len || (void *)(byte + 1) > data_end)
			break;
		p.opts[i] = *byte;
	}
	if (i < p.len)
		p.len = i;
	bpf_loop(TCP_MAX_OPTIONS, parse_option, &p, 0);
	if (!p.found)
		return 1;

	sk = skops->sk;
	if (!sk)
		return 1;
	stored = bpf_sk_storage_get(&toa_clients, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!stored)
		return 1;
	stored->addr = p.client.addr;
	stored->port = p.client.port;
	return 1;
}

SEC("cgroup/getpeername4")
int toa_getpeername4(struct bpf_sock_addr *ctx)
{
	struct toa_client *client;
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return 1;
	client = bpf_sk_storage_get(&toa_clients, sk, 0, 0);
	if (!client)
		return 1;
	ctx->user_ip4 = client->addr;
	ctx->user_port = client->port; /* network order in the low 16 bits */
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
