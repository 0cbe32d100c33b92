/* proxy: HTTP/1.1 on an accepted connection once TLS (if any) is done —
 * reading request heads with edge/http1, rewriting them for the project
 * upstream (forwarding, tenant and signature headers), streaming bodies
 * both ways with back-pressure, relaying responses, WebSocket tunnels,
 * Hee's own error answers and the access log.
 *
 * Upstream headers Hee sets (inbound copies are always dropped):
 *   <tenant_header>:    the project slug
 *   <metadata_header>:  base64url (no padding) of the domain's metadata
 *                       JSON, only when the project's settings say
 *                       "forwardMetadata": true
 *   <signature_header>: t=<unix seconds>,v1=<hex HMAC-SHA256(project hmac
 *                       key, "<t>.<host>.<slug>.<metadata-b64 or empty>")>
 *                       where host is the lowercase customer hostname.
 * plus X-Forwarded-For/-Proto/-Host and Forwarded (inbound ones kept and
 * appended to only when the peer is in [edge] trusted_proxies) and the
 * request id header (the client's kept when it is a sane token).
 *
 * Ownership: one request state (struct req, from a per-worker free list)
 * per connection at a time, freed when its response ends or by
 * proxy_abort; the upstream connection is lent to it (uconn_release). */
#ifndef HEE_EDGE_PROXY_H
#define HEE_EDGE_PROXY_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct route;
struct uconn;
struct edge_worker;
struct http1_request;

/* Starts reading requests (after the handshake / at accept on port 80). */
void proxy_start(struct conn *c);
void proxy_on_readable(struct conn *c);
void proxy_on_writable(struct conn *c);
void proxy_on_timeout(struct conn *c);
/* The loader answered a route lookup the connection's request waited on. */
void proxy_on_route(struct conn *c, struct route *r, int status);
/* Upstream socket events for the connection that holds uc. */
void proxy_on_upstream(struct uconn *uc, short what);
/* Frees the in-flight request and its upstream connection (conn closing). */
void proxy_abort(struct conn *c);
void proxy_free_lists(struct edge_worker *w);

/* Answers the current request locally (plain.c, errors): status, extra
 * header lines (each ending CRLF, may be NULL), a body. close: close the
 * connection after it. Logs the access line. */
void proxy_local_reply(struct conn *c, int status, const char *headers, const char *body,
                       size_t body_len, int close);

/* Parks the current request until the loader answers for host; then
 * plain_on_route / the proxy resumes it. On failure answers 503 itself. */
void proxy_wait_route(struct conn *c, const char *host, size_t len);

/* Location suffix for redirects to the TLS listener (":8443", or "" for
 * port 443). */
const char *proxy_https_port(struct conn *c);

#endif
