/* Unit tests for detectors/mmd: numpy/scipy vectors, edge cases, and the
 * validity (false-alarm rate) and power of the permutation test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmd.h"
#include "rng.h"

#define VECTOR_PERMUTATIONS 2000

struct vectors {
	size_t n, m, d;
	double bandwidth, statistic, p_value, p_permutations;
	float *x, *y;
};

static void read_rows(FILE *f, const char *label, float *rows, size_t count)
{
	char word[8];

	assert_int_equal(fscanf(f, " %7s", word), 1);
	assert_string_equal(word, label);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(fscanf(f, "%f", &rows[i]), 1);
}

/* Reads tests/data/mmd_NAME.txt (format: see gen_mmd_vectors.py). */
static void load_vectors(const char *name, struct vectors *v)
{
	const char *keys[] = { "bandwidth", "statistic", "p_value",
			       "p_permutations" };
	double *values[] = { &v->bandwidth, &v->statistic, &v->p_value,
			     &v->p_permutations };
	char path[512], key[32];
	FILE *f;

	snprintf(path, sizeof path, "%s/mmd_%s.txt", DETECTORS_TEST_DATA, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%*[^\n] n %zu m %zu d %zu", &v->n, &v->m,
				&v->d), 3);
	for (size_t k = 0; k < 4; k++) {
		assert_int_equal(fscanf(f, " %31s %lf", key, values[k]), 2);
		assert_string_equal(key, keys[k]);
	}
	v->x = malloc(v->n * v->d * sizeof *v->x);
	v->y = malloc(v->m * v->d * sizeof *v->y);
	assert_non_null(v->x);
	assert_non_null(v->y);
	read_rows(f, "x", v->x, v->n * v->d);
	read_rows(f, "y", v->y, v->m * v->d);
	fclose(f);
}

static void free_vectors(struct vectors *v)
{
	free(v->x);
	free(v->y);
}

static void assert_close(double got, double want, double rel, double abs_tol)
{
	double tol = rel * fabs(want) + abs_tol;

	if (!(fabs(got - want) <= tol))
		fail_msg("got %.10g, want %.10g (tolerance %.3g)", got, want,
			 tol);
}

/* Standard normal samples (Box–Muller), test data only. */
static void fill_gauss(struct rng *r, float *v, size_t len, double loc,
		       double scale)
{
	for (size_t i = 0; i < len; i++) {
		double radius = sqrt(-2.0 * log1p(-rng_uniform(r)));
		double angle = 2.0 * M_PI * rng_uniform(r);

		v[i] = (float)(loc + scale * radius * cos(angle));
	}
}

static void check_vectors(const char *name)
{
	struct mmd_params p = { .permutations = VECTOR_PERMUTATIONS,
				.seed = 7 };
	struct mmd_result res;
	struct vectors v;
	double h;
	bool fallback;

	load_vectors(name, &v);
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &res), 0);
	assert_close(res.bandwidth, v.bandwidth, 1e-6, 0.0);
	assert_false(res.bandwidth_fallback);
	/* Relative to the size of the kernel terms, as MMD² itself may be ~0. */
	assert_close(res.statistic, v.statistic, 1e-5, 1e-7);
	assert_int_equal(res.permutations, VECTOR_PERMUTATIONS);

	/* Both p-values are Monte Carlo estimates of the same exact p. */
	double pe = v.p_value, var = pe * (1.0 - pe) *
		(1.0 / VECTOR_PERMUTATIONS + 1.0 / v.p_permutations);
	assert_close(res.p_value, pe, 0.0, 4.0 * sqrt(var) +
		     1.0 / VECTOR_PERMUTATIONS + 1.0 / v.p_permutations);

	assert_int_equal(mmd_bandwidth(v.x, v.n, v.d, 0, 7, &h, &fallback), 0);
	assert_close(h, v.bandwidth, 1e-6, 0.0);
	assert_false(fallback);
	free_vectors(&v);
}

static void test_vectors_null(void **state)
{
	check_vectors("null");
}

static void test_vectors_shift(void **state)
{
	check_vectors("shift");
}

static void test_vectors_offset_scale(void **state)
{
	check_vectors("offset_scale");
}

/* No reassignment beats a strong shift: p is exactly the minimum. */
static void test_vectors_strong(void **state)
{
	struct mmd_params p = { .permutations = 999, .seed = 3 };
	struct mmd_result res;
	struct vectors v;

	check_vectors("strong");
	load_vectors("strong", &v);
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &res), 0);
	assert_true(res.p_value == 1.0 / 1000.0);
	free_vectors(&v);
}

static void test_invalid_arguments(void **state)
{
	float pts[3 * 2] = { 0, 1, 2, 3, 4, 5 };
	struct mmd_params p = { .permutations = 10 };
	struct mmd_result res;
	double h;
	bool fb;

	assert_int_equal(mmd_test(pts, 1, pts, 3, 2, &p, &res), -EINVAL);
	assert_int_equal(mmd_test(pts, 3, pts, 1, 2, &p, &res), -EINVAL);
	assert_int_equal(mmd_test(pts, 3, pts, 3, 0, &p, &res), -EINVAL);
	assert_int_equal(mmd_test(NULL, 3, pts, 3, 2, &p, &res), -EINVAL);
	assert_int_equal(mmd_test(pts, 3, NULL, 3, 2, &p, &res), -EINVAL);
	assert_int_equal(mmd_test(pts, 3, pts, 3, 2, &p, NULL), -EINVAL);
	p.bandwidth_max_points = 1;
	assert_int_equal(mmd_test(pts, 3, pts, 3, 2, &p, &res), -EINVAL);
	p.bandwidth_max_points = 0;
	p.bandwidth = -1.0;
	assert_int_equal(mmd_test(pts, 3, pts, 3, 2, &p, &res), -EINVAL);
	p.bandwidth = NAN;
	assert_int_equal(mmd_test(pts, 3, pts, 3, 2, &p, &res), -EINVAL);
	p.bandwidth = INFINITY;
	assert_int_equal(mmd_test(pts, 3, pts, 3, 2, &p, &res), -EINVAL);

	assert_int_equal(mmd_bandwidth(pts, 1, 2, 0, 0, &h, &fb), -EINVAL);
	assert_int_equal(mmd_bandwidth(pts, 3, 0, 0, 0, &h, &fb), -EINVAL);
	assert_int_equal(mmd_bandwidth(pts, 3, 2, 1, 0, &h, &fb), -EINVAL);
	assert_int_equal(mmd_bandwidth(NULL, 3, 2, 0, 0, &h, &fb), -EINVAL);
}

/* Identical points: median 0 -> h = 1 with the flag, every kernel value is
 * 1, MMD² is 0 for every assignment and all of them tie: p must be 1. */
static void test_identical_points(void **state)
{
	float pts[12 * 3];
	struct mmd_params p = { .permutations = 99 };
	struct mmd_result res;
	double h;
	bool fallback;

	for (size_t i = 0; i < 12; i++) {
		pts[3 * i] = 1.5f;
		pts[3 * i + 1] = -2.0f;
		pts[3 * i + 2] = 1e3f;
	}
	assert_int_equal(mmd_test(pts, 5, pts + 15, 7, 3, &p, &res), 0);
	assert_true(res.bandwidth_fallback);
	assert_true(res.bandwidth == 1.0);
	assert_close(res.statistic, 0.0, 0.0, 1e-12);
	assert_true(res.p_value == 1.0);
	assert_int_equal(mmd_bandwidth(pts, 12, 3, 0, 0, &h, &fallback), 0);
	assert_true(fallback);
	assert_true(h == 1.0);
}

/* y holds the points of x in another order, far from the origin: every
 * split is at least as unusual as the observed one (which pairs each point
 * with its own copy), and many random splits are the observed split in
 * disguise. Rounding in a different order must not break those ties: p is
 * exactly 1. */
static void test_duplicate_points_tie(void **state)
{
	enum { K = 5, D = 64 };
	float x[K * D], y[K * D];
	size_t order[K];
	struct rng r;
	struct mmd_params p = { .permutations = 499 };
	struct mmd_result res;

	rng_init(&r, 5, 0);
	for (unsigned trial = 0; trial < 10; trial++) {
		fill_gauss(&r, x, K * D, 100.0, 1.0);
		for (size_t i = 0; i < K; i++)
			order[i] = i;
		rng_shuffle(&r, order, K);
		for (size_t i = 0; i < K; i++)
			memcpy(y + i * D, x + order[i] * D, D * sizeof *x);
		p.seed = trial;
		assert_int_equal(mmd_test(x, K, y, K, D, &p, &res), 0);
		assert_true(res.p_value == 1.0);
	}
}

/* A given bandwidth is used as is; B = 0 gives the statistic alone. */
static void test_given_bandwidth_and_no_permutations(void **state)
{
	struct mmd_params p = { .permutations = 0, .seed = 1 };
	struct mmd_result res, fixed;
	struct vectors v;

	load_vectors("shift", &v);
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &res), 0);
	assert_true(isnan(res.p_value));
	assert_int_equal(res.permutations, 0);
	assert_close(res.statistic, v.statistic, 1e-5, 1e-7);

	p.bandwidth = v.bandwidth;
	p.permutations = 50;
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &fixed), 0);
	assert_true(fixed.bandwidth == v.bandwidth);
	assert_false(fixed.bandwidth_fallback);
	assert_close(fixed.statistic, v.statistic, 1e-5, 1e-7);

	p.bandwidth = 4.0 * v.bandwidth;
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &fixed), 0);
	assert_true(fixed.bandwidth == 4.0 * v.bandwidth);
	assert_true(fabs(fixed.statistic - res.statistic) > 1e-4);
	free_vectors(&v);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of squared distances among the subsample documented in mmd.h,
 * computed directly in double. */
static double subsample_median(const float *ref, size_t n, size_t d,
			       size_t k, uint64_t seed)
{
	size_t *idx = malloc(n * sizeof *idx), npairs = k * (k - 1) / 2, t = 0;
	double *sq = malloc(npairs * sizeof *sq), med;
	struct rng r;

	assert_non_null(idx);
	assert_non_null(sq);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	rng_init(&r, seed, MMD_STREAM_BANDWIDTH);
	rng_shuffle_prefix(&r, idx, n, k);
	for (size_t a = 0; a < k; a++)
		for (size_t b = a + 1; b < k; b++) {
			double s = 0.0;

			for (size_t j = 0; j < d; j++) {
				double diff = (double)ref[idx[a] * d + j] -
					      (double)ref[idx[b] * d + j];
				s += diff * diff;
			}
			sq[t++] = s;
		}
	qsort(sq, npairs, sizeof *sq, cmp_double);
	med = npairs % 2 ? sq[npairs / 2] :
			   0.5 * (sq[npairs / 2 - 1] + sq[npairs / 2]);
	free(idx);
	free(sq);
	return med;
}

/* Reference larger than bandwidth_max_points: the subsample is the one the
 * header documents, reproducible from the seed, and both entry points agree. */
static void test_bandwidth_subsample(void **state)
{
	const size_t n = 601, m = 50, d = 6, k = 120;
	float *x = malloc(n * d * sizeof *x), *y = malloc(m * d * sizeof *y);
	struct mmd_params p = { .permutations = 20, .seed = 99,
				.bandwidth_max_points = k };
	struct mmd_result res;
	double h, h_again, h_other, h_full;
	bool fb;
	struct rng r;

	assert_non_null(x);
	assert_non_null(y);
	rng_init(&r, 17, 0);
	fill_gauss(&r, x, n * d, 0.0, 1.0);
	fill_gauss(&r, y, m * d, 0.0, 1.0);

	assert_int_equal(mmd_bandwidth(x, n, d, k, 99, &h, &fb), 0);
	assert_int_equal(mmd_bandwidth(x, n, d, k, 99, &h_again, &fb), 0);
	assert_true(h == h_again);
	assert_close(h, subsample_median(x, n, d, k, 99), 1e-5, 0.0);

	assert_int_equal(mmd_test(x, n, y, m, d, &p, &res), 0);
	assert_close(res.bandwidth, h, 1e-5, 0.0);

	assert_int_equal(mmd_bandwidth(x, n, d, k, 100, &h_other, &fb), 0);
	assert_true(h_other != h);
	assert_close(h_other, subsample_median(x, n, d, k, 100), 1e-5, 0.0);

	/* A subsample estimates the full median: 2·d = 12 for N(0, I). */
	assert_int_equal(mmd_bandwidth(x, n, d, n, 0, &h_full, &fb), 0);
	assert_close(h_full, subsample_median(x, n, d, n, 0), 1e-5, 0.0);
	assert_close(h, h_full, 0.1, 0.0);
	free(x);
	free(y);
}

static void test_deterministic(void **state)
{
	struct mmd_params p = { .permutations = 300, .seed = 5 };
	struct mmd_result a, b;
	struct vectors v;

	load_vectors("offset_scale", &v);
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &a), 0);
	assert_int_equal(mmd_test(v.x, v.n, v.y, v.m, v.d, &p, &b), 0);
	assert_true(a.statistic == b.statistic && a.p_value == b.p_value &&
		    a.bandwidth == b.bandwidth);
	free_vectors(&v);
}

/* NaN is documented as the caller's to reject; it must not crash. */
static void test_nan_input_is_survivable(void **state)
{
	float pts[8 * 2] = { 0, 1, 2, NAN, 4, 5, 6, 7, 1, 1, 2, 2, NAN, 3, 0, 0 };
	struct mmd_params p = { .permutations = 30 };
	struct mmd_result res;

	assert_int_equal(mmd_test(pts, 4, pts + 8, 4, 2, &p, &res), 0);
}

static void test_workspace_bytes(void **state)
{
	struct mmd_params p = { .permutations = 500 };
	size_t bytes, n = 1000, pooled = 2000;

	assert_int_equal(mmd_workspace_bytes(n, n, 768, &p, &bytes), 0);
	assert_true(bytes >= pooled * pooled * 4 + pooled * 768 * 4);
	assert_true(bytes <= pooled * pooled * 4 + pooled * 768 * 4 +
			     pooled * 256 * 8 + n * n * 2 + 100000);
	assert_int_equal(mmd_workspace_bytes(1, n, 8, &p, &bytes), -EINVAL);
	assert_int_equal(mmd_workspace_bytes((1u << 30) - 1, (1u << 30) - 1,
					     8, &p, &bytes), -ENOMEM);
}

struct worker {
	const struct vectors *v;
	uint64_t seed;
	struct mmd_result res;
	int err;
};

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	struct mmd_params p = { .permutations = 400, .seed = w->seed };

	w->err = mmd_test(w->v->x, w->v->n, w->v->y, w->v->m, w->v->d, &p,
			  &w->res);
	return NULL;
}

/* The daemon runs tests from several worker threads at once. */
static void test_concurrent_calls(void **state)
{
	struct worker w[4];
	pthread_t tid[4];
	struct vectors v;

	load_vectors("shift", &v);
	for (size_t i = 0; i < 4; i++) {
		w[i] = (struct worker){ .v = &v, .seed = i };
		assert_int_equal(pthread_create(&tid[i], NULL, run_worker,
						&w[i]), 0);
	}
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	for (size_t i = 0; i < 4; i++) {
		struct worker alone = { .v = &v, .seed = i };

		run_worker(&alone);
		assert_int_equal(w[i].err, 0);
		assert_close(w[i].res.statistic, alone.res.statistic, 1e-9, 0.0);
		assert_true(w[i].res.p_value == alone.res.p_value);
	}
	free_vectors(&v);
}

/* Share of trials rejecting at level alpha (p <= alpha) for n = m = 40,
 * d = 5, B = 199, the window shifted by `shift` in every coordinate. */
static void rejection_rates(size_t trials, double shift, const double *alpha,
			    size_t levels, double *rate)
{
	enum { N = 40, D = 5 };
	float x[N * D], y[N * D];
	struct mmd_params p = { .permutations = 199 };
	struct mmd_result res;
	struct rng r;

	rng_init(&r, 2026, 0);
	memset(rate, 0, levels * sizeof *rate);
	for (size_t t = 0; t < trials; t++) {
		fill_gauss(&r, x, N * D, 0.0, 1.0);
		fill_gauss(&r, y, N * D, shift, 1.0);
		p.seed = t;
		assert_int_equal(mmd_test(x, N, y, N, D, &p, &res), 0);
		for (size_t l = 0; l < levels; l++)
			rate[l] += res.p_value <= alpha[l];
	}
	for (size_t l = 0; l < levels; l++)
		rate[l] /= (double)trials;
}

/* Validity: with B + 1 = 200 and these alphas, an exact permutation test
 * rejects with probability alpha. Too many rejections is the serious bug
 * (a liberal test); far too few means the permutations are not exchangeable
 * with the observed split. */
static void test_false_alarm_rate(void **state)
{
	const double alpha[] = { 0.01, 0.05, 0.10 };
	const size_t trials = 2000;
	double rate[3];

	rejection_rates(trials, 0.0, alpha, 3, rate);
	for (size_t l = 0; l < 3; l++) {
		double sd = sqrt(alpha[l] * (1.0 - alpha[l]) / (double)trials);

		print_message("false alarms at alpha %.2f: %.4f (band %.4f..%.4f)\n",
			      alpha[l], rate[l], alpha[l] - 4.0 * sd,
			      alpha[l] + 3.0 * sd);
		assert_true(rate[l] <= alpha[l] + 3.0 * sd);
		assert_true(rate[l] >= alpha[l] - 4.0 * sd);
	}
}

static void test_power(void **state)
{
	const double alpha = 0.05;
	double rate;

	rejection_rates(300, 0.5, &alpha, 1, &rate);
	print_message("power at alpha 0.05, shift 0.5: %.4f\n", rate);
	assert_true(rate >= 0.9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_null),
		cmocka_unit_test(test_vectors_shift),
		cmocka_unit_test(test_vectors_offset_scale),
		cmocka_unit_test(test_vectors_strong),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_identical_points),
		cmocka_unit_test(test_duplicate_points_tie),
		cmocka_unit_test(test_given_bandwidth_and_no_permutations),
		cmocka_unit_test(test_bandwidth_subsample),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_nan_input_is_survivable),
		cmocka_unit_test(test_workspace_bytes),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_false_alarm_rate),
		cmocka_unit_test(test_power),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
