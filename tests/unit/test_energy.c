/* Unit tests for detectors/energy: numpy/scipy vectors, edge cases, and
 * the false-alarm rate and power of the permutation test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "energy.h"
#include "testutil.h"

#define PERMUTATIONS 2000

struct vectors {
	size_t n, m, d;
	double statistic, p_value, p_permutations;
	float *x, *y;
};

static void expect_word(FILE *f, const char *word)
{
	char got[16];

	assert_int_equal(fscanf(f, " %15s", got), 1);
	assert_string_equal(got, word);
}

/* tests/data/energy_NAME.txt (format: see gen_energy_vectors.py). */
static void load_vectors(const char *name, struct vectors *v)
{
	char file[64];
	FILE *f;

	snprintf(file, sizeof file, "energy_%s.txt", name);
	f = open_data(file);
	assert_int_equal(fscanf(f, "%*[^\n] n %zu m %zu d %zu statistic %lf "
				"p_value %lf p_permutations %lf",
				&v->n, &v->m, &v->d, &v->statistic, &v->p_value,
				&v->p_permutations), 6);
	v->x = malloc(v->n * v->d * sizeof *v->x);
	v->y = malloc(v->m * v->d * sizeof *v->y);
	assert_non_null(v->x);
	assert_non_null(v->y);
	expect_word(f, "x");
	read_floats(f, v->x, v->n * v->d);
	expect_word(f, "y");
	read_floats(f, v->y, v->m * v->d);
	fclose(f);
}

static void check_vectors(const char *name)
{
	struct energy_params p = { .permutations = PERMUTATIONS, .seed = 11 };
	struct energy_result res;
	struct vectors v;

	load_vectors(name, &v);
	assert_int_equal(energy_test(v.x, v.n, v.y, v.m, v.d, &p, &res), 0);
	/* distances come from float32 Gram entries of centred rows */
	assert_close(res.statistic, v.statistic, 1e-4, 2e-5);
	assert_int_equal(res.permutations, PERMUTATIONS);
	double pe = v.p_value, var = pe * (1.0 - pe) *
		(1.0 / PERMUTATIONS + 1.0 / v.p_permutations);
	assert_close(res.p_value, pe, 0.0, 4.0 * sqrt(var) +
		     1.0 / PERMUTATIONS + 1.0 / v.p_permutations);
	print_message("%s: T %.6g (numpy %.6g), p %.4f (numpy %.4f)\n", name,
		      res.statistic, v.statistic, res.p_value, v.p_value);
	free(v.x);
	free(v.y);
}

static void test_vectors(void **state)
{
	check_vectors("null");
	check_vectors("shift");
	check_vectors("scale");
	check_vectors("univariate");
}

static void test_invalid_arguments(void **state)
{
	float pts[6] = { 0, 1, 2, 3, 4, 5 };
	struct energy_params p = { .permutations = 10 };
	struct energy_result res;
	size_t bytes;

	assert_int_equal(energy_test(pts, 1, pts, 3, 2, &p, &res), -EINVAL);
	assert_int_equal(energy_test(pts, 3, pts, 1, 2, &p, &res), -EINVAL);
	assert_int_equal(energy_test(pts, 3, pts, 3, 0, &p, &res), -EINVAL);
	assert_int_equal(energy_test(NULL, 3, pts, 3, 2, &p, &res), -EINVAL);
	assert_int_equal(energy_test(pts, 3, pts, 3, 2, &p, NULL), -EINVAL);
	assert_int_equal(energy_workspace_bytes(2, 2, 1, NULL, NULL), -EINVAL);
	assert_int_equal(energy_workspace_bytes(1000, 1000, 768, &p, &bytes), 0);
	assert_true(bytes >= 2000u * 2000u * 4u + 2000u * 768u * 4u);
	assert_int_equal(energy_workspace_bytes((size_t)1 << 40,
						(size_t)1 << 40, 8, &p, &bytes),
			 -EINVAL);
}

/* Every point the same: all distances 0, every split ties: T = 0, p = 1. */
static void test_identical_points(void **state)
{
	float pts[10 * 4];
	struct energy_params p = { .permutations = 99 };
	struct energy_result res;

	for (size_t i = 0; i < 40; i++)
		pts[i] = (float)(i % 4) * 1e3f;
	for (size_t i = 0; i < 10; i++)
		memcpy(pts + 4 * i, pts, 4 * sizeof *pts);
	assert_int_equal(energy_test(pts, 4, pts + 16, 6, 4, &p, &res), 0);
	assert_close(res.statistic, 0.0, 0.0, 1e-9);
	assert_true(res.p_value == 1.0);
}

/* y is x reordered: the observed split is typical, and reassignments that
 * are the same split in disguise must tie despite rounding: p = 1. */
static void test_duplicates_tie(void **state)
{
	enum { K = 6, D = 32 };
	float x[K * D], y[K * D];
	struct energy_params p = { .permutations = 299 };
	struct energy_result res;
	struct rng r;

	rng_init(&r, 3, 0);
	for (unsigned trial = 0; trial < 10; trial++) {
		fill_gauss(&r, x, K * D, -40.0, 1.0);
		for (size_t i = 0; i < K; i++)
			memcpy(y + i * D, x + ((i + 1 + trial) % K) * D,
			       D * sizeof *x);
		p.seed = trial;
		assert_int_equal(energy_test(x, K, y, K, D, &p, &res), 0);
		assert_true(res.p_value == 1.0);
	}
}

static void test_statistic_only_and_deterministic(void **state)
{
	struct energy_params p = { .permutations = 0 };
	struct energy_result a, b;
	struct vectors v;

	load_vectors("shift", &v);
	assert_int_equal(energy_test(v.x, v.n, v.y, v.m, v.d, &p, &a), 0);
	assert_true(isnan(a.p_value));
	assert_int_equal(a.permutations, 0);
	assert_close(a.statistic, v.statistic, 1e-4, 2e-5);
	p = (struct energy_params){ .permutations = 200, .seed = 4 };
	assert_int_equal(energy_test(v.x, v.n, v.y, v.m, v.d, &p, &a), 0);
	assert_int_equal(energy_test(v.x, v.n, v.y, v.m, v.d, &p, &b), 0);
	assert_true(a.statistic == b.statistic && a.p_value == b.p_value);
	free(v.x);
	free(v.y);
}

static double rejection_rate(size_t trials, double loc, double scale,
			     double alpha)
{
	enum { N = 30, D = 4 };
	float x[N * D], y[N * D];
	struct energy_params p = { .permutations = 199 };
	struct energy_result res;
	struct rng r;
	size_t hits = 0;

	rng_init(&r, 2027, 0);
	for (size_t t = 0; t < trials; t++) {
		fill_gauss(&r, x, N * D, 0.0, 1.0);
		fill_gauss(&r, y, N * D, loc, scale);
		p.seed = t;
		assert_int_equal(energy_test(x, N, y, N, D, &p, &res), 0);
		hits += res.p_value <= alpha;
	}
	return (double)hits / (double)trials;
}

/* B + 1 = 200 makes p <= 0.05 an exact level-0.05 event under the null. */
static void test_false_alarm_rate(void **state)
{
	const size_t trials = 1500;

	assert_rate_near("energy false alarms at 0.05",
			 rejection_rate(trials, 0.0, 1.0, 0.05), 0.05, trials);
}

static void test_power(void **state)
{
	double shift = rejection_rate(200, 0.6, 1.0, 0.05);
	double spread = rejection_rate(200, 0.0, 2.0, 0.05);

	print_message("energy power: shift 0.6 %.3f, scale x2 %.3f\n", shift,
		      spread);
	assert_true(shift >= 0.9);
	assert_true(spread >= 0.9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_identical_points),
		cmocka_unit_test(test_duplicates_tie),
		cmocka_unit_test(test_statistic_only_and_deterministic),
		cmocka_unit_test(test_false_alarm_rate),
		cmocka_unit_test(test_power),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
