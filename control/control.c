#include "control/control.h"

#include <errno.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "control/api.h"
#include "control/bridge.h"
#include "control/ctl.h"
#include "control/subsys.h"

/* ---- messages from the edge, main and the other thread ---- */

static void on_msg(void *p, void *arg)
{
    struct control *c = arg;
    msg_t *m = p;
    log_debug("control.msg", "type=%s host=%s", msg_type_name(m->type), m->host);
    if (bridge_on_msg(c, m))
        return;
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
        log_info("control.reloaded", "thread=%s", c->background ? "background" : "control");
        break;
    default:
        break;
    }
    msg_free(m);
}

void ctl_events_committed(struct control *c)
{
    bridge_hooks_kick(c);
}

void ctl_cert_wanted(struct control *c, const char *host)
{
    if (c->issuer) {
        issuer_want(c->issuer, host);
        return;
    }
    hub_send(c->hub->to_control, MSG_CERT_WANTED, host, NULL);
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
 * - a changelist: an event enabled and disabled again within one callback
 *   (curl's and the DNS sockets' interest flips) costs one epoll_ctl, not two;
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
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char addr[300];
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    memset(&ss, 0, sizeof(ss));
    if (port <= 0 || port > 65535 || evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        *err = strdup("[api] listen: expected a numeric host:port");
        return -1;
    }
    /* No callback yet: connections wait in the backlog until api_http sets
     * its own (evconnlistener_set_cb starts accepting then). */
    c->listener = evconnlistener_new_bind(c->base, NULL, NULL,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
                                          (struct sockaddr *)&ss, sslen);
    if (!c->listener) {
        char buf[512];
        snprintf(buf, sizeof(buf), "[api] listen: cannot bind %s: %s", spec, strerror(errno));
        *err = strdup(buf);
        return -1;
    }
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg);

static void half_free(struct control *c)
{
    if (!c)
        return;
    subsys_free(c);
    if (c->inbox) {
        queue_free(c->inbox);
        if (c->hub->to_bg == c->inbox)
            c->hub->to_bg = NULL;
        if (c->hub->to_control == c->inbox)
            c->hub->to_control = NULL;
    }
    if (c->stop_ev) {
        close(event_get_fd(c->stop_ev));
        event_free(c->stop_ev);
    }
    if (c->tick_ev)
        event_free(c->tick_ev);
    if (c->listener)
        evconnlistener_free(c->listener);
    curlev_free(c->curl);
    store_close(c->store);
    if (c->base)
        event_base_free(c->base);
    free(c);
}

/* One thread's context: base, read-write store handle, curl multi, stop
 * event and inbox; the control thread also binds the API listener. The
 * subsystems come later (subsys_start), once both halves exist. */
static struct control *half_new(hub_t *hub, int background, char **err)
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = strdup("out of memory");
        return NULL;
    }
    c->hub = hub;
    c->cfg = hub->cfg;
    c->background = background;
    if (!(c->base = new_base())) {
        *err = strdup("cannot create the control event loop");
        goto fail;
    }
    if (!(c->store = store_open(hub->store_path, STORE_RW, err)))
        goto fail;
    /* Resolve's read-lock pin (control thread) then sees the background
     * thread's commits at once, as it sees the control thread's own. */
    store_count_commits(c->store, &hub->store_commits);
    /* The background loop never sleeps on a lock: its batches wait in
     * memory and retry (hooks.c, verify.c; ARCHITECTURE.md "Store"). */
    if (background)
        store_set_nowait(c->store, 1);
    if (!(c->curl = curlev_new(c->base))) {
        *err = strdup("cannot initialise libcurl");
        goto fail;
    }
    if (!background && bind_api(c, err) != 0)
        goto fail;
    int stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd < 0 || !(c->stop_ev = event_new(c->base, stop_fd, EV_READ, on_stop, c)) ||
        event_add(c->stop_ev, NULL) != 0) {
        if (stop_fd >= 0 && !c->stop_ev)
            close(stop_fd);
        *err = strdup("cannot create the control stop event");
        goto fail;
    }
    if (!(c->inbox = queue_new(c->base, on_msg, bridge_msg_free, c))) {
        *err = strdup("cannot create the control queue");
        goto fail;
    }
    if (background)
        hub->to_bg = c->inbox;
    else
        hub->to_control = c->inbox;
    return c;
fail:
    half_free(c);
    return NULL;
}

control_t *control_new(hub_t *hub, char **err)
{
    struct control *c = half_new(hub, 0, err);
    if (!c)
        return NULL;
    if (!(c->peer = half_new(hub, 1, err)))
        goto fail;
    c->peer->peer = c;
    if (subsys_start(c, err) != 0 || subsys_start(c->peer, err) != 0)
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
    util_name_thread(c->background ? "hee-background" : "hee-control", -1);
    /* Linux nice is per thread: only the background thread yields — to the
     * edge workers and to the API and issuance on the control thread. */
    int nice = c->background ? c->cfg->background_nice : 0;
    if (nice > 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), nice) != 0)
        log_warn("control.nice_failed", "nice=%d errno=%d", nice, errno);
    /* The gauge reads the statistics of the thread that opens it. Without
     * it (a kernel without schedstat) sweeps simply run at full speed. */
    if (c->background && !(c->gauge = cpugauge_open()))
        log_warn("control.no_cpugauge", "errno=%d", errno);
    event_base_dispatch(c->base);
    cpugauge_free(c->gauge);
    c->gauge = NULL;
    return NULL;
}

int control_start(control_t *c)
{
    if (pthread_create(&c->thread, NULL, run, c) != 0)
        return -1;
    c->started = 1;
    if (pthread_create(&c->peer->thread, NULL, run, c->peer) != 0) {
        control_stop(c);
        control_join(c); /* the caller only frees */
        return -1;
    }
    c->peer->started = 1;
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct control *c = arg;
    c->stopping = 1;
    /* First: API requests waiting on the background thread are answered,
     * registrations waiting for their batch commit too, and the resolve
     * read-lock pin, which would stall the checkpoint, let go. */
    bridge_cancel_all(c);
    if (c->api)
        api_quiesce(c->api);
    subsys_stop(c);
    if (c->listener) { /* no new API connections while draining */
        evconnlistener_free(c->listener);
        c->listener = NULL;
    }
    store_checkpoint(c->store);
    event_base_loopexit(c->base, NULL);
}

static void stop_one(struct control *c)
{
    uint64_t one = 1;
    /* An eventfd write is the one thread-safe way into the unlocked base. */
    if (c && c->stop_ev && write(event_get_fd(c->stop_ev), &one, sizeof(one)) < 0)
        log_error("control.stop", "errno=%d", errno);
}

void control_stop(control_t *c)
{
    stop_one(c);
    stop_one(c->peer);
}

static void join_one(struct control *c)
{
    if (c && c->started)
        pthread_join(c->thread, NULL);
    if (c)
        c->started = 0;
}

void control_join(control_t *c)
{
    join_one(c);
    join_one(c->peer);
}

void control_reload(control_t *c, const config_t *cfg)
{
    hub_send(c->inbox, MSG_CONFIG, NULL, (void *)cfg);
    if (c->peer)
        hub_send(c->peer->inbox, MSG_CONFIG, NULL, (void *)cfg);
}

/* After both threads have joined (or never started): the background half
 * first, so its inbox's records go before the control half's. */
void control_free(control_t *c)
{
    if (!c)
        return;
    half_free(c->peer);
    half_free(c);
}
