/* Tests control/api.c's router on a real listener (bound as control.c binds it, served by
 * api_http, as in the daemon): captures and
 * percent-decoding, 404/405/Allow, body rules, raw member extraction, and
 * the deferred-reply contract other subsystems rely on (reply later, reply
 * at once after deferring, client gone before the reply, no reply at all).
 * A blocking client thread talks to the loop run by the test thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/hub.h"
#include "common/metrics.h"
#include "common/store.h"
#include "control/api.h"
#include "control/ctl.h"

/* ---- what the router needs from the rest of the control thread ---- */
static int domain_changed_calls, events_calls;
void ctl_events_committed(struct control *c) { events_calls++; }
void ctl_domain_changed(struct control *c, const char *host) { domain_changed_calls++; }
void ctl_project_changed(struct control *c, long long id) {}
void verify_hint(struct verify *v, const char *host) {}

struct fx {
    char dir[64];
    hub_t hub;
    config_t *cfg;
    struct control c;
    int port;
    struct event *tick;
    char token[128];
};

static struct fx *F;

/* ---- test routes ---- */
static void reply_later(evutil_socket_t fd, short what, void *arg)
{
    api_req_t *r = arg;
    api_reply_json(r, 200, json_pack("{s:b,s:s}", "deferred", 1, "param", r->nparams ? r->param[0] : ""));
}

static void on_defer(api_req_t *r)
{
    api_defer(r);
    struct timeval tv = { 0, 20000 };
    event_base_once(r->c->base, -1, EV_TIMEOUT, reply_later, r, &tv);
}

static void on_defer_sync(api_req_t *r)
{
    api_defer(r);
    api_error(r, 409, "HostnameConflict", "%s", "answered while dispatching");
}

static void on_noreply(api_req_t *r) {}

static void on_echo(api_req_t *r)
{
    const char *start = NULL;
    size_t len = 0;
    json_t *o = json_object();
    json_object_set_new(o, "nparams", json_integer(r->nparams));
    for (int i = 0; i < r->nparams; i++)
        json_array_append_new(json_object_get(o, "p") ? json_object_get(o, "p")
                                                      : (json_object_set_new(o, "p", json_array()), json_object_get(o, "p")),
                              json_string(r->param[i]));
    if (r->body && api_body_raw_member(r, "m", &start, &len) == 0)
        json_object_set_new(o, "raw", json_stringn(start, len));
    json_object_set_new(o, "project", r->auth.project_slug ? json_string(r->auth.project_slug) : json_null());
    json_object_set_new(o, "admin", json_boolean(r->auth.admin));
    const char *q = api_query(r, "q");
    json_object_set_new(o, "q", q ? json_string(q) : json_null());
    api_reply_json(r, 200, o);
}

/* ---- client ---- */
struct call {
    const char *req;
    size_t req_len;
    int close_early;
    char resp[65536];
    size_t resp_len;
    atomic_int done;
};

static void *client(void *arg)
{
    struct call *cl = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)F->port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, cl->req, cl->req_len) == (ssize_t)cl->req_len && !cl->close_early) {
        ssize_t n;
        while (cl->resp_len < sizeof(cl->resp) - 1 &&
               (n = read(fd, cl->resp + cl->resp_len, sizeof(cl->resp) - 1 - cl->resp_len)) > 0) {
            cl->resp_len += (size_t)n;
            cl->resp[cl->resp_len] = '\0';
            const char *hdr_end = strstr(cl->resp, "\r\n\r\n");
            const char *cl_hdr = strstr(cl->resp, "Content-Length: ");
            if (hdr_end && cl_hdr && cl->resp_len >= (size_t)(hdr_end + 4 - cl->resp) + (size_t)atoi(cl_hdr + 16))
                break;
            if (hdr_end && !cl_hdr && strncmp(cl->resp + 9, "204", 3) == 0)
                break;
        }
    }
    close(fd);
    atomic_store(&cl->done, 1);
    return NULL;
}

static void tick(evutil_socket_t fd, short what, void *arg) {}

/* Sends raw bytes, runs the loop until the client is done; returns the reply. */
static const char *http_raw(struct call *cl, const char *req)
{
    memset(cl, 0, sizeof(*cl));
    cl->req = req;
    cl->req_len = strlen(req);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client, cl), 0);
    while (!atomic_load(&cl->done))
        event_base_loop(F->c.base, EVLOOP_ONCE);
    pthread_join(t, NULL);
    return cl->resp;
}

static const char *http(struct call *cl, const char *method, const char *path, const char *body, const char *token)
{
    static char req[8192];
    snprintf(req, sizeof(req),
             "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s%s%s%zu\r\n\r\n%s", method, path,
             token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
             body ? "Content-Type: application/json\r\n" : "", "Content-Length: ", body ? strlen(body) : 0,
             body ? body : "");
    return http_raw(cl, req);
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static int status_of(const char *resp)
{
    return strncmp(resp, "HTTP/1.1 ", 9) == 0 ? atoi(resp + 9) : -1;
}

/* ---- fixture ---- */
static int setup(void **state)
{
    static struct fx fx;
    char *err = NULL;
    memset(&fx, 0, sizeof(fx));
    F = &fx;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_api_router.XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    fx.cfg = config_load(NULL, &err);
    assert_non_null(fx.cfg);
    free(fx.cfg->data_dir);
    fx.cfg->data_dir = strdup(fx.dir);
    fx.cfg->api_rate_limit = 0;
    fx.hub.cfg = fx.cfg;
    fx.hub.metrics = metrics_new();
    fx.hub.store_path = config_data_path(fx.cfg, "hee.db");
    fx.c.hub = &fx.hub;
    fx.c.cfg = fx.cfg;
    fx.c.base = event_base_new();
    fx.c.store = store_open(fx.hub.store_path, STORE_RW, &err);
    assert_non_null(fx.c.store);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    /* as control.c binds it: no callback until api_http takes it over */
    fx.c.listener = evconnlistener_new_bind(fx.c.base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                            (struct sockaddr *)&sa, sizeof(sa));
    assert_non_null(fx.c.listener);
    getsockname(evconnlistener_get_fd(fx.c.listener), (struct sockaddr *)&sa, &sl);
    fx.port = ntohs(sa.sin_port);
    fx.c.api = api_new(&fx.c, &err);
    assert_non_null(fx.c.api);
    assert_int_equal(api_route(fx.c.api, API_GET, "/t/defer/{x}", 0, 0, on_defer, NULL), 0);
    assert_int_equal(api_route(fx.c.api, API_GET, "/t/defer-sync", 0, 0, on_defer_sync, NULL), 0);
    assert_int_equal(api_route(fx.c.api, API_GET, "/t/noreply", 0, API_PUBLIC, on_noreply, NULL), 0);
    assert_int_equal(api_route(fx.c.api, API_GET | API_DELETE, "/t/echo/{a}/x/{b}", 0, 0, on_echo, NULL), 0);
    assert_int_equal(api_route(fx.c.api, API_POST, "/t/echo/{a}/x/{b}", API_SCOPE_APPS_ADMIN, API_BODY_JSON,
                               on_echo, NULL),
                     0);
    assert_int_equal(api_route(fx.c.api, API_PATCH, "/t/opt", 0, API_BODY_OPTIONAL, on_echo, NULL), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/admin.token", fx.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(fx.token, sizeof(fx.token), f));
    fclose(f);
    fx.token[strcspn(fx.token, "\n")] = '\0';
    fx.tick = event_new(fx.c.base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = { 0, 5000 };
    event_add(fx.tick, &tv);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    event_free(fx->tick);
    api_free(fx->c.api);
    evconnlistener_free(fx->c.listener);
    store_close(fx->c.store);
    event_base_free(fx->c.base);
    metrics_free(fx->hub.metrics);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx->hub.store_path);
    config_free(fx->cfg);
    return 0;
}

/* ---- tests ---- */
static void test_routing(void **state)
{
    struct call cl;
    const char *r = http(&cl, "GET", "/t/echo/a%2Eb/x/%C3%BC?q=h%20i", NULL, F->token);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r),
                        "{\"nparams\":2,\"p\":[\"a.b\",\"\xc3\xbc\"],\"project\":null,\"admin\":true,\"q\":\"h i\"}");
    r = http(&cl, "GET", "/t/echo/a/y/b", NULL, F->token);
    assert_int_equal(status_of(r), 404);
    assert_non_null(strstr(body_of(r), "\"code\":\"not_found\""));
    r = http(&cl, "PUT", "/t/echo/a/x/b", "{}", F->token);
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: GET, HEAD, POST, DELETE\r\n"));
    r = http(&cl, "GET", "/t/echo//x/b", NULL, F->token);
    assert_int_equal(status_of(r), 404);
    r = http(&cl, "GET", "/t/echo/a/x/b", NULL, NULL);
    assert_int_equal(status_of(r), 401);
    r = http(&cl, "GET", "/t/echo/%00/x/b", NULL, F->token);
    assert_int_equal(status_of(r), 400);
}

static void test_bodies(void **state)
{
    struct call cl;
    const char *r = http(&cl, "POST", "/t/echo/a/x/b",
                         "{\"s\":\"m\\\"}\",\"m\"  :  { \"k\": [1, \"}\", {\"n\": null}] } ,\"z\":1}", F->token);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(body_of(r), "\"raw\":\"{ \\\"k\\\": [1, \\\"}\\\", {\\\"n\\\": null}] }\""));
    r = http(&cl, "POST", "/t/echo/a/x/b", "{\"\\u006d\":3}", F->token); /* escaped key */
    assert_non_null(strstr(body_of(r), "\"raw\":\"3\""));
    r = http(&cl, "POST", "/t/echo/a/x/b", NULL, F->token);
    assert_int_equal(status_of(r), 400);
    r = http(&cl, "POST", "/t/echo/a/x/b", "[1]", F->token);
    assert_int_equal(status_of(r), 400);
    r = http(&cl, "DELETE", "/t/echo/a/x/b", "{}", F->token);
    assert_int_equal(status_of(r), 400);
    r = http(&cl, "PATCH", "/t/opt", NULL, F->token);
    assert_int_equal(status_of(r), 200);
    r = http(&cl, "PATCH", "/t/opt", "{\"m\":true}", F->token);
    assert_non_null(strstr(body_of(r), "\"raw\":\"true\""));
    r = http_raw(&cl, "POST /t/echo/a/x/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
                      "nope\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(status_of(r), 401);
}

static void test_deferred_replies(void **state)
{
    struct call cl;
    const char *r = http(&cl, "GET", "/t/defer/p1", NULL, F->token);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "{\"deferred\":true,\"param\":\"p1\"}");
    r = http(&cl, "GET", "/t/defer-sync", NULL, F->token);
    assert_int_equal(status_of(r), 409);
    r = http(&cl, "GET", "/t/noreply", NULL, NULL);
    assert_int_equal(status_of(r), 500);
    assert_non_null(strstr(body_of(r), "\"code\":\"internal\""));
    assert_non_null(strstr(body_of(r), "\"ref\":\"ref_"));
    /* the client leaves before the deferred reply: nothing may break */
    memset(&cl, 0, sizeof(cl));
    char req[512];
    snprintf(req, sizeof(req), "GET /t/defer/gone HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             F->token);
    cl.req = req;
    cl.req_len = strlen(req);
    cl.close_early = 1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client, &cl), 0);
    pthread_join(t, NULL);
    for (int i = 0; i < 20; i++) /* ~100 ms: the 20 ms reply timer fires */
        event_base_loop(F->c.base, EVLOOP_ONCE);
    r = http(&cl, "GET", "/t/defer/after", NULL, F->token);
    assert_int_equal(status_of(r), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_deferred_replies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
