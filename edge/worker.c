#include "edge/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/cidr.h"
#include "edge/clock.h"
#include "edge/conn.h"
#include "edge/proxy.h"
#include "edge/route.h"
#include "edge/tls.h"
#include "edge/upstream.h"

#define TICK_MS 100
#define POOL_SPARE_BLOCKS 256

/* ---- configuration ---- */

static void lower_name(const char *in, char *lower, char *out, size_t cap, size_t *len)
{
    size_t n = strlen(in);
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    lower[n] = '\0';
    memcpy(out, in, n);
    out[n] = '\0';
    *len = n;
}

static int parse_trusted(worker_conf_t *wc, const char *list)
{
    edge_cidr_t *arr = NULL;
    int n = 0, bad = 0;
    if (cidr_list_parse(list, &arr, &n, &bad) != 0)
        return -1;
    if (bad)
        log_warn("edge.trusted_proxy_bad", "skipped=%d value=\"%s\"", bad, list);
    free(wc->trusted);
    wc->trusted = arr;
    wc->n_trusted = n;
    return 0;
}

static void https_port(worker_conf_t *wc, const config_t *cfg)
{
    wc->https_port[0] = '\0';
    if (cfg->n_tls_listen < 1)
        return;
    const char *colon = strrchr(cfg->tls_listen[0], ':');
    if (colon && strcmp(colon + 1, "443") != 0)
        snprintf(wc->https_port, sizeof(wc->https_port), ":%.6s", colon + 1);
}

int worker_apply_config(edge_worker_t *w, const config_t *cfg)
{
    worker_conf_t *wc = &w->wc;
    w->cfg = cfg;
    wc->lim.max_request_line = (size_t)cfg->max_request_line;
    wc->lim.max_header_bytes = (size_t)cfg->max_header_bytes;
    wc->lim.max_headers = (unsigned)cfg->max_headers;
    lower_name(cfg->request_id_header, wc->rid_name, wc->rid_out, sizeof(wc->rid_name), &wc->rid_len);
    lower_name(cfg->tenant_header, wc->tenant_name, wc->tenant_out, sizeof(wc->tenant_name), &wc->tenant_len);
    lower_name(cfg->metadata_header, wc->meta_name, wc->meta_out, sizeof(wc->meta_name), &wc->meta_len);
    lower_name(cfg->signature_header, wc->sig_name, wc->sig_out, sizeof(wc->sig_name), &wc->sig_len);
    https_port(wc, cfg);
    atomic_store(&w->sh->negative_ttl_ms, cfg->negative_ttl_ms);
    atomic_store(&w->sh->route_ttl_ms, cfg->route_ttl_ms);
    return parse_trusted(wc, cfg->trusted_proxies);
}

int worker_trusted(const edge_worker_t *w, const struct sockaddr_storage *ss)
{
    return cidr_match(w->wc.trusted, w->wc.n_trusted, ss);
}

/* ---- per-IP limits (shared across workers) ---- */

int worker_ip_acquire(edge_worker_t *w, const char *ip)
{
    edge_shared_t *sh = w->sh;
    int rc = 0, err = 0;
    size_t n = strlen(ip);
    pthread_mutex_lock(&sh->ip_lock);
    intptr_t cur = (intptr_t)strmap_get(sh->ip_counts, ip, n);
    if (cur >= w->cfg->max_conns_per_ip)
        rc = -1;
    else
        strmap_put(sh->ip_counts, ip, n, (void *)(cur + 1), &err);
    pthread_mutex_unlock(&sh->ip_lock);
    return rc == 0 && err == 0 ? 0 : -1;
}

void worker_ip_release(edge_worker_t *w, const char *ip)
{
    edge_shared_t *sh = w->sh;
    int err = 0;
    size_t n = strlen(ip);
    pthread_mutex_lock(&sh->ip_lock);
    intptr_t cur = (intptr_t)strmap_get(sh->ip_counts, ip, n);
    if (cur <= 1)
        strmap_del(sh->ip_counts, ip, n);
    else
        strmap_put(sh->ip_counts, ip, n, (void *)(cur - 1), &err);
    pthread_mutex_unlock(&sh->ip_lock);
}

/* ---- metrics ---- */

static void flush_metrics(edge_worker_t *w)
{
    static const enum metric_counter map[WM_COUNT] = {
        [WM_REQUESTS] = M_HTTP_REQUESTS, [WM_2XX] = M_HTTP_2XX, [WM_3XX] = M_HTTP_3XX,
        [WM_4XX] = M_HTTP_4XX, [WM_5XX] = M_HTTP_5XX, [WM_UP_REUSE] = M_UPSTREAM_REUSE,
        [WM_UP_CONNECT] = M_UPSTREAM_CONNECT,
    };
    for (int i = 0; i < WM_COUNT; i++) {
        if (w->wm[i]) {
            metrics_add(w->hub->metrics, map[i], w->wm[i]);
            w->wm[i] = 0;
        }
    }
}

/* ---- lifecycle ---- */

static void stop_listening(edge_worker_t *w)
{
    for (int i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i].lev) {
            evconnlistener_free(w->listeners[i].lev); /* LEV_OPT_CLOSE_ON_FREE closes the fd */
            w->listeners[i].lev = NULL;
        } else if (w->listeners[i].fd >= 0) {
            close(w->listeners[i].fd);
        }
        w->listeners[i].fd = -1;
    }
}

static void close_all(edge_worker_t *w, int idle_only)
{
    conn_t *c = TAILQ_FIRST(&w->conns);
    while (c) {
        conn_t *nx = TAILQ_NEXT(c, link);
        if (!idle_only)
            conn_close(c);
        else if (c->state == CS_HEAD && c->in.len == 0 && !c->partial && c->out.len == 0)
            conn_close_idle(c);
        else
            c->flags |= CF_CLOSE;
        c = nx;
    }
}

/* At the cap the worker stops accepting, as nginx and HAProxy do: new
 * connections wait in the kernel's backlog and go on when one closes,
 * rather than being closed at once. But the backlog is this worker's
 * (SO_REUSEPORT): the kernel keeps sending it its share even when other
 * workers have room. So a pause lasts at most header_timeout (the time a
 * client may take for its request head anyway); after that the worker
 * sheds: it accepts and closes (as before there was a pause) until it is
 * below the cap again, and a client's retry can land elsewhere. It resumes
 * a little below the cap, so that steady churn at the limit does not
 * toggle the listeners on every connection. */
static int listeners_enable(edge_worker_t *w, int on)
{
    int rc = 0;
    for (int i = 0; i < w->n_listeners; i++) {
        struct evconnlistener *lev = w->listeners[i].lev;
        if (lev && (on ? evconnlistener_enable(lev) : evconnlistener_disable(lev)) != 0)
            rc = -1;
    }
    return rc;
}

/* Pauses, resumes or sheds to match the count and the (reloadable) cap;
 * also run by the tick, which ends pauses and retries a failed enable. */
static void accept_cap(edge_worker_t *w)
{
    int cap = w->cfg->max_conns_per_worker, low = cap - 1 - cap / 100;
    if (w->draining)
        return;
    if (w->n_conns <= low)
        w->shedding = 0;
    if (!w->accept_full) {
        if (w->n_conns < cap || w->shedding || listeners_enable(w, 0) != 0)
            return;
        int64_t now = clock_coarse_ms();
        w->accept_full = 1;
        w->full_since_ms = now;
        metrics_inc(w->hub->metrics, M_CONN_ACCEPT_PAUSED);
        if (now - w->full_logged_ms >= 10000) { /* at most one line per 10 s */
            w->full_logged_ms = now;
            log_warn("edge.connections_full", "worker=%d connections=%d", w->index, w->n_conns);
        }
        return;
    }
    int shed = clock_coarse_ms() - w->full_since_ms >= w->cfg->header_timeout_ms;
    if ((w->n_conns <= low || shed) && listeners_enable(w, 1) == 0) {
        w->accept_full = 0;
        w->shedding = w->n_conns > low;
    }
}

void worker_conn_added(edge_worker_t *w)
{
    accept_cap(w);
}

void worker_conn_gone(edge_worker_t *w)
{
    if (w->draining && w->n_conns == 0)
        event_base_loopexit(w->base, NULL);
    accept_cap(w);
}

static void drain(edge_worker_t *w, int force)
{
    if (!w->draining) {
        w->draining = 1;
        stop_listening(w);
        upstream_sweep(w, 0, 0);
        log_info("edge.draining", "worker=%d connections=%d", w->index, w->n_conns);
    }
    if (force) {
        w->forced = 1;
        if (w->n_conns)
            log_warn("edge.force_close", "worker=%d connections=%d", w->index, w->n_conns);
        close_all(w, 0);
    } else {
        close_all(w, 1);
    }
    if (w->n_conns == 0)
        event_base_loopexit(w->base, NULL);
}

static void on_inbox(void *p, void *arg)
{
    edge_worker_t *w = arg;
    msg_t *m = p;
    switch (m->type) {
    case MSG_CERT_READY:
        tls_cert_ready(w, m->host);
        break;
    case MSG_CERT_FAILED:
        tls_cert_failed(w, m->host, m->code);
        break;
    case MSG_DOMAIN_CHANGED:
        negcache_remove(w->sh->neg, m->host);
        route_cache_kill(w, m->host);
        break;
    case MSG_PROJECT_CHANGED:
        /* Rare: every route loaded before now is stale, in every worker. */
        atomic_fetch_add(&w->sh->epoch, 1);
        /* After the bump: a deleted project's part (its key) goes now,
         * not when the loader's timer comes round. */
        loader_prune(w->sh->loader);
        break;
    case MSG_CONFIG:
        if (m->ptr && worker_apply_config(w, m->ptr) != 0)
            log_error("edge.config_failed", "worker=%d", w->index);
        accept_cap(w); /* max_conns_per_worker may have moved */
        break;
    case MSG_DRAIN:
        drain(w, m->code != 0);
        break;
    default:
        break;
    }
    msg_free(m);
}

static void on_result(void *p, void *arg)
{
    route_on_result(arg, p);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    edge_worker_t *w = arg;
    flush_metrics(w);
    if (w->accept_full)
        accept_cap(w);
    int64_t now = clock_coarse_ms();
    if (now - w->mono_ms >= 1000) {
        w->mono_ms = now;
        upstream_sweep(w, now, w->cfg->upstream_idle_timeout_ms);
    }
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    worker_listener_t *l = arg;
    conn_t *c = conn_new(l->w, fd, sa, salen, l->kind);
    if (!c)
        return;
    if (l->kind == LISTEN_TLS)
        tls_on_accept(c);
    else
        proxy_start(c);
}

static void reenable(evutil_socket_t fd, short what, void *arg)
{
    worker_listener_t *l = arg;
    /* Not if draining freed it meanwhile, nor past the connection cap. */
    if (l->lev && !l->w->accept_full)
        evconnlistener_enable(l->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    worker_listener_t *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("edge.accept_failed", "worker=%d error=\"%s\"", l->w->index, strerror(e));
    if (e == EMFILE || e == ENFILE) {
        /* Out of descriptors: pause accepting briefly instead of spinning. */
        evconnlistener_disable(lev);
        struct timeval tv = { 0, 100000 };
        event_base_once(l->w->base, -1, EV_TIMEOUT, reenable, l, &tv);
    }
}

int worker_add_listener(edge_worker_t *w, int fd, int kind, char **err)
{
    if (w->n_listeners >= (int)UTIL_ARRAY_LEN(w->listeners)) {
        close(fd);
        *err = strdup("too many listeners");
        return -1;
    }
    worker_listener_t *l = &w->listeners[w->n_listeners++];
    l->w = w;
    l->fd = fd;
    l->kind = kind;
    l->lev = evconnlistener_new(w->base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (!l->lev) {
        *err = strdup("cannot watch a listening socket");
        return -1;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    return 0;
}

edge_worker_t *worker_new(edge_shared_t *sh, int index, char **err)
{
    edge_worker_t *w = calloc(1, sizeof(*w));
    if (!w) {
        *err = strdup("out of memory");
        return NULL;
    }
    w->sh = sh;
    w->hub = sh->hub;
    w->index = index;
    TAILQ_INIT(&w->conns);
    unsigned char seed[8];
    if (util_random(seed, sizeof(seed)) != 0)
        goto fail;
    util_hex(w->rid_prefix, seed, sizeof(seed));
    struct event_config *ec = event_config_new();
    if (ec) {
        /* Each worker's base is used by its own thread only. */
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (!w->base || iobuf_pool_init(&w->pool, POOL_SPARE_BLOCKS) != 0 || !(w->routes = strmap_new()) ||
        !(w->lookups = strmap_new()) || !(w->parked = strmap_new()) || !(w->upstreams = strmap_new()))
        goto fail;
    if (worker_apply_config(w, sh->hub->cfg) != 0)
        goto fail;
    if (tlsrec_algs_init(&w->algs) != 0 || tls_ctx_init(w, err) != 0)
        goto fail;
    if (!(w->inbox = queue_new(w->base, on_inbox, msg_free, w)) ||
        !(w->results = queue_new(w->base, on_result, loader_result_free, w)))
        goto fail;
    event_assign(&w->tick, w->base, -1, EV_PERSIST, on_tick, w);
    return w;
fail:
    if (!*err)
        *err = strdup("cannot set up an edge worker");
    worker_free(w);
    return NULL;
}

/* Runs on the worker thread after its loop ends (or from worker_free for
 * a worker that never started); safe to run twice. */
static void worker_cleanup(edge_worker_t *w)
{
    stop_listening(w);
    close_all(w, 0);
    upstream_table_free(w);
    if (w->parked)
        tls_parked_free(w);
    if (w->lookups)
        route_waits_free(w);
    if (w->routes)
        route_cache_free(w);
    proxy_free_lists(w);
    flush_metrics(w);
}

static void *thread_main(void *arg)
{
    edge_worker_t *w = arg;
    struct timeval tv = { 0, TICK_MS * 1000 };
    util_name_thread("hee-edge", w->index);
    event_add(&w->tick, &tv);
    w->mono_ms = clock_coarse_ms();
    event_base_dispatch(w->base);
    event_del(&w->tick);
    worker_cleanup(w);
    return NULL;
}

int worker_start(edge_worker_t *w, int cpu)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    int rc = -1;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (pthread_attr_setaffinity_np(&attr, sizeof(set), &set) != 0)
            goto done;
    }
    w->hub->to_worker[w->index] = w->inbox;
    if (pthread_create(&w->thread, &attr, thread_main, w) != 0) {
        w->hub->to_worker[w->index] = NULL;
        goto done;
    }
    w->started = 1;
    rc = 0;
done:
    pthread_attr_destroy(&attr);
    return rc;
}

void worker_join(edge_worker_t *w)
{
    if (w && w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
}

void worker_free(edge_worker_t *w)
{
    if (!w)
        return;
    if (w->hub && w->hub->to_worker && w->hub->to_worker[w->index] == w->inbox)
        w->hub->to_worker[w->index] = NULL;
    worker_cleanup(w);
    queue_free(w->inbox);
    queue_free(w->results);
    tls_ctx_free(w);
    tlsrec_algs_free(&w->algs);
    iobuf_pool_fini(&w->pool);
    free(w->wc.trusted);
    if (w->base)
        event_base_free(w->base);
    free(w);
}
