#include "common/keyseal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/util.h"

#define MAGIC "HEEK1"
#define MAGIC_LEN 5
#define NONCE_LEN 12
#define TAG_LEN 16
#define OVERHEAD (MAGIC_LEN + NONCE_LEN + TAG_LEN)

struct keyseal {
    unsigned char key[KEYSEAL_KEY_LEN];
};

static char *errf(const char *path, const char *why)
{
    size_t n = strlen(path) + strlen(why) + 32;
    char *m = malloc(n);
    if (m)
        snprintf(m, n, "key_encryption_key %s: %s", path, why);
    return m;
}

keyseal_t *keyseal_new(const unsigned char key[KEYSEAL_KEY_LEN])
{
    keyseal_t *k = malloc(sizeof(*k));
    if (k)
        memcpy(k->key, key, KEYSEAL_KEY_LEN);
    return k;
}

void keyseal_free(keyseal_t *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k->key, sizeof(k->key));
    free(k);
}

/* 32 raw bytes, or 64 hex digits with an optional trailing newline. */
static int parse_key(const unsigned char *buf, size_t n, unsigned char out[KEYSEAL_KEY_LEN])
{
    if (n == KEYSEAL_KEY_LEN) {
        memcpy(out, buf, KEYSEAL_KEY_LEN);
        return 0;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n != 2 * KEYSEAL_KEY_LEN)
        return -1;
    for (size_t i = 0; i < KEYSEAL_KEY_LEN; i++) {
        int hi = util_hexval(buf[2 * i]), lo = util_hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

keyseal_t *keyseal_load(const char *path, char **err)
{
    unsigned char buf[2 * KEYSEAL_KEY_LEN + 4], key[KEYSEAL_KEY_LEN];
    keyseal_t *k = NULL;
    struct stat sb;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errf(path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        *err = errf(path, "not a regular file");
        goto out;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        *err = errf(path, "must not be accessible by group or others (chmod 600)");
        goto out;
    }
    n = read(fd, buf, sizeof(buf));
    if (n < 0 || parse_key(buf, (size_t)n, key) != 0) {
        *err = errf(path, "expected 32 raw bytes or 64 hex digits");
        goto out;
    }
    if (!(k = keyseal_new(key)))
        *err = errf(path, "out of memory");
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(key, sizeof(key));
    close(fd);
    return k;
}

int keyseal_is_sealed(const void *blob, size_t len)
{
    return blob && len >= OVERHEAD && memcmp(blob, MAGIC, MAGIC_LEN) == 0;
}

/* The additional authenticated data: magic, then the context. */
static int add_aad(EVP_CIPHER_CTX *cx, int enc, const char *context)
{
    int outl = 0;
    int ok = enc ? EVP_EncryptUpdate(cx, NULL, &outl, (const unsigned char *)MAGIC, MAGIC_LEN)
                 : EVP_DecryptUpdate(cx, NULL, &outl, (const unsigned char *)MAGIC, MAGIC_LEN);
    size_t cl = context ? strlen(context) : 0;
    if (ok == 1 && cl > 0)
        ok = enc ? EVP_EncryptUpdate(cx, NULL, &outl, (const unsigned char *)context, (int)cl)
                 : EVP_DecryptUpdate(cx, NULL, &outl, (const unsigned char *)context, (int)cl);
    return ok == 1 ? 0 : -1;
}

int keyseal_seal(const keyseal_t *k, const char *context, const void *plain, size_t len, unsigned char **out,
                 size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (!k || !plain || len > (1u << 20))
        return -1;
    unsigned char *b = malloc(len + OVERHEAD);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int outl = 0, fl = 0, rc = -1;
    if (!b || !cx)
        goto out;
    memcpy(b, MAGIC, MAGIC_LEN);
    unsigned char *nonce = b + MAGIC_LEN, *ct = nonce + NONCE_LEN, *tag = ct + len;
    if (util_random(nonce, NONCE_LEN) != 0 ||
        EVP_EncryptInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(cx, NULL, NULL, k->key, nonce) != 1 || add_aad(cx, 1, context) != 0 ||
        EVP_EncryptUpdate(cx, ct, &outl, plain, (int)len) != 1 || EVP_EncryptFinal_ex(cx, ct + outl, &fl) != 1 ||
        (size_t)(outl + fl) != len || EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    *out = b;
    *outlen = len + OVERHEAD;
    b = NULL;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(cx);
    free(b);
    return rc;
}

int keyseal_open(const keyseal_t *k, const char *context, const void *blob, size_t len, char **out,
                 size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (!k || !keyseal_is_sealed(blob, len))
        return -1;
    const unsigned char *nonce = (const unsigned char *)blob + MAGIC_LEN, *ct = nonce + NONCE_LEN;
    size_t ctlen = len - OVERHEAD;
    unsigned char tag[TAG_LEN];
    memcpy(tag, ct + ctlen, TAG_LEN);
    char *p = malloc(ctlen + 1);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int outl = 0, fl = 0, rc = -1;
    if (!p || !cx)
        goto out;
    if (EVP_DecryptInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(cx, NULL, NULL, k->key, nonce) != 1 || add_aad(cx, 0, context) != 0 ||
        EVP_DecryptUpdate(cx, (unsigned char *)p, &outl, ct, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(cx, (unsigned char *)p + outl, &fl) != 1 || (size_t)(outl + fl) != ctlen)
        goto out;
    p[ctlen] = '\0';
    *out = p;
    *outlen = ctlen;
    p = NULL;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(cx);
    keyseal_free_secret(p, ctlen + 1);
    return rc;
}

void keyseal_free_secret(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}
