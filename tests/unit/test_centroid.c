/* Unit tests for detectors/centroid against scipy's cosine/euclidean. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "centroid.h"

struct vectors {
	size_t n, m, d;
	double cosine, euclidean;
	float *x, *y;
};

static void read_rows(FILE *f, const char *label, float *rows, size_t count)
{
	char word[8];

	assert_int_equal(fscanf(f, " %7s", word), 1);
	assert_string_equal(word, label);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(fscanf(f, "%f", &rows[i]), 1);
}

/* Reads tests/data/centroid_NAME.txt (format: see gen_mmd_vectors.py). */
static void load_vectors(const char *name, struct vectors *v)
{
	char path[512], key1[32], key2[32];
	FILE *f;

	snprintf(path, sizeof path, "%s/centroid_%s.txt", DETECTORS_TEST_DATA,
		 name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%*[^\n] n %zu m %zu d %zu %31s %lf %31s %lf",
				&v->n, &v->m, &v->d, key1, &v->cosine, key2,
				&v->euclidean), 7);
	assert_string_equal(key1, "cosine");
	assert_string_equal(key2, "euclidean");
	v->x = malloc(v->n * v->d * sizeof *v->x);
	v->y = malloc(v->m * v->d * sizeof *v->y);
	assert_non_null(v->x);
	assert_non_null(v->y);
	read_rows(f, "x", v->x, v->n * v->d);
	read_rows(f, "y", v->y, v->m * v->d);
	fclose(f);
}

static void assert_close(double got, double want, double rel)
{
	if (!(fabs(got - want) <= rel * fabs(want)))
		fail_msg("got %.15g, want %.15g", got, want);
}

/* The window given as column sums kept row by row (as the daemon keeps
 * them while records arrive) gives cen_shift's result bit for bit. */
static void check_sums_agree(const struct vectors *v,
			     const struct cen_result *want)
{
	double *sums = calloc(v->d, sizeof(double));
	struct cen_result got;

	assert_non_null(sums);
	for (size_t i = 0; i < v->m; i++)
		for (size_t j = 0; j < v->d; j++)
			sums[j] += (double)v->y[i * v->d + j];
	assert_int_equal(cen_shift_sums(v->x, v->n, sums, v->m, v->d, &got),
			 0);
	assert_memory_equal(&got.cosine, &want->cosine, sizeof(double));
	assert_memory_equal(&got.euclidean, &want->euclidean, sizeof(double));
	assert_int_equal(cen_shift_sums(v->x, v->n, NULL, v->m, v->d, &got),
			 -EINVAL);
	free(sums);
}

/* Means are exact enough in double that only scipy's own 1 - cos rounding
 * (~1e-16 absolute) limits the agreement for tiny angles. */
static void check_vectors(const char *name)
{
	struct cen_result res;
	struct vectors v;

	load_vectors(name, &v);
	assert_int_equal(cen_shift(v.x, v.n, v.y, v.m, v.d, &res), 0);
	assert_close(res.cosine, v.cosine, 1e-8);
	assert_close(res.euclidean, v.euclidean, 1e-10);
	check_sums_agree(&v, &res);
	free(v.x);
	free(v.y);
}

static void test_near_origin(void **state)
{
	check_vectors("near_origin");
}

static void test_far_from_origin(void **state)
{
	check_vectors("far_from_origin");
}

static void test_opposite(void **state)
{
	check_vectors("opposite");
}

static void test_precomputed_means(void **state)
{
	const float a[2 * 2] = { 1, 0, 3, 0 }, b[1 * 2] = { 0, 5 };
	double ma[2], mb[2];
	struct cen_result res;

	assert_int_equal(cen_mean(a, 2, 2, ma), 0);
	assert_int_equal(cen_mean(b, 1, 2, mb), 0);
	assert_true(ma[0] == 2.0 && ma[1] == 0.0);
	assert_int_equal(cen_distance(ma, mb, 2, &res), 0);
	assert_close(res.cosine, 1.0, 1e-15);
	assert_close(res.euclidean, sqrt(29.0), 1e-15);
	assert_int_equal(cen_distance(ma, ma, 2, &res), 0);
	assert_true(res.cosine == 0.0 && res.euclidean == 0.0);
}

/* A zero mean has no direction: 0 against another zero mean, else 1. */
static void test_zero_mean(void **state)
{
	const float sym[2 * 3] = { 1, -2, 3, -1, 2, -3 };
	const float zero[1 * 3] = { 0, 0, 0 }, other[1 * 3] = { 0, 4, 0 };
	struct cen_result res;

	assert_int_equal(cen_shift(sym, 2, zero, 1, 3, &res), 0);
	assert_true(res.cosine == 0.0 && res.euclidean == 0.0);
	assert_int_equal(cen_shift(sym, 2, other, 1, 3, &res), 0);
	assert_true(res.cosine == 1.0);
	assert_close(res.euclidean, 4.0, 1e-15);
	assert_int_equal(cen_shift(other, 1, sym, 2, 3, &res), 0);
	assert_true(res.cosine == 1.0);
}

static void test_invalid_arguments(void **state)
{
	const float a[2] = { 1, 2 };
	double mean[2];
	struct cen_result res;

	assert_int_equal(cen_shift(a, 0, a, 1, 2, &res), -EINVAL);
	assert_int_equal(cen_shift(a, 1, a, 0, 2, &res), -EINVAL);
	assert_int_equal(cen_shift(a, 1, a, 1, 0, &res), -EINVAL);
	assert_int_equal(cen_shift(NULL, 1, a, 1, 2, &res), -EINVAL);
	assert_int_equal(cen_shift(a, 1, a, 1, 2, NULL), -EINVAL);
	assert_int_equal(cen_mean(a, 0, 2, mean), -EINVAL);
	assert_int_equal(cen_mean(a, 1, 2, NULL), -EINVAL);
	assert_int_equal(cen_distance(mean, NULL, 2, &res), -EINVAL);
	assert_int_equal(cen_distance(mean, mean, 0, &res), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_near_origin),
		cmocka_unit_test(test_far_from_origin),
		cmocka_unit_test(test_opposite),
		cmocka_unit_test(test_precomputed_means),
		cmocka_unit_test(test_zero_mean),
		cmocka_unit_test(test_invalid_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
