/* store_project: the projects table — one row per tenant (SaaS application):
 * slug, upstream URLs, plan limit, settings JSON and the HMAC key the edge
 * signs tenant headers with. Projects are soft-deleted (deleted_at) so that
 * tokens, audit rows and events keep a referent; a slug is never reused.
 *
 * Records own their strings: store_project_clear() frees them. Functions that
 * write expect the caller to hold a transaction (store_begin) unless noted. */
#ifndef HEE_STORE_PROJECT_H
#define HEE_STORE_PROJECT_H

#include <stdint.h>

#include "common/store.h"

#define STORE_PROJECT_KEY_LEN 32

typedef struct store_project {
    int64_t id;
    char *slug;
    char *upstream;
    char *upstream_fallback;     /* NULL when none */
    int64_t max_domains;
    int64_t active_domains;      /* read-only: kept by triggers on domains */
    char *settings;              /* JSON object text */
    unsigned char hmac_key[STORE_PROJECT_KEY_LEN];
    int64_t created_at, updated_at;
    int64_t deleted_at;          /* 0 while live */
} store_project_t;

/* Called once per row; the record is freed after the callback returns.
 * A non-zero return stops the iteration. */
typedef int (*store_project_cb)(const store_project_t *p, void *arg);

void store_project_clear(store_project_t *p);

/* Inserts p->slug, upstream, upstream_fallback, max_domains, settings with a
 * fresh random hmac_key; fills p->id, hmac_key, created_at, updated_at.
 * STORE_CONFLICT when the slug is taken (by a live or a deleted project). */
int store_project_create(store_t *s, store_project_t *p, int64_t now);

/* Live projects only; STORE_NOTFOUND otherwise. No transaction needed. */
int store_project_get(store_t *s, int64_t id, store_project_t *out);
int store_project_by_slug(store_t *s, const char *slug, store_project_t *out);

/* Live projects with id > after_id in id order, at most limit rows. */
int store_project_list(store_t *s, int64_t after_id, int limit, store_project_cb cb, void *arg);

/* Writes upstream, upstream_fallback, max_domains and settings of p->id. */
int store_project_update(store_t *s, const store_project_t *p, int64_t now);
/* Soft delete; STORE_NOTFOUND if not live. */
int store_project_delete(store_t *s, int64_t id, int64_t now);

#endif
