/* pgq: one asynchronous libpq connection driven by a libevent loop, in the
 * manner of pgbouncer's adapter: PQconnectStart/PQconnectPoll, non-blocking
 * mode, one-shot events re-armed on a freshly read PQsocket(), a timer on
 * every connect and query, reconnection with jittered exponential backoff.
 *
 * One query at a time.  Events reach the owner through one callback, always
 * as the last thing pgq does in that turn, so the callback may send the next
 * query, reset, or free the pgq.  Errors: 0 or a negative errno.
 */
#ifndef DRIFTD_PGQ_H
#define DRIFTD_PGQ_H

#include <stdint.h>

#include <libpq-fe.h>

struct event_base;
struct pgq;

enum pgq_event {
	PGQ_CONNECTING, /* an attempt started */
	PGQ_UP,         /* connected, idle */
	PGQ_DOWN,       /* attempt failed, connection lost or query timed out;
			 * the query in flight is abandoned; reconnects by itself */
	PGQ_RESULT,     /* the query finished; the connection is idle again */
};

/* res: only with PGQ_RESULT; owned by the callee (PQclear it).  It is the
 * first error result of the query, else its last result.  why: only with
 * PGQ_DOWN, without trailing newline. */
typedef void (*pgq_fn)(void *arg, enum pgq_event ev, PGresult *res, const char *why);
typedef void (*pgq_log_fn)(void *arg, int level, const char *msg);

struct pgq_opts {
	uint64_t connect_timeout_us;
	uint64_t backoff_min_us, backoff_max_us;
	const char *application_name; /* fallback_application_name */
	pgq_log_fn log;               /* server notices and warnings; may be NULL */
};

struct pgq *pgq_new(struct event_base *base, const char *dsn,
		    const struct pgq_opts *o, pgq_fn fn, void *arg);
/* Begin connecting on the next loop turn (no-op unless stopped).  No pgq_*
 * function calls back synchronously. */
void pgq_start(struct pgq *q);
/* Send sql; values == NULL sends a simple query, which may hold several
 * statements run as one implicit transaction.  Parameters are typed by the
 * SQL (write $1::int8 ...); formats may be NULL for all-text.
 * -ENOTCONN unless idle and up; -EIO when libpq refuses (see pgq_error()). */
int pgq_send(struct pgq *q, const char *sql, int nparams,
	     const char *const *values, const int *lengths, const int *formats,
	     uint64_t timeout_us);
/* Prepares SQL as statement NAME on this connection, parameters typed by
 * the SQL as for pgq_send; the outcome comes as PGQ_RESULT.  A new
 * connection has no statements: prepare them again after every PGQ_UP.
 * Errors as pgq_send. */
int pgq_prepare(struct pgq *q, const char *name, const char *sql,
		uint64_t timeout_us);
/* pgq_send of the statement prepared as NAME: the server parses and plans
 * it once per connection instead of once per write. */
int pgq_send_prepared(struct pgq *q, const char *name, int nparams,
		      const char *const *values, const int *lengths,
		      const int *formats, uint64_t timeout_us);
/* Drop the connection and reconnect after the backoff.  No callback. */
void pgq_reset(struct pgq *q);
/* The connection did useful work: the next failure retries after the
 * minimum delay again.  Only the owner can tell (a server that accepts
 * connections but fails every write must still be retried slowly). */
void pgq_backoff_reset(struct pgq *q);
/* Drop the connection for good (until pgq_start).  No callback. */
void pgq_stop(struct pgq *q);
/* libpq's last error message for this connection, without trailing newline. */
const char *pgq_error(struct pgq *q);
void pgq_free(struct pgq *q);

#endif
