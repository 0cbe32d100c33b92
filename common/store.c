#include "common/store.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Generated from schema.sql at build time (see CMakeLists.txt). */
extern const char store_schema_sql[];

/* Migrations: entry i upgrades a database from user_version i+1 to i+2.
 * Version 1 is schema.sql as first released; every later change appends
 * here and, in the same commit, to schema.sql (so a new file and a migrated
 * file end up identical). test/unit/data/schema/vN.sql keeps each earlier
 * schema (the newest is schema.sql itself); test/unit/test_store.c migrates
 * every one of them and compares the result with a new file, so before you
 * add a migration, copy schema.sql to the snapshot of the version it leaves. */
static const char *const migrations[] = {
    /* v1 → v2: ACME order starts (the hourly cap survives a restart); the
     * text is schema.sql's, so both ways give the same sqlite_master. */
    "CREATE TABLE acme_orders (\n  started_at INTEGER NOT NULL\n);\n"
    "CREATE INDEX acme_orders_started ON acme_orders(started_at);",
    NULL, /* sentinel so the array is never empty */
};
#define MIGRATIONS_COUNT (sizeof(migrations) / sizeof(migrations[0]) - 1)

#define STMT_CACHE 128

struct store {
    sqlite3 *db;
    atomic_uint_least64_t *commits; /* shared with the process's other read-write handles; NULL: not counted */
    enum store_mode mode;
    int nowait;                  /* store_set_nowait: busy → STORE_BUSY at once */
    int in_tx;
    unsigned nstmts;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[STMT_CACHE];
};

int store_schema_version(void)
{
    return 1 + (int)MIGRATIONS_COUNT;
}

static char *dupmsg(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 3;
    char *m = malloc(n);
    if (m)
        snprintf(m, n, "%s: %s", a, b);
    return m;
}

static int exec_sql(store_t *s, const char *sql, char **err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err)
            *err = dupmsg("sql", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int store_user_version(store_t *s)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Brings the file to store_schema_version() in one transaction, so a crash
 * mid-migration leaves the previous version intact. */
static int migrate(store_t *s, char **err)
{
    if (exec_sql(s, "BEGIN IMMEDIATE", err) != 0)
        return -1;
    int v = store_user_version(s);
    if (v < 0) {
        *err = dupmsg("migrate", "cannot read user_version");
        goto fail;
    }
    if (v > store_schema_version()) {
        *err = dupmsg("migrate", "database is newer than this build of hee");
        goto fail;
    }
    /* schema.sql is always the newest schema: a new file needs no migration. */
    if (v == 0 && exec_sql(s, store_schema_sql, err) != 0)
        goto fail;
    for (int i = v - 1; v > 0 && i < (int)MIGRATIONS_COUNT; i++)
        if (exec_sql(s, migrations[i], err) != 0)
            goto fail;
    if (v != store_schema_version()) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", store_schema_version());
        if (exec_sql(s, pragma, err) != 0)
            goto fail;
        log_info("store.migrated", "from=%d to=%d", v, store_schema_version());
    }
    return exec_sql(s, "COMMIT", err);
fail:
    exec_sql(s, "ROLLBACK", NULL);
    return -1;
}

store_t *store_open(const char *path, enum store_mode mode, char **err)
{
    store_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = dupmsg("store", "out of memory");
        return NULL;
    }
    s->mode = mode;
    /* Private keys and token hashes live in this file: create it 0600 before
     * SQLite does (SQLite gives its -wal and -shm files the same mode).
     * Never open() and close() a file this process may already have open
     * through SQLite: close() drops every POSIX lock the process holds on
     * it, another process then believes it is the last user and deletes the
     * WAL under our feet. Hence O_EXCL (a new file), and chmod() by path. */
    if (mode == STORE_RW) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        else if (errno != EEXIST) {
            *err = dupmsg(path, strerror(errno));
            goto fail;
        } else if (chmod(path, 0600) != 0)
            log_warn("store.chmod", "path=%s errno=%d", path, errno);
    }
    int flags = SQLITE_OPEN_NOMUTEX |
                (mode == STORE_RW ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        *err = dupmsg(path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_WAIT_MS);
    if (mode == STORE_RW) {
        /* WAL lets edge readers run beside the writer; FULL makes every
         * commit durable before we acknowledge it. */
        if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        "PRAGMA foreign_keys=ON;", err) != 0)
            goto fail;
        if (migrate(s, err) != 0)
            goto fail;
    } else {
        if (exec_sql(s, "PRAGMA foreign_keys=ON; PRAGMA query_only=ON;", err) != 0)
            goto fail;
        int v = store_user_version(s);
        if (v != store_schema_version()) {
            *err = dupmsg(path, v == 0 ? "database not initialised" : "schema version mismatch");
            goto fail;
        }
    }
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nstmts; i++)
        sqlite3_finalize(s->stmts[i].st);
    sqlite3_close(s->db);
    free(s);
}

sqlite3_stmt *store_stmt(store_t *s, const char *sql)
{
    for (unsigned i = 0; i < s->nstmts; i++) {
        if (s->stmts[i].sql == sql) {
            sqlite3_reset(s->stmts[i].st);
            sqlite3_clear_bindings(s->stmts[i].st);
            return s->stmts[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("store.prepare", "error=%s", sqlite3_errmsg(s->db));
        return NULL;
    }
    if (s->nstmts < STMT_CACHE) {
        s->stmts[s->nstmts].sql = sql;
        s->stmts[s->nstmts].st = st;
        s->nstmts++;
    } else {
        /* Cache full: evict the oldest entry rather than leak. */
        sqlite3_finalize(s->stmts[0].st);
        memmove(&s->stmts[0], &s->stmts[1], sizeof(s->stmts[0]) * (STMT_CACHE - 1));
        s->stmts[STMT_CACHE - 1].sql = sql;
        s->stmts[STMT_CACHE - 1].st = st;
    }
    return st;
}

sqlite3 *store_db(store_t *s)
{
    return s->db;
}

void store_set_nowait(store_t *s, int on)
{
    s->nowait = on != 0;
    /* 0 removes the busy handler: SQLITE_BUSY comes back without a sleep. */
    sqlite3_busy_timeout(s->db, on ? 0 : STORE_BUSY_WAIT_MS);
}

int store_fail(store_t *s, const char *what)
{
    int code = sqlite3_extended_errcode(s->db);
    if (s->nowait && (code & 0xff) == SQLITE_BUSY) {
        /* Expected on a no-wait handle: its caller keeps the work and retries. */
        log_debug("store.busy", "op=%s code=%d", what, code);
        return STORE_BUSY;
    }
    log_error("store.error", "op=%s code=%d error=\"%s\"", what, code, sqlite3_errmsg(s->db));
    return STORE_ERR;
}

int store_step_rc(store_t *s, int rc, const char *what)
{
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return STORE_CONFLICT;
    return store_fail(s, what);
}

char *store_col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return NULL;
    return strdup((const char *)t);
}

unsigned char *store_col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    *len = 0;
    unsigned char *b = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!b)
        return NULL;
    if (p && n > 0)
        memcpy(b, p, (size_t)n);
    b[n > 0 ? n : 0] = '\0';
    *len = n > 0 ? (size_t)n : 0;
    return b;
}

int store_bind_str(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int store_begin(store_t *s)
{
    if (s->in_tx) {
        log_error("store.nested_tx", "%s", "note=bug");
        return STORE_ERR;
    }
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(s, "begin");
    s->in_tx = 1;
    return STORE_OK;
}

int store_commit(store_t *s)
{
    s->in_tx = 0;
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = store_fail(s, "commit");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return STORE_OK;
}

void store_rollback(store_t *s)
{
    if (!s->in_tx)
        return;
    s->in_tx = 0;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_in_tx(const store_t *s)
{
    return s->in_tx;
}

int store_checkpoint(store_t *s)
{
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        log_debug("store.checkpoint_deferred", "code=%d", rc);
        return STORE_BUSY;
    }
    if (rc != SQLITE_OK)
        return store_fail(s, "checkpoint");
    return STORE_OK;
}

/* ---- connection tuning, savepoints and the read-lock pin ---- */

int store_tune_reads(store_t *s, int64_t bytes)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA mmap_size=%lld", (long long)bytes);
    if (sqlite3_exec(store_db(s), sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(s, "mmap_size");
    return STORE_OK;
}

/* ---- savepoints ---- */

static int exec_cached(store_t *s, const char *sql, const char *what)
{
    sqlite3_stmt *st = store_stmt(s, sql);
    if (!st)
        return STORE_ERR;
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    return rc;
}

int store_savepoint(store_t *s)
{
    return exec_cached(s, "SAVEPOINT unit", "savepoint");
}

int store_savepoint_release(store_t *s)
{
    return exec_cached(s, "RELEASE unit", "savepoint.release");
}

void store_savepoint_undo(store_t *s)
{
    /* ROLLBACK TO keeps the savepoint open; RELEASE then drops it. */
    if (exec_cached(s, "ROLLBACK TO unit", "savepoint.undo") == STORE_OK)
        exec_cached(s, "RELEASE unit", "savepoint.release");
}

/* ---- read-lock pin ---- */

/* SQLite's default automatic checkpoint threshold (frames), kept as is. */
#define PIN_AUTOCHECKPOINT 1000

struct store_pin {
    store_t *rw;
    store_t *ro;
    int held;
    uint64_t seen;               /* rw->commits when the pin was taken */
};

/* A wal hook replaces SQLite's automatic checkpoint: do what it did. */
static void autocheckpoint(sqlite3 *db, const char *name, int frames)
{
    if (frames >= PIN_AUTOCHECKPOINT)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static int count_on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    store_t *s = arg;
    atomic_fetch_add(s->commits, 1);
    autocheckpoint(db, name, frames);
    return SQLITE_OK;
}

void store_count_commits(store_t *s, atomic_uint_least64_t *counter)
{
    s->commits = counter;
    sqlite3_wal_hook(s->db, count_on_commit, s);
}

/* SQLite's wal hook on the pin's read-write handle, after each commit: count
 * it, drop the pin (so the next lookup sees it and the checkpoint can pass),
 * then checkpoint as SQLite's default hook does. */
static int pin_on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    store_pin_t *p = arg;
    if (p->rw->commits)
        atomic_fetch_add(p->rw->commits, 1);
    store_pin_release(p);
    autocheckpoint(db, name, frames);
    return SQLITE_OK;
}

store_pin_t *store_pin_new(store_t *s, const char *path, char **err)
{
    store_pin_t *p = calloc(1, sizeof(*p));
    if (!p) {
        *err = strdup("out of memory");
        return NULL;
    }
    p->rw = s;
    if (!(p->ro = store_open(path, STORE_RO, err))) {
        free(p);
        return NULL;
    }
    sqlite3_wal_hook(store_db(s), pin_on_commit, p);
    return p;
}

void store_pin_hold(store_pin_t *p)
{
    if (!p || p->held)
        return;
    /* Counted before the snapshot: a commit in between only makes the pin
     * look stale one lookup early. */
    p->seen = p->rw->commits ? atomic_load(p->rw->commits) : 0;
    /* BEGIN defers the read transaction to the first read; the schema
     * cookie is the cheapest read there is (page 1, already cached). */
    sqlite3_stmt *b = store_stmt(p->ro, "BEGIN");
    if (!b || sqlite3_step(b) != SQLITE_DONE)
        return;
    sqlite3_reset(b);
    sqlite3_stmt *r = store_stmt(p->ro, "PRAGMA schema_version");
    int step = r ? sqlite3_step(r) : SQLITE_ERROR;
    if (r)
        sqlite3_reset(r);
    p->held = 1;
    if (step != SQLITE_ROW)
        store_pin_release(p);
}

void store_pin_release(store_pin_t *p)
{
    if (!p || !p->held)
        return;
    p->held = 0;
    /* COMMIT of a read transaction only drops its lock; ROLLBACK, if that
     * fails, does the same. */
    sqlite3_stmt *st = store_stmt(p->ro, "COMMIT");
    int step = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (st)
        sqlite3_reset(st);
    if (step != SQLITE_DONE)
        sqlite3_exec(store_db(p->ro), "ROLLBACK", NULL, NULL, NULL);
}

int store_pin_held(const store_pin_t *p)
{
    return p && p->held && (!p->rw->commits || atomic_load(p->rw->commits) == p->seen);
}

store_t *store_pin_store(store_pin_t *p)
{
    return p ? p->ro : NULL;
}

void store_pin_free(store_pin_t *p)
{
    if (!p)
        return;
    store_pin_release(p);
    if (p->rw->commits) /* the counting hook again, or SQLite's own */
        sqlite3_wal_hook(store_db(p->rw), count_on_commit, p->rw);
    else
        sqlite3_wal_autocheckpoint(store_db(p->rw), PIN_AUTOCHECKPOINT);
    store_close(p->ro);
    free(p);
}

int store_tune_writes(store_t *s)
{
    if (sqlite3_exec(store_db(s), "PRAGMA temp_store=MEMORY", NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(s, "temp_store");
    return STORE_OK;
}

int store_retry_next(store_retry_t *r, int64_t now_ms, int *warn)
{
    if (r->delay_ms == 0) {
        r->since_ms = now_ms;
        r->warned = 0;
        r->delay_ms = STORE_RETRY_MIN_MS;
    } else {
        r->delay_ms = r->delay_ms * 2 > STORE_RETRY_MAX_MS ? STORE_RETRY_MAX_MS : r->delay_ms * 2;
    }
    *warn = !r->warned && now_ms - r->since_ms >= STORE_RETRY_WARN_MS;
    if (*warn)
        r->warned = 1;
    return r->delay_ms;
}

void store_retry_done(store_retry_t *r)
{
    r->delay_ms = 0;
    r->warned = 0;
}
