/* tickets: TLS session-ticket keys shared by every edge worker, so a client
 * resumes on whichever worker accepts its next connection. Keys rotate: the
 * newest encrypts, the previous ones still decrypt for one more period.
 * Thread-safe (rwlock); rotation is called by the control thread's timer.
 * Key material never leaves this module except into OpenSSL's contexts. */
#ifndef HEE_TICKETS_H
#define HEE_TICKETS_H

#include <stddef.h>

#define TICKETS_NAME_LEN 16
#define TICKETS_KEEP 3

typedef struct tickets tickets_t;

typedef struct tickets_key {
    unsigned char name[TICKETS_NAME_LEN];
    unsigned char aes[32];
    unsigned char hmac[32];
} tickets_key_t;

tickets_t *tickets_new(void);
void tickets_free(tickets_t *t);
int tickets_rotate(tickets_t *t);
/* Copies the encrypting key; 0 or -1. */
int tickets_current(tickets_t *t, tickets_key_t *out);
/* Finds the key named name; returns 0 and *is_current (1 when it is the
 * encrypting key, so OpenSSL need not renew the ticket), or -1 if unknown. */
int tickets_find(tickets_t *t, const unsigned char name[TICKETS_NAME_LEN], tickets_key_t *out,
                 int *is_current);

#endif
