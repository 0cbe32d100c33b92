#include "edge/iobuf.h"

#include <stdlib.h>
#include <string.h>

int iobuf_pool_init(iobuf_pool_t *p, unsigned max_spare)
{
    p->n = 0;
    p->max = max_spare;
    p->free = calloc(max_spare ? max_spare : 1, sizeof(*p->free));
    return p->free ? 0 : -1;
}

void iobuf_pool_fini(iobuf_pool_t *p)
{
    for (unsigned i = 0; i < p->n; i++)
        free(p->free[i]);
    free(p->free);
    p->free = NULL;
    p->n = 0;
}

static char *block_get(iobuf_pool_t *p)
{
    if (p->n > 0)
        return p->free[--p->n];
    return malloc(IOBUF_BLOCK);
}

static void block_put(iobuf_pool_t *p, char *blk, uint32_t cap)
{
    if (cap == IOBUF_BLOCK && p->n < p->max)
        p->free[p->n++] = blk;
    else
        free(blk);
}

long iobuf_reserve(iobuf_t *b, iobuf_pool_t *p, size_t want, size_t max_cap)
{
    if (!b->data) {
        if (!(b->data = block_get(p)))
            return -1;
        b->cap = IOBUF_BLOCK;
        b->off = b->len = 0;
    }
    if (b->len == 0)
        b->off = 0;
    if (b->cap - b->off - b->len >= want)
        return (long)(b->cap - b->off - b->len);
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->cap - b->len >= want || b->cap >= max_cap)
        return (long)(b->cap - b->len);
    size_t ncap = b->cap * 2;
    while (ncap - b->len < want)
        ncap *= 2;
    if (ncap > max_cap)
        ncap = max_cap;
    char *n = malloc(ncap);
    if (!n)
        return -1;
    memcpy(n, b->data, b->len);
    block_put(p, b->data, b->cap);
    b->data = n;
    b->cap = (uint32_t)ncap;
    return (long)(b->cap - b->len);
}

void iobuf_consume(iobuf_t *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += (uint32_t)n;
    b->len -= (uint32_t)n;
}

int iobuf_append(iobuf_t *b, iobuf_pool_t *p, const void *src, size_t n, size_t max_cap)
{
    long room = iobuf_reserve(b, p, n, max_cap);
    if (room < 0 || (size_t)room < n)
        return -1;
    memcpy(iobuf_tail(b), src, n);
    b->len += (uint32_t)n;
    return 0;
}

void iobuf_release(iobuf_t *b, iobuf_pool_t *p)
{
    if (b->data && b->len == 0)
        iobuf_drop(b, p);
}

void iobuf_drop(iobuf_t *b, iobuf_pool_t *p)
{
    if (b->data)
        block_put(p, b->data, b->cap);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
