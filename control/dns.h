/* dns: an asynchronous stub resolver on a libevent base (control thread).
 * The resolver owns its sockets (a pool of UDP sockets per server, see
 * dns_resolver_set_pool), timers and queued queries. dns_query returns
 * a handle owned by the resolver: valid until its callback starts or until
 * dns_cancel; never free it. The callback owns the ldns_pkt it is handed
 * (non-NULL whenever an answer was accepted, whatever its RCODE) and must
 * ldns_pkt_free it. dns_resolver_free drops pending queries without callbacks. */
#ifndef HEE_DNS_H
#define HEE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <ldns/ldns.h>

typedef enum {
    DNS_OK = 0,        /* NOERROR; the answer section may still be empty (NODATA) */
    DNS_ERR_NXDOMAIN,
    DNS_ERR_SERVFAIL,  /* SERVFAIL, and any RCODE not listed here (pkt tells which) */
    DNS_ERR_REFUSED,
    DNS_ERR_TIMEOUT,   /* every attempt timed out */
    DNS_ERR_MALFORMED, /* matching header and question, unparseable rest */
    DNS_ERR_NETWORK,   /* socket/connect/send failed, ICMP unreachable, TCP reset */
} dns_status_t;

/* Query flags. RD is set unless DNS_NORD: the usual server is a recursive
 * resolver; authoritative servers ignore it. Without DNS_EDNS queries carry no
 * OPT record, so answers above 512 bytes come back truncated and are retried
 * over TCP. */
#define DNS_CD   0x1u /* checking disabled: ask a validator for the bogus answer */
#define DNS_NORD 0x2u
#define DNS_EDNS 0x4u /* EDNS0 with a 1232-byte UDP buffer */

typedef struct dns_resolver dns_resolver_t;
typedef struct dns_query dns_query_t;

/* pkt: see the ownership rule at the top; NULL for TIMEOUT/MALFORMED/NETWORK. */
typedef void (*dns_cb)(dns_status_t status, ldns_pkt *pkt, void *arg);

typedef struct {
    uint64_t queries;       /* dns_query calls accepted */
    uint64_t udp_sent;      /* UDP datagrams sent (one per attempt) */
    uint64_t tcp_fallbacks; /* truncated answers retried over TCP (a TCP attempt begun) */
    uint64_t tcp_refused;   /* truncated answers not retried: max_tcp fallbacks were open */
    uint64_t timeouts;      /* attempts that timed out */
    uint64_t ignored;       /* datagrams dropped: wrong source, ID or question */
    uint64_t malformed;     /* attempts ended by an unparseable answer */
    uint64_t net_errors;    /* attempts ended by a socket error, or by tcp_refused */
    uint64_t queued_peak;   /* highest queue length seen */
    uint64_t sockets_opened;  /* pooled UDP sockets opened (each a new random port) */
    uint64_t sockets_open;    /* pooled UDP sockets open now, retiring ones included */
    uint64_t case_mismatches; /* 0x20 answers in another case (server asked plainly since) */
} dns_stats_t;

/* servers: "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53" (numeric only).
 * timeout_ms: per attempt; attempts: total tries per query, rotating through
 * the servers (2 servers, 2 attempts = each once). NULL on bad input. */
dns_resolver_t *dns_resolver_new(struct event_base *base, const char *const *servers,
                                 size_t n, int timeout_ms, int attempts);
/* Reads nameserver lines and "options timeout:N attempts:N" from path
 * (NULL = /etc/resolv.conf) like glibc: attempts there are rounds through all
 * servers. timeout_ms/attempts <= 0 take the file's values or 5000 ms / 2.
 * Reads a file: call at start-up, not from a callback. */
dns_resolver_t *dns_resolver_from_resolv_conf(struct event_base *base, const char *path,
                                              int timeout_ms, int attempts);
void dns_resolver_free(dns_resolver_t *r);

/* Queries beyond this many in flight wait in a FIFO queue. Default 512. UDP
 * attempts share the pooled sockets; only a TCP fallback holds its own. */
void dns_resolver_set_max_inflight(dns_resolver_t *r, size_t max);
/* TCP fallbacks open at once (default 256); a truncated answer beyond it
 * ends that attempt as a network error (counted as tcp_refused, not as a
 * fallback), so fds stay bounded whatever the in-flight cap. */
void dns_resolver_set_max_tcp(dns_resolver_t *r, size_t max);
/* UDP source-port pool (trade-offs in the DESIGN comment of dns.c).
 * sockets: per server (0 = 64, at most 4096); each attempt leaves from one
 * picked at random. A socket is replaced by one on a new random port after
 * max_uses queries (0 = 256) or max_age_ms (0 = 5000). Sockets in use drain
 * and close. 0, or -1 on bad input (nothing changed). */
int dns_resolver_set_pool(dns_resolver_t *r, size_t sockets, unsigned max_uses, int max_age_ms);
/* 0x20 (default off): UDP query names go out in random letter case and an
 * answer must echo it exactly, one more bit against spoofing per letter. A
 * server seen answering in another case is asked plainly from then on; one
 * that matches names case-sensitively is not detected, hence opt-in. The
 * ldns_pkt handed to callbacks always carries the name as asked. */
void dns_resolver_set_0x20(dns_resolver_t *r, bool on);
size_t dns_resolver_inflight(const dns_resolver_t *r);
size_t dns_resolver_queued(const dns_resolver_t *r);
void dns_resolver_stats(const dns_resolver_t *r, dns_stats_t *out);

/* Starts (or queues) a query of class IN. name: presentation format, with or
 * without the final dot. The callback never runs inside dns_query. Returns
 * NULL (and no callback) when name or type is invalid or memory runs out. */
dns_query_t *dns_query(dns_resolver_t *r, const char *name, ldns_rr_type type,
                       unsigned flags, dns_cb cb, void *arg);
/* Drops a pending query; its callback will not run. */
void dns_cancel(dns_query_t *q);

const char *dns_status_str(dns_status_t s);

/* --- exposed for tests and fuzzing ------------------------------------ */

typedef enum {
    DNS_CHECK_ACCEPT = 0, /* *out set; caller owns it */
    DNS_CHECK_IGNORE,     /* not an answer to this query: keep waiting */
    DNS_CHECK_TRUNCATED,  /* our answer, TC set: retry over TCP */
    DNS_CHECK_MALFORMED,  /* our header and question, broken body */
} dns_check_t;

/* Acceptance test for one received message: ID, QR, opcode, exactly one
 * question equal (case-insensitively, not compressed) to qname/qtype/IN,
 * then a full parse. The resolver runs the same check on its own answers,
 * with the exact case when 0x20 is on. */
dns_check_t dns_answer_check(const uint8_t *wire, size_t len, uint16_t id,
                             const ldns_rdf *qname, ldns_rr_type qtype, ldns_pkt **out);
/* Maps an accepted answer's RCODE to a status. */
dns_status_t dns_rcode_status(const ldns_pkt *pkt);
/* Parses one server string as documented at dns_resolver_new. 0 or -1. */
int dns_parse_server(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
