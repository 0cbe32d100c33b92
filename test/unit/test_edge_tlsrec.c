/* Tests edge/tlsrec.c against OpenSSL as the client: after an OpenSSL
 * server handshake (and some traffic through it), the server side is taken
 * over; data then flows both ways, in small and full-size records, for each
 * TLS 1.3 suite; KeyUpdate requested by the client is answered; close_notify
 * reads as EOF; a flipped bit fails; TLS 1.2 is not taken over. The
 * capture policy captures everything until most captures are wasted, then
 * one connection in 16, and all again once connections go idle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
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

static void on_keylog(const SSL *ssl, const char *line)
{
    struct pair *p = SSL_get_app_data(ssl);
    tlsrec_watch_keylog(&p->watch, line);
}

static void on_msg(int write_p, int version, int ct, const void *buf, size_t len, SSL *ssl, void *arg)
{
    struct pair *p = arg;
    tlsrec_watch_msg(&p->watch, write_p, ct, buf, len);
}

static void self_signed(X509 **x, EVP_PKEY **k)
{
    *k = EVP_EC_gen("P-256");
    *x = X509_new();
    X509_set_version(*x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(*x), 1);
    X509_gmtime_adj(X509_getm_notBefore(*x), 0);
    X509_gmtime_adj(X509_getm_notAfter(*x), 3600);
    X509_set_pubkey(*x, *k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(*x), "CN", MBSTRING_ASC, (const unsigned char *)"t.test", -1, -1, 0);
    X509_set_issuer_name(*x, X509_get_subject_name(*x));
    X509_sign(*x, *k, EVP_sha256());
}

/* Drives both handshakes over a socketpair. */
static void pair_up(struct pair *p, const char *suite, int max_version)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(tlsrec_algs_init(&p->algs), 0);
    X509 *x;
    EVP_PKEY *k;
    self_signed(&x, &k);
    p->sctx = SSL_CTX_new(TLS_server_method());
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(p->sctx, x);
    SSL_CTX_use_PrivateKey(p->sctx, k);
    X509_free(x);
    EVP_PKEY_free(k);
    SSL_CTX_set_num_tickets(p->sctx, 1);
    SSL_CTX_set_read_ahead(p->sctx, 1);
    SSL_CTX_set_keylog_callback(p->sctx, on_keylog);
    SSL_CTX_set_msg_callback(p->sctx, on_msg);
    if (suite)
        assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suite), 1);
    if (max_version)
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    p->sfd = sv[0];
    p->cfd = sv[1];
    p->s = SSL_new(p->sctx);
    p->c = SSL_new(p->cctx);
    SSL_set_app_data(p->s, p);
    SSL_set_msg_callback_arg(p->s, p);
    SSL_set_fd(p->s, p->sfd);
    SSL_set_fd(p->c, p->cfd);
    SSL_set_accept_state(p->s);
    SSL_set_connect_state(p->c);
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 50 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(p->c) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(p->s) == 1;
    }
    assert_true(sdone && cdone);
}

static void pair_down(struct pair *p, tlsrec_t *r)
{
    tlsrec_free(r);
    SSL_free(p->s);
    SSL_free(p->c);
    SSL_CTX_free(p->sctx);
    SSL_CTX_free(p->cctx);
    close(p->sfd);
    close(p->cfd);
    tlsrec_algs_free(&p->algs);
    ERR_clear_error();
}

/* Reads from the server socket until one record decrypts; appends the
 * plaintext to out. Returns tlsrec_open's result. */
static long server_read(struct pair *p, tlsrec_t *r, uint8_t *out, int *eof, int *upd)
{
    for (int spins = 0; spins < 1000; spins++) {
        long rl = tlsrec_record_len(p->raw, p->rawlen);
        if (rl < 0)
            return -1;
        if (rl > 0 && (size_t)rl <= p->rawlen) {
            long n = tlsrec_open(r, p->raw, (size_t)rl, out, eof, upd);
            memmove(p->raw, p->raw + rl, p->rawlen - (size_t)rl);
            p->rawlen -= (size_t)rl;
            return n;
        }
        ssize_t got = read(p->sfd, p->raw + p->rawlen, sizeof(p->raw) - p->rawlen);
        if (got > 0)
            p->rawlen += (size_t)got;
        else
            usleep(1000);
    }
    return -1;
}

static void server_write(struct pair *p, const uint8_t *rec, long n)
{
    assert_true(n > 0);
    assert_int_equal(write(p->sfd, rec, (size_t)n), n);
}

static int client_read_all(struct pair *p, uint8_t *buf, int want)
{
    int got = 0;
    for (int spins = 0; spins < 2000 && got < want; spins++) {
        int n = SSL_read(p->c, buf + got, want - got);
        if (n > 0)
            got += n;
        else
            usleep(500);
    }
    return got;
}

/* Some traffic through OpenSSL first, so the counts are not all zero. */
static void warm(struct pair *p)
{
    uint8_t buf[64];
    assert_int_equal(SSL_write(p->c, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    int n = 0;
    for (int i = 0; i < 100 && n <= 0; i++)
        n = SSL_read(p->s, buf, sizeof(buf));
    assert_int_equal(n, 18);
    assert_int_equal(SSL_write(p->s, "HTTP/1.1 200 OK\r\n\r\n", 19), 19);
    assert_int_equal(client_read_all(p, buf, 19), 19);
}

static void exchange(struct pair *p, tlsrec_t *r)
{
    static uint8_t big[100000], got[100000 + 64], rec[TLSREC_MAX_RECORD];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    int eof = 0, upd = 0;
    /* client -> server, several full-size records */
    int w = 0;
    while (w < (int)sizeof(big)) {
        int n = SSL_write(p->c, big + w, (int)sizeof(big) - w);
        if (n > 0)
            w += n;
        size_t have = 0;
        while (have < (size_t)w) {
            long m = server_read(p, r, got + have, &eof, &upd);
            assert_true(m >= 0);
            have += (size_t)m;
            if (have == (size_t)w)
                break;
        }
    }
    assert_memory_equal(got, big, sizeof(big));
    /* server -> client */
    for (size_t off = 0; off < sizeof(big); off += TLSREC_MAX_PLAIN) {
        size_t n = sizeof(big) - off < TLSREC_MAX_PLAIN ? sizeof(big) - off : TLSREC_MAX_PLAIN;
        server_write(p, rec, tlsrec_seal(r, big + off, n, rec));
    }
    assert_int_equal(client_read_all(p, got, sizeof(big)), sizeof(big));
    assert_memory_equal(got, big, sizeof(big));
}

static void run_suite(const char *suite)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, suite, 0);
    warm(p);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);

    /* KeyUpdate asked for by the client: we follow and answer. */
    uint8_t buf[64], rec[TLSREC_MAX_RECORD];
    assert_int_equal(SSL_key_update(p->c, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(p->c, "after", 5), 5);
    int eof = 0, upd = 0;
    long n = server_read(p, r, buf, &eof, &upd);
    assert_int_equal(n, 0);
    assert_int_equal(upd, 1);
    server_write(p, rec, tlsrec_seal_key_update(r, rec));
    n = server_read(p, r, buf, &eof, &upd);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "after", 5);
    server_write(p, rec, tlsrec_seal(r, "pong", 4, rec));
    assert_int_equal(client_read_all(p, buf, 4), 4);
    assert_memory_equal(buf, "pong", 4);

    /* close_notify */
    SSL_shutdown(p->c);
    n = server_read(p, r, buf, &eof, &upd);
    assert_int_equal(n, 0);
    assert_int_equal(eof, 1);
    pair_down(p, r);
    free(p);
}

static void aes128(void **st)
{
    run_suite("TLS_AES_128_GCM_SHA256");
}

static void aes256(void **st)
{
    run_suite("TLS_AES_256_GCM_SHA384");
}

static void chacha(void **st)
{
    run_suite("TLS_CHACHA20_POLY1305_SHA256");
}

static void takeover_right_after_handshake(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);
    pair_down(p, r);
    free(p);
}

static void tampered_record_fails(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    assert_int_equal(SSL_write(p->c, "hello", 5), 5);
    usleep(2000);
    ssize_t got = read(p->sfd, p->raw, sizeof(p->raw));
    assert_true(got > 10);
    p->raw[got - 3] ^= 1;
    int eof = 0, upd = 0;
    uint8_t out[TLSREC_MAX_RECORD];
    assert_int_equal(tlsrec_open(r, p->raw, (size_t)got, out, &eof, &upd), -1);
    assert_int_equal(tlsrec_record_len((const uint8_t *)"\x16\x03\x03\x00\x20", 5), -1);
    assert_int_equal(tlsrec_record_len((const uint8_t *)"\x17\x03", 2), 0);
    pair_down(p, r);
    free(p);
}

static void tls12_not_taken_over(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, TLS1_2_VERSION);
    assert_null(tlsrec_takeover(&p->algs, p->s, &p->watch));
    pair_down(p, NULL);
    free(p);
}

static void pending_bytes_block_takeover(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    assert_int_equal(SSL_write(p->c, "one", 3), 3);
    assert_int_equal(SSL_write(p->c, "two", 3), 3);
    usleep(2000);
    uint8_t buf[8];
    assert_int_equal(SSL_read(p->s, buf, 3), 3); /* read-ahead pulled "two" in too */
    assert_null(tlsrec_takeover(&p->algs, p->s, &p->watch));
    assert_int_equal(SSL_read(p->s, buf, 3), 3);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);
    pair_down(p, r);
    free(p);
}

static int captures(tlsrec_policy_t *p, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += tlsrec_policy_capture(p);
    return k;
}

static void policy_follows_outcomes(void **st)
{
    tlsrec_policy_t p = { 0 };
    assert_int_equal(captures(&p, 100), 100); /* zeroed: everything */
    for (int i = 0; i < 20; i++)
        tlsrec_policy_learn(&p, 0);
    assert_int_equal(captures(&p, 100), 100); /* not yet mostly wasted */
    for (int i = 0; i < 100; i++)
        tlsrec_policy_learn(&p, 0);
    assert_int_equal(captures(&p, 160), 10); /* one in 16 keeps sampling */
    for (int i = 0; i < 1000; i++)
        tlsrec_policy_learn(&p, 0);
    assert_true(p.waste <= 256);
    for (int i = 0; i < 3; i++)
        tlsrec_policy_learn(&p, 1); /* connections go idle again */
    assert_int_equal(captures(&p, 100), 100);
    for (int i = 0; i < 400; i++)
        tlsrec_policy_learn(&p, i % 4 == 0); /* a quarter go idle: worth it */
    assert_int_equal(captures(&p, 100), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aes128),
        cmocka_unit_test(aes256),
        cmocka_unit_test(chacha),
        cmocka_unit_test(takeover_right_after_handshake),
        cmocka_unit_test(tampered_record_fails),
        cmocka_unit_test(tls12_not_taken_over),
        cmocka_unit_test(pending_bytes_block_takeover),
        cmocka_unit_test(policy_follows_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
