/* Fuzzes tlsrec_open, the parser of what a client sends after takeover,
 * from a state derived by a real handshake (one OpenSSL pair per TLS 1.3
 * suite, made once). Each input gets a fresh tlsrec_t; a peer under the
 * client's secret (test/unit/tlsrec_peer.h) seals fuzzer-chosen inner
 * plaintexts, so the code after the AEAD (padding, content types, alerts,
 * KeyUpdate) is reached, not just the tag check.
 *
 * Input: byte 0 picks the suite (% 3); then chunks of flag(1) len(2, BE)
 * bytes(len). Flag bit 0: the bytes are sent as they are (a raw record
 * stream: headers, lengths and tags as hostile as they come); otherwise
 * they are the TLSInnerPlaintext of a correctly sealed record. Flag bit 1
 * (raw only): a header tlsrec_record_len refuses goes to
 * tlsrec_fail_header instead, as edge/conn.c does, which must name an alert.
 * Checks: no crash or over-read (ASan), opened data equals what was sealed,
 * a failure is final, eof stays eof, a KeyUpdate asked for can be answered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/tlsrec.h"
#include "test/unit/tlsrec_peer.h"

static struct pair pairs[3];
static tlsrec_watch_t watches[3];
static int ready = -1;

static void setup(void)
{
    static const char *const suites[3] = { "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256" };
    ready = 0;
    for (int i = 0; i < 3; i++) {
        if (pair_up_tickets(&pairs[i], suites[i], 0, 1) != 0)
            abort();
        watches[i] = pairs[i].watch;
    }
    ready = 1;
}

static uint8_t rec[TLSREC_MAX_RECORD + 64], out[TLSREC_MAX_RECORD + 64];

/* The inner plaintext's content type (0: none), as RFC 8446 5.4 finds it. */
static uint8_t inner_type(const uint8_t *p, size_t n, size_t *content)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    *content = n ? n - 1 : 0;
    return n ? p[n - 1] : 0;
}

static void check_alert(const tlsrec_t *r)
{
    int a = tlsrec_alert(r);
    if (a != -1 && a != 10 && a != 20 && a != 22 && a != 47 && a != 50 && a != 80)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ready < 0)
        setup();
    if (size < 1)
        return 0;
    int s = data[0] % 3;
    tlsrec_watch_t w = watches[s];
    struct peer cw;
    if (peer_init(&cw, pairs[s].s, w.csecret, w.rseq, 1) != 0)
        abort();
    tlsrec_t *r = tlsrec_takeover(&pairs[s].algs, pairs[s].s, &w);
    if (!r)
        abort();
    int failed = 0, closed = 0;
    size_t i = 1;
    while (i + 3 <= size && !failed) {
        uint8_t flag = data[i];
        size_t n = (size_t)data[i + 1] << 8 | data[i + 2];
        i += 3;
        if (n > size - i)
            n = size - i;
        const uint8_t *b = data + i;
        i += n;
        int eof = 0, upd = 0;
        long rc;
        if (flag & 1) {
            /* Raw: open whatever length the chunk has, header or not. */
            if (n > sizeof(rec))
                n = sizeof(rec);
            uint8_t *copy = malloc(n ? n : 1); /* exact size for ASan */
            if (!copy)
                break;
            memcpy(copy, b, n);
            if ((flag & 2) && !closed && tlsrec_record_len(copy, n) < 0) {
                tlsrec_fail_header(r, copy, n);
                if (tlsrec_alert(r) == -1)
                    abort(); /* the peer must hear why */
                rc = -1;
            } else {
                rc = tlsrec_open(r, copy, n, out, &eof, &upd);
            }
            free(copy);
            if (rc >= 0 && !closed)
                abort(); /* no forged record can pass the AEAD */
        } else {
            if (n > TLSREC_MAX_PLAIN + 256 - 16)
                n = TLSREC_MAX_PLAIN + 256 - 16;
            long rl = peer_seal_inner(&cw, b, n, NULL, rec);
            if (rl < 0)
                abort();
            rc = tlsrec_open(r, rec, (size_t)rl, out, &eof, &upd);
            size_t content;
            uint8_t type = inner_type(b, n, &content);
            if (rc > 0 && (closed || type != TLSREC_APPDATA || (size_t)rc != content || memcmp(out, b, content)))
                abort();
            if (rc >= 0 && !closed && n > TLSREC_MAX_PLAIN + 1)
                abort(); /* record_overflow missed */
            if (rc == 0 && !eof && type == TLSREC_HANDSHAKE && peer_update(&cw) != 0)
                abort(); /* an accepted KeyUpdate: follow it */
            if (rc == 0 && !eof && type != TLSREC_HANDSHAKE && type != TLSREC_APPDATA)
                abort();
        }
        if (closed && (rc != 0 || !eof))
            abort(); /* after close_notify everything is ignored */
        if (rc < 0) {
            failed = 1;
            check_alert(r);
            int e2 = 0, u2 = 0;
            long rl = peer_seal(&cw, TLSREC_APPDATA, "x", 1, 0, rec);
            if (tlsrec_open(r, rec, (size_t)rl, out, &e2, &u2) != -1 || tlsrec_seal(r, "x", 1, rec) != -1)
                abort(); /* a failure is final */
        } else if (eof) {
            closed = 1;
        } else if (upd && tlsrec_seal_key_update(r, rec) < 0) {
            abort();
        }
    }
    peer_free(&cw);
    tlsrec_free(r);
    return 0;
}
