/* pgq: one asynchronous libpq connection on a libevent loop (see pgq.h).
 * Nothing here blocks: connecting goes through PQconnectPoll, queries through
 * PQsendQuery* / PQflush / PQconsumeInput / PQisBusy, and every wait is a
 * one-shot event on the socket libpq reports at that moment. */
#include "pgq.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

enum pgq_phase {
	PH_STOPPED,    /* nothing scheduled */
	PH_BACKOFF,    /* waiting for the retry timer */
	PH_CONNECTING,
	PH_IDLE,       /* up; watching the socket for the server going away */
	PH_QUERY,
};

struct pgq {
	struct event_base *base;
	char *dsn;
	char *application_name;
	struct pgq_opts opts;
	pgq_fn fn;
	void *arg;

	PGconn *conn;
	enum pgq_phase phase;
	struct event *io;       /* one-shot, re-assigned before every wait */
	struct event *deadline; /* the running connect or query */
	struct event *retry;    /* next connection attempt */
	uint64_t timeout_us;    /* of the running connect or query, for messages */
	PGresult *res;          /* kept until the query ends, then handed over */
	uint64_t backoff_us;    /* delay scale of the next retry; 0 = minimum */
	uint64_t rng;
	char err[512];
};

static void on_connect_io(evutil_socket_t fd, short what, void *arg);
static void on_flush_io(evutil_socket_t fd, short what, void *arg);
static void on_read_io(evutil_socket_t fd, short what, void *arg);
static void on_idle_io(evutil_socket_t fd, short what, void *arg);

static struct timeval to_timeval(uint64_t us)
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
			      .tv_usec = (suseconds_t)(us % 1000000) };
	return tv;
}

/* libpq's messages span lines ("...failed: ...\n\tIs the server running...");
 * as one line they suit log lines and on_state reasons. */
static void set_err(struct pgq *q, const char *msg)
{
	size_t len = 0;
	bool gap = false;

	for (msg = msg && *msg ? msg : "unknown error"; *msg; msg++) {
		if (*msg == '\n' || *msg == '\t' || *msg == ' ') {
			gap = len > 0;
			continue;
		}
		if (len + 2 >= sizeof(q->err))
			break;
		if (gap)
			q->err[len++] = ' ';
		q->err[len++] = *msg;
		gap = false;
	}
	q->err[len] = '\0';
}

static void emit(struct pgq *q, enum pgq_event ev, PGresult *res)
{
	q->fn(q->arg, ev, res, ev == PGQ_DOWN ? q->err : NULL);
}

/* Retries only need to be spread apart, not unpredictable. */
static uint64_t next_random(struct pgq *q)
{
	q->rng ^= q->rng << 13;
	q->rng ^= q->rng >> 7;
	q->rng ^= q->rng << 17;
	return q->rng;
}

static void teardown(struct pgq *q)
{
	/* Unregister before PQfinish closes the socket under the event. */
	event_del(q->io);
	event_del(q->deadline);
	PQclear(q->res);
	q->res = NULL;
	PQfinish(q->conn);
	q->conn = NULL;
}

static void schedule_retry(struct pgq *q, uint64_t delay_us)
{
	struct timeval tv = to_timeval(delay_us);

	q->phase = PH_BACKOFF;
	evtimer_add(q->retry, &tv);
}

/* A delay in [b/2, b] ("equal jitter"), b doubling from the minimum up to
 * the maximum, so daemons restarted together do not reconnect in step. */
static uint64_t next_backoff(struct pgq *q)
{
	uint64_t b = q->backoff_us ? q->backoff_us : q->opts.backoff_min_us;

	q->backoff_us = b * 2 > q->opts.backoff_max_us ? q->opts.backoff_max_us : b * 2;
	return b / 2 + next_random(q) % (b / 2 + 1);
}

/* why: NULL takes libpq's message.  Always the last call of a handler. */
static void fail(struct pgq *q, const char *why)
{
	set_err(q, why ? why : PQerrorMessage(q->conn));
	teardown(q);
	schedule_retry(q, next_backoff(q));
	emit(q, PGQ_DOWN, NULL);
}

/* Waits on the socket libpq uses right now: it may change while connecting
 * (several hosts or addresses), so it is never cached. */
static int wait_io(struct pgq *q, short what, event_callback_fn cb)
{
	int fd = PQsocket(q->conn);

	if (fd < 0)
		return -EBADF;
	event_del(q->io);
	if (event_assign(q->io, q->base, fd, what, cb, q) < 0 || event_add(q->io, NULL) < 0)
		return -ENOMEM;
	return 0;
}

static void wait_or_fail(struct pgq *q, short what, event_callback_fn cb)
{
	if (wait_io(q, what, cb) < 0)
		fail(q, "cannot wait on the connection's socket");
}

static void arm_deadline(struct pgq *q, uint64_t timeout_us)
{
	struct timeval tv = to_timeval(timeout_us);

	q->timeout_us = timeout_us;
	evtimer_add(q->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct pgq *q = arg;
	char msg[96];

	snprintf(msg, sizeof(msg), "%s timed out after %llu ms",
		 q->phase == PH_CONNECTING ? "connect" : "query",
		 (unsigned long long)(q->timeout_us / 1000));
	fail(q, msg);
}

/* Notices would otherwise go to stderr.  Warnings matter; NOTICE and below
 * are chatter, and so is the FATAL a server sends before closing, since the
 * owner hears of the closing itself through PGQ_DOWN. */
static void on_notice(void *arg, const PGresult *res)
{
	struct pgq *q = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	char msg[512];

	if (!q->opts.log)
		return;
	snprintf(msg, sizeof(msg), "postgres: %s", PQresultErrorMessage(res));
	msg[strcspn(msg, "\n")] = '\0';
	q->opts.log(q->arg, sev && strcmp(sev, "WARNING") == 0 ? LOG_WARNING : LOG_DEBUG, msg);
}

static void connect_now(struct pgq *q)
{
	/* Keywords after dbname override the DSN: we always speak UTF-8. */
	const char *const keys[] = { "dbname", "fallback_application_name",
				     "client_encoding", NULL };
	const char *const vals[] = { q->dsn, q->application_name, "UTF8", NULL };

	q->conn = PQconnectStartParams(keys, vals, 1);
	if (!q->conn) {
		fail(q, "out of memory");
		return;
	}
	if (PQstatus(q->conn) == CONNECTION_BAD) {
		fail(q, NULL);
		return;
	}
	PQsetNoticeReceiver(q->conn, on_notice, q);
	q->phase = PH_CONNECTING;
	arm_deadline(q, q->opts.connect_timeout_us);
	/* libpq: before the first PQconnectPoll, behave as if it asked to write. */
	if (wait_io(q, EV_WRITE, on_connect_io) < 0) {
		fail(q, NULL);
		return;
	}
	emit(q, PGQ_CONNECTING, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_now(arg);
}

static void connected(struct pgq *q)
{
	if (PQsetnonblocking(q->conn, 1) != 0) {
		fail(q, NULL);
		return;
	}
	event_del(q->deadline);
	q->phase = PH_IDLE;
	if (wait_io(q, EV_READ, on_idle_io) < 0) {
		fail(q, NULL);
		return;
	}
	emit(q, PGQ_UP, NULL);
}

static void on_connect_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgq *q = arg;

	switch (PQconnectPoll(q->conn)) {
	case PGRES_POLLING_READING:
		wait_or_fail(q, EV_READ, on_connect_io);
		return;
	case PGRES_POLLING_WRITING:
		wait_or_fail(q, EV_WRITE, on_connect_io);
		return;
	case PGRES_POLLING_OK:
		connected(q);
		return;
	default:
		fail(q, NULL);
		return;
	}
}

/* While idle nothing is expected from the server but its goodbye (shutdown,
 * pg_terminate_backend): notice it now rather than at the next write. */
static void on_idle_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgq *q = arg;
	PGnotify *n;

	if (!PQconsumeInput(q->conn) || PQstatus(q->conn) == CONNECTION_BAD) {
		fail(q, NULL);
		return;
	}
	while ((n = PQnotifies(q->conn)))
		PQfreemem(n);
	wait_or_fail(q, EV_READ, on_idle_io);
}

static bool is_error(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
	       st == PGRES_NONFATAL_ERROR;
}

/* The first error explains a failed multi-statement query; otherwise the
 * last result is the one asked for. */
static void keep_result(struct pgq *q, PGresult *r)
{
	if (q->res && is_error(q->res)) {
		PQclear(r);
		return;
	}
	PQclear(q->res);
	q->res = r;
}

/* The result goes to the owner only once PQgetResult() said the query is
 * over: the connection is idle then, so the owner may send, reset or free. */
static void finish_query(struct pgq *q)
{
	PGresult *res = q->res;

	q->res = NULL;
	event_del(q->deadline);
	if (PQstatus(q->conn) == CONNECTION_BAD) {
		PQclear(res);
		fail(q, NULL);
		return;
	}
	q->phase = PH_IDLE;
	if (wait_io(q, EV_READ, on_idle_io) < 0) {
		PQclear(res);
		fail(q, NULL);
		return;
	}
	emit(q, PGQ_RESULT, res);
}

static void collect(struct pgq *q)
{
	PGresult *r;

	while (!PQisBusy(q->conn)) {
		r = PQgetResult(q->conn);
		if (!r) {
			finish_query(q);
			return;
		}
		keep_result(q, r);
	}
	wait_or_fail(q, EV_READ, on_read_io);
}

static void on_read_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgq *q = arg;

	if (!PQconsumeInput(q->conn)) {
		fail(q, NULL);
		return;
	}
	collect(q);
}

/* libpq: while PQflush returns 1, wait for either direction; input must be
 * consumed meanwhile or a server blocked on its own output never reads ours. */
static void on_flush_io(evutil_socket_t fd, short what, void *arg)
{
	struct pgq *q = arg;

	if ((what & EV_READ) && !PQconsumeInput(q->conn)) {
		fail(q, NULL);
		return;
	}
	switch (PQflush(q->conn)) {
	case 0:
		collect(q);
		return;
	case 1:
		wait_or_fail(q, EV_READ | EV_WRITE, on_flush_io);
		return;
	default:
		fail(q, NULL);
		return;
	}
}

/* After a PQsend* call that returned OK: the query is on its way. */
static int sent(struct pgq *q, int ok, uint64_t timeout_us)
{
	if (!ok) {
		set_err(q, PQerrorMessage(q->conn));
		return -EIO;
	}
	q->phase = PH_QUERY;
	arm_deadline(q, timeout_us);
	/* Flush from the loop, so that failures arrive as PGQ_DOWN, never
	 * inside this call. */
	if (wait_io(q, EV_WRITE, on_flush_io) < 0) {
		set_err(q, "cannot wait on the connection's socket");
		return -EIO;
	}
	return 0;
}

int pgq_send(struct pgq *q, const char *sql, int nparams,
	     const char *const *values, const int *lengths, const int *formats,
	     uint64_t timeout_us)
{
	if (q->phase != PH_IDLE)
		return -ENOTCONN;
	return sent(q, values ? PQsendQueryParams(q->conn, sql, nparams, NULL,
						  values, lengths, formats, 0)
			      : PQsendQuery(q->conn, sql), timeout_us);
}

int pgq_prepare(struct pgq *q, const char *name, const char *sql,
		uint64_t timeout_us)
{
	if (q->phase != PH_IDLE)
		return -ENOTCONN;
	return sent(q, PQsendPrepare(q->conn, name, sql, 0, NULL), timeout_us);
}

int pgq_send_prepared(struct pgq *q, const char *name, int nparams,
		      const char *const *values, const int *lengths,
		      const int *formats, uint64_t timeout_us)
{
	if (q->phase != PH_IDLE)
		return -ENOTCONN;
	return sent(q, PQsendQueryPrepared(q->conn, name, nparams, values,
					   lengths, formats, 0), timeout_us);
}

struct pgq *pgq_new(struct event_base *base, const char *dsn,
		    const struct pgq_opts *o, pgq_fn fn, void *arg)
{
	struct pgq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->base = base;
	q->opts = *o;
	q->fn = fn;
	q->arg = arg;
	q->rng = ((uint64_t)(uintptr_t)q ^ (uint64_t)time(NULL) ^
		  ((uint64_t)getpid() << 32)) | 1;
	q->dsn = strdup(dsn);
	q->application_name = strdup(o->application_name ? o->application_name : "");
	q->io = event_new(base, -1, 0, on_idle_io, q);
	q->deadline = evtimer_new(base, on_deadline, q);
	q->retry = evtimer_new(base, on_retry, q);
	if (!q->dsn || !q->application_name || !q->io || !q->deadline || !q->retry) {
		pgq_free(q);
		return NULL;
	}
	return q;
}

void pgq_start(struct pgq *q)
{
	if (q->phase == PH_STOPPED)
		schedule_retry(q, 0);
}

void pgq_reset(struct pgq *q)
{
	if (q->phase == PH_STOPPED || q->phase == PH_BACKOFF)
		return;
	teardown(q);
	schedule_retry(q, next_backoff(q));
}

void pgq_backoff_reset(struct pgq *q)
{
	q->backoff_us = 0;
}

void pgq_stop(struct pgq *q)
{
	teardown(q);
	event_del(q->retry);
	q->phase = PH_STOPPED;
}

const char *pgq_error(struct pgq *q)
{
	return q->err;
}

void pgq_free(struct pgq *q)
{
	if (!q)
		return;
	/* Events go first: none may outlive the socket PQfinish closes. */
	if (q->io)
		event_free(q->io);
	if (q->deadline)
		event_free(q->deadline);
	if (q->retry)
		event_free(q->retry);
	PQclear(q->res);
	PQfinish(q->conn);
	free(q->dsn);
	free(q->application_name);
	free(q);
}
