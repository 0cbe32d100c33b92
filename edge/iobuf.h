/* iobuf: byte buffers for the edge's connections, drawn from a per-worker
 * pool of fixed-size blocks so the hot path never calls malloc, and handed
 * back as soon as a buffer is empty, so an idle connection holds none.
 *
 * A pool belongs to one worker thread (no locking). An iobuf_t belongs to
 * the connection that embeds it; its block comes from the pool (or, when a
 * request head outgrows a block, from malloc) and goes back through
 * iobuf_release()/iobuf_drop(), which pick the right way to free it. */
#ifndef HEE_EDGE_IOBUF_H
#define HEE_EDGE_IOBUF_H

#include <stddef.h>
#include <stdint.h>

/* One whole TLS record (16 KB of plaintext + 256 of expansion + header)
 * with room to spare, so a ciphertext record always fits one block. */
#define IOBUF_BLOCK 17408
/* Most plaintext one TLS record carries. */
#define IOBUF_RECORD 16384

typedef struct iobuf_pool {
    void **free;       /* stack of spare blocks */
    unsigned n, max;
} iobuf_pool_t;

/* Bytes [off, off + len) of data are live; cap is the block size. */
typedef struct iobuf {
    char *data;
    uint32_t off, len, cap;
} iobuf_t;

int iobuf_pool_init(iobuf_pool_t *p, unsigned max_spare);
void iobuf_pool_fini(iobuf_pool_t *p);

/* Makes room for at least want more bytes after the live ones: takes a
 * block when the buffer has none, moves live bytes to the front when that
 * frees enough, and grows past a block (malloc) only up to max_cap.
 * Returns the free space (0 when the buffer is full at max_cap), -1 when
 * out of memory. */
long iobuf_reserve(iobuf_t *b, iobuf_pool_t *p, size_t want, size_t max_cap);
static inline char *iobuf_head(const iobuf_t *b) { return b->data + b->off; }
static inline char *iobuf_tail(const iobuf_t *b) { return b->data + b->off + b->len; }
static inline size_t iobuf_space(const iobuf_t *b) { return b->data ? b->cap - b->off - b->len : 0; }
void iobuf_consume(iobuf_t *b, size_t n);
/* Appends n bytes (reserving as needed, max_cap as above). 0 or -1. */
int iobuf_append(iobuf_t *b, iobuf_pool_t *p, const void *src, size_t n, size_t max_cap);
/* Returns the block when no live bytes remain. */
void iobuf_release(iobuf_t *b, iobuf_pool_t *p);
/* Returns the block whatever it holds. */
void iobuf_drop(iobuf_t *b, iobuf_pool_t *p);

#endif
