/* acme: RFC 8555 client on the control thread's loop. One acme_client_t per
 * directory URL (directory, account via hooks, nonce pool) runs many orders.
 * Ownership: config strings are copied; hooks get borrowed strings; results
 * and their strings live only during the callback (copy; key PEM is wiped).
 * Callbacks never run inside acme_order_start/acme_renewal_info; freeing the
 * client (ok in a callback, not in a hook) cancels all without callbacks. */
#ifndef HEE_ACME_H
#define HEE_ACME_H

#include <stdint.h>

#include <event2/event.h>

#include "common/curlev.h"
#include "control/keypool.h"
#include "control/pki.h"

typedef struct acme_client acme_client_t;
typedef struct acme_order acme_order_t;

typedef enum {
    ACME_OK = 0,
    ACME_FAILED,       /* the CA said no (problem_type says why): do not retry soon */
    ACME_RATE_LIMITED, /* retry after retry_after_s (0: unknown) */
    ACME_TRANSIENT,    /* network, 5xx, timeout, badNonce storm: retry later */
} acme_status_t;

const char *acme_status_name(acme_status_t s);

/* Problem types Hee reports for failures that are not the CA's own. */
#define ACME_PROBLEM_TRANSPORT "urn:hee:acme:transport"     /* curl error */
#define ACME_PROBLEM_TIMEOUT "urn:hee:acme:timeout"         /* polling / order bound */
#define ACME_PROBLEM_PROTOCOL "urn:hee:acme:protocol"       /* response we cannot use */
#define ACME_PROBLEM_NO_CHALLENGE "urn:hee:acme:no-challenge" /* none we can answer */
#define ACME_PROBLEM_HOOK "urn:hee:acme:hook"               /* a hook returned -1 */
#define ACME_PROBLEM_INTERNAL "urn:hee:acme:internal"       /* crypto / memory */
#define ACME_PROBLEM_BAD_CERT "urn:hee:acme:bad-certificate" /* not for our key/name */
#define ACME_PROBLEM_NO_ARI "urn:hee:acme:ari-unsupported"

/* Hooks run synchronously on the loop and must not call acme_* functions. */
typedef struct {
    /* The store keeps one account per directory URL. load: 0 with *key_pem /
     * *kid malloc'd (either may be NULL when unknown), -1 on error. save: 0
     * or -1; called with kid NULL before the account is created (so a crash
     * leaves a key that onlyReturnExisting finds), then with the kid. */
    int (*load_account)(void *arg, const char *dir_url, char **key_pem, char **kid);
    int (*save_account)(void *arg, const char *dir_url, const char *key_pem, const char *kid);
    /* type "http-01": serve key_authorization at
     * http://<hostname>/.well-known/acme-challenge/<token>.
     * type "tls-alpn-01": answer ALPN "acme-tls/1" for hostname with
     * pki_tls_alpn_cert(hostname, key_authorization). Must be servable (or
     * about to be: a queue to edge threads is fine) when it returns 0. */
    int (*publish_challenge)(void *arg, const char *type, const char *hostname, const char *token,
                             const char *key_authorization);
    void (*unpublish_challenge)(void *arg, const char *type, const char *hostname, const char *token);
    void *arg;
} acme_hooks_t;

typedef struct {
    const char *directory_url;
    const char *ca_file;       /* verifies the directory's HTTPS; NULL: system store */
    const char *contact_email; /* optional; sent as mailto: */
    const char *eab_kid;       /* optional external account binding */
    const char *eab_hmac_key;  /* base64url, as CAs hand it out */
    const char *challenges;    /* preference; NULL: CONFIG_DEFAULT_CHALLENGES */
    acme_hooks_t hooks;        /* NULL load/save: the account lives in memory only */
    /* Tunables; 0 picks the default in brackets. */
    int badnonce_retries;   /* immediate resends per request on badNonce [10] */
    int poll_first_ms;      /* first wait when no Retry-After, then doubling [25] */
    int poll_max_ms;        /* cap of the doubling [8000] */
    int poll_total_ms;      /* bound on one authz or order polling phase [120000] */
    int order_timeout_ms;   /* bound on a whole order [300000] */
    int request_timeout_ms; /* one HTTP exchange [30000] */
    int max_orders;         /* orders running at once; more wait in line [16] */
    int allow_http;         /* accept http:// URLs (tests with fake servers only) */
    keypool_t *keys;        /* certificate keys made off the loop (borrowed); NULL: inline */
} acme_config_t;

typedef struct {
    acme_status_t status;
    const char *hostname;
    const char *cert_pem; /* chain, leaf first (ACME_OK only) */
    const char *key_pem;  /* the certificate's key, PKCS#8 (ACME_OK only) */
    int64_t not_before_ms, not_after_ms;
    const char *issuer;   /* leaf's issuer CN */
    const char *serial_hex;
    const char *problem_type;   /* failures: RFC 8555 or ACME_PROBLEM_* */
    const char *problem_detail;
    int retry_after_s;          /* > 0 when the server said when to come back */
    int64_t ari_start_ms, ari_end_ms; /* RFC 9773 suggested window; 0: none */
    /* Where the time went: elapsed = http + planned waits (polling,
     * Retry-After, queueing behind max_orders/account setup) + our own work. */
    int64_t elapsed_ms, http_ms, wait_ms;
    unsigned requests; /* HTTP exchanges this order made */
} acme_result_t;

typedef void (*acme_done_cb)(const acme_result_t *res, void *arg);

typedef struct {
    unsigned long requests;         /* HTTP exchanges sent */
    unsigned long badnonce_retries; /* resends after badNonce */
    unsigned long orders_ok, orders_failed;
} acme_stats_t;

/* NULL on bad config (no directory URL, unknown challenge type, bad EAB). */
acme_client_t *acme_client_new(struct event_base *base, curlev_t *cv, const acme_config_t *cfg);
void acme_client_free(acme_client_t *c);
void acme_client_stats(const acme_client_t *c, acme_stats_t *out);

/* Orders a certificate for one hostname (A-label, no wildcard) with a fresh
 * key of key_type. done_cb runs exactly once unless the order is cancelled.
 * NULL on bad arguments. The handle is valid until done_cb starts. */
acme_order_t *acme_order_start(acme_client_t *c, const char *hostname, pki_key_type_t key_type,
                               acme_done_cb done_cb, void *arg);
/* Stops an order; unpublishes its challenge; done_cb is not called. */
void acme_order_cancel(acme_order_t *o);

/* ACME Renewal Information (RFC 9773). */
typedef struct {
    acme_status_t status;
    int64_t start_ms, end_ms;    /* suggested window */
    const char *explanation_url; /* may be NULL */
    int retry_after_s;           /* when to ask again (server's Retry-After) */
    const char *problem_type, *problem_detail;
} acme_ari_t;
typedef void (*acme_ari_cb)(const acme_ari_t *ari, void *arg);

/* Fetches the suggested renewal window for the leaf of cert_pem; cb runs
 * once (ACME_FAILED with ACME_PROBLEM_NO_ARI when the directory has no
 * renewalInfo). 0, or -1 when cert_pem has no AKI / serial. */
int acme_renewal_info(acme_client_t *c, const char *cert_pem, acme_ari_cb cb, void *arg);
/* base64url(AKI keyIdentifier) "." base64url(serial octets); malloc'd. */
char *acme_ari_cert_id(const char *cert_pem);

#endif
