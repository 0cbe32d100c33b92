/* Tests edge/tlsrec.c against OpenSSL as the client: after an OpenSSL
 * server handshake (and some traffic through it), the server side is taken
 * over; data then flows both ways, in small and full-size records, for each
 * TLS 1.3 suite; KeyUpdate requested by the client is answered; close_notify
 * reads as EOF; a flipped bit fails; TLS 1.2 is not taken over. The
 * capture policy captures everything until most captures are wasted, then
 * one connection in 16, and all again once connections go idle.
 * RFC 8446 properties, against OpenSSL and against an independent record
 * peer built on OpenSSL's TLS13-KDF (tlsrec_peer.h): key schedule per suite,
 * KeyUpdate both ways, sequence numbers (nonce, reset, no wrap), the AEAD's
 * additional data, tampering, oversize records, inner content types and
 * padding, change_cipher_spec, post-handshake messages, alerts, failures
 * being final, and what makes takeover safe (counts through tickets, HRR
 * and resumption; KeyUpdates, half-read records and pending writes refuse
 * it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/ssl.h>

#include "edge/tlsrec.h"

#include "tlsrec_peer.h"

static void pair_up(struct pair *p, const char *suite, int max_version)
{
    assert_int_equal(pair_up_tickets(p, suite, max_version, 1), 0);
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

/* ---- RFC 8446 properties against an independent peer (tlsrec_peer.h) ---- */

#define AD_UNEXPECTED 10
#define AD_BAD_MAC 20
#define AD_OVERFLOW 22
#define AD_ILLEGAL 47
#define AD_DECODE 50
#define AD_INTERNAL 80

/* A taken-over server with a crafting client (cw: seals records for
 * tlsrec under the client secret) and an opener of what tlsrec seals (sr). */
struct fx {
    struct pair p;
    tlsrec_t *r;
    struct peer cw, sr;
    uint8_t rec[TLSREC_MAX_RECORD + 64], out[TLSREC_MAX_RECORD + 64];
    int eof, upd;
};

/* rseq / wseq: sequence numbers to start from instead of OpenSSL's (0:
 * keep), for the wrap tests; the OpenSSL client is then out of step. */
static struct fx *fx_up(const char *suite, uint64_t rseq, uint64_t wseq)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(pair_up_tickets(&f->p, suite, 0, 2), 0);
    warm(&f->p);
    if (rseq)
        f->p.watch.rseq = rseq;
    if (wseq)
        f->p.watch.wseq = wseq;
    tlsrec_watch_t w = f->p.watch;
    f->r = tlsrec_takeover(&f->p.algs, f->p.s, &f->p.watch);
    assert_non_null(f->r);
    assert_int_equal(peer_init(&f->cw, f->p.s, w.csecret, w.rseq, 1), 0);
    assert_int_equal(peer_init(&f->sr, f->p.s, w.ssecret, w.wseq, 0), 0);
    tlsrec_watch_clear(&w);
    return f;
}

static void fx_down(struct fx *f)
{
    peer_free(&f->cw);
    peer_free(&f->sr);
    pair_down(&f->p, f->r);
    free(f);
}

static long fx_open(struct fx *f, long len)
{
    f->eof = f->upd = 0;
    assert_true(len >= 0);
    return tlsrec_open(f->r, f->rec, (size_t)len, f->out, &f->eof, &f->upd);
}

/* Crafts content || type || pad zeros and opens it. */
static long fx_send(struct fx *f, uint8_t type, const void *content, size_t n, size_t pad)
{
    return fx_open(f, peer_seal(&f->cw, type, content, n, pad, f->rec));
}

/* A fatal failure: -1 now, the expected alert, and a genuine record after it
 * is refused too (nothing more is decrypted), as is sealing data. */
static void expect_fatal(struct fx *f, long rc, int alert)
{
    assert_int_equal(rc, -1);
    assert_int_equal(tlsrec_alert(f->r), alert);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, "ok", 2, 0), -1);
    assert_int_equal(tlsrec_seal(f->r, "x", 1, f->rec), -1);
    assert_int_equal(tlsrec_seal_key_update(f->r, f->rec), -1);
}

static const char *const SUITES[] = { "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                      "TLS_CHACHA20_POLY1305_SHA256" };

/* Keys and IVs by HKDF-Expand-Label with each suite's hash (SHA-384 for
 * AES-256-GCM), nonces from 64-bit sequence numbers, padding stripped,
 * zero-length application data allowed: 3000 crafted records each way. */
static void key_schedule_and_many_records(void **st)
{
    for (size_t s = 0; s < 3; s++) {
        struct fx *f = fx_up(SUITES[s], 0, 0);
        uint8_t msg[600];
        for (int i = 0; i < 3000; i++) {
            size_t n = (size_t)(i * 37) % sizeof(msg), pad = (size_t)(i * 13) % 300;
            for (size_t k = 0; k < n; k++)
                msg[k] = (uint8_t)(i + k);
            assert_int_equal(fx_send(f, TLSREC_APPDATA, msg, n, pad), (long)n);
            assert_memory_equal(f->out, msg, n);
            assert_int_equal(f->eof, 0);
            long rl = tlsrec_seal(f->r, msg, n, f->rec);
            assert_int_equal(rl, (long)(n + TLSREC_OVERHEAD));
            assert_int_equal(tlsrec_record_len(f->rec, (size_t)rl), rl);
            assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), (long)n + 1);
            assert_memory_equal(f->out, msg, n);
            assert_int_equal(f->out[n], TLSREC_APPDATA);
        }
        fx_down(f);
    }
}

/* 4.6.3 against an independent peer: KeyUpdate in, with and without
 * update_requested; ours says update_not_requested; both sides restart at
 * sequence 0 under "traffic upd" secrets. */
static void key_update_peer(void **st)
{
    for (size_t s = 0; s < 3; s++) {
        struct fx *f = fx_up(SUITES[s], 0, 0);
        for (int i = 0; i < 20; i++) {
            uint8_t ku[5] = { 24, 0, 0, 1, (uint8_t)(i & 1) };
            assert_int_equal(fx_send(f, TLSREC_HANDSHAKE, ku, 5, (size_t)i), 0);
            assert_int_equal(f->upd, i & 1);
            assert_int_equal(f->eof, 0);
            assert_int_equal(peer_update(&f->cw), 0);
            assert_int_equal(fx_send(f, TLSREC_APPDATA, "after", 5, 0), 5);
            assert_int_equal(fx_send(f, TLSREC_APPDATA, "again", 5, 0), 5);
            assert_int_equal(f->upd, 0);
            long rl = tlsrec_seal_key_update(f->r, f->rec);
            assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), 6);
            static const uint8_t ours[6] = { 24, 0, 0, 1, 0, TLSREC_HANDSHAKE };
            assert_memory_equal(f->out, ours, 6);
            assert_int_equal(peer_update(&f->sr), 0);
            rl = tlsrec_seal(f->r, "data", 4, f->rec);
            assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), 5);
            assert_memory_equal(f->out, "data", 4);
        }
        fx_down(f);
    }
}

/* The same against OpenSSL as the client, every suite: its KeyUpdate with
 * and without update_requested, and ours, many rounds with data after
 * each; a client that got update_not_requested sends no KeyUpdate back. */
static void key_update_openssl(void **st)
{
    for (size_t s = 0; s < 3; s++) {
        struct pair *p = calloc(1, sizeof(*p));
        pair_up(p, SUITES[s], 0);
        warm(p);
        tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
        assert_non_null(r);
        uint8_t buf[64], rec[TLSREC_MAX_RECORD];
        int eof = 0, upd = 0;
        for (int i = 0; i < 30; i++) {
            char m[16];
            int ml = snprintf(m, sizeof(m), "msg-%d", i);
            if (i % 3 < 2) {
                int req = i % 3 == 1;
                assert_int_equal(SSL_key_update(p->c, req ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED), 1);
                assert_int_equal(SSL_write(p->c, m, ml), ml);
                upd = 0;
                assert_int_equal(server_read(p, r, buf, &eof, &upd), 0);
                assert_int_equal(upd, req);
                if (req)
                    server_write(p, rec, tlsrec_seal_key_update(r, rec));
                upd = 0;
                assert_int_equal(server_read(p, r, buf, &eof, &upd), ml);
                assert_memory_equal(buf, m, (size_t)ml);
            } else {
                server_write(p, rec, tlsrec_seal_key_update(r, rec));
            }
            server_write(p, rec, tlsrec_seal(r, m, (size_t)ml, rec));
            assert_int_equal(client_read_all(p, buf, ml), ml);
            assert_memory_equal(buf, m, (size_t)ml);
            /* The next client record is data: no KeyUpdate came back. */
            assert_int_equal(SSL_write(p->c, m, ml), ml);
            assert_int_equal(server_read(p, r, buf, &eof, &upd), ml);
            assert_int_equal(upd, 0);
        }
        exchange(p, r);
        pair_down(p, r);
        free(p);
    }
}

/* 5.3: the nonce takes all 64 bits of the sequence number, and neither
 * direction wraps: the record that would use 2^64-1 is refused. */
static void sequence_numbers_never_wrap(void **st)
{
    struct fx *f = fx_up(NULL, UINT64_MAX - 2, UINT64_MAX - 2);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, "a", 1, 0), 1);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, "b", 1, 0), 1);
    for (int i = 0; i < 2; i++) {
        long rl = tlsrec_seal(f->r, "c", 1, f->rec);
        assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), 2);
    }
    assert_int_equal(tlsrec_seal(f->r, "c", 1, f->rec), -1);
    assert_int_equal(tlsrec_seal_key_update(f->r, f->rec), -1);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, "d", 1, 0), -1);
    assert_int_equal(tlsrec_alert(f->r), AD_INTERNAL);
    fx_down(f);
}

/* 5.5: the write key is replaced at TLSREC_REKEY_AFTER records, before
 * AES-GCM's per-key limit; the peer follows onto the new key. */
static void rekeys_before_the_limit(void **st)
{
    struct fx *f = fx_up(NULL, 0, TLSREC_REKEY_AFTER - 1);
    assert_false(tlsrec_should_rekey(f->r));
    long rl = tlsrec_seal(f->r, "a", 1, f->rec);
    assert_true(rl > 0);
    assert_true(tlsrec_should_rekey(f->r));
    assert_true(tlsrec_seal_key_update(f->r, f->rec) > 0);
    assert_false(tlsrec_should_rekey(f->r));
    fx_down(f);
}

/* A record sealed under the given aad but sent with the real header. */
static long seal_with_aad(struct fx *f, const uint8_t aad[5])
{
    uint8_t inner[3] = { 'h', 'i', TLSREC_APPDATA };
    return peer_seal_inner(&f->cw, inner, 3, aad, f->rec);
}

/* 5.2: bad_record_mac for any change to tag, ciphertext or the header the
 * AEAD authenticates; no plaintext is released (the output is wiped), and
 * nothing is opened or sealed afterwards. */
static void tampered_records(void **st)
{
    for (int mode = 0; mode < 7; mode++) {
        struct fx *f = fx_up(NULL, 0, 0);
        long rl = peer_seal(&f->cw, TLSREC_APPDATA, "secret!!", 8, 0, f->rec);
        int alert = AD_BAD_MAC;
        switch (mode) {
        case 0: f->rec[rl - 1] ^= 0x80; break;   /* tag */
        case 1: f->rec[5] ^= 1; break;           /* ciphertext */
        case 2: f->rec[rl++] = 0; f->rec[4]++; break; /* length + 1, byte appended */
        case 3: {                                /* AAD of another header */
            uint8_t aad[5] = { 23, 3, 1, 0, 19 };
            rl = seal_with_aad(f, aad);
            break;
        }
        case 4: f->rec[2] = 1; alert = AD_DECODE; break;     /* version 0x0301 */
        case 5: rl -= 1; alert = AD_DECODE; break;           /* len shorter than the header says */
        case 6: f->rec[0] = 22; alert = AD_UNEXPECTED; break; /* outer type handshake */
        }
        memset(f->out, 0xAA, sizeof(f->out));
        expect_fatal(f, fx_open(f, rl), alert);
        for (size_t i = 0; i < 8; i++)
            assert_int_not_equal(f->out[i], "secret!!"[i]);
        fx_down(f);
    }
}

/* 5.1, 5.2, 5.4: ciphertext over 2^14 + 256, and a TLSInnerPlaintext over
 * 2^14 + 1 (content or padding), are record_overflow; exactly 2^14 is fine. */
static void oversize_records(void **st)
{
    static uint8_t big[TLSREC_MAX_PLAIN + 2];
    memset(big, 'x', sizeof(big));
    struct fx *f = fx_up(NULL, 0, 0);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, big, TLSREC_MAX_PLAIN, 0), TLSREC_MAX_PLAIN);
    assert_int_equal(tlsrec_seal(f->r, big, TLSREC_MAX_PLAIN + 1, f->rec), -1);
    expect_fatal(f, fx_send(f, TLSREC_APPDATA, big, TLSREC_MAX_PLAIN + 1, 0), AD_OVERFLOW);
    fx_down(f);

    f = fx_up(NULL, 0, 0);
    expect_fatal(f, fx_send(f, TLSREC_APPDATA, big, TLSREC_MAX_PLAIN, 239), AD_OVERFLOW);
    fx_down(f);

    f = fx_up(NULL, 0, 0);
    expect_fatal(f, fx_send(f, TLSREC_APPDATA, "", 0, TLSREC_MAX_PLAIN + 1), AD_OVERFLOW);
    fx_down(f);

    f = fx_up(NULL, 0, 0);
    uint8_t hdr[5] = { 23, 3, 3, (TLSREC_MAX_PLAIN + 257) >> 8, (TLSREC_MAX_PLAIN + 257) & 0xff };
    assert_int_equal(tlsrec_record_len(hdr, 5), -1);
    memcpy(f->rec, hdr, 5);
    memset(f->rec + 5, 0, TLSREC_MAX_PLAIN + 257);
    expect_fatal(f, fx_open(f, 5 + TLSREC_MAX_PLAIN + 257), AD_OVERFLOW);
    hdr[3] = (TLSREC_MAX_PLAIN + 256) >> 8;
    hdr[4] = (TLSREC_MAX_PLAIN + 256) & 0xff;
    assert_int_equal(tlsrec_record_len(hdr, 5), 5 + TLSREC_MAX_PLAIN + 256);
    fx_down(f);
}

/* 5.4: no non-zero byte = no content type; inner types other than
 * application_data, alert and handshake (change_cipher_spec, heartbeat,
 * unknown) are unexpected_message. */
static void bad_inner_types(void **st)
{
    static const uint8_t types[] = { 20, 24, 1, 99, 255 };
    for (size_t i = 0; i < sizeof(types); i++) {
        struct fx *f = fx_up(NULL, 0, 0);
        expect_fatal(f, fx_send(f, types[i], "\x01", 1, 3), AD_UNEXPECTED);
        fx_down(f);
    }
    static const size_t zeros[] = { 1, 100, TLSREC_MAX_PLAIN + 1 };
    for (size_t i = 0; i < 3; i++) {
        struct fx *f = fx_up(NULL, 0, 0);
        uint8_t *z = calloc(1, zeros[i]);
        expect_fatal(f, fx_open(f, peer_seal_inner(&f->cw, z, zeros[i], NULL, f->rec)), AD_UNEXPECTED);
        free(z);
        fx_down(f);
    }
}

/* 5: change_cipher_spec after the handshake, plaintext or protected, and
 * plaintext alerts, are unexpected. */
static void ccs_after_handshake(void **st)
{
    static const uint8_t ccs[6] = { 20, 3, 3, 0, 1, 1 }, alert[7] = { 21, 3, 3, 0, 2, 1, 0 };
    assert_int_equal(tlsrec_record_len(ccs, 6), -1);
    assert_int_equal(tlsrec_record_len(alert, 7), -1);
    struct fx *f = fx_up(NULL, 0, 0);
    memcpy(f->rec, ccs, 6);
    expect_fatal(f, fx_open(f, 6), AD_UNEXPECTED);
    fx_down(f);
    f = fx_up(NULL, 0, 0);
    uint8_t aad[5] = { 20, 3, 3, 0, 19 };
    long rl = seal_with_aad(f, aad);
    f->rec[0] = 20;
    assert_int_equal(tlsrec_record_len(f->rec, (size_t)rl), -1);
    expect_fatal(f, fx_open(f, rl), AD_UNEXPECTED);
    fx_down(f);
}

/* A header tlsrec_record_len refuses is fatal too, with the alert RFC 8446
 * 5.1/5.2/6.2 calls for (the caller never gets to tlsrec_open: edge/conn.c
 * calls tlsrec_fail_header, then seals tlsrec_alert's alert), and the
 * OpenSSL peer reads that alert. */
static void bad_headers_name_their_alert(void **st)
{
    static const struct {
        uint8_t h[5];
        int alert, reason;
    } cases[] = {
        { { 22, 3, 3, 0, 40 }, AD_UNEXPECTED, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE }, /* handshake */
        { { 20, 3, 3, 0, 1 }, AD_UNEXPECTED, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE },  /* change_cipher_spec */
        { { 21, 3, 3, 0, 2 }, AD_UNEXPECTED, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE },  /* plaintext alert */
        { { 23, 3, 1, 0, 40 }, AD_DECODE, SSL_R_TLSV1_ALERT_DECODE_ERROR },            /* version 0x0301 */
        { { 23, 3, 3, 0, 16 }, AD_DECODE, SSL_R_TLSV1_ALERT_DECODE_ERROR },            /* shorter than a tag + type */
        { { 23, 3, 3, (TLSREC_MAX_PLAIN + 257) >> 8, (TLSREC_MAX_PLAIN + 257) & 0xff }, AD_OVERFLOW,
          SSL_R_TLSV1_ALERT_RECORD_OVERFLOW },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx *f = fx_up(NULL, 0, 0);
        assert_int_equal(tlsrec_record_len(cases[i].h, 5), -1);
        assert_int_equal(tlsrec_alert(f->r), -1);
        tlsrec_fail_header(f->r, cases[i].h, 5);
        expect_fatal(f, -1, cases[i].alert);
        tlsrec_fail_header(f->r, (const uint8_t *)"\x17\x03\x03\xff\xff", 5); /* the first failure stands */
        assert_int_equal(tlsrec_alert(f->r), cases[i].alert);
        uint8_t alert[2] = { 2, (uint8_t)tlsrec_alert(f->r) }, buf[16];
        server_write(&f->p, f->rec, tlsrec_seal_alert(f->r, alert, f->rec));
        ERR_clear_error();
        int n = -1, e = SSL_ERROR_WANT_READ;
        for (int k = 0; k < 200 && e == SSL_ERROR_WANT_READ; k++) {
            usleep(500);
            n = SSL_read(f->p.c, buf, sizeof(buf));
            e = SSL_get_error(f->p.c, n);
        }
        assert_int_equal(e, SSL_ERROR_SSL);
        assert_int_equal(ERR_GET_REASON(ERR_peek_error()), cases[i].reason);
        ERR_clear_error();
        fx_down(f);
    }
    /* After close_notify the peer's bytes are ignored: nothing to answer. */
    struct fx *f = fx_up(NULL, 0, 0);
    assert_int_equal(fx_send(f, TLSREC_ALERT, "\x01\x00", 2, 0), 0);
    assert_int_equal(f->eof, 1);
    tlsrec_fail_header(f->r, (const uint8_t *)"\x16\x03\x03\x00\x20", 5);
    assert_int_equal(tlsrec_alert(f->r), -1);
    fx_down(f);
}

/* Lengths below a header, below type byte + tag, or disagreeing with the
 * header never reach the AEAD (no read outside the record). */
static void short_records(void **st)
{
    static const size_t lens[] = { 0, 1, 4, 5, 21 };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct fx *f = fx_up(NULL, 0, 0);
        uint8_t *rec = malloc(lens[i] ? lens[i] : 1); /* exact size: ASan sees any over-read */
        rec[0] = 23;
        if (lens[i] >= 5)
            memcpy(rec, "\x17\x03\x03\x00\x10", 5);
        memset(rec + 5 * (lens[i] >= 5), 0, lens[i] - 5 * (lens[i] >= 5));
        f->eof = f->upd = 0;
        expect_fatal(f, tlsrec_open(f->r, rec, lens[i], f->out, &f->eof, &f->upd), AD_DECODE);
        free(rec);
        fx_down(f);
    }
}

/* 4.6, 4.6.3, 5.1: only KeyUpdate is accepted after the handshake, one per
 * record and ending it; a bad request_update is illegal_parameter, a bad
 * length decode_error; split or zero-length messages are refused. */
static void handshake_messages(void **st)
{
    static const struct {
        uint8_t m[12];
        size_t n;
        int alert;
    } cases[] = {
        { { 4, 0, 0, 4, 0, 0, 0, 0 }, 8, AD_UNEXPECTED },              /* NewSessionTicket */
        { { 11, 0, 0, 4, 0, 0, 0, 0 }, 8, AD_UNEXPECTED },             /* Certificate (post-handshake auth) */
        { { 13, 0, 0, 0 }, 4, AD_UNEXPECTED },                         /* CertificateRequest */
        { { 20, 0, 0, 1, 0 }, 5, AD_UNEXPECTED },                      /* Finished */
        { { 1, 0, 0, 1, 0 }, 5, AD_UNEXPECTED },                       /* ClientHello */
        { { 99, 0, 0, 1, 0 }, 5, AD_UNEXPECTED },                      /* unknown */
        { { 24, 0, 0, 1, 2 }, 5, AD_ILLEGAL },                         /* request_update 2 */
        { { 24, 0, 0, 2, 0, 0 }, 6, AD_DECODE },                       /* length 2 */
        { { 24, 0, 0, 0 }, 4, AD_DECODE },                             /* length 0 */
        { { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 }, 10, AD_UNEXPECTED },     /* two in one record */
        { { 24, 0, 0, 1, 0, 23, 0, 0, 1, 0 }, 10, AD_UNEXPECTED },     /* something after it */
        { { 24, 0, 0 }, 3, AD_UNEXPECTED },                            /* split: first part */
        { { 24, 0, 0, 1 }, 4, AD_UNEXPECTED },                         /* split after the header */
        { { 0 }, 0, AD_UNEXPECTED },                                   /* zero-length fragment */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fx *f = fx_up(NULL, 0, 0);
        expect_fatal(f, fx_send(f, TLSREC_HANDSHAKE, cases[i].m, cases[i].n, 0), cases[i].alert);
        assert_int_equal(f->upd, 0);
        fx_down(f);
    }
}

/* Records without application data (empty ones, KeyUpdates) are allowed,
 * but at most 32 in a row: the caller reads on while they come, so an
 * endless stream of them would hold the worker's thread. */
static void empty_records_bounded(void **st)
{
    struct fx *f = fx_up(NULL, 0, 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 32; i++) {
            if (i % 2) {
                assert_int_equal(fx_send(f, TLSREC_APPDATA, "", 0, (size_t)i), 0);
            } else {
                assert_int_equal(fx_send(f, TLSREC_HANDSHAKE, "\x18\x00\x00\x01\x01", 5, 0), 0);
                assert_int_equal(f->upd, 1);
                assert_int_equal(peer_update(&f->cw), 0);
            }
            assert_int_equal(f->eof, 0);
        }
        assert_int_equal(fx_send(f, TLSREC_APPDATA, "d", 1, 0), 1); /* data resets the run */
    }
    for (int i = 0; i < 32; i++)
        assert_int_equal(fx_send(f, TLSREC_APPDATA, "", 0, 0), 0);
    expect_fatal(f, fx_send(f, TLSREC_APPDATA, "", 0, 0), AD_UNEXPECTED);
    fx_down(f);
    f = fx_up(NULL, 0, 0);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(fx_send(f, TLSREC_HANDSHAKE, "\x18\x00\x00\x01\x00", 5, 0), 0);
        assert_int_equal(peer_update(&f->cw), 0);
    }
    expect_fatal(f, fx_send(f, TLSREC_HANDSHAKE, "\x18\x00\x00\x01\x00", 5, 0), AD_UNEXPECTED);
    fx_down(f);
}

/* 6: close_notify is EOF and what follows it is ignored; any other alert
 * ends the connection with nothing to answer; a malformed one is
 * decode_error. After our own alert nothing more is sealed. */
static void alerts(void **st)
{
    struct fx *f = fx_up(NULL, 0, 0);
    assert_int_equal(fx_send(f, TLSREC_ALERT, "\x01\x00", 2, 5), 0);
    assert_int_equal(f->eof, 1);
    assert_int_equal(fx_send(f, TLSREC_APPDATA, "late", 4, 0), 0);
    assert_int_equal(f->eof, 1);
    assert_int_equal(tlsrec_alert(f->r), -1);
    /* Half-closed: we may still answer, then close_notify ends our side. */
    long rl = tlsrec_seal(f->r, "bye", 3, f->rec);
    assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), 4);
    rl = tlsrec_seal_alert(f->r, (const uint8_t *)"\x01\x00", f->rec);
    assert_int_equal(peer_open(&f->sr, f->rec, (size_t)rl, f->out), 3);
    assert_memory_equal(f->out, "\x01\x00\x15", 3);
    assert_int_equal(tlsrec_seal(f->r, "x", 1, f->rec), -1);
    assert_int_equal(tlsrec_seal_alert(f->r, (const uint8_t *)"\x01\x00", f->rec), -1);
    fx_down(f);

    static const struct {
        const char *a;
        size_t n;
        int alert;
    } cases[] = {
        { "\x02\x28", 2, -1 },         /* handshake_failure */
        { "\x01\x5a", 2, -1 },         /* user_canceled */
        { "\x02\x14", 2, -1 },         /* bad_record_mac */
        { "\x01\x00\x00", 3, AD_DECODE }, /* 3 bytes */
        { "\x01", 1, AD_DECODE },
        { "", 0, AD_DECODE },
        { "\x01\x00\x01\x00", 4, AD_DECODE }, /* two alerts coalesced */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f = fx_up(NULL, 0, 0);
        long rc = fx_send(f, TLSREC_ALERT, cases[i].a, cases[i].n, 0);
        assert_int_equal(f->eof, 0);
        expect_fatal(f, rc, cases[i].alert);
        fx_down(f);
    }
}

/* After a bad record: no more data either way, and the bad_record_mac
 * alert we send is protected under the current write key (here after a
 * KeyUpdate of ours): OpenSSL decrypts it and reports it. */
static void failure_alert_reaches_openssl(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    warm(p);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    uint8_t buf[64], rec[TLSREC_MAX_RECORD], out[TLSREC_MAX_RECORD];
    server_write(p, rec, tlsrec_seal_key_update(r, rec));
    server_write(p, rec, tlsrec_seal(r, "x", 1, rec));
    assert_int_equal(client_read_all(p, buf, 1), 1);
    assert_int_equal(SSL_write(p->c, "hello", 5), 5);
    usleep(2000);
    ssize_t got = read(p->sfd, p->raw, sizeof(p->raw));
    assert_true(got > 10);
    p->raw[got - 1] ^= 1;
    int eof = 0, upd = 0;
    assert_int_equal(tlsrec_open(r, p->raw, (size_t)got, out, &eof, &upd), -1);
    p->raw[got - 1] ^= 1;
    assert_int_equal(tlsrec_open(r, p->raw, (size_t)got, out, &eof, &upd), -1);
    assert_int_equal(tlsrec_alert(r), AD_BAD_MAC);
    assert_int_equal(tlsrec_seal(r, "x", 1, rec), -1);
    uint8_t alert[2] = { 2, (uint8_t)tlsrec_alert(r) };
    long rl = tlsrec_seal_alert(r, alert, rec);
    assert_int_equal(rl, TLSREC_OVERHEAD + 2);
    assert_int_equal(rec[0], TLSREC_APPDATA);
    server_write(p, rec, rl);
    assert_int_equal(tlsrec_seal_alert(r, alert, rec), -1);
    ERR_clear_error();
    int n = -1, e = SSL_ERROR_WANT_READ;
    for (int i = 0; i < 100 && e == SSL_ERROR_WANT_READ; i++) {
        usleep(500);
        n = SSL_read(p->c, buf, sizeof(buf));
        e = SSL_get_error(p->c, n);
    }
    assert_true(n <= 0);
    assert_int_equal(e, SSL_ERROR_SSL);
    assert_int_equal(ERR_GET_REASON(ERR_peek_error()), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    pair_down(p, r);
    free(p);
}

/* ---- takeover ---- */

/* The sequence numbers counted during the handshake include every
 * NewSessionTicket, also one sent later with SSL_new_session_ticket. */
static void tickets_counted(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_int_equal(pair_up_tickets(p, NULL, 0, 4), 0);
    warm(p);
    assert_int_equal(SSL_new_session_ticket(p->s), 1);
    assert_int_equal(SSL_do_handshake(p->s), 1);
    warm(p);
    assert_true(p->watch.wseq >= 7); /* 5 tickets + 2 responses */
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);
    pair_down(p, r);
    free(p);
}

/* Other handshake shapes count right too: a HelloRetryRequest (with the
 * middlebox-compatibility change_cipher_spec records) and a resumption
 * (PSK, no certificate). */
static void hrr_and_resumption_counted(void **st)
{
    struct pair *p = calloc(1, sizeof(*p)), *q = calloc(1, sizeof(*q));
    struct pair_opts hrr = { .sgroups = "P-256", .cgroups = "X25519:P-256" };
    assert_int_equal(pair_up_opts(p, NULL, 0, 2, &hrr), 0);
    /* The client sends one key share, for X25519: P-256 means a retry. */
    assert_int_equal(SSL_get_negotiated_group(p->s), NID_X9_62_prime256v1);
    warm(p);
    SSL_SESSION *sess = SSL_get1_session(p->c);
    assert_non_null(sess);
    assert_int_equal(SSL_session_reused(p->c), 0);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);

    struct pair_opts res = { .resume = sess, .sctx = p->sctx };
    assert_int_equal(pair_up_opts(q, NULL, 0, 1, &res), 0);
    assert_int_equal(SSL_session_reused(q->c), 1);
    warm(q);
    tlsrec_t *r2 = tlsrec_takeover(&q->algs, q->s, &q->watch);
    assert_non_null(r2);
    exchange(q, r2);
    SSL_SESSION_free(sess);
    pair_down(q, r2);
    pair_down(p, r);
    free(p);
    free(q);
}

/* A KeyUpdate OpenSSL processed, either way, changed keys the watch does
 * not follow: that connection is never taken over. */
static void key_update_before_takeover(void **st)
{
    for (int dir = 0; dir < 2; dir++) {
        struct pair *p = calloc(1, sizeof(*p));
        pair_up(p, NULL, 0);
        SSL *from = dir ? p->s : p->c, *to = dir ? p->c : p->s;
        assert_int_equal(SSL_key_update(from, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        assert_int_equal(SSL_write(from, "ku", 2), 2);
        uint8_t buf[8];
        int n = 0;
        for (int i = 0; i < 100 && n <= 0; i++)
            n = SSL_read(to, buf, sizeof(buf));
        assert_int_equal(n, 2);
        assert_int_equal(p->watch.bad, 1);
        assert_null(tlsrec_takeover(&p->algs, p->s, &p->watch));
        pair_down(p, NULL);
        free(p);
    }
}

/* A record whose 5-byte header OpenSSL consumed (and counted) while its
 * body is still in flight: SSL_has_pending says 0, but the header would be
 * lost, so takeover waits for the record to complete. */
static void half_read_record_blocks_takeover(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    warm(p);
    assert_int_equal(SSL_write(p->c, "abc", 3), 3);
    usleep(2000);
    uint8_t rec[256], buf[8];
    ssize_t got = read(p->sfd, rec, sizeof(rec));
    assert_true(got > 5);
    assert_int_equal(write(p->cfd, rec, 5), 5);
    usleep(2000);
    assert_int_equal(SSL_read(p->s, buf, sizeof(buf)), -1);
    assert_int_equal(SSL_has_pending(p->s), 0);
    assert_null(tlsrec_takeover(&p->algs, p->s, &p->watch));
    assert_int_equal(write(p->cfd, rec + 5, (size_t)got - 5), got - 5);
    usleep(2000);
    assert_int_equal(SSL_read(p->s, buf, sizeof(buf)), 3);
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);
    pair_down(p, r);
    free(p);
}

/* A write OpenSSL could not finish (socket full) blocks takeover until it
 * is done. */
static void pending_write_blocks_takeover(void **st)
{
    struct pair *p = calloc(1, sizeof(*p));
    pair_up(p, NULL, 0);
    warm(p);
    static uint8_t big[1 << 20], sink[1 << 16];
    int w = 0, n = 1;
    while (n > 0 && w < (int)sizeof(big)) {
        n = SSL_write(p->s, big + w, (int)sizeof(big) - w);
        if (n > 0)
            w += n;
    }
    assert_true(w < (int)sizeof(big));
    assert_int_equal(SSL_get_error(p->s, n), SSL_ERROR_WANT_WRITE);
    assert_null(tlsrec_takeover(&p->algs, p->s, &p->watch));
    int have = 0;
    for (int spins = 0; spins < 100000 && (w < (int)sizeof(big) || have < w); spins++) {
        int m = SSL_read(p->c, sink, sizeof(sink));
        if (m > 0)
            have += m;
        if (w < (int)sizeof(big)) {
            n = SSL_write(p->s, big + w, (int)sizeof(big) - w);
            if (n > 0)
                w += n;
        }
    }
    assert_int_equal(have, (int)sizeof(big));
    tlsrec_t *r = tlsrec_takeover(&p->algs, p->s, &p->watch);
    assert_non_null(r);
    exchange(p, r);
    pair_down(p, r);
    free(p);
}

/* Hostile key-log lines: wrong length, odd length, bad hex → bad. */
static void keylog_lines(void **st)
{
    static const char *const bad[] = {
        "CLIENT_TRAFFIC_SECRET_0 00 0011",
        "CLIENT_TRAFFIC_SECRET_0 00 00112233445566778899aabbccddeeff00112233445566778899aabbccddeef",
        "CLIENT_TRAFFIC_SECRET_0 00 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeffgg",
        ("SERVER_TRAFFIC_SECRET_0 00 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
         "00112233445566778899aabbccddeeff00"), /* 49 bytes */
        "SERVER_TRAFFIC_SECRET_0 ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tlsrec_watch_t w = { 0 };
        tlsrec_watch_keylog(&w, bad[i]);
        assert_int_equal(w.bad, 1);
    }
    tlsrec_watch_t w = { 0 };
    tlsrec_watch_keylog(&w, "CLIENT_TRAFFIC_SECRET_0 00 00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF");
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.clen, 32);
    assert_int_equal(w.csecret[31], 0xff);
    tlsrec_watch_keylog(&w, "CLIENT_HANDSHAKE_TRAFFIC_SECRET 00 zz");
    assert_int_equal(w.bad, 0);
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
        cmocka_unit_test(key_schedule_and_many_records),
        cmocka_unit_test(key_update_peer),
        cmocka_unit_test(key_update_openssl),
        cmocka_unit_test(sequence_numbers_never_wrap),
        cmocka_unit_test(rekeys_before_the_limit),
        cmocka_unit_test(tampered_records),
        cmocka_unit_test(oversize_records),
        cmocka_unit_test(bad_inner_types),
        cmocka_unit_test(ccs_after_handshake),
        cmocka_unit_test(bad_headers_name_their_alert),
        cmocka_unit_test(short_records),
        cmocka_unit_test(handshake_messages),
        cmocka_unit_test(empty_records_bounded),
        cmocka_unit_test(alerts),
        cmocka_unit_test(failure_alert_reaches_openssl),
        cmocka_unit_test(tickets_counted),
        cmocka_unit_test(hrr_and_resumption_counted),
        cmocka_unit_test(key_update_before_takeover),
        cmocka_unit_test(half_read_record_blocks_takeover),
        cmocka_unit_test(pending_write_blocks_takeover),
        cmocka_unit_test(keylog_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
