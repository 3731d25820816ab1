/* Unit tests for daemon/window: slice keys, reference bootstrap and
 * reservoir, freezing, window ids, closing by count / time / cap, slice
 * limits and memory accounting.  Rows are tagged by a number k so that
 * every closed window and reference can be checked row by row. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

#define DIM 3
#define ROW_BYTES (DIM * sizeof(float))

static const char *const by_region[] = { "region" };

/* Row k; distinct for distinct k and exactly reproducible. */
static void row(unsigned k, float *x)
{
	x[0] = (float)k;
	x[1] = (float)k + 0.25f;
	x[2] = -(float)k * 1e-3f;
}

static struct win_params params(unsigned reference_size, unsigned window_size)
{
	struct win_params p = {
		.dim = DIM,
		.reference_size = reference_size,
		.window_size = window_size,
		.window_max = window_size ? window_size : 64,
		.window_min = 2,
		.max_slices = 64,
		.seed = 1,
	};

	return p;
}

static struct win_params params_by_region(unsigned reference_size,
					  unsigned window_size)
{
	struct win_params p = params(reference_size, window_size);

	p.slice_by = by_region;
	p.n_slice_by = 1;
	return p;
}

static struct win_model *model_new(const struct win_params *p)
{
	struct win_model *m = win_model_new(p);

	assert_non_null(m);
	return m;
}

/* Adds row K as a record of ROLE in slice region=REGION (no slice label
 * when REGION is NULL) at time TS. */
static enum rec_err add_row(struct win_model *m, unsigned k, const char *region,
			    enum rec_role role, int64_t ts,
			    struct win_closed **closed)
{
	float x[DIM];
	struct record r = {
		.model = "m",
		.role = role,
		.embedding = x,
		.dim = DIM,
	};

	row(k, x);
	if (region) {
		r.labels[0].key = "region";
		r.labels[0].value = region;
		r.n_labels = 1;
	}
	return win_add(m, &r, ts, ts, closed);
}

static void live(struct win_model *m, unsigned k, const char *region,
		 struct win_closed **closed)
{
	assert_int_equal(add_row(m, k, region, REC_LIVE, (int64_t)k * 1000,
				 closed), REC_OK);
}

static void reference(struct win_model *m, unsigned k, const char *region,
		      struct win_closed **closed)
{
	assert_int_equal(add_row(m, k, region, REC_REFERENCE, 0, closed),
			 REC_OK);
}

static size_t list_len(const struct win_closed *c)
{
	size_t n = 0;

	for (; c; c = c->next)
		n++;
	return n;
}

static void free_list(struct win_closed *c)
{
	while (c) {
		struct win_closed *next = c->next;

		win_closed_free(c);
		c = next;
	}
}

/* Unlinks the window (SLICE, ID) from *LIST; fails the test if absent. */
static struct win_closed *take(struct win_closed **list, const char *slice,
			       int64_t id)
{
	for (struct win_closed **pp = list; *pp; pp = &(*pp)->next) {
		struct win_closed *c = *pp;

		if (!strcmp(c->slice, slice) && c->window_id == id) {
			*pp = c->next;
			c->next = NULL;
			return c;
		}
	}
	fail_msg("no closed window %s #%lld", slice, (long long)id);
	/* Not reached (fail_msg jumps out); tells -O3's null-dereference
	 * analysis that callers never get NULL. */
	abort();
}

/* Rows of DATA are exactly rows KS[0..n). */
static void assert_rows(const float *data, const unsigned *ks, size_t n)
{
	float x[DIM];

	for (size_t i = 0; i < n; i++) {
		row(ks[i], x);
		if (memcmp(data + i * DIM, x, ROW_BYTES))
			fail_msg("row %zu is not row %u", i, ks[i]);
	}
}

/* Checks a closed window: rows, bounds (rows were sent at k*1000 µs),
 * and its reference. */
static void check_window(const struct win_closed *c, const unsigned *ks,
			 size_t n, const unsigned *ref_ks, size_t ref_n,
			 bool ref_new)
{
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	float *copy;

	assert_int_equal(c->n, n);
	assert_int_equal(c->dim, DIM);
	assert_rows(win_closed_rows(c, &copy), ks, n);
	free(copy);
	for (size_t i = 0; i < n; i++) {
		int64_t ts = (int64_t)ks[i] * 1000;

		lo = ts < lo ? ts : lo;
		hi = ts > hi ? ts : hi;
	}
	assert_true(c->start_us == lo);
	assert_true(c->end_us == hi);
	assert_non_null(c->ref);
	assert_int_equal(c->ref->dim, DIM);
	assert_int_equal(c->ref->n, ref_n);
	assert_rows(c->ref->data, ref_ks, ref_n);
	assert_true(c->ref->id > 0);
	assert_int_equal(c->ref_new, ref_new);
}

static struct record labelled(const char *const *keys, const char *const *vals,
			      unsigned n)
{
	struct record r = { .model = "m" };

	for (unsigned i = 0; i < n; i++) {
		r.labels[i].key = keys[i];
		r.labels[i].value = vals[i];
	}
	r.n_labels = n;
	return r;
}

static void test_slice_key_order(void **state)
{
	static const char *const by[] = { "region", "device" };
	static const char *const keys[] = { "device", "extra", "region" };
	static const char *const vals[] = { "ios", "x", "eu" };
	struct record r = labelled(keys, vals, 3);
	char buf[WIN_SLICE_KEY_MAX];

	(void)state;
	/* slice_by order, not the record's; labels outside slice_by ignored. */
	assert_int_equal(win_slice_key(by, 2, &r, buf, sizeof(buf)),
			 strlen("region=eu,device=ios"));
	assert_string_equal(buf, "region=eu,device=ios");
}

static void test_slice_key_missing_label(void **state)
{
	static const char *const by[] = { "region", "device" };
	static const char *const keys[] = { "region" };
	static const char *const vals[] = { "eu" };
	struct record r = labelled(keys, vals, 1), none = { .model = "m" };
	char buf[WIN_SLICE_KEY_MAX];

	(void)state;
	assert_int_equal(win_slice_key(by, 2, &r, buf, sizeof(buf)),
			 strlen("region=eu,device="));
	assert_string_equal(buf, "region=eu,device=");
	assert_int_equal(win_slice_key(by, 2, &none, buf, sizeof(buf)),
			 strlen("region=,device="));
	assert_string_equal(buf, "region=,device=");
	assert_int_equal(win_slice_key(by, 0, &r, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void test_slice_key_escaping(void **state)
{
	static const char *const by[] = { "region", "a=b" };
	static const char *const keys[] = { "region", "a=b" };
	static const char *const vals[] = { "x,y=z\\w", "," };
	struct record r = labelled(keys, vals, 2);
	char buf[WIN_SLICE_KEY_MAX];
	const char *want = "region=x\\,y\\=z\\\\w,a\\=b=\\,";

	(void)state;
	assert_int_equal(win_slice_key(by, 2, &r, buf, sizeof(buf)),
			 strlen(want));
	assert_string_equal(buf, want);
}

/* Without escaping, a="x,b=y" and {a="x", b="y"} would share a slice. */
static void test_slice_key_escaping_separates_slices(void **state)
{
	static const char *const by[] = { "a", "b" };
	static const char *const keys[] = { "a", "b" };
	static const char *const tricky[] = { "x,b=y" };
	static const char *const plain[] = { "x", "y" };
	struct win_params p = params(2, 2);
	struct win_model *m;
	struct win_closed *closed = NULL;
	float x[DIM];
	struct record r1 = labelled(keys, tricky, 1);
	struct record r2 = labelled(keys, plain, 2);

	(void)state;
	p.slice_by = by;
	p.n_slice_by = 2;
	m = model_new(&p);
	row(0, x);
	r1.embedding = r2.embedding = x;
	r1.dim = r2.dim = DIM;
	assert_int_equal(win_add(m, &r1, 1, 1, &closed), REC_OK);
	assert_int_equal(win_add(m, &r2, 2, 2, &closed), REC_OK);
	assert_int_equal(win_slice_count(m), 3);
	assert_null(closed);
	win_model_free(m);
}

static void test_slice_key_overflow(void **state)
{
	static const char *const keys[] = { "region" };
	static const char *const eu[] = { "eu" };
	static const char *const comma[] = { "a,b" };
	struct record r = labelled(keys, eu, 1);
	char buf[WIN_SLICE_KEY_MAX];

	(void)state;
	/* "region=eu" is 9 bytes and needs 10 with its NUL. */
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 10), 9);
	assert_string_equal(buf, "region=eu");
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 9), -1);
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 1), -1);
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 0), -1);
	/* The escape byte counts: "region=a\,b" is 11 bytes. */
	r = labelled(keys, comma, 1);
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 12), 11);
	assert_int_equal(win_slice_key(by_region, 1, &r, buf, 11), -1);
}

/* A slice key beyond WIN_SLICE_KEY_MAX cannot be stored: refused, and
 * the refused record changes nothing. */
static void test_long_slice_value_refused(void **state)
{
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL;
	char value[WIN_SLICE_KEY_MAX + 16];
	size_t mem;

	(void)state;
	live(m, 0, "eu", &closed);
	mem = win_memory(m);
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_not_equal(add_row(m, 1, value, REC_LIVE, 1, &closed), REC_OK);
	assert_int_equal(win_slice_count(m), 2);
	assert_int_equal(win_memory(m), mem);
	assert_null(closed);
	win_model_free(m);
}

static void test_bootstrap_then_windows(void **state)
{
	static const unsigned ref[] = { 0, 1, 2, 3 };
	static const unsigned w1[] = { 4, 5, 6 }, w2[] = { 7, 8, 9 };
	struct win_params p = params(4, 3);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c1, *c2;

	(void)state;
	for (unsigned k = 0; k < 6; k++)
		live(m, k, NULL, &closed);
	assert_null(closed);
	live(m, 6, NULL, &closed);
	assert_int_equal(list_len(closed), 1);
	c1 = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c1, w1, 3, ref, 4, true);

	for (unsigned k = 7; k < 10; k++)
		live(m, k, NULL, &closed);
	assert_int_equal(list_len(closed), 1);
	c2 = take(&closed, WIN_WHOLE_MODEL, 2);
	check_window(c2, w2, 3, ref, 4, false);
	/* One frozen reference shared by both windows, not a copy. */
	assert_ptr_equal(c1->ref, c2->ref);
	assert_int_equal(win_slice_count(m), 1);

	win_closed_free(c1);
	win_closed_free(c2);
	win_model_free(m);
}

/* Rows 0..11 alternate eu/us.  "*" takes every row, each slice its own:
 *   "*":        ref {0,1}, windows {2,3} {4,5} {6,7} {8,9} {10,11}
 *   region=eu:  ref {0,2}, windows {4,6} {8,10}
 *   region=us:  ref {1,3}, windows {5,7} {9,11} */
static void test_every_record_in_whole_and_own_slice(void **state)
{
	static const unsigned whole_ref[] = { 0, 1 }, eu_ref[] = { 0, 2 },
			      us_ref[] = { 1, 3 };
	static const unsigned eu_w[][2] = { { 4, 6 }, { 8, 10 } };
	static const unsigned us_w[][2] = { { 5, 7 }, { 9, 11 } };
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	for (unsigned k = 0; k < 12; k++)
		live(m, k, k % 2 ? "us" : "eu", &closed);
	assert_int_equal(win_slice_count(m), 3);
	assert_int_equal(list_len(closed), 9);
	for (unsigned i = 0; i < 5; i++) {
		unsigned w[2] = { 2 + 2 * i, 3 + 2 * i };

		c = take(&closed, WIN_WHOLE_MODEL, i + 1);
		check_window(c, w, 2, whole_ref, 2, i == 0);
		win_closed_free(c);
	}
	for (unsigned i = 0; i < 2; i++) {
		c = take(&closed, "region=eu", i + 1);
		check_window(c, eu_w[i], 2, eu_ref, 2, i == 0);
		win_closed_free(c);
		c = take(&closed, "region=us", i + 1);
		check_window(c, us_w[i], 2, us_ref, 2, i == 0);
		win_closed_free(c);
	}
	assert_null(closed);
	win_model_free(m);
}

/* Window ids: each slice counts up from the model's highest id when it
 * appears, so none is ever reused; win_resume only raises that floor. */
static void test_window_ids_resume(void **state)
{
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;
	static const unsigned ref[] = { 0, 1 }, us_ref[] = { 6, 7 };
	static const unsigned w23[] = { 2, 3 }, w45[] = { 4, 5 },
			      w67[] = { 6, 7 }, w89[] = { 8, 9 };

	(void)state;
	win_resume(m, 100);
	/* A smaller id from a stale source must not move ids backwards. */
	win_resume(m, 5);
	assert_true(win_max_window_id(m) == 100);
	assert_int_equal(win_slice_count(m), 1);

	for (unsigned k = 0; k < 6; k++)
		live(m, k, "eu", &closed);
	for (unsigned k = 6; k < 10; k++)
		live(m, k, "us", &closed);
	assert_int_equal(list_len(closed), 7);
	c = take(&closed, WIN_WHOLE_MODEL, 101);
	check_window(c, w23, 2, ref, 2, true);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 102);
	check_window(c, w45, 2, ref, 2, false);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 103);
	check_window(c, w67, 2, ref, 2, false);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 104);
	check_window(c, w89, 2, ref, 2, false);
	win_closed_free(c);
	/* eu appeared when the floor was 100. */
	c = take(&closed, "region=eu", 101);
	check_window(c, w23, 2, ref, 2, true);
	win_closed_free(c);
	c = take(&closed, "region=eu", 102);
	check_window(c, w45, 2, ref, 2, false);
	win_closed_free(c);
	/* us appeared after "*" had handed out 102 and eu 102. */
	c = take(&closed, "region=us", 103);
	check_window(c, w89, 2, us_ref, 2, true);
	win_closed_free(c);
	assert_true(win_max_window_id(m) == 104);
	win_model_free(m);
}

/* Explicit reference records displace a bootstrap no window has used. */
static void test_explicit_reference_replaces_bootstrap(void **state)
{
	static const unsigned ref[] = { 100, 101, 102 }, w[] = { 2, 3 };
	struct win_params p = params(4, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	live(m, 0, NULL, &closed);
	live(m, 1, NULL, &closed);
	assert_int_equal(win_memory(m), 2 * ROW_BYTES);
	for (unsigned k = 100; k < 103; k++)
		reference(m, k, NULL, &closed);
	assert_int_equal(win_memory(m), 3 * ROW_BYTES);
	assert_null(closed);
	/* With an explicit reference of at least two rows, live records go
	 * to the window even though the reference is below its size. */
	live(m, 2, NULL, &closed);
	live(m, 3, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c, w, 2, ref, 3, true);
	win_closed_free(c);
	win_model_free(m);
}

/* A complete bootstrap is displaced too, as long as no window used it. */
static void test_explicit_reference_replaces_full_bootstrap(void **state)
{
	static const unsigned ref[] = { 100, 101 }, w[] = { 2, 3 };
	struct win_params p = params(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	live(m, 0, NULL, &closed);
	live(m, 1, NULL, &closed);
	reference(m, 100, NULL, &closed);
	reference(m, 101, NULL, &closed);
	live(m, 2, NULL, &closed);
	live(m, 3, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c, w, 2, ref, 2, true);
	win_closed_free(c);
	win_model_free(m);
}

/* Offers rows FIRST..FIRST+N as reference to a fresh model with
 * REF_SIZE and SEED, closes one window, returns it (caller frees). */
static struct win_closed *reservoir(unsigned ref_size, unsigned first,
				    unsigned n, uint64_t seed)
{
	struct win_params p = params(ref_size, 2);
	struct win_model *m;
	struct win_closed *closed = NULL;

	p.seed = seed;
	m = model_new(&p);
	for (unsigned k = first; k < first + n; k++)
		reference(m, k, NULL, &closed);
	assert_int_equal(win_memory(m),
			 (n < ref_size ? n : ref_size) * ROW_BYTES);
	live(m, 0, NULL, &closed);
	live(m, 1, NULL, &closed);
	win_model_free(m);
	assert_int_equal(list_len(closed), 1);
	return closed;
}

/* The k of a row made by row(), or -1 when X is no such row. */
static int row_tag(const float *x)
{
	float want[DIM];
	unsigned k;

	if (!(x[0] >= 0 && x[0] < 1e6f))
		return -1;
	k = (unsigned)x[0];
	row(k, want);
	return memcmp(x, want, ROW_BYTES) ? -1 : (int)k;
}

static void test_reservoir_keeps_subset(void **state)
{
	enum { SIZE = 8, OFFERED = 100, FIRST = 1000 };
	struct win_closed *c = reservoir(SIZE, FIRST, OFFERED, 7);
	bool seen[OFFERED] = { false };
	unsigned late = 0;

	(void)state;
	assert_int_equal(c->ref->n, SIZE);
	for (unsigned i = 0; i < SIZE; i++) {
		int k = row_tag(c->ref->data + i * DIM);

		if (k < FIRST || k >= FIRST + OFFERED)
			fail_msg("reference row %u was never offered", i);
		assert_false(seen[k - FIRST]);	/* no row kept twice */
		seen[k - FIRST] = true;
		late += k >= FIRST + SIZE;
	}
	/* Keeping only the first SIZE rows would be a prefix, not a sample;
	 * for a uniform sample that has probability C(100,8)^-1. */
	assert_true(late > 0);
	win_closed_free(c);
}

/* Uniformity of the reservoir: over many seeds every offered row is kept
 * with probability SIZE/OFFERED.  A biased replacement rule (off-by-one
 * in the range, or favouring the newest rows) shows up as early rows
 * kept much more or less often than late ones. */
static void test_reservoir_uniform(void **state)
{
	enum { SIZE = 5, OFFERED = 25, TRIALS = 2000 };
	unsigned counts[OFFERED] = { 0 };
	double expect = (double)TRIALS * SIZE / OFFERED;
	double sd = sqrt(expect * (1.0 - (double)SIZE / OFFERED));
	double chi2 = 0;

	(void)state;
	for (uint64_t seed = 1; seed <= TRIALS; seed++) {
		struct win_closed *c = reservoir(SIZE, 1000, OFFERED, seed);

		assert_int_equal(c->ref->n, SIZE);
		for (unsigned i = 0; i < SIZE; i++) {
			int k = row_tag(c->ref->data + i * DIM);

			assert_true(k >= 1000 && k < 1000 + OFFERED);
			counts[k - 1000]++;
		}
		win_closed_free(c);
	}
	for (unsigned i = 0; i < OFFERED; i++) {
		double dev = counts[i] - expect;

		if (fabs(dev) > 5 * sd)
			fail_msg("row %u kept %u times, expected %.0f ± %.0f",
				 i, counts[i], expect, 5 * sd);
		chi2 += dev * dev / expect;
	}
	/* 24 degrees of freedom (sum fixed); P(chi2 > 60) < 1e-4. */
	if (chi2 > 60)
		fail_msg("inclusion counts not uniform: chi2 = %.1f", chi2);
}

static void test_reference_freezes(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w1[] = { 2, 3 }, w2[] = { 4, 5 };
	struct win_params p = params(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c1, *c2;
	size_t mem;

	(void)state;
	for (unsigned k = 0; k < 4; k++)
		live(m, k, NULL, &closed);
	c1 = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c1, w1, 2, ref, 2, true);
	mem = win_memory(m);
	assert_int_equal(add_row(m, 100, NULL, REC_REFERENCE, 0, &closed),
			 REC_ERR_REFERENCE_FROZEN);
	assert_int_equal(win_memory(m), mem);
	live(m, 4, NULL, &closed);
	live(m, 5, NULL, &closed);
	c2 = take(&closed, WIN_WHOLE_MODEL, 2);
	check_window(c2, w2, 2, ref, 2, false);
	assert_ptr_equal(c1->ref, c2->ref);
	assert_true(c1->ref->id == c2->ref->id);
	win_closed_free(c1);
	win_closed_free(c2);
	win_model_free(m);
}

/* A time close freezes the reference just like a count close. */
static void test_reference_freezes_on_time_close(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w[] = { 2, 3 };
	struct win_params p = params(2, 0);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	for (unsigned k = 0; k < 4; k++)
		live(m, k, NULL, &closed);
	assert_null(closed);
	assert_int_equal(win_close_due(m, &closed), 1);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c, w, 2, ref, 2, true);
	win_closed_free(c);
	assert_int_equal(add_row(m, 100, NULL, REC_REFERENCE, 0, &closed),
			 REC_ERR_REFERENCE_FROZEN);
	win_model_free(m);
}

/* "*" is frozen by us-rows; eu exists (one row, no window yet), so its
 * reference is still open and takes explicit reference rows while "*"
 * ignores them. */
static void test_reference_to_open_slice_after_whole_froze(void **state)
{
	static const unsigned whole_ref[] = { 0, 1 }, eu_ref[] = { 100, 101 };
	static const unsigned whole_w2[] = { 4, 5 }, eu_w[] = { 5, 6 };
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	for (unsigned k = 0; k < 4; k++)
		live(m, k, "us", &closed);
	free_list(closed);	/* "*" and us windows #1, checked elsewhere */
	closed = NULL;
	live(m, 4, "eu", &closed);
	reference(m, 100, "eu", &closed);
	reference(m, 101, "eu", &closed);
	live(m, 5, "eu", &closed);
	live(m, 6, "eu", &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	check_window(c, whole_w2, 2, whole_ref, 2, false);
	win_closed_free(c);
	/* eu appeared after window 1 was handed out: its ids start above. */
	c = take(&closed, "region=eu", 2);
	check_window(c, eu_w, 2, eu_ref, 2, true);
	win_closed_free(c);
	assert_null(closed);
	win_model_free(m);
}

/* The same as above for a slice not seen before: its reference is not
 * frozen either (it does not exist yet), so the record counts in its own
 * slice.  Refusing it as "reference frozen" would make the outcome depend
 * on whether one live row of the slice happened to arrive first. */
static void test_reference_to_new_slice_after_whole_froze(void **state)
{
	static const unsigned eu_ref[] = { 100, 101 }, eu_w[] = { 5, 6 };
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	for (unsigned k = 0; k < 4; k++)
		live(m, k, "us", &closed);
	free_list(closed);
	closed = NULL;
	assert_int_equal(add_row(m, 100, "eu", REC_REFERENCE, 0, &closed),
			 REC_OK);
	assert_int_equal(win_slice_count(m), 3);
	reference(m, 101, "eu", &closed);
	live(m, 5, "eu", &closed);
	live(m, 6, "eu", &closed);
	c = take(&closed, "region=eu", 2);
	check_window(c, eu_w, 2, eu_ref, 2, true);
	win_closed_free(c);
	free_list(closed);
	win_model_free(m);
}

/* A tick closes every open window; one below window_min is recorded as
 * WIN_SHORT_WINDOW (no reference used, none frozen), not kept open.
 * window_min 3, time-only windows:
 *   "*":  ref {0,1}, window {2..8} (7 rows)
 *   eu:   ref {0,1}, window {4,5,6}
 *   us:   ref {2,3}, window {7,8}: short */
static void test_close_due_short_windows(void **state)
{
	static const unsigned ref01[] = { 0, 1 };
	static const unsigned whole_w[] = { 2, 3, 4, 5, 6, 7, 8 };
	static const unsigned eu_w[] = { 4, 5, 6 };
	struct win_params p = params_by_region(2, 0);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	static const char *const region_of[] = { "eu", "eu", "us", "us", "eu",
						 "eu", "eu", "us", "us", "us" };

	(void)state;
	p.window_max = 100;
	p.window_min = 3;
	m = model_new(&p);
	for (unsigned k = 0; k < 9; k++)
		live(m, k, region_of[k], &closed);
	assert_null(closed);
	assert_int_equal(win_close_due(m, &closed), 3);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c, whole_w, 7, ref01, 2, true);
	assert_int_equal(c->status, WIN_TESTED);
	win_closed_free(c);
	c = take(&closed, "region=eu", 1);
	check_window(c, eu_w, 3, ref01, 2, true);
	win_closed_free(c);
	/* us had two rows (7, 8): recorded short, its reference not frozen. */
	c = take(&closed, "region=us", 1);
	assert_int_equal(c->status, WIN_SHORT_WINDOW);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->short_of, 2);
	assert_null(c->ref);
	assert_false(c->ref_new);
	win_closed_free(c);
	assert_null(closed);
	/* Only the three references are left. */
	assert_int_equal(win_memory(m), 3 * 2 * ROW_BYTES);

	/* Nothing open: a tick closes nothing. */
	assert_int_equal(win_close_due(m, &closed), 0);
	live(m, 9, "us", &closed);
	assert_int_equal(win_close_due(m, &closed), 2);
	c = take(&closed, "region=us", 2);
	assert_int_equal(c->status, WIN_SHORT_WINDOW);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	assert_int_equal(c->status, WIN_SHORT_WINDOW);
	win_closed_free(c);
	win_model_free(m);
}

/* window_max bounds a time-only window between two ticks. */
static void test_window_max_caps_time_window(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w1[] = { 2, 3, 4, 5 };
	struct win_params p = params(2, 0);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;

	(void)state;
	p.window_max = 4;
	m = model_new(&p);
	for (unsigned k = 0; k < 5; k++)
		live(m, k, NULL, &closed);
	assert_null(closed);
	live(m, 5, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	check_window(c, w1, 4, ref, 2, true);
	win_closed_free(c);
	assert_null(closed);
	/* The next window starts empty and fills to the cap again. */
	for (unsigned k = 6; k < 10; k++)
		live(m, k, NULL, &closed);
	assert_int_equal(list_len(closed), 1);
	assert_int_equal(closed->n, 4);
	assert_true(closed->window_id == 2);
	free_list(closed);
	win_model_free(m);
}

/* max_slices 3 = "*", eu, us.  A fourth slice is refused, and the refused
 * record leaves no trace: not in "*", no slice, no memory. */
static void test_max_slices(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w2[] = { 5, 6 };
	struct win_params p = params_by_region(2, 2);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	size_t mem;

	(void)state;
	p.max_slices = 3;
	m = model_new(&p);
	live(m, 0, "eu", &closed);
	live(m, 1, "eu", &closed);
	live(m, 2, "us", &closed);
	live(m, 3, "us", &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	win_closed_free(c);
	assert_null(closed);
	mem = win_memory(m);

	assert_int_equal(add_row(m, 4, "ap", REC_LIVE, 4000, &closed),
			 REC_ERR_TOO_MANY_SLICES);
	assert_int_equal(add_row(m, 4, "ap", REC_REFERENCE, 0, &closed),
			 REC_ERR_TOO_MANY_SLICES);
	assert_int_equal(win_slice_count(m), 3);
	assert_int_equal(win_memory(m), mem);
	assert_null(closed);

	/* Existing slices still take records, and "*" never saw row 4. */
	live(m, 5, "eu", &closed);
	live(m, 6, "us", &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	check_window(c, w2, 2, ref, 2, false);
	win_closed_free(c);
	assert_null(closed);
	win_model_free(m);
}

/* Window rows are the floats sent, bit for bit (signed zero, subnormal,
 * extremes), and the bounds are min/max ts even when rows arrive out of
 * order. */
static void test_window_data_exact_and_bounds(void **state)
{
	static const float rows[][DIM] = {
		{ 1, 2, 3 },
		{ 4, 5, 6 },
		{ -0.0f, FLT_MAX, -FLT_MAX },
		{ 1.4e-45f, -FLT_MIN, 0.1f },
		{ 1.0f / 3.0f, -1e-30f, 16777217.0f },
		{ 3.14159274f, 2.71828183f, -0.0f },
	};
	static const int64_t ts[] = { 0, 0, 500, 100, 900, 300 };
	struct win_params p = params(2, 4);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL;

	(void)state;
	for (unsigned i = 0; i < 6; i++) {
		struct record r = {
			.model = "m",
			.embedding = rows[i],
			.dim = DIM,
		};

		assert_int_equal(win_add(m, &r, ts[i], ts[i], &closed), REC_OK);
	}
	assert_int_equal(list_len(closed), 1);
	assert_int_equal(closed->n, 4);
	assert_memory_equal(closed->data, rows[2], 4 * ROW_BYTES);
	assert_memory_equal(closed->ref->data, rows[0], 2 * ROW_BYTES);
	assert_true(closed->start_us == 100);
	assert_true(closed->end_us == 900);
	free_list(closed);
	win_model_free(m);
}

/* win_memory counts reference rows and open window rows of every slice;
 * rows handed out in closed windows no longer count. */
static void test_memory_accounting(void **state)
{
	/* Rows and row pointers held after each record (see the slice
	 * layout in test_every_record_in_whole_and_own_slice, window size 3
	 * here).  "*" stores a row only while the record's slice takes it as
	 * reference; otherwise it points at the slice's row. */
	static const struct {
		const char *region;
		size_t rows, pointers;
	} steps[] = {
		{ "eu", 2, 0 },	/* "*" ref 1, eu ref 1 */
		{ "eu", 4, 0 },	/* refs full */
		{ "us", 6, 1 },	/* "*" window 1 (its own row), us ref 1 */
		{ "us", 8, 2 },	/* "*" window 2, us ref 2 */
		{ "eu", 7, 0 },	/* "*" window closes (-2); eu window 1 */
		{ "eu", 8, 1 },	/* "*" window 1 (eu's row), eu window 2 */
		{ "eu", 6, 2 },	/* "*" 2; eu window closes (-2) */
	};
	struct win_params p = params_by_region(2, 3);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL;

	(void)state;
	assert_int_equal(win_memory(m), 0);
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t want = steps[i].rows * ROW_BYTES +
			      steps[i].pointers * sizeof(void *);

		live(m, i, steps[i].region, &closed);
		if (win_memory(m) != want)
			fail_msg("after row %u: %zu bytes, want %zu", i,
				 win_memory(m), want);
	}
	assert_int_equal(list_len(closed), 2);
	free_list(closed);
	win_model_free(m);
}

/* Closed windows and their reference outlive the model: a job on a
 * worker may still run when the model is reconfigured away. */
static void test_closed_outlives_model(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w[] = { 2, 3 };
	struct win_params p = params(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL;
	struct win_ref *extra;

	(void)state;
	for (unsigned k = 0; k < 4; k++)
		live(m, k, NULL, &closed);
	win_model_free(m);
	extra = win_ref_get(closed->ref);
	check_window(closed, w, 2, ref, 2, true);
	win_closed_free(closed);
	assert_int_equal(extra->n, 2);
	assert_rows(extra->data, ref, 2);
	win_ref_put(extra);
}

/* Column sums of C's rows as stored, added up in row order. */
static void assert_sums_of_rows(const struct win_closed *c)
{
	double want[DIM] = { 0 };
	float *copy;
	const float *rows = win_closed_rows(c, &copy);

	assert_non_null(c->sums);
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = 0; j < DIM; j++)
			want[j] += (double)rows[i * DIM + j];
	assert_memory_equal(c->sums, want, sizeof(want));
	free(copy);
}

/* With col_sums every window, in "*" and in its slice, leaves with the
 * sums of its rows as stored (float16: as rounded); a reload that turns
 * them on starts with the next window, never half-way through one. */
static void test_column_sums(void **state)
{
	enum smp_format formats[] = { SMP_FLOAT32, SMP_FLOAT16 };

	(void)state;
	for (size_t fi = 0; fi < 2; fi++) {
		struct win_params p = params_by_region(2, 3);
		struct win_closed *closed = NULL, *c;
		struct win_model *m;
		unsigned k = 0;

		p.format = formats[fi];
		m = model_new(&p);
		while (k < 4)	/* the references, then two rows open */
			live(m, 1000 + k++, "eu", &closed);
		p.col_sums = true;
		assert_int_equal(win_model_update(m, &p), 0);
		while (k < 10)	/* windows 1 (rows 2-4) and 2 (5-7) */
			live(m, 1000 + k++, "eu", &closed);
		c = take(&closed, WIN_WHOLE_MODEL, 1);
		assert_null(c->sums);	/* opened before the reload */
		win_closed_free(c);
		c = take(&closed, WIN_WHOLE_MODEL, 2);
		assert_sums_of_rows(c);
		win_closed_free(c);
		c = take(&closed, "region=eu", 2);
		assert_sums_of_rows(c);
		win_recycle(m, c);
		p.col_sums = false;
		assert_int_equal(win_model_update(m, &p), 0);
		while (k < 16)	/* windows 3 (8-10) and 4 (11-13) */
			live(m, 1000 + k++, "eu", &closed);
		c = take(&closed, WIN_WHOLE_MODEL, 3);
		assert_sums_of_rows(c);	/* opened before turning them off */
		win_closed_free(c);
		c = take(&closed, WIN_WHOLE_MODEL, 4);
		assert_null(c->sums);
		win_closed_free(c);
		free_list(closed);
		win_model_free(m);
	}
}

/* Recycles every window of LIST whose slice is (or, with OTHERS, is
 * not) SLICE; returns the rest. */
static struct win_closed *recycle_some(struct win_model *m,
				       struct win_closed *list,
				       const char *slice, bool others)
{
	struct win_closed *rest = NULL;

	while (list) {
		struct win_closed *next = list->next;

		if (!strcmp(list->slice, slice) != others) {
			win_recycle(m, list);
		} else {
			list->next = rest;
			rest = list;
		}
		list = next;
	}
	return rest;
}

/* A pause right after two windows closed together (two slices): both
 * buffers come back as spares before either window reopens, and the two
 * windows after that still find buffers kept (four in all); a second
 * without any window taking one frees them.  "*" of a sliced model takes
 * none: it points at its slices' rows, and a buffer comes back only when
 * "*"'s windows let go of it too. */
static void test_spares_survive_a_pause(void **state)
{
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *first, *second;
	size_t one = 2 * ROW_BYTES;
	unsigned k = 0;

	(void)state;
	for (; k < 4; k++)	/* references: eu {0, 1}, us {2, 3} */
		reference(m, k, k < 2 ? "eu" : "us", &closed);
	for (; k < 8; k++)	/* eu {4, 6}, us {5, 7}, "*" {4, 5} {6, 7} */
		live(m, k, k % 2 ? "us" : "eu", &closed);
	first = closed;
	closed = NULL;
	for (; k < 12; k++)	/* the same again, on fresh buffers */
		live(m, k, k % 2 ? "us" : "eu", &closed);
	second = closed;
	closed = NULL;
	assert_int_equal(list_len(first), 4);
	assert_int_equal(list_len(second), 4);
	assert_int_equal(win_spare_bytes(m), 0);
	first = recycle_some(m, first, WIN_WHOLE_MODEL, true);
	assert_int_equal(win_spare_bytes(m), 0);	/* "*" holds them */
	first = recycle_some(m, first, WIN_WHOLE_MODEL, false);
	assert_null(first);
	assert_int_equal(win_spare_bytes(m), 2 * one);
	second = recycle_some(m, second, WIN_WHOLE_MODEL, false);
	assert_int_equal(win_spare_bytes(m), 2 * one);	/* slices hold them */
	second = recycle_some(m, second, WIN_WHOLE_MODEL, true);
	assert_null(second);
	assert_int_equal(win_spare_bytes(m), 4 * one);	/* the pause */
	live(m, k++, "eu", &closed);	/* takes one */
	assert_int_equal(win_spare_bytes(m), 3 * one);
	win_trim_spares(m);		/* one was taken: kept */
	assert_int_equal(win_spare_bytes(m), 3 * one);
	win_trim_spares(m);		/* none since: freed */
	assert_int_equal(win_spare_bytes(m), 0);
	free_list(closed);
	win_model_free(m);
}

/* Rows of C gathered are rows KS[0..n). */
static void assert_closed_rows(const struct win_closed *c, const unsigned *ks,
			       size_t n)
{
	float *copy;

	assert_int_equal(c->n, n);
	assert_rows(win_closed_rows(c, &copy), ks, n);
	free(copy);
}

/* "*" of a sliced model stores no rows of its own: it points at the rows
 * its slices stored.  They stay as they were for as long as a closed "*"
 * window holds them, whatever the slices do next: a reload grows their
 * open windows, their windows close, are recycled and reopen on the
 * recycled buffers, the model is reset and fills again. */
static void test_whole_rows_stay_put(void **state)
{
	static const unsigned w1[] = { 4, 5, 6 }, w2[] = { 7, 8, 9 },
			      eu1[] = { 4, 6, 7 };
	struct win_params p = params_by_region(2, 3);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *a, *b, *c;
	size_t dropped;
	unsigned k = 0;

	(void)state;
	for (; k < 4; k++)	/* references: eu {0, 1}, us {2, 3} */
		reference(m, k, k < 2 ? "eu" : "us", &closed);
	for (; k < 7; k++)	/* "*" {4, 5, 6} closes; eu {4, 6}, us {5} */
		live(m, k, k % 2 ? "us" : "eu", &closed);
	a = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_null(a->data);
	assert_null(closed);
	p.window_max = 6;	/* a reload: open windows move */
	assert_int_equal(win_model_update(m, &p), 0);
	live(m, k++, "eu", &closed);	/* eu {4, 6, 7} closes */
	c = take(&closed, "region=eu", 1);
	assert_closed_rows(c, eu1, 3);
	win_recycle(m, c);
	live(m, k++, "eu", &closed);	/* a new eu window */
	live(m, k++, "us", &closed);	/* "*" {7, 8, 9} closes */
	b = take(&closed, WIN_WHOLE_MODEL, 2);
	assert_closed_rows(a, w1, 3);
	assert_closed_rows(b, w2, 3);
	assert_int_equal(win_reset(m, &dropped), 0);
	assert_int_equal(dropped, 3);	/* eu {8}, us {5, 9} */
	for (; k < 30; k++)	/* references again, then windows */
		live(m, k, k % 2 ? "us" : "eu", &closed);
	assert_closed_rows(a, w1, 3);
	assert_closed_rows(b, w2, 3);
	win_recycle(m, a);
	win_recycle(m, b);
	free_list(closed);
	win_model_free(m);
}

/* While a slice takes its first records as reference, "*" stores them in
 * a buffer of its own; that buffer goes back as a spare once no window
 * reads rows in it. */
static void test_whole_own_rows(void **state)
{
	static const unsigned w1[] = { 2, 3 }, w2[] = { 4, 5 };
	struct win_params p = params_by_region(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;

	(void)state;
	reference(m, 0, "eu", &closed);
	reference(m, 1, "eu", &closed);
	live(m, 2, "us", &closed);	/* us's reference; "*" stores it */
	live(m, 3, "us", &closed);	/* again; "*" {2, 3} closes */
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_null(closed);
	assert_closed_rows(c, w1, 2);
	win_recycle(m, c);
	assert_int_equal(win_spare_bytes(m), 0);	/* "*" keeps it */
	live(m, 4, "eu", &closed);
	live(m, 5, "eu", &closed);	/* eu {4, 5} and "*" {4, 5} close */
	assert_int_equal(win_spare_bytes(m), 2 * ROW_BYTES);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	assert_closed_rows(c, w2, 2);
	win_recycle(m, c);
	free_list(closed);
	win_model_free(m);
}

/* A slice's window that closes against "*"'s reference (its own is
 * below reference_min) freezes that reference while "*" is still taking
 * records as reference: "*" takes this very record into its first window,
 * and its sums must count it. */
static void test_whole_sums_when_its_reference_freezes(void **state)
{
	static const unsigned a1[] = { 0, 1, 2 }, whole1[] = { 2, 3, 4 };
	struct win_params p = params_by_region(10, 3);
	struct win_ref *ref;
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	float x[DIM];

	(void)state;
	p.reference_min = 2;
	p.col_sums = true;
	m = model_new(&p);
	ref = win_ref_new("region=a", 10, DIM, 0, SMP_FLOAT32);
	assert_non_null(ref);
	row(900, x);
	smp_store(SMP_FLOAT32, ref->data, x, DIM);
	ref->n = 1;	/* below reference_min: a's windows use "*"'s */
	assert_int_equal(win_install_reference(m, ref), 0);
	for (unsigned k = 0; k < 5; k++)
		live(m, k, "a", &closed);
	/* "*" took 0 and 1 as reference; a's window {0, 1, 2} froze them,
	 * so "*" took 2 into its window. */
	c = take(&closed, "region=a", 1);
	assert_true(c->ref_fallback && c->ref_new);
	assert_closed_rows(c, a1, 3);
	assert_sums_of_rows(c);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_closed_rows(c, whole1, 3);
	assert_sums_of_rows(c);
	win_closed_free(c);
	assert_null(closed);
	win_model_free(m);
}

/* Rows that only "*"'s open window still holds count in the model's
 * memory: a slice window it points into was recycled. */
static void test_memory_of_rows_only_whole_holds(void **state)
{
	struct win_params p = params_by_region(2, 3);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL;
	unsigned k = 0;

	(void)state;
	for (; k < 4; k++)	/* references: eu {0, 1}, us {2, 3} */
		reference(m, k, k < 2 ? "eu" : "us", &closed);
	live(m, k++, "eu", &closed);
	live(m, k++, "eu", &closed);
	live(m, k++, "us", &closed);	/* "*" {4, 5, 6} closes */
	live(m, k++, "eu", &closed);	/* eu {4, 5, 7} closes; "*" {7} */
	assert_int_equal(list_len(closed), 2);
	while (closed) {
		struct win_closed *next = closed->next;

		win_recycle(m, closed);
		closed = next;
	}
	/* references of 2 rows each ("*", eu, us); us {6}; "*" {7}: one
	 * pointer into eu's buffer, whose three rows nothing else holds */
	assert_int_equal(win_memory(m), (6 + 1 + 3) * ROW_BYTES +
					    sizeof(void *));
	win_model_free(m);
}

/* ---- shared rows under random operations ----
 *
 * A model of what every window must hold, run against the real one over
 * thousands of random steps: records in three slices, windows closed by
 * count and by the interval tick, reloads that grow and shrink the cap,
 * resets, idle expiry, and closed windows kept for a while and recycled
 * in any order.  Every closed window must hold exactly its records (and
 * their sums) when it closes and still when it is recycled, however the
 * buffers its rows are in were shared and reused meanwhile. */

#define PR_REF 3		/* reference.size */
#define PR_CAP 7		/* the larger of the two window caps */
#define PR_HELD 48

struct pr_window {
	unsigned n, rows[PR_CAP];
};

struct pr_slice {
	bool exists;
	unsigned ref_n;		/* warm-up: records taken as reference */
	int64_t last_seen;
	struct pr_window open;
	struct pr_window due[4];	/* closes not yet seen, oldest first */
	unsigned n_due;
};

struct pr_held {
	struct win_closed *c;
	struct pr_window want;
};

struct pr_state {
	struct win_model *m;
	struct win_params p;
	struct pr_slice slices[4];	/* "*", a, b, c */
	struct pr_held held[PR_HELD];
	unsigned n_held;
	uint64_t rng;
};

static const char *const pr_region[] = { NULL, "a", "b", "c" };

static unsigned pr_below(struct pr_state *st, unsigned n)
{
	st->rng ^= st->rng << 13;
	st->rng ^= st->rng >> 7;
	st->rng ^= st->rng << 17;
	return (unsigned)(st->rng % n);
}

static void pr_close(struct pr_slice *s)
{
	assert_true(s->n_due < 4);
	s->due[s->n_due++] = s->open;
	s->open.n = 0;
}

/* What win_add does with record K in slice S of the model. */
static void pr_add(struct pr_state *st, struct pr_slice *s, unsigned k,
		   int64_t now)
{
	if (!s->exists) {
		memset(s, 0, sizeof(*s));
		s->exists = true;
	}
	s->last_seen = now;
	if (s->ref_n < PR_REF) {
		s->ref_n++;
		return;
	}
	if (s->open.n >= st->p.window_max)
		pr_close(s);
	s->open.rows[s->open.n++] = k;
	if (s->open.n >= st->p.window_max)
		pr_close(s);
}

/* C holds exactly the rows of WANT, as stored, with their sums. */
static void pr_check(const struct win_closed *c, const struct pr_window *want)
{
	float *copy, x[DIM], back[DIM];
	uint16_t h[2 * DIM];
	const float *rows = win_closed_rows(c, &copy);

	assert_int_equal(c->n, want->n);
	for (unsigned i = 0; i < want->n; i++) {
		row(want->rows[i], x);
		smp_store(c->format, h, x, DIM);
		smp_load(c->format, back, h, DIM);
		if (memcmp(rows + i * DIM, back, sizeof(back)))
			fail_msg("%s #%lld row %u is not row %u", c->slice,
				 (long long)c->window_id, i, want->rows[i]);
	}
	free(copy);
	assert_sums_of_rows(c);
}

static unsigned pr_index(const char *slice)
{
	if (!strcmp(slice, WIN_WHOLE_MODEL))
		return 0;
	assert_true(!strncmp(slice, "region=", 7) && slice[8] == '\0');
	return (unsigned)(slice[7] - 'a') + 1;
}

/* The windows an operation closed, oldest first, against the model's;
 * then kept until pr_recycle. */
static void pr_closed(struct pr_state *st, struct win_closed *list)
{
	struct win_closed *rev = NULL;

	while (list) {
		struct win_closed *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	for (struct win_closed *c = rev, *next; c; c = next) {
		struct pr_slice *s = &st->slices[pr_index(c->slice)];

		next = c->next;
		c->next = NULL;
		if (!s->n_due)
			fail_msg("%s closed a window the model did not", c->slice);
		pr_check(c, &s->due[0]);
		assert_true(st->n_held < PR_HELD);
		st->held[st->n_held++] = (struct pr_held){ c, s->due[0] };
		memmove(s->due, s->due + 1, --s->n_due * sizeof(s->due[0]));
	}
	for (unsigned i = 0; i < 4; i++)
		if (st->slices[i].n_due)
			fail_msg("slice %u: a window the model closed is missing",
				 i);
}

/* Checks held window I once more and gives it back. */
static void pr_recycle(struct pr_state *st, unsigned i)
{
	pr_check(st->held[i].c, &st->held[i].want);
	win_recycle(st->m, st->held[i].c);
	st->held[i] = st->held[--st->n_held];
}

static void pr_step(struct pr_state *st, unsigned *k)
{
	struct win_closed *closed = NULL;
	unsigned op = pr_below(st, 100), si;
	int64_t now = (int64_t)*k * 1000;
	size_t dropped, want;

	while (st->n_held > PR_HELD - 8)	/* room for what this step closes */
		pr_recycle(st, pr_below(st, st->n_held));
	if (op < 70) {			/* a record; "a" twice as often */
		si = 1 + pr_below(st, 4) % 3;
		si = si == 3 && pr_below(st, 2) ? 1 : si;
		pr_add(st, &st->slices[si], *k, now);
		pr_add(st, &st->slices[0], *k, now);
		live(st->m, (*k)++, pr_region[si], &closed);
	} else if (op < 78) {		/* the interval tick */
		for (si = 0; si < 4; si++)
			if (st->slices[si].exists && st->slices[si].open.n)
				pr_close(&st->slices[si]);
		win_close_due(st->m, &closed);
	} else if (op < 83) {		/* a reload: the cap 4 <-> 7 */
		st->p.window_max = st->p.window_max == 4 ? PR_CAP : 4;
		assert_int_equal(win_model_update(st->m, &st->p), 0);
	} else if (op < 84) {		/* a new model deployed */
		want = 0;
		for (si = 0; si < 4; si++) {
			want += st->slices[si].open.n;
			st->slices[si].open.n = st->slices[si].ref_n = 0;
		}
		assert_int_equal(win_reset(st->m, &dropped), 0);
		assert_int_equal(dropped, want);
	} else if (op < 86) {		/* slices idle for 12 records go */
		for (si = 1; si < 4; si++) {
			struct pr_slice *s = &st->slices[si];

			if (!s->last_seen)	/* only references: as restored */
				s->last_seen = now;
			if (!s->exists || now - s->last_seen < 12000)
				continue;
			if (s->open.n)
				pr_close(s);
			s->exists = false;
		}
		win_expire(st->m, now, 12000, &closed, NULL, NULL);
	} else if (op < 88) {
		win_trim_spares(st->m);
	} else if (st->n_held) {	/* a job comes back */
		pr_recycle(st, pr_below(st, st->n_held));
	}
	pr_closed(st, closed);
	/* the model's expired slices may come back: they warm up anew */
	for (si = 1; si < 4; si++)
		if (!st->slices[si].exists)
			st->slices[si].n_due = 0;
}

static void test_shared_rows_random(void **state)
{
	enum smp_format formats[] = { SMP_FLOAT32, SMP_FLOAT16 };

	(void)state;
	for (unsigned run = 0; run < 8; run++) {
		struct pr_state st = { .rng = 0x9e3779b97f4a7c15ULL * (run + 1) };
		struct win_closed *closed = NULL;
		unsigned k = 0;

		st.p = params_by_region(PR_REF, 0);
		st.p.window_max = 4;
		st.p.col_sums = true;
		st.p.format = formats[run % 2];
		st.m = model_new(&st.p);
		for (unsigned si = 0; si < 4; si++)
			st.slices[si] = (struct pr_slice){ .exists = true,
							   .ref_n = PR_REF };
		for (unsigned si = 1; si < 4; si++)	/* references */
			for (unsigned i = 0; i < PR_REF; i++)
				reference(st.m, 100000 + k++, pr_region[si],
					  &closed);
		assert_null(closed);
		for (unsigned step = 0; step < 4000; step++)
			pr_step(&st, &k);
		while (st.n_held)
			pr_recycle(&st, 0);
		win_model_free(st.m);
	}
}

/* Rows of DATA, read back from FORMAT, are rows KS[0..n) as that format
 * keeps them. */
static void assert_stored_rows(const float *data, enum smp_format format,
			       const unsigned *ks, size_t n)
{
	float x[DIM];

	for (size_t i = 0; i < n; i++) {
		row(ks[i], x);
		for (size_t j = 0; j < DIM; j++) {
			float want = format == SMP_FLOAT16 ?
					     smp_from_half(smp_to_half(x[j])) :
					     x[j];

			if (memcmp(&data[i * DIM + j], &want, sizeof(want)))
				fail_msg("row %zu value %zu: %g, want %g", i, j,
					 (double)data[i * DIM + j],
					 (double)want);
		}
	}
}

/* float16 storage keeps the rows rounded to halves, in half the memory;
 * win_*_rows hands out float32 copies of them (and the rows themselves
 * with float32 storage); a recycled buffer keeps its format. */
static void test_float16_storage(void **state)
{
	static const unsigned ref[] = { 0, 1 }, w1[] = { 2, 3, 4 },
			      w2[] = { 5, 6, 7 };
	struct win_params p = params(2, 3);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	float *copy;
	const float *rows;

	(void)state;
	p.format = SMP_FLOAT16;
	m = model_new(&p);
	live(m, 0, NULL, &closed);
	live(m, 1, NULL, &closed);
	live(m, 2, NULL, &closed);
	assert_int_equal(win_memory(m), 3 * DIM * sizeof(uint16_t));
	live(m, 3, NULL, &closed);
	live(m, 4, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_int_equal(c->format, SMP_FLOAT16);
	assert_int_equal(c->ref->format, SMP_FLOAT16);
	rows = win_closed_rows(c, &copy);
	assert_non_null(copy);
	assert_ptr_equal(rows, copy);
	assert_stored_rows(rows, SMP_FLOAT16, w1, 3);
	/* Really rounded: -0.003 is no half. */
	assert_true(rows[2 * DIM + 2] != -(float)4 * 1e-3f);
	free(copy);
	rows = win_ref_rows(c->ref, &copy);
	assert_non_null(copy);
	assert_stored_rows(rows, SMP_FLOAT16, ref, 2);
	free(copy);
	win_recycle(m, c);
	for (unsigned k = 5; k < 8; k++)
		live(m, k, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	rows = win_closed_rows(c, &copy);
	assert_stored_rows(rows, SMP_FLOAT16, w2, 3);
	free(copy);
	win_closed_free(c);
	win_model_free(m);

	p.format = SMP_FLOAT32;
	m = model_new(&p);
	for (unsigned k = 0; k < 5; k++)
		live(m, k, NULL, &closed);
	rows = win_closed_rows(closed, &copy);
	assert_null(copy);
	assert_ptr_equal(rows, closed->data);
	assert_stored_rows(rows, SMP_FLOAT32, w1, 3);
	assert_ptr_equal(win_ref_rows(closed->ref, &copy), closed->ref->data);
	assert_null(copy);
	free_list(closed);
	win_model_free(m);
}

/* ---- scores, labels, fallback, lifecycle ---- */

/* Row K with one score k/100 and, when LABEL >= 0, an inline label. */
static enum rec_err add_scored(struct win_model *m, unsigned k,
			       const char *region, enum rec_role role,
			       int label, struct win_closed **closed)
{
	float x[DIM], score = (float)k / 100;
	struct record r = {
		.model = "m",
		.role = role,
		.embedding = x,
		.dim = DIM,
		.scores = &score,
		.n_scores = 1,
		.has_label = label >= 0,
		.label = label,
	};

	row(k, x);
	if (region) {
		r.labels[0].key = "region";
		r.labels[0].value = region;
		r.n_labels = 1;
	}
	return win_add(m, &r, (int64_t)k * 1000, (int64_t)k * 1000, closed);
}

/* Scores travel with their rows into references and windows; inline labels
 * of reference rows stay with them, those of live rows become pairs of the
 * window (in "*" and in the slice); labels joined later too. */
static void test_scores_and_labels(void **state)
{
	struct win_params p = params_by_region(2, 3);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	const float late = 0.9f;

	(void)state;
	p.k = 1;
	m = model_new(&p);
	assert_int_equal(add_scored(m, 0, "eu", REC_LIVE, 1, &closed), REC_OK);
	assert_int_equal(add_scored(m, 1, "eu", REC_LIVE, -1, &closed), REC_OK);
	assert_int_equal(add_scored(m, 2, "eu", REC_LIVE, 0, &closed), REC_OK);
	assert_int_equal(add_scored(m, 3, "eu", REC_LIVE, -1, &closed), REC_OK);
	assert_int_equal(win_add_labeled(m, "region=eu", &late, 1), 0);
	assert_int_equal(win_add_labeled(m, "region=us", &late, 1), -ENOENT);
	assert_int_equal(add_scored(m, 4, "eu", REC_LIVE, -1, &closed), REC_OK);
	assert_int_equal(list_len(closed), 2);

	c = take(&closed, "region=eu", 1);
	assert_int_equal(c->k, 1);
	assert_true(c->ref->scores[0] == 0.0f && c->ref->scores[1] == 0.01f);
	assert_int_equal(c->ref->labels[0], 1);
	assert_int_equal(c->ref->labels[1], WIN_NO_LABEL);
	assert_true(c->scores[0] == 0.02f && c->scores[2] == 0.04f);
	/* Row 2's inline label and the late one. */
	assert_int_equal(c->n_labeled, 2);
	assert_int_equal(c->labels_seen, 2);
	assert_true(c->cal_scores[0] == 0.02f && c->cal_labels[0] == 0);
	assert_true(c->cal_scores[1] == 0.9f && c->cal_labels[1] == 1);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_int_equal(c->n_labeled, 2);
	win_closed_free(c);
	/* The labeled pairs went with the window. */
	assert_int_equal(win_memory(m), 2 * 2 * (ROW_BYTES + 4 + 8));
	win_model_free(m);
}

/* Labeled pairs beyond window_max are a uniform sample of those offered. */
static void test_labeled_pairs_sampled(void **state)
{
	struct win_params p = params(2, 3);
	struct win_model *m;
	struct win_closed *closed = NULL;
	const float s = 0.5f;

	(void)state;
	p.k = 1;
	m = model_new(&p);
	for (unsigned k = 0; k < 4; k++)
		add_scored(m, k, NULL, REC_LIVE, -1, &closed);
	for (int i = 0; i < 10; i++)
		assert_int_equal(win_add_labeled(m, WIN_WHOLE_MODEL, &s, i % 2), 0);
	add_scored(m, 4, NULL, REC_LIVE, -1, &closed);
	assert_non_null(closed);
	assert_int_equal(closed->n_labeled, 3);
	assert_int_equal(closed->labels_seen, 10);
	free_list(closed);
	win_model_free(m);
}

/* A reload that raises window_max lets the labeled pairs of an open
 * window fill up to the new cap (ASan sees a write past the old one). */
static void test_labeled_pairs_grow_with_reload(void **state)
{
	struct win_params p = params(2, 0);
	struct win_model *m;
	struct win_closed *closed = NULL;

	(void)state;
	p.k = 1;
	p.window_max = 4;
	m = model_new(&p);
	for (unsigned k = 0; k < 3; k++)	/* the reference, one open */
		add_scored(m, k, NULL, REC_LIVE, -1, &closed);
	for (int i = 0; i < 4; i++) {
		float s = (float)i;

		assert_int_equal(win_add_labeled(m, WIN_WHOLE_MODEL, &s, i), 0);
	}
	p.window_max = 8;
	assert_int_equal(win_model_update(m, &p), 0);
	for (int i = 4; i < 8; i++) {
		float s = (float)i;

		assert_int_equal(win_add_labeled(m, WIN_WHOLE_MODEL, &s, i), 0);
	}
	assert_int_equal(win_close_due(m, &closed), 1);
	assert_int_equal(closed->n_labeled, 8);
	for (int i = 0; i < 8; i++) {
		assert_true(closed->cal_scores[i] == (float)i);
		assert_int_equal(closed->cal_labels[i], i);
	}
	free_list(closed);
	win_model_free(m);
}

/* A slice whose own (explicit) reference is below reference_min is tested
 * against the whole-model one; with that one too small as well, the window
 * is recorded WIN_SHORT_REFERENCE. */
static void test_reference_fallback(void **state)
{
	struct win_params p = params_by_region(8, 2);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;

	(void)state;
	p.reference_min = 4;
	m = model_new(&p);
	reference(m, 100, "eu", &closed);
	reference(m, 101, "eu", &closed);
	reference(m, 102, "eu", &closed);
	reference(m, 103, "us", &closed);
	reference(m, 104, "us", &closed);
	/* "*" holds 5 >= 4, eu 3, us 2. */
	live(m, 0, "eu", &closed);
	live(m, 1, "eu", &closed);
	c = take(&closed, "region=eu", 1);
	assert_int_equal(c->status, WIN_TESTED);
	assert_true(c->ref_fallback);
	assert_string_equal(c->ref->slice, WIN_WHOLE_MODEL);
	assert_int_equal(c->ref->n, 5);
	/* The slice stores a record before "*" does, so its window closed
	 * first and froze "*"'s reference, which "*"'s own window of the
	 * same records then shares. */
	assert_true(c->ref_new);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_int_equal(c->status, WIN_TESTED);
	assert_false(c->ref_fallback);
	assert_false(c->ref_new);
	win_closed_free(c);
	assert_null(closed);
	win_model_free(m);

	/* No slice has enough. */
	m = model_new(&p);
	reference(m, 100, "eu", &closed);
	reference(m, 101, "eu", &closed);
	live(m, 0, "eu", &closed);
	live(m, 1, "eu", &closed);
	c = take(&closed, "region=eu", 1);
	assert_int_equal(c->status, WIN_SHORT_REFERENCE);
	assert_int_equal(c->short_of, 2);
	assert_null(c->ref);
	win_closed_free(c);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_int_equal(c->status, WIN_SHORT_REFERENCE);
	win_closed_free(c);
	win_model_free(m);
}

struct expired {
	char keys[4][32];
	bool had_ref[4];
	int n;
};

static void on_expired(void *arg, const char *slice, const struct win_ref *ref)
{
	struct expired *x = arg;

	snprintf(x->keys[x->n], sizeof(x->keys[0]), "%s", slice);
	x->had_ref[x->n++] = ref != NULL;
}

/* Idle slices go (never "*"), their open window closes first; the table
 * still finds the others; a returning slice starts over above every id. */
static void test_expire(void **state)
{
	struct win_params p = params_by_region(2, 3);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;
	struct expired x = { 0 };

	(void)state;
	for (unsigned k = 0; k < 5; k++)	/* eu: ref 0,1; window 2,3,4 */
		live(m, k, "eu", &closed);
	live(m, 5, "eu", &closed);		/* open window: 5 */
	live(m, 6, "us", &closed);		/* us: warming up */
	live(m, 20, "ap", &closed);		/* ap: recent */
	free_list(closed);
	closed = NULL;
	assert_int_equal(win_slice_count(m), 4);
	/* At 16 ms with 10 ms idle: eu (5 ms) and us (6 ms) go, ap stays. */
	assert_int_equal(win_expire(m, 16000, 10000, &closed, on_expired, &x), 2);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.keys[0], "region=eu");
	assert_true(x.had_ref[0]);
	assert_string_equal(x.keys[1], "region=us");
	assert_false(x.had_ref[1]);
	c = take(&closed, "region=eu", 2);
	assert_int_equal(c->status, WIN_SHORT_WINDOW);
	assert_int_equal(c->n, 1);
	win_closed_free(c);
	assert_null(closed);
	assert_int_equal(win_slice_count(m), 2);
	assert_null(win_state(m, "region=eu"));
	assert_non_null(win_state(m, "region=ap"));
	assert_non_null(win_state(m, WIN_WHOLE_MODEL));

	/* eu returns: a warm-up again, ids above the model's highest. */
	for (unsigned k = 30; k < 35; k++)
		live(m, k, "eu", &closed);
	c = take(&closed, "region=eu", win_max_window_id(m));
	assert_true(c->window_id > 2);
	assert_true(c->ref_new);
	win_closed_free(c);
	free_list(closed);
	win_model_free(m);
}

/* A reset forgets references, open windows, pairs and decision state:
 * references warm up again and take explicit records again. */
static void test_reset(void **state)
{
	static const unsigned ref2[] = { 10, 11 }, w2[] = { 12, 13 };
	struct win_params p = params(2, 2);
	struct win_model *m = model_new(&p);
	struct win_closed *closed = NULL, *c;
	struct win_ref *old;
	size_t dropped;

	(void)state;
	for (unsigned k = 0; k < 5; k++)
		live(m, k, NULL, &closed);
	old = win_ref_get(closed->ref);
	free_list(closed);
	closed = NULL;
	win_state(m, WIN_WHOLE_MODEL)->recent = 5;
	assert_int_equal(win_reset(m, &dropped), 0);
	assert_int_equal(dropped, 1);
	assert_true(win_state(m, WIN_WHOLE_MODEL)->recent == 0);
	assert_int_equal(win_memory(m), 0);
	/* The old reference is still whole for a job holding it. */
	assert_int_equal(old->n, 2);
	win_ref_put(old);
	for (unsigned k = 10; k < 14; k++)
		live(m, k, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 2);
	check_window(c, w2, 2, ref2, 2, true);
	win_closed_free(c);
	win_model_free(m);
}

/* A restored reference takes a slice's place before it froze (its warm-up
 * rows go), not after; it creates the slice if needed, within max_slices. */
static void test_install_reference(void **state)
{
	struct win_params p = params_by_region(4, 2);
	struct win_model *m;
	struct win_closed *closed = NULL, *c;
	struct win_ref *r;

	(void)state;
	/* "*", "region=" (rows without the label) and one more. */
	p.max_slices = 3;
	m = model_new(&p);
	live(m, 0, NULL, &closed);	/* "*" warming up with one row */
	r = win_ref_new(WIN_WHOLE_MODEL, 3, DIM, 0, SMP_FLOAT32);
	assert_non_null(r);
	r->n = 3;
	for (unsigned k = 0; k < 3; k++)
		row(100 + k, r->data + k * DIM);
	r->id = 77;
	r->persisted = true;
	assert_int_equal(win_install_reference(m, r), 0);
	/* No warm-up now: two rows make a window against the restored set. */
	live(m, 1, NULL, &closed);
	live(m, 2, NULL, &closed);
	c = take(&closed, WIN_WHOLE_MODEL, 1);
	assert_true(c->ref->id == 77);
	assert_false(c->ref_new);
	win_closed_free(c);
	free_list(closed);
	closed = NULL;
	/* In use now: a second one is refused. */
	r = win_ref_new(WIN_WHOLE_MODEL, 2, DIM, 0, SMP_FLOAT32);
	r->n = 2;
	assert_int_equal(win_install_reference(m, r), -EBUSY);
	r = win_ref_new("region=eu", 2, DIM, 0, SMP_FLOAT32);
	r->n = 2;
	assert_int_equal(win_install_reference(m, r), 0);
	assert_int_equal(win_slice_count(m), 3);
	r = win_ref_new("region=us", 2, DIM, 0, SMP_FLOAT32);
	r->n = 2;
	assert_int_equal(win_install_reference(m, r), -ENOSPC);
	win_model_free(m);
}

/* The K-of-M memory keeps the newest alarm_m decisions; after alarm.m
 * changes, the newest min(old, new) of the earlier ones still count. */
static void test_decisions_keep_newest_m(void **state)
{
	struct win_slice_state ss = { 0 };

	(void)state;
	assert_int_equal(win_push_decision(&ss, true, 3), 1);
	assert_int_equal(win_push_decision(&ss, false, 3), 1);
	assert_int_equal(win_push_decision(&ss, true, 3), 2);
	assert_int_equal(win_push_decision(&ss, false, 3), 1);	/* t f t f */
	assert_true(ss.recent == 2);	/* newest first: f t f */
	/* m 3 -> 2: the oldest of the three goes for good... */
	assert_int_equal(win_push_decision(&ss, false, 2), 0);
	/* ...so m 2 -> 4 starts with the two kept, not with four. */
	assert_int_equal(win_push_decision(&ss, true, 4), 1);
	assert_int_equal(win_push_decision(&ss, true, 4), 2);
	assert_int_equal(win_push_decision(&ss, true, 4), 3);
	assert_int_equal(win_push_decision(&ss, true, 4), 4);
	assert_int_equal(win_push_decision(&ss, true, 4), 4);
	/* 64 at most; 1 is the window alone. */
	for (unsigned i = 0; i < 70; i++)
		win_push_decision(&ss, true, 64);
	assert_true(ss.recent == UINT64_MAX);
	assert_int_equal(win_push_decision(&ss, false, 64), 63);
	assert_int_equal(win_push_decision(&ss, true, 1), 1);
	assert_int_equal(win_push_decision(&ss, false, 1), 0);
}

static const char *const by_two[] = { "region", "dev=ice" };

/* Restored decisions go to their slice, which is created when needed,
 * within max_slices and only for keys of this slice_by; a restored slice
 * is idle from the first sweep on, not since 1970. */
static void test_restore_decisions(void **state)
{
	static const char *const fits[] = {
		"*", "region=eu,dev\\=ice=ios", "region=e\\,u,dev\\=ice=",
		"region=,dev\\=ice=a\\\\b",
	};
	static const char *const foreign[] = {
		"region=eu", "dev\\=ice=ios,region=eu", "region=eu,dev=ice=ios",
		"region=eu,dev\\=ice=ios,x=1", "region=eu,dev\\=ice=ios\\",
		"regional=eu,dev\\=ice=ios", "",
	};
	struct win_params p = params(2, 2);
	struct win_model *m = model_new(&p), *plain = m;
	struct win_closed *closed = NULL;
	struct win_ref *r;

	(void)state;
	assert_int_equal(win_restore_decisions(plain, WIN_WHOLE_MODEL, 5), 0);
	assert_true(win_state(plain, WIN_WHOLE_MODEL)->recent == 5);
	assert_int_equal(win_restore_decisions(plain, "region=eu", 1), -EINVAL);
	win_model_free(plain);

	p.slice_by = by_two;
	p.n_slice_by = 2;
	p.max_slices = 4;
	m = model_new(&p);
	for (size_t i = 0; i < sizeof(fits) / sizeof(*fits); i++) {
		assert_int_equal(win_restore_decisions(m, fits[i], i + 1), 0);
		assert_true(win_state(m, fits[i])->recent == i + 1);
	}
	for (size_t i = 0; i < sizeof(foreign) / sizeof(*foreign); i++)
		assert_int_equal(win_restore_decisions(m, foreign[i], 1), -EINVAL);
	r = win_ref_new("region=eu", 2, DIM, 0, SMP_FLOAT32);
	assert_non_null(r);
	r->n = 2;
	assert_int_equal(win_install_reference(m, r), -EINVAL);
	/* Full: an existing slice still takes its decisions. */
	assert_int_equal(win_slice_count(m), 4);
	assert_int_equal(win_restore_decisions(m, "region=us,dev\\=ice=x", 1),
			 -ENOSPC);
	assert_int_equal(win_restore_decisions(m, fits[1], 9), 0);
	assert_true(win_state(m, fits[1])->recent == 9);
	/* The first sweep starts the idle clock of slices without records. */
	assert_int_equal(win_expire(m, 50000000, 10000, &closed, NULL, NULL), 0);
	assert_int_equal(win_expire(m, 50009999, 10000, &closed, NULL, NULL), 0);
	assert_int_equal(win_expire(m, 50010000, 10000, &closed, NULL, NULL), 3);
	assert_null(closed);
	win_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slice_key_order),
		cmocka_unit_test(test_slice_key_missing_label),
		cmocka_unit_test(test_slice_key_escaping),
		cmocka_unit_test(test_slice_key_escaping_separates_slices),
		cmocka_unit_test(test_slice_key_overflow),
		cmocka_unit_test(test_long_slice_value_refused),
		cmocka_unit_test(test_bootstrap_then_windows),
		cmocka_unit_test(test_every_record_in_whole_and_own_slice),
		cmocka_unit_test(test_window_ids_resume),
		cmocka_unit_test(test_explicit_reference_replaces_bootstrap),
		cmocka_unit_test(test_explicit_reference_replaces_full_bootstrap),
		cmocka_unit_test(test_reservoir_keeps_subset),
		cmocka_unit_test(test_reservoir_uniform),
		cmocka_unit_test(test_reference_freezes),
		cmocka_unit_test(test_reference_freezes_on_time_close),
		cmocka_unit_test(test_reference_to_open_slice_after_whole_froze),
		cmocka_unit_test(test_reference_to_new_slice_after_whole_froze),
		cmocka_unit_test(test_close_due_short_windows),
		cmocka_unit_test(test_window_max_caps_time_window),
		cmocka_unit_test(test_max_slices),
		cmocka_unit_test(test_window_data_exact_and_bounds),
		cmocka_unit_test(test_memory_accounting),
		cmocka_unit_test(test_closed_outlives_model),
		cmocka_unit_test(test_scores_and_labels),
		cmocka_unit_test(test_labeled_pairs_sampled),
		cmocka_unit_test(test_reference_fallback),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_install_reference),
		cmocka_unit_test(test_decisions_keep_newest_m),
		cmocka_unit_test(test_restore_decisions),
		cmocka_unit_test(test_float16_storage),
		cmocka_unit_test(test_column_sums),
		cmocka_unit_test(test_spares_survive_a_pause),
		cmocka_unit_test(test_whole_rows_stay_put),
		cmocka_unit_test(test_whole_own_rows),
		cmocka_unit_test(test_shared_rows_random),
		cmocka_unit_test(test_whole_sums_when_its_reference_freezes),
		cmocka_unit_test(test_memory_of_rows_only_whole_holds),
		cmocka_unit_test(test_labeled_pairs_grow_with_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
