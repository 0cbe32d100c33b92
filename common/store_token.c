#include "common/store_token.h"

#include <stdlib.h>
#include <string.h>

#define TOKEN_COLS "t.id, t.project_id, p.slug, p.deleted_at IS NOT NULL, t.hash, t.scopes, t.name, " \
                   "t.created_at, t.last_used_at, t.revoked_at"
#define TOKEN_FROM " FROM tokens t LEFT JOIN projects p ON p.id = t.project_id "

void store_token_clear(store_token_t *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->project_slug);
    free(t->scopes);
    free(t->name);
    memset(t, 0, sizeof(*t));
}

static int read_row(sqlite3_stmt *st, store_token_t *t)
{
    memset(t, 0, sizeof(*t));
    t->id = store_col_str(st, 0);
    t->project_id = sqlite3_column_int64(st, 1);
    t->project_slug = store_col_str(st, 2);
    t->project_deleted = sqlite3_column_int(st, 3);
    const void *h = sqlite3_column_blob(st, 4);
    if (h && sqlite3_column_bytes(st, 4) == CRYPTO_SHA256_LEN)
        memcpy(t->hash, h, CRYPTO_SHA256_LEN);
    t->scopes = store_col_str(st, 5);
    t->name = store_col_str(st, 6);
    t->created_at = sqlite3_column_int64(st, 7);
    t->last_used_at = sqlite3_column_int64(st, 8);
    t->revoked_at = sqlite3_column_int64(st, 9);
    if (!t->id || !t->scopes || !t->name || (t->project_id && !t->project_slug)) {
        store_token_clear(t);
        return STORE_ERR;
    }
    return STORE_OK;
}

static int fetch_one(store_t *s, sqlite3_stmt *st, store_token_t *out, const char *what)
{
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? read_row(st, out) : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

int store_token_create(store_t *s, const store_token_t *t)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO tokens (id, project_id, hash, scopes, name, created_at) "
                                     "VALUES (?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, t->id);
    if (t->project_id > 0)
        sqlite3_bind_int64(st, 2, t->project_id);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_blob(st, 3, t->hash, CRYPTO_SHA256_LEN, SQLITE_STATIC);
    store_bind_str(st, 4, t->scopes);
    store_bind_str(st, 5, t->name ? t->name : "");
    sqlite3_bind_int64(st, 6, t->created_at);
    int rc = store_step_rc(s, sqlite3_step(st), "token.create");
    sqlite3_reset(st);
    return rc;
}

int store_token_by_hash(store_t *s, const unsigned char hash[CRYPTO_SHA256_LEN], store_token_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " TOKEN_COLS TOKEN_FROM "WHERE t.hash = ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_blob(st, 1, hash, CRYPTO_SHA256_LEN, SQLITE_STATIC);
    return fetch_one(s, st, out, "token.by_hash");
}

int store_token_get(store_t *s, const char *id, store_token_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " TOKEN_COLS TOKEN_FROM "WHERE t.id = ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, id);
    return fetch_one(s, st, out, "token.get");
}

int store_token_list(store_t *s, int64_t project_id, const char *before_id, int limit, store_token_cb cb,
                     void *arg)
{
    /* ?1 selects the population, ?2 is the cursor (rowid order = creation
     * order, compared through the id's row). */
    sqlite3_stmt *st = store_stmt(s, "SELECT " TOKEN_COLS TOKEN_FROM
                                     "WHERE (?1 = -1 OR (?1 = 0 AND t.project_id IS NULL) OR t.project_id = ?1) "
                                     "AND (?2 IS NULL OR t.rowid < (SELECT rowid FROM tokens WHERE id = ?2)) "
                                     "ORDER BY t.rowid DESC LIMIT ?3");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    store_bind_str(st, 2, before_id);
    sqlite3_bind_int(st, 3, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_token_t t;
        if (read_row(st, &t) != STORE_OK) {
            rc = STORE_ERR;
            break;
        }
        int stop = cb(&t, arg);
        store_token_clear(&t);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "token.list");
    sqlite3_reset(st);
    return rc;
}

static int changed(store_t *s, sqlite3_stmt *st, const char *what, int need_one)
{
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    if (rc == STORE_OK && need_one && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

int store_token_revoke(store_t *s, const char *id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    store_bind_str(st, 2, id);
    return changed(s, st, "token.revoke", 1);
}

int store_token_revoke_project(store_t *s, int64_t project_id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE tokens SET revoked_at = ? WHERE project_id = ? AND revoked_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, project_id);
    return changed(s, st, "token.revoke_project", 0);
}

int store_token_touch(store_t *s, const char *id, int64_t at)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 "
                                     "AND (last_used_at IS NULL OR last_used_at < ?1)");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, at);
    store_bind_str(st, 2, id);
    return changed(s, st, "token.touch", 0);
}

int store_token_count_operator(store_t *s, int64_t *n)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT count(*) FROM tokens WHERE project_id IS NULL");
    if (!st)
        return STORE_ERR;
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : store_fail(s, "token.count_operator");
    if (rc == STORE_OK)
        *n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc;
}
