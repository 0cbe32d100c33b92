#include "common/store_usage.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static const char *const kind_names[USAGE_KIND_COUNT] = { "connect", "active_domain", "cert", "api_call" };

const char *store_usage_kind_name(enum store_usage_kind k)
{
    return (unsigned)k < USAGE_KIND_COUNT ? kind_names[k] : "?";
}

char *store_usage_period(int64_t ms, char *buf, unsigned len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m", &tm) == 0)
        snprintf(buf, len, "%s", "1970-01");
    return buf;
}

int store_usage_add_at(store_t *s, int64_t project_id, enum store_usage_kind kind, const char *period, int64_t n)
{
    if ((unsigned)kind >= USAGE_KIND_COUNT)
        return STORE_ERR;
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO usage (project_id, kind, period, count) VALUES (?1,?2,?3,?4) "
                                     "ON CONFLICT (project_id, kind, period) DO UPDATE SET count = count + ?4");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    sqlite3_bind_text(st, 2, kind_names[kind], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, n);
    int rc = store_step_rc(s, sqlite3_step(st), "usage.add");
    sqlite3_reset(st);
    return rc;
}

int store_usage_add(store_t *s, int64_t project_id, enum store_usage_kind kind, int64_t n)
{
    char period[16];
    return store_usage_add_at(s, project_id, kind, store_usage_period(util_now_ms(), period, sizeof(period)), n);
}

int store_usage_max(store_t *s, int64_t project_id, enum store_usage_kind kind, int64_t value)
{
    if ((unsigned)kind >= USAGE_KIND_COUNT)
        return STORE_ERR;
    char period[16];
    store_usage_period(util_now_ms(), period, sizeof(period));
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO usage (project_id, kind, period, count) VALUES (?1,?2,?3,?4) "
                                     "ON CONFLICT (project_id, kind, period) DO UPDATE SET count = max(count, ?4)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    sqlite3_bind_text(st, 2, kind_names[kind], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, period, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, value);
    int rc = store_step_rc(s, sqlite3_step(st), "usage.max");
    sqlite3_reset(st);
    return rc;
}

int store_usage_get(store_t *s, int64_t project_id, const char *period, int64_t out[USAGE_KIND_COUNT])
{
    memset(out, 0, sizeof(int64_t) * USAGE_KIND_COUNT);
    sqlite3_stmt *st = store_stmt(s, "SELECT kind, count FROM usage WHERE project_id = ? AND period = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    sqlite3_bind_text(st, 2, period, -1, SQLITE_STATIC);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; k && i < USAGE_KIND_COUNT; i++)
            if (strcmp(k, kind_names[i]) == 0)
                out[i] = sqlite3_column_int64(st, 1);
    }
    int rc = step == SQLITE_DONE ? STORE_OK : store_fail(s, "usage.get");
    sqlite3_reset(st);
    return rc;
}
