/* jws: the JSON Web Signature pieces ACME needs (RFC 7515, 7518, 7638, 8555).
 * ES256 for P-256 account keys (RS256 also works for RSA keys, which lets
 * the RFC 7638 test vector run); HS256 for external account binding.
 * Every char * returned is malloc'd JSON or text for the caller to free();
 * keys are borrowed. Nothing here logs, keeps state, or does I/O. */
#ifndef HEE_JWS_H
#define HEE_JWS_H

#include <openssl/evp.h>

/* "ES256" for a P-256 key, "RS256" for RSA, NULL otherwise. */
const char *jws_alg(EVP_PKEY *key);

/* Public JWK with exactly RFC 7638's required members, sorted, no spaces:
 * {"crv":"P-256","kty":"EC","x":…,"y":…} or {"e":…,"kty":"RSA","n":…}.
 * That text is also the thumbprint input. */
char *jws_jwk(EVP_PKEY *key);
/* base64url(SHA-256(jws_jwk(key))) (RFC 7638). */
char *jws_thumbprint(EVP_PKEY *key);
/* token "." thumbprint (RFC 8555 §8.1). */
char *jws_key_authorization(const char *token, EVP_PKEY *key);

/* Flattened JSON JWS {"protected","payload","signature"} (RFC 8555 §6.2).
 * Protected header: alg, nonce, url, and kid when kid is non-NULL, else the
 * jwk (newAccount, revocation by certificate key). payload is the JSON text
 * to sign; NULL or "" gives the empty payload of a POST-as-GET. nonce may be
 * NULL only for payloads that take none (EAB). */
char *jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload);

/* The externalAccountBinding object for newAccount (RFC 8555 §7.3.4): an
 * HS256 JWS over the account's JWK with protected {alg, kid: eab_kid, url},
 * keyed by base64url-decoding hmac_key_b64url. NULL on bad input. */
char *jws_eab(EVP_PKEY *account_key, const char *eab_kid, const char *hmac_key_b64url, const char *url);

#endif
