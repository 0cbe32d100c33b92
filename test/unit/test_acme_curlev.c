/* Tests common/curlev.c against acme_httpd on a real libevent loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme_httpd.h"
#include "common/curlev.h"
#include "common/util.h"

static void handler(const acme_httpd_req_t *req, acme_httpd_resp_t *resp, void *arg)
{
    if (strncmp(req->path, "/slow", 5) == 0)
        resp->delay_ms = 300;
    if (strncmp(req->path, "/drop", 5) == 0) {
        resp->status = 0;
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        resp->body_len = 1 << 20;
        resp->body = malloc(resp->body_len);
        memset(resp->body, 'x', resp->body_len);
        return;
    }
    char buf[1200];
    int n = snprintf(buf, sizeof(buf), "%s %s %zu", req->method, req->path, req->body_len);
    resp->body = strdup(buf);
    resp->body_len = (size_t)n;
}

typedef struct {
    char *data;
    size_t len;
} buf_t;

static size_t on_write(char *p, size_t sz, size_t n, void *arg)
{
    buf_t *b = arg;
    char *nd = realloc(b->data, b->len + sz * n + 1);
    if (!nd)
        return 0;
    memcpy(nd + b->len, p, sz * n);
    b->data = nd;
    b->len += sz * n;
    b->data[b->len] = '\0';
    return sz * n;
}

typedef struct {
    struct event_base *base;
    curlev_t *cv;
    int port;
    int done;
    int expected;
    int ok;
    CURLcode last_rc;
    buf_t bodies[64];
    int chain_left; /* on_done starts another transfer while > 0 */
} ctx_t;

static CURL *easy_for(ctx_t *c, const char *path, buf_t *b)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->port, path);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    return e;
}

static void on_done(CURL *e, CURLcode rc, void *arg)
{
    ctx_t *c = arg;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    c->last_rc = rc;
    if (rc == CURLE_OK && code == 200)
        c->ok++;
    curl_easy_cleanup(e);
    if (c->chain_left > 0) {
        c->chain_left--;
        CURL *n = easy_for(c, "/chained", &c->bodies[63]);
        assert_int_equal(curlev_add(c->cv, n, on_done, c), 0);
        return;
    }
    if (++c->done == c->expected)
        event_base_loopbreak(c->base);
}

static void setup_ctx(ctx_t *c, acme_httpd_t *h)
{
    memset(c, 0, sizeof(*c));
    c->base = event_base_new();
    c->cv = curlev_new(c->base);
    c->port = acme_httpd_port(h);
    assert_non_null(c->base);
    assert_non_null(c->cv);
}

static void teardown_ctx(ctx_t *c)
{
    curlev_free(c->cv);
    event_base_free(c->base);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(c->bodies); i++)
        free(c->bodies[i].data);
}

static void on_run_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* A private timer, not event_base_loopexit(): a loopexit left pending by a
 * run that ended early would cut a later run short. */
static void run_loop(ctx_t *c, int seconds)
{
    struct event *t = evtimer_new(c->base, on_run_timeout, c->base);
    struct timeval tv = { seconds, 0 };
    evtimer_add(t, &tv);
    event_base_dispatch(c->base);
    event_free(t);
}

static void test_many_concurrent(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    c.expected = 40;
    for (int i = 0; i < c.expected; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/r%d", i);
        assert_int_equal(curlev_add(c.cv, easy_for(&c, path, &c.bodies[i]), on_done, &c), 0);
    }
    assert_int_equal(curlev_active(c.cv), 40);
    run_loop(&c, 20);
    assert_int_equal(c.done, 40);
    assert_int_equal(c.ok, 40);
    assert_int_equal(curlev_active(c.cv), 0);
    for (int i = 0; i < c.expected; i++) {
        char want[64];
        snprintf(want, sizeof(want), "GET /r%d 0", i);
        assert_string_equal(c.bodies[i].data, want);
    }
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

static void test_post_and_big_body(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    c.expected = 2;
    CURL *e = easy_for(&c, "/post", &c.bodies[0]);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "hello world");
    assert_int_equal(curlev_add(c.cv, e, on_done, &c), 0);
    assert_int_equal(curlev_add(c.cv, easy_for(&c, "/big", &c.bodies[1]), on_done, &c), 0);
    run_loop(&c, 20);
    assert_int_equal(c.ok, 2);
    assert_string_equal(c.bodies[0].data, "POST /post 11");
    assert_int_equal(c.bodies[1].len, 1 << 20);
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

static void test_chained_from_callback(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    c.expected = 1;
    c.chain_left = 5;
    assert_int_equal(curlev_add(c.cv, easy_for(&c, "/first", &c.bodies[0]), on_done, &c), 0);
    run_loop(&c, 20);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.ok, 6);
    assert_int_equal(acme_httpd_count(h), 6);
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

static void on_done_never(CURL *e, CURLcode rc, void *arg)
{
    fail_msg("on_done called for a cancelled transfer");
}

static void test_cancel_and_private(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    c.expected = 1;
    int mine = 42;
    CURL *slow = easy_for(&c, "/slow", &c.bodies[0]);
    curl_easy_setopt(slow, CURLOPT_PRIVATE, &mine);
    assert_int_equal(curlev_add(c.cv, slow, on_done_never, &c), 0);
    CURL *fast = easy_for(&c, "/fast", &c.bodies[1]);
    assert_int_equal(curlev_add(c.cv, fast, on_done, &c), 0);
    assert_int_equal(curlev_active(c.cv), 2);
    run_loop(&c, 20); /* fast finishes while slow is still waiting */
    assert_int_equal(c.ok, 1);
    assert_int_equal(curlev_active(c.cv), 1);
    curlev_cancel(c.cv, slow);
    assert_int_equal(curlev_active(c.cv), 0);
    char *p = NULL;
    curl_easy_getinfo(slow, CURLINFO_PRIVATE, &p);
    assert_ptr_equal(p, &mine);
    curl_easy_cleanup(slow);
    /* Nothing fires after the cancel. */
    run_loop(&c, 1);
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

static void test_errors_and_timeout(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    c.expected = 1;
    CURL *e = easy_for(&c, "/slow", &c.bodies[0]);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 50L);
    assert_int_equal(curlev_add(c.cv, e, on_done, &c), 0);
    run_loop(&c, 10);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.last_rc, CURLE_OPERATION_TIMEDOUT);

    c.done = 0;
    assert_int_equal(curlev_add(c.cv, easy_for(&c, "/drop", &c.bodies[1]), on_done, &c), 0);
    run_loop(&c, 10);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.last_rc, CURLE_GOT_NOTHING);

    /* A port nobody listens on: refused at once. */
    acme_httpd_t *gone = acme_httpd_start(handler, NULL);
    c.port = acme_httpd_port(gone);
    acme_httpd_stop(gone);
    c.done = 0;
    assert_int_equal(curlev_add(c.cv, easy_for(&c, "/x", &c.bodies[2]), on_done, &c), 0);
    run_loop(&c, 10);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.last_rc, CURLE_COULDNT_CONNECT);
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

static void test_free_with_transfers_in_flight(void **state)
{
    acme_httpd_t *h = acme_httpd_start(handler, NULL);
    ctx_t c;
    setup_ctx(&c, h);
    CURL *e[3];
    for (int i = 0; i < 3; i++) {
        e[i] = easy_for(&c, "/slow", &c.bodies[i]);
        assert_int_equal(curlev_add(c.cv, e[i], on_done_never, &c), 0);
    }
    run_loop(&c, 0); /* one pass: connections open, requests sent */
    assert_int_equal(curlev_add(NULL, e[0], on_done, &c), -1);
    curlev_free(c.cv);
    c.cv = NULL;
    for (int i = 0; i < 3; i++)
        curl_easy_cleanup(e[i]);
    teardown_ctx(&c);
    acme_httpd_stop(h);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_post_and_big_body),
        cmocka_unit_test(test_chained_from_callback),
        cmocka_unit_test(test_cancel_and_private),
        cmocka_unit_test(test_errors_and_timeout),
        cmocka_unit_test(test_free_with_transfers_in_flight),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
