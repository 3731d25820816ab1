/* sign: the Standard Webhooks published example, a vector from Python's
 * hmac (tests/data/gen_sign_vectors.py), rotation headers, bad secrets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sign.h"

#define EXAMPLE_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define EXAMPLE_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define EXAMPLE_TS 1614265330
#define EXAMPLE_BODY "{\"test\": 2432232314}"
#define EXAMPLE_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define SECOND_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SECOND_BODY "{\"type\":\"test\",\"x\":\"\\u00e9\"}\n"
#define SECOND_SIG "v1,IOrMRL0NsYZ7S6nQRv3B7aky1D094DdJoy1R2Mv/SXc="

static void test_published_example(void **state)
{
	struct sign_key k;
	char sig[SIGN_V1_LEN + 1];

	(void)state;
	assert_int_equal(sign_key_decode(EXAMPLE_SECRET, &k), 0);
	assert_int_equal(k.len, 24);
	assert_int_equal(sign_v1(&k, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				 strlen(EXAMPLE_BODY), sig), 0);
	assert_string_equal(sig, EXAMPLE_SIG);
}

static void test_python_vector(void **state)
{
	struct sign_key k;
	char sig[SIGN_V1_LEN + 1];

	(void)state;
	assert_int_equal(sign_key_decode(SECOND_SECRET, &k), 0);
	assert_int_equal(k.len, 32);
	for (size_t i = 0; i < k.len; i++)
		assert_int_equal(k.bytes[i], i);
	assert_int_equal(sign_v1(&k, "msg_2", 1700000000, SECOND_BODY,
				 strlen(SECOND_BODY), sig), 0);
	assert_string_equal(sig, SECOND_SIG);
}

/* Every byte of the body counts, and so do the id and the timestamp. */
static void test_inputs_change_the_signature(void **state)
{
	struct sign_key k;
	char a[SIGN_V1_LEN + 1], b[SIGN_V1_LEN + 1];

	(void)state;
	assert_int_equal(sign_key_decode(EXAMPLE_SECRET, &k), 0);
	assert_int_equal(sign_v1(&k, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				 strlen(EXAMPLE_BODY) - 1, a), 0);
	assert_string_not_equal(a, EXAMPLE_SIG);
	assert_int_equal(sign_v1(&k, EXAMPLE_ID, EXAMPLE_TS + 1, EXAMPLE_BODY,
				 strlen(EXAMPLE_BODY), b), 0);
	assert_string_not_equal(b, EXAMPLE_SIG);
	assert_string_not_equal(a, b);
	/* A NUL inside the body is signed like any other byte. */
	assert_int_equal(sign_v1(&k, "m", 1, "a\0b", 3, a), 0);
	assert_int_equal(sign_v1(&k, "m", 1, "a\0c", 3, b), 0);
	assert_string_not_equal(a, b);
}

static void test_rotation_header(void **state)
{
	struct sign_key keys[2];
	char hdr[2 * (SIGN_V1_LEN + 1)];

	(void)state;
	assert_int_equal(sign_key_decode(EXAMPLE_SECRET, &keys[0]), 0);
	assert_int_equal(sign_key_decode(SECOND_SECRET, &keys[1]), 0);
	assert_int_equal(sign_header(keys, 2, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				     strlen(EXAMPLE_BODY), hdr, sizeof(hdr)), 0);
	assert_int_equal(strlen(hdr), 2 * SIGN_V1_LEN + 1);
	assert_memory_equal(hdr, EXAMPLE_SIG " ", SIGN_V1_LEN + 1);
	assert_int_equal(sign_header(keys, 1, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				     strlen(EXAMPLE_BODY), hdr, sizeof(hdr)), 0);
	assert_string_equal(hdr, EXAMPLE_SIG);
	assert_int_equal(sign_header(keys, 2, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				     strlen(EXAMPLE_BODY), hdr, sizeof(hdr) - 1), -ENOSPC);
	assert_int_equal(sign_header(keys, 0, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY,
				     strlen(EXAMPLE_BODY), hdr, sizeof(hdr)), -EINVAL);
}

static void test_bad_secrets(void **state)
{
	static const char *const bad[] = {
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL Sw",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",
		"whsec_====",
		/* 66 bytes: over SIGN_KEY_MAX */
		"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKiss"
		"LS4vMDEyMzQ1Njc4OTo7PD0+P0BB",
	};
	struct sign_key k;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sign_key_decode(bad[i], &k) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(sign_key_decode("whsec_c2hvcnQ=", &k), 0);
	assert_int_equal(k.len, 5);
	assert_memory_equal(k.bytes, "short", 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_example),
		cmocka_unit_test(test_python_vector),
		cmocka_unit_test(test_inputs_change_the_signature),
		cmocka_unit_test(test_rotation_header),
		cmocka_unit_test(test_bad_secrets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
