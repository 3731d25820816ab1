/* mmd: Gaussian-kernel MMD²_u with a permutation p-value (DESIGN §4). The
 * kernel matrix is built once with BLAS and every permuted statistic comes
 * from one matrix product K0·S over a block of assignment vectors (kperm). */
#include "mmd.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kperm.h"
#include "rng.h"

struct test_sizes {
	size_t max_points; /* bandwidth subsample limit */
	size_t ref_used;   /* reference points for the bandwidth; 0: h given */
	size_t pairs;      /* distinct pairs among them */
	size_t bytes;      /* total workspace */
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static bool pair_count(size_t k, size_t *pairs)
{
	size_t twice;

	if (__builtin_mul_overflow(k, k - 1, &twice))
		return false;
	*pairs = twice / 2;
	return true;
}

static int resolve_max_points(size_t requested, size_t *max_points)
{
	if (requested == 1)
		return -EINVAL;
	*max_points = requested ? requested : MMD_DEFAULT_BANDWIDTH_MAX_POINTS;
	return 0;
}

static int plan_test(size_t n, size_t m, size_t d, const struct mmd_params *p,
		     struct test_sizes *sz)
{
	size_t pair_bytes;
	int err;

	if (!(p->bandwidth >= 0.0) || isinf(p->bandwidth))
		return -EINVAL;
	err = resolve_max_points(p->bandwidth_max_points, &sz->max_points);
	if (err)
		return err;
	err = kperm_bytes(n, m, d, p->permutations, &sz->bytes);
	if (err)
		return err;
	sz->ref_used = p->bandwidth > 0.0 ? 0 : min_size(n, sz->max_points);
	sz->pairs = 0;
	if (sz->ref_used && !pair_count(sz->ref_used, &sz->pairs))
		return -ENOMEM;
	if (__builtin_mul_overflow(sz->pairs, sizeof(float), &pair_bytes) ||
	    __builtin_add_overflow(sz->bytes, pair_bytes, &sz->bytes))
		return -ENOMEM;
	return 0;
}

/* Row i of a, or row sel[i] when a selection is given. */
static const float *row_at(const float *a, const size_t *sel, size_t i,
			   size_t d)
{
	return a + (sel ? sel[i] : i) * d;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* idx[0..n) = 0..n-1, then, when n > max_points, a random subset of
 * max_points moved to the front (sorted, so gathering distances reads memory
 * in order). */
static void choose_reference(size_t *idx, size_t n, size_t max_points,
			     struct rng *r)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	if (n <= max_points)
		return;
	rng_shuffle_prefix(r, idx, n, max_points);
	qsort(idx, max_points, sizeof *idx, cmp_size);
}

/* Squared distances between distinct pairs of the selected points (sel:
 * ascending indices, or NULL for the first k points) from the upper
 * triangle of the Gram matrix gram (leading dimension ld). */
static void gather_pairs(const float *gram, size_t ld, const float *norms,
			 const size_t *sel, size_t k, float *pairs)
{
	size_t t = 0;

	for (size_t a = 0; a < k; a++) {
		size_t i = sel ? sel[a] : a;

		for (size_t b = a + 1; b < k; b++) {
			size_t j = sel ? sel[b] : b;

			pairs[t++] = kperm_sqdist(norms, i, j, gram[i * ld + j]);
		}
	}
}

static void swap_float(float *a, float *b)
{
	float t = *a;

	*a = *b;
	*b = t;
}

/* Hoare partition of v[lo..hi] around v[lo]; returns j with lo <= j < hi,
 * v[lo..j] <= pivot <= v[j+1..hi]. */
static size_t partition(float *v, size_t lo, size_t hi)
{
	float pivot = v[lo];
	size_t i = lo, j = hi;

	for (;;) {
		while (v[i] < pivot)
			i++;
		while (v[j] > pivot)
			j--;
		if (i >= j)
			return j;
		swap_float(&v[i], &v[j]);
		i++;
		j--;
	}
}

/* Value of rank k (0-based) in v[0..len), leaving larger values after it.
 * Random pivots keep the expected time linear whatever the input order. */
static float select_rank(float *v, size_t len, size_t k, struct rng *r)
{
	size_t lo = 0, hi = len - 1;

	while (lo < hi) {
		swap_float(&v[lo], &v[lo + rng_below(r, hi - lo + 1)]);
		size_t j = partition(v, lo, hi);

		if (k <= j)
			hi = j;
		else
			lo = j + 1;
	}
	return v[k];
}

/* numpy's median: the mean of the two middle values for an even count. */
static double median(float *v, size_t len, struct rng *r)
{
	size_t mid = len / 2;

	if (len % 2)
		return (double)select_rank(v, len, mid, r);
	float lower = select_rank(v, len, mid - 1, r);
	float upper = v[mid];

	for (size_t i = mid + 1; i < len; i++)
		if (v[i] < upper)
			upper = v[i];
	return 0.5 * ((double)lower + (double)upper);
}

/* All reference points identical gives a median of 0, which would make the
 * kernel degenerate; fall back to h = 1 and let the caller know. */
static void median_bandwidth(float *pairs, size_t count, struct rng *r,
			     double *h, bool *fallback)
{
	double med = median(pairs, count, r);

	*fallback = !(med > 0.0);
	*h = *fallback ? 1.0 : med;
}

/* Reference rows come first in the pooled matrix, so their Gram entries
 * are the top-left block of w->kern. */
static int pooled_bandwidth(const struct kperm_work *w,
			    const struct test_sizes *sz, uint64_t seed,
			    double *h, bool *fallback)
{
	size_t *idx = malloc(w->n * sizeof *idx);
	float *pairs = malloc(sz->pairs * sizeof *pairs);
	struct rng r;
	int err = 0;

	if (idx && pairs) {
		rng_init(&r, seed, MMD_STREAM_BANDWIDTH);
		choose_reference(idx, w->n, sz->max_points, &r);
		gather_pairs(w->kern, w->pooled, w->norms, idx, sz->ref_used,
			     pairs);
		median_bandwidth(pairs, sz->pairs, &r, h, fallback);
	} else {
		err = -ENOMEM;
	}
	free(idx);
	free(pairs);
	return err;
}

int mmd_workspace_bytes(size_t n, size_t m, size_t d,
			const struct mmd_params *p, size_t *bytes)
{
	const struct mmd_params defaults = { 0 };
	struct test_sizes sz;
	int err;

	if (!bytes)
		return -EINVAL;
	err = plan_test(n, m, d, p ? p : &defaults, &sz);
	if (err)
		return err;
	*bytes = sz.bytes;
	return 0;
}

int mmd_test(const float *x, size_t n, const float *y, size_t m, size_t d,
	     const struct mmd_params *p, struct mmd_result *out)
{
	const struct mmd_params defaults = { 0 };
	struct test_sizes sz;
	struct kperm_work w;
	bool fallback = false;
	double h, stat, pval;
	int err;

	if (!x || !y || !out)
		return -EINVAL;
	if (!p)
		p = &defaults;
	err = plan_test(n, m, d, p, &sz);
	if (err)
		return err;
	err = kperm_alloc(&w, n, m, d, p->permutations);
	if (err)
		return err;
	h = p->bandwidth;
	kperm_gram(&w, x, y);
	if (sz.ref_used)
		err = pooled_bandwidth(&w, &sz, p->seed, &h, &fallback);
	if (!err) {
		double sum = kperm_apply(&w, KPERM_GAUSSIAN, h);

		kperm_run(&w, sum, p->permutations, p->seed,
			  MMD_STREAM_PERMUTATION, &stat, &pval);
	}
	kperm_free(&w);
	if (err)
		return err;
	out->statistic = stat;
	out->p_value = pval;
	out->bandwidth = h;
	out->permutations = p->permutations;
	out->bandwidth_fallback = fallback;
	return 0;
}

static void add_rows(const float *a, const size_t *sel, size_t count,
		     size_t d, double *sum)
{
	for (size_t i = 0; i < count; i++) {
		const float *row = row_at(a, sel, i, d);

		for (size_t j = 0; j < d; j++)
			sum[j] += (double)row[j];
	}
}

static void write_centred(const float *a, const size_t *sel, size_t count,
			  size_t d, const double *mean, float *out)
{
	for (size_t i = 0; i < count; i++) {
		const float *row = row_at(a, sel, i, d);

		for (size_t j = 0; j < d; j++)
			out[i * d + j] = (float)((double)row[j] - mean[j]);
	}
}

int mmd_bandwidth(const float *ref, size_t n, size_t d, size_t max_points,
		  uint64_t seed, double *h, bool *fallback)
{
	size_t k, pairs, square, sub_len;
	struct rng r;
	int err;

	if (!ref || !h || !fallback || n < 2 || d < 1 || d > KPERM_DIM_MAX)
		return -EINVAL;
	err = resolve_max_points(max_points, &max_points);
	if (err)
		return err;
	k = min_size(n, max_points);
	if (k > KPERM_DIM_MAX)
		return -EINVAL;
	if (!pair_count(k, &pairs) || __builtin_mul_overflow(k, k, &square) ||
	    __builtin_mul_overflow(k, d, &sub_len))
		return -ENOMEM;

	size_t *idx = reallocarray(NULL, n, sizeof *idx);
	double *mean = calloc(d, sizeof *mean);
	float *sub = reallocarray(NULL, sub_len, sizeof *sub);
	float *norms = reallocarray(NULL, k, sizeof *norms);
	float *gram = reallocarray(NULL, square, sizeof *gram);
	float *cand = reallocarray(NULL, pairs, sizeof *cand);

	if (idx && mean && sub && norms && gram && cand) {
		rng_init(&r, seed, MMD_STREAM_BANDWIDTH);
		choose_reference(idx, n, max_points, &r);
		add_rows(ref, idx, k, d, mean);
		for (size_t j = 0; j < d; j++)
			mean[j] /= (double)k;
		write_centred(ref, idx, k, d, mean, sub);
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans,
			    (blasint)k, (blasint)d, 1.0f, sub, (blasint)d,
			    0.0f, gram, (blasint)k);
		for (size_t i = 0; i < k; i++)
			norms[i] = gram[i * k + i];
		gather_pairs(gram, k, norms, NULL, k, cand);
		median_bandwidth(cand, pairs, &r, h, fallback);
	} else {
		err = -ENOMEM;
	}
	free(idx);
	free(mean);
	free(sub);
	free(norms);
	free(gram);
	free(cand);
	return err;
}
