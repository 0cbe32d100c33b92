/* curlev: libcurl's multi interface driven by one libevent base.
 *
 * The owner of the base creates one curlev_t and hands it easy handles; curl
 * never blocks the loop (sockets and timers are libevent events). When a
 * transfer ends, on_done runs on the loop's thread with curl's result code;
 * the easy handle is removed from the multi before the callback and belongs
 * to the callback from then on (it must curl_easy_cleanup it or reuse it).
 * curlev_free() aborts transfers still running, without calling on_done. */
#ifndef HEE_CURLEV_H
#define HEE_CURLEV_H

#include <curl/curl.h>
#include <event2/event.h>

typedef struct curlev curlev_t;
typedef void (*curlev_done_cb)(CURL *easy, CURLcode result, void *arg);

curlev_t *curlev_new(struct event_base *base);
void curlev_free(curlev_t *cv);
/* Starts the transfer. 0, or -1 (the handle stays the caller's). */
int curlev_add(curlev_t *cv, CURL *easy, curlev_done_cb on_done, void *arg);
/* Aborts one transfer without calling on_done; the handle returns to the caller. */
void curlev_cancel(curlev_t *cv, CURL *easy);
/* Number of transfers in flight. */
unsigned curlev_active(const curlev_t *cv);

#endif
