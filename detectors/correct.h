/* correct: multiple-testing control across the slices (and dimensions) of
 * one model evaluated at the same moment (DESIGN §4).
 *
 * Both procedures are expressed as one threshold on the raw p-values: a
 * hypothesis is rejected exactly when p <= threshold.  For Bonferroni that
 * is alpha/m; for Benjamini–Hochberg it is p_(k), the largest p-value the
 * step-up procedure rejects (k the largest i with p_(i)·m/i <= alpha), or
 * alpha/m when it rejects none.  NaN p-values (tests that did not run) are
 * left out of m.
 * Pure: no globals, thread-safe; returns 0 or -EINVAL / -ENOMEM. */
#ifndef DRIFTD_CORRECT_H
#define DRIFTD_CORRECT_H

#include <stddef.h>

enum corr_method { CORR_BH, CORR_BONFERRONI, CORR_NONE };

int corr_threshold(enum corr_method method, const double *p, size_t n,
		   double alpha, double *threshold);

/* Adjusted p-values (BH step-up q-values, Bonferroni min(1, m·p), or p
 * itself), written to adj[0..n-1]; NaN stays NaN.  adj may alias p. */
int corr_adjust(enum corr_method method, const double *p, size_t n,
		double *adj);

#endif
