/* scores: univariate drift tests on a model's predicted scores (DESIGN §4).
 *
 * Scores arrive per record as k floats: k = 1 is the probability of class
 * 1 (binary), k >= 2 the class probabilities. The tested value of a record
 * is its score (k = 1) or its largest score (k >= 2, the top-label
 * confidence); its predicted class is score >= 0.5 (k = 1) or the first
 * index of the largest score.
 *
 * Tests of a reference sample (n records) against a window (m records):
 * - KS on the values, p-value as scipy's ks_2samp (see ks.h);
 * - PSI = Σ (c_b - r_b)·ln(c_b / r_b) over 10 bins cut at the reference's
 *   deciles (numpy.quantile, linear interpolation); a value v falls in bin
 *   #{edges <= v} (numpy.searchsorted side='right'); proportions r_b, c_b
 *   of 0 become ε = 1e-4;
 * - Jensen–Shannon distance, base 2 (scipy.spatial.distance.jensenshannon)
 *   between the raw bin proportions of the same bins: in [0, 1];
 * - Wasserstein-1 between the two empirical distributions of the values
 *   (scipy.stats.wasserstein_distance), in score units;
 * - χ² test of homogeneity of the predicted classes (2 x C contingency
 *   table over the C classes seen in either sample, no continuity
 *   correction: scipy.stats.chi2_contingency(correction=False)); with
 *   fewer than 2 classes seen the statistic is 0 and p = 1.
 *
 * Conventions: scores finite (NaN is the caller's to reject); functions
 * return 0 or a negative errno (-EINVAL bad arguments, -ENOMEM); outputs
 * written only on success; no globals (thread-safe). */
#ifndef DRIFTD_SCORES_H
#define DRIFTD_SCORES_H

#include <stddef.h>

#include "ks.h"

#define SC_DEFAULT_BINS 10
#define SC_DEFAULT_EPSILON 1e-4
#define SC_MAX_CLASSES 4096

/* A zero-initialised struct asks for the defaults. */
struct sc_params {
	unsigned bins;  /* quantile bins for PSI and JS; 0 = 10, else >= 2 */
	double epsilon; /* floor for empty-bin proportions; 0 = 1e-4 */
};

struct sc_result {
	struct ks_result ks;
	double psi;          /* >= 0 */
	double js;           /* in [0, 1] */
	double wasserstein;  /* >= 0 */
	double chi2;         /* >= 0 */
	double chi2_p;       /* in [0, 1] */
	unsigned chi2_dof;   /* classes seen - 1; 0 when fewer than 2 */
};

/* The tested value of each of the n records of scores (n x k) into
 * out[0..n). */
int sc_values(const float *scores, size_t n, unsigned k, float *out);

/* The predicted class of each record into cls[0..n). */
int sc_classes(const float *scores, size_t n, unsigned k, unsigned *cls);

/* Reference scores (n x k) against window scores (m x k), n, m >= 1,
 * 1 <= k <= SC_MAX_CLASSES. Allocates about 8·(n + m) + 16·k bytes. */
int sc_compare(const float *ref, size_t n, const float *win, size_t m,
	       unsigned k, const struct sc_params *p, struct sc_result *out);

/* PSI and JS distance of two sorted value samples, bins as above. */
int sc_psi_js(const float *ref_sorted, size_t n, const float *win, size_t m,
	      const struct sc_params *p, double *psi, double *js);

/* W1 between two samples sorted ascending. */
int sc_wasserstein_sorted(const float *a, size_t n, const float *b, size_t m,
			  double *w1);

/* χ² homogeneity test of two count vectors over `classes` categories. */
int sc_chi2(const size_t *ref_counts, const size_t *win_counts,
	    size_t classes, double *stat, double *p, unsigned *dof);

/* P(X >= x) for X ~ χ²(dof), dof >= 1, x >= 0 (regularised upper
 * incomplete gamma Q(dof/2, x/2)); NaN for bad arguments. */
double sc_chi2_sf(double x, double dof);

#endif
