/* calibration: how well predicted probabilities match labels (DESIGN §4).
 *
 * Binary (k = 1): the score is P(y = 1); confidence bins are over that
 * score and compare its mean with the share of label 1.  Multiclass
 * (k >= 2): the top-label confidence max_c p_c against whether argmax_c p_c
 * is the label.  Bins are equal-width over [0, 1] (a score s goes to bin
 * min(floor(s·bins), bins - 1); scores are clamped to [0, 1]).
 *   ECE = Σ_b (n_b / N)·|acc_b − conf_b|,  MCE = max over non-empty bins,
 *   Brier = mean Σ_c (p_c − 1[c = y])²  (binary: mean (p − y)²),
 *   accuracy = share of records whose predicted class (binary: p >= 0.5)
 *              is the label.
 * Pure: no globals, thread-safe, no allocation.  Returns 0 or -EINVAL
 * (n == 0, k == 0, bins == 0, a label outside 0..max(1, k - 1)). */
#ifndef DRIFTD_CALIBRATION_H
#define DRIFTD_CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#define CAL_DEFAULT_BINS 15
#define CAL_MAX_BINS 1000

struct cal_summary {
	double ece, mce, brier, accuracy;
};

/* scores: n × k row-major; labels: n class indices. */
int cal_summarize(const float *scores, const int32_t *labels, size_t n,
		  unsigned k, unsigned bins, struct cal_summary *out);

#endif
