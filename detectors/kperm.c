/* kperm: pooled Gram matrix and the one-GEMM-per-block permutation test
 * shared by mmd and energy. */
#include "kperm.h"

#include <cblas.h>
#include <errno.h>
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

int kperm_bytes(size_t n, size_t m, size_t d, unsigned permutations,
		size_t *bytes)
{
	size_t pooled, square, block_len, total = 0;
	size_t block = min_size(PERM_BLOCK, (size_t)permutations + 1);

	if (n < 2 || m < 2 || d < 1 || d > KPERM_DIM_MAX ||
	    __builtin_add_overflow(n, m, &pooled) || pooled > KPERM_DIM_MAX)
		return -EINVAL;
	if (__builtin_mul_overflow(pooled, pooled, &square) ||
	    __builtin_mul_overflow(block, pooled, &block_len) ||
	    !add_array(&total, square, sizeof(float)) ||
	    !add_array(&total, pooled, d * sizeof(float)) ||
	    !add_array(&total, pooled, sizeof(float)) ||
	    !add_array(&total, d, sizeof(double)) ||
	    !add_array(&total, pooled, sizeof(size_t)) ||
	    !add_array(&total, block_len, 2 * sizeof(float)))
		return -ENOMEM;
	*bytes = total;
	return 0;
}

void kperm_free(struct kperm_work *w)
{
	free(w->kern);
	free(w->rows);
	free(w->norms);
	free(w->mean);
	free(w->idx);
	free(w->assign);
	free(w->prod);
	memset(w, 0, sizeof *w);
}

/* rows comes from calloc only because gcc cannot see that it is filled
 * before BLAS reads it (a -Wmaybe-uninitialized false positive); fresh
 * large blocks are zero pages anyway. */
int kperm_alloc(struct kperm_work *w, size_t n, size_t m, size_t d,
		unsigned permutations)
{
	size_t bytes, pooled = n + m;
	int err = kperm_bytes(n, m, d, permutations, &bytes);

	memset(w, 0, sizeof *w);
	if (err)
		return err;
	*w = (struct kperm_work){
		.n = n, .m = m, .pooled = pooled, .d = d,
		.block = min_size(PERM_BLOCK, (size_t)permutations + 1),
	};
	w->kern = malloc(pooled * pooled * sizeof(float));
	w->rows = calloc(pooled * d, sizeof(float));
	w->norms = malloc(pooled * sizeof(float));
	w->mean = malloc(d * sizeof(double));
	w->idx = malloc(pooled * sizeof(size_t));
	w->assign = malloc(w->block * pooled * sizeof(float));
	w->prod = malloc(w->block * pooled * sizeof(float));
	if (!w->kern || !w->rows || !w->norms || !w->mean || !w->idx ||
	    !w->assign || !w->prod) {
		kperm_free(w);
		return -ENOMEM;
	}
	return 0;
}

static void add_rows(const float *a, size_t count, size_t d, double *sum)
{
	for (size_t i = 0; i < count; i++)
		for (size_t j = 0; j < d; j++)
			sum[j] += (double)a[i * d + j];
}

static void write_centred(const float *a, size_t count, size_t d,
			  const double *mean, float *out)
{
	for (size_t i = 0; i < count; i++)
		for (size_t j = 0; j < d; j++)
			out[i * d + j] = (float)((double)a[i * d + j] - mean[j]);
}

/* Centred rows, because ||a||² + ||b||² - 2ab loses precision when norms
 * dwarf distances. The lower triangle of the Gram matrix is not touched. */
void kperm_gram(struct kperm_work *w, const float *x, const float *y)
{
	size_t pooled = w->pooled, d = w->d;

	memset(w->mean, 0, d * sizeof *w->mean);
	add_rows(x, w->n, d, w->mean);
	add_rows(y, w->m, d, w->mean);
	for (size_t j = 0; j < d; j++)
		w->mean[j] /= (double)pooled;
	write_centred(x, w->n, d, w->mean, w->rows);
	write_centred(y, w->m, d, w->mean, w->rows + w->n * d);
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (blasint)pooled,
		    (blasint)d, 1.0f, w->rows, (blasint)d, 0.0f, w->kern,
		    (blasint)pooled);
	for (size_t i = 0; i < pooled; i++)
		w->norms[i] = w->kern[i * pooled + i];
}

/* e^x for x <= 0 (below -87 it returns e^-87): reduction by ln 2 (Cody
 * and Waite) and a degree-6 Taylor polynomial on |r| <= ln2/2, relative
 * error below 3e-7; no branches or calls, so loops over it vectorise. */
static inline float exp_nonpositive(float x)
{
	x = x < -87.0f ? -87.0f : x;
	/* truncating t - 1/2 for t <= 0 rounds t to the nearest integer */
	int32_t k = (int32_t)(x * 1.44269504f - 0.5f);
	float kf = (float)k;
	float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
	float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6.0f +
		  r * (1.0f / 24.0f + r * (1.0f / 120.0f + r * (1.0f / 720.0f))))));
	union { int32_t i; float f; } scale = { .i = (k + 127) << 23 };

	return p * scale.f;
}

/* The row loops below are SIMD loops (OpenMP simd, no runtime): the float
 * sums may be reassociated across lanes, which costs nothing measurable
 * next to the kernel values' own float rounding. */

/* g[j] = exp(-(ni + nj[j] - 2·g[j]) / h) for j < len; returns the sum. */
static double gaussian_row(float *restrict g, const float *restrict nj,
			   float ni, size_t len, float neg_inv_h)
{
	float acc = 0.0f;

#pragma omp simd reduction(+ : acc)
	for (size_t j = 0; j < len; j++) {
		float sq = ni + nj[j] - 2.0f * g[j];
		float v = exp_nonpositive((sq > 0.0f ? sq : 0.0f) * neg_inv_h);

		g[j] = v;
		acc += v;
	}
	return (double)acc;
}

/* g[j] = -sqrt(ni + nj[j] - 2·g[j]) for j < len; returns the sum. */
static double distance_row(float *restrict g, const float *restrict nj,
			   float ni, size_t len)
{
	float acc = 0.0f;

#pragma omp simd reduction(+ : acc)
	for (size_t j = 0; j < len; j++) {
		float sq = ni + nj[j] - 2.0f * g[j];
		float v = -sqrtf(sq > 0.0f ? sq : 0.0f);

		g[j] = v;
		acc += v;
	}
	return (double)acc;
}

double kperm_apply(struct kperm_work *w, enum kperm_kernel kind,
		   double bandwidth)
{
	float neg_inv_h = (float)(-1.0 / bandwidth);
	size_t count = w->pooled;
	double sum = 0.0;

	for (size_t i = 0; i + 1 < count; i++) {
		float *g = w->kern + i * count + i + 1;
		const float *nj = w->norms + i + 1;
		size_t len = count - i - 1;

		sum += kind == KPERM_GAUSSIAN ?
			gaussian_row(g, nj, w->norms[i], len, neg_inv_h) :
			distance_row(g, nj, w->norms[i], len);
	}
	return sum;
}

/* v[j] -= shift for j < len; adds the new values and their absolute
 * values to *sum and *abs_sum. */
static void shift_row(float *v, size_t len, float shift, double *sum,
		      double *abs_sum)
{
	float acc = 0.0f, acc_abs = 0.0f;

#pragma omp simd reduction(+ : acc, acc_abs)
	for (size_t j = 0; j < len; j++) {
		float x = v[j] - shift;

		v[j] = x;
		acc += x;
		acc_abs += fabsf(x);
	}
	*sum += (double)acc;
	*abs_sum += (double)acc_abs;
}

/* T(s) does not change when a constant is added to every off-diagonal
 * kernel value (the three averages move by c, c and -2c). Subtracting the
 * mean leaves small entries of both signs, so the float sums inside BLAS
 * lose far less to rounding. Zeroes the diagonal. Returns 1ᵀK0 1 and sets
 * *mean_abs to the mean absolute off-diagonal value of K0. */
static double centre_kernel(float *kern, size_t count, double kernel_sum,
			    double *mean_abs)
{
	double pairs = (double)count * (double)(count - 1) / 2.0;
	float shift = (float)(kernel_sum / pairs);
	double sum = 0.0, abs_sum = 0.0;

	for (size_t i = 0; i < count; i++) {
		kern[i * count + i] = 0.0f;
		shift_row(kern + i * count + i + 1, count - i - 1, shift, &sum,
			  &abs_sum);
	}
	*mean_abs = abs_sum / pairs;
	return 2.0 * sum;
}

struct perm_job {
	const float *kern; /* K0: upper triangle, zero diagonal */
	double total;      /* 1ᵀ K0 1 */
	double tie_margin; /* T_b >= T_obs - tie_margin counts as a tie */
	size_t n, m, pooled, block;
	float *assign, *prod;
	size_t *idx;
};

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

/* T of the assignment s from prod = s·K0: with q = sᵀK0 s and u = 1ᵀK0 s,
 * the within-x sum is q, the cross sum u - q and the within-y sum
 * total - 2u + q. */
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
			     struct rng *r, double *observed, unsigned *exceed)
{
	size_t columns = (size_t)permutations + 1;
	blasint pooled = (blasint)job->pooled;

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
				random_assignment(r, job->idx, job->pooled,
						  job->n, row);
		}
		/* ssymm packs K first: worth it for a block, not for T_obs
		 * alone (B = 0) */
		if (columns == 1)
			cblas_ssymv(CblasRowMajor, CblasUpper, pooled, 1.0f,
				    job->kern, pooled, job->assign, 1, 0.0f,
				    job->prod, 1);
		else
			cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper,
				    (blasint)cols, pooled, 1.0f, job->kern,
				    pooled, job->assign, pooled, 0.0f,
				    job->prod, pooled);
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

void kperm_run(struct kperm_work *w, double kernel_sum, unsigned permutations,
	       uint64_t seed, uint64_t stream, double *statistic,
	       double *p_value)
{
	double mean_abs;
	unsigned exceed;
	struct rng r;
	struct perm_job job = {
		.kern = w->kern,
		.total = centre_kernel(w->kern, w->pooled, kernel_sum,
				       &mean_abs),
		.n = w->n, .m = w->m, .pooled = w->pooled, .block = w->block,
		.assign = w->assign, .prod = w->prod, .idx = w->idx,
	};

	job.tie_margin = TIE_MARGIN * mean_abs;
	rng_init(&r, seed, stream);
	run_permutations(&job, permutations, &r, statistic, &exceed);
	*p_value = permutations ?
		(1.0 + exceed) / ((double)permutations + 1.0) : (double)NAN;
}
