/* store_token: API bearer tokens. Only the SHA-256 of a token is stored; the
 * token itself exists once, in the creation response. A token belongs to a
 * project (project_id > 0) or is an operator token (project_id 0, stored as
 * NULL) that acts on every project.
 *
 * Records own their strings (store_token_clear). Writes expect the caller's
 * transaction unless noted. */
#ifndef HEE_STORE_TOKEN_H
#define HEE_STORE_TOKEN_H

#include <stdint.h>

#include "common/crypto.h"
#include "common/store.h"

typedef struct store_token {
    char *id;                    /* "tok_…", safe to log */
    int64_t project_id;          /* 0 = operator token */
    char *project_slug;          /* NULL for operator tokens */
    int project_deleted;         /* 1 when the owning project is soft-deleted */
    unsigned char hash[CRYPTO_SHA256_LEN];
    char *scopes;                /* space-separated */
    char *name;
    int64_t created_at;
    int64_t last_used_at;        /* 0 = never */
    int64_t revoked_at;          /* 0 = active */
} store_token_t;

typedef int (*store_token_cb)(const store_token_t *t, void *arg);

void store_token_clear(store_token_t *t);

/* Inserts t->id, project_id, hash, scopes, name, created_at. */
int store_token_create(store_t *s, const store_token_t *t);
/* Finds by hash (revoked ones included: the caller checks revoked_at). */
int store_token_by_hash(store_t *s, const unsigned char hash[CRYPTO_SHA256_LEN], store_token_t *out);
int store_token_get(store_t *s, const char *id, store_token_t *out);
/* project_id > 0: that project's tokens; 0: operator tokens; -1: all.
 * Newest first, ids below before_id when before_id is not NULL. */
int store_token_list(store_t *s, int64_t project_id, const char *before_id, int limit,
                     store_token_cb cb, void *arg);
/* STORE_NOTFOUND when no such active token. */
int store_token_revoke(store_t *s, const char *id, int64_t now);
int store_token_revoke_project(store_t *s, int64_t project_id, int64_t now);
/* Records use; needs no transaction (one statement). */
int store_token_touch(store_t *s, const char *id, int64_t at);
/* Operator tokens ever created (revoked included). */
int store_token_count_operator(store_t *s, int64_t *n);

#endif
