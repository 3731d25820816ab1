/* Unit tests for detectors/correct: adjusted p-values against numpy vectors
 * (tests/data/gen_correct_vectors.py), threshold decisions against adjusted
 * p-values, argument checks, and the FDR guarantee of Benjamini–Hochberg
 * checked by simulation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correct.h"
#include "rng.h"

#define MAX_ALPHAS 8
/* NAN is a float; spelled out so -Wdouble-promotion stays quiet. */
#define DNAN ((double)NAN)

struct vcase {
	char name[64];
	size_t n;
	double *p, *bh, *bonferroni;
};

struct vectors {
	double alphas[MAX_ALPHAS];
	size_t n_alphas;
	struct vcase *cases;
	size_t n_cases;
};

/* Parses "KEY v1 v2 ..." into exactly N doubles ("nan" for NaN). */
static void parse_values(char *line, const char *key, double *out, size_t n)
{
	char *tok = strtok(line, " \n"), *end;

	assert_non_null(tok);
	assert_string_equal(tok, key);
	for (size_t i = 0; i < n; i++) {
		tok = strtok(NULL, " \n");
		assert_non_null(tok);
		out[i] = strtod(tok, &end);
		assert_true(*end == '\0');
	}
	assert_null(strtok(NULL, " \n"));
}

static char *next_line(FILE *f, char **buf, size_t *cap)
{
	while (getline(buf, cap, f) >= 0)
		if ((*buf)[0] != '#')
			return *buf;
	return NULL;
}

/* Reads tests/data/correct_vectors.txt (format: gen_correct_vectors.py). */
static int load_vectors(void **state)
{
	struct vectors *v = calloc(1, sizeof(*v));
	char path[512], *line = NULL, *tok;
	size_t cap = 0;
	FILE *f;

	assert_non_null(v);
	snprintf(path, sizeof(path), "%s/correct_vectors.txt",
		 DETECTORS_TEST_DATA);
	f = fopen(path, "r");
	if (!f) {
		print_error("cannot open %s\n", path);
		free(v);
		return -1;
	}
	assert_non_null(next_line(f, &line, &cap));
	tok = strtok(line, " \n");
	assert_string_equal(tok, "alphas");
	while ((tok = strtok(NULL, " \n"))) {
		assert_true(v->n_alphas < MAX_ALPHAS);
		v->alphas[v->n_alphas++] = strtod(tok, NULL);
	}
	while (next_line(f, &line, &cap)) {
		struct vcase *c;

		v->cases = realloc(v->cases, (v->n_cases + 1) * sizeof(*c));
		assert_non_null(v->cases);
		c = &v->cases[v->n_cases++];
		assert_int_equal(sscanf(line, "case %63s %zu", c->name, &c->n),
				 2);
		c->p = malloc(c->n * sizeof(double));
		c->bh = malloc(c->n * sizeof(double));
		c->bonferroni = malloc(c->n * sizeof(double));
		assert_true(c->p && c->bh && c->bonferroni);
		assert_non_null(next_line(f, &line, &cap));
		parse_values(line, "p", c->p, c->n);
		assert_non_null(next_line(f, &line, &cap));
		parse_values(line, "bh", c->bh, c->n);
		assert_non_null(next_line(f, &line, &cap));
		parse_values(line, "bonferroni", c->bonferroni, c->n);
	}
	free(line);
	fclose(f);
	/* Guards against a truncated or regenerated-empty file. */
	assert_true(v->n_cases >= 15);
	assert_true(v->n_alphas >= 3);
	*state = v;
	return 0;
}

static int free_vectors(void **state)
{
	struct vectors *v = *state;

	for (size_t i = 0; v && i < v->n_cases; i++) {
		free(v->cases[i].p);
		free(v->cases[i].bh);
		free(v->cases[i].bonferroni);
	}
	if (v)
		free(v->cases);
	free(v);
	return 0;
}

static bool same_value(double got, double want)
{
	if (isnan(want))
		return isnan(got);
	return fabs(got - want) <= 1e-12 * fabs(want) + 1e-300;
}

/* Compares corr_adjust(METHOD) with WANT for every case; reports each
 * mismatching case before failing. */
static void check_adjust(const struct vectors *v, enum corr_method method,
			 const char *method_name)
{
	size_t bad_cases = 0;

	for (size_t c = 0; c < v->n_cases; c++) {
		const struct vcase *vc = &v->cases[c];
		const double *want = method == CORR_BH ? vc->bh :
				     method == CORR_BONFERRONI ? vc->bonferroni :
				     vc->p;
		double *adj = malloc(vc->n * sizeof(double));
		bool bad = false;

		assert_non_null(adj);
		assert_int_equal(corr_adjust(method, vc->p, vc->n, adj), 0);
		for (size_t i = 0; i < vc->n && !bad; i++)
			if (!same_value(adj[i], want[i])) {
				print_error("%s %s[%zu]: p=%.17g adj=%.17g, "
					    "want %.17g\n", method_name,
					    vc->name, i, vc->p[i], adj[i],
					    want[i]);
				bad = true;
			}
		bad_cases += bad;
		free(adj);
	}
	if (bad_cases)
		fail_msg("%s: %zu of %zu cases differ", method_name, bad_cases,
			 v->n_cases);
}

static void test_vectors_bh_adjust(void **state)
{
	check_adjust(*state, CORR_BH, "bh");
}

static void test_vectors_bonferroni_adjust(void **state)
{
	check_adjust(*state, CORR_BONFERRONI, "bonferroni");
}

static void test_vectors_none_adjust(void **state)
{
	check_adjust(*state, CORR_NONE, "none");
}

static size_t count_finite(const double *p, size_t n)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		m += !isnan(p[i]);
	return m;
}

/* The threshold decides exactly like the reference adjusted p-values
 * ({p <= threshold} = {adjusted <= alpha}), and has the documented value:
 * for BH the largest p-value rejected (alpha/m when none is), alpha/m
 * for Bonferroni. */
static void test_vectors_threshold_decisions(void **state)
{
	const struct vectors *v = *state;
	static const enum corr_method methods[] = { CORR_BH, CORR_BONFERRONI };
	size_t mismatches = 0, checks = 0;

	for (size_t c = 0; c < v->n_cases; c++) {
		const struct vcase *vc = &v->cases[c];
		size_t m = count_finite(vc->p, vc->n);

		for (size_t a = 0; a < v->n_alphas; a++) {
			double alpha = v->alphas[a];

			for (size_t k = 0; k < 2; k++) {
				const double *ref = methods[k] == CORR_BH ?
						    vc->bh : vc->bonferroni;
				double thr, want_thr, largest = 0;
				size_t rejected = 0;
				bool bad = false;

				assert_int_equal(corr_threshold(methods[k],
								vc->p, vc->n,
								alpha, &thr),
						 0);
				for (size_t i = 0; i < vc->n; i++) {
					bool by_thr = vc->p[i] <= thr;
					bool by_ref = ref[i] <= alpha;

					rejected += by_ref;
					if (by_ref && vc->p[i] > largest)
						largest = vc->p[i];
					bad |= by_thr != by_ref;
				}
				if (methods[k] == CORR_BH)
					want_thr = rejected ? largest :
						   alpha / (double)(m ? m : 1);
				else
					want_thr = alpha / (double)(m ? m : 1);
				bad |= thr != want_thr;
				checks++;
				if (bad) {
					mismatches++;
					print_error("%s %s alpha=%g: threshold "
						    "%.17g (want %.17g), "
						    "decisions differ or "
						    "threshold wrong\n",
						    k ? "bonferroni" : "bh",
						    vc->name, alpha, thr,
						    want_thr);
				}
			}
		}
	}
	if (mismatches)
		fail_msg("%zu of %zu (case, alpha, method) disagree",
			 mismatches, checks);
}

/* adj may alias p (documented). */
static void test_adjust_in_place(void **state)
{
	const struct vectors *v = *state;

	for (size_t c = 0; c < v->n_cases; c++) {
		const struct vcase *vc = &v->cases[c];
		double *buf = malloc(vc->n * sizeof(double));
		double *sep = malloc(vc->n * sizeof(double));

		assert_true(buf && sep);
		memcpy(buf, vc->p, vc->n * sizeof(double));
		assert_int_equal(corr_adjust(CORR_BH, buf, vc->n, buf), 0);
		assert_int_equal(corr_adjust(CORR_BH, vc->p, vc->n, sep), 0);
		for (size_t i = 0; i < vc->n; i++)
			if (!(buf[i] == sep[i] || (isnan(buf[i]) &&
						   isnan(sep[i]))))
				fail_msg("%s[%zu]: in place %.17g, separate "
					 "%.17g", vc->name, i, buf[i], sep[i]);
		free(buf);
		free(sep);
	}
}

/* Step-up, not step-down: p_(1) = 0.02 misses alpha/m = 0.0167 but
 * p_(2) = 0.025 makes 2·alpha/m = 0.0333, so both are rejected. */
static void test_step_up(void **state)
{
	const double p[] = { 0.9, 0.025, 0.02 };
	double thr, adj[3];

	(void)state;
	assert_int_equal(corr_threshold(CORR_BH, p, 3, 0.05, &thr), 0);
	assert_true(thr == 0.025);
	assert_true(p[1] <= thr && p[2] <= thr && !(p[0] <= thr));
	assert_int_equal(corr_adjust(CORR_BH, p, 3, adj), 0);
	assert_true(same_value(adj[1], 0.0375) && same_value(adj[2], 0.0375));
	assert_true(adj[0] == 0.9);
	/* Bonferroni rejects neither (0.02 > 0.05/3). */
	assert_int_equal(corr_threshold(CORR_BONFERRONI, p, 3, 0.05, &thr), 0);
	assert_true(thr == 0.05 / 3);
}

static void test_empty_and_all_nan(void **state)
{
	const double nan3[] = { DNAN, DNAN, DNAN };
	double thr = -1, adj[3];

	(void)state;
	/* Nothing to test: no threshold can reject anything. */
	assert_int_equal(corr_threshold(CORR_BH, NULL, 0, 0.05, &thr), 0);
	assert_true(thr == 0.05);
	assert_int_equal(corr_adjust(CORR_BH, NULL, 0, NULL), 0);
	assert_int_equal(corr_threshold(CORR_BH, nan3, 3, 0.05, &thr), 0);
	assert_true(thr == 0.05);
	assert_int_equal(corr_adjust(CORR_BH, nan3, 3, adj), 0);
	assert_true(isnan(adj[0]) && isnan(adj[1]) && isnan(adj[2]));
	assert_int_equal(corr_threshold(CORR_NONE, nan3, 3, 0.05, &thr), 0);
	assert_true(thr == 0.05);
}

/* Tests that did not run must not turn into "no drift, p = 1": NaN
 * stays NaN for every method (correct.h). */
static void test_bonferroni_keeps_nan(void **state)
{
	const double p[] = { 0.01, DNAN, 0.2 };
	double adj[3];

	(void)state;
	assert_int_equal(corr_adjust(CORR_BONFERRONI, p, 3, adj), 0);
	assert_true(adj[0] == 0.02);
	assert_true(adj[2] == 0.4);
	if (!isnan(adj[1]))
		fail_msg("NaN p-value adjusted to %g", adj[1]);
}

static void test_invalid_arguments(void **state)
{
	const double p[] = { 0.01, 0.2 };
	const double bad_alpha[] = { 0, 1, -0.1, 1.5, DNAN };
	double thr, adj[2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_alpha) / sizeof(bad_alpha[0]); i++)
		assert_int_equal(corr_threshold(CORR_BH, p, 2, bad_alpha[i],
						&thr), -EINVAL);
	assert_int_equal(corr_threshold(CORR_BH, NULL, 2, 0.05, &thr),
			 -EINVAL);
	assert_int_equal(corr_threshold((enum corr_method)42, p, 2, 0.05,
					&thr), -EINVAL);
	assert_int_equal(corr_adjust((enum corr_method)42, p, 2, adj),
			 -EINVAL);
	assert_int_equal(corr_adjust(CORR_BH, NULL, 2, adj), -EINVAL);
	assert_int_equal(corr_adjust(CORR_BH, p, 2, NULL), -EINVAL);
}

/* Permutation p-values sit on a grid ((1 + count) / (B + 1)), so a p-value
 * exactly equal to i·alpha/m is ordinary: with B = 99 and alpha = 0.05,
 * p = 5/100 = 0.05.  For p = {1e-6, 1e-6, 0.05} the step-up rule rejects
 * all three (0.05 <= 3·0.05/3), and the adjusted p-value of the third is
 * exactly alpha; the two functions must agree on that decision, or the
 * drifted flag and the stored adjusted p-value contradict each other. */
/* Builds a family of M p-values whose I-th smallest is C/B1 (the others
 * tiny or 1) and reports whether corr_threshold and corr_adjust decide
 * the same way for every member (printing the first mismatch unless
 * QUIET). */
static bool grid_family_agrees(size_t m, size_t i, double c, double b1,
			       double alpha, bool quiet)
{
	double p[20], adj[20], thr;

	for (size_t j = 0; j < m; j++)
		p[j] = j + 1 < i ? 1e-6 : j + 1 == i ? c / b1 : 1.0;
	assert_int_equal(corr_threshold(CORR_BH, p, m, alpha, &thr), 0);
	assert_int_equal(corr_adjust(CORR_BH, p, m, adj), 0);
	for (size_t j = 0; j < m; j++)
		if ((p[j] <= thr) != (adj[j] <= alpha)) {
			if (quiet)
				return false;
			print_error("m=%zu alpha=%g p=%.17g: threshold %.17g "
				    "%s, adjusted %.17g %s\n", m, alpha, p[j],
				    thr, p[j] <= thr ? "rejects" : "keeps",
				    adj[j], adj[j] <= alpha ? "rejects" :
				    "keeps");
			return false;
		}
	return true;
}

static void test_threshold_agrees_with_adjust_on_grid(void **state)
{
	const double alphas[] = { 0.01, 0.05, 0.1 };
	size_t families = 0, disagree = 0;

	(void)state;
	for (double b1 = 100; b1 <= 10000; b1 *= 10)
		for (size_t a = 0; a < 3; a++)
			for (size_t m = 2; m <= 20; m++)
				for (size_t i = 1; i <= m; i++) {
					/* p_(i) = i·alpha/m on the grid? */
					double c = b1 * (double)i * alphas[a] /
						   (double)m;

					if (fabs(c - round(c)) > 1e-9 ||
					    round(c) < 1)
						continue;
					families++;
					disagree += !grid_family_agrees(
						m, i, round(c), b1, alphas[a],
						disagree >= 3);
				}
	assert_true(families > 100);
	if (disagree)
		fail_msg("%zu of %zu grid families: corr_threshold and "
			 "corr_adjust decide differently", disagree, families);
}

static double std_normal(struct rng *r)
{
	double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Random families: properties that hold for any input.  BH adjusted
 * values are >= p (up to rounding), <= Bonferroni's, <= 1, in the order of p; and the
 * threshold decides exactly like the adjusted values (continuous random
 * p-values never sit on a rounding boundary). */
static void test_random_properties(void **state)
{
	struct rng r;

	(void)state;
	rng_init(&r, 99, 0);
	for (int fam = 0; fam < 3000; fam++) {
		size_t n = 1 + rng_below(&r, 60);
		double p[60], bh[60], bonf[60], thr;
		double alpha = 0.001 + 0.3 * rng_uniform(&r);

		for (size_t i = 0; i < n; i++) {
			double u = rng_uniform(&r);

			p[i] = u < 0.1 ? DNAN : u < 0.4 ?
			       pow(rng_uniform(&r), 6) : rng_uniform(&r);
		}
		assert_int_equal(corr_adjust(CORR_BH, p, n, bh), 0);
		assert_int_equal(corr_adjust(CORR_BONFERRONI, p, n, bonf), 0);
		assert_int_equal(corr_threshold(CORR_BH, p, n, alpha, &thr), 0);
		for (size_t i = 0; i < n; i++) {
			if (isnan(p[i])) {
				assert_true(isnan(bh[i]));
				continue;
			}
			/* m·p/m may round one ulp below p. */
			assert_true(bh[i] >= p[i] * (1 - 1e-15));
			assert_true(bh[i] <= 1.0);
			assert_true(bh[i] <= bonf[i]);
			assert_int_equal(p[i] <= thr, bh[i] <= alpha);
			for (size_t j = 0; j < n; j++)
				if (!isnan(p[j]) && p[j] < p[i])
					assert_true(bh[j] <= bh[i]);
		}
	}
}

/* Benjamini–Hochberg under independence: FDR = E[V / max(R, 1)] equals
 * alpha·m0/m exactly (continuous null p-values).  2000 families of m = 20
 * with 5 true alternatives (one-sided z-tests with mean 3).  Uncorrected
 * testing on the same data must overshoot the bound, which shows the
 * simulation can tell a liberal procedure from a valid one; Bonferroni's
 * family-wise error rate must stay at or below alpha. */
static void test_bh_controls_fdr(void **state)
{
	enum { FAMILIES = 2000, M = 20, M1 = 5 };
	const double alphas[] = { 0.05, 0.1 };
	struct rng r;

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		double alpha = alphas[a], bound = alpha * (M - M1) / M;
		double fdp_sum = 0, fdp_sq = 0, none_sum = 0;
		size_t bonf_any = 0, bh_true_rejections = 0;

		rng_init(&r, 2026 + a, 0);
		for (int fam = 0; fam < FAMILIES; fam++) {
			double p[M], thr;
			size_t rej = 0, false_rej = 0, none_rej = 0,
			       none_false = 0, bonf_false = 0;

			for (size_t i = 0; i < M; i++)
				p[i] = i < M1 ?
				       0.5 * erfc((3.0 + std_normal(&r)) /
						  M_SQRT2) :
				       rng_uniform(&r);
			assert_int_equal(corr_threshold(CORR_BH, p, M, alpha,
							&thr), 0);
			for (size_t i = 0; i < M; i++) {
				rej += p[i] <= thr;
				false_rej += i >= M1 && p[i] <= thr;
				none_rej += p[i] <= alpha;
				none_false += i >= M1 && p[i] <= alpha;
			}
			assert_int_equal(corr_threshold(CORR_BONFERRONI, p, M,
							alpha, &thr), 0);
			for (size_t i = M1; i < M; i++)
				bonf_false += p[i] <= thr;
			if (rej) {
				double fdp = (double)false_rej / (double)rej;

				fdp_sum += fdp;
				fdp_sq += fdp * fdp;
			}
			if (none_rej)
				none_sum += (double)none_false /
					    (double)none_rej;
			bonf_any += bonf_false > 0;
			bh_true_rejections += rej - false_rej;
		}

		double fdr = fdp_sum / FAMILIES;
		double se = sqrt((fdp_sq / FAMILIES - fdr * fdr) / FAMILIES);
		double tol = 4 * se;
		double none_fdr = none_sum / FAMILIES;
		double fwer = (double)bonf_any / FAMILIES;

		print_message("alpha %.2f: BH FDR %.4f (bound %.4f, se %.4f), "
			      "uncorrected %.4f, Bonferroni FWER %.4f, "
			      "BH power %.3f\n", alpha, fdr, bound, se,
			      none_fdr, fwer,
			      (double)bh_true_rejections / (FAMILIES * M1));
		if (fdr > bound + tol)
			fail_msg("BH FDR %.4f exceeds %.4f + %.4f", fdr, bound,
				 tol);
		/* Equality, not just "<=": a procedure far below the bound
		 * is not BH (e.g. one that rejects almost nothing). */
		if (fdr < bound - tol)
			fail_msg("BH FDR %.4f far below %.4f: not BH?", fdr,
				 bound);
		assert_true(none_fdr > bound + tol);
		assert_true(fwer <= alpha + 4 * sqrt(alpha * (1 - alpha) /
						     FAMILIES));
		/* Mean 3 alternatives are found most of the time. */
		assert_true(bh_true_rejections > FAMILIES * M1 / 2);
	}
}

int main(void)
{
	const struct CMUnitTest vector_tests[] = {
		cmocka_unit_test(test_vectors_bh_adjust),
		cmocka_unit_test(test_vectors_bonferroni_adjust),
		cmocka_unit_test(test_vectors_none_adjust),
		cmocka_unit_test(test_vectors_threshold_decisions),
		cmocka_unit_test(test_adjust_in_place),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_step_up),
		cmocka_unit_test(test_empty_and_all_nan),
		cmocka_unit_test(test_bonferroni_keeps_nan),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_threshold_agrees_with_adjust_on_grid),
		cmocka_unit_test(test_random_properties),
		cmocka_unit_test(test_bh_controls_fdr),
	};
	int failed;

	failed = cmocka_run_group_tests_name("vectors", vector_tests,
					     load_vectors, free_vectors);
	failed += cmocka_run_group_tests_name("properties", tests, NULL,
					      NULL);
	return failed;
}
