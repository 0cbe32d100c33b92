#include "control/hook_sign.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/util.h"

#define KEY_MIN 24
#define KEY_MAX 64
#define MSG_ID_MAX 255

const char *hook_sign_result_name(hook_sign_result_t r)
{
    static const char *const names[] = {
        [HOOK_SIGN_OK] = "ok",
        [HOOK_SIGN_BAD_SECRET] = "bad_secret",
        [HOOK_SIGN_BAD_INPUT] = "bad_input",
        [HOOK_SIGN_TOO_OLD] = "timestamp_out_of_window",
        [HOOK_SIGN_MISMATCH] = "signature_mismatch",
        [HOOK_SIGN_INTERNAL] = "internal",
    };
    if ((size_t)r >= UTIL_ARRAY_LEN(names) || !names[r])
        return "unknown";
    return names[r];
}

static int is_b64_std(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Decodes the part after "whsec_" into key (KEY_MAX bytes). Strict about the
 * alphabet because other Standard Webhooks libraries decode with the standard
 * one: a secret we accept must verify everywhere. */
static int secret_key(const char *secret, unsigned char key[KEY_MAX], size_t *keylen)
{
    size_t plen = strlen(HOOK_SIGN_PREFIX);
    if (!secret || strncmp(secret, HOOK_SIGN_PREFIX, plen) != 0)
        return -1;
    const char *b = secret + plen;
    size_t n = strlen(b), pad = 0;
    while (pad < 2 && n > pad && b[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!is_b64_std(b[i]))
            return -1;
    size_t outlen = 0;
    unsigned char *raw = util_unb64(b, n, &outlen);
    if (!raw)
        return -1;
    int ok = outlen >= KEY_MIN && outlen <= KEY_MAX;
    if (ok)
        memcpy(key, raw, outlen);
    OPENSSL_cleanse(raw, outlen);
    free(raw);
    *keylen = outlen;
    return ok ? 0 : -1;
}

int hook_sign_secret_valid(const char *secret)
{
    unsigned char key[KEY_MAX];
    size_t keylen = 0;
    int ok = secret_key(secret, key, &keylen) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    return ok;
}

char *hook_sign_new_secret(void)
{
    unsigned char raw[HOOK_SIGN_NEW_SECRET_BYTES];
    char *out = NULL, *b64 = NULL;
    if (util_random(raw, sizeof(raw)) != 0)
        goto out;
    b64 = util_b64(raw, sizeof(raw), 0);
    if (!b64)
        goto out;
    size_t n = strlen(HOOK_SIGN_PREFIX) + strlen(b64) + 1;
    out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", HOOK_SIGN_PREFIX, b64);
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    if (b64) {
        OPENSSL_cleanse(b64, strlen(b64));
        free(b64);
    }
    return out;
}

static int msg_id_valid(const char *id)
{
    if (!id || !*id)
        return 0;
    size_t n = 0;
    for (; id[n]; n++)
        if (n >= MSG_ID_MAX || (unsigned char)id[n] <= 0x20 || (unsigned char)id[n] >= 0x7f)
            return 0;
    return 1;
}

/* v1 entry for one secret: "v1," + base64 of HMAC(key, id.ts.body). */
static hook_sign_result_t sign_std(const char *secret, const char *id, const char *ts,
                                   const void *body, size_t len, char out[48])
{
    unsigned char key[KEY_MAX], mac[CRYPTO_SHA256_LEN];
    size_t keylen = 0;
    hook_sign_result_t rc = HOOK_SIGN_BAD_SECRET;
    if (secret_key(secret, key, &keylen) != 0)
        goto out;
    const void *pieces[] = { id, ".", ts, ".", body };
    size_t lens[] = { strlen(id), 1, strlen(ts), 1, len };
    rc = HOOK_SIGN_INTERNAL;
    if (crypto_hmac_sha256_v(key, keylen, pieces, lens, UTIL_ARRAY_LEN(pieces), mac) != 0)
        goto out;
    char *b64 = util_b64(mac, sizeof(mac), 0);
    if (!b64)
        goto out;
    snprintf(out, 48, "v1,%s", b64);
    free(b64);
    rc = HOOK_SIGN_OK;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* "sha256=" + hex HMAC(full secret string, ts.body): see the header for why
 * the key is the undecoded string. */
static hook_sign_result_t sign_hee(const char *secret, const char *ts, const void *body,
                                   size_t len, char out[7 + 64 + 1])
{
    unsigned char mac[CRYPTO_SHA256_LEN];
    const void *pieces[] = { ts, ".", body };
    size_t lens[] = { strlen(ts), 1, len };
    if (crypto_hmac_sha256_v(secret, strlen(secret), pieces, lens, UTIL_ARRAY_LEN(pieces), mac) != 0)
        return HOOK_SIGN_INTERNAL;
    memcpy(out, "sha256=", 7);
    util_hex(out + 7, mac, sizeof(mac));
    return HOOK_SIGN_OK;
}

hook_sign_result_t hook_sign_request(const char *const *secrets, size_t nsecrets,
                                     const char *msg_id, int64_t ts,
                                     const void *body, size_t len, hook_sign_out_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!secrets || nsecrets < 1 || nsecrets > HOOK_SIGN_MAX_SECRETS)
        return HOOK_SIGN_BAD_SECRET;
    if (!msg_id_valid(msg_id) || ts < 0 || (!body && len))
        return HOOK_SIGN_BAD_INPUT;
    for (size_t i = 0; i < nsecrets; i++)
        if (!hook_sign_secret_valid(secrets[i]))
            return HOOK_SIGN_BAD_SECRET;
    snprintf(out->timestamp, sizeof(out->timestamp), "%" PRId64, ts);

    hook_sign_result_t rc;
    size_t used = 0;
    for (size_t i = 0; i < nsecrets; i++) {
        char one[48];
        rc = sign_std(secrets[i], msg_id, out->timestamp, body, len, one);
        if (rc != HOOK_SIGN_OK)
            goto fail;
        used += (size_t)snprintf(out->signature + used, sizeof(out->signature) - used,
                                 "%s%s", i ? " " : "", one);
    }
    rc = sign_hee(secrets[0], out->timestamp, body, len, out->hee_signature);
    if (rc == HOOK_SIGN_OK && nsecrets > 1)
        rc = sign_hee(secrets[1], out->timestamp, body, len, out->hee_signature_previous);
    if (rc != HOOK_SIGN_OK)
        goto fail;
    return HOOK_SIGN_OK;
fail:
    memset(out, 0, sizeof(*out));
    return rc;
}

static hook_sign_result_t check_ts(const char *timestamp, int64_t now_s, int64_t tolerance_s,
                                   int64_t *ts)
{
    if (util_parse_digits(timestamp, ts) != 0)
        return HOOK_SIGN_BAD_INPUT;
    int64_t d = *ts > now_s ? *ts - now_s : now_s - *ts;
    return d > tolerance_s ? HOOK_SIGN_TOO_OLD : HOOK_SIGN_OK;
}

hook_sign_result_t hook_sign_verify_std(const char *secret, const char *msg_id,
                                        const char *timestamp, const char *signature,
                                        const void *body, size_t len,
                                        int64_t now_s, int64_t tolerance_s)
{
    int64_t ts;
    if (!hook_sign_secret_valid(secret))
        return HOOK_SIGN_BAD_SECRET;
    if (!msg_id_valid(msg_id) || !signature || (!body && len))
        return HOOK_SIGN_BAD_INPUT;
    hook_sign_result_t rc = check_ts(timestamp, now_s, tolerance_s, &ts);
    if (rc != HOOK_SIGN_OK)
        return rc;
    char want[48];
    rc = sign_std(secret, msg_id, timestamp, body, len, want);
    if (rc != HOOK_SIGN_OK)
        return rc;
    size_t wlen = strlen(want);
    /* Entries are space-separated; unknown versions are skipped, not errors,
     * so a future "v1a,…" next to "v1,…" still verifies. */
    for (const char *p = signature; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == wlen && crypto_ct_equal(p, want, wlen))
            return HOOK_SIGN_OK;
        p += n;
    }
    return HOOK_SIGN_MISMATCH;
}

static int hee_sig_matches(const char *got, const char *want)
{
    size_t n = strlen(want);
    if (!got || strlen(got) != n)
        return 0;
    char norm[7 + 64 + 1];
    /* Hex case is not part of the signature; accept upper-case digits. */
    for (size_t i = 0; i <= n; i++)
        norm[i] = i >= 7 && got[i] >= 'A' && got[i] <= 'F' ? (char)(got[i] + 32) : got[i];
    return crypto_ct_equal(norm, want, n);
}

hook_sign_result_t hook_sign_verify_hee(const char *secret, const char *timestamp,
                                        const char *signature, const char *signature_prev,
                                        const void *body, size_t len,
                                        int64_t now_s, int64_t tolerance_s)
{
    int64_t ts;
    if (!hook_sign_secret_valid(secret))
        return HOOK_SIGN_BAD_SECRET;
    if ((!signature && !signature_prev) || (!body && len))
        return HOOK_SIGN_BAD_INPUT;
    hook_sign_result_t rc = check_ts(timestamp, now_s, tolerance_s, &ts);
    if (rc != HOOK_SIGN_OK)
        return rc;
    char want[7 + 64 + 1];
    rc = sign_hee(secret, timestamp, body, len, want);
    if (rc != HOOK_SIGN_OK)
        return rc;
    if (hee_sig_matches(signature, want) || hee_sig_matches(signature_prev, want))
        return HOOK_SIGN_OK;
    return HOOK_SIGN_MISMATCH;
}
