/* Unit tests for daemon/recsig: the per-record signals (score watched,
 * predicted class, error indicator), the mapping of the stream.* keys,
 * and the per-slice detector states: alarms on a shifting slice and none
 * on a stable one, suppression within alarm_interval, expiry and reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "recsig.h"
#include "rng.h"

#define SEC_US INT64_C(1000000)

static void test_score(void **state)
{
	const float one[] = { 0.7f }, two[] = { 0.3f, 0.7f },
		    three[] = { 0.2f, 0.5f, 0.3f };

	(void)state;
	assert_true(rsig_score(one, 1) == (double)0.7f);
	/* Two scores: the positive class is the second. */
	assert_true(rsig_score(two, 2) == (double)0.7f);
	/* More: the top-label confidence. */
	assert_true(rsig_score(three, 3) == (double)0.5f);
}

static void test_predicted_and_error(void **state)
{
	const float half[] = { 0.5f }, below[] = { 0.49f },
		    two[] = { 0.6f, 0.4f }, ties[] = { 0.1f, 0.45f, 0.45f };

	(void)state;
	assert_int_equal(rsig_predicted(half, 1), 1);
	assert_int_equal(rsig_predicted(below, 1), 0);
	assert_int_equal(rsig_predicted(two, 2), 0);
	assert_int_equal(rsig_predicted(ties, 3), 1);
	assert_true(rsig_error(half, 1, 1) == 0.0);
	assert_true(rsig_error(half, 1, 0) == 1.0);
	assert_true(rsig_error(below, 1, 0) == 0.0);
	assert_true(rsig_error(two, 2, 1) == 1.0);
	assert_true(rsig_error(ties, 3, 1) == 0.0);
	assert_true(rsig_error(ties, 3, 2) == 1.0);
	assert_string_equal(rsig_signal_name(RSIG_ERROR), "error");
	assert_string_equal(rsig_detector_name(RSIG_PH), "page_hinkley");
	assert_string_equal(rsig_detector_name(RSIG_ADWIN), "adwin");
}

static struct conf *load(const char *model_keys)
{
	char text[1024], err[1024];
	struct conf *c = NULL;

	snprintf(text, sizeof text, "[store]\ndsn = x\n[model.m]\ndim = 4\n"
		 "reference.size = 10\nwindow.size = 5\ndetectors = mmd\n"
		 "scores.width = 1\n%s", model_keys);
	if (conf_load_string(text, "t.ini", &c, err, sizeof err))
		fail_msg("%s", err);
	return c;
}

static void test_params(void **state)
{
	struct conf *c = load("stream.detectors = page_hinkley, adwin\n"
			      "stream.ph.threshold = 7.5\nstream.ph.direction = up\n"
			      "stream.adwin.clock = 8\n");
	struct rsig_params p = rsig_params_of(&c->models[0]), q = p;
	char buf[256];

	(void)state;
	assert_int_equal(p.detectors, CONF_STREAM_PH | CONF_STREAM_ADWIN);
	assert_int_equal(p.signals, CONF_SIGNAL_SCORE | CONF_SIGNAL_ERROR);
	assert_true(p.ph.threshold == 7.5 && p.ph.delta == 0.025);
	assert_int_equal(p.ph.dir, STREAM_UP);
	assert_int_equal(p.adwin.clock, 8);
	assert_string_equal(rsig_params_json(&p, RSIG_PH, buf, sizeof buf),
			    "{\"delta\":0.025,\"threshold\":7.5,"
			    "\"min_samples\":30,\"forget\":1,"
			    "\"direction\":\"up\"}");
	assert_string_equal(rsig_params_json(&p, RSIG_ADWIN, buf, sizeof buf),
			    "{\"delta\":0.002,\"clock\":8,\"max_buckets\":5,"
			    "\"min_window\":5}");
	/* A value without a short spelling keeps all its digits. */
	q.adwin.delta = 0.1 + 0.2;
	assert_string_equal(rsig_params_json(&q, RSIG_ADWIN, buf, sizeof buf),
			    "{\"delta\":0.30000000000000004,\"clock\":8,"
			    "\"max_buckets\":5,\"min_window\":5}");
	q = p;
	assert_true(rsig_same_params(&p, &q));
	q.adwin.min_window = 6;
	assert_false(rsig_same_params(&p, &q));
	q = p;
	q.signals = CONF_SIGNAL_ERROR;
	assert_false(rsig_same_params(&p, &q));
	/* Nothing selected, or parameters the detectors refuse: no model. */
	q = p;
	q.detectors = 0;
	assert_null(rsig_new(&q, 0));
	q = p;
	q.ph.forget = 2.0;
	assert_null(rsig_new(&q, 0));
	conf_free(c);
}

static double gauss(struct rng *r, double mean, double sd)
{
	double u = rng_uniform(r), v = rng_uniform(r);

	return mean + sd * sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

/* Feeds N scores of mean MEAN to SL, one per millisecond from *T;
 * counts the alarms per detector and checks each. */
static void feed(struct rsig_model *m, struct rsig_slice *sl, struct rng *r,
		 size_t n, double mean, int64_t *t, unsigned count[2],
		 unsigned suppressed[2])
{
	struct rsig_alarm a[RSIG_DETECTORS];

	for (size_t i = 0; i < n; i++, *t += 1000) {
		size_t k = rsig_feed(m, sl, RSIG_SCORE, gauss(r, mean, 0.05), *t, a);

		for (size_t j = 0; j < k; j++) {
			assert_int_equal(a[j].signal, RSIG_SCORE);
			assert_ptr_equal(rsig_slice(m, a[j].slice, false), sl);
			assert_true(a[j].n_before > 0 && a[j].n_after > 0);
			assert_true(a[j].statistic > 0.0);
			if (a[j].suppressed)
				suppressed[a[j].detector]++;
			else
				count[a[j].detector]++;
		}
	}
}

static void test_shift_and_stable_slices(void **state)
{
	struct rsig_params p = {
		.detectors = CONF_STREAM_PH | CONF_STREAM_ADWIN,
		.signals = CONF_SIGNAL_SCORE,
		.ph = { .delta = 0.01, .threshold = 5.0, .forget = 1.0 },
		.adwin = { .delta = 0.002 },
	};
	struct rsig_model *m = rsig_new(&p, 3600 * SEC_US);
	struct rsig_slice *drifting, *stable;
	unsigned d[2] = { 0 }, s[2] = { 0 }, supp[2] = { 0 };
	struct rsig_alarm a[RSIG_DETECTORS];
	struct rng r;
	int64_t t = 1700000000 * SEC_US;

	(void)state;
	assert_non_null(m);
	rng_init(&r, 7, 0);
	assert_non_null(drifting = rsig_slice(m, "region=eu", true));
	assert_non_null(stable = rsig_slice(m, "region=us", true));
	assert_ptr_equal(rsig_slice(m, "region=eu", true), drifting);
	assert_null(rsig_slice(m, "region=ap", false));
	assert_int_equal(rsig_slice_count(m), 2);
	/* ADWIN's state is there only for the signal watched. */
	assert_true(rsig_memory(m) > 2 * sizeof(struct stream_adwin));
	assert_true(rsig_memory(m) < 3 * sizeof(struct stream_adwin));

	feed(m, drifting, &r, 3000, 0.3, &t, d, supp);
	feed(m, stable, &r, 3000, 0.3, &t, s, supp);
	assert_int_equal(d[0] + d[1] + s[0] + s[1], 0);
	feed(m, drifting, &r, 2000, 0.45, &t, d, supp);
	feed(m, stable, &r, 2000, 0.3, &t, s, supp);
	assert_int_equal(d[RSIG_PH], 1);
	assert_int_equal(d[RSIG_ADWIN], 1);
	assert_int_equal(s[0] + s[1], 0);
	/* Later alarms of the drifting slice, within the hour, only count
	 * as suppressed: the mean moves on. */
	feed(m, drifting, &r, 3000, 0.6, &t, d, supp);
	assert_int_equal(d[RSIG_PH] + d[RSIG_ADWIN], 2);
	assert_true(supp[RSIG_PH] >= 1 && supp[RSIG_ADWIN] >= 1);
	/* ... and are recorded again once it is over. */
	rsig_set_interval(m, 0);
	feed(m, drifting, &r, 3000, 0.8, &t, d, supp);
	assert_true(d[RSIG_PH] >= 2 && d[RSIG_ADWIN] >= 2);

	/* A signal not watched and a value that is not finite feed nothing. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rsig_feed(m, drifting, RSIG_ERROR, i % 2, t, a), 0);
	assert_int_equal(rsig_feed(m, drifting, RSIG_SCORE, NAN, t, a), 0);
	rsig_free(m);
}

/* A step of the error rate: the Page-Hinkley alarm reports the rise, the
 * values since its start, the change point and the means around it. */
static void test_alarm_fields(void **state)
{
	struct rsig_params p = {
		.detectors = CONF_STREAM_PH,
		.signals = CONF_SIGNAL_ERROR,
		.ph = { .delta = 0.005, .threshold = 3.0, .forget = 1.0,
			.dir = STREAM_BOTH },
	};
	struct rsig_model *m = rsig_new(&p, 0);
	struct rsig_slice *sl;
	struct rsig_alarm a[RSIG_DETECTORS];
	size_t k = 0, i;

	(void)state;
	assert_non_null(m);
	assert_non_null(sl = rsig_slice(m, "*", true));
	/* No ADWIN configured: no ADWIN state. */
	assert_true(rsig_memory(m) < sizeof(struct stream_adwin));
	for (i = 0; i < 100; i++)
		assert_int_equal(rsig_feed(m, sl, RSIG_ERROR, 0.0, 1, a), 0);
	for (i = 0; i < 100 && !(k = rsig_feed(m, sl, RSIG_ERROR, 1.0, 2, a)); i++)
		;
	assert_int_equal(k, 1);
	assert_int_equal(a[0].detector, RSIG_PH);
	assert_int_equal(a[0].signal, RSIG_ERROR);
	assert_string_equal(a[0].slice, "*");
	assert_false(a[0].suppressed);
	assert_true(a[0].up);
	assert_int_equal(a[0].seen, 100 + i + 1);
	assert_int_equal(a[0].n_before, 100);
	assert_int_equal(a[0].n_after, i + 1);
	assert_true(a[0].mean_before == 0.0 && a[0].mean_after == 1.0);
	assert_true(a[0].threshold == 3.0 && a[0].statistic > 3.0);
	rsig_free(m);
}

/* Expiry drops a slice (never "*"); a reset starts every detector over. */
static void test_forget_and_reset(void **state)
{
	struct rsig_params p = {
		.detectors = CONF_STREAM_ADWIN,
		.signals = CONF_SIGNAL_SCORE | CONF_SIGNAL_ERROR,
		.adwin = { .delta = 0.002 },
	};
	struct rsig_model *m = rsig_new(&p, 0);
	struct rsig_alarm a[RSIG_DETECTORS];
	char key[32];
	size_t before;

	(void)state;
	assert_non_null(m);
	assert_non_null(rsig_slice(m, "*", true));
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "s=%d", i);
		assert_non_null(rsig_slice(m, key, true));
	}
	assert_int_equal(rsig_slice_count(m), 41);
	/* Two ADWIN states per slice. */
	assert_true(rsig_memory(m) > 41 * 2 * sizeof(struct stream_adwin));
	before = rsig_memory(m);
	for (int i = 0; i < 40; i += 2) {
		snprintf(key, sizeof key, "s=%d", i);
		rsig_forget(m, key);
	}
	rsig_forget(m, "*");
	rsig_forget(m, "s=unknown");
	assert_int_equal(rsig_slice_count(m), 21);
	assert_true(rsig_memory(m) < before);
	assert_null(rsig_slice(m, "s=0", false));
	assert_non_null(rsig_slice(m, "s=1", false));
	assert_non_null(rsig_slice(m, "*", false));

	/* After a reset the old regime is forgotten: a new level raises no
	 * alarm, whereas without the reset it would. */
	struct rsig_slice *sl = rsig_slice(m, "s=1", false),
			  *kept = rsig_slice(m, "s=3", false);
	size_t alarms = 0;

	for (int i = 0; i < 2000; i++)
		assert_int_equal(rsig_feed(m, sl, RSIG_SCORE, 0.1, 1, a), 0);
	rsig_reset(m);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(rsig_feed(m, sl, RSIG_SCORE, 0.9, 1, a), 0);
		assert_int_equal(rsig_feed(m, kept, RSIG_SCORE, 0.1, 1, a), 0);
	}
	for (int i = 0; i < 2000; i++)
		alarms += rsig_feed(m, kept, RSIG_SCORE, 0.9, 1, a);
	assert_true(alarms >= 1);
	rsig_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_score),
		cmocka_unit_test(test_predicted_and_error),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_shift_and_stable_slices),
		cmocka_unit_test(test_alarm_fields),
		cmocka_unit_test(test_forget_and_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
