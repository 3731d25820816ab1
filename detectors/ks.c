/* ks: two-sample KS statistic and scipy-compatible p-values, per
 * coordinate with correction (DESIGN §4). */
#include "ks.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fsort.h"

/* Coordinates transposed and sorted together: 64 columns of a 1000-point
 * sample are 256 KiB, which stays in cache. */
#define DIM_BLOCK 64
/* Durbin's matrix is used up to this N (as scipy), Pelz–Good above. */
#define DURBIN_MAX_N 140
/* Above this N·D² the two-sided tail is twice the one-sided one to
 * better than 3e-8 (checked against scipy for N <= 140). */
#define SMIRNOV_NXSQ 2.2
/* Above this N·D² scipy returns 0 for N > 140. */
#define ZERO_NXSQ 370.0

static size_t gcd(size_t a, size_t b)
{
	while (b) {
		size_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Ends every sorted key column: above the key of any finite float. */
#define SENTINEL UINT32_MAX

/* max over the pooled values v of |F_a(v)·n·m - F_b(v)·n·m| =
 * |i·m - j·n|, i and j the counts of a and b at or below v; a and b are
 * sorted keys (fsort_key), which tie exactly when the floats do, each
 * followed by SENTINEL (a[n], b[m]). One merge step per value, without
 * branches on the data: both heads advance when equal, and the gap counts
 * only where the next value differs, i.e. after every copy of v. */
static uint64_t max_gap(const uint32_t *a, size_t n, const uint32_t *b,
			size_t m)
{
	size_t i = 0, j = 0;
	uint64_t best = 0;

	while (i < n || j < m) {
		uint32_t ai = a[i], bj = b[j], v = ai < bj ? ai : bj;

		i += ai == v;
		j += bj == v;
		uint32_t next = a[i] < b[j] ? a[i] : b[j];
		uint64_t im = (uint64_t)i * m, jn = (uint64_t)j * n;
		uint64_t gap = im > jn ? im - jn : jn - im;

		best = next != v && gap > best ? gap : best;
	}
	return best;
}

/* P(D >= h/n) for two samples of n: 2·Σ_k (-1)^(k-1) C(2n, n-kh)/C(2n, n),
 * written as r_0(1 - r_1(1 - r_2(...))) with r_k = C(2n, n-(k+1)h) /
 * C(2n, n-kh), so that no term cancels another. */
static double equal_sizes_p(size_t n, uint64_t h)
{
	double nested = 0.0;

	for (size_t k = (size_t)(n / h) + 1; k-- > 0;) {
		double r = 1.0;

		for (uint64_t j = 0; j < h; j++) {
			double top = (double)n - (double)(k * h + j);

			r *= top / ((double)n + (double)(k * h + j) + 1.0);
		}
		nested = r * (1.0 - nested);
	}
	return 2.0 * nested;
}

/* Largest integer <= a/b for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Probability that a uniformly random lattice path from (0,0) to
 * (big, small) touches |i·ng - j·mg| >= h (mg = big/g, ng = small/g):
 * Q(i,j) = 1 outside the band, otherwise the mix i/(i+j)·Q(i-1,j) +
 * j/(i+j)·Q(i,j-1) of the two ways in. Every value stays in [0, 1], so
 * tiny p-values keep their precision. One column of small+1 values. */
static int band_exit_p(size_t big, size_t small, size_t g, uint64_t h,
		       double *p)
{
	int64_t mg = (int64_t)(big / g), ng = (int64_t)(small / g);
	int64_t hh = (int64_t)h, lo_prev = 0;
	double *q = malloc((small + 1) * sizeof *q);

	if (!q)
		return -ENOMEM;
	for (size_t j = 0; j <= small; j++)
		q[j] = (int64_t)j * mg < hh ? 0.0 : 1.0;
	for (int64_t i = 1; i <= (int64_t)big; i++) {
		int64_t below = i * ng - hh, above = i * ng + hh - 1;
		int64_t lo = below < 0 ? 0 : floor_div(below, mg) + 1;
		int64_t hi = floor_div(above, mg);

		if (hi > (int64_t)small)
			hi = (int64_t)small;
		if (lo > hi) {
			free(q);
			*p = 1.0;
			return 0;
		}
		for (int64_t j = lo_prev; j < lo; j++)
			q[j] = 1.0;
		for (int64_t j = lo; j <= hi; j++) {
			double under = j ? q[j - 1] : 0.0;

			q[j] = ((double)i * q[j] + (double)j * under) /
			       (double)(i + j);
		}
		lo_prev = lo;
	}
	*p = q[small];
	free(q);
	return 0;
}

static double clip01(double p)
{
	return p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p;
}

/* Exact two-sided p for D = h/lcm(n, m). */
static int exact_p(size_t n, size_t m, uint64_t h, double *p)
{
	size_t g = gcd(n, m);
	int err = 0;

	if (h == 0)
		*p = 1.0;
	else if (n == m)
		*p = equal_sizes_p(n, h);
	else
		err = n > m ? band_exit_p(n, m, g, h, p) :
			      band_exit_p(m, n, g, h, p);
	if (!err)
		*p = clip01(*p);
	return err;
}

/* ---- the one-sample Kolmogorov distribution (scipy's kstwo) ---- */

/* Exact one-sided tail P(D+_N >= x) (Birnbaum–Tingey), 0 < x < 1. */
static double smirnov_sf(unsigned long nn, double x)
{
	double n = (double)nn, sum = 0.0, lognfact = lgamma(n + 1.0);
	unsigned long last = (unsigned long)floor(n * (1.0 - x));

	for (unsigned long j = 0; j <= last && j <= nn; j++) {
		double jj = (double)j, rest = 1.0 - x - jj / n;

		if (rest <= 0.0 && nn > j)
			continue;
		double lt = lognfact - lgamma(jj + 1.0) - lgamma(n - jj + 1.0) +
			    (nn > j ? (n - jj) * log(rest) : 0.0) +
			    (jj - 1.0) * log(x + jj / n);

		sum += exp(lt);
	}
	return x * sum;
}

/* c = a·b for k x k matrices. */
static void matmul(const double *a, const double *b, double *c, size_t k)
{
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; j < k; j++) {
			double s = 0.0;

			for (size_t t = 0; t < k; t++)
				s += a[i * k + t] * b[t * k + j];
			c[i * k + j] = s;
		}
}

/* Divides a by 2^e so that its largest entry is below 2, adding e to
 * *exponent. */
static void rescale(double *a, size_t len, long *exponent)
{
	double big = 0.0;
	int e;

	for (size_t i = 0; i < len; i++)
		big = fmax(big, fabs(a[i]));
	if (big == 0.0)
		return;
	frexp(big, &e);
	for (size_t i = 0; i < len; i++)
		a[i] = ldexp(a[i], -e);
	*exponent += e;
}

/* P(D_N < x) by Durbin's matrix (Marsaglia, Tsang & Wang 2003):
 * N!/N^N · (H^N)[k-1][k-1] with k = ceil(N·x), h = k - N·x. */
static int durbin_cdf(unsigned long nn, double x, double *cdf)
{
	double nx = (double)nn * x, h;
	size_t k = (size_t)ceil(nx), dim = 2 * k - 1, len = dim * dim;
	double *mat = calloc(4 * len, sizeof *mat);
	double *pw = mat + len, *tmp = mat + 2 * len, *sq = mat + 3 * len;
	long e_mat = 0, e_pw = 0;

	if (!mat)
		return -ENOMEM;
	h = (double)k - nx;
	for (size_t i = 0; i < dim; i++)
		for (size_t j = 0; j < dim && j <= i + 1; j++)
			mat[i * dim + j] = exp(-lgamma((double)(i + 2 - j)));
	for (size_t i = 0; i < dim; i++) {
		mat[i * dim] -= pow(h, (double)(i + 1)) *
				exp(-lgamma((double)(i + 2)));
		mat[(dim - 1) * dim + i] -= pow(h, (double)(dim - i)) *
					    exp(-lgamma((double)(dim - i + 1)));
	}
	if (2.0 * h - 1.0 > 0.0)
		mat[(dim - 1) * dim] += pow(2.0 * h - 1.0, (double)dim) *
					exp(-lgamma((double)dim + 1.0));
	for (size_t i = 0; i < dim; i++)
		pw[i * dim + i] = 1.0;
	for (unsigned long rest = nn; rest; rest >>= 1) {
		if (rest & 1) {
			matmul(pw, mat, tmp, dim);
			memcpy(pw, tmp, len * sizeof *pw);
			e_pw += e_mat;
			rescale(pw, len, &e_pw);
		}
		matmul(mat, mat, sq, dim);
		memcpy(mat, sq, len * sizeof *mat);
		e_mat *= 2;
		rescale(mat, len, &e_mat);
	}
	double v = pw[(k - 1) * dim + (k - 1)];

	*cdf = v > 0.0 ? exp(log(v) + (double)e_pw * M_LN2 + lgamma(nn + 1.0) -
			     (double)nn * log((double)nn)) : 0.0;
	free(mat);
	return 0;
}

/* P(D_N <= x) by the Pelz–Good series K0 + K1/√N + K2/N + K3/N^1.5
 * (theta-function form for small z = x√N). */
static double pelz_good_cdf(unsigned long nn, double x)
{
	const double pi2 = M_PI * M_PI, pi4 = pi2 * pi2, pi6 = pi4 * pi2;
	double n = (double)nn, z = sqrt(n) * x;
	double z2 = z * z, z4 = z2 * z2, z6 = z4 * z2, z8 = z4 * z4;
	double log_q = -pi2 / (8.0 * z2);

	if (log_q < -708.0)
		return 0.0;

	double q = exp(log_q), sums[4] = { 0 };
	long top = (long)ceil(16.0 * z / M_PI);

	/* Σ over odd j = 2k-1 of c_i(j)·q^(j²), Horner in q^(8k). */
	for (long k = top; k >= 1; k--) {
		double j2 = (double)((2 * k - 1) * (2 * k - 1));
		double j4 = j2 * j2, j6 = j4 * j2, step = pow(q, 8.0 * (double)k);
		double c[4] = {
			1.0,
			-z2 + pi2 / 4.0 * j2,
			6.0 * z6 + 2.0 * z4 + (2.0 * z4 - 5.0 * z2) * pi2 / 4.0 * j2 +
				pi4 * (1.0 - 2.0 * z2) / 16.0 * j4,
			-30.0 * z6 - 90.0 * z8 +
				pi2 * (135.0 * z4 - 96.0 * z6) / 4.0 * j2 +
				pi4 * (212.0 * z4 - 60.0 * z2) / 16.0 * j4 +
				pi6 * (5.0 - 30.0 * z2) / 64.0 * j6,
		};

		for (int i = 0; i < 4; i++)
			sums[i] = c[i] + step * sums[i];
	}
	const double root = sqrt(2.0 * M_PI);
	double div[4] = { z, 6.0 * z4, 72.0 * z4 * z2 * z, 6480.0 * z8 * z2 };

	for (int i = 0; i < 4; i++)
		sums[i] *= q * root / div[i];

	/* Terms over all integers k: k²·q2^(k²), q2 = exp(-π²/(2z²)). */
	double q2 = exp(-pi2 / (2.0 * z2)), extra2 = 0.0, extra3 = 0.0;

	for (long k = top; k >= 1; k--) {
		double k2 = (double)(k * k), w = k2 * pow(q2, k2);

		extra2 += w;
		extra3 += (3.0 * z2 - pi2 * k2) * w;
	}
	sums[2] += extra2 * pi2 * root / (-36.0 * z2 * z);
	sums[3] += extra3 * pi2 * root / (216.0 * z6);
	return sums[0] + sums[1] / sqrt(n) + sums[2] / n + sums[3] / (n * sqrt(n));
}

/* scipy's kstwo.sf(x, N): P(D_N >= x) for the one-sample statistic. */
static int kolmogorov_sf(unsigned long nn, double x, double *sf)
{
	double n = (double)nn, t = n * x, nxsq = t * x, cdf;
	int err;

	if (x >= 1.0) {
		*sf = 0.0;
	} else if (t <= 0.5) {
		*sf = 1.0;
	} else if (t <= 1.0) {	/* Ruben–Gambino: N!/N^N·(2t-1)^N */
		*sf = 1.0 - exp(lgamma(n + 1.0) - n * log(n) + n * log(2.0 * t - 1.0));
	} else if (t >= n - 1.0) {
		*sf = 2.0 * pow(1.0 - x, n);
	} else if (x >= 0.5 || nxsq >= SMIRNOV_NXSQ) {
		*sf = nxsq >= ZERO_NXSQ && nn > DURBIN_MAX_N ? 0.0 :
			2.0 * smirnov_sf(nn, x);
	} else if (nn <= DURBIN_MAX_N) {
		err = durbin_cdf(nn, x, &cdf);
		if (err)
			return err;
		*sf = 1.0 - cdf;
	} else {
		*sf = 1.0 - pelz_good_cdf(nn, x);
	}
	*sf = clip01(*sf);
	return 0;
}

static int asymptotic_p(size_t n, size_t m, double d, double *p)
{
	double en = (double)n * (double)m / ((double)n + (double)m);

	/* numpy rounds half to even, as nearbyint does by default. */
	return kolmogorov_sf((unsigned long)nearbyint(en), d, p);
}

static bool exact_sizes(size_t n, size_t m)
{
	return n <= KS_EXACT_MAX && m <= KS_EXACT_MAX;
}

/* p for the gap num = max |i·m - j·n|. */
static int gap_p(size_t n, size_t m, uint64_t num, double *p)
{
	if (exact_sizes(n, m))
		return exact_p(n, m, num / gcd(n, m), p);
	return asymptotic_p(n, m, (double)num / ((double)n * (double)m), p);
}

double ks_p_value(size_t n, size_t m, double d)
{
	double p;

	if (!n || !m || !(d >= 0.0))
		return (double)NAN;
	if (d > 1.0)
		d = 1.0;
	if (exact_sizes(n, m)) {
		double lcm = (double)(n / gcd(n, m)) * (double)m;

		if (exact_p(n, m, (uint64_t)nearbyint(d * lcm), &p))
			return (double)NAN;
		return p;
	}
	return asymptotic_p(n, m, d, &p) ? (double)NAN : p;
}

static int finish(size_t n, size_t m, uint64_t num, struct ks_result *out)
{
	double p;
	int err = gap_p(n, m, num, &p);

	if (err)
		return err;
	out->statistic = (double)num / ((double)n * (double)m);
	out->p_value = p;
	out->exact = exact_sizes(n, m);
	return 0;
}

/* Keys of a (n, then SENTINEL) and b (m, then SENTINEL) in one buffer,
 * followed by scratch for the sort; each sample sorted unless already so. */
static uint32_t *sorted_keys(const float *a, size_t n, const float *b,
			     size_t m, bool sort)
{
	uint32_t *k = malloc((n + m + 2 + (n > m ? n : m)) * sizeof *k);
	uint32_t *kb = k + n + 1, *tmp = kb + m + 1;

	if (!k)
		return NULL;
	for (size_t i = 0; i < n; i++)
		k[i] = fsort_key(a[i]);
	for (size_t i = 0; i < m; i++)
		kb[i] = fsort_key(b[i]);
	if (sort) {
		fsort_keys(k, n, tmp);
		fsort_keys(kb, m, tmp);
	}
	k[n] = kb[m] = SENTINEL;
	return k;
}

static int test_keys(const float *a, size_t n, const float *b, size_t m,
		     struct ks_result *out, bool sort)
{
	uint32_t *k;
	int err;

	if (!a || !b || !out || !n || !m || n > UINT32_MAX || m > UINT32_MAX)
		return -EINVAL;
	k = sorted_keys(a, n, b, m, sort);
	if (!k)
		return -ENOMEM;
	err = finish(n, m, max_gap(k, n, k + n + 1, m), out);
	free(k);
	return err;
}

int ks_test_sorted(const float *a, size_t n, const float *b, size_t m,
		   struct ks_result *out)
{
	return test_keys(a, n, b, m, out, false);
}

int ks_test(const float *a, size_t n, const float *b, size_t m,
	    struct ks_result *out)
{
	return test_keys(a, n, b, m, out, true);
}

/* ---- per coordinate ---- */

struct gap_of {
	uint64_t num;
	size_t dim;
};

static int by_gap(const void *a, const void *b)
{
	uint64_t x = ((const struct gap_of *)a)->num;
	uint64_t y = ((const struct gap_of *)b)->num;

	return (x > y) - (x < y);
}

/* Keys of columns j0..j0+cols of a (count x d), one row of stride
 * count + 1 per column (room for the sentinel). Tiles of 8 rows write 32
 * contiguous bytes per column instead of scattering single keys. */
static void transpose(const float *a, size_t count, size_t d, size_t j0,
		      size_t cols, uint32_t *out)
{
	size_t i0 = 0, stride = count + 1;

	for (; i0 + 8 <= count; i0 += 8)
		for (size_t c = 0; c < cols; c++) {
			const float *src = a + i0 * d + j0 + c;
			uint32_t *dst = out + c * stride + i0;

			for (size_t r = 0; r < 8; r++)
				dst[r] = fsort_key(src[r * d]);
		}
	for (; i0 < count; i0++)
		for (size_t c = 0; c < cols; c++)
			out[c * stride + i0] = fsort_key(a[i0 * d + j0 + c]);
}

static void block_gaps(const float *x, size_t n, const float *y, size_t m,
		       size_t d, size_t j0, size_t cols, uint32_t *buf,
		       struct gap_of *gaps)
{
	uint32_t *xs = buf, *ys = buf + cols * (n + 1);
	uint32_t *tmp = ys + cols * (m + 1);

	transpose(x, n, d, j0, cols, xs);
	transpose(y, m, d, j0, cols, ys);
	for (size_t c = 0; c < cols; c++) {
		uint32_t *a = xs + c * (n + 1), *b = ys + c * (m + 1);

		fsort_keys(a, n, tmp);
		fsort_keys(b, m, tmp);
		a[n] = b[m] = SENTINEL;
		gaps[j0 + c] = (struct gap_of){
			.num = max_gap(a, n, b, m),
			.dim = j0 + c,
		};
	}
}

/* Raw p of every coordinate; one computation per distinct gap, since the
 * p-value depends on the sizes and the gap only. */
static int gap_p_values(size_t n, size_t m, struct gap_of *gaps, size_t d,
			double *p)
{
	qsort(gaps, d, sizeof *gaps, by_gap);
	for (size_t i = 0; i < d; i++) {
		if (i && gaps[i].num == gaps[i - 1].num) {
			p[gaps[i].dim] = p[gaps[i - 1].dim];
			continue;
		}
		int err = gap_p(n, m, gaps[i].num, &p[gaps[i].dim]);

		if (err)
			return err;
	}
	return 0;
}

static void summarise(const double *adj, const struct gap_of *gaps, size_t n,
		      size_t m, size_t d, double alpha,
		      struct ks_dims_result *out)
{
	*out = (struct ks_dims_result){ .min_p = 1.0, .dims = d };
	for (size_t j = 0; j < d; j++) {
		out->drifted += adj[j] <= alpha;
		out->min_p = fmin(out->min_p, adj[j]);
	}
	out->share = (double)out->drifted / (double)d;
	/* gaps are sorted ascending by now */
	out->max_statistic = (double)gaps[d - 1].num /
			     ((double)n * (double)m);
}

int ks_dims(const float *x, size_t n, const float *y, size_t m, size_t d,
	    const struct ks_dims_params *p, struct ks_dims_result *out,
	    double *stat, double *pval)
{
	size_t block = d < DIM_BLOCK ? d : DIM_BLOCK, buf_len, cols_len;
	uint32_t *buf = NULL;
	struct gap_of *gaps = NULL;
	double *raw = NULL, *adj = NULL;
	int err = -ENOMEM;

	if (!x || !y || !p || !out || !n || !m || !d || n > UINT32_MAX ||
	    m > UINT32_MAX || !(p->alpha > 0.0 && p->alpha < 1.0))
		return -EINVAL;
	if (__builtin_mul_overflow(block, n + m + 2, &cols_len) ||
	    __builtin_add_overflow(cols_len, n > m ? n : m, &buf_len))
		return -ENOMEM;
	buf = reallocarray(NULL, buf_len, sizeof *buf);
	gaps = reallocarray(NULL, d, sizeof *gaps);
	raw = reallocarray(NULL, d, sizeof *raw);
	adj = reallocarray(NULL, d, sizeof *adj);
	if (!buf || !gaps || !raw || !adj)
		goto done;
	for (size_t j0 = 0; j0 < d; j0 += block)
		block_gaps(x, n, y, m, d, j0, d - j0 < block ? d - j0 : block,
			   buf, gaps);
	if (stat)
		for (size_t j = 0; j < d; j++)
			stat[j] = (double)gaps[j].num / ((double)n * (double)m);
	err = gap_p_values(n, m, gaps, d, raw);
	if (!err)
		err = corr_adjust(p->correction, raw, d, adj);
	if (err)
		goto done;
	summarise(adj, gaps, n, m, d, p->alpha, out);
	if (pval)
		memcpy(pval, raw, d * sizeof *raw);
done:
	free(buf);
	free(gaps);
	free(raw);
	free(adj);
	return err;
}
