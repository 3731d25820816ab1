/* centroid: shift between the mean of a window and the mean of a reference
 * (DESIGN §4): cosine distance and Euclidean distance, no p-value.
 *
 * Matrices are float32, row-major, one point per row, finite (NaN/Inf are
 * the caller's to reject). Means are accumulated in double. Functions return
 * 0 or a negative errno (-EINVAL for bad arguments, -ENOMEM); outputs are
 * written only on success. No global state: thread-safe. */
#ifndef DRIFTD_CENTROID_H
#define DRIFTD_CENTROID_H

#include <stddef.h>

struct cen_result {
	/* 1 - cos(angle between the means), in [0, 2]. When a mean is the zero
	 * vector it has no direction: 0 if both are zero, otherwise 1 (as for
	 * orthogonal means). */
	double cosine;
	double euclidean; /* ||mean_a - mean_b||, in the embedding's units */
};

/* Column means of a (n x d, n >= 1, d >= 1) into mean[0..d). */
int cen_mean(const float *a, size_t n, size_t d, double *mean);

/* Distances between two precomputed means of length d >= 1, so a caller can
 * keep the reference mean across windows. */
int cen_distance(const double *mean_a, const double *mean_b, size_t d,
		 struct cen_result *out);

/* Means of ref (n x d) and win (m x d), then their distances. Allocates
 * 16·d bytes for the duration of the call. */
int cen_shift(const float *ref, size_t n, const float *win, size_t m,
	      size_t d, struct cen_result *out);

/* cen_shift with the window given by its column sums WIN_SUMS[0..d) over
 * M rows, added up in double in row order: the same result, bit for bit,
 * without reading the window's rows. */
int cen_shift_sums(const float *ref, size_t n, const double *win_sums,
		   size_t m, size_t d, struct cen_result *out);

#endif
