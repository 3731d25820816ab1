/* sign: Standard Webhooks signatures (prefix sign_).  A signature is
 * "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being
 * the bytes of a "whsec_<base64>" secret.  Pure computation, thread-safe.
 * Errors: 0 or a negative errno. */
#ifndef DRIFTD_SIGN_H
#define DRIFTD_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_KEY_MAX 64
/* "v1," and the base64 of 32 bytes. */
#define SIGN_V1_LEN (3 + 44)

struct sign_key {
	unsigned char bytes[SIGN_KEY_MAX];
	size_t len;
};

/* Decodes "whsec_<base64>" (standard alphabet, padded).  -EINVAL when the
 * prefix or the base64 is wrong or the key is empty or over SIGN_KEY_MAX. */
int sign_key_decode(const char *whsec, struct sign_key *k);

/* One signature, NUL-terminated, into out.  -ENOMEM, -EIO (OpenSSL). */
int sign_v1(const struct sign_key *k, const char *id, int64_t timestamp,
	    const void *body, size_t len, char out[SIGN_V1_LEN + 1]);

/* The webhook-signature header: one v1 signature per key, space separated,
 * so a receiver holding either the old or the new secret of a rotation
 * accepts the message.  -ENOSPC when outlen is short (n * (SIGN_V1_LEN + 1)
 * always suffices), -EINVAL when n is 0. */
int sign_header(const struct sign_key *keys, size_t n, const char *id,
		int64_t timestamp, const void *body, size_t len, char *out,
		size_t outlen);

#endif
