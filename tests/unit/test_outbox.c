/* The webhook outbox against a real PostgreSQL: rows written with their
 * window (and only once on replay), cooldown suppression, claims with
 * leases and SKIP LOCKED, attempt records, 410 disabling, and what
 * driftd.webhook_deliveries shows.  Needs DRIFTD_TEST_DSN, as exported by
 *     tests/harness/pgtmp.py run -- test_outbox
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
#include <syslog.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "outbox.h"
#include "store.h"

#define T0_US INT64_C(1764417600000000) /* 2025-11-29 12:00:00 UTC */
#define MINUTE_US INT64_C(60000000)
#define LEASE_US UINT64_C(30000000)
#define MAX_ROWS 16

static const char *dsn;

struct claimed {
	char id[64], endpoint[64], type[64], body[256];
	unsigned attempts;
	uint64_t age_us;
};

struct fx {
	struct event_base *base;
	struct event *tick;
	struct store *store;
	struct outbox *outbox;
	PGconn *db;
	bool drained;
	unsigned queued, suppressed, errors;
	bool claim_done, claim_failed;
	struct claimed rows[MAX_ROWS];
	size_t n_rows;
	int64_t next_due_us;
	char disabled[4][64];
	size_t n_disabled;
};

/* ---- fixture -------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void on_log(void *arg, int level, const char *msg)
{
	struct fx *f = arg;

	if (level <= LOG_ERR)
		f->errors++;
	if (getenv("DRIFTD_TEST_VERBOSE"))
		fprintf(stderr, "log %d: %s\n", level, msg);
}

static void on_events(void *arg, unsigned queued, unsigned suppressed)
{
	struct fx *f = arg;

	f->queued += queued;
	f->suppressed += suppressed;
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

static bool store_ready(struct fx *f) { return store_get_state(f->store) == STORE_READY; }
static bool is_drained(struct fx *f) { return f->drained; }
static bool outbox_is_up(struct fx *f) { return outbox_up(f->outbox); }
static bool claim_done(struct fx *f) { return f->claim_done; }
static bool records_written(struct fx *f) { return outbox_pending(f->outbox) == 0; }

static void on_drained(void *arg)
{
	((struct fx *)arg)->drained = true;
}

static void drain(struct fx *f)
{
	f->drained = false;
	store_drain(f->store, on_drained, f);
	assert_true(run_until(f, is_drained, 30));
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct timeval tv = { 0, 20000 };
	struct store_opts so = { .log = on_log, .events = on_events };
	struct outbox_opts oo = { .log = on_log };

	assert_non_null(f);
	f->base = event_base_new();
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	event_add(f->tick, &tv);
	f->db = PQconnectdb(dsn);
	assert_int_equal(PQstatus(f->db), CONNECTION_OK);
	PQclear(PQexec(f->db, "SET client_min_messages = warning"));
	f->store = store_new(f->base, dsn, &so, NULL, NULL, f);
	assert_non_null(f->store);
	assert_int_equal(store_start(f->store), 0);
	assert_true(run_until(f, store_ready, 30));
	PQclear(PQexec(f->db, "TRUNCATE driftd.webhook_outbox, driftd.webhook_attempts, "
			      "driftd.webhook_endpoints, driftd.windows, driftd.slices CASCADE"));
	f->outbox = outbox_new(f->base, dsn, &oo, f);
	assert_non_null(f->outbox);
	outbox_start(f->outbox);
	assert_true(run_until(f, outbox_is_up, 30));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	outbox_free(f->outbox);
	store_free(f->store);
	PQfinish(f->db);
	event_free(f->tick);
	event_base_free(f->base);
	free(f);
	return 0;
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

/* The single value of a one-row, one-column query, as text ("" for NULL). */
static char *value(struct fx *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static char *value(struct fx *f, const char *fmt, ...)
{
	static char out[1024];
	char sql[2048];
	va_list ap;
	PGresult *res;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	res = query(f, "%s", sql);
	if (PQntuples(res) != 1)
		fail_msg("%s\n-> %d rows", sql, PQntuples(res));
	snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

static void exec(struct fx *f, const char *sql)
{
	PQclear(query(f, "%s", sql));
}

/* ---- data ------------------------------------------------------------------ */

static const struct store_test one_test[] = {
	{ .test = "mmd", .statistic = 0.5, .p_value = 0.001, .threshold = 0.01,
	  .drifted = true, .effect = NAN, .bandwidth = NAN },
};

static struct store_event event(const char *id, const char *endpoint, const char *model,
				int64_t created_us, uint64_t cooldown_us)
{
	return (struct store_event){
		.id = id, .endpoint = endpoint, .type = "drift.detected", .model = model,
		.body = "{\"type\":\"drift.detected\",\"x\":\"it's \\\"quoted\\\"\"}",
		.created_us = created_us, .cooldown_us = cooldown_us,
	};
}

static void put_window(struct fx *f, const char *model, int64_t window_id,
		       const struct store_event *ev, size_t n)
{
	struct store_window w = {
		.model = model, .slice = "*", .window_id = window_id,
		.start_us = T0_US, .end_us = T0_US + MINUTE_US, .n = 10,
		.reference_set_id = 1, .seed = 2, .tests = one_test, .n_tests = 1,
		.events = ev, .n_events = n,
	};

	assert_int_equal(store_put_window(f->store, &w), 0);
}

static void on_claim(void *arg, const struct outbox_claim *c)
{
	struct fx *f = arg;

	f->claim_done = true;
	f->claim_failed = c == NULL;
	f->n_rows = f->n_disabled = 0;
	if (!c)
		return;
	assert_true(c->n <= MAX_ROWS && c->n_disabled <= 4);
	for (size_t i = 0; i < c->n; i++) {
		struct claimed *r = &f->rows[f->n_rows++];

		snprintf(r->id, sizeof(r->id), "%s", c->rows[i].id);
		snprintf(r->endpoint, sizeof(r->endpoint), "%s", c->rows[i].endpoint);
		snprintf(r->type, sizeof(r->type), "%s", c->rows[i].type);
		snprintf(r->body, sizeof(r->body), "%s", c->rows[i].body);
		r->attempts = c->rows[i].attempts;
		r->age_us = c->rows[i].age_us;
	}
	f->next_due_us = c->next_due_us;
	for (size_t i = 0; i < c->n_disabled; i++)
		snprintf(f->disabled[f->n_disabled++], sizeof(f->disabled[0]), "%s",
			 c->disabled[i]);
}

static void claim(struct fx *f, const char *const *endpoints, size_t n, unsigned limit)
{
	f->claim_done = false;
	assert_int_equal(outbox_claim(f->outbox, endpoints, n, limit, LEASE_US, on_claim, f), 0);
	assert_int_equal(outbox_claim(f->outbox, endpoints, n, limit, LEASE_US, on_claim, f),
			 -EBUSY);
	assert_true(run_until(f, claim_done, 30));
	assert_false(f->claim_failed);
}

static void record(struct fx *f, const struct outbox_attempt *a)
{
	assert_int_equal(outbox_record(f->outbox, a), 0);
	assert_true(run_until(f, records_written, 30));
}

/* ---- tests ------------------------------------------------------------------ */

static void test_event_written_with_its_window_once(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event("msg_a", "retrain", "enc", T0_US, 0);

	put_window(f, "enc", 1, &ev, 1);
	put_window(f, "enc", 1, &ev, 1); /* a replay */
	drain(f);
	assert_int_equal(f->queued, 1);
	assert_string_equal(value(f, "SELECT count(*) FROM driftd.webhook_outbox"), "1");
	assert_string_equal(value(f, "SELECT id || ' ' || event || ' ' || model || ' ' || "
				     "endpoint || ' ' || status || ' ' || attempts "
				     "FROM driftd.webhook_deliveries"),
			    "msg_a drift.detected enc retrain pending 0");
	assert_string_equal(value(f, "SELECT body FROM driftd.webhook_outbox"), ev.body);
	assert_string_equal(value(f, "SELECT created_at = '2025-11-29 12:00:00+00' "
				     "FROM driftd.webhook_outbox"), "t");

	/* A window the database rejects takes its event with it. */
	struct store_event bad = event("msg_b", "retrain", "enc", T0_US, 0);
	exec(f, "ALTER TABLE driftd.windows ADD CONSTRAINT t_refuse CHECK (window_id <> 2)");
	put_window(f, "enc", 2, &bad, 1);
	drain(f);
	exec(f, "ALTER TABLE driftd.windows DROP CONSTRAINT t_refuse");
	assert_string_equal(value(f, "SELECT count(*) FROM driftd.webhook_outbox "
				     "WHERE id = 'msg_b'"), "0");
	assert_int_equal(f->errors, 1);
}

static void test_cooldown_suppresses(void **state)
{
	struct fx *f = *state;
	const uint64_t hour = 60 * MINUTE_US;
	struct store_event e1 = event("msg_1", "retrain", "enc", T0_US, hour);
	struct store_event e2 = event("msg_2", "retrain", "enc", T0_US + 10 * MINUTE_US, hour);
	struct store_event e3 = event("msg_3", "retrain", "other", T0_US + 11 * MINUTE_US, hour);
	struct store_event e4 = event("msg_4", "pager", "enc", T0_US + 12 * MINUTE_US, hour);
	struct store_event e5 = event("msg_5", "retrain", "enc", T0_US + 61 * MINUTE_US, hour);
	struct store_event e6 = event("msg_6", "retrain", "enc", T0_US + 62 * MINUTE_US, 0);

	put_window(f, "enc", 1, &e1, 1);
	put_window(f, "enc", 2, &e2, 1);  /* 10 min after e1: held back */
	put_window(f, "other", 1, &e3, 1); /* another model */
	put_window(f, "enc", 3, &e4, 1);  /* another endpoint */
	put_window(f, "enc", 4, &e5, 1);  /* 61 min after e1; e2 does not count */
	put_window(f, "enc", 5, &e6, 1);  /* no cooldown */
	drain(f);
	assert_int_equal(f->queued, 5);
	assert_int_equal(f->suppressed, 1);
	assert_string_equal(value(f, "SELECT string_agg(id, ',' ORDER BY id) "
				     "FROM driftd.webhook_suppressed"), "msg_2");
	assert_string_equal(value(f, "SELECT string_agg(id, ',' ORDER BY id) "
				     "FROM driftd.webhook_deliveries"),
			    "msg_1,msg_3,msg_4,msg_5,msg_6");
}

static void test_test_event_without_window(void **state)
{
	struct fx *f = *state;
	struct store_event ev = event("msg_t", "retrain", NULL, T0_US, 0);

	ev.type = "test";
	assert_int_equal(store_put_events(f->store, &ev, 1), 0);
	assert_int_equal(store_put_events(f->store, &ev, 0), -EINVAL);
	ev.id = "";
	assert_int_equal(store_put_events(f->store, &ev, 1), -EINVAL);
	drain(f);
	assert_int_equal(f->queued, 1);
	assert_string_equal(value(f, "SELECT event || ' ' || (model IS NULL) || ' ' || status "
				     "FROM driftd.webhook_deliveries WHERE id = 'msg_t'"),
			    "test true pending");
}

static void test_claim_lease_and_records(void **state)
{
	struct fx *f = *state;
	const char *const hooks[] = { "retrain" };
	struct store_event ev[3] = {
		event("msg_1", "retrain", "enc", T0_US, 0),
		event("msg_2", "retrain", "enc", T0_US, 0),
		event("msg_3", "pager", "enc", T0_US, 0),
	};

	put_window(f, "enc", 1, ev, 3);
	drain(f);
	claim(f, hooks, 1, 1);
	assert_int_equal(f->n_rows, 1);
	assert_string_equal(f->rows[0].endpoint, "retrain");
	assert_string_equal(f->rows[0].type, "drift.detected");
	assert_string_equal(f->rows[0].body, ev[0].body);
	assert_int_equal(f->rows[0].attempts, 0);
	assert_int_equal(f->rows[0].age_us, 0);
	/* The other retrain row is due now; pager's is not asked for. */
	assert_int_equal(f->next_due_us, 0);
	char first[64];
	snprintf(first, sizeof(first), "%s", f->rows[0].id);

	claim(f, hooks, 1, 10);
	assert_int_equal(f->n_rows, 1);
	assert_string_not_equal(f->rows[0].id, first);
	/* Both leased now: nothing due until the first lease ends. */
	claim(f, hooks, 1, 10);
	assert_int_equal(f->n_rows, 0);
	assert_true(f->next_due_us > (int64_t)LEASE_US - 5000000 &&
		    f->next_due_us <= (int64_t)LEASE_US);

	/* A failed attempt, due again at once. */
	record(f, &(struct outbox_attempt){
		.id = first, .attempt = 1, .status = "retrying", .http_status = 500,
		.error = "HTTP 500", .started_us = T0_US, .duration_us = 1500,
		.retry_in_us = 0, .address = "127.0.0.1:9",
	});
	assert_string_equal(value(f, "SELECT status || ' ' || attempts || ' ' || last_http_status "
				     "|| ' ' || last_error FROM driftd.webhook_deliveries "
				     "WHERE id = '%s'", first), "retrying 1 500 HTTP 500");
	claim(f, hooks, 1, 10);
	assert_int_equal(f->n_rows, 1);
	assert_string_equal(f->rows[0].id, first);
	assert_int_equal(f->rows[0].attempts, 1);
	/* first_attempt_at is T0, long ago: the age tells the horizon. */
	assert_true(f->rows[0].age_us > 1000000);

	/* A stale record (wrong attempt number) changes nothing. */
	record(f, &(struct outbox_attempt){
		.id = first, .attempt = 1, .status = "delivered", .http_status = 200,
		.started_us = T0_US, .duration_us = 1,
	});
	assert_string_equal(value(f, "SELECT status FROM driftd.webhook_outbox "
				     "WHERE id = '%s'", first), "retrying");
	record(f, &(struct outbox_attempt){
		.id = first, .attempt = 2, .status = "delivered", .http_status = 204,
		.started_us = T0_US + 1000, .duration_us = 2500, .address = "127.0.0.1:9",
	});
	assert_string_equal(value(f, "SELECT status || ' ' || attempts || ' ' || "
				     "(delivered_at IS NOT NULL) || ' ' || (last_error IS NULL) || "
				     "' ' || (next_attempt_at IS NULL) FROM driftd.webhook_deliveries "
				     "WHERE id = '%s'", first), "delivered 2 true true true");
	assert_string_equal(value(f, "SELECT string_agg(attempt || ':' || coalesce(http_status, 0) "
				     "|| ':' || duration_ms || ':' || address, ',' ORDER BY id) "
				     "FROM driftd.webhook_attempts WHERE delivery_id = '%s'", first),
			    "1:500:1.5:127.0.0.1:9,2:204:2.5:127.0.0.1:9");
	record(f, &(struct outbox_attempt){
		.id = "msg_nonexistent", .attempt = 1, .status = "dead",
		.error = "gone", .started_us = T0_US,
	});
	assert_string_equal(value(f, "SELECT count(*) FROM driftd.webhook_attempts "
				     "WHERE delivery_id = 'msg_nonexistent'"), "0");
	assert_int_equal(outbox_record(f->outbox, &(struct outbox_attempt){
		.id = first, .attempt = 3, .status = "lost", .started_us = T0_US }), -EINVAL);
}

static void test_dead_keeps_last_error(void **state)
{
	struct fx *f = *state;
	const char *const hooks[] = { "retrain" };
	struct store_event ev = event("msg_d", "retrain", "enc", T0_US, 0);

	put_window(f, "enc", 1, &ev, 1);
	drain(f);
	claim(f, hooks, 1, 1);
	record(f, &(struct outbox_attempt){
		.id = "msg_d", .attempt = 1, .status = "dead",
		.error = "connection refused by 127.0.0.1:9", .started_us = T0_US,
		.duration_us = 100,
	});
	assert_string_equal(value(f, "SELECT status || '|' || coalesce(last_http_status, -1) || "
				     "'|' || last_error FROM driftd.webhook_deliveries"),
			    "dead|-1|connection refused by 127.0.0.1:9");
	claim(f, hooks, 1, 10);
	assert_int_equal(f->n_rows, 0);
	assert_int_equal(f->next_due_us, -1);
}

static void test_410_disables_endpoint(void **state)
{
	struct fx *f = *state;
	const char *const hooks[] = { "retrain", "pager" };
	struct store_event ev[3] = {
		event("msg_1", "retrain", "enc", T0_US, 0),
		event("msg_2", "retrain", "enc", T0_US, 0),
		event("msg_3", "pager", "enc", T0_US, 0),
	};

	put_window(f, "enc", 1, ev, 3);
	drain(f);
	claim(f, hooks, 1, 1);
	assert_string_equal(f->rows[0].id, "msg_1");
	record(f, &(struct outbox_attempt){
		.id = "msg_1", .attempt = 1, .status = "dead", .http_status = 410,
		.error = "HTTP 410 Gone: endpoint disabled", .started_us = T0_US,
		.disable_endpoint = "retrain", .disable_url = "http://h/x",
	});
	assert_string_equal(value(f, "SELECT name || ' ' || url || ' ' || "
				     "(disabled_at IS NOT NULL) || ' ' || disabled_reason "
				     "FROM driftd.webhook_endpoints"),
			    "retrain http://h/x true HTTP 410 Gone: endpoint disabled");
	/* retrain's second row waits; pager's goes; retrain is reported. */
	claim(f, hooks, 2, 10);
	assert_int_equal(f->n_rows, 1);
	assert_string_equal(f->rows[0].id, "msg_3");
	assert_int_equal(f->n_disabled, 1);
	assert_string_equal(f->disabled[0], "retrain");
	assert_int_equal(f->next_due_us, -1);
	/* driftctl webhooks enable: the row flows again. */
	exec(f, "UPDATE driftd.webhook_endpoints SET disabled_at = NULL");
	claim(f, hooks, 2, 10);
	assert_int_equal(f->n_rows, 1);
	assert_string_equal(f->rows[0].id, "msg_2");
	assert_int_equal(f->n_disabled, 0);
}

/* A row locked by another transaction is skipped, not waited for. */
static void test_skip_locked(void **state)
{
	struct fx *f = *state;
	const char *const hooks[] = { "retrain" };
	struct store_event ev[2] = {
		event("msg_1", "retrain", "enc", T0_US, 0),
		event("msg_2", "retrain", "enc", T0_US, 0),
	};

	put_window(f, "enc", 1, ev, 2);
	drain(f);
	exec(f, "BEGIN");
	exec(f, "SELECT 1 FROM driftd.webhook_outbox WHERE id = 'msg_1' FOR UPDATE");
	claim(f, hooks, 1, 10);
	exec(f, "ROLLBACK");
	assert_int_equal(f->n_rows, 1);
	assert_string_equal(f->rows[0].id, "msg_2");
}

/* Records made while the connection is down are written after it. */
static void test_records_survive_reconnect(void **state)
{
	struct fx *f = *state;
	const char *const hooks[] = { "retrain" };
	struct store_event ev = event("msg_r", "retrain", "enc", T0_US, 0);

	put_window(f, "enc", 1, &ev, 1);
	drain(f);
	claim(f, hooks, 1, 1);
	exec(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		"WHERE application_name = 'driftd-outbox'");
	assert_int_equal(outbox_record(f->outbox, &(struct outbox_attempt){
		.id = "msg_r", .attempt = 1, .status = "delivered", .http_status = 200,
		.started_us = T0_US, .duration_us = 10 }), 0);
	assert_true(run_until(f, records_written, 30));
	assert_string_equal(value(f, "SELECT status FROM driftd.webhook_outbox"), "delivered");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_written_with_its_window_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cooldown_suppresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_test_event_without_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_lease_and_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_keeps_last_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_410_disables_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records_survive_reconnect, setup, teardown),
	};

	dsn = getenv("DRIFTD_TEST_DSN");
	if (!dsn || !*dsn) {
		fprintf(stderr, "test_outbox: DRIFTD_TEST_DSN is not set, so there is no "
			"PostgreSQL to test against.  Run it as\n"
			"  tests/harness/pgtmp.py run -- test_outbox\n"
			"(meson test --suite pg does).  Failing rather than passing "
			"without testing.\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
