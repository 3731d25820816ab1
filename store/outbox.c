/* outbox: claims and attempt records on their own pgq connection (see
 * outbox.h).  Attempts are written first, in order; a claim goes out only
 * when none is waiting.  The statements live in request.c. */
#include "outbox.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "pgq.h"
#include "request.h"

#define DEFAULT_QUERY_TIMEOUT_US (UINT64_C(10) * 1000000)
#define DEFAULT_MAX_PENDING 10000
#define BACKOFF_MIN_US 100000
#define BACKOFF_MAX_US 10000000

enum sent { SENT_NOTHING, SENT_ATTEMPT, SENT_CLAIM };

struct outbox {
	struct pgq *pgq;
	struct outbox_opts opts;
	void *arg;
	bool up;
	enum sent sent;
	struct req_list queue;	/* attempts to record */
	size_t n_queued;
	struct req *claim;	/* waiting or in flight */
	outbox_claim_fn claim_fn;
	void *claim_arg;
	struct event *kick;	/* sends from the loop, never from a call */
};

static void olog(struct outbox *o, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void olog(struct outbox *o, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!o->opts.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->opts.log(o->arg, level, msg);
}

static void pgq_log(void *arg, int level, const char *msg)
{
	olog(arg, level, "%s", msg);
}

static const char *error_text(const PGresult *res, char *buf, size_t len)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	snprintf(buf, len, "%s (SQLSTATE %s)", msg ? msg : PQresStatus(PQresultStatus(res)),
		 code ? code : "?");
	return buf;
}

/* As in store.c: the row's content is at fault, retrying cannot help. */
static bool is_data_error(const PGresult *res)
{
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return code && (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0 ||
			strncmp(code, "54", 2) == 0);
}

/* The claim ends without rows; the caller tries again on its own timer. */
static void fail_claim(struct outbox *o)
{
	outbox_claim_fn fn = o->claim_fn;

	req_free(o->claim);
	o->claim = NULL;
	o->claim_fn = NULL;
	if (fn)
		fn(o->claim_arg, NULL);
}

static void send_next(struct outbox *o)
{
	struct req *r = TAILQ_FIRST(&o->queue);
	enum sent what = r ? SENT_ATTEMPT : SENT_CLAIM;

	if (!o->up || o->sent != SENT_NOTHING)
		return;
	if (!r)
		r = o->claim;
	if (!r)
		return;
	if (pgq_send(o->pgq, req_sql(r), r->nparams, r->values, r->lengths, r->formats,
		     o->opts.query_timeout_us) < 0) {
		olog(o, LOG_WARNING, "outbox: %s", pgq_error(o->pgq));
		o->up = false;
		pgq_reset(o->pgq);
		if (what == SENT_CLAIM)
			fail_claim(o);
		return;
	}
	o->sent = what;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	send_next(arg);
}

static void kick(struct outbox *o)
{
	if (o->up && o->sent == SENT_NOTHING)
		event_active(o->kick, 0, 0);
}

static void pop_attempt(struct outbox *o)
{
	struct req *r = TAILQ_FIRST(&o->queue);

	TAILQ_REMOVE(&o->queue, r, link);
	o->n_queued--;
	req_free(r);
}

static void on_attempt_result(struct outbox *o, const PGresult *res)
{
	const struct req *r = TAILQ_FIRST(&o->queue);
	char what[256], err[512];

	req_describe(r, what, sizeof(what));
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
			olog(o, LOG_INFO, "outbox: %s not recorded: the row changed "
			     "meanwhile (redelivered, or its lease ran out)", what);
		pgq_backoff_reset(o->pgq);
	} else if (is_data_error(res)) {
		olog(o, LOG_ERR, "outbox: dropping %s: %s", what,
		     error_text(res, err, sizeof(err)));
	} else {
		/* Kept at the head: sent again after the reconnect. */
		olog(o, LOG_WARNING, "outbox: recording %s failed: %s", what,
		     error_text(res, err, sizeof(err)));
		o->up = false;
		pgq_reset(o->pgq);
		return;
	}
	pop_attempt(o);
}

static int64_t int_at(const PGresult *res, int row, int col, int64_t null_value)
{
	return PQgetisnull(res, row, col) ? null_value
					  : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void deliver_claim(struct outbox *o, const PGresult *res)
{
	int n = PQntuples(res);
	struct outbox_row *rows = calloc((size_t)n + 1, sizeof(*rows));
	const char **disabled = calloc((size_t)n + 1, sizeof(*disabled));
	struct outbox_claim c = { .rows = rows, .disabled = disabled, .next_due_us = -1 };
	outbox_claim_fn fn = o->claim_fn;
	const char *kind;

	if (!rows || !disabled) {
		free(rows);
		free(disabled);
		olog(o, LOG_ERR, "outbox: out of memory reading a claim; its rows "
		     "are delivered when their lease runs out");
		fail_claim(o);
		return;
	}
	for (int i = 0; i < n; i++) {
		kind = PQgetvalue(res, i, 0);
		if (strcmp(kind, "row") == 0) {
			rows[c.n++] = (struct outbox_row){
				.id = PQgetvalue(res, i, 1),
				.endpoint = PQgetvalue(res, i, 2),
				.type = PQgetvalue(res, i, 3),
				.body = PQgetvalue(res, i, 4),
				.attempts = (unsigned)int_at(res, i, 5, 0),
				.age_us = (uint64_t)int_at(res, i, 6, 0),
			};
		} else if (strcmp(kind, "next") == 0) {
			c.next_due_us = int_at(res, i, 6, -1);
			if (c.next_due_us < -1)
				c.next_due_us = 0;
		} else {
			disabled[c.n_disabled++] = PQgetvalue(res, i, 2);
		}
	}
	req_free(o->claim);
	o->claim = NULL;
	o->claim_fn = NULL;
	fn(o->claim_arg, &c);
	free(rows);
	free(disabled);
}

static void on_claim_result(struct outbox *o, const PGresult *res)
{
	char err[512];

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 7) {
		pgq_backoff_reset(o->pgq);
		deliver_claim(o, res);
		return;
	}
	olog(o, LOG_WARNING, "outbox: claim failed: %s", error_text(res, err, sizeof(err)));
	if (!is_data_error(res)) {
		o->up = false;
		pgq_reset(o->pgq);
	}
	fail_claim(o);
}

static void on_pgq(void *arg, enum pgq_event ev, PGresult *res, const char *why)
{
	struct outbox *o = arg;
	enum sent sent = o->sent;

	switch (ev) {
	case PGQ_CONNECTING:
		break;
	case PGQ_UP:
		o->up = true;
		send_next(o);
		if (o->opts.up)
			o->opts.up(o->arg);
		break;
	case PGQ_DOWN:
		olog(o, LOG_WARNING, "outbox: database: %s", why);
		o->up = false;
		o->sent = SENT_NOTHING;
		if (sent == SENT_CLAIM)
			fail_claim(o);
		break;
	case PGQ_RESULT:
		o->sent = SENT_NOTHING;
		if (sent == SENT_ATTEMPT)
			on_attempt_result(o, res);
		else
			on_claim_result(o, res);
		send_next(o);
		break;
	}
	PQclear(res);
}

struct outbox *outbox_new(struct event_base *base, const char *dsn,
			  const struct outbox_opts *opts, void *arg)
{
	struct outbox *o = calloc(1, sizeof(*o));
	struct pgq_opts po = { .backoff_min_us = BACKOFF_MIN_US,
			       .backoff_max_us = BACKOFF_MAX_US,
			       .application_name = "driftd-outbox", .log = pgq_log };

	if (!o)
		return NULL;
	if (opts)
		o->opts = *opts;
	if (!o->opts.query_timeout_us)
		o->opts.query_timeout_us = DEFAULT_QUERY_TIMEOUT_US;
	if (!o->opts.max_pending)
		o->opts.max_pending = DEFAULT_MAX_PENDING;
	o->arg = arg;
	TAILQ_INIT(&o->queue);
	po.connect_timeout_us = o->opts.query_timeout_us;
	o->kick = event_new(base, -1, 0, on_kick, o);
	o->pgq = pgq_new(base, dsn, &po, on_pgq, o);
	if (!o->kick || !o->pgq) {
		outbox_free(o);
		return NULL;
	}
	return o;
}

void outbox_start(struct outbox *o)
{
	pgq_start(o->pgq);
}

int outbox_claim(struct outbox *o, const char *const *endpoints, size_t n,
		 unsigned limit, uint64_t lease_us, outbox_claim_fn fn, void *arg)
{
	int err;

	if (o->claim)
		return -EBUSY;
	if (!o->up)
		return -ENOTCONN;
	err = req_new_claim(endpoints, n, limit, lease_us, &o->claim);
	if (err)
		return err;
	o->claim_fn = fn;
	o->claim_arg = arg;
	kick(o);
	return 0;
}

int outbox_record(struct outbox *o, const struct outbox_attempt *a)
{
	struct req *r;
	int err;

	if (o->n_queued >= o->opts.max_pending)
		return -ENOBUFS;
	err = req_new_attempt(a, &r);
	if (err)
		return err;
	TAILQ_INSERT_TAIL(&o->queue, r, link);
	o->n_queued++;
	kick(o);
	return 0;
}

size_t outbox_pending(const struct outbox *o)
{
	return o->n_queued;
}

bool outbox_up(const struct outbox *o)
{
	return o->up;
}

void outbox_free(struct outbox *o)
{
	if (!o)
		return;
	pgq_free(o->pgq);
	if (o->kick)
		event_free(o->kick);
	while (!TAILQ_EMPTY(&o->queue))
		pop_attempt(o);
	req_free(o->claim);
	free(o);
}
