/* Integration tests of control/acme.c against Debian's Pebble on a real
 * libevent loop. Pebble is started per group by test/lib/pebble.py:
 *   always-valid   : one order, ten at once, account reuse, RSA
 *   nonce-reject 50: every order still succeeds through badNonce resends
 *   real validation: mock DNS → 127.0.0.1; http-01 served by acme_httpd,
 *                    tls-alpn-01 by acme_alpnd with pki_tls_alpn_cert()
 *   EAB required   : without EAB → externalAccountRequired; with → OK
 * Latencies are printed ("latency ...") so runs can be compared. Skipped
 * when pebble is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "acme_alpnd.h"
#include "acme_httpd.h"
#include "acme_pebble.h"
#include "common/curlev.h"
#include "common/log.h"
#include "common/util.h"
#include "control/acme.h"

#define MAX_ORDERS 16

/* ---- the test's stand-ins for the store and the edge ------------------ */

typedef struct {
    char type[16], host[256], token[128], keyauth[256];
    int live;
} chal_t;

typedef struct {
    /* store */
    char *key_pem, *kid;
    int loads, saves, saves_with_kid;
    /* edge: written on the loop thread, read by server threads */
    pthread_mutex_t mu;
    chal_t chals[MAX_ORDERS * 2];
    int published, unpublished;
} world_t;

static int h_load(void *arg, const char *dir, char **key_pem, char **kid)
{
    world_t *w = arg;
    w->loads++;
    *key_pem = w->key_pem ? strdup(w->key_pem) : NULL;
    *kid = w->kid ? strdup(w->kid) : NULL;
    return 0;
}

static int h_save(void *arg, const char *dir, const char *key_pem, const char *kid)
{
    world_t *w = arg;
    w->saves++;
    free(w->key_pem);
    free(w->kid);
    w->key_pem = strdup(key_pem);
    w->kid = kid ? strdup(kid) : NULL;
    if (kid)
        w->saves_with_kid++;
    return 0;
}

static int h_publish(void *arg, const char *type, const char *host, const char *token, const char *ka)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->mu);
    int rc = -1;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(w->chals); i++) {
        chal_t *c = &w->chals[i];
        if (c->live)
            continue;
        snprintf(c->type, sizeof(c->type), "%s", type);
        snprintf(c->host, sizeof(c->host), "%s", host);
        snprintf(c->token, sizeof(c->token), "%s", token);
        snprintf(c->keyauth, sizeof(c->keyauth), "%s", ka);
        c->live = 1;
        w->published++;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void h_unpublish(void *arg, const char *type, const char *host, const char *token)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(w->chals); i++) {
        chal_t *c = &w->chals[i];
        if (c->live && strcmp(c->type, type) == 0 && strcmp(c->host, host) == 0 && strcmp(c->token, token) == 0) {
            c->live = 0;
            w->unpublished++;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

/* http-01: GET /.well-known/acme-challenge/<token> → key authorization. */
static void http01(const acme_httpd_req_t *req, acme_httpd_resp_t *resp, void *arg)
{
    world_t *w = arg;
    static const char prefix[] = "/.well-known/acme-challenge/";
    resp->status = 404;
    if (strncmp(req->path, prefix, sizeof(prefix) - 1) != 0)
        return;
    const char *token = req->path + sizeof(prefix) - 1;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(w->chals); i++) {
        chal_t *c = &w->chals[i];
        if (c->live && strcmp(c->type, "http-01") == 0 && strcmp(c->token, token) == 0) {
            resp->status = 200;
            resp->body = strdup(c->keyauth);
            resp->body_len = strlen(c->keyauth);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
}

/* tls-alpn-01: the edge would call pki_tls_alpn_cert the same way. */
static int alpn_lookup(void *arg, const char *sni, char **cert_pem, char **key_pem)
{
    world_t *w = arg;
    char ka[256] = { 0 };
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(w->chals); i++) {
        chal_t *c = &w->chals[i];
        if (c->live && strcmp(c->type, "tls-alpn-01") == 0 && strcasecmp(c->host, sni) == 0)
            snprintf(ka, sizeof(ka), "%s", c->keyauth);
    }
    pthread_mutex_unlock(&w->mu);
    return ka[0] ? pki_tls_alpn_cert(sni, ka, cert_pem, key_pem) : -1;
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct {
    acme_pebble_t pebble;
    char *root_pem;
    struct event_base *base;
    curlev_t *cv;
    acme_client_t *client;
    world_t world;
    acme_httpd_t *httpd;
    acme_alpnd_t *alpnd;
    /* results */
    int expected, done;
    acme_status_t status[MAX_ORDERS];
    char *chain[MAX_ORDERS];
    char *key[MAX_ORDERS];
    char *ptype[MAX_ORDERS];
    acme_result_t res[MAX_ORDERS];
} fx_t;

/* Runs the loop until loopbreak or the timeout. A private timer, not
 * event_base_loopexit(): a pending loopexit would end a later run early. */
static void on_run_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void run_loop_for(struct event_base *base, int seconds)
{
    struct event *t = evtimer_new(base, on_run_timeout, base);
    struct timeval tv = { seconds, 0 };
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
}

typedef struct {
    fx_t *fx;
    int i;
} slot_t;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void world_init(world_t *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
}

static void world_fini(world_t *w)
{
    pki_free_secret(w->key_pem);
    free(w->kid);
    pthread_mutex_destroy(&w->mu);
}

static int fx_setup(void **state, const char *const *args, int with_servers)
{
    if (!acme_pebble_available()) {
        fprintf(stderr, "pebble not installed: skipping\n");
        *state = NULL;
        return 0;
    }
    fx_t *fx = calloc(1, sizeof(*fx));
    world_init(&fx->world);
    const char *argv[16];
    size_t n = 0;
    char hp[32], tp[32];
    for (; args && args[n]; n++)
        argv[n] = args[n];
    if (with_servers) {
        fx->httpd = acme_httpd_start(http01, &fx->world);
        fx->alpnd = acme_alpnd_start(alpn_lookup, &fx->world);
        if (!fx->httpd || !fx->alpnd)
            return -1;
        snprintf(hp, sizeof(hp), "%d", acme_httpd_port(fx->httpd));
        snprintf(tp, sizeof(tp), "%d", acme_alpnd_port(fx->alpnd));
        argv[n++] = "--http-port";
        argv[n++] = hp;
        argv[n++] = "--tls-port";
        argv[n++] = tp;
    }
    argv[n] = NULL;
    if (acme_pebble_start(&fx->pebble, argv) != 0)
        return -1;
    fx->root_pem = read_file(fx->pebble.root_file);
    fx->base = event_base_new();
    fx->cv = curlev_new(fx->base);
    if (!fx->root_pem || !fx->base || !fx->cv)
        return -1;
    *state = fx;
    return 0;
}

static void fx_reset_results(fx_t *fx)
{
    for (int i = 0; i < MAX_ORDERS; i++) {
        free(fx->chain[i]);
        pki_free_secret(fx->key[i]);
        free(fx->ptype[i]);
        fx->chain[i] = fx->key[i] = fx->ptype[i] = NULL;
    }
    memset(fx->res, 0, sizeof(fx->res));
    fx->done = fx->expected = 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        return 0;
    fx_reset_results(fx);
    acme_client_free(fx->client);
    curlev_free(fx->cv);
    event_base_free(fx->base);
    acme_pebble_stop(&fx->pebble);
    acme_httpd_stop(fx->httpd);
    acme_alpnd_stop(fx->alpnd);
    world_fini(&fx->world);
    free(fx->root_pem);
    free(fx);
    return 0;
}

static acme_client_t *fx_client(fx_t *fx, const char *challenges, const char *eab_kid, const char *eab_key)
{
    acme_client_free(fx->client);
    acme_config_t cfg = {
        .directory_url = fx->pebble.directory_url,
        .ca_file = fx->pebble.ca_file,
        .contact_email = "ops@hee.test",
        .eab_kid = eab_kid,
        .eab_hmac_key = eab_key,
        .challenges = challenges,
        .hooks = { h_load, h_save, h_publish, h_unpublish, &fx->world },
        .badnonce_retries = 20,
    };
    fx->client = acme_client_new(fx->base, fx->cv, &cfg);
    assert_non_null(fx->client);
    return fx->client;
}

static void on_done(const acme_result_t *res, void *arg)
{
    slot_t *s = arg;
    fx_t *fx = s->fx;
    fx->status[s->i] = res->status;
    fx->res[s->i] = *res;
    fx->chain[s->i] = res->cert_pem ? strdup(res->cert_pem) : NULL;
    fx->key[s->i] = res->key_pem ? strdup(res->key_pem) : NULL;
    fx->ptype[s->i] = res->problem_type ? strdup(res->problem_type) : NULL;
    /* Borrowed strings die with the callback: keep none of them. */
    fx->res[s->i].cert_pem = fx->res[s->i].key_pem = fx->res[s->i].issuer = NULL;
    fx->res[s->i].problem_type = fx->res[s->i].problem_detail = fx->res[s->i].hostname = NULL;
    fx->res[s->i].serial_hex = NULL;
    if (res->status != ACME_OK)
        fprintf(stderr, "order %d failed: %s %s %s\n", s->i, acme_status_name(res->status),
                res->problem_type ? res->problem_type : "-", res->problem_detail ? res->problem_detail : "-");
    if (++fx->done == fx->expected)
        event_base_loopbreak(fx->base);
}

/* Starts n orders for "<prefix>.test" (n == 1) or "<prefix><i>.test" and
 * runs the loop until all end. */
static int64_t run_orders(fx_t *fx, const char *prefix, int n, pki_key_type_t kt)
{
    static slot_t slots[MAX_ORDERS];
    fx_reset_results(fx);
    fx->expected = n;
    int64_t t0 = util_mono_ms();
    for (int i = 0; i < n; i++) {
        char host[128];
        if (n == 1)
            snprintf(host, sizeof(host), "%s.test", prefix);
        else
            snprintf(host, sizeof(host), "%s%d.test", prefix, i);
        slots[i] = (slot_t){ fx, i };
        assert_non_null(acme_order_start(fx->client, host, kt, on_done, &slots[i]));
    }
    run_loop_for(fx->base, 60);
    assert_int_equal(fx->done, n);
    return util_mono_ms() - t0;
}

static void verify_chain(fx_t *fx, int i, const char *host)
{
    STACK_OF(X509) *chain = pki_chain_from_pem(fx->chain[i]);
    assert_non_null(chain);
    assert_true(sk_X509_num(chain) >= 2); /* leaf + Pebble's intermediate */
    X509 *leaf = sk_X509_shift(chain);
    X509 *root = pki_cert_from_pem(fx->root_pem);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx), host, 0);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        fprintf(stderr, "verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    assert_int_equal(ok, 1);
    EVP_PKEY *k = pki_key_from_pem(fx->key[i]);
    assert_true(pki_cert_matches_key(leaf, k));
    EVP_PKEY_free(k);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(root);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
}

static void print_latency(const char *what, const acme_result_t *r)
{
    int64_t own = r->elapsed_ms - r->http_ms - r->wait_ms;
    printf("latency %-28s total=%4" PRId64 "ms http=%4" PRId64 "ms (%u requests) waits=%4" PRId64
           "ms client=%3" PRId64 "ms\n",
           what, r->elapsed_ms, r->http_ms, r->requests, r->wait_ms, own < 0 ? 0 : own);
}

/* ---- always-valid group ------------------------------------------------ */

static int setup_valid(void **state)
{
    static const char *const args[] = { "--always-valid", NULL };
    return fx_setup(state, args, 0);
}

static void test_issue_one(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, NULL, NULL, NULL);
    run_orders(fx, "a", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_OK);
    verify_chain(fx, 0, "a.test");
    print_latency("first order (new account)", &fx->res[0]);
    assert_true(fx->res[0].not_after_ms > util_now_ms());
    /* The account was made once and saved: key first, then with its kid. */
    assert_int_equal(fx->world.loads, 1);
    assert_int_equal(fx->world.saves, 2);
    assert_int_equal(fx->world.saves_with_kid, 1);
    assert_non_null(fx->world.kid);
    assert_int_equal(fx->world.published, fx->world.unpublished);

    /* Second order on the warm client: no account work at all. */
    run_orders(fx, "b", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_OK);
    verify_chain(fx, 0, "b.test");
    print_latency("second order (warm client)", &fx->res[0]);
    assert_int_equal(fx->world.saves, 2);
}

static void test_issue_ten_at_once(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, NULL, NULL, NULL);
    int saves = fx->world.saves;
    int64_t wall = run_orders(fx, "host", 10, PKI_KEY_EC_P256);
    int64_t sum = 0, max = 0;
    for (int i = 0; i < 10; i++) {
        char host[32];
        snprintf(host, sizeof(host), "host%d.test", i);
        assert_int_equal(fx->status[i], ACME_OK);
        verify_chain(fx, i, host);
        sum += fx->res[i].elapsed_ms;
        max = fx->res[i].elapsed_ms > max ? fx->res[i].elapsed_ms : max;
    }
    print_latency("one of 10 concurrent", &fx->res[0]);
    printf("latency 10 concurrent: wall=%" PRId64 "ms mean=%" PRId64 "ms max=%" PRId64 "ms\n", wall, sum / 10, max);
    /* The stored account was reused, not recreated. */
    assert_int_equal(fx->world.saves, saves);
    assert_int_equal(fx->world.published, fx->world.unpublished);
}

static void test_account_lookup_and_rsa(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    /* Key known, kid lost: onlyReturnExisting finds the same account. */
    char *kid = strdup(fx->world.kid);
    free(fx->world.kid);
    fx->world.kid = NULL;
    fx_client(fx, NULL, NULL, NULL);
    run_orders(fx, "rsa", 1, PKI_KEY_RSA_2048);
    assert_int_equal(fx->status[0], ACME_OK);
    verify_chain(fx, 0, "rsa.test");
    assert_string_equal(fx->world.kid, kid);
    EVP_PKEY *k = pki_key_from_pem(fx->key[0]);
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_RSA);
    EVP_PKEY_free(k);
    free(kid);
}

static void on_done_never(const acme_result_t *res, void *arg)
{
    fail_msg("done_cb after cancel/free (%s)", res->hostname);
}

static void test_bad_arguments(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, NULL, NULL, NULL);
    assert_null(acme_order_start(fx->client, "*.wild.test", PKI_KEY_EC_P256, on_done, NULL));
    assert_null(acme_order_start(fx->client, "bad name", PKI_KEY_EC_P256, on_done, NULL));
    assert_null(acme_order_start(fx->client, "a.test", PKI_KEY_EC_P256, NULL, NULL));
    acme_config_t cfg = { .directory_url = fx->pebble.directory_url, .challenges = "dns-01" };
    assert_null(acme_client_new(fx->base, fx->cv, &cfg));
    cfg.challenges = NULL;
    cfg.eab_kid = "kid-only";
    assert_null(acme_client_new(fx->base, fx->cv, &cfg));
    /* Cancel before anything ran: no callback, nothing leaks. */
    acme_order_t *o = acme_order_start(fx->client, "c.test", PKI_KEY_EC_P256, on_done_never, NULL);
    assert_non_null(o);
    acme_order_cancel(o);
    /* Free with orders in flight (requests started, answers not read): no
     * callback either. Three turns of the loop are not enough on their own:
     * the directory GET reuses the warm connection, and when Pebble answers
     * between two turns (the test preempted under load) the third reads it,
     * wakes the waiting orders on 0 s timers and leaves no transfer open for
     * a moment. So turn on until one is open again; the orders need many
     * more exchanges than that, and finishing would fail on_done_never. */
    for (int i = 0; i < 3; i++)
        assert_non_null(acme_order_start(fx->client, "d.test", PKI_KEY_EC_P256, on_done_never, NULL));
    for (int turn = 0; turn < 3 || curlev_active(fx->cv) == 0; turn++) {
        assert_true(turn < 100);
        event_base_loop(fx->base, EVLOOP_ONCE | (turn < 3 ? EVLOOP_NONBLOCK : 0));
    }
    assert_true(curlev_active(fx->cv) > 0);
    acme_client_free(fx->client);
    fx->client = NULL;
    assert_int_equal(curlev_active(fx->cv), 0);
}

/* ---- badNonce group ---------------------------------------------------- */

static int setup_nonce(void **state)
{
    static const char *const args[] = { "--always-valid", "--nonce-reject", "50", NULL };
    return fx_setup(state, args, 0);
}

static void test_bad_nonce(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, NULL, NULL, NULL);
    run_orders(fx, "nonce", 5, PKI_KEY_EC_P256);
    for (int i = 0; i < 5; i++) {
        char host[32];
        snprintf(host, sizeof(host), "nonce%d.test", i);
        assert_int_equal(fx->status[i], ACME_OK);
        verify_chain(fx, i, host);
    }
    acme_stats_t st;
    acme_client_stats(fx->client, &st);
    printf("badNonce: %lu resends over %lu requests, 5/5 orders ok\n", st.badnonce_retries, st.requests);
    assert_true(st.badnonce_retries > 0);
    print_latency("order with 50% badNonce", &fx->res[0]);

    /* With resends switched off (1 allowed is the minimum), a 50 % storm
     * fails some order as transient, never as a hard failure. */
    acme_config_t cfg = {
        .directory_url = fx->pebble.directory_url,
        .ca_file = fx->pebble.ca_file,
        .hooks = { h_load, h_save, h_publish, h_unpublish, &fx->world },
        .badnonce_retries = 1,
    };
    acme_client_free(fx->client);
    fx->client = acme_client_new(fx->base, fx->cv, &cfg);
    run_orders(fx, "storm", 8, PKI_KEY_EC_P256);
    int transient = 0;
    for (int i = 0; i < 8; i++) {
        assert_true(fx->status[i] == ACME_OK || fx->status[i] == ACME_TRANSIENT);
        if (fx->status[i] == ACME_TRANSIENT) {
            assert_string_equal(fx->ptype[i], "urn:ietf:params:acme:error:badNonce");
            transient++;
        }
    }
    printf("badNonce with 1 resend: %d/8 orders transient\n", transient);
}

/* ---- real validation group --------------------------------------------- */

static int setup_real(void **state)
{
    static const char *const args[] = { "--mock-dns", NULL };
    return fx_setup(state, args, 1);
}

static void test_http01(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, "http-01", NULL, NULL);
    unsigned before = acme_httpd_count(fx->httpd);
    run_orders(fx, "web", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_OK);
    verify_chain(fx, 0, "web.test");
    assert_true(acme_httpd_count(fx->httpd) > before);
    assert_int_equal(fx->world.published, fx->world.unpublished);
    print_latency("http-01 validated", &fx->res[0]);
}

static void test_tls_alpn01(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, "tls-alpn-01,http-01", NULL, NULL);
    unsigned before = acme_alpnd_served(fx->alpnd);
    run_orders(fx, "alpn", 3, PKI_KEY_EC_P256);
    for (int i = 0; i < 3; i++) {
        char host[32];
        snprintf(host, sizeof(host), "alpn%d.test", i);
        assert_int_equal(fx->status[i], ACME_OK);
        verify_chain(fx, i, host);
    }
    assert_true(acme_alpnd_served(fx->alpnd) >= before + 3);
    assert_int_equal(fx->world.published, fx->world.unpublished);
    print_latency("tls-alpn-01 validated", &fx->res[0]);
}

static void test_validation_fails(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    /* A publish hook that "forgets" to serve: the CA must say unauthorized/
     * connection, and the order fails (not transient) with that problem. */
    acme_client_free(fx->client);
    acme_config_t cfg = {
        .directory_url = fx->pebble.directory_url,
        .ca_file = fx->pebble.ca_file,
        .challenges = "http-01",
        .hooks = { h_load, h_save, NULL, NULL, &fx->world },
    };
    fx->client = acme_client_new(fx->base, fx->cv, &cfg);
    run_orders(fx, "nobody", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_FAILED);
    assert_non_null(fx->ptype[0]);
    assert_memory_equal(fx->ptype[0], "urn:ietf:params:acme:error:", 27);
}

/* ---- EAB group --------------------------------------------------------- */

#define EAB_KEY "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"

static int setup_eab(void **state)
{
    static const char *const args[] = { "--always-valid", "--eab", "kid-1=" EAB_KEY, NULL };
    return fx_setup(state, args, 0);
}

static void test_eab(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        skip();
    fx_client(fx, NULL, NULL, NULL);
    run_orders(fx, "eab", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_FAILED);
    assert_string_equal(fx->ptype[0], "urn:ietf:params:acme:error:externalAccountRequired");
    /* The key saved for the failed attempt is reused with EAB. */
    fx_client(fx, NULL, "kid-1", EAB_KEY);
    run_orders(fx, "eab", 1, PKI_KEY_EC_P256);
    assert_int_equal(fx->status[0], ACME_OK);
    verify_chain(fx, 0, "eab.test");
    assert_non_null(fx->world.kid);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a peer may close first */
    log_setup(getenv("HEE_TEST_DEBUG") ? LOG_DEBUG : LOG_INFO, 2, -1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest valid[] = {
        cmocka_unit_test(test_issue_one),
        cmocka_unit_test(test_issue_ten_at_once),
        cmocka_unit_test(test_account_lookup_and_rsa),
        cmocka_unit_test(test_bad_arguments),
    };
    const struct CMUnitTest nonce[] = { cmocka_unit_test(test_bad_nonce) };
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_http01),
        cmocka_unit_test(test_tls_alpn01),
        cmocka_unit_test(test_validation_fails),
    };
    const struct CMUnitTest eab[] = { cmocka_unit_test(test_eab) };
    int rc = cmocka_run_group_tests_name("pebble_always_valid", valid, setup_valid, fx_teardown);
    rc += cmocka_run_group_tests_name("pebble_bad_nonce", nonce, setup_nonce, fx_teardown);
    rc += cmocka_run_group_tests_name("pebble_real_validation", real, setup_real, fx_teardown);
    rc += cmocka_run_group_tests_name("pebble_eab", eab, setup_eab, fx_teardown);
    curl_global_cleanup();
    return rc;
}
