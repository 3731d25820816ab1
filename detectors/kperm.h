/* kperm: the permutation machinery shared by the kernel two-sample tests
 * (mmd, energy). Both statistics are MMD²_u of some kernel k on the pooled
 * sample z = (x, y):
 *   T(s) = Σ_{i≠j∈x} k/(n(n-1)) + Σ_{i≠j∈y} k/(m(m-1)) - 2 Σ_{x,y} k/(nm)
 * and every reassignment s of the pooled points is scored from one matrix
 * product K0·S over a block of 0/1 assignment vectors (DESIGN §4 hint).
 *
 * Callers fill the upper triangle of an N x N kernel matrix (N = n + m,
 * reference rows first), then call kperm_run. Helpers build the centred
 * pooled Gram matrix the kernels are computed from.
 *
 * Conventions as in mmd.h: float32 row-major matrices, 0 or a negative
 * errno, no globals (thread-safe), workspaces owned by the caller's struct
 * and released with kperm_free. */
#ifndef DRIFTD_KPERM_H
#define DRIFTD_KPERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Dimensions are passed to BLAS as blasint, which is at least an int. */
#define KPERM_DIM_MAX ((size_t)2147483647)

struct kperm_work {
	size_t n, m, pooled, d;
	size_t block;   /* assignment vectors per BLAS call */
	float *kern;    /* N x N: Gram matrix, then the kernel (upper) */
	float *rows;    /* N x d: x then y, centred on the pooled mean */
	float *norms;   /* N: squared norms of the centred rows */
	double *mean;   /* d */
	size_t *idx;    /* N: point indices */
	float *assign;  /* block x N: 1 where the point is assigned to x */
	float *prod;    /* block x N: assign · K0 */
};

/* Workspace bytes for these sizes (the kperm_work arrays only), or -EINVAL
 * (n < 2, m < 2, d < 1, N or d beyond KPERM_DIM_MAX) / -ENOMEM (the size
 * overflows size_t). */
int kperm_bytes(size_t n, size_t m, size_t d, unsigned permutations,
		size_t *bytes);

/* Allocates the workspace; sizes as kperm_bytes. Returns 0, -EINVAL or
 * -ENOMEM (nothing to free then). */
int kperm_alloc(struct kperm_work *w, size_t n, size_t m, size_t d,
		unsigned permutations);
void kperm_free(struct kperm_work *w);

/* Copies x (n x d) and y (m x d) centred on their pooled mean into
 * w->rows, then writes their Gram matrix into the upper triangle of
 * w->kern (one ssyrk) and its diagonal into w->norms. */
void kperm_gram(struct kperm_work *w, const float *x, const float *y);

/* ||z_i - z_j||² from the Gram entry g = z_i·z_j, clamped at 0. */
static inline float kperm_sqdist(const float *norms, size_t i, size_t j,
				 float g)
{
	double sq = (double)norms[i] + (double)norms[j] - 2.0 * (double)g;

	return sq > 0.0 ? (float)sq : 0.0f;
}

/* Applies f(||z_i - z_j||²) to every Gram entry of the upper triangle of
 * w->kern, in float arithmetic that the compiler vectorises, and returns
 * the sum of the new entries (what kperm_run needs). */
enum kperm_kernel { KPERM_GAUSSIAN, KPERM_DISTANCE };
double kperm_apply(struct kperm_work *w, enum kperm_kernel kind,
		   double bandwidth);

/* With the kernel in the upper triangle of w->kern (diagonal ignored) and
 * kernel_sum the sum of its entries above the diagonal: T_obs for the
 * observed split and the permutation p-value
 * (1 + #{b : T_b >= T_obs}) / (B + 1) over B random reassignments drawn
 * from rng_init(seed, stream). A reassignment within float rounding of
 * T_obs counts as a tie (duplicated points never make the test liberal).
 * B = 0 gives the statistic and p = NaN. Overwrites the kernel with its
 * mean-centred form. */
void kperm_run(struct kperm_work *w, double kernel_sum, unsigned permutations,
	       uint64_t seed, uint64_t stream, double *statistic,
	       double *p_value);

#endif
