/* mmd: kernel two-sample test for embedding drift (DESIGN §4).
 *
 * Gaussian kernel k(a,b) = exp(-||a-b||² / h); h is the median of the squared
 * Euclidean distances between distinct pairs of reference points (at most
 * bandwidth_max_points of them, chosen at random with the seed). Statistic is
 * the unbiased MMD²_u; p = (1 + #{b : T_b >= T_obs}) / (B + 1) over B random
 * reassignments of the pooled sample.
 *
 * Conventions: matrices are float32, row-major, one point per row, and must be
 * finite (NaN/Inf are the caller's to reject; with them results are
 * unspecified but nothing crashes). Functions return 0 or a negative errno:
 * -EINVAL for bad arguments, -ENOMEM when the workspace cannot be allocated.
 * Outputs are written only on success. Inputs are only read and not retained.
 * Thread-safe: no global state; every call allocates its own workspace and
 * frees it before returning. BLAS (OpenBLAS) is called from the calling thread.
 *
 * Reproducibility: results depend only on the data, the parameters and the
 * seed. The reference subsample is the first bandwidth_max_points entries of
 * rng_shuffle_prefix over 0..n-1 with rng_init(seed, MMD_STREAM_BANDWIDTH);
 * permutations come from rng_init(seed, MMD_STREAM_PERMUTATION). */
#ifndef DRIFTD_MMD_H
#define DRIFTD_MMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMD_DEFAULT_BANDWIDTH_MAX_POINTS 1000
#define MMD_STREAM_BANDWIDTH 1
#define MMD_STREAM_PERMUTATION 2

/* A zero-initialised struct asks for the defaults of each field. */
struct mmd_params {
	unsigned permutations;       /* B; 0 = statistic only, p_value = NaN */
	uint64_t seed;
	size_t bandwidth_max_points; /* 0 = default (1000); otherwise >= 2 */
	double bandwidth;            /* > 0: use this h; 0 = median heuristic */
};

struct mmd_result {
	double statistic;        /* MMD²_u (can be slightly negative) */
	double p_value;          /* in [1/(B+1), 1]; NaN when B == 0 */
	double bandwidth;        /* h actually used, squared distance units */
	unsigned permutations;   /* B */
	bool bandwidth_fallback; /* median was 0 (identical points): h = 1 */
};

/* Median-heuristic bandwidth of the reference ref (n x d, n >= 2, d >= 1).
 * max_points: 0 = default, otherwise >= 2. Sets *h (> 0) and *fallback (true
 * when the median was 0 and h = 1 was used instead). mmd_test computes the
 * same quantity from its own distance matrix; the two agree to float32
 * rounding. Memory: about 6·k² + 4·k·d + 8·n bytes, k = min(n, max_points). */
int mmd_bandwidth(const float *ref, size_t n, size_t d, size_t max_points,
		  uint64_t seed, double *h, bool *fallback);

/* Two-sample test of the reference x (n x d) against the window y (m x d);
 * n >= 2, m >= 2, d >= 1, p may be NULL for the defaults (B = 0, seed 0).
 * Ties: a reassignment whose statistic equals T_obs up to float rounding
 * counts as >= T_obs, so duplicated points never make the test liberal.
 * Memory (see mmd_workspace_bytes): 4·N² bytes for the kernel matrix,
 * N = n + m, plus 4·N·d for the pooled copy, 8·N·min(B+1, 256) for the
 * permutation blocks and 2·k² for the bandwidth pairs. */
int mmd_test(const float *x, size_t n, const float *y, size_t m, size_t d,
	     const struct mmd_params *p, struct mmd_result *out);

/* Peak workspace mmd_test would allocate for these sizes, in bytes, so that
 * callers can enforce a memory limit before queueing a test. Returns 0 or
 * -EINVAL (bad arguments, as mmd_test) or -ENOMEM (size overflows size_t). */
int mmd_workspace_bytes(size_t n, size_t m, size_t d,
			const struct mmd_params *p, size_t *bytes);

#endif
