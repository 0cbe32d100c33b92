#include "common/store_audit.h"

#include <stdlib.h>
#include <string.h>

void store_audit_clear(store_audit_t *a)
{
    if (!a)
        return;
    free(a->project_slug);
    free(a->token_id);
    free(a->action);
    free(a->target);
    free(a->detail);
    memset(a, 0, sizeof(*a));
}

int store_audit_add(store_t *s, int64_t project_id, const char *token_id, const char *action, const char *target,
                    const char *detail_json, int64_t at)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO audit (project_id, token_id, action, target, detail, at) "
                                     "VALUES (?,?,?,?,?,?)");
    if (!st)
        return STORE_ERR;
    if (project_id > 0)
        sqlite3_bind_int64(st, 1, project_id);
    else
        sqlite3_bind_null(st, 1);
    store_bind_str(st, 2, token_id);
    store_bind_str(st, 3, action);
    store_bind_str(st, 4, target ? target : "");
    store_bind_str(st, 5, detail_json ? detail_json : "{}");
    sqlite3_bind_int64(st, 6, at);
    int rc = store_step_rc(s, sqlite3_step(st), "audit.add");
    sqlite3_reset(st);
    return rc;
}

static int read_row(sqlite3_stmt *st, store_audit_t *a)
{
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    a->project_id = sqlite3_column_int64(st, 1);
    a->project_slug = store_col_str(st, 2);
    a->token_id = store_col_str(st, 3);
    a->action = store_col_str(st, 4);
    a->target = store_col_str(st, 5);
    a->detail = store_col_str(st, 6);
    a->at = sqlite3_column_int64(st, 7);
    if (!a->action || !a->target || !a->detail) {
        store_audit_clear(a);
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_audit_list(store_t *s, int64_t project_id, int64_t before_id, int limit, store_audit_cb cb, void *arg)
{
    sqlite3_stmt *st =
        project_id > 0
            ? store_stmt(s, "SELECT a.id, a.project_id, p.slug, a.token_id, a.action, a.target, a.detail, a.at "
                            "FROM audit a LEFT JOIN projects p ON p.id = a.project_id "
                            "WHERE a.project_id = ?1 AND (?2 = 0 OR a.id < ?2) ORDER BY a.id DESC LIMIT ?3")
            : store_stmt(s, "SELECT a.id, a.project_id, p.slug, a.token_id, a.action, a.target, a.detail, a.at "
                            "FROM audit a LEFT JOIN projects p ON p.id = a.project_id "
                            "WHERE ?1 <= 0 AND (?2 = 0 OR a.id < ?2) ORDER BY a.id DESC LIMIT ?3");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, project_id);
    sqlite3_bind_int64(st, 2, before_id);
    sqlite3_bind_int(st, 3, limit);
    int rc = STORE_OK, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        store_audit_t a;
        if (read_row(st, &a) != STORE_OK) {
            rc = STORE_ERR;
            break;
        }
        int stop = cb(&a, arg);
        store_audit_clear(&a);
        if (stop)
            break;
    }
    if (rc == STORE_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = store_fail(s, "audit.list");
    sqlite3_reset(st);
    return rc;
}
