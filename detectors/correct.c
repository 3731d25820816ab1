/* Benjamini–Hochberg and Bonferroni as thresholds and adjusted p-values. */
#include "correct.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct ranked {
	double p;
	size_t idx;
};

static int by_p(const void *a, const void *b)
{
	double x = ((const struct ranked *)a)->p, y = ((const struct ranked *)b)->p;

	return (x > y) - (x < y);
}

/* Sorts the finite p-values ascending; returns how many there are. */
static struct ranked *rank_finite(const double *p, size_t n, size_t *m)
{
	struct ranked *r = malloc((n ? n : 1) * sizeof(*r));
	size_t i;

	if (!r)
		return NULL;
	*m = 0;
	for (i = 0; i < n; i++)
		if (!isnan(p[i])) {
			r[*m].p = p[i];
			r[*m].idx = i;
			(*m)++;
		}
	qsort(r, *m, sizeof(*r), by_p);
	return r;
}

static size_t count_finite(const double *p, size_t n)
{
	size_t i, m = 0;

	for (i = 0; i < n; i++)
		m += !isnan(p[i]);
	return m;
}

int corr_threshold(enum corr_method method, const double *p, size_t n,
		   double alpha, double *threshold)
{
	struct ranked *r;
	size_t m, i, k = 0;

	if (!(alpha > 0 && alpha < 1) || (n && !p))
		return -EINVAL;
	if (method == CORR_NONE) {
		*threshold = alpha;
		return 0;
	}
	if (method == CORR_BONFERRONI) {
		m = count_finite(p, n);
		*threshold = alpha / (double)(m ? m : 1);
		return 0;
	}
	if (method != CORR_BH)
		return -EINVAL;
	if (!(r = rank_finite(p, n, &m)))
		return -ENOMEM;
	/* Same expression as corr_adjust's q-values, so that the two agree
	 * to the last bit at exact boundaries. */
	for (i = 0; i < m; i++)
		if (r[i].p * (double)m / (double)(i + 1) <= alpha)
			k = i + 1;
	*threshold = k ? r[k - 1].p : alpha / (double)(m ? m : 1);
	free(r);
	return 0;
}

int corr_adjust(enum corr_method method, const double *p, size_t n,
		double *adj)
{
	struct ranked *r;
	double run = 1.0;
	size_t m, i;

	if (n && (!p || !adj))
		return -EINVAL;
	if (method == CORR_NONE || method == CORR_BONFERRONI) {
		m = count_finite(p, n);
		for (i = 0; i < n; i++)
			adj[i] = method == CORR_NONE || isnan(p[i]) ?
					 p[i] :
					 fmin(1.0, p[i] * (double)m);
		return 0;
	}
	if (method != CORR_BH)
		return -EINVAL;
	if (!(r = rank_finite(p, n, &m)))
		return -ENOMEM;
	/* q_(i) = min over j >= i of m·p_(j)/j, walking down from the top. */
	for (i = m; i-- > 0;) {
		run = fmin(run, r[i].p * (double)m / (double)(i + 1));
		r[i].p = run;
	}
	for (i = 0; i < n; i++)
		if (isnan(p[i]))
			adj[i] = p[i];
	for (i = 0; i < m; i++)
		adj[r[i].idx] = r[i].p;
	free(r);
	return 0;
}
