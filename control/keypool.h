/* keypool: fresh certificate keys, made off the control loop.
 *
 * An RSA-2048 key takes 50-500 ms to generate: run on the control thread it
 * would stall the API, the probes and every parked handshake for that long.
 * A generator thread keeps a small stock of RSA keys (started on the first
 * demand, so a P-256-only daemon never makes one); the loop only takes from
 * it. P-256 keys take ~50 µs and are made inline.
 *
 * Ownership: keypool_take() hands over an EVP_PKEY (the caller frees it).
 * A waiter is caller-owned memory (embed it in the job or order that waits);
 * it must stay valid until its callback runs or keypool_cancel() returns.
 * The pool owns its stock, its thread and its event; keypool_free() joins
 * the thread (at most one key generation long). */
#ifndef HEE_KEYPOOL_H
#define HEE_KEYPOOL_H

#include <event2/event.h>
#include <openssl/evp.h>

#include "control/pki.h"

typedef struct keypool keypool_t;
typedef void (*keypool_cb)(void *arg);

typedef struct keypool_waiter {
    struct keypool_waiter *next;
    keypool_cb cb;
    void *arg;
    int queued;
} keypool_waiter_t;

/* stock: RSA keys kept ready (1..64). NULL on failure (eventfd, event). */
keypool_t *keypool_new(struct event_base *base, int stock);
void keypool_free(keypool_t *kp);

/* A fresh key of type t, or NULL when none is ready yet (RSA only; also on
 * an OpenSSL failure for P-256). Never blocks. */
EVP_PKEY *keypool_take(keypool_t *kp, pki_key_type_t t);
/* Calls cb(arg) on the loop once an RSA key is ready; the callback then
 * calls keypool_take() again (another waiter may have been first). */
void keypool_wait(keypool_t *kp, keypool_waiter_t *w, keypool_cb cb, void *arg);
/* Removes w if it is waiting; safe to call for a waiter that is not. */
void keypool_cancel(keypool_t *kp, keypool_waiter_t *w);

#endif
