/* Unit tests for the observability pieces: Prometheus exposition (escaping,
 * numbers, histograms), the latest-result table, route matching and the
 * JSON API's time parsing and formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reqparse.h"
#include "latest.h"
#include "prom.h"
#include "stats.h"

struct stats st;

/* The buffer's text, NUL-terminated; caller frees. */
static char *text_of(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void test_prom_sample_escapes_labels(void **state)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	prom_sample(b, "m", 1.5, "model", "enc", "slice", "a=\"x\\y\"\nz", NULL);
	prom_sample(b, "m", 3, NULL);
	prom_sample(b, "m", NAN, "k", "", NULL);
	prom_sample(b, "m", -INFINITY, NULL);
	prom_sample(b, "m", 1e300, NULL);
	prom_sample(b, "m", 0.1, NULL);
	prom_sample(b, "m", 1.0 / 3, NULL);
	s = text_of(b);
	assert_string_equal(s, "m{model=\"enc\",slice=\"a=\\\"x\\\\y\\\"\\nz\"} 1.5\n"
			       "m 3\n"
			       "m{k=\"\"} NaN\n"
			       "m -Inf\n"
			       "m 1e+300\n"
			       "m 0.1\n"
			       "m 0.33333333333333331\n");
	free(s);
	evbuffer_free(b);
}

static void test_prom_counter_exact(void **state)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	prom_counter(b, "c_total", "Help.", UINT64_MAX);
	s = text_of(b);
	assert_string_equal(s, "# HELP c_total Help.\n# TYPE c_total counter\n"
			       "c_total 18446744073709551615\n");
	free(s);
	evbuffer_free(b);
}

static void test_prom_histogram_cumulative(void **state)
{
	struct prom_hist h = { 0 };
	struct evbuffer *b = evbuffer_new();
	char *s;

	prom_observe(&h, 0.0005);	/* on a bound: belongs to it */
	prom_observe(&h, 0.003);
	prom_observe(&h, 0.003);
	prom_observe_us(&h, 60000000);	/* over the last bound */
	assert_int_equal(h.count, 4);
	assert_int_equal(h.counts[0], 1);
	assert_int_equal(h.counts[3], 2);
	assert_int_equal(h.counts[PROM_BUCKETS], 1);
	prom_histogram(b, "d_seconds", "Help.", &h);
	s = text_of(b);
	assert_non_null(strstr(s, "# TYPE d_seconds histogram\n"
				  "d_seconds_bucket{le=\"0.0005\"} 1\n"
				  "d_seconds_bucket{le=\"0.001\"} 1\n"
				  "d_seconds_bucket{le=\"0.0025\"} 1\n"
				  "d_seconds_bucket{le=\"0.005\"} 3\n"));
	assert_non_null(strstr(s, "d_seconds_bucket{le=\"30\"} 3\n"
				  "d_seconds_bucket{le=\"+Inf\"} 4\n"
				  "d_seconds_sum 60.0065\n"
				  "d_seconds_count 4\n"));
	free(s);
	evbuffer_free(b);
}

static struct store_window window(const char *slice, int64_t id,
				  const struct store_test *t, size_t n)
{
	return (struct store_window){ .model = "m", .slice = slice,
				      .window_id = id, .start_us = id * 10,
				      .end_us = id * 10 + 5, .n = 7,
				      .tests = t, .n_tests = n };
}

static void test_latest_keeps_newest_sorted(void **state)
{
	struct store_test calm = { .test = "mmd", .statistic = 0.01,
				   .p_value = 0.5, .threshold = 0.01 };
	struct store_test hot[2] = {
		{ .test = "mmd", .statistic = 0.3, .p_value = 0.001,
		  .threshold = 0.01, .drifted = true },
		{ .test = "centroid_euclidean", .statistic = 2,
		  .p_value = NAN, .threshold = NAN },
	};
	struct lat *l = lat_new();
	struct store_window w;

	assert_non_null(l);
	w = window("region=us", 2, &calm, 1);
	assert_int_equal(lat_put(l, &w), 0);
	w = window("*", 1, hot, 2);
	assert_int_equal(lat_put(l, &w), 0);
	w = window("region=eu", 3, hot, 2);
	assert_int_equal(lat_put(l, &w), 0);
	assert_int_equal(lat_count(l), 3);
	assert_int_equal(lat_drifted(l), 2);
	assert_string_equal(lat_get(l, 0)->key, "*");
	assert_string_equal(lat_get(l, 1)->key, "region=eu");
	assert_string_equal(lat_get(l, 2)->key, "region=us");

	/* An older window (a replay) changes nothing; a newer one replaces. */
	w = window("*", 0, &calm, 1);
	assert_int_equal(lat_put(l, &w), 0);
	assert_int_equal(lat_get(l, 0)->window_id, 1);
	assert_int_equal(lat_get(l, 0)->n_tests, 2);
	w = window("*", 4, &calm, 1);
	assert_int_equal(lat_put(l, &w), 0);
	assert_int_equal(lat_get(l, 0)->window_id, 4);
	assert_int_equal(lat_get(l, 0)->end_us, 45);
	assert_false(lat_get(l, 0)->drifted);
	assert_int_equal(lat_drifted(l), 1);
	assert_string_equal(lat_get(l, 1)->tests[1].name, "centroid_euclidean");
	assert_true(isnan(lat_get(l, 1)->tests[1].p_value));
	lat_free(l);
}

static void test_route_match(void **state)
{
	const char *args[RQ_MAX_ARGS];
	char buf[64];

	assert_int_equal(rq_match("/metrics", "/metrics", buf, sizeof(buf), args), 0);
	assert_int_equal(rq_match("/metrics", "/metrics/", buf, sizeof(buf), args), -1);
	assert_int_equal(rq_match("/", "/", buf, sizeof(buf), args), 0);
	assert_int_equal(rq_match("/", "/x", buf, sizeof(buf), args), -1);
	assert_int_equal(rq_match("/v1/models/{m}/status",
				    "/v1/models/search-encoder/status", buf,
				    sizeof(buf), args), 1);
	assert_string_equal(args[0], "search-encoder");
	assert_int_equal(rq_match("/v1/models/{m}/status", "/v1/models//status",
				    buf, sizeof(buf), args), -1);
	assert_int_equal(rq_match("/v1/models/{m}/status", "/v1/models/a/b/status",
				    buf, sizeof(buf), args), -1);
	assert_int_equal(rq_match("/v1/models/{m}", "/v1/models/a/status",
				    buf, sizeof(buf), args), -1);
	assert_int_equal(rq_match("/a/{x}/b/{y}", "/a/1/b/22", buf,
				    sizeof(buf), args), 2);
	assert_string_equal(args[0], "1");
	assert_string_equal(args[1], "22");
	/* A segment longer than the buffer is refused, not truncated. */
	assert_int_equal(rq_match("/a/{x}", "/a/0123456789", buf, 8, args), -1);
}

static void test_parse_time(void **state)
{
	int64_t us;

	assert_int_equal(rq_parse_time("2026-11-29T12:00:00Z", &us), 0);
	assert_int_equal(us, INT64_C(1795953600) * 1000000);
	assert_int_equal(rq_parse_time("2026-11-29T13:30:00.25+01:30", &us), 0);
	assert_int_equal(us, INT64_C(1795953600) * 1000000 + 250000);
	assert_int_equal(rq_parse_time("2026-11-29T12:00:00.1234567Z", &us), 0);
	assert_int_equal(us % 1000000, 123456);
	assert_int_equal(rq_parse_time("1795953600", &us), 0);
	assert_int_equal(us, INT64_C(1795953600) * 1000000);
	assert_int_equal(rq_parse_time("1795953600.5", &us), 0);
	assert_int_equal(us, INT64_C(1795953600) * 1000000 + 500000);
	assert_int_equal(rq_parse_time("", &us), -EINVAL);
	assert_int_equal(rq_parse_time("yesterday", &us), -EINVAL);
	assert_int_equal(rq_parse_time("2026-11-29T12:00:00", &us), -EINVAL);
	assert_int_equal(rq_parse_time("2026-02-30T12:00:00Z", &us), -EINVAL);
	assert_int_equal(rq_parse_time("2026-11-29T12:00:00Zx", &us), -EINVAL);
	assert_int_equal(rq_parse_time("12x", &us), -EINVAL);
	assert_int_equal(rq_parse_time("1.", &us), -EINVAL);
	/* Beyond year 9999: refused, not overflowed (found by fuzzing). */
	assert_int_equal(rq_parse_time("253402300799", &us), 0);
	assert_int_equal(rq_parse_time("253402300800", &us), -EINVAL);
	assert_int_equal(rq_parse_time("17959536001795", &us), -EINVAL);
}

static void test_parse_limit(void **state)
{
	unsigned v = 7;

	assert_int_equal(rq_parse_limit("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(rq_parse_limit("0042", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(rq_parse_limit("4294967295", &v), 0);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(rq_parse_limit("4294967296", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("99999999999999999999999", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("0", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("-1", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("+1", &v), -EINVAL);
	assert_int_equal(rq_parse_limit(" 1", &v), -EINVAL);
	assert_int_equal(rq_parse_limit("1x", &v), -EINVAL);
	assert_int_equal(v, UINT32_MAX);	/* untouched on error */
}

static void test_format_time(void **state)
{
	char buf[40];
	int64_t back;

	rq_format_time(INT64_C(1795953600) * 1000000 + 7, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-29T12:00:00.000007Z");
	assert_int_equal(rq_parse_time(buf, &back), 0);
	assert_int_equal(back, INT64_C(1795953600) * 1000000 + 7);
	rq_format_time(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prom_sample_escapes_labels),
		cmocka_unit_test(test_prom_counter_exact),
		cmocka_unit_test(test_prom_histogram_cumulative),
		cmocka_unit_test(test_latest_keeps_newest_sorted),
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_format_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
