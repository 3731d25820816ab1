/* win_add when memory runs out: a record refused for lack of memory
 * changes nothing that shows, whichever allocation fails.  Linked with
 * the allocators wrapped (-Wl,--wrap=...), so that the Nth allocation
 * the window module makes after fail_in is set can be made to fail; the
 * C library's own allocations (strdup) are not wrapped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

#define DIM 3
#define REF 2
#define WIN 3
#define N_RECORDS 40

/* Allocations left before one fails; negative: none fails. */
static long fail_in = -1;

static bool fail_now(void)
{
	if (fail_in < 0)
		return false;
	return fail_in-- == 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
	return fail_now() ? ENOMEM : __real_posix_memalign(p, align, n);
}

static const char *const by_region[] = { "region" };

/* Record K: its slice ("b" appears at record 10 and warms up, "c" at 20),
 * and a label on every third. */
static const char *region_of(unsigned k)
{
	if (k >= 20 && k % 4 == 3)
		return "c";
	return k >= 10 && k % 3 == 1 ? "b" : "a";
}

static enum rec_err add(struct win_model *m, unsigned k,
			struct win_closed **closed)
{
	float x[DIM] = { (float)k, (float)k + 0.25f, -(float)k * 1e-3f };
	float score = (float)k / 100;
	struct record r = {
		.model = "m",
		.role = k < 100 ? REC_LIVE : REC_REFERENCE,
		.embedding = x,
		.dim = DIM,
		.scores = &score,
		.n_scores = 1,
		.has_label = k % 3 == 0,
		.label = 1,
	};

	r.labels[0].key = "region";
	r.labels[0].value = k < 100 ? region_of(k) : "a";
	r.n_labels = 1;
	return win_add(m, &r, (int64_t)k * 1000, (int64_t)k * 1000, closed);
}

/* The rows of every closed window of SLICE, in window order, as record
 * numbers; checks each window's sums against its rows. */
static size_t rows_of(struct win_closed *list, const char *slice,
		      unsigned *out)
{
	size_t n = 0;

	/* a slice numbers its windows from the model's highest id when it
	 * appears: take them by increasing id */
	for (int64_t last = 0;; ) {
		struct win_closed *c = NULL;
		float *copy;
		const float *rows;
		double sums[DIM] = { 0 };

		for (struct win_closed *x = list; x; x = x->next)
			if (!strcmp(x->slice, slice) && x->window_id > last &&
			    (!c || x->window_id < c->window_id))
				c = x;
		if (!c)
			return n;
		last = c->window_id;
		rows = win_closed_rows(c, &copy);
		assert_non_null(rows);
		for (unsigned i = 0; i < c->n; i++) {
			out[n++] = (unsigned)rows[i * DIM];
			for (unsigned j = 0; j < DIM; j++)
				sums[j] += (double)rows[i * DIM + j];
		}
		assert_non_null(c->sums);
		assert_memory_equal(c->sums, sums, sizeof(sums));
		free(copy);
	}
}

/* Runs every record, with the FAIL-th allocation of record AT failing;
 * then checks that the windows hold exactly the records accepted, each
 * slice's after its warm-up.  Returns whether the failure was reached. */
static bool run(unsigned at, long fail)
{
	struct win_params p = {
		.dim = DIM, .k = 1, .reference_size = REF,
		.window_size = WIN, .window_max = WIN, .window_min = 2,
		.max_slices = 8, .seed = 1, .slice_by = by_region,
		.n_slice_by = 1, .col_sums = true,
	};
	struct win_model *m = win_model_new(&p);
	struct win_closed *closed = NULL;
	unsigned got[N_RECORDS], want[N_RECORDS], seen[3] = { 0 };
	bool accepted[N_RECORDS], reached = false;
	size_t n, w;

	assert_non_null(m);
	for (unsigned k = 100; k < 100 + REF; k++)	/* a's reference */
		assert_int_equal(add(m, k, &closed), REC_OK);
	for (unsigned k = 0; k < N_RECORDS; k++) {
		enum rec_err e;

		fail_in = k == at ? fail : -1;
		e = add(m, k, &closed);
		accepted[k] = e == REC_OK;
		if (k == at)
			reached = fail_in < 0;
		if (k != at || !reached)	/* no allocation failed */
			assert_int_equal(e, REC_OK);
		else	/* refused, or in with its window left open */
			assert_true(e == REC_OK || e == REC_ERR_OVERSIZE);
	}
	fail_in = -1;
	win_close_due(m, &closed);
	/* "*": every record accepted, in order */
	n = rows_of(closed, WIN_WHOLE_MODEL, got);
	for (unsigned k = w = 0; k < N_RECORDS; k++)
		if (accepted[k])
			want[w++] = k;
	assert_int_equal(n, w);
	assert_memory_equal(got, want, n * sizeof(got[0]));
	/* each slice: its records accepted, but b's and c's first REF,
	 * which were their references */
	for (unsigned s = 0; s < 3; s++) {
		char key[16];

		snprintf(key, sizeof(key), "region=%c", 'a' + s);
		n = rows_of(closed, key, got);
		for (unsigned k = w = 0; k < N_RECORDS; k++)
			if (accepted[k] && region_of(k)[0] == 'a' + (int)s &&
			    (s == 0 || ++seen[s] > REF))
				want[w++] = k;
		if (n != w || memcmp(got, want, n * sizeof(got[0])))
			fail_msg("%s: %zu rows, want %zu (allocation %ld of "
				 "record %u failed)", key, n, w, fail, at);
	}
	while (closed) {
		struct win_closed *next = closed->next;

		win_recycle(m, closed);
		closed = next;
	}
	win_model_free(m);
	return reached;
}

static void test_refused_record_changes_nothing(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (unsigned at = 0; at < N_RECORDS; at++)
		for (long fail = 0; run(at, fail); fail++)
			failures++;
	/* the records that open windows and slices allocate */
	assert_true(failures >= N_RECORDS / 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_record_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
