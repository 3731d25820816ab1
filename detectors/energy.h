/* energy: energy-distance two-sample test for embedding drift (DESIGN §4).
 *
 * Statistic: 2·E|X-Y| - E|X-X'| - E|Y-Y'| with Euclidean distances, the
 * within-sample means taken over distinct pairs (the unbiased U-statistic:
 * it is 0 in expectation when nothing drifted and can be slightly
 * negative). This is MMD²_u with the kernel -||a-b||, so the permutation
 * test shares the kernel tests' one-GEMM machinery (kperm):
 * p = (1 + #{b : T_b >= T_obs}) / (B + 1) over B reassignments drawn from
 * rng_init(seed, ENERGY_STREAM_PERMUTATION).
 *
 * Conventions as in mmd.h: float32 row-major finite matrices, 0 or a
 * negative errno (-EINVAL bad arguments, -ENOMEM), outputs written only on
 * success, no globals (thread-safe), BLAS on the calling thread. */
#ifndef DRIFTD_ENERGY_H
#define DRIFTD_ENERGY_H

#include <stddef.h>
#include <stdint.h>

#define ENERGY_STREAM_PERMUTATION 2

/* A zero-initialised struct: statistic only, seed 0. */
struct energy_params {
	unsigned permutations; /* B; 0 = statistic only, p_value = NaN */
	uint64_t seed;
};

struct energy_result {
	double statistic;      /* in the embedding's distance units */
	double p_value;        /* in [1/(B+1), 1]; NaN when B == 0 */
	unsigned permutations; /* B */
};

/* Reference x (n x d) against the window y (m x d); n >= 2, m >= 2,
 * d >= 1; p may be NULL. Memory: as mmd_test without the bandwidth pairs
 * (4·N² + 4·N·d + 8·N·min(B+1, 256) bytes, N = n + m). */
int energy_test(const float *x, size_t n, const float *y, size_t m, size_t d,
		const struct energy_params *p, struct energy_result *out);

/* Peak workspace energy_test would allocate, or -EINVAL / -ENOMEM. */
int energy_workspace_bytes(size_t n, size_t m, size_t d,
			   const struct energy_params *p, size_t *bytes);

#endif
