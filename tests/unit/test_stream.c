/* Unit tests for detectors/stream: Page–Hinkley and ADWIN on synthetic
 * streams with and without a change. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "stream.h"
#include "testutil.h"

static double bernoulli(struct rng *r, double p)
{
	return rng_uniform(r) < p ? 1.0 : 0.0;
}

static void test_ph_params(void **state)
{
	struct stream_ph s;
	struct stream_ph_params p = { .forget = 1.5 };

	assert_false(stream_ph_init(&s, &p));
	p = (struct stream_ph_params){ .threshold = -1.0 };
	assert_false(stream_ph_init(&s, &p));
	p = (struct stream_ph_params){ .dir = 8 };
	assert_false(stream_ph_init(&s, &p));
	assert_true(stream_ph_init(&s, NULL));
	assert_true(s.p.threshold == 50.0 && s.p.delta == 0.005 &&
		    s.p.min_samples == 30 && s.p.dir == STREAM_BOTH);
	assert_false(stream_ph_update(&s, NAN));
	assert_int_equal(s.n, 0);
}

/* An error rate rising from 10% to 40%: an alarm soon after the change
 * and none in the 20000 values before it. With δ = 0.05 the statistic
 * drifts down by δ per value under no change, so an excursion of λ = 20
 * has probability about exp(-2δλ/σ²) = e^-22 (σ² = 0.09). */
static void test_ph_detects_rise(void **state)
{
	struct stream_ph_params p = { .delta = 0.05, .threshold = 20.0,
				      .forget = 1.0, .dir = STREAM_UP };
	struct stream_ph s;
	struct rng r;
	size_t false_alarms = 0, delays = 0;

	rng_init(&r, 1, 0);
	for (unsigned trial = 0; trial < 20; trial++) {
		size_t t;

		assert_true(stream_ph_init(&s, &p));
		for (t = 0; t < 20000; t++)
			false_alarms += stream_ph_update(&s, bernoulli(&r, 0.1));
		for (t = 0; t < 5000; t++)
			if (stream_ph_update(&s, bernoulli(&r, 0.4)))
				break;
		assert_true(t < 5000);
		delays += t;
	}
	print_message("Page-Hinkley: %zu false alarms in 20 x 20000 values, "
		      "mean delay %.1f\n", false_alarms, (double)delays / 20.0);
	assert_int_equal(false_alarms, 0);
	/* about λ / (0.4 - 0.1 - δ) = 80 */
	assert_true(delays / 20 < 200);
}

static void test_ph_directions(void **state)
{
	struct stream_ph_params p = { .threshold = 5.0, .dir = STREAM_UP };
	struct stream_ph up, down;
	bool alarm_up = false, alarm_down = false;

	assert_true(stream_ph_init(&up, &p));
	p.dir = STREAM_DOWN;
	assert_true(stream_ph_init(&down, &p));
	for (int t = 0; t < 100; t++) {
		alarm_up |= stream_ph_update(&up, 1.0);
		alarm_down |= stream_ph_update(&down, 1.0);
	}
	for (int t = 0; t < 100; t++) {
		alarm_up |= stream_ph_update(&up, 0.0);
		alarm_down |= stream_ph_update(&down, 0.0);
	}
	assert_false(alarm_up);
	assert_true(alarm_down);
}

/* A step from 0 to 1 after 200 values: the statistic is lowest right
 * before the step, so the alarm puts the change there, with the exact
 * means on either side; the state then starts over. */
static void test_ph_alarm_record(void **state)
{
	struct stream_ph_params p = { .threshold = 5.0, .forget = 1.0 };
	struct stream_ph s;
	uint64_t t;

	assert_true(stream_ph_init(&s, &p));
	for (t = 0; t < 200; t++)
		assert_false(stream_ph_update(&s, 0.0));
	for (t = 0; t < 1000 && !stream_ph_update(&s, 1.0); t++)
		;
	assert_true(t < 1000);
	assert_int_equal(s.last.dir, STREAM_UP);
	assert_int_equal(s.last.n, 200 + t + 1);
	assert_int_equal(s.last.change_at, 200);
	assert_true(s.last.statistic > 5.0);
	assert_true(s.last.mean_before == 0.0 && s.last.mean_after == 1.0);
	assert_int_equal(s.n, 0);

	/* A drop fires the other test. */
	p = (struct stream_ph_params){ .threshold = 1.0, .min_samples = 1,
				       .forget = 1.0, .dir = STREAM_DOWN };
	assert_true(stream_ph_init(&s, &p));
	for (t = 0; t < 100 && !stream_ph_update(&s, t < 20 ? 1.0 : -1.0); t++)
		;
	assert_true(t < 100);
	assert_int_equal(s.last.dir, STREAM_DOWN);
	assert_int_equal(s.last.change_at, 20);
	assert_true(s.last.mean_before == 1.0 && s.last.mean_after == -1.0);
	/* A jump at the second value: one value on either side. */
	p.dir = STREAM_BOTH;
	assert_true(stream_ph_init(&s, &p));
	assert_false(stream_ph_update(&s, 1.0));
	assert_true(stream_ph_update(&s, 30.0));
	assert_int_equal(s.last.dir, STREAM_UP);
	assert_int_equal(s.last.change_at, 1);
	assert_true(s.last.mean_before == 1.0 && s.last.mean_after == 30.0);
	/* up: -δ, then -δ + (30 - 15.5) - δ; its minimum was -δ */
	assert_close(s.last.statistic, 14.5 - 0.005, 1e-12, 0.0);
}

/* Every alarm of tests/data/stream_ph.txt (gen_stream_vectors.py): the
 * value that raised it, its direction, count, statistic, change point and
 * the means on either side. */
static void test_ph_vectors(void **state)
{
	FILE *f = open_data("stream_ph.txt");
	char line[256], name[64];
	unsigned cases = 0;

	while (fgets(line, sizeof line, f)) {
		struct stream_ph_params p = { 0 };
		struct stream_ph s;
		size_t n, k, want, got = 0;
		unsigned dir;
		double *x;

		/* Comments, and what is left of a line fscanf stopped in. */
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "case %63s %zu %lf %lf %u %lf %u", name, &n,
			   &p.delta, &p.threshold, &p.min_samples, &p.forget,
			   &dir) != 7)
			fail_msg("bad case line: %s", line);
		p.dir = (enum stream_dir)dir;
		assert_non_null(x = malloc(n * sizeof(double)));
		assert_non_null(fgets(line, sizeof line, f));
		for (k = 0; k < n; k++)
			assert_int_equal(fscanf(f, "%lf", &x[k]), 1);
		assert_int_equal(fscanf(f, " alarms %zu", &want), 1);
		assert_true(stream_ph_init(&s, &p));
		for (k = 0; k < n; k++) {
			size_t at, cnt, change;
			unsigned d;
			double stat, before, after;

			if (!stream_ph_update(&s, x[k]))
				continue;
			if (got++ >= want)
				fail_msg("%s: unexpected alarm at %zu", name, k);
			assert_int_equal(fscanf(f, "%zu %u %zu %lf %zu %lf %lf", &at,
						&d, &cnt, &stat, &change, &before,
						&after), 7);
			assert_int_equal(k, at);
			assert_int_equal(s.last.dir, d);
			assert_int_equal(s.last.n, cnt);
			assert_int_equal(s.last.change_at, change);
			assert_close(s.last.statistic, stat, 1e-9, 0.0);
			assert_close(s.last.mean_before, before, 1e-9, 1e-12);
			assert_close(s.last.mean_after, after, 1e-9, 1e-12);
		}
		if (got != want)
			fail_msg("%s: %zu alarms, want %zu", name, got, want);
		free(x);
		cases++;
	}
	fclose(f);
	assert_int_equal(cases, 4);
}

static void test_adwin_params(void **state)
{
	struct stream_adwin a;
	struct stream_adwin_params p = { .delta = 1.0 };

	assert_false(stream_adwin_init(&a, &p));
	p = (struct stream_adwin_params){ .max_buckets = 1 };
	assert_false(stream_adwin_init(&a, &p));
	p.max_buckets = STREAM_ADWIN_MAX_BUCKETS + 1;
	assert_false(stream_adwin_init(&a, &p));
	assert_true(stream_adwin_init(&a, NULL));
	assert_true(stream_adwin_mean(&a) == 0.0 && stream_adwin_width(&a) == 0);
	assert_false(stream_adwin_update(&a, INFINITY));
	assert_int_equal(stream_adwin_width(&a), 0);
}

/* Without a change the window keeps every value: its mean and variance
 * are those of the whole stream, and memory stays logarithmic. */
static void test_adwin_summary(void **state)
{
	enum { N = 50000 };
	struct stream_adwin a;
	struct rng r;
	double sum = 0.0, sq = 0.0;
	float v;

	rng_init(&r, 2, 0);
	assert_true(stream_adwin_init(&a, NULL));
	for (size_t t = 0; t < N; t++) {
		fill_gauss(&r, &v, 1, 3.0, 0.5);
		assert_false(stream_adwin_update(&a, (double)v));
		sum += (double)v;
		sq += (double)v * (double)v;
	}
	double mean = sum / N;

	assert_int_equal(stream_adwin_width(&a), N);
	assert_close(stream_adwin_mean(&a), mean, 1e-12, 0.0);
	assert_close(stream_adwin_variance(&a), sq / N - mean * mean, 1e-6, 0.0);
	unsigned buckets = 0;

	for (unsigned i = 0; i < a.used_rows; i++)
		buckets += a.count[i];
	print_message("ADWIN: %u buckets in %u rows for %d values\n", buckets,
		      a.used_rows, N);
	assert_true(buckets <= 5 * 17);
}

/* Error indicators 0.2 -> 0.5: detected, the window moves to the new
 * regime; no detection in 100 stationary streams of 10000 values. */
static void test_adwin_change(void **state)
{
	struct stream_adwin a;
	struct rng r;
	size_t false_streams = 0, delays = 0;

	rng_init(&r, 3, 0);
	for (unsigned trial = 0; trial < 100; trial++) {
		bool any = false;

		assert_true(stream_adwin_init(&a, NULL));
		for (size_t t = 0; t < 10000; t++)
			any |= stream_adwin_update(&a, bernoulli(&r, 0.2));
		false_streams += any;
		if (trial >= 20)
			continue;
		size_t t;

		for (t = 0; t < 5000; t++)
			if (stream_adwin_update(&a, bernoulli(&r, 0.5)))
				break;
		assert_true(t < 5000);
		delays += t;
		/* The part dropped is the old regime, the part kept newer. */
		assert_true(a.last.n_after == stream_adwin_width(&a));
		assert_true(a.last.n_before + a.last.n_after <= 10000 + t + 1);
		assert_true(a.last.n_before >= a.p.min_window);
		assert_close(a.last.mean_before, 0.2, 0.0, 0.05);
		assert_true(a.last.mean_after > a.last.mean_before);
		for (size_t k = 0; k < 2000; k++)
			stream_adwin_update(&a, bernoulli(&r, 0.5));
		assert_true(stream_adwin_width(&a) < 4000);
		assert_close(stream_adwin_mean(&a), 0.5, 0.0, 0.05);
	}
	print_message("ADWIN: %zu of 100 stationary streams alarmed, mean "
		      "delay %.1f\n", false_streams, (double)delays / 20.0);
	assert_true(false_streams <= 2);
	assert_true(delays / 20 < 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ph_params),
		cmocka_unit_test(test_ph_detects_rise),
		cmocka_unit_test(test_ph_directions),
		cmocka_unit_test(test_ph_alarm_record),
		cmocka_unit_test(test_ph_vectors),
		cmocka_unit_test(test_adwin_params),
		cmocka_unit_test(test_adwin_summary),
		cmocka_unit_test(test_adwin_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
