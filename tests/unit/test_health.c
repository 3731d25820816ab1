/* Unit tests for detectors/health: numpy/scipy vectors for effective
 * rank, uniformity, mean norm and near-duplicates; comparisons against a
 * reference (size matching, collapse, duplicates). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "testutil.h"

static void check(const char *name)
{
	char file[64], key[32];
	size_t n, d;
	double cos_min, want[4];
	const char *keys[] = { "effective_rank", "uniformity", "mean_norm",
			       "duplicate_share" };
	struct hl_stats st;
	FILE *f;

	snprintf(file, sizeof file, "health_%s.txt", name);
	f = open_data(file);
	assert_int_equal(fscanf(f, "%zu %zu %lf", &n, &d, &cos_min), 3);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(fscanf(f, " %31s %lf", key, &want[i]), 2);
		assert_string_equal(key, keys[i]);
	}
	float *x = malloc(n * d * sizeof *x);

	assert_non_null(x);
	read_floats(f, x, n * d);
	fclose(f);
	assert_int_equal(hl_stats(x, n, d, cos_min, &st), 0);
	print_message("%s: rank %.6g uniformity %.6g norm %.6g dup %.4g\n",
		      name, st.effective_rank, st.uniformity, st.mean_norm,
		      st.duplicate_share);
	assert_int_equal(st.n, n);
	assert_close(st.effective_rank, want[0], 1e-6, 1e-9);
	/* cosines come from a float32 product */
	assert_close(st.uniformity, want[1], 0.0, 2e-6);
	assert_close(st.mean_norm, want[2], 1e-9, 0.0);
	assert_close(st.duplicate_share, want[3], 0.0, 1e-15);
	free(x);
}

static void test_vectors(void **state)
{
	check("gauss");
	check("low_rank");
	check("duplicates");
	check("wide");
	check("collapsed");
}

static void test_errors(void **state)
{
	float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct hl_params p = { .dup_cosine = 1.5 };
	struct hl_result res;
	struct hl_stats st;
	double rank;

	assert_int_equal(hl_stats(x, 1, 4, 0.9, &st), -EINVAL);
	assert_int_equal(hl_stats(x, 2, 0, 0.9, &st), -EINVAL);
	assert_int_equal(hl_stats(x, 2, 4, 0.0, &st), -EINVAL);
	assert_int_equal(hl_stats(NULL, 2, 4, 0.9, &st), -EINVAL);
	assert_int_equal(hl_effective_rank(x, 0, 4, &rank), -EINVAL);
	assert_int_equal(hl_compare(x, 2, x, 2, 4, &p, &res), -EINVAL);
	assert_int_equal(hl_compare(x, 1, x, 2, 4, NULL, &res), -EINVAL);
	/* a single row has rank 0: nothing varies */
	assert_int_equal(hl_effective_rank(x, 1, 8, &rank), 0);
	assert_true(rank == 0.0);
	/* all-zero sample: defined values, no NaN */
	float z[12] = { 0 };

	assert_int_equal(hl_stats(z, 3, 4, 0.9, &st), 0);
	assert_true(st.effective_rank == 0.0 && st.uniformity == 0.0 &&
		    st.mean_norm == 0.0 && st.duplicate_share == 1.0);
	assert_int_equal(hl_compare(z, 3, z, 3, 4, NULL, &res), 0);
	assert_true(res.rank_drop == 0.0 && res.norm_change == 0.0 &&
		    res.uniformity_rise == 0.0 && res.duplicate_rise == 0.0);
}

static float *gauss_rows(struct rng *r, size_t n, size_t d)
{
	float *x = malloc(n * d * sizeof *x);

	assert_non_null(x);
	fill_gauss(r, x, n * d, 0.0, 1.0);
	return x;
}

/* Same distribution, very different sizes: size matching keeps the
 * effective rank comparable (without it a 100-row window would look
 * collapsed next to a 2000-row reference at d = 64). */
static void test_size_matching(void **state)
{
	struct rng r;
	struct hl_params p = { .seed = 3 };
	struct hl_result res, again;
	double full, small;

	rng_init(&r, 12, 0);
	float *ref = gauss_rows(&r, 2000, 64), *win = gauss_rows(&r, 100, 64);

	assert_int_equal(hl_compare(ref, 2000, win, 100, 64, &p, &res), 0);
	assert_int_equal(res.ref.n, 100);
	assert_int_equal(res.win.n, 100);
	print_message("same distribution: rank ref %.2f win %.2f drop %.3f, "
		      "uniformity rise %.4f, norm change %.4f\n",
		      res.ref.effective_rank, res.win.effective_rank,
		      res.rank_drop, res.uniformity_rise, res.norm_change);
	assert_true(fabs(res.rank_drop) < 0.05);
	assert_true(fabs(res.uniformity_rise) < 0.05);
	assert_true(res.norm_change < 0.05);
	assert_true(res.duplicate_rise == 0.0);
	assert_int_equal(hl_effective_rank(ref, 2000, 64, &full), 0);
	assert_int_equal(hl_effective_rank(win, 100, 64, &small), 0);
	print_message("unmatched: rank of 2000 rows %.2f, of 100 rows %.2f\n",
		      full, small);
	assert_true(1.0 - small / full > 0.05);
	/* reproducible, and the larger side is the one cut */
	assert_int_equal(hl_compare(ref, 2000, win, 100, 64, &p, &again), 0);
	assert_true(again.ref.effective_rank == res.ref.effective_rank);
	assert_int_equal(hl_compare(win, 100, ref, 2000, 64, &p, &again), 0);
	assert_true(again.win.effective_rank == res.ref.effective_rank);
	free(ref);
	free(win);
}

/* A window squeezed onto 3 directions, and one full of copies. */
static void test_collapse_and_duplicates(void **state)
{
	enum { N = 400, D = 32 };
	struct rng r;
	struct hl_result res;

	rng_init(&r, 13, 0);
	float *ref = gauss_rows(&r, N, D), *win = gauss_rows(&r, N, D);

	for (size_t i = 0; i < N; i++)
		for (size_t j = 3; j < D; j++)
			win[i * D + j] *= 0.05f;
	assert_int_equal(hl_compare(ref, N, win, N, D, NULL, &res), 0);
	print_message("collapsed: rank %.2f -> %.2f (drop %.3f), uniformity "
		      "rise %.3f\n", res.ref.effective_rank,
		      res.win.effective_rank, res.rank_drop,
		      res.uniformity_rise);
	assert_true(res.rank_drop > 0.5);
	assert_true(res.uniformity_rise > 0.5);

	fill_gauss(&r, win, N * D, 0.0, 1.0);
	for (size_t i = 0; i < N / 2; i++)
		memcpy(win + i * D, win + (N / 2) * D, D * sizeof *win);
	assert_int_equal(hl_compare(ref, N, win, N, D, NULL, &res), 0);
	print_message("poisoned: duplicate share %.3f -> %.3f\n",
		      res.ref.duplicate_share, res.win.duplicate_share);
	assert_close(res.duplicate_rise, (N / 2 + 1) / (double)N, 1e-12, 0.0);
	free(ref);
	free(win);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_size_matching),
		cmocka_unit_test(test_collapse_and_duplicates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
