#include "common/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

/* A singly linked list under a mutex, handed over in one swap: producers
 * hold the lock for two pointer writes, the consumer for one. */
struct node {
    struct node *next;
    void *msg;
};

struct queue {
    pthread_mutex_t lock;
    struct node *head, *tail;
    int efd;
    struct event *ev;
    queue_cb on_msg;
    void (*free_msg)(void *);
    void *arg;
};

static void drain(evutil_socket_t fd, short what, void *arg)
{
    queue_t *q = arg;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("queue.read", "errno=%d", errno);
    pthread_mutex_lock(&q->lock);
    struct node *list = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (list) {
        struct node *next = list->next;
        q->on_msg(list->msg, q->arg);
        free(list);
        list = next;
    }
}

queue_t *queue_new(struct event_base *base, queue_cb on_msg, void (*free_msg)(void *), void *arg)
{
    queue_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0)
        goto fail;
    pthread_mutex_init(&q->lock, NULL);
    q->on_msg = on_msg;
    q->free_msg = free_msg;
    q->arg = arg;
    q->ev = event_new(base, q->efd, EV_READ | EV_PERSIST, drain, q);
    if (!q->ev || event_add(q->ev, NULL) != 0)
        goto fail;
    return q;
fail:
    if (q->ev)
        event_free(q->ev);
    if (q->efd >= 0)
        close(q->efd);
    free(q);
    return NULL;
}

void queue_free(queue_t *q)
{
    if (!q)
        return;
    event_free(q->ev);
    close(q->efd);
    for (struct node *n = q->head, *next; n; n = next) {
        next = n->next;
        if (q->free_msg)
            q->free_msg(n->msg);
        free(n);
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
}

int queue_push(queue_t *q, void *msg)
{
    struct node *n = malloc(sizeof(*n));
    if (!n)
        return -1;
    n->next = NULL;
    n->msg = msg;
    pthread_mutex_lock(&q->lock);
    int was_empty = q->head == NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    pthread_mutex_unlock(&q->lock);
    /* Only the push that makes the list non-empty needs to wake the loop.
     * An eventfd write fails only with EAGAIN (counter full, so a wake-up is
     * already pending); anything else would be a bug, logged. */
    if (was_empty) {
        uint64_t one = 1;
        if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("queue.wake", "errno=%d", errno);
    }
    return 0;
}
