#include "edge/tlsrec.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* DESIGN
 * RFC 8446 5.2: each record is header(5) || AEAD(key, nonce, inner, aad =
 * header) where inner = content || type || zero padding and nonce = iv XOR
 * the 64-bit record sequence number, left-padded. Keys and IVs come from a
 * traffic secret by HKDF-Expand-Label (7.1, 7.3); KeyUpdate replaces a
 * secret with HKDF-Expand-Label(secret, "traffic upd", "", Hash.length).
 * Sequence numbers continue from what OpenSSL used: the message callback
 * counts every record header after the application secrets appear in the
 * key log (the point where each direction switched keys). */

#define TAG 16
#define IVLEN 12

struct tlsrec {
    EVP_CIPHER_CTX *rctx, *wctx;
    const EVP_CIPHER *cipher;
    const EVP_MD *md;        /* the suite's hash (pre-fetched) */
    uint8_t hlen, klen;
    uint8_t rsecret[48], wsecret[48];
    uint8_t riv[IVLEN], wiv[IVLEN];
    uint64_t rseq, wseq;
    /* RFC 8446 6: after a fatal error nothing more is opened or sealed but
     * the one alert it calls for (alert: its description, ALERT_NONE when
     * the peer's own alert ended it); after close_notify (6.1) received
     * data is ignored, and after ours nothing more is sealed. */
    uint8_t failed, alert, rclosed, wclosed;
    /* Records in a row that carried no application data (empty ones,
     * KeyUpdates): the caller keeps reading while tlsrec_open returns 0, so
     * without a bound one client streaming them (cheap to send, a KeyUpdate
     * costs us two HKDFs) holds its worker's thread. OpenSSL has the same
     * bound (MAX_EMPTY_RECORDS, MAX_KEY_UPDATE_MESSAGES). */
    uint8_t empty_run;
};

#define MAX_EMPTY_RUN 32

#define ALERT_NONE 255
#define AD_UNEXPECTED_MESSAGE 10
#define AD_BAD_RECORD_MAC 20
#define AD_RECORD_OVERFLOW 22
#define AD_ILLEGAL_PARAMETER 47
#define AD_DECODE_ERROR 50
#define AD_INTERNAL_ERROR 80

int tlsrec_algs_init(tlsrec_algs_t *a)
{
    memset(a, 0, sizeof(*a));
    a->aes128gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    a->aes256gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    a->chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    a->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    /* ChaCha may be absent (FIPS): such connections stay on OpenSSL. */
    return a->aes128gcm && a->aes256gcm && a->sha256 && a->sha384 ? 0 : -1;
}

void tlsrec_algs_free(tlsrec_algs_t *a)
{
    EVP_CIPHER_free(a->aes128gcm);
    EVP_CIPHER_free(a->aes256gcm);
    EVP_CIPHER_free(a->chacha);
    EVP_MD_free(a->sha256);
    EVP_MD_free(a->sha384);
    memset(a, 0, sizeof(*a));
}

/* ---- watching the handshake ---- */

static int unhex(const char *s, uint8_t *out, size_t max)
{
    size_t n = 0;
    while (s[0] && s[1] && s[0] != ' ' && n < max) {
        int hi = s[0] <= '9' ? s[0] - '0' : (s[0] | 0x20) - 'a' + 10;
        int lo = s[1] <= '9' ? s[1] - '0' : (s[1] | 0x20) - 'a' + 10;
        if (hi < 0 || hi > 15 || lo < 0 || lo > 15)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return s[0] && s[0] != ' ' ? -1 : (int)n;
}

void tlsrec_watch_keylog(tlsrec_watch_t *w, const char *line)
{
    static const char C[] = "CLIENT_TRAFFIC_SECRET_0 ", S[] = "SERVER_TRAFFIC_SECRET_0 ";
    int client = strncmp(line, C, sizeof(C) - 1) == 0;
    if (!client && strncmp(line, S, sizeof(S) - 1) != 0)
        return;
    const char *sp = strrchr(line, ' ');
    uint8_t *dst = client ? w->csecret : w->ssecret;
    int n = sp ? unhex(sp + 1, dst, 48) : -1;
    if (n != 32 && n != 48) {
        w->bad = 1;
        return;
    }
    if (client)
        w->clen = (uint8_t)n;
    else
        w->slen = (uint8_t)n;
}

void tlsrec_watch_msg(tlsrec_watch_t *w, int write_p, int content_type, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    if (content_type == SSL3_RT_HEADER) {
        /* One call per record; counted once the direction uses its
         * application secret. */
        if (write_p && w->slen)
            w->wseq++;
        else if (!write_p && w->clen)
            w->rseq++;
        return;
    }
    /* After the handshake we only follow application data and the tickets
     * OpenSSL itself sends; a KeyUpdate or any other post-handshake
     * message changes keys we could not track. */
    if (content_type == SSL3_RT_HANDSHAKE && len > 0 && b[0] == SSL3_MT_KEY_UPDATE)
        w->bad = 1;
    if (!write_p && w->clen && content_type == SSL3_RT_INNER_CONTENT_TYPE && len == 1 && b[0] != SSL3_RT_APPLICATION_DATA)
        w->bad = 1;
}

void tlsrec_watch_clear(tlsrec_watch_t *w)
{
    OPENSSL_cleanse(w, sizeof(*w));
}

/* ---- capture policy ---- */

#define POLICY_ONE 256
#define POLICY_SHIFT 4   /* each outcome weighs 1/16 */
#define POLICY_CUTOFF 224 /* 7/8 of recent captures wasted */
#define POLICY_SAMPLE 16

int tlsrec_policy_capture(tlsrec_policy_t *p)
{
    if (p->waste < POLICY_CUTOFF || ++p->skipped >= POLICY_SAMPLE) {
        p->skipped = 0;
        return 1;
    }
    return 0;
}

void tlsrec_policy_learn(tlsrec_policy_t *p, int went_idle)
{
    unsigned w = p->waste - (p->waste >> POLICY_SHIFT);
    p->waste = (uint16_t)(w + (went_idle ? 0 : POLICY_ONE >> POLICY_SHIFT));
}

/* ---- keys ---- */

/* HKDF-Expand (RFC 5869) for outputs of at most one hash length, which is
 * all TLS 1.3 traffic keys need: T(1) = HMAC(secret, info || 0x01). HMAC by
 * hand over the pre-fetched digest: no provider lookup per connection. */
static int hkdf_expand1(const EVP_MD *md, const uint8_t *secret, size_t slen, const uint8_t *info,
                        size_t infolen, uint8_t *out, size_t outlen)
{
    uint8_t pad[128], inner[64], outer[64];
    size_t bs = (size_t)EVP_MD_get_block_size(md), hl = (size_t)EVP_MD_get_size(md);
    static const uint8_t one = 1;
    int rc = -1;
    if (bs > sizeof(pad) || slen > bs || outlen > hl)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -1;
    memset(pad, 0x36, bs);
    for (size_t i = 0; i < slen; i++)
        pad[i] ^= secret[i];
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, bs) != 1 ||
        EVP_DigestUpdate(ctx, info, infolen) != 1 || EVP_DigestUpdate(ctx, &one, 1) != 1 ||
        EVP_DigestFinal_ex(ctx, inner, NULL) != 1)
        goto out;
    for (size_t i = 0; i < bs; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, bs) != 1 ||
        EVP_DigestUpdate(ctx, inner, hl) != 1 || EVP_DigestFinal_ex(ctx, outer, NULL) != 1)
        goto out;
    memcpy(out, outer, outlen);
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    OPENSSL_cleanse(outer, sizeof(outer));
    return rc;
}

static int expand_label(const tlsrec_t *r, const uint8_t *secret, const char *label, uint8_t *out, size_t outlen)
{
    uint8_t info[2 + 1 + 32 + 1];
    size_t ll = 6 + strlen(label);
    if (ll > 32)
        return -1;
    info[0] = (uint8_t)(outlen >> 8);
    info[1] = (uint8_t)outlen;
    info[2] = (uint8_t)ll;
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll - 6);
    info[3 + ll] = 0; /* empty context */
    return hkdf_expand1(r->md, secret, r->hlen, info, 4 + ll, out, outlen);
}

/* Installs the key and IV of secret into ctx (enc: write side). */
static int install(tlsrec_t *r, EVP_CIPHER_CTX *ctx, const uint8_t *secret, uint8_t *iv, int enc)
{
    uint8_t key[32];
    int rc = -1;
    if (expand_label(r, secret, "key", key, r->klen) != 0 || expand_label(r, secret, "iv", iv, IVLEN) != 0)
        goto out;
    if (EVP_CipherInit_ex2(ctx, r->cipher, key, NULL, enc, NULL) != 1)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

static int next_secret(tlsrec_t *r, uint8_t *secret)
{
    uint8_t n[48];
    if (expand_label(r, secret, "traffic upd", n, r->hlen) != 0)
        return -1;
    memcpy(secret, n, r->hlen);
    OPENSSL_cleanse(n, sizeof(n));
    return 0;
}

tlsrec_t *tlsrec_takeover(const tlsrec_algs_t *a, SSL *ssl, tlsrec_watch_t *w)
{
    if (w->bad || !w->clen || w->clen != w->slen || SSL_version(ssl) != TLS1_3_VERSION || SSL_has_pending(ssl))
        return NULL;
    /* SSL_has_pending misses a record whose header OpenSSL has consumed
     * (and counted) while its body has not arrived: the header would be
     * lost. And a write OpenSSL still buffers would be lost too. */
    if (strcmp(SSL_rstate_string(ssl), "RH") != 0 || SSL_want_write(ssl))
        return NULL;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    if (!c)
        return NULL;
    tlsrec_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    switch (SSL_CIPHER_get_id(c) & 0xFFFF) {
    case 0x1301: r->cipher = a->aes128gcm; r->klen = 16; r->md = a->sha256; r->hlen = 32; break;
    case 0x1302: r->cipher = a->aes256gcm; r->klen = 32; r->md = a->sha384; r->hlen = 48; break;
    case 0x1303: r->cipher = a->chacha; r->klen = 32; r->md = a->sha256; r->hlen = 32; break;
    default: break;
    }
    if (!r->cipher || r->hlen != w->clen)
        goto fail;
    memcpy(r->rsecret, w->csecret, r->hlen);
    memcpy(r->wsecret, w->ssecret, r->hlen);
    r->rseq = w->rseq;
    r->wseq = w->wseq;
    if (!(r->rctx = EVP_CIPHER_CTX_new()) || !(r->wctx = EVP_CIPHER_CTX_new()) ||
        install(r, r->rctx, r->rsecret, r->riv, 0) != 0 || install(r, r->wctx, r->wsecret, r->wiv, 1) != 0)
        goto fail;
    tlsrec_watch_clear(w);
    return r;
fail:
    tlsrec_free(r);
    return NULL;
}

void tlsrec_free(tlsrec_t *r)
{
    if (!r)
        return;
    EVP_CIPHER_CTX_free(r->rctx);
    EVP_CIPHER_CTX_free(r->wctx);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

/* ---- records ---- */

static void nonce(const uint8_t iv[IVLEN], uint64_t seq, uint8_t out[IVLEN])
{
    memcpy(out, iv, IVLEN);
    for (int i = 0; i < 8; i++)
        out[IVLEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

long tlsrec_record_len(const uint8_t *buf, size_t len)
{
    if (len < TLSREC_HEADER)
        return 0;
    size_t n = (size_t)buf[3] << 8 | buf[4];
    /* After the handshake every record is "application_data", 0x0303. */
    if (buf[0] != SSL3_RT_APPLICATION_DATA || buf[1] != 3 || buf[2] != 3 || n < TAG + 1 ||
        n > TLSREC_MAX_PLAIN + 256)
        return -1;
    return (long)(TLSREC_HEADER + n);
}

static long fail_with(tlsrec_t *r, uint8_t alert)
{
    r->failed = 1;
    r->alert = alert;
    return -1;
}

/* The alert a header tlsrec_record_len refuses calls for (RFC 8446 5.1, 5.2). */
static uint8_t header_alert(const uint8_t *rec, size_t len)
{
    if (len < TLSREC_HEADER)
        return AD_DECODE_ERROR;
    if (rec[0] != SSL3_RT_APPLICATION_DATA)
        return AD_UNEXPECTED_MESSAGE; /* incl. change_cipher_spec after the handshake */
    if (((size_t)rec[3] << 8 | rec[4]) > TLSREC_MAX_PLAIN + 256)
        return AD_RECORD_OVERFLOW;
    return AD_DECODE_ERROR;
}

void tlsrec_fail_header(tlsrec_t *r, const uint8_t *buf, size_t len)
{
    if (!r->failed && !r->rclosed)
        (void)fail_with(r, header_alert(buf, len));
}

/* 0 or the alert to send. */
static uint8_t handshake_msgs(tlsrec_t *r, const uint8_t *m, size_t n, int *send_update)
{
    /* Only KeyUpdate is legal from a client after the handshake (no
     * post-handshake auth is ever requested), zero-length handshake
     * fragments are forbidden (5.1), and a message split across records is
     * refused: a KeyUpdate is 5 bytes. A key change must end its record
     * (5.1), so the record holds exactly one KeyUpdate. */
    if (n < 4 || m[0] != SSL3_MT_KEY_UPDATE)
        return AD_UNEXPECTED_MESSAGE;
    if (m[1] || m[2] || m[3] != 1)
        return AD_DECODE_ERROR;
    if (n != 5)
        return AD_UNEXPECTED_MESSAGE;
    if (m[4] > 1)
        return AD_ILLEGAL_PARAMETER; /* 4.6.3 */
    if (next_secret(r, r->rsecret) != 0 || install(r, r->rctx, r->rsecret, r->riv, 0) != 0)
        return AD_INTERNAL_ERROR;
    r->rseq = 0;
    if (m[4] == 1)
        *send_update = 1;
    return 0;
}

long tlsrec_open(tlsrec_t *r, const uint8_t *rec, size_t len, uint8_t *out, int *eof, int *send_update)
{
    uint8_t iv[IVLEN];
    int ol = 0, fl = 0;
    if (r->failed)
        return -1;
    if (r->rclosed) {
        *eof = 1; /* 6.1: data after close_notify is ignored */
        return 0;
    }
    /* len must be what the header says: never trust one over the other. */
    if (len < TLSREC_HEADER || tlsrec_record_len(rec, len) != (long)len)
        return fail_with(r, header_alert(rec, len));
    if (r->rseq == UINT64_MAX)
        return fail_with(r, AD_INTERNAL_ERROR); /* 5.3: never wrap */
    size_t clen = len - TLSREC_HEADER;
    nonce(r->riv, r->rseq, iv);
    if (EVP_DecryptInit_ex2(r->rctx, NULL, NULL, iv, NULL) != 1 ||
        EVP_DecryptUpdate(r->rctx, NULL, &ol, rec, TLSREC_HEADER) != 1 ||
        EVP_DecryptUpdate(r->rctx, out, &ol, rec + TLSREC_HEADER, (int)(clen - TAG)) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->rctx, EVP_CTRL_AEAD_SET_TAG, TAG, (void *)(rec + len - TAG)) != 1 ||
        EVP_DecryptFinal_ex(r->rctx, out + ol, &fl) != 1) {
        /* The cipher wrote unauthenticated plaintext before the tag check. */
        OPENSSL_cleanse(out, clen - TAG);
        return fail_with(r, AD_BAD_RECORD_MAC);
    }
    r->rseq++;
    size_t n = (size_t)ol + (size_t)fl;
    /* 5.4: the whole TLSInnerPlaintext, padding included, is at most
     * 2^14 + 1 bytes. */
    if (n > TLSREC_MAX_PLAIN + 1)
        return fail_with(r, AD_RECORD_OVERFLOW);
    while (n > 0 && out[n - 1] == 0)
        n--; /* padding */
    if (n == 0)
        return fail_with(r, AD_UNEXPECTED_MESSAGE); /* 5.4: no content type */
    uint8_t type = out[--n];
    uint8_t ad;
    if ((type == TLSREC_APPDATA && n == 0) || type == TLSREC_HANDSHAKE) {
        if (++r->empty_run > MAX_EMPTY_RUN)
            return fail_with(r, AD_UNEXPECTED_MESSAGE);
    } else {
        r->empty_run = 0;
    }
    switch (type) {
    case TLSREC_APPDATA:
        return (long)n;
    case TLSREC_ALERT:
        if (n != 2)
            return fail_with(r, AD_DECODE_ERROR); /* one whole alert per record */
        if (out[1] == 0) { /* close_notify */
            r->rclosed = 1;
            *eof = 1;
            return 0;
        }
        return fail_with(r, ALERT_NONE); /* the peer's error: answer nothing */
    case TLSREC_HANDSHAKE:
        ad = handshake_msgs(r, out, n, send_update);
        return ad ? fail_with(r, ad) : 0;
    default:
        return fail_with(r, AD_UNEXPECTED_MESSAGE);
    }
}

int tlsrec_alert(const tlsrec_t *r)
{
    return r->failed && r->alert != ALERT_NONE ? r->alert : -1;
}

static long seal_type(tlsrec_t *r, uint8_t type, const void *p, size_t n, uint8_t *out)
{
    size_t clen = n + 1 + TAG;
    uint8_t iv[IVLEN];
    int ol = 0, t = 0;
    if (n > TLSREC_MAX_PLAIN || r->wseq == UINT64_MAX || r->wclosed || (r->failed && type != TLSREC_ALERT))
        return -1;
    out[0] = TLSREC_APPDATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    nonce(r->wiv, r->wseq, iv);
    uint8_t *body = out + TLSREC_HEADER;
    if (EVP_EncryptInit_ex2(r->wctx, NULL, NULL, iv, NULL) != 1 ||
        EVP_EncryptUpdate(r->wctx, NULL, &ol, out, TLSREC_HEADER) != 1)
        return -1;
    if (n && EVP_EncryptUpdate(r->wctx, body, &ol, p, (int)n) != 1)
        return -1;
    t += n ? ol : 0;
    if (EVP_EncryptUpdate(r->wctx, body + t, &ol, &type, 1) != 1)
        return -1;
    t += ol;
    if (EVP_EncryptFinal_ex(r->wctx, body + t, &ol) != 1)
        return -1;
    t += ol;
    if ((size_t)t != n + 1 || EVP_CIPHER_CTX_ctrl(r->wctx, EVP_CTRL_AEAD_GET_TAG, TAG, body + t) != 1)
        return -1;
    r->wseq++;
    return (long)(TLSREC_HEADER + clen);
}

long tlsrec_seal(tlsrec_t *r, const void *p, size_t n, uint8_t *out)
{
    return seal_type(r, TLSREC_APPDATA, p, n, out);
}

long tlsrec_seal_alert(tlsrec_t *r, const uint8_t alert[2], uint8_t *out)
{
    long n = seal_type(r, TLSREC_ALERT, alert, 2, out);
    if (n > 0)
        r->wclosed = 1; /* close_notify or fatal: the last thing we send */
    return n;
}

int tlsrec_should_rekey(const tlsrec_t *r)
{
    return r->wseq >= TLSREC_REKEY_AFTER;
}

long tlsrec_seal_key_update(tlsrec_t *r, uint8_t *out)
{
    static const uint8_t ku[5] = { SSL3_MT_KEY_UPDATE, 0, 0, 1, 0 };
    long n = seal_type(r, TLSREC_HANDSHAKE, ku, sizeof(ku), out);
    if (n < 0)
        return -1;
    if (next_secret(r, r->wsecret) != 0 || install(r, r->wctx, r->wsecret, r->wiv, 1) != 0) {
        /* The KeyUpdate is out but we have no key to follow it: not even
         * an alert could be read by the peer. */
        r->wclosed = 1;
        return fail_with(r, AD_INTERNAL_ERROR);
    }
    r->wseq = 0;
    return n;
}
