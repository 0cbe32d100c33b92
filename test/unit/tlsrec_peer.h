/* Test helpers for edge/tlsrec (unit test and fuzz target): an OpenSSL
 * server/client pair over a socketpair whose server side tlsrec can take
 * over, and "peer", an independent TLS 1.3 record sealer/opener built on
 * OpenSSL's own TLS13-KDF (not on tlsrec's HKDF), so records can be crafted
 * with any inner plaintext, padding, header or sequence number. Static
 * inline functions: include from one .c file only. Everything here is freed by
 * pair_down / peer_free. */
#ifndef HEE_TEST_TLSREC_PEER_H
#define HEE_TEST_TLSREC_PEER_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "edge/tlsrec.h"

struct pair {
    SSL_CTX *sctx, *cctx;
    SSL *s, *c;
    int sfd, cfd;
    tlsrec_watch_t watch;
    tlsrec_algs_t algs;
    uint8_t raw[4 * TLSREC_MAX_RECORD];
    size_t rawlen;
};

static inline void pair_on_keylog(const SSL *ssl, const char *line)
{
    struct pair *p = SSL_get_app_data(ssl);
    tlsrec_watch_keylog(&p->watch, line);
}

static inline void pair_on_msg(int write_p, int version, int ct, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct pair *p = arg;
    tlsrec_watch_msg(&p->watch, write_p, ct, buf, len);
}

static inline int pair_self_signed(X509 **x, EVP_PKEY **k)
{
    *k = EVP_EC_gen("P-256");
    *x = X509_new();
    if (!*k || !*x)
        return -1;
    X509_set_version(*x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*x), 1);
    X509_gmtime_adj(X509_getm_notBefore(*x), 0);
    X509_gmtime_adj(X509_getm_notAfter(*x), 3600);
    X509_set_pubkey(*x, *k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(*x), "CN", MBSTRING_ASC, (const unsigned char *)"t.test", -1,
                               -1, 0);
    X509_set_issuer_name(*x, X509_get_subject_name(*x));
    return X509_sign(*x, *k, EVP_sha256()) > 0 ? 0 : -1;
}

/* Handshake variations: server / client groups (a mismatch forces a
 * HelloRetryRequest), a session to resume (cctx: the context it came from,
 * reused for the client so the ticket key matches: pass its server too). */
struct pair_opts {
    const char *sgroups, *cgroups;
    SSL_SESSION *resume;
    SSL_CTX *sctx;
};

static inline int pair_up_opts(struct pair *p, const char *suite, int max_version, int tickets,
                               const struct pair_opts *o);

/* Both handshakes over a socketpair (suite: client's TLS 1.3 suites or
 * NULL; max_version: 0 or a cap; tickets: NewSessionTickets the server
 * sends). 0 or -1. */
static inline int pair_up_tickets(struct pair *p, const char *suite, int max_version, int tickets)
{
    return pair_up_opts(p, suite, max_version, tickets, NULL);
}

static inline int pair_up_opts(struct pair *p, const char *suite, int max_version, int tickets,
                               const struct pair_opts *o)
{
    memset(p, 0, sizeof(*p));
    p->sfd = p->cfd = -1;
    if (tlsrec_algs_init(&p->algs) != 0)
        return -1;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    if (pair_self_signed(&x, &k) != 0)
        return -1;
    if (o && o->sctx) {
        p->sctx = o->sctx;
        SSL_CTX_up_ref(p->sctx);
    } else {
        p->sctx = SSL_CTX_new(TLS_server_method());
    }
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (!p->sctx || !p->cctx)
        return -1;
    if (o && o->sgroups && SSL_CTX_set1_groups_list(p->sctx, o->sgroups) != 1)
        return -1;
    if (o && o->cgroups && SSL_CTX_set1_groups_list(p->cctx, o->cgroups) != 1)
        return -1;
    SSL_CTX_use_certificate(p->sctx, x);
    SSL_CTX_use_PrivateKey(p->sctx, k);
    X509_free(x);
    EVP_PKEY_free(k);
    SSL_CTX_set_num_tickets(p->sctx, (size_t)tickets);
    SSL_CTX_set_read_ahead(p->sctx, 1);
    SSL_CTX_set_keylog_callback(p->sctx, pair_on_keylog);
    SSL_CTX_set_msg_callback(p->sctx, pair_on_msg);
    if (suite && SSL_CTX_set_ciphersuites(p->cctx, suite) != 1)
        return -1;
    if (max_version)
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    p->sfd = sv[0];
    p->cfd = sv[1];
    p->s = SSL_new(p->sctx);
    p->c = SSL_new(p->cctx);
    if (!p->s || !p->c)
        return -1;
    SSL_set_app_data(p->s, p);
    SSL_set_msg_callback_arg(p->s, p);
    SSL_set_fd(p->s, p->sfd);
    SSL_set_fd(p->c, p->cfd);
    SSL_set_accept_state(p->s);
    SSL_set_connect_state(p->c);
    if (o && o->resume && SSL_set_session(p->c, o->resume) != 1)
        return -1;
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 50 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->c) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(p->s) == 1;
    }
    return sdone && cdone ? 0 : -1;
}

static inline void pair_down(struct pair *p, tlsrec_t *r)
{
    tlsrec_free(r);
    SSL_free(p->s);
    SSL_free(p->c);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    if (p->sfd >= 0)
        close(p->sfd);
    if (p->cfd >= 0)
        close(p->cfd);
    tlsrec_algs_free(&p->algs);
    ERR_clear_error();
}

/* ---- the independent record peer ---- */

struct peer {
    EVP_CIPHER_CTX *ctx;
    const char *cipher, *md;
    size_t hlen, klen;
    uint8_t secret[48], iv[12];
    uint64_t seq;
    int enc;
};

static inline int peer_label(const struct peer *q, const char *label, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL);
    EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = -1;
    OSSL_PARAM prm[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)q->md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)q->secret, q->hlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
        OSSL_PARAM_construct_end(),
    };
    if (kc && EVP_KDF_derive(kc, out, outlen, prm) == 1)
        rc = 0;
    EVP_KDF_CTX_free(kc);
    EVP_KDF_free(kdf);
    return rc;
}

static inline int peer_install(struct peer *q)
{
    uint8_t key[32];
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, q->cipher, NULL);
    int rc = -1;
    if (c && peer_label(q, "key", key, q->klen) == 0 && peer_label(q, "iv", q->iv, 12) == 0 &&
        EVP_CipherInit_ex2(q->ctx, c, key, NULL, q->enc, NULL) == 1)
        rc = 0;
    EVP_CIPHER_free(c);
    q->seq = 0;
    return rc;
}

/* A peer for ssl's suite under secret (hlen bytes) starting at seq; enc:
 * 1 to seal, 0 to open. */
static inline int peer_init(struct peer *q, SSL *ssl, const uint8_t *secret, uint64_t seq, int enc)
{
    memset(q, 0, sizeof(*q));
    switch (SSL_CIPHER_get_id(SSL_get_current_cipher(ssl)) & 0xFFFF) {
    case 0x1301: q->cipher = "AES-128-GCM"; q->md = "SHA256"; q->hlen = 32; q->klen = 16; break;
    case 0x1302: q->cipher = "AES-256-GCM"; q->md = "SHA384"; q->hlen = 48; q->klen = 32; break;
    case 0x1303: q->cipher = "ChaCha20-Poly1305"; q->md = "SHA256"; q->hlen = 32; q->klen = 32; break;
    default: return -1;
    }
    memcpy(q->secret, secret, q->hlen);
    q->enc = enc;
    if (!(q->ctx = EVP_CIPHER_CTX_new()) || peer_install(q) != 0)
        return -1;
    q->seq = seq;
    return 0;
}

/* KeyUpdate: next secret by "traffic upd", new key and IV, seq 0. */
static inline int peer_update(struct peer *q)
{
    uint8_t n[48];
    if (peer_label(q, "traffic upd", n, q->hlen) != 0)
        return -1;
    memcpy(q->secret, n, q->hlen);
    return peer_install(q);
}

static inline void peer_free(struct peer *q)
{
    EVP_CIPHER_CTX_free(q->ctx);
    memset(q, 0, sizeof(*q));
}

static inline void peer_nonce(const struct peer *q, uint8_t nonce[12])
{
    memcpy(nonce, q->iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(q->seq >> (8 * i));
}

/* Seals inner (the whole TLSInnerPlaintext: content, type, padding) into
 * out as an application_data record; aad: the 5 bytes to authenticate
 * instead of the real header, or NULL. Record length or -1. */
static inline long peer_seal_inner(struct peer *q, const uint8_t *inner, size_t n, const uint8_t *aad, uint8_t *out)
{
    uint8_t nonce[12];
    int ol = 0, fl = 0;
    size_t clen = n + 16;
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    peer_nonce(q, nonce);
    if (EVP_EncryptInit_ex2(q->ctx, NULL, NULL, nonce, NULL) != 1 ||
        EVP_EncryptUpdate(q->ctx, NULL, &ol, aad ? aad : out, 5) != 1 ||
        (n && EVP_EncryptUpdate(q->ctx, out + 5, &ol, inner, (int)n) != 1) ||
        EVP_EncryptFinal_ex(q->ctx, out + 5 + (n ? ol : 0), &fl) != 1 ||
        EVP_CIPHER_CTX_ctrl(q->ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n) != 1)
        return -1;
    q->seq++;
    return (long)(5 + clen);
}

/* content || type || pad zero bytes. */
static inline long peer_seal(struct peer *q, uint8_t type, const void *content, size_t n, size_t pad, uint8_t *out)
{
    uint8_t *inner = calloc(1, n + 1 + pad);
    if (!inner)
        return -1;
    if (n)
        memcpy(inner, content, n);
    inner[n] = type;
    long rl = peer_seal_inner(q, inner, n + 1 + pad, NULL, out);
    free(inner);
    return rl;
}

/* Opens one record sealed by tlsrec (header checked by the caller). Inner
 * plaintext length into out, or -1. */
static inline long peer_open(struct peer *q, const uint8_t *rec, size_t len, uint8_t *out)
{
    uint8_t nonce[12];
    int ol = 0, fl = 0;
    if (len < 5 + 16)
        return -1;
    peer_nonce(q, nonce);
    if (EVP_DecryptInit_ex2(q->ctx, NULL, NULL, nonce, NULL) != 1 ||
        EVP_DecryptUpdate(q->ctx, NULL, &ol, rec, 5) != 1 ||
        EVP_DecryptUpdate(q->ctx, out, &ol, rec + 5, (int)(len - 5 - 16)) != 1 ||
        EVP_CIPHER_CTX_ctrl(q->ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(rec + len - 16)) != 1 ||
        EVP_DecryptFinal_ex(q->ctx, out + ol, &fl) != 1)
        return -1;
    q->seq++;
    return ol + fl;
}

#endif
