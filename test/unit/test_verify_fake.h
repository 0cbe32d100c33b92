/* test_verify_fake: a control thread for verify.c without the daemon — a
 * real event base, store (a temp SQLite file), config and metrics, and
 * recording stand-ins for what verify.c calls outside its module
 * (ctl_domain_changed, ctl_events_committed, ctl_cert_wanted,
 * hub_broadcast). One fake_t per test; fake_free removes the files. */
#ifndef HEE_TEST_VERIFY_FAKE_H
#define HEE_TEST_VERIFY_FAKE_H

#include <stdint.h>

#include "common/config.h"
#include "common/hub.h"
#include "control/ctl.h"

#define FAKE_MAX_CALLS 64

typedef struct fake_call {
    char what[24];               /* "domain_changed", "events", "issuer_want", "cert_failed" */
    char host[256];
    int code;
} fake_call_t;

typedef struct fake {
    struct control c;
    hub_t hub;
    config_t *cfg;
    char dir[64], db[96];
    fake_call_t calls[FAKE_MAX_CALLS];
    int ncalls;                  /* may exceed FAKE_MAX_CALLS: later calls are counted only */
    int domain_changed, events, issuer_wants, cert_failed;
} fake_t;

/* Defaults plus short intervals; resolvers as given ("" = none usable). */
fake_t *fake_new(const char *resolvers);
void fake_free(fake_t *f);
/* Replaces a string setting of f->cfg (frees the old value). */
void fake_set(char **field, const char *value);
/* Runs SQL on the store's connection; fails the test on error. */
void fake_sql(fake_t *f, const char *sql);
int64_t fake_sql_int(fake_t *f, const char *sql);
/* The text of the first column of the first row (static buffer), or NULL. */
const char *fake_sql_text(fake_t *f, const char *sql);
/* Adds a project (settings JSON text) and returns its id. */
int64_t fake_project(fake_t *f, const char *slug, const char *settings);
/* Adds an active pending domain due now; returns its id. */
int64_t fake_domain(fake_t *f, int64_t project_id, const char *host, const char *challenge);
/* Runs the loop until *flag != 0 or ms pass; returns the flag. */
int fake_run_until(fake_t *f, const int *flag, int ms);
void fake_run_for(fake_t *f, int ms);
/* Index of the first call named what (and host, if not NULL), or -1. */
int fake_find(const fake_t *f, const char *what, const char *host);

#endif
