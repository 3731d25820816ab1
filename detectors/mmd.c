/* mmd: Gaussian-kernel MMD²_u with a permutation p-value (DESIGN §4). The
 * kernel matrix is built once with BLAS and every permuted statistic comes
 * from one matrix product K0·S over a block of 0/1 assignment vectors. */
#include "mmd.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Assignment vectors per ssymm call: wide enough to run BLAS at full speed,
 * narrow enough that the blocks stay small next to the N x N kernel. */
#define PERM_BLOCK 256

/* Reassignments that are the same split of the data (duplicated points)
 * must tie with the observed one, but float rounding in a different order
 * moves their statistic by up to ~3e-7 x the mean |kernel value| of the
 * centred K0 (measured over d = 1..768, N = 4..2000). A margin of 4e-6 x
 * that keeps such ties and costs nothing measurable: the null standard
 * deviation of MMD²_u is about 2.5/n of the same scale, so at n = 1000 the
 * margin is 0.2% of it. */
#define TIE_MARGIN 4e-6

/* Dimensions are passed to BLAS as blasint, which is at least an int. */
#define BLAS_DIM_MAX ((size_t)INT_MAX)

struct test_sizes {
	size_t pooled;     /* N = n + m */
	size_t max_points; /* bandwidth subsample limit */
	size_t ref_used;   /* reference points for the bandwidth; 0: h given */
	size_t pairs;      /* distinct pairs among them */
	size_t block;      /* assignment vectors per BLAS call */
	size_t bytes;      /* total workspace */
};

struct test_work {
	float *kern;   /* N x N: Gram matrix, then K0 */
	float *rows;   /* N x d: x then y, centred */
	float *norms;  /* N: squared norms of the centred rows */
	double *mean;  /* d */
	size_t *idx;   /* N: point indices for subsets */
	float *pairs;  /* bandwidth candidates; NULL when h is given */
	float *assign; /* block x N: 1 where the point is assigned to x */
	float *prod;   /* block x N: assign · K0 */
};

struct perm_job {
	const float *kern; /* K0: upper triangle, zero diagonal */
	double total;      /* 1ᵀ K0 1 */
	double tie_margin; /* T_b >= T_obs - tie_margin counts as a tie */
	size_t n, m, pooled, block;
	float *assign, *prod;
	size_t *idx;
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Adds count elements of elem bytes to *bytes; false on overflow. */
static bool add_array(size_t *bytes, size_t count, size_t elem)
{
	size_t len;

	return !__builtin_mul_overflow(count, elem, &len) &&
	       !__builtin_add_overflow(*bytes, len, bytes);
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
	size_t bytes = 0;
	int err;

	if (n < 2 || m < 2 || d < 1 || d > BLAS_DIM_MAX)
		return -EINVAL;
	if (!(p->bandwidth >= 0.0) || isinf(p->bandwidth))
		return -EINVAL;
	err = resolve_max_points(p->bandwidth_max_points, &sz->max_points);
	if (err)
		return err;
	if (__builtin_add_overflow(n, m, &sz->pooled) ||
	    sz->pooled > BLAS_DIM_MAX)
		return -EINVAL;
	sz->ref_used = p->bandwidth > 0.0 ? 0 : min_size(n, sz->max_points);
	sz->pairs = 0;
	if (sz->ref_used && !pair_count(sz->ref_used, &sz->pairs))
		return -ENOMEM;
	sz->block = min_size(PERM_BLOCK, (size_t)p->permutations + 1);

	size_t pooled = sz->pooled, square, block_len;
	if (__builtin_mul_overflow(pooled, pooled, &square) ||
	    __builtin_mul_overflow(sz->block, pooled, &block_len) ||
	    !add_array(&bytes, square, sizeof(float)) ||
	    !add_array(&bytes, pooled, d * sizeof(float)) ||
	    !add_array(&bytes, pooled, sizeof(float)) ||
	    !add_array(&bytes, d, sizeof(double)) ||
	    !add_array(&bytes, pooled, sizeof(size_t)) ||
	    !add_array(&bytes, sz->pairs, sizeof(float)) ||
	    !add_array(&bytes, block_len, 2 * sizeof(float)))
		return -ENOMEM;
	sz->bytes = bytes;
	return 0;
}

static void free_test_work(struct test_work *w)
{
	free(w->kern);
	free(w->rows);
	free(w->norms);
	free(w->mean);
	free(w->idx);
	free(w->pairs);
	free(w->assign);
	free(w->prod);
}

/* Sizes were checked for overflow by plan_test. rows comes from calloc only
 * because gcc cannot see that it is filled before BLAS reads it (a
 * -Wmaybe-uninitialized false positive); fresh large blocks are zero pages
 * anyway. */
static int alloc_test_work(struct test_work *w, const struct test_sizes *sz,
			   size_t d)
{
	size_t pooled = sz->pooled;

	*w = (struct test_work){
		.kern = malloc(pooled * pooled * sizeof(float)),
		.rows = calloc(pooled * d, sizeof(float)),
		.norms = malloc(pooled * sizeof(float)),
		.mean = malloc(d * sizeof(double)),
		.idx = malloc(pooled * sizeof(size_t)),
		.pairs = sz->pairs ? malloc(sz->pairs * sizeof(float)) : NULL,
		.assign = malloc(sz->block * pooled * sizeof(float)),
		.prod = malloc(sz->block * pooled * sizeof(float)),
	};
	if (!w->kern || !w->rows || !w->norms || !w->mean || !w->idx ||
	    (sz->pairs && !w->pairs) || !w->assign || !w->prod) {
		free_test_work(w);
		return -ENOMEM;
	}
	return 0;
}

/* Row i of a, or row sel[i] when a selection is given. */
static const float *row_at(const float *a, const size_t *sel, size_t i,
			   size_t d)
{
	return a + (sel ? sel[i] : i) * d;
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

static void scale(double *v, size_t len, double factor)
{
	for (size_t i = 0; i < len; i++)
		v[i] *= factor;
}

/* Gram matrix of the rows of z (count x d) into the upper triangle of gram
 * (one BLAS call) and its diagonal, the squared norms, into norms. Rows
 * should be centred: ||a||² + ||b||² - 2ab loses precision when norms dwarf
 * distances. The lower triangle is not touched. */
static void gram_upper(const float *z, size_t count, size_t d, float *norms,
		       float *gram)
{
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (blasint)count,
		    (blasint)d, 1.0f, z, (blasint)d, 0.0f, gram,
		    (blasint)count);
	for (size_t i = 0; i < count; i++)
		norms[i] = gram[i * count + i];
}

/* ||z_i - z_j||² from the Gram entry g = z_i·z_j. */
static float sqdist(const float *norms, size_t i, size_t j, float g)
{
	double sq = (double)norms[i] + (double)norms[j] - 2.0 * (double)g;

	/* Rounding can push near-duplicates below zero. */
	return sq > 0.0 ? (float)sq : 0.0f;
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

			pairs[t++] = sqdist(norms, i, j, gram[i * ld + j]);
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

/* Gram matrix to K0: exp(-||z_i - z_j||²/h) off the diagonal and 0 on it,
 * upper triangle only. Returns the mean off-diagonal value. */
static double gaussian_kernel(float *kern, const float *norms, size_t count,
			      double h)
{
	float neg_inv_h = (float)(-1.0 / h);
	double sum = 0.0;

	for (size_t i = 0; i < count; i++) {
		float *row = kern + i * count;
		double row_sum = 0.0;

		row[i] = 0.0f;
		for (size_t j = i + 1; j < count; j++) {
			row[j] = expf(sqdist(norms, i, j, row[j]) * neg_inv_h);
			row_sum += (double)row[j];
		}
		sum += row_sum;
	}
	return sum / ((double)count * (double)(count - 1) / 2.0);
}

/* MMD²_u does not change when a constant is added to every off-diagonal
 * kernel value (the three averages move by c, c and -2c). Subtracting the
 * mean leaves small entries of both signs, so the float sums inside BLAS
 * lose far less to rounding. Returns 1ᵀK0 1 of the result and sets
 * *mean_abs to its mean absolute off-diagonal value. */
static double centre_kernel(float *kern, size_t count, double mean,
			    double *mean_abs)
{
	float shift = (float)mean;
	double sum = 0.0, abs_sum = 0.0;

	for (size_t i = 0; i < count; i++) {
		float *row = kern + i * count;

		for (size_t j = i + 1; j < count; j++) {
			row[j] -= shift;
			sum += (double)row[j];
			abs_sum += fabs((double)row[j]);
		}
	}
	*mean_abs = abs_sum / ((double)count * (double)(count - 1) / 2.0);
	return 2.0 * sum;
}

static void pooled_gram(struct test_work *w, const float *x, size_t n,
			  const float *y, size_t m, size_t d)
{
	size_t pooled = n + m;

	memset(w->mean, 0, d * sizeof *w->mean);
	add_rows(x, NULL, n, d, w->mean);
	add_rows(y, NULL, m, d, w->mean);
	scale(w->mean, d, 1.0 / (double)pooled);
	write_centred(x, NULL, n, d, w->mean, w->rows);
	write_centred(y, NULL, m, d, w->mean, w->rows + n * d);
	gram_upper(w->rows, pooled, d, w->norms, w->kern);
}

/* Reference rows come first in the pooled matrix, so their Gram entries
 * are the top-left block of w->kern. */
static void pooled_bandwidth(struct test_work *w, const struct test_sizes *sz,
			     size_t n, uint64_t seed, double *h, bool *fallback)
{
	struct rng r;

	rng_init(&r, seed, MMD_STREAM_BANDWIDTH);
	choose_reference(w->idx, n, sz->max_points, &r);
	gather_pairs(w->kern, sz->pooled, w->norms, w->idx, sz->ref_used,
		     w->pairs);
	median_bandwidth(w->pairs, sz->pairs, &r, h, fallback);
}

static void observed_assignment(size_t pooled, size_t n, float *row)
{
	for (size_t i = 0; i < pooled; i++)
		row[i] = i < n ? 1.0f : 0.0f;
}

static void random_assignment(struct rng *r, size_t *idx, size_t pooled,
			      size_t n, float *row)
{
	memset(row, 0, pooled * sizeof *row);
	rng_shuffle_prefix(r, idx, pooled, n);
	for (size_t a = 0; a < n; a++)
		row[idx[a]] = 1.0f;
}

/* MMD²_u of the assignment s from prod = s·K0: with q = sᵀK0 s and
 * u = 1ᵀK0 s, the within-x sum is q, the cross sum u - q and the within-y
 * sum total - 2u + q. */
static double assignment_statistic(const struct perm_job *job,
				   const float *assign, const float *prod)
{
	double q = 0.0, u = 0.0;
	double n = (double)job->n, m = (double)job->m;

	for (size_t i = 0; i < job->pooled; i++) {
		q += (double)assign[i] * (double)prod[i];
		u += (double)prod[i];
	}
	return q / (n * (n - 1.0)) + (job->total - 2.0 * u + q) / (m * (m - 1.0)) -
	       2.0 * (u - q) / (n * m);
}

/* Column 0 is the observed assignment and goes through exactly the same
 * arithmetic as the permutations, so an identical reassignment ties. */
static void run_permutations(const struct perm_job *job, unsigned permutations,
			     uint64_t seed, double *observed, unsigned *exceed)
{
	size_t columns = (size_t)permutations + 1;
	blasint pooled = (blasint)job->pooled;
	struct rng r;

	rng_init(&r, seed, MMD_STREAM_PERMUTATION);
	for (size_t i = 0; i < job->pooled; i++)
		job->idx[i] = i;
	*exceed = 0;
	for (size_t first = 0; first < columns; first += job->block) {
		size_t cols = min_size(job->block, columns - first);

		for (size_t c = 0; c < cols; c++) {
			float *row = job->assign + c * job->pooled;

			if (first + c == 0)
				observed_assignment(job->pooled, job->n, row);
			else
				random_assignment(&r, job->idx, job->pooled,
						  job->n, row);
		}
		cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper,
			    (blasint)cols, pooled, 1.0f, job->kern, pooled,
			    job->assign, pooled, 0.0f, job->prod, pooled);
		for (size_t c = 0; c < cols; c++) {
			double t = assignment_statistic(
				job, job->assign + c * job->pooled,
				job->prod + c * job->pooled);

			if (first + c == 0)
				*observed = t;
			else if (t >= *observed - job->tie_margin)
				(*exceed)++;
		}
	}
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
	struct test_work w;
	bool fallback = false;
	unsigned exceed;
	int err;

	if (!x || !y || !out)
		return -EINVAL;
	if (!p)
		p = &defaults;
	err = plan_test(n, m, d, p, &sz);
	if (err)
		return err;
	err = alloc_test_work(&w, &sz, d);
	if (err)
		return err;

	double h = p->bandwidth;

	pooled_gram(&w, x, n, y, m, d);
	if (sz.ref_used)
		pooled_bandwidth(&w, &sz, n, p->seed, &h, &fallback);

	double mean_abs, mean = gaussian_kernel(w.kern, w.norms, sz.pooled, h);
	struct perm_job job = {
		.kern = w.kern,
		.total = centre_kernel(w.kern, sz.pooled, mean, &mean_abs),
		.tie_margin = TIE_MARGIN * mean_abs,
		.n = n, .m = m, .pooled = sz.pooled, .block = sz.block,
		.assign = w.assign, .prod = w.prod, .idx = w.idx,
	};
	run_permutations(&job, p->permutations, p->seed, &out->statistic,
			 &exceed);
	free_test_work(&w);

	out->p_value = p->permutations ?
		(1.0 + exceed) / ((double)p->permutations + 1.0) : (double)NAN;
	out->bandwidth = h;
	out->permutations = p->permutations;
	out->bandwidth_fallback = fallback;
	return 0;
}

int mmd_bandwidth(const float *ref, size_t n, size_t d, size_t max_points,
		  uint64_t seed, double *h, bool *fallback)
{
	size_t k, pairs, square, sub_len;
	struct rng r;
	int err;

	if (!ref || !h || !fallback || n < 2 || d < 1 || d > BLAS_DIM_MAX)
		return -EINVAL;
	err = resolve_max_points(max_points, &max_points);
	if (err)
		return err;
	k = min_size(n, max_points);
	if (k > BLAS_DIM_MAX)
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
		scale(mean, d, 1.0 / (double)k);
		write_centred(ref, idx, k, d, mean, sub);
		gram_upper(sub, k, d, norms, gram);
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
