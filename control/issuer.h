/* issuer: certificates on demand and their renewal, on the control thread.
 * Turns MSG_CERT_WANTED hints (issuer_want, declared in control/subsys.h)
 * into at most one order per hostname — the built-in CA when [acme]
 * directory is empty, else ACME with the listed directories in fallback
 * order — stores each result with its events in one transaction, and tells
 * the edge workers (MSG_CERT_READY / MSG_CERT_FAILED). A timer renews what
 * the certificates_renew index says is due, in small batches.
 *
 * Ownership: the issuer belongs to the control thread (issuer_new in
 * subsys_start, issuer_free in subsys_free) and borrows struct control;
 * everything it allocates is its own. */
#ifndef HEE_ISSUER_H
#define HEE_ISSUER_H

#include <stdint.h>

struct control;
struct issuer;

/* msg_t.code of MSG_CERT_FAILED. */
enum issuer_fail {
    ISSUER_FAIL_UNKNOWN = 1, /* no active, verified domain for the host */
    ISSUER_FAIL_BACKOFF,     /* an earlier failure: next attempt not due yet */
    ISSUER_FAIL_LIMIT,       /* an hourly / weekly / queue limit refused it */
    ISSUER_FAIL_ERROR,       /* the order failed (CA refusal, network, internal) */
};

/* Loads (or creates, on first start with no ACME directory) the local CA
 * and the key-encryption key; builds the ACME clients. No network and no
 * per-certificate work here. NULL with *err malloc'd on failure. */
struct issuer *issuer_new(struct control *c, char **err);
/* c->cfg has changed: rebuild ACME clients if their settings did (orders in
 * flight restart on the new ones), and look for due renewals now. */
void issuer_reload(struct issuer *iss);
/* Cancels orders and timers (before the loop exits); no messages are sent. */
void issuer_stop(struct issuer *iss);
void issuer_free(struct issuer *iss);

typedef struct {
    unsigned running;  /* orders in flight */
    unsigned queued;   /* waiting for max_concurrent_orders */
    unsigned renewals; /* of those, renewals */
} issuer_stats_t;
void issuer_stats(const struct issuer *iss, issuer_stats_t *out);

/* Backoff after the failures-th consecutive failure: base * 2^(failures-1)
 * capped at max (seconds in, milliseconds out). */
int64_t issuer_backoff_ms(int base_s, int max_s, int failures);
/* When to renew a certificate valid [not_before, not_after]: a random point
 * within the CA's ARI window when it offered one (ari_end > ari_start),
 * else two thirds into the lifetime ± 1/30 of it. rnd in [0, 1). */
int64_t issuer_renew_at(int64_t not_before, int64_t not_after, int64_t ari_start, int64_t ari_end, double rnd);

/* What the CA's renewalInfo said (RFC 9773); ok = 0 when it has none or
 * the request failed. */
typedef struct {
    int ok;
    int64_t start, end; /* suggested window, ms */
    int retry_after_s;  /* when to ask again; 0: not said */
} issuer_ari_answer_t;
/* A certificate came due: 1 = renew now (the window has opened, or without
 * a window the lifetime rule says so); 0 = *next is when to look again —
 * the random point in the window or the next poll, whichever is first. */
int issuer_ari_decide(int64_t now, int64_t not_before, int64_t not_after, const issuer_ari_answer_t *a,
                      double rnd, int64_t *next);

#endif
