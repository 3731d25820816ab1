/* Unit tests for detectors/rng: reference sequence, determinism, uniformity
 * and the absence of modulo bias. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "rng.h"

/* Computed with an independent Python transcription of splitmix64 seeding
 * and xoshiro256**; stream 7 folds mix64(7) into the seed. */
static void test_reference_sequence(void **state)
{
	const uint64_t stream0[] = { 0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
				     0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL };
	const uint64_t stream7[] = { 0x11a904479c05b3daULL, 0xcffd69429302c462ULL,
				     0x79e6a4245def3af9ULL, 0x501c914b15828b2bULL };
	struct rng a, b;

	rng_init(&a, 42, 0);
	rng_init(&b, 42, 7);
	for (size_t i = 0; i < 4; i++) {
		assert_true(rng_next(&a) == stream0[i]);
		assert_true(rng_next(&b) == stream7[i]);
	}
}

static void test_determinism(void **state)
{
	struct rng a, b, c;
	size_t same = 0;

	rng_init(&a, 123, 1);
	rng_init(&b, 123, 1);
	rng_init(&c, 124, 1);
	for (size_t i = 0; i < 1000; i++) {
		uint64_t va = rng_next(&a);

		assert_true(va == rng_next(&b));
		same += va == rng_next(&c);
	}
	assert_true(same == 0);
}

/* Pearson chi-square of counts against equal expected counts. */
static double chi_square(const unsigned *counts, size_t bins, size_t draws)
{
	double expect = (double)draws / (double)bins, chi = 0.0;

	for (size_t b = 0; b < bins; b++) {
		double diff = counts[b] - expect;

		chi += diff * diff / expect;
	}
	return chi;
}

/* Thresholds are far above the 99.99% quantiles: a fixed seed makes these
 * deterministic, they only have to catch gross errors. */
static void test_uniform_double(void **state)
{
	enum { DRAWS = 200000, BINS = 16 };
	unsigned counts[BINS] = { 0 };
	double sum = 0.0;
	struct rng r;

	rng_init(&r, 9, 0);
	for (size_t i = 0; i < DRAWS; i++) {
		double u = rng_uniform(&r);

		assert_true(u >= 0.0 && u < 1.0);
		sum += u;
		counts[(size_t)(u * BINS)]++;
	}
	assert_true(fabs(sum / DRAWS - 0.5) < 5.0 * sqrt(1.0 / 12.0 / DRAWS));
	assert_true(chi_square(counts, BINS, DRAWS) < 45.0); /* df 15 */
}

static void test_below_small_range(void **state)
{
	enum { DRAWS = 300000 };
	unsigned counts[7] = { 0 };
	struct rng r;

	rng_init(&r, 10, 0);
	for (size_t i = 0; i < DRAWS; i++) {
		uint64_t v = rng_below(&r, 7);

		assert_true(v < 7);
		counts[v]++;
	}
	assert_true(chi_square(counts, 7, DRAWS) < 30.0); /* df 6 */
	assert_true(rng_below(&r, 1) == 0);
	assert_true(rng_below(&r, 0) == 0);
}

/* For n = 3·2^62, x % n would put half of the draws below 2^62; unbiased
 * draws put a third there. */
static void test_below_no_modulo_bias(void **state)
{
	enum { DRAWS = 100000 };
	const uint64_t n = 3ULL << 62;
	size_t low = 0;
	struct rng r;

	rng_init(&r, 11, 0);
	for (size_t i = 0; i < DRAWS; i++) {
		uint64_t v = rng_below(&r, n);

		assert_true(v < n);
		low += v < (1ULL << 62);
	}
	assert_true(fabs((double)low / DRAWS - 1.0 / 3.0) < 0.01);
}

/* All 3! orders of a 3-element shuffle are equally likely. */
static void test_shuffle_uniform(void **state)
{
	enum { DRAWS = 60000 };
	unsigned counts[9] = { 0 };
	struct rng r;

	rng_init(&r, 12, 0);
	for (size_t i = 0; i < DRAWS; i++) {
		size_t idx[3] = { 0, 1, 2 };

		rng_shuffle(&r, idx, 3);
		assert_true(idx[0] + idx[1] + idx[2] == 3 && idx[0] != idx[1] &&
			    idx[1] != idx[2] && idx[0] != idx[2]);
		counts[idx[0] * 3 + idx[1]]++;
	}
	/* Codes 0, 4, 8 (idx[0] == idx[1]) cannot occur. */
	unsigned used[6] = { counts[1], counts[2], counts[3],
			     counts[5], counts[6], counts[7] };
	assert_true(chi_square(used, 6, DRAWS) < 30.0); /* df 5 */
}

/* The prefix is a uniform ordered selection and the whole array stays a
 * permutation of its input. */
static void test_shuffle_prefix(void **state)
{
	enum { LEN = 5, K = 2, DRAWS = 40000 };
	unsigned counts[LEN * LEN] = { 0 }, used[LEN * (LEN - 1)];
	size_t idx[LEN] = { 0, 1, 2, 3, 4 }, u = 0;
	struct rng r;

	rng_init(&r, 13, 0);
	for (size_t i = 0; i < DRAWS; i++) {
		unsigned seen = 0;

		rng_shuffle_prefix(&r, idx, LEN, K);
		for (size_t j = 0; j < LEN; j++)
			seen |= 1u << idx[j];
		assert_int_equal(seen, (1u << LEN) - 1);
		counts[idx[0] * LEN + idx[1]]++;
	}
	for (size_t a = 0; a < LEN; a++)
		for (size_t b = 0; b < LEN; b++)
			if (a != b)
				used[u++] = counts[a * LEN + b];
	assert_true(chi_square(used, LEN * (LEN - 1), DRAWS) < 60.0); /* df 19 */

	rng_shuffle_prefix(&r, idx, LEN, LEN + 3);
	rng_shuffle_prefix(&r, idx, 0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_sequence),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_uniform_double),
		cmocka_unit_test(test_below_small_range),
		cmocka_unit_test(test_below_no_modulo_bias),
		cmocka_unit_test(test_shuffle_uniform),
		cmocka_unit_test(test_shuffle_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
