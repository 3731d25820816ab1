/* Unit tests for daemon/labels: join by id, replacement, expiry in order,
 * the bound (oldest give way), and many entries through table growth. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "labels.h"

static void put(struct lbl *l, const char *id, const char *slice, float s0,
		int64_t expires, size_t max, size_t want_evicted)
{
	float s[2] = { s0, 1 - s0 };
	size_t evicted = 99;

	assert_int_equal(lbl_put(l, id, slice, s, expires, max, &evicted), 0);
	assert_int_equal(evicted, want_evicted);
}

static void take(struct lbl *l, const char *id, const char *slice, float s0)
{
	float s[2];
	char key[64];

	assert_int_equal(lbl_take(l, id, s, key, sizeof(key)), 0);
	assert_string_equal(key, slice);
	assert_true(s[0] == s0 && s[1] == 1 - s0);
}

static void test_join_and_replace(void **state)
{
	struct lbl *l = lbl_new(2);
	float s[2];
	char key[8];

	(void)state;
	put(l, "a", "region=eu", 0.25f, 100, 10, 0);
	put(l, "b", "*", 0.5f, 100, 10, 0);
	/* A second record with id a replaces the first. */
	put(l, "a", "region=us", 0.75f, 200, 10, 0);
	assert_int_equal(lbl_count(l), 2);
	take(l, "a", "region=us", 0.75f);
	assert_int_equal(lbl_take(l, "a", s, key, sizeof(key)), -ENOENT);
	/* A slice key longer than the buffer is cut, not overrun. */
	put(l, "c", "region=antarctica", 0.5f, 100, 10, 0);
	assert_int_equal(lbl_take(l, "c", s, key, sizeof(key)), 0);
	assert_string_equal(key, "region=");
	take(l, "b", "*", 0.5f);
	assert_int_equal(lbl_count(l), 0);
	lbl_free(l);
}

static void test_expiry_in_order(void **state)
{
	struct lbl *l = lbl_new(2);
	float s[2];
	char key[8];

	(void)state;
	put(l, "1", "*", 0.1f, 10, 10, 0);
	put(l, "2", "*", 0.2f, 20, 10, 0);
	put(l, "3", "*", 0.3f, 30, 10, 0);
	assert_int_equal(lbl_expire(l, 9), 0);
	assert_int_equal(lbl_expire(l, 20), 2);
	assert_int_equal(lbl_take(l, "2", s, key, sizeof(key)), -ENOENT);
	take(l, "3", "*", 0.3f);
	assert_int_equal(lbl_expire(l, 1000), 0);
	lbl_free(l);
}

static void test_bound_evicts_oldest(void **state)
{
	struct lbl *l = lbl_new(2);
	float s[2];
	char key[8];

	(void)state;
	put(l, "1", "*", 0.1f, 10, 2, 0);
	put(l, "2", "*", 0.2f, 10, 2, 0);
	put(l, "3", "*", 0.3f, 10, 2, 1);
	assert_int_equal(lbl_count(l), 2);
	assert_int_equal(lbl_take(l, "1", s, key, sizeof(key)), -ENOENT);
	/* A smaller bound after a reload: several go at once. */
	put(l, "4", "*", 0.4f, 10, 1, 2);
	take(l, "4", "*", 0.4f);
	/* max 0: nothing is kept. */
	put(l, "5", "*", 0.5f, 10, 0, 0);
	assert_int_equal(lbl_count(l), 0);
	lbl_free(l);
}

static void test_many(void **state)
{
	struct lbl *l = lbl_new(2);
	char id[16];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		put(l, id, "*", (float)i / 5000, i, 100000, 0);
	}
	assert_int_equal(lbl_count(l), 5000);
	for (int i = 4999; i >= 0; i -= 2) {
		snprintf(id, sizeof(id), "r%d", i);
		take(l, id, "*", (float)i / 5000);
	}
	/* The even ids 0, 2, ..., 1000 expire at or before 1000. */
	assert_int_equal(lbl_expire(l, 1000), 501);
	assert_int_equal(lbl_count(l), 1999);
	lbl_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_join_and_replace),
		cmocka_unit_test(test_expiry_in_order),
		cmocka_unit_test(test_bound_evicts_oldest),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
