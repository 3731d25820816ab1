/* Unit tests for detectors/calibration against tests/data/
 * calibration_vectors.txt (gen_calibration_vectors.py: numpy, checked
 * against sklearn.metrics), plus the argument checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"

/* Sums of up to 400 float64 terms: far below this. */
#define TOL 1e-12

static void check_case(FILE *f, const char *head)
{
	char name[64];
	size_t n, k, bins;
	float *scores;
	int32_t *labels;
	double want[4];
	struct cal_summary got;

	assert_int_equal(sscanf(head, "case %63s %zu %zu %zu", name, &n, &k,
				&bins), 4);
	scores = malloc(n * k * sizeof(float));
	labels = malloc(n * sizeof(int32_t));
	assert_true(scores && labels);
	for (size_t i = 0; i < n; i++) {
		int y;

		assert_int_equal(fscanf(f, "%d", &y), 1);
		labels[i] = y;
		for (size_t c = 0; c < k; c++)
			assert_int_equal(fscanf(f, "%f", &scores[i * k + c]), 1);
	}
	assert_int_equal(fscanf(f, " expect %lf %lf %lf %lf", &want[0],
				&want[1], &want[2], &want[3]), 4);
	assert_int_equal(cal_summarize(scores, labels, n, (unsigned)k,
				       (unsigned)bins, &got), 0);
	if (fabs(got.ece - want[0]) > TOL || fabs(got.mce - want[1]) > TOL ||
	    fabs(got.brier - want[2]) > TOL || fabs(got.accuracy - want[3]) > TOL)
		fail_msg("%s: got ece %.17g mce %.17g brier %.17g acc %.17g, want "
			 "%.17g %.17g %.17g %.17g", name, got.ece, got.mce,
			 got.brier, got.accuracy, want[0], want[1], want[2],
			 want[3]);
	free(scores);
	free(labels);
}

static void test_vectors(void **state)
{
	char path[512], line[256];
	unsigned cases = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/calibration_vectors.txt",
		 DETECTORS_TEST_DATA);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		check_case(f, line);
		cases++;
		/* The rest of the expect line. */
		if (!fgets(line, sizeof(line), f))
			break;
	}
	fclose(f);
	assert_true(cases >= 8);
}

/* A perfectly calibrated, perfectly sharp binary model: all zero. */
static void test_perfect(void **state)
{
	const float s[] = { 0, 1, 1, 0 };
	const int32_t y[] = { 0, 1, 1, 0 };
	struct cal_summary r;

	(void)state;
	assert_int_equal(cal_summarize(s, y, 4, 1, CAL_DEFAULT_BINS, &r), 0);
	assert_true(r.ece == 0 && r.mce == 0 && r.brier == 0 && r.accuracy == 1);
}

static void test_bad_arguments(void **state)
{
	const float s[] = { 0.2f, 0.8f };
	const int32_t two[] = { 0, 2 }, neg[] = { -1, 0 }, ok[] = { 1, 0 };
	struct cal_summary r;

	(void)state;
	assert_int_equal(cal_summarize(s, ok, 0, 1, 15, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, ok, 2, 0, 15, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, ok, 2, 1, 0, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, ok, 2, 1, CAL_MAX_BINS + 1, &r),
			 -EINVAL);
	/* Binary labels are 0 or 1; K classes 0..K-1. */
	assert_int_equal(cal_summarize(s, two, 2, 1, 15, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, neg, 2, 1, 15, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, two + 1, 1, 2, 15, &r), -EINVAL);
	assert_int_equal(cal_summarize(s, ok, 1, 2, 15, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_perfect),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
