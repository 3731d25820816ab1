/* scores: KS, PSI, Jensen–Shannon, Wasserstein-1 and χ² on predicted
 * scores (DESIGN §4). */
#include "scores.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsort.h"

#define MAX_BINS 1000

static int resolve(const struct sc_params *p, unsigned *bins, double *eps)
{
	*bins = p && p->bins ? p->bins : SC_DEFAULT_BINS;
	*eps = p && p->epsilon > 0.0 ? p->epsilon : SC_DEFAULT_EPSILON;
	if (*bins < 2 || *bins > MAX_BINS || (p && p->epsilon < 0.0) ||
	    !(*eps < 1.0))
		return -EINVAL;
	return 0;
}

int sc_values(const float *scores, size_t n, unsigned k, float *out)
{
	if (!scores || !out || k < 1 || k > SC_MAX_CLASSES)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const float *row = scores + i * k;
		float best = row[0];

		for (unsigned c = 1; c < k; c++)
			if (row[c] > best)
				best = row[c];
		out[i] = best;
	}
	return 0;
}

int sc_classes(const float *scores, size_t n, unsigned k, unsigned *cls)
{
	if (!scores || !cls || k < 1 || k > SC_MAX_CLASSES)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const float *row = scores + i * k;
		unsigned best = 0;

		if (k == 1) {
			cls[i] = row[0] >= 0.5f;
			continue;
		}
		for (unsigned c = 1; c < k; c++)
			if (row[c] > row[best])
				best = c;
		cls[i] = best;
	}
	return 0;
}

/* numpy.quantile(v, q) with linear interpolation, v sorted, in double;
 * numpy's lerp switches to b - (b-a)(1-t) for t >= 0.5, and so does
 * this, so edges agree to the last bit. */
static double quantile(const float *v, size_t n, double q)
{
	double pos = q * (double)(n - 1), lo = floor(pos), t = pos - lo;
	size_t i = (size_t)lo;
	double a = (double)v[i], b = (double)v[i + 1 < n ? i + 1 : i];
	double diff = b - a;

	return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

/* #{edges <= v} for ascending edges. */
static unsigned bin_of(const double *edges, unsigned count, double v)
{
	unsigned lo = 0, hi = count;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (edges[mid] <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void proportions(const double *edges, unsigned bins, const float *v,
			size_t len, double *prop)
{
	memset(prop, 0, bins * sizeof *prop);
	for (size_t i = 0; i < len; i++)
		prop[bin_of(edges, bins - 1, (double)v[i])] += 1.0;
	for (unsigned b = 0; b < bins; b++)
		prop[b] /= (double)len;
}

/* Σ a·log2(a/mix) over a > 0. */
static double kl_to_mix(const double *a, const double *b, unsigned bins)
{
	double s = 0.0;

	for (unsigned i = 0; i < bins; i++)
		if (a[i] > 0.0)
			s += a[i] * log2(a[i] / (0.5 * (a[i] + b[i])));
	return s;
}

int sc_psi_js(const float *ref_sorted, size_t n, const float *win, size_t m,
	      const struct sc_params *p, double *psi, double *js)
{
	double edges[MAX_BINS - 1] = { 0 }, r[MAX_BINS], c[MAX_BINS], eps;
	double sum = 0.0;
	unsigned bins;

	if (!ref_sorted || !win || !n || !m || !psi || !js ||
	    resolve(p, &bins, &eps))
		return -EINVAL;
	for (unsigned b = 1; b < bins; b++)
		edges[b - 1] = quantile(ref_sorted, n, (double)b / (double)bins);
	proportions(edges, bins, ref_sorted, n, r);
	proportions(edges, bins, win, m, c);
	double div = 0.5 * (kl_to_mix(r, c, bins) + kl_to_mix(c, r, bins));

	for (unsigned b = 0; b < bins; b++) {
		double rb = r[b] > 0.0 ? r[b] : eps, cb = c[b] > 0.0 ? c[b] : eps;

		sum += (cb - rb) * log(cb / rb);
	}
	*psi = sum;
	/* rounding can leave a hair below 0 for equal proportions */
	*js = div > 0.0 ? sqrt(div) : 0.0;
	return 0;
}

int sc_wasserstein_sorted(const float *a, size_t n, const float *b, size_t m,
			  double *w1)
{
	size_t i = 0, j = 0;
	double area = 0.0;

	if (!a || !b || !n || !m || !w1)
		return -EINVAL;
	while (i < n || j < m) {
		double cur = i == n ? (double)b[j] :
			     j == m ? (double)a[i] : fmin((double)a[i], (double)b[j]);

		while (i < n && (double)a[i] <= cur)
			i++;
		while (j < m && (double)b[j] <= cur)
			j++;
		if (i == n && j == m)
			break;
		double next = i == n ? (double)b[j] :
			      j == m ? (double)a[i] : fmin((double)a[i], (double)b[j]);

		area += fabs((double)i / (double)n - (double)j / (double)m) *
			(next - cur);
	}
	*w1 = area;
	return 0;
}

/* ln Γ(a)-scaled prefactor x^a e^-x / Γ(a), in logs. */
static double gamma_prefactor_log(double a, double x)
{
	return a * log(x) - x - lgamma(a);
}

/* P(a, x) by its power series; converges fast for x < a + 1. */
static double gamma_p_series(double a, double x)
{
	double term = 1.0 / a, sum = term;

	for (int k = 1; k < 10000; k++) {
		term *= x / (a + k);
		sum += term;
		if (term < sum * 1e-17)
			break;
	}
	return sum * exp(gamma_prefactor_log(a, x));
}

/* Q(a, x) by its continued fraction (modified Lentz); for x >= a + 1. */
static double gamma_q_fraction(double a, double x)
{
	const double tiny = 1e-300;
	double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, f = d;

	for (int i = 1; i < 10000; i++) {
		double an = -i * (i - a), delta;

		b += 2.0;
		d = an * d + b;
		if (fabs(d) < tiny)
			d = tiny;
		c = b + an / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1.0 / d;
		delta = d * c;
		f *= delta;
		if (fabs(delta - 1.0) < 1e-16)
			break;
	}
	return f * exp(gamma_prefactor_log(a, x));
}

double sc_chi2_sf(double x, double dof)
{
	double a = dof / 2.0, h = x / 2.0, q;

	if (!(dof > 0.0) || !(x >= 0.0) || isinf(dof))
		return (double)NAN;
	if (isinf(x))
		return 0.0;
	if (h == 0.0)
		return 1.0;
	q = h < a + 1.0 ? 1.0 - gamma_p_series(a, h) : gamma_q_fraction(a, h);
	return q < 0.0 ? 0.0 : q > 1.0 ? 1.0 : q;
}

int sc_chi2(const size_t *ref_counts, const size_t *win_counts,
	    size_t classes, double *stat, double *p, unsigned *dof)
{
	double rows[2] = { 0.0, 0.0 }, total, sum = 0.0;
	unsigned seen = 0;

	if (!ref_counts || !win_counts || !stat || !p || !dof || !classes)
		return -EINVAL;
	for (size_t c = 0; c < classes; c++) {
		rows[0] += (double)ref_counts[c];
		rows[1] += (double)win_counts[c];
	}
	total = rows[0] + rows[1];
	for (size_t c = 0; c < classes; c++) {
		double col = (double)ref_counts[c] + (double)win_counts[c];

		if (col == 0.0)
			continue;
		seen++;
		for (int r = 0; r < 2; r++) {
			double obs = (double)(r ? win_counts[c] : ref_counts[c]);
			double expect = rows[r] * col / total;

			sum += (obs - expect) * (obs - expect) / expect;
		}
	}
	if (seen < 2 || rows[0] == 0.0 || rows[1] == 0.0) {
		*stat = 0.0;
		*p = 1.0;
		*dof = 0;
		return 0;
	}
	*stat = sum;
	*dof = seen - 1;
	*p = sc_chi2_sf(sum, (double)*dof);
	return 0;
}

static int class_counts(const float *scores, size_t len, unsigned k,
			size_t *counts, unsigned *cls)
{
	int err = sc_classes(scores, len, k, cls);

	if (err)
		return err;
	for (size_t i = 0; i < len; i++)
		counts[cls[i]]++;
	return 0;
}

int sc_compare(const float *ref, size_t n, const float *win, size_t m,
	       unsigned k, const struct sc_params *p, struct sc_result *out)
{
	unsigned bins, classes = k < 2 ? 2 : k;
	double eps;
	struct sc_result res;
	int err = -ENOMEM;

	if (!ref || !win || !out || !n || !m || k < 1 || k > SC_MAX_CLASSES ||
	    resolve(p, &bins, &eps))
		return -EINVAL;

	float *vals = malloc((n + m + (n > m ? n : m)) * sizeof *vals);
	unsigned *cls = malloc((n > m ? n : m) * sizeof *cls);
	size_t *counts = calloc(2 * (size_t)classes, sizeof *counts);

	if (!vals || !cls || !counts)
		goto done;
	float *rv = vals, *wv = vals + n, *tmp = vals + n + m;

	sc_values(ref, n, k, rv);
	sc_values(win, m, k, wv);
	fsort(rv, n, tmp);
	fsort(wv, m, tmp);
	err = ks_test_sorted(rv, n, wv, m, &res.ks);
	if (!err)
		err = sc_psi_js(rv, n, wv, m, p, &res.psi, &res.js);
	if (!err)
		err = sc_wasserstein_sorted(rv, n, wv, m, &res.wasserstein);
	if (!err)
		err = class_counts(ref, n, k, counts, cls);
	if (!err)
		err = class_counts(win, m, k, counts + classes, cls);
	if (!err)
		err = sc_chi2(counts, counts + classes, classes, &res.chi2,
			      &res.chi2_p, &res.chi2_dof);
	if (!err)
		*out = res;
done:
	free(vals);
	free(cls);
	free(counts);
	return err;
}
