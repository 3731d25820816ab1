/* Unit tests for detectors/scores: scipy vectors for KS, PSI, JS, W1 and
 * χ², the χ² tail, edge cases, false alarms and power. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scores.h"
#include "testutil.h"

static void expect_key(FILE *f, const char *key, double *v)
{
	char got[32];

	assert_int_equal(fscanf(f, " %31s %lf", got, v), 2);
	assert_string_equal(got, key);
}

static void check_case(const char *name)
{
	char file[64], word[8];
	size_t n, m;
	unsigned k;
	double ks_d, ks_p, psi, js, w1, chi2, chi2_p, dof;
	struct sc_result res;
	FILE *f;

	snprintf(file, sizeof file, "scores_%s.txt", name);
	f = open_data(file);
	assert_int_equal(fscanf(f, "%zu %zu %u", &n, &m, &k), 3);
	expect_key(f, "ks_d", &ks_d);
	expect_key(f, "ks_p", &ks_p);
	expect_key(f, "psi", &psi);
	expect_key(f, "js", &js);
	expect_key(f, "w1", &w1);
	expect_key(f, "chi2", &chi2);
	expect_key(f, "chi2_p", &chi2_p);
	expect_key(f, "chi2_dof", &dof);

	float *ref = malloc(n * k * sizeof *ref), *win = malloc(m * k * sizeof *win);

	assert_non_null(ref);
	assert_non_null(win);
	assert_int_equal(fscanf(f, " %7s", word), 1);
	read_floats(f, ref, n * k);
	assert_int_equal(fscanf(f, " %7s", word), 1);
	read_floats(f, win, m * k);
	fclose(f);

	assert_int_equal(sc_compare(ref, n, win, m, k, NULL, &res), 0);
	print_message("%s: D %.4g p %.4g psi %.4g js %.4g w1 %.4g chi2 %.4g "
		      "p %.4g\n", name, res.ks.statistic, res.ks.p_value,
		      res.psi, res.js, res.wasserstein, res.chi2, res.chi2_p);
	assert_close(res.ks.statistic, ks_d, 1e-12, 0.0);
	assert_close(res.ks.p_value, ks_p, 0.0, 2e-6);
	assert_close(res.psi, psi, 1e-9, 1e-12);
	assert_close(res.js, js, 1e-9, 1e-12);
	assert_close(res.wasserstein, w1, 1e-9, 1e-12);
	assert_close(res.chi2, chi2, 1e-9, 1e-12);
	assert_close(res.chi2_p, chi2_p, 1e-8, 1e-14);
	assert_int_equal(res.chi2_dof, (unsigned)dof);
	free(ref);
	free(win);
}

static void test_vectors(void **state)
{
	check_case("binary");
	check_case("multiclass");
	check_case("ties");
	check_case("constant");
}

static void test_chi2_sf(void **state)
{
	FILE *f = open_data("chi2_sf.txt");
	double x, dof, p;
	size_t rows = 0;

	while (fscanf(f, "%lf %lf %lf", &x, &dof, &p) == 3) {
		assert_close(sc_chi2_sf(x, dof), p, 1e-10, 1e-300);
		rows++;
	}
	fclose(f);
	assert_int_equal(rows, 54);
	assert_true(isnan(sc_chi2_sf(1.0, 0.0)));
	assert_true(isnan(sc_chi2_sf(-1.0, 2.0)));
	assert_true(isnan(sc_chi2_sf(NAN, 2.0)));
	assert_true(sc_chi2_sf(INFINITY, 2.0) == 0.0);
}

static void test_values_and_classes(void **state)
{
	const float bin[4] = { 0.2f, 0.5f, 0.49f, 1.0f };
	const float multi[3 * 3] = { 0.2f, 0.5f, 0.3f, 0.4f, 0.4f, 0.2f,
				     0.1f, 0.1f, 0.8f };
	float v[4];
	unsigned c[4];

	assert_int_equal(sc_values(bin, 4, 1, v), 0);
	assert_true(v[0] == 0.2f && v[3] == 1.0f);
	assert_int_equal(sc_classes(bin, 4, 1, c), 0);
	assert_true(c[0] == 0 && c[1] == 1 && c[2] == 0 && c[3] == 1);
	assert_int_equal(sc_values(multi, 3, 3, v), 0);
	assert_true(v[0] == 0.5f && v[1] == 0.4f && v[2] == 0.8f);
	assert_int_equal(sc_classes(multi, 3, 3, c), 0);
	assert_true(c[0] == 1 && c[1] == 0 && c[2] == 2); /* first of a tie */
	assert_int_equal(sc_values(bin, 4, 0, v), -EINVAL);
	assert_int_equal(sc_classes(bin, 4, SC_MAX_CLASSES + 1, c), -EINVAL);
}

static void test_edges(void **state)
{
	const float s[3] = { 0.1f, 0.2f, 0.3f };
	struct sc_params p = { .bins = 1 };
	struct sc_result res;
	size_t a[2] = { 3, 0 }, b[2] = { 5, 0 };
	double stat, pv, w1, psi, js;
	unsigned dof;

	assert_int_equal(sc_compare(s, 0, s, 3, 1, NULL, &res), -EINVAL);
	assert_int_equal(sc_compare(s, 3, s, 0, 1, NULL, &res), -EINVAL);
	assert_int_equal(sc_compare(s, 3, s, 3, 0, NULL, &res), -EINVAL);
	assert_int_equal(sc_compare(s, 3, s, 3, 1, &p, &res), -EINVAL);
	p = (struct sc_params){ .epsilon = -1.0 };
	assert_int_equal(sc_compare(s, 3, s, 3, 1, &p, &res), -EINVAL);
	/* one record each, one class seen: defined values */
	assert_int_equal(sc_compare(s, 1, s + 2, 1, 1, NULL, &res), 0);
	assert_true(res.ks.statistic == 1.0 && res.chi2_p == 1.0 &&
		    res.chi2_dof == 0);
	assert_close(res.wasserstein, 0.2, 1e-7, 0.0);
	assert_int_equal(sc_chi2(a, b, 2, &stat, &pv, &dof), 0);
	assert_true(stat == 0.0 && pv == 1.0 && dof == 0);
	assert_int_equal(sc_chi2(a, b, 0, &stat, &pv, &dof), -EINVAL);
	assert_int_equal(sc_wasserstein_sorted(s, 3, s, 3, &w1), 0);
	assert_true(w1 == 0.0);
	assert_int_equal(sc_psi_js(s, 3, s, 3, NULL, &psi, &js), 0);
	assert_true(psi == 0.0 && js == 0.0);
	/* extreme but finite values */
	const float huge[2] = { -3e38f, 3e38f };

	assert_int_equal(sc_compare(huge, 2, huge, 2, 1, NULL, &res), 0);
	assert_true(res.psi == 0.0 && isfinite(res.wasserstein));
}

/* Null: both samples Beta(2,2) scores; alternative: window Beta(2.6,2). */
static void rates(size_t trials, double shape, double *ks, double *chi2,
		  double *psi_mean)
{
	enum { N = 150 };
	float ref[N], win[N];
	struct sc_result res;
	struct rng r;
	size_t hits_ks = 0, hits_chi2 = 0;
	double psi = 0.0;

	rng_init(&r, 5, 0);
	for (size_t t = 0; t < trials; t++) {
		for (size_t i = 0; i < N; i++) {
			/* Beta(a, 2) as a ratio of Gamma draws is overkill:
			 * the max of two uniforms is Beta(2,1); powers of a
			 * uniform give Beta(a,1). */
			ref[i] = (float)pow(rng_uniform(&r), 1.0 / 2.0);
			win[i] = (float)pow(rng_uniform(&r), 1.0 / shape);
		}
		assert_int_equal(sc_compare(ref, N, win, N, 1, NULL, &res), 0);
		hits_ks += res.ks.p_value <= 0.05;
		hits_chi2 += res.chi2_p <= 0.05;
		psi += res.psi;
	}
	*ks = (double)hits_ks / (double)trials;
	*chi2 = (double)hits_chi2 / (double)trials;
	*psi_mean = psi / (double)trials;
}

static double ks_exact_size(size_t n, double alpha)
{
	double best = 0.0;

	for (size_t h = 1; h <= n; h++) {
		double p = ks_p_value(n, n, (double)h / (double)n);

		if (p <= alpha)
			best = fmax(best, p);
	}
	return best;
}

static void test_false_alarms(void **state)
{
	const size_t trials = 2000;
	double ks, chi2, psi;

	rates(trials, 2.0, &ks, &chi2, &psi);
	assert_rate_near("scores KS false alarms", ks, ks_exact_size(150, 0.05),
			 trials);
	/* χ² is asymptotic; with ~75 per cell it is close to nominal */
	assert_rate_near("scores chi2 false alarms", chi2, 0.05, trials);
	/* 2n·PSI is about χ²(bins - 1) under the null: mean 9·2/150 */
	print_message("mean PSI under the null: %.4f (theory %.4f)\n", psi,
		      9.0 * 2.0 / 150.0);
	assert_close(psi, 9.0 * 2.0 / 150.0, 0.15, 0.0);
}

static void test_power(void **state)
{
	double ks, chi2, psi;

	rates(200, 4.0, &ks, &chi2, &psi);
	print_message("power: KS %.3f chi2 %.3f, mean PSI %.3f\n", ks, chi2, psi);
	assert_true(ks >= 0.95);
	assert_true(chi2 >= 0.9);
	assert_true(psi > 0.2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_chi2_sf),
		cmocka_unit_test(test_values_and_classes),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_false_alarms),
		cmocka_unit_test(test_power),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
