/* Live resolver + probe tests against a real Knot DNS on loopback. Run by
 * test/e2e/dns_probe_live.py, which starts knot (test/lib/dnsserver.py),
 * loads the zones listed there and passes HEE_DNS_SERVER=127.0.0.1:<port>.
 *   test_dns_live main     the scenarios below
 *   test_dns_live edited   after the driver edited cust.test
 *   test_dns_live bench [N] [seconds]   probes/s, bounded in count and time
 * The bench takes the resolver's defaults unless HEE_DNS_POOL=<sockets per
 * server> or HEE_DNS_0X20=1 say otherwise (for tuning runs). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "control/probe.h"

static const char *server;
static const char *const edge[] = {"192.0.2.10", "2001:db8::10"};

typedef struct {
    int done;
    dns_status_t st;
    ldns_pkt *pkt;
    int64_t at;
} dres_t;

static void on_dns(dns_status_t st, ldns_pkt *pkt, void *arg)
{
    dres_t *r = arg;
    r->done++;
    r->st = st;
    r->pkt = pkt;
    r->at = util_mono_ms();
}

typedef struct {
    int done;
    bool verified;
    probe_hint_t hint;
    probe_method_t method;
    char verdict[32];
    char json[4096];
} pres_t;

static void on_probe(const probe_result_t *res, void *arg)
{
    pres_t *o = arg;
    o->done++;
    o->verified = res->verified;
    o->hint = res->hint;
    o->method = res->method;
    snprintf(o->verdict, sizeof(o->verdict), "%s", res->verdict);
    json_t *j = probe_result_to_json(res);
    char *s = json_dumps(j, JSON_COMPACT);
    snprintf(o->json, sizeof(o->json), "%s", s ? s : "");
    free(s);
    json_decref(j);
}

static void wait_for(struct event_base *base, const int *done, int max_ms)
{
    int64_t end = util_mono_ms() + max_ms;
    while (!*done && util_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

static dres_t ask_at(const char *srv, const char *name, ldns_rr_type type, unsigned flags,
                     int timeout_ms, int attempts, dns_stats_t *stats)
{
    struct event_base *base = event_base_new();
    const char *servers[] = {srv};
    dns_resolver_t *r = dns_resolver_new(base, servers, 1, timeout_ms, attempts);
    assert_non_null(r);
    dres_t res = {0};
    assert_non_null(dns_query(r, name, type, flags, on_dns, &res));
    wait_for(base, &res.done, 10000);
    assert_int_equal(res.done, 1);
    if (stats)
        dns_resolver_stats(r, stats);
    dns_resolver_free(r);
    event_base_free(base);
    return res;
}

static pres_t probe(const char *host, unsigned methods, const char *txt, const char *ca)
{
    struct event_base *base = event_base_new();
    const char *servers[] = {server};
    dns_resolver_t *r = dns_resolver_new(base, servers, 1, 1000, 2);
    probe_ctx_t *ctx = probe_ctx_new(base, r, 0, 0);
    assert_non_null(ctx);
    probe_request_t req = {.hostname = host, .edge_addrs = edge, .n_edge_addrs = 2,
                           .methods = methods, .txt_value = txt, .ca_identifier = ca};
    pres_t o = {0};
    assert_non_null(probe_run(ctx, &req, on_probe, &o));
    wait_for(base, &o.done, 10000);
    assert_int_equal(o.done, 1);
    print_message("  %s -> %s\n", host, o.json);
    probe_ctx_free(ctx);
    dns_resolver_free(r);
    event_base_free(base);
    return o;
}

#define CNAME_A (PROBE_M_CNAME | PROBE_M_A)

static void test_cname_verified(void **state)
{
    pres_t o = probe("www.cust.test", PROBE_M_CNAME, NULL, "letsencrypt.org");
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_CNAME);
    assert_non_null(strstr(o.json, "\"type\":\"CAA\",\"name\":\"cust.test\""));
}

static void test_a_verified(void **state)
{
    pres_t o = probe("apex.cust.test", CNAME_A, NULL, NULL);
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_A);
}

static void test_txt_verified(void **state)
{
    pres_t o = probe("txt.cust.test", PROBE_M_CNAME | PROBE_M_TXT, "tok-live-1", NULL);
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_TXT);
    o = probe("txt.cust.test", PROBE_M_TXT, "tok-other", NULL);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_WRONG_TARGET);
}

static void test_wrong_target(void **state)
{
    pres_t o = probe("wrong.cust.test", PROBE_M_CNAME, NULL, NULL);
    assert_false(o.verified);
    assert_string_equal(o.verdict, "unverified");
    assert_int_equal(o.hint, PROBE_HINT_WRONG_TARGET);
    assert_non_null(strstr(o.json, "\"found\":[\"shop.other.test\"]"));
    assert_non_null(strstr(o.json, "\"found\":[\"198.51.100.7\"]"));
}

static void test_nxdomain(void **state)
{
    dres_t r = ask_at(server, "nothere.cust.test", LDNS_RR_TYPE_A, 0, 1000, 1, NULL);
    assert_int_equal(r.st, DNS_ERR_NXDOMAIN);
    ldns_pkt_free(r.pkt);
    pres_t o = probe("nothere.cust.test", CNAME_A, NULL, NULL);
    assert_int_equal(o.hint, PROBE_HINT_NXDOMAIN);
    o = probe("later.cust.test", PROBE_M_CNAME, NULL, NULL); /* the driver adds it later */
    assert_int_equal(o.hint, PROBE_HINT_NXDOMAIN);
}

static void test_chain_of_three(void **state)
{
    pres_t o = probe("c1.cust.test", PROBE_M_CNAME, NULL, NULL);
    assert_true(o.verified);
    assert_non_null(strstr(o.json, "\"found\":[\"c2.cust.test\",\"c3.other.test\",\"edge.hee.la\"]"));
}

static void test_cname_loop(void **state)
{
    pres_t o = probe("loop1.cust.test", PROBE_M_CNAME, NULL, NULL);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_CNAME_LOOP);
}

static void test_more_hints(void **state)
{
    pres_t o = probe("cf.cust.test", CNAME_A, NULL, NULL);
    assert_int_equal(o.hint, PROBE_HINT_CLOUDFLARE_PROXY);
    o = probe("stray.cust.test", CNAME_A, NULL, NULL);
    assert_int_equal(o.hint, PROBE_HINT_STRAY_AAAA);
    o = probe("blocked.cust.test", CNAME_A, NULL, "letsencrypt.org");
    assert_int_equal(o.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    o = probe("partial.cust.test", PROBE_M_A, NULL, NULL);
    assert_int_equal(o.hint, PROBE_HINT_PARTIAL);
}

static void test_truncated_then_tcp(void **state)
{
    dns_stats_t st;
    dres_t r = ask_at(server, "big.cust.test", LDNS_RR_TYPE_TXT, 0, 1000, 1, &st);
    assert_int_equal(r.st, DNS_OK);
    assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r.pkt)), 12);
    assert_true(ldns_pkt_size(r.pkt) > 512);
    assert_int_equal(st.tcp_fallbacks, 1);
    ldns_pkt_free(r.pkt);
    /* With EDNS the same answer fits one datagram. */
    r = ask_at(server, "big.cust.test", LDNS_RR_TYPE_TXT, DNS_EDNS, 1000, 1, &st);
    assert_int_equal(r.st, DNS_OK);
    assert_int_equal(ldns_rr_list_rr_count(ldns_pkt_answer(r.pkt)), 12);
    assert_int_equal(st.tcp_fallbacks, 0);
    ldns_pkt_free(r.pkt);
}

static void test_timeout(void **state)
{
    /* A bound socket that never reads: nothing answers, nothing refuses. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    char srv[64];
    snprintf(srv, sizeof(srv), "127.0.0.1:%u", ntohs(sin.sin_port));
    int64_t t0 = util_mono_ms();
    dres_t r = ask_at(srv, "www.cust.test", LDNS_RR_TYPE_A, 0, 250, 2, NULL);
    int64_t took = r.at - t0;
    assert_int_equal(r.st, DNS_ERR_TIMEOUT);
    print_message("  timeout after %lld ms (bound 2 x 250 ms)\n", (long long)took);
    assert_true(took >= 495 && took < 1500); /* slack for a busy machine */
    close(fd);
}

static void test_refused(void **state)
{
    dres_t r = ask_at(server, "www.notserved.test", LDNS_RR_TYPE_A, 0, 1000, 1, NULL);
    assert_int_equal(r.st, DNS_ERR_REFUSED);
    assert_non_null(r.pkt);
    ldns_pkt_free(r.pkt);
    pres_t o = probe("www.notserved.test", PROBE_M_CNAME, NULL, NULL);
    assert_string_equal(o.verdict, "inconclusive");
    assert_int_equal(o.hint, PROBE_HINT_SERVFAIL);
}

static void test_after_edit(void **state)
{
    pres_t o = probe("later.cust.test", PROBE_M_CNAME, NULL, NULL);
    assert_true(o.verified);
    o = probe("wrong.cust.test", PROBE_M_CNAME, NULL, NULL);
    assert_true(o.verified); /* the customer fixed it */
}

/* Knot echoes the case of the question: 0x20 costs nothing there, and many
 * queries share a few pooled sockets. */
static void test_0x20_and_pool(void **state)
{
    struct event_base *base = event_base_new();
    const char *servers[] = {server};
    dns_resolver_t *r = dns_resolver_new(base, servers, 1, 1000, 1);
    assert_non_null(r);
    dns_resolver_set_0x20(r, true);
    assert_int_equal(dns_resolver_set_pool(r, 4, 0, 0), 0);
    for (int i = 0; i < 40; i++) {
        dres_t res = {0};
        assert_non_null(dns_query(r, "WwW.Cust.TEST", LDNS_RR_TYPE_CNAME, 0, on_dns, &res));
        wait_for(base, &res.done, 5000);
        assert_int_equal(res.st, DNS_OK);
        ldns_rr_list *ans = ldns_pkt_answer(res.pkt);
        assert_int_equal(ldns_rr_list_rr_count(ans), 1);
        char *owner = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ans, 0)));
        assert_int_equal(strcasecmp(owner, "www.cust.test."), 0);
        free(owner);
        ldns_pkt_free(res.pkt);
    }
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    assert_int_equal(st.case_mismatches, 0);
    assert_int_equal(st.udp_sent, 40);
    assert_true(st.sockets_opened <= 4);
    dns_resolver_free(r);
    event_base_free(base);
}

/* ---- bench ---------------------------------------------------------------- */

typedef struct {
    struct event_base *base;
    probe_ctx_t *ctx;
    long target, started, done, verified;
    int64_t deadline;
    unsigned methods;
    const char *txt, *ca;
} bench_t;

static void bench_submit(bench_t *b);

static void on_bench(const probe_result_t *res, void *arg)
{
    bench_t *b = arg;
    b->done++;
    b->verified += res->verified;
    if (b->done >= b->target || util_mono_ms() > b->deadline)
        event_base_loopbreak(b->base);
    else
        bench_submit(b);
}

static void bench_submit(bench_t *b)
{
    static const char *const hosts[] = {"www.cust.test", "apex.cust.test", "c1.cust.test",
                                        "txt.cust.test"};
    /* Keep ~2x max_active outstanding: the queue never runs dry, nor grows. */
    while (b->started < b->target && probe_ctx_pending(b->ctx) < 512) {
        probe_request_t req = {.hostname = hosts[b->started % 4], .edge_addrs = edge,
                               .n_edge_addrs = 2, .methods = b->methods, .txt_value = b->txt,
                               .ca_identifier = b->ca};
        if (!probe_run(b->ctx, &req, on_bench, b))
            break;
        b->started++;
    }
}

static int64_t cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static int bench(long n, int seconds, const char *label, unsigned methods, const char *txt,
                 const char *ca)
{
    struct event_base *base = event_base_new();
    const char *servers[] = {server};
    /* Loopback answers in microseconds: 256 queries in flight keep knot busy
     * without overflowing its socket buffer, and a short attempt timeout keeps
     * a rare dropped datagram from adding seconds to a few-second run. */
    dns_resolver_t *r = dns_resolver_new(base, servers, 1, 500, 3);
    dns_resolver_set_max_inflight(r, 256);
    const char *pool = getenv("HEE_DNS_POOL"), *x20 = getenv("HEE_DNS_0X20");
    if (pool && dns_resolver_set_pool(r, (size_t)atol(pool), 0, 0) != 0)
        fprintf(stderr, "bad HEE_DNS_POOL=%s: defaults kept\n", pool);
    if (x20)
        dns_resolver_set_0x20(r, atoi(x20) != 0);
    probe_ctx_t *ctx = probe_ctx_new(base, r, 256, 0);
    bench_t b = {.base = base, .ctx = ctx, .target = n, .methods = methods, .txt = txt, .ca = ca};
    int64_t t0 = util_mono_ms(), c0 = cpu_ms();
    b.deadline = t0 + seconds * 1000;
    bench_submit(&b);
    event_base_dispatch(base);
    int64_t ms = util_mono_ms() - t0, cpu = cpu_ms() - c0;
    dns_stats_t st;
    dns_resolver_stats(r, &st);
    double secs = ms > 0 ? ms / 1000.0 : 0.001;
    printf("BENCH %s probes=%ld verified=%ld ms=%lld probes_per_s=%.0f queries=%llu "
           "queries_per_s=%.0f cpu_ms=%lld probes_per_cpu_s=%.0f timeouts=%llu tcp=%llu "
           "sockets_opened=%llu case_mismatches=%llu\n",
           label, b.done, b.verified, (long long)ms, b.done / secs,
           (unsigned long long)st.queries, st.queries / secs, (long long)cpu,
           cpu > 0 ? b.done / (cpu / 1000.0) : 0.0,
           (unsigned long long)st.timeouts, (unsigned long long)st.tcp_fallbacks,
           (unsigned long long)st.sockets_opened, (unsigned long long)st.case_mismatches);
    fflush(stdout);
    probe_ctx_free(ctx);
    dns_resolver_free(r);
    event_base_free(base);
    return b.done == b.target || ms >= seconds * 1000 ? 0 : 1;
}

int main(int argc, char **argv)
{
    server = getenv("HEE_DNS_SERVER");
    if (!server) {
        fprintf(stderr, "HEE_DNS_SERVER not set: run me through test/e2e/dns_probe_live.py\n");
        return 77;
    }
    const char *group = argc > 1 ? argv[1] : "main";
    if (strcmp(group, "bench") == 0) {
        long n = argc > 2 ? atol(argv[2]) : 20000;
        int secs = argc > 3 ? atoi(argv[3]) : 30;
        int rc = bench(n, secs, "cname+a", PROBE_M_CNAME | PROBE_M_A, NULL, NULL);
        rc |= bench(n, secs, "cname+a+txt+caa", PROBE_M_CNAME | PROBE_M_A | PROBE_M_TXT,
                    "tok-live-1", "letsencrypt.org");
        return rc;
    }
    if (strcmp(group, "edited") == 0) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_after_edit)};
        return cmocka_run_group_tests_name("dns_live_edited", tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cname_verified),
        cmocka_unit_test(test_a_verified),
        cmocka_unit_test(test_txt_verified),
        cmocka_unit_test(test_wrong_target),
        cmocka_unit_test(test_nxdomain),
        cmocka_unit_test(test_chain_of_three),
        cmocka_unit_test(test_cname_loop),
        cmocka_unit_test(test_more_hints),
        cmocka_unit_test(test_truncated_then_tcp),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_0x20_and_pool),
    };
    return cmocka_run_group_tests_name("dns_live", tests, NULL, NULL);
}
