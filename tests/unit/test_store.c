/* store against a real PostgreSQL: migrations, writes, the public views,
 * replay, sequences, errors, timeouts and a server restart.  Needs
 * DRIFTD_TEST_DSN (and PGTMP_STOP_CMD / PGTMP_START_CMD), as exported by
 *     tests/harness/pgtmp.py run -- test_store
 * Checks go through a separate, blocking libpq connection. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "store.h"

#define T0_US INT64_C(1764417600000000) /* 2025-11-29 12:00:00 UTC */
#define MAX_RECORDS 64

static const char *dsn;

struct seq_row {
	char model[64];
	int64_t max;
	bool before_ready;
};

struct fx {
	struct event_base *base;
	struct event *tick;
	struct store *store;
	PGconn *db;
	enum store_state states[MAX_RECORDS];
	size_t n_states;
	char why[512];
	unsigned downs;
	struct seq_row seqs[MAX_RECORDS];
	size_t n_seqs;
	unsigned migrations_logged, warnings, errors;
	char last_log[512];
	bool drained;
	bool free_on_ready;
};

/* ---- fixture -------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct timeval tv = { 0, 20000 };

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	/* Wakes the loop regularly, so run_until() can check its deadline. */
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	event_add(f->tick, &tv);
	f->db = PQconnectdb(dsn);
	assert_int_equal(PQstatus(f->db), CONNECTION_OK);
	PQclear(PQexec(f->db, "SET client_min_messages = warning"));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	store_free(f->store);
	PQfinish(f->db);
	event_free(f->tick);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void on_state(void *arg, enum store_state st, const char *why)
{
	struct fx *f = arg;

	assert_non_null(why);
	if (f->n_states < MAX_RECORDS)
		f->states[f->n_states++] = st;
	snprintf(f->why, sizeof(f->why), "%s", why);
	if (st == STORE_DOWN)
		f->downs++;
	if (getenv("DRIFTD_TEST_VERBOSE"))
		fprintf(stderr, "state %d: %s\n", st, why);
	if (st == STORE_READY && f->free_on_ready) {
		store_free(f->store);
		f->store = NULL;
	}
}

static void on_seq(void *arg, const char *model, int64_t max)
{
	struct fx *f = arg;
	struct seq_row *r = &f->seqs[f->n_seqs];

	assert_true(f->n_seqs < MAX_RECORDS);
	snprintf(r->model, sizeof(r->model), "%s", model);
	r->max = max;
	r->before_ready = store_get_state(f->store) != STORE_READY;
	f->n_seqs++;
}

static void on_log(void *arg, int level, const char *msg)
{
	struct fx *f = arg;

	if (strstr(msg, "applied schema migration"))
		f->migrations_logged++;
	if (level == LOG_WARNING)
		f->warnings++;
	if (level <= LOG_ERR)
		f->errors++;
	snprintf(f->last_log, sizeof(f->last_log), "%s", msg);
	if (getenv("DRIFTD_TEST_VERBOSE"))
		fprintf(stderr, "log %d: %s\n", level, msg);
}

static void on_drained(void *arg)
{
	struct fx *f = arg;

	f->drained = true;
}

static struct store *open_store_opts(struct fx *f, struct store_opts o)
{
	o.log = on_log;
	f->n_states = 0;
	f->n_seqs = 0;
	f->store = store_new(f->base, dsn, &o, on_state, on_seq, f);
	assert_non_null(f->store);
	assert_int_equal(store_start(f->store), 0);
	return f->store;
}

static struct store *open_store(struct fx *f)
{
	return open_store_opts(f, (struct store_opts){ 0 });
}

static void close_store(struct fx *f)
{
	store_free(f->store);
	f->store = NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool run_until(struct fx *f, bool (*cond)(struct fx *f), double seconds)
{
	double deadline = now_s() + seconds;

	while (!cond(f)) {
		if (now_s() > deadline)
			return false;
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	return true;
}

static void run_for(struct fx *f, double seconds)
{
	double deadline = now_s() + seconds;

	while (now_s() < deadline)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static bool is_ready(struct fx *f) { return store_get_state(f->store) == STORE_READY; }
static bool is_down(struct fx *f) { return store_get_state(f->store) == STORE_DOWN; }
static bool is_closed(struct fx *f) { return store_get_state(f->store) == STORE_CLOSED; }
static bool is_drained(struct fx *f) { return f->drained; }
static bool is_freed(struct fx *f) { return f->store == NULL; }
static bool went_down(struct fx *f) { return f->downs > 0; }

static void wait_ready(struct fx *f)
{
	assert_true(run_until(f, is_ready, 30));
}

/* Queue empty and everything acknowledged. */
static void drain(struct fx *f)
{
	f->drained = false;
	store_drain(f->store, on_drained, f);
	assert_true(run_until(f, is_drained, 30));
	assert_int_equal(store_pending(f->store), 0);
}

/* ---- checks through the blocking connection -------------------------------- */

static PGresult *query(struct fx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static PGresult *query(struct fx *f, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	PGresult *res;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = PQexec(f->db, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s\n-> %s", sql, PQresultErrorMessage(res));
	return res;
}

static long long count(struct fx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static long long count(struct fx *f, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	PGresult *res;
	long long n;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = query(f, "SELECT count(*) FROM (%s) q", sql);
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

static void exec(struct fx *f, const char *sql)
{
	PQclear(query(f, "%s", sql));
}

/* ---- data ---------------------------------------------------------------- */

static const struct store_test three_tests[] = {
	{ .test = "mmd", .statistic = 0.0123456789012345, .p_value = 0.00398,
	  .threshold = 0.01, .drifted = true, .effect = 0.3, .bandwidth = 12.5,
	  .permutations = 500 },
	{ .test = "centroid_cosine", .statistic = 0.25, .p_value = NAN,
	  .threshold = 0.2, .drifted = false, .effect = NAN, .bandwidth = NAN },
	{ .test = "ks \"dims\", 1", .statistic = 1e-300, .p_value = 1.0,
	  .threshold = 0.05, .drifted = false, .effect = -INFINITY, .bandwidth = NAN },
};

static struct store_window window(const char *model, const char *slice, int64_t id)
{
	return (struct store_window){
		.model = model, .slice = slice, .window_id = id,
		.start_us = T0_US + id * 60000000 + 123457,
		.end_us = T0_US + (id + 1) * 60000000 + 999999,
		.n = 1000, .reference_set_id = INT64_C(0x7edcba9876543210),
		.seed = UINT64_C(0xfedcba9876543210),
		.tests = three_tests, .n_tests = 3,
	};
}

static void put_window(struct fx *f, const char *model, const char *slice, int64_t id)
{
	struct store_window w = window(model, slice, id);

	assert_int_equal(store_put_window(f->store, &w), 0);
}

/* Two alarms of one record: Page-Hinkley on "*" with every value, ADWIN
 * on a slice with the NULLs it may have. */
static const struct store_stream_alarm two_alarms[] = {
	{ .id = INT64_C(0x1234567890abcdef), .slice = "*", .detector = "page_hinkley",
	  .signal = "error", .records_seen = 3093, .statistic = 20.160806077317716,
	  .threshold = 20, .up = true, .n_before = 3007, .n_after = 86,
	  .mean_before = 0.09544396408380446, .mean_after = 0.38372093023255816,
	  .params = "{\"delta\":0.05,\"threshold\":20,\"min_samples\":30,"
		    "\"forget\":1,\"direction\":\"up\"}" },
	{ .id = 7, .slice = "region=\"eu\",x\\y", .detector = "adwin",
	  .signal = "score", .records_seen = 1, .statistic = 0.25,
	  .threshold = NAN, .up = false, .n_before = 0, .n_after = 12,
	  .mean_before = NAN, .mean_after = 0.5,
	  .params = "{\"delta\":0.002,\"clock\":32,\"max_buckets\":5,\"min_window\":5}" },
};

static struct store_stream_alarms alarms_of(const char *model,
					    const struct store_event *ev, size_t n_ev)
{
	return (struct store_stream_alarms){
		.model = model, .detected_us = T0_US + 654321,
		.alarms = two_alarms, .n = 2, .events = ev, .n_events = n_ev,
	};
}

/* ---- migrations ------------------------------------------------------------ */

static void test_migrations_apply_and_are_recorded(void **state)
{
	struct fx *f = *state;
	PGresult *res;
	int v = store_schema_version();

	exec(f, "DROP SCHEMA IF EXISTS driftd CASCADE");
	open_store(f);
	wait_ready(f);
	assert_true(f->n_states >= 3);
	assert_int_equal(f->states[0], STORE_CONNECTING);
	assert_int_equal(f->states[1], STORE_MIGRATING);
	assert_int_equal(f->states[2], STORE_READY);
	assert_int_equal(f->migrations_logged, v);

	res = query(f, "SELECT count(*), max(version), min(version), "
		       "bool_and(applied_at <= now()) FROM driftd.schema_migrations");
	assert_int_equal(atoi(PQgetvalue(res, 0, 0)), v);
	assert_int_equal(atoi(PQgetvalue(res, 0, 1)), v);
	assert_int_equal(atoi(PQgetvalue(res, 0, 2)), 1);
	assert_string_equal(PQgetvalue(res, 0, 3), "t");
	PQclear(res);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.schema_migrations "
				  "WHERE version = 1 AND name = 'init'"), 1);
	assert_int_equal(count(f, "SELECT 1 FROM pg_tables WHERE schemaname = 'driftd' "
				  "AND tablename IN ('reference_sets', 'windows', "
				  "'test_results', 'slices')"), 4);
}

static void test_migrations_twice_is_noop(void **state)
{
	struct fx *f = *state;
	PGresult *before, *after;
	const char *sql = "SELECT string_agg(version || name || applied_at, ',' "
			  "ORDER BY version) FROM driftd.schema_migrations";

	open_store(f);
	wait_ready(f);
	close_store(f);
	before = query(f, "%s", sql);
	f->migrations_logged = 0;
	open_store(f);
	wait_ready(f);
	after = query(f, "%s", sql);
	assert_string_equal(PQgetvalue(before, 0, 0), PQgetvalue(after, 0, 0));
	assert_int_equal(f->migrations_logged, 0);
	PQclear(before);
	PQclear(after);
}

static void test_newer_schema_is_fatal(void **state)
{
	struct fx *f = *state;
	struct store_window w = window("never", "*", 1);

	open_store(f);
	wait_ready(f);
	close_store(f);
	exec(f, "INSERT INTO driftd.schema_migrations (version, name) VALUES (999, 'future')");
	open_store(f);
	f->drained = false;
	store_drain(f->store, on_drained, f);
	assert_true(run_until(f, is_closed, 30));
	exec(f, "DELETE FROM driftd.schema_migrations WHERE version = 999");
	assert_non_null(strstr(f->why, "999"));
	assert_non_null(strstr(f->why, "newer"));
	assert_true(f->drained);
	assert_int_equal(store_put_window(f->store, &w), -EPIPE);
}

/* ---- windows and views ----------------------------------------------------- */

static void assert_columns(struct fx *f, const char *view, const char *expected)
{
	PGresult *res = query(f,
		"SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
		"FROM information_schema.columns WHERE table_schema = 'driftd' "
		"AND table_name = '%s'", view);

	assert_string_equal(PQgetvalue(res, 0, 0), expected);
	PQclear(res);
}

static void test_views_have_contract_columns(void **state)
{
	struct fx *f = *state;

	open_store(f);
	wait_ready(f);
	assert_columns(f, "drift_history",
		       "model text, slice text, window_id bigint, "
		       "window_start timestamp with time zone, "
		       "window_end timestamp with time zone, n integer, test text, "
		       "statistic double precision, p_value double precision, "
		       "threshold double precision, drifted boolean");
	assert_columns(f, "latest_status",
		       "model text, slice text, window_end timestamp with time zone, "
		       "drifted boolean, tests ARRAY");
	assert_int_equal(count(f, "SELECT 1 FROM information_schema.columns "
				  "WHERE table_schema = 'driftd' AND table_name = "
				  "'latest_status' AND column_name = 'tests' AND udt_name = '_text'"), 1);
	assert_columns(f, "webhook_deliveries",
		       "id text, event text, model text, endpoint text, status text, "
		       "attempts integer, last_http_status integer, "
		       "created_at timestamp with time zone, "
		       "first_attempt_at timestamp with time zone, "
		       "last_attempt_at timestamp with time zone, "
		       "next_attempt_at timestamp with time zone, "
		       "delivered_at timestamp with time zone, last_error text");
	assert_columns(f, "stream_alarm_history",
		       "model text, slice text, detected_at timestamp with time zone, "
		       "detector text, signal text, direction text, "
		       "statistic double precision, threshold double precision, "
		       "records_seen bigint, n_before bigint, mean_before double precision, "
		       "n_after bigint, mean_after double precision, params jsonb, "
		       "alarm_id bigint");
}

static void test_window_lands_in_drift_history(void **state)
{
	struct fx *f = *state;
	struct store_window w = window("hist", "region=eu,device=ios", 42);
	PGresult *res;

	open_store(f);
	assert_int_equal(store_put_window(f->store, &w), 0);
	assert_int_equal(store_pending(f->store), 1);
	wait_ready(f);
	drain(f);
	assert_int_equal(store_written(f->store), 1);

	res = query(f, "SELECT model, slice, window_id, "
		       "(extract(epoch FROM window_start) * 1000000)::int8, "
		       "(extract(epoch FROM window_end) * 1000000)::int8, n, test, "
		       "statistic = 0.0123456789012345, p_value, threshold, drifted "
		       "FROM driftd.drift_history WHERE model = 'hist' ORDER BY test");
	assert_int_equal(PQntuples(res), 3);
	/* ORDER BY test: centroid_cosine, "ks \"dims\", 1", mmd */
	assert_string_equal(PQgetvalue(res, 2, 0), "hist");
	assert_string_equal(PQgetvalue(res, 2, 1), "region=eu,device=ios");
	assert_string_equal(PQgetvalue(res, 2, 2), "42");
	assert_int_equal(strtoll(PQgetvalue(res, 2, 3), NULL, 10), w.start_us);
	assert_int_equal(strtoll(PQgetvalue(res, 2, 4), NULL, 10), w.end_us);
	assert_string_equal(PQgetvalue(res, 2, 5), "1000");
	assert_string_equal(PQgetvalue(res, 2, 6), "mmd");
	assert_string_equal(PQgetvalue(res, 2, 7), "t");
	assert_true(strtod(PQgetvalue(res, 2, 8), NULL) == 0.00398);
	assert_string_equal(PQgetvalue(res, 2, 10), "t");
	assert_string_equal(PQgetvalue(res, 0, 6), "centroid_cosine");
	assert_true(PQgetisnull(res, 0, 8));
	assert_string_equal(PQgetvalue(res, 0, 10), "f");
	assert_string_equal(PQgetvalue(res, 1, 6), "ks \"dims\", 1");
	PQclear(res);

	res = query(f, "SELECT seed, bandwidth, permutations, effect FROM driftd.test_results "
		       "WHERE model = 'hist' ORDER BY test");
	assert_string_equal(PQgetvalue(res, 2, 0), "-81985529216486896");
	assert_string_equal(PQgetvalue(res, 2, 1), "12.5");
	assert_string_equal(PQgetvalue(res, 2, 2), "500");
	assert_string_equal(PQgetvalue(res, 2, 3), "0.3");
	assert_true(PQgetisnull(res, 0, 1));
	assert_true(PQgetisnull(res, 0, 2));
	assert_true(PQgetisnull(res, 0, 3));
	assert_string_equal(PQgetvalue(res, 1, 3), "-Infinity");
	PQclear(res);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'hist' "
				  "AND reference_set_id = 9141386507638288912"), 1);
}

static void test_replay_does_not_duplicate(void **state)
{
	struct fx *f = *state;
	struct store_window w = window("replay", "*", 7);

	open_store(f);
	put_window(f, "replay", "*", 7);
	put_window(f, "replay", "*", 7);
	wait_ready(f);
	drain(f);
	assert_int_equal(store_written(f->store), 2);
	assert_int_equal(store_duplicates(f->store), 1);
	assert_int_equal(f->warnings, 0);
	close_store(f);

	/* After a restart, and with a reused id: kept once, and said so. */
	open_store(f);
	w.n = 999;
	assert_int_equal(store_put_window(f->store, &w), 0);
	wait_ready(f);
	drain(f);
	assert_int_equal(store_duplicates(f->store), 1);
	assert_int_equal(f->warnings, 1);
	assert_non_null(strstr(f->last_log, "reused"));
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'replay'"), 1);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.test_results WHERE model = 'replay'"), 3);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'replay' "
				  "AND n = 1000"), 1);
}

static void put_status_window(struct fx *f, const char *slice, int64_t id,
			      bool mmd, bool ks)
{
	struct store_test tests[] = {
		{ .test = "mmd", .statistic = 1, .p_value = 0.5, .threshold = 0.01, .drifted = mmd },
		{ .test = "ks_dims", .statistic = 1, .p_value = 0.5, .threshold = 0.01, .drifted = ks },
		{ .test = "centroid", .statistic = 1, .p_value = NAN, .threshold = 0.01 },
	};
	struct store_window w = window("status", slice, id);

	w.tests = tests;
	w.n_tests = 3;
	assert_int_equal(store_put_window(f->store, &w), 0);
}

static void test_latest_status_picks_newest_window(void **state)
{
	struct fx *f = *state;
	PGresult *res;

	open_store(f);
	put_status_window(f, "a", 3, true, true);
	put_status_window(f, "a", 1, true, false);
	put_status_window(f, "a", 2, false, false);
	put_status_window(f, "b", 1, true, false);
	put_status_window(f, "b", 2, false, false);
	wait_ready(f);
	drain(f);
	res = query(f, "SELECT slice, (extract(epoch FROM window_end) * 1000000)::int8, "
		       "drifted, tests, cardinality(tests) FROM driftd.latest_status "
		       "WHERE model = 'status' ORDER BY slice");
	assert_int_equal(PQntuples(res), 2);
	assert_string_equal(PQgetvalue(res, 0, 0), "a");
	assert_int_equal(strtoll(PQgetvalue(res, 0, 1), NULL, 10), window("", "", 3).end_us);
	assert_string_equal(PQgetvalue(res, 0, 2), "t");
	assert_string_equal(PQgetvalue(res, 0, 3), "{ks_dims,mmd}");
	assert_string_equal(PQgetvalue(res, 1, 0), "b");
	assert_int_equal(strtoll(PQgetvalue(res, 1, 1), NULL, 10), window("", "", 2).end_us);
	assert_string_equal(PQgetvalue(res, 1, 2), "f");
	assert_string_equal(PQgetvalue(res, 1, 3), "{}");
	assert_string_equal(PQgetvalue(res, 1, 4), "0");
	PQclear(res);
}

static void test_sequences_come_back(void **state)
{
	struct fx *f = *state;
	size_t found = 0;

	open_store(f);
	put_window(f, "seq", "s1", 3);
	put_window(f, "seq", "s1", 7);
	put_window(f, "seq", "s1", 5);
	put_window(f, "seq", "s2", 2);
	wait_ready(f);
	drain(f);
	close_store(f);

	open_store(f);
	wait_ready(f);
	for (size_t i = 0; i < f->n_seqs; i++) {
		const struct seq_row *r = &f->seqs[i];

		if (strcmp(r->model, "seq") != 0)
			continue;
		assert_true(r->before_ready);
		/* The highest id of the model, whatever its slice. */
		assert_int_equal(r->max, 7);
		found++;
	}
	assert_int_equal(found, 1);
}

/* ---- references, validation, errors ----------------------------------------- */

/* ---- slices: restore, retirement, decisions, the journal --------------------- */

/* Reference set ids are global: these stay clear of the other tests'. */
#define RS_ID 5000

struct restored {
	int64_t ids[8];
	unsigned n;
	float data5;
	unsigned k, source_dim, cal_n;
	double cal_ece;
};

static struct restored got;

static bool want_ref(void *arg, const struct store_reference *r)
{
	return strcmp(r->model, "rs") == 0;
}

static void restore_ref(void *arg, const struct store_reference *r)
{
	assert_true(got.n < 8);
	got.ids[got.n++] = r->id;
	if (r->id == RS_ID + 1) {
		got.data5 = r->data[5];
		got.k = r->k;
		assert_non_null(r->scores);
		assert_true(r->scores[1] == 0.75f);
		got.cal_n = r->cal_n;
		got.cal_ece = r->cal_ece;
	}
	if (r->id == RS_ID + 2)
		got.source_dim = r->source_dim;
}

/* The newest set of each (model, slice) comes back unless it was saved
 * without vectors or retired since; older ones never do. */
static void test_references_restored(void **state)
{
	struct fx *f = *state;
	const float data[] = { 1, 2, 3, 4, 5, 6.5f }, scores[] = { 0.25f, 0.75f };
	struct store_reference a = {
		.model = "rs", .slice = "*", .id = RS_ID + 1, .created_us = T0_US,
		.n = 2, .dim = 3, .data = data, .persist = STORE_PERSIST_RAW, .k = 1,
		.scores = scores, .cal_n = 40, .cal_ece = 0.125, .cal_brier = 0.2,
	};
	struct store_reference older = a, b = a, c = a, d = a;

	older.id = RS_ID + 9;
	older.created_us = T0_US - 1000000;
	b.id = RS_ID + 2;
	b.slice = "s=proj";
	b.persist = STORE_PERSIST_PROJECTED;
	b.source_dim = 768;
	c.id = RS_ID + 3;
	c.slice = "s=none";
	c.persist = STORE_PERSIST_NONE;
	d.id = RS_ID + 4;
	d.slice = "s=gone";
	open_store(f);
	assert_int_equal(store_put_reference(f->store, &older), 0);
	assert_int_equal(store_put_reference(f->store, &a), 0);
	assert_int_equal(store_put_reference(f->store, &b), 0);
	assert_int_equal(store_put_reference(f->store, &c), 0);
	assert_int_equal(store_put_reference(f->store, &d), 0);
	assert_int_equal(store_retire_references(f->store, "rs", "s=gone",
						 T0_US + 1, "expired"), 0);
	assert_int_equal(store_retire_references(f->store, "rs", NULL, T0_US - 1,
						 "reset"), 0);
	assert_int_equal(store_retire_references(f->store, "", NULL, 1, "reset"),
			 -EINVAL);
	wait_ready(f);
	drain(f);
	close_store(f);

	memset(&got, 0, sizeof(got));
	open_store_opts(f, (struct store_opts){ .want = want_ref,
						.restore = restore_ref });
	wait_ready(f);
	assert_int_equal(got.n, 2);
	assert_true(got.ids[0] + got.ids[1] == 2 * RS_ID + 3);
	assert_true(got.data5 == 6.5f);
	assert_int_equal(got.k, 1);
	assert_int_equal(got.cal_n, 40);
	assert_true(got.cal_ece == 0.125);
	assert_int_equal(got.source_dim, 768);

	/* Versions per slice, and what retired which. */
	assert_int_equal(count(f, "SELECT 1 FROM driftd.reference_history WHERE "
				  "model = 'rs' AND slice = '*' AND version = 2 AND "
				  "reference_set_id = %d AND retired_at IS NULL", RS_ID + 1), 1);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.reference_history WHERE "
				  "model = 'rs' AND reference_set_id = %d AND "
				  "retired_at IS NOT NULL", RS_ID + 9), 1);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.reference_history WHERE "
				  "model = 'rs' AND reference_set_id = %d AND "
				  "retired_at IS NOT NULL", RS_ID + 4), 1);
	/* A replayed retirement adds nothing. */
	assert_int_equal(store_retire_references(f->store, "rs", "s=gone",
						 T0_US + 1, "expired"), 0);
	drain(f);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.reference_resets WHERE "
				  "model = 'rs'"), 2);
}

/* The decision and calibration columns of a window, and a window recorded
 * without a test. */
static void test_decision_and_calibration_rows(void **state)
{
	struct fx *f = *state;
	struct store_decision d = {
		.drifted = true, .alarm = false, .alpha = 0.01, .correction = "bh",
		.family_size = 51, .alarm_k = 2, .alarm_m = 3, .recent_drifted = 1,
		.evaluated_us = T0_US,
	};
	struct store_calibration cal = {
		.n_labeled = 40, .labels_seen = 55, .ece = 0.1, .mce = 0.3,
		.brier = 0.2, .accuracy = 0.75, .reference_ece = 0.05,
		.reference_brier = NAN, .degraded = true,
	};
	struct store_test short_row = {
		.test = "insufficient_data", .statistic = 3, .p_value = NAN,
		.threshold = 20, .effect = NAN, .bandwidth = NAN, .effect_floor = NAN,
	};
	struct store_window w = window("dec", "s=a", 1), s = window("dec", "s=b", 1);
	PGresult *res;

	w.decision = &d;
	w.calibration = &cal;
	w.reference_fallback = true;
	s.tests = &short_row;
	s.n_tests = 1;
	s.insufficient = true;
	s.reference_set_id = 0;
	open_store(f);
	assert_int_equal(store_put_window(f->store, &w), 0);
	assert_int_equal(store_put_window(f->store, &s), 0);
	wait_ready(f);
	drain(f);
	res = query(f, "SELECT status, reference_fallback, drifted, alarm, alpha, "
		       "correction, family_size, alarm_k, alarm_m, recent_drifted, "
		       "(extract(epoch FROM evaluated_at) * 1000000)::int8, "
		       "calibration_degraded, reference_set_id IS NULL "
		       "FROM driftd.window_decisions WHERE model = 'dec' ORDER BY slice");
	assert_int_equal(PQntuples(res), 2);
	assert_string_equal(PQgetvalue(res, 0, 0), "tested");
	assert_string_equal(PQgetvalue(res, 0, 1), "t");
	assert_string_equal(PQgetvalue(res, 0, 2), "t");
	assert_string_equal(PQgetvalue(res, 0, 3), "f");
	assert_string_equal(PQgetvalue(res, 0, 4), "0.01");
	assert_string_equal(PQgetvalue(res, 0, 5), "bh");
	assert_string_equal(PQgetvalue(res, 0, 6), "51");
	assert_string_equal(PQgetvalue(res, 0, 9), "1");
	assert_int_equal(strtoll(PQgetvalue(res, 0, 10), NULL, 10), T0_US);
	assert_string_equal(PQgetvalue(res, 0, 11), "t");
	assert_string_equal(PQgetvalue(res, 1, 0), "insufficient_data");
	assert_true(PQgetisnull(res, 1, 2));
	assert_true(PQgetisnull(res, 1, 11));
	assert_string_equal(PQgetvalue(res, 1, 12), "t");
	PQclear(res);
	res = query(f, "SELECT h.n_labeled, h.ece, h.mce, h.brier, h.accuracy, "
		       "c.labels_seen, c.reference_brier IS NULL "
		       "FROM driftd.calibration_history h "
		       "JOIN driftd.calibration_results c USING (model, slice, window_id) "
		       "WHERE h.model = 'dec'");
	assert_int_equal(PQntuples(res), 1);
	assert_string_equal(PQgetvalue(res, 0, 0), "40");
	assert_string_equal(PQgetvalue(res, 0, 1), "0.1");
	assert_string_equal(PQgetvalue(res, 0, 4), "0.75");
	assert_string_equal(PQgetvalue(res, 0, 5), "55");
	assert_string_equal(PQgetvalue(res, 0, 6), "t");
	PQclear(res);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.drift_history WHERE model = 'dec' "
				  "AND test = 'insufficient_data' AND statistic = 3 AND "
				  "threshold = 20 AND p_value IS NULL AND NOT drifted"), 1);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.test_results WHERE model = 'dec' "
				  "AND test = 'mmd' AND effect_floor = 0"), 1);
}

/* Writes put while the database is unreachable wait in the journal on
 * disk; a new store on the same journal (after a crash) writes them, in
 * order, once the database is there. */
static void test_journal_survives_restart(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/driftd-store-jnl-XXXXXX", path[64];
	struct store_reference r = { .model = "jr", .slice = "*", .id = RS_ID + 77,
				     .created_us = T0_US, .n = 0, .dim = 3,
				     .persist = STORE_PERSIST_NONE };
	struct store_opts o = { .log = on_log };
	struct store_journal_stats js;
	struct store_stream_alarms alarms = alarms_of("jr", NULL, 0);
	/* Ids of their own: alarm ids are unique across models. */
	struct store_stream_alarm own[2] = { two_alarms[0], two_alarms[1] };

	own[0].id = 101;
	own[1].id = 102;
	alarms.alarms = own;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	o.journal_path = path;
	f->store = store_new(f->base, "host=/nonexistent port=1 dbname=x", &o,
			     on_state, on_seq, f);
	assert_non_null(f->store);
	assert_int_equal(store_start(f->store), 0);
	assert_true(store_accepting(f->store));
	assert_int_equal(store_put_reference(f->store, &r), 0);
	for (int i = 1; i <= 5; i++)
		put_window(f, "jr", "*", i);
	assert_int_equal(store_retire_references(f->store, "jr", NULL, T0_US + 5,
						 "reset"), 0);
	assert_int_equal(store_put_stream_alarms(f->store, &alarms), 0);
	run_for(f, 0.3);
	store_journal_stats(f->store, &js);
	assert_true(js.enabled);
	assert_int_equal(js.records, 8);
	assert_int_equal(store_pending_memory(f->store), 0);
	close_store(f);

	open_store_opts(f, (struct store_opts){ .journal_path = path });
	assert_int_equal(store_pending(f->store), 8);
	wait_ready(f);
	drain(f);
	store_journal_stats(f->store, &js);
	assert_int_equal(js.records, 0);
	assert_int_equal(js.replayed, 8);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'jr'"), 5);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.stream_alarm_history WHERE "
				  "model = 'jr'"), 2);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.reference_history WHERE "
				  "model = 'jr' AND retired_at IS NOT NULL"), 1);
	close_store(f);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* ---- the K-of-M history at start ---------------------------------------------- */

struct kofm {
	bool want, called;
	char keys[8][32];	/* "model/slice" */
	char seq[8][80];	/* "3:t 4:t 5:f": alarm_m:drifted, oldest first */
	size_t n;
};

static struct kofm kofm;

static bool history_want(void *arg)
{
	return kofm.want;
}

static void history(void *arg, const struct store_history *h, size_t n)
{
	assert_false(kofm.called);
	kofm.called = true;
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;

		if (strncmp(h[i].model, "kofm", 4))
			continue;	/* the other tests' models */
		assert_true(kofm.n < 8);
		assert_true(h[i].n >= 1 && h[i].n <= STORE_HISTORY_MAX);
		snprintf(kofm.keys[kofm.n], sizeof(kofm.keys[0]), "%s/%s",
			 h[i].model, h[i].slice);
		for (size_t k = 0; k < h[i].n; k++)
			len += (size_t)snprintf(kofm.seq[kofm.n] + len,
						sizeof(kofm.seq[0]) - len, "%s%u:%c",
						k ? " " : "", h[i].alarm_m[k],
						h[i].drifted[k] ? 't' : 'f');
		kofm.n++;
	}
}

static const char *seq_of(const char *key)
{
	for (size_t i = 0; i < kofm.n; i++)
		if (!strcmp(kofm.keys[i], key))
			return kofm.seq[i];
	return "(none)";
}

/* Window ID of MODEL/SLICE decided at T0 + ID s (drifted, under ALARM_M),
 * or recorded as insufficient_data when ALARM_M is 0. */
static void put_decided(struct store *st, const char *model, const char *slice,
			int64_t id, bool drifted, unsigned alarm_m)
{
	static const struct store_test short_row = {
		.test = "insufficient_data", .statistic = 3, .p_value = NAN,
		.threshold = 20, .effect = NAN, .bandwidth = NAN, .effect_floor = NAN,
	};
	struct store_decision d = {
		.drifted = drifted, .alpha = 0.01, .correction = "bh", .family_size = 1,
		.alarm_k = 2, .alarm_m = alarm_m, .evaluated_us = T0_US + id * 1000000,
	};
	struct store_window w = window(model, slice, id);

	w.decision = &d;
	if (!alarm_m) {
		w.decision = NULL;
		w.insufficient = true;
		w.tests = &short_row;
		w.n_tests = 1;
		w.reference_set_id = 0;
	}
	assert_int_equal(store_put_window(st, &w), 0);
}

/* From the database: per slice the decisions since its model's last reset
 * or its own expiry, as many as the newest had alarm.m, insufficient_data
 * windows left out; then the journal's windows (its head already written
 * too) and retirements, in order; nothing when not wanted. */
static void test_history_restored(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/driftd-store-kofm-XXXXXX", path[64];
	struct store_opts o = { .history_want = history_want, .history = history };
	struct store_opts jo = { .log = on_log };
	static const bool star[] = { true, false, true, true, false };

	open_store(f);
	for (int i = 0; i < 5; i++)
		put_decided(f->store, "kofm", "*", i + 1, star[i], 3);
	put_decided(f->store, "kofm", "s=a", 1, true, 2);
	put_decided(f->store, "kofm", "s=a", 3, true, 2);
	put_decided(f->store, "kofm", "s=b", 1, true, 4);
	put_decided(f->store, "kofm", "s=b", 2, false, 0);
	put_decided(f->store, "kofm", "s=c", 1, true, 1);
	put_decided(f->store, "kofm", "s=c", 2, true, 3);
	put_decided(f->store, "kofm2", "*", 1, true, 3);
	put_decided(f->store, "kofm2", "*", 4, true, 3);
	/* s=a expired between its windows 1 and 3; kofm2 was reset after its
	 * window 1 and before 4. */
	assert_int_equal(store_retire_references(f->store, "kofm", "s=a",
						 T0_US + 2000000, "expired"), 0);
	assert_int_equal(store_retire_references(f->store, "kofm2", NULL,
						 T0_US + 2000000, "reset"), 0);
	wait_ready(f);
	drain(f);
	close_store(f);

	/* Not wanted: no query, no call. */
	memset(&kofm, 0, sizeof(kofm));
	open_store_opts(f, o);
	wait_ready(f);
	assert_false(kofm.called);
	close_store(f);

	kofm.want = true;
	open_store_opts(f, o);
	wait_ready(f);
	assert_true(kofm.called);
	assert_int_equal(kofm.n, 5);
	assert_string_equal(seq_of("kofm/*"), "3:t 3:t 3:f");
	assert_string_equal(seq_of("kofm/s=a"), "2:t");
	assert_string_equal(seq_of("kofm/s=b"), "4:t");
	assert_string_equal(seq_of("kofm/s=c"), "1:t 3:t");
	assert_string_equal(seq_of("kofm2/*"), "3:t");
	close_store(f);

	/* Writes waiting in a journal: the database's newest window again
	 * (written, not consumed, before a crash), one more, an expiry. */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	jo.journal_path = path;
	f->store = store_new(f->base, "host=/nonexistent port=1 dbname=x", &jo,
			     on_state, on_seq, f);
	assert_non_null(f->store);
	assert_int_equal(store_start(f->store), 0);
	put_decided(f->store, "kofm", "*", 5, true, 3);
	put_decided(f->store, "kofm", "*", 6, true, 4);
	put_decided(f->store, "kofm", "s=b", 3, false, 0);
	assert_int_equal(store_retire_references(f->store, "kofm", "s=c",
						 T0_US + 9000000, "expired"), 0);
	put_decided(f->store, "kofm", "s=d", 7, true, 2);
	run_for(f, 0.2);
	close_store(f);

	memset(&kofm, 0, sizeof(kofm));
	kofm.want = true;
	o.journal_path = path;
	open_store_opts(f, o);
	wait_ready(f);
	assert_true(kofm.called);
	assert_int_equal(kofm.n, 5);
	assert_string_equal(seq_of("kofm/*"), "3:t 3:t 3:f 4:t");
	assert_string_equal(seq_of("kofm/s=a"), "2:t");
	assert_string_equal(seq_of("kofm/s=b"), "4:t");
	assert_string_equal(seq_of("kofm/s=c"), "(none)");
	assert_string_equal(seq_of("kofm/s=d"), "2:t");
	drain(f);
	close_store(f);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

/* A history query that outlives query_timeout is given up: the store goes
 * ready without it (after one reconnect) and never calls history. */
static void test_history_timeout_is_given_up(void **state)
{
	struct fx *f = *state;
	struct store_opts o = { .history_want = history_want, .history = history,
				.query_timeout_us = 300000 };

	memset(&kofm, 0, sizeof(kofm));
	kofm.want = true;
	open_store(f);
	wait_ready(f);
	close_store(f);
	exec(f, "BEGIN; LOCK TABLE driftd.windows IN ACCESS EXCLUSIVE MODE");
	f->downs = 0;
	open_store_opts(f, o);
	assert_true(run_until(f, went_down, 10));
	/* Our deadline, or the server's statement_timeout 1 ms after it,
	 * whichever the loop hears of first. */
	if (!strstr(f->why, "timed out") && !strstr(f->why, "statement timeout"))
		fail_msg("went down for another reason: %s", f->why);
	wait_ready(f);
	assert_false(kofm.called);
	exec(f, "ROLLBACK");
}

/* The alarm rows land in stream_alarm_history with their event, in one
 * statement; a replay adds neither again. */
static void test_stream_alarms(void **state)
{
	struct fx *f = *state;
	struct store_event ev = {
		.id = "msg_stream_1", .endpoint = "hook", .type = "stream.alarm",
		.model = "sm", .body = "{\"type\":\"stream.alarm\"}",
		.created_us = T0_US + 654321, .cooldown_us = 0,
	};
	struct store_stream_alarms a = alarms_of("sm", &ev, 1);
	struct store_stream_alarm bad = two_alarms[0];
	PGresult *res;

	open_store(f);
	assert_int_equal(store_put_stream_alarms(f->store, &a), 0);
	assert_int_equal(store_put_stream_alarms(f->store, &a), 0);
	wait_ready(f);
	drain(f);
	res = query(f, "SELECT slice, detected_at = '2025-11-29 12:00:00.654321+00', "
		       "detector, signal, direction, statistic, threshold, records_seen, "
		       "n_before, mean_before, n_after, mean_after, params->>'threshold', "
		       "alarm_id FROM driftd.stream_alarm_history WHERE model = 'sm' "
		       "ORDER BY alarm_id DESC");
	assert_int_equal(PQntuples(res), 2);
	assert_string_equal(PQgetvalue(res, 0, 0), "*");
	assert_string_equal(PQgetvalue(res, 0, 1), "t");
	assert_string_equal(PQgetvalue(res, 0, 2), "page_hinkley");
	assert_string_equal(PQgetvalue(res, 0, 3), "error");
	assert_string_equal(PQgetvalue(res, 0, 4), "up");
	assert_true(strtod(PQgetvalue(res, 0, 5), NULL) == 20.160806077317716);
	assert_string_equal(PQgetvalue(res, 0, 6), "20");
	assert_string_equal(PQgetvalue(res, 0, 7), "3093");
	assert_string_equal(PQgetvalue(res, 0, 8), "3007");
	assert_true(strtod(PQgetvalue(res, 0, 9), NULL) == 0.09544396408380446);
	assert_string_equal(PQgetvalue(res, 0, 10), "86");
	assert_string_equal(PQgetvalue(res, 0, 12), "20");
	assert_string_equal(PQgetvalue(res, 0, 13), "1311768467294899695");
	assert_string_equal(PQgetvalue(res, 1, 0), "region=\"eu\",x\\y");
	assert_string_equal(PQgetvalue(res, 1, 2), "adwin");
	assert_string_equal(PQgetvalue(res, 1, 4), "down");
	assert_true(PQgetisnull(res, 1, 6) && PQgetisnull(res, 1, 9));
	assert_string_equal(PQgetvalue(res, 1, 11), "0.5");
	PQclear(res);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.webhook_outbox WHERE id = "
				  "'msg_stream_1' AND event = 'stream.alarm' AND model = 'sm' "
				  "AND status = 'pending'"), 1);

	/* Bad alarms are refused before they are queued. */
	a.alarms = &bad;
	a.n = 1;
	bad.id = 0;
	assert_int_equal(store_put_stream_alarms(f->store, &a), -EINVAL);
	bad = two_alarms[0];
	bad.records_seen = 0;
	assert_int_equal(store_put_stream_alarms(f->store, &a), -EINVAL);
	bad = two_alarms[0];
	bad.statistic = NAN;
	assert_int_equal(store_put_stream_alarms(f->store, &a), -EINVAL);
	bad = two_alarms[0];
	bad.detector = "";
	assert_int_equal(store_put_stream_alarms(f->store, &a), -EINVAL);
	a.n = 0;
	assert_int_equal(store_put_stream_alarms(f->store, &a), -EINVAL);
	assert_int_equal(store_pending(f->store), 0);
}

static void test_reference_sets(void **state)
{
	struct fx *f = *state;
	const float data[] = { 1.0f, -2.0f, 0.5f, 0.0f, 3.25f, -0.125f };
	struct store_reference raw = { .model = "ref", .slice = "*", .id = 11, .n = 2,
				       .dim = 3, .data = data, .persist = STORE_PERSIST_RAW };
	struct store_reference proj = raw;
	struct store_reference again = raw;
	PGresult *res;

	proj.id = 12;
	proj.persist = STORE_PERSIST_PROJECTED;
	proj.source_dim = 768;
	again.slice = "other";
	open_store(f);
	assert_int_equal(store_put_reference(f->store, &raw), 0);
	assert_int_equal(store_put_reference(f->store, &proj), 0);
	assert_int_equal(store_put_reference(f->store, &again), 0);
	wait_ready(f);
	drain(f);
	res = query(f, "SELECT id, slice, n, dim, persist, encode(data, 'hex'), "
		       "created_at <= now() FROM driftd.reference_sets "
		       "WHERE model = 'ref' ORDER BY id");
	assert_int_equal(PQntuples(res), 2);
	assert_string_equal(PQgetvalue(res, 0, 1), "*");
	assert_string_equal(PQgetvalue(res, 0, 2), "2");
	assert_string_equal(PQgetvalue(res, 0, 3), "3");
	assert_string_equal(PQgetvalue(res, 0, 4), "raw");
	/* float32 little-endian: 1, -2, 0.5, 0, 3.25, -0.125 */
	assert_string_equal(PQgetvalue(res, 0, 5),
			    "0000803f000000c00000003f0000000000005040000000be");
	assert_string_equal(PQgetvalue(res, 0, 6), "t");
	/* A projected set keeps its (projected) vectors as well. */
	assert_string_equal(PQgetvalue(res, 1, 4), "projected");
	assert_string_equal(PQgetvalue(res, 1, 5), PQgetvalue(res, 0, 5));
	PQclear(res);
}

static void test_invalid_input_is_refused(void **state)
{
	struct fx *f = *state;
	struct store_test dup[] = { three_tests[0], three_tests[0] };
	struct store_window w = window("bad", "*", 1);
	struct store_reference r = { .model = "m", .slice = "*", .id = 1, .n = 2, .dim = 3,
				     .persist = STORE_PERSIST_RAW };

	open_store_opts(f, (struct store_opts){ .max_pending = 2 });
	w.model = "";
	assert_int_equal(store_put_window(f->store, &w), -EINVAL);
	w = window("bad", "*", 1);
	w.end_us = w.start_us - 1;
	assert_int_equal(store_put_window(f->store, &w), -EINVAL);
	w = window("bad", "*", 1);
	w.tests = dup;
	w.n_tests = 2;
	assert_int_equal(store_put_window(f->store, &w), -EINVAL);
	w = window("bad", "*", 1);
	w.tests = NULL;
	assert_int_equal(store_put_window(f->store, &w), -EINVAL);
	assert_int_equal(store_put_reference(f->store, &r), -EINVAL);
	r.persist = STORE_PERSIST_NONE;
	r.dim = 0;
	assert_int_equal(store_put_reference(f->store, &r), -EINVAL);
	assert_int_equal(store_pending(f->store), 0);

	/* The bound counts windows only. */
	w = window("bad", "*", 1);
	w.n_tests = 0;
	assert_int_equal(store_put_window(f->store, &w), 0);
	assert_int_equal(store_put_window(f->store, &w), 0);
	assert_int_equal(store_put_window(f->store, &w), -ENOBUFS);
	r.dim = 3;
	assert_int_equal(store_put_reference(f->store, &r), 0);
	assert_int_equal(store_pending(f->store), 3);
	wait_ready(f);
	drain(f);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'bad'"), 1);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.test_results WHERE model = 'bad'"), 0);
}

static void test_rejected_row_is_dropped(void **state)
{
	struct fx *f = *state;

	open_store(f);
	put_window(f, "bad\xff utf8", "*", 1);
	put_window(f, "dropped", "*", 1);
	wait_ready(f);
	drain(f);
	assert_int_equal(store_dropped(f->store), 1);
	assert_int_equal(store_written(f->store), 1);
	assert_int_equal(f->errors, 1);
	assert_non_null(strstr(f->last_log, "22021"));
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'dropped'"), 1);
}

/* ---- connection trouble ------------------------------------------------------ */

static void test_query_timeout_retries(void **state)
{
	struct fx *f = *state;

	open_store_opts(f, (struct store_opts){ .query_timeout_us = 300000 });
	wait_ready(f);
	exec(f, "BEGIN; LOCK TABLE driftd.windows IN ACCESS EXCLUSIVE MODE");
	put_window(f, "timeout", "*", 1);
	run_for(f, 1.0);
	assert_true(f->downs >= 1);
	assert_int_equal(store_pending(f->store), 1);
	exec(f, "ROLLBACK");
	drain(f);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'timeout'"), 1);
}

/* Statements are prepared per connection: after the server ended the
 * writer's session, the next write prepares its statement again on the new
 * one instead of naming a statement that session never had. */
static void test_statements_prepared_again_after_reconnect(void **state)
{
	struct fx *f = *state;

	open_store(f);
	put_window(f, "prep", "*", 1);
	wait_ready(f);
	drain(f);
	f->downs = 0;
	exec(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		"WHERE application_name = 'driftd'");
	assert_true(run_until(f, went_down, 10));
	put_window(f, "prep", "*", 2);
	drain(f);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'prep'"), 2);
	assert_int_equal(f->errors, 0);
}

static void test_unreachable_server_is_retried(void **state)
{
	struct fx *f = *state;

	f->store = store_new(f->base, "host=/nonexistent port=1 dbname=x", NULL,
			     on_state, on_seq, f);
	assert_non_null(f->store);
	assert_int_equal(store_start(f->store), 0);
	assert_int_equal(store_start(f->store), -EALREADY);
	put_window(f, "never", "*", 1);
	run_for(f, 1.0);
	/* 100 ms doubling with jitter: several attempts in a second. */
	assert_true(f->downs >= 3);
	assert_int_equal(store_get_state(f->store), STORE_DOWN);
	assert_non_null(strstr(f->why, "/nonexistent"));
	assert_int_equal(store_pending(f->store), 1);
}

static void test_dsn_must_not_need_dns(void **state)
{
	struct fx *f = *state;
	struct store_opts o = { .log = on_log };
	const char *refused[] = { "host=db.example.com dbname=x", "host=/tmp,localhost",
				  "postgresql://db.example.com/x", "host='unterminated" };
	const char *accepted[] = { "host=/run/postgresql", "host=127.0.0.1,::1",
				   "hostaddr=192.0.2.1 host=db.example.com", "host=@abstract",
				   "dbname=x" };
	struct store *s;

	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		f->errors = 0;
		assert_null(store_new(f->base, refused[i], &o, on_state, on_seq, f));
		assert_int_equal(f->errors, 1);
	}
	for (size_t i = 0; i < sizeof(accepted) / sizeof(*accepted); i++) {
		s = store_new(f->base, accepted[i], &o, on_state, on_seq, f);
		assert_non_null(s);
		store_free(s);
	}
}

static void test_free_from_callback_and_immediate_drain(void **state)
{
	struct fx *f = *state;

	open_store(f);
	f->drained = false;
	store_drain(f->store, on_drained, f);
	assert_true(f->drained);
	f->free_on_ready = true;
	put_window(f, "freed", "*", 1);
	assert_true(run_until(f, is_freed, 30));
	run_for(f, 0.2);
}

static void test_restart_while_windows_are_queued(void **state)
{
	struct fx *f = *state;
	const char *stop = getenv("PGTMP_STOP_CMD"), *start = getenv("PGTMP_START_CMD");
	struct store_window over = window("restart", "*", 51);

	if (!stop || !start)
		fail_msg("PGTMP_STOP_CMD / PGTMP_START_CMD not set: run through pgtmp.py run");
	open_store_opts(f, (struct store_opts){ .max_pending = 50 });
	wait_ready(f);
	assert_int_equal(system(stop), 0);
	assert_true(run_until(f, is_down, 30));
	for (int i = 1; i <= 50; i++)
		put_window(f, "restart", "*", i);
	assert_int_equal(store_put_window(f->store, &over), -ENOBUFS);
	run_for(f, 1.0);
	assert_int_equal(store_pending(f->store), 50);
	assert_int_equal(system(start), 0);
	drain(f);
	assert_int_equal(store_written(f->store), 50);
	PQreset(f->db);
	assert_int_equal(PQstatus(f->db), CONNECTION_OK);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.windows WHERE model = 'restart'"), 50);
	assert_int_equal(count(f, "SELECT 1 FROM driftd.test_results WHERE model = 'restart'"), 150);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations_apply_and_are_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrations_twice_is_noop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_is_fatal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_views_have_contract_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_lands_in_drift_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_does_not_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_latest_status_picks_newest_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequences_come_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reference_sets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_input_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_row_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_timeout_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_server_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsn_must_not_need_dns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback_and_immediate_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_while_windows_are_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_references_restored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decision_and_calibration_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_alarms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_restored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_timeout_is_given_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_statements_prepared_again_after_reconnect,
						setup, teardown),
	};

	dsn = getenv("DRIFTD_TEST_DSN");
	if (!dsn || !*dsn) {
		fprintf(stderr, "test_store: DRIFTD_TEST_DSN is not set, so there is no "
			"PostgreSQL to test against.  Run it as\n"
			"  tests/harness/pgtmp.py run -- %s\n"
			"(meson test --suite pg does).  Failing rather than passing "
			"without testing.\n", "test_store");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
