/* hee: the daemon and its admin CLI.
 *
 *   hee serve --config FILE [--check]
 *   hee project|token|domain|ca …   (see control/cli.h)
 *
 * main() owns every long-lived object: the configurations (kept until exit,
 * since threads may still read an old one after a reload), the hub, the edge
 * and the control thread. Signals are blocked in every thread and taken here
 * with sigwait(), so no handler runs asynchronously. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "common/hub.h"
#include "common/log.h"
#include "common/util.h"
#include "control/cli.h"
#include "control/control.h"
#include "edge/edge.h"

#define MAX_CONFIGS 64

struct daemon {
    const char *config_path;
    config_t *configs[MAX_CONFIGS]; /* [0] is the start-up config; reloads append */
    int n_configs;
    hub_t hub;
    edge_t *edge;
    control_t *control;
    int log_fd, access_fd;
};

static int usage(FILE *f)
{
    fprintf(f, "usage: hee serve --config FILE [--check]\n"
               "       hee version\n");
    cli_usage(f);
    return f == stderr ? 2 : 0;
}

static int open_access_log(const config_t *c)
{
    if (strcmp(c->access_log, "off") == 0)
        return -1;
    if (strcmp(c->access_log, "stderr") == 0)
        return 2;
    return open(c->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

static void apply_logging(const config_t *c, int access_fd)
{
    enum log_level lvl = LOG_INFO;
    log_level_parse(c->log_level, &lvl);
    log_setup(lvl, 2, access_fd);
}

static int prepare_data_dir(const config_t *c)
{
    if (mkdir(c->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hee: cannot create data_dir %s: %s\n", c->data_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int hub_init(struct daemon *d)
{
    hub_t *h = &d->hub;
    const config_t *c = d->configs[0];
    int cpus = util_usable_cpus(NULL, 0);
    h->cfg = c;
    h->n_workers = c->workers > 0 ? c->workers : (cpus > 0 ? cpus : 1);
    h->store_path = config_data_path(c, c->store_path);
    h->metrics = metrics_new();
    h->challenges = challenge_table_new();
    h->tickets = tickets_new();
    h->to_worker = calloc((size_t)h->n_workers, sizeof(*h->to_worker));
    return h->store_path && h->metrics && h->challenges && h->tickets && h->to_worker ? 0 : -1;
}

static void hub_fini(hub_t *h)
{
    free(h->store_path);
    metrics_free(h->metrics);
    challenge_table_free(h->challenges);
    tickets_free(h->tickets);
    free(h->to_worker);
}

/* SIGHUP: read the file again; apply it only if it loads and changes
 * nothing that needs a restart (listeners, store, cache sizes). */
static void reload(struct daemon *d)
{
    char *err = NULL;
    config_t *nc = config_load(d->config_path, &err);
    if (!nc) {
        log_error("config.reload_failed", "reason=\"%s\"", err);
        free(err);
        return;
    }
    char *fixed = config_unreloadable_changes(d->configs[0], nc);
    if (fixed) {
        log_error("config.reload_refused", "reason=\"needs a restart\" settings=\"%s\"", fixed);
        free(fixed);
        config_free(nc);
        return;
    }
    if (d->n_configs == MAX_CONFIGS) {
        log_error("config.reload_refused", "reason=\"too many reloads; restart hee\" max=%d", MAX_CONFIGS);
        config_free(nc);
        return;
    }
    d->configs[d->n_configs++] = nc;
    apply_logging(nc, d->access_fd);
    msg_t m = { .type = MSG_CONFIG, .worker = -1, .ptr = nc };
    hub_broadcast(&d->hub, &m);
    control_reload(d->control, nc);
    log_info("config.reloaded", "file=%s", d->config_path);
}

static int wait_for_signals(struct daemon *d, sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            return -1;
        if (sig == SIGHUP) {
            reload(d);
            continue;
        }
        log_info("hee.stopping", "signal=%s grace_ms=%d", sig == SIGINT ? "INT" : "TERM",
                 d->configs[d->n_configs - 1]->grace_period_ms);
        return 0;
    }
}

static int serve(struct daemon *d)
{
    char *err = NULL;
    int rc = 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Threads inherit this mask: only sigwait() below sees these signals. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (prepare_data_dir(d->configs[0]) != 0 || hub_init(d) != 0)
        goto out;
    if (!(d->control = control_new(&d->hub, &err)) || !(d->edge = edge_new(&d->hub, &err))) {
        log_error("hee.start_failed", "reason=\"%s\"", err ? err : "unknown");
        fprintf(stderr, "hee: %s\n", err ? err : "start-up failed");
        goto out;
    }
    if (edge_start(d->edge) != 0 || control_start(d->control) != 0) {
        log_error("hee.start_failed", "%s", "reason=\"cannot start threads\"");
        goto out;
    }
    log_info("hee.started", "version=%s workers=%d store=%s", HEE_VERSION, d->hub.n_workers,
             d->hub.store_path);
    wait_for_signals(d, &set);
    edge_drain(d->edge);
    edge_join(d->edge, d->configs[d->n_configs - 1]->grace_period_ms);
    control_stop(d->control);
    control_join(d->control);
    log_info("hee.stopped", "%s", "clean=yes");
    rc = 0;
out:
    free(err);
    edge_free(d->edge);
    control_free(d->control);
    hub_fini(&d->hub);
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    struct daemon d = { .log_fd = 2, .access_fd = -1 };
    int check = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            d.config_path = argv[++i];
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else
            return usage(stderr);
    }
    char *err = NULL;
    config_t *c = config_load(d.config_path, &err);
    if (!c) {
        fprintf(stderr, "hee: %s\n", err);
        free(err);
        return 1;
    }
    if (check) {
        printf("hee: configuration %s is valid\n", d.config_path ? d.config_path : "(defaults)");
        config_free(c);
        return 0;
    }
    d.configs[d.n_configs++] = c;
    d.access_fd = open_access_log(c);
    apply_logging(c, d.access_fd);
    int rc = serve(&d);
    for (int i = 0; i < d.n_configs; i++)
        config_free(d.configs[i]);
    if (d.access_fd > 2)
        close(d.access_fd);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (evthread_use_pthreads() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "hee: cannot initialise libevent threads or libcurl\n");
        return 1;
    }
    int rc;
    if (strcmp(argv[1], "serve") == 0)
        rc = cmd_serve(argc, argv);
    else if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)
        rc = (printf("hee %s\n", HEE_VERSION), 0);
    else if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)
        rc = usage(stdout);
    else
        rc = cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
