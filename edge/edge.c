#include "edge/edge.h"

#include <stdlib.h>
#include <string.h>

struct edge {
    hub_t *hub;
};

edge_t *edge_new(hub_t *hub, char **err)
{
    edge_t *e = calloc(1, sizeof(*e));
    if (!e) {
        *err = strdup("out of memory");
        return NULL;
    }
    e->hub = hub;
    return e;
}

int edge_start(edge_t *e)
{
    (void)e;
    return 0;
}

void edge_drain(edge_t *e)
{
    (void)e;
}

void edge_join(edge_t *e, int grace_ms)
{
    (void)e;
    (void)grace_ms;
}

void edge_free(edge_t *e)
{
    free(e);
}
