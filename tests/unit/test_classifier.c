/* Unit tests for detectors/classifier: sklearn vectors for the logistic
 * fit and the AUC, edge cases, false-alarm rate and power. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "testutil.h"

static void check_fit(const char *name)
{
	char file[64];
	size_t n, d;
	double l2, b_want, b;
	unsigned iters;
	FILE *f;

	snprintf(file, sizeof file, "classifier_fit_%s.txt", name);
	f = open_data(file);
	assert_int_equal(fscanf(f, "%zu %zu %lf b %lf w", &n, &d, &l2, &b_want), 4);
	double *w_want = malloc(d * sizeof(double)), *w = malloc(d * sizeof(double));
	float *a = malloc(n * d * sizeof *a);
	unsigned char *t = malloc(n);

	assert_non_null(w_want);
	assert_non_null(w);
	assert_non_null(a);
	assert_non_null(t);
	for (size_t j = 0; j < d; j++)
		assert_int_equal(fscanf(f, "%lf", &w_want[j]), 1);
	for (size_t i = 0; i < n; i++) {
		unsigned label;

		assert_int_equal(fscanf(f, "%u", &label), 1);
		t[i] = (unsigned char)label;
		read_floats(f, a + i * d, d);
	}
	fclose(f);
	assert_int_equal(clf_fit(a, t, n, d, l2, 2000, 1e-9, w, &b, &iters), 0);
	print_message("%s: %u iterations, b %.6g (sklearn %.6g)\n", name,
		      iters, b, b_want);
	/* gradients come from float32 products: agreement to ~1e-5 */
	for (size_t j = 0; j < d; j++)
		assert_close(w[j], w_want[j], 1e-4, 2e-5);
	assert_close(b, b_want, 1e-4, 2e-5);
	free(w_want);
	free(w);
	free(a);
	free(t);
}

static void test_fit_vectors(void **state)
{
	check_fit("separable_ish");
	check_fit("weak");
	check_fit("tiny_penalty");
}

static void test_auc_vector(void **state)
{
	FILE *f = open_data("classifier_auc.txt");
	size_t n;
	double want;

	assert_int_equal(fscanf(f, "%zu %lf", &n, &want), 2);
	double *s = malloc(n * sizeof *s);
	unsigned char *t = malloc(n);

	assert_non_null(s);
	assert_non_null(t);
	for (size_t i = 0; i < n; i++) {
		unsigned label;

		assert_int_equal(fscanf(f, "%u %lf", &label, &s[i]), 2);
		t[i] = (unsigned char)label;
	}
	fclose(f);
	assert_close(clf_auc(s, t, n), want, 1e-12, 0.0);
	memset(t, 1, n);
	assert_true(isnan(clf_auc(s, t, n)));
	assert_true(isnan(clf_auc(s, t, 0)));
	free(s);
	free(t);
}

static void test_errors_and_edges(void **state)
{
	float x[4 * 3] = { 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3 };
	struct clf_params p = { .holdout = 1.0 };
	struct clf_result res;
	double w[3], b;

	assert_int_equal(clf_test(x, 1, x, 2, 3, NULL, &res), -EINVAL);
	assert_int_equal(clf_test(x, 2, x, 2, 0, NULL, &res), -EINVAL);
	assert_int_equal(clf_test(x, 2, x, 2, 3, &p, &res), -EINVAL);
	p = (struct clf_params){ .l2 = -1.0 };
	assert_int_equal(clf_test(x, 2, x, 2, 3, &p, &res), -EINVAL);
	assert_int_equal(clf_fit(x, NULL, 4, 3, 0.1, 10, 0.0, w, &b, NULL),
			 -EINVAL);
	/* all points identical, constant coordinates: AUC 1/2, p = 1 */
	p = (struct clf_params){ .permutations = 99 };
	assert_int_equal(clf_test(x, 2, x + 6, 2, 3, &p, &res), 0);
	assert_true(res.auc == 0.5);
	assert_true(res.p_value == 1.0);
	assert_int_equal(res.train, 2);
	assert_int_equal(res.test, 2);
}

static void sample(struct rng *r, float *v, size_t n, size_t d, double shift)
{
	fill_gauss(r, v, n * d, 0.0, 1.0);
	for (size_t i = 0; i < n; i++)
		v[i * d] += (float)shift;
}

static void test_deterministic_and_sizes(void **state)
{
	enum { N = 90, M = 50, D = 7 };
	float x[N * D], y[M * D];
	struct clf_params p = { .permutations = 200, .seed = 9 };
	struct clf_result a, b;
	struct rng r;

	rng_init(&r, 21, 0);
	sample(&r, x, N, D, 0.0);
	sample(&r, y, M, D, 2.0);
	assert_int_equal(clf_test(x, N, y, M, D, &p, &a), 0);
	assert_int_equal(clf_test(x, N, y, M, D, &p, &b), 0);
	assert_true(a.auc == b.auc && a.p_value == b.p_value);
	assert_int_equal(a.test, 45 + 25);
	assert_int_equal(a.train, N + M - 70);
	assert_int_equal(a.permutations, 200);
	assert_true(a.iterations > 0);
	print_message("shift 2 in one coordinate: AUC %.3f p %.4f\n", a.auc,
		      a.p_value);
	assert_true(a.auc > 0.7 && a.p_value < 0.01);
	p.permutations = 0;
	assert_int_equal(clf_test(x, N, y, M, D, &p, &b), 0);
	assert_true(isnan(b.p_value) && b.auc == a.auc);
}

static double rejection_rate(size_t trials, double shift)
{
	enum { N = 60, D = 5 };
	float x[N * D], y[N * D];
	struct clf_params p = { .permutations = 199 };
	struct clf_result res;
	struct rng r;
	size_t hits = 0;

	rng_init(&r, 4242, 0);
	for (size_t t = 0; t < trials; t++) {
		sample(&r, x, N, D, 0.0);
		sample(&r, y, N, D, shift);
		p.seed = t;
		assert_int_equal(clf_test(x, N, y, N, D, &p, &res), 0);
		hits += res.p_value <= 0.05;
	}
	return (double)hits / (double)trials;
}

static void test_false_alarm_rate(void **state)
{
	const size_t trials = 1500;

	assert_rate_near("classifier false alarms at 0.05",
			 rejection_rate(trials, 0.0), 0.05, trials);
}

static void test_power(void **state)
{
	double rate = rejection_rate(200, 1.2);

	print_message("classifier power, shift 1.2 in one of 5 coordinates: "
		      "%.3f\n", rate);
	assert_true(rate >= 0.9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fit_vectors),
		cmocka_unit_test(test_auc_vector),
		cmocka_unit_test(test_errors_and_edges),
		cmocka_unit_test(test_deterministic_and_sizes),
		cmocka_unit_test(test_false_alarm_rate),
		cmocka_unit_test(test_power),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
