/* Tests edge/route_project.c: a project's shared part built from the
 * store's row, and the loader's table of them — shared while usable,
 * dropped once the project epoch moves (a project deleted or changed) or
 * route_ttl passes, while routes that still hold the part keep it alive.
 * Under ASan a part the table forgot to release shows as a leak and one
 * released too early as a use after free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/store_edge.h"
#include "edge/clock.h"
#include "edge/route_project.h"

#define TTL 300000

static const unsigned char KEY[4] = { 0x00, 0x11, 0x22, 0x33 };

static route_project_t *build(int64_t id, const char *slug, uint64_t epoch)
{
    store_edge_host_t h;
    memset(&h, 0, sizeof(h));
    h.project_id = id;
    h.slug = (char *)slug;
    h.upstream = "http://127.0.0.1:9000";
    h.upstream_fallback = "http://[::1]:9001/ignored";
    h.settings = "{\"maxBodyBytes\":1024,\"forwardMetadata\":true}";
    h.hmac_key = (unsigned char *)KEY;
    h.hmac_key_len = sizeof(KEY);
    route_project_t *p = route_project_build(&h, "app.test", epoch);
    assert_non_null(p);
    return p;
}

static unsigned refs(route_project_t *p)
{
    return atomic_load(&p->refs);
}

static void part_from_row(void **st)
{
    (void)st;
    int64_t t0 = clock_coarse_ms();
    route_project_t *p = build(1, "acme", 7);
    assert_int_equal(p->project_id, 1);
    assert_int_equal(p->epoch, 7);
    assert_string_equal(p->slug, "acme");
    assert_int_equal(p->slug_len, 4);
    assert_int_equal(p->hmac_len, sizeof(KEY));
    assert_memory_equal(p->hmac_key, KEY, sizeof(KEY));
    assert_int_equal(p->n_up, 2);
    assert_string_equal(p->up[0].key, "http://127.0.0.1:9000");
    assert_int_equal(p->up[0].key_len, strlen(p->up[0].key));
    assert_string_equal(p->up[1].key, "http://[::1]:9001");
    assert_true(p->up[0].resolved && p->up[1].resolved);
    /* one clock for ages: the part's and its addresses' */
    assert_true(p->made_ms >= t0 && p->made_ms <= clock_coarse_ms());
    assert_true(p->up[0].resolved_ms >= t0 && p->up[0].resolved_ms <= clock_coarse_ms());
    assert_int_equal(p->max_body, 1024);
    assert_true(p->forward_metadata);
    assert_int_equal(refs(p), 1);
    route_project_unref(p);
}

static void table_shares_while_usable(void **st)
{
    (void)st;
    _Atomic uint64_t epoch = 3;
    route_project_table_t *t = route_project_table_new(&epoch);
    assert_non_null(t);
    route_project_t *p = build(1, "acme", 3);
    assert_int_equal(route_project_table_put(t, p), 0);
    assert_int_equal(route_project_table_count(t), 1);
    assert_int_equal(refs(p), 2);
    int64_t now = p->made_ms;
    route_project_t *g = route_project_table_get(t, 1, 3, now, TTL);
    assert_ptr_equal(g, p);
    assert_int_equal(refs(p), 3);
    route_project_unref(g);
    assert_null(route_project_table_get(t, 2, 3, now, TTL));       /* other project */
    assert_null(route_project_table_get(t, 1, 4, now, TTL));       /* other epoch */
    assert_null(route_project_table_get(t, 1, 3, now + TTL, TTL)); /* too old */
    /* A newer build replaces the older one, which lives on in its routes. */
    route_project_t *q = build(1, "acme", 3);
    assert_int_equal(route_project_table_put(t, q), 0);
    assert_int_equal(route_project_table_count(t), 1);
    assert_int_equal(refs(p), 1);
    assert_ptr_equal((g = route_project_table_get(t, 1, 3, now, TTL)), q);
    route_project_unref(g);
    route_project_unref(p);
    route_project_unref(q);
    route_project_table_free(t); /* frees q */
}

/* A project deleted through the API: the edge bumps the epoch and prunes;
 * the table lets the part go at once, the route still using it keeps it
 * (and its key) until it lets go too. */
static void deleted_project_part_dropped(void **st)
{
    (void)st;
    _Atomic uint64_t epoch = 0;
    route_project_table_t *t = route_project_table_new(&epoch);
    assert_non_null(t);
    route_project_t *gone = build(1, "gone", 0), *kept = build(2, "kept", 0);
    assert_int_equal(route_project_table_put(t, gone), 0);
    assert_int_equal(route_project_table_put(t, kept), 0);
    route_project_unref(kept); /* only the table holds it */
    int64_t now = gone->made_ms;
    assert_int_equal(route_project_table_prune(t, now, TTL), 0);
    assert_int_equal(route_project_table_count(t), 2);

    atomic_fetch_add(&epoch, 1);
    assert_int_equal(route_project_table_prune(t, now, TTL), 2); /* every part predates the change */
    assert_int_equal(route_project_table_count(t), 0);
    assert_int_equal(refs(gone), 1); /* the "route"'s reference only */
    assert_memory_equal(gone->hmac_key, KEY, sizeof(KEY));
    assert_null(route_project_table_get(t, 1, 1, now, TTL));
    route_project_unref(gone); /* freed here, key wiped; ASan: no leak */
    route_project_table_free(t);
}

/* A lookup that read the store before the deletion and finishes after the
 * prune must not put its part back. */
static void late_put_after_epoch_moved_is_dropped(void **st)
{
    (void)st;
    _Atomic uint64_t epoch = 5;
    route_project_table_t *t = route_project_table_new(&epoch);
    assert_non_null(t);
    route_project_t *p = build(1, "acme", 5);
    atomic_fetch_add(&epoch, 1);
    assert_int_equal(route_project_table_prune(t, p->made_ms, TTL), 0);
    assert_int_equal(route_project_table_put(t, p), 0);
    assert_int_equal(route_project_table_count(t), 0);
    assert_int_equal(refs(p), 1);
    route_project_unref(p);
    route_project_table_free(t);
}

/* A project deleted by another process (no message): the part goes once
 * route_ttl has passed, when thread 0's timer prunes. */
static void expired_part_dropped(void **st)
{
    (void)st;
    _Atomic uint64_t epoch = 0;
    route_project_table_t *t = route_project_table_new(&epoch);
    assert_non_null(t);
    route_project_t *p = build(9, "old", 0);
    assert_int_equal(route_project_table_put(t, p), 0);
    int64_t made = p->made_ms;
    route_project_unref(p);
    assert_int_equal(route_project_table_prune(t, made + TTL - 1, TTL), 0);
    assert_int_equal(route_project_table_prune(t, made + TTL, TTL), 1);
    assert_int_equal(route_project_table_count(t), 0);
    route_project_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(part_from_row),
        cmocka_unit_test(table_shares_while_usable),
        cmocka_unit_test(deleted_project_part_dropped),
        cmocka_unit_test(late_put_after_epoch_moved_is_dropped),
        cmocka_unit_test(expired_part_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
