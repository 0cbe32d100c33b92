/* api_http: the control API's HTTP/1.1 server — connections, request heads
 * (parsed by edge/http1's strict parser), Content-Length bodies and replies
 * — in place of evhttp, whose per-request header lists, URI parsing,
 * printf/scanf and extra system calls cost more than the API's hot lookup
 * itself. It accepts on the listener control.c bound (so control's drain,
 * which frees that listener, still stops new connections) and hands each
 * complete request to one dispatch callback.
 *
 * Ownership: api_http_t belongs to the control thread; api_http_free closes
 * every connection. An api_http_req_t lives inside its connection; it and
 * every pointer in it stay valid until api_http_reply() for it, which the
 * dispatcher must call exactly once (later is fine: the connection reads
 * nothing more until then). If the client goes away meanwhile, the
 * connection is kept, without a socket, until that reply. */
#ifndef HEE_API_HTTP_H
#define HEE_API_HTTP_H

#include <event2/listener.h>
#include <stddef.h>

#include "edge/http1.h"

typedef struct api_http api_http_t;
typedef struct api_http_conn api_http_conn_t;

typedef struct api_http_req {
    api_http_conn_t *conn;
    enum http1_method method;
    const char *path;            /* NUL-terminated, without the query */
    const char *query;           /* NUL-terminated, after '?'; NULL without one */
    const char *body;            /* body bytes (not NUL-terminated); NULL when none */
    size_t body_len;
    const struct http1_request *head;
    /* Non-zero when the request could not be read (400, 411, 413, 414,
     * 431, 501, 505): the dispatcher answers with that status and a JSON
     * error (why: a static reason), and the connection closes after it.
     * path and head are then NULL. */
    int bad_status;
    const char *bad_why;
} api_http_req_t;

typedef void (*api_http_dispatch)(api_http_req_t *req, void *arg);

/* Takes over listener's accept callback. max_body: larger bodies are
 * refused with 413 without being read. max_conns: with that many
 * connections open, accepting pauses (new ones wait in the kernel's backlog)
 * until one closes. NULL on failure. */
api_http_t *api_http_new(struct evconnlistener *listener, size_t max_body, int max_conns, api_http_dispatch fn,
                         void *arg);
/* A reload's new body limit (bodies over it are refused unread). */
void api_http_set_max_body(api_http_t *h, size_t max_body);
/* The listener is about to be freed (shutdown): never touch it again. */
void api_http_detach(api_http_t *h);
void api_http_free(api_http_t *h);

/* The value of header name (case-insensitive; the first if repeated), or
 * NULL; *len gets its length. */
const char *api_http_header(const api_http_req_t *r, const char *name, size_t *len);

/* Sends the reply: status line, Date, Content-Type (when not NULL),
 * Content-Length (not for 204), extra (complete "Name: value\r\n" lines,
 * may be NULL), then body unless the request was HEAD. close_after closes
 * the connection once it is written. */
void api_http_reply(api_http_req_t *r, int status, const char *reason, const char *date, const char *content_type,
                    const char *extra, size_t extra_len, const void *body, size_t len, int close_after);

#endif
