/* health: effective rank, uniformity, mean norm and near-duplicates of an
 * embedding sample, and their change against the reference (DESIGN §4). */
#include "health.h"

#include <cblas.h>
#include <errno.h>
#include <lapack.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Rows per sgemm when scanning pairwise cosines. */
#define PAIR_BLOCK 256

/* Eigenvalues (ascending) of the symmetric k x k matrix a, whose lower
 * triangle in LAPACK's column-major view is filled; a is destroyed. */
static int eigenvalues(double *a, size_t k, double *w)
{
	lapack_int n = (lapack_int)k, lwork = -1, liwork = -1, info = 0;
	lapack_int iwork_size;
	double work_size;

	LAPACK_dsyevd("N", "L", &n, a, &n, w, &work_size, &lwork, &iwork_size,
		      &liwork, &info);
	if (info)
		return -EIO;
	lwork = (lapack_int)work_size;
	liwork = iwork_size;

	double *work = malloc((size_t)lwork * sizeof *work);
	lapack_int *iwork = malloc((size_t)liwork * sizeof *iwork);

	if (!work || !iwork) {
		free(work);
		free(iwork);
		return -ENOMEM;
	}
	LAPACK_dsyevd("N", "L", &n, a, &n, w, work, &lwork, iwork, &liwork,
		      &info);
	free(work);
	free(iwork);
	return info ? -EIO : 0;
}

/* exp(entropy) of the singular values sqrt(max(w, 0)). */
static double rank_from_eigenvalues(const double *w, size_t k)
{
	double total = 0.0, entropy = 0.0;

	for (size_t i = 0; i < k; i++)
		total += sqrt(fmax(w[i], 0.0));
	if (!(total > 0.0))
		return 0.0;
	for (size_t i = 0; i < k; i++) {
		double p = sqrt(fmax(w[i], 0.0)) / total;

		if (p > 0.0)
			entropy -= p * log(p);
	}
	return exp(entropy);
}

int hl_effective_rank(const float *x, size_t n, size_t d, double *rank)
{
	size_t k = n < d ? n : d, len, sq;
	double *centred, *gram, *w, *mean;
	int err = -ENOMEM;

	if (!x || !rank || !n || !d || n > INT32_MAX || d > INT32_MAX)
		return -EINVAL;
	if (__builtin_mul_overflow(n, d, &len) ||
	    __builtin_mul_overflow(k, k, &sq))
		return -ENOMEM;
	centred = malloc(len * sizeof *centred);
	gram = malloc(sq * sizeof *gram);
	w = malloc(k * sizeof *w);
	mean = calloc(d, sizeof *mean);
	if (!centred || !gram || !w || !mean)
		goto done;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			mean[j] += (double)x[i * d + j];
	for (size_t j = 0; j < d; j++)
		mean[j] /= (double)n;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			centred[i * d + j] = (double)x[i * d + j] - mean[j];
	/* Row-major upper = column-major lower. n <= d: rows' Gram matrix,
	 * otherwise the d x d scatter matrix; both have the same non-zero
	 * eigenvalues. */
	cblas_dsyrk(CblasRowMajor, CblasUpper, n <= d ? CblasNoTrans : CblasTrans,
		    (blasint)k, (blasint)(n <= d ? d : n), 1.0, centred,
		    (blasint)d, 0.0, gram, (blasint)k);
	err = eigenvalues(gram, k, w);
	if (!err)
		*rank = rank_from_eigenvalues(w, k);
done:
	free(centred);
	free(gram);
	free(w);
	free(mean);
	return err;
}

struct pair_scan {
	const float *unit; /* rows scaled to unit length (zero rows: 0) */
	const bool *zero;  /* row had norm 0 */
	size_t n, d;
	double cos_min;    /* duplicates at cosine >= this */
	float *block;      /* PAIR_BLOCK x n */
	bool *dup;         /* n: row has a near-duplicate */
	double sum;        /* Σ over valid pairs of exp(4·cos - 4) */
	double pairs;
};

static void scan_block(struct pair_scan *s, size_t i0, size_t rows)
{
	size_t cols = s->n - i0;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows,
		    (blasint)cols, (blasint)s->d, 1.0f, s->unit + i0 * s->d,
		    (blasint)s->d, s->unit + i0 * s->d, (blasint)s->d, 0.0f,
		    s->block, (blasint)cols);
	for (size_t r = 0; r < rows; r++) {
		size_t i = i0 + r;

		if (s->zero[i])
			continue;
		for (size_t c = r + 1; c < cols; c++) {
			size_t j = i0 + c;
			/* rounding can push a cosine past 1 */
			double cos = fmin((double)s->block[r * cols + c], 1.0);

			if (s->zero[j])
				continue;
			/* ||u - v||² = 2 - 2·cos */
			s->sum += exp(4.0 * cos - 4.0);
			s->pairs += 1.0;
			if (cos >= s->cos_min)
				s->dup[i] = s->dup[j] = true;
		}
	}
}

/* Unit rows, mean norm and the zero rows. Returns the count of zero rows. */
static size_t normalise(const float *x, size_t n, size_t d, float *unit,
			bool *zero, double *mean_norm)
{
	size_t zeros = 0;
	double total = 0.0;

	for (size_t i = 0; i < n; i++) {
		double sq = 0.0;

		for (size_t j = 0; j < d; j++)
			sq += (double)x[i * d + j] * (double)x[i * d + j];
		double norm = sqrt(sq);

		total += norm;
		zero[i] = !(norm > 0.0);
		zeros += zero[i];
		for (size_t j = 0; j < d; j++)
			unit[i * d + j] = zero[i] ? 0.0f :
				(float)((double)x[i * d + j] / norm);
	}
	*mean_norm = total / (double)n;
	return zeros;
}

static int pairwise(const float *x, size_t n, size_t d, double cos_min,
		    struct hl_stats *out)
{
	size_t len, blk;
	float *unit = NULL, *block = NULL;
	bool *flags = NULL;
	int err = -ENOMEM;

	if (__builtin_mul_overflow(n, d, &len) ||
	    __builtin_mul_overflow(n, (size_t)PAIR_BLOCK, &blk))
		return -ENOMEM;
	unit = malloc(len * sizeof *unit);
	block = malloc(blk * sizeof *block);
	flags = calloc(2 * n, sizeof *flags);
	if (!unit || !block || !flags)
		goto done;

	struct pair_scan s = {
		.unit = unit, .zero = flags, .n = n, .d = d,
		.cos_min = cos_min, .block = block, .dup = flags + n,
	};
	size_t zeros = normalise(x, n, d, unit, flags, &out->mean_norm);
	size_t dups = zeros > 1 ? zeros : 0;

	for (size_t i0 = 0; i0 < n; i0 += PAIR_BLOCK)
		scan_block(&s, i0, n - i0 < PAIR_BLOCK ? n - i0 : PAIR_BLOCK);
	for (size_t i = 0; i < n; i++)
		dups += s.dup[i];
	out->duplicate_share = (double)dups / (double)n;
	out->uniformity = s.pairs > 0.0 ? log(s.sum / s.pairs) : 0.0;
	err = 0;
done:
	free(unit);
	free(block);
	free(flags);
	return err;
}

int hl_stats(const float *x, size_t n, size_t d, double dup_cosine,
	     struct hl_stats *out)
{
	struct hl_stats st = { .n = n };
	int err;

	if (!x || !out || n < 2 || !d || n > INT32_MAX || d > INT32_MAX ||
	    !(dup_cosine > 0.0 && dup_cosine <= 1.0))
		return -EINVAL;
	err = hl_effective_rank(x, n, d, &st.effective_rank);
	if (!err)
		err = pairwise(x, n, d, dup_cosine, &st);
	if (!err)
		*out = st;
	return err;
}

/* count rows of a (len x d) chosen at random into out. */
static void subsample(const float *a, size_t len, size_t d, size_t count,
		      uint64_t seed, size_t *idx, float *out)
{
	struct rng r;

	rng_init(&r, seed, HL_STREAM_SUBSAMPLE);
	for (size_t i = 0; i < len; i++)
		idx[i] = i;
	rng_shuffle_prefix(&r, idx, len, count);
	for (size_t i = 0; i < count; i++)
		memcpy(out + i * d, a + idx[i] * d, d * sizeof *out);
}

static double relative_drop(double ref, double win)
{
	return ref > 0.0 ? 1.0 - win / ref : 0.0;
}

static double relative_change(double ref, double win)
{
	if (ref > 0.0)
		return fabs(win / ref - 1.0);
	return win > 0.0 ? 1.0 : 0.0;
}

int hl_workspace_bytes(size_t n, size_t m, size_t d, size_t *bytes)
{
	size_t c = n < m ? n : m, k = c < d ? c : d, cd, kk, rank, pairs;

	if (!bytes)
		return -EINVAL;
	/* the cut sample, then the larger of the rank step (centred copy,
	 * Gram matrix) and the pairwise step (unit rows, one block) */
	if (__builtin_mul_overflow(c, d, &cd) ||
	    __builtin_mul_overflow(k, k, &kk) ||
	    __builtin_mul_overflow(cd, 12, &rank) ||
	    __builtin_add_overflow(rank, 8 * kk + 16 * k + 8 * d, &rank) ||
	    __builtin_mul_overflow(c, 4 * (size_t)PAIR_BLOCK + 2, &pairs) ||
	    __builtin_add_overflow(pairs, 8 * cd, &pairs) ||
	    __builtin_add_overflow(rank > pairs ? rank : pairs,
				   8 * (n > m ? n : m), bytes))
		return -ENOMEM;
	return 0;
}

int hl_compare(const float *ref, size_t n, const float *win, size_t m,
	       size_t d, const struct hl_params *p, struct hl_result *out)
{
	double cos_min = p && p->dup_cosine > 0.0 ? p->dup_cosine :
						    HL_DEFAULT_DUP_COSINE;
	uint64_t seed = p ? p->seed : 0;
	size_t count = n < m ? n : m, len;
	const float *big = n > m ? ref : win;
	struct hl_result res;
	float *cut = NULL;
	size_t *idx = NULL;
	int err;

	if (!ref || !win || !out || n < 2 || m < 2 || !d ||
	    (p && p->dup_cosine < 0.0) || cos_min > 1.0)
		return -EINVAL;
	if (n != m) {
		if (__builtin_mul_overflow(count, d, &len))
			return -ENOMEM;
		cut = malloc(len * sizeof *cut);
		idx = malloc((n > m ? n : m) * sizeof *idx);
		if (!cut || !idx) {
			free(cut);
			free(idx);
			return -ENOMEM;
		}
		subsample(big, n > m ? n : m, d, count, seed, idx, cut);
	}
	err = hl_stats(n > m ? cut : ref, count, d, cos_min, &res.ref);
	if (!err)
		err = hl_stats(m > n ? cut : win, count, d, cos_min, &res.win);
	free(cut);
	free(idx);
	if (err)
		return err;
	res.rank_drop = relative_drop(res.ref.effective_rank,
				      res.win.effective_rank);
	res.uniformity_rise = res.win.uniformity - res.ref.uniformity;
	res.norm_change = relative_change(res.ref.mean_norm, res.win.mean_norm);
	res.duplicate_rise = res.win.duplicate_share - res.ref.duplicate_share;
	*out = res;
	return 0;
}
