/* Unit tests for detectors/projection: the matrix's distribution,
 * distance preservation, reproducibility, and that the MMD test keeps
 * its validity and power on projected data. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmd.h"
#include "projection.h"
#include "testutil.h"

static void test_matrix(void **state)
{
	enum { D = 300, K = 200 };
	float *r = malloc(D * K * sizeof *r), *again = malloc(D * K * sizeof *r);
	double sum = 0.0, sq = 0.0;

	assert_non_null(r);
	assert_non_null(again);
	assert_int_equal(proj_matrix(D, K, 5, r), 0);
	for (size_t i = 0; i < D * K; i++) {
		sum += (double)r[i];
		sq += (double)r[i] * (double)r[i];
	}
	/* ±1/sqrt(k), each sign half the time: mean 0, every square 1/k */
	assert_close(sum / (D * K), 0.0, 0.0, 4.0 * sqrt(1.0 / K / (D * K)));
	assert_close(sq / (D * K), 1.0 / K, 1e-6, 0.0);
	for (size_t i = 0; i < D * K; i++)
		assert_close(fabs((double)r[i]), 1.0 / sqrt(K), 1e-6, 0.0);
	assert_int_equal(proj_matrix(D, K, 5, again), 0);
	assert_memory_equal(r, again, D * K * sizeof *r);
	assert_int_equal(proj_matrix(D, K, 6, again), 0);
	assert_true(memcmp(r, again, D * K * sizeof *r) != 0);
	assert_int_equal(proj_matrix(0, K, 5, r), -EINVAL);
	assert_int_equal(proj_matrix(D, 0, 5, r), -EINVAL);
	assert_int_equal(proj_apply(r, 0, D, r, K, again), -EINVAL);
	free(r);
	free(again);
}

/* Squared distances between projected points stay within a few
 * 1/sqrt(k) of the originals. */
static void test_distances(void **state)
{
	enum { N = 20, D = 1024, K = 256 };
	float *x = malloc(N * D * sizeof *x), *xp, *yp;
	struct rng g;
	double worst = 0.0;

	assert_non_null(x);
	rng_init(&g, 8, 0);
	fill_gauss(&g, x, N * D, 0.0, 1.0);
	assert_int_equal(proj_pair(x, N, x, 1, D, K, 1, &xp, &yp), 0);
	for (size_t i = 0; i < N; i++)
		for (size_t j = i + 1; j < N; j++) {
			double a = 0.0, b = 0.0;

			for (size_t t = 0; t < D; t++) {
				double diff = (double)x[i * D + t] - (double)x[j * D + t];

				a += diff * diff;
			}
			for (size_t t = 0; t < K; t++) {
				double diff = (double)xp[i * K + t] - (double)xp[j * K + t];

				b += diff * diff;
			}
			worst = fmax(worst, fabs(b / a - 1.0));
		}
	print_message("largest relative change of a squared distance: %.3f "
		      "(k = %d)\n", worst, K);
	assert_true(worst < 5.0 * sqrt(2.0 / K));
	/* y's first row is x's first row: same matrix (BLAS may round a
	 * one-row product differently) */
	for (size_t t = 0; t < K; t++)
		assert_close(yp[t], xp[t], 1e-5, 1e-5);
	free(x);
	free(xp);
	free(yp);
}

/* MMD on projected data: still exact under the null (the projection does
 * not look at the labels), still powerful for a mean shift. */
static double mmd_rate(size_t trials, double shift, size_t k)
{
	enum { N = 30, D = 128 };
	float *x = malloc(N * D * sizeof *x), *y = malloc(N * D * sizeof *y);
	struct mmd_params p = { .permutations = 199 };
	struct mmd_result res;
	struct rng g;
	size_t hits = 0;

	assert_non_null(x);
	assert_non_null(y);
	rng_init(&g, 30, 0);
	for (size_t t = 0; t < trials; t++) {
		float *xp, *yp;

		fill_gauss(&g, x, N * D, 0.0, 1.0);
		fill_gauss(&g, y, N * D, shift, 1.0);
		assert_int_equal(proj_pair(x, N, y, N, D, k, t, &xp, &yp), 0);
		p.seed = t;
		assert_int_equal(mmd_test(xp, N, yp, N, k, &p, &res), 0);
		hits += res.p_value <= 0.05;
		free(xp);
		free(yp);
	}
	free(x);
	free(y);
	return (double)hits / (double)trials;
}

static void test_mmd_after_projection(void **state)
{
	const size_t trials = 600;
	double power = mmd_rate(100, 0.5, 16);

	assert_rate_near("projected MMD false alarms", mmd_rate(trials, 0.0, 16),
			 0.05, trials);
	print_message("projected MMD (128 -> 16) power, shift 0.5: %.3f\n",
		      power);
	assert_true(power >= 0.9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix),
		cmocka_unit_test(test_distances),
		cmocka_unit_test(test_mmd_after_projection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
