/* plain: requests on the plain-HTTP listener (port 80 in production) —
 * ACME http-01 answers from hub->challenges, 308 to https:// for known
 * hosts, 404 for the rest. Nothing is proxied in the clear.
 *
 * Stateless: it answers through proxy_local_reply and, when the host's
 * route is not cached, parks the request with proxy_wait_route; the
 * request state stays owned by proxy.c. */
#ifndef HEE_EDGE_PLAIN_H
#define HEE_EDGE_PLAIN_H

#include <stddef.h>

struct conn;
struct route;
struct http1_request;

/* host: lowercase, port removed (may be empty when the request had none). */
void plain_request(struct conn *c, const struct http1_request *hr, const char *host, size_t host_len);
/* After proxy_wait_route: r is the route or NULL (unknown). */
void plain_on_route(struct conn *c, const struct http1_request *hr, const char *host, size_t host_len,
                    struct route *r);

#endif
