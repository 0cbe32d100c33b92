#include "common/store_verify.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/domainobj.h"
#include "common/store_domain.h"
#include "common/store_event.h"

/* Copies column i into a fixed buffer; -1 when it does not fit. */
static int col_copy(sqlite3_stmt *st, int i, char *buf, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
    if (n >= len)
        return -1;
    if (n)
        memcpy(buf, t, n);
    buf[n] = '\0';
    return 0;
}

#define TARGET_COLS                                                                                \
    "d.id, d.project_id, d.hostname, d.challenge, "                                                \
    "COALESCE(json_extract(p.settings, '$.verification'), ''), d.state, d.verified, d.next_probe_at "
#define TARGET_FROM " FROM domains d JOIN projects p ON p.id = d.project_id "

/* Never skips a row: a due row that could not be read would stay due and
 * come back first on every read. A value too long for its buffer (none the
 * API writes) degrades: no TXT value, every DNS method, an unknown state. */
static void read_target(sqlite3_stmt *st, store_verify_target_t *t)
{
    t->id = sqlite3_column_int64(st, 0);
    t->project_id = sqlite3_column_int64(st, 1);
    t->verified = sqlite3_column_int(st, 6);
    t->next_probe_at = sqlite3_column_int64(st, 7);
    if (col_copy(st, 2, t->hostname, sizeof(t->hostname)) != 0)
        t->hostname[0] = '\0'; /* probe_run refuses it: recorded as unprobeable */
    if (col_copy(st, 3, t->challenge, sizeof(t->challenge)) != 0)
        t->challenge[0] = '\0';
    if (col_copy(st, 4, t->verification, sizeof(t->verification)) != 0)
        t->verification[0] = '\0';
    if (col_copy(st, 5, t->state, sizeof(t->state)) != 0)
        t->state[0] = '\0';
}

/* Steps st (bound) through cb; *n counts the rows handed out. */
static int due_rows(store_t *s, sqlite3_stmt *st, int *n, int (*cb)(const store_verify_target_t *t, void *arg),
                    void *arg)
{
    int step = SQLITE_DONE, rc = STORE_OK, stop = 0;
    while (!stop && (step = sqlite3_step(st)) == SQLITE_ROW) {
        store_verify_target_t t;
        read_target(st, &t);
        (*n)++;
        stop = cb(&t, arg);
    }
    if (!stop && step != SQLITE_DONE)
        rc = store_fail(s, "verify.due");
    sqlite3_reset(st);
    return rc == STORE_OK && stop ? 1 : rc;
}

int store_verify_due(store_t *s, int64_t now, int limit, int (*cb)(const store_verify_target_t *t, void *arg),
                     void *arg)
{
    /* The WHERE repeats the partial index's condition so the planner walks
     * domains_next_probe instead of scanning the table; the index holds the
     * rowid after next_probe_at, so "ORDER BY next_probe_at, id" costs no sort. */
    sqlite3_stmt *st = store_stmt(s, "SELECT " TARGET_COLS TARGET_FROM
                                     "WHERE d.removed_at IS NULL AND d.next_probe_at IS NOT NULL "
                                     "AND d.next_probe_at <= ?1 ORDER BY d.next_probe_at, d.id LIMIT ?2");
    int n = 0;
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, limit);
    int rc = due_rows(s, st, &n, cb, arg);
    return rc > 0 ? STORE_OK : rc;
}

int store_verify_due_after(store_t *s, int64_t now, int64_t after_at, int64_t after_id, int limit,
                           int (*cb)(const store_verify_target_t *t, void *arg), void *arg)
{
    /* Two index range scans rather than one row-value test: SQLite would
     * start "(next_probe_at, id) > (?, ?)" at next_probe_at and step over
     * every tie, and a bulk import leaves many rows with one next_probe_at. */
    sqlite3_stmt *ties = store_stmt(s, "SELECT " TARGET_COLS TARGET_FROM
                                       "WHERE d.removed_at IS NULL AND d.next_probe_at IS NOT NULL "
                                       "AND d.next_probe_at = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3");
    int n = 0, rc;
    if (!ties)
        return STORE_ERR;
    if (after_at > now)
        return STORE_OK;
    sqlite3_bind_int64(ties, 1, after_at);
    sqlite3_bind_int64(ties, 2, after_id);
    sqlite3_bind_int(ties, 3, limit);
    if ((rc = due_rows(s, ties, &n, cb, arg)) != STORE_OK || n >= limit)
        return rc > 0 ? STORE_OK : rc;
    /* Only now: fetching a statement may evict another from the cache. */
    sqlite3_stmt *later = store_stmt(s, "SELECT " TARGET_COLS TARGET_FROM
                                        "WHERE d.removed_at IS NULL AND d.next_probe_at IS NOT NULL "
                                        "AND d.next_probe_at > ?1 AND d.next_probe_at <= ?2 "
                                        "ORDER BY d.next_probe_at, d.id LIMIT ?3");
    if (!later)
        return STORE_ERR;
    sqlite3_bind_int64(later, 1, after_at);
    sqlite3_bind_int64(later, 2, now);
    sqlite3_bind_int(later, 3, limit - n);
    rc = due_rows(s, later, &n, cb, arg);
    return rc > 0 ? STORE_OK : rc;
}

static int target_one(store_t *s, sqlite3_stmt *st, store_verify_target_t *out, const char *what)
{
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW) {
        read_target(st, out);
        rc = STORE_OK;
    } else if (step == SQLITE_DONE)
        rc = STORE_NOTFOUND;
    else
        rc = store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

int store_verify_target_by_id(store_t *s, int64_t id, store_verify_target_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " TARGET_COLS TARGET_FROM "WHERE d.id = ? AND d.removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    return target_one(s, st, out, "verify.target_id");
}

int store_verify_target_by_host(store_t *s, const char *host, store_verify_target_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " TARGET_COLS TARGET_FROM
                                     "WHERE d.hostname = ? AND d.removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    return target_one(s, st, out, "verify.target_host");
}

int store_verify_current(store_t *s, int64_t id, int64_t now, store_verify_current_t *out)
{
    /* has_cert: what domainobj reports as "issued" — the recorded status,
     * or a live certificate row for the hostname (certificates_current). */
    sqlite3_stmt *st = store_stmt(
        s, "SELECT d.project_id, d.state, d.verified, d.created_at, "
           "d.cert_status = 'issued' OR EXISTS (SELECT 1 FROM certificates c WHERE c.hostname = d.hostname "
           "AND c.superseded_at IS NULL AND c.not_after > ?2) "
           "FROM domains d WHERE d.id = ?1 AND d.removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    int step = sqlite3_step(st), rc;
    if (step == SQLITE_ROW) {
        out->project_id = sqlite3_column_int64(st, 0);
        out->verified = sqlite3_column_int(st, 2);
        out->created_at = sqlite3_column_int64(st, 3);
        out->has_cert = sqlite3_column_int(st, 4);
        if (col_copy(st, 1, out->state, sizeof(out->state)) != 0)
            out->state[0] = '\0'; /* unknown: the caller keeps whatever is stored */
        rc = STORE_OK;
    } else {
        rc = step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "verify.current");
    }
    sqlite3_reset(st);
    return rc;
}

static int insert_check(store_t *s, const store_verify_apply_t *a)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO checks (domain_id, at, method, outcome, verified, summary) "
                                     "VALUES (?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, a->domain_id);
    sqlite3_bind_int64(st, 2, a->now);
    store_bind_str(st, 3, a->method);
    store_bind_str(st, 4, a->outcome);
    sqlite3_bind_int(st, 5, a->probe_verified ? 1 : 0);
    store_bind_str(st, 6, a->summary ? a->summary : "");
    int rc = store_step_rc(s, sqlite3_step(st), "verify.check");
    sqlite3_reset(st);
    return rc;
}

/* Deletes what lies beyond the newest KEEP checks: one seek on checks_domain
 * finds the boundary, and in steady state one row goes per row written. */
static int trim_checks(store_t *s, int64_t domain_id)
{
    sqlite3_stmt *st = store_stmt(s, "DELETE FROM checks WHERE domain_id = ?1 AND id <= "
                                     "(SELECT id FROM checks WHERE domain_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, domain_id);
    sqlite3_bind_int(st, 2, STORE_VERIFY_KEEP_CHECKS);
    int rc = store_step_rc(s, sqlite3_step(st), "verify.trim");
    sqlite3_reset(st);
    return rc;
}

static int update_domain(store_t *s, const store_verify_apply_t *a)
{
    /* SET expressions see the row as it was, so "verified = 0" below means
     * "was not verified before this probe": verification is one-way and its
     * time and method are those of the first success. */
    sqlite3_stmt *st = store_stmt(
        s, "UPDATE domains SET "
           "updated_at = CASE WHEN state != COALESCE(?2, state) OR (?3 AND verified = 0) THEN ?4 ELSE updated_at END, "
           "state = COALESCE(?2, state), "
           "verified_at = CASE WHEN ?3 AND verified = 0 THEN ?4 ELSE verified_at END, "
           "verify_method = CASE WHEN ?3 AND verified = 0 THEN ?5 ELSE verify_method END, "
           "verified = CASE WHEN ?3 THEN 1 ELSE verified END, "
           "next_probe_at = ?6, last_probe_at = ?4, "
           "drifted_at = CASE ?7 WHEN 1 THEN COALESCE(drifted_at, ?4) WHEN 0 THEN NULL ELSE drifted_at END "
           "WHERE id = ?1 AND removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, a->domain_id);
    store_bind_str(st, 2, a->state);
    sqlite3_bind_int(st, 3, a->become_verified ? 1 : 0);
    sqlite3_bind_int64(st, 4, a->now);
    store_bind_str(st, 5, a->verify_method);
    if (a->next_probe_at > 0)
        sqlite3_bind_int64(st, 6, a->next_probe_at);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int(st, 7, a->drift);
    int rc = store_step_rc(s, sqlite3_step(st), "verify.update");
    sqlite3_reset(st);
    if (rc == STORE_OK && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

static int set_opt(json_t *o, const char *key, const char *v)
{
    return v ? json_object_set_new(o, key, json_string(v)) : 0;
}

/* {"domain":{…},"method":…,"reason":…,"hint":…} with the stored metadata. */
static char *event_data(const store_domain_t *d, const store_verify_apply_t *a)
{
    json_t *root = json_object();
    json_t *obj = domainobj_json(d, a->cname_target);
    char *text = NULL;
    if (!root || !obj) {
        json_decref(obj);
        goto out;
    }
    if (json_object_set_new(root, "domain", obj) != 0) /* takes obj even when it fails */
        goto out;
    if (set_opt(root, "method", a->event_method) || set_opt(root, "reason", a->event_reason) ||
        set_opt(root, "hint", a->event_hint))
        goto out;
    text = domainobj_dumps(root, d->metadata);
out:
    json_decref(root);
    return text;
}

static int emit_event(store_t *s, const store_verify_apply_t *a)
{
    store_domain_t d;
    int rc = store_domain_get(s, a->domain_id, &d);
    if (rc != STORE_OK)
        return rc;
    char *data = event_data(&d, a);
    rc = data ? store_event_emit(s, d.project_id, d.id, a->event, data, NULL) : STORE_ERR;
    free(data);
    store_domain_clear(&d);
    return rc;
}

int store_verify_apply(store_t *s, const store_verify_apply_t *a)
{
    if (!store_in_tx(s))
        return STORE_ERR;
    int rc = update_domain(s, a);
    if (rc != STORE_OK)
        return rc;
    if ((rc = insert_check(s, a)) != STORE_OK || (rc = trim_checks(s, a->domain_id)) != STORE_OK)
        return rc;
    if (a->event)
        rc = emit_event(s, a);
    return rc;
}

int store_verify_checks(store_t *s, int64_t domain_id, int limit, int (*cb)(const store_verify_check_t *c, void *arg),
                        void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT id, at, method, outcome, verified, summary FROM checks "
                                     "WHERE domain_id = ? ORDER BY id DESC LIMIT ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, domain_id);
    sqlite3_bind_int(st, 2, limit);
    int step, rc = STORE_OK;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_verify_check_t c = {
            .id = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .method = (const char *)sqlite3_column_text(st, 2),
            .outcome = (const char *)sqlite3_column_text(st, 3),
            .verified = sqlite3_column_int(st, 4),
            .summary = (const char *)sqlite3_column_text(st, 5),
        };
        if (!c.method || !c.outcome || !c.summary) {
            rc = STORE_ERR;
            break;
        }
        if (cb(&c, arg))
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "verify.checks");
    sqlite3_reset(st);
    return rc;
}
