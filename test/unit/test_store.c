/* Tests common/store.c: creation, pragmas, file mode, and migrations from
 * every earlier schema version (test/unit/data/schema/vN.sql are the schemas
 * as released, schema.sql the newest; a migrated file must end up identical
 * to a new one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/store.h"

static char *tmp_path(void)
{
    char *dir = strdup("/tmp/hee-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char *p = malloc(strlen(dir) + 8);
    sprintf(p, "%s/t.db", dir);
    free(dir);
    return p;
}

static void rm_db(char *p)
{
    char buf[512];
    const char *suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof(buf), "%s%s", p, suffix[i]);
        unlink(buf);
    }
    *strrchr(p, '/') = '\0';
    rmdir(p);
    free(p);
}

static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        size_t n = t ? strlen(t) : 0;
        while (len + n + 2 > cap)
            out = realloc(out, cap *= 2);
        memcpy(out + len, t ? t : "", n);
        len += n;
        out[len++] = '\n';
        out[len] = '\0';
    }
    sqlite3_finalize(st);
    return out;
}

static char *schema_of(sqlite3 *db)
{
    return query_text(db, "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name");
}

static void test_new_file(void **unused)
{
    char *p = tmp_path();
    char *err = NULL;
    store_t *s = store_open(p, STORE_RW, &err);
    assert_non_null(s);
    assert_int_equal(store_user_version(s), store_schema_version());
    char *mode = query_text(store_db(s), "PRAGMA journal_mode");
    assert_string_equal(mode, "wal\n");
    free(mode);
    char *sync = query_text(store_db(s), "PRAGMA synchronous");
    assert_string_equal(sync, "2\n"); /* FULL */
    free(sync);
    char *fk = query_text(store_db(s), "PRAGMA foreign_keys");
    assert_string_equal(fk, "1\n");
    free(fk);
    char *tables = query_text(store_db(s), "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    const char *want[] = { "acme_accounts", "attempts", "audit", "certificates", "checks", "deliveries", "domains",
                           "events", "issuance", "issuance_log", "local_ca", "projects", "tokens", "usage",
                           "webhook_endpoints" };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(tables, want[i]))
            fail_msg("table %s missing", want[i]);
    free(tables);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    store_close(s);
    /* Opening again changes nothing. */
    s = store_open(p, STORE_RW, &err);
    assert_non_null(s);
    assert_int_equal(store_user_version(s), store_schema_version());
    store_close(s);
    rm_db(p);
}

static void test_migrations_from_every_version(void **unused)
{
    char *fresh_path = tmp_path();
    char *err = NULL;
    store_t *fresh = store_open(fresh_path, STORE_RW, &err);
    assert_non_null(fresh);
    char *want = schema_of(store_db(fresh));
    for (int v = 1; v <= store_schema_version(); v++) {
        /* Released versions are frozen snapshots; the newest one is schema.sql
         * itself (copy it to data/schema/vN.sql before the next migration). */
        char file[512];
        if (v == store_schema_version())
            snprintf(file, sizeof(file), "%s/schema.sql", HEE_SOURCE_DIR);
        else
            snprintf(file, sizeof(file), "%s/test/unit/data/schema/v%d.sql", HEE_SOURCE_DIR, v);
        FILE *f = fopen(file, "r");
        if (!f)
            fail_msg("no snapshot %s: every released schema version needs one", file);
        static char sql[1 << 17];
        size_t n = fread(sql, 1, sizeof(sql) - 1, f);
        sql[n] = '\0';
        fclose(f);
        char *p = tmp_path();
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v);
        assert_int_equal(sqlite3_exec(db, pragma, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        store_t *s = store_open(p, STORE_RW, &err);
        if (!s)
            fail_msg("from v%d: %s", v, err);
        assert_int_equal(store_user_version(s), store_schema_version());
        char *got = schema_of(store_db(s));
        assert_string_equal(got, want);
        free(got);
        store_close(s);
        rm_db(p);
    }
    free(want);
    store_close(fresh);
    rm_db(fresh_path);
}

static void test_newer_file_refused(void **unused)
{
    char *p = tmp_path();
    char *err = NULL;
    store_t *s = store_open(p, STORE_RW, &err);
    assert_non_null(s);
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", store_schema_version() + 1);
    assert_int_equal(sqlite3_exec(store_db(s), pragma, NULL, NULL, NULL), SQLITE_OK);
    store_close(s);
    assert_null(store_open(p, STORE_RW, &err));
    assert_non_null(strstr(err, "newer than this build"));
    free(err);
    rm_db(p);
}

static void test_read_only_needs_initialised_file(void **unused)
{
    char *p = tmp_path();
    char *err = NULL;
    FILE *f = fopen(p, "w");
    fclose(f);
    assert_null(store_open(p, STORE_RO, &err));
    assert_non_null(strstr(err, "not initialised"));
    free(err);
    store_t *rw = store_open(p, STORE_RW, &err);
    store_t *ro = store_open(p, STORE_RO, &err);
    assert_non_null(ro);
    /* The read-only handle refuses writes. */
    assert_int_not_equal(sqlite3_exec(store_db(ro), "INSERT INTO usage VALUES (1, 'x', 'y', 1)", NULL, NULL, NULL),
                         SQLITE_OK);
    store_close(ro);
    store_close(rw);
    rm_db(p);
}

static void test_transactions(void **unused)
{
    char *p = tmp_path();
    char *err = NULL;
    store_t *s = store_open(p, STORE_RW, &err);
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(store_begin(s), STORE_ERR); /* nesting is a bug, refused */
    assert_true(store_in_tx(s));
    assert_int_equal(sqlite3_exec(store_db(s), "INSERT INTO audit(action, at) VALUES ('a', 1)", NULL, NULL, NULL),
                     SQLITE_OK);
    store_rollback(s);
    char *n = query_text(store_db(s), "SELECT count(*) FROM audit");
    assert_string_equal(n, "0\n");
    free(n);
    assert_int_equal(store_begin(s), STORE_OK);
    sqlite3_exec(store_db(s), "INSERT INTO audit(action, at) VALUES ('a', 1)", NULL, NULL, NULL);
    assert_int_equal(store_commit(s), STORE_OK);
    n = query_text(store_db(s), "SELECT count(*) FROM audit");
    assert_string_equal(n, "1\n");
    free(n);
    assert_int_equal(store_checkpoint(s), STORE_OK);
    store_close(s);
    rm_db(p);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A no-wait handle (the background thread's) meets another connection's
 * write lock: store_begin fails at once with STORE_BUSY instead of
 * sleeping in SQLite's busy handler, reads still work, and once the lock
 * is gone the same handle writes. A default handle waits its timeout. */
/* A no-wait writer's retries stay a few ms apart (commits hold the lock
 * for milliseconds) and an episode warns once, when it has lasted. */
static void test_retry_pacing(void **state)
{
    (void)state;
    store_retry_t r = { 0 };
    int warn = -1;
    assert_int_equal(store_retry_next(&r, 1000, &warn), STORE_RETRY_MIN_MS);
    assert_int_equal(warn, 0);
    assert_int_equal(store_retry_next(&r, 1005, &warn), 10);
    assert_int_equal(store_retry_next(&r, 1015, &warn), STORE_RETRY_MAX_MS);
    assert_int_equal(store_retry_next(&r, 1035, &warn), STORE_RETRY_MAX_MS);
    assert_int_equal(warn, 0);
    assert_int_equal(store_retry_next(&r, 1000 + STORE_RETRY_WARN_MS, &warn), STORE_RETRY_MAX_MS);
    assert_int_equal(warn, 1);
    assert_int_equal(store_retry_next(&r, 2000, &warn), STORE_RETRY_MAX_MS);
    assert_int_equal(warn, 0); /* once per episode */
    store_retry_done(&r);
    assert_int_equal(store_retry_next(&r, 5000, &warn), STORE_RETRY_MIN_MS);
    assert_int_equal(warn, 0);
}

static void test_nowait_busy(void **unused)
{
    char *p = tmp_path();
    char *err = NULL;
    store_t *s = store_open(p, STORE_RW, &err), *other = store_open(p, STORE_RW, &err);
    assert_non_null(s);
    assert_non_null(other);
    store_set_nowait(s, 1);
    assert_int_equal(store_begin(other), STORE_OK); /* BEGIN IMMEDIATE: holds the write lock */
    int64_t t0 = mono_ms();
    for (int i = 0; i < 100; i++)
        assert_int_equal(store_begin(s), STORE_BUSY);
    assert_true(mono_ms() - t0 < 100); /* no sleep (SQLite's handler sleeps >= 1 ms a try) */
    assert_false(store_in_tx(s));
    char *n = query_text(store_db(s), "SELECT count(*) FROM audit"); /* WAL: readers pass */
    assert_string_equal(n, "0\n");
    free(n);
    /* Back to waiting: the same write now waits for the lock (bounded here). */
    store_set_nowait(s, 0);
    sqlite3_busy_timeout(store_db(s), 50);
    t0 = mono_ms();
    assert_int_equal(store_begin(s), STORE_ERR);
    assert_true(mono_ms() - t0 >= 40);
    store_set_nowait(s, 1);
    store_rollback(other);
    assert_int_equal(store_begin(s), STORE_OK);
    assert_int_equal(sqlite3_exec(store_db(s), "INSERT INTO audit(action, at) VALUES ('a', 1)", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_commit(s), STORE_OK);
    store_close(other);
    store_close(s);
    rm_db(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_file),
        cmocka_unit_test(test_migrations_from_every_version),
        cmocka_unit_test(test_newer_file_refused),
        cmocka_unit_test(test_read_only_needs_initialised_file),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_nowait_busy),
        cmocka_unit_test(test_retry_pacing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
