#include "common/store_project.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define PROJECT_COLS "id, slug, upstream, upstream_fallback, max_domains, settings, hmac_key, " \
                     "created_at, updated_at, deleted_at, active_domains"

void store_project_clear(store_project_t *p)
{
    if (!p)
        return;
    free(p->slug);
    free(p->upstream);
    free(p->upstream_fallback);
    free(p->settings);
    memset(p, 0, sizeof(*p));
}

static int read_row(sqlite3_stmt *st, store_project_t *p)
{
    memset(p, 0, sizeof(*p));
    p->id = sqlite3_column_int64(st, 0);
    p->slug = store_col_str(st, 1);
    p->upstream = store_col_str(st, 2);
    p->upstream_fallback = store_col_str(st, 3);
    p->max_domains = sqlite3_column_int64(st, 4);
    p->settings = store_col_str(st, 5);
    const void *key = sqlite3_column_blob(st, 6);
    int keylen = sqlite3_column_bytes(st, 6);
    if (key && keylen == STORE_PROJECT_KEY_LEN)
        memcpy(p->hmac_key, key, STORE_PROJECT_KEY_LEN);
    p->created_at = sqlite3_column_int64(st, 7);
    p->updated_at = sqlite3_column_int64(st, 8);
    p->deleted_at = sqlite3_column_int64(st, 9);
    p->active_domains = sqlite3_column_int64(st, 10);
    if (!p->slug || !p->upstream || !p->settings) {
        store_project_clear(p);
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_project_create(store_t *s, store_project_t *p, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO projects (slug, upstream, upstream_fallback, max_domains, "
                                     "settings, hmac_key, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    if (util_random(p->hmac_key, sizeof(p->hmac_key)) != 0)
        return STORE_ERR;
    store_bind_str(st, 1, p->slug);
    store_bind_str(st, 2, p->upstream);
    store_bind_str(st, 3, p->upstream_fallback);
    sqlite3_bind_int64(st, 4, p->max_domains);
    store_bind_str(st, 5, p->settings ? p->settings : "{}");
    sqlite3_bind_blob(st, 6, p->hmac_key, sizeof(p->hmac_key), SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, now);
    int rc = store_step_rc(s, sqlite3_step(st), "project.create");
    sqlite3_reset(st);
    if (rc != STORE_OK)
        return rc;
    p->id = sqlite3_last_insert_rowid(store_db(s));
    p->created_at = p->updated_at = now;
    return STORE_OK;
}

static int fetch_one(store_t *s, sqlite3_stmt *st, store_project_t *out, const char *what)
{
    int step = sqlite3_step(st);
    int rc;
    if (step == SQLITE_ROW)
        rc = read_row(st, out);
    else if (step == SQLITE_DONE)
        rc = STORE_NOTFOUND;
    else
        rc = store_fail(s, what);
    sqlite3_reset(st);
    return rc;
}

int store_project_get(store_t *s, int64_t id, store_project_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " PROJECT_COLS " FROM projects WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    return fetch_one(s, st, out, "project.get");
}

int store_project_by_slug(store_t *s, const char *slug, store_project_t *out)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " PROJECT_COLS " FROM projects WHERE slug = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, slug);
    return fetch_one(s, st, out, "project.by_slug");
}

int store_project_list(store_t *s, int64_t after_id, int limit, store_project_cb cb, void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT " PROJECT_COLS " FROM projects WHERE id > ? AND deleted_at IS NULL "
                                     "ORDER BY id LIMIT ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int(st, 2, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_project_t p;
        if (read_row(st, &p) != STORE_OK) {
            rc = STORE_ERR;
            break;
        }
        int stop = cb(&p, arg);
        store_project_clear(&p);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "project.list");
    sqlite3_reset(st);
    return rc;
}

static int changed_one(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    if (rc == STORE_OK && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

int store_project_update(store_t *s, const store_project_t *p, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE projects SET upstream = ?, upstream_fallback = ?, max_domains = ?, "
                                     "settings = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, p->upstream);
    store_bind_str(st, 2, p->upstream_fallback);
    sqlite3_bind_int64(st, 3, p->max_domains);
    store_bind_str(st, 4, p->settings ? p->settings : "{}");
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, p->id);
    return changed_one(s, st, "project.update");
}

int store_project_delete(store_t *s, int64_t id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE projects SET deleted_at = ?, updated_at = ? "
                                     "WHERE id = ? AND deleted_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, id);
    return changed_one(s, st, "project.delete");
}
