/* ctl: the shared context of one of the daemon's two control-side threads,
 * visible to the control subsystems (api, verify, issuer, hooks) and to
 * nothing in edge/. The control thread holds api and issuer; the background
 * thread verify and hooks; the pointers of the other thread's subsystems are
 * NULL, and what one needs of the other goes through control/bridge.h.
 *
 * Everything here is owned by control.c and lives as long as the thread;
 * subsystems keep a pointer to it and run only on its loop. */
#ifndef HEE_CTL_H
#define HEE_CTL_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/cpugauge.h"
#include "common/curlev.h"
#include "common/hub.h"
#include "common/store.h"

struct api;
struct verify;
struct issuer;
struct hooks;
struct bridge_call;

struct control {
    hub_t *hub;
    const config_t *cfg;         /* current config (reload swaps it on this thread) */
    struct event_base *base;
    store_t *store;              /* the read-write handle; only this thread uses it */
    curlev_t *curl;
    struct evconnlistener *listener; /* the API's; api_http accepts on it (control thread) */
    queue_t *inbox;              /* the hub's to_control or to_bg: edge and bridge messages */
    struct control *peer;        /* the other thread's context: only its inbox is used */
    struct bridge_call *waiting; /* bridge calls awaiting the peer's answer */
    int background;              /* 1 on the background thread */
    cpugauge_t *gauge;           /* background: is this thread crowded out? (opened, used
                                  * and freed on the thread itself; NULL elsewhere) */
    atomic_int kick_pending;     /* background: a MSG_HOOKS_KICK is queued (set by control) */
    pthread_t thread;
    int started;
    struct event *stop_ev;
    struct event *tick_ev;
    int stopping;

    struct api *api;
    struct verify *verify;
    struct issuer *issuer;
    struct hooks *hooks;
};

/* After a committed transaction that wrote events: wake webhook delivery. */
void ctl_events_committed(struct control *c);
/* A verified domain needs a certificate: the issuer's, here or there. */
void ctl_cert_wanted(struct control *c, const char *host);
/* After a committed change to a domain's routing or certificate state:
 * tell every edge worker to drop what it cached for host. */
void ctl_domain_changed(struct control *c, const char *host);
void ctl_project_changed(struct control *c, long long project_id);

#endif
