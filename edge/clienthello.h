/* clienthello: reads the first TLS bytes of a connection, before any SSL
 * object exists, to learn SNI and ALPN so the edge can pick (or wait for) a
 * certificate. ch_parse only reads the caller's buffer: it never allocates,
 * never keeps a pointer into buf, and writes only into the caller's
 * ch_info_t, so it may run on any thread over a MSG_PEEK'd or buffered copy.
 * ch_alert_bytes builds the alert record the edge writes before closing. */
#ifndef HEE_EDGE_CLIENTHELLO_H
#define HEE_EDGE_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

/* Largest ClientHello handshake body accepted. Real hellos are 200–2,000
 * bytes (post-quantum key shares included); anything bigger is refused
 * rather than buffered per connection. */
#define CH_MAX_HELLO_LEN 16384
/* Most TLS records a ClientHello may be split across. */
#define CH_MAX_RECORDS 32
/* Bytes a caller must be able to buffer to always reach a verdict:
 * handshake header + body + one record header per record. */
#define CH_MAX_WIRE_LEN (4 + CH_MAX_HELLO_LEN + 5 * CH_MAX_RECORDS)
/* A DNS name without its trailing dot, plus NUL. */
#define CH_SNI_MAX 253

typedef enum {
    CH_OK = 0,      /* a complete, well-formed ClientHello: *out is filled */
    CH_NEED_MORE,   /* a valid prefix: read more (out->need is a lower bound) */
    CH_NOT_TLS,     /* not a TLS handshake record; see out->not_tls */
    CH_MALFORMED,   /* TLS, but broken or over a limit: send decode_error */
} ch_result_t;

typedef enum {
    CH_NOT_TLS_OTHER = 0,
    CH_NOT_TLS_HTTP,    /* looks like an HTTP/1 request line: answer 400 */
    CH_NOT_TLS_SSLV2,   /* SSLv2-compatible hello: protocol_version / close */
} ch_not_tls_t;

typedef enum {
    CH_SNI_NONE = 0,    /* no server_name extension */
    CH_SNI_OK,          /* sni holds a valid lowercase LDH name */
    CH_SNI_IP,          /* an IP literal (dotted numbers or contains ':') */
    CH_SNI_INVALID,     /* not LDH, empty label, label > 63, NUL, ... */
    CH_SNI_TOO_LONG,    /* more than 253 bytes (after one trailing dot) */
} ch_sni_t;

/* Everything below is valid only when ch_parse returned CH_OK, except need
 * (CH_NEED_MORE) and not_tls (CH_NOT_TLS). */
typedef struct {
    size_t need;            /* buffer must hold at least this many bytes */
    ch_not_tls_t not_tls;
    size_t hello_len;       /* wire bytes of the record(s) holding the hello */
    unsigned nrecords;      /* how many records the hello was spread over */
    uint16_t legacy_version;
    unsigned tls12 : 1;     /* offers TLS 1.2 (supported_versions or legacy) */
    unsigned tls13 : 1;     /* supported_versions lists TLS 1.3 */
    unsigned has_alpn : 1;
    unsigned alpn_http11 : 1;
    unsigned alpn_h2 : 1;
    unsigned alpn_acme : 1; /* "acme-tls/1": a tls-alpn-01 validation */
    unsigned alpn_count;    /* protocol names listed */
    ch_sni_t sni_status;
    /* Lowercase, trailing dot removed; set for CH_SNI_OK and CH_SNI_IP. */
    char sni[CH_SNI_MAX + 1];
    size_t sni_len;
} ch_info_t;

/* Parses the first len bytes received on a connection. Stateless: call it
 * again over the grown buffer after CH_NEED_MORE. Stricter than RFC 8446
 * in a few places the edge relies on: a ClientHello must end exactly at a
 * record boundary; duplicate extensions, a second host_name, empty ALPN
 * names and zero-length fragments are CH_MALFORMED. A bad SNI value is
 * not: the hello is CH_OK and sni_status says why the name is unusable. */
ch_result_t ch_parse(const uint8_t *buf, size_t len, ch_info_t *out);

const char *ch_result_name(ch_result_t r);
const char *ch_sni_status_name(ch_sni_t s);

enum { CH_ALERT_WARNING = 1, CH_ALERT_FATAL = 2 };
enum {
    CH_ALERT_HANDSHAKE_FAILURE = 40,
    CH_ALERT_DECODE_ERROR = 50,
    CH_ALERT_PROTOCOL_VERSION = 70,
    CH_ALERT_INTERNAL_ERROR = 80,
    CH_ALERT_UNRECOGNIZED_NAME = 112,
};
#define CH_ALERT_LEN 7

/* A plaintext alert record (the only kind allowed before ServerHello).
 * TLS 1.3 treats every alert but close_notify as fatal, so pass
 * CH_ALERT_FATAL. Returns CH_ALERT_LEN. */
size_t ch_alert_bytes(uint8_t level, uint8_t desc, uint8_t out[CH_ALERT_LEN]);

#endif
