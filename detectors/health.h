/* health: embedding-health monitors for contrastive encoders (DESIGN §4):
 * collapse and spread of a window compared with the reference.
 *
 * Statistics of one sample (n x d):
 * - effective rank (RankMe): exp(-Σ p_k ln p_k), p_k = σ_k / Σσ, σ the
 *   singular values of the sample centred on its mean; between 1 and
 *   min(n - 1, d), 0 when every row is the same point;
 * - uniformity: ln mean_{i<j} exp(-2·||u_i - u_j||²) over the rows scaled
 *   to unit length (Wang & Isola, t = 2); in [-4, 0], higher = more
 *   concentrated; rows of norm 0 are left out, and with fewer than two
 *   other rows it is 0 (all in one direction);
 * - mean norm: mean of ||x_i|| (raw rows);
 * - near-duplicate share: share of rows having another row of the sample
 *   at cosine similarity >= dup_cosine (zero rows duplicate each other).
 *
 * Comparison: the effective rank and the duplicate share grow with the
 * sample size, so both samples are first cut to the same size,
 * min(n, m) rows chosen at random with rng_init(seed, HL_STREAM_SUBSAMPLE)
 * from the larger one.
 *
 * Cost: the Gram (or covariance) matrix of the smaller of n and d plus a
 * LAPACK eigenvalue solve in double; pairwise cosines in blocks of 256
 * rows (sgemm). Memory about 8·min(n,d)² + 4·n·d + 1 KiB·n bytes.
 * Conventions: finite float32 row-major input; 0 or a negative errno
 * (-EINVAL bad arguments, -ENOMEM, -EIO when LAPACK reports a failure);
 * outputs written only on success; no globals (thread-safe). */
#ifndef DRIFTD_HEALTH_H
#define DRIFTD_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define HL_DEFAULT_DUP_COSINE 0.99
#define HL_STREAM_SUBSAMPLE 4

struct hl_stats {
	double effective_rank;
	double uniformity;
	double mean_norm;
	double duplicate_share; /* in [0, 1] */
	size_t n;
};

/* Statistics of x (n x d), n >= 2, d >= 1; dup_cosine in (0, 1]. */
int hl_stats(const float *x, size_t n, size_t d, double dup_cosine,
	     struct hl_stats *out);

/* RankMe of x (n x d), n >= 1, d >= 1, alone. */
int hl_effective_rank(const float *x, size_t n, size_t d, double *rank);

/* A zero-initialised struct asks for the defaults. */
struct hl_params {
	double dup_cosine; /* 0 = HL_DEFAULT_DUP_COSINE */
	uint64_t seed;
};

struct hl_result {
	struct hl_stats ref, win; /* on the size-matched samples */
	double rank_drop;         /* 1 - rank_win / rank_ref; 0 if rank_ref is 0 */
	double uniformity_rise;   /* uniformity_win - uniformity_ref */
	double norm_change;       /* |norm_win / norm_ref - 1|; for norm_ref 0:
				   * 1 if norm_win > 0, else 0 */
	double duplicate_rise;    /* share_win - share_ref */
};

/* Peak workspace hl_compare allocates for these sizes, in bytes (LAPACK's
 * own small workspace aside); -ENOMEM if it overflows. */
int hl_workspace_bytes(size_t n, size_t m, size_t d, size_t *bytes);

/* Reference ref (n x d) against the window win (m x d), n, m >= 2. */
int hl_compare(const float *ref, size_t n, const float *win, size_t m,
	       size_t d, const struct hl_params *p, struct hl_result *out);

#endif
