/* Unit tests for detectors/calibration: numpy/sklearn vectors, errors,
 * and the behaviour of ECE on calibrated and miscalibrated scores. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "testutil.h"

struct vectors {
	size_t n;
	unsigned k;
	struct cal_result want;
	struct cal_bin bins[CAL_DEFAULT_BINS];
	float *scores;
	int64_t *labels;
};

static void load(const char *name, struct vectors *v)
{
	const char *keys[] = { "ece", "ace", "mce", "brier", "log_loss",
			       "accuracy", "precision", "recall", "f1" };
	double *vals[] = { &v->want.ece, &v->want.ace, &v->want.mce,
			   &v->want.brier, &v->want.log_loss,
			   &v->want.accuracy, &v->want.precision,
			   &v->want.recall, &v->want.f1 };
	char file[64], key[32];
	unsigned nbins;
	FILE *f;

	snprintf(file, sizeof file, "calibration_%s.txt", name);
	f = open_data(file);
	assert_int_equal(fscanf(f, "%zu %u", &v->n, &v->k), 2);
	for (size_t i = 0; i < 9; i++) {
		assert_int_equal(fscanf(f, " %31s %lf", key, vals[i]), 2);
		assert_string_equal(key, keys[i]);
	}
	assert_int_equal(fscanf(f, " bins %u", &nbins), 1);
	assert_int_equal(nbins, CAL_DEFAULT_BINS);
	for (unsigned b = 0; b < nbins; b++)
		assert_int_equal(fscanf(f, "%zu %lf %lf", &v->bins[b].count,
					&v->bins[b].confidence,
					&v->bins[b].accuracy), 3);
	v->scores = malloc(v->n * v->k * sizeof *v->scores);
	v->labels = malloc(v->n * sizeof *v->labels);
	assert_non_null(v->scores);
	assert_non_null(v->labels);
	for (size_t i = 0; i < v->n; i++) {
		long long label;

		assert_int_equal(fscanf(f, "%lld", &label), 1);
		v->labels[i] = label;
		read_floats(f, v->scores + i * v->k, v->k);
	}
	fclose(f);
}

static void check(const char *name)
{
	struct vectors v;
	struct cal_result res;
	struct cal_bin bins[CAL_DEFAULT_BINS];

	load(name, &v);
	assert_int_equal(cal_metrics(v.scores, v.k, v.labels, v.n, NULL, &res), 0);
	print_message("%s: ece %.4f ace %.4f mce %.4f brier %.4f logloss %.4f "
		      "acc %.3f f1 %.3f\n", name, res.ece, res.ace, res.mce,
		      res.brier, res.log_loss, res.accuracy, res.f1);
	assert_int_equal(res.n, v.n);
	assert_close(res.ece, v.want.ece, 1e-12, 1e-15);
	assert_close(res.ace, v.want.ace, 1e-12, 1e-15);
	assert_close(res.mce, v.want.mce, 1e-12, 1e-15);
	assert_close(res.brier, v.want.brier, 1e-12, 1e-15);
	assert_close(res.log_loss, v.want.log_loss, 1e-12, 1e-15);
	assert_close(res.accuracy, v.want.accuracy, 1e-15, 0.0);
	assert_close(res.precision, v.want.precision, 1e-12, 0.0);
	assert_close(res.recall, v.want.recall, 1e-12, 0.0);
	assert_close(res.f1, v.want.f1, 1e-12, 0.0);

	assert_int_equal(cal_reliability(v.scores, v.k, v.labels, v.n, NULL,
					  bins), 0);
	for (unsigned b = 0; b < CAL_DEFAULT_BINS; b++) {
		assert_int_equal(bins[b].count, v.bins[b].count);
		assert_close(bins[b].confidence, v.bins[b].confidence, 1e-12, 0.0);
		assert_close(bins[b].accuracy, v.bins[b].accuracy, 1e-12, 0.0);
		assert_close(bins[b].lower, (double)b / 15.0, 1e-15, 0.0);
		assert_close(bins[b].upper, (double)(b + 1) / 15.0, 1e-15, 0.0);
	}
	free(v.scores);
	free(v.labels);
}

static void test_vectors(void **state)
{
	check("binary");
	check("multiclass");
	check("tiny");
	check("all_negative");
}

static void test_errors(void **state)
{
	float s[4] = { 0.1f, 0.9f, 0.5f, 0.5f };
	int64_t y[2] = { 0, 1 };
	struct cal_params p = { 0 };
	struct cal_result res;
	struct cal_bin bins[CAL_DEFAULT_BINS];

	assert_int_equal(cal_metrics(s, 1, y, 0, NULL, &res), -EINVAL);
	assert_int_equal(cal_metrics(NULL, 1, y, 2, NULL, &res), -EINVAL);
	assert_int_equal(cal_metrics(s, 0, y, 2, NULL, &res), -EINVAL);
	assert_int_equal(cal_metrics(s, 1, y, 2, NULL, NULL), -EINVAL);
	p.bins = CAL_MAX_BINS + 1;
	assert_int_equal(cal_metrics(s, 1, y, 2, &p, &res), -EINVAL);
	p = (struct cal_params){ .threshold = 1.0 };
	assert_int_equal(cal_metrics(s, 1, y, 2, &p, &res), -EINVAL);
	y[1] = 2;
	assert_int_equal(cal_metrics(s, 1, y, 2, NULL, &res), -ERANGE);
	assert_int_equal(cal_metrics(s, 2, y, 2, NULL, &res), -ERANGE);
	y[1] = -1;
	assert_int_equal(cal_metrics(s, 2, y, 2, NULL, &res), -ERANGE);
	y[1] = 1;
	s[1] = 1.5f;
	assert_int_equal(cal_metrics(s, 1, y, 2, NULL, &res), -EDOM);
	s[1] = NAN;
	assert_int_equal(cal_reliability(s, 1, y, 2, NULL, bins), -EDOM);
	assert_int_equal(cal_reliability(s, 1, y, 2, NULL, NULL), -EINVAL);
}

/* Scores at the edges of the bins and of [0, 1]. */
static void test_bin_edges(void **state)
{
	float s[4] = { 0.0f, 1.0f, 0.5f, 0.25f };
	int64_t y[4] = { 0, 1, 1, 0 };
	struct cal_params p = { .bins = 4 };
	struct cal_bin bins[4];
	struct cal_result res;

	assert_int_equal(cal_reliability(s, 1, y, 4, &p, bins), 0);
	/* 0 and 0.25 in bin 0 (right-closed), 0.5 in bin 1, 1 in bin 3 */
	assert_int_equal(bins[0].count, 2);
	assert_int_equal(bins[1].count, 1);
	assert_int_equal(bins[2].count, 0);
	assert_int_equal(bins[3].count, 1);
	assert_true(bins[2].confidence == 0.0 && bins[2].accuracy == 0.0);
	assert_int_equal(cal_metrics(s, 1, y, 4, &p, &res), 0);
	/* bin 0: conf 0.125 acc 0; bin 1: conf 0.5 acc 1; bin 3 perfect */
	assert_close(res.ece, 0.5 * 0.125 + 0.25 * 0.5, 1e-15, 0.0);
	assert_close(res.mce, 0.5, 1e-15, 0.0);
	/* log-loss is finite despite p = 0 and p = 1 */
	assert_true(isfinite(res.log_loss));
	assert_close(res.accuracy, 1.0, 0.0, 0.0);
}

/* Labels drawn from the scores: ECE near 0; from squashed scores: large. */
static void test_calibrated_vs_not(void **state)
{
	enum { N = 20000 };
	float *s = malloc(N * sizeof *s);
	int64_t *y = malloc(N * sizeof *y);
	struct cal_result good, bad;
	struct rng r;

	assert_non_null(s);
	assert_non_null(y);
	rng_init(&r, 8, 0);
	for (size_t i = 0; i < N; i++) {
		s[i] = (float)rng_uniform(&r);
		y[i] = rng_uniform(&r) < (double)s[i];
	}
	assert_int_equal(cal_metrics(s, 1, y, N, NULL, &good), 0);
	for (size_t i = 0; i < N; i++)
		y[i] = rng_uniform(&r) < 0.5 + 0.5 * ((double)s[i] - 0.5);
	assert_int_equal(cal_metrics(s, 1, y, N, NULL, &bad), 0);
	print_message("ECE calibrated %.4f, miscalibrated %.4f\n", good.ece,
		      bad.ece);
	assert_true(good.ece < 0.02 && good.ace < 0.02);
	/* P(y = 1) = 0.25 + s/2: E|0.25 - s/2| = 0.125 for uniform s */
	assert_close(bad.ece, 0.125, 0.08, 0.0);
	assert_close(bad.ace, 0.125, 0.08, 0.0);
	assert_close(good.brier, 1.0 / 6.0, 0.03, 0.0); /* E[p(1-p)] */
	free(s);
	free(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bin_edges),
		cmocka_unit_test(test_calibrated_vs_not),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
