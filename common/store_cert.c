#include "common/store_cert.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Current certificates: the partial indexes certificates_current
 * (hostname, not_after) and certificates_renew (renew_at) cover only rows
 * with superseded_at IS NULL, so every query here names that condition. */

static void free_key(unsigned char **k, size_t *len)
{
    if (*k) {
        OPENSSL_cleanse(*k, *len);
        free(*k);
    }
    *k = NULL;
    *len = 0;
}

static int step_done(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = store_step_rc(s, sqlite3_step(st), what);
    sqlite3_reset(st);
    return rc;
}

/* An UPDATE that must touch a row: STORE_NOTFOUND when it touched none. */
static int step_changed(store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = step_done(s, st, what);
    if (rc == STORE_OK && sqlite3_changes(store_db(s)) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

/* ---- certificates ---- */

void store_cert_clear(store_cert_t *c)
{
    if (!c)
        return;
    free(c->hostname);
    free(c->chain_pem);
    free_key(&c->key, &c->key_len);
    free(c->key_type);
    free(c->issuer);
    free(c->issuer_name);
    free(c->serial);
    memset(c, 0, sizeof(*c));
}

int store_cert_insert(store_t *s, store_cert_t *c, int64_t now)
{
    if (!store_in_tx(s) || !c->key || !c->hostname || !c->chain_pem)
        return STORE_ERR;
    sqlite3_stmt *st = store_stmt(s, "UPDATE certificates SET superseded_at = ?2"
                                     " WHERE hostname = ?1 AND superseded_at IS NULL");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, c->hostname);
    sqlite3_bind_int64(st, 2, now);
    int rc = step_done(s, st, "cert.supersede");
    if (rc != STORE_OK)
        return rc;
    st = store_stmt(s, "INSERT INTO certificates (hostname, chain_pem, key_pem, key_sealed, key_type, issuer,"
                       " issuer_name, serial, not_before, not_after, renew_at, created_at)"
                       " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, c->hostname);
    store_bind_str(st, 2, c->chain_pem);
    sqlite3_bind_blob(st, 3, c->key, (int)c->key_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, c->key_sealed ? 1 : 0);
    store_bind_str(st, 5, c->key_type ? c->key_type : "ecdsa-p256");
    store_bind_str(st, 6, c->issuer ? c->issuer : "internal");
    store_bind_str(st, 7, c->issuer_name ? c->issuer_name : "");
    store_bind_str(st, 8, c->serial ? c->serial : "");
    sqlite3_bind_int64(st, 9, c->not_before);
    sqlite3_bind_int64(st, 10, c->not_after);
    sqlite3_bind_int64(st, 11, c->renew_at);
    sqlite3_bind_int64(st, 12, now);
    rc = step_done(s, st, "cert.insert");
    if (rc == STORE_OK) {
        c->id = sqlite3_last_insert_rowid(store_db(s));
        c->created_at = now;
    }
    return rc;
}

int store_cert_current(store_t *s, const char *host, store_cert_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = store_stmt(s, "SELECT id, hostname, chain_pem, key_sealed, key_type, issuer, issuer_name,"
                                     " serial, not_before, not_after, renew_at, created_at FROM certificates"
                                     " WHERE hostname = ? AND superseded_at IS NULL"
                                     " ORDER BY not_after DESC LIMIT 1");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        sqlite3_reset(st);
        return step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "cert.current");
    }
    out->id = sqlite3_column_int64(st, 0);
    out->hostname = store_col_str(st, 1);
    out->chain_pem = store_col_str(st, 2);
    out->key_sealed = sqlite3_column_int(st, 3);
    out->key_type = store_col_str(st, 4);
    out->issuer = store_col_str(st, 5);
    out->issuer_name = store_col_str(st, 6);
    out->serial = store_col_str(st, 7);
    out->not_before = sqlite3_column_int64(st, 8);
    out->not_after = sqlite3_column_int64(st, 9);
    out->renew_at = sqlite3_column_int64(st, 10);
    out->created_at = sqlite3_column_int64(st, 11);
    sqlite3_reset(st);
    if (!out->hostname || !out->chain_pem || !out->key_type || !out->issuer || !out->issuer_name || !out->serial) {
        store_cert_clear(out);
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_cert_due(store_t *s, int64_t now, store_cert_due_t *out, int max, int *n)
{
    *n = 0;
    sqlite3_stmt *st = store_stmt(s, "SELECT id, hostname, not_after, renew_at FROM certificates"
                                     " WHERE renew_at <= ?1 AND superseded_at IS NULL"
                                     " ORDER BY renew_at LIMIT ?2");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, max);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        store_cert_due_t *d = &out[*n];
        const unsigned char *h = sqlite3_column_text(st, 1);
        if (!h || strlen((const char *)h) >= sizeof(d->hostname))
            continue; /* cannot be a hostname we issued for */
        d->id = sqlite3_column_int64(st, 0);
        strcpy(d->hostname, (const char *)h);
        d->not_after = sqlite3_column_int64(st, 2);
        d->renew_at = sqlite3_column_int64(st, 3);
        (*n)++;
    }
    int rc = step == SQLITE_ROW || step == SQLITE_DONE ? STORE_OK : store_fail(s, "cert.due");
    sqlite3_reset(st);
    return rc;
}

int store_cert_next_renew_at(store_t *s, int64_t *at)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT MIN(renew_at) FROM certificates WHERE superseded_at IS NULL");
    if (!st)
        return STORE_ERR;
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : store_fail(s, "cert.next_renew");
    if (rc == STORE_OK && sqlite3_column_type(st, 0) == SQLITE_NULL)
        rc = STORE_NOTFOUND;
    else if (rc == STORE_OK)
        *at = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc;
}

int store_cert_set_renew_at(store_t *s, int64_t id, int64_t renew_at)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE certificates SET renew_at = ?2 WHERE id = ?1 AND superseded_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, renew_at);
    return step_changed(s, st, "cert.renew_at");
}

int store_cert_retire(store_t *s, int64_t id, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE certificates SET superseded_at = ?2 WHERE id = ?1 AND superseded_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return step_changed(s, st, "cert.retire");
}

/* ---- issuance backoff ---- */

void store_issuance_clear(store_issuance_t *i)
{
    if (!i)
        return;
    free(i->last_error);
    memset(i, 0, sizeof(*i));
}

int store_cert_backoff_get(store_t *s, const char *host, store_issuance_t *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = store_stmt(s, "SELECT failures, next_attempt_at, last_error, updated_at FROM issuance"
                                     " WHERE hostname = ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "issuance.get");
    if (rc == STORE_OK) {
        out->failures = sqlite3_column_int(st, 0);
        out->next_attempt_at = sqlite3_column_int64(st, 1);
        out->last_error = store_col_str(st, 2);
        out->updated_at = sqlite3_column_int64(st, 3);
    }
    sqlite3_reset(st);
    return rc;
}

int store_cert_backoff_set(store_t *s, const char *host, int failures, int64_t next_attempt_at,
                           const char *last_error, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO issuance (hostname, failures, next_attempt_at, last_error, updated_at)"
                                     " VALUES (?1,?2,?3,?4,?5) ON CONFLICT(hostname) DO UPDATE SET"
                                     " failures = excluded.failures, next_attempt_at = excluded.next_attempt_at,"
                                     " last_error = excluded.last_error, updated_at = excluded.updated_at");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    sqlite3_bind_int(st, 2, failures);
    sqlite3_bind_int64(st, 3, next_attempt_at);
    store_bind_str(st, 4, last_error);
    sqlite3_bind_int64(st, 5, now);
    return step_done(s, st, "issuance.set");
}

int store_cert_backoff_clear(store_t *s, const char *host)
{
    sqlite3_stmt *st = store_stmt(s, "DELETE FROM issuance WHERE hostname = ?");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, host);
    return step_done(s, st, "issuance.clear");
}

/* ---- issuance log ---- */

int store_cert_log_add(store_t *s, const char *registered_domain, const char *host, const char *issuer, int64_t at)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO issuance_log (registered_domain, hostname, issuer, issued_at)"
                                     " VALUES (?,?,?,?)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, registered_domain);
    store_bind_str(st, 2, host);
    store_bind_str(st, 3, issuer);
    sqlite3_bind_int64(st, 4, at);
    return step_done(s, st, "issuance_log.add");
}

int store_cert_orders_note(store_t *s, const int64_t *at, size_t n, int64_t before)
{
    if (store_begin(s) != STORE_OK)
        return STORE_ERR;
    sqlite3_stmt *del = store_stmt(s, "DELETE FROM acme_orders WHERE started_at < ?");
    int rc = del ? STORE_OK : STORE_ERR;
    if (rc == STORE_OK) {
        sqlite3_bind_int64(del, 1, before);
        rc = step_done(s, del, "acme_orders.prune");
    }
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        sqlite3_stmt *ins = store_stmt(s, "INSERT INTO acme_orders (started_at) VALUES (?)");
        if (!ins) {
            rc = STORE_ERR;
            break;
        }
        sqlite3_bind_int64(ins, 1, at[i]);
        rc = step_done(s, ins, "acme_orders.add");
    }
    if (rc == STORE_OK && store_commit(s) == STORE_OK)
        return STORE_OK;
    store_rollback(s);
    return STORE_ERR;
}

int store_cert_orders_since(store_t *s, int64_t since, void (*cb)(int64_t at, void *arg), void *arg)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT started_at FROM acme_orders WHERE started_at >= ?");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, since);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        cb(sqlite3_column_int64(st, 0), arg);
    int rc = step == SQLITE_DONE ? STORE_OK : store_fail(s, "acme_orders.since");
    sqlite3_reset(st);
    return rc;
}

int store_cert_log_count(store_t *s, const char *registered_domain, int64_t since, int64_t *count, int64_t *oldest)
{
    sqlite3_stmt *st = store_stmt(s, "SELECT COUNT(*), MIN(issued_at) FROM issuance_log"
                                     " WHERE registered_domain = ?1 AND issued_at > ?2 AND issuer != 'internal'");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, registered_domain);
    sqlite3_bind_int64(st, 2, since);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : store_fail(s, "issuance_log.count");
    if (rc == STORE_OK) {
        *count = sqlite3_column_int64(st, 0);
        *oldest = sqlite3_column_int64(st, 1); /* NULL reads as 0 */
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- domains ---- */

int store_cert_domain_status(store_t *s, int64_t domain_id, const char *state, const char *cert_status,
                             const char *cert_error, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "UPDATE domains SET state = COALESCE(?2, state), cert_status = ?3,"
                                     " cert_error = ?4, updated_at = ?5 WHERE id = ?1 AND removed_at IS NULL");
    if (!st)
        return STORE_ERR;
    sqlite3_bind_int64(st, 1, domain_id);
    store_bind_str(st, 2, state);
    store_bind_str(st, 3, cert_status);
    store_bind_str(st, 4, cert_error);
    sqlite3_bind_int64(st, 5, now);
    return step_changed(s, st, "domain.cert_status");
}

/* ---- ACME accounts ---- */

/* Steps sql (one ? for the directory URL) to the account's row: STORE_OK
 * with *st on it, STORE_NOTFOUND, or STORE_ERR (logged as what). *st, when
 * set, is a cached statement the caller resets. */
static int account_row(store_t *s, const char *sql, const char *directory_url, const char *what,
                       sqlite3_stmt **st)
{
    if (!(*st = store_stmt(s, sql)))
        return STORE_ERR;
    store_bind_str(*st, 1, directory_url);
    int step = sqlite3_step(*st);
    return step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, what);
}

int store_cert_account_get(store_t *s, const char *directory_url, unsigned char **key, size_t *key_len, char **kid)
{
    *key = NULL;
    *key_len = 0;
    *kid = NULL;
    sqlite3_stmt *st = NULL;
    int rc = account_row(s, "SELECT key_pem, kid FROM acme_accounts WHERE directory_url = ?", directory_url,
                         "account.get", &st);
    if (rc == STORE_OK) {
        *key = store_col_blob(st, 0, key_len);
        *kid = store_col_str(st, 1);
        if (!*key) {
            free(*kid);
            *kid = NULL;
            rc = STORE_ERR;
        }
    }
    sqlite3_reset(st);
    return rc;
}

int store_cert_account_kid(store_t *s, const char *directory_url, char **kid)
{
    *kid = NULL;
    sqlite3_stmt *st = NULL;
    int rc = account_row(s, "SELECT kid FROM acme_accounts WHERE directory_url = ?", directory_url, "account.kid",
                         &st);
    if (rc == STORE_OK && sqlite3_column_type(st, 0) != SQLITE_NULL && !(*kid = store_col_str(st, 0)))
        rc = STORE_ERR;
    sqlite3_reset(st); /* a no-op on NULL */
    return rc;
}

int store_cert_account_put(store_t *s, const char *directory_url, const void *key, size_t key_len, const char *kid,
                           const char *contact, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO acme_accounts (directory_url, key_pem, kid, contact, created_at)"
                                     " VALUES (?1,?2,?3,?4,?5) ON CONFLICT(directory_url) DO UPDATE SET"
                                     " key_pem = excluded.key_pem, kid = excluded.kid, contact = excluded.contact");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, directory_url);
    sqlite3_bind_blob(st, 2, key, (int)key_len, SQLITE_STATIC);
    store_bind_str(st, 3, kid);
    store_bind_str(st, 4, contact);
    sqlite3_bind_int64(st, 5, now);
    return step_done(s, st, "account.put");
}

/* ---- local CA ---- */

void store_local_ca_clear(store_local_ca_t *ca)
{
    if (!ca)
        return;
    free(ca->cert_pem);
    free_key(&ca->key, &ca->key_len);
    memset(ca, 0, sizeof(*ca));
}

int store_cert_local_ca_get(store_t *s, store_local_ca_t *out, int with_key)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = store_stmt(s, "SELECT cert_pem, key_pem, created_at FROM local_ca WHERE id = 1");
    if (!st)
        return STORE_ERR;
    int step = sqlite3_step(st);
    int rc = step == SQLITE_ROW ? STORE_OK : step == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, "local_ca.get");
    if (rc == STORE_OK) {
        out->cert_pem = store_col_str(st, 0);
        if (with_key)
            out->key = store_col_blob(st, 1, &out->key_len);
        out->created_at = sqlite3_column_int64(st, 2);
        if (!out->cert_pem || (with_key && !out->key))
            rc = STORE_ERR;
    }
    sqlite3_reset(st);
    if (rc != STORE_OK)
        store_local_ca_clear(out);
    return rc;
}

int store_cert_local_ca_put(store_t *s, const char *cert_pem, const void *key, size_t key_len, int64_t now)
{
    sqlite3_stmt *st = store_stmt(s, "INSERT INTO local_ca (id, cert_pem, key_pem, created_at) VALUES (1,?,?,?)");
    if (!st)
        return STORE_ERR;
    store_bind_str(st, 1, cert_pem);
    sqlite3_bind_blob(st, 2, key, (int)key_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    return step_done(s, st, "local_ca.put");
}
