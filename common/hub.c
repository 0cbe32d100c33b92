#include "common/hub.h"

#include <string.h>

msg_t *hub_msg(enum msg_type type, const char *host)
{
    msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->type = type;
    m->worker = -1;
    if (host) {
        strncpy(m->host, host, sizeof(m->host) - 1);
    }
    return m;
}

int hub_push(queue_t *q, msg_t *msg)
{
    if (!q || queue_push(q, msg) != 0) {
        msg_free(msg);
        return -1;
    }
    return 0;
}

int hub_send(queue_t *q, enum msg_type type, const char *host, void *ptr)
{
    msg_t *m = hub_msg(type, host);
    if (!m)
        return -1;
    m->ptr = ptr;
    return hub_push(q, m);
}

int hub_to_control(hub_t *h, msg_t *msg)
{
    return hub_push(h->to_control, msg);
}

int hub_to_bg(hub_t *h, msg_t *msg)
{
    return hub_push(h->to_bg, msg);
}

int hub_broadcast(hub_t *h, const msg_t *msg)
{
    int rc = 0;
    for (int i = 0; i < h->n_workers; i++) {
        if (!h->to_worker[i])
            continue;
        msg_t *copy = malloc(sizeof(*copy));
        if (!copy) {
            rc = -1;
            continue;
        }
        memcpy(copy, msg, sizeof(*copy));
        if (hub_push(h->to_worker[i], copy) != 0)
            rc = -1;
    }
    return rc;
}
