#include "acme_alpnd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "control/pki.h"

struct acme_alpnd {
    int lfd, port, stopping;
    unsigned served;
    acme_alpnd_lookup lookup;
    void *arg;
    SSL_CTX *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
};

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    static const unsigned char want[] = "\x0a" "acme-tls/1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, want, sizeof(want) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 8737: only acme-tls/1 */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int on_sni(SSL *ssl, int *alert, void *arg)
{
    acme_alpnd_t *s = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char *cert_pem = NULL, *key_pem = NULL;
    if (!sni || s->lookup(s->arg, sni, &cert_pem, &key_pem) != 0)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    X509 *x = pki_cert_from_pem(cert_pem);
    EVP_PKEY *k = pki_key_from_pem(key_pem);
    int ok = x && k && SSL_use_cert_and_key(ssl, x, k, NULL, 1) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    free(cert_pem);
    pki_free_secret(key_pem);
    return ok ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void serve(acme_alpnd_t *s, int fd)
{
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(s->ctx);
    if (!ssl)
        return;
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
        pthread_mutex_lock(&s->mu);
        s->served++;
        pthread_mutex_unlock(&s->mu);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
}

static void *run(void *arg)
{
    acme_alpnd_t *s = arg;
    for (;;) {
        struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
        int r = poll(&pfd, 1, 50);
        pthread_mutex_lock(&s->mu);
        int stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (r <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(s, fd);
        close(fd);
    }
    return NULL;
}

acme_alpnd_t *acme_alpnd_start(acme_alpnd_lookup lookup, void *arg)
{
    acme_alpnd_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->lookup = lookup;
    s->arg = arg;
    s->lfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = SSL_CTX_new(TLS_server_method());
    if (!s->ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
    SSL_CTX_set_alpn_select_cb(s->ctx, on_alpn, s);
    SSL_CTX_set_tlsext_servername_callback(s->ctx, on_sni);
    SSL_CTX_set_tlsext_servername_arg(s->ctx, s);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s->lfd, 64) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0)
        goto fail;
    s->port = ntohs(sa.sin_port);
    if (pthread_create(&s->thread, NULL, run, s) != 0)
        goto fail;
    return s;
fail:
    if (s->lfd >= 0)
        close(s->lfd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

int acme_alpnd_port(const acme_alpnd_t *s)
{
    return s->port;
}

unsigned acme_alpnd_served(acme_alpnd_t *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->served;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void acme_alpnd_stop(acme_alpnd_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
