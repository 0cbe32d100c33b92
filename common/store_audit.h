/* store_audit: who changed what, when — one row per mutating call, written
 * in the same transaction as the change. Actors are token ids ("tok_…") or
 * "cli". Details are small JSON objects that never carry secrets or domain
 * metadata. Records own their strings (store_audit_clear). */
#ifndef HEE_STORE_AUDIT_H
#define HEE_STORE_AUDIT_H

#include <stdint.h>

#include "common/store.h"

typedef struct store_audit {
    int64_t id;
    int64_t project_id;          /* 0 = not about one project */
    char *project_slug;          /* NULL when project_id is 0 */
    char *token_id;
    char *action;                /* e.g. "domain.create" */
    char *target;                /* hostname, slug or token id */
    char *detail;                /* JSON object text */
    int64_t at;
} store_audit_t;

typedef int (*store_audit_cb)(const store_audit_t *a, void *arg);

void store_audit_clear(store_audit_t *a);
/* project_id 0 stores NULL; detail_json NULL stores "{}". */
int store_audit_add(store_t *s, int64_t project_id, const char *token_id, const char *action,
                    const char *target, const char *detail_json, int64_t at);
/* Newest first: rows with id < before_id (0 = from the newest); project_id
 * -1 lists every row. */
int store_audit_list(store_t *s, int64_t project_id, int64_t before_id, int limit, store_audit_cb cb,
                     void *arg);

#endif
