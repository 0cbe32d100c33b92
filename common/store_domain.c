#include "common/store_domain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The current certificate is the live (not superseded) row with the latest
 * notAfter; both subqueries use certificates_current. */
#define DOMAIN_COLS                                                                                     \
    "d.id, d.hostname, d.project_id, p.slug, d.state, d.verified, d.verified_at, d.verify_method, "     \
    "d.challenge, d.metadata, d.sequence, d.cert_status, d.cert_error, d.created_at, d.updated_at, "    \
    "d.removed_at, "                                                                                    \
    "(SELECT c.not_after FROM certificates c WHERE c.hostname = d.hostname AND c.superseded_at IS NULL " \
    "ORDER BY c.not_after DESC LIMIT 1), "                                                              \
    "(SELECT CASE WHEN c.issuer_name != '' THEN c.issuer_name ELSE c.issuer END FROM certificates c "   \
    "WHERE c.hostname = d.hostname AND c.superseded_at IS NULL ORDER BY c.not_after DESC LIMIT 1)"
#define DOMAIN_FROM " FROM domains d JOIN projects p ON p.id = d.project_id "

void store_domain_clear(store_domain_t *d)
{
    if (!d)
        return;
    free(d->hostname);
    free(d->project_slug);
    free(d->state);
    free(d->verify_method);
    free(d->challenge);
    free(d->metadata);
    free(d->cert_status);
    free(d->cert_error);
    free(d->cert_issuer);
    memset(d, 0, sizeof(*d));
}

static int read_row(sqlite3_stmt *st, store_domain_t *d)
{
    memset(d, 0, sizeof(*d));
    d->id = sqlite3_column_int64(st, 0);
    d->hostname = store_col_str(st, 1);
    d->project_id = sqlite3_column_int64(st, 2);
    d->project_slug = store_col_str(st, 3);
    d->state = store_col_str(st, 4);
    d->verified = sqlite3_column_int(st, 5);
    d->verified_at = sqlite3_column_int64(st, 6);
    d->verify_method = store_col_str(st, 7);
    d->challenge = store_col_str(st, 8);
    d->metadata = store_col_str(st, 9);
    d->sequence = sqlite3_column_int64(st, 10);
    d->cert_status = store_col_str(st, 11);
    d->cert_error = store_col_str(st, 12);
    d->created_at = sqlite3_column_int64(st, 13);
    d->updated_at = sqlite3_column_int64(st, 14);
    d->removed_at = sqlite3_column_int64(st, 15);
    d->cert_not_after = sqlite3_column_int64(st, 16);
    d->cert_issuer = store_col_str(st, 17);
    if (!d->hostname || !d->project_slug || !d->state || !d->challenge || !d->metadata || !d->cert_status) {
        store_domain_clear(d);
        return STORE_ERR;
    }
    return STORE_OK;
}

static int fetch_one(store_t *s, sqlite3_stmt *st, store_domain_t *out, const char *what)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? read_row(st, out) : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

static int each_row(store_t *s, sqlite3_stmt *st, store_domain_cb cb, void *arg, const char *what)
{
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_domain_t d;
        if (read_row(st, &d) != STORE_OK) {
            rc = STORE_ERR;
            break;
        }
        int stop = cb(&d, arg);
        store_domain_clear(&d);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

int store_domain_insert(store_t *s, store_domain_t *d)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO domains (hostname, project_id, state, verified, verified_at, "
                                     "verify_method, challenge, metadata, cert_status, created_at, updated_at, "
                                     "next_probe_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10,?10)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, d->hostname);
    sqlite3_bind_int64(st, 2, d->project_id);
    store_bind_str(st, 3, d->state ? d->state : "pending_ownership");
    sqlite3_bind_int(st, 4, d->verified ? 1 : 0);
    if (d->verified_at)
        sqlite3_bind_int64(st, 5, d->verified_at);
    else
        sqlite3_bind_null(st, 5);
    store_bind_str(st, 6, d->verify_method);
    store_bind_str(st, 7, d->challenge);
    store_bind_str(st, 8, d->metadata ? d->metadata : "{}");
    store_bind_str(st, 9, d->cert_status ? d->cert_status : "none");
    sqlite3_bind_int64(st, 10, d->created_at);
    int rc = store_step_rc(s, sqlite3_step(st), "domain.insert");
    sqlite3_reset(st);
    if (rc == STORE_OK)
        d->id = sqlite3_last_insert_rowid(store_db(s));
    return rc;
}

int store_domain_active(store_t *s, const char *host, store_domain_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " DOMAIN_COLS DOMAIN_FROM
                                     "WHERE d.hostname = ? AND d.removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    return fetch_one(s, st, out, "domain.active");
}

int store_domain_latest(store_t *s, const char *host, int64_t project_id, store_domain_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " DOMAIN_COLS DOMAIN_FROM
                                     "WHERE d.hostname = ?1 AND (?2 = 0 OR d.project_id = ?2) "
                                     "ORDER BY d.removed_at IS NULL DESC, d.id DESC LIMIT 1");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    sqlite3_bind_int64(st, 2, project_id);
    return fetch_one(s, st, out, "domain.latest");
}

int store_domain_get(store_t *s, int64_t id, store_domain_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " DOMAIN_COLS DOMAIN_FROM "WHERE d.id = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    return fetch_one(s, st, out, "domain.get");
}

/* Two statements so that a project's listing walks domains_project and the
 * operator's walks the primary key, instead of one that scans everything. */
#define LIST_FILTER "AND d.id > ?1 AND (?3 IS NULL OR d.state = ?3) AND (?4 < 0 OR d.verified = ?4) " \
                    "AND (?5 OR d.removed_at IS NULL) ORDER BY d.id LIMIT ?6"

int store_domain_list(store_t *s, const store_domain_filter_t *f, store_domain_cb cb, void *arg)
{
    sqlite3_stmt *st = f->project_id > 0
                           ? store_stmt(s, "SELECT " DOMAIN_COLS DOMAIN_FROM "WHERE d.project_id = ?2 " LIST_FILTER)
                           : store_stmt(s, "SELECT " DOMAIN_COLS DOMAIN_FROM "WHERE ?2 = 0 " LIST_FILTER);
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, f->after_id);
    sqlite3_bind_int64(st, 2, f->project_id > 0 ? f->project_id : 0);
    store_bind_str(st, 3, f->state);
    sqlite3_bind_int(st, 4, f->verified);
    sqlite3_bind_int(st, 5, f->include_removed ? 1 : 0);
    sqlite3_bind_int(st, 6, f->limit);
    return each_row(s, st, cb, arg, "domain.list");
}

static int changed_one(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    if (rc == STORE_OK && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

int store_domain_set_metadata(store_t *s, int64_t id, const char *metadata, size_t len, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE domains SET metadata = ?, updated_at = ? "
                                     "WHERE id = ? AND removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_text(st, 1, metadata, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, id);
    return changed_one(s, st, "domain.set_metadata");
}

int store_domain_remove(store_t *s, int64_t id, int64_t now)
{
    /* The row stays as history; probing stops. Certificates are untouched and
     * expire naturally. */
    sqlite3_stmt *st = store_stmt(s, "UPDATE domains SET removed_at = ?1, updated_at = ?1, next_probe_at = NULL "
                                     "WHERE id = ?2 AND removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, id);
    return changed_one(s, st, "domain.remove");
}

int store_domain_count_active(store_t *s, int64_t project_id, int64_t *n)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT active_domains FROM projects WHERE id = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "domain.count_active");
    if (rc == STORE_OK)
        *n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc;
}

int store_domain_resolve(store_t *s, const char *host, void (*cb)(const store_resolve_t *r, void *arg), void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT d.project_id, p.slug, d.verified, d.verified_at, d.state, d.metadata "
                                     "FROM domains d JOIN projects p ON p.id = d.project_id "
                                     "WHERE d.hostname = ? AND d.removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int rc;
    if (step == SQLITE_ROW) {
        /* As blobs: the bytes in place, where column_text would copy each
         * string to NUL-terminate it (a malloc per column per lookup). */
        store_resolve_t r = {
            .project_id = sqlite3_column_int64(st, 0),
            .project_slug = sqlite3_column_blob(st, 1),
            .project_slug_len = (size_t)sqlite3_column_bytes(st, 1),
            .verified = sqlite3_column_int(st, 2),
            .verified_at = sqlite3_column_int64(st, 3),
            .state = sqlite3_column_blob(st, 4),
            .state_len = (size_t)sqlite3_column_bytes(st, 4),
            .metadata = sqlite3_column_blob(st, 5),
            .metadata_len = (size_t)sqlite3_column_bytes(st, 5),
        };
        rc = r.project_slug && r.state && r.metadata ? STORE_OK : STORE_ERR;
        if (rc == STORE_OK)
            cb(&r, arg);
    } else {
        rc = step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "domain.resolve");
    }
    sqlite3_reset(st);
    return rc;
}

int store_domain_local_ca_pem(store_t *s, char **pem)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT cert_pem FROM local_ca WHERE id = 1");
    if (!st)
        return STORE_ERR;
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "local_ca.get");
    if (rc == STORE_OK && !(*pem = store_col_str(st, 0)))
        rc = STORE_ERR;
    sqlite3_reset(st);
    return rc;
}
