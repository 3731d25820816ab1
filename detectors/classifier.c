/* classifier: held-out AUC of a logistic regression separating window from
 * reference, with an exact permutation p-value (DESIGN §4). */
#include "classifier.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* L-BFGS memory (pairs of steps and gradient changes). */
#define HISTORY 8
#define ARMIJO 1e-4
/* A step shrunk 2^20 times without enough decrease means the float
 * rounding floor of the objective is reached. */
#define MAX_HALVINGS 20
/* Relative decrease of the objective below which an iteration counts as
 * no progress (float32 products limit what is measurable). */
#define STALL 1e-9
/* Gradient size at which clf_test stops early. */
#define TEST_TOL 1e-6

/* ---- logistic regression ---- */

struct problem {
	const float *a;         /* n x d */
	const unsigned char *t; /* 0 / 1 */
	size_t n, d;
	double l2;
	float *wf, *z, *r;      /* d, n, n: float copies for sgemv */
};

/* log(1 + e^u) without overflow. */
static double softplus(double u)
{
	return u > 0.0 ? u + log1p(exp(-u)) : log1p(exp(u));
}

/* Objective at theta = (w, b) and its gradient g (d + 1 entries). */
static double objective(const struct problem *pb, const double *theta,
			double *g)
{
	size_t n = pb->n, d = pb->d;
	double b = theta[d], loss = 0.0, gb = 0.0, reg = 0.0;

	for (size_t j = 0; j < d; j++)
		pb->wf[j] = (float)theta[j];
	cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)d, 1.0f,
		    pb->a, (blasint)d, pb->wf, 1, 0.0f, pb->z, 1);
	for (size_t i = 0; i < n; i++) {
		double sign = pb->t[i] ? 1.0 : -1.0;
		double margin = sign * ((double)pb->z[i] + b);
		/* d/dmargin of softplus(-margin) is -1/(1 + e^margin) */
		double r = -sign / (1.0 + exp(margin)) / (double)n;

		loss += softplus(-margin);
		pb->r[i] = (float)r;
		gb += r;
	}
	cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)n, (blasint)d, 1.0f,
		    pb->a, (blasint)d, pb->r, 1, 0.0f, pb->wf, 1);
	for (size_t j = 0; j < d; j++) {
		g[j] = (double)pb->wf[j] + pb->l2 * theta[j];
		reg += theta[j] * theta[j];
	}
	g[d] = gb;
	return loss / (double)n + 0.5 * pb->l2 * reg;
}

static double dot(const double *a, const double *b, size_t len)
{
	double s = 0.0;

	for (size_t i = 0; i < len; i++)
		s += a[i] * b[i];
	return s;
}

static double max_abs(const double *a, size_t len)
{
	double m = 0.0;

	for (size_t i = 0; i < len; i++)
		m = fmax(m, fabs(a[i]));
	return m;
}

struct lbfgs {
	size_t len, used, next;
	double *s, *y, *rho, *alpha; /* HISTORY x len, HISTORY x len, HISTORY, HISTORY */
};

/* dir = -H·g by the two-loop recursion over the stored pairs. */
static void direction(const struct lbfgs *h, const double *g, double *dir)
{
	size_t len = h->len;

	for (size_t i = 0; i < len; i++)
		dir[i] = -g[i];
	for (size_t k = 0; k < h->used; k++) {
		size_t at = (h->next + HISTORY - 1 - k) % HISTORY;

		h->alpha[at] = h->rho[at] * dot(h->s + at * len, dir, len);
		for (size_t i = 0; i < len; i++)
			dir[i] -= h->alpha[at] * h->y[at * len + i];
	}
	if (h->used) {
		size_t last = (h->next + HISTORY - 1) % HISTORY;
		double yy = dot(h->y + last * len, h->y + last * len, len);
		double scale = yy > 0.0 ? 1.0 / (h->rho[last] * yy) : 1.0;

		for (size_t i = 0; i < len; i++)
			dir[i] *= scale;
	}
	for (size_t k = h->used; k-- > 0;) {
		size_t at = (h->next + HISTORY - 1 - k) % HISTORY;
		double beta = h->rho[at] * dot(h->y + at * len, dir, len);

		for (size_t i = 0; i < len; i++)
			dir[i] += (h->alpha[at] - beta) * h->s[at * len + i];
	}
}

static void remember(struct lbfgs *h, const double *s, const double *y)
{
	double sy = dot(s, y, h->len);

	if (!(sy > 1e-20))
		return; /* keeps H positive definite */
	memcpy(h->s + h->next * h->len, s, h->len * sizeof *s);
	memcpy(h->y + h->next * h->len, y, h->len * sizeof *y);
	h->rho[h->next] = 1.0 / sy;
	h->next = (h->next + 1) % HISTORY;
	if (h->used < HISTORY)
		h->used++;
}

/* Backtracking along dir from theta (value f, gradient g, slope g·dir);
 * on success theta, f and g move to the new point. */
static bool line_search(const struct problem *pb, double *theta, double *f,
			double *g, const double *dir, double step, double *trial,
			double *g_trial)
{
	size_t len = pb->d + 1;
	double slope = dot(g, dir, len);

	for (int k = 0; k < MAX_HALVINGS; k++, step *= 0.5) {
		for (size_t i = 0; i < len; i++)
			trial[i] = theta[i] + step * dir[i];
		double ft = objective(pb, trial, g_trial);

		if (ft <= *f + ARMIJO * step * slope) {
			memcpy(theta, trial, len * sizeof *theta);
			memcpy(g, g_trial, len * sizeof *g);
			*f = ft;
			return true;
		}
	}
	return false;
}

static int minimise(const struct problem *pb, unsigned max_iter, double tol,
		    double *theta, unsigned *iterations)
{
	size_t len = pb->d + 1;
	double *buf = calloc((2 * HISTORY + 6) * len + 2 * HISTORY, sizeof *buf);
	unsigned it = 0;

	if (!buf)
		return -ENOMEM;
	struct lbfgs h = {
		.len = len, .s = buf, .y = buf + HISTORY * len,
		.rho = buf + 2 * HISTORY * len,
		.alpha = buf + 2 * HISTORY * len + HISTORY,
	};
	double *g = h.alpha + HISTORY, *dir = g + len, *old = dir + len;
	double *old_g = old + len, *trial = old_g + len, *g_trial = trial + len;
	double f = objective(pb, theta, g);

	for (; it < max_iter && max_abs(g, len) > tol; it++) {
		direction(&h, g, dir);
		if (dot(g, dir, len) >= 0.0) {	/* not a descent direction */
			h.used = 0;
			for (size_t i = 0; i < len; i++)
				dir[i] = -g[i];
		}
		double step = h.used ? 1.0 : 1.0 / fmax(1.0, sqrt(dot(g, g, len)));

		memcpy(old, theta, len * sizeof *old);
		memcpy(old_g, g, len * sizeof *old_g);
		double before = f;

		if (!line_search(pb, theta, &f, g, dir, step, trial, g_trial) ||
		    before - f <= STALL * fabs(before))
			break; /* float rounding floor reached */
		for (size_t i = 0; i < len; i++) {
			old[i] = theta[i] - old[i];
			old_g[i] = g[i] - old_g[i];
		}
		remember(&h, old, old_g);
	}
	if (iterations)
		*iterations = it;
	free(buf);
	return 0;
}

int clf_fit(const float *a, const unsigned char *t, size_t n, size_t d,
	    double l2, unsigned max_iter, double tol, double *w, double *b,
	    unsigned *iterations)
{
	struct problem pb = { .a = a, .t = t, .n = n, .d = d, .l2 = l2 };
	double *theta;
	int err = -ENOMEM;

	if (!a || !t || !w || !b || !n || !d || n > INT32_MAX ||
	    d > INT32_MAX || !(l2 >= 0.0) || isinf(l2) || !(tol >= 0.0))
		return -EINVAL;
	theta = calloc(d + 1, sizeof *theta);
	pb.wf = malloc(d * sizeof *pb.wf);
	pb.z = malloc(n * sizeof *pb.z);
	pb.r = malloc(n * sizeof *pb.r);
	if (theta && pb.wf && pb.z && pb.r)
		err = minimise(&pb, max_iter, tol, theta, iterations);
	if (!err) {
		memcpy(w, theta, d * sizeof *w);
		*b = theta[d];
	}
	free(theta);
	free(pb.wf);
	free(pb.z);
	free(pb.r);
	return err;
}

/* ---- AUC and its permutation distribution ---- */

struct scored {
	double s;
	size_t i;
};

static int by_score(const void *a, const void *b)
{
	double x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;

	return (x > y) - (x < y);
}

/* Midranks (1-based, ties averaged) of s into rank. */
static int midranks(const double *s, size_t n, double *rank)
{
	struct scored *o = malloc(n * sizeof *o);

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		o[i] = (struct scored){ .s = s[i], .i = i };
	qsort(o, n, sizeof *o, by_score);
	for (size_t lo = 0, hi; lo < n; lo = hi) {
		for (hi = lo + 1; hi < n && o[hi].s == o[lo].s; hi++)
			;
		double mid = 0.5 * ((double)(lo + 1) + (double)hi);

		for (size_t k = lo; k < hi; k++)
			rank[o[k].i] = mid;
	}
	free(o);
	return 0;
}

static double auc_of_rank_sum(double sum, size_t pos, size_t neg)
{
	return (sum - 0.5 * (double)pos * ((double)pos + 1.0)) /
	       ((double)pos * (double)neg);
}

double clf_auc(const double *s, const unsigned char *t, size_t n)
{
	double *rank, sum = 0.0;
	size_t pos = 0;

	if (!s || !t || !n)
		return (double)NAN;
	for (size_t i = 0; i < n; i++)
		pos += t[i] != 0;
	if (!pos || pos == n || !(rank = malloc(n * sizeof *rank)))
		return (double)NAN;
	if (midranks(s, n, rank) == 0)
		for (size_t i = 0; i < n; i++)
			sum += t[i] ? rank[i] : 0.0;
	else
		sum = (double)NAN;
	free(rank);
	return auc_of_rank_sum(sum, pos, n - pos);
}

/* Counts relabellings of the held-out ranks whose class-1 rank sum
 * reaches the observed one. Midranks are multiples of 1/2, so the sums
 * are exact and ties are recognised exactly. */
static unsigned permuted_exceed(const double *rank, size_t n, size_t pos,
				double observed, unsigned permutations,
				uint64_t seed, size_t *idx)
{
	struct rng r;
	unsigned exceed = 0;

	rng_init(&r, seed, CLF_STREAM_PERMUTATION);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (unsigned b = 0; b < permutations; b++) {
		double sum = 0.0;

		rng_shuffle_prefix(&r, idx, n, pos);
		for (size_t k = 0; k < pos; k++)
			sum += rank[idx[k]];
		exceed += sum >= observed;
	}
	return exceed;
}

/* ---- the test ---- */

int clf_workspace_bytes(size_t n, size_t m, size_t d, size_t *bytes)
{
	size_t total, rows, extra;

	if (!bytes)
		return -EINVAL;
	/* standardised rows; per point: label, index, score, rank, z, r;
	 * per coordinate: moments, weights and the L-BFGS history */
	if (__builtin_add_overflow(n, m, &total) ||
	    __builtin_mul_overflow(total, d, &rows) ||
	    __builtin_mul_overflow(rows, sizeof(float), &rows) ||
	    __builtin_mul_overflow(total, 41, &extra) ||
	    __builtin_add_overflow(rows, extra, bytes) ||
	    __builtin_mul_overflow(d + 1, (2 * HISTORY + 12) * sizeof(double),
				   &extra) ||
	    __builtin_add_overflow(*bytes, extra, bytes))
		return -ENOMEM;
	return 0;
}

struct split {
	size_t train, test;
	float *a_train, *a_test;      /* standardised rows */
	unsigned char *t_train, *t_test;
	double *mean, *scale;         /* d */
};

static void column_moments(const float *x, size_t n, const float *y,
			   size_t m, size_t d, double *mean, double *scale)
{
	size_t total = n + m;

	memset(mean, 0, d * sizeof *mean);
	memset(scale, 0, d * sizeof *scale);
	for (size_t i = 0; i < total; i++) {
		const float *row = i < n ? x + i * d : y + (i - n) * d;

		for (size_t j = 0; j < d; j++)
			mean[j] += (double)row[j];
	}
	for (size_t j = 0; j < d; j++)
		mean[j] /= (double)total;
	for (size_t i = 0; i < total; i++) {
		const float *row = i < n ? x + i * d : y + (i - n) * d;

		for (size_t j = 0; j < d; j++) {
			double dev = (double)row[j] - mean[j];

			scale[j] += dev * dev;
		}
	}
	for (size_t j = 0; j < d; j++) {
		double sd = sqrt(scale[j] / (double)total);

		scale[j] = sd > 0.0 ? 1.0 / sd : 0.0;
	}
}

static size_t held_out(size_t size, double holdout)
{
	double want = nearbyint(holdout * (double)size);

	return want < 1.0 ? 1 : want > (double)(size - 1) ? size - 1 : (size_t)want;
}

/* Standardised rows of a (size points, label t) into the train and test
 * parts, the held-out ones chosen by a random prefix of idx. */
static void place(struct split *sp, const float *a, size_t size, size_t d,
		  unsigned char t, size_t test_count, struct rng *r,
		  size_t *idx)
{
	for (size_t i = 0; i < size; i++)
		idx[i] = i;
	rng_shuffle_prefix(r, idx, size, test_count);
	for (size_t k = 0; k < size; k++) {
		bool test = k < test_count;
		size_t at = test ? sp->test++ : sp->train++;
		float *dst = (test ? sp->a_test : sp->a_train) + at * d;
		const float *src = a + idx[k] * d;

		for (size_t j = 0; j < d; j++)
			dst[j] = (float)(((double)src[j] - sp->mean[j]) *
					 sp->scale[j]);
		(test ? sp->t_test : sp->t_train)[at] = t;
	}
}

static int evaluate(const struct split *sp, size_t d, const struct clf_params *p,
		    unsigned max_iter, double l2, size_t *idx,
		    struct clf_result *out)
{
	double *w = malloc(d * sizeof *w), *s = calloc(sp->test, sizeof *s);
	double *rank = malloc(sp->test * sizeof *rank), b, sum = 0.0;
	float *wf = malloc(d * sizeof *wf), *z = malloc(sp->test * sizeof *z);
	size_t pos = 0;
	int err = -ENOMEM;

	if (!w || !s || !rank || !wf || !z)
		goto done;
	err = clf_fit(sp->a_train, sp->t_train, sp->train, d, l2, max_iter,
		      TEST_TOL, w, &b, &out->iterations);
	if (err)
		goto done;
	for (size_t j = 0; j < d; j++)
		wf[j] = (float)w[j];
	cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)sp->test, (blasint)d,
		    1.0f, sp->a_test, (blasint)d, wf, 1, 0.0f, z, 1);
	for (size_t i = 0; i < sp->test; i++)
		s[i] = (double)z[i] + b;
	err = midranks(s, sp->test, rank);
	if (err)
		goto done;
	for (size_t i = 0; i < sp->test; i++)
		if (sp->t_test[i]) {
			sum += rank[i];
			pos++;
		}
	out->auc = auc_of_rank_sum(sum, pos, sp->test - pos);
	out->p_value = p->permutations ?
		(1.0 + permuted_exceed(rank, sp->test, pos, sum,
				       p->permutations, p->seed, idx)) /
		((double)p->permutations + 1.0) : (double)NAN;
done:
	free(w);
	free(s);
	free(rank);
	free(wf);
	free(z);
	return err;
}

int clf_test(const float *x, size_t n, const float *y, size_t m, size_t d,
	     const struct clf_params *p, struct clf_result *out)
{
	const struct clf_params defaults = { 0 };
	double holdout, l2;
	unsigned max_iter;
	size_t total, len;
	struct split sp = { 0 };
	struct clf_result res = { 0 };
	struct rng r;
	int err = -ENOMEM;

	if (!p)
		p = &defaults;
	holdout = p->holdout > 0.0 ? p->holdout : CLF_DEFAULT_HOLDOUT;
	l2 = p->l2 > 0.0 ? p->l2 : CLF_DEFAULT_L2;
	max_iter = p->max_iter ? p->max_iter : CLF_DEFAULT_MAX_ITER;
	if (!x || !y || !out || n < 2 || m < 2 || !d || !(holdout < 1.0) ||
	    p->holdout < 0.0 || p->l2 < 0.0 || isinf(l2) ||
	    __builtin_add_overflow(n, m, &total) || total > INT32_MAX ||
	    d > INT32_MAX)
		return -EINVAL;
	if (__builtin_mul_overflow(total, d, &len))
		return -ENOMEM;

	size_t test_x = held_out(n, holdout), test_y = held_out(m, holdout);
	size_t test = test_x + test_y, train = total - test;
	float *rows = malloc(len * sizeof *rows);
	unsigned char *labels = malloc(total);
	double *moments = malloc(2 * d * sizeof *moments);
	size_t *idx = malloc(total * sizeof *idx);

	if (!rows || !labels || !moments || !idx)
		goto done;
	sp = (struct split){
		.a_train = rows, .a_test = rows + train * d,
		.t_train = labels, .t_test = labels + train,
		.mean = moments, .scale = moments + d,
	};
	column_moments(x, n, y, m, d, sp.mean, sp.scale);
	rng_init(&r, p->seed, CLF_STREAM_SPLIT);
	place(&sp, x, n, d, 0, test_x, &r, idx);
	place(&sp, y, m, d, 1, test_y, &r, idx);
	err = evaluate(&sp, d, p, max_iter, l2, idx, &res);
	if (!err) {
		res.permutations = p->permutations;
		res.train = train;
		res.test = test;
		*out = res;
	}
done:
	free(rows);
	free(labels);
	free(moments);
	free(idx);
	return err;
}
