/* queue: a multi-producer, single-consumer message queue that wakes a
 * libevent loop. Any thread may push; the consumer's callback runs on the
 * loop that created the queue, once per message, in push order.
 *
 * Ownership: a pushed message belongs to the consumer callback from then on
 * (it frees it). queue_free() frees undelivered messages with the free_msg
 * function given at creation. The queue must outlive its producers. */
#ifndef HEE_QUEUE_H
#define HEE_QUEUE_H

#include <event2/event.h>

typedef struct queue queue_t;
typedef void (*queue_cb)(void *msg, void *arg);

queue_t *queue_new(struct event_base *base, queue_cb on_msg, void (*free_msg)(void *), void *arg);
void queue_free(queue_t *q);
/* 0: msg is queued and belongs to the queue; -1: out of memory, msg is
 * still the caller's. */
int queue_push(queue_t *q, void *msg);

#endif
