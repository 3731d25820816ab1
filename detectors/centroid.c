/* centroid: cosine and Euclidean distance between two sample means. */
#include "centroid.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cen_mean(const float *a, size_t n, size_t d, double *mean)
{
	if (!a || !mean || n < 1 || d < 1)
		return -EINVAL;
	memset(mean, 0, d * sizeof *mean);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			mean[j] += (double)a[i * d + j];
	for (size_t j = 0; j < d; j++)
		mean[j] /= (double)n;
	return 0;
}

static double norm(const double *v, size_t d)
{
	double sq = 0.0;

	for (size_t j = 0; j < d; j++)
		sq += v[j] * v[j];
	return sqrt(sq);
}

/* 1 - cos computed as ||a/|a| - b/|b|||² / 2: the same quantity without the
 * cancellation of 1 - cos for the small angles typical of drifting means. */
static double cosine_distance(const double *a, const double *b, size_t d)
{
	double na = norm(a, d), nb = norm(b, d), sq = 0.0;

	if (na == 0.0 || nb == 0.0)
		return na == nb ? 0.0 : 1.0;
	for (size_t j = 0; j < d; j++) {
		double diff = a[j] / na - b[j] / nb;

		sq += diff * diff;
	}
	return fmin(0.5 * sq, 2.0);
}

int cen_distance(const double *mean_a, const double *mean_b, size_t d,
		 struct cen_result *out)
{
	double sq = 0.0;

	if (!mean_a || !mean_b || !out || d < 1)
		return -EINVAL;
	for (size_t j = 0; j < d; j++) {
		double diff = mean_a[j] - mean_b[j];

		sq += diff * diff;
	}
	out->cosine = cosine_distance(mean_a, mean_b, d);
	out->euclidean = sqrt(sq);
	return 0;
}

/* cen_shift with the window as rows (WIN) or as column sums (SUMS). */
static int shift(const float *ref, size_t n, const float *win,
		 const double *sums, size_t m, size_t d, struct cen_result *out)
{
	double *means;
	int err;

	if (!ref || (!win && !sums) || !out || n < 1 || m < 1 || d < 1)
		return -EINVAL;
	means = reallocarray(NULL, d, 2 * sizeof *means);
	if (!means)
		return -ENOMEM;
	err = cen_mean(ref, n, d, means);
	if (!err && win)
		err = cen_mean(win, m, d, means + d);
	/* cen_mean's own last step: sums, in row order, over the count */
	for (size_t j = 0; !err && !win && j < d; j++)
		means[d + j] = sums[j] / (double)m;
	if (!err)
		err = cen_distance(means, means + d, d, out);
	free(means);
	return err;
}

int cen_shift(const float *ref, size_t n, const float *win, size_t m,
	      size_t d, struct cen_result *out)
{
	return win ? shift(ref, n, win, NULL, m, d, out) : -EINVAL;
}

int cen_shift_sums(const float *ref, size_t n, const double *win_sums,
		   size_t m, size_t d, struct cen_result *out)
{
	return win_sums ? shift(ref, n, NULL, win_sums, m, d, out) : -EINVAL;
}
