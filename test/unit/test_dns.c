/* Resolver tests against a fake server living on the same event loop: a UDP
 * socket and a TCP listener on one loopback port that misbehave on request
 * (wrong ID, wrong question, wrong source, broken body, TC then a TCP answer
 * dripped a few bytes at a time, silence, RCODEs, case folding, answers held
 * back and released in one burst, oversized datagrams). The fake records the
 * source port, ID and question name of every query it sees. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "control/dns.h"

enum mode {
    FAKE_OK,
    FAKE_SILENT,
    FAKE_BAD_ID_THEN_OK,
    FAKE_BAD_Q_THEN_OK,
    FAKE_UPPER,
    FAKE_MALFORMED,
    FAKE_TC,
    FAKE_RCODE,
    FAKE_SPOOF_THEN_OK,
    FAKE_NOT_RESPONSE_THEN_OK,
    FAKE_LOWER, /* folds the question to lower case, like a server without 0x20 */
    FAKE_HOLD,  /* answers nothing until `hold` queries wait, then all at once */
    FAKE_HUGE,  /* a UDP answer longer than the resolver's 4 KiB datagram buffer */
};

#define FAKE_LOG 1024

typedef struct {
    uint8_t q[512];
    size_t len;
    struct sockaddr_storage from;
    socklen_t flen;
} held_t;

typedef struct {
    struct event_base *base;
    int udp, tcp, spoof, conn;
    uint16_t port;
    struct event *udp_ev, *tcp_ev, *conn_ev, *drip_ev;
    enum mode mode;
    ldns_pkt_rcode rcode;
    int udp_seen, tcp_seen;
    uint16_t ports[FAKE_LOG], ids[FAKE_LOG]; /* per UDP query seen */
    char qname[300];                         /* of the last UDP query, as received */
    held_t held[64];
    int hold, nheld;
    uint8_t in[70000];
    size_t inlen;
    uint8_t out[70000];
    size_t outlen, outoff;
} fake_t;

typedef struct {
    int done;
    dns_status_t st;
    ldns_pkt *pkt;
    int64_t at;
} result_t;

/* Builds an answer to the query in q: `answers` are RR strings; qname, when
 * set, replaces the question name. Returns the wire length or 0. */
static size_t build_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap,
                           ldns_pkt_rcode rcode, const char *qname, bool tc,
                           const char *const *answers, size_t n)
{
    ldns_pkt *qp = NULL;
    if (ldns_wire2pkt(&qp, q, qlen) != LDNS_STATUS_OK)
        return 0;
    ldns_pkt *r = ldns_pkt_new();
    ldns_pkt_set_id(r, ldns_pkt_id(qp));
    ldns_pkt_set_qr(r, true);
    ldns_pkt_set_aa(r, true);
    ldns_pkt_set_tc(r, tc);
    ldns_pkt_set_rcode(r, (uint8_t)rcode);
    ldns_rr *question = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(qp), 0));
    if (qname) {
        ldns_rdf_deep_free(ldns_rr_owner(question));
        ldns_rr_set_owner(question, ldns_dname_new_frm_str(qname));
    }
    ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, question);
    for (size_t i = 0; i < n; i++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, answers[i], 300, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
    }
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(ldns_pkt2wire(&wire, r, &len), LDNS_STATUS_OK);
    assert_true(len <= cap);
    memcpy(out, wire, len);
    free(wire);
    ldns_pkt_free(r);
    ldns_pkt_free(qp);
    return len;
}

static const char *const a_ok[] = {"q.example. 300 IN A 192.0.2.1"};
static const char *const a_spoof[] = {"q.example. 300 IN A 6.6.6.6"};

static void fake_reply(fake_t *f, const struct sockaddr *to, socklen_t tolen,
                       const uint8_t *q, size_t qlen, int fd, ldns_pkt_rcode rc, const char *qname,
                       bool tc, const char *const *ans, size_t n)
{
    uint8_t buf[4096];
    size_t len = build_answer(q, qlen, buf, sizeof(buf), rc, qname, tc, ans, n);
    assert_true(len > 0);
    (void)f;
    assert_int_equal(sendto(fd, buf, len, 0, to, tolen), (ssize_t)len);
}

static void fake_record(fake_t *f, const uint8_t *q, size_t n, const struct sockaddr_storage *from)
{
    if (f->udp_seen < FAKE_LOG) {
        f->ports[f->udp_seen] = ntohs(((const struct sockaddr_in *)from)->sin_port);
        f->ids[f->udp_seen] = n >= 2 ? ldns_read_uint16(q) : 0;
    }
    f->udp_seen++;
    ldns_pkt *p = NULL;
    f->qname[0] = '\0';
    if (ldns_wire2pkt(&p, q, n) == LDNS_STATUS_OK && ldns_pkt_qdcount(p) == 1) {
        char *s = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
        snprintf(f->qname, sizeof(f->qname), "%s", s ? s : "");
        free(s);
    }
    ldns_pkt_free(p);
}

static void fake_release(fake_t *f, int fd)
{
    for (int i = 0; i < f->nheld; i++) {
        held_t *h = &f->held[i];
        fake_reply(f, (struct sockaddr *)&h->from, h->flen, h->q, h->len, fd, LDNS_RCODE_NOERROR,
                   NULL, false, a_ok, 1);
    }
    f->nheld = 0;
}

static void on_fake_udp(evutil_socket_t fd, short what, void *arg)
{
    fake_t *f = arg;
    uint8_t q[4096];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
    if (n <= 0)
        return;
    fake_record(f, q, (size_t)n, &from);
    const struct sockaddr *to = (const struct sockaddr *)&from;
    switch (f->mode) {
    case FAKE_LOWER: {
        char lower[300];
        size_t i;
        for (i = 0; f->qname[i] && i < sizeof(lower) - 1; i++)
            lower[i] = (char)tolower((unsigned char)f->qname[i]);
        lower[i] = '\0';
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, lower, false, a_ok, 1);
        return;
    }
    case FAKE_HOLD: {
        assert_true(f->nheld < (int)UTIL_ARRAY_LEN(f->held) && (size_t)n <= sizeof(f->held[0].q));
        held_t *h = &f->held[f->nheld++];
        memcpy(h->q, q, (size_t)n);
        h->len = (size_t)n;
        h->from = from;
        h->flen = flen;
        if (f->nheld >= f->hold)
            fake_release(f, fd);
        return;
    }
    case FAKE_HUGE: {
        const char *txt[40];
        char bufs[40][200];
        for (int i = 0; i < 40; i++) {
            snprintf(bufs[i], sizeof(bufs[i]), "q.example. 300 IN TXT \"record-%02d-%s%s%s\"", i,
                     "abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnopqrstuvwxyz0123456789",
                     "abcdefghijklmnopqrstuvwxyz0123456789");
            txt[i] = bufs[i];
        }
        uint8_t buf[8192];
        size_t len = build_answer(q, (size_t)n, buf, sizeof(buf), LDNS_RCODE_NOERROR, NULL, false, txt, 40);
        assert_true(len > 4096);
        assert_int_equal(sendto(fd, buf, len, 0, to, flen), (ssize_t)len);
        return;
    }
    case FAKE_SILENT:
        return;
    case FAKE_OK:
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        return;
    case FAKE_BAD_ID_THEN_OK:
        q[0] ^= 0x5a;
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_spoof, 1);
        q[0] ^= 0x5a;
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        return;
    case FAKE_BAD_Q_THEN_OK:
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, "other.example.", false, a_spoof, 1);
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        return;
    case FAKE_UPPER:
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, "Q.EXAMPLE.", false, a_ok, 1);
        return;
    case FAKE_NOT_RESPONSE_THEN_OK: {
        /* Our own query echoed back (QR clear) must not count as an answer. */
        assert_int_equal(sendto(fd, q, (size_t)n, 0, to, flen), n);
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        return;
    }
    case FAKE_MALFORMED: {
        uint8_t buf[4096];
        size_t len = build_answer(q, (size_t)n, buf, sizeof(buf), LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        /* Keep header and question, cut the answer RR in half. */
        len -= 8;
        assert_int_equal(sendto(fd, buf, len, 0, to, flen), (ssize_t)len);
        return;
    }
    case FAKE_TC:
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, true, NULL, 0);
        return;
    case FAKE_RCODE:
        fake_reply(f, to, flen, q, (size_t)n, fd, f->rcode, NULL, false, NULL, 0);
        return;
    case FAKE_SPOOF_THEN_OK:
        fake_reply(f, to, flen, q, (size_t)n, f->spoof, LDNS_RCODE_NOERROR, NULL, false, a_spoof, 1);
        fake_reply(f, to, flen, q, (size_t)n, fd, LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
        return;
    }
}

/* TCP: answer with many TXT strings, written a few bytes per timer tick so
 * the resolver sees split length prefixes and partial bodies. */
static void on_drip(evutil_socket_t fd, short what, void *arg)
{
    fake_t *f = arg;
    size_t chunk = f->outoff == 0 ? 1 : 700;
    if (chunk > f->outlen - f->outoff)
        chunk = f->outlen - f->outoff;
    ssize_t n = send(f->conn, f->out + f->outoff, chunk, MSG_NOSIGNAL);
    if (n > 0)
        f->outoff += (size_t)n;
    if (f->outoff < f->outlen) {
        struct timeval tv = {0, 2000};
        evtimer_add(f->drip_ev, &tv);
    }
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
    fake_t *f = arg;
    ssize_t n = recv(fd, f->in + f->inlen, sizeof(f->in) - f->inlen, 0);
    if (n <= 0) {
        event_del(f->conn_ev);
        return;
    }
    f->inlen += (size_t)n;
    if (f->inlen < 2 || f->inlen < 2 + (size_t)ldns_read_uint16(f->in))
        return;
    f->tcp_seen++;
    const char *txt[40];
    char bufs[40][128];
    for (int i = 0; i < 40; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "q.example. 300 IN TXT \"record-%02d-%s\"", i,
                 "abcdefghijklmnopqrstuvwxyz0123456789");
        txt[i] = bufs[i];
    }
    size_t len = build_answer(f->in + 2, f->inlen - 2, f->out + 2, sizeof(f->out) - 2,
                              LDNS_RCODE_NOERROR, NULL, false, txt, 40);
    assert_true(len > 512);
    ldns_write_uint16(f->out, (uint16_t)len);
    f->outlen = len + 2;
    f->outoff = 0;
    on_drip(-1, 0, f);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    fake_t *f = arg;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    if (f->conn >= 0) {
        close(c);
        return;
    }
    f->conn = c;
    f->inlen = 0;
    f->conn_ev = event_new(f->base, c, EV_READ | EV_PERSIST, on_conn, f);
    f->drip_ev = evtimer_new(f->base, on_drip, f);
    event_add(f->conn_ev, NULL);
}

static int bind_lo(int type, uint16_t port)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

static fake_t *fake_new(struct event_base *base, enum mode mode)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base = base;
    f->mode = mode;
    f->conn = -1;
    for (int i = 0; i < 20; i++) {
        f->udp = bind_lo(SOCK_DGRAM, 0);
        assert_true(f->udp >= 0);
        f->port = local_port(f->udp);
        f->tcp = bind_lo(SOCK_STREAM, f->port);
        if (f->tcp >= 0)
            break;
        close(f->udp);
    }
    assert_true(f->tcp >= 0);
    assert_int_equal(listen(f->tcp, 8), 0);
    f->spoof = bind_lo(SOCK_DGRAM, 0);
    assert_true(f->spoof >= 0);
    f->udp_ev = event_new(base, f->udp, EV_READ | EV_PERSIST, on_fake_udp, f);
    f->tcp_ev = event_new(base, f->tcp, EV_READ | EV_PERSIST, on_accept, f);
    event_add(f->udp_ev, NULL);
    event_add(f->tcp_ev, NULL);
    return f;
}

static void fake_free(fake_t *f)
{
    event_free(f->udp_ev);
    event_free(f->tcp_ev);
    if (f->conn_ev)
        event_free(f->conn_ev);
    if (f->drip_ev)
        event_free(f->drip_ev);
    if (f->conn >= 0)
        close(f->conn);
    close(f->udp);
    close(f->tcp);
    close(f->spoof);
    free(f);
}

static void on_result(dns_status_t st, ldns_pkt *pkt, void *arg)
{
    result_t *r = arg;
    r->done++;
    r->st = st;
    r->pkt = pkt;
    r->at = util_mono_ms();
}

static void run_until(struct event_base *base, const int *done, int want, int max_ms)
{
    int64_t end = util_mono_ms() + max_ms;
    while (*done < want && util_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
}

static dns_resolver_t *resolver_for(struct event_base *base, uint16_t port, int timeout, int attempts)
{
    char srv[64];
    snprintf(srv, sizeof(srv), "127.0.0.1:%u", port);
    const char *servers[] = {srv};
    dns_resolver_t *r = dns_resolver_new(base, servers, 1, timeout, attempts);
    assert_non_null(r);
    return r;
}

/* One query through a fake in `mode`; returns the status, pkt in *pkt. */
static dns_status_t ask(enum mode mode, ldns_pkt_rcode rcode, ldns_rr_type type,
                        ldns_pkt **pkt, dns_stats_t *stats)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, mode);
    f->rcode = rcode;
    dns_resolver_t *r = resolver_for(base, f->port, 300, 1);
    result_t res = {0};
    assert_non_null(dns_query(r, "q.example", type, 0, on_result, &res));
    assert_int_equal(res.done, 0); /* never called back from inside dns_query */
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.done, 1);
    if (stats)
        dns_resolver_stats(r, stats);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
    *pkt = res.pkt;
    return res.st;
}

static void assert_a_ok(ldns_pkt *pkt)
{
    assert_non_null(pkt);
    ldns_rr_list *ans = ldns_pkt_answer(pkt);
    assert_int_equal(ldns_rr_list_rr_count(ans), 1);
    char *s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ans, 0), 0));
    assert_string_equal(s, "192.0.2.1");
    free(s);
    ldns_pkt_free(pkt);
}

static void test_ok(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_OK, 0, LDNS_RR_TYPE_A, &pkt, &st), DNS_OK);
    assert_a_ok(pkt);
    assert_int_equal(st.udp_sent, 1);
    assert_int_equal(st.ignored, 0);
}

static void test_ignores_wrong_id(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_BAD_ID_THEN_OK, 0, LDNS_RR_TYPE_A, &pkt, &st), DNS_OK);
    assert_a_ok(pkt);
    assert_int_equal(st.ignored, 1);
}

static void test_ignores_wrong_question(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_BAD_Q_THEN_OK, 0, LDNS_RR_TYPE_A, &pkt, &st), DNS_OK);
    assert_a_ok(pkt);
    assert_int_equal(st.ignored, 1);
}

static void test_ignores_non_response(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_NOT_RESPONSE_THEN_OK, 0, LDNS_RR_TYPE_A, &pkt, &st), DNS_OK);
    assert_a_ok(pkt);
    assert_int_equal(st.ignored, 1);
}

static void test_ignores_wrong_source(void **state)
{
    ldns_pkt *pkt = NULL;
    assert_int_equal(ask(FAKE_SPOOF_THEN_OK, 0, LDNS_RR_TYPE_A, &pkt, NULL), DNS_OK);
    assert_a_ok(pkt); /* the spoofed 6.6.6.6 never got through */
}

static void test_question_case_insensitive(void **state)
{
    ldns_pkt *pkt = NULL;
    assert_int_equal(ask(FAKE_UPPER, 0, LDNS_RR_TYPE_A, &pkt, NULL), DNS_OK);
    assert_a_ok(pkt);
}

static void test_malformed(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_MALFORMED, 0, LDNS_RR_TYPE_A, &pkt, &st), DNS_ERR_MALFORMED);
    assert_null(pkt);
    assert_int_equal(st.malformed, 1);
}

static void test_rcodes(void **state)
{
    ldns_pkt *pkt = NULL;
    assert_int_equal(ask(FAKE_RCODE, LDNS_RCODE_NXDOMAIN, LDNS_RR_TYPE_A, &pkt, NULL), DNS_ERR_NXDOMAIN);
    assert_non_null(pkt); /* answers other than OK still hand over the packet */
    assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NXDOMAIN);
    ldns_pkt_free(pkt);
    assert_int_equal(ask(FAKE_RCODE, LDNS_RCODE_SERVFAIL, LDNS_RR_TYPE_A, &pkt, NULL), DNS_ERR_SERVFAIL);
    ldns_pkt_free(pkt);
    assert_int_equal(ask(FAKE_RCODE, LDNS_RCODE_REFUSED, LDNS_RR_TYPE_A, &pkt, NULL), DNS_ERR_REFUSED);
    ldns_pkt_free(pkt);
    assert_int_equal(ask(FAKE_RCODE, LDNS_RCODE_NOTIMPL, LDNS_RR_TYPE_A, &pkt, NULL), DNS_ERR_SERVFAIL);
    ldns_pkt_free(pkt);
}

static void test_tc_retries_over_tcp(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_TC, 0, LDNS_RR_TYPE_TXT, &pkt, &st), DNS_OK);
    assert_non_null(pkt);
    assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(pkt)), 40);
    assert_int_equal(st.tcp_fallbacks, 1);
    ldns_pkt_free(pkt);
}

/* A truncated answer beyond max_tcp open fallbacks is refused: the attempt
 * ends as a network error, counted as refused and not as a fallback. */
static void test_tcp_cap_refuses(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_TC);
    dns_resolver_t *r = resolver_for(base, f->port, 2000, 1);
    dns_resolver_set_max_tcp(r, 1);
    result_t res[2] = {{0}};
    for (int i = 0; i < 2; i++)
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_TXT, 0, on_result, &res[i]));
    int done = 0;
    int64_t end = util_mono_ms() + 3000;
    while (done < 2 && util_mono_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
        done = res[0].done + res[1].done;
    }
    assert_int_equal(done, 2);
    int ok = 0, refused = 0;
    for (int i = 0; i < 2; i++) {
        ok += res[i].st == DNS_OK;
        refused += res[i].st == DNS_ERR_NETWORK;
        if (res[i].pkt)
            ldns_pkt_free(res[i].pkt);
    }
    assert_int_equal(ok, 1);
    assert_int_equal(refused, 1);
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.tcp_fallbacks, 1);
    assert_int_equal(st.tcp_refused, 1);
    assert_int_equal(f->tcp_seen, 1);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static void test_timeout_bounded(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_SILENT);
    dns_resolver_t *r = resolver_for(base, f->port, 150, 2);
    result_t res = {0};
    int64_t t0 = util_mono_ms();
    assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res));
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.st, DNS_ERR_TIMEOUT);
    assert_null(res.pkt);
    int64_t took = res.at - t0;
    assert_true(took >= 295 && took < 1500); /* slack for a busy machine */
    assert_int_equal(f->udp_seen, 2);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static void test_closed_port_is_network(void **state)
{
    struct event_base *base = event_base_new();
    int s = bind_lo(SOCK_DGRAM, 0);
    uint16_t port = local_port(s);
    close(s); /* nothing listens now: ICMP port unreachable */
    dns_resolver_t *r = resolver_for(base, port, 1000, 1);
    result_t res = {0};
    int64_t t0 = util_mono_ms();
    assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res));
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.st, DNS_ERR_NETWORK);
    assert_true(res.at - t0 < 900); /* ICMP, not the 1000 ms timeout */
    dns_resolver_free(r);
    event_base_free(base);
}

static void test_rotates_servers(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *dead = fake_new(base, FAKE_SILENT), *live = fake_new(base, FAKE_OK);
    char s1[64], s2[64];
    snprintf(s1, sizeof(s1), "127.0.0.1:%u", dead->port);
    snprintf(s2, sizeof(s2), "127.0.0.1:%u", live->port);
    const char *servers[] = {s1, s2};
    dns_resolver_t *r = dns_resolver_new(base, servers, 2, 100, 2);
    assert_non_null(r);
    result_t res = {0};
    assert_non_null(dns_query(r, "q.example.", LDNS_RR_TYPE_A, 0, on_result, &res));
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.st, DNS_OK);
    assert_a_ok(res.pkt);
    assert_int_equal(dead->udp_seen, 1);
    assert_int_equal(live->udp_seen, 1);
    dns_resolver_free(r);
    fake_free(dead);
    fake_free(live);
    event_base_free(base);
}

static void test_inflight_cap_and_cancel(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    dns_resolver_set_max_inflight(r, 3);
    result_t res[20] = {{0}};
    dns_query_t *q[20];
    int done = 0;
    for (int i = 0; i < 20; i++)
        assert_non_null(q[i] = dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res[i]));
    assert_int_equal(dns_resolver_inflight(r), 3);
    assert_int_equal(dns_resolver_queued(r), 17);
    dns_cancel(q[0]);  /* in flight */
    dns_cancel(q[19]); /* queued */
    assert_int_equal(dns_resolver_inflight(r), 3);
    assert_int_equal(dns_resolver_queued(r), 15);
    int64_t end = util_mono_ms() + 3000;
    while (done < 18 && util_mono_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        assert_true(dns_resolver_inflight(r) <= 3);
        done = 0;
        for (int i = 0; i < 20; i++)
            done += res[i].done;
    }
    assert_int_equal(done, 18);
    assert_int_equal(res[0].done, 0);
    assert_int_equal(res[19].done, 0);
    for (int i = 1; i < 19; i++) {
        assert_int_equal(res[i].st, DNS_OK);
        ldns_pkt_free(res[i].pkt);
    }
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.queued_peak, 17);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static void test_free_with_pending(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_SILENT);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    dns_resolver_set_max_inflight(r, 1);
    result_t res = {0};
    assert_non_null(dns_query(r, "a.example", LDNS_RR_TYPE_A, 0, on_result, &res));
    assert_non_null(dns_query(r, "b.example", LDNS_RR_TYPE_A, 0, on_result, &res));
    dns_resolver_free(r); /* under ASan: nothing leaks, no callback */
    assert_int_equal(res.done, 0);
    fake_free(f);
    event_base_free(base);
}

/* ---- socket pool, IDs, 0x20 ------------------------------------------------ */

static int count_distinct(const uint16_t *v, int n)
{
    int d = 0;
    for (int i = 0; i < n; i++) {
        int j;
        for (j = 0; j < i && v[j] != v[i]; j++)
            ;
        d += j == i;
    }
    return d;
}

/* n queries for q.example, at most `par` in flight; every one must be OK. */
static void ask_many(struct event_base *base, dns_resolver_t *r, int n, size_t par)
{
    result_t *res = calloc((size_t)n, sizeof(*res));
    assert_non_null(res);
    dns_resolver_set_max_inflight(r, par);
    for (int i = 0; i < n; i++)
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res[i]));
    int64_t end = util_mono_ms() + 5000;
    int done = 0;
    while (done < n && util_mono_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        done = 0;
        for (int i = 0; i < n; i++)
            done += res[i].done;
    }
    assert_int_equal(done, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(res[i].st, DNS_OK);
        ldns_pkt_free(res[i].pkt);
    }
    free(res);
}

static void test_pool_reuses_sockets(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    assert_int_equal(dns_resolver_set_pool(r, 4, 100000, 60000), 0);
    ask_many(base, r, 200, 8);
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.udp_sent, 200);
    assert_true(st.sockets_opened >= 1 && st.sockets_opened <= 4);
    assert_true(count_distinct(f->ports, 200) <= 4);
    assert_true(st.sockets_open <= 4);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static void test_pool_retires_after_uses(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    assert_int_equal(dns_resolver_set_pool(r, 2, 5, 60000), 0);
    ask_many(base, r, 100, 4);
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    /* 5 queries per port at most: 20 ports or more, all different. */
    assert_true(st.sockets_opened >= 20);
    int ports = count_distinct(f->ports, 100);
    assert_true(ports >= 20);
    print_message("  100 queries, %d source ports, %llu sockets opened\n", ports,
                  (unsigned long long)st.sockets_opened);
    assert_true(st.sockets_open <= 2); /* retired ones closed once drained */
    assert_int_equal(dns_resolver_set_pool(r, 5000, 0, 0), -1);
    assert_int_equal(dns_resolver_set_pool(r, 1, 0, -1), -1);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static void test_pool_retires_by_age(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    dns_resolver_t *r = resolver_for(base, f->port, 100, 1);
    assert_int_equal(dns_resolver_set_pool(r, 1, 0, 50), 0);
    ask_many(base, r, 1, 1);
    int dummy = 0;
    run_until(base, &dummy, 1, 80);
    ask_many(base, r, 1, 1);
    assert_int_equal(f->udp_seen, 2);
    assert_int_not_equal(f->ports[0], f->ports[1]);
    /* Idle and old: reaped by the resolver's timer, no query needed. */
    run_until(base, &dummy, 1, 400);
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.sockets_opened, 2);
    assert_int_equal(st.sockets_open, 0);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

/* 400 attempts on one socket at once: 16-bit random IDs alone would collide
 * with probability ~70%; the resolver must never reuse a busy one. */
static void test_ids_unique_per_socket(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_SILENT);
    dns_resolver_t *r = resolver_for(base, f->port, 3000, 1);
    assert_int_equal(dns_resolver_set_pool(r, 1, 100000, 60000), 0);
    dns_resolver_set_max_inflight(r, 400);
    result_t res = {0};
    int64_t end = util_mono_ms() + 3000;
    /* In rounds of 50, so the fake's socket buffer never overflows. */
    for (int i = 0; i < 400; i++) {
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res));
        while (i % 50 == 49 && f->udp_seen <= i && util_mono_ms() < end)
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_int_equal(f->udp_seen, 400);
    assert_int_equal(count_distinct(f->ports, 400), 1);
    assert_int_equal(count_distinct(f->ids, 400), 400);
    assert_int_equal(res.done, 0);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

static const char *const long_name = "abcdefghijklmnopqrstuvwxyz.example."; /* 33 letters */

static void ask_name(struct event_base *base, dns_resolver_t *r, const char *name, result_t *res)
{
    memset(res, 0, sizeof(*res));
    assert_non_null(dns_query(r, name, LDNS_RR_TYPE_A, 0, on_result, res));
    run_until(base, &res->done, 1, 3000);
    assert_int_equal(res->done, 1);
}

static void assert_question(ldns_pkt *pkt, const char *want)
{
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(pkt), 0)));
    assert_string_equal(q, want);
    free(q);
}

static void test_0x20_randomises_and_restores(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    result_t res;
    ask_name(base, r, "AbC.example", &res); /* off by default */
    assert_string_equal(f->qname, "AbC.example.");
    assert_question(res.pkt, "AbC.example.");
    ldns_pkt_free(res.pkt);

    dns_resolver_set_0x20(r, true);
    ask_name(base, r, long_name, &res);
    assert_int_equal(res.st, DNS_OK);
    /* On the wire: the same name in mixed case (all lower: p = 2^-33). */
    assert_true(strcasecmp(f->qname, long_name) == 0);
    assert_string_not_equal(f->qname, long_name);
    /* Handed over: the name as asked. */
    assert_question(res.pkt, long_name);
    ldns_pkt_free(res.pkt);
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.case_mismatches, 0);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

/* A server that folds case: the first answer does not echo our 0x20 case;
 * the resolver asks that attempt again plainly, and that server plainly from
 * then on. */
static void test_0x20_fallback(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_LOWER);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    dns_resolver_set_0x20(r, true);
    result_t res;
    ask_name(base, r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ.example", &res);
    assert_int_equal(res.st, DNS_OK);
    assert_question(res.pkt, "ABCDEFGHIJKLMNOPQRSTUVWXYZ.example.");
    ldns_pkt_free(res.pkt);
    assert_int_equal(f->udp_seen, 2);
    assert_string_equal(f->qname, "ABCDEFGHIJKLMNOPQRSTUVWXYZ.example."); /* asked plainly */
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.case_mismatches, 1);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.ignored, 0);

    ask_name(base, r, long_name, &res);
    assert_int_equal(res.st, DNS_OK);
    ldns_pkt_free(res.pkt);
    assert_int_equal(f->udp_seen, 3);
    assert_string_equal(f->qname, long_name);
    dns_resolver_stats(r, &st);
    assert_int_equal(st.case_mismatches, 1);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

/* 0x20 over UDP, then TC: the TCP retry asks the name as given. */
static void test_0x20_then_tcp(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_TC);
    dns_resolver_t *r = resolver_for(base, f->port, 1000, 1);
    dns_resolver_set_0x20(r, true);
    result_t res = {0};
    assert_non_null(dns_query(r, "Q.example", LDNS_RR_TYPE_TXT, 0, on_result, &res));
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.st, DNS_OK);
    assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(res.pkt)), 40);
    assert_question(res.pkt, "Q.example.");
    ldns_pkt_free(res.pkt);
    assert_int_equal(f->tcp_seen, 1);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

typedef struct burst burst_t;
typedef struct {
    burst_t *b;
    int idx;
} burst_item_t;

struct burst {
    dns_resolver_t *r;
    dns_query_t *q[10];
    burst_item_t item[10];
    int calls;
    bool free_resolver;
};

/* The first callback of the burst frees the resolver, or cancels every
 * other query; no further callback may run either way. */
static void on_burst(dns_status_t st, ldns_pkt *pkt, void *arg)
{
    burst_item_t *it = arg;
    burst_t *b = it->b;
    b->calls++;
    ldns_pkt_free(pkt);
    b->q[it->idx] = NULL; /* its handle died when the callback started */
    if (b->calls > 1)
        return;
    if (b->free_resolver) {
        dns_resolver_free(b->r);
        b->r = NULL;
        return;
    }
    for (int i = 0; i < 10; i++)
        if (b->q[i])
            dns_cancel(b->q[i]);
}

/* Ten answers are held back by the fake and released at once, so they land
 * on the resolver's single socket together and are read in one batch. */
static void run_burst(bool free_resolver)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_HOLD);
    f->hold = 10;
    burst_t b = {.free_resolver = free_resolver};
    b.r = resolver_for(base, f->port, 2000, 1);
    assert_int_equal(dns_resolver_set_pool(b.r, 1, 0, 0), 0);
    for (int i = 0; i < 10; i++) {
        b.item[i] = (burst_item_t){.b = &b, .idx = i};
        assert_non_null(b.q[i] = dns_query(b.r, "q.example", LDNS_RR_TYPE_A, 0, on_burst, &b.item[i]));
    }
    int dummy = 0;
    run_until(base, &dummy, 1, 300);
    assert_int_equal(f->udp_seen, 10);
    assert_int_equal(b.calls, 1);
    if (b.r) {
        dns_stats_t st;
        dns_resolver_stats(b.r, &st);
        assert_int_equal(dns_resolver_inflight(b.r), 0);
        assert_int_equal(st.ignored, 9); /* answers to the cancelled queries */
        dns_resolver_free(b.r);
    }
    fake_free(f);
    event_base_free(base);
}

static void test_free_from_callback_in_batch(void **state) { run_burst(true); }
static void test_cancel_from_callback_in_batch(void **state) { run_burst(false); }

/* Port unreachable on a shared socket ends every attempt waiting on it. */
static void test_closed_port_fails_all_on_socket(void **state)
{
    struct event_base *base = event_base_new();
    int s = bind_lo(SOCK_DGRAM, 0);
    uint16_t port = local_port(s);
    close(s);
    dns_resolver_t *r = resolver_for(base, port, 2000, 1);
    assert_int_equal(dns_resolver_set_pool(r, 1, 0, 0), 0);
    result_t res[5] = {{0}};
    int64_t t0 = util_mono_ms();
    for (int i = 0; i < 5; i++)
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res[i]));
    int done = 0;
    while (done < 5 && util_mono_ms() - t0 < 3000) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        done = 0;
        for (int i = 0; i < 5; i++)
            done += res[i].done;
    }
    assert_int_equal(done, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(res[i].st, DNS_ERR_NETWORK);
        assert_true(res[i].at - t0 < 1500); /* not the 2000 ms timeout */
    }
    dns_resolver_free(r);
    event_base_free(base);
}

/* Resizing the pool with queries in flight: they finish on their old
 * sockets, which then close. */
static void test_set_pool_in_flight(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_HOLD);
    f->hold = 6;
    dns_resolver_t *r = resolver_for(base, f->port, 2000, 1);
    result_t res[6] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res[i]));
    int dummy = 0;
    run_until(base, &dummy, 1, 50);
    assert_int_equal(f->udp_seen, 3);
    assert_int_equal(dns_resolver_set_pool(r, 2, 0, 0), 0);
    for (int i = 3; i < 6; i++)
        assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, 0, on_result, &res[i]));
    int done = 0;
    int64_t end = util_mono_ms() + 2000;
    while (done < 6 && util_mono_ms() < end) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        done = 0;
        for (int i = 0; i < 6; i++)
            done += res[i].done;
    }
    assert_int_equal(done, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(res[i].st, DNS_OK);
        ldns_pkt_free(res[i].pkt);
    }
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_true(st.sockets_open <= 2);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

/* A datagram longer than the receive buffer arrives cut: retried over TCP. */
static void test_oversized_datagram_goes_tcp(void **state)
{
    ldns_pkt *pkt = NULL;
    dns_stats_t st;
    assert_int_equal(ask(FAKE_HUGE, 0, LDNS_RR_TYPE_TXT, &pkt, &st), DNS_OK);
    assert_non_null(pkt);
    assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(pkt)), 40);
    assert_int_equal(st.tcp_fallbacks, 1);
    assert_int_equal(st.malformed, 0);
    ldns_pkt_free(pkt);
}

static void test_bad_input(void **state)
{
    struct event_base *base = event_base_new();
    const char *bad[] = {"127.0.0.1:0"};
    assert_null(dns_resolver_new(base, bad, 1, 100, 1));
    const char *good[] = {"127.0.0.1"};
    assert_null(dns_resolver_new(base, good, 1, 0, 1));
    dns_resolver_t *r = dns_resolver_new(base, good, 1, 100, 1);
    assert_non_null(r);
    result_t res = {0};
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(dns_query(r, longname, LDNS_RR_TYPE_A, 0, on_result, &res));
    assert_null(dns_query(r, "", LDNS_RR_TYPE_A, 0, on_result, &res));
    assert_null(dns_query(r, "a..b", LDNS_RR_TYPE_A, 0, on_result, &res));
    dns_resolver_free(r);
    event_base_free(base);
}

static void test_parse_server(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(dns_parse_server("127.0.0.1", &ss, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 53);
    assert_int_equal(dns_parse_server("127.0.0.1:5353", &ss, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 5353);
    assert_int_equal(dns_parse_server("[::1]:53", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(dns_parse_server("::1", &ss, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 53);
    assert_int_equal(dns_parse_server("[::1]", &ss, &len), 0);
    assert_int_equal(dns_parse_server("localhost", &ss, &len), -1);
    assert_int_equal(dns_parse_server("127.0.0.1:", &ss, &len), -1);
    assert_int_equal(dns_parse_server("127.0.0.1:70000", &ss, &len), -1);
    assert_int_equal(dns_parse_server("[::1]x", &ss, &len), -1);
    assert_int_equal(dns_parse_server("[::1", &ss, &len), -1);
    assert_int_equal(dns_parse_server("", &ss, &len), -1);
}

static void test_resolv_conf(void **state)
{
    struct event_base *base = event_base_new();
    fake_t *f = fake_new(base, FAKE_OK);
    char path[] = "/tmp/hee-resolv-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char body[256];
    /* glibc reads no port; ours does, which lets the test point at the fake. */
    int n = snprintf(body, sizeof(body),
                     "# comment\nsearch example\nnameserver bogus\nnameserver 127.0.0.1:%u ; x\n"
                     "options timeout:1 attempts:1 rotate\n", f->port);
    assert_int_equal(write(fd, body, (size_t)n), n);
    close(fd);
    dns_resolver_t *r = dns_resolver_from_resolv_conf(base, path, 0, 0);
    unlink(path);
    assert_non_null(r);
    result_t res = {0};
    assert_non_null(dns_query(r, "q.example", LDNS_RR_TYPE_A, DNS_EDNS | DNS_CD, on_result, &res));
    run_until(base, &res.done, 1, 3000);
    assert_int_equal(res.st, DNS_OK);
    assert_a_ok(res.pkt);
    dns_resolver_free(r);
    /* A missing file falls back to 127.0.0.1:53 like glibc. */
    r = dns_resolver_from_resolv_conf(base, "/nonexistent/resolv.conf", 0, 0);
    assert_non_null(r);
    dns_resolver_free(r);
    fake_free(f);
    event_base_free(base);
}

/* dns_answer_check on hand-made bytes. */
static void test_answer_check(void **state)
{
    ldns_rdf *qn = ldns_dname_new_frm_str("q.example.");
    ldns_pkt *q = ldns_pkt_query_new(ldns_rdf_clone(qn), LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD);
    ldns_pkt_set_id(q, 0x1234);
    uint8_t *qw = NULL;
    size_t qlen = 0;
    assert_int_equal(ldns_pkt2wire(&qw, q, &qlen), LDNS_STATUS_OK);
    uint8_t a[4096];
    size_t alen = build_answer(qw, qlen, a, sizeof(a), LDNS_RCODE_NOERROR, NULL, false, a_ok, 1);
    ldns_pkt *out = NULL;

    assert_int_equal(dns_answer_check(a, alen, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_ACCEPT);
    ldns_pkt_free(out);
    assert_int_equal(dns_answer_check(a, alen, 0x1235, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_IGNORE);
    assert_int_equal(dns_answer_check(a, alen, 0x1234, qn, LDNS_RR_TYPE_AAAA, &out), DNS_CHECK_IGNORE);
    assert_int_equal(dns_answer_check(a, 11, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_IGNORE);
    assert_int_equal(dns_answer_check(a, 14, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_IGNORE);
    assert_int_equal(dns_answer_check(a, alen - 3, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_MALFORMED);
    assert_null(out);
    a[2] |= 0x02; /* TC */
    assert_int_equal(dns_answer_check(a, alen, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_TRUNCATED);
    a[2] &= (uint8_t)~0x02;
    a[5] = 2; /* QDCOUNT 2 */
    assert_int_equal(dns_answer_check(a, alen, 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_IGNORE);
    a[5] = 1;
    /* Question name as a pointer to itself: a compression loop. */
    uint8_t loop[] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    assert_int_equal(dns_answer_check(loop, sizeof(loop), 0x1234, qn, LDNS_RR_TYPE_A, &out), DNS_CHECK_IGNORE);
    assert_string_equal(dns_status_str(DNS_ERR_REFUSED), "REFUSED");
    free(qw);
    ldns_pkt_free(q);
    ldns_rdf_deep_free(qn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_ignores_wrong_id),
        cmocka_unit_test(test_ignores_wrong_question),
        cmocka_unit_test(test_ignores_non_response),
        cmocka_unit_test(test_ignores_wrong_source),
        cmocka_unit_test(test_question_case_insensitive),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rcodes),
        cmocka_unit_test(test_tc_retries_over_tcp),
        cmocka_unit_test(test_tcp_cap_refuses),
        cmocka_unit_test(test_timeout_bounded),
        cmocka_unit_test(test_closed_port_is_network),
        cmocka_unit_test(test_rotates_servers),
        cmocka_unit_test(test_inflight_cap_and_cancel),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_pool_reuses_sockets),
        cmocka_unit_test(test_pool_retires_after_uses),
        cmocka_unit_test(test_pool_retires_by_age),
        cmocka_unit_test(test_ids_unique_per_socket),
        cmocka_unit_test(test_0x20_randomises_and_restores),
        cmocka_unit_test(test_0x20_fallback),
        cmocka_unit_test(test_0x20_then_tcp),
        cmocka_unit_test(test_free_from_callback_in_batch),
        cmocka_unit_test(test_cancel_from_callback_in_batch),
        cmocka_unit_test(test_closed_port_fails_all_on_socket),
        cmocka_unit_test(test_set_pool_in_flight),
        cmocka_unit_test(test_oversized_datagram_goes_tcp),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_parse_server),
        cmocka_unit_test(test_resolv_conf),
        cmocka_unit_test(test_answer_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
