/* clock: the edge's two monotonic clocks, in one place so that every
 * deadline, TTL and age on the edge is taken and compared on the same one.
 *
 * clock_coarse_ms: CLOCK_MONOTONIC_COARSE (tick resolution, a few ms, read
 * from the vDSO without touching the hardware clock). Everything that is
 * stored and compared later — connection deadlines, route and project-part
 * ages, upstream resolution times — uses it, on any thread.
 * clock_now_us: CLOCK_MONOTONIC in microseconds, for latency figures only
 * (access log, histograms); never compared with clock_coarse_ms.
 *
 * Pure functions of the kernel's clocks: no state, any thread. */
#ifndef HEE_EDGE_CLOCK_H
#define HEE_EDGE_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "common/util.h"

static inline int64_t clock_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_now_us(void)
{
    return util_mono_us();
}

#endif
