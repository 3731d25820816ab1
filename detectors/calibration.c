/* calibration: one pass over the records, bins accumulated in double. */
#include "calibration.h"

#include <errno.h>
#include <math.h>

static double clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Confidence, whether the prediction was right, and the squared error of
 * one record. */
static void score_one(const float *p, unsigned k, int32_t y, double *conf,
		      double *hit, double *sq)
{
	unsigned c, top = 0;

	if (k == 1) {
		double s = clamp01(p[0]), t = y == 1 ? 1.0 : 0.0;

		*conf = s;
		*sq = (s - t) * (s - t);
		*hit = (s >= 0.5) == (y == 1);
		return;
	}
	*sq = 0;
	for (c = 0; c < k; c++) {
		double v = clamp01(p[c]), t = (int32_t)c == y ? 1.0 : 0.0;

		*sq += (v - t) * (v - t);
		if (p[c] > p[top])
			top = c;
	}
	*conf = clamp01(p[top]);
	*hit = (int32_t)top == y;
}

int cal_summarize(const float *scores, const int32_t *labels, size_t n,
		  unsigned k, unsigned bins, struct cal_summary *out)
{
	double conf_sum[CAL_MAX_BINS] = { 0 }, hit_sum[CAL_MAX_BINS] = { 0 };
	size_t count[CAL_MAX_BINS] = { 0 };
	double brier = 0, hits = 0, ece = 0, mce = 0;
	int32_t max_label = k > 1 ? (int32_t)k - 1 : 1;

	if (!n || !k || !bins || bins > CAL_MAX_BINS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		double conf, hit, sq, pos;
		unsigned b;

		if (labels[i] < 0 || labels[i] > max_label)
			return -EINVAL;
		score_one(scores + i * k, k, labels[i], &conf, &hit, &sq);
		b = (unsigned)floor(conf * bins);
		b = b < bins ? b : bins - 1;
		/* Binary bins compare the mean score with the share of 1s;
		 * multiclass ones the confidence with the accuracy. */
		pos = k == 1 ? (labels[i] == 1) : hit;
		conf_sum[b] += conf;
		hit_sum[b] += pos;
		count[b]++;
		brier += sq;
		hits += hit;
	}
	for (unsigned b = 0; b < bins; b++) {
		double gap;

		if (!count[b])
			continue;
		gap = fabs(hit_sum[b] / count[b] - conf_sum[b] / count[b]);
		ece += (double)count[b] / n * gap;
		mce = gap > mce ? gap : mce;
	}
	out->ece = ece;
	out->mce = mce;
	out->brier = brier / n;
	out->accuracy = hits / n;
	return 0;
}
