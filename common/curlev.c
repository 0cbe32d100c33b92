/* curlev: libcurl multi on libevent (the "hiperfifo" pattern).
 *
 * DESIGN
 * curl tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and
 * when it next needs a timeout (CURLMOPT_TIMERFUNCTION); we mirror both as
 * libevent events and hand readiness back with curl_multi_socket_action().
 * Finished transfers are collected with curl_multi_info_read() after every
 * action. Each transfer carries a small record (callback, argument, the
 * caller's own CURLOPT_PRIVATE) reached through CURLOPT_PRIVATE; the caller's
 * value is put back before the handle is returned, so callers may use
 * CURLOPT_PRIVATE as if curlev did not exist.
 *
 * Re-entrancy: on_done may add, cancel or clean up transfers (its own or
 * others'); it must not call curlev_free() on the curlev running it.
 * curlev_free() removes the handles still in flight but does not clean them
 * up: they stay with whoever added them (as after curlev_cancel). */
#include "common/curlev.h"

#include <stdlib.h>

#include "common/log.h"

struct curlev {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct xfer *xfers; /* doubly linked, for curlev_free */
    struct sock *socks; /* every socket curl asked us to watch */
    unsigned active;
};

struct xfer {
    CURL *easy;
    curlev_done_cb on_done;
    void *arg;
    void *caller_private;
    struct xfer *prev, *next;
};

struct sock {
    curlev_t *cv;
    curl_socket_t fd;
    struct event *ev;
    struct sock *prev, *next;
};

static void xfer_unlink(curlev_t *cv, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        cv->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void sock_unlink(curlev_t *cv, struct sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        cv->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

/* Detaches a transfer from the multi and gives the handle back its owner's
 * CURLOPT_PRIVATE. Returns the record, which the caller frees. */
static struct xfer *detach(curlev_t *cv, CURL *easy)
{
    char *p = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK || !p)
        return NULL;
    struct xfer *x = (struct xfer *)p;
    curl_multi_remove_handle(cv->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x->caller_private);
    xfer_unlink(cv, x);
    cv->active--;
    return x;
}

static void check_done(curlev_t *cv)
{
    CURLMsg *msg;
    int left;
    /* Re-read after each callback: it may have added or removed handles. */
    while ((msg = curl_multi_info_read(cv->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        struct xfer *x = detach(cv, easy);
        if (!x)
            continue;
        curlev_done_cb cb = x->on_done;
        void *arg = x->arg;
        free(x);
        cb(easy, rc, arg);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    curlev_t *cv = arg;
    int running = 0;
    curl_multi_socket_action(cv->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(cv);
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    struct sock *s = arg;
    curlev_t *cv = s->cv; /* s may be freed by the action below */
    int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(cv->multi, fd, action, &running);
    /* No "running == 0 → drop the timer" shortcut: on_done may just have
     * added a transfer whose first timeout is that very timer. */
    check_done(cv);
}

static int cb_timer(CURLM *multi, long timeout_ms, void *arg)
{
    curlev_t *cv = arg;
    if (timeout_ms < 0)
        return evtimer_del(cv->timer);
    /* Never call socket_action from here (curl forbids it): let the loop do it. */
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    return evtimer_add(cv->timer, &tv);
}

static void sock_free(curlev_t *cv, struct sock *s)
{
    sock_unlink(cv, s);
    if (s->ev)
        event_free(s->ev);
    free(s);
}

static int cb_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    curlev_t *cv = arg;
    struct sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(cv->multi, fd, NULL);
            sock_free(cv, s);
        }
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->cv = cv;
        s->fd = fd;
        s->next = cv->socks;
        if (cv->socks)
            cv->socks->prev = s;
        cv->socks = s;
        curl_multi_assign(cv->multi, fd, s);
    } else if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    s->ev = event_new(cv->base, fd, kind, on_socket, s);
    if (!s->ev || event_add(s->ev, NULL) != 0) {
        log_error("curlev.event_failed", "fd=%d", (int)fd);
        return -1;
    }
    return 0;
}

curlev_t *curlev_new(struct event_base *base)
{
    curlev_t *cv = calloc(1, sizeof(*cv));
    if (!cv)
        return NULL;
    cv->base = base;
    cv->multi = curl_multi_init();
    cv->timer = evtimer_new(base, on_timer, cv);
    if (!cv->multi || !cv->timer)
        goto fail;
    if (curl_multi_setopt(cv->multi, CURLMOPT_SOCKETFUNCTION, cb_socket) != CURLM_OK ||
        curl_multi_setopt(cv->multi, CURLMOPT_SOCKETDATA, cv) != CURLM_OK ||
        curl_multi_setopt(cv->multi, CURLMOPT_TIMERFUNCTION, cb_timer) != CURLM_OK ||
        curl_multi_setopt(cv->multi, CURLMOPT_TIMERDATA, cv) != CURLM_OK)
        goto fail;
    return cv;
fail:
    curlev_free(cv);
    return NULL;
}

void curlev_free(curlev_t *cv)
{
    if (!cv)
        return;
    while (cv->xfers) {
        struct xfer *x = detach(cv, cv->xfers->easy);
        if (!x) /* handle lost its record: unlink by hand to make progress */
            x = cv->xfers, xfer_unlink(cv, x), cv->active--;
        free(x);
    }
    if (cv->multi)
        curl_multi_cleanup(cv->multi); /* may still report CURL_POLL_REMOVE */
    while (cv->socks)
        sock_free(cv, cv->socks);
    if (cv->timer)
        event_free(cv->timer);
    free(cv);
}

int curlev_add(curlev_t *cv, CURL *easy, curlev_done_cb on_done, void *arg)
{
    if (!cv || !easy || !on_done)
        return -1;
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    char *prev = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &prev) != CURLE_OK)
        goto fail;
    x->easy = easy;
    x->on_done = on_done;
    x->arg = arg;
    x->caller_private = prev;
    if (curl_easy_setopt(easy, CURLOPT_PRIVATE, x) != CURLE_OK)
        goto fail;
    if (curl_multi_add_handle(cv->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, prev);
        goto fail;
    }
    x->next = cv->xfers;
    if (cv->xfers)
        cv->xfers->prev = x;
    cv->xfers = x;
    cv->active++;
    return 0;
fail:
    free(x);
    return -1;
}

void curlev_cancel(curlev_t *cv, CURL *easy)
{
    if (!cv || !easy)
        return;
    /* Only handles we own carry our record; anything else is left alone. */
    for (struct xfer *x = cv->xfers; x; x = x->next) {
        if (x->easy == easy) {
            free(detach(cv, easy));
            return;
        }
    }
}

unsigned curlev_active(const curlev_t *cv)
{
    return cv ? cv->active : 0;
}
