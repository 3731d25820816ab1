/* reader: a second pgq connection for the JSON API's queries, with a
 * bounded queue, one deadline per read and typed rows (see reader.h). */
#include "reader.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>

#include "pgq.h"

#define DEFAULT_TIMEOUT_US (UINT64_C(5) * 1000000)
#define DEFAULT_MAX_ROWS 10000
#define DEFAULT_MAX_QUEUED 64
#define BACKOFF_MIN_US 100000
#define BACKOFF_MAX_US 10000000
/* pgq's own limit on a read in flight, past the read's deadline: the
 * deadline (on_deadline) is what answers a slow read, as timed out; pgq's
 * timer, firing in the same instant, would answer it as a lost
 * connection instead. */
#define PGQ_BACKSTOP_US 1000000
#define N_PARAMS 7
#define PARAM_LEN 24	/* an int64 in decimal, with sign */

/* Both reads return the same columns, in this order. */
#define ROW_COLUMNS \
	"slice, window_id, (extract(epoch FROM window_start) * 1000000)::int8, " \
	"(extract(epoch FROM window_end) * 1000000)::int8, n, test, " \
	"statistic, p_value, threshold, drifted"
enum { C_SLICE, C_ID, C_START, C_END, C_N, C_TEST, C_STAT, C_P, C_THR,
       C_DRIFTED, C__COUNT };

/* Both alarm reads return these columns, in this order, and a count. */
#define ALARM_COLUMNS \
	"slice, (extract(epoch FROM detected_at) * 1000000)::int8, detector, " \
	"signal, direction, statistic, threshold, records_seen, n_before, " \
	"mean_before, n_after, mean_after, params::text, alarm_id"
enum { A_SLICE, A_DETECTED, A_DETECTOR, A_SIGNAL, A_DIRECTION, A_STAT,
       A_THR, A_SEEN, A_N_BEFORE, A_MEAN_BEFORE, A_N_AFTER, A_MEAN_AFTER,
       A_PARAMS, A_ID, A_COUNT, A__COUNT };

/* Parameter P, unix µs, as a timestamptz. */
#define US_TIME(p) "timestamptz 'epoch' + " p "::int8 * interval '1 microsecond'"

/* Newest first to apply the limit (one row more, to tell truncation),
 * then oldest first for the caller. */
static const char history_sql[] =
	"SELECT * FROM (SELECT " ROW_COLUMNS
	"  FROM driftd.drift_history"
	" WHERE model = $1"
	"   AND ($2::text IS NULL OR slice = $2)"
	"   AND ($3::text IS NULL OR test = $3)"
	"   AND ($4::int8 IS NULL OR window_end >= timestamptz 'epoch' + $4::int8 * interval '1 microsecond')"
	"   AND ($5::int8 IS NULL OR window_end < timestamptz 'epoch' + $5::int8 * interval '1 microsecond')"
	" ORDER BY window_end DESC, slice DESC, test DESC LIMIT $6::int8) h"
	" ORDER BY 4, 1, 6";

/* One backward primary-key probe per slice, as driftd.latest_status. */
static const char status_sql[] =
	"SELECT " ROW_COLUMNS
	"  FROM (SELECT s.slice, w.window_id, w.window_start, w.window_end, w.n,"
	"               t.test, t.statistic, t.p_value, t.threshold, t.drifted"
	"          FROM driftd.slices s"
	"         CROSS JOIN LATERAL ("
	"               SELECT x.window_id, x.window_start, x.window_end, x.n"
	"                 FROM driftd.windows x"
	"                WHERE x.model = s.model AND x.slice = s.slice"
	"                ORDER BY x.window_id DESC LIMIT 1) w"
	"          JOIN driftd.test_results t ON t.model = s.model"
	"           AND t.slice = s.slice AND t.window_id = w.window_id"
	"         WHERE s.model = $1) l"
	" ORDER BY slice, test LIMIT $2::int8";

/* Newest first, one row more than the limit to tell truncation. */
static const char alarms_sql[] =
	"SELECT " ALARM_COLUMNS ", 1::int8"
	"  FROM driftd.stream_alarm_history"
	" WHERE model = $1"
	"   AND ($2::text IS NULL OR slice = $2)"
	"   AND ($3::text IS NULL OR detector = $3)"
	"   AND ($4::text IS NULL OR signal = $4)"
	"   AND ($5::int8 IS NULL OR detected_at >= " US_TIME("$5") ")"
	"   AND ($6::int8 IS NULL OR detected_at < " US_TIME("$6") ")"
	" ORDER BY detected_at DESC, alarm_id DESC LIMIT $7::int8";

/* Per slice with alarms since $2: their count, then the newest of them
 * by a backward scan of stream_alarms_slice_idx (five times faster than
 * window functions over 50 000 alarms of 100 slices). */
static const char alarm_summary_sql[] =
	"SELECT " ALARM_COLUMNS ", c.n"
	"  FROM (SELECT slice AS s, count(*) AS n FROM driftd.stream_alarm_history"
	"         WHERE model = $1 AND detected_at >= " US_TIME("$2")
	"         GROUP BY slice) c"
	" CROSS JOIN LATERAL ("
	"       SELECT * FROM driftd.stream_alarm_history h"
	"        WHERE h.model = $1 AND h.slice = c.s"
	"          AND h.detected_at >= " US_TIME("$2")
	"        ORDER BY h.detected_at DESC, h.alarm_id DESC LIMIT 1) a"
	" ORDER BY slice LIMIT $3::int8";

enum rdr_state { RD_DOWN, RD_SETUP, RD_UP };

struct rdr_req {
	TAILQ_ENTRY(rdr_req) link;
	struct rdr *r;
	const char *sql;
	int nparams;
	const char *values[N_PARAMS];
	char *text;		/* model, slice, test, back to back */
	char num[N_PARAMS][PARAM_LEN];
	unsigned limit;		/* rows wanted; the query asks one more */
	bool history;
	/* One of the two is set; both NULL once cancelled or answered. */
	rdr_fn fn;
	rdr_alarm_fn alarm_fn;
	void *arg;
	struct event *deadline;
	uint64_t t0_us;
};

TAILQ_HEAD(rdr_list, rdr_req);

struct rdr {
	struct pgq *pgq;
	struct rdr_opts opts;
	struct event_base *base;
	enum rdr_state state;
	struct rdr_list queue;	/* the head is in flight when in_flight */
	size_t n_queued;
	bool in_flight;
	struct event *kick;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void rlog(struct rdr *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rlog(struct rdr *r, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!r->opts.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->opts.log(r->opts.arg, level, msg);
}

static void req_free(struct rdr_req *q)
{
	if (q->deadline)
		event_free(q->deadline);
	free(q->text);
	free(q);
}

static void unlink_req(struct rdr *r, struct rdr_req *q)
{
	if (q == TAILQ_FIRST(&r->queue) && r->in_flight)
		r->in_flight = false;
	TAILQ_REMOVE(&r->queue, q, link);
	r->n_queued--;
}

static bool wanted(const struct rdr_req *q)
{
	return q->fn || q->alarm_fn;
}

static void answer_error(struct rdr_req *q, int err, const char *why)
{
	if (q->fn)
		q->fn(q->arg, err, why, NULL, 0, false);
	else if (q->alarm_fn)
		q->alarm_fn(q->arg, err, why, NULL, 0, false);
}

/* Answers Q with an error and forgets it. */
static void fail_req(struct rdr *r, struct rdr_req *q, int err, const char *why)
{
	unlink_req(r, q);
	answer_error(q, err, why);
	req_free(q);
}

static void send_next(struct rdr *r)
{
	struct rdr_req *q = TAILQ_FIRST(&r->queue);

	if (r->state != RD_UP || r->in_flight || !q)
		return;
	if (pgq_send(r->pgq, q->sql, q->nparams, q->values, NULL, NULL,
		     r->opts.timeout_us + PGQ_BACKSTOP_US) < 0) {
		r->state = RD_DOWN;
		pgq_reset(r->pgq);
		fail_req(r, q, -ECONNRESET, pgq_error(r->pgq));
		return;
	}
	r->in_flight = true;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	send_next(arg);
}

/* A read past its deadline: a queued one just goes; one in flight takes
 * the connection with it, as only a reset stops a query at once. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rdr_req *q = arg;
	struct rdr *r = q->r;

	if (q == TAILQ_FIRST(&r->queue) && r->in_flight) {
		r->state = RD_DOWN;
		pgq_reset(r->pgq);
		event_active(r->kick, 0, 0);
	}
	fail_req(r, q, -ETIMEDOUT, "the database did not answer in time");
}

static bool parse_i64(const PGresult *res, int row, int col, int64_t *v)
{
	char *end;

	*v = strtoll(PQgetvalue(res, row, col), &end, 10);
	return !PQgetisnull(res, row, col) && *end == '\0';
}

static double get_double(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? (double)NAN :
	       strtod(PQgetvalue(res, row, col), NULL);
}

static int decode(const PGresult *res, int first, int n, struct rdr_row *rows)
{
	int64_t v;

	for (int i = 0; i < n; i++) {
		struct rdr_row *w = &rows[i];
		int row = first + i;

		w->slice = PQgetvalue(res, row, C_SLICE);
		w->test = PQgetvalue(res, row, C_TEST);
		if (!parse_i64(res, row, C_ID, &w->window_id) ||
		    !parse_i64(res, row, C_START, &w->start_us) ||
		    !parse_i64(res, row, C_END, &w->end_us) ||
		    !parse_i64(res, row, C_N, &v) || v < 0 || v > UINT32_MAX)
			return -EIO;
		w->n = (unsigned)v;
		w->statistic = get_double(res, row, C_STAT);
		w->p_value = get_double(res, row, C_P);
		w->threshold = get_double(res, row, C_THR);
		w->drifted = PQgetvalue(res, row, C_DRIFTED)[0] == 't';
	}
	return 0;
}

static int decode_alarms(const PGresult *res, int n, struct rdr_alarm *rows)
{
	for (int i = 0; i < n; i++) {
		struct rdr_alarm *a = &rows[i];

		a->slice = PQgetvalue(res, i, A_SLICE);
		a->detector = PQgetvalue(res, i, A_DETECTOR);
		a->signal = PQgetvalue(res, i, A_SIGNAL);
		a->direction = PQgetvalue(res, i, A_DIRECTION);
		a->params = PQgetvalue(res, i, A_PARAMS);
		if (!parse_i64(res, i, A_DETECTED, &a->detected_us) ||
		    !parse_i64(res, i, A_SEEN, &a->records_seen) ||
		    !parse_i64(res, i, A_N_BEFORE, &a->n_before) ||
		    !parse_i64(res, i, A_N_AFTER, &a->n_after) ||
		    !parse_i64(res, i, A_ID, &a->alarm_id) ||
		    !parse_i64(res, i, A_COUNT, &a->count))
			return -EIO;
		a->statistic = get_double(res, i, A_STAT);
		a->threshold = get_double(res, i, A_THR);
		a->mean_before = get_double(res, i, A_MEAN_BEFORE);
		a->mean_after = get_double(res, i, A_MEAN_AFTER);
	}
	return 0;
}

/* Alarm reads are newest first: a surplus row is the last. */
static void deliver_alarms(struct rdr_req *q, const PGresult *res, int n,
			   bool truncated)
{
	struct rdr_alarm *rows = calloc(n ? (size_t)n : 1, sizeof(*rows));

	if (!rows)
		q->alarm_fn(q->arg, -ENOMEM, "out of memory", NULL, 0, false);
	else if (PQnfields(res) != A__COUNT || decode_alarms(res, n, rows) < 0)
		q->alarm_fn(q->arg, -EIO, "unexpected result shape", NULL, 0, false);
	else
		q->alarm_fn(q->arg, 0, NULL, rows, (size_t)n, truncated);
	free(rows);
}

static void deliver(struct rdr *r, struct rdr_req *q, const PGresult *res)
{
	int n = PQntuples(res), first = 0;
	bool truncated = n > (int)q->limit;
	struct rdr_row *rows;

	if (truncated) {
		/* history: the surplus row is the oldest, i.e. the first */
		first = q->history ? 1 : 0;
		n = (int)q->limit;
	}
	if (q->alarm_fn) {
		deliver_alarms(q, res, n, truncated);
		return;
	}
	rows = calloc(n ? (size_t)n : 1, sizeof(*rows));
	if (!rows) {
		q->fn(q->arg, -ENOMEM, "out of memory", NULL, 0, false);
	} else if (PQnfields(res) != C__COUNT || decode(res, first, n, rows) < 0) {
		q->fn(q->arg, -EIO, "unexpected result shape", NULL, 0, false);
	} else {
		q->fn(q->arg, 0, NULL, rows, (size_t)n, truncated);
	}
	free(rows);
}

static void on_result(struct rdr *r, PGresult *res)
{
	struct rdr_req *q = TAILQ_FIRST(&r->queue);
	const char *msg, *code;

	if (r->state == RD_SETUP) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			rlog(r, LOG_WARNING, "reader: session setup failed: %s",
			     PQresultErrorMessage(res));
			r->state = RD_DOWN;
			pgq_reset(r->pgq);
			return;
		}
		r->state = RD_UP;
		pgq_backoff_reset(r->pgq);
		send_next(r);
		return;
	}
	if (!q || !r->in_flight)
		return;
	unlink_req(r, q);
	if (r->opts.observe)
		r->opts.observe(r->opts.arg, mono_us() - q->t0_us);
	if (wanted(q) && PQresultStatus(res) == PGRES_TUPLES_OK) {
		deliver(r, q, res);
	} else if (wanted(q)) {
		/* The server's statement_timeout may beat our own deadline. */
		code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		answer_error(q, code && !strcmp(code, "57014") ? -ETIMEDOUT :
				code && !strncmp(code, "22", 2)  ? -EINVAL :
								   -EIO,
			     msg ? msg : "query failed");
	}
	req_free(q);
	send_next(r);
}

static void on_pgq(void *arg, enum pgq_event ev, PGresult *res, const char *why)
{
	struct rdr *r = arg;
	char setup[160];
	struct rdr_req *q;

	switch (ev) {
	case PGQ_CONNECTING:
		break;
	case PGQ_UP:
		snprintf(setup, sizeof(setup),
			 "SET client_min_messages = warning;"
			 "SET default_transaction_read_only = on;"
			 "SET statement_timeout = '%" PRIu64 " ms'",
			 r->opts.timeout_us / 1000 + 1);
		r->state = RD_SETUP;
		if (pgq_send(r->pgq, setup, 0, NULL, NULL, NULL,
			     r->opts.timeout_us) < 0) {
			r->state = RD_DOWN;
			pgq_reset(r->pgq);
		}
		break;
	case PGQ_DOWN:
		r->state = RD_DOWN;
		if (r->in_flight && (q = TAILQ_FIRST(&r->queue)))
			fail_req(r, q, -ECONNRESET, why);
		break;
	case PGQ_RESULT:
		on_result(r, res);
		break;
	}
	PQclear(res);
}

struct rdr *rdr_new(struct event_base *base, const char *dsn,
		    const struct rdr_opts *o)
{
	struct rdr *r = calloc(1, sizeof(*r));
	struct pgq_opts po = { .backoff_min_us = BACKOFF_MIN_US,
			       .backoff_max_us = BACKOFF_MAX_US,
			       .application_name = "driftd-read" };

	if (!r)
		return NULL;
	if (o)
		r->opts = *o;
	if (!r->opts.timeout_us)
		r->opts.timeout_us = DEFAULT_TIMEOUT_US;
	if (!r->opts.max_rows)
		r->opts.max_rows = DEFAULT_MAX_ROWS;
	if (!r->opts.max_queued)
		r->opts.max_queued = DEFAULT_MAX_QUEUED;
	r->base = base;
	TAILQ_INIT(&r->queue);
	po.connect_timeout_us = r->opts.timeout_us;
	r->kick = event_new(base, -1, 0, on_kick, r);
	r->pgq = pgq_new(base, dsn, &po, on_pgq, r);
	if (!r->kick || !r->pgq) {
		rdr_free(r);
		return NULL;
	}
	return r;
}

void rdr_start(struct rdr *r)
{
	pgq_start(r->pgq);
}

bool rdr_up(const struct rdr *r)
{
	return r->state == RD_UP;
}

size_t rdr_queued(const struct rdr *r)
{
	return r->n_queued;
}

static char *join_text(const char *const *s, size_t n, const char **out)
{
	size_t len = 0, i;
	char *buf, *p;

	for (i = 0; i < n; i++)
		len += s[i] ? strlen(s[i]) + 1 : 0;
	if (!(p = buf = malloc(len ? len : 1)))
		return NULL;
	for (i = 0; i < n; i++) {
		out[i] = s[i] ? p : NULL;
		if (s[i])
			p = stpcpy(p, s[i]) + 1;
	}
	return buf;
}

static int submit(struct rdr *r, struct rdr_req *q, struct rdr_req **out)
{
	struct timeval tv = { .tv_sec = (time_t)(r->opts.timeout_us / 1000000),
			      .tv_usec = (suseconds_t)(r->opts.timeout_us % 1000000) };

	q->r = r;
	q->t0_us = mono_us();
	q->deadline = evtimer_new(r->base, on_deadline, q);
	if (!q->deadline || evtimer_add(q->deadline, &tv) < 0) {
		req_free(q);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&r->queue, q, link);
	r->n_queued++;
	if (!r->in_flight)
		event_active(r->kick, 0, 0);
	if (out)
		*out = q;
	return 0;
}

static struct rdr_req *new_req(struct rdr *r, const char *sql, rdr_fn fn,
			       void *arg, unsigned limit, int *err)
{
	struct rdr_req *q;

	*err = r->state != RD_UP ? -ENOTCONN :
	       r->n_queued >= r->opts.max_queued ? -ENOBUFS : 0;
	if (*err)
		return NULL;
	if (!(q = calloc(1, sizeof(*q)))) {
		*err = -ENOMEM;
		return NULL;
	}
	q->sql = sql;
	q->fn = fn;
	q->arg = arg;
	q->limit = limit && limit < r->opts.max_rows ? limit : r->opts.max_rows;
	return q;
}

static const char *num(struct rdr_req *q, int i, int64_t v)
{
	snprintf(q->num[i], PARAM_LEN, "%" PRId64, v);
	return q->num[i];
}

/* A list query's last three parameters, from parameter I on: since and
 * until (NULL when open) and one row more than the limit (to tell a
 * truncated answer). */
static void range_values(struct rdr_req *q, int i, int64_t since_us,
			 int64_t until_us)
{
	q->values[i] = since_us == INT64_MIN ? NULL : num(q, i, since_us);
	q->values[i + 1] = until_us == INT64_MAX ? NULL : num(q, i + 1, until_us);
	q->values[i + 2] = num(q, i + 2, (int64_t)q->limit + 1);
}

int rdr_history(struct rdr *r, const struct rdr_history_query *hq, rdr_fn fn,
		void *arg, struct rdr_req **out)
{
	const char *text[3] = { hq->model, hq->slice, hq->test };
	struct rdr_req *q;
	int err;

	if (!hq->model || !*hq->model || hq->since_us >= hq->until_us)
		return -EINVAL;
	if (!(q = new_req(r, history_sql, fn, arg, hq->limit, &err)))
		return err;
	q->history = true;
	q->nparams = 6;
	if (!(q->text = join_text(text, 3, q->values))) {
		req_free(q);
		return -ENOMEM;
	}
	range_values(q, 3, hq->since_us, hq->until_us);
	return submit(r, q, out);
}

int rdr_status(struct rdr *r, const char *model, rdr_fn fn, void *arg,
	       struct rdr_req **out)
{
	struct rdr_req *q;
	int err;

	if (!model || !*model)
		return -EINVAL;
	if (!(q = new_req(r, status_sql, fn, arg, 0, &err)))
		return err;
	q->nparams = 2;
	if (!(q->text = join_text(&model, 1, q->values))) {
		req_free(q);
		return -ENOMEM;
	}
	q->values[1] = num(q, 1, (int64_t)q->limit + 1);
	return submit(r, q, out);
}

int rdr_alarms(struct rdr *r, const struct rdr_alarm_query *aq,
	       rdr_alarm_fn fn, void *arg, struct rdr_req **out)
{
	const char *text[4] = { aq->model, aq->slice, aq->detector, aq->signal };
	struct rdr_req *q;
	int err;

	if (!aq->model || !*aq->model || aq->since_us >= aq->until_us)
		return -EINVAL;
	if (!(q = new_req(r, alarms_sql, NULL, arg, aq->limit, &err)))
		return err;
	q->alarm_fn = fn;
	q->nparams = 7;
	if (!(q->text = join_text(text, 4, q->values))) {
		req_free(q);
		return -ENOMEM;
	}
	range_values(q, 4, aq->since_us, aq->until_us);
	return submit(r, q, out);
}

int rdr_alarm_summary(struct rdr *r, const char *model, int64_t since_us,
		      rdr_alarm_fn fn, void *arg, struct rdr_req **out)
{
	struct rdr_req *q;
	int err;

	if (!model || !*model)
		return -EINVAL;
	if (!(q = new_req(r, alarm_summary_sql, NULL, arg, 0, &err)))
		return err;
	q->alarm_fn = fn;
	q->nparams = 3;
	if (!(q->text = join_text(&model, 1, q->values))) {
		req_free(q);
		return -ENOMEM;
	}
	q->values[1] = num(q, 1, since_us);
	q->values[2] = num(q, 2, (int64_t)q->limit + 1);
	return submit(r, q, out);
}

void rdr_cancel(struct rdr *r, struct rdr_req *q)
{
	/* In flight: the answer still has to be read, and is then dropped. */
	if (q == TAILQ_FIRST(&r->queue) && r->in_flight) {
		q->fn = NULL;
		q->alarm_fn = NULL;
		event_del(q->deadline);
		return;
	}
	unlink_req(r, q);
	req_free(q);
}

void rdr_free(struct rdr *r)
{
	struct rdr_req *q;

	if (!r)
		return;
	while ((q = TAILQ_FIRST(&r->queue))) {
		unlink_req(r, q);
		req_free(q);
	}
	pgq_free(r->pgq);
	if (r->kick)
		event_free(r->kick);
	free(r);
}
