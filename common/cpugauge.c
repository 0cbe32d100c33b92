#include "common/cpugauge.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct cpugauge {
    int fd;
    uint64_t run_ns, wait_ns; /* this thread, at the last sample */
    uint64_t proc_ns;         /* the whole process's CPU time then */
    int64_t sampled_ms;
    bool sampled, contended;
};

cpugauge_t *cpugauge_open(void)
{
    cpugauge_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        int e = errno;
        free(g);
        errno = e;
        return NULL;
    }
    return g;
}

void cpugauge_free(cpugauge_t *g)
{
    if (!g)
        return;
    close(g->fd);
    free(g);
}

int cpugauge_parse(const char *text, uint64_t *run_ns, uint64_t *wait_ns)
{
    uint64_t r, w;
    if (sscanf(text, "%" SCNu64 " %" SCNu64, &r, &w) != 2)
        return -1;
    *run_ns = r;
    *wait_ns = w;
    return 0;
}

bool cpugauge_verdict(uint64_t run_ns, uint64_t wait_ns, uint64_t others_ns, uint64_t window_ns,
                      bool prev)
{
    if (run_ns < CPUGAUGE_MIN_RUN_NS)
        return prev;
    if (wait_ns < run_ns / 4 || others_ns < window_ns / 4)
        return false;
    if (wait_ns > run_ns && others_ns >= window_ns / 2)
        return true;
    return prev;
}

static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* procfs regenerates the text on every read from offset 0, so one open file
 * serves every sample; it is not disk I/O. */
static int sample(cpugauge_t *g, uint64_t *run_ns, uint64_t *wait_ns)
{
    char buf[128];
    ssize_t n = pread(g->fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return cpugauge_parse(buf, run_ns, wait_ns);
}

bool cpugauge_contended(cpugauge_t *g, int64_t now_ms)
{
    if (!g)
        return false;
    if (g->sampled && now_ms - g->sampled_ms < CPUGAUGE_PERIOD_MS)
        return g->contended;
    uint64_t run, wait, proc = process_cpu_ns();
    if (sample(g, &run, &wait) != 0 || proc == 0)
        return g->contended;
    if (g->sampled && run >= g->run_ns && wait >= g->wait_ns && proc >= g->proc_ns) {
        uint64_t dr = run - g->run_ns, dw = wait - g->wait_ns, dp = proc - g->proc_ns;
        if (dr < CPUGAUGE_MIN_RUN_NS)
            return g->contended; /* measure from the old sample until it ran enough */
        uint64_t window = (uint64_t)(now_ms - g->sampled_ms) * 1000000ULL;
        g->contended = cpugauge_verdict(dr, dw, dp > dr ? dp - dr : 0, window, g->contended);
    }
    g->run_ns = run;
    g->wait_ns = wait;
    g->proc_ns = proc;
    g->sampled_ms = now_ms;
    g->sampled = true;
    return g->contended;
}

size_t cpugauge_pace_room(cpugauge_pace_t *p, bool contended, int rate, int64_t now_ms, size_t want,
                          int64_t *wait_ms)
{
    double burst = rate >= 4 ? rate / 4.0 : 1.0;
    *wait_ms = 0;
    if (!contended || rate <= 0) {
        p->on = false;
        p->tokens = burst;
        p->at_ms = now_ms;
        return want;
    }
    if (!p->on) { /* the burst is what was saved while free */
        p->on = true;
        p->tokens = burst;
    } else if (now_ms > p->at_ms) {
        p->tokens += (double)(now_ms - p->at_ms) * rate / 1000.0;
    }
    if (p->tokens > burst) /* also after a reload lowered the rate */
        p->tokens = burst;
    p->at_ms = now_ms;
    size_t n = p->tokens >= 1.0 ? (size_t)p->tokens : 0;
    if (n == 0)
        *wait_ms = (int64_t)((1.0 - p->tokens) * 1000.0 / rate) + 1;
    return n < want ? n : want;
}

void cpugauge_pace_spend(cpugauge_pace_t *p, size_t n)
{
    if (p->on)
        p->tokens -= (double)n;
}
