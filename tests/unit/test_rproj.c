/* Unit tests for detectors/rproj: the projection is the stated sign
 * matrix (checked entry by entry through unit vectors), reproducible from
 * its seed, and keeps squared distances in expectation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "rproj.h"

/* Projecting the identity gives R itself: each entry +-1/sqrt(k), the
 * signs the bits of rng(seed, "rpj") in row-major order. */
static void test_matrix_from_seed(void **state)
{
	enum { DIM = 5, K = 40 };
	float eye[DIM * DIM] = { 0 }, r[DIM * K];
	struct rng g;
	uint64_t bits = 0;

	(void)state;
	for (int i = 0; i < DIM; i++)
		eye[i * DIM + i] = 1;
	assert_int_equal(rproj_apply(eye, DIM, DIM, K, 42, r), 0);
	rng_init(&g, 42, 0x72706aULL);
	for (int i = 0; i < DIM * K; i++) {
		float want;

		if (i % 64 == 0)
			bits = rng_next(&g);
		want = ((bits >> (i % 64)) & 1 ? 1.0f : -1.0f) / sqrtf((float)K);
		assert_true(r[i] == want);
	}
}

static void test_same_seed_same_projection(void **state)
{
	enum { N = 7, DIM = 33, K = 8 };
	float x[N * DIM], a[N * K], b[N * K], c[N * K];

	(void)state;
	for (int i = 0; i < N * DIM; i++)
		x[i] = (float)sin(i * 0.37);
	assert_int_equal(rproj_apply(x, N, DIM, K, 9, a), 0);
	assert_int_equal(rproj_apply(x, N, DIM, K, 9, b), 0);
	assert_int_equal(rproj_apply(x, N, DIM, K, 10, c), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, c, sizeof(a));
}

/* E||xR||^2 = ||x||^2: averaged over many seeds, within a few percent. */
static void test_norm_kept_in_expectation(void **state)
{
	enum { DIM = 64, K = 16, SEEDS = 400 };
	float x[DIM], y[K];
	double norm = 0, sum = 0;

	(void)state;
	for (int i = 0; i < DIM; i++) {
		x[i] = (float)cos(i * 1.3) + 0.5f;
		norm += (double)x[i] * (double)x[i];
	}
	for (uint64_t s = 0; s < SEEDS; s++) {
		assert_int_equal(rproj_apply(x, 1, DIM, K, s, y), 0);
		for (int j = 0; j < K; j++)
			sum += (double)y[j] * (double)y[j];
	}
	/* The estimate's relative sd is about sqrt(2/K)/sqrt(SEEDS) = 1.8%. */
	assert_true(fabs(sum / SEEDS / norm - 1) < 0.08);
}

static void test_bad_arguments(void **state)
{
	float x[4] = { 1, 2, 3, 4 }, y[4];

	(void)state;
	assert_int_equal(rproj_apply(x, 1, 0, 2, 1, y), -EINVAL);
	assert_int_equal(rproj_apply(x, 1, 4, 0, 1, y), -EINVAL);
	assert_int_equal(rproj_apply(x, 0, 4, 2, 1, y), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix_from_seed),
		cmocka_unit_test(test_same_seed_same_projection),
		cmocka_unit_test(test_norm_kept_in_expectation),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
