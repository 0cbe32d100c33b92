/* Unit tests of control/issuer.c (included, to reach its static parts) on a
 * real libevent loop and a real SQLite store in a temporary directory, with
 * one fake edge worker (a queue that records MSG_CERT_READY / FAILED):
 *   - backoff and renew_at arithmetic, keyseal
 *   - internal CA: first issuance (one order for 50 wants), the transaction's
 *     rows and events, refusals, renewal, removed domains, expiry, sealing,
 *     restart keeping the CA and certificates, the for-good failure policy
 *   - ACME against Pebble (always-valid; skipped when pebble is missing):
 *     issuance, account reuse across restarts, directory fallback, CA down
 *     → backoff, weekly limit, the concurrency cap's queue.
 * ctl_* are stubs here: they count calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme_pebble.h"
#include "control/issuer.c"

/* ---- the world: store, loop, one fake worker -------------------------- */

#define MAX_MSGS 512

typedef struct {
    enum msg_type type;
    int code;
    char host[MSG_HOST_MAX];
} seen_t;

typedef struct {
    char dir[256], db[300];
    config_t *cfg;
    struct event_base *base;
    hub_t hub;
    queue_t *worker;
    struct control c;
    struct issuer *iss;
    seen_t msgs[MAX_MSGS];
    int nmsgs;
    int events_committed;
    int64_t project_id;
} world_t;

static world_t *W; /* for the ctl_* stubs only */

void ctl_events_committed(struct control *c)
{
    (void)c;
    W->events_committed++;
}

void ctl_domain_changed(struct control *c, const char *host)
{
    (void)c;
    (void)host;
}

void ctl_project_changed(struct control *c, long long id)
{
    (void)c;
    (void)id;
}

static void on_worker_msg(void *p, void *arg)
{
    world_t *w = arg;
    msg_t *m = p;
    if (w->nmsgs < MAX_MSGS) {
        w->msgs[w->nmsgs].type = m->type;
        w->msgs[w->nmsgs].code = m->code;
        snprintf(w->msgs[w->nmsgs].host, MSG_HOST_MAX, "%s", m->host);
        w->nmsgs++;
    }
    msg_free(m);
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = strdup(v);
    assert_non_null(*field);
}

static void exec(world_t *w, const char *sql)
{
    char *e = NULL;
    int rc = sqlite3_exec(store_db(w->c.store), sql, NULL, NULL, &e);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s: %s\n", sql, e ? e : "?");
    sqlite3_free(e);
    assert_int_equal(rc, SQLITE_OK);
}

static int64_t query_int(world_t *w, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(w->c.store), sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static char *query_str(world_t *w, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(w->c.store), sql, -1, &st, NULL), SQLITE_OK);
    char *v = sqlite3_step(st) == SQLITE_ROW ? store_col_str(st, 0) : NULL;
    sqlite3_finalize(st);
    return v;
}

static int64_t add_domain(world_t *w, const char *host, int verified, const char *state)
{
    char sql[600];
    int64_t now = util_now_ms();
    snprintf(sql, sizeof(sql),
             "INSERT INTO domains (hostname, project_id, state, verified, verified_at, challenge, created_at,"
             " updated_at) VALUES ('%s', %lld, '%s', %d, %s, 'chal', %lld, %lld)",
             host, (long long)w->project_id, state, verified, verified ? "1" : "NULL", (long long)now, (long long)now);
    exec(w, sql);
    return sqlite3_last_insert_rowid(store_db(w->c.store));
}

static int64_t metric(world_t *w, enum metric_counter m)
{
    return metrics_get(w->hub.metrics, m);
}

static int count_msgs(world_t *w, enum msg_type t, const char *host)
{
    int n = 0;
    for (int i = 0; i < w->nmsgs; i++)
        if (w->msgs[i].type == t && (!host || strcmp(w->msgs[i].host, host) == 0))
            n++;
    return n;
}

static int last_code(world_t *w, const char *host)
{
    for (int i = w->nmsgs - 1; i >= 0; i--)
        if (strcmp(w->msgs[i].host, host) == 0)
            return w->msgs[i].code;
    return -1;
}

/* Runs the loop until host got a READY or FAILED (or timeout). */
static int wait_outcome(world_t *w, const char *host, int timeout_ms)
{
    int64_t end = util_mono_ms() + timeout_ms;
    while (util_mono_ms() < end) {
        if (count_msgs(w, MSG_CERT_READY, host) || count_msgs(w, MSG_CERT_FAILED, host))
            return 0;
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(w->base, &tv);
        event_base_dispatch(w->base);
    }
    return -1;
}

static void spin(world_t *w, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_base_loopexit(w->base, &tv);
    event_base_dispatch(w->base);
}

static world_t *world_new(void)
{
    world_t *w = calloc(1, sizeof(*w));
    char *err = NULL;
    assert_non_null(w);
    W = w;
    snprintf(w->dir, sizeof(w->dir), "/tmp/hee-test-issuer-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->db, sizeof(w->db), "%s/hee.db", w->dir);
    w->cfg = config_load(NULL, &err);
    assert_non_null(w->cfg);
    set_str(&w->cfg->data_dir, w->dir);
    w->cfg->acme_backoff_base_s = 1;
    w->cfg->acme_backoff_max_s = 8;
    assert_non_null(w->base = event_base_new());
    assert_non_null(w->hub.metrics = metrics_new());
    assert_non_null(w->hub.challenges = challenge_table_new());
    assert_non_null(w->worker = queue_new(w->base, on_worker_msg, msg_free, w));
    w->hub.to_worker = &w->worker;
    w->hub.n_workers = 1;
    w->hub.cfg = w->cfg;
    w->c.hub = &w->hub;
    w->c.cfg = w->cfg;
    w->c.base = w->base;
    assert_non_null(w->c.store = store_open(w->db, STORE_RW, &err));
    assert_non_null(w->c.curl = curlev_new(w->base));
    exec(w, "INSERT INTO projects (slug, upstream, hmac_key, created_at, updated_at)"
            " VALUES ('acme-co', 'http://127.0.0.1:9', x'00', 0, 0)");
    w->project_id = sqlite3_last_insert_rowid(store_db(w->c.store));
    return w;
}

static void world_start(world_t *w)
{
    char *err = NULL;
    w->iss = issuer_new(&w->c, &err);
    if (!w->iss)
        fprintf(stderr, "issuer_new: %s\n", err ? err : "?");
    free(err);
    assert_non_null(w->iss);
}

static void world_free(world_t *w)
{
    issuer_free(w->iss);
    curlev_free(w->c.curl);
    store_close(w->c.store);
    queue_free(w->worker);
    challenge_table_free(w->hub.challenges);
    metrics_free(w->hub.metrics);
    event_base_free(w->base);
    config_free(w->cfg);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", w->dir);
    free(w);
    W = NULL;
}

/* The current certificate of host verifies as a leaf for host whose key is
 * the stored one (opened with seal when sealed). */
static void check_stored_cert(world_t *w, const char *host, keyseal_t *seal)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT chain_pem, key_pem, key_sealed, not_before, not_after, renew_at FROM certificates"
             " WHERE hostname = '%s' AND superseded_at IS NULL",
             host);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(w->c.store), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *chain = (const char *)sqlite3_column_text(st, 0);
    const void *key = sqlite3_column_blob(st, 1);
    size_t klen = (size_t)sqlite3_column_bytes(st, 1);
    int sealed = sqlite3_column_int(st, 2);
    int64_t nb = sqlite3_column_int64(st, 3), na = sqlite3_column_int64(st, 4), ra = sqlite3_column_int64(st, 5);
    assert_int_equal(sealed, seal != NULL);
    char *pem = NULL;
    size_t plen = 0;
    if (seal) {
        assert_int_equal(keyseal_open(seal, host, key, klen, &pem, &plen), 0);
        keyseal_free_secret(pem, plen);
        assert_int_not_equal(keyseal_open(seal, "other.example.com", key, klen, &pem, &plen), 0);
        assert_int_equal(keyseal_open(seal, host, key, klen, &pem, &plen), 0);
    } else {
        pem = util_strndup(key, klen);
        plen = klen;
    }
    X509 *x = pki_cert_from_pem(chain);
    EVP_PKEY *k = pki_key_from_pem(pem);
    assert_non_null(x);
    assert_non_null(k);
    assert_int_equal(pki_cert_matches_key(x, k), 1);
    assert_int_equal(pki_cert_has_dns(x, host), 1);
    assert_true(nb < ra && ra < na);
    X509_free(x);
    EVP_PKEY_free(k);
    keyseal_free_secret(pem, plen);
    sqlite3_finalize(st);
}

static int64_t count_events(world_t *w, const char *type, int64_t domain_id)
{
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM events WHERE type = '%s' AND domain_id = %lld", type,
             (long long)domain_id);
    return query_int(w, sql);
}

/* ---- pure arithmetic --------------------------------------------------- */

static void test_backoff_math(void **state)
{
    (void)state;
    assert_int_equal(issuer_backoff_ms(60, 86400, 1), 60000);
    assert_int_equal(issuer_backoff_ms(60, 86400, 2), 120000);
    assert_int_equal(issuer_backoff_ms(60, 86400, 5), 960000);
    assert_int_equal(issuer_backoff_ms(60, 86400, 40), 86400000);
    assert_int_equal(issuer_backoff_ms(60, 30, 1), 30000);
    assert_int_equal(issuer_backoff_ms(0, 0, 3), 1000);
}

static void test_renew_at_math(void **state)
{
    (void)state;
    int64_t nb = 1000000, life = (int64_t)90 * 86400 * 1000, na = nb + life;
    int64_t lo = issuer_renew_at(nb, na, 0, 0, 0.0), mid = issuer_renew_at(nb, na, 0, 0, 0.5),
            hi = issuer_renew_at(nb, na, 0, 0, 0.999999);
    assert_true(lo < mid && mid < hi);
    assert_true(llabs(mid - (nb + life * 2 / 3)) < 1000);
    assert_true(lo >= nb + life * 2 / 3 - life / 30 - 1);
    assert_true(hi <= nb + life * 2 / 3 + life / 30 + 1);
    /* ARI window wins when offered. */
    assert_int_equal(issuer_renew_at(nb, na, nb + 5000, nb + 9000, 0.0), nb + 5000);
    assert_int_equal(issuer_renew_at(nb, na, nb + 5000, nb + 9000, 0.5), nb + 7000);
    assert_int_equal(issuer_renew_at(nb, na, nb + 9000, nb + 5000, 0.5), mid); /* bad window ignored */
}

/* RFC 9773 polling: a due certificate renews once the CA's window opens,
 * otherwise it looks again at the window's random point or the next poll. */
static void test_ari_decide(void **state)
{
    (void)state;
    const int64_t H = 3600 * 1000;
    int64_t nb = 0, na = 90 * 24 * H, now = 10 * 24 * H, next = -1;
    issuer_ari_answer_t far = { 1, 60 * 24 * H, 62 * 24 * H, 0 };
    assert_int_equal(issuer_ari_decide(now, nb, na, &far, 0.5, &next), 0);
    assert_true(next == now + 6 * H); /* next poll, without Retry-After */
    far.retry_after_s = 3600;
    assert_int_equal(issuer_ari_decide(now, nb, na, &far, 0.5, &next), 0);
    assert_true(next == now + H); /* the CA's Retry-After */
    far.retry_after_s = 1;
    assert_int_equal(issuer_ari_decide(now, nb, na, &far, 0.5, &next), 0);
    assert_true(next == now + 60000); /* not a storm */
    issuer_ari_answer_t soon = { 1, now + H, now + 3 * H, 0 };
    assert_int_equal(issuer_ari_decide(now, nb, na, &soon, 0.5, &next), 0);
    assert_true(next == now + 2 * H); /* the point in the window comes before the next poll */
    issuer_ari_answer_t moved = { 1, now - H, now + H, 0 }; /* e.g. revocation ahead */
    assert_int_equal(issuer_ari_decide(now, nb, na, &moved, 0.5, &next), 1);
    /* No window: the lifetime rule. */
    issuer_ari_answer_t none = { 0, 0, 0, 0 };
    assert_int_equal(issuer_ari_decide(now, nb, na, &none, 0.5, &next), 0);
    assert_true(next == now + H); /* ask again in an hour, before two thirds */
    assert_int_equal(issuer_ari_decide(na * 2 / 3, nb, na, &none, 0.5, &next), 1);
    assert_int_equal(issuer_ari_decide(nb + (na - nb) * 2 / 3 - (na - nb) / 30, nb, na, NULL, 0.5, &next), 1);
    issuer_ari_answer_t bad = { 1, 50, 40, 0 }; /* inverted window: ignored */
    assert_int_equal(issuer_ari_decide(na - H, nb, na, &bad, 0.5, &next), 1);
}

/* ---- keyseal ------------------------------------------------------------ */

static void test_keyseal(void **state)
{
    (void)state;
    unsigned char key[KEYSEAL_KEY_LEN];
    memset(key, 7, sizeof(key));
    keyseal_t *k = keyseal_new(key);
    const char *pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
    unsigned char *blob = NULL;
    size_t blen = 0, plen = 0;
    char *out = NULL;
    assert_int_equal(keyseal_is_sealed(pem, strlen(pem)), 0);
    assert_int_equal(keyseal_seal(k, "a.example.com", pem, strlen(pem), &blob, &blen), 0);
    assert_int_equal(keyseal_is_sealed(blob, blen), 1);
    assert_null(memmem(blob, blen, "PRIVATE", 7));
    assert_int_equal(keyseal_open(k, "a.example.com", blob, blen, &out, &plen), 0);
    assert_int_equal(plen, strlen(pem));
    assert_string_equal(out, pem);
    keyseal_free_secret(out, plen);
    assert_int_not_equal(keyseal_open(k, "b.example.com", blob, blen, &out, &plen), 0); /* context bound */
    blob[blen - 1] ^= 1;
    assert_int_not_equal(keyseal_open(k, "a.example.com", blob, blen, &out, &plen), 0); /* tampered */
    blob[blen - 1] ^= 1;
    assert_int_not_equal(keyseal_open(k, "a.example.com", blob, blen - 1, &out, &plen), 0); /* truncated */
    memset(key, 8, sizeof(key));
    keyseal_t *k2 = keyseal_new(key);
    assert_int_not_equal(keyseal_open(k2, "a.example.com", blob, blen, &out, &plen), 0); /* wrong key */
    free(blob);
    keyseal_free(k2);

    /* Key files: raw, hex, and refused when others may read them. */
    char path[] = "/tmp/hee-test-kek-XXXXXX", *err = NULL;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *hex = "0707070707070707070707070707070707070707070707070707070707070707\n";
    assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    keyseal_t *k3 = keyseal_load(path, &err);
    assert_non_null(k3);
    assert_int_equal(keyseal_seal(k3, NULL, "x", 1, &blob, &blen), 0);
    assert_int_equal(keyseal_open(k, NULL, blob, blen, &out, &plen), 0); /* same key as k */
    keyseal_free_secret(out, plen);
    free(blob);
    keyseal_free(k3);
    chmod(path, 0644);
    assert_null(keyseal_load(path, &err));
    assert_non_null(strstr(err, "chmod 600"));
    free(err);
    err = NULL;
    unlink(path);
    assert_null(keyseal_load(path, &err));
    free(err);
    keyseal_free(k);
}

/* ---- internal CA -------------------------------------------------------- */

static void test_internal_first_issue(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    const char *host = "shop.example.com";
    int64_t id = add_domain(w, host, 1, "verified");
    int64_t t0 = util_mono_ms();
    for (int i = 0; i < 50; i++) /* fifty handshakes, every worker asking */
        issuer_want(w->iss, i % 2 ? host : "SHOP.example.com");
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    char *st = query_str(w, "SELECT state || '/' || cert_status FROM domains WHERE hostname = 'shop.example.com'");
    assert_string_equal(st, "verified/none"); /* the local CA goes straight to live */
    free(st);
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    int64_t ms = util_mono_ms() - t0;
    printf("latency internal first issuance: %lld ms\n", (long long)ms);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1);
    assert_int_equal(count_msgs(w, MSG_CERT_FAILED, NULL), 0);
    assert_int_equal(metric(w, M_ISSUE_OK), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM certificates"), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM issuance_log WHERE registered_domain = 'example.com'"
                                  " AND issuer = 'internal'"),
                     1);
    st = query_str(w, "SELECT state || '/' || cert_status || '/' || COALESCE(cert_error, '-') FROM domains");
    assert_string_equal(st, "live/issued/-");
    free(st);
    st = query_str(w, "SELECT issuer || '|' || key_type || '|' || substr(issuer_name, 1, 12) FROM certificates");
    assert_string_equal(st, "internal|ecdsa-p256|Hee Local CA");
    free(st);
    check_stored_cert(w, host, NULL);
    assert_int_equal(count_events(w, "ssl.issued", id), 1);
    assert_int_equal(count_events(w, "domain.flow.completed", id), 1);
    assert_int_equal(count_events(w, "domain.monitor_updated", id), 0);
    assert_true(w->events_committed >= 1);
    st = query_str(w, "SELECT payload FROM events WHERE type = 'ssl.issued'");
    assert_non_null(strstr(st, "\"certificate\":{\"notAfter\":\""));
    assert_non_null(strstr(st, "\"state\":\"live\""));
    assert_non_null(strstr(st, "\"status\":\"issued\""));
    free(st);
    /* The chain verifies against the exported root. */
    store_local_ca_t ca;
    assert_int_equal(store_cert_local_ca_get(w->c.store, &ca, 0), STORE_OK);
    assert_null(ca.key);
    char *chain = query_str(w, "SELECT chain_pem FROM certificates");
    X509 *leaf = pki_cert_from_pem(chain), *root = pki_cert_from_pem(ca.cert_pem);
    X509_STORE *xs = X509_STORE_new();
    X509_STORE_CTX *cx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(xs, root), 1);
    assert_int_equal(X509_STORE_CTX_init(cx, xs, leaf, NULL), 1);
    assert_int_equal(X509_verify_cert(cx), 1);
    X509_STORE_CTX_free(cx);
    X509_STORE_free(xs);
    X509_free(leaf);
    X509_free(root);
    free(chain);
    store_local_ca_clear(&ca);
    /* A late worker's hint: answered from the store, no new order. */
    issuer_want(w->iss, host);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1); /* the message is queued */
    spin(w, 20);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 2);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    world_free(w);
}

static void test_refusals(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    add_domain(w, "pending.example.com", 0, "pending_ownership");
    add_domain(w, "later.example.com", 1, "failed");
    int64_t future = util_now_ms() + 60000;
    char sql[300];
    snprintf(sql, sizeof(sql),
             "INSERT INTO issuance (hostname, failures, next_attempt_at, last_error, updated_at)"
             " VALUES ('later.example.com', 2, %lld, 'x', 0)",
             (long long)future);
    exec(w, sql);
    issuer_want(w->iss, "unknown.example.com");
    issuer_want(w->iss, "pending.example.com");
    issuer_want(w->iss, "later.example.com");
    issuer_want(w->iss, "");
    issuer_want(w->iss, NULL);
    spin(w, 20);
    assert_int_equal(count_msgs(w, MSG_CERT_FAILED, NULL), 3);
    assert_int_equal(last_code(w, "unknown.example.com"), ISSUER_FAIL_UNKNOWN);
    assert_int_equal(last_code(w, "pending.example.com"), ISSUER_FAIL_UNKNOWN);
    assert_int_equal(last_code(w, "later.example.com"), ISSUER_FAIL_BACKOFF);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 0);
    /* Once the backoff has passed, the next hint orders. */
    exec(w, "UPDATE issuance SET next_attempt_at = 0");
    issuer_want(w->iss, "later.example.com");
    w->nmsgs = 0;
    assert_int_equal(wait_outcome(w, "later.example.com", 5000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "later.example.com"), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM issuance"), 0); /* cleared on success */
    world_free(w);
}

static void test_renewal_internal(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    const char *host = "renew.example.com";
    int64_t id = add_domain(w, host, 1, "verified");
    issuer_want(w->iss, host);
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    int64_t old = query_int(w, "SELECT id FROM certificates");
    exec(w, "UPDATE certificates SET renew_at = 0");
    w->nmsgs = 0;
    on_tick(-1, 0, w->iss);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 2);
    assert_true(query_int(w, "SELECT renew_at FROM certificates") > util_now_ms()); /* claimed */
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1);
    assert_int_equal(metric(w, M_RENEW_OK), 1);
    assert_int_equal(metric(w, M_ISSUE_OK), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM certificates"), 2);
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT superseded_at IS NOT NULL FROM certificates WHERE id = %lld", (long long)old);
    assert_int_equal(query_int(w, sql), 1);
    check_stored_cert(w, host, NULL);
    assert_int_equal(count_events(w, "ssl.issued", id), 2);
    assert_int_equal(count_events(w, "domain.flow.completed", id), 1);
    assert_int_equal(count_events(w, "domain.monitor_updated", id), 1);
    /* Nothing else is due: the tick sleeps until the new renew_at (bounded). */
    assert_true(w->iss->tick_at > util_mono_ms());
    world_free(w);
}

static void test_renewal_skips_removed(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    const char *host = "gone.example.com";
    add_domain(w, host, 1, "verified");
    issuer_want(w->iss, host);
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    exec(w, "UPDATE domains SET removed_at = 1, state = 'archived'");
    exec(w, "UPDATE certificates SET renew_at = 0");
    int64_t na = query_int(w, "SELECT not_after FROM certificates");
    on_tick(-1, 0, w->iss);
    spin(w, 20);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    assert_int_equal(query_int(w, "SELECT renew_at FROM certificates"), na); /* looked at again at expiry */
    /* Expired and still removed: nothing happens, ever. */
    exec(w, "UPDATE certificates SET renew_at = 0, not_after = 1");
    on_tick(-1, 0, w->iss);
    spin(w, 20);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM events WHERE type = 'domain.expired'"), 0);
    assert_true(query_int(w, "SELECT renew_at FROM certificates") > ((int64_t)1 << 61));
    world_free(w);
}

static void test_expired_active(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    const char *host = "late.example.com";
    int64_t id = add_domain(w, host, 1, "verified");
    issuer_want(w->iss, host);
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    exec(w, "UPDATE certificates SET renew_at = 0, not_after = 5");
    w->nmsgs = 0;
    on_tick(-1, 0, w->iss);
    assert_int_equal(count_events(w, "domain.expired", id), 1);
    assert_int_equal(wait_outcome(w, host, 5000), 0); /* and a new one at once */
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM certificates WHERE superseded_at IS NULL"), 1);
    char *st = query_str(w, "SELECT state || '/' || cert_status FROM domains");
    assert_string_equal(st, "live/issued");
    free(st);
    assert_int_equal(count_events(w, "domain.monitor_updated", id), 1);
    world_free(w);
}

static void test_fail_policy(void **state)
{
    (void)state;
    world_t *w = world_new();
    world_start(w);
    int64_t id = add_domain(w, "bad.example.com", 1, "verified");
    int64_t id2 = add_domain(w, "flaky.example.com", 1, "verified");
    /* Drive fail() directly: the ACME outcomes it must tell apart. */
    assert_int_equal(job_start(w->iss, "bad.example.com", 0, 0), 0);
    struct job *j = job_find(w->iss, "bad.example.com");
    assert_non_null(j);
    evtimer_del(j->timer);
    job_fail(w->iss, j, ACME_FAILED, "urn:ietf:params:acme:error:caa", "CAA forbids", 0);
    assert_int_equal(count_events(w, "domain.failed", id), 1);
    char *st = query_str(w, "SELECT state || '/' || cert_status || '/' || cert_error FROM domains"
                            " WHERE hostname = 'bad.example.com'");
    assert_string_equal(st, "failed/failed/urn:ietf:params:acme:error:caa: CAA forbids");
    free(st);
    assert_int_equal(query_int(w, "SELECT failures FROM issuance WHERE hostname = 'bad.example.com'"), 1);
    int64_t next = query_int(w, "SELECT next_attempt_at FROM issuance WHERE hostname = 'bad.example.com'");
    assert_true(next > util_now_ms() + 500 && next <= util_now_ms() + 1000);
    assert_int_equal(job_start(w->iss, "flaky.example.com", 0, 0), 0);
    j = job_find(w->iss, "flaky.example.com");
    evtimer_del(j->timer);
    exec(w, "INSERT INTO issuance (hostname, failures, next_attempt_at, updated_at) VALUES ('flaky.example.com', 2, 0, 0)");
    job_fail(w->iss, j, ACME_RATE_LIMITED, "urn:ietf:params:acme:error:rateLimited", "slow down", 3600);
    assert_int_equal(count_events(w, "domain.failed", id2), 0); /* not for good */
    assert_int_equal(query_int(w, "SELECT failures FROM issuance WHERE hostname = 'flaky.example.com'"), 3);
    next = query_int(w, "SELECT next_attempt_at FROM issuance WHERE hostname = 'flaky.example.com'");
    assert_true(next >= util_now_ms() + 3599000); /* Retry-After beats the shorter backoff */
    assert_int_equal(metric(w, M_ISSUE_FAILED), 2);
    assert_int_equal(metric(w, M_ISSUE_RATE_LIMITED), 1);
    assert_int_equal(count_msgs(w, MSG_CERT_FAILED, NULL), 0); /* queued to the worker... */
    spin(w, 20);
    assert_int_equal(count_msgs(w, MSG_CERT_FAILED, NULL), 2);
    assert_int_equal(last_code(w, "bad.example.com"), ISSUER_FAIL_ERROR);
    assert_int_equal(w->iss->njobs, 0);
    world_free(w);
}

static void write_kek(world_t *w)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/kek", w->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    unsigned char key[KEYSEAL_KEY_LEN];
    memset(key, 0x42, sizeof(key));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, key, sizeof(key)), (ssize_t)sizeof(key));
    close(fd);
    set_str(&w->cfg->key_encryption_key, "kek"); /* relative to data_dir */
}

static void test_sealed_and_restart(void **state)
{
    (void)state;
    world_t *w = world_new();
    write_kek(w);
    world_start(w);
    const char *host = "sealed.example.com";
    add_domain(w, host, 1, "verified");
    issuer_want(w->iss, host);
    assert_int_equal(wait_outcome(w, host, 5000), 0);
    unsigned char key[KEYSEAL_KEY_LEN];
    memset(key, 0x42, sizeof(key));
    keyseal_t *k = keyseal_new(key);
    check_stored_cert(w, host, k);
    store_local_ca_t ca;
    assert_int_equal(store_cert_local_ca_get(w->c.store, &ca, 1), STORE_OK);
    assert_int_equal(keyseal_is_sealed(ca.key, ca.key_len), 1);
    char *root = strdup(ca.cert_pem);
    store_local_ca_clear(&ca);
    /* Restart: the same CA (sealed key opened), the certificate kept. */
    issuer_free(w->iss);
    w->iss = NULL;
    world_start(w);
    assert_int_equal(store_cert_local_ca_get(w->c.store, &ca, 0), STORE_OK);
    assert_string_equal(ca.cert_pem, root);
    store_local_ca_clear(&ca);
    free(root);
    w->nmsgs = 0;
    issuer_want(w->iss, host);
    spin(w, 20);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1); /* no re-issuance */
    /* Without the key the sealed CA cannot load: start-up says why. */
    issuer_free(w->iss);
    w->iss = NULL;
    set_str(&w->cfg->key_encryption_key, "");
    char *err = NULL;
    assert_null(issuer_new(&w->c, &err));
    assert_non_null(strstr(err, "sealed"));
    free(err);
    keyseal_free(k);
    world_free(w);
}

/* ---- ACME against Pebble ------------------------------------------------ */

static acme_pebble_t peb;
static int peb_up;

static int pebble_setup(void **state)
{
    (void)state;
    static const char *const args[] = { "--always-valid", NULL };
    if (!acme_pebble_available())
        return 0;
    peb_up = acme_pebble_start(&peb, args) == 0;
    return 0;
}

static int pebble_teardown(void **state)
{
    (void)state;
    if (peb_up)
        acme_pebble_stop(&peb);
    peb_up = 0;
    return 0;
}

static world_t *acme_world(const char *dirs)
{
    world_t *w = world_new();
    set_str(&w->cfg->acme_directory, dirs);
    set_str(&w->cfg->acme_ca_bundle, peb.ca_file);
    return w;
}

static void test_acme_pebble(void **state)
{
    (void)state;
    if (!peb_up)
        skip();
    world_t *w = acme_world(peb.directory_url);
    world_start(w);
    assert_null(w->iss->ca); /* no local CA in ACME mode */
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM local_ca"), 0);
    const char *host = "a1.example.com";
    int64_t id = add_domain(w, host, 1, "verified");
    int64_t t0 = util_mono_ms();
    for (int i = 0; i < 50; i++)
        issuer_want(w->iss, host);
    assert_int_equal(wait_outcome(w, host, 30000), 0);
    printf("latency pebble first issuance (incl. account): %lld ms\n", (long long)(util_mono_ms() - t0));
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host), 1);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    check_stored_cert(w, host, NULL);
    char sql[600];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM certificates WHERE issuer = '%s'", peb.directory_url);
    assert_int_equal(query_int(w, sql), 1);
    assert_int_equal(count_events(w, "domain.flow.completed", id), 1);
    char *kid = query_str(w, "SELECT kid FROM acme_accounts");
    assert_non_null(kid);
    /* Restart: the account is found in the store, not created again. */
    issuer_free(w->iss);
    w->iss = NULL;
    world_start(w);
    const char *host2 = "a2.example.com";
    add_domain(w, host2, 1, "verified");
    t0 = util_mono_ms();
    issuer_want(w->iss, host2);
    assert_int_equal(wait_outcome(w, host2, 30000), 0);
    printf("latency pebble issuance (known account): %lld ms\n", (long long)(util_mono_ms() - t0));
    assert_int_equal(count_msgs(w, MSG_CERT_READY, host2), 1);
    char *kid2 = query_str(w, "SELECT kid FROM acme_accounts");
    assert_string_equal(kid, kid2);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM acme_accounts"), 1);
    free(kid);
    free(kid2);
    /* Twenty more, one at a time, for the latency figures. */
    int64_t lat[20];
    for (int i = 0; i < 20; i++) {
        char h[64];
        snprintf(h, sizeof(h), "lat%d.example.org", i);
        add_domain(w, h, 1, "verified");
        t0 = util_mono_ms();
        issuer_want(w->iss, h);
        assert_int_equal(wait_outcome(w, h, 30000), 0);
        assert_int_equal(count_msgs(w, MSG_CERT_READY, h), 1);
        lat[i] = util_mono_ms() - t0;
    }
    for (int i = 0; i < 20; i++)
        for (int k = i + 1; k < 20; k++)
            if (lat[k] < lat[i]) {
                int64_t t = lat[i];
                lat[i] = lat[k];
                lat[k] = t;
            }
    printf("latency pebble issuance x20: median %lld ms p90 %lld ms max %lld ms\n", (long long)lat[10],
           (long long)lat[17], (long long)lat[19]);
    world_free(w);
}

static void test_acme_concurrency_cap(void **state)
{
    (void)state;
    if (!peb_up)
        skip();
    world_t *w = acme_world(peb.directory_url);
    w->cfg->acme_max_concurrent = 2;
    world_start(w);
    char hosts[8][64];
    for (int i = 0; i < 8; i++) {
        snprintf(hosts[i], sizeof(hosts[i]), "c%d.example.net", i);
        add_domain(w, hosts[i], 1, "verified");
    }
    int64_t t0 = util_mono_ms();
    for (int i = 0; i < 8; i++)
        issuer_want(w->iss, hosts[i]);
    issuer_stats_t st;
    issuer_stats(w->iss, &st);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.queued, 6);
    for (int i = 0; i < 8; i++)
        assert_int_equal(wait_outcome(w, hosts[i], 60000), 0);
    printf("pebble: 8 orders with max_concurrent_orders=2: %lld ms\n", (long long)(util_mono_ms() - t0));
    assert_int_equal(count_msgs(w, MSG_CERT_READY, NULL), 8);
    issuer_stats(w->iss, &st);
    assert_int_equal(st.running + st.queued, 0);
    world_free(w);
}

static void test_acme_fallback_and_down(void **state)
{
    (void)state;
    if (!peb_up)
        skip();
    /* A dead first directory: the order goes to the second one. */
    char dirs[600];
    snprintf(dirs, sizeof(dirs), "https://127.0.0.1:1/dir %s", peb.directory_url);
    world_t *w = acme_world(dirs);
    world_start(w);
    add_domain(w, "fb.example.com", 1, "verified");
    issuer_want(w->iss, "fb.example.com");
    assert_int_equal(wait_outcome(w, "fb.example.com", 60000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "fb.example.com"), 1);
    char sql[600];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM certificates WHERE issuer = '%s'", peb.directory_url);
    assert_int_equal(query_int(w, sql), 1);
    assert_true(w->iss->dirs[0].down_until > util_mono_ms()); /* resting: */
    add_domain(w, "fb2.example.com", 1, "verified");
    issuer_want(w->iss, "fb2.example.com");
    assert_int_equal(w->iss->jobs[host_hash("fb2.example.com")]->dir, 1); /* new jobs start at the second */
    assert_int_equal(wait_outcome(w, "fb2.example.com", 60000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "fb2.example.com"), 1);
    world_free(w);

    /* Only a dead directory: failure, backoff recorded, refused until due. */
    w = acme_world("https://127.0.0.1:1/dir");
    world_start(w);
    int64_t id = add_domain(w, "down.example.com", 1, "verified");
    issuer_want(w->iss, "down.example.com");
    assert_int_equal(wait_outcome(w, "down.example.com", 60000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_FAILED, "down.example.com"), 1);
    assert_int_equal(query_int(w, "SELECT failures FROM issuance WHERE hostname = 'down.example.com'"), 1);
    assert_int_equal(count_events(w, "domain.failed", id), 0); /* transient */
    char *st = query_str(w, "SELECT state || '/' || cert_status FROM domains");
    assert_string_equal(st, "failed/failed");
    free(st);
    w->nmsgs = 0;
    issuer_want(w->iss, "down.example.com");
    spin(w, 20);
    assert_int_equal(last_code(w, "down.example.com"), ISSUER_FAIL_BACKOFF);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    /* The CA comes back (reload with a working directory); after the backoff it succeeds. */
    set_str(&w->cfg->acme_directory, peb.directory_url);
    issuer_reload(w->iss);
    spin(w, 1100);
    w->nmsgs = 0;
    issuer_want(w->iss, "down.example.com");
    assert_int_equal(wait_outcome(w, "down.example.com", 30000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "down.example.com"), 1);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM issuance"), 0);
    world_free(w);
}

static void test_acme_weekly_limit(void **state)
{
    (void)state;
    if (!peb_up)
        skip();
    world_t *w = acme_world(peb.directory_url);
    w->cfg->acme_weekly_limit = 2;
    world_start(w);
    char sql[300];
    for (int i = 0; i < 2; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO issuance_log (registered_domain, hostname, issuer, issued_at)"
                 " VALUES ('limited.co.uk', 'x%d.limited.co.uk', 'https://ca/dir', %lld)",
                 i, (long long)(util_now_ms() - 1000 * (i + 1)));
        exec(w, sql);
    }
    exec(w, "INSERT INTO issuance_log (registered_domain, hostname, issuer, issued_at)"
            " VALUES ('limited.co.uk', 'y.limited.co.uk', 'internal', 0)");
    add_domain(w, "new.limited.co.uk", 1, "verified");
    issuer_want(w->iss, "new.limited.co.uk");
    spin(w, 20);
    assert_int_equal(last_code(w, "new.limited.co.uk"), ISSUER_FAIL_LIMIT);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 0);
    assert_int_equal(metric(w, M_ISSUE_RATE_LIMITED), 1);
    int64_t next = query_int(w, "SELECT next_attempt_at FROM issuance WHERE hostname = 'new.limited.co.uk'");
    assert_true(next > util_now_ms() + WEEK_MS - 5000);
    /* Hourly cap. */
    w->cfg->acme_max_per_hour = 1;
    add_domain(w, "h1.example.com", 1, "verified");
    add_domain(w, "h2.example.com", 1, "verified");
    issuer_want(w->iss, "h1.example.com");
    issuer_want(w->iss, "h2.example.com");
    assert_int_equal(wait_outcome(w, "h1.example.com", 30000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "h1.example.com"), 1);
    assert_int_equal(last_code(w, "h2.example.com"), ISSUER_FAIL_LIMIT);
    world_free(w);
}

static void test_acme_reload(void **state)
{
    (void)state;
    if (!peb_up)
        skip();
    /* An order retrying against a dead directory when the configuration
     * changes: it runs again on the new clients, as the same job. */
    world_t *w = acme_world("https://127.0.0.1:1/dir");
    world_start(w);
    add_domain(w, "moved.example.com", 1, "verified");
    issuer_want(w->iss, "moved.example.com");
    spin(w, 50);
    assert_non_null(job_find(w->iss, "moved.example.com"));
    set_str(&w->cfg->acme_directory, peb.directory_url);
    issuer_reload(w->iss);
    assert_int_equal(wait_outcome(w, "moved.example.com", 30000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "moved.example.com"), 1);
    assert_int_equal(metric(w, M_ISSUE_STARTED), 1);
    /* A reload that cannot build its clients keeps the previous ones (and
     * never falls back to the local CA on its own). */
    set_str(&w->cfg->acme_directory, "ftp://not-acme/dir");
    issuer_reload(w->iss);
    assert_int_equal(w->iss->ndirs, 1);
    assert_string_equal(w->iss->dirs[0].url, peb.directory_url);
    assert_null(w->iss->ca);
    add_domain(w, "after.example.com", 1, "verified");
    issuer_want(w->iss, "after.example.com");
    assert_int_equal(wait_outcome(w, "after.example.com", 30000), 0);
    assert_int_equal(count_msgs(w, MSG_CERT_READY, "after.example.com"), 1);
    /* ACME → internal: the local CA is created then. */
    set_str(&w->cfg->acme_directory, "");
    issuer_reload(w->iss);
    assert_non_null(w->iss->ca);
    assert_int_equal(w->iss->ndirs, 0);
    add_domain(w, "local.example.com", 1, "verified");
    issuer_want(w->iss, "local.example.com");
    assert_int_equal(wait_outcome(w, "local.example.com", 5000), 0);
    assert_int_equal(query_int(w, "SELECT COUNT(*) FROM certificates WHERE issuer = 'internal'"), 1);
    world_free(w);
}

int main(void)
{
    log_setup(getenv("HEE_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERROR, 2, -1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_math),
        cmocka_unit_test(test_renew_at_math),
        cmocka_unit_test(test_ari_decide),
        cmocka_unit_test(test_keyseal),
        cmocka_unit_test(test_internal_first_issue),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_renewal_internal),
        cmocka_unit_test(test_renewal_skips_removed),
        cmocka_unit_test(test_expired_active),
        cmocka_unit_test(test_fail_policy),
        cmocka_unit_test(test_sealed_and_restart),
    };
    const struct CMUnitTest pebble_tests[] = {
        cmocka_unit_test(test_acme_pebble),
        cmocka_unit_test(test_acme_concurrency_cap),
        cmocka_unit_test(test_acme_fallback_and_down),
        cmocka_unit_test(test_acme_weekly_limit),
        cmocka_unit_test(test_acme_reload),
    };
    int rc = cmocka_run_group_tests_name("issuer", tests, NULL, NULL);
    rc |= cmocka_run_group_tests_name("issuer_pebble", pebble_tests, pebble_setup, pebble_teardown);
    return rc;
}
