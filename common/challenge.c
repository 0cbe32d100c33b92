#include "common/challenge.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Pending challenges are few (one per order in flight), so a list is enough. */
struct entry {
    struct entry *next;
    char *host, *token, *value, *key_pem; /* token NULL: tls-alpn-01 entry */
};

struct challenge_table {
    pthread_mutex_t lock;
    struct entry *head;
};

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    free(e->host);
    free(e->token);
    free(e->value);
    free(e->key_pem);
    free(e);
}

challenge_table_t *challenge_table_new(void)
{
    challenge_table_t *t = calloc(1, sizeof(*t));
    if (t)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

void challenge_table_free(challenge_table_t *t)
{
    if (!t)
        return;
    for (struct entry *e = t->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Unlinks (host, token) if present; caller holds the lock. */
static void unlink_locked(challenge_table_t *t, const char *host, const char *token)
{
    for (struct entry **p = &t->head; *p; p = &(*p)->next) {
        if (strcmp((*p)->host, host) == 0 && same((*p)->token, token)) {
            struct entry *e = *p;
            *p = e->next;
            entry_free(e);
            return;
        }
    }
}

static int insert(challenge_table_t *t, const char *host, const char *token,
                  const char *value, const char *key_pem)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->host = strdup(host);
    e->token = token ? strdup(token) : NULL;
    e->value = strdup(value);
    e->key_pem = key_pem ? strdup(key_pem) : NULL;
    if (!e->host || !e->value || (token && !e->token) || (key_pem && !e->key_pem)) {
        entry_free(e);
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    unlink_locked(t, host, token);
    e->next = t->head;
    t->head = e;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int challenge_http_set(challenge_table_t *t, const char *host, const char *token, const char *keyauth)
{
    return insert(t, host, token, keyauth, NULL);
}

int challenge_alpn_set(challenge_table_t *t, const char *host, const char *cert_pem, const char *key_pem)
{
    return insert(t, host, NULL, cert_pem, key_pem);
}

int challenge_http_get(challenge_table_t *t, const char *token, char *buf, size_t len)
{
    int rc = -1;
    pthread_mutex_lock(&t->lock);
    for (struct entry *e = t->head; e; e = e->next) {
        if (e->token && strcmp(e->token, token) == 0 && strlen(e->value) < len) {
            strcpy(buf, e->value);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int challenge_alpn_get(challenge_table_t *t, const char *host, char **cert_pem, char **key_pem)
{
    int rc = -1;
    *cert_pem = *key_pem = NULL;
    pthread_mutex_lock(&t->lock);
    for (struct entry *e = t->head; e; e = e->next) {
        if (!e->token && strcmp(e->host, host) == 0) {
            *cert_pem = strdup(e->value);
            *key_pem = strdup(e->key_pem);
            rc = *cert_pem && *key_pem ? 0 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (rc != 0) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
    }
    return rc;
}

void challenge_remove(challenge_table_t *t, const char *host, const char *token)
{
    pthread_mutex_lock(&t->lock);
    unlink_locked(t, host, token);
    pthread_mutex_unlock(&t->lock);
}
