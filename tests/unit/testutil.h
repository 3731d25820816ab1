/* Helpers shared by the detector unit tests: data files from tests/data,
 * tolerances, Gaussian test data and binomial bands. Include after
 * <cmocka.h>. */
#ifndef DRIFTD_TESTUTIL_H
#define DRIFTD_TESTUTIL_H

#include <math.h>
#include <stdio.h>

#include "rng.h"

/* Opens tests/data/NAME for reading; fails the test when missing. */
static inline FILE *open_data(const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", DETECTORS_TEST_DATA, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	return f;
}

static inline void read_floats(FILE *f, float *v, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (fscanf(f, "%f", &v[i]) != 1)
			fail_msg("data file ends after %zu of %zu values", i,
				 count);
}

static inline void assert_close(double got, double want, double rel,
				double abs_tol)
{
	double tol = rel * fabs(want) + abs_tol;

	if (!(fabs(got - want) <= tol))
		fail_msg("got %.12g, want %.12g (tolerance %.3g)", got, want,
			 tol);
}

/* Normal samples (Box–Muller), test data only. */
static inline void fill_gauss(struct rng *r, float *v, size_t len, double loc,
			      double scale)
{
	for (size_t i = 0; i < len; i++) {
		double radius = sqrt(-2.0 * log1p(-rng_uniform(r)));
		double angle = 2.0 * M_PI * rng_uniform(r);

		v[i] = (float)(loc + scale * radius * cos(angle));
	}
}

/* A false-alarm rate over `trials` independent trials must lie within
 * [size - 4 sd, size + 3 sd] of the test's nominal size: too many alarms
 * (a liberal test) is the serious bug, far too few means the null
 * distribution is wrong the other way. */
static inline void assert_rate_near(const char *what, double rate,
				    double size, size_t trials)
{
	double sd = sqrt(size * (1.0 - size) / (double)trials);

	print_message("%s: %.4f (nominal %.4f, band %.4f..%.4f)\n", what, rate,
		      size, size - 4.0 * sd, size + 3.0 * sd);
	if (rate > size + 3.0 * sd || rate < size - 4.0 * sd)
		fail_msg("%s: rate %.4f outside the band", what, rate);
}

#endif
