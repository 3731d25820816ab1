/* hookev: event routing by on_drift and events, one event per type per
 * batch, bodies that are ASCII JSON holding what docs/webhooks.md says,
 * the payload.max_slices cap, ids, and the test event. */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "hookev.h"

#define NOW_US INT64_C(1764417600123456) /* 2025-11-29T12:00:00.123456Z */
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static const char conf_text[] =
	"[store]\ndsn = x\n"
	"[model.enc]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
	"detectors = mmd\non_drift = retrain\n"
	"[model.quiet]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
	"detectors = mmd\n"
	"[model.narrow]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
	"detectors = mmd\non_drift = few\n"
	"[webhook.retrain]\nurl = https://ci.example.com/x\nsecret = " SECRET "\n"
	"cooldown = 90s\n"
	"[webhook.few]\nurl = https://ci.example.com/y\nsecret = " SECRET "\n"
	"events = drift.detected\npayload.max_slices = 2\ncooldown = 0\n";

static struct conf *conf;

static int setup(void **state)
{
	char err[1024];

	(void)state;
	if (conf_load_string(conf_text, "t.ini", &conf, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	conf_free(conf);
	return 0;
}

static const struct store_test fired_tests[] = {
	{ .test = "mmd", .statistic = 0.125, .p_value = 0.0005, .threshold = 0.001,
	  .drifted = true },
	{ .test = "centroid_cosine", .statistic = 0.05, .p_value = NAN,
	  .threshold = 0.1, .drifted = false },
	{ .test = "centroid_euclidean", .statistic = 2.5, .p_value = NAN,
	  .threshold = NAN, .drifted = true },
};

static struct hookev_slice slice_of(const char *name, int64_t window_id)
{
	return (struct hookev_slice){
		.slice = name,
		.window_id = window_id,
		.start_us = NOW_US - 60000000,
		.end_us = NOW_US - 1000000,
		.n = 200,
		.reference_set_id = 77,
	};
}

static json_object *parse_ascii(const char *body)
{
	json_object *o;

	for (const char *p = body; *p; p++)
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			fail_msg("body is not printable ASCII at %zu", (size_t)(p - body));
	o = json_tokener_parse(body);
	if (!o)
		fail_msg("body is not JSON: %s", body);
	return o;
}

static json_object *get(json_object *o, const char *path)
{
	char key[64];
	const char *dot;
	json_object *v = o;

	while (*path) {
		dot = strchr(path, '.');
		snprintf(key, sizeof(key), "%.*s", (int)(dot ? dot - path : (long)strlen(path)), path);
		if (json_object_is_type(v, json_type_array))
			v = json_object_array_get_idx(v, (size_t)atoi(key));
		else if (!json_object_object_get_ex(v, key, &v))
			fail_msg("no %s in %s", key, json_object_to_json_string(o));
		path = dot ? dot + 1 : path + strlen(path);
	}
	return v;
}

static const char *str_at(json_object *o, const char *path)
{
	return json_object_get_string(get(o, path));
}

static void test_no_webhook_no_batch(void **state)
{
	const struct store_event *ev;
	size_t n;

	(void)state;
	assert_null(hookev_batch_new(conf, "quiet", NOW_US));
	assert_null(hookev_batch_new(conf, "nosuch", NOW_US));
	/* Every call takes the NULL batch of a model without a webhook. */
	assert_int_equal(hookev_add(NULL, HOOKEV_DRIFT, &(struct hookev_slice){ 0 },
				    fired_tests, 3), 0);
	assert_int_equal(hookev_take(NULL, &ev, &n), 0);
	assert_int_equal(n, 0);
	hookev_batch_free(NULL);
}

static void test_drift_event_body(void **state)
{
	struct hookev_batch *b = hookev_batch_new(conf, "enc", NOW_US);
	struct hookev_slice s1 = slice_of("region=eu", 3);
	struct hookev_slice s2 = slice_of("region=it's \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", 41);
	struct hookev_slice s3 = slice_of("region=us", 5);
	const struct store_event *ev;
	json_object *o, *tests;
	size_t n;

	(void)state;
	assert_non_null(b);
	assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s1, fired_tests, 3), 0);
	/* Nothing fired in this slice: not listed. */
	assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s3, fired_tests + 1, 1), 0);
	assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s2, fired_tests, 1), 0);
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev->endpoint, "retrain");
	assert_string_equal(ev->type, "drift.detected");
	assert_string_equal(ev->model, "enc");
	assert_int_equal(ev->created_us, NOW_US);
	assert_int_equal(ev->cooldown_us, 90000000);
	assert_int_equal(strlen(ev->id), HOOKEV_ID_LEN);

	o = parse_ascii(ev->body);
	assert_string_equal(str_at(o, "type"), "drift.detected");
	assert_string_equal(str_at(o, "timestamp"), "2025-11-29T12:00:00.123456Z");
	assert_string_equal(str_at(o, "data.model"), "enc");
	assert_int_equal(json_object_get_int(get(o, "data.slices_total")), 2);
	assert_int_equal(json_object_array_length(get(o, "data.slices")), 2);
	assert_string_equal(str_at(o, "data.slices.0.slice"), "region=eu");
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.window_id")), 3);
	assert_string_equal(str_at(o, "data.slices.0.window_start"), "2025-11-29T11:59:00.123456Z");
	assert_string_equal(str_at(o, "data.slices.0.window_end"), "2025-11-29T11:59:59.123456Z");
	assert_int_equal(json_object_get_int(get(o, "data.slices.0.n")), 200);
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.reference_set_id")), 77);
	/* Only the tests that fired, p_value and threshold null when absent. */
	tests = get(o, "data.slices.0.tests");
	assert_int_equal(json_object_array_length(tests), 2);
	assert_string_equal(str_at(o, "data.slices.0.tests.0.test"), "mmd");
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.statistic")) == 0.125);
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.p_value")) == 0.0005);
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.threshold")) == 0.001);
	assert_string_equal(str_at(o, "data.slices.0.tests.1.test"), "centroid_euclidean");
	assert_null(get(o, "data.slices.0.tests.1.p_value"));
	assert_null(get(o, "data.slices.0.tests.1.threshold"));
	/* Non-ASCII comes back as the same UTF-8 through \u escapes. */
	assert_string_equal(str_at(o, "data.slices.1.slice"), s2.slice);
	assert_string_equal(str_at(o, "data.query"),
			    "SELECT * FROM driftd.drift_history WHERE model = 'enc' AND "
			    "(slice, window_id) IN (('region=eu', 3), ('region=it''s "
			    "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80', 41)) ORDER BY slice, window_id");
	json_object_put(o);

	/* Taken once: later adds and takes do nothing. */
	assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s3, fired_tests, 3), 0);
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 0);
	hookev_batch_free(b);
}

static void test_one_event_per_type(void **state)
{
	struct hookev_batch *b = hookev_batch_new(conf, "enc", NOW_US);
	struct hookev_slice s = slice_of("*", 9);
	const struct store_event *ev;
	json_object *o;
	size_t n;

	(void)state;
	assert_int_equal(hookev_add(b, HOOKEV_COLLAPSE, &s, fired_tests, 1), 0);
	assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s, fired_tests, 1), 0);
	assert_int_equal(hookev_add(b, HOOKEV_CALIBRATION, &s, fired_tests, 1), 0);
	assert_int_equal(hookev_add(b, HOOKEV_TEST, &s, fired_tests, 1), -EINVAL);
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ev[0].type, "drift.detected");
	assert_string_equal(ev[1].type, "calibration.degraded");
	assert_string_equal(ev[2].type, "embedding.collapse");
	assert_string_not_equal(ev[0].id, ev[1].id);
	assert_string_not_equal(ev[1].id, ev[2].id);
	o = parse_ascii(ev[1].body);
	assert_non_null(strstr(str_at(o, "data.query"), "FROM driftd.calibration_history "));
	json_object_put(o);
	hookev_batch_free(b);
}

/* [webhook.few] takes drift.detected only and lists at most 2 slices. */
static void test_events_filter_and_cap(void **state)
{
	struct hookev_batch *b = hookev_batch_new(conf, "narrow", NOW_US);
	const struct store_event *ev;
	char name[32];
	json_object *o;
	size_t n;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "k=%d", i);
		struct hookev_slice s = slice_of(name, i + 1);
		assert_int_equal(hookev_add(b, HOOKEV_DRIFT, &s, fired_tests, 3), 0);
		assert_int_equal(hookev_add(b, HOOKEV_COLLAPSE, &s, fired_tests, 3), 0);
	}
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev->type, "drift.detected");
	assert_int_equal(ev->cooldown_us, 0);
	o = parse_ascii(ev->body);
	assert_int_equal(json_object_get_int(get(o, "data.slices_total")), 5);
	assert_int_equal(json_object_array_length(get(o, "data.slices")), 2);
	assert_non_null(strstr(str_at(o, "data.query"), "IN (('k=0', 1), ('k=1', 2))"));
	json_object_put(o);
	hookev_batch_free(b);
}

static const struct store_stream_alarm alarms[] = {
	{ .id = 11, .slice = "*", .detector = "page_hinkley", .signal = "score",
	  .records_seen = 480, .statistic = 5.5, .threshold = 5.0, .up = true,
	  .n_before = 400, .mean_before = 0.25, .n_after = 80, .mean_after = 0.5,
	  .params = "{}" },
	{ .id = 12, .slice = "*", .detector = "adwin", .signal = "score",
	  .records_seen = 512, .statistic = 0.25, .threshold = NAN, .up = true,
	  .n_before = 448, .mean_before = 0.25, .n_after = 64, .mean_after = 0.5,
	  .params = "{}" },
	{ .id = 13, .slice = "s=eu", .detector = "adwin", .signal = "error",
	  .records_seen = 96, .statistic = 0.375, .threshold = NAN, .up = false,
	  .n_before = 64, .mean_before = 0.5, .n_after = 32, .mean_after = 0.125,
	  .params = "{}" },
};

/* One stream.alarm event per batch: a slice per call with its alarms as
 * tests named detector:signal, no window, a query by alarm id. */
static void test_stream_event(void **state)
{
	struct hookev_batch *b = hookev_batch_new(conf, "enc", NOW_US);
	const struct store_event *ev;
	json_object *o;
	size_t n;

	(void)state;
	assert_int_equal(hookev_add(b, HOOKEV_STREAM, &(struct hookev_slice){ 0 },
				    fired_tests, 1), -EINVAL);
	assert_int_equal(hookev_add_stream(b, "*", NOW_US, alarms, 2), 0);
	assert_int_equal(hookev_add_stream(b, "s=eu", NOW_US, alarms + 2, 1), 0);
	assert_int_equal(hookev_add_stream(b, "s=us", NOW_US, alarms, 0), 0);
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev->type, "stream.alarm");
	assert_string_equal(ev->endpoint, "retrain");
	assert_string_equal(ev->model, "enc");
	assert_int_equal(ev->cooldown_us, 90000000);
	o = parse_ascii(ev->body);
	assert_string_equal(str_at(o, "type"), "stream.alarm");
	assert_string_equal(str_at(o, "data.model"), "enc");
	assert_int_equal(json_object_get_int(get(o, "data.slices_total")), 2);
	assert_string_equal(str_at(o, "data.slices.0.slice"), "*");
	assert_null(get(o, "data.slices.0.window_id"));
	assert_string_equal(str_at(o, "data.slices.0.detected_at"),
			    "2025-11-29T12:00:00.123456Z");
	assert_int_equal(json_object_array_length(get(o, "data.slices.0.tests")), 2);
	assert_string_equal(str_at(o, "data.slices.0.tests.0.test"), "page_hinkley:score");
	assert_string_equal(str_at(o, "data.slices.0.tests.0.detector"), "page_hinkley");
	assert_string_equal(str_at(o, "data.slices.0.tests.0.signal"), "score");
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.tests.0.alarm_id")), 11);
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.statistic")) == 5.5);
	assert_null(get(o, "data.slices.0.tests.0.p_value"));
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.threshold")) == 5.0);
	assert_string_equal(str_at(o, "data.slices.0.tests.0.direction"), "up");
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.tests.0.records_seen")), 480);
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.tests.0.n_before")), 400);
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.mean_before")) == 0.25);
	assert_int_equal(json_object_get_int64(get(o, "data.slices.0.tests.0.n_after")), 80);
	assert_true(json_object_get_double(get(o, "data.slices.0.tests.0.mean_after")) == 0.5);
	assert_string_equal(str_at(o, "data.slices.0.tests.1.test"), "adwin:score");
	assert_null(get(o, "data.slices.0.tests.1.threshold"));
	assert_string_equal(str_at(o, "data.slices.1.slice"), "s=eu");
	assert_string_equal(str_at(o, "data.slices.1.tests.0.test"), "adwin:error");
	assert_string_equal(str_at(o, "data.slices.1.tests.0.direction"), "down");
	assert_string_equal(str_at(o, "data.query"),
			    "SELECT * FROM driftd.stream_alarm_history WHERE model = 'enc' "
			    "AND alarm_id IN (11, 12, 13) ORDER BY slice, detected_at, alarm_id");
	json_object_put(o);
	hookev_batch_free(b);

	/* [webhook.few] does not take stream.alarm. */
	b = hookev_batch_new(conf, "narrow", NOW_US);
	assert_int_equal(hookev_add_stream(b, "*", NOW_US, alarms, 2), 0);
	assert_int_equal(hookev_take(b, &ev, &n), 0);
	assert_int_equal(n, 0);
	hookev_batch_free(b);
}

static void test_ids(void **state)
{
	char a[HOOKEV_ID_LEN + 1], b[HOOKEV_ID_LEN + 1], c[HOOKEV_ID_LEN + 1];

	(void)state;
	hookev_new_id(NOW_US, a);
	hookev_new_id(NOW_US, b);
	hookev_new_id(NOW_US + 1000, c);
	assert_int_equal(strlen(a), HOOKEV_ID_LEN);
	assert_memory_equal(a, "msg_019acf7bfa7b", 16);
	assert_int_equal(strspn(a + 4, "0123456789abcdef"), HOOKEV_ID_LEN - 4);
	assert_string_not_equal(a, b);
	assert_true(strcmp(a, c) < 0 && strcmp(b, c) < 0);
}

static void test_test_event(void **state)
{
	struct store_event ev;
	char *mem = NULL;
	json_object *o;

	(void)state;
	assert_int_equal(hookev_test(conf, "nosuch", NOW_US, &ev, &mem), -ENOENT);
	assert_int_equal(hookev_test(conf, "few", NOW_US, &ev, &mem), 0);
	assert_string_equal(ev.type, "test");
	assert_string_equal(ev.endpoint, "few");
	assert_null(ev.model);
	assert_int_equal(ev.cooldown_us, 0);
	assert_int_equal(strlen(ev.id), HOOKEV_ID_LEN);
	o = parse_ascii(ev.body);
	assert_string_equal(str_at(o, "type"), "test");
	assert_string_equal(str_at(o, "data.endpoint"), "few");
	json_object_put(o);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_webhook_no_batch),
		cmocka_unit_test(test_drift_event_body),
		cmocka_unit_test(test_one_event_per_type),
		cmocka_unit_test(test_events_filter_and_cap),
		cmocka_unit_test(test_stream_event),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_test_event),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
