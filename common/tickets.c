#include "common/tickets.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct tickets {
    pthread_rwlock_t lock;
    tickets_key_t keys[TICKETS_KEEP]; /* keys[0] encrypts */
    int n;
};

tickets_t *tickets_new(void)
{
    tickets_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_rwlock_init(&t->lock, NULL);
    if (tickets_rotate(t) != 0) {
        tickets_free(t);
        return NULL;
    }
    return t;
}

void tickets_free(tickets_t *t)
{
    if (!t)
        return;
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

int tickets_rotate(tickets_t *t)
{
    tickets_key_t k;
    if (util_random(&k, sizeof(k)) != 0)
        return -1;
    pthread_rwlock_wrlock(&t->lock);
    memmove(&t->keys[1], &t->keys[0], sizeof(t->keys[0]) * (TICKETS_KEEP - 1));
    t->keys[0] = k;
    if (t->n < TICKETS_KEEP)
        t->n++;
    pthread_rwlock_unlock(&t->lock);
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}

int tickets_current(tickets_t *t, tickets_key_t *out)
{
    pthread_rwlock_rdlock(&t->lock);
    *out = t->keys[0];
    pthread_rwlock_unlock(&t->lock);
    return 0;
}

int tickets_find(tickets_t *t, const unsigned char name[TICKETS_NAME_LEN], tickets_key_t *out,
                 int *is_current)
{
    int rc = -1;
    pthread_rwlock_rdlock(&t->lock);
    for (int i = 0; i < t->n; i++) {
        if (memcmp(t->keys[i].name, name, TICKETS_NAME_LEN) == 0) {
            *out = t->keys[i];
            *is_current = i == 0;
            rc = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}
