/* ks: two-sample Kolmogorov–Smirnov tests (DESIGN §4), univariate and on
 * every coordinate of an embedding.
 *
 * Statistic D = sup |F_a - F_b| of the two empirical CDFs (ties handled as
 * scipy does: both CDFs are evaluated after every copy of a value). The
 * two-sided p-value is that of scipy.stats.ks_2samp(method='auto'):
 * - both samples of at most KS_EXACT_MAX points: the exact distribution of
 *   D under the null (lattice paths; for n == m the closed alternating
 *   sum, otherwise the recursion that counts paths leaving the band, which
 *   stays accurate for tiny p);
 * - larger: the one-sample Kolmogorov distribution of D at
 *   N = round(nm/(n+m)) (scipy's kstwo.sf): Durbin's matrix for N <= 140,
 *   the Pelz–Good series above, and twice the exact one-sided Smirnov tail
 *   where N·D² >= 2.2.
 * Both agree with scipy within 1e-6 (tests/data/gen_ks_vectors.py).
 *
 * Cost: sorting, plus for the exact p-value O(n) when n == m and
 * O(max(n,m) × band) otherwise, band ≈ 2·D·min(n,m).
 *
 * Conventions: values are finite float32 (NaN is the caller's to reject);
 * functions return 0 or a negative errno (-EINVAL bad arguments, -ENOMEM);
 * outputs are written only on success; no globals (thread-safe). */
#ifndef DRIFTD_KS_H
#define DRIFTD_KS_H

#include <stdbool.h>
#include <stddef.h>

#include "correct.h"

#define KS_EXACT_MAX 10000

struct ks_result {
	double statistic; /* D in [0, 1] */
	double p_value;   /* in [0, 1] */
	bool exact;       /* exact null distribution (both sizes <= 10000) */
};

/* a (n values) against b (m values), n >= 1, m >= 1, in any order.
 * Allocates 4·(n + m) bytes for sorted copies. */
int ks_test(const float *a, size_t n, const float *b, size_t m,
	    struct ks_result *out);

/* Same for inputs already sorted ascending (as fsort leaves them): skips
 * the sort. Unsorted input gives a wrong D, never a crash. */
int ks_test_sorted(const float *a, size_t n, const float *b, size_t m,
		   struct ks_result *out);

/* Two-sided p-value of an observed D for sizes n, m (as ks_2samp: D is
 * first rounded to the lattice of multiples of 1/lcm(n, m) when exact).
 * NaN for n or m of 0. */
double ks_p_value(size_t n, size_t m, double d);

struct ks_dims_params {
	double alpha;                /* in (0, 1): level after correction */
	enum corr_method correction; /* across the d coordinates */
};

struct ks_dims_result {
	double share;        /* drifted coordinates / d */
	double min_p;        /* smallest corrected p: the model-level p-value
			      * (Simes' test for BH, Bonferroni's for it) */
	double max_statistic; /* largest D over the coordinates */
	size_t drifted;      /* coordinates with corrected p <= alpha */
	size_t dims;         /* d */
};

/* KS on each coordinate of x (n x d) against y (m x d), row-major, then
 * the correction across coordinates. stat and p (each d entries, may be
 * NULL) receive the per-coordinate D and raw p-value. A constant
 * coordinate gives D = 0 and p = 1 (or D = 1 when the two constants
 * differ). Works in blocks of coordinates: about 4·64·(n + m) bytes plus
 * 24·d. */
int ks_dims(const float *x, size_t n, const float *y, size_t m, size_t d,
	    const struct ks_dims_params *p, struct ks_dims_result *out,
	    double *stat, double *pval);

#endif
