/* tls: everything before the first HTTP byte on the TLS listener — the
 * worker's SSL_CTXs (TLS 1.2/1.3, Mozilla intermediate ciphers, ALPN,
 * shared session-ticket keys), reading the ClientHello before any SSL
 * exists (MSG_PEEK, so a parked connection costs no buffer), the decision
 * by SNI, parking handshakes while the loader or the control thread works,
 * and the handshake itself with a per-connection certificate
 * (SSL_use_cert_and_key; never one SSL_CTX per certificate).
 *
 * Ownership: the SSL_CTXs belong to the worker (tls_ctx_free). A conn's
 * SSL is created here and freed by conn_close. Parked connections are
 * listed per host in w->parked (entries owned here, connections not). */
#ifndef HEE_EDGE_TLS_H
#define HEE_EDGE_TLS_H

#include <openssl/ssl.h>

#include "edge/certcache.h"

struct edge_worker;
struct conn;
struct route;

/* Builds the worker's two server contexts, identical but for the
 * callbacks that feed tlsrec: w->ssl_ctx_watch has them, w->ssl_ctx does
 * not (see tlsrec.h, "capture policy"). 0 or -1 with *err. */
int tls_ctx_init(struct edge_worker *w, char **err);
void tls_ctx_free(struct edge_worker *w);

/* A TLS connection was accepted: read its ClientHello. */
void tls_on_accept(struct conn *c);
/* Socket events while c->state <= CS_HANDSHAKE. */
void tls_on_readable(struct conn *c, short what);
void tls_on_writable(struct conn *c);
void tls_on_timeout(struct conn *c);
/* The loader answered the lookup c waited on (route / entry borrowed). */
void tls_on_route(struct conn *c, struct route *r, certcache_entry_t *e, int status);

/* Control thread said: a certificate for host is stored (re-look it up) /
 * issuance or verification failed (refuse the parked handshakes). */
void tls_cert_ready(struct edge_worker *w, const char *host);
void tls_cert_failed(struct edge_worker *w, const char *host, int code);
void tls_park_cancel(struct conn *c);
void tls_parked_free(struct edge_worker *w);

/* Sends a fatal TLS alert in the clear (after discarding the peeked hello)
 * and closes c. */
void tls_refuse(struct conn *c, int alert);

#endif
