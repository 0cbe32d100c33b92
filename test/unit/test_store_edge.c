/* Tests common/store_edge.c on a real SQLite file: what the edge reads for
 * a hostname — active vs removed domains, deleted projects, the current
 * certificate (largest not_after, superseded ones ignored), sealed keys
 * flagged, and a read-only handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/store.h"
#include "common/store_edge.h"

struct fx {
    char path[64];
    store_t *rw, *ro;
};

static void exec(store_t *s, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(store_db(s), sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("sql: %s: %s", sql, err ? err : "?");
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/test_store_edge.%d.db", (int)getpid());
    unlink(f->path);
    char *err = NULL;
    f->rw = store_open(f->path, STORE_RW, &err);
    assert_non_null(f->rw);
    exec(f->rw,
         "INSERT INTO projects (id, slug, upstream, upstream_fallback, settings, hmac_key, created_at, updated_at)"
         " VALUES (1, 'acme', 'http://127.0.0.1:9000', 'http://127.0.0.1:9001', '{\"forwardMetadata\":true}',"
         " x'00112233', 1, 1),"
         " (2, 'gone', 'http://127.0.0.1:9002', NULL, '{}', x'aa', 1, 1);"
         "UPDATE projects SET deleted_at = 5 WHERE id = 2;"
         "INSERT INTO domains (id, hostname, project_id, state, verified, challenge, metadata, created_at,"
         " updated_at, removed_at) VALUES"
         " (10, 'app.test', 1, 'verified', 1, 'c', '{\"ws\":\"ws_1\"}', 1, 1, NULL),"
         " (11, 'old.test', 1, 'verified', 1, 'c', '{}', 1, 1, 7),"
         " (12, 'new.test', 1, 'created', 0, 'c', '{}', 1, 1, NULL),"
         " (13, 'orphan.test', 2, 'verified', 1, 'c', '{}', 1, 1, NULL),"
         " (14, 'again.test', 1, 'verified', 1, 'c', '{\"v\":1}', 1, 1, 3),"
         " (15, 'again.test', 1, 'verified', 1, 'c', '{\"v\":2}', 1, 1, NULL),"
         " (16, 'sealed.test', 1, 'verified', 1, 'c', '{}', 1, 1, NULL);"
         "INSERT INTO certificates (hostname, chain_pem, key_pem, key_sealed, key_type, issuer, not_before,"
         " not_after, renew_at, created_at, superseded_at) VALUES"
         " ('app.test', 'CHAIN-OLD', 'KEY-OLD', 0, 'ecdsa-p256', 'internal', 1, 1000, 900, 1, NULL),"
         " ('app.test', 'CHAIN-NEW', 'KEY-NEW', 0, 'ecdsa-p256', 'internal', 1, 3000, 2900, 1, NULL),"
         " ('app.test', 'CHAIN-SUP', 'KEY-SUP', 0, 'ecdsa-p256', 'internal', 1, 9000, 8900, 1, 2),"
         " ('old.test', 'C', 'K', 0, 'ecdsa-p256', 'internal', 1, 9000, 8900, 1, NULL),"
         " ('sealed.test', 'C', x'0102', 1, 'ecdsa-p256', 'internal', 1, 9000, 8900, 1, NULL);");
    f->ro = store_open(f->path, STORE_RO, &err);
    assert_non_null(f->ro);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->ro);
    store_close(f->rw);
    unlink(f->path);
    char wal[80];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", f->path);
    unlink(wal);
    free(f);
    return 0;
}

static void active_domain_with_current_cert(void **state)
{
    struct fx *f = *state;
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "app.test", &h), STORE_OK);
    assert_int_equal(h.domain_id, 10);
    assert_int_equal(h.project_id, 1);
    assert_true(h.verified);
    assert_string_equal(h.state, "verified");
    assert_string_equal(h.slug, "acme");
    assert_string_equal(h.upstream, "http://127.0.0.1:9000");
    assert_string_equal(h.upstream_fallback, "http://127.0.0.1:9001");
    assert_string_equal(h.settings, "{\"forwardMetadata\":true}");
    assert_string_equal(h.metadata, "{\"ws\":\"ws_1\"}");
    assert_int_equal(h.hmac_key_len, 4);
    assert_memory_equal(h.hmac_key, "\x00\x11\x22\x33", 4);
    assert_true(h.has_cert);
    assert_string_equal(h.chain_pem, "CHAIN-NEW"); /* largest not_after, superseded ignored */
    assert_string_equal(h.key_pem, "KEY-NEW");
    assert_int_equal(h.key_pem_len, 7);
    assert_int_equal(h.cert_not_after, 3000);
    assert_false(h.key_sealed);
    store_edge_clear(&h);
    assert_null(h.slug);
}

static void unknown_removed_and_orphaned_are_not_found(void **state)
{
    struct fx *f = *state;
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "nobody.test", &h), STORE_NOTFOUND);
    assert_int_equal(store_edge_lookup(f->ro, "old.test", &h), STORE_NOTFOUND);    /* removed: refuse */
    assert_int_equal(store_edge_lookup(f->ro, "orphan.test", &h), STORE_NOTFOUND); /* project deleted */
    assert_null(h.slug);
}

static void unverified_without_cert(void **state)
{
    struct fx *f = *state;
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "new.test", &h), STORE_OK);
    assert_false(h.verified);
    assert_false(h.has_cert);
    store_edge_clear(&h);
}

static void readded_hostname_uses_active_row(void **state)
{
    struct fx *f = *state;
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "again.test", &h), STORE_OK);
    assert_int_equal(h.domain_id, 15);
    assert_string_equal(h.metadata, "{\"v\":2}");
    store_edge_clear(&h);
}

static void sealed_key_is_flagged(void **state)
{
    struct fx *f = *state;
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "sealed.test", &h), STORE_OK);
    assert_true(h.has_cert);
    assert_true(h.key_sealed);
    assert_int_equal(h.key_pem_len, 2);
    store_edge_clear(&h);
}

static void repeated_lookups_reuse_statements(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 1000; i++) {
        store_edge_host_t h;
        assert_int_equal(store_edge_lookup(f->ro, i % 2 ? "app.test" : "nobody.test", &h),
                         i % 2 ? STORE_OK : STORE_NOTFOUND);
        store_edge_clear(&h);
    }
    /* a write after the reads is visible to the next lookup (no stale snapshot) */
    exec(f->rw, "UPDATE domains SET removed_at = 9 WHERE id = 10");
    store_edge_host_t h;
    assert_int_equal(store_edge_lookup(f->ro, "app.test", &h), STORE_NOTFOUND);
    exec(f->rw, "UPDATE domains SET removed_at = NULL WHERE id = 10");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(active_domain_with_current_cert),
        cmocka_unit_test(unknown_removed_and_orphaned_are_not_found),
        cmocka_unit_test(unverified_without_cert),
        cmocka_unit_test(readded_hostname_uses_active_row),
        cmocka_unit_test(sealed_key_is_flagged),
        cmocka_unit_test(repeated_lookups_reuse_statements),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
