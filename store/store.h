/* store: driftd's PostgreSQL writer.  The only module that speaks SQL; it runs
 * on the daemon's libevent loop and never blocks it (see docs/sql.md).
 *
 * Conventions: functions returning int give 0 or a negative errno.  All calls
 * and callbacks happen on the loop thread; the store is not thread-safe.
 * Inputs are deep-copied, so callers may free them as soon as a call returns.
 * Times are unix microseconds.  Callbacks may call any store function,
 * including store_free().
 */
#ifndef DRIFTD_STORE_H
#define DRIFTD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

enum store_state {
	STORE_CONNECTING, /* a connection attempt is in progress */
	STORE_MIGRATING,  /* connected; checking/applying the schema */
	STORE_READY,      /* writing the queue */
	STORE_DOWN,       /* no connection; retrying with backoff (100 ms .. 10 s) */
	STORE_CLOSED,     /* fatal (schema newer than this binary); never retried */
};

/* Levels are syslog's (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
typedef void (*store_log_fn)(void *arg, int level, const char *msg);
/* Outbox rows committed by one write: QUEUED to be sent, SUPPRESSED by a
 * cooldown (replays count 0). */
typedef void (*store_events_fn)(void *arg, unsigned queued, unsigned suppressed);

/* What store_opts.observe measures, in microseconds. */
enum store_timing {
	STORE_T_WRITE,  /* one write statement: sent -> committed */
	STORE_T_COMMIT, /* one window: store_put_window -> committed */
};

/* Zero fields take the defaults shown. */
struct store_opts {
	uint64_t query_timeout_us;   /* 10 s: per query and per connect; on expiry
				      * the connection is reset and the query retried */
	unsigned max_pending;        /* 10000 windows queued, beyond: -ENOBUFS */
	uint64_t migrate_timeout_us; /* 10 min: advisory lock wait and each migration */
	store_log_fn log;            /* NULL: silent; called with the store's arg */
	store_events_fn events;      /* NULL: not told; called with the store's arg */
	/* NULL: not measured; called with the store's arg on each commit */
	void (*observe)(void *arg, enum store_timing what, uint64_t us);
};

struct store_test {
	const char *test;     /* detector name as in the config, unique per window */
	double statistic;
	double p_value;       /* NaN: SQL NULL (test without p-value) */
	double threshold;     /* NaN: SQL NULL (reported, not thresholded) */
	bool drifted;         /* decision after correction */
	double effect;        /* NaN: SQL NULL */
	double bandwidth;     /* NaN: SQL NULL */
	unsigned permutations; /* 0: SQL NULL */
};

/* A webhook event for the outbox (docs/webhooks.md).  Written in the same
 * statement, so the same transaction, as the window that carries it. */
struct store_event {
	const char *id;        /* webhook-id, unique: a replay is recognised by it */
	const char *endpoint;  /* [webhook.NAME] */
	const char *type;      /* drift.detected, calibration.degraded, ..., test */
	const char *model;     /* NULL: none (test events) */
	const char *body;      /* JSON, stored, signed and sent byte for byte */
	int64_t created_us;    /* raised at; cooldowns count from here */
	uint64_t cooldown_us;  /* an earlier unsuppressed event of this endpoint,
				* model and type less than this before it makes
				* this one "suppressed" (recorded, never sent);
				* 0 = never suppressed */
};

struct store_window {
	const char *model, *slice;
	int64_t window_id;        /* never reuse one: a replay is recognised by it */
	int64_t start_us, end_us; /* end >= start */
	unsigned n;
	int64_t reference_set_id;
	uint64_t seed;            /* stored as bigint with the same 64 bits */
	const struct store_test *tests;
	size_t n_tests;           /* may be 0 */
	const struct store_event *events; /* outbox rows this result raises */
	size_t n_events;          /* may be 0 */
};

enum store_persist {
	STORE_PERSIST_RAW,       /* vectors stored in reference_sets.data */
	STORE_PERSIST_PROJECTED, /* metadata only */
	STORE_PERSIST_NONE,      /* metadata only */
};

struct store_reference {
	const char *model, *slice;
	int64_t id;               /* random 63-bit, chosen by the daemon */
	unsigned n, dim;
	const float *data;        /* n * dim floats, row-major; required for RAW only */
	enum store_persist persist;
};

typedef void (*store_state_fn)(void *arg, enum store_state st, const char *why);
/* Highest window_id written per (model, slice); delivered once, on the first
 * time the store becomes ready, before the STORE_READY notification. */
typedef void (*store_seq_fn)(void *arg, const char *model, const char *slice,
			     int64_t max_window_id);

/* NULL on allocation failure or a DSN that cannot be used (reason logged):
 * the DSN must name a Unix socket directory or use hostaddr=, so that
 * connecting never waits on DNS.  o may be NULL. */
struct store *store_new(struct event_base *base, const char *dsn,
			const struct store_opts *o, store_state_fn on_state,
			store_seq_fn on_seq, void *arg);
/* Connect -> migrate -> load sequences -> STORE_READY, asynchronously;
 * on_state reports each step and each failed attempt (why = the reason). */
int store_start(struct store *s);

/* Queue writes; allowed in any state, written in call order once READY.
 * Each is one statement, idempotent: a replay never duplicates rows.
 * A write that fails because the connection failed or timed out stays at the
 * head and is retried after reconnect; one rejected by the database for its
 * content (SQL error other than a transient class) is logged at LOG_ERR and
 * dropped, so one bad row cannot stall the queue (see store_dropped()).
 * -EINVAL: malformed input (empty names, end < start, times outside
 * 1970..9999, duplicate test names, RAW without data, counts over INT32_MAX,
 * dim 0, an event without id, endpoint, type or body); -E2BIG: RAW data of 1 GiB or more; -ENOBUFS: max_pending windows
 * are queued (references do not count); -EPIPE: the store is CLOSED;
 * -ENOMEM. */
int store_put_reference(struct store *s, const struct store_reference *r);
int store_put_window(struct store *s, const struct store_window *w);
/* Outbox rows not tied to a window (test events); n >= 1.  Counts against
 * max_pending like a window. */
int store_put_events(struct store *s, const struct store_event *ev, size_t n);

size_t store_pending(const struct store *s);   /* queued writes, any kind */
enum store_state store_get_state(const struct store *s);
uint64_t store_written(const struct store *s);    /* windows committed (incl. duplicates) */
uint64_t store_duplicates(const struct store *s); /* windows found already written */
uint64_t store_dropped(const struct store *s);    /* writes rejected by the database */
int store_schema_version(void);                   /* newest migration compiled in */

/* Call done once the queue is empty: at once if it already is, and also when
 * the store reaches STORE_CLOSED (store_pending() then tells what was lost).
 * One waiter at a time; a new call replaces the previous one.  There is no
 * deadline: the caller sets its own. */
void store_drain(struct store *s, void (*done)(void *arg), void *arg);

/* Drops the connection and whatever is still queued, without callbacks. */
void store_free(struct store *s);

#endif
