#include "test_verify_fake.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common/util.h"
#include "control/subsys.h"
#include "control/verify.h"

static fake_t *of_control(struct control *c)
{
    return (fake_t *)((char *)c - offsetof(fake_t, c));
}

static void note(fake_t *f, const char *what, const char *host, int code)
{
    if (f->ncalls < FAKE_MAX_CALLS) {
        fake_call_t *k = &f->calls[f->ncalls];
        snprintf(k->what, sizeof(k->what), "%s", what);
        snprintf(k->host, sizeof(k->host), "%s", host ? host : "");
        k->code = code;
    }
    f->ncalls++;
}

/* ---- the stand-ins ---- */

void ctl_domain_changed(struct control *c, const char *host)
{
    fake_t *f = of_control(c);
    f->domain_changed++;
    note(f, "domain_changed", host, 0);
}

void ctl_events_committed(struct control *c)
{
    fake_t *f = of_control(c);
    f->events++;
    note(f, "events", NULL, 0);
}

void ctl_cert_wanted(struct control *c, const char *host)
{
    fake_t *f = of_control(c);
    f->issuer_wants++;
    note(f, "issuer_want", host, 0);
}

int hub_broadcast(hub_t *h, const msg_t *msg)
{
    fake_t *f = (fake_t *)((char *)h - offsetof(fake_t, hub));
    if (msg->type == MSG_CERT_FAILED) {
        f->cert_failed++;
        note(f, "cert_failed", msg->host, msg->code);
    }
    return 0;
}

/* ---- set-up ---- */

void fake_set(char **field, const char *value)
{
    char *d = strdup(value);
    assert_non_null(d);
    free(*field);
    *field = d;
}

fake_t *fake_new(const char *resolvers)
{
    char *err = NULL;
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hee-verify-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/hee.db", f->dir);
    f->cfg = config_load(NULL, &err);
    assert_non_null(f->cfg);
    fake_set(&f->cfg->resolvers, resolvers);
    fake_set(&f->cfg->edge_target, "edge.hee.la");
    fake_set(&f->cfg->edge_addresses, "192.0.2.10 2001:db8::10");
    f->cfg->dns_timeout_ms = 200;
    f->cfg->dns_attempts = 2;
    f->cfg->pending_interval_s = 60;
    f->cfg->verified_interval_s = 3600;
    f->cfg->stalled_interval_s = 600;
    f->cfg->first_request_probe_s = 10;
    f->hub.cfg = f->cfg;
    f->hub.metrics = metrics_new();
    assert_non_null(f->hub.metrics);
    f->c.hub = &f->hub;
    f->c.cfg = f->cfg;
    f->c.base = event_base_new();
    assert_non_null(f->c.base);
    f->c.store = store_open(f->db, STORE_RW, &err);
    if (!f->c.store)
        fail_msg("store_open: %s", err);
    return f;
}

void fake_free(fake_t *f)
{
    char path[160];
    if (!f)
        return;
    store_close(f->c.store);
    event_base_free(f->c.base);
    metrics_free(f->hub.metrics);
    config_free(f->cfg);
    static const char *const files[] = { "hee.db", "hee.db-wal", "hee.db-shm" };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
}

void fake_sql(fake_t *f, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(store_db(f->c.store), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql failed: %s\n%s", msg ? msg : "?", sql);
}

int64_t fake_sql_int(fake_t *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(store_db(f->c.store), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare failed: %s\n%s", sqlite3_errmsg(store_db(f->c.store)), sql);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

const char *fake_sql_text(fake_t *f, const char *sql)
{
    static char buf[8192];
    sqlite3_stmt *st = NULL;
    const char *out = NULL;
    if (sqlite3_prepare_v2(store_db(f->c.store), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare failed: %s\n%s", sqlite3_errmsg(store_db(f->c.store)), sql);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
        out = buf;
    }
    sqlite3_finalize(st);
    return out;
}

int64_t fake_project(fake_t *f, const char *slug, const char *settings)
{
    char *sql = sqlite3_mprintf("INSERT INTO projects (slug, upstream, settings, hmac_key, max_domains, created_at, "
                                "updated_at) VALUES (%Q, 'http://127.0.0.1:1', %Q, x'00', 100000000, 1, 1)",
                                slug, settings);
    fake_sql(f, sql);
    sqlite3_free(sql);
    return sqlite3_last_insert_rowid(store_db(f->c.store));
}

int64_t fake_domain(fake_t *f, int64_t project_id, const char *host, const char *challenge)
{
    int64_t now = util_now_ms();
    char *sql = sqlite3_mprintf("INSERT INTO domains (hostname, project_id, state, challenge, created_at, updated_at, "
                                "next_probe_at) VALUES (%Q, %lld, 'pending_ownership', %Q, %lld, %lld, %lld)",
                                host, (long long)project_id, challenge, (long long)now, (long long)now,
                                (long long)now);
    fake_sql(f, sql);
    sqlite3_free(sql);
    return sqlite3_last_insert_rowid(store_db(f->c.store));
}

int fake_run_until(fake_t *f, const int *flag, int ms)
{
    int64_t end = util_mono_ms() + ms;
    while (!*flag && util_mono_ms() < end) {
        struct timeval tv = { 0, 20000 };
        event_base_loopexit(f->c.base, &tv);
        event_base_dispatch(f->c.base);
    }
    return *flag;
}

void fake_run_for(fake_t *f, int ms)
{
    int never = 0;
    fake_run_until(f, &never, ms);
}

int fake_find(const fake_t *f, const char *what, const char *host)
{
    for (int i = 0; i < f->ncalls && i < FAKE_MAX_CALLS; i++)
        if (strcmp(f->calls[i].what, what) == 0 && (!host || strcmp(f->calls[i].host, host) == 0))
            return i;
    return -1;
}
