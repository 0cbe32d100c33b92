#include "edge/edge.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/keyseal.h"
#include "common/log.h"
#include "common/util.h"
#include "edge/loader.h"
#include "edge/upstream.h"
#include "edge/worker.h"

/* DESIGN
 * Threads: hub->n_workers edge workers (worker.c), each an event loop
 * with its own SO_REUSEPORT listening sockets on every [edge] address, so
 * the kernel spreads connections and no lock sits on the accept path; and
 * [edge] loader_threads loader threads (loader.c) doing the blocking store
 * reads for all workers. Workers hear from the control thread through their
 * inbox queue (hub->to_worker[i]); loader answers come on a second queue.
 * Shared between workers, all thread-safe: the certificate cache and the
 * negative cache (certcache.h), the project epoch, the per-IP counters,
 * the TLS client context for https upstreams and the key that opens sealed
 * private keys (both read-only once built here, at start-up, where reading
 * their files may block).
 *
 * Shutdown: edge_drain posts MSG_DRAIN (stop accepting, close idle
 * connections, close the others after their response); edge_join waits
 * for the workers to run out of connections until the grace period ends,
 * then posts a forcing MSG_DRAIN; the loader stops last. Queues and loops
 * are freed in edge_free, after the control thread (a producer) joined. */

#define LISTEN_BACKLOG 4096

struct edge {
    hub_t *hub;
    edge_shared_t sh;
    keyseal_t *seal;             /* [store] key_encryption_key, or NULL */
    edge_worker_t **workers;
    int n;
};

static int split_hostport(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return -1;
    const char *hs = spec, *he = colon;
    if (*hs == '[') {
        hs++;
        if (he[-1] != ']')
            return -1;
        he--;
    }
    if ((size_t)(he - hs) >= hlen || strlen(colon + 1) >= plen || !colon[1])
        return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

/* One listening socket; every worker binds its own on the same address. */
static int bind_one(const char *spec, char **err)
{
    char host[256], port[16], buf[512];
    if (split_hostport(spec, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(buf, sizeof(buf), "[edge] listen address \"%s\": expected host:port", spec);
        *err = strdup(buf);
        return -1;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(buf, sizeof(buf), "[edge] listen address \"%s\": %s", spec, gai_strerror(rc));
        *err = strdup(buf);
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, defer = 10;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        /* Clients speak first on both listeners: wake us with data. */
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
        /* Accepted sockets inherit it: no setsockopt per connection. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(buf, sizeof(buf), "[edge] cannot listen on %s: %s", spec, strerror(errno));
        *err = strdup(buf);
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int bind_all(edge_t *e, edge_worker_t *w, char **err)
{
    const config_t *c = e->hub->cfg;
    for (int k = 0; k < 2; k++) {
        char *const *list = k == 0 ? c->tls_listen : c->http_listen;
        int n = k == 0 ? c->n_tls_listen : c->n_http_listen;
        for (int i = 0; i < n; i++) {
            int fd = bind_one(list[i], err);
            if (fd < 0 || worker_add_listener(w, fd, k == 0 ? LISTEN_TLS : LISTEN_PLAIN, err) != 0)
                return -1;
        }
    }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!nb)
                break;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static int load_default_cert(edge_t *e, char **err)
{
    const config_t *c = e->hub->cfg;
    if (!c->default_cert[0])
        return 0;
    size_t cl = 0, kl = 0;
    char *cert = read_file(c->default_cert, &cl);
    char *key = read_file(c->default_key[0] ? c->default_key : c->default_cert, &kl);
    const char *why = "cannot read the file";
    if (cert && key)
        e->sh.default_cert = certcache_entry_from_pem(e->sh.certs, cert, cl, key, kl, NULL, NULL, &why);
    if (key) {
        OPENSSL_cleanse(key, kl);
        free(key);
    }
    free(cert);
    if (!e->sh.default_cert) {
        char buf[512];
        snprintf(buf, sizeof(buf), "[edge] default_cert %s: %s", c->default_cert, why);
        *err = strdup(buf);
        return -1;
    }
    return 0;
}

/* The edge's own copy of the key-encryption key (the issuer loads its own):
 * the loader opens sealed certificate keys with it. */
static int load_seal(edge_t *e, char **err)
{
    const config_t *c = e->hub->cfg;
    if (!c->key_encryption_key[0])
        return 0;
    char *path = config_data_path(c, c->key_encryption_key);
    if (!path) {
        *err = strdup("out of memory");
        return -1;
    }
    e->seal = keyseal_load(path, err);
    free(path);
    return e->seal ? 0 : -1;
}

edge_t *edge_new(hub_t *hub, char **err)
{
    edge_t *e = calloc(1, sizeof(*e));
    if (!e) {
        *err = strdup("out of memory");
        return NULL;
    }
    const config_t *c = hub->cfg;
    e->hub = hub;
    e->sh.hub = hub;
    pthread_mutex_init(&e->sh.ip_lock, NULL);
    atomic_init(&e->sh.epoch, 0);
    atomic_init(&e->sh.negative_ttl_ms, c->negative_ttl_ms);
    atomic_init(&e->sh.route_ttl_ms, c->route_ttl_ms);
    e->sh.certs = certcache_new2((size_t)c->cert_cache_size, (size_t)c->cert_cache_hot_size);
    e->sh.neg = negcache_new((size_t)c->negative_cache_size);
    e->sh.ip_counts = strmap_new();
    e->sh.health = health_board_new();
    if (!e->sh.certs || !e->sh.neg || !e->sh.ip_counts || !e->sh.health) {
        *err = strdup("out of memory");
        goto fail;
    }
    if (load_default_cert(e, err) != 0 || load_seal(e, err) != 0)
        goto fail;
    if (!(e->sh.up_ssl_ctx = upstream_ssl_ctx_new(c->upstream_ca_bundle, err)))
        goto fail;
    loader_shared_t ls = { e->sh.certs, e->sh.neg, &e->sh.epoch, &e->sh.negative_ttl_ms, &e->sh.route_ttl_ms,
                           e->seal, hub->metrics };
    if (!(e->sh.loader = loader_new(hub->store_path, c->loader_threads, &ls, err)))
        goto fail;
    e->n = hub->n_workers;
    if (!(e->workers = calloc((size_t)e->n, sizeof(*e->workers)))) {
        *err = strdup("out of memory");
        goto fail;
    }
    for (int i = 0; i < e->n; i++) {
        if (!(e->workers[i] = worker_new(&e->sh, i, err)) || bind_all(e, e->workers[i], err) != 0)
            goto fail;
    }
    return e;
fail:
    edge_free(e);
    return NULL;
}

/* [server] pin_workers: worker i gets the i-th usable CPU, or -1 (float)
 * for all when pinning is off or there are more workers than CPUs, since
 * then two pinned workers could share a CPU while another sits idle. Off by
 * default: a pinned worker cannot leave a CPU that something else keeps
 * busy (conf/hee.conf gives the figures both ways). */
static int *plan_cpus(const edge_t *e)
{
    int *cpus = malloc((size_t)e->n * sizeof(*cpus));
    if (!cpus)
        return NULL;
    int usable = e->hub->cfg->pin_workers ? util_usable_cpus(cpus, e->n) : 0;
    if (usable < e->n) {
        for (int i = 0; i < e->n; i++)
            cpus[i] = -1;
        if (e->hub->cfg->pin_workers)
            log_info("edge.workers_unpinned", "workers=%d usable_cpus=%d", e->n, usable);
    }
    return cpus;
}

int edge_start(edge_t *e)
{
    if (loader_start(e->sh.loader) != 0)
        return -1;
    int *cpus = plan_cpus(e);
    if (!cpus)
        return -1;
    for (int i = 0; i < e->n; i++) {
        if (worker_start(e->workers[i], cpus[i]) != 0) {
            free(cpus);
            return -1;
        }
    }
    log_info("edge.started", "workers=%d tls_listeners=%d http_listeners=%d pinned=%s", e->n,
             e->hub->cfg->n_tls_listen, e->hub->cfg->n_http_listen, cpus[0] >= 0 ? "yes" : "no");
    free(cpus);
    return 0;
}

static void post_drain(edge_t *e, int force)
{
    for (int i = 0; i < e->n; i++) {
        edge_worker_t *w = e->workers[i];
        if (!w || !w->started)
            continue;
        msg_t *m = hub_msg(MSG_DRAIN, NULL);
        if (!m)
            continue;
        m->code = force;
        if (queue_push(w->inbox, m) != 0) {
            log_warn("edge.drain_signal_failed", "worker=%d", i);
            msg_free(m);
        }
    }
}

void edge_drain(edge_t *e)
{
    if (e)
        post_drain(e, 0);
}

void edge_join(edge_t *e, int grace_ms)
{
    if (!e)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (int i = 0; i < e->n; i++) {
        edge_worker_t *w = e->workers[i];
        if (!w || !w->started)
            continue;
        if (pthread_timedjoin_np(w->thread, NULL, &until) == 0) {
            w->started = 0;
            continue;
        }
        post_drain(e, 1); /* grace period over: close what is left */
        worker_join(w);
    }
    loader_stop(e->sh.loader);
    log_info("edge.stopped", "workers=%d", e->n);
}

void edge_free(edge_t *e)
{
    if (!e)
        return;
    for (int i = 0; e->workers && i < e->n; i++) {
        if (e->workers[i] && e->workers[i]->started) {
            post_drain(e, 1);
            worker_join(e->workers[i]);
        }
    }
    loader_free(e->sh.loader);
    for (int i = 0; e->workers && i < e->n; i++)
        worker_free(e->workers[i]);
    free(e->workers);
    certcache_entry_unref(e->sh.default_cert);
    SSL_CTX_free(e->sh.up_ssl_ctx);
    keyseal_free(e->seal);
    certcache_free(e->sh.certs);
    negcache_free(e->sh.neg);
    strmap_free(e->sh.ip_counts, NULL);
    health_board_free(e->sh.health); /* after worker_free: targets hold entries */
    pthread_mutex_destroy(&e->sh.ip_lock);
    free(e);
}
