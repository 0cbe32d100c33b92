/* tlsrec: Hee's own TLS 1.3 record layer for established connections.
 * OpenSSL 3.0 does the handshake; then, once OpenSSL holds no unread bytes,
 * the connection's traffic secrets (caught by the keylog callback) and
 * record counts (counted by the message callback) move into a tlsrec_t and
 * the SSL object — about 14 KB per connection — is freed. What is left per
 * connection is two AEAD contexts and the secrets (~2.5 KB), which is what
 * makes an idle TLS connection cheap.
 *
 * Scope: TLS 1.3 with AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305
 * (every TLS 1.3 suite OpenSSL enables); TLS 1.2 connections stay on
 * OpenSSL. Handles application data, alerts (close_notify = EOF) and
 * KeyUpdate both ways (RFC 8446 4.6.3, 5, 7.2); anything else after the
 * handshake is a protocol error.
 *
 * Ownership: tlsrec_watch_t is the caller's (one per connection while it
 * handshakes); tlsrec_t is malloc'd by tlsrec_takeover and freed (secrets
 * wiped) by tlsrec_free. tlsrec_algs_t holds fetched algorithms for one
 * thread's use; tlsrec_algs_free releases them. */
#ifndef HEE_EDGE_TLSREC_H
#define HEE_EDGE_TLSREC_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#define TLSREC_HEADER 5
#define TLSREC_MAX_PLAIN 16384
#define TLSREC_MAX_RECORD (TLSREC_HEADER + TLSREC_MAX_PLAIN + 256)
/* Bytes a sealed record adds to its content: header, type byte, tag. */
#define TLSREC_OVERHEAD (TLSREC_HEADER + 1 + 16)

typedef struct tlsrec_algs {
    EVP_CIPHER *aes128gcm, *aes256gcm, *chacha;
    EVP_MD *sha256, *sha384;
} tlsrec_algs_t;

int tlsrec_algs_init(tlsrec_algs_t *a);
void tlsrec_algs_free(tlsrec_algs_t *a);

/* What the callbacks learn during the handshake. */
typedef struct tlsrec_watch {
    uint8_t csecret[48], ssecret[48]; /* client / server application secrets */
    uint8_t clen, slen;
    uint8_t bad;                      /* something we do not take over */
    uint64_t rseq, wseq;              /* records under the application keys */
} tlsrec_watch_t;

/* Feed from SSL_CTX_set_keylog_callback / SSL_CTX_set_msg_callback. */
void tlsrec_watch_keylog(tlsrec_watch_t *w, const char *line);
void tlsrec_watch_msg(tlsrec_watch_t *w, int write_p, int content_type, const void *buf, size_t len);
/* Wipes the secrets. */
void tlsrec_watch_clear(tlsrec_watch_t *w);

/* Whether to capture a new connection's secrets at all. OpenSSL 3.0 hands
 * out traffic secrets only through the key-log callback, and while one is
 * set it formats every secret of every handshake as hex text (five lines
 * per TLS 1.3 handshake, one sprintf per byte): ~10% of the CPU of a full
 * handshake and its request. The capture pays off only for one that reaches
 * an idle point; one that closes after its request (Connection: close,
 * health checks, scripts) wastes it. The policy keeps a decaying share of
 * wasted captures among a worker's recent connections: while under 7 in 8,
 * every connection is captured; above, one in 16 still is, so it notices
 * when connections start to go idle again. A zeroed policy captures
 * everything. One per worker thread, not shared. */
typedef struct tlsrec_policy {
    uint16_t waste;   /* 256 x the recent share of wasted captures */
    uint16_t skipped; /* connections not captured since the last one */
} tlsrec_policy_t;

/* 1: capture this connection's secrets (give it a watch). */
int tlsrec_policy_capture(tlsrec_policy_t *p);
/* A captured connection was taken over (went_idle = 1) or closed after
 * its handshake without ever reaching an idle point (0). */
void tlsrec_policy_learn(tlsrec_policy_t *p, int went_idle);

typedef struct tlsrec tlsrec_t;

/* The record layer for ssl's connection, or NULL when it cannot be taken
 * over now (TLS 1.2, unread bytes inside OpenSSL, missing secret...). The
 * caller then frees the SSL without sending anything. */
tlsrec_t *tlsrec_takeover(const tlsrec_algs_t *a, SSL *ssl, tlsrec_watch_t *w);
void tlsrec_free(tlsrec_t *r);

enum tlsrec_type { TLSREC_ALERT = 21, TLSREC_HANDSHAKE = 22, TLSREC_APPDATA = 23 };

/* Length of the record starting at buf (header included) once its header
 * is there: 0 when fewer than 5 bytes, -1 when the header is invalid (then
 * call tlsrec_fail_header before closing). */
long tlsrec_record_len(const uint8_t *buf, size_t len);
/* A header tlsrec_record_len refused (buf, len as given to it) is a fatal
 * error like a record tlsrec_open refuses: afterwards tlsrec_alert names
 * the alert it calls for (unexpected_message for another content type,
 * record_overflow for a length over 2^14 + 256, decode_error otherwise).
 * Nothing changes after close_notify or an earlier failure. */
void tlsrec_fail_header(tlsrec_t *r, const uint8_t *buf, size_t len);

/* Decrypts one whole record (rec, len = tlsrec_record_len) into out (room
 * for len bytes). Application data: returns its length (may be 0). 0 with
 * *eof = 1 for close_notify. KeyUpdate is applied here; when the peer asks
 * for ours, *send_update is set and the caller must seal one with
 * tlsrec_seal_key_update before any more data. -1 on any failure (bad
 * MAC, other alerts, unexpected messages): close the connection. A failure
 * is final: afterwards open and seal refuse everything but one alert.
 * Records after close_notify are ignored (0 with *eof = 1 again). More
 * than 32 records in a row without application data (empty ones,
 * KeyUpdates) fail, so a loop reading while this returns 0 is bounded. */
long tlsrec_open(tlsrec_t *r, const uint8_t *rec, size_t len, uint8_t *out, int *eof, int *send_update);
/* After a failure: the description of the fatal alert it calls for (RFC
 * 8446 6.2: bad_record_mac 20, record_overflow 22, unexpected_message 10,
 * decode_error 50, illegal_parameter 47, internal_error 80), to seal with
 * tlsrec_seal_alert ({2, desc}); -1 when nothing should be sent (no
 * failure, or the peer's own alert ended the connection). */
int tlsrec_alert(const tlsrec_t *r);

/* Seals n (<= TLSREC_MAX_PLAIN) bytes of application data into out (room
 * for n + TLSREC_OVERHEAD). Returns the record length or -1. */
long tlsrec_seal(tlsrec_t *r, const void *p, size_t n, uint8_t *out);
/* Seals an alert (2 bytes: level, description), the last record we send:
 * sealing refuses everything after it. Record length or -1. */
long tlsrec_seal_alert(tlsrec_t *r, const uint8_t alert[2], uint8_t *out);
/* Seals our KeyUpdate (update_not_requested) and switches to the next
 * write key. Returns the record length or -1. */
long tlsrec_seal_key_update(tlsrec_t *r, uint8_t *out);

/* Records one write key seals before Hee replaces it: RFC 8446 5.5 puts
 * AES-GCM's limit at 2^24.5 records per key; one limit for every suite
 * keeps it simple (a KeyUpdate per 2^24 records costs nothing). */
#define TLSREC_REKEY_AFTER (UINT64_C(1) << 24)
/* 1 when the write key reached TLSREC_REKEY_AFTER records: seal a
 * KeyUpdate (tlsrec_seal_key_update) before more data. */
int tlsrec_should_rekey(const tlsrec_t *r);

#endif
