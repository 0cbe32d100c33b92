#include "common/store_hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Literal of STORE_HOOK_PARKED for SQL text (kept in step by a unit test). */
#define PARKED_SQL "253402300799000"

/* An endpoint's filter matches an event type (?type bound by the caller's
 * statement as the named parameter :type). */
#define FILTER_MATCHES(w, type)                                                                          \
    "(json_array_length(" w ".events) = 0 OR EXISTS (SELECT 1 FROM json_each(" w ".events) j "            \
    "WHERE j.value = " type "))"

static int64_t col_i64(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows; resets it. */
static int run(store_t *s, sqlite3_stmt *st, const char *what)
{
    if (!st)
        return STORE_ERR;
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    return rc;
}

/* ------------------------------------------------------------ endpoints -- */

#define EP_COLS                                                                                         \
    "w.id, w.project_id, p.slug, w.url, w.secret, w.old_secret, w.old_secret_until, w.events, "         \
    "w.description, w.ordered, w.disabled, w.disabled_reason, w.failing_since, w.warned_at, "           \
    "w.created_at, w.updated_at"
#define EP_FROM " FROM webhook_endpoints w JOIN projects p ON p.id = w.project_id "

void store_hook_endpoint_clear(store_hook_endpoint_t *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->project_slug);
    free(e->url);
    if (e->secret)
        explicit_bzero(e->secret, strlen(e->secret));
    free(e->secret);
    if (e->old_secret)
        explicit_bzero(e->old_secret, strlen(e->old_secret));
    free(e->old_secret);
    free(e->events);
    free(e->description);
    free(e->disabled_reason);
    memset(e, 0, sizeof(*e));
}

static int ep_row(sqlite3_stmt *st, store_hook_endpoint_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = store_col_str(st, 0);
    e->project_id = sqlite3_column_int64(st, 1);
    e->project_slug = store_col_str(st, 2);
    e->url = store_col_str(st, 3);
    e->secret = store_col_str(st, 4);
    e->old_secret = store_col_str(st, 5);
    e->old_secret_until = col_i64(st, 6);
    e->events = store_col_str(st, 7);
    e->description = store_col_str(st, 8);
    e->ordered = sqlite3_column_int(st, 9);
    e->disabled = sqlite3_column_int(st, 10);
    e->disabled_reason = store_col_str(st, 11);
    e->failing_since = col_i64(st, 12);
    e->warned_at = col_i64(st, 13);
    e->created_at = sqlite3_column_int64(st, 14);
    e->updated_at = sqlite3_column_int64(st, 15);
    if (!e->id || !e->project_slug || !e->url || !e->secret || !e->events || !e->description) {
        store_hook_endpoint_clear(e);
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_hook_endpoint_insert(store_t *s, const store_hook_endpoint_t *e)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO webhook_endpoints (id, project_id, url, secret, events, "
                                     "description, ordered, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, e->id);
    sqlite3_bind_int64(st, 2, e->project_id);
    store_bind_str(st, 3, e->url);
    store_bind_str(st, 4, e->secret);
    store_bind_str(st, 5, e->events ? e->events : "[]");
    store_bind_str(st, 6, e->description ? e->description : "");
    sqlite3_bind_int(st, 7, e->ordered ? 1 : 0);
    sqlite3_bind_int64(st, 8, e->created_at);
    sqlite3_bind_int64(st, 9, e->created_at);
    return run(s, st, "hook.endpoint_insert");
}

int store_hook_endpoint_get(store_t *s, const char *id, int64_t project_id, store_hook_endpoint_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " EP_COLS EP_FROM "WHERE w.id = ?1 AND w.deleted_at IS NULL "
                                     "AND (?2 = 0 OR w.project_id = ?2)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    sqlite3_bind_int64(st, 2, project_id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW    ? ep_row(st, out)
             : step == SQLITE_DONE ? STORE_NOTFOUND
                                   : store_fail(s, "hook.endpoint_get");
    sqlite3_reset(st);
    return rc;
}

int store_hook_endpoint_list(store_t *s, int64_t project_id, const char *after_id, int limit,
                             store_hook_endpoint_cb cb, void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " EP_COLS EP_FROM "WHERE w.deleted_at IS NULL "
                                     "AND (?1 = 0 OR w.project_id = ?1) AND w.id > ?2 ORDER BY w.id LIMIT ?3");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    store_bind_str(st, 2, after_id ? after_id : "");
    sqlite3_bind_int(st, 3, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_hook_endpoint_t e;
        if ((rc = ep_row(st, &e)) != STORE_OK)
            break;
        int stop = cb(&e, arg);
        store_hook_endpoint_clear(&e);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "hook.endpoint_list");
    sqlite3_reset(st);
    return rc;
}

/* STORE_NOTFOUND when the statement changed no row. */
static int run_changed(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = run(s, st, what);
    if (rc == STORE_OK && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

int store_hook_endpoint_update(store_t *s, const store_hook_endpoint_t *e, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET url = ?, events = ?, description = ?, "
                                     "ordered = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, e->url);
    store_bind_str(st, 2, e->events);
    store_bind_str(st, 3, e->description);
    sqlite3_bind_int(st, 4, e->ordered ? 1 : 0);
    sqlite3_bind_int64(st, 5, now);
    store_bind_str(st, 6, e->id);
    return run_changed(s, st, "hook.endpoint_update");
}

int store_hook_endpoint_set_secrets(store_t *s, const char *id, const char *secret, const char *old_secret,
                                    int64_t old_until, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET secret = ?, old_secret = ?, "
                                     "old_secret_until = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, secret);
    store_bind_str(st, 2, old_secret);
    bind_opt_i64(st, 3, old_secret ? old_until : 0);
    sqlite3_bind_int64(st, 4, now);
    store_bind_str(st, 5, id);
    return run_changed(s, st, "hook.endpoint_secrets");
}

int store_hook_endpoint_disable(store_t *s, const char *id, const char *reason, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?, "
                                     "updated_at = ? WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, reason);
    sqlite3_bind_int64(st, 2, now);
    store_bind_str(st, 3, id);
    int rc = run_changed(s, st, "hook.endpoint_disable");
    if (rc != STORE_OK)
        return rc;
    st = store_stmt(s, "UPDATE deliveries SET next_attempt_at = " PARKED_SQL " "
                       "WHERE endpoint_id = ? AND status = 'pending'");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    return run(s, st, "hook.endpoint_park");
}

/* New pending deliveries for events of w's project in [since, until) that
 * match its filter, postdate it and were never queued for it. */
static int queue_missed(store_t *s, const char *id, int64_t since, int64_t until, int64_t now, int64_t *n)
{
    sqlite3_stmt *st = store_stmt(
        s, "INSERT INTO deliveries (event_id, endpoint_id, domain_id, status, attempts, next_attempt_at, "
           "created_at) SELECT ev.id, w.id, ev.domain_id, 'pending', 0, "
           "CASE WHEN w.disabled THEN " PARKED_SQL " ELSE ?4 END, ?4 "
           "FROM webhook_endpoints w JOIN events ev ON ev.project_id = w.project_id "
           "WHERE w.id = ?1 AND ev.created_at >= ?2 AND ev.created_at < ?3 AND ev.created_at >= w.created_at "
           "AND " FILTER_MATCHES("w", "ev.type") " "
           "AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.event_id = ev.id AND x.endpoint_id = w.id) "
           "ORDER BY ev.id");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int64(st, 3, until);
    sqlite3_bind_int64(st, 4, now);
    int rc = run(s, st, "hook.queue_missed");
    if (rc == STORE_OK)
        *n += sqlite3_changes(store_db(s));
    return rc;
}

int store_hook_endpoint_enable(store_t *s, const char *id, int64_t since, int64_t now, int64_t *replayed)
{
    *replayed = 0;
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET disabled = 0, disabled_reason = NULL, "
                                     "failing_since = NULL, warned_at = NULL, updated_at = ? "
                                     "WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    int rc = run_changed(s, st, "hook.endpoint_enable");
    if (rc != STORE_OK)
        return rc;
    st = store_stmt(s, "UPDATE deliveries SET next_attempt_at = ?1, attempts = 0, created_at = ?1 "
                       "WHERE endpoint_id = ?2 AND status = 'pending'");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    if ((rc = run(s, st, "hook.endpoint_replay")) != STORE_OK)
        return rc;
    *replayed = sqlite3_changes(store_db(s));
    return queue_missed(s, id, since, now + 1, now, replayed);
}

int store_hook_endpoint_delete(store_t *s, const char *id, int64_t now)
{
    /* The secret goes too: a deleted endpoint never signs again. */
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET deleted_at = ?1, updated_at = ?1, "
                                     "secret = '', old_secret = NULL, old_secret_until = NULL "
                                     "WHERE id = ?2 AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    int rc = run_changed(s, st, "hook.endpoint_delete");
    if (rc != STORE_OK)
        return rc;
    st = store_stmt(s, "UPDATE deliveries SET status = 'cancelled' WHERE endpoint_id = ? AND status = 'pending'");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    return run(s, st, "hook.endpoint_cancel");
}

int store_hook_unpark(store_t *s, const char *id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE deliveries SET next_attempt_at = ?1 WHERE status = 'pending' "
           "AND next_attempt_at = " PARKED_SQL " AND (?2 IS NULL OR endpoint_id = ?2) "
           "AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled = 0 AND deleted_at IS NULL)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    return run(s, st, "hook.unpark");
}

int store_hook_endpoint_failing(store_t *s, const char *id, int64_t now, int64_t *failing_since,
                                int64_t *warned_at, int *disabled)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?1) "
                                     "WHERE id = ?2 RETURNING failing_since, warned_at, disabled");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW    ? STORE_OK
             : step == SQLITE_DONE ? STORE_NOTFOUND
                                   : store_fail(s, "hook.endpoint_failing");
    if (rc == STORE_OK) {
        *failing_since = col_i64(st, 0);
        *warned_at = col_i64(st, 1);
        *disabled = sqlite3_column_int(st, 2);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_fail(s, "hook.endpoint_failing");
    }
    sqlite3_reset(st);
    return rc;
}

int store_hook_endpoint_healthy(store_t *s, const char *id)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET failing_since = NULL, warned_at = NULL "
                                     "WHERE id = ? AND failing_since IS NOT NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    return run(s, st, "hook.endpoint_healthy");
}

int store_hook_endpoint_warned(store_t *s, const char *id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE webhook_endpoints SET warned_at = ? WHERE id = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    return run(s, st, "hook.endpoint_warned");
}

/* --------------------------------------------------------------- engine -- */

void store_hook_message_clear(store_hook_message_t *m)
{
    if (!m)
        return;
    free(m->public_id);
    free(m->type);
    free(m->payload);
    free(m->url);
    if (m->secret) {
        explicit_bzero(m->secret, strlen(m->secret));
        free(m->secret);
    }
    if (m->old_secret) {
        explicit_bzero(m->old_secret, strlen(m->old_secret));
        free(m->old_secret);
    }
    memset(m, 0, sizeof(*m));
}

int store_hook_message(store_t *s, int64_t delivery_id, int64_t now, store_hook_message_t *out)
{
    sqlite3_stmt *st = store_stmt(
        s, "SELECT e.public_id, e.type, e.payload, w.url, w.secret, "
           "CASE WHEN w.old_secret_until > ?2 THEN w.old_secret END "
           "FROM deliveries d JOIN events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id "
           "WHERE d.id = ?1");
    memset(out, 0, sizeof(*out));
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, delivery_id);
    sqlite3_bind_int64(st, 2, now);
    int step = sqlite3_step(st), rc = STORE_OK;
    if (step == SQLITE_ROW) {
        out->public_id = store_col_str(st, 0);
        out->type = store_col_str(st, 1);
        out->payload = store_col_str(st, 2);
        out->payload_len = (size_t)sqlite3_column_bytes(st, 2);
        out->url = store_col_str(st, 3);
        out->secret = store_col_str(st, 4);
        out->old_secret = store_col_str(st, 5);
        if (!out->public_id || !out->type || !out->payload || !out->url || !out->secret) {
            store_hook_message_clear(out);
            rc = STORE_ERR;
        }
    } else {
        rc = step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "hook.message");
    }
    sqlite3_reset(st);
    return rc;
}

int store_hook_due_batch(store_t *s, int64_t now, int64_t after_at, int64_t after_id, store_hook_due_t *out,
                         int max, int *n)
{
    /* Walks deliveries_due in (next_attempt_at, rowid) order from a cursor,
     * so a pass resumes where the last one stopped instead of re-reading rows
     * it could not send (their endpoint was busy). */
    sqlite3_stmt *st = store_stmt(
        s, "SELECT d.id, d.event_id, d.domain_id, d.endpoint_id, d.attempts, d.created_at, d.next_attempt_at, "
           "w.ordered, w.disabled != 0 OR w.deleted_at IS NOT NULL "
           "FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id "
           "WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND (d.next_attempt_at, d.id) > (?2, ?3) "
           "ORDER BY d.next_attempt_at, d.id LIMIT ?4");
    *n = 0;
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, after_at);
    sqlite3_bind_int64(st, 3, after_id);
    sqlite3_bind_int(st, 4, max);
    int step = SQLITE_DONE;
    while (*n < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
        store_hook_due_t *d = &out[*n];
        memset(d, 0, sizeof(*d));
        d->id = sqlite3_column_int64(st, 0);
        d->event_id = sqlite3_column_int64(st, 1);
        d->domain_id = col_i64(st, 2);
        const unsigned char *ep = sqlite3_column_text(st, 3);
        snprintf(d->endpoint_id, sizeof(d->endpoint_id), "%s", ep ? (const char *)ep : "");
        d->attempts = (unsigned)sqlite3_column_int(st, 4);
        d->window_start = sqlite3_column_int64(st, 5);
        d->next_attempt_at = sqlite3_column_int64(st, 6);
        d->ordered = sqlite3_column_int(st, 7);
        d->endpoint_disabled = sqlite3_column_int(st, 8);
        (*n)++;
    }
    int rc = *n == max || step == SQLITE_DONE ? STORE_OK : store_fail(s, "hook.due");
    sqlite3_reset(st);
    if (rc != STORE_OK)
        *n = 0;
    return rc;
}

int store_hook_pending_order(store_t *s, store_hook_order_cb cb, void *arg)
{
    sqlite3_stmt *st = store_stmt(
        s, "SELECT d.endpoint_id, d.domain_id, d.id, d.next_attempt_at, w.disabled FROM deliveries d "
           "JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.status = 'pending' AND d.domain_id IS NOT NULL "
           "AND w.ordered != 0 AND w.deleted_at IS NULL ORDER BY d.endpoint_id, d.domain_id, d.id");
    if (!st)
        return STORE_ERR;
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *ep = sqlite3_column_text(st, 0);
        if (cb(ep ? (const char *)ep : "", sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
               sqlite3_column_int64(st, 3), sqlite3_column_int(st, 4), arg))
            break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "hook.pending_order");
    sqlite3_reset(st);
    return rc;
}

int store_hook_unpark_id(store_t *s, int64_t id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'pending' "
           "AND next_attempt_at = " PARKED_SQL " AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w "
           "WHERE w.id = deliveries.endpoint_id AND w.disabled != 0)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return run(s, st, "hook.unpark_id");
}

int store_hook_unpark_unordered(store_t *s, int64_t now)
{
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE deliveries SET next_attempt_at = ?1 WHERE status = 'pending' "
           "AND next_attempt_at = " PARKED_SQL " AND endpoint_id IN (SELECT id FROM webhook_endpoints "
           "WHERE disabled = 0 AND deleted_at IS NULL AND ordered = 0)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    return run(s, st, "hook.unpark_unordered");
}

int store_hook_park(store_t *s, int64_t id)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE deliveries SET next_attempt_at = " PARKED_SQL " "
                                     "WHERE id = ? AND status = 'pending'");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    return run(s, st, "hook.park");
}

int store_hook_next_due(store_t *s, int64_t now, int64_t *at)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending' "
                                     "AND next_attempt_at > ? AND next_attempt_at < " PARKED_SQL);
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : store_fail(s, "hook.next_due");
    if (rc == STORE_OK) {
        if (sqlite3_column_type(st, 0) == SQLITE_NULL)
            rc = STORE_NOTFOUND;
        else
            *at = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc;
}

static int insert_attempt(store_t *s, const store_hook_attempt_t *a)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO attempts (delivery_id, at, status_code, latency_ms, error, "
                                     "response) VALUES (?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, a->delivery_id);
    sqlite3_bind_int64(st, 2, a->at);
    sqlite3_bind_int(st, 3, a->status_code);
    sqlite3_bind_int64(st, 4, a->latency_ms);
    store_bind_str(st, 5, a->error);
    store_bind_str(st, 6, a->response);
    return run(s, st, "hook.attempt_insert");
}

static int finish_delivery(store_t *s, const store_hook_attempt_t *a, const char *status)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE deliveries SET status = ?, attempts = attempts + 1, "
                                     "last_attempt_at = ? WHERE id = ? AND status = 'pending' AND created_at = ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, status);
    sqlite3_bind_int64(st, 2, a->at);
    sqlite3_bind_int64(st, 3, a->delivery_id);
    sqlite3_bind_int64(st, 4, a->window_start);
    return run(s, st, "hook.delivery_finish");
}

static int reschedule(store_t *s, const store_hook_attempt_t *a, int64_t next_at)
{
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at = ?1, "
           "next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM webhook_endpoints w "
           "WHERE w.id = deliveries.endpoint_id AND w.disabled != 0) THEN " PARKED_SQL " ELSE ?2 END "
           "WHERE id = ?3 AND status = 'pending' AND created_at = ?4");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, a->at);
    sqlite3_bind_int64(st, 2, next_at);
    sqlite3_bind_int64(st, 3, a->delivery_id);
    sqlite3_bind_int64(st, 4, a->window_start);
    return run(s, st, "hook.delivery_retry");
}

int store_hook_record(store_t *s, const store_hook_attempt_t *a, enum store_hook_outcome outcome, int64_t next_at)
{
    int rc = insert_attempt(s, a);
    if (rc != STORE_OK)
        return rc;
    switch (outcome) {
    case STORE_HOOK_SUCCEEDED:
        return finish_delivery(s, a, "succeeded");
    case STORE_HOOK_DEAD:
        return finish_delivery(s, a, "dead");
    case STORE_HOOK_RETRY:
        return reschedule(s, a, next_at);
    case STORE_HOOK_HOLD:
        return reschedule(s, a, STORE_HOOK_PARKED);
    }
    return STORE_ERR;
}

/* ------------------------------------------------------ events for the API -- */

#define EV_COLS "id, public_id, project_id, domain_id, type, sequence, created_at, payload"

void store_hook_event_clear(store_hook_event_t *e)
{
    if (!e)
        return;
    free(e->public_id);
    free(e->type);
    free(e->payload);
    memset(e, 0, sizeof(*e));
}

static int ev_row(sqlite3_stmt *st, store_hook_event_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(st, 0);
    e->public_id = store_col_str(st, 1);
    e->project_id = sqlite3_column_int64(st, 2);
    e->domain_id = col_i64(st, 3);
    e->type = store_col_str(st, 4);
    e->sequence = sqlite3_column_int64(st, 5);
    e->created_at = sqlite3_column_int64(st, 6);
    e->payload = store_col_str(st, 7);
    if (!e->public_id || !e->type || !e->payload) {
        store_hook_event_clear(e);
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_hook_event_get(store_t *s, const char *public_id, store_hook_event_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " EV_COLS " FROM events WHERE public_id = ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, public_id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW    ? ev_row(st, out)
             : step == SQLITE_DONE ? STORE_NOTFOUND
                                   : store_fail(s, "hook.event_get");
    sqlite3_reset(st);
    return rc;
}

int store_hook_event_list(store_t *s, int64_t project_id, int64_t after_id, int64_t since, const char *types,
                          int limit, store_hook_event_cb cb, void *arg)
{
    /* Two texts so that each can use its own index (events_project, or the
     * rowid for operators listing every project). */
    sqlite3_stmt *st =
        project_id > 0
            ? store_stmt(s, "SELECT " EV_COLS " FROM events WHERE project_id = ?1 AND id > ?2 AND created_at >= ?3 "
                            "AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4))) ORDER BY id LIMIT ?5")
            : store_stmt(s, "SELECT " EV_COLS " FROM events WHERE ?1 = 0 AND id > ?2 AND created_at >= ?3 "
                            "AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4))) ORDER BY id LIMIT ?5");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int64(st, 3, since);
    store_bind_str(st, 4, types);
    sqlite3_bind_int(st, 5, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_hook_event_t e;
        if ((rc = ev_row(st, &e)) != STORE_OK)
            break;
        int stop = cb(&e, arg);
        store_hook_event_clear(&e);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "hook.event_list");
    sqlite3_reset(st);
    return rc;
}

#define DLV_COLS                                                                                        \
    "d.id, d.endpoint_id, e.public_id, e.type, e.created_at, d.status, d.attempts, d.next_attempt_at, " \
    "d.last_attempt_at, d.created_at, "                                                                 \
    "(SELECT a.status_code FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1), "    \
    "(SELECT a.error FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1)"
#define DLV_FROM " FROM deliveries d JOIN events e ON e.id = d.event_id "

static void dlv_clear(store_hook_delivery_t *d)
{
    free(d->endpoint_id);
    free(d->event_public_id);
    free(d->event_type);
    free(d->status);
    free(d->last_error);
    memset(d, 0, sizeof(*d));
}

static int dlv_row(sqlite3_stmt *st, store_hook_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    d->id = sqlite3_column_int64(st, 0);
    d->endpoint_id = store_col_str(st, 1);
    d->event_public_id = store_col_str(st, 2);
    d->event_type = store_col_str(st, 3);
    d->event_created_at = sqlite3_column_int64(st, 4);
    d->status = store_col_str(st, 5);
    d->attempts = (unsigned)sqlite3_column_int(st, 6);
    d->next_attempt_at = col_i64(st, 7);
    d->last_attempt_at = col_i64(st, 8);
    d->created_at = sqlite3_column_int64(st, 9);
    d->last_status_code = sqlite3_column_type(st, 10) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 10);
    d->last_error = store_col_str(st, 11);
    if (strcmp(d->status ? d->status : "", "pending") != 0)
        d->next_attempt_at = 0;
    if (!d->endpoint_id || !d->event_public_id || !d->event_type || !d->status) {
        dlv_clear(d);
        return STORE_ERR;
    }
    return STORE_OK;
}

static int each_dlv(store_t *s, sqlite3_stmt *st, store_hook_delivery_cb cb, void *arg, const char *what)
{
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_hook_delivery_t d;
        if ((rc = dlv_row(st, &d)) != STORE_OK)
            break;
        int stop = cb(&d, arg);
        dlv_clear(&d);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

int store_hook_event_deliveries(store_t *s, int64_t event_id, store_hook_delivery_cb cb, void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " DLV_COLS DLV_FROM "WHERE d.event_id = ? ORDER BY d.id");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, event_id);
    return each_dlv(s, st, cb, arg, "hook.event_deliveries");
}

int store_hook_dead_letters(store_t *s, const char *endpoint_id, int64_t before_id, int limit,
                            store_hook_delivery_cb cb, void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " DLV_COLS DLV_FROM "WHERE d.endpoint_id = ? AND d.status = 'dead' "
                                     "AND d.id < ? ORDER BY d.id DESC LIMIT ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, endpoint_id);
    sqlite3_bind_int64(st, 2, before_id > 0 ? before_id : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    return each_dlv(s, st, cb, arg, "hook.dead_letters");
}

int store_hook_attempt_list(store_t *s, const char *endpoint_id, int64_t before_id, int limit,
                            store_hook_attempt_cb cb, void *arg)
{
    /* CROSS JOIN keeps attempts as the outer loop: newest rows first, and the
     * scan stops as soon as limit rows of this endpoint are found. */
    sqlite3_stmt *st = store_stmt(
        s, "SELECT a.id, a.delivery_id, e.public_id, e.type, a.at, a.status_code, a.latency_ms, a.error, "
           "a.response FROM attempts a CROSS JOIN deliveries d CROSS JOIN events e "
           "WHERE d.id = a.delivery_id AND e.id = d.event_id AND d.endpoint_id = ?1 AND a.id < ?2 "
           "ORDER BY a.id DESC LIMIT ?3");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, endpoint_id);
    sqlite3_bind_int64(st, 2, before_id > 0 ? before_id : INT64_MAX);
    sqlite3_bind_int(st, 3, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_hook_attempt_row_t a = {
            .id = sqlite3_column_int64(st, 0),
            .delivery_id = sqlite3_column_int64(st, 1),
            .event_public_id = store_col_str(st, 2),
            .event_type = store_col_str(st, 3),
            .at = sqlite3_column_int64(st, 4),
            .status_code = sqlite3_column_int(st, 5),
            .latency_ms = sqlite3_column_int64(st, 6),
            .error = store_col_str(st, 7),
            .response = store_col_str(st, 8),
        };
        int stop = 1;
        if (!a.event_public_id || !a.event_type)
            rc = STORE_ERR;
        else
            stop = cb(&a, arg);
        free(a.event_public_id);
        free(a.event_type);
        free(a.error);
        free(a.response);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "hook.attempt_list");
    sqlite3_reset(st);
    return rc;
}

int store_hook_redeliver(store_t *s, const store_hook_event_t *ev, const char *endpoint_id, int64_t now, int64_t *n)
{
    /* An upsert: a delivery that exists (delivered, dead, pending) starts
     * over with a fresh window; a missing one is created. */
    sqlite3_stmt *st = store_stmt(
        s, "INSERT INTO deliveries (event_id, endpoint_id, domain_id, status, attempts, next_attempt_at, "
           "created_at) SELECT ?1, w.id, ?2, 'pending', 0, CASE WHEN w.disabled THEN " PARKED_SQL " ELSE ?3 END, ?3 "
           "FROM webhook_endpoints w WHERE w.project_id = ?4 AND w.deleted_at IS NULL "
           "AND ((?5 IS NULL AND " FILTER_MATCHES("w", "?6") ") OR w.id = ?5) "
           "ON CONFLICT (event_id, endpoint_id) DO UPDATE SET status = 'pending', attempts = 0, "
           "next_attempt_at = excluded.next_attempt_at, created_at = excluded.created_at");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, ev->id);
    bind_opt_i64(st, 2, ev->domain_id);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, ev->project_id);
    store_bind_str(st, 5, endpoint_id);
    store_bind_str(st, 6, ev->type);
    int rc = run(s, st, "hook.redeliver");
    *n = rc == STORE_OK ? sqlite3_changes(store_db(s)) : 0;
    return rc;
}

int store_hook_recover(store_t *s, const store_hook_endpoint_t *e, int64_t since, int64_t until, int64_t now,
                       int64_t *n)
{
    *n = 0;
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE deliveries SET status = 'pending', attempts = 0, created_at = ?4, "
           "next_attempt_at = CASE WHEN ?5 THEN " PARKED_SQL " ELSE ?4 END "
           "WHERE endpoint_id = ?1 AND status IN ('dead', 'cancelled') AND event_id IN "
           "(SELECT id FROM events WHERE project_id = ?6 AND created_at >= ?2 AND created_at < ?3)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, e->id);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int64(st, 3, until);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int(st, 5, e->disabled);
    sqlite3_bind_int64(st, 6, e->project_id);
    int rc = run(s, st, "hook.recover");
    if (rc != STORE_OK)
        return rc;
    *n = sqlite3_changes(store_db(s));
    return queue_missed(s, e->id, since, until, now, n);
}

/* --------------------------------------------------------------- retention -- */

int store_hook_purge(store_t *s, int64_t cutoff, int batch, int *deleted)
{
    *deleted = 0;
    /* attempts.at has no index, but ids grow with time: look only at the
     * oldest batch rows, so a purge never scans the table. */
    static const char *const sql[] = {
        "DELETE FROM attempts WHERE id IN (SELECT id FROM (SELECT id, at FROM attempts ORDER BY id LIMIT ?2) "
        "WHERE at < ?1)",
        "DELETE FROM attempts WHERE delivery_id IN (SELECT d.id FROM deliveries d WHERE d.event_id IN "
        "(SELECT id FROM events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2))",
        "DELETE FROM deliveries WHERE event_id IN "
        "(SELECT id FROM events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
    };
    int rc = store_begin(s);
    if (rc != STORE_OK)
        return rc;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = store_stmt(s, sql[i]);
        if (!st) {
            rc = STORE_ERR;
            break;
        }
        sqlite3_bind_int64(st, 1, cutoff);
        sqlite3_bind_int(st, 2, batch);
        if ((rc = run(s, st, "hook.purge")) != STORE_OK)
            break;
        if (i == 0 || i == 3)
            *deleted += sqlite3_changes(store_db(s));
    }
    if (rc != STORE_OK) {
        store_rollback(s);
        *deleted = 0;
        return rc;
    }
    return store_commit(s);
}
