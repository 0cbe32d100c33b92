#include "common/store_edge.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* The two queries run in one read transaction so a certificate stored
 * between them cannot pair with a stale domain row. Both use an index:
 * domains_active_hostname and certificates_current. */
static const char SQL_HOST[] =
    "SELECT d.id, d.state, d.verified, d.metadata, p.id, p.slug, p.upstream,"
    " p.upstream_fallback, p.settings, p.hmac_key"
    " FROM domains d JOIN projects p ON p.id = d.project_id"
    " WHERE d.hostname = ?1 AND d.removed_at IS NULL AND p.deleted_at IS NULL";

static const char SQL_CERT[] =
    "SELECT chain_pem, key_pem, key_sealed, not_after FROM certificates"
    " WHERE hostname = ?1 AND superseded_at IS NULL"
    " ORDER BY not_after DESC LIMIT 1";

static int read_host(store_t *s, const char *hostname, store_edge_host_t *out)
{
    sqlite3_stmt *st = store_stmt(s, SQL_HOST);
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, hostname);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_NOTFOUND;
    if (rc != SQLITE_ROW)
        return store_fail(s, "edge.host");
    out->domain_id = sqlite3_column_int64(st, 0);
    out->state = store_col_str(st, 1);
    out->verified = sqlite3_column_int(st, 2) != 0;
    out->metadata = store_col_str(st, 3);
    out->project_id = sqlite3_column_int64(st, 4);
    out->slug = store_col_str(st, 5);
    out->upstream = store_col_str(st, 6);
    out->upstream_fallback = store_col_str(st, 7);
    out->settings = store_col_str(st, 8);
    out->hmac_key = store_col_blob(st, 9, &out->hmac_key_len);
    sqlite3_reset(st);
    if (!out->state || !out->metadata || !out->slug || !out->upstream || !out->settings ||
        !out->hmac_key)
        return STORE_ERR;
    return STORE_OK;
}

static int read_cert(store_t *s, const char *hostname, store_edge_host_t *out)
{
    sqlite3_stmt *st = store_stmt(s, SQL_CERT);
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, hostname);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return STORE_OK;
    if (rc != SQLITE_ROW)
        return store_fail(s, "edge.cert");
    out->chain_pem = store_col_str(st, 0);
    out->key_pem = (char *)store_col_blob(st, 1, &out->key_pem_len);
    out->key_sealed = sqlite3_column_int(st, 2) != 0;
    out->cert_not_after = sqlite3_column_int64(st, 3);
    sqlite3_reset(st);
    if (!out->chain_pem || !out->key_pem)
        return STORE_ERR;
    out->has_cert = 1;
    return STORE_OK;
}

int store_edge_lookup(store_t *s, const char *hostname, store_edge_host_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sqlite3_exec(store_db(s), "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return store_fail(s, "edge.begin");
    int rc = read_host(s, hostname, out);
    if (rc == STORE_OK)
        rc = read_cert(s, hostname, out);
    sqlite3_exec(store_db(s), "COMMIT", NULL, NULL, NULL);
    if (rc != STORE_OK)
        store_edge_clear(out);
    return rc;
}

static void free_secret(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

void store_edge_clear(store_edge_host_t *h)
{
    if (!h)
        return;
    free(h->state);
    free(h->metadata);
    free(h->slug);
    free(h->upstream);
    free(h->upstream_fallback);
    free(h->settings);
    free_secret(h->hmac_key, h->hmac_key_len);
    free(h->chain_pem);
    free_secret(h->key_pem, h->key_pem_len);
    memset(h, 0, sizeof(*h));
}
