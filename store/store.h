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
	STORE_T_CLOSED, /* one window: closed (closed_us) -> committed */
};
struct store_reference;

/* A reference set the store found at start (see store_opts.restore). */
typedef bool (*store_want_fn)(void *arg, const struct store_reference *meta);
typedef void (*store_restore_fn)(void *arg, const struct store_reference *r);

/* The K-of-M history of one slice found at start (store_opts.history): the
 * decisions of its newest tested windows since its model's last reset or
 * the slice's last expiry, oldest first, each with the alarm.m it was
 * decided under; at most STORE_HISTORY_MAX (alarm.m's maximum). */
#define STORE_HISTORY_MAX 64
struct store_history {
	const char *model, *slice;
	size_t n;                 /* 1 .. STORE_HISTORY_MAX */
	const bool *drifted;      /* n: the window drifted */
	const unsigned *alarm_m;  /* n */
};

/* Zero fields take the defaults shown. */
struct store_opts {
	uint64_t query_timeout_us;   /* 10 s: per query and per connect; on expiry
				      * the connection is reset and the query retried */
	unsigned max_pending;        /* 10000 windows queued in memory; beyond, they
				      * go to the journal, or -ENOBUFS without one */
	uint64_t migrate_timeout_us; /* 10 min: advisory lock wait and each migration */
	store_log_fn log;            /* NULL: silent; called with the store's arg */
	store_events_fn events;      /* NULL: not told; called with the store's arg */
	/* NULL: not measured; called with the store's arg on each commit */
	void (*observe)(void *arg, enum store_timing what, uint64_t us);
	/* Spill journal (store/journal.h): writes wait there, on disk, while
	 * the database is away.  NULL: writes wait in memory only. */
	const char *journal_path;
	uint64_t journal_max;        /* bytes; 0 = 256 MiB */
	/* Reference restore, on the first boot only, before STORE_READY: for
	 * each newest non-retired saved set per (model, slice), want is asked
	 * with the metadata (data and scores NULL) and, when it says yes, the
	 * vectors are fetched and handed to restore (valid during the call).
	 * NULL: nothing is restored. */
	store_want_fn want;
	store_restore_fn restore;
	/* K-of-M history restore, on the first boot that gets this far only,
	 * after the references and before STORE_READY, when history_want says
	 * yes: one query (within query_timeout), whose slices are completed
	 * with the windows and retirements still waiting in the journal (in
	 * write order), then one call of history with every slice (N may be 0;
	 * H valid during the call).  Tried once: when the query fails or times
	 * out, the connection is reset as for any boot step, the next boot goes
	 * on without it and history is never called.  NULL: nothing restored. */
	bool (*history_want)(void *arg);
	void (*history)(void *arg, const struct store_history *h, size_t n);
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
	double effect_floor;  /* the floor effect had to clear; NaN: SQL NULL */
};

/* How a window was decided (windows columns, see docs/sql.md). */
struct store_decision {
	bool drifted;             /* any test drifted */
	bool alarm;               /* the K-of-M rule fired */
	double alpha;
	const char *correction;   /* "bh", "bonferroni" or "none" */
	unsigned family_size;     /* windows corrected together */
	unsigned alarm_k, alarm_m, recent_drifted; /* drifted among the last m */
	int64_t evaluated_us;     /* the moment of the evaluation */
};

/* Calibration of the labeled records of a window (calibration_history). */
struct store_calibration {
	unsigned n_labeled;
	uint64_t labels_seen;     /* labels offered; above n_labeled when sampled */
	double ece, mce, brier, accuracy;      /* NaN: SQL NULL (too few labels) */
	double reference_ece, reference_brier; /* NaN: no baseline */
	bool degraded;
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
	int64_t reference_set_id; /* 0: SQL NULL (no test ran) */
	uint64_t seed;            /* stored as bigint with the same 64 bits */
	const struct store_test *tests;
	size_t n_tests;           /* may be 0 */
	bool insufficient;        /* status insufficient_data instead of tested */
	bool reference_fallback;  /* tested against the whole-model reference */
	const struct store_decision *decision;       /* NULL: SQL NULLs */
	const struct store_calibration *calibration; /* NULL: no row */
	const struct store_event *events; /* outbox rows this result raises */
	size_t n_events;          /* may be 0 */
	uint64_t closed_us;       /* CLOCK_MONOTONIC µs the window closed; 0: unknown */
};

/* One alarm of a streaming detector (driftd.stream_alarms). */
struct store_stream_alarm {
	int64_t id;               /* random 63-bit, > 0: a replay is recognised by it */
	const char *slice;
	const char *detector;     /* "page_hinkley" or "adwin" */
	const char *signal;       /* "score" or "error" */
	uint64_t records_seen;    /* >= 1 */
	double statistic;
	double threshold;         /* NaN: SQL NULL */
	bool up;                  /* direction: the mean rose */
	uint64_t n_before, n_after;
	double mean_before, mean_after; /* NaN: SQL NULL */
	const char *params;       /* the detector's parameters, a JSON object */
};

/* The alarms one record (or label) raised in one model, with the outbox
 * rows of the events they raise: one statement. */
struct store_stream_alarms {
	const char *model;
	int64_t detected_us;
	const struct store_stream_alarm *alarms;
	size_t n;                 /* >= 1 */
	const struct store_event *events;
	size_t n_events;          /* may be 0 */
};

enum store_persist {
	STORE_PERSIST_RAW,       /* vectors stored in reference_sets.data */
	STORE_PERSIST_PROJECTED, /* a random projection of them in data */
	STORE_PERSIST_NONE,      /* metadata only */
};

struct store_reference {
	const char *model, *slice;
	int64_t id;               /* random 63-bit, chosen by the daemon */
	int64_t created_us;       /* when it froze; orders it against resets */
	unsigned n, dim;          /* dim of data: the projection width if PROJECTED */
	const float *data;        /* n * dim floats, row-major; RAW and PROJECTED */
	enum store_persist persist;
	bool explicit_records;    /* role=reference records, not the warm-up */
	unsigned k;               /* scores per row; 0: none */
	const float *scores;      /* n * k, saved with RAW and PROJECTED */
	unsigned source_dim;      /* PROJECTED: the embedding width projected */
	uint64_t projection_seed; /* PROJECTED: reproduces the projection */
	unsigned cal_n;           /* labeled rows of the calibration baseline; 0: none */
	double cal_ece, cal_brier;
};

typedef void (*store_state_fn)(void *arg, enum store_state st, const char *why);
/* Highest window_id written per model; delivered once, on the first time the
 * store becomes ready, before the STORE_READY notification. */
typedef void (*store_seq_fn)(void *arg, const char *model, int64_t max_window_id);

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
/* Streaming alarms and their events; counts against max_pending like a
 * window.  -EINVAL also for an id <= 0, a missing name, records_seen 0,
 * counts over INT64_MAX or a non-finite statistic. */
int store_put_stream_alarms(struct store *s, const struct store_stream_alarms *a);
/* Retires the reference sets of MODEL (of one SLICE, or all when NULL)
 * created at or before AT_US: a restart no longer restores them.  REASON is
 * "reset" or "expired". */
int store_retire_references(struct store *s, const char *model, const char *slice,
			    int64_t at_us, const char *reason);
/* With a journal, puts that cannot wait in memory go to it: -ENOSPC when it
 * is full, -EIO when it cannot be written (both logged). */

/* False when a new window could not be kept: the database is not taking
 * writes and the journal is full, broken or absent (with memory full). */
bool store_accepting(const struct store *s);
/* Moves the writes waiting in memory to the journal, when the order allows
 * it (at shutdown, so they survive).  Returns the writes left in memory. */
size_t store_spill(struct store *s);

struct store_journal_stats {
	bool enabled, full;
	uint64_t bytes, max_bytes, records;
	uint64_t appended, replayed, discarded; /* discarded: damaged records */
};
void store_journal_stats(const struct store *s, struct store_journal_stats *out);

size_t store_pending(const struct store *s);   /* queued writes, memory and journal */
size_t store_pending_memory(const struct store *s); /* of which in memory */
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
