/* Verification without a DNS server: the pure decision (verify_decide), the
 * SQL of common/store_verify.c on a temp store, and the engine's paths that
 * need no answer (registration trust, edge hints, API requests, timeouts
 * against a silent resolver, shutdown with probes in flight). The live
 * scheduler and the bench are in test_verify_live.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/domain_state.h"
#include "common/store_verify.h"
#include "common/metrics.h"
#include "common/util.h"
#include "control/probe.h"
#include "control/subsys.h"
#include "control/verify.h"
#include "test_verify_fake.h"

static const verify_sched_t SC = { .pending_interval_s = 300, .pending_window_s = 7 * 86400,
                                   .stalled_interval_s = 3600, .verified_interval_s = 86400 };
#define NOW 1700000000000LL
#define HOUR 3600000LL

static store_verify_current_t cur_of(const char *state, int verified, int64_t created_at, int has_cert)
{
    store_verify_current_t c = { .project_id = 1, .verified = verified, .created_at = created_at,
                                 .has_cert = has_cert };
    snprintf(c.state, sizeof(c.state), "%s", state);
    return c;
}

static int decide(const char *state, int verified, int64_t created_at, int has_cert, verify_result_t r,
                  const char *hint, unsigned jitter, store_verify_apply_t *out)
{
    static store_verify_current_t cur; /* out->state may point into it */
    memset(out, 0, sizeof(*out));
    cur = cur_of(state, verified, created_at, has_cert);
    return verify_decide(&cur, r, r == VERIFY_R_OK ? "cname" : "all", hint, &SC, NOW, jitter, out);
}

/* ---- pure ---- */

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(verify_classify(true, "verified", "ok"), VERIFY_R_OK);
    assert_int_equal(verify_classify(false, "inconclusive", "timeout"), VERIFY_R_ERROR);
    assert_int_equal(verify_classify(false, "inconclusive", "servfail"), VERIFY_R_ERROR);
    assert_int_equal(verify_classify(false, "unverified", "partial"), VERIFY_R_PROGRESS);
    assert_int_equal(verify_classify(false, "unverified", "stray_aaaa"), VERIFY_R_PROGRESS);
    assert_int_equal(verify_classify(false, "unverified", "caa_blocks_issuer"), VERIFY_R_PROGRESS);
    assert_int_equal(verify_classify(false, "unverified", "cloudflare_proxy"), VERIFY_R_PROGRESS);
    assert_int_equal(verify_classify(false, "unverified", "wrong_target"), VERIFY_R_MISS);
    assert_int_equal(verify_classify(false, "unverified", "dnssec_bogus"), VERIFY_R_MISS);
    assert_int_equal(verify_classify(false, "unverified", "missing"), VERIFY_R_MISS);
}

static void test_decide_pending(void **state)
{
    (void)state;
    store_verify_apply_t a;
    /* miss: stays pending, next probe pending_interval ± 10 % */
    assert_int_equal(decide("pending_ownership", 0, NOW - HOUR, 0, VERIFY_R_MISS, "missing", 0, &a), 0);
    assert_string_equal(a.state, "pending_ownership");
    assert_null(a.event);
    assert_int_equal(a.next_probe_at, NOW + 270000);
    decide("pending_ownership", 0, NOW - HOUR, 0, VERIFY_R_MISS, "missing", 1000, &a);
    assert_int_equal(a.next_probe_at, NOW + 330000);
    decide("pending_ownership", 0, NOW - HOUR, 0, VERIFY_R_MISS, "missing", 500, &a);
    assert_int_equal(a.next_probe_at, NOW + 300000);
    assert_false(a.become_verified);
    assert_int_equal(a.drift, -1);
    /* progress: verifying, and back to pending on a miss */
    assert_int_equal(decide("pending_ownership", 0, NOW - HOUR, 0, VERIFY_R_PROGRESS, "partial", 500, &a), 1);
    assert_string_equal(a.state, "verifying");
    assert_null(a.event);
    assert_int_equal(decide("verifying", 0, NOW - HOUR, 0, VERIFY_R_MISS, "missing", 500, &a), 1);
    assert_string_equal(a.state, "pending_ownership");
    /* ok: verified, with the method and the event */
    assert_int_equal(decide("verifying", 0, NOW - HOUR, 0, VERIFY_R_OK, "ok", 500, &a), 1);
    assert_string_equal(a.state, "verified");
    assert_true(a.become_verified);
    assert_string_equal(a.verify_method, "cname");
    assert_string_equal(a.event, "domain.verified");
    assert_string_equal(a.event_method, "cname");
    assert_int_equal(a.next_probe_at, NOW + 86400000);
    /* a certificate kept from an earlier life: straight to live */
    decide("pending_ownership", 0, NOW - HOUR, 1, VERIFY_R_OK, "ok", 500, &a);
    assert_string_equal(a.state, "live");
    assert_string_equal(a.event, "domain.verified");
    /* an inconclusive probe changes nothing */
    assert_int_equal(decide("pending_ownership", 0, NOW - HOUR, 0, VERIFY_R_ERROR, "timeout", 500, &a), 0);
    assert_string_equal(a.state, "pending_ownership");
    assert_null(a.event);
}

static void test_decide_window(void **state)
{
    (void)state;
    store_verify_apply_t a;
    int64_t window = (int64_t)SC.pending_window_s * 1000;
    /* the next probe never lands past the window's end */
    decide("pending_ownership", 0, NOW - window + 1000, 0, VERIFY_R_MISS, "missing", 500, &a);
    assert_int_equal(a.next_probe_at, NOW + 1000);
    /* past the window: stalled, domain.failed, hourly */
    assert_int_equal(decide("pending_ownership", 0, NOW - window, 0, VERIFY_R_MISS, "wrong_target", 500, &a), 1);
    assert_string_equal(a.state, "stalled");
    assert_string_equal(a.event, "domain.failed");
    assert_string_equal(a.event_reason, "verification_window_ended");
    assert_string_equal(a.event_hint, "wrong_target");
    assert_int_equal(a.next_probe_at, NOW + HOUR);
    decide("verifying", 0, NOW - window - 1, 0, VERIFY_R_PROGRESS, "partial", 500, &a);
    assert_string_equal(a.state, "stalled");
    /* inconclusive past the window stalls too (a domain whose DNS never answers) */
    decide("pending_ownership", 0, NOW - window, 0, VERIFY_R_ERROR, "servfail", 500, &a);
    assert_string_equal(a.state, "stalled");
    assert_int_equal(a.next_probe_at, NOW + 300000); /* errors retry at the pending pace */
    /* stalled stays stalled, quietly, until it verifies */
    assert_int_equal(decide("stalled", 0, NOW - window * 2, 0, VERIFY_R_MISS, "missing", 500, &a), 0);
    assert_null(a.event);
    assert_int_equal(a.next_probe_at, NOW + HOUR);
    decide("stalled", 0, NOW - window * 2, 0, VERIFY_R_OK, "ok", 500, &a);
    assert_string_equal(a.state, "verified");
    assert_string_equal(a.event, "domain.verified");
}

static void test_decide_drift(void **state)
{
    (void)state;
    store_verify_apply_t a;
    assert_int_equal(decide("live", 1, NOW - 100 * HOUR, 1, VERIFY_R_MISS, "wrong_target", 500, &a), 1);
    assert_string_equal(a.state, "drifted");
    assert_false(a.become_verified); /* but verified is never cleared: the UPDATE keeps it */
    assert_int_equal(a.drift, 1);
    assert_string_equal(a.event, "domain.drift");
    assert_string_equal(a.event_reason, "dns_changed");
    assert_string_equal(a.event_hint, "wrong_target");
    assert_int_equal(a.next_probe_at, NOW + 300000); /* watched closely while drifted */
    assert_int_equal(decide("drifted", 1, NOW - 100 * HOUR, 1, VERIFY_R_MISS, "wrong_target", 500, &a), 0);
    assert_null(a.event);
    assert_int_equal(a.drift, -1);
    assert_int_equal(decide("drifted", 1, NOW - 100 * HOUR, 1, VERIFY_R_OK, "ok", 500, &a), 1);
    assert_string_equal(a.state, "live");
    assert_int_equal(a.drift, 0);
    assert_string_equal(a.event, "domain.monitor_updated");
    assert_string_equal(a.event_reason, "dns_restored");
    decide("drifted", 1, NOW - 100 * HOUR, 0, VERIFY_R_OK, "ok", 500, &a);
    assert_string_equal(a.state, "verified");
    /* transient failures never drift a domain */
    assert_int_equal(decide("live", 1, NOW - 100 * HOUR, 1, VERIFY_R_ERROR, "timeout", 500, &a), 0);
    assert_string_equal(a.state, "live");
    assert_null(a.event);
    assert_int_equal(a.next_probe_at, NOW + 300000);
    /* an ok re-check of a live domain: nothing to say, see you tomorrow */
    assert_int_equal(decide("live", 1, NOW - 100 * HOUR, 1, VERIFY_R_OK, "ok", 500, &a), 0);
    assert_null(a.event);
    assert_int_equal(a.next_probe_at, NOW + 86400000);
}

static void test_decide_trust_and_unknown(void **state)
{
    (void)state;
    store_verify_apply_t a;
    memset(&a, 0, sizeof(a));
    store_verify_current_t cur = cur_of("pending_ownership", 0, NOW, 0);
    assert_int_equal(verify_decide(&cur, VERIFY_R_TRUST, "registration", "ok", &SC, NOW, 500, &a), 1);
    assert_string_equal(a.state, "verified");
    assert_string_equal(a.verify_method, "registration");
    assert_string_equal(a.event_method, "registration");
    cur = cur_of("dns_writing", 0, NOW, 0); /* a state Hee never sets: left alone */
    assert_int_equal(verify_decide(&cur, VERIFY_R_MISS, "all", "missing", &SC, NOW, 500, &a), 0);
    assert_string_equal(a.state, "dns_writing");
    cur = cur_of("bogus-state", 0, NOW, 0);
    assert_int_equal(verify_decide(&cur, VERIFY_R_OK, "cname", "ok", &SC, NOW, 500, &a), 1);
    assert_null(a.state); /* the stored state is kept */
    assert_true(a.become_verified);
}

/* ---- store ---- */

static int count_due(const store_verify_target_t *t, void *arg)
{
    char *order = arg;
    size_t n = strlen(order);
    snprintf(order + n, 256 - n, "%s%s", n ? "," : "", t->hostname);
    return 0;
}

static void test_store_due(void **state)
{
    (void)state;
    fake_t *f = fake_new("127.0.0.1:9");
    int64_t p = fake_project(f, "acme", "{\"verification\":[\"cname\",\"txt\"]}");
    int64_t q = fake_project(f, "trust", "{\"verification\":\"registration\"}");
    int64_t a = fake_domain(f, p, "a.example.com", "tok-a");
    int64_t b = fake_domain(f, p, "b.example.com", "tok-b");
    int64_t c = fake_domain(f, q, "c.example.com", "tok-c");
    int64_t d = fake_domain(f, p, "d.example.com", "tok-d");
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE domains SET next_probe_at = 5 WHERE id = %lld", (long long)b);
    fake_sql(f, sql);
    snprintf(sql, sizeof(sql), "UPDATE domains SET next_probe_at = 7 WHERE id = %lld", (long long)c);
    fake_sql(f, sql);
    snprintf(sql, sizeof(sql), "UPDATE domains SET next_probe_at = 6, removed_at = 1 WHERE id = %lld", (long long)d);
    fake_sql(f, sql);
    snprintf(sql, sizeof(sql), "UPDATE domains SET next_probe_at = NULL WHERE id = %lld", (long long)a);
    fake_sql(f, sql);
    char order[256] = "";
    assert_int_equal(store_verify_due(f->c.store, 1000, 10, count_due, order), STORE_OK);
    assert_string_equal(order, "b.example.com,c.example.com");
    order[0] = '\0';
    assert_int_equal(store_verify_due(f->c.store, 1000, 1, count_due, order), STORE_OK);
    assert_string_equal(order, "b.example.com");
    order[0] = '\0';
    assert_int_equal(store_verify_due(f->c.store, 5, 10, count_due, order), STORE_OK);
    assert_string_equal(order, "b.example.com");

    store_verify_target_t t;
    assert_int_equal(store_verify_target_by_host(f->c.store, "c.example.com", &t), STORE_OK);
    assert_int_equal(t.id, c);
    assert_string_equal(t.verification, "registration");
    assert_string_equal(t.challenge, "tok-c");
    assert_int_equal(store_verify_target_by_id(f->c.store, b, &t), STORE_OK);
    assert_string_equal(t.verification, "[\"cname\",\"txt\"]");
    assert_string_equal(t.state, "pending_ownership");
    assert_int_equal(store_verify_target_by_host(f->c.store, "d.example.com", &t), STORE_NOTFOUND);
    assert_int_equal(store_verify_target_by_host(f->c.store, "nope.example.com", &t), STORE_NOTFOUND);
    /* the planner walks the partial index */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(store_db(f->c.store),
                                        "EXPLAIN QUERY PLAN SELECT d.id FROM domains d JOIN projects p ON p.id = "
                                        "d.project_id WHERE d.removed_at IS NULL AND d.next_probe_at IS NOT NULL "
                                        "AND d.next_probe_at <= 1000 ORDER BY d.next_probe_at LIMIT 10",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int uses_index = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        uses_index |= strstr((const char *)sqlite3_column_text(st, 3), "domains_next_probe") != NULL;
    sqlite3_finalize(st);
    assert_true(uses_index);
    fake_free(f);
}

static int collect_checks(const store_verify_check_t *c, void *arg)
{
    int *n = arg;
    if (*n == 0) {
        assert_string_equal(c->outcome, "ok");
        assert_int_equal(c->verified, 1);
    }
    (*n)++;
    return 0;
}

static store_verify_apply_t apply_of(int64_t id, int64_t now, const char *state, int ok)
{
    store_verify_apply_t a = { .domain_id = id, .now = now, .method = ok ? "cname" : "all",
                               .outcome = ok ? "ok" : "missing", .probe_verified = ok, .summary = "cname=- hint=x",
                               .state = state, .become_verified = ok, .verify_method = ok ? "cname" : NULL,
                               .next_probe_at = now + 1000, .drift = -1, .cname_target = "edge.hee.la" };
    return a;
}

static void test_store_apply(void **state)
{
    (void)state;
    fake_t *f = fake_new("127.0.0.1:9");
    int64_t p = fake_project(f, "acme", "{}");
    int64_t id = fake_domain(f, p, "www.example.com", "tok");
    char sql[256];
    store_verify_current_t cur;

    assert_int_equal(store_verify_apply(f->c.store, &(store_verify_apply_t){ .domain_id = id }), STORE_ERR);
    /* not verified: a check, the schedule, no event */
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    store_verify_apply_t a = apply_of(id, 1000, "pending_ownership", 0);
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    snprintf(sql, sizeof(sql), "SELECT next_probe_at FROM domains WHERE id = %lld", (long long)id);
    assert_int_equal(fake_sql_int(f, sql), 2000);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 1);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM events"), 0);

    /* verified: flag, time, method, event with the Domain object */
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    a = apply_of(id, 3000, "verified", 1);
    a.event = "domain.verified";
    a.event_method = "cname";
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    snprintf(sql, sizeof(sql), "SELECT verified * 1000000 + verified_at FROM domains WHERE id = %lld", (long long)id);
    assert_int_equal(fake_sql_int(f, sql), 1003000);
    const char *payload = fake_sql_text(f, "SELECT payload FROM events WHERE type = 'domain.verified'");
    assert_non_null(payload);
    assert_non_null(strstr(payload, "\"hostname\":\"www.example.com\""));
    assert_non_null(strstr(payload, "\"state\":\"verified\""));
    assert_non_null(strstr(payload, "\"verified\":true"));
    assert_non_null(strstr(payload, "\"method\":\"cname\""));
    assert_non_null(strstr(payload, "\"metadata\":{}"));

    /* drift: verified stays, verified_at and method stay, drifted_at set */
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    a = apply_of(id, 5000, "drifted", 0);
    a.drift = 1;
    a.event = "domain.drift";
    a.event_reason = "dns_changed";
    a.event_hint = "wrong_target";
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    snprintf(sql, sizeof(sql), "SELECT verified FROM domains WHERE id = %lld AND verified_at = 3000 AND "
                               "verify_method = 'cname' AND drifted_at = 5000 AND state = 'drifted'", (long long)id);
    assert_int_equal(fake_sql_int(f, sql), 1);
    payload = fake_sql_text(f, "SELECT payload FROM events WHERE type = 'domain.drift'");
    assert_non_null(strstr(payload, "\"reason\":\"dns_changed\",\"hint\":\"wrong_target\""));
    /* a second verification (via TXT) does not rewrite the first */
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    a = apply_of(id, 7000, "verified", 1);
    a.verify_method = "txt";
    a.drift = 0;
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM domains WHERE id = %lld AND verified_at = 3000 AND "
                               "verify_method = 'cname' AND drifted_at IS NULL AND last_probe_at = 7000", (long long)id);
    assert_int_equal(fake_sql_int(f, sql), 1);
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    assert_int_equal(store_verify_current(f->c.store, id, 7000, &cur), STORE_OK);
    store_rollback(f->c.store);
    assert_string_equal(cur.state, "verified");
    assert_int_equal(cur.verified, 1);
    assert_int_equal(cur.has_cert, 0);
    /* a live certificate row counts */
    snprintf(sql, sizeof(sql), "INSERT INTO certificates (hostname, chain_pem, key_pem, key_type, issuer, not_before, "
                               "not_after, renew_at, created_at) VALUES ('www.example.com', 'x', 'k', 'ecdsa-p256', "
                               "'internal', 0, 99999999999999, 0, 0)");
    fake_sql(f, sql);
    assert_int_equal(store_verify_current(f->c.store, id, 7000, &cur), STORE_OK);
    assert_int_equal(cur.has_cert, 1);

    /* at most STORE_VERIFY_KEEP_CHECKS per domain, newest kept */
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    for (int i = 0; i < STORE_VERIFY_KEEP_CHECKS + 30; i++) {
        a = apply_of(id, 10000 + i, "verified", 1);
        assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    }
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), STORE_VERIFY_KEEP_CHECKS);
    assert_int_equal(fake_sql_int(f, "SELECT min(at) FROM checks"), 10030);
    int n = 0;
    assert_int_equal(store_verify_checks(f->c.store, id, 5, collect_checks, &n), STORE_OK);
    assert_int_equal(n, 5);

    /* a state this build does not know is kept as stored */
    snprintf(sql, sizeof(sql), "UPDATE domains SET state = 'from_the_future' WHERE id = %lld", (long long)id);
    fake_sql(f, sql);
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    a = apply_of(id, 20000, NULL, 1);
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_OK);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    snprintf(sql, sizeof(sql), "SELECT state FROM domains WHERE id = %lld", (long long)id);
    assert_string_equal(fake_sql_text(f, sql), "from_the_future");

    /* removed meanwhile: NOTFOUND, nothing written */
    snprintf(sql, sizeof(sql), "UPDATE domains SET removed_at = 1 WHERE id = %lld", (long long)id);
    fake_sql(f, sql);
    assert_int_equal(store_begin(f->c.store), STORE_OK);
    assert_int_equal(store_verify_current(f->c.store, id, 7000, &cur), STORE_NOTFOUND);
    a = apply_of(id, 90000, "verified", 1);
    assert_int_equal(store_verify_apply(f->c.store, &a), STORE_NOTFOUND);
    assert_int_equal(store_commit(f->c.store), STORE_OK);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks WHERE at = 90000"), 0);
    fake_free(f);
}

/* ---- engine, no DNS answers needed ---- */

static int all_verified(fake_t *f, int64_t n)
{
    return fake_sql_int(f, "SELECT count(*) FROM domains WHERE verified = 1") == n;
}

static void test_engine_trust_registration(void **state)
{
    (void)state;
    fake_t *f = fake_new("127.0.0.1:9");
    int64_t p = fake_project(f, "trust", "{\"verification\":\"registration\"}");
    char host[64];
    for (int i = 0; i < 40; i++) {
        snprintf(host, sizeof(host), "d%d.example.com", i);
        fake_domain(f, p, host, "tok");
    }
    char *err = NULL;
    f->c.verify = verify_new(&f->c, &err);
    assert_non_null(f->c.verify);
    int64_t end = util_mono_ms() + 5000;
    while (!all_verified(f, 40) && util_mono_ms() < end)
        fake_run_for(f, 50);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM domains WHERE state = 'verified' AND "
                                     "verify_method = 'registration' AND verified_at > 0"),
                     40);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM events WHERE type = 'domain.verified' AND "
                                     "payload LIKE '%\"method\":\"registration\"%'"),
                     40);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks WHERE method = 'registration'"), 40);
    assert_true(f->events >= 1);
    assert_int_equal(f->domain_changed, 40);
    /* verified ones wait a day */
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM domains WHERE next_probe_at > strftime('%s','now') * "
                                     "1000 + 3000 * 1000 * 0.9"),
                     40);
    /* no transaction was left open, nothing more runs */
    verify_stats_t st;
    verify_stats(f->c.verify, &st);
    assert_int_equal(st.jobs, 0);
    assert_int_equal(st.recorded, 40);
    assert_int_equal(st.probes, 0);
    verify_stop(f->c.verify);
    verify_free(f->c.verify);
    fake_free(f);
}

struct api_result {
    int done, got, verified;
    char hint[32];
    char json[2048];
};

static void on_report(const verify_report_t *rep, void *arg)
{
    struct api_result *r = arg;
    r->done = 1;
    if (!rep)
        return;
    r->got = 1;
    r->verified = rep->verified;
    snprintf(r->hint, sizeof(r->hint), "%s", rep->hint);
    char *s = json_dumps(rep->probe, JSON_COMPACT);
    snprintf(r->json, sizeof(r->json), "%s", s ? s : "");
    free(s);
}

/* A UDP port that swallows queries: every lookup times out. */
static int silent_udp(char *addr, size_t len)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, len, "127.0.0.1:%d", ntohs(sa.sin_port));
    return fd;
}

static void test_engine_timeouts_and_hints(void **state)
{
    (void)state;
    char addr[64];
    int fd = silent_udp(addr, sizeof(addr));
    fake_t *f = fake_new(addr);
    f->cfg->pending_interval_s = 3600; /* keep the scheduler out of the way after its first pass */
    int64_t p = fake_project(f, "acme", "{}");
    int64_t t = fake_project(f, "trust", "{\"verification\":\"registration\"}");
    int64_t id = fake_domain(f, p, "slow.example.com", "tok");
    fake_domain(f, t, "trusted.example.com", "tok");
    char *err = NULL;
    f->c.verify = verify_new(&f->c, &err);
    assert_non_null(f->c.verify);

    /* the scheduler's probe times out: check recorded, state unchanged */
    int64_t end = util_mono_ms() + 8000;
    while (fake_sql_int(f, "SELECT count(*) FROM checks") < 2 && util_mono_ms() < end)
        fake_run_for(f, 50);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks WHERE outcome = 'timeout' AND verified = 0"), 1);
    /* the resolver's counters reach /metrics within a tick (<= 1 s) */
    end = util_mono_ms() + 3000;
    while (metrics_get(f->hub.metrics, M_DNS_TIMEOUTS) == 0 && util_mono_ms() < end)
        fake_run_for(f, 50);
    assert_true(metrics_get(f->hub.metrics, M_DNS_QUERIES) >= 1);
    assert_true(metrics_get(f->hub.metrics, M_DNS_TIMEOUTS) >= 1);
    assert_true(metrics_get(f->hub.metrics, M_DNS_UDP_SENT) >= metrics_get(f->hub.metrics, M_DNS_TIMEOUTS));
    assert_int_equal(metrics_get(f->hub.metrics, M_DNS_MALFORMED), 0);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM domains WHERE hostname = 'slow.example.com' AND "
                                     "state = 'pending_ownership' AND verified = 0"),
                     1);

    /* edge hint, unverified: probe, then CERT_FAILED with the hint's code */
    verify_hint(f->c.verify, "SLOW.example.com.");
    end = util_mono_ms() + 8000;
    while (f->cert_failed < 1 && util_mono_ms() < end)
        fake_run_for(f, 20);
    int k = fake_find(f, "cert_failed", "slow.example.com");
    assert_true(k >= 0);
    assert_int_equal(f->calls[k].code, VERIFY_FAIL_HINT + PROBE_HINT_TIMEOUT);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 3);
    /* again at once: rate-limited, answered without a probe */
    verify_hint(f->c.verify, "slow.example.com");
    assert_int_equal(f->cert_failed, 2);
    assert_int_equal(f->calls[f->ncalls - 1].code, VERIFY_FAIL_RATE_LIMITED);
    /* unknown host */
    verify_hint(f->c.verify, "nobody.example.com");
    assert_int_equal(f->calls[f->ncalls - 1].code, VERIFY_FAIL_UNKNOWN_HOST);
    /* a trusted (already verified) host goes to the issuer */
    verify_hint(f->c.verify, "trusted.example.com");
    assert_true(fake_find(f, "issuer_want", "trusted.example.com") >= 0);

    /* API record request: answered after the commit with the probe report */
    struct api_result r = { 0 };
    assert_int_equal(verify_request(f->c.verify, id, VERIFY_RECORD, on_report, &r), 0);
    fake_run_until(f, &r.done, 8000);
    assert_true(r.got);
    assert_false(r.verified);
    assert_string_equal(r.hint, "timeout");
    assert_non_null(strstr(r.json, "\"verdict\":\"inconclusive\""));
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 4);
    assert_int_equal(verify_request(f->c.verify, 999999, VERIFY_RECORD, on_report, &r), STORE_NOTFOUND);

    /* diagnose writes nothing */
    struct api_result dg = { 0 };
    assert_int_equal(verify_request(f->c.verify, id, VERIFY_DIAGNOSE, on_report, &dg), 0);
    fake_run_until(f, &dg.done, 8000);
    assert_true(dg.got);
    assert_non_null(strstr(dg.json, "\"records\":[{\"type\":\"CNAME\""));
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 4);

    /* shutdown with a probe in flight: the caller hears NULL, nothing leaks */
    struct api_result late = { 0 };
    assert_int_equal(verify_request(f->c.verify, id, VERIFY_RECORD, on_report, &late), 0);
    fake_run_for(f, 30);
    verify_stop(f->c.verify);
    assert_true(late.done);
    assert_false(late.got);
    assert_int_equal(verify_request(f->c.verify, id, VERIFY_RECORD, on_report, &late), -1);
    verify_hint(f->c.verify, "slow.example.com"); /* ignored once stopped */
    verify_free(f->c.verify);
    close(fd);
    fake_free(f);
}

/* Scheduler memory: whatever the number of due domains, jobs never exceed
 * twice [verify] concurrency (probes running, results awaiting their commit). */
static void test_engine_bounded(void **state)
{
    (void)state;
    char addr[64];
    int fd = silent_udp(addr, sizeof(addr));
    fake_t *f = fake_new(addr);
    f->cfg->probe_concurrency = 16;
    int64_t p = fake_project(f, "acme", "{}");
    fake_sql(f, "BEGIN");
    char host[64];
    for (int i = 0; i < 300; i++) {
        snprintf(host, sizeof(host), "n%d.example.com", i);
        fake_domain(f, p, host, "tok");
    }
    fake_sql(f, "COMMIT");
    char *err = NULL;
    f->c.verify = verify_new(&f->c, &err);
    assert_non_null(f->c.verify);
    fake_run_for(f, 1500);
    verify_stats_t st;
    verify_stats(f->c.verify, &st);
    assert_true(st.jobs_peak <= 2 * 16);
    assert_true(st.jobs_peak >= 4);
    assert_true(st.recorded > 0);
    verify_stop(f->c.verify);
    verify_free(f->c.verify);
    close(fd);
    fake_free(f);
}

/* On a no-wait handle (the background thread's), a flush that finds the
 * store's write lock held by another connection keeps its batch and
 * retries: the loop keeps turning, the sweep stops at its memory bound
 * instead of growing, and once the lock is free every result is recorded
 * exactly once. */
/* Another connection takes the store's write lock, then the engine starts
 * on a handle that does not wait for it (the background thread's). */
static sqlite3 *start_locked(fake_t *f)
{
    store_set_nowait(f->c.store, 1);
    sqlite3 *lock = NULL;
    assert_int_equal(sqlite3_open(f->db, &lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    char *err = NULL;
    f->c.verify = verify_new(&f->c, &err);
    assert_non_null(f->c.verify);
    return lock;
}

static void unlock(sqlite3 *lock)
{
    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
}

static void test_engine_flush_waits_for_lock(void **state)
{
    (void)state;
    fake_t *f = fake_new("127.0.0.1:9");
    f->cfg->probe_concurrency = 16;
    int64_t p = fake_project(f, "trust", "{\"verification\":\"registration\"}");
    fake_sql(f, "BEGIN");
    char host[64];
    for (int i = 0; i < 200; i++) {
        snprintf(host, sizeof(host), "l%d.example.com", i);
        fake_domain(f, p, host, "tok");
    }
    fake_sql(f, "COMMIT");
    sqlite3 *lock = start_locked(f);
    int64_t t0 = util_mono_ms();
    fake_run_for(f, 600);
    int64_t took = util_mono_ms() - t0;
    if (took > 900)
        fail_msg("600 ms of loop took %lld ms: a flush slept on the lock", (long long)took);
    verify_stats_t st;
    verify_stats(f->c.verify, &st);
    assert_int_equal(st.flushes, 0);
    assert_int_equal(st.recorded, 0);
    assert_true(st.jobs >= 16);          /* results wait in memory… */
    assert_true(st.jobs_peak <= 2 * 16); /* …up to the bound, no further */
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 0);
    unlock(lock);
    int64_t end = util_mono_ms() + 8000;
    while (!all_verified(f, 200) && util_mono_ms() < end)
        fake_run_for(f, 50);
    assert_true(all_verified(f, 200));
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM checks"), 200);
    assert_int_equal(fake_sql_int(f, "SELECT count(*) FROM events WHERE type = 'domain.verified'"), 200);
    verify_stats(f->c.verify, &st);
    assert_int_equal(st.recorded, 200);
    assert_int_equal(f->domain_changed, 200);
    verify_stop(f->c.verify);
    verify_free(f->c.verify);
    fake_free(f);
}

/* /verify while another connection holds the write lock for longer than a
 * waiting handle would have waited: the caller gets "no result" after
 * STORE_BUSY_WAIT_MS instead of hanging on the lock, and the probe's result
 * is still recorded once the lock frees. */
static void test_engine_api_answered_while_locked(void **state)
{
    (void)state;
    fake_t *f = fake_new("127.0.0.1:9");
    int64_t p = fake_project(f, "trust", "{\"verification\":\"registration\"}");
    int64_t id = fake_domain(f, p, "held.example.com", "tok");
    sqlite3 *lock = start_locked(f);
    struct api_result r = { 0 };
    assert_int_equal(verify_request(f->c.verify, id, VERIFY_RECORD, on_report, &r), 0);
    int64_t t0 = util_mono_ms();
    fake_run_until(f, &r.done, STORE_BUSY_WAIT_MS + 3000);
    int64_t took = util_mono_ms() - t0;
    assert_true(r.done);
    assert_false(r.got);
    assert_true(took >= STORE_BUSY_WAIT_MS - 100);
    unlock(lock);
    int64_t end = util_mono_ms() + 8000;
    while (!all_verified(f, 1) && util_mono_ms() < end)
        fake_run_for(f, 50);
    assert_true(all_verified(f, 1));
    assert_true(fake_sql_int(f, "SELECT count(*) FROM checks") >= 1);
    verify_stop(f->c.verify);
    verify_free(f->c.verify);
    fake_free(f);
}

static void test_engine_bad_resolvers(void **state)
{
    (void)state;
    fake_t *f = fake_new("resolver.example.com:53");
    char *err = NULL;
    assert_null(verify_new(&f->c, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "[verify] resolvers"));
    free(err);
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_decide_pending),
        cmocka_unit_test(test_decide_window),
        cmocka_unit_test(test_decide_drift),
        cmocka_unit_test(test_decide_trust_and_unknown),
        cmocka_unit_test(test_store_due),
        cmocka_unit_test(test_store_apply),
        cmocka_unit_test(test_engine_trust_registration),
        cmocka_unit_test(test_engine_timeouts_and_hints),
        cmocka_unit_test(test_engine_bounded),
        cmocka_unit_test(test_engine_flush_waits_for_lock),
        cmocka_unit_test(test_engine_api_answered_while_locked),
        cmocka_unit_test(test_engine_bad_resolvers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
