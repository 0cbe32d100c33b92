/* acme_alpnd: a tiny blocking TLS server on 127.0.0.1 for tests that answers
 * RFC 8737 tls-alpn-01 validations: it selects ALPN "acme-tls/1" and serves
 * the certificate the test's lookup function returns for the SNI name.
 * It runs on its own thread; acme_alpnd_stop() joins it. lookup returns 0
 * with malloc'd PEM strings (freed by the server) or -1 to refuse. */
#ifndef HEE_TEST_ACME_ALPND_H
#define HEE_TEST_ACME_ALPND_H

typedef struct acme_alpnd acme_alpnd_t;
typedef int (*acme_alpnd_lookup)(void *arg, const char *sni, char **cert_pem, char **key_pem);

acme_alpnd_t *acme_alpnd_start(acme_alpnd_lookup lookup, void *arg);
int acme_alpnd_port(const acme_alpnd_t *s);
unsigned acme_alpnd_served(acme_alpnd_t *s); /* handshakes completed */
void acme_alpnd_stop(acme_alpnd_t *s);

#endif
