/* ctl: the control thread's shared context, visible to the control
 * subsystems (api, verify, issuer, hooks) and to nothing in edge/.
 *
 * Everything here is owned by control.c and lives as long as the thread;
 * subsystems keep a pointer to it and run only on its loop. */
#ifndef HEE_CTL_H
#define HEE_CTL_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>

#include "common/curlev.h"
#include "common/hub.h"
#include "common/store.h"

struct api;
struct verify;
struct issuer;
struct hooks;

struct control {
    hub_t *hub;
    const config_t *cfg;         /* current config (reload swaps it on this thread) */
    struct event_base *base;
    store_t *store;              /* the read-write handle; only this thread uses it */
    curlev_t *curl;
    struct evconnlistener *listener; /* the API's; api_http accepts on it */
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
/* After a committed change to a domain's routing or certificate state:
 * tell every edge worker to drop what it cached for host. */
void ctl_domain_changed(struct control *c, const char *host);
void ctl_project_changed(struct control *c, long long project_id);

#endif
