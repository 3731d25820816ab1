/* projection: random projection of wide embeddings to k dimensions before
 * the kernel and classifier tests, to cut their cost and memory
 * (Johnson–Lindenstrauss: pairwise distances are kept up to a factor
 * 1 ± O(1/√k)).
 *
 * The d x k matrix R has independent entries ±1/√k with equal probability
 * (Achlioptas' database-friendly projection: the same guarantee as
 * Gaussian entries, one random bit each), entry i being bit i % 64 of the
 * (i / 64)-th draw of rng_init(seed, PROJ_STREAM), row-major. The same
 * seed projects reference and window alike and a result can be
 * reproduced.
 * Conventions: float32 row-major; 0 or a negative errno (-EINVAL bad
 * arguments, -ENOMEM); no globals (thread-safe); BLAS on the calling
 * thread. */
#ifndef DRIFTD_PROJECTION_H
#define DRIFTD_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#define PROJ_STREAM 7

/* Fills r (d x k, k >= 1) with the projection matrix for seed. */
int proj_matrix(size_t d, size_t k, uint64_t seed, float *r);

/* out (n x k) = a (n x d) · r (d x k). */
int proj_apply(const float *a, size_t n, size_t d, const float *r, size_t k,
	       float *out);

/* Projects x (n x d) and y (m x d) with the matrix of seed into newly
 * allocated *xp (n x k) and *yp (m x k), which the caller frees. */
int proj_pair(const float *x, size_t n, const float *y, size_t m, size_t d,
	      size_t k, uint64_t seed, float **xp, float **yp);

#endif
