/* Standard Webhooks signing with OpenSSL's EVP_MAC (see sign.h). */
#include "sign.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#define PREFIX "whsec_"
#define SHA256_LEN 32

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sign_key_decode(const char *whsec, struct sign_key *k)
{
	unsigned char buf[(SIGN_KEY_MAX + 2) / 3 * 3];
	const char *b64;
	size_t n, pad = 0;
	int got;

	if (strncmp(whsec, PREFIX, strlen(PREFIX)) != 0)
		return -EINVAL;
	b64 = whsec + strlen(PREFIX);
	n = strlen(b64);
	if (n == 0 || n % 4 || n / 4 * 3 > sizeof(buf))
		return -EINVAL;
	while (pad < 2 && b64[n - 1 - pad] == '=')
		pad++;
	/* EVP_DecodeBlock would skip blanks and count padding as zero bytes:
	 * check the alphabet here and drop the padding bytes below. */
	if (strspn(b64, b64_alphabet) != n - pad)
		return -EINVAL;
	got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got <= pad || (size_t)got - pad > SIGN_KEY_MAX)
		return -EINVAL;
	k->len = (size_t)got - pad;
	memcpy(k->bytes, buf, k->len);
	return 0;
}

static int hmac(const struct sign_key *k, const char *head, size_t head_len,
		const void *body, size_t len, unsigned char mac[SHA256_LEN])
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
	size_t out_len = 0;
	int rc = -EIO;

	if (!ctx) {
		rc = -ENOMEM;
		goto done;
	}
	if (EVP_MAC_init(ctx, k->bytes, k->len, params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)head, head_len) == 1 &&
	    EVP_MAC_update(ctx, body, len) == 1 &&
	    EVP_MAC_final(ctx, mac, &out_len, SHA256_LEN) == 1 &&
	    out_len == SHA256_LEN)
		rc = 0;
done:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(alg);
	return rc;
}

int sign_v1(const struct sign_key *k, const char *id, int64_t timestamp,
	    const void *body, size_t len, char out[SIGN_V1_LEN + 1])
{
	unsigned char mac[SHA256_LEN];
	char head[512];
	int head_len, rc;

	head_len = snprintf(head, sizeof(head), "%s.%" PRId64 ".", id, timestamp);
	if (head_len < 0 || (size_t)head_len >= sizeof(head))
		return -EINVAL;
	rc = hmac(k, head, (size_t)head_len, body, len, mac);
	if (rc < 0)
		return rc;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, SHA256_LEN);
	return 0;
}

int sign_header(const struct sign_key *keys, size_t n, const char *id,
		int64_t timestamp, const void *body, size_t len, char *out,
		size_t outlen)
{
	size_t used = 0;
	int rc;

	if (n == 0)
		return -EINVAL;
	if (outlen < n * (SIGN_V1_LEN + 1))
		return -ENOSPC;
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[used++] = ' ';
		rc = sign_v1(&keys[i], id, timestamp, body, len, out + used);
		if (rc < 0)
			return rc;
		used += SIGN_V1_LEN;
	}
	return 0;
}
