/* stream: Page–Hinkley and ADWIN change detectors (DESIGN §4). */
#include "stream.h"

#include <math.h>
#include <string.h>

/* ---- Page–Hinkley ---- */

static void ph_restart(struct stream_ph *s)
{
	s->n = s->up_min_n = s->down_max_n = 0;
	s->mean = s->sum = s->up = s->up_min = s->down = s->down_max = 0.0;
	s->up_min_sum = s->down_max_sum = 0.0;
}

/* The alarm in the direction DIR: statistic STAT, extreme reached after
 * AT values summing to AT_SUM. */
static void ph_record(struct stream_ph *s, enum stream_dir dir, double stat,
		      uint64_t at, double at_sum)
{
	uint64_t rest = s->n - at;

	s->last = (struct stream_ph_alarm){
		.dir = dir,
		.n = s->n,
		.statistic = stat,
		.change_at = at,
		.mean_before = at ? at_sum / (double)at : (double)NAN,
		.mean_after = rest ? (s->sum - at_sum) / (double)rest : (double)NAN,
	};
}

bool stream_ph_init(struct stream_ph *s, const struct stream_ph_params *p)
{
	struct stream_ph_params q = p ? *p : (struct stream_ph_params){ 0 };

	if (!q.delta)
		q.delta = 0.005;
	if (!q.threshold)
		q.threshold = 50.0;
	if (!q.forget)
		q.forget = 0.9999;
	if (!q.min_samples)
		q.min_samples = 30;
	if (!q.dir)
		q.dir = STREAM_BOTH;
	if (!(q.delta >= 0.0) || !(q.threshold > 0.0) || !(q.forget > 0.0) ||
	    q.forget > 1.0 || (q.dir & ~STREAM_BOTH))
		return false;
	memset(s, 0, sizeof *s);
	s->p = q;
	ph_restart(s);
	return true;
}

bool stream_ph_update(struct stream_ph *s, double x)
{
	double dev, up_stat, down_stat;

	if (!isfinite(x))
		return false;
	s->n++;
	s->sum += x;
	s->mean += (x - s->mean) / (double)s->n;
	dev = x - s->mean;
	s->up = s->p.forget * s->up + (dev - s->p.delta);
	s->down = s->p.forget * s->down + (dev + s->p.delta);
	if (s->up < s->up_min) {
		s->up_min = s->up;
		s->up_min_n = s->n;
		s->up_min_sum = s->sum;
	}
	if (s->down > s->down_max) {
		s->down_max = s->down;
		s->down_max_n = s->n;
		s->down_max_sum = s->sum;
	}
	if (s->n < s->p.min_samples)
		return false;
	up_stat = s->up - s->up_min;
	down_stat = s->down_max - s->down;
	if ((s->p.dir & STREAM_UP) && up_stat > s->p.threshold)
		ph_record(s, STREAM_UP, up_stat, s->up_min_n, s->up_min_sum);
	else if ((s->p.dir & STREAM_DOWN) && down_stat > s->p.threshold)
		ph_record(s, STREAM_DOWN, down_stat, s->down_max_n,
			  s->down_max_sum);
	else
		return false;
	ph_restart(s);
	return true;
}

/* ---- ADWIN ---- */

bool stream_adwin_init(struct stream_adwin *a,
		       const struct stream_adwin_params *p)
{
	struct stream_adwin_params q = p ? *p : (struct stream_adwin_params){ 0 };

	if (!q.delta)
		q.delta = 0.002;
	if (!q.clock)
		q.clock = 32;
	if (!q.max_buckets)
		q.max_buckets = 5;
	if (!q.min_window)
		q.min_window = 5;
	if (!(q.delta > 0.0 && q.delta < 1.0) || q.max_buckets < 2 ||
	    q.max_buckets > STREAM_ADWIN_MAX_BUCKETS)
		return false;
	memset(a, 0, sizeof *a);
	a->p = q;
	return true;
}

static double bucket_size(unsigned row)
{
	return (double)(UINT64_C(1) << row);	/* row < STREAM_ADWIN_ROWS = 64 */
}

/* Sum of squared deviations of the union of two groups. */
static double merged_variance(double n1, double t1, double v1, double n2,
			      double t2, double v2)
{
	double diff = t1 / n1 - t2 / n2;

	return v1 + v2 + n1 * n2 / (n1 + n2) * diff * diff;
}

/* Rows over max_buckets pass their two oldest buckets, merged, to the
 * next row as its newest bucket. */
static void compress(struct stream_adwin *a)
{
	for (unsigned r = 0; r + 1 < STREAM_ADWIN_ROWS; r++) {
		struct stream_adwin_bucket *row = a->rows[r];
		double n = bucket_size(r);

		if (a->count[r] <= a->p.max_buckets)
			break;
		struct stream_adwin_bucket merged = {
			.total = row[0].total + row[1].total,
			.variance = merged_variance(n, row[0].total,
						    row[0].variance, n,
						    row[1].total,
						    row[1].variance),
		};

		memmove(row, row + 2, (a->count[r] - 2) * sizeof *row);
		a->count[r] -= 2;
		a->rows[r + 1][a->count[r + 1]++] = merged;
		if (a->used_rows < r + 2)
			a->used_rows = r + 2;
	}
}

static void insert(struct stream_adwin *a, double x)
{
	if (a->width) {
		double n = (double)a->width, mean = a->total / n;

		a->variance += (x - mean) * (x - mean) * n / (n + 1.0);
	}
	a->width++;
	a->total += x;
	a->rows[0][a->count[0]++] = (struct stream_adwin_bucket){ .total = x };
	if (!a->used_rows)
		a->used_rows = 1;
	compress(a);
}

static void drop_oldest(struct stream_adwin *a)
{
	unsigned r = a->used_rows - 1;
	struct stream_adwin_bucket b = a->rows[r][0];
	double nb = bucket_size(r), n = (double)a->width, rest = n - nb;

	if (rest > 0.0) {
		double rest_total = a->total - b.total;
		double diff = b.total / nb - rest_total / rest;

		a->variance -= b.variance + nb * rest / n * diff * diff;
		a->variance = fmax(a->variance, 0.0);
		a->total = rest_total;
	} else {
		a->variance = a->total = 0.0;
	}
	a->width -= (uint64_t)nb;
	memmove(a->rows[r], a->rows[r] + 1,
		(a->count[r] - 1) * sizeof a->rows[r][0]);
	a->count[r]--;
	while (a->used_rows && !a->count[a->used_rows - 1])
		a->used_rows--;
}

/* The cut test of one check: the window's size, sum, and the two
 * constants of the bound, which depend only on the whole window. */
struct cut_test {
	double n, total;
	double var_term;	/* 2 · σ²_W · ln(2/δ') */
	double lin_term;	/* 2/3 · ln(2/δ') */
};

static struct cut_test cut_test_of(const struct stream_adwin *a)
{
	double n = (double)a->width, log_term = log(2.0 * n / a->p.delta);

	return (struct cut_test){
		.n = n,
		.total = a->total,
		.var_term = 2.0 * (a->variance / n) * log_term,
		.lin_term = 2.0 / 3.0 * log_term,
	};
}

/* Whether the split after the n0 oldest values (sum t0) is a change:
 * |mean0 - mean1| > sqrt(var_term / h) + lin_term / h, 1/h = 1/n0 + 1/n1,
 * compared squared so that a check costs no square root per split. */
static bool is_cut(const struct cut_test *c, double n0, double t0)
{
	double n1 = c->n - n0, inv_h = 1.0 / n0 + 1.0 / n1;
	double gap = fabs(t0 / n0 - (c->total - t0) / n1) - c->lin_term * inv_h;

	return gap > 0.0 && gap * gap > c->var_term * inv_h;
}

/* Walks the splits from the oldest end; true at the first cut. */
static bool find_cut(const struct stream_adwin *a)
{
	double n0 = 0.0, t0 = 0.0, min = (double)a->p.min_window;
	struct cut_test c = cut_test_of(a);

	for (unsigned r = a->used_rows; r-- > 0;)
		for (unsigned b = 0; b < a->count[r]; b++) {
			n0 += bucket_size(r);
			t0 += a->rows[r][b].total;
			if ((double)a->width - n0 < min)
				return false;
			if (n0 >= min && is_cut(&c, n0, t0))
				return true;
		}
	return false;
}

/* The values dropped since the window held WIDTH values summing to
 * TOTAL, and those kept. */
static void adwin_record(struct stream_adwin *a, uint64_t width, double total)
{
	uint64_t dropped = width - a->width;

	a->last = (struct stream_adwin_change){
		.n_before = dropped,
		.n_after = a->width,
		.mean_before = (total - a->total) / (double)dropped,
		.mean_after = stream_adwin_mean(a),
	};
}

bool stream_adwin_update(struct stream_adwin *a, double x)
{
	bool changed = false;
	uint64_t width;
	double total;

	if (!isfinite(x))
		return false;
	insert(a, x);
	if (++a->since_check < a->p.clock)
		return false;
	a->since_check = 0;
	width = a->width;
	total = a->total;
	while (a->width >= 2 * (uint64_t)a->p.min_window && find_cut(a)) {
		drop_oldest(a);
		changed = true;
	}
	if (changed) {
		a->changes++;
		adwin_record(a, width, total);
	}
	return changed;
}

double stream_adwin_mean(const struct stream_adwin *a)
{
	return a->width ? a->total / (double)a->width : 0.0;
}

double stream_adwin_variance(const struct stream_adwin *a)
{
	return a->width ? a->variance / (double)a->width : 0.0;
}

uint64_t stream_adwin_width(const struct stream_adwin *a)
{
	return a->width;
}
