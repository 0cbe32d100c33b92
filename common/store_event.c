#include "common/store_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static int next_sequence(store_t *s, int64_t domain_id, int64_t *seq)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE domains SET sequence = sequence + 1 WHERE id = ? RETURNING sequence");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, domain_id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "event.sequence");
    if (rc == STORE_OK)
        *seq = sqlite3_column_int64(st, 0);
    /* RETURNING statements finish their write when run to completion. */
    if (rc == STORE_OK && sqlite3_step(st) != SQLITE_DONE)
        rc = store_fail(s, "event.sequence");
    sqlite3_reset(st);
    return rc;
}

static char *envelope(const char *id, const char *type, int64_t now, int64_t seq, const char *data)
{
    char ts[32];
    util_iso8601(now, ts, sizeof(ts));
    /* id, type and ts are ASCII without quotes or backslashes (ours). */
    size_t n = strlen(id) + strlen(type) + strlen(ts) + strlen(data) + 96;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "{\"id\":\"%s\",\"type\":\"%s\",\"createdAt\":\"%s\",\"sequence\":%lld,\"data\":%s}", id,
                 type, ts, (long long)seq, data);
    return out;
}

static int insert_event(store_t *s, const char *id, int64_t project_id, int64_t domain_id, const char *type,
                        int64_t seq, int64_t now, const char *payload, int64_t *rowid)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO events (public_id, project_id, domain_id, type, sequence, "
                                     "created_at, payload) VALUES (?,?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    sqlite3_bind_int64(st, 2, project_id);
    if (domain_id > 0)
        sqlite3_bind_int64(st, 3, domain_id);
    else
        sqlite3_bind_null(st, 3);
    store_bind_str(st, 4, type);
    sqlite3_bind_int64(st, 5, seq);
    sqlite3_bind_int64(st, 6, now);
    store_bind_str(st, 7, payload);
    int rc = store_step_rc(s, sqlite3_step(st), "event.insert");
    sqlite3_reset(st);
    if (rc == STORE_OK)
        *rowid = sqlite3_last_insert_rowid(store_db(s));
    return rc;
}

/* One delivery per live, enabled endpoint of the project whose filter is
 * empty (= every type) or names this type. */
static int fan_out(store_t *s, int64_t event_id, int64_t project_id, int64_t domain_id, const char *type,
                   int64_t now)
{
    sqlite3_stmt *st = store_stmt(
        s, "INSERT INTO deliveries (event_id, endpoint_id, domain_id, status, attempts, next_attempt_at, created_at) "
           "SELECT ?1, w.id, ?2, 'pending', 0, ?3, ?3 FROM webhook_endpoints w "
           "WHERE w.project_id = ?4 AND w.disabled = 0 AND w.deleted_at IS NULL "
           "AND (json_array_length(w.events) = 0 "
           "OR EXISTS (SELECT 1 FROM json_each(w.events) e WHERE e.value = ?5))");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, event_id);
    if (domain_id > 0)
        sqlite3_bind_int64(st, 2, domain_id);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, project_id);
    store_bind_str(st, 5, type);
    int rc = store_step_rc(s, sqlite3_step(st), "event.deliveries");
    sqlite3_reset(st);
    return rc;
}

int store_event_emit(store_t *s, int64_t project_id, int64_t domain_id, const char *type, const char *data_json,
                     char **public_id)
{
    if (!store_in_tx(s))
        return STORE_ERR;
    int64_t now = util_now_ms(), seq = 0, rowid = 0;
    char *id = NULL, *payload = NULL;
    int rc = STORE_ERR;
    if (domain_id > 0 && (rc = next_sequence(s, domain_id, &seq)) != STORE_OK)
        goto out;
    rc = STORE_ERR;
    if (!(id = util_random_id("evt_", 16)) || !(payload = envelope(id, type, now, seq, data_json)))
        goto out;
    if ((rc = insert_event(s, id, project_id, domain_id, type, seq, now, payload, &rowid)) != STORE_OK)
        goto out;
    if ((rc = fan_out(s, rowid, project_id, domain_id, type, now)) != STORE_OK)
        goto out;
    if (public_id) {
        *public_id = id;
        id = NULL;
    }
out:
    free(id);
    free(payload);
    return rc;
}
