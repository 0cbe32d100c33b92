#include "control/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "control/api.h"
#include "control/ctl.h"
#include "control/subsys.h"

/* ---- health and metrics: served before any subsystem is involved ---- */

static void reply_text(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evbuffer_add(out, body, len);
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", NULL);
}

static void on_healthz(struct evhttp_request *req, void *arg)
{
    reply_text(req, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
}

static void on_readyz(struct evhttp_request *req, void *arg)
{
    struct control *c = arg;
    if (c->stopping)
        reply_text(req, 503, "application/json", "{\"status\":\"draining\"}\n", 22);
    else
        reply_text(req, 200, "application/json", "{\"status\":\"ready\"}\n", 19);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct control *c = arg;
    size_t len = 0;
    char *text = metrics_render(c->hub->metrics, &len);
    if (!text) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    reply_text(req, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

/* ---- messages from the edge ---- */

static void on_msg(void *p, void *arg)
{
    struct control *c = arg;
    msg_t *m = p;
    log_debug("control.msg", "type=%s host=%s", msg_type_name(m->type), m->host);
    switch (m->type) {
    case MSG_CERT_WANTED:
        if (c->issuer)
            issuer_want(c->issuer, m->host);
        break;
    case MSG_PROBE_WANTED:
        if (c->verify)
            verify_hint(c->verify, m->host);
        break;
    case MSG_CONFIG:
        c->cfg = m->ptr;
        subsys_reload(c);
        log_info("control.reloaded", "%s", "thread=control");
        break;
    default:
        break;
    }
    msg_free(m);
}

void ctl_events_committed(struct control *c)
{
    if (c->hooks)
        hooks_kick(c->hooks);
}

void ctl_domain_changed(struct control *c, const char *host)
{
    msg_t m = { .type = MSG_DOMAIN_CHANGED, .worker = -1 };
    strncpy(m.host, host, sizeof(m.host) - 1);
    hub_broadcast(c->hub, &m);
}

void ctl_project_changed(struct control *c, long long project_id)
{
    msg_t m = { .type = MSG_PROJECT_CHANGED, .worker = -1, .id = project_id };
    hub_broadcast(c->hub, &m);
}

/* ---- lifecycle ---- */

/* The control base, tuned for the API's keep-alive traffic:
 * - a changelist: evhttp enables writing when a reply is queued and disables
 *   it once the reply is out, reading the reverse, in the same callback; the
 *   changelist makes each such pair one epoll_ctl instead of two;
 * - no lock: only this thread touches the base once it runs. Other threads
 *   reach it through file descriptors only — the hub queue's eventfd, and
 *   control_stop()'s (stop_ev's) — never through event_* calls.
 * Time stays cached per loop iteration (the default): nothing on this loop
 * needs finer timestamps than that. */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    if (!ec)
        return NULL;
    struct event_base *base = NULL;
    if (event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0 &&
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK) == 0)
        base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

static int bind_api(struct control *c, char **err)
{
    char host[256];
    const char *spec = c->cfg->api_listen;
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
        *err = strdup("[api] listen: expected host:port");
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (host[0] == '[') { /* [::1]:9080 */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    int port = atoi(colon + 1);
    c->http_sock = evhttp_bind_socket_with_handle(c->http, host, (ev_uint16_t)port);
    if (!c->http_sock) {
        char buf[512];
        snprintf(buf, sizeof(buf), "[api] listen: cannot bind %s: %s", spec, strerror(errno));
        *err = strdup(buf);
        return -1;
    }
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg);

control_t *control_new(hub_t *hub, char **err)
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = strdup("out of memory");
        return NULL;
    }
    c->hub = hub;
    c->cfg = hub->cfg;
    if (!(c->base = new_base()) || !(c->http = evhttp_new(c->base))) {
        *err = strdup("cannot create the control event loop");
        goto fail;
    }
    if (!(c->store = store_open(hub->store_path, STORE_RW, err)))
        goto fail;
    if (!(c->curl = curlev_new(c->base))) {
        *err = strdup("cannot initialise libcurl");
        goto fail;
    }
    evhttp_set_max_body_size(c->http, (ev_ssize_t)c->cfg->api_max_body);
    evhttp_set_timeout(c->http, 30);
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_cb(c->http, "/healthz", on_healthz, c);
    evhttp_set_cb(c->http, "/readyz", on_readyz, c);
    evhttp_set_cb(c->http, "/metrics", on_metrics, c);
    if (bind_api(c, err) != 0)
        goto fail;
    int stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd < 0 || !(c->stop_ev = event_new(c->base, stop_fd, EV_READ, on_stop, c)) ||
        event_add(c->stop_ev, NULL) != 0) {
        if (stop_fd >= 0 && !c->stop_ev)
            close(stop_fd);
        *err = strdup("cannot create the control stop event");
        goto fail;
    }
    if (!(hub->to_control = queue_new(c->base, on_msg, msg_free, c))) {
        *err = strdup("cannot create the control queue");
        goto fail;
    }
    if (subsys_start(c, err) != 0)
        goto fail;
    log_info("api.listening", "addr=%s", c->cfg->api_listen);
    return c;
fail:
    control_free(c);
    return NULL;
}

static void *run(void *arg)
{
    struct control *c = arg;
    event_base_dispatch(c->base);
    return NULL;
}

int control_start(control_t *c)
{
    if (pthread_create(&c->thread, NULL, run, c) != 0)
        return -1;
    c->started = 1;
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct control *c = arg;
    c->stopping = 1;
    /* First: registrations waiting for their batch commit are answered, and
     * the resolve read-lock pin, which would stall the checkpoint, let go. */
    api_quiesce(c->api);
    subsys_stop(c);
    if (c->http_sock) {
        evhttp_del_accept_socket(c->http, c->http_sock);
        c->http_sock = NULL;
    }
    store_checkpoint(c->store);
    event_base_loopexit(c->base, NULL);
}

void control_stop(control_t *c)
{
    uint64_t one = 1;
    /* An eventfd write is the one thread-safe way into the unlocked base. */
    if (c->stop_ev && write(event_get_fd(c->stop_ev), &one, sizeof(one)) < 0)
        log_error("control.stop", "errno=%d", errno);
}

void control_join(control_t *c)
{
    if (c->started)
        pthread_join(c->thread, NULL);
    c->started = 0;
}

void control_reload(control_t *c, const config_t *cfg)
{
    msg_t *m = hub_msg(MSG_CONFIG, NULL);
    if (!m)
        return;
    m->ptr = (void *)cfg;
    hub_to_control(c->hub, m);
}

void control_free(control_t *c)
{
    if (!c)
        return;
    subsys_free(c);
    if (c->hub && c->hub->to_control) {
        queue_free(c->hub->to_control);
        c->hub->to_control = NULL;
    }
    if (c->stop_ev) {
        close(event_get_fd(c->stop_ev));
        event_free(c->stop_ev);
    }
    if (c->tick_ev)
        event_free(c->tick_ev);
    if (c->http)
        evhttp_free(c->http);
    curlev_free(c->curl);
    store_close(c->store);
    if (c->base)
        event_base_free(c->base);
    free(c);
}
