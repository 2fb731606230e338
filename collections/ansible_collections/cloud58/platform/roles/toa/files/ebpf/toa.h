/* TOA ("TCP option address") wire format shared by the director and realserver programs.
 *
 * The format is the one of DPVS and Alibaba LVS: DPVS (github.com/iqiyi/dpvs) defines it in
 * include/ipvs/proto_tcp.h (TCP_OPT_ADDR = 254, TCP_OLEN_IP4_ADDR 8, TCP_OLEN_IP6_ADDR 20,
 * struct tcpopt_addr: opcode, opsize, __be16 port, address) and its realserver module in
 * kmod/toa/toa.h. Option kind 254, length 8, then the client's TCP port (2 bytes) and IPv4
 * address (4 bytes), both in network byte order. The IPv6 form (length 20: port + 16-byte
 * address) is not implemented here.
 */
#ifndef CLOUD58_TOA_H
#define CLOUD58_TOA_H

#define TOA_KIND 254
#define TOA_LEN_IPV4 8

#define TCP_MAX_OPTIONS 40 /* 60-byte TCP header minus the 20-byte fixed part */

/* Key of the director's map "toa_vips": a VIP and TCP port, network byte order. */
struct toa_vip {
	__u32 addr;
	__u16 port;
	__u16 pad; /* zero */
};

/* The client as the realserver's programs keep it per socket, network byte order. */
struct toa_client {
	__u32 addr;
	__u16 port;
	__u16 pad;
};

#endif
