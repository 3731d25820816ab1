/* calibration: calibration and performance of a classifier on labelled
 * records (DESIGN §4), for the calibration windows and
 * driftd.calibration_history.
 *
 * Input: n records, each with k scores (row-major n x k floats) and an
 * integer label.
 * - k = 1 (binary): the score is P(label = 1); labels must be 0 or 1. The
 *   reliability bins are over that probability p and compare the mean p
 *   with the fraction of label 1 in each bin. The prediction is
 *   p >= threshold (default 0.5).
 * - k >= 2 (multiclass): the scores are class probabilities; labels must
 *   be in 0..k-1. The prediction is the first index of the largest score,
 *   its confidence that score, and the bins compare the mean confidence
 *   with the accuracy (top-label calibration).
 * Scores are used as given (not renormalised) and must lie in [0, 1].
 *
 * Metrics (B bins, default 15):
 * - ECE = Σ_b (n_b/N)·|acc_b - conf_b| over equal-width bins; bin b
 *   (0-based) holds b/B < c <= (b+1)/B, bin 0 also c = 0: the binning of
 *   sklearn.calibration.calibration_curve(strategy='uniform');
 * - adaptive ECE: the same sum over B equal-mass bins: records sorted by
 *   (confidence, then correct/label), bin b holds sorted positions
 *   floor(b·N/B) .. floor((b+1)·N/B) - 1; empty bins (N < B) skipped;
 * - MCE: max over non-empty equal-width bins of |acc_b - conf_b|;
 * - Brier: binary mean (p - y)²; multiclass mean over records of
 *   Σ_c (p_c - [y = c])² (the original Brier score, in [0, 2]);
 * - log-loss: -mean ln(q), q the probability given to the true label
 *   (binary: p or 1 - p), clipped to [1e-15, 1 - 1e-15];
 * - accuracy: share of correct predictions;
 * - precision, recall, F1: binary for class 1; multiclass the unweighted
 *   mean over the classes present in the labels or the predictions
 *   (sklearn's average='macro'); a 0/0 ratio counts as 0, as sklearn's
 *   zero_division default.
 *
 * Errors: 0 or -EINVAL (NULL pointers, n = 0, k = 0 or > CAL_MAX_CLASSES,
 * bins > CAL_MAX_BINS, threshold outside (0, 1)), -ERANGE (a label
 * outside the allowed set), -EDOM (a score outside [0, 1] or NaN),
 * -ENOMEM. Outputs are written only on success. Pure functions: no
 * globals, thread-safe; cal_metrics allocates 16·n bytes for the adaptive
 * bins. */
#ifndef DRIFTD_CALIBRATION_H
#define DRIFTD_CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#define CAL_DEFAULT_BINS 15
#define CAL_MAX_BINS 1000
#define CAL_MAX_CLASSES 4096

/* A zero-initialised struct asks for the defaults. */
struct cal_params {
	unsigned bins;    /* equal-width and equal-mass bins; 0 = 15 */
	double threshold; /* binary decision threshold; 0 = 0.5 */
};

struct cal_result {
	size_t n;         /* labelled records used */
	double ece;       /* in [0, 1] */
	double ace;       /* adaptive ECE, in [0, 1] */
	double mce;       /* in [0, 1] */
	double brier;
	double log_loss;  /* >= 0, at most -ln(1e-15) ≈ 34.5 */
	double accuracy;
	double precision; /* binary: class 1; multiclass: macro */
	double recall;
	double f1;
};

/* One equal-width reliability bin. Empty bins have count 0 and
 * confidence = accuracy = 0. */
struct cal_bin {
	double lower, upper; /* b/B and (b+1)/B */
	size_t count;
	double confidence;   /* mean p (binary) or top-label confidence */
	double accuracy;     /* fraction of label 1 (binary) or of correct */
};

int cal_metrics(const float *scores, unsigned k, const int64_t *labels,
		size_t n, const struct cal_params *p, struct cal_result *out);

/* Fills bins[0..B) (B = p->bins or 15), the data behind a reliability
 * diagram and behind ECE and MCE. */
int cal_reliability(const float *scores, unsigned k, const int64_t *labels,
		    size_t n, const struct cal_params *p, struct cal_bin *bins);

#endif
