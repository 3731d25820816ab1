/* reader (prefix rdr_): driftd's read path to PostgreSQL, for the JSON API
 * (windows from driftd.drift_history, alarms of the streaming detectors
 * from driftd.stream_alarm_history).
 * It has its own connection, so a read never waits behind the write queue,
 * and the session is read-only with a statement timeout.  Runs on the
 * daemon's loop and never blocks it.
 *
 * Conventions: 0 or a negative errno; loop thread only; times are unix
 * microseconds.  A read either fails at once (return value, no callback)
 * or calls back exactly once, unless cancelled first.  Callbacks must not
 * call rdr_free. */
#ifndef DRIFTD_STORE_READER_H
#define DRIFTD_STORE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event_base;
struct rdr;
struct rdr_req;

/* Zero fields take the defaults shown. */
struct rdr_opts {
	uint64_t timeout_us;	/* 5 s: from the call to the answer, queue
				 * wait included; also the statement_timeout */
	unsigned max_rows;	/* 10000: a larger limit is lowered to this */
	unsigned max_queued;	/* 64 reads waiting or running; more: -ENOBUFS */
	store_log_fn log;
	void (*observe)(void *arg, uint64_t us);	/* duration of each read */
	void *arg;
};

/* One test of one window (history and status reads). */
struct rdr_row {
	const char *slice, *test;
	int64_t window_id, start_us, end_us;
	unsigned n;
	double statistic, p_value, threshold;	/* NaN: SQL NULL */
	bool drifted;
};

/* err: 0, -ETIMEDOUT, -ECONNRESET (connection lost), -EIO (the database
 * refused the query; why says how; a statement_timeout is -ETIMEDOUT),
 * -EINVAL (the database refused a parameter, e.g. invalid UTF-8).
 * ROWS live until the callback returns.
 * TRUNCATED: more rows matched than the limit. */
typedef void (*rdr_fn)(void *arg, int err, const char *why,
		       const struct rdr_row *rows, size_t n, bool truncated);

/* One alarm of a streaming detector (alarm reads). */
struct rdr_alarm {
	const char *slice, *detector, *signal, *direction;
	const char *params;	/* the detector's parameters, JSON text */
	int64_t alarm_id, detected_us, records_seen, n_before, n_after;
	double statistic, threshold, mean_before, mean_after;	/* NaN: NULL */
	int64_t count;		/* summary: the slice's alarms since SINCE;
				 * else 1 */
};

/* As rdr_fn, for alarm reads. */
typedef void (*rdr_alarm_fn)(void *arg, int err, const char *why,
			     const struct rdr_alarm *rows, size_t n,
			     bool truncated);

struct rdr_history_query {
	const char *model;
	const char *slice, *test;	/* NULL: any */
	int64_t since_us, until_us;	/* window_end in [since, until);
					 * INT64_MIN / INT64_MAX: open */
	unsigned limit;			/* 0 or above max_rows: max_rows */
};

struct rdr_alarm_query {
	const char *model;
	const char *slice, *detector, *signal;	/* NULL: any */
	int64_t since_us, until_us;	/* detected_at in [since, until);
					 * INT64_MIN / INT64_MAX: open */
	unsigned limit;			/* 0 or above max_rows: max_rows */
};

/* NULL on allocation failure or an unusable DSN (see store_new). */
struct rdr *rdr_new(struct event_base *base, const char *dsn,
		    const struct rdr_opts *o);
void rdr_start(struct rdr *r);
bool rdr_up(const struct rdr *r);
size_t rdr_queued(const struct rdr *r);

/* The newest LIMIT rows of driftd.drift_history matching Q, oldest first.
 * -ENOTCONN while the connection is down, -ENOBUFS, -EINVAL, -ENOMEM.
 * OUT (may be NULL) receives a handle for rdr_cancel. */
int rdr_history(struct rdr *r, const struct rdr_history_query *q, rdr_fn fn,
		void *arg, struct rdr_req **out);
/* Every test of the newest window of every slice of MODEL, by slice and
 * test; at most max_rows rows. */
int rdr_status(struct rdr *r, const char *model, rdr_fn fn, void *arg,
	       struct rdr_req **out);
/* The newest LIMIT rows of driftd.stream_alarm_history matching Q,
 * newest first.  Errors as rdr_history. */
int rdr_alarms(struct rdr *r, const struct rdr_alarm_query *q,
	       rdr_alarm_fn fn, void *arg, struct rdr_req **out);
/* Per slice of MODEL with alarms detected at or after SINCE_US: the
 * newest of them, with their count; by slice, at most max_rows rows. */
int rdr_alarm_summary(struct rdr *r, const char *model, int64_t since_us,
		      rdr_alarm_fn fn, void *arg, struct rdr_req **out);
/* No callback for Q after this. */
void rdr_cancel(struct rdr *r, struct rdr_req *q);
/* Cancels every read, without callbacks. */
void rdr_free(struct rdr *r);

#endif
