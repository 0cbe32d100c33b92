/* acme_httpd: a tiny blocking HTTP/1.1 server on 127.0.0.1 for unit tests.
 *
 * It runs on its own threads (never on the event loop under test), answers
 * one request per connection ("Connection: close") through a handler the test
 * supplies, and is stopped with acme_httpd_stop(), which waits for every
 * connection thread. The request's strings live for the handler call only;
 * resp->body is malloc'd by the handler and freed by the server. */
#ifndef HEE_TEST_ACME_HTTPD_H
#define HEE_TEST_ACME_HTTPD_H

#include <stddef.h>

typedef struct acme_httpd acme_httpd_t;

typedef struct {
    char method[16];
    char path[1024];
    char *headers; /* raw header block, NUL-terminated */
    char *body;
    size_t body_len;
} acme_httpd_req_t;

typedef struct {
    int status;          /* 0 = close the connection without answering */
    char headers[2048];  /* extra header lines, each ending in "\r\n" */
    char *body;          /* malloc'd or NULL */
    size_t body_len;
    int delay_ms;        /* wait before answering */
} acme_httpd_resp_t;

typedef void (*acme_httpd_handler)(const acme_httpd_req_t *req, acme_httpd_resp_t *resp, void *arg);

acme_httpd_t *acme_httpd_start(acme_httpd_handler handler, void *arg);
int acme_httpd_port(const acme_httpd_t *h);
/* Requests served so far (counted before their answer is sent). */
unsigned acme_httpd_count(acme_httpd_t *h);
/* Most requests ever read and not yet answered at once. */
unsigned acme_httpd_peak(acme_httpd_t *h);
void acme_httpd_stop(acme_httpd_t *h);

#endif
