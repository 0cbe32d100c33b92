/* test_hooks_store: the webhook SQL in common/store_hook.c against a real
 * SQLite file — endpoint life, the due walk, per-domain order (blocked,
 * park, unpark on completion), disable/enable replays, redeliver, recover,
 * retention and event listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/store.h"
#include "common/store_event.h"
#include "common/store_hook.h"
#include "common/util.h"

struct fx {
    char dir[64];
    store_t *s;
    int64_t project, other, dom_a, dom_b;
};

static void exec_sql(store_t *s, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(store_db(s), sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("sql failed: %s: %s", sql, err);
}

__attribute__((format(printf, 2, 3))) static int64_t q64(store_t *s, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/hee-hooks-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128], *err = NULL;
    snprintf(path, sizeof(path), "%s/hee.db", f->dir);
    f->s = store_open(path, STORE_RW, &err);
    assert_non_null(f->s);
    exec_sql(f->s, "INSERT INTO projects (slug, upstream, hmac_key, created_at, updated_at) "
                   "VALUES ('acme', 'http://127.0.0.1:1', x'00', 1, 1), ('other', 'http://127.0.0.1:1', x'00', 1, 1);"
                   "INSERT INTO domains (hostname, project_id, challenge, created_at, updated_at) "
                   "VALUES ('a.example', 1, 'c', 1, 1), ('b.example', 1, 'c', 1, 1);");
    f->project = 1;
    f->other = 2;
    f->dom_a = 1;
    f->dom_b = 2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    store_close(f->s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void add_endpoint(struct fx *f, const char *id, int64_t project, const char *events, int ordered)
{
    store_hook_endpoint_t e = { .id = (char *)id, .project_id = project, .url = "https://example.com/hook",
                                .secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", .events = (char *)events,
                                .description = "d", .ordered = ordered, .created_at = 1 };
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_endpoint_insert(f->s, &e), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
}

static char *emit(struct fx *f, int64_t project, int64_t domain, const char *type)
{
    char *id = NULL;
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_event_emit(f->s, project, domain, type, "{\"x\":1}", &id), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    return id;
}

static int64_t delivery_of(struct fx *f, const char *event, const char *endpoint)
{
    return q64(f->s, "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
                     "WHERE e.public_id = '%s' AND d.endpoint_id = '%s'", event, endpoint);
}

static void record(struct fx *f, int64_t delivery, enum store_hook_outcome o, int64_t next_at)
{
    int64_t window = q64(f->s, "SELECT created_at FROM deliveries WHERE id = %lld", (long long)delivery);
    store_hook_attempt_t a = { .delivery_id = delivery, .window_start = window, .at = util_now_ms(), .status_code = o == STORE_HOOK_SUCCEEDED ? 200 : 500,
                               .latency_ms = 3, .error = o == STORE_HOOK_SUCCEEDED ? NULL : "HTTP 500",
                               .response = "ok" };
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_record(f->s, &a, o, next_at), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
}

static void test_endpoint_life(void **state)
{
    struct fx *f = *state;
    store_hook_endpoint_t e;
    add_endpoint(f, "whe_1", f->project, "[]", 1);
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_1", f->project, &e), STORE_OK);
    assert_string_equal(e.project_slug, "acme");
    assert_string_equal(e.events, "[]");
    assert_int_equal(e.ordered, 1);
    assert_null(e.old_secret);
    store_hook_endpoint_clear(&e);
    /* Another project's endpoint is invisible. */
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_1", f->other, &e), STORE_NOTFOUND);

    assert_int_equal(store_hook_endpoint_set_secrets(f->s, "whe_1", "whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
                                                     "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 5000, 10),
                     STORE_OK);
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_1", 0, &e), STORE_OK);
    assert_string_equal(e.old_secret, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(e.old_secret_until, 5000);
    free(e.events);
    e.events = strdup("[\"domain.created\"]");
    assert_int_equal(store_hook_endpoint_update(f->s, &e, 20), STORE_OK);
    store_hook_endpoint_clear(&e);

    char *ev = emit(f, f->project, f->dom_a, "domain.created");
    char *ev2 = emit(f, f->project, f->dom_a, "domain.deleted"); /* filtered out */
    assert_true(delivery_of(f, ev, "whe_1") > 0);
    assert_int_equal(delivery_of(f, ev2, "whe_1"), -1);

    assert_int_equal(store_hook_endpoint_delete(f->s, "whe_1", 30), STORE_OK);
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_1", 0, &e), STORE_NOTFOUND);
    assert_int_equal(q64(f->s, "SELECT count(*) FROM deliveries WHERE status = 'cancelled'"), 1);
    assert_int_equal(q64(f->s, "SELECT length(secret) FROM webhook_endpoints WHERE id = 'whe_1'"), 0);
    free(ev);
    free(ev2);
}

struct order_acc {
    int n;
    int64_t ids[16], domains[16];
};

static int order_cb(const char *ep, int64_t domain_id, int64_t id, int64_t next_at, int disabled, void *arg)
{
    struct order_acc *a = arg;
    a->domains[a->n] = domain_id;
    a->ids[a->n++] = id;
    return a->n == 16;
}

static void test_due_walk_and_order(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_o", f->project, "[]", 1);
    char *a1 = emit(f, f->project, f->dom_a, "domain.created");
    char *b1 = emit(f, f->project, f->dom_b, "domain.created");
    char *a2 = emit(f, f->project, f->dom_a, "domain.verified");
    int64_t now = util_now_ms() + 10;
    store_hook_due_t rows[8];
    int n = 0;
    assert_int_equal(store_hook_due_batch(f->s, now, INT64_MIN, INT64_MIN, rows, 8, &n), STORE_OK);
    assert_int_equal(n, 3);
    /* Cursor: resuming after the first row returns the other two. */
    int m = 0;
    store_hook_due_t more[8];
    assert_int_equal(store_hook_due_batch(f->s, now, rows[0].next_attempt_at, rows[0].id, more, 8, &m), STORE_OK);
    assert_int_equal(m, 2);
    assert_int_equal(more[0].id, rows[1].id);

    int64_t d_a1 = delivery_of(f, a1, "whe_o"), d_a2 = delivery_of(f, a2, "whe_o"), d_b1 = delivery_of(f, b1, "whe_o");
    /* The per-domain queues, in (endpoint, domain, id) order. */
    struct order_acc acc = { 0 };
    assert_int_equal(store_hook_pending_order(f->s, order_cb, &acc), STORE_OK);
    assert_int_equal(acc.n, 3);
    assert_int_equal(acc.ids[0], d_a1);
    assert_int_equal(acc.ids[1], d_a2);
    assert_int_equal(acc.ids[2], d_b1);
    assert_int_equal(acc.domains[0], f->dom_a);
    assert_int_equal(acc.domains[2], f->dom_b);

    /* a2 waits; a1 fails once (still pending: a2 stays parked), then succeeds. */
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_park(f->s, d_a2), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d_a2),
                     STORE_HOOK_PARKED);
    assert_int_equal(store_hook_due_batch(f->s, now, INT64_MIN, INT64_MIN, rows, 8, &n), STORE_OK);
    assert_int_equal(n, 2);
    record(f, d_a1, STORE_HOOK_RETRY, now + 60000);
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d_a2),
                     STORE_HOOK_PARKED);
    int64_t next = 0;
    assert_int_equal(store_hook_next_due(f->s, now, &next), STORE_OK);
    assert_int_equal(next, now + 60000);
    record(f, d_a1, STORE_HOOK_SUCCEEDED, 0);
    assert_int_equal(q64(f->s, "SELECT attempts FROM deliveries WHERE id = %lld", (long long)d_a1), 2);
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_unpark_id(f->s, d_a2, 1234), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d_a2), 1234);
    assert_int_equal(q64(f->s, "SELECT count(*) FROM attempts"), 2);
    memset(&acc, 0, sizeof(acc));
    assert_int_equal(store_hook_pending_order(f->s, order_cb, &acc), STORE_OK);
    assert_int_equal(acc.n, 2);

    /* The message for a delivery carries the exact payload. */
    store_hook_message_t msg;
    assert_int_equal(store_hook_message(f->s, d_a2, now, &msg), STORE_OK);
    assert_string_equal(msg.public_id, a2);
    assert_non_null(strstr(msg.payload, "\"sequence\":2"));
    assert_int_equal(msg.payload_len, strlen(msg.payload));
    assert_null(msg.old_secret);
    store_hook_message_clear(&msg);
    free(a1);
    free(a2);
    free(b1);
}

static void test_disable_enable_replays(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_d", f->project, "[\"domain.created\",\"domain.deleted\"]", 1);
    char *e1 = emit(f, f->project, f->dom_a, "domain.created");
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_endpoint_disable(f->s, "whe_d", "gone", util_now_ms()), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    int64_t d1 = delivery_of(f, e1, "whe_d");
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d1),
                     STORE_HOOK_PARKED);
    /* Events while disabled get no delivery row… */
    char *e2 = emit(f, f->project, f->dom_a, "domain.deleted");
    char *e3 = emit(f, f->project, f->dom_b, "domain.verified"); /* not subscribed */
    assert_int_equal(delivery_of(f, e2, "whe_d"), -1);
    /* …a failure recorded meanwhile parks instead of rescheduling. */
    record(f, d1, STORE_HOOK_RETRY, util_now_ms() + 5);
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d1),
                     STORE_HOOK_PARKED);
    /* Enabling replays exactly the missed ones: the parked e1 and the new e2. */
    int64_t replayed = 0, now = util_now_ms();
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_endpoint_enable(f->s, "whe_d", 0, now, &replayed), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(replayed, 2);
    assert_true(delivery_of(f, e2, "whe_d") > d1);
    assert_int_equal(delivery_of(f, e3, "whe_d"), -1);
    assert_int_equal(q64(f->s, "SELECT attempts FROM deliveries WHERE id = %lld", (long long)d1), 0);
    assert_int_equal(q64(f->s, "SELECT created_at FROM deliveries WHERE id = %lld", (long long)d1), now);
    store_hook_endpoint_t e;
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_d", 0, &e), STORE_OK);
    assert_int_equal(e.disabled, 0);
    assert_null(e.disabled_reason);
    store_hook_endpoint_clear(&e);
    /* Enabling again replays nothing new. */
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_endpoint_enable(f->s, "whe_d", 0, now, &replayed), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(replayed, 2); /* the same two, still pending */
    assert_int_equal(q64(f->s, "SELECT count(*) FROM deliveries WHERE endpoint_id = 'whe_d'"), 2);
    free(e1);
    free(e2);
    free(e3);
}

static void test_failing_bookkeeping(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_f", f->project, "[]", 1);
    int64_t since = 0, warned = 0;
    int disabled = -1;
    assert_int_equal(store_hook_endpoint_failing(f->s, "whe_f", 100, &since, &warned, &disabled), STORE_OK);
    assert_int_equal(since, 100);
    assert_int_equal(store_hook_endpoint_failing(f->s, "whe_f", 200, &since, &warned, &disabled), STORE_OK);
    assert_int_equal(since, 100);
    assert_int_equal(warned, 0);
    assert_int_equal(store_hook_endpoint_warned(f->s, "whe_f", 150), STORE_OK);
    assert_int_equal(store_hook_endpoint_failing(f->s, "whe_f", 300, &since, &warned, &disabled), STORE_OK);
    assert_int_equal(warned, 150);
    assert_int_equal(disabled, 0);
    assert_int_equal(store_hook_endpoint_healthy(f->s, "whe_f"), STORE_OK);
    assert_int_equal(store_hook_endpoint_failing(f->s, "whe_f", 400, &since, &warned, &disabled), STORE_OK);
    assert_int_equal(since, 400);
    assert_int_equal(warned, 0);
}

static void test_redeliver_recover(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_r1", f->project, "[]", 1);
    add_endpoint(f, "whe_r2", f->project, "[\"domain.deleted\"]", 1);
    char *e1 = emit(f, f->project, f->dom_a, "domain.created");
    int64_t d1 = delivery_of(f, e1, "whe_r1");
    record(f, d1, STORE_HOOK_DEAD, 0);
    store_hook_event_t ev;
    assert_int_equal(store_hook_event_get(f->s, e1, &ev), STORE_OK);
    assert_int_equal(ev.domain_id, f->dom_a);
    int64_t n = 0;
    /* All subscribed endpoints: only whe_r1 takes domain.created. */
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_redeliver(f->s, &ev, NULL, util_now_ms(), &n), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(q64(f->s, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'pending' AND attempts = 0",
                         (long long)d1),
                     1);
    /* Requeued while a request was on the wire: the old attempt's success
     * is logged but does not swallow the redelivery. */
    int64_t old_window = q64(f->s, "SELECT created_at FROM deliveries WHERE id = %lld", (long long)d1);
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_redeliver(f->s, &ev, "whe_r1", old_window + 7, &n), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    store_hook_attempt_t late = { .delivery_id = d1, .window_start = old_window, .at = util_now_ms(), .status_code = 200 };
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_record(f->s, &late, STORE_HOOK_SUCCEEDED, 0), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(q64(f->s, "SELECT count(*) FROM deliveries WHERE id = %lld AND status = 'pending' AND attempts = 0",
                         (long long)d1),
                     1);
    /* Explicitly to whe_r2, filter or not. */
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_redeliver(f->s, &ev, "whe_r2", util_now_ms(), &n), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(n, 1);
    assert_true(delivery_of(f, e1, "whe_r2") > 0);

    /* Recover: a dead delivery inside the window comes back; outside it does not. */
    record(f, d1, STORE_HOOK_DEAD, 0);
    store_hook_endpoint_t e;
    assert_int_equal(store_hook_endpoint_get(f->s, "whe_r1", 0, &e), STORE_OK);
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_recover(f->s, &e, ev.created_at + 1, util_now_ms() + 1, util_now_ms(), &n), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_recover(f->s, &e, ev.created_at, util_now_ms() + 1, util_now_ms(), &n), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(n, 1);
    store_hook_endpoint_clear(&e);
    store_hook_event_clear(&ev);
    free(e1);
}

struct list_acc {
    int n;
    char types[8][32];
};

static int list_cb(const store_hook_event_t *e, void *arg)
{
    struct list_acc *a = arg;
    snprintf(a->types[a->n++], 32, "%s", e->type);
    return a->n == 8;
}

static void test_event_list_and_purge(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_p", f->project, "[]", 1);
    char *e1 = emit(f, f->project, f->dom_a, "domain.created");
    char *e2 = emit(f, f->project, f->dom_a, "domain.deleted");
    char *e3 = emit(f, f->other, 0, "domain.created");
    struct list_acc acc = { 0 };
    assert_int_equal(store_hook_event_list(f->s, f->project, 0, 0, NULL, 10, list_cb, &acc), STORE_OK);
    assert_int_equal(acc.n, 2);
    memset(&acc, 0, sizeof(acc));
    assert_int_equal(store_hook_event_list(f->s, f->project, 0, 0, "[\"domain.deleted\"]", 10, list_cb, &acc),
                     STORE_OK);
    assert_int_equal(acc.n, 1);
    assert_string_equal(acc.types[0], "domain.deleted");
    memset(&acc, 0, sizeof(acc));
    assert_int_equal(store_hook_event_list(f->s, 0, 0, 0, NULL, 10, list_cb, &acc), STORE_OK);
    assert_int_equal(acc.n, 3);

    record(f, delivery_of(f, e1, "whe_p"), STORE_HOOK_SUCCEEDED, 0);
    /* Age everything but e3, then purge in batches of one. */
    exec_sql(f->s, "UPDATE events SET created_at = 10 WHERE project_id = 1; UPDATE attempts SET at = 10;");
    int deleted = 0, total = 0;
    do {
        assert_int_equal(store_hook_purge(f->s, 1000, 1, &deleted), STORE_OK);
        total += deleted;
    } while (deleted > 0);
    assert_int_equal(total, 3); /* one attempt, two events */
    assert_int_equal(q64(f->s, "SELECT count(*) FROM events"), 1);
    assert_int_equal(q64(f->s, "SELECT count(*) FROM deliveries"), 0); /* e3's project has no endpoint */
    free(e1);
    free(e2);
    free(e3);
}

static void test_unpark_sweep(void **state)
{
    struct fx *f = *state;
    add_endpoint(f, "whe_u", f->project, "[]", 0);
    char *e1 = emit(f, f->project, f->dom_a, "domain.created");
    int64_t d1 = delivery_of(f, e1, "whe_u");
    assert_int_equal(store_begin(f->s), STORE_OK);
    assert_int_equal(store_hook_park(f->s, d1), STORE_OK);
    assert_int_equal(store_commit(f->s), STORE_OK);
    assert_int_equal(store_hook_unpark_unordered(f->s, 77), STORE_OK);
    assert_int_equal(q64(f->s, "SELECT next_attempt_at FROM deliveries WHERE id = %lld", (long long)d1), 77);
    free(e1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endpoint_life, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_walk_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_enable_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_bookkeeping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redeliver_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_list_and_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpark_sweep, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
