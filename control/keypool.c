/* keypool: see keypool.h. The stock and the flags are shared with the
 * generator thread under mu; the waiter list is the loop's alone. The thread
 * wakes the loop through an eventfd, once per key it adds. */
#include "control/keypool.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define KEYPOOL_MAX 64

struct keypool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stop;           /* under mu (started: loop only) */
    EVP_PKEY *stock[KEYPOOL_MAX]; /* RSA keys, under mu */
    int n, target;
    int efd;
    struct event *ev;
    keypool_waiter_t *head, *tail;
};

static void *generator(void *arg)
{
    keypool_t *kp = arg;
    util_name_thread("hee-keygen", -1);
    pthread_mutex_lock(&kp->mu);
    while (!kp->stop) {
        if (kp->n >= kp->target) {
            pthread_cond_wait(&kp->cv, &kp->mu);
            continue;
        }
        pthread_mutex_unlock(&kp->mu);
        EVP_PKEY *k = pki_key_new(PKI_KEY_RSA_2048);
        pthread_mutex_lock(&kp->mu);
        if (k && kp->n < kp->target)
            kp->stock[kp->n++] = k;
        else
            EVP_PKEY_free(k);
        uint64_t one = 1;
        if (write(kp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("keypool.wake_failed", "errno=%d", errno);
        if (!k) {
            /* Not expected from OpenSSL; rest instead of spinning. */
            log_warn("keypool.rsa_failed", "retry_in_s=1");
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&kp->cv, &kp->mu, &ts);
        }
    }
    pthread_mutex_unlock(&kp->mu);
    return NULL;
}

/* Loop side: a key arrived; wake as many waiters as there are keys. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    keypool_t *kp = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("keypool.read_failed", "errno=%d", errno);
    pthread_mutex_lock(&kp->mu);
    int ready = kp->n;
    pthread_mutex_unlock(&kp->mu);
    for (int i = 0; i < ready && kp->head; i++) {
        keypool_waiter_t *w = kp->head;
        kp->head = w->next;
        if (!kp->head)
            kp->tail = NULL;
        w->next = NULL;
        w->queued = 0;
        w->cb(w->arg);
    }
}

keypool_t *keypool_new(struct event_base *base, int stock)
{
    keypool_t *kp = calloc(1, sizeof(*kp));
    if (!kp)
        return NULL;
    kp->target = stock < 1 ? 1 : stock > KEYPOOL_MAX ? KEYPOOL_MAX : stock;
    kp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (kp->efd < 0)
        goto fail;
    if (pthread_mutex_init(&kp->mu, NULL) != 0)
        goto fail_fd;
    if (pthread_cond_init(&kp->cv, NULL) != 0)
        goto fail_mu;
    kp->ev = event_new(base, kp->efd, EV_READ | EV_PERSIST, on_ready, kp);
    if (!kp->ev || event_add(kp->ev, NULL) != 0)
        goto fail_cv;
    return kp;
fail_cv:
    if (kp->ev)
        event_free(kp->ev);
    pthread_cond_destroy(&kp->cv);
fail_mu:
    pthread_mutex_destroy(&kp->mu);
fail_fd:
    close(kp->efd);
fail:
    free(kp);
    return NULL;
}

void keypool_free(keypool_t *kp)
{
    if (!kp)
        return;
    if (kp->started) {
        pthread_mutex_lock(&kp->mu);
        kp->stop = 1;
        pthread_cond_signal(&kp->cv);
        pthread_mutex_unlock(&kp->mu);
        pthread_join(kp->thread, NULL);
    }
    for (int i = 0; i < kp->n; i++)
        EVP_PKEY_free(kp->stock[i]);
    event_free(kp->ev);
    pthread_cond_destroy(&kp->cv);
    pthread_mutex_destroy(&kp->mu);
    close(kp->efd);
    free(kp);
}

static void start_generator(keypool_t *kp)
{
    if (kp->started)
        return;
    int rc = pthread_create(&kp->thread, NULL, generator, kp);
    if (rc != 0) {
        log_error("keypool.thread_failed", "errno=%d", rc);
        return;
    }
    kp->started = 1;
}

EVP_PKEY *keypool_take(keypool_t *kp, pki_key_type_t t)
{
    if (t != PKI_KEY_RSA_2048)
        return pki_key_new(t);
    start_generator(kp);
    EVP_PKEY *k = NULL;
    pthread_mutex_lock(&kp->mu);
    if (kp->n > 0)
        k = kp->stock[--kp->n];
    pthread_cond_signal(&kp->cv);
    pthread_mutex_unlock(&kp->mu);
    return k;
}

void keypool_wait(keypool_t *kp, keypool_waiter_t *w, keypool_cb cb, void *arg)
{
    keypool_cancel(kp, w);
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    w->queued = 1;
    if (kp->tail)
        kp->tail->next = w;
    else
        kp->head = w;
    kp->tail = w;
    /* A key may have landed between take() and here: its wake-up has been
     * or will be read, so make sure one more comes. */
    uint64_t one = 1;
    if (write(kp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("keypool.wake_failed", "errno=%d", errno);
}

void keypool_cancel(keypool_t *kp, keypool_waiter_t *w)
{
    if (!kp || !w->queued)
        return;
    keypool_waiter_t *prev = NULL;
    for (keypool_waiter_t *p = kp->head; p; prev = p, p = p->next) {
        if (p != w)
            continue;
        if (prev)
            prev->next = p->next;
        else
            kp->head = p->next;
        if (kp->tail == p)
            kp->tail = prev;
        break;
    }
    w->next = NULL;
    w->queued = 0;
}
