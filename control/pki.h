/* pki: keys, certificates and CSRs over OpenSSL 3, as PEM strings or
 * OpenSSL objects. Used by localca, jws and acme; the store keeps PEM.
 * Ownership: every char * returned is malloc'd and the caller free()s it —
 * key PEM with pki_free_secret(), which wipes it first. EVP_PKEY / X509 /
 * X509_REQ returned are the caller's (EVP_PKEY_free, X509_free...). Nothing
 * here logs or keeps state; only pki_write_key_file touches the disk. */
#ifndef HEE_PKI_H
#define HEE_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

typedef enum {
    PKI_KEY_EC_P256 = 0, /* default: small, fast handshakes */
    PKI_KEY_RSA_2048,
} pki_key_type_t;

/* "ec256" / "rsa2048" (also "p256", "ecdsa", "rsa"): 0 or -1. */
int pki_key_type_parse(const char *s, pki_key_type_t *out);
const char *pki_key_type_name(pki_key_type_t t);

EVP_PKEY *pki_key_new(pki_key_type_t type);
/* PKCS#8 "PRIVATE KEY" PEM. */
char *pki_key_to_pem(EVP_PKEY *key);
/* Any private-key PEM OpenSSL reads (PKCS#8, SEC1 "EC PRIVATE KEY", PKCS#1). */
EVP_PKEY *pki_key_from_pem(const char *pem);
/* OPENSSL_cleanse + free; NULL-safe. */
void pki_free_secret(char *s);

char *pki_cert_to_pem(X509 *cert);
/* First certificate in pem. */
X509 *pki_cert_from_pem(const char *pem);
/* Every certificate in pem, in order (leaf first in a chain). NULL when the
 * text holds none. Free with sk_X509_pop_free(chain, X509_free). */
STACK_OF(X509) *pki_chain_from_pem(const char *pem);

/* CSR for one DNS name (SAN dNSName = hostname, CN = hostname when it fits
 * in 64 bytes), signed with key (SHA-256). DER in *der (OPENSSL_free). */
int pki_csr_der(EVP_PKEY *key, const char *hostname, unsigned char **der, size_t *der_len);

typedef struct {
    int64_t not_before_ms;
    int64_t not_after_ms;
    char subject_cn[256];
    char issuer_cn[256]; /* issuer's CN, or its one-line name when it has none */
    char serial_hex[80]; /* lower-case, no leading zeros beyond one byte */
    char sha256_hex[65]; /* of the leaf's DER */
} pki_cert_info_t;

/* Facts about the first (leaf) certificate of a PEM chain. 0 or -1. */
int pki_chain_info(const char *pem, pki_cert_info_t *out);
int pki_cert_info(X509 *cert, pki_cert_info_t *out);
/* 1 when cert's SAN has a dNSName equal to hostname (case-insensitive), or a
 * wildcard matching it; 0 otherwise. */
int pki_cert_has_dns(X509 *cert, const char *hostname);
/* 1 when key is the private half of cert's public key. */
int pki_cert_matches_key(X509 *cert, EVP_PKEY *key);

/* Writes pem to path with mode 0600 atomically: a fresh temporary file
 * (O_CREAT|O_EXCL, 0600) in the same directory, write, fsync, rename, fsync
 * of the directory. Blocking disk I/O: call it off the event loop or at
 * startup. 0 or -1 (errno set, no temporary left behind). */
int pki_write_key_file(const char *path, const char *pem);

/* RFC 8737 tls-alpn-01 challenge certificate: self-signed, fresh P-256 key,
 * SAN dNSName = hostname, critical acmeIdentifier extension
 * (1.3.6.1.5.5.7.1.31) = OCTET STRING of SHA-256(key_authorization), valid
 * from an hour ago for 7 days. PEM of the cert and of its key. 0 or -1. */
int pki_tls_alpn_cert(const char *hostname, const char *key_authorization, char **cert_pem,
                      char **key_pem);

/* A hostname acceptable in a certificate: LDH labels (A-labels for IDNs) of
 * 1..63 bytes, 253 bytes at most, at least two labels, an optional leading
 * "*." label. 1 or 0. */
int pki_hostname_valid(const char *hostname);

/* Building blocks for localca and tls-alpn-01 certificates. */
/* Random positive serial: 16 random bytes with the high bit cleared. */
int pki_random_serial(X509 *cert);
/* notBefore/notAfter as seconds since the epoch. */
int pki_set_validity(X509 *cert, int64_t not_before_s, int64_t not_after_s);
/* One extension from OpenSSL's config syntax (constant strings only, e.g.
 * "critical,CA:TRUE"); issuer may be NULL for a self-signed cert. */
int pki_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);
/* subjectAltName with exactly one dNSName (built directly, so the name
 * cannot smuggle config syntax). */
int pki_add_san_dns(X509 *cert, const char *hostname);
/* Subject with one CN (or empty when cn is NULL or longer than 64 bytes). */
int pki_set_subject_cn(X509 *cert, const char *cn);

#endif
