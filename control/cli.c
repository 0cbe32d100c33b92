/* cli: admin commands on the same binary. Each opens the store named by the
 * configuration (read-write, WAL, busy timeout — safe beside a running
 * daemon) and goes through api_ops, so validation, audit rows ("cli" as the
 * actor) and webhook events are exactly those of the API. The running
 * daemon is not signalled: its edge re-reads a hostname on a cache miss and
 * its caches expire, and webhook delivery picks the new outbox rows up on its
 * next scan. */
#include "control/cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/domainobj.h"
#include "common/hostname.h"
#include "common/log.h"
#include "common/store.h"
#include "common/store_domain.h"
#include "common/store_project.h"
#include "common/util.h"
#include "control/api_ops.h"

#define DEFAULT_CONFIG "/etc/hee/hee.conf"
#define MAX_POS 4

struct opts {
    const char *config, *upstream, *fallback, *project, *scopes, *name, *metadata, *max_domains;
    int admin;
    const char *pos[MAX_POS];
    int npos;
};

struct cli {
    config_t *cfg;
    store_t *store;
    api_ops_t ops;
};

void cli_usage(FILE *f)
{
    fprintf(f, "       hee project create SLUG --upstream URL [--fallback URL] [--max-domains N]\n"
               "       hee project list\n"
               "       hee token create --project SLUG --scopes \"SCOPE …\" [--name NAME]\n"
               "       hee token create --admin [--name NAME]\n"
               "       hee domain add HOST --project SLUG [--metadata JSON]\n"
               "       hee domain list [--project SLUG]\n"
               "       hee domain show HOST\n"
               "       hee domain rm HOST\n"
               "       hee ca export\n"
               "       (each also takes --config FILE; default " DEFAULT_CONFIG " if present)\n");
}

/* argv[1] is the noun, argv[2] the verb; the rest are options and operands. */
static int parse(int argc, char **argv, struct opts *o)
{
    static const struct {
        const char *flag;
        size_t off;
    } valued[] = {
        { "--config", offsetof(struct opts, config) },     { "--upstream", offsetof(struct opts, upstream) },
        { "--fallback", offsetof(struct opts, fallback) }, { "--project", offsetof(struct opts, project) },
        { "--scopes", offsetof(struct opts, scopes) },     { "--name", offsetof(struct opts, name) },
        { "--metadata", offsetof(struct opts, metadata) }, { "--max-domains", offsetof(struct opts, max_domains) },
    };
    memset(o, 0, sizeof(*o));
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        int hit = 0;
        for (size_t k = 0; k < UTIL_ARRAY_LEN(valued) && !hit; k++) {
            if (strcmp(a, valued[k].flag) != 0)
                continue;
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                fprintf(stderr, "hee: %s needs a value\n", a);
                return -1;
            }
            *(const char **)((char *)o + valued[k].off) = argv[++i];
            hit = 1;
        }
        if (hit)
            continue;
        if (strcmp(a, "--admin") == 0) {
            o->admin = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "hee: unknown option %s\n", a);
            return -1;
        } else if (o->npos < MAX_POS) {
            o->pos[o->npos++] = a;
        } else {
            fprintf(stderr, "hee: too many arguments\n");
            return -1;
        }
    }
    return 0;
}

static int cli_open(struct cli *c, const struct opts *o)
{
    char *err = NULL;
    const char *path = o->config;
    if (!path && access(DEFAULT_CONFIG, R_OK) == 0)
        path = DEFAULT_CONFIG;
    if (!(c->cfg = config_load(path, &err))) {
        fprintf(stderr, "hee: %s\n", err);
        free(err);
        return -1;
    }
    if (mkdir(c->cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hee: cannot create data_dir %s: %s\n", c->cfg->data_dir, strerror(errno));
        return -1;
    }
    char *db = config_data_path(c->cfg, c->cfg->store_path);
    if (!db || !(c->store = store_open(db, STORE_RW, &err))) {
        fprintf(stderr, "hee: cannot open the store: %s\n", err ? err : "out of memory");
        free(err);
        free(db);
        return -1;
    }
    free(db);
    c->ops = (api_ops_t){ .store = c->store, .cfg = c->cfg, .actor = "cli" };
    return 0;
}

static void cli_close(struct cli *c)
{
    store_close(c->store);
    config_free(c->cfg);
}

static int report(const api_ops_err_t *e)
{
    fprintf(stderr, "hee: %s (%s)\n", e->message, e->code);
    return 1;
}

static int need_project(struct cli *c, const char *slug, store_project_t *p)
{
    if (!slug) {
        fprintf(stderr, "hee: --project SLUG is required\n");
        return -1;
    }
    int rc = store_project_by_slug(c->store, slug, p);
    if (rc == STORE_NOTFOUND)
        fprintf(stderr, "hee: no such project: %s\n", slug);
    else if (rc != STORE_OK)
        fprintf(stderr, "hee: cannot read the store\n");
    return rc == STORE_OK ? 0 : -1;
}

static void print_domain(struct cli *c, const store_domain_t *d)
{
    char *text = domainobj_text(d, c->cfg->edge_target);
    if (text)
        printf("%s\n", text);
    free(text);
}

/* ---- project ---- */

static int project_create(struct cli *c, const struct opts *o)
{
    api_ops_err_t e;
    store_project_t p = { .max_domains = 50 };
    if (o->npos != 1 || !o->upstream) {
        fprintf(stderr, "usage: hee project create SLUG --upstream URL [--fallback URL] [--max-domains N]\n");
        return 2;
    }
    if (o->max_domains) {
        char *end;
        p.max_domains = strtoll(o->max_domains, &end, 10);
        if (*end || end == o->max_domains || p.max_domains < 0) {
            fprintf(stderr, "hee: --max-domains expects a non-negative integer\n");
            return 2;
        }
    }
    p.slug = strdup(o->pos[0]);
    p.upstream = strdup(o->upstream);
    p.upstream_fallback = o->fallback ? strdup(o->fallback) : NULL;
    p.settings = strdup("{}");
    int rc = api_ops_project_create(&c->ops, &p, &e) == 0 ? 0 : report(&e);
    if (rc == 0) {
        char *key = util_b64(p.hmac_key, sizeof(p.hmac_key), 1);
        printf("project %s created (id %lld)\nhmac key: %s\n", p.slug, (long long)p.id, key ? key : "?");
        free(key);
    }
    store_project_clear(&p);
    return rc;
}

static int print_project(const store_project_t *p, void *arg)
{
    printf("%-24s %6lld/%-6lld %s%s%s\n", p->slug, (long long)p->active_domains, (long long)p->max_domains,
           p->upstream, p->upstream_fallback ? " fallback=" : "", p->upstream_fallback ? p->upstream_fallback : "");
    return 0;
}

static int project_list(struct cli *c, const struct opts *o)
{
    printf("%-24s %-13s %s\n", "SLUG", "DOMAINS", "UPSTREAM");
    return store_project_list(c->store, 0, 1000000, print_project, NULL) == STORE_OK ? 0 : 1;
}

/* ---- token ---- */

static int token_create(struct cli *c, const struct opts *o)
{
    api_ops_err_t e;
    store_project_t p = { 0 };
    store_token_t t;
    char *secret = NULL;
    unsigned mask = API_SCOPE_APPS_ADMIN;
    if (o->admin == !!o->project || (!o->admin && !o->scopes) || o->npos) {
        fprintf(stderr, "usage: hee token create --project SLUG --scopes \"SCOPE …\" [--name NAME]\n"
                        "       hee token create --admin [--name NAME]\n");
        return 2;
    }
    if (o->scopes && api_ops_parse_scopes(o->scopes, &mask, &e) != 0)
        return report(&e);
    if (o->project && need_project(c, o->project, &p) != 0)
        return 1;
    int rc = api_ops_token_create(&c->ops, o->project ? &p : NULL, mask, o->name, &t, &secret, &e);
    store_project_clear(&p);
    if (rc != 0)
        return report(&e);
    /* The token alone on stdout, for scripts; it is not shown again. */
    printf("%s\n", secret);
    fprintf(stderr, "hee: token %s created with scopes \"%s\"; store it now, it cannot be shown again\n", t.id,
            t.scopes);
    free(secret);
    store_token_clear(&t);
    return 0;
}

/* ---- domain ---- */

static int domain_add(struct cli *c, const struct opts *o)
{
    api_ops_err_t e;
    store_project_t p;
    store_domain_t d;
    if (o->npos != 1) {
        fprintf(stderr, "usage: hee domain add HOST --project SLUG [--metadata JSON]\n");
        return 2;
    }
    if (need_project(c, o->project, &p) != 0)
        return 1;
    int rc = api_ops_domain_register(&c->ops, &p, o->pos[0], o->metadata, o->metadata ? strlen(o->metadata) : 0,
                                     &d, &e);
    store_project_clear(&p);
    if (rc != 0)
        return report(&e);
    print_domain(c, &d);
    store_domain_clear(&d);
    return 0;
}

static int print_row(const store_domain_t *d, void *arg)
{
    char ts[32];
    printf("%-40s %-16s %-18s %-5s %s\n", d->hostname, d->project_slug, d->state, d->verified ? "yes" : "no",
           util_iso8601(d->created_at, ts, sizeof(ts)));
    *(int64_t *)arg = d->id;
    return 0;
}

static int domain_list(struct cli *c, const struct opts *o)
{
    store_project_t p = { 0 };
    if (o->project && need_project(c, o->project, &p) != 0)
        return 1;
    store_domain_filter_t f = { .project_id = p.id, .verified = -1, .limit = 1000 };
    store_project_clear(&p);
    printf("%-40s %-16s %-18s %-5s %s\n", "HOSTNAME", "PROJECT", "STATE", "VERIF", "CREATED");
    for (;;) {
        int64_t last = f.after_id;
        if (store_domain_list(c->store, &f, print_row, &f.after_id) != STORE_OK)
            return 1;
        if (f.after_id == last)
            return 0;
    }
}

static int domain_lookup(struct cli *c, const struct opts *o, store_domain_t *d, int latest)
{
    char host[HOSTNAME_MAX];
    const char *why;
    if (o->npos != 1) {
        fprintf(stderr, "hee: expected one HOST\n");
        return 2;
    }
    if (hostname_normalize(o->pos[0], host, sizeof(host), &why) != 0) {
        fprintf(stderr, "hee: hostname is invalid: %s\n", why);
        return 1;
    }
    int rc = latest ? store_domain_latest(c->store, host, 0, d) : store_domain_active(c->store, host, d);
    if (rc == STORE_NOTFOUND)
        fprintf(stderr, "hee: no such domain: %s\n", host);
    return rc == STORE_OK ? 0 : 1;
}

static int domain_show(struct cli *c, const struct opts *o)
{
    store_domain_t d;
    int rc = domain_lookup(c, o, &d, 1);
    if (rc == 0) {
        print_domain(c, &d);
        store_domain_clear(&d);
    }
    return rc;
}

static int domain_rm(struct cli *c, const struct opts *o)
{
    store_domain_t d, gone;
    api_ops_err_t e;
    int rc = domain_lookup(c, o, &d, 0);
    if (rc != 0)
        return rc;
    rc = api_ops_domain_remove(&c->ops, &d, &gone, &e) == 0 ? 0 : report(&e);
    if (rc == 0) {
        print_domain(c, &gone);
        store_domain_clear(&gone);
    }
    store_domain_clear(&d);
    return rc;
}

/* ---- ca ---- */

static int ca_export(struct cli *c, const struct opts *o)
{
    char *pem = NULL;
    int rc = store_domain_local_ca_pem(c->store, &pem);
    if (rc == STORE_NOTFOUND) {
        fprintf(stderr, "hee: no local CA yet: it is created when the daemon first starts without an ACME "
                        "directory ([acme] directory empty)\n");
        return 1;
    }
    if (rc != STORE_OK)
        return 1;
    fputs(pem, stdout);
    if (pem[0] && pem[strlen(pem) - 1] != '\n')
        putchar('\n');
    free(pem);
    return 0;
}

static const struct {
    const char *noun, *verb;
    int (*fn)(struct cli *c, const struct opts *o);
} commands[] = {
    { "project", "create", project_create }, { "project", "list", project_list },
    { "token", "create", token_create },     { "domain", "add", domain_add },
    { "domain", "list", domain_list },       { "domain", "show", domain_show },
    { "domain", "rm", domain_rm },           { "ca", "export", ca_export },
};

int cli_main(int argc, char **argv)
{
    struct opts o;
    struct cli c = { 0 };
    int (*fn)(struct cli *, const struct opts *) = NULL;
    for (size_t i = 0; argc > 2 && i < UTIL_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].noun) == 0 && strcmp(argv[2], commands[i].verb) == 0)
            fn = commands[i].fn;
    if (!fn) {
        fprintf(stderr, "hee: unknown command '%s%s%s'\nusage:\n", argc > 1 ? argv[1] : "", argc > 2 ? " " : "",
                argc > 2 ? argv[2] : "");
        cli_usage(stderr);
        return 2;
    }
    if (parse(argc, argv, &o) != 0)
        return 2;
    /* Store errors are logged; on the CLI they belong on stderr. */
    log_setup(LOG_WARN, 2, -1);
    if (cli_open(&c, &o) != 0) {
        cli_close(&c);
        return 1;
    }
    int rc = fn(&c, &o);
    cli_close(&c);
    return rc;
}
