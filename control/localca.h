/* localca: the built-in CA used when no ACME directory is configured (the
 * offline default): one P-256 root (CN "Hee Local CA <random>", 10 years)
 * that issues leaf certificates for single hostnames. The caller (the store)
 * persists the root as PEM; localca_t holds it in memory only. Strings handed
 * out are malloc'd: free() certificates, pki_free_secret() keys. CPU only. */
#ifndef HEE_LOCALCA_H
#define HEE_LOCALCA_H

#include "control/pki.h"

typedef struct localca localca_t;

#define LOCALCA_DEFAULT_DAYS 90

/* A new root: fresh P-256 key, random 128-bit serial. NULL on failure. */
localca_t *localca_create(void);
/* The root from the PEM the store kept. NULL when the key does not match
 * the certificate or the certificate is not a CA. */
localca_t *localca_load(const char *cert_pem, const char *key_pem);
/* The root's PEM for persistence (both malloc'd; key: pki_free_secret). */
int localca_export(const localca_t *ca, char **cert_pem, char **key_pem);
/* Borrowed; valid as long as ca. */
const char *localca_cert_pem(const localca_t *ca);
X509 *localca_cert(const localca_t *ca);
void localca_free(localca_t *ca);

/* Chain: localca_issue returns the LEAF ONLY. The root must be in the
 * client's trust store for the leaf to verify, and a client that trusts it
 * already has it, so sending it would cost every handshake ~500 bytes for
 * nothing (RFC 8446 §4.4.2 lets a server omit the trust anchor).
 * Cost: ~1 ms for P-256; RSA 2048 key generation can take 50-500 ms.
 *
 * Issues a leaf for hostname: key (borrowed; NULL: a fresh key of key_type
 * made here — callers on an event loop pass RSA keys from keypool), serverAuth EKU, SAN
 * dNSName, random 128-bit serial, SKI/AKI, notBefore one hour ago (clock
 * skew), notAfter after validity_days (<= 0: LOCALCA_DEFAULT_DAYS), never past
 * the root's own notAfter. 0 or -1 (bad hostname, crypto failure). */
int localca_issue(localca_t *ca, const char *hostname, EVP_PKEY *key, pki_key_type_t key_type,
                  int validity_days, char **cert_chain_pem, char **key_pem);

#endif
