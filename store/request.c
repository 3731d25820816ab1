/* request: validation and SQL parameters of queued writes (see request.h).
 * Everything is sent as text except the reference vectors (binary bytea). */
#include "request.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The outbox rows of struct store_event arrays, first parameter number P0
 * (seven parameters).  An earlier event of the same endpoint, model and
 * type that was not itself suppressed, created less than the cooldown
 * before, makes the new row "suppressed": recorded, never sent.  ON
 * CONFLICT makes a replay insert nothing. */
#define EVENTS_CTE(P0, P1, P2, P3, P4, P5, P6)					\
	"e AS (\n"								\
	"  INSERT INTO driftd.webhook_outbox AS o\n"				\
	"    (id, endpoint, event, model, body, created_at, next_attempt_at, status)\n" \
	"  SELECT u.id, u.endpoint, u.event, u.model, u.body, u.created, now(),\n" \
	"         CASE WHEN u.cooldown > 0 AND EXISTS (\n"			\
	"                SELECT 1 FROM driftd.webhook_outbox p\n"		\
	"                 WHERE p.endpoint = u.endpoint AND p.event = u.event\n" \
	"                   AND p.model IS NOT DISTINCT FROM u.model\n"	\
	"                   AND p.status <> 'suppressed'\n"			\
	"                   AND p.created_at <= u.created\n"			\
	"                   AND p.created_at > u.created - u.cooldown * interval '1 microsecond')\n" \
	"              THEN 'suppressed' ELSE 'pending' END\n"		\
	"    FROM unnest($" P0 "::text[], $" P1 "::text[], $" P2 "::text[], $" P3 "::text[],\n" \
	"                $" P4 "::text[], $" P5 "::timestamptz[], $" P6 "::int8[])\n" \
	"         AS u(id, endpoint, event, model, body, created, cooldown)\n"	\
	"  ON CONFLICT (id) DO NOTHING\n"					\
	"  RETURNING o.status\n"						\
	")\n"

#define EVENTS_COUNTS							\
	"       (SELECT count(*) FROM e WHERE status = 'pending') AS events_queued,\n" \
	"       (SELECT count(*) FROM e WHERE status = 'suppressed') AS events_suppressed"

/* One statement, so one implicit transaction and one round trip: the window
 * row with its decision, its slice's resume state, all its test rows, its
 * calibration row and the outbox rows of the events it raises, or nothing.  ON CONFLICT makes a replay insert
 * nothing; "reused" flags a conflicting row whose content differs, i.e. a
 * window_id handed out twice.  (The final SELECT sees the tables as they
 * were before the statement.) */
static const char window_sql[] =
	"WITH w AS (\n"
	"  INSERT INTO driftd.windows\n"
	"    (model, slice, window_id, window_start, window_end, n, reference_set_id,\n"
	"     status, reference_fallback, drifted, alarm, alpha, correction,\n"
	"     family_size, alarm_k, alarm_m, recent_drifted, evaluated_at)\n"
	"  VALUES ($1::text, $2::text, $3::int8, $4::timestamptz, $5::timestamptz,\n"
	"          $6::int4, $7::int8, $25::text, $26::bool, $27::bool, $28::bool,\n"
	"          $29::float8, $30::text, $31::int4, $32::int4, $33::int4, $34::int4,\n"
	"          $35::timestamptz)\n"
	"  ON CONFLICT DO NOTHING\n"
	"  RETURNING model, slice, window_id\n"
	"), s AS (\n"
	"  INSERT INTO driftd.slices AS s (model, slice, max_window_id)\n"
	"  SELECT model, slice, window_id FROM w\n"
	"  ON CONFLICT (model, slice) DO UPDATE\n"
	"    SET max_window_id = greatest(s.max_window_id, excluded.max_window_id),\n"
	"        updated_at = now()\n"
	"), t AS (\n"
	"  INSERT INTO driftd.test_results\n"
	"    (model, slice, window_id, test, statistic, p_value, threshold, drifted,\n"
	"     effect, seed, bandwidth, permutations, effect_floor)\n"
	"  SELECT w.model, w.slice, w.window_id, u.test, u.statistic, u.p_value,\n"
	"         u.threshold, u.drifted, u.effect, $8::int8, u.bandwidth, u.permutations,\n"
	"         u.effect_floor\n"
	"    FROM w, unnest($9::text[], $10::float8[], $11::float8[], $12::float8[],\n"
	"                   $13::bool[], $14::float8[], $15::float8[], $16::int4[],\n"
	"                   $24::float8[])\n"
	"         AS u(test, statistic, p_value, threshold, drifted, effect,\n"
	"              bandwidth, permutations, effect_floor)\n"
	"), c AS (\n"
	"  INSERT INTO driftd.calibration_results\n"
	"    (model, slice, window_id, n_labeled, labels_seen, ece, mce, brier, accuracy,\n"
	"     reference_ece, reference_brier, degraded)\n"
	"  SELECT w.model, w.slice, w.window_id, $36::int4, $37::int8, $38::float8,\n"
	"         $39::float8, $40::float8, $41::float8, $42::float8, $43::float8, $44::bool\n"
	"    FROM w WHERE $36::int4 IS NOT NULL\n"
	"), " EVENTS_CTE("17", "18", "19", "20", "21", "22", "23")
	"SELECT (SELECT count(*) FROM w) AS inserted,\n"
	"       EXISTS (SELECT 1 FROM driftd.windows o\n"
	"                WHERE o.model = $1::text AND o.slice = $2::text\n"
	"                  AND o.window_id = $3::int8\n"
	"                  AND (o.window_start, o.window_end, o.n) IS DISTINCT FROM\n"
	"                      ($4::timestamptz, $5::timestamptz, $6::int4)) AS reused,\n"
	EVENTS_COUNTS;

/* Events on their own (test events): the same outbox insert. */
static const char events_sql[] =
	"WITH " EVENTS_CTE("1", "2", "3", "4", "5", "6", "7")
	"SELECT 1::int8 AS inserted, false AS reused,\n" EVENTS_COUNTS;

/* The alarms of one record, as arrays of one field each ($3..$15), with
 * the outbox rows of their events ($16..$22).  ON CONFLICT makes a replay
 * insert nothing. */
static const char alarms_sql[] =
	"WITH a AS (\n"
	"  INSERT INTO driftd.stream_alarms\n"
	"    (id, model, slice, detector, signal, detected_at, records_seen, statistic,\n"
	"     threshold, direction, n_before, mean_before, n_after, mean_after, params)\n"
	"  SELECT u.id, $1::text, u.slice, u.detector, u.signal, $2::timestamptz,\n"
	"         u.seen, u.statistic, u.threshold, u.direction, u.n_before,\n"
	"         u.mean_before, u.n_after, u.mean_after, u.params::jsonb\n"
	"    FROM unnest($3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[],\n"
	"                $8::float8[], $9::float8[], $10::text[], $11::int8[],\n"
	"                $12::float8[], $13::int8[], $14::float8[], $15::text[])\n"
	"         AS u(id, slice, detector, signal, seen, statistic, threshold,\n"
	"              direction, n_before, mean_before, n_after, mean_after, params)\n"
	"  ON CONFLICT (id) DO NOTHING\n"
	"  RETURNING 1\n"
	"), " EVENTS_CTE("16", "17", "18", "19", "20", "21", "22")
	"SELECT (SELECT count(*) FROM a) AS inserted, false AS reused,\n" EVENTS_COUNTS;

/* Claims due rows of the given endpoints ($1) for one delivery round:
 * at most $2 rows, leased for $3 µs by pushing next_attempt_at ahead.
 * Returns a tagged union: 'row' rows, then one 'next' row (µs until the
 * next remaining row is due, NULL when none), then a 'disabled' row per
 * endpoint a 410 disabled.  The 'next' branch excludes the rows claimed
 * here: the statement's snapshot still shows them unclaimed. */
static const char claim_sql[] =
	"WITH off AS (\n"
	"  SELECT name FROM driftd.webhook_endpoints WHERE disabled_at IS NOT NULL\n"
	"), due AS (\n"
	"  SELECT o.id FROM driftd.webhook_outbox o\n"
	"   WHERE o.status IN ('pending', 'retrying') AND o.next_attempt_at <= now()\n"
	"     AND o.endpoint = ANY ($1::text[]) AND o.endpoint NOT IN (SELECT name FROM off)\n"
	"   ORDER BY o.next_attempt_at\n"
	"   LIMIT $2::int4\n"
	"   FOR UPDATE SKIP LOCKED\n"
	"), claimed AS (\n"
	"  UPDATE driftd.webhook_outbox o\n"
	"     SET next_attempt_at = now() + $3::int8 * interval '1 microsecond'\n"
	"    FROM due WHERE o.id = due.id\n"
	"  RETURNING o.id, o.endpoint, o.event, o.body, o.attempts,\n"
	"            (extract(epoch FROM now() - coalesce(o.first_attempt_at, now()))\n"
	"             * 1000000)::int8 AS age_us\n"
	")\n"
	"SELECT 'row' AS kind, id, endpoint, event, body, attempts, age_us FROM claimed\n"
	"UNION ALL\n"
	"SELECT 'next', NULL, NULL, NULL, NULL, NULL,\n"
	"       (extract(epoch FROM min(o.next_attempt_at) - now()) * 1000000)::int8\n"
	"  FROM driftd.webhook_outbox o\n"
	" WHERE o.status IN ('pending', 'retrying') AND o.endpoint = ANY ($1::text[])\n"
	"   AND o.endpoint NOT IN (SELECT name FROM off)\n"
	"   AND o.id NOT IN (SELECT id FROM claimed)\n"
	"UNION ALL\n"
	"SELECT 'disabled', NULL, name, NULL, NULL, NULL, NULL FROM off\n"
	" WHERE name = ANY ($1::text[])";

/* One finished attempt: the row's new state, a history row, and with a
 * 410 the endpoint's disabled mark.  The guard on attempts skips a row
 * that changed meanwhile (redelivered, or recorded by another daemon
 * after the lease ran out); the history row then goes too.  Returns the
 * count of rows updated (0 or 1). */
static const char attempt_sql[] =
	"WITH u AS (\n"
	"  UPDATE driftd.webhook_outbox\n"
	"     SET status = $3::text, attempts = $2::int4,\n"
	"         first_attempt_at = coalesce(first_attempt_at, $7::timestamptz),\n"
	"         last_attempt_at = $7::timestamptz,\n"
	"         last_http_status = $4::int4, last_error = $5::text,\n"
	"         next_attempt_at = CASE WHEN $3::text = 'retrying'\n"
	"                                THEN now() + $6::int8 * interval '1 microsecond'\n"
	"                                ELSE next_attempt_at END,\n"
	"         delivered_at = CASE WHEN $3::text = 'delivered' THEN now() END\n"
	"   WHERE id = $1::text AND attempts = $2::int4 - 1\n"
	"  RETURNING id\n"
	"), a AS (\n"
	"  INSERT INTO driftd.webhook_attempts\n"
	"    (delivery_id, attempt, started_at, duration_ms, http_status, error, address)\n"
	"  SELECT id, $2::int4, $7::timestamptz, $8::float8, $4::int4, $5::text, $9::text\n"
	"    FROM u\n"
	"), d AS (\n"
	"  INSERT INTO driftd.webhook_endpoints AS e (name, url, disabled_at, disabled_reason)\n"
	"  SELECT $10::text, $11::text, now(), $5::text WHERE $10::text IS NOT NULL\n"
	"  ON CONFLICT (name) DO UPDATE\n"
	"    SET url = excluded.url, disabled_at = excluded.disabled_at,\n"
	"        disabled_reason = excluded.disabled_reason\n"
	")\n"
	"SELECT count(*) FROM u";

static const char reference_sql[] =
	"INSERT INTO driftd.reference_sets (id, model, slice, n, dim, persist, data,\n"
	"    created_at, source, k, scores, source_dim, projection_seed, cal_n, cal_ece,\n"
	"    cal_brier)\n"
	"VALUES ($1::int8, $2::text, $3::text, $4::int4, $5::int4, $6::text, $7::bytea,\n"
	"        $8::timestamptz, $9::text, $10::int4, $11::bytea, $12::int4, $13::int8,\n"
	"        $14::int4, $15::float8, $16::float8)\n"
	"ON CONFLICT (id) DO NOTHING";

/* A retirement is a row of its own rather than an UPDATE of the sets, so
 * that replaying it in any order after the sets it covers (or after sets
 * that came later) gives the same answer. */
static const char retire_sql[] =
	"INSERT INTO driftd.reference_resets (model, slice, reset_at, reason)\n"
	"VALUES ($1::text, $2::text, $3::timestamptz, $4::text)\n"
	"ON CONFLICT DO NOTHING";

/* 9999-12-31 23:59:59.999999 UTC: keeps the text form a plain ISO date. */
#define MAX_TIME_US INT64_C(253402300799999999)
/* bytea and libpq's int lengths both end near 1 GiB. */
#define MAX_REFERENCE_BYTES (UINT64_C(1) << 30)

/* Parameter text accumulates in one growing buffer; values[] are resolved
 * to pointers only at the end, as the buffer may move. */
struct builder {
	char *buf;
	size_t len, cap;
	bool oom;
	int n;
	size_t off[REQ_MAX_PARAMS];
	bool null[REQ_MAX_PARAMS];
	int length[REQ_MAX_PARAMS];
	int format[REQ_MAX_PARAMS];
};

static void add(struct builder *b, const void *data, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom || n == 0)
		return;
	if (b->len + n > b->cap) {
		cap = b->cap ? b->cap : 512;
		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->buf = p;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
}

static void addf(struct builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void addf(struct builder *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void begin_param(struct builder *b)
{
	b->off[b->n] = b->len;
}

static void end_param(struct builder *b)
{
	add(b, "", 1);
	b->n++;
}

static void null_param(struct builder *b)
{
	b->null[b->n++] = true;
}

static void text_param(struct builder *b, const char *s)
{
	begin_param(b);
	add(b, s, strlen(s));
	end_param(b);
}

static void int_param(struct builder *b, int64_t v)
{
	begin_param(b);
	addf(b, "%" PRId64, v);
	end_param(b);
}

/* PostgreSQL's timestamptz input, UTC; us is within 0..MAX_TIME_US. */
static void format_time(char buf[64], int64_t us)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(us % 1000000));
}

static void time_param(struct builder *b, int64_t us)
{
	char t[64];

	format_time(t, us);
	text_param(b, t);
}

/* %.17g round-trips a double; PostgreSQL spells the specials its own way. */
static void add_double(struct builder *b, double v, bool nan_is_null)
{
	if (isnan(v))
		add(b, nan_is_null ? "NULL" : "NaN", nan_is_null ? 4 : 3);
	else if (isinf(v))
		addf(b, "%s", v > 0 ? "Infinity" : "-Infinity");
	else
		addf(b, "%.17g", v);
}

/* Array elements are double-quoted with \ and " escaped, so any name is safe. */
static void add_quoted(struct builder *b, const char *s)
{
	add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			add(b, "\\", 1);
		add(b, s, 1);
	}
	add(b, "\"", 1);
}

typedef void (*elem_fn)(struct builder *b, const struct store_test *t);

static void elem_test(struct builder *b, const struct store_test *t) { add_quoted(b, t->test); }
static void elem_statistic(struct builder *b, const struct store_test *t) { add_double(b, t->statistic, false); }
static void elem_p_value(struct builder *b, const struct store_test *t) { add_double(b, t->p_value, true); }
static void elem_threshold(struct builder *b, const struct store_test *t) { add_double(b, t->threshold, true); }
static void elem_drifted(struct builder *b, const struct store_test *t) { add(b, t->drifted ? "t" : "f", 1); }
static void elem_effect(struct builder *b, const struct store_test *t) { add_double(b, t->effect, true); }
static void elem_bandwidth(struct builder *b, const struct store_test *t) { add_double(b, t->bandwidth, true); }
static void elem_effect_floor(struct builder *b, const struct store_test *t) { add_double(b, t->effect_floor, true); }

static void elem_permutations(struct builder *b, const struct store_test *t)
{
	if (t->permutations)
		addf(b, "%u", t->permutations);
	else
		add(b, "NULL", 4);
}

/* One array parameter holding one field of every test, in test order. */
static void array_param(struct builder *b, const struct store_window *w, elem_fn elem)
{
	begin_param(b);
	add(b, "{", 1);
	for (size_t i = 0; i < w->n_tests; i++) {
		if (i)
			add(b, ",", 1);
		elem(b, &w->tests[i]);
	}
	add(b, "}", 1);
	end_param(b);
}

typedef void (*event_elem_fn)(struct builder *b, const struct store_event *e);

static void ev_id(struct builder *b, const struct store_event *e) { add_quoted(b, e->id); }
static void ev_endpoint(struct builder *b, const struct store_event *e) { add_quoted(b, e->endpoint); }
static void ev_type(struct builder *b, const struct store_event *e) { add_quoted(b, e->type); }
static void ev_body(struct builder *b, const struct store_event *e) { add_quoted(b, e->body); }
static void ev_cooldown(struct builder *b, const struct store_event *e) { addf(b, "%" PRIu64, e->cooldown_us); }

static void ev_model(struct builder *b, const struct store_event *e)
{
	if (e->model)
		add_quoted(b, e->model);
	else
		add(b, "NULL", 4);
}

static void ev_created(struct builder *b, const struct store_event *e)
{
	char t[64];

	format_time(t, e->created_us);
	add_quoted(b, t);
}

/* One array parameter holding one field of every event. */
static void event_array(struct builder *b, const struct store_event *ev, size_t n,
			event_elem_fn elem)
{
	begin_param(b);
	add(b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			add(b, ",", 1);
		elem(b, &ev[i]);
	}
	add(b, "}", 1);
	end_param(b);
}

/* The seven parameters of EVENTS_CTE. */
static void event_params(struct builder *b, const struct store_event *ev, size_t n)
{
	static const event_elem_fn fields[] = { ev_id, ev_endpoint, ev_type, ev_model,
						ev_body, ev_created, ev_cooldown };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		event_array(b, ev, n, fields[i]);
}

static void le32(unsigned char *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	p[0] = (unsigned char)u;
	p[1] = (unsigned char)(u >> 8);
	p[2] = (unsigned char)(u >> 16);
	p[3] = (unsigned char)(u >> 24);
}

/* Raw vectors as float32 little-endian, whatever the host's byte order. */
static void floats_param(struct builder *b, const float *data, size_t count)
{
	unsigned char le[4];

	begin_param(b);
	for (size_t i = 0; i < count; i++) {
		le32(le, data[i]);
		add(b, le, sizeof(le));
	}
	b->length[b->n] = (int)(count * sizeof(le));
	b->format[b->n] = 1;
	end_param(b);
}

/* Parameters per kind, as the statements above take them. */
static const unsigned char nparams[REQ__COUNT] = {
	[REQ_REFERENCE] = 16, [REQ_WINDOW] = 44, [REQ_EVENTS] = 7,
	[REQ_CLAIM] = 3, [REQ_ATTEMPT] = 11, [REQ_RETIRE] = 4,
	[REQ_ALARMS] = 22,
};

static int finish(struct builder *b, enum req_kind kind, struct req **out)
{
	struct req *r;

	/* A builder out of step with its statement would be retried forever
	 * (the server answers with a protocol error, not a data error). */
	if (b->n != nparams[kind]) {
		free(b->buf);
		return -EINVAL;
	}
	if (b->oom || !(r = calloc(1, sizeof(*r)))) {
		free(b->buf);
		return -ENOMEM;
	}
	r->kind = kind;
	r->nparams = b->n;
	r->buf = b->buf;
	for (int i = 0; i < b->n; i++) {
		r->values[i] = b->null[i] ? NULL : r->buf + b->off[i];
		r->lengths[i] = b->length[i];
		r->formats[i] = b->format[i];
	}
	*out = r;
	return 0;
}

static bool valid_name(const char *s)
{
	return s && *s;
}

static bool valid_tests(const struct store_window *w)
{
	if (w->n_tests && !w->tests)
		return false;
	for (size_t i = 0; i < w->n_tests; i++) {
		if (!valid_name(w->tests[i].test) || w->tests[i].permutations > INT32_MAX)
			return false;
		/* A duplicate would fail the whole window on the primary key. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(w->tests[i].test, w->tests[j].test) == 0)
				return false;
	}
	return true;
}

static bool valid_events(const struct store_event *ev, size_t n)
{
	if (n && !ev)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!valid_name(ev[i].id) || !valid_name(ev[i].endpoint) ||
		    !valid_name(ev[i].type) || !ev[i].body || ev[i].created_us < 0 ||
		    ev[i].created_us > MAX_TIME_US || ev[i].cooldown_us > INT64_MAX)
			return false;
	return true;
}

static bool valid_window(const struct store_window *w)
{
	return valid_name(w->model) && valid_name(w->slice) &&
	       w->start_us >= 0 && w->start_us <= w->end_us &&
	       w->end_us <= MAX_TIME_US && w->n <= INT32_MAX && valid_tests(w) &&
	       valid_events(w->events, w->n_events);
}

/* A double parameter; NaN is SQL NULL. */
static void double_param(struct builder *b, double v)
{
	if (isnan(v)) {
		null_param(b);
		return;
	}
	begin_param(b);
	add_double(b, v, false);
	end_param(b);
}

static void bool_param(struct builder *b, bool v)
{
	text_param(b, v ? "t" : "f");
}

static void decision_params(struct builder *b, const struct store_decision *d)
{
	if (!d) {
		for (int i = 0; i < 9; i++)
			null_param(b);
		return;
	}
	bool_param(b, d->drifted);
	bool_param(b, d->alarm);
	double_param(b, d->alpha);
	if (d->correction)
		text_param(b, d->correction);
	else
		null_param(b);
	int_param(b, d->family_size);
	int_param(b, d->alarm_k);
	int_param(b, d->alarm_m);
	int_param(b, d->recent_drifted);
	if (d->evaluated_us)
		time_param(b, d->evaluated_us);
	else
		null_param(b);
}

static void calibration_params(struct builder *b, const struct store_calibration *c)
{
	if (!c) {
		for (int i = 0; i < 9; i++)
			null_param(b);
		return;
	}
	int_param(b, c->n_labeled);
	int_param(b, (int64_t)c->labels_seen);
	double_param(b, c->ece);
	double_param(b, c->mce);
	double_param(b, c->brier);
	double_param(b, c->accuracy);
	double_param(b, c->reference_ece);
	double_param(b, c->reference_brier);
	bool_param(b, c->degraded);
}

static bool valid_decision(const struct store_window *w)
{
	const struct store_decision *d = w->decision;
	const struct store_calibration *c = w->calibration;

	if (d && (d->family_size > INT32_MAX || d->alarm_k > INT32_MAX ||
		  d->alarm_m > INT32_MAX || d->recent_drifted > INT32_MAX ||
		  d->evaluated_us < 0 || d->evaluated_us > MAX_TIME_US))
		return false;
	return !c || (c->n_labeled <= INT32_MAX && c->labels_seen <= INT64_MAX);
}

int req_new_window(const struct store_window *w, struct req **out)
{
	struct builder b = { 0 };

	if (!valid_window(w) || !valid_decision(w))
		return -EINVAL;
	text_param(&b, w->model);
	text_param(&b, w->slice);
	int_param(&b, w->window_id);
	time_param(&b, w->start_us);
	time_param(&b, w->end_us);
	int_param(&b, w->n);
	if (w->reference_set_id)
		int_param(&b, w->reference_set_id);
	else
		null_param(&b);
	int_param(&b, (int64_t)w->seed);
	array_param(&b, w, elem_test);
	array_param(&b, w, elem_statistic);
	array_param(&b, w, elem_p_value);
	array_param(&b, w, elem_threshold);
	array_param(&b, w, elem_drifted);
	array_param(&b, w, elem_effect);
	array_param(&b, w, elem_bandwidth);
	array_param(&b, w, elem_permutations);
	event_params(&b, w->events, w->n_events);
	array_param(&b, w, elem_effect_floor);
	text_param(&b, w->insufficient ? "insufficient_data" : "tested");
	bool_param(&b, w->reference_fallback);
	decision_params(&b, w->decision);
	calibration_params(&b, w->calibration);
	if (finish(&b, REQ_WINDOW, out) < 0)
		return -ENOMEM;
	(*out)->closed_us = w->closed_us;
	return 0;
}

static void optional_text(struct builder *b, const char *s)
{
	if (s)
		text_param(b, s);
	else
		null_param(b);
}

int req_new_claim(const char *const *endpoints, size_t n, unsigned limit,
		  uint64_t lease_us, struct req **out)
{
	struct builder b = { 0 };

	if (n == 0 || limit == 0 || limit > INT32_MAX || lease_us > INT64_MAX)
		return -EINVAL;
	begin_param(&b);
	add(&b, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (!valid_name(endpoints[i])) {
			free(b.buf);
			return -EINVAL;
		}
		if (i)
			add(&b, ",", 1);
		add_quoted(&b, endpoints[i]);
	}
	add(&b, "}", 1);
	end_param(&b);
	int_param(&b, limit);
	int_param(&b, (int64_t)lease_us);
	return finish(&b, REQ_CLAIM, out);
}

static bool valid_attempt(const struct outbox_attempt *a)
{
	static const char *const statuses[] = { "delivered", "retrying", "dead" };
	bool known = false;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		known |= a->status && strcmp(a->status, statuses[i]) == 0;
	return known && valid_name(a->id) && a->attempt > 0 && a->attempt <= INT32_MAX &&
	       a->started_us >= 0 && a->started_us <= MAX_TIME_US &&
	       a->retry_in_us <= INT64_MAX && a->http_status >= 0 &&
	       (!a->disable_endpoint || a->disable_url);
}

int req_new_attempt(const struct outbox_attempt *a, struct req **out)
{
	struct builder b = { 0 };

	if (!valid_attempt(a))
		return -EINVAL;
	text_param(&b, a->id);
	int_param(&b, a->attempt);
	text_param(&b, a->status);
	if (a->http_status)
		int_param(&b, a->http_status);
	else
		null_param(&b);
	optional_text(&b, a->error);
	int_param(&b, (int64_t)a->retry_in_us);
	time_param(&b, a->started_us);
	begin_param(&b);
	addf(&b, "%.3f", (double)a->duration_us / 1000.0);
	end_param(&b);
	optional_text(&b, a->address);
	optional_text(&b, a->disable_endpoint);
	optional_text(&b, a->disable_endpoint ? a->disable_url : NULL);
	return finish(&b, REQ_ATTEMPT, out);
}

typedef void (*alarm_elem_fn)(struct builder *b, const struct store_stream_alarm *a);

static void al_id(struct builder *b, const struct store_stream_alarm *a) { addf(b, "%" PRId64, a->id); }
static void al_slice(struct builder *b, const struct store_stream_alarm *a) { add_quoted(b, a->slice); }
static void al_detector(struct builder *b, const struct store_stream_alarm *a) { add_quoted(b, a->detector); }
static void al_signal(struct builder *b, const struct store_stream_alarm *a) { add_quoted(b, a->signal); }
static void al_seen(struct builder *b, const struct store_stream_alarm *a) { addf(b, "%" PRIu64, a->records_seen); }
static void al_statistic(struct builder *b, const struct store_stream_alarm *a) { add_double(b, a->statistic, false); }
static void al_threshold(struct builder *b, const struct store_stream_alarm *a) { add_double(b, a->threshold, true); }
static void al_direction(struct builder *b, const struct store_stream_alarm *a) { add(b, a->up ? "up" : "down", a->up ? 2 : 4); }
static void al_n_before(struct builder *b, const struct store_stream_alarm *a) { addf(b, "%" PRIu64, a->n_before); }
static void al_mean_before(struct builder *b, const struct store_stream_alarm *a) { add_double(b, a->mean_before, true); }
static void al_n_after(struct builder *b, const struct store_stream_alarm *a) { addf(b, "%" PRIu64, a->n_after); }
static void al_mean_after(struct builder *b, const struct store_stream_alarm *a) { add_double(b, a->mean_after, true); }
static void al_params(struct builder *b, const struct store_stream_alarm *a) { add_quoted(b, a->params); }

static bool valid_alarms(const struct store_stream_alarms *a)
{
	if (!valid_name(a->model) || !a->n || !a->alarms || a->detected_us < 0 ||
	    a->detected_us > MAX_TIME_US || !valid_events(a->events, a->n_events))
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct store_stream_alarm *x = &a->alarms[i];

		if (x->id <= 0 || !valid_name(x->slice) || !valid_name(x->detector) ||
		    !valid_name(x->signal) || !valid_name(x->params) ||
		    !x->records_seen || x->records_seen > INT64_MAX ||
		    x->n_before > INT64_MAX || x->n_after > INT64_MAX ||
		    !isfinite(x->statistic))
			return false;
	}
	return true;
}

int req_new_alarms(const struct store_stream_alarms *a, struct req **out)
{
	static const alarm_elem_fn fields[] = {
		al_id, al_slice, al_detector, al_signal, al_seen, al_statistic,
		al_threshold, al_direction, al_n_before, al_mean_before, al_n_after,
		al_mean_after, al_params,
	};
	struct builder b = { 0 };

	if (!valid_alarms(a))
		return -EINVAL;
	text_param(&b, a->model);
	time_param(&b, a->detected_us);
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		begin_param(&b);
		add(&b, "{", 1);
		for (size_t i = 0; i < a->n; i++) {
			if (i)
				add(&b, ",", 1);
			fields[f](&b, &a->alarms[i]);
		}
		add(&b, "}", 1);
		end_param(&b);
	}
	event_params(&b, a->events, a->n_events);
	return finish(&b, REQ_ALARMS, out);
}

int req_new_events(const struct store_event *ev, size_t n, struct req **out)
{
	struct builder b = { 0 };

	if (n == 0 || !valid_events(ev, n))
		return -EINVAL;
	event_params(&b, ev, n);
	return finish(&b, REQ_EVENTS, out);
}

static const char *persist_name(enum store_persist p)
{
	switch (p) {
	case STORE_PERSIST_RAW:
		return "raw";
	case STORE_PERSIST_PROJECTED:
		return "projected";
	case STORE_PERSIST_NONE:
		return "none";
	}
	return NULL;
}

static bool has_vectors(enum store_persist p)
{
	return p == STORE_PERSIST_RAW || p == STORE_PERSIST_PROJECTED;
}

static int check_reference(const struct store_reference *r)
{
	if (!valid_name(r->model) || !valid_name(r->slice) || !persist_name(r->persist) ||
	    r->dim == 0 || r->dim > INT32_MAX || r->n > INT32_MAX || r->k > INT32_MAX ||
	    r->cal_n > INT32_MAX || r->source_dim > INT32_MAX ||
	    r->created_us < 0 || r->created_us > MAX_TIME_US ||
	    (r->persist == STORE_PERSIST_PROJECTED && r->source_dim == 0))
		return -EINVAL;
	if (!has_vectors(r->persist))
		return 0;
	if ((uint64_t)r->n * (r->dim + r->k) * sizeof(float) >= MAX_REFERENCE_BYTES)
		return -E2BIG;
	return (r->data && (r->scores || !r->k)) || r->n == 0 ? 0 : -EINVAL;
}

int req_new_reference(const struct store_reference *r, struct req **out)
{
	struct builder b = { 0 };
	int err = check_reference(r);
	bool vectors = has_vectors(r->persist);

	if (err)
		return err;
	int_param(&b, r->id);
	text_param(&b, r->model);
	text_param(&b, r->slice);
	int_param(&b, r->n);
	int_param(&b, r->dim);
	text_param(&b, persist_name(r->persist));
	if (vectors)
		floats_param(&b, r->data, (size_t)r->n * r->dim);
	else
		null_param(&b);
	time_param(&b, r->created_us);
	text_param(&b, r->explicit_records ? "explicit" : "warmup");
	int_param(&b, r->k);
	if (vectors && r->k)
		floats_param(&b, r->scores, (size_t)r->n * r->k);
	else
		null_param(&b);
	if (r->persist == STORE_PERSIST_PROJECTED) {
		int_param(&b, r->source_dim);
		int_param(&b, (int64_t)r->projection_seed);
	} else {
		null_param(&b);
		null_param(&b);
	}
	if (r->cal_n) {
		int_param(&b, r->cal_n);
		double_param(&b, r->cal_ece);
		double_param(&b, r->cal_brier);
	} else {
		null_param(&b);
		null_param(&b);
		null_param(&b);
	}
	return finish(&b, REQ_REFERENCE, out);
}

int req_new_retire(const char *model, const char *slice, int64_t at_us,
		   const char *reason, struct req **out)
{
	struct builder b = { 0 };

	if (!valid_name(model) || (slice && !*slice) || !valid_name(reason) ||
	    at_us < 0 || at_us > MAX_TIME_US)
		return -EINVAL;
	text_param(&b, model);
	if (slice)
		text_param(&b, slice);
	else
		null_param(&b);
	time_param(&b, at_us);
	text_param(&b, reason);
	return finish(&b, REQ_RETIRE, out);
}

/* Parameters of window_sql (0-based) that carry the decision. */
#define WP_STATUS 24
#define WP_DRIFTED 26
#define WP_ALARM_M 32

bool req_decision(const struct req *r, const char **model, const char **slice,
		  int64_t *window_id, bool *drifted, unsigned *alarm_m)
{
	if (r->kind != REQ_WINDOW || !r->values[0] || !r->values[1] ||
	    !r->values[2] || !r->values[WP_DRIFTED] || !r->values[WP_ALARM_M] ||
	    !r->values[WP_STATUS] || strcmp(r->values[WP_STATUS], "tested"))
		return false;
	*model = r->values[0];
	*slice = r->values[1];
	*window_id = strtoll(r->values[2], NULL, 10);
	*drifted = r->values[WP_DRIFTED][0] == 't';
	*alarm_m = (unsigned)strtoul(r->values[WP_ALARM_M], NULL, 10);
	return true;
}

bool req_retirement(const struct req *r, const char **model, const char **slice)
{
	if (r->kind != REQ_RETIRE || !r->values[0])
		return false;
	*model = r->values[0];
	*slice = r->values[1];
	return true;
}

void req_free(struct req *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

const char *req_sql(const struct req *r)
{
	return req_kind_sql(r->kind);
}

const char *req_kind_name(enum req_kind kind)
{
	static const char *const names[REQ__COUNT] = {
		[REQ_REFERENCE] = "driftd_reference", [REQ_WINDOW] = "driftd_window",
		[REQ_EVENTS] = "driftd_events", [REQ_CLAIM] = "driftd_claim",
		[REQ_ATTEMPT] = "driftd_attempt", [REQ_RETIRE] = "driftd_retire",
		[REQ_ALARMS] = "driftd_alarms",
	};

	return kind < REQ__COUNT ? names[kind] : names[REQ_REFERENCE];
}

const char *req_kind_sql(enum req_kind kind)
{
	switch (kind) {
	case REQ_WINDOW:
		return window_sql;
	case REQ_EVENTS:
		return events_sql;
	case REQ_CLAIM:
		return claim_sql;
	case REQ_ATTEMPT:
		return attempt_sql;
	case REQ_RETIRE:
		return retire_sql;
	case REQ_ALARMS:
		return alarms_sql;
	case REQ_REFERENCE:
	case REQ__COUNT:
		break;
	}
	return reference_sql;
}

void req_describe(const struct req *r, char *buf, size_t len)
{
	switch (r->kind) {
	case REQ_WINDOW:
		snprintf(buf, len, "window %s/%s/%s", r->values[0], r->values[1], r->values[2]);
		return;
	case REQ_EVENTS:
		/* The ids, as an array literal: {"msg_...",...} */
		snprintf(buf, len, "webhook events %s", r->values[0]);
		return;
	case REQ_CLAIM:
		snprintf(buf, len, "outbox claim for %s", r->values[0]);
		return;
	case REQ_ATTEMPT:
		snprintf(buf, len, "webhook %s attempt %s", r->values[0], r->values[1]);
		return;
	case REQ_REFERENCE:
		snprintf(buf, len, "reference set %s (%s/%s)", r->values[0], r->values[1],
			 r->values[2]);
		return;
	case REQ_ALARMS:
		snprintf(buf, len, "stream alarms %s of model %s", r->values[2], r->values[0]);
		return;
	case REQ_RETIRE:
	case REQ__COUNT:
		snprintf(buf, len, "reference retirement (%s/%s)", r->values[0],
			 r->values[1] ? r->values[1] : "all slices");
		return;
	}
}

/* ---- journal form: kind u8, nparams u8, then per parameter a flags byte
 * (1 = NULL, 2 = binary) and, unless NULL, a u32 length and the bytes
 * (text without its NUL).  Integers little-endian. */

#define PF_NULL 1
#define PF_BINARY 2

static size_t param_len(const struct req *r, int i)
{
	return r->formats[i] ? (size_t)r->lengths[i] : strlen(r->values[i]);
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int req_encode(const struct req *r, unsigned char **out, size_t *len)
{
	size_t n = 2, pos = 2;
	unsigned char *buf;

	for (int i = 0; i < r->nparams; i++)
		n += 1 + (r->values[i] ? 4 + param_len(r, i) : 0);
	if (!(buf = malloc(n)))
		return -ENOMEM;
	buf[0] = (unsigned char)r->kind;
	buf[1] = (unsigned char)r->nparams;
	for (int i = 0; i < r->nparams; i++) {
		size_t l;

		buf[pos++] = (unsigned char)(!r->values[i] ? PF_NULL :
					     r->formats[i] ? PF_BINARY : 0);
		if (!r->values[i])
			continue;
		l = param_len(r, i);
		put_u32(buf + pos, (uint32_t)l);
		memcpy(buf + pos + 4, r->values[i], l);
		pos += 4 + l;
	}
	*out = buf;
	*len = n;
	return 0;
}

int req_decode(const unsigned char *in, size_t len, struct req **out)
{
	struct builder b = { 0 };
	size_t pos = 2;
	int n;

	/* Only the store queue's writes are ever journaled. */
	if (len < 2 || (in[0] != REQ_REFERENCE && in[0] != REQ_WINDOW &&
			in[0] != REQ_EVENTS && in[0] != REQ_RETIRE &&
			in[0] != REQ_ALARMS) ||
	    in[1] != nparams[in[0]])
		return -EINVAL;
	n = in[1];
	for (int i = 0; i < n; i++) {
		unsigned flags;
		uint32_t l;

		if (pos >= len || (flags = in[pos++]) > PF_BINARY) {
			free(b.buf);
			return -EINVAL;
		}
		if (flags == PF_NULL) {
			null_param(&b);
			continue;
		}
		if (len - pos < 4 || (l = get_u32(in + pos)) > len - pos - 4 ||
		    l > INT32_MAX || (!(flags & PF_BINARY) && memchr(in + pos + 4, 0, l))) {
			free(b.buf);
			return -EINVAL;
		}
		begin_param(&b);
		add(&b, in + pos + 4, l);
		if (flags & PF_BINARY) {
			b.length[b.n] = (int)l;
			b.format[b.n] = 1;
		}
		end_param(&b);
		pos += 4 + l;
	}
	if (pos != len) {
		free(b.buf);
		return -EINVAL;
	}
	return finish(&b, (enum req_kind)in[0], out);
}
