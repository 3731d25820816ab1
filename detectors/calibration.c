/* calibration: ECE, adaptive ECE, MCE, Brier, log-loss and classification
 * metrics from scores and labels (DESIGN §4). */
#include "calibration.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LOG_CLIP 1e-15

/* What the metrics need of one record. */
struct outcome {
	double conf;   /* p (binary) or top-label confidence */
	double hit;    /* label (binary) or 1 when correct: what bins average */
	unsigned pred; /* predicted class */
	unsigned label;
	double brier, log_loss;
};

struct ranked {
	double conf, hit;
};

static int resolve(const struct cal_params *p, unsigned *bins, double *thr)
{
	*bins = p && p->bins ? p->bins : CAL_DEFAULT_BINS;
	*thr = p && p->threshold != 0.0 ? p->threshold : 0.5;
	if (*bins > CAL_MAX_BINS || !(*thr > 0.0 && *thr < 1.0))
		return -EINVAL;
	return 0;
}

static int check_input(const float *scores, unsigned k, const int64_t *labels,
		       size_t n)
{
	if (!scores || !labels || !n || k < 1 || k > CAL_MAX_CLASSES)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int64_t top = k == 1 ? 1 : (int64_t)k - 1;

		if (labels[i] < 0 || labels[i] > top)
			return -ERANGE;
		for (unsigned c = 0; c < k; c++) {
			float s = scores[i * k + c];

			if (!(s >= 0.0f && s <= 1.0f))
				return -EDOM;
		}
	}
	return 0;
}

static double clip_log(double q)
{
	return log(fmin(fmax(q, LOG_CLIP), 1.0 - LOG_CLIP));
}

static struct outcome outcome_of(const float *row, unsigned k, int64_t label,
				 double thr)
{
	struct outcome o = { .label = (unsigned)label };

	if (k == 1) {
		double p = (double)row[0], y = (double)label;

		o.conf = p;
		o.hit = y;
		o.pred = p >= thr;
		o.brier = (p - y) * (p - y);
		o.log_loss = -clip_log(label ? p : 1.0 - p);
		return o;
	}
	for (unsigned c = 1; c < k; c++)
		if (row[c] > row[o.pred])
			o.pred = c;
	o.conf = (double)row[o.pred];
	o.hit = o.pred == o.label;
	for (unsigned c = 0; c < k; c++) {
		double diff = (double)row[c] - (c == o.label ? 1.0 : 0.0);

		o.brier += diff * diff;
	}
	o.log_loss = -clip_log((double)row[o.label]);
	return o;
}

/* Bin b holds b/B < c <= (b+1)/B (bin 0 also c = 0): the number of inner
 * edges i/B strictly below c, as numpy.searchsorted(edges, c). */
static unsigned width_bin(double c, unsigned bins)
{
	double guess = ceil(c * (double)bins) - 1.0;
	unsigned b = guess <= 0.0 ? 0 :
		     guess >= (double)(bins - 1) ? bins - 1 : (unsigned)guess;

	while (b > 0 && !(c > (double)b / (double)bins))
		b--;
	while (b + 1 < bins && c > (double)(b + 1) / (double)bins)
		b++;
	return b;
}

static void fill_bins(const float *scores, unsigned k, const int64_t *labels,
		      size_t n, unsigned bins, double thr, struct cal_bin *out)
{
	for (unsigned b = 0; b < bins; b++)
		out[b] = (struct cal_bin){
			.lower = (double)b / (double)bins,
			.upper = (double)(b + 1) / (double)bins,
		};
	for (size_t i = 0; i < n; i++) {
		struct outcome o = outcome_of(scores + i * k, k, labels[i], thr);
		struct cal_bin *bin = &out[width_bin(o.conf, bins)];

		bin->count++;
		bin->confidence += o.conf;
		bin->accuracy += o.hit;
	}
	for (unsigned b = 0; b < bins; b++)
		if (out[b].count) {
			out[b].confidence /= (double)out[b].count;
			out[b].accuracy /= (double)out[b].count;
		}
}

int cal_reliability(const float *scores, unsigned k, const int64_t *labels,
		    size_t n, const struct cal_params *p, struct cal_bin *bins)
{
	unsigned nbins;
	double thr;
	int err;

	if (!bins || resolve(p, &nbins, &thr))
		return -EINVAL;
	err = check_input(scores, k, labels, n);
	if (err)
		return err;
	fill_bins(scores, k, labels, n, nbins, thr, bins);
	return 0;
}

static int by_conf_then_hit(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->conf != y->conf)
		return x->conf < y->conf ? -1 : 1;
	return (x->hit > y->hit) - (x->hit < y->hit);
}

/* Equal-mass bins over records sorted by (confidence, hit). */
static double adaptive_ece(struct ranked *r, size_t n, unsigned bins)
{
	double ece = 0.0;

	qsort(r, n, sizeof *r, by_conf_then_hit);
	for (unsigned b = 0; b < bins; b++) {
		size_t lo = (size_t)((double)b * (double)n / (double)bins);
		size_t hi = (size_t)((double)(b + 1) * (double)n / (double)bins);
		double conf = 0.0, hit = 0.0;

		if (hi <= lo)
			continue;
		for (size_t i = lo; i < hi; i++) {
			conf += r[i].conf;
			hit += r[i].hit;
		}
		ece += fabs(hit - conf) / (double)n;
	}
	return ece;
}

static double ratio(double num, double den)
{
	return den > 0.0 ? num / den : 0.0;
}

/* Per-class true positives, false positives and false negatives. */
struct confusion {
	size_t *tp, *fp, *fn;
};

static void scores_from_counts(double tp, double fp, double fn, double *prec,
			       double *rec, double *f1)
{
	*prec = ratio(tp, tp + fp);
	*rec = ratio(tp, tp + fn);
	*f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn);
}

static void classification(const struct confusion *cm, unsigned classes,
			   bool binary, struct cal_result *out)
{
	double prec, rec, f1;
	unsigned present = 0;

	if (binary) {
		scores_from_counts((double)cm->tp[1], (double)cm->fp[1],
				   (double)cm->fn[1], &out->precision,
				   &out->recall, &out->f1);
		return;
	}
	out->precision = out->recall = out->f1 = 0.0;
	for (unsigned c = 0; c < classes; c++) {
		/* A class is present when it is a label or a prediction. */
		if (!cm->tp[c] && !cm->fp[c] && !cm->fn[c])
			continue;
		present++;
		scores_from_counts((double)cm->tp[c], (double)cm->fp[c],
				   (double)cm->fn[c], &prec, &rec, &f1);
		out->precision += prec;
		out->recall += rec;
		out->f1 += f1;
	}
	out->precision /= (double)present;
	out->recall /= (double)present;
	out->f1 /= (double)present;
}

static void summarise_bins(const struct cal_bin *bins, unsigned nbins,
			   size_t n, struct cal_result *out)
{
	out->ece = out->mce = 0.0;
	for (unsigned b = 0; b < nbins; b++) {
		double gap;

		if (!bins[b].count)
			continue;
		gap = fabs(bins[b].accuracy - bins[b].confidence);
		out->ece += (double)bins[b].count / (double)n * gap;
		out->mce = fmax(out->mce, gap);
	}
}

int cal_metrics(const float *scores, unsigned k, const int64_t *labels,
		size_t n, const struct cal_params *p, struct cal_result *out)
{
	unsigned nbins, classes = k < 2 ? 2 : k;
	double thr, correct = 0.0;
	struct cal_result res = { .n = n };
	int err;

	if (!out || resolve(p, &nbins, &thr))
		return -EINVAL;
	err = check_input(scores, k, labels, n);
	if (err)
		return err;

	struct cal_bin *bins = malloc(nbins * sizeof *bins);
	struct ranked *ranked = malloc(n * sizeof *ranked);
	size_t *counts = calloc(3 * (size_t)classes, sizeof *counts);
	struct confusion cm = { counts, counts + classes, counts + 2 * classes };

	if (!bins || !ranked || !counts) {
		err = -ENOMEM;
		goto done;
	}
	fill_bins(scores, k, labels, n, nbins, thr, bins);
	summarise_bins(bins, nbins, n, &res);
	for (size_t i = 0; i < n; i++) {
		struct outcome o = outcome_of(scores + i * k, k, labels[i], thr);

		ranked[i] = (struct ranked){ .conf = o.conf, .hit = o.hit };
		res.brier += o.brier;
		res.log_loss += o.log_loss;
		if (o.pred == o.label) {
			correct += 1.0;
			cm.tp[o.label]++;
		} else {
			cm.fp[o.pred]++;
			cm.fn[o.label]++;
		}
	}
	res.brier /= (double)n;
	res.log_loss /= (double)n;
	res.accuracy = correct / (double)n;
	res.ace = adaptive_ece(ranked, n, nbins);
	classification(&cm, classes, k == 1, &res);
	*out = res;
done:
	free(bins);
	free(ranked);
	free(counts);
	return err;
}
