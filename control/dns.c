/* DESIGN
 * UDP queries go out through a pool of connected UDP sockets per server
 * (dns_resolver_set_pool: default 64 per server). A socket is opened lazily
 * in a random slot: socket() + connect() makes Linux bind it to a random
 * ephemeral port, and the kernel then drops datagrams from any other peer and
 * reports ICMP port unreachable as ECONNREFUSED. Each attempt picks a slot at
 * random, so consecutive queries leave from unrelated ports. A socket is
 * RETIRED after max_uses queries (default 256), at max_age_ms (default 5 s;
 * idle ones are reaped by the timer within twice that) or when 1024 attempts
 * wait on it: it takes no new query, drains, and closes, and the slot gets a
 * fresh socket on a new random port. The socket, its event (persistent, one
 * epoll registration) and its port are thus paid for once per ~256 queries
 * instead of once per query.
 *
 * Matching: every attempt draws a random 16-bit ID that no other attempt on
 * the same socket holds (a hash keyed by socket and ID finds the attempt for
 * an answer). An answer is accepted only when it comes from the server's
 * address and port, carries that ID, QR set, opcode QUERY, and repeats our
 * one question: same type, class IN, and the same name. With 0x20
 * (dns_resolver_set_0x20) every letter of the name goes out in a random case
 * and must come back in exactly that case; before parsing, the question bytes
 * are set back to the name as asked, so callers (and owner names compressed
 * against the question) never see the random case. A server that answers with
 * the name matching but in another case does not echo case: the server is
 * asked plainly from then on (log dns.0x20_off) and the attempt is re-sent at
 * once without using up a try. 0x20 is off by default: a server that matches
 * names case-sensitively (against RFC 4343; test_probe's fake zone server
 * does) would answer a random-case name wrongly rather than in another case,
 * which no fallback can notice.
 *
 * Security trade-off. To poison one name a blind spoofer must hit the port,
 * ID and name (and 0x20 case) of that name's waiting attempt before the real
 * answer. Per-query sockets gave ~30.8 bits (16-bit ID x ~28k ports of the
 * default 32768-60999 range) on ports that lived one round trip. A pooled
 * port is as random when opened, so an attacker who does not know the open
 * ports faces the same odds per packet; but ports now live up to max_age,
 * long enough for a port-inference side channel (SAD DNS, CVE-2020-25705,
 * closed in Linux >= 5.10 by randomising the ICMP rate limit) to find them.
 * An attacker who knows all 64 ports of a server is left with 6 bits (which
 * socket) + 16 bits (ID) = 1 in 2^22 per spoofed packet within the attempt's
 * timeout, plus one bit per letter of the name with 0x20 (10 for
 * "www.example.com"). Connected sockets mean such a scan must also spoof the
 * server's address, and the usual resolver is local or near, off the
 * attacker's path. Smaller max_uses/max_age shrink the window at the cost of
 * more socket churn; a bigger pool adds slot entropy (log2 of its size). A
 * spoofed ICMP unreachable for a pooled port (the attacker needs that port)
 * now fails every attempt waiting on that socket instead of one; they move on
 * to their next try. Spoofing the 0x20 fallback takes a packet that already
 * matches port, ID and name, and only turns 0x20 off for that server.
 *
 * Timers: all attempts share one timeout, so their deadlines come in the order
 * they were set; a FIFO list and one timer event replace a timer per query.
 * Failures found while sending (no callback may run inside dns_query) wait on
 * a deferred list that one active event drains from the loop.
 *
 * Reading: recvmmsg takes up to 32 datagrams per call. Several callbacks can
 * run in one batch and any of them may free the resolver: while a batch runs,
 * dns_resolver_free tears everything down but the resolver struct itself and
 * marks it dead; the batch stops and frees it. A socket being read is pinned
 * so that a callback retiring it cannot close it under the batch.
 *
 * In-flight queries are capped; the rest wait in a FIFO queue. Attempt state
 * machine: UDP -> (TC, or a datagram longer than 4 KiB) TCP connect -> write
 * -> read -> done; TCP attempts have their own socket and are asked without
 * 0x20. A timeout, socket error or broken answer moves to the next attempt on
 * the next server until `attempts` tries are spent. A SERVFAIL/REFUSED answer
 * does the same only when there is another server to ask. */
#include "control/dns.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define DNS_DEFAULT_MAX_INFLIGHT 512
#define DNS_DEFAULT_MAX_TCP 256      /* TCP fallbacks at once: each holds a socket */
#define DNS_DEFAULT_POOL 64          /* UDP sockets per server */
#define DNS_DEFAULT_MAX_USES 256     /* queries a socket sends before retiring */
#define DNS_DEFAULT_MAX_AGE_MS 5000
#define DNS_MAX_POOL 4096
#define DNS_SOCK_MAX_INFLIGHT 1024 /* keeps random IDs on one socket sparse */
#define DNS_EDNS_BUFSIZE 1232
#define DNS_MAX_SERVERS 8
#define DNS_HDR 12
#define DNS_RX_BATCH 32   /* datagrams per recvmmsg */
#define DNS_RX_ROUNDS 2   /* recvmmsg calls per wake-up before yielding */
#define DNS_RX_DGRAM 4096 /* longer datagrams arrive cut: retried over TCP */
#define DNS_HTAB_MIN 64
#define DNS_HTAB_MAX (1u << 20)

enum qstate { Q_QUEUED, Q_UDP, Q_TCP_WRITE, Q_TCP_READ, Q_DEFER };
enum tlist { T_NONE, T_TIMERS, T_DEFERRED };

struct dns_server {
    struct sockaddr_storage ss;
    socklen_t len;
    bool no_0x20; /* answered in another letter case: asked plainly since */
    char name[64];
};

struct dns_sock {
    LIST_ENTRY(dns_sock) rlink;      /* r->retired, while retired and open */
    LIST_HEAD(, dns_query) queries; /* attempts waiting on this socket */
    dns_resolver_t *r;
    struct event *ev; /* persistent read watch */
    int fd;
    uint32_t serial; /* hash key: pointers get reused, serials do not */
    size_t server;
    unsigned uses, inflight;
    int64_t born;
    bool retired, reading;
};

struct dns_query {
    TAILQ_ENTRY(dns_query) link;  /* r->inflight or r->queue */
    TAILQ_ENTRY(dns_query) tlink; /* r->timers or r->deferred, as tlist says */
    LIST_ENTRY(dns_query) slink;  /* sock->queries */
    dns_query_t *hnext;           /* r->htab chain */
    dns_resolver_t *r;
    struct dns_sock *sock; /* UDP attempt's socket, NULL otherwise */
    dns_cb cb;
    void *arg;
    int64_t deadline;
    enum qstate state;
    enum tlist tlist;
    dns_status_t fail; /* what a deferred failure reports */
    ldns_rr_type qtype;
    int tries;
    size_t server;
    uint16_t id;
    bool caps; /* this attempt's name went out in 0x20 case */
    /* TCP fallback: own socket and event */
    int fd;
    struct event *ev;
    size_t woff; /* bytes of wire sent */
    uint8_t lenbuf[2];
    size_t lenoff;
    uint8_t *rbuf;
    size_t rlen, roff;
    /* wire: the 2-byte TCP length prefix, then the message (UDP sends
     * wire + 2); its question name sits at wire + 2 + DNS_HDR. name: that
     * name as asked. Both point into data. */
    uint8_t *wire, *name;
    size_t wlen, nlen;
    uint8_t data[];
};

TAILQ_HEAD(dns_qlist, dns_query);
LIST_HEAD(dns_slist, dns_sock);

struct dns_rx {
    struct mmsghdr msgs[DNS_RX_BATCH];
    struct iovec iov[DNS_RX_BATCH];
    struct sockaddr_storage from[DNS_RX_BATCH];
    uint8_t buf[DNS_RX_BATCH][DNS_RX_DGRAM];
};

struct dns_resolver {
    struct event_base *base;
    struct dns_server servers[DNS_MAX_SERVERS];
    size_t nservers;
    int timeout_ms;
    int attempts;
    size_t max_inflight, ninflight, nqueued, ndeferred;
    size_t max_tcp, ntcp;
    struct dns_qlist inflight, queue, timers, deferred;
    /* pool[server * pool_size + slot]; NULL slots open on first use */
    struct dns_sock **pool;
    size_t pool_size, nsocks;
    unsigned max_uses;
    int max_age_ms;
    struct dns_slist retired;
    uint32_t serials;
    bool use_0x20;
    dns_query_t **htab;
    size_t hmask;
    struct event *tick; /* deadline of the oldest attempt; idle-socket reaping */
    bool tick_armed;
    int64_t tick_at, next_reap;
    struct event *kick; /* runs deferred failures from the loop */
    bool busy, dead;    /* see DESIGN: freed from a callback in a batch */
    size_t rnd_off;
    uint8_t rnd[512]; /* CSPRNG bytes, drawn a few at a time */
    dns_stats_t stats;
    struct dns_rx rx;
};

static void q_send_udp(dns_query_t *q);
static void q_next(dns_query_t *q, dns_status_t st);
static void on_sock_read(evutil_socket_t fd, short what, void *arg);
static void on_tcp_event(evutil_socket_t fd, short what, void *arg);

const char *dns_status_str(dns_status_t s)
{
    static const char *const names[] = {"OK", "NXDOMAIN", "SERVFAIL", "REFUSED",
                                        "TIMEOUT", "MALFORMED", "NETWORK"};
    if ((size_t)s < UTIL_ARRAY_LEN(names))
        return names[s];
    return "UNKNOWN";
}

/* ---- parsing ------------------------------------------------------------ */

static int parse_port(const char *p, char *out, size_t outlen)
{
    size_t n = strlen(p);
    if (n == 0 || n >= outlen || n > 5)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    memcpy(out, p, n + 1);
    return 0;
}

int dns_parse_server(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 64];
    char port[8] = "53";
    const char *h = s, *p = NULL;
    size_t hlen;

    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end)
            return -1;
        h = s + 1;
        hlen = (size_t)(end - h);
        if (end[1] == ':')
            p = end + 2;
        else if (end[1] != '\0')
            return -1;
    } else {
        const char *c = strchr(s, ':');
        if (c && !strchr(c + 1, ':')) { /* one colon: IPv4 with a port */
            hlen = (size_t)(c - s);
            p = c + 1;
        } else {
            hlen = strlen(s);
        }
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (p && parse_port(p, port, sizeof(port)) != 0)
        return -1;

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    /* Numeric-only, so getaddrinfo never touches the network. */
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return -1;
    int rc = -1;
    if (res->ai_addrlen <= sizeof(*ss)) {
        memset(ss, 0, sizeof(*ss));
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *len = (socklen_t)res->ai_addrlen;
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

/* ---- answer checks -------------------------------------------------------- */

static bool is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static bool bytes_ieq(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && !(is_alpha(a[i]) && (a[i] ^ 0x20) == b[i]))
            return false;
    return true;
}

/* What one received message is to the attempt it names by ID. */
enum verdict {
    V_PARSE,     /* ours, whole: parse it */
    V_IGNORE,    /* not an answer to this attempt */
    V_TRUNCATED, /* ours, TC set or cut by our buffer */
    V_CASE,      /* ours but for the letter case of a 0x20 name */
};

typedef struct {
    const uint8_t *name; /* wire form, as sent */
    size_t nlen;
    uint16_t id, qtype;
    bool exact_case; /* 0x20: the name must come back byte for byte */
} expect_t;

/* Header and question of w against e. The question name must be the
 * uncompressed name we sent (it is the first name: nothing precedes it that a
 * pointer could honestly reach). Comparing valid wire names bytewise with
 * ASCII letters folded equals comparing them label by label, since length
 * bytes (< 64) are never letters. */
static enum verdict judge(const uint8_t *w, size_t len, const expect_t *e, bool tcp, bool cut)
{
    if (len < DNS_HDR || LDNS_ID_WIRE(w) != e->id || !LDNS_QR_WIRE(w) ||
        LDNS_OPCODE_WIRE(w) != LDNS_PACKET_QUERY || LDNS_QDCOUNT(w) != 1 ||
        len - DNS_HDR < e->nlen + 4)
        return V_IGNORE;
    const uint8_t *p = w + DNS_HDR;
    bool exact = memcmp(p, e->name, e->nlen) == 0;
    if ((!exact && !bytes_ieq(p, e->name, e->nlen)) || ldns_read_uint16(p + e->nlen) != e->qtype ||
        ldns_read_uint16(p + e->nlen + 2) != LDNS_RR_CLASS_IN)
        return V_IGNORE;
    if (!exact && e->exact_case)
        return V_CASE;
    /* Over TCP a TC bit has nothing left to fall back to: take what came. */
    if ((LDNS_TC_WIRE(w) || cut) && !tcp)
        return V_TRUNCATED;
    return V_PARSE;
}

dns_check_t dns_answer_check(const uint8_t *wire, size_t len, uint16_t id,
                             const ldns_rdf *qname, ldns_rr_type qtype, ldns_pkt **out)
{
    *out = NULL;
    if (!qname || ldns_rdf_get_type(qname) != LDNS_RDF_TYPE_DNAME)
        return DNS_CHECK_IGNORE;
    expect_t e = {.name = ldns_rdf_data(qname), .nlen = ldns_rdf_size(qname), .id = id,
                  .qtype = (uint16_t)qtype};
    switch (judge(wire, len, &e, false, false)) {
    case V_PARSE:
        break;
    case V_TRUNCATED:
        return DNS_CHECK_TRUNCATED;
    default:
        return DNS_CHECK_IGNORE;
    }
    if (ldns_wire2pkt(out, wire, len) != LDNS_STATUS_OK) {
        *out = NULL;
        return DNS_CHECK_MALFORMED;
    }
    return DNS_CHECK_ACCEPT;
}

dns_status_t dns_rcode_status(const ldns_pkt *pkt)
{
    switch (ldns_pkt_get_rcode(pkt)) {
    case LDNS_RCODE_NOERROR:
        return DNS_OK;
    case LDNS_RCODE_NXDOMAIN:
        return DNS_ERR_NXDOMAIN;
    case LDNS_RCODE_REFUSED:
        return DNS_ERR_REFUSED;
    default:
        return DNS_ERR_SERVFAIL;
    }
}

static bool sockaddr_same(const struct sockaddr_storage *a, socklen_t alen,
                          const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof(*x) && x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return alen >= sizeof(*x) && x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* ---- randomness and the (socket, ID) table ------------------------------ */

static int r_random(dns_resolver_t *r, void *out, size_t n)
{
    if (n > sizeof(r->rnd))
        return util_random(out, n);
    if (r->rnd_off + n > sizeof(r->rnd)) {
        if (util_random(r->rnd, sizeof(r->rnd)) != 0)
            return -1;
        r->rnd_off = 0;
    }
    memcpy(out, r->rnd + r->rnd_off, n);
    r->rnd_off += n;
    return 0;
}

static dns_query_t **h_bucket(const dns_resolver_t *r, const struct dns_sock *s, uint16_t id)
{
    uint32_t h = s->serial * 0x9e3779b1u ^ (uint32_t)id * 0x85ebca6bu;
    return &r->htab[(h ^ (h >> 15)) & r->hmask];
}

static dns_query_t *h_find(const dns_resolver_t *r, const struct dns_sock *s, uint16_t id)
{
    for (dns_query_t *q = *h_bucket(r, s, id); q; q = q->hnext)
        if (q->sock == s && q->id == id)
            return q;
    return NULL;
}

static void h_insert(dns_query_t *q)
{
    dns_query_t **b = h_bucket(q->r, q->sock, q->id);
    q->hnext = *b;
    *b = q;
}

static void h_remove(dns_query_t *q)
{
    for (dns_query_t **pp = h_bucket(q->r, q->sock, q->id); *pp; pp = &(*pp)->hnext) {
        if (*pp == q) {
            *pp = q->hnext;
            q->hnext = NULL;
            return;
        }
    }
}

/* Sizes the table for `want` attempts; on failure the old one stays (chains
 * just grow longer). */
static int h_resize(dns_resolver_t *r, size_t want)
{
    size_t n = DNS_HTAB_MIN;
    while (n < DNS_HTAB_MAX && n < want * 2)
        n *= 2;
    if (r->htab && n == r->hmask + 1)
        return 0;
    dns_query_t **t = calloc(n, sizeof(*t));
    if (!t)
        return -1;
    free(r->htab);
    r->htab = t;
    r->hmask = n - 1;
    dns_query_t *q;
    TAILQ_FOREACH(q, &r->inflight, link)
        if (q->sock)
            h_insert(q);
    return 0;
}

/* ---- socket pool -------------------------------------------------------- */

static struct dns_sock *sock_open(dns_resolver_t *r, size_t server, int64_t now)
{
    const struct dns_server *srv = &r->servers[server];
    struct dns_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->r = r;
    s->server = server;
    LIST_INIT(&s->queries);
    /* connect() picks a random ephemeral port (Linux randomises autobind). */
    s->fd = socket(srv->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (const struct sockaddr *)&srv->ss, srv->len) != 0)
        goto fail;
    s->ev = event_new(r->base, s->fd, EV_READ | EV_PERSIST, on_sock_read, s);
    if (!s->ev || event_add(s->ev, NULL) != 0)
        goto fail;
    s->serial = ++r->serials;
    s->born = now;
    r->nsocks++;
    r->stats.sockets_opened++;
    return s;
fail:
    log_debug("dns.socket_failed", "errno=%d", errno);
    if (s->ev)
        event_free(s->ev);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    return NULL;
}

static void sock_close(struct dns_sock *s)
{
    s->r->nsocks--;
    event_free(s->ev);
    close(s->fd);
    free(s);
}

/* s has left its slot: no new attempts; it closes once the last one ends. */
static void sock_retire(struct dns_sock *s)
{
    s->retired = true;
    if (s->inflight == 0 && !s->reading)
        sock_close(s);
    else
        LIST_INSERT_HEAD(&s->r->retired, s, rlink);
}

/* Ends a pin (s->reading) or an attempt's hold on s. */
static void sock_check(struct dns_sock *s)
{
    if (s->retired && s->inflight == 0 && !s->reading) {
        LIST_REMOVE(s, rlink);
        sock_close(s);
    }
}

static bool sock_stale(const dns_resolver_t *r, const struct dns_sock *s, int64_t now)
{
    return s->uses >= r->max_uses || now - s->born >= r->max_age_ms ||
           s->inflight >= DNS_SOCK_MAX_INFLIGHT;
}

/* A socket in a random slot of the server's pool, fresh if the slot's was
 * stale or empty. NULL when none can be opened. */
static struct dns_sock *sock_pick(dns_resolver_t *r, size_t server, int64_t now)
{
    uint32_t rnd;
    if (r_random(r, &rnd, sizeof(rnd)) != 0)
        return NULL;
    struct dns_sock **slot = &r->pool[server * r->pool_size + rnd % r->pool_size];
    if (*slot && sock_stale(r, *slot, now)) {
        sock_retire(*slot);
        *slot = NULL;
    }
    if (!*slot)
        *slot = sock_open(r, server, now);
    return *slot;
}

/* Retires every pooled socket (`all`), or the stale ones with nothing
 * waiting on them: an idle old port is not left open for someone to find. */
static void pool_retire(dns_resolver_t *r, bool all, int64_t now)
{
    for (size_t i = 0; i < r->nservers * r->pool_size; i++) {
        struct dns_sock *s = r->pool[i];
        if (s && (all || (s->inflight == 0 && sock_stale(r, s, now)))) {
            r->pool[i] = NULL;
            sock_retire(s);
        }
    }
}

/* ---- resolver ----------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg);
static void on_kick(evutil_socket_t fd, short what, void *arg);

static void rx_init(struct dns_rx *rx)
{
    for (size_t i = 0; i < DNS_RX_BATCH; i++) {
        rx->iov[i].iov_base = rx->buf[i];
        rx->iov[i].iov_len = sizeof(rx->buf[i]);
        rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
        rx->msgs[i].msg_hdr.msg_iovlen = 1;
        rx->msgs[i].msg_hdr.msg_name = &rx->from[i];
    }
}

dns_resolver_t *dns_resolver_new(struct event_base *base, const char *const *servers,
                                 size_t n, int timeout_ms, int attempts)
{
    if (!base || !servers || n == 0 || n > DNS_MAX_SERVERS || timeout_ms <= 0 || attempts <= 0)
        return NULL;
    dns_resolver_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (dns_parse_server(servers[i], &r->servers[i].ss, &r->servers[i].len) != 0) {
            log_error("dns.bad_server", "server=%s", servers[i] ? servers[i] : "(null)");
            free(r);
            return NULL;
        }
        snprintf(r->servers[i].name, sizeof(r->servers[i].name), "%s", servers[i]);
    }
    r->base = base;
    r->nservers = n;
    r->timeout_ms = timeout_ms;
    r->attempts = attempts;
    r->max_inflight = DNS_DEFAULT_MAX_INFLIGHT;
    r->max_tcp = DNS_DEFAULT_MAX_TCP;
    r->pool_size = DNS_DEFAULT_POOL;
    r->max_uses = DNS_DEFAULT_MAX_USES;
    r->max_age_ms = DNS_DEFAULT_MAX_AGE_MS;
    r->rnd_off = sizeof(r->rnd);
    TAILQ_INIT(&r->inflight);
    TAILQ_INIT(&r->queue);
    TAILQ_INIT(&r->timers);
    TAILQ_INIT(&r->deferred);
    LIST_INIT(&r->retired);
    rx_init(&r->rx);
    r->pool = calloc(n * r->pool_size, sizeof(*r->pool));
    r->tick = evtimer_new(base, on_tick, r);
    r->kick = event_new(base, -1, 0, on_kick, r);
    if (!r->pool || !r->tick || !r->kick || h_resize(r, r->max_inflight) != 0) {
        dns_resolver_free(r);
        return NULL;
    }
    return r;
}

static void conf_line(char *line, char **servers, size_t *n, int *timeout_s, int *rounds)
{
    char *save = NULL;
    char *key = strtok_r(line, " \t\r\n", &save);
    if (!key)
        return;
    if (strcmp(key, "nameserver") == 0) {
        char *v = strtok_r(NULL, " \t\r\n", &save);
        struct sockaddr_storage ss;
        socklen_t len;
        if (v && *n < DNS_MAX_SERVERS && dns_parse_server(v, &ss, &len) == 0) {
            servers[*n] = strdup(v);
            if (servers[*n])
                (*n)++;
        }
        return;
    }
    if (strcmp(key, "options") != 0)
        return;
    for (char *o; (o = strtok_r(NULL, " \t\r\n", &save));) {
        if (strncmp(o, "timeout:", 8) == 0)
            *timeout_s = atoi(o + 8);
        else if (strncmp(o, "attempts:", 9) == 0)
            *rounds = atoi(o + 9);
    }
}

dns_resolver_t *dns_resolver_from_resolv_conf(struct event_base *base, const char *path,
                                              int timeout_ms, int attempts)
{
    char *servers[DNS_MAX_SERVERS];
    size_t n = 0;
    int timeout_s = 0, rounds = 0;
    FILE *f = fopen(path ? path : "/etc/resolv.conf", "re");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) >= 0) {
            line[strcspn(line, "#;")] = '\0';
            conf_line(line, servers, &n, &timeout_s, &rounds);
        }
        free(line);
        fclose(f);
    }
    if (n == 0) { /* glibc's default when the file names no server */
        servers[0] = strdup("127.0.0.1");
        if (!servers[0])
            return NULL;
        n = 1;
    }
    if (timeout_ms <= 0)
        timeout_ms = timeout_s > 0 ? timeout_s * 1000 : 5000;
    if (attempts <= 0)
        attempts = (rounds > 0 ? rounds : 2) * (int)n;
    dns_resolver_t *r = dns_resolver_new(base, (const char *const *)servers, n, timeout_ms, attempts);
    for (size_t i = 0; i < n; i++)
        free(servers[i]);
    return r;
}

/* Ends the current attempt: off the timer or deferred list, off its UDP
 * socket (which may then close), TCP socket closed. */
static void q_detach(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    if (q->tlist == T_TIMERS) {
        TAILQ_REMOVE(&r->timers, q, tlink);
    } else if (q->tlist == T_DEFERRED) {
        TAILQ_REMOVE(&r->deferred, q, tlink);
        r->ndeferred--;
    }
    q->tlist = T_NONE;
    if (q->sock) {
        struct dns_sock *s = q->sock;
        h_remove(q);
        LIST_REMOVE(q, slink);
        q->sock = NULL;
        s->inflight--;
        sock_check(s);
    }
    if (q->ev) {
        event_free(q->ev);
        q->ev = NULL;
    }
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
        r->ntcp--;
    }
    free(q->rbuf);
    q->rbuf = NULL;
    q->rlen = q->roff = q->lenoff = q->woff = 0;
}

static void q_free(dns_query_t *q)
{
    q_detach(q);
    free(q);
}

/* Everything but the struct itself, which a batch in progress still reads. */
static void r_teardown(dns_resolver_t *r)
{
    dns_query_t *q;
    while ((q = TAILQ_FIRST(&r->inflight))) {
        TAILQ_REMOVE(&r->inflight, q, link);
        q_free(q);
    }
    while ((q = TAILQ_FIRST(&r->queue))) {
        TAILQ_REMOVE(&r->queue, q, link);
        q_free(q);
    }
    if (r->pool) {
        for (size_t i = 0; i < r->nservers * r->pool_size; i++)
            if (r->pool[i])
                sock_close(r->pool[i]);
        free(r->pool);
        r->pool = NULL;
    }
    struct dns_sock *s;
    while ((s = LIST_FIRST(&r->retired))) {
        LIST_REMOVE(s, rlink);
        sock_close(s);
    }
    if (r->tick)
        event_free(r->tick);
    if (r->kick)
        event_free(r->kick);
    r->tick = r->kick = NULL;
    free(r->htab);
    r->htab = NULL;
}

void dns_resolver_free(dns_resolver_t *r)
{
    if (!r || r->dead)
        return;
    r_teardown(r);
    if (r->busy)
        r->dead = true;
    else
        free(r);
}

void dns_resolver_set_max_inflight(dns_resolver_t *r, size_t max)
{
    r->max_inflight = max ? max : 1;
    (void)h_resize(r, r->max_inflight);
}

void dns_resolver_set_max_tcp(dns_resolver_t *r, size_t max) { r->max_tcp = max ? max : 1; }

int dns_resolver_set_pool(dns_resolver_t *r, size_t sockets, unsigned max_uses, int max_age_ms)
{
    if (!r || sockets > DNS_MAX_POOL || max_age_ms < 0)
        return -1;
    size_t size = sockets ? sockets : DNS_DEFAULT_POOL;
    struct dns_sock **pool = calloc(r->nservers * size, sizeof(*pool));
    if (!pool)
        return -1;
    pool_retire(r, true, 0);
    free(r->pool);
    r->pool = pool;
    r->pool_size = size;
    r->max_uses = max_uses ? max_uses : DNS_DEFAULT_MAX_USES;
    r->max_age_ms = max_age_ms ? max_age_ms : DNS_DEFAULT_MAX_AGE_MS;
    return 0;
}

void dns_resolver_set_0x20(dns_resolver_t *r, bool on) { r->use_0x20 = on; }
size_t dns_resolver_inflight(const dns_resolver_t *r) { return r->ninflight; }
size_t dns_resolver_queued(const dns_resolver_t *r) { return r->nqueued; }

void dns_resolver_stats(const dns_resolver_t *r, dns_stats_t *out)
{
    *out = r->stats;
    out->sockets_open = r->nsocks;
}

/* ---- timers and deferred failures -------------------------------------- */

/* Makes the tick fire by `due` (ms on util_mono_ms). */
static void tick_arm(dns_resolver_t *r, int64_t due)
{
    if (r->tick_armed && r->tick_at <= due)
        return;
    int64_t left = due - util_mono_ms();
    if (left < 1)
        left = 1;
    struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
    if (event_add(r->tick, &tv) != 0) {
        log_error("dns.event_add_failed", "what=%s", "tick");
        return;
    }
    r->tick_armed = true;
    r->tick_at = due;
}

/* Deadlines all add the same timeout to a monotonic clock, so appending
 * keeps the list sorted. */
static void q_timer(dns_query_t *q, int64_t deadline)
{
    dns_resolver_t *r = q->r;
    q->deadline = deadline;
    TAILQ_INSERT_TAIL(&r->timers, q, tlink);
    q->tlist = T_TIMERS;
    tick_arm(r, deadline);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dns_resolver_t *r = arg;
    int64_t now = util_mono_ms();
    dns_query_t *q;
    r->tick_armed = false;
    r->busy = true;
    /* A coarse timer may fire a little early: what is not yet due waits
     * for the re-armed tick, so no attempt ever ends short. */
    while (!r->dead && (q = TAILQ_FIRST(&r->timers)) && q->deadline <= now)
        q_next(q, DNS_ERR_TIMEOUT);
    r->busy = false;
    if (r->dead) {
        free(r);
        return;
    }
    if (now >= r->next_reap) {
        pool_retire(r, false, now);
        r->next_reap = now + r->max_age_ms;
    }
    if ((q = TAILQ_FIRST(&r->timers)))
        tick_arm(r, q->deadline);
    else if (r->nsocks > 0)
        tick_arm(r, r->next_reap);
}

/* Reports a failure from the loop rather than from the caller's stack, so no
 * callback ever runs inside dns_query. */
static void q_defer(dns_query_t *q, dns_status_t st)
{
    dns_resolver_t *r = q->r;
    q_detach(q);
    q->fail = st;
    q->state = Q_DEFER;
    TAILQ_INSERT_TAIL(&r->deferred, q, tlink);
    q->tlist = T_DEFERRED;
    r->ndeferred++;
    event_active(r->kick, EV_TIMEOUT, 1);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dns_resolver_t *r = arg;
    /* Only what was deferred before this run: a retry that fails again
     * waits for the next one. */
    size_t n = r->ndeferred;
    dns_query_t *q;
    r->busy = true;
    for (size_t i = 0; i < n && !r->dead && (q = TAILQ_FIRST(&r->deferred)); i++)
        q_next(q, q->fail);
    r->busy = false;
    if (r->dead)
        free(r);
}

/* A connected socket's pending error (ICMP port unreachable from the
 * server): every attempt waiting on it ends as a network error. */
static void sock_error(struct dns_sock *s, int err)
{
    dns_query_t *q;
    log_debug("dns.socket_error", "server=%s errno=%d", s->r->servers[s->server].name, err);
    bool pinned = s->reading;
    s->reading = true;
    while ((q = LIST_FIRST(&s->queries)))
        q_defer(q, DNS_ERR_NETWORK);
    s->reading = pinned;
    sock_check(s);
}

/* ---- query state machine ----------------------------------------------- */

static void q_start(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    TAILQ_INSERT_TAIL(&r->inflight, q, link);
    r->ninflight++;
    q->tries = 0;
    q->server = 0;
    q_send_udp(q);
}

static void pump(dns_resolver_t *r)
{
    dns_query_t *q;
    while (r->ninflight < r->max_inflight && (q = TAILQ_FIRST(&r->queue))) {
        TAILQ_REMOVE(&r->queue, q, link);
        r->nqueued--;
        q_start(q);
    }
}

/* Ends the query. The callback runs last, after every resolver field it
 * touches, because it may free the resolver. */
static void q_finish(dns_query_t *q, dns_status_t st, ldns_pkt *pkt)
{
    dns_resolver_t *r = q->r;
    dns_cb cb = q->cb;
    void *arg = q->arg;
    TAILQ_REMOVE(&r->inflight, q, link);
    r->ninflight--;
    q_free(q);
    pump(r);
    cb(st, pkt, arg);
}

static void q_next(dns_query_t *q, dns_status_t st)
{
    dns_resolver_t *r = q->r;
    if (st == DNS_ERR_TIMEOUT)
        r->stats.timeouts++;
    else if (st == DNS_ERR_MALFORMED)
        r->stats.malformed++;
    else if (st == DNS_ERR_NETWORK)
        r->stats.net_errors++;
    q_detach(q);
    if (q->tries >= r->attempts) {
        q_finish(q, st, NULL);
        return;
    }
    q->server = (q->server + 1) % r->nservers;
    q_send_udp(q);
}

/* Writes this attempt's name into the wire: each letter in a random case
 * under 0x20, else as asked. */
static int q_set_name(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    uint8_t *w = q->wire + 2 + DNS_HDR;
    q->caps = r->use_0x20 && !r->servers[q->server].no_0x20;
    if (!q->caps) {
        memcpy(w, q->name, q->nlen);
        return 0;
    }
    uint8_t bits[32]; /* nlen <= 255 */
    if (r_random(r, bits, (q->nlen + 7) / 8) != 0)
        return -1;
    for (size_t i = 0; i < q->nlen; i++) {
        uint8_t c = q->name[i];
        if (is_alpha(c))
            c = (bits[i / 8] >> (i % 8)) & 1 ? (uint8_t)(c & ~0x20) : (uint8_t)(c | 0x20);
        w[i] = c;
    }
    return 0;
}

/* A random ID that no other attempt on s holds. */
static int q_pick_id(dns_query_t *q, const struct dns_sock *s)
{
    /* s has < DNS_SOCK_MAX_INFLIGHT attempts: a draw collides with
     * p < 1/64, so 32 draws all colliding do not happen. */
    for (int i = 0; i < 32; i++) {
        uint16_t id;
        if (r_random(q->r, &id, sizeof(id)) != 0)
            return -1;
        if (!h_find(q->r, s, id)) {
            q->id = id;
            return 0;
        }
    }
    return -1;
}

static void q_send_udp(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    int64_t now = util_mono_ms();
    q->tries++;
    q->state = Q_UDP;
    struct dns_sock *s = sock_pick(r, q->server, now);
    if (!s || q_pick_id(q, s) != 0 || q_set_name(q) != 0) {
        q_defer(q, DNS_ERR_NETWORK);
        return;
    }
    ldns_write_uint16(q->wire + 2, q->id);
    if (send(s->fd, q->wire + 2, q->wlen, 0) != (ssize_t)q->wlen) {
        /* ECONNREFUSED here is an earlier datagram's ICMP unreachable. */
        if (errno == ECONNREFUSED)
            sock_error(s, errno);
        q_defer(q, DNS_ERR_NETWORK);
        return;
    }
    r->stats.udp_sent++;
    s->uses++;
    s->inflight++;
    q->sock = s;
    LIST_INSERT_HEAD(&s->queries, q, slink);
    h_insert(q);
    q_timer(q, now + r->timeout_ms);
}

static void q_answer(dns_query_t *q, ldns_pkt *pkt)
{
    dns_resolver_t *r = q->r;
    dns_status_t st = dns_rcode_status(pkt);
    if ((st == DNS_ERR_SERVFAIL || st == DNS_ERR_REFUSED) && r->nservers > 1 &&
        q->tries < r->attempts) {
        ldns_pkt_free(pkt);
        q_next(q, st);
        return;
    }
    q_finish(q, st, pkt);
}

/* Parses an answer that passed judge(): the question is set back to the name
 * as asked first, which undoes 0x20 for the question and for every owner name
 * compressed against it. */
static void q_parse(dns_query_t *q, uint8_t *w, size_t len)
{
    ldns_pkt *pkt = NULL;
    memcpy(w + DNS_HDR, q->name, q->nlen);
    if (ldns_wire2pkt(&pkt, w, len) != LDNS_STATUS_OK) {
        q_next(q, DNS_ERR_MALFORMED);
        return;
    }
    q_answer(q, pkt);
}

/* The server matched our name but not its 0x20 case: it folds case. Ask it
 * plainly from now on, and ask this attempt again without spending a try. */
static void q_case_redo(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    struct dns_server *srv = &r->servers[q->server];
    r->stats.case_mismatches++;
    if (!srv->no_0x20) {
        srv->no_0x20 = true;
        log_warn("dns.0x20_off", "server=%s reason=case_not_echoed", srv->name);
    }
    q_detach(q);
    q->tries--;
    q_send_udp(q);
}

static int q_tcp_arm(dns_query_t *q, short what)
{
    event_del(q->ev);
    if (event_assign(q->ev, q->r->base, q->fd, what, on_tcp_event, q) != 0 ||
        event_add(q->ev, NULL) != 0) {
        log_error("dns.event_add_failed", "fd=%d", q->fd);
        return -1;
    }
    return 0;
}

static void q_tcp_start(dns_query_t *q)
{
    dns_resolver_t *r = q->r;
    const struct dns_server *srv = &r->servers[q->server];
    q_detach(q);
    /* Nobody blind can answer inside a stream: ask plainly. */
    memcpy(q->wire + 2 + DNS_HDR, q->name, q->nlen);
    q->caps = false;
    q->state = Q_TCP_WRITE;
    if (r->ntcp >= r->max_tcp) {
        /* Zones answering everything truncated must not take every fd. */
        r->stats.tcp_refused++;
        log_debug("dns.tcp_limited", "server=%s", srv->name);
        q_defer(q, DNS_ERR_NETWORK);
        return;
    }
    r->stats.tcp_fallbacks++;
    q->fd = socket(srv->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd >= 0)
        r->ntcp++;
    if (q->fd < 0 ||
        (connect(q->fd, (const struct sockaddr *)&srv->ss, srv->len) != 0 && errno != EINPROGRESS) ||
        !(q->ev = event_new(r->base, q->fd, EV_WRITE, on_tcp_event, q)) ||
        event_add(q->ev, NULL) != 0) {
        log_debug("dns.tcp_failed", "server=%s errno=%d", srv->name, errno);
        q_defer(q, DNS_ERR_NETWORK);
        return;
    }
    q_timer(q, util_mono_ms() + r->timeout_ms);
}

/* One datagram from s. Its ID names the only attempt it can answer. */
static void rx_one(struct dns_sock *s, size_t i)
{
    dns_resolver_t *r = s->r;
    struct dns_rx *rx = &r->rx;
    struct msghdr *h = &rx->msgs[i].msg_hdr;
    uint8_t *w = rx->buf[i];
    size_t len = rx->msgs[i].msg_len;
    if (len > sizeof(rx->buf[i]))
        len = sizeof(rx->buf[i]);
    dns_query_t *q = NULL;
    /* connect() already filters the source; this is belt and braces. */
    if (sockaddr_same(&rx->from[i], h->msg_namelen, &r->servers[s->server].ss) && len >= DNS_HDR)
        q = h_find(r, s, LDNS_ID_WIRE(w));
    if (!q) {
        r->stats.ignored++;
        return;
    }
    expect_t e = {.name = q->wire + 2 + DNS_HDR, .nlen = q->nlen, .id = q->id,
                  .qtype = (uint16_t)q->qtype, .exact_case = q->caps};
    switch (judge(w, len, &e, false, (h->msg_flags & MSG_TRUNC) != 0)) {
    case V_PARSE:
        q_parse(q, w, len);
        return;
    case V_TRUNCATED:
        q_tcp_start(q);
        return;
    case V_CASE:
        q_case_redo(q);
        return;
    case V_IGNORE:
        r->stats.ignored++;
        return;
    }
}

static void on_sock_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct dns_sock *s = arg;
    dns_resolver_t *r = s->r;
    struct dns_rx *rx = &r->rx;
    r->busy = true;
    s->reading = true;
    for (int round = 0; round < DNS_RX_ROUNDS && !r->dead; round++) {
        for (size_t i = 0; i < DNS_RX_BATCH; i++) {
            rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
            rx->msgs[i].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(fd, rx->msgs, DNS_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                sock_error(s, errno); /* ECONNREFUSED: ICMP port unreachable */
            break;
        }
        for (int i = 0; i < n && !r->dead; i++)
            rx_one(s, (size_t)i);
        if (n < DNS_RX_BATCH)
            break;
    }
    r->busy = false;
    if (r->dead) { /* a callback freed the resolver, and s with it */
        free(r);
        return;
    }
    s->reading = false;
    sock_check(s);
}

static void on_tcp_write(dns_query_t *q)
{
    if (q->woff == 0) {
        if (util_socket_error(q->fd) != 0) {
            q_next(q, DNS_ERR_NETWORK);
            return;
        }
    }
    while (q->woff < q->wlen + 2) {
        ssize_t n = send(q->fd, q->wire + q->woff, q->wlen + 2 - q->woff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (q_tcp_arm(q, EV_WRITE) != 0)
                q_next(q, DNS_ERR_NETWORK);
            return;
        }
        if (n <= 0) {
            q_next(q, DNS_ERR_NETWORK);
            return;
        }
        q->woff += (size_t)n;
    }
    q->state = Q_TCP_READ;
    if (q_tcp_arm(q, EV_READ) != 0)
        q_next(q, DNS_ERR_NETWORK);
}

/* Reads into buf[*off..want); 1 when complete, 0 when the socket ran dry,
 * -1 on error or EOF. */
static int read_some(int fd, uint8_t *buf, size_t *off, size_t want)
{
    while (*off < want) {
        ssize_t n = recv(fd, buf + *off, want - *off, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
        *off += (size_t)n;
    }
    return 1;
}

static void on_tcp_read(dns_query_t *q)
{
    int rc;
    if (q->lenoff < 2) {
        rc = read_some(q->fd, q->lenbuf, &q->lenoff, 2);
        if (rc <= 0)
            goto partial;
        q->rlen = ldns_read_uint16(q->lenbuf);
        if (q->rlen < DNS_HDR || !(q->rbuf = malloc(q->rlen))) {
            q_next(q, DNS_ERR_MALFORMED);
            return;
        }
    }
    rc = read_some(q->fd, q->rbuf, &q->roff, q->rlen);
    if (rc <= 0)
        goto partial;

    expect_t e = {.name = q->name, .nlen = q->nlen, .id = q->id, .qtype = (uint16_t)q->qtype};
    /* A stream is ours alone, so an answer that does not match is broken. */
    if (judge(q->rbuf, q->rlen, &e, true, false) != V_PARSE) {
        q_next(q, DNS_ERR_MALFORMED);
        return;
    }
    q_parse(q, q->rbuf, q->rlen);
    return;
partial:
    if (rc < 0 || q_tcp_arm(q, EV_READ) != 0)
        q_next(q, DNS_ERR_NETWORK);
}

/* The attempt's deadline is the resolver's tick: this is I/O only. */
static void on_tcp_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dns_query_t *q = arg;
    if (q->state == Q_TCP_WRITE)
        on_tcp_write(q);
    else if (q->state == Q_TCP_READ)
        on_tcp_read(q);
}

/* The query message, built by hand: header, one question, and an OPT record
 * (EDNS0, no options, DO clear) when asked for. */
static dns_query_t *q_new(const ldns_rdf *qname, ldns_rr_type type, unsigned flags)
{
    size_t nlen = ldns_rdf_size(qname);
    size_t mlen = DNS_HDR + nlen + 4 + ((flags & DNS_EDNS) ? 11 : 0);
    dns_query_t *q = calloc(1, sizeof(*q) + 2 + mlen + nlen);
    if (!q)
        return NULL;
    q->wire = q->data;
    q->wlen = mlen;
    q->name = q->data + 2 + mlen;
    q->nlen = nlen;
    memcpy(q->name, ldns_rdf_data(qname), nlen);
    uint8_t *w = q->wire;
    ldns_write_uint16(w, (uint16_t)mlen);
    w += 2;
    uint16_t hflags = (flags & DNS_NORD) ? 0 : 0x0100; /* RD */
    if (flags & DNS_CD)
        hflags |= 0x0010;
    ldns_write_uint16(w + 2, hflags);
    ldns_write_uint16(w + 4, 1); /* QDCOUNT */
    ldns_write_uint16(w + 10, (flags & DNS_EDNS) ? 1 : 0);
    uint8_t *p = w + DNS_HDR;
    memcpy(p, q->name, nlen);
    p += nlen;
    ldns_write_uint16(p, (uint16_t)type);
    ldns_write_uint16(p + 2, LDNS_RR_CLASS_IN);
    if (flags & DNS_EDNS) {
        p += 4;
        p[0] = 0; /* root owner */
        ldns_write_uint16(p + 1, LDNS_RR_TYPE_OPT);
        ldns_write_uint16(p + 3, DNS_EDNS_BUFSIZE); /* class: UDP payload size */
        /* TTL (extended RCODE, version, flags) and RDLENGTH stay zero. */
    }
    return q;
}

dns_query_t *dns_query(dns_resolver_t *r, const char *name, ldns_rr_type type,
                       unsigned flags, dns_cb cb, void *arg)
{
    if (!r || !name || !*name || !cb || type == 0)
        return NULL;
    ldns_rdf *qname = ldns_dname_new_frm_str(name);
    if (!qname)
        return NULL;
    dns_query_t *q = q_new(qname, type, flags);
    ldns_rdf_deep_free(qname);
    if (!q)
        return NULL;
    q->r = r;
    q->fd = -1;
    q->qtype = type;
    q->cb = cb;
    q->arg = arg;
    q->state = Q_QUEUED;
    r->stats.queries++;
    if (r->ninflight < r->max_inflight) {
        q_start(q);
    } else {
        TAILQ_INSERT_TAIL(&r->queue, q, link);
        r->nqueued++;
        if (r->nqueued > r->stats.queued_peak)
            r->stats.queued_peak = r->nqueued;
    }
    return q;
}

void dns_cancel(dns_query_t *q)
{
    if (!q)
        return;
    dns_resolver_t *r = q->r;
    if (q->state == Q_QUEUED) {
        TAILQ_REMOVE(&r->queue, q, link);
        r->nqueued--;
        q_free(q);
        return;
    }
    TAILQ_REMOVE(&r->inflight, q, link);
    r->ninflight--;
    q_free(q);
    pump(r);
}
