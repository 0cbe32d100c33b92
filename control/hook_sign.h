/* hook_sign: signs outgoing webhook requests and verifies signed ones.
 *
 * Pure functions: no I/O, no clocks (times are passed in), no global state.
 * Results land in the caller's hook_sign_out_t (fixed buffers, nothing to
 * free); only hook_sign_new_secret() allocates (caller free()s, and should
 * wipe it first with OPENSSL_cleanse or explicit_bzero).
 * Secrets are never logged here; error strings never quote them. */
#ifndef HEE_HOOK_SIGN_H
#define HEE_HOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* Every request carries TWO independent signature schemes:
 *
 * 1. Standard Webhooks v1 (https://www.standardwebhooks.com/):
 *      webhook-id:        <message id>
 *      webhook-timestamp: <unix seconds>
 *      webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>
 *    key = base64-DECODED bytes of the part after "whsec_" (24..64 bytes).
 *    During rotation each live secret contributes one "v1,…" entry, newest
 *    first, separated by one space; a verifier accepts if any entry matches.
 *
 * 2. Hee's own scheme (seed docs, "Webhook signature"):
 *      X-Hee-Timestamp: <unix seconds>
 *      X-Hee-Signature: sha256=<lower-case hex HMAC-SHA256(key, "{timestamp}.{body}")>
 *    !!! key = the FULL secret string as ASCII bytes, prefix included, e.g.
 *    !!! the 50 bytes "whsec_MfKQ…" — NOT the decoded bytes. That is what the
 *    documented ten-line verifier does (createHmac("sha256", process.env.WHSEC)),
 *    so it is what we must sign with.
 *    Rotation: X-Hee-Signature is ALWAYS signed with the NEWEST secret, so a
 *    naive verifier that reads one header works as soon as it holds the new
 *    secret. While an older secret is still live, it signs an extra header
 *      X-Hee-Signature-Previous: sha256=<hex>   (same message, older secret)
 *    so a receiver still configured with the old secret can check that header
 *    instead. Absent when there is no rotation in progress.
 *
 * Both schemes: reject timestamps more than the tolerance (300 s) away from now. */

#define HOOK_SIGN_PREFIX "whsec_"
#define HOOK_SIGN_MAX_SECRETS 2        /* newest + one being rotated out */
#define HOOK_SIGN_NEW_SECRET_BYTES 32
#define HOOK_SIGN_TOLERANCE_S 300

#define HOOK_SIGN_HDR_ID "webhook-id"
#define HOOK_SIGN_HDR_TIMESTAMP "webhook-timestamp"
#define HOOK_SIGN_HDR_SIGNATURE "webhook-signature"
#define HOOK_SIGN_HDR_HEE_TIMESTAMP "X-Hee-Timestamp"
#define HOOK_SIGN_HDR_HEE_SIGNATURE "X-Hee-Signature"
#define HOOK_SIGN_HDR_HEE_SIGNATURE_PREV "X-Hee-Signature-Previous"

/* Header VALUES (the names are the macros above). All NUL-terminated.
 * The message id is not copied: the caller sends its own string as webhook-id. */
typedef struct hook_sign_out {
    char timestamp[24];                              /* both timestamp headers */
    char signature[HOOK_SIGN_MAX_SECRETS * 48];      /* "v1,<b64>[ v1,<b64>]" */
    char hee_signature[7 + 64 + 1];                  /* "sha256=<hex>" */
    char hee_signature_previous[7 + 64 + 1];         /* "" when not rotating */
} hook_sign_out_t;

typedef enum hook_sign_result {
    HOOK_SIGN_OK = 0,
    HOOK_SIGN_BAD_SECRET,     /* not "whsec_" + base64 of 24..64 bytes */
    HOOK_SIGN_BAD_INPUT,      /* id empty/unsafe, header missing or malformed */
    HOOK_SIGN_TOO_OLD,        /* timestamp outside the tolerance window */
    HOOK_SIGN_MISMATCH,       /* well-formed, but no signature matches */
    HOOK_SIGN_INTERNAL,       /* crypto or allocation failure */
} hook_sign_result_t;

const char *hook_sign_result_name(hook_sign_result_t r);

/* 1 when secret is "whsec_" + base64 (standard alphabet, padding optional)
 * decoding to 24..64 bytes. */
int hook_sign_secret_valid(const char *secret);

/* A fresh secret: "whsec_" + base64 of 32 random bytes (malloc'd; NULL on failure). */
char *hook_sign_new_secret(void);

/* Signs one request. secrets[0] is the newest, secrets[1] (optional) the one
 * being rotated out; nsecrets is 1 or 2. msg_id must be 1..255 printable
 * ASCII bytes without spaces (it becomes a header value). ts: unix seconds. */
hook_sign_result_t hook_sign_request(const char *const *secrets, size_t nsecrets,
                                     const char *msg_id, int64_t ts,
                                     const void *body, size_t len, hook_sign_out_t *out);

/* Receiver side, Standard Webhooks: header values as received (NULL = absent).
 * now_s/tolerance_s bound the timestamp; any "v1,…" entry may match. */
hook_sign_result_t hook_sign_verify_std(const char *secret, const char *msg_id,
                                        const char *timestamp, const char *signature,
                                        const void *body, size_t len,
                                        int64_t now_s, int64_t tolerance_s);

/* Receiver side, Hee scheme: accepts if X-Hee-Signature OR (when non-NULL)
 * X-Hee-Signature-Previous matches secret. */
hook_sign_result_t hook_sign_verify_hee(const char *secret, const char *timestamp,
                                        const char *signature, const char *signature_prev,
                                        const void *body, size_t len,
                                        int64_t now_s, int64_t tolerance_s);

#endif
