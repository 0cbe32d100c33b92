/* Tests the API's store modules (store_project, store_token, store_domain,
 * store_event, store_audit, store_usage) and domainobj on a scratch file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/domainobj.h"
#include "common/store.h"
#include "common/store_audit.h"
#include "common/store_domain.h"
#include "common/store_event.h"
#include "common/store_project.h"
#include "common/store_token.h"
#include "common/store_usage.h"
#include "common/util.h"

struct fx {
    char dir[64];
    char path[96];
    store_t *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store_api.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/hee.db", f->dir);
    char *err = NULL;
    f->s = store_open(f->path, STORE_RW, &err);
    if (!f->s) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char buf[160];
    store_close(f->s);
    const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof(buf), "%s%s", f->path, suffix[i]);
        unlink(buf);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t mkproject(store_t *s, const char *slug, int64_t max)
{
    store_project_t p = { .slug = (char *)slug, .upstream = (char *)"http://127.0.0.1:1", .max_domains = max,
                          .settings = (char *)"{}" };
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_project_create(s, &p, 1000), STORE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    return p.id;
}

static int64_t mkdomain(store_t *s, const char *host, int64_t pid, const char *meta)
{
    store_domain_t d = { .hostname = (char *)host, .project_id = pid, .challenge = (char *)"chal",
                         .metadata = (char *)meta, .created_at = 2000 };
    assert_int_equal(store_begin(s), STORE_OK);
    int rc = store_domain_insert(s, &d);
    if (rc != STORE_OK) {
        store_rollback(s);
        return rc;
    }
    assert_int_equal(store_commit(s), STORE_OK);
    return d.id;
}

static void test_projects(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t id = mkproject(s, "acme", 50);
    assert_true(id > 0);
    store_project_t p;
    assert_int_equal(store_project_by_slug(s, "acme", &p), STORE_OK);
    assert_int_equal(p.id, id);
    assert_string_equal(p.upstream, "http://127.0.0.1:1");
    assert_null(p.upstream_fallback);
    assert_int_equal(p.max_domains, 50);
    unsigned char zero[STORE_PROJECT_KEY_LEN] = { 0 };
    assert_memory_not_equal(p.hmac_key, zero, sizeof(zero));
    /* update */
    free(p.upstream);
    p.upstream = strdup("https://x.example");
    p.upstream_fallback = strdup("http://y.example");
    p.max_domains = 7;
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_project_update(s, &p, 5000), STORE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    store_project_clear(&p);
    assert_int_equal(store_project_get(s, id, &p), STORE_OK);
    assert_string_equal(p.upstream_fallback, "http://y.example");
    assert_int_equal(p.max_domains, 7);
    assert_int_equal(p.updated_at, 5000);
    store_project_clear(&p);
    /* slug conflict, even after delete */
    store_project_t dup = { .slug = (char *)"acme", .upstream = (char *)"http://z", .settings = (char *)"{}" };
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_project_create(s, &dup, 1), STORE_CONFLICT);
    assert_int_equal(store_project_delete(s, id, 6000), STORE_OK);
    assert_int_equal(store_project_delete(s, id, 6000), STORE_NOTFOUND);
    assert_int_equal(store_project_create(s, &dup, 1), STORE_CONFLICT);
    store_rollback(s);
}

static int count_cb(const store_project_t *p, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_project_list(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    mkproject(s, "a", 1);
    int64_t b = mkproject(s, "b", 1);
    mkproject(s, "c", 1);
    int n = 0;
    assert_int_equal(store_project_list(s, 0, 100, count_cb, &n), STORE_OK);
    assert_int_equal(n, 3);
    n = 0;
    assert_int_equal(store_project_list(s, b, 100, count_cb, &n), STORE_OK);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(store_project_list(s, 0, 2, count_cb, &n), STORE_OK);
    assert_int_equal(n, 2);
}

static void test_tokens(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t pid = mkproject(s, "acme", 5);
    store_token_t t = { .id = (char *)"tok_1", .project_id = pid, .scopes = (char *)"connections:read",
                        .name = (char *)"n", .created_at = 10 };
    store_token_t op = { .id = (char *)"tok_op", .project_id = 0, .scopes = (char *)"apps:admin",
                         .name = (char *)"", .created_at = 11 };
    assert_int_equal(crypto_sha256("secret", 6, t.hash), 0);
    assert_int_equal(crypto_sha256("opsecret", 8, op.hash), 0);
    int64_t n = -1;
    assert_int_equal(store_token_count_operator(s, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_token_create(s, &t), STORE_OK);
    assert_int_equal(store_token_create(s, &op), STORE_OK);
    assert_int_equal(store_token_create(s, &op), STORE_CONFLICT);
    assert_int_equal(store_commit(s), STORE_OK);
    assert_int_equal(store_token_count_operator(s, &n), STORE_OK);
    assert_int_equal(n, 1);
    store_token_t got;
    assert_int_equal(store_token_by_hash(s, t.hash, &got), STORE_OK);
    assert_string_equal(got.id, "tok_1");
    assert_string_equal(got.project_slug, "acme");
    assert_int_equal(got.revoked_at, 0);
    store_token_clear(&got);
    assert_int_equal(store_token_by_hash(s, op.hash, &got), STORE_OK);
    assert_null(got.project_slug);
    assert_int_equal(got.project_id, 0);
    store_token_clear(&got);
    unsigned char other[32] = { 1 };
    assert_int_equal(store_token_by_hash(s, other, &got), STORE_NOTFOUND);
    assert_int_equal(store_token_touch(s, "tok_1", 500), STORE_OK);
    assert_int_equal(store_token_touch(s, "tok_1", 400), STORE_OK); /* never goes back */
    assert_int_equal(store_token_get(s, "tok_1", &got), STORE_OK);
    assert_int_equal(got.last_used_at, 500);
    store_token_clear(&got);
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_token_revoke(s, "tok_1", 900), STORE_OK);
    assert_int_equal(store_token_revoke(s, "tok_1", 901), STORE_NOTFOUND);
    assert_int_equal(store_commit(s), STORE_OK);
    assert_int_equal(store_token_by_hash(s, t.hash, &got), STORE_OK);
    assert_int_equal(got.revoked_at, 900);
    store_token_clear(&got);
}

static void test_domains(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 5), b = mkproject(s, "b", 5);
    int64_t d1 = mkdomain(s, "x.example.com", a, "{ \"k\" : 1 }");
    assert_true(d1 > 0);
    assert_int_equal(mkdomain(s, "x.example.com", b, "{}"), STORE_CONFLICT);
    assert_int_equal(mkdomain(s, "x.example.com", a, "{}"), STORE_CONFLICT);
    store_domain_t d;
    assert_int_equal(store_domain_active(s, "x.example.com", &d), STORE_OK);
    assert_string_equal(d.project_slug, "a");
    assert_string_equal(d.state, "pending_ownership");
    assert_string_equal(d.metadata, "{ \"k\" : 1 }");
    assert_string_equal(d.cert_status, "none");
    assert_int_equal(d.cert_not_after, 0);
    assert_null(d.cert_issuer);
    store_domain_clear(&d);
    int64_t n = 0;
    assert_int_equal(store_domain_count_active(s, a, &n), STORE_OK);
    assert_int_equal(n, 1);
    /* metadata replace, removal, re-registration */
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_domain_set_metadata(s, d1, "{\"n\":2}", 7, 3000), STORE_OK);
    assert_int_equal(store_domain_remove(s, d1, 4000), STORE_OK);
    assert_int_equal(store_domain_remove(s, d1, 4000), STORE_NOTFOUND);
    assert_int_equal(store_domain_set_metadata(s, d1, "{}", 2, 3000), STORE_NOTFOUND);
    assert_int_equal(store_commit(s), STORE_OK);
    assert_int_equal(store_domain_count_active(s, a, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_domain_active(s, "x.example.com", &d), STORE_NOTFOUND);
    int64_t d2 = mkdomain(s, "x.example.com", b, "{}");
    assert_true(d2 > d1);
    assert_int_equal(store_domain_latest(s, "x.example.com", a, &d), STORE_OK);
    assert_int_equal(d.id, d1);
    assert_int_equal(d.removed_at, 4000);
    assert_string_equal(d.metadata, "{\"n\":2}");
    store_domain_clear(&d);
    assert_int_equal(store_domain_latest(s, "x.example.com", 0, &d), STORE_OK);
    assert_int_equal(d.id, d2);
    store_domain_clear(&d);
    assert_int_equal(store_domain_count_active(s, b, &n), STORE_OK);
    assert_int_equal(n, 1);
}

struct collect {
    int n;
    int64_t ids[16];
};

static int collect_cb(const store_domain_t *d, void *arg)
{
    struct collect *c = arg;
    c->ids[c->n++] = d->id;
    return 0;
}

static void test_domain_list(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 50), b = mkproject(s, "b", 50);
    int64_t ids[6];
    for (int i = 0; i < 6; i++) {
        char host[32];
        snprintf(host, sizeof(host), "h%d.example.com", i);
        ids[i] = mkdomain(s, host, i % 2 ? b : a, "{}");
    }
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_domain_remove(s, ids[2], 10), STORE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    struct collect c = { 0 };
    store_domain_filter_t f = { .project_id = a, .verified = -1, .limit = 10 };
    assert_int_equal(store_domain_list(s, &f, collect_cb, &c), STORE_OK);
    assert_int_equal(c.n, 2); /* h0, h4 (h2 removed) */
    assert_int_equal(c.ids[0], ids[0]);
    assert_int_equal(c.ids[1], ids[4]);
    f.include_removed = 1;
    c.n = 0;
    assert_int_equal(store_domain_list(s, &f, collect_cb, &c), STORE_OK);
    assert_int_equal(c.n, 3);
    store_domain_filter_t all = { .verified = -1, .limit = 2, .after_id = ids[1] };
    c.n = 0;
    assert_int_equal(store_domain_list(s, &all, collect_cb, &c), STORE_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ids[0], ids[3]);
    store_domain_filter_t st = { .verified = 1, .limit = 10 };
    c.n = 0;
    assert_int_equal(store_domain_list(s, &st, collect_cb, &c), STORE_OK);
    assert_int_equal(c.n, 0);
    store_domain_filter_t bystate = { .verified = -1, .limit = 10, .state = "pending_ownership" };
    c.n = 0;
    assert_int_equal(store_domain_list(s, &bystate, collect_cb, &c), STORE_OK);
    assert_int_equal(c.n, 5);
}

static void on_resolve(const store_resolve_t *r, void *arg)
{
    char *out = arg;
    snprintf(out, 128, "%.*s|%d|%.*s|%.*s", (int)r->project_slug_len, r->project_slug, r->verified, (int)r->state_len,
             r->state, (int)r->metadata_len, r->metadata);
}

static void test_resolve(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 5);
    mkdomain(s, "r.example.com", a, "{ \"m\":[1, 2] }");
    char out[128] = "";
    assert_int_equal(store_domain_resolve(s, "r.example.com", on_resolve, out), STORE_OK);
    assert_string_equal(out, "a|0|pending_ownership|{ \"m\":[1, 2] }");
    assert_int_equal(store_domain_resolve(s, "none.example.com", on_resolve, out), STORE_NOTFOUND);
}

static int64_t count_active(store_t *s, const char *host)
{
    store_domain_t d;
    int rc = store_domain_active(s, host, &d);
    store_domain_clear(&d);
    return rc == STORE_OK;
}

/* A batch keeps the units that succeeded and drops the one undone. */
static void test_savepoints(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 5);
    store_domain_t d1 = { .hostname = (char *)"s1.example.com", .project_id = a, .challenge = (char *)"c",
                          .metadata = (char *)"{}", .created_at = 1 };
    store_domain_t d2 = d1, d3 = d1, dup = d1;
    d2.hostname = (char *)"s2.example.com";
    d3.hostname = (char *)"s3.example.com";
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_savepoint(s), STORE_OK);
    assert_int_equal(store_domain_insert(s, &d1), STORE_OK);
    assert_int_equal(store_savepoint_release(s), STORE_OK);
    assert_int_equal(store_savepoint(s), STORE_OK);
    assert_int_equal(store_domain_insert(s, &d2), STORE_OK);
    store_savepoint_undo(s);
    assert_int_equal(store_savepoint(s), STORE_OK);
    assert_int_equal(store_domain_insert(s, &dup), STORE_CONFLICT); /* the batch's own s1 */
    store_savepoint_undo(s);
    assert_int_equal(store_savepoint(s), STORE_OK);
    assert_int_equal(store_domain_insert(s, &d3), STORE_OK);
    assert_int_equal(store_savepoint_release(s), STORE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    assert_true(count_active(s, "s1.example.com"));
    assert_false(count_active(s, "s2.example.com"));
    assert_true(count_active(s, "s3.example.com"));
    int64_t n = 0;
    assert_int_equal(store_domain_count_active(s, a, &n), STORE_OK);
    assert_int_equal(n, 2); /* the trigger's count was undone with the row */
}

/* The pin changes no result: statements on the read-write handle see every
 * commit while it is held; a commit drops it; a checkpoint then finishes. */
static void test_pin(void **state)
{
    struct fx *f = *state;
    store_t *s = f->s;
    char *err = NULL;
    int64_t a = mkproject(s, "a", 5);
    mkdomain(s, "p1.example.com", a, "{}");
    store_pin_t *p = store_pin_new(s, f->path, &err);
    assert_non_null(p);
    store_pin_hold(p);
    assert_true(store_pin_held(p));
    store_pin_hold(p); /* idempotent */
    assert_true(count_active(s, "p1.example.com"));
    mkdomain(s, "p2.example.com", a, "{}");
    assert_false(store_pin_held(p)); /* released by the commit */
    store_pin_hold(p);
    assert_true(count_active(s, "p2.example.com"));
    store_pin_release(p);
    assert_int_equal(store_checkpoint(s), STORE_OK);
    store_pin_hold(p);
    store_pin_free(p);
    assert_int_equal(store_checkpoint(s), STORE_OK);
}

/* Lookups on the pin's own handle see the snapshot of its read transaction:
 * every commit on the read-write handle drops the pin, so after taking it
 * again they see that commit; without the pin they see the latest state. */
static void test_pin_reads(void **state)
{
    struct fx *f = *state;
    store_t *s = f->s;
    char *err = NULL, out[128] = "";
    int64_t a = mkproject(s, "a", 5);
    store_pin_t *p = store_pin_new(s, f->path, &err);
    assert_non_null(p);
    store_t *ro = store_pin_store(p);
    assert_non_null(ro);
    assert_int_equal(store_tune_reads(ro, 1 << 20), STORE_OK);
    store_pin_hold(p);
    assert_int_equal(store_domain_resolve(ro, "q.example.com", on_resolve, out), STORE_NOTFOUND);
    mkdomain(s, "q.example.com", a, "{\"v\":1}");
    assert_false(store_pin_held(p));
    assert_int_equal(store_domain_resolve(ro, "q.example.com", on_resolve, out), STORE_OK); /* unpinned: latest */
    assert_string_equal(out, "a|0|pending_ownership|{\"v\":1}");
    store_pin_hold(p);
    out[0] = '\0';
    assert_int_equal(store_domain_resolve(ro, "q.example.com", on_resolve, out), STORE_OK);
    assert_string_equal(out, "a|0|pending_ownership|{\"v\":1}");
    /* another connection's commit (the CLI's) shows once the pin is renewed */
    store_t *other = store_open(f->path, STORE_RW, &err);
    assert_non_null(other);
    mkdomain(other, "cli.example.com", a, "{}");
    assert_true(store_pin_held(p));
    assert_int_equal(store_domain_resolve(ro, "cli.example.com", on_resolve, out), STORE_NOTFOUND);
    store_pin_release(p);
    store_pin_hold(p);
    assert_int_equal(store_domain_resolve(ro, "cli.example.com", on_resolve, out), STORE_OK);
    store_close(other);
    store_pin_free(p);
    assert_int_equal(store_checkpoint(s), STORE_OK);
}

static void test_events(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 5);
    int64_t d = mkdomain(s, "e.example.com", a, "{}");
    sqlite3 *db = store_db(s);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO webhook_endpoints (id, project_id, url, secret, events, disabled, "
                                  "created_at, updated_at) VALUES "
                                  "('whe_all', 1, 'https://h', 's', '[]', 0, 1, 1),"
                                  "('whe_c', 1, 'https://h', 's', '[\"domain.created\"]', 0, 1, 1),"
                                  "('whe_v', 1, 'https://h', 's', '[\"domain.verified\"]', 0, 1, 1),"
                                  "('whe_off', 1, 'https://h', 's', '[]', 1, 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    char *pub = NULL;
    assert_int_equal(store_event_emit(s, a, d, "domain.created", "{\"x\":1}", &pub), STORE_ERR); /* no tx */
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_event_emit(s, a, d, "domain.created", "{\"x\": 1}", &pub), STORE_OK);
    assert_int_equal(store_event_emit(s, a, d, "domain.deleted", "{}", NULL), STORE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    assert_non_null(pub);
    assert_int_equal(strncmp(pub, "evt_", 4), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT sequence, payload FROM events ORDER BY id", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    const char *payload = (const char *)sqlite3_column_text(st, 1);
    char want[256];
    snprintf(want, sizeof(want), "{\"id\":\"%s\",\"type\":\"domain.created\",\"createdAt\":\"", pub);
    assert_int_equal(strncmp(payload, want, strlen(want)), 0);
    assert_non_null(strstr(payload, "\"sequence\":1,\"data\":{\"x\": 1}}"));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(endpoint_id, ',') FROM (SELECT endpoint_id FROM "
                                            "deliveries ORDER BY event_id, endpoint_id)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "whe_all,whe_c,whe_all");
    sqlite3_finalize(st);
    store_domain_t dd;
    assert_int_equal(store_domain_get(s, d, &dd), STORE_OK);
    assert_int_equal(dd.sequence, 2);
    store_domain_clear(&dd);
    free(pub);
}

static int audit_cb(const store_audit_t *a, void *arg)
{
    struct collect *c = arg;
    c->ids[c->n++] = a->id;
    return 0;
}

static void test_audit_and_usage(void **state)
{
    store_t *s = ((struct fx *)*state)->s;
    int64_t a = mkproject(s, "a", 5), b = mkproject(s, "b", 5);
    assert_int_equal(store_audit_add(s, a, "tok_1", "domain.create", "x.example.com", NULL, 1), STORE_OK);
    assert_int_equal(store_audit_add(s, b, "tok_2", "domain.create", "y.example.com", "{\"n\":1}", 2), STORE_OK);
    assert_int_equal(store_audit_add(s, a, "cli", "domain.delete", "x.example.com", NULL, 3), STORE_OK);
    assert_int_equal(store_audit_add(s, 0, "tok_op", "token.create", "tok_9", NULL, 4), STORE_OK);
    struct collect c = { 0 };
    assert_int_equal(store_audit_list(s, a, 0, 10, audit_cb, &c), STORE_OK);
    assert_int_equal(c.n, 2);
    assert_true(c.ids[0] > c.ids[1]); /* newest first */
    c.n = 0;
    assert_int_equal(store_audit_list(s, -1, 0, 10, audit_cb, &c), STORE_OK);
    assert_int_equal(c.n, 4);
    c.n = 0;
    assert_int_equal(store_audit_list(s, -1, 3, 10, audit_cb, &c), STORE_OK);
    assert_int_equal(c.n, 2);

    int64_t u[USAGE_KIND_COUNT];
    assert_int_equal(store_usage_add_at(s, a, USAGE_API_CALL, "2026-01", 5), STORE_OK);
    assert_int_equal(store_usage_add_at(s, a, USAGE_API_CALL, "2026-01", 7), STORE_OK);
    assert_int_equal(store_usage_add_at(s, b, USAGE_API_CALL, "2026-01", 100), STORE_OK);
    assert_int_equal(store_usage_get(s, a, "2026-01", u), STORE_OK);
    assert_int_equal(u[USAGE_API_CALL], 12);
    assert_int_equal(u[USAGE_CONNECT], 0);
    char period[16];
    store_usage_period(util_now_ms(), period, sizeof(period));
    assert_int_equal(store_usage_max(s, a, USAGE_ACTIVE_DOMAIN, 4), STORE_OK);
    assert_int_equal(store_usage_max(s, a, USAGE_ACTIVE_DOMAIN, 2), STORE_OK);
    assert_int_equal(store_usage_add(s, a, USAGE_CERT, 1), STORE_OK);
    assert_int_equal(store_usage_get(s, a, period, u), STORE_OK);
    assert_int_equal(u[USAGE_ACTIVE_DOMAIN], 4);
    assert_int_equal(u[USAGE_CERT], 1);
    assert_string_equal(store_usage_period(0, period, sizeof(period)), "1970-01");
    assert_string_equal(store_usage_kind_name(USAGE_ACTIVE_DOMAIN), "active_domain");
}

static void test_domainobj(void **state)
{
    store_domain_t d = {
        .hostname = "docs.example.com", .project_slug = "acme", .state = "live", .verified = 1,
        .verified_at = 1700000000000LL, .challenge = "abc", .metadata = "{ \"a\" : 1.0 }", .cert_status = "none",
        .created_at = 1600000000000LL, .cert_not_after = util_now_ms() + 86400000, .cert_issuer = "Hee Local CA",
    };
    char *text = domainobj_text(&d, "edge.example.net");
    assert_non_null(text);
    assert_non_null(strstr(text, "\"metadata\":{ \"a\" : 1.0 },\"state\":\"live\""));
    assert_non_null(strstr(text, "\"ownershipChallenge\":{\"name\":\"_customdomain-challenge.docs.example.com\","
                                 "\"type\":\"TXT\",\"value\":\"abc\"}"));
    assert_non_null(strstr(text, "\"certificate\":{\"status\":\"issued\""));
    assert_non_null(strstr(text, "\"verifiedAt\":\"2023-11-14T22:13:20.000Z\""));
    const char *head = "{\"hostname\":\"docs.example.com\",\"projectSlug\":\"acme\",\"verified\":true,";
    assert_int_equal(strncmp(text, head, strlen(head)), 0);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 11);
    json_decref(j);
    free(text);
    /* nested inside an envelope */
    json_t *env = json_pack("{s:s,s:o}", "type", "x", "domain", domainobj_json(&d, "t"));
    text = domainobj_dumps(env, d.metadata);
    assert_non_null(strstr(text, "\"metadata\":{ \"a\" : 1.0 }"));
    free(text);
    json_decref(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domain_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_savepoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_and_usage, setup, teardown),
        cmocka_unit_test(test_domainobj),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
