/* conn: one client connection on a worker — its socket, optional SSL, the
 * two byte buffers, one timer, and the state that says which module drives
 * it (tls.c before the handshake ends, proxy.c/plain.c after).
 *
 * Ownership: the worker's connection list owns every conn_t; conn_close()
 * is the only way one ends, and frees everything it holds: the SSL (which
 * owns its socket BIO, not the fd), the fd, buffers, the in-flight request
 * (via proxy_abort), the route reference and any wait-list membership.
 * We drive SSL_read/SSL_write on the fd ourselves instead of libevent's
 * bufferevent_openssl: writes go out at once and write interest is armed
 * only on EAGAIN. (Had we used bufferevent_openssl: with
 * BEV_OPT_CLOSE_ON_FREE the bufferevent owns the SSL* even when its
 * creation fails — the caller must not free it again.) */
#ifndef HEE_EDGE_CONN_H
#define HEE_EDGE_CONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "edge/certcache.h"
#include "edge/iobuf.h"
#include "edge/tlsrec.h"

struct edge_worker;
struct route;
struct req;
struct uconn;
struct http1_request;

enum conn_kind { CONN_TLS = 0, CONN_PLAIN = 1 };

enum conn_state {
    CS_HELLO,      /* TLS: waiting for a whole ClientHello (peeked, not read) */
    CS_LOOKUP,     /* TLS: hello parsed, waiting for the loader */
    CS_PARKED,     /* TLS: waiting for the control thread (cert / probe) */
    CS_HANDSHAKE,  /* TLS: SSL_do_handshake running */
    CS_HEAD,       /* waiting for (the rest of) a request head */
    CS_ROUTE,      /* request head complete, waiting for the loader */
    CS_REQ,        /* a request in flight (proxy.c) */
    CS_TUNNEL,     /* after 101 Switching Protocols: bytes both ways */
    CS_FLUSH,      /* writing the last bytes, then close */
    CS_LINGER,     /* closed for writing; discarding input until EOF */
};

enum conn_flags {
    CF_RD = 1 << 0,        /* read event added */
    CF_WR = 1 << 1,        /* write event added */
    CF_TIMER = 1 << 2,     /* timer armed */
    CF_CLOSE = 1 << 3,     /* close after the current response */
    CF_SSL_WR_RD = 1 << 5, /* an SSL write wants the socket readable */
    CF_SSL_RD_WR = 1 << 6, /* an SSL read wants the socket writable */
    CF_ACME = 1 << 7,      /* tls-alpn-01 validation: close after handshake */
    CF_COUNTED_IP = 1 << 8,
    CF_DEFAULT_CERT = 1 << 9, /* no usable SNI: every request gets 421 */
    CF_ET = 1 << 10,       /* the read event is edge-triggered (hello phase) */
    CF_LINGER = 1 << 11,   /* the client may still be sending: drain before close */
};

typedef struct conn {
    struct edge_worker *w;
    int fd;
    uint8_t kind;                 /* enum conn_kind */
    uint8_t state;                /* enum conn_state */
    uint16_t flags;
    uint8_t park_why;             /* tls.c: why parked (route kind) */
    uint8_t host_len;
    SSL *ssl;                     /* during the handshake, and for TLS 1.2 */
    tlsrec_t *rec;                /* TLS 1.3 after takeover (ssl freed) */
    tlsrec_watch_t *watch;        /* secrets and record counts until then */
    struct event rev, wev, tev;
    int64_t deadline_ms;          /* lazy timer: see conn_deadline */
    int64_t timer_at_ms;
    iobuf_t in;                   /* decrypted client bytes not yet used */
    iobuf_t out;                  /* bytes for the client not yet written */
    iobuf_t raw;                  /* rec: ciphertext read, not yet opened */
    iobuf_t rawout;               /* rec: sealed records not yet sent */
    char *host;                   /* SNI (TLS) — malloc'd, lowercase */
    struct route *route;          /* reference for the SNI host (TLS) */
    struct http1_request *partial;/* heap copy while a head is incomplete */
    struct req *req;              /* in-flight request (proxy.c) */
    struct uconn *up;             /* its upstream connection */
    void *wait_on;                /* route.c / tls.c wait entry */
    TAILQ_ENTRY(conn) wlink;
    TAILQ_ENTRY(conn) link;       /* worker's list */
    int64_t t0_us;                /* accept (or hello) time */
    uint32_t nreq;
    struct sockaddr_storage peer;
    char ip[46];                  /* peer address, text */
} conn_t;

/* Takes ownership of fd (closed on failure). NULL when refused. */
conn_t *conn_new(struct edge_worker *w, int fd, const struct sockaddr *sa, int salen, int kind);
void conn_close(conn_t *c);

/* Event interest (idempotent; cheap when unchanged). */
void conn_want_read(conn_t *c, int on);
void conn_want_write(conn_t *c, int on);
/* Runs the read handler on the next loop turn when bytes already wait in
 * OpenSSL (read-ahead), in c->raw or in c->in (pipelining):
 * level-triggered epoll would not report them. */
void conn_kick(conn_t *c);
/* 1 when TLS bytes already read from the socket wait to be decrypted. */
int conn_pending(const conn_t *c);

/* Moves an established TLS 1.3 connection from OpenSSL to tlsrec and frees
 * the SSL (see tlsrec.h). Call only when no write is half done (c->out
 * flushed). 1 when taken over, 0 when not (now or ever: a connection
 * without c->watch, e.g. with [edge] compact_idle_tls off, never is). */
int conn_takeover(conn_t *c);
/* Switches the read event to edge-triggered early-close watching (parked)
 * or back to level-triggered reads. */
void conn_watch_hello(conn_t *c);   /* edge-triggered reads (peeking) */
void conn_watch_close(conn_t *c);
void conn_watch_read(conn_t *c);

/* Lazy deadline: ms from now; pushing it later costs no syscall. 0 = none. */
void conn_deadline(conn_t *c, int64_t ms);

/* Reads (and decrypts) into c->in: >0 bytes, 0 EOF, -1 error, -2 would
 * block. */
long conn_read(conn_t *c);
/* Writes from p: bytes written (>0), -1 error, -2 would block (write event
 * armed; with TLS the caller must retry with the same bytes). */
long conn_write(conn_t *c, const void *p, size_t n);
/* Writes c->out (and any sealed record still queued): 1 when all is out,
 * 0 when blocked (write event armed), -1 error. */
int conn_flush(conn_t *c);

/* Ends the connection gracefully: writes what is left, sends close_notify
 * (TLS), and, when the client may still be sending (CF_LINGER or unread
 * input), half-closes and discards input for [edge] close_linger so our
 * last response is not destroyed by a reset. Then closes. */
void conn_finish(conn_t *c);
/* Closes a connection with nothing in flight (idle keep-alive timeout,
 * drain, the client's own close_notify), sending close_notify first as
 * RFC 8446 6.1 asks; best effort, nothing is awaited. */
void conn_close_idle(conn_t *c);
/* Called by proxy_on_writable once CS_FLUSH has nothing left. */
void conn_flushed(conn_t *c);

/* Dispatch from route.c when a lookup this connection waited on ended. */
void conn_on_route(conn_t *c, struct route *r, certcache_entry_t *e, int status);

#endif
