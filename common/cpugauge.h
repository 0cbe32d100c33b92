/* cpugauge: is the calling thread being crowded out of the CPU?
 *
 * Reads the kernel's scheduler statistics for the thread that opened the
 * gauge (/proc/thread-self/schedstat: nanoseconds run, nanoseconds spent
 * runnable but waiting for a CPU). Background work uses it to slow down
 * while traffic needs the cores: nice lowers only the background thread's
 * own share, not the work its requests cause elsewhere (the resolver that
 * answers a probe, the kernel's packet processing), so a sweep at full speed
 * still takes CPU from the edge unless it paces itself.
 *
 * Contended means two things at once: this thread waits for a CPU longer
 * than it runs, and the rest of the process (edge workers, the API) is busy
 * — so a sweep does not slow down because of load it causes itself (a
 * resolver on the same machine answering it) or that has nothing to do
 * with Hee's traffic.
 *
 * A gauge belongs to the thread that opened it (the file names that thread);
 * cpugauge_free closes it. Nothing here is shared between threads. */
#ifndef HEE_CPUGAUGE_H
#define HEE_CPUGAUGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Below this much run time between two samples the verdict stays as it was:
 * a thread that hardly ran says little about the CPU. */
#define CPUGAUGE_MIN_RUN_NS 2000000ULL
/* Samples closer together than this reuse the last verdict. */
#define CPUGAUGE_PERIOD_MS 250

typedef struct cpugauge cpugauge_t;

/* NULL (errno set) when the kernel does not keep scheduler statistics. */
cpugauge_t *cpugauge_open(void);
void cpugauge_free(cpugauge_t *g);

/* true while contended. Samples at most every CPUGAUGE_PERIOD_MS of now_ms
 * (any monotonic milliseconds); a NULL gauge is never contended. */
bool cpugauge_contended(cpugauge_t *g, int64_t now_ms);

/* The rule, on what happened since the last sample (window_ns of wall
 * time): this thread ran run_ns and waited wait_ns; the process's other
 * threads used others_ns of CPU. Contended once the thread waited longer
 * than it ran while the others used at least half a CPU; clear again once
 * it waited less than a quarter of its run time or the others used less
 * than a quarter of a CPU; in between, and with less than
 * CPUGAUGE_MIN_RUN_NS of run time, prev stands (hysteresis, so a paced
 * thread does not flap as its own load changes). */
bool cpugauge_verdict(uint64_t run_ns, uint64_t wait_ns, uint64_t others_ns, uint64_t window_ns,
                      bool prev);

/* A pacer for work started while contended: at most rate starts per second
 * with a quarter second's worth of burst; no limit while not contended or
 * with rate <= 0. A plain value owned by its user; zero-initialise it. */
typedef struct cpugauge_pace {
    double tokens;
    int64_t at_ms;
    bool on;                     /* the last room was limited */
} cpugauge_pace_t;

/* How many of want may start at now_ms (monotonic). When that is 0,
 * *wait_ms says how long until the next one may. Pure arithmetic. */
size_t cpugauge_pace_room(cpugauge_pace_t *p, bool contended, int rate, int64_t now_ms, size_t want,
                          int64_t *wait_ms);
/* n starts made under the last room. */
void cpugauge_pace_spend(cpugauge_pace_t *p, size_t n);

/* Parses "run wait slices\n"; 0 or -1. */
int cpugauge_parse(const char *text, uint64_t *run_ns, uint64_t *wait_ns);

#endif
