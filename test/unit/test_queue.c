/* Tests common/queue.c: messages from several threads all arrive, each
 * producer's in order, on the consumer's loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "common/queue.h"

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct item {
    int producer, seq;
};

struct state {
    struct event_base *base;
    queue_t *q;
    int next[PRODUCERS];
    int received;
    int out_of_order;
};

static void on_item(void *msg, void *arg)
{
    struct state *s = arg;
    struct item *it = msg;
    if (it->seq != s->next[it->producer])
        s->out_of_order++;
    s->next[it->producer] = it->seq + 1;
    free(it);
    if (++s->received == PRODUCERS * PER_PRODUCER)
        event_base_loopbreak(s->base);
}

struct producer_arg {
    queue_t *q;
    int id;
};

static void *produce(void *p)
{
    struct producer_arg *a = p;
    for (int i = 0; i < PER_PRODUCER; i++) {
        struct item *it = malloc(sizeof(*it));
        it->producer = a->id;
        it->seq = i;
        queue_push(a->q, it);
    }
    return NULL;
}

static void test_many_producers(void **unused)
{
    struct state s = { 0 };
    s.base = event_base_new();
    s.q = queue_new(s.base, on_item, free, &s);
    assert_non_null(s.q);
    pthread_t th[PRODUCERS];
    struct producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (struct producer_arg){ s.q, i };
        pthread_create(&th[i], NULL, produce, &args[i]);
    }
    struct timeval limit = { 20, 0 };
    event_base_loopexit(s.base, &limit);
    event_base_dispatch(s.base);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(s.received, PRODUCERS * PER_PRODUCER);
    assert_int_equal(s.out_of_order, 0);
    queue_free(s.q);
    event_base_free(s.base);
}

static void test_free_releases_undelivered(void **unused)
{
    struct event_base *base = event_base_new();
    struct state s = { .base = base };
    queue_t *q = queue_new(base, on_item, free, &s);
    for (int i = 0; i < 10; i++)
        queue_push(q, calloc(1, sizeof(struct item)));
    queue_free(q); /* ASan reports a leak if these were not freed */
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_free_releases_undelivered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
