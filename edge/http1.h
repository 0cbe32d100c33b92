/* http1: strict, incremental, zero-copy HTTP/1.1 framing (RFC 9112) for the
 * edge proxy: a request head parser, a response head parser and a chunked
 * body decoder, all fed untrusted bytes. Nothing here allocates or keeps
 * global state: every struct lives on the caller's stack or connection, and
 * every span points into the buffer the caller passed, valid only while that
 * buffer is neither freed nor moved (e.g. by a later evbuffer_pullup). */
#ifndef HEE_HTTP1_H
#define HEE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capacity of the header arrays; http1_limits.max_headers is clamped to it. */
#define HTTP1_MAX_HEADERS 128

/* Bytes [p, p + len) of the caller's buffer; not NUL-terminated. */
struct http1_span {
    const char *p;
    size_t len;
};

enum http1_result {
    HTTP1_ERROR = -1,     /* malformed or over a limit: see error_status/error */
    HTTP1_OK = 0,         /* a complete head (or body) was found */
    HTTP1_INCOMPLETE = 1, /* need more bytes: call again with the grown buffer */
};

/* Head limits. A request line / status line longer than max_request_line
 * (CRLF excluded) fails with 414 (502 for responses); a header section (all
 * field lines with their CRLFs plus the closing CRLF) longer than
 * max_header_bytes, or with more than max_headers field lines, fails with 431
 * (502). Both are reported as soon as the limit is passed, before the head is
 * complete, so a slow sender cannot make the caller buffer more. */
struct http1_limits {
    size_t max_request_line; /* default 8192 */
    size_t max_header_bytes; /* default 32768 */
    unsigned max_headers;    /* default 100, at most HTTP1_MAX_HEADERS */
};

void http1_limits_default(struct http1_limits *lim);

enum http1_method {
    HTTP1_M_OTHER = 0, /* any other valid token (e.g. PROPFIND): see method_name */
    HTTP1_M_GET,
    HTTP1_M_HEAD,
    HTTP1_M_POST,
    HTTP1_M_PUT,
    HTTP1_M_DELETE,
    HTTP1_M_PATCH,
    HTTP1_M_OPTIONS,
    HTTP1_M_CONNECT,
    HTTP1_M_TRACE,
};

/* Header names the parser recognises (case-insensitively). */
enum http1_header_id {
    HTTP1_H_OTHER = 0,
    HTTP1_H_HOST,
    HTTP1_H_CONTENT_LENGTH,
    HTTP1_H_TRANSFER_ENCODING,
    HTTP1_H_CONNECTION,
    HTTP1_H_KEEP_ALIVE,
    HTTP1_H_PROXY_CONNECTION,
    HTTP1_H_TE,
    HTTP1_H_TRAILER,
    HTTP1_H_UPGRADE,
    HTTP1_H_EXPECT,
};

/* How the body that follows a head is delimited. */
enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body: the next message starts right after the head */
    HTTP1_BODY_LENGTH,   /* exactly content_length bytes */
    HTTP1_BODY_CHUNKED,  /* run the bytes through http1_chunked_feed */
    HTTP1_BODY_CLOSE,    /* response only: everything until the upstream closes */
    HTTP1_BODY_TUNNEL,   /* response only: 101, or 2xx to CONNECT: raw bytes both ways */
};

/* hop: the header must not be forwarded (RFC 9110 7.6.1): Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade and
 * every header named in a Connection option. Transfer-Encoding is hop-by-hop
 * too: a proxy that forwards a chunked body's raw bytes must write its own
 * "Transfer-Encoding: chunked" (the only coding a request may carry). */
struct http1_header {
    struct http1_span name;
    struct http1_span value; /* leading and trailing SP/HTAB removed */
    uint8_t id;              /* enum http1_header_id */
    bool hop;
};

/* Private resumable scan state; set up by http1_request_init/_response_init. */
struct http1__scan {
    size_t pos;       /* where the search for the next LF resumes */
    size_t line;      /* offset of the line being scanned */
    size_t start_end; /* offset just past the start line's CRLF, 0 before */
    size_t head_len;  /* offset just past the empty line, 0 before */
    unsigned lines;   /* field lines seen */
};

struct http1_request {
    /* Set on HTTP1_OK. */
    size_t head_len;              /* bytes of the head, leading CRLF included */
    enum http1_method method;
    struct http1_span method_name;
    struct http1_span target;     /* as received */
    struct http1_span path;       /* origin-form to forward upstream: the target,
                                     or for absolute-form the part after the
                                     authority (empty means "/"); "*" for
                                     OPTIONS * */
    struct http1_span host;       /* Host value, or the authority of an
                                     absolute-form target; p == NULL when an
                                     HTTP/1.0 request has neither. Validated,
                                     not lower-cased. */
    bool absolute_form;
    int minor;                    /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    enum http1_body body;         /* NONE, LENGTH or CHUNKED */
    int64_t content_length;       /* -1 when absent (always -1 when chunked) */
    bool chunked;
    bool keep_alive;              /* from the version and Connection options */
    bool upgrade;                 /* HTTP/1.1, Connection: upgrade and Upgrade: */
    bool expect_continue;         /* HTTP/1.1 and Expect: 100-continue */
    unsigned n_headers;
    unsigned n_hop;               /* headers with hop set */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    /* Set on HTTP1_ERROR: 400, 414, 431, 501 or 505, and a short static
     * reason for the log. The caller answers with that status and closes. */
    int error_status;
    const char *error;
    struct http1__scan _scan;
};

struct http1_response {
    /* Set on HTTP1_OK. */
    size_t head_len;
    int minor;
    int status;                   /* 100..599 */
    struct http1_span reason;     /* may be empty */
    enum http1_body body;
    int64_t content_length;       /* -1 when absent; may be set with body NONE
                                     (HEAD, 304) */
    bool chunked;
    bool keep_alive;              /* false whenever body is CLOSE */
    bool switching;               /* 101 Switching Protocols: body is TUNNEL */
    unsigned n_headers;
    unsigned n_hop;
    struct http1_header headers[HTTP1_MAX_HEADERS];
    /* Set on HTTP1_ERROR: always 502 (what the proxy answers its client). */
    int error_status;
    const char *error;
    struct http1__scan _scan;
};

/* Call before parsing each new head (e.g. the next pipelined request). */
void http1_request_init(struct http1_request *req);
void http1_response_init(struct http1_response *resp);

/* Parses the request head at the start of buf[0, len). lim may be NULL for
 * the defaults. Call again with the same req and a longer buffer holding the
 * same leading bytes after HTTP1_INCOMPLETE: scanning resumes where it
 * stopped, so feeding one byte at a time costs O(total) and ends with the
 * same result as feeding everything at once. The buffer may move between
 * calls; spans refer to the last one.
 *
 * Strictness (400 unless noted; the caller must close after any error):
 * CRLF line endings only (one empty CRLF before the request line is skipped);
 * exactly one SP between method, target and version; method and field names
 * are tokens; no whitespace before a colon, no obs-fold, no CTL (but HTAB) in
 * values; target bytes are 0x21-0x7E except '#'; version is HTTP/1.0 or
 * HTTP/1.1 (other HTTP/d.d: 505); targets are origin-form, absolute-form
 * (http/https, no userinfo, Host must equal its authority) or "*" with
 * OPTIONS only; CONNECT: 501; exactly one valid Host with HTTP/1.1, at most
 * one with 1.0 (host chars: ALPHA DIGIT - . _ ~, or an [IPv6] literal, then
 * an optional :port); Content-Length is 1*DIGIT fitting int64, duplicates and
 * "5, 5" lists only with one value; Transfer-Encoding only on HTTP/1.1, never
 * with Content-Length, and exactly "chunked" once: a final coding other than
 * chunked, chunked twice, parameters or empty list members are 400, other
 * codings before a final chunked ("gzip, chunked") are 501; names that
 * read as Content-Length or Transfer-Encoding once '_' becomes '-' are
 * refused (CGI-style upstreams fold them); Connection options are tokens and
 * may not name Host or Content-Length. Host may not be empty and its port
 * is at most 65535. Expect is a list: 100-continue anywhere in it counts;
 * other expectations are ignored, not answered with 417. */
enum http1_result http1_parse_request(const char *buf, size_t len,
                                      const struct http1_limits *lim,
                                      struct http1_request *req);

/* Parses an upstream response head the same way. req_method is the method
 * of the request it answers and decides the framing: nothing for HEAD, 1xx,
 * 204 and 304; TUNNEL for 101 and 2xx to CONNECT; then chunked, then
 * Content-Length, else CLOSE. A 1xx other than 101 is interim: init again
 * and parse the next head at buf + head_len. Any fault, including both
 * Content-Length and Transfer-Encoding or a Transfer-Encoding other than
 * exactly "chunked", yields error_status 502. */
enum http1_result http1_parse_response(const char *buf, size_t len,
                                       const struct http1_limits *lim,
                                       enum http1_method req_method,
                                       struct http1_response *resp);

/* Chunked body decoder limits. */
struct http1_chunked_limits {
    size_t max_chunk_line;    /* chunk-size line with extensions, CRLF
                                 excluded; default 4096 */
    size_t max_trailer_bytes; /* trailer section with its CRLFs; default 8192 */
};

/* Decoder state: keep it with the connection for the body's lifetime. */
struct http1_chunked {
    struct http1_chunked_limits lim;
    uint64_t payload;         /* decoded payload bytes so far */
    const char *error;        /* static reason once HTTP1_ERROR was returned */
    unsigned n_trailers;      /* trailer fields seen */
    /* private */
    int _state;
    int64_t _remaining;       /* chunk payload bytes still to come */
    size_t _line;             /* bytes of the current size line or trailer section */
    uint8_t _name_len;        /* trailer name bytes kept in _name */
    char _name[18];           /* lower-cased trailer name prefix */
};

/* lim may be NULL for the defaults. */
void http1_chunked_init(struct http1_chunked *st, const struct http1_chunked_limits *lim);

/* Feeds raw body bytes that follow a chunked head. *consumed is how many of
 * them belong to the body; on HTTP1_OK the body (last chunk and trailers)
 * ended there and whatever follows is the next message; on
 * HTTP1_INCOMPLETE all len bytes were consumed unless data is non-NULL; on
 * HTTP1_ERROR the stream is broken (400 for a request, 502 for a response)
 * and st->error says why.
 *
 * A proxy that relays the raw chunked bytes passes data = NULL and forwards
 * exactly *consumed bytes. A caller that wants the payload passes a span:
 * the call then stops after the first run of payload bytes, *data points at
 * it in buf (len 0 when there was none), and the caller calls again with
 * buf + *consumed.
 *
 * Refused: a size that is not 1*HEXDIG or exceeds INT64_MAX, whitespace
 * other than BWS before ";" or around "=" in extensions, extension names
 * and values that are not tokens or quoted strings, a size line over
 * max_chunk_line, anything but CRLF after chunk data, bare CR or LF, trailer
 * lines that are not "token: value" (no obs-fold, no CTL), a trailer section
 * over max_trailer_bytes, and Content-Length, Transfer-Encoding or Host as
 * trailer fields (a recipient merging trailers would reframe the message). */
enum http1_result http1_chunked_feed(struct http1_chunked *st, const char *buf, size_t len,
                                     size_t *consumed, struct http1_span *data);

/* The reason phrase for a status Hee sends (RFC 9110 names); "Error", or
 * "Internal Server Error" for an unknown 5xx. Static. */
const char *http1_reason(int status);

#endif
