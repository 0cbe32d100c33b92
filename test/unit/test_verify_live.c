/* The verification engine against a real Knot DNS (test/lib/dnsserver.py,
 * spawned here and driven over its stdin/stdout): the scheduler verifies
 * each method, notices a DNS change within one pending interval, drifts and
 * recovers; an edge hint on a correctly pointed domain goes to the issuer.
 *   test_verify_live            the scenarios (exit 77 without knotd)
 *   test_verify_live bench [N [C [S]]]  N domains (default 20000) seeded due
 *                               at once: time until every one has a check
 *                               (or S seconds, default 600, have passed),
 *                               probes/s, peak jobs and scheduler memory,
 *                               with [verify] concurrency C (default 256);
 *                               RSS grows with the jobs, not with N */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "control/subsys.h"
#include "control/verify.h"
#include "test_verify_fake.h"

/* ---- knot over pipes ---- */

static struct {
    pid_t pid;
    FILE *in, *out;
    char addr[64];
} knot;

static int knot_start(void)
{
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0)
        return -1;
    knot.pid = fork();
    if (knot.pid < 0)
        return -1;
    if (knot.pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execlp("python3", "python3", HEE_SOURCE_DIR "/test/lib/dnsserver.py", "--workers", "2", (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    knot.in = fdopen(to[1], "w");
    knot.out = fdopen(from[0], "r");
    char line[256];
    if (!knot.in || !knot.out || !fgets(line, sizeof(line), knot.out) || strncmp(line, "READY addr=", 11) != 0)
        return -1;
    sscanf(line + 11, "%63s", knot.addr);
    return 0;
}

static void knot_stop(void)
{
    if (knot.in)
        fclose(knot.in); /* EOF stops knot */
    if (knot.out)
        fclose(knot.out);
    if (knot.pid > 0)
        waitpid(knot.pid, NULL, 0);
    memset(&knot, 0, sizeof(knot));
}

/* Records separated by '\n'. */
static void zone(const char *name, const char *records)
{
    char line[512];
    fprintf(knot.in, "ZONE %s\n%s\nEND\n", name, records);
    fflush(knot.in);
    if (!fgets(line, sizeof(line), knot.out) || strncmp(line, "OK", 2) != 0)
        fail_msg("zone %s: %s", name, line);
}

/* ---- helpers ---- */

static fake_t *engine(int pending_s, int verified_s)
{
    fake_t *f = fake_new(knot.addr);
    f->cfg->pending_interval_s = pending_s;
    f->cfg->verified_interval_s = verified_s;
    f->cfg->first_request_probe_s = 1;
    return f;
}

static void start(fake_t *f)
{
    char *err = NULL;
    f->c.verify = verify_new(&f->c, &err);
    if (!f->c.verify)
        fail_msg("verify_new: %s", err);
}

static void stop(fake_t *f)
{
    verify_stop(f->c.verify);
    verify_free(f->c.verify);
    f->c.verify = NULL;
    fake_free(f);
}

static const char *field(fake_t *f, const char *host, const char *col)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT %s FROM domains WHERE hostname = '%s' AND removed_at IS NULL", col, host);
    return fake_sql_text(f, sql);
}

/* Runs until host's state is want; returns the milliseconds it took. */
static int64_t wait_state(fake_t *f, const char *host, const char *want, int ms)
{
    int64_t t0 = util_mono_ms(), end = t0 + ms;
    const char *s = NULL;
    while (util_mono_ms() < end) {
        s = field(f, host, "state");
        if (s && strcmp(s, want) == 0)
            return util_mono_ms() - t0;
        fake_run_for(f, 20);
    }
    fail_msg("%s: state %s, expected %s", host, s ? s : "(none)", want);
    return -1;
}

static int64_t count(fake_t *f, const char *sql)
{
    return fake_sql_int(f, sql);
}

#define CUST_BASE                                                                                   \
    "www CNAME edge.hee.la.\n"                                                                      \
    "apex A 192.0.2.10\n"                                                                           \
    "apex AAAA 2001:db8::10\n"                                                                      \
    "_customdomain-challenge.txt TXT \"tok-txt\"\n"                                                 \
    "txt A 198.51.100.20\n"                                                                         \
    "partial A 192.0.2.10\n"                                                                        \
    "partial A 198.51.100.9\n"

/* ---- scenarios ---- */

static void test_methods_and_change(void **state)
{
    (void)state;
    zone("hee.la", "edge A 192.0.2.10");
    zone("cust.test", CUST_BASE);
    fake_t *f = engine(1, 3600);
    int64_t p = fake_project(f, "acme", "{}");
    int64_t cn = fake_project(f, "cnameonly", "{\"verification\":[\"cname\"]}");
    fake_domain(f, p, "www.cust.test", "tok-www");
    fake_domain(f, p, "apex.cust.test", "tok-apex");
    fake_domain(f, p, "txt.cust.test", "tok-txt");
    fake_domain(f, cn, "later.cust.test", "tok-later");
    fake_domain(f, p, "partial.cust.test", "tok-partial");
    fake_domain(f, cn, "apexonly.cust.test", "tok-x"); /* A records are not accepted for this project */
    start(f);
    wait_state(f, "www.cust.test", "verified", 5000);
    wait_state(f, "apex.cust.test", "verified", 5000);
    wait_state(f, "txt.cust.test", "verified", 5000);
    wait_state(f, "partial.cust.test", "verifying", 5000);
    assert_string_equal(field(f, "www.cust.test", "verify_method"), "cname");
    assert_string_equal(field(f, "apex.cust.test", "verify_method"), "a");
    assert_string_equal(field(f, "txt.cust.test", "verify_method"), "txt");
    assert_string_equal(field(f, "later.cust.test", "state"), "pending_ownership");
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE type = 'domain.verified'"), 3);

    /* DNS changes: the pending domain is verified within one interval. Read
     * from the scheduler's plan and its checks rather than our clock, which
     * a loaded machine stretches: pending probes are planned one interval
     * (+-10 %) apart, and the probe that verifies is at the latest the second
     * one after the change (the first may have had its answers already). */
#define LATER_CHECKS "FROM checks c JOIN domains d ON d.id = c.domain_id WHERE d.hostname = 'later.cust.test'"
    int64_t end = util_mono_ms() + 10000;
    while (count(f, "SELECT count(*) " LATER_CHECKS) < 1 && util_mono_ms() < end)
        fake_run_for(f, 20);
    int64_t gap = count(f, "SELECT next_probe_at - last_probe_at FROM domains WHERE hostname = 'later.cust.test'");
    assert_true(gap >= 900 && gap <= 1100);
    zone("cust.test", CUST_BASE "later CNAME edge.hee.la.\napexonly A 192.0.2.10\n");
    int64_t before = count(f, "SELECT max(c.id) " LATER_CHECKS);
    int64_t took = wait_state(f, "later.cust.test", "verified", 10000);
    print_message("  later.cust.test verified %lld ms after the zone change (pending_interval 1 s)\n",
                  (long long)took);
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) " LATER_CHECKS " AND c.id > %lld AND c.id <= "
             "(SELECT min(c.id) " LATER_CHECKS " AND c.verified = 1)", (long long)before);
    int64_t nth = count(f, sql);
    assert_true(nth >= 1 && nth <= 2);
#undef LATER_CHECKS
    fake_run_for(f, 1500);
    assert_string_equal(field(f, "apexonly.cust.test", "state"), "pending_ownership");
    const char *outcome = fake_sql_text(f, "SELECT outcome FROM checks c JOIN domains d ON d.id = c.domain_id "
                                           "WHERE d.hostname = 'apexonly.cust.test' ORDER BY c.id DESC LIMIT 1");
    assert_non_null(outcome); /* the hint is the probe's business (missing or wrong_type) */
    assert_string_not_equal(outcome, "ok");
    stop(f);
}

static void test_drift_and_recovery(void **state)
{
    (void)state;
    zone("drift.test", "www CNAME edge.hee.la.\n");
    fake_t *f = engine(1, 1);
    int64_t p = fake_project(f, "acme", "{}");
    fake_domain(f, p, "www.drift.test", "tok");
    start(f);
    wait_state(f, "www.drift.test", "verified", 5000);
    /* (knot is authoritative only: a target it does not serve would be
     * REFUSED, i.e. inconclusive, and inconclusive never drifts) */
    zone("other.test", "shop A 198.51.100.7\n");
    zone("drift.test", "www CNAME shop.other.test.\n");
    wait_state(f, "www.drift.test", "drifted", 5000);
    assert_string_equal(field(f, "www.drift.test", "verified"), "1");
    assert_non_null(field(f, "www.drift.test", "drifted_at"));
    const char *payload = fake_sql_text(f, "SELECT payload FROM events WHERE type = 'domain.drift'");
    assert_non_null(payload);
    assert_non_null(strstr(payload, "\"hint\":\"wrong_target\""));
    assert_non_null(strstr(payload, "\"verified\":true"));
    zone("drift.test", "www CNAME edge.hee.la.\n");
    wait_state(f, "www.drift.test", "verified", 5000);
    assert_null(field(f, "www.drift.test", "drifted_at"));
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE type = 'domain.monitor_updated' AND "
                              "payload LIKE '%\"reason\":\"dns_restored\"%'"),
                     1);
    /* one event per change, not per probe */
    fake_run_for(f, 2500);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE type = 'domain.drift'"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE type = 'domain.verified'"), 1);
    stop(f);
}

static void test_hint_goes_to_issuer(void **state)
{
    (void)state;
    zone("other.test", "shop A 198.51.100.7\n");
    zone("hint.test", "ok CNAME edge.hee.la.\nbad CNAME shop.other.test.\n");
    fake_t *f = engine(3600, 3600);
    int64_t p = fake_project(f, "acme", "{}");
    fake_domain(f, p, "ok.hint.test", "tok");
    fake_domain(f, p, "bad.hint.test", "tok");
    fake_sql(f, "UPDATE domains SET next_probe_at = NULL"); /* only the hints probe */
    start(f);
    verify_hint(f->c.verify, "ok.hint.test");
    verify_hint(f->c.verify, "ok.hint.test"); /* a second worker asking: joins the same probe */
    verify_hint(f->c.verify, "bad.hint.test");
    int64_t end = util_mono_ms() + 5000;
    while ((f->issuer_wants < 1 || f->cert_failed < 1) && util_mono_ms() < end)
        fake_run_for(f, 20);
    assert_int_equal(f->issuer_wants, 1);
    assert_int_equal(f->cert_failed, 1);
    int k = fake_find(f, "cert_failed", "bad.hint.test");
    assert_true(k >= 0);
    assert_int_equal(f->calls[k].code, VERIFY_FAIL_HINT + 3 /* wrong_target */);
    assert_string_equal(field(f, "ok.hint.test", "state"), "verified");
    /* the commit came first: the edge was told the host changed before the issuer was asked */
    assert_true(fake_find(f, "domain_changed", "ok.hint.test") < fake_find(f, "issuer_want", "ok.hint.test"));
    assert_int_equal(count(f, "SELECT count(*) FROM checks"), 2);
    /* after first_request_probe, a new hint probes again */
    fake_run_for(f, 1100);
    verify_hint(f->c.verify, "bad.hint.test");
    end = util_mono_ms() + 5000;
    while (f->cert_failed < 2 && util_mono_ms() < end)
        fake_run_for(f, 20);
    assert_int_equal(count(f, "SELECT count(*) FROM checks"), 3);
    stop(f);
}

/* ---- bench ---- */

static long rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static int bench(long n, int concurrency, int max_s)
{
    log_setup(LOG_WARN, 2, -1);
    zone("hee.la", "edge A 192.0.2.10");
    zone("bench.test", "*.bench.test. CNAME edge.hee.la.\n@ CAA 0 issue \"letsencrypt.org\"");
    fake_t *f = engine(300, 86400);
    f->cfg->probe_concurrency = concurrency;
    f->cfg->dns_timeout_ms = 2000; /* the defaults: a loaded machine must not turn into timeouts */
    f->cfg->dns_attempts = 3;
    int64_t p = fake_project(f, "bench", "{}");
    int64_t t0 = util_mono_ms();
    char sql[512];
    /* One statement: a million rows in seconds rather than minutes. */
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x + 1 < %ld) "
             "INSERT INTO domains (hostname, project_id, state, challenge, created_at, updated_at, next_probe_at) "
             "SELECT 'b' || x || '.bench.test', %lld, 'pending_ownership', 'tok' || x, 1, 1, 1 FROM i",
             n, (long long)p);
    fake_sql(f, sql);
    long rss0 = rss_kb();
    printf("seeded %ld domains in %lld ms; knot at %s; concurrency %d\n", n, (long long)(util_mono_ms() - t0),
           knot.addr, f->cfg->probe_concurrency);
    start(f);
    t0 = util_mono_ms();
    int64_t c0 = cpu_ms();
    int64_t end = t0 + (int64_t)max_s * 1000, last = t0;
    int64_t checked = 0;
    verify_stats_t st;
    while (util_mono_ms() < end) {
        fake_run_for(f, 200);
        verify_stats(f->c.verify, &st);
        if ((int64_t)st.recorded >= n)
            break;
        if (util_mono_ms() - last >= 2000) {
            last = util_mono_ms();
            printf("  %.1fs: %llu recorded, %zu jobs\n", (last - t0) / 1000.0, (unsigned long long)st.recorded,
                   st.jobs);
        }
    }
    int64_t ms = util_mono_ms() - t0, cpu = cpu_ms() - c0;
    verify_stats(f->c.verify, &st);
    checked = count(f, "SELECT count(*) FROM domains WHERE last_probe_at IS NOT NULL");
    int64_t verified = count(f, "SELECT count(*) FROM domains WHERE verified = 1");
    printf("cpu %lld ms in this process (%.0f probes per cpu-second)\n", (long long)cpu,
           st.recorded * 1000.0 / (cpu ? cpu : 1));
    printf("checked %lld/%ld domains in %lld ms: %.0f probes/s; verified %lld; commits %llu "
           "(%.0f results each); peak jobs %zu; scheduler memory at peak ~%zu KiB; max RSS %ld KiB "
           "(%ld KiB after seeding)\n",
           (long long)checked, n, (long long)ms, st.recorded * 1000.0 / (ms ? ms : 1), (long long)verified,
           (unsigned long long)st.flushes, st.flushes ? (double)st.recorded / st.flushes : 0.0, st.jobs_peak,
           st.mem_bytes / 1024, rss_kb(), rss0);
    int64_t bytes = count(f, "SELECT sum(pgsize) FROM dbstat WHERE name IN ('checks', 'checks_domain')");
    int64_t rows = count(f, "SELECT count(*) FROM checks");
    if (bytes > 0 && rows > 0)
        printf("checks: %lld rows, %lld bytes with their index (%.0f bytes per check)\n", (long long)rows,
               (long long)bytes, (double)bytes / rows);
    stop(f);
    return checked == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (system("command -v knotd >/dev/null 2>&1 && command -v knotc >/dev/null 2>&1") != 0) {
        printf("knotd not installed: skipped\n");
        return 77;
    }
    if (knot_start() != 0) {
        fprintf(stderr, "cannot start knot via dnsserver.py\n");
        knot_stop();
        return 1;
    }
    int rc;
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        rc = bench(argc > 2 ? atol(argv[2]) : 20000, argc > 3 ? atoi(argv[3]) : 256, argc > 4 ? atoi(argv[4]) : 600);
    } else {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_methods_and_change),
            cmocka_unit_test(test_drift_and_recovery),
            cmocka_unit_test(test_hint_goes_to_issuer),
        };
        rc = cmocka_run_group_tests(tests, NULL, NULL);
    }
    knot_stop();
    return rc;
}
