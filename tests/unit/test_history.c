/* Unit tests for store/history: K-of-M decisions gathered per slice from
 * the database and the journal, in order, without the journal's duplicate
 * head, cut by retirements, at most STORE_HISTORY_MAX per slice; many
 * slices checked against a plain model of the same rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"

static const struct store_history *find(const struct store_history *l,
					size_t n, const char *model,
					const char *slice)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].model, model) && !strcmp(l[i].slice, slice))
			return &l[i];
	return NULL;
}

/* find(), failing the test when the slice is not listed. */
static const struct store_history *listed(const struct store_history *l,
					  size_t n, const char *model,
					  const char *slice)
{
	const struct store_history *e = find(l, n, model, slice);

	if (e)
		return e;
	fail_msg("%s/%s not listed", model, slice);
	/* Not reached (fail_msg jumps out); tells the null-dereference
	 * analysis that callers never get NULL. */
	abort();
}

static void test_order_duplicates_and_retirements(void **state)
{
	struct hist *h = hist_new();
	const struct store_history *l, *e;
	size_t n;

	(void)state;
	assert_non_null(h);
	assert_int_equal(hist_list(h, &l, &n), 0);
	assert_int_equal(n, 0);
	/* The database: oldest first. */
	assert_int_equal(hist_add(h, "m", "*", 3, true, 3), 0);
	assert_int_equal(hist_add(h, "m", "*", 5, false, 3), 0);
	assert_int_equal(hist_add(h, "m", "s=a", 5, true, 2), 0);
	assert_int_equal(hist_add(h, "n", "*", 1, true, 4), 0);
	/* The journal: its head was written already, then one more. */
	assert_int_equal(hist_add(h, "m", "*", 5, true, 3), 0);
	assert_int_equal(hist_add(h, "m", "*", 9, true, 5), 0);
	/* "m\0*" and "m*\0" are different keys. */
	assert_int_equal(hist_add(h, "m*", "", 1, true, 1), 0);
	assert_int_equal(hist_list(h, &l, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(l[0].model, "m");	/* order of appearance */
	assert_string_equal(l[0].slice, "*");
	assert_int_equal(l[0].n, 3);
	assert_true(l[0].drifted[0] && !l[0].drifted[1] && l[0].drifted[2]);
	assert_int_equal(l[0].alarm_m[1], 3);
	assert_int_equal(l[0].alarm_m[2], 5);
	e = listed(l, n, "m*", "");
	assert_int_equal(e->n, 1);

	/* An expiry of s=a, then a reset of m: only later windows count. */
	hist_forget(h, "m", "s=a");
	hist_forget(h, "m", "s=gone");
	assert_int_equal(hist_list(h, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_null(find(l, n, "m", "s=a"));
	hist_forget(h, "m", NULL);
	assert_int_equal(hist_add(h, "m", "s=a", 6, false, 2), 0);
	assert_int_equal(hist_add(h, "m", "*", 9, true, 5), 0);	/* again */
	assert_int_equal(hist_list(h, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_null(find(l, n, "m", "*"));
	e = listed(l, n, "m", "s=a");
	assert_int_equal(e->n, 1);
	assert_false(e->drifted[0]);
	e = listed(l, n, "n", "*");
	assert_int_equal(e->n, 1);
	hist_free(h);
}

/* 100 slices of 3 models, 20000 decisions in random order of slices (each
 * slice's own in increasing ids, some repeated), random retirements: the
 * list equals a plain model of the rules, the newest 64 per slice. */
#define SLICES 100
#define KEEP STORE_HISTORY_MAX

struct plain {
	char model[8], slice[16];
	int64_t newest;
	size_t n;
	bool drifted[20000];
	unsigned alarm_m[20000];
};

static void test_against_a_plain_model(void **state)
{
	static struct plain p[SLICES];
	struct hist *h = hist_new();
	const struct store_history *l, *e;
	size_t n, seen = 0, full = 0;
	unsigned seed = 7;

	(void)state;
	assert_non_null(h);
	for (size_t i = 0; i < SLICES; i++) {
		snprintf(p[i].model, sizeof(p[i].model), "m%zu", i % 3);
		snprintf(p[i].slice, sizeof(p[i].slice), "s=%zu", i);
		p[i].newest = 0;
	}
	for (int k = 0; k < 20000; k++) {
		struct plain *s = &p[rand_r(&seed) % SLICES];
		int64_t id = s->newest + rand_r(&seed) % 3;	/* +0: a repeat */
		bool drifted = rand_r(&seed) % 2;
		unsigned m = 1 + rand_r(&seed) % 64;

		if (rand_r(&seed) % 5000 == 0) {
			bool all = rand_r(&seed) % 2;

			hist_forget(h, s->model, all ? NULL : s->slice);
			for (size_t i = 0; i < SLICES; i++)
				if (&p[i] == s || (all && !strcmp(p[i].model, s->model)))
					p[i].n = 0;
			continue;
		}
		id = id ? id : 1;
		assert_int_equal(hist_add(h, s->model, s->slice, id, drifted, m), 0);
		if (id <= s->newest)
			continue;
		s->newest = id;
		s->drifted[s->n] = drifted;
		s->alarm_m[s->n++] = m;
	}
	assert_int_equal(hist_list(h, &l, &n), 0);
	for (size_t i = 0; i < SLICES; i++) {
		size_t want = p[i].n < KEEP ? p[i].n : KEEP, from = p[i].n - want;

		if (!want) {
			assert_null(find(l, n, p[i].model, p[i].slice));
			continue;
		}
		e = listed(l, n, p[i].model, p[i].slice);
		seen++;
		full += want == KEEP;
		assert_int_equal(e->n, want);
		for (size_t k = 0; k < want; k++) {
			assert_int_equal(e->drifted[k], p[i].drifted[from + k]);
			assert_int_equal(e->alarm_m[k], p[i].alarm_m[from + k]);
		}
	}
	assert_int_equal(seen, n);
	assert_true(full > SLICES / 2);	/* the bound was reached */
	hist_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_duplicates_and_retirements),
		cmocka_unit_test(test_against_a_plain_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
