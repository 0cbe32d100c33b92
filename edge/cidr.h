/* cidr: address ranges from [edge] trusted_proxies ("10.0.0.0/8 ::1 ...")
 * and the test whether a peer is inside one. IPv4-mapped IPv6 peers match
 * IPv4 ranges. Pure functions; cidr_list_parse hands back a malloc'd array
 * the caller frees. */
#ifndef HEE_EDGE_CIDR_H
#define HEE_EDGE_CIDR_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct edge_cidr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} edge_cidr_t;

/* Parses one "addr" or "addr/bits". 0 or -1. */
int cidr_parse(const char *s, size_t n, edge_cidr_t *out);
/* Parses a space/comma separated list; entries that do not parse are
 * skipped and counted in *bad. *out is malloc'd (NULL when empty). */
int cidr_list_parse(const char *list, edge_cidr_t **out, int *n, int *bad);
/* 1 when the socket address is inside one of the ranges. */
int cidr_match(const edge_cidr_t *list, int n, const struct sockaddr_storage *ss);

#endif
