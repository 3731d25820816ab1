/* Per-model, per-slice sample keeping (prefix win_): the reference sample,
 * the tumbling current window and the labeled (scores, label) pairs of
 * every slice, the slice lifecycle (creation up to max_slices, idle expiry,
 * reset) and the per-slice decision state.  Pure data structure: no event
 * loop, no I/O; used only from the loop thread.  Closed windows leave as
 * struct win_closed, which may cross to a worker: it owns its data and
 * holds the buffers its rows are in until it comes back to the loop to be
 * recycled or freed. */
#ifndef DRIFTD_WINDOW_H
#define DRIFTD_WINDOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "sample.h"

#define WIN_SLICE_KEY_MAX 512
#define WIN_WHOLE_MODEL "*"
#define WIN_NO_LABEL (-1)

/* A frozen reference sample: immutable once published and shared by
 * reference count, so jobs on workers can read it while the loop goes on. */
struct win_ref {
	atomic_uint refs;
	int64_t id;		/* random 63-bit, the reference_set_id in SQL */
	int64_t created_us;	/* unix µs when it froze (or was first saved) */
	char *slice;		/* the slice it was collected in, owned */
	unsigned n, dim;
	/* Predicted scores of the reference records, n × k (NULL when the
	 * model gets no scores), and their labels, WIN_NO_LABEL when a record
	 * came without one: the calibration baseline. */
	const float *scores;
	const int64_t *labels;
	unsigned k;
	/* A reference restored from a projected copy holds dim = kept
	 * dimensions of a source_dim-wide embedding, projected with
	 * proj_seed (projection.h); windows are projected the same way before a
	 * test.  source_dim == 0: raw vectors. */
	unsigned source_dim;
	uint64_t proj_seed;
	bool explicit_records;	/* from role=reference records, not warm-up */
	bool persisted;		/* already in the database */
	/* n × dim rows, row-major, kept in `format` (sample.h): float32 as
	 * declared, or float16 packed into the same storage.  Read them with
	 * win_ref_rows(), write them with smp_store().  Scores and labels
	 * follow. */
	enum smp_format format;
	float data[];
};

/* A reference of room for CAP rows kept in FORMAT, empty (n = 0), one
 * reference held.  NULL on allocation failure. */
struct win_ref *win_ref_new(const char *slice, unsigned cap, unsigned dim,
			    unsigned k, enum smp_format format);
struct win_ref *win_ref_get(struct win_ref *r);
void win_ref_put(struct win_ref *r);

struct win_params {
	unsigned dim;
	unsigned k;			/* scores per record, 0 = none */
	unsigned reference_size;
	unsigned reference_min;		/* own reference smaller: use "*"'s */
	unsigned window_size;		/* 0 = closes by time only */
	unsigned window_max;		/* hard cap of one window, records */
	unsigned window_min;		/* fewer: insufficient_data */
	unsigned max_slices;		/* including "*" */
	const char *const *slice_by;	/* borrowed for win_model_new only */
	size_t n_slice_by;
	uint64_t seed;
	enum smp_format format;		/* how reference and window rows are kept */
	/* Keep each window's column sums as its records arrive: the centroid
	 * test's mean then costs the worker nothing, instead of a second
	 * pass over the window from memory.  A change applies from the
	 * next window on. */
	bool col_sums;
};

enum win_status {
	WIN_TESTED,			/* test it against ref */
	WIN_SHORT_WINDOW,		/* fewer than window_min records */
	WIN_SHORT_REFERENCE,		/* no reference of reference_min rows */
};

/* A window's row buffer, shared by reference count (window.c). */
struct win_buf;

struct win_closed {
	struct win_closed *next;
	char *slice;		/* canonical key, owned */
	uint64_t slice_hash;	/* of the key: stable across runs */
	int64_t window_id;
	int64_t start_us, end_us;	/* min and max record ts */
	unsigned n, dim;
	enum smp_format format;	/* read the rows with win_closed_rows() */
	/* The rows, kept in format.  A slice's window has them in one block,
	 * data, in the buffer it holds (buf).  The "*" window of a sliced
	 * model keeps no copy: each record was stored once, by its slice,
	 * and row i is at rows[i] (owned array), in the buffers held in pins
	 * (owned array of n_pins); data and buf are NULL.  The buffers are
	 * let go by win_recycle or win_closed_free, on the loop thread. */
	const float *data;
	struct win_buf *buf;
	const void **rows;
	struct win_buf **pins;
	unsigned n_pins;
	/* Rows projected onto a restored reference's space (float32,
	 * owned), which win_closed_rows() returns instead; NULL before. */
	float *projected;
	/* Column sums of the rows as stored, added up in row order as they
	 * arrived (win_params.col_sums), owned; NULL when not kept. */
	double *sums;
	const float *scores;	/* n × k, owned; NULL when k == 0 */
	unsigned k;
	/* (scores, label) pairs joined while the window was open: a uniform
	 * sample of labels_seen pairs, at most window_max. */
	float *cal_scores;	/* n_labeled × k, owned */
	int64_t *cal_labels;	/* n_labeled, owned */
	unsigned n_labeled;
	uint64_t labels_seen;
	enum win_status status;
	/* The reference tested against (NULL unless WIN_TESTED), one held;
	 * the whole-model one when the slice's own is too small. */
	struct win_ref *ref;
	bool ref_fallback;
	bool ref_new;		/* ref froze for this window: save it */
	unsigned short_of;	/* not WIN_TESTED: the size that fell short */
};

struct win_model;

/* The rows of R or C as float32 in one block, for the detectors: the
 * stored rows themselves when they are kept in float32 in one block, else
 * a converted or gathered copy that the caller frees from *OWNED (NULL
 * otherwise).  NULL when that copy cannot be allocated.  Safe on a worker
 * while the loop goes on adding rows to the buffers. */
const float *win_ref_rows(const struct win_ref *r, float **owned);
const float *win_closed_rows(const struct win_closed *c, float **owned);

void win_closed_free(struct win_closed *c);

/* Like win_closed_free, but M keeps the buffers C let go of last (up to
 * WIN_SPARES of them) for its next windows: a new window then costs no
 * fresh pages.
 * Four, because a pause in the traffic can come just after two slices'
 * windows closed together: both buffers come back before either window
 * reopens, while the next two closes need two more (with two spares, each
 * pause between bursts freed two buffers and faulted two fresh ones in,
 * 15,000 page faults at d = 768 and 10,000-record windows). */
#define WIN_SPARES 4
void win_recycle(struct win_model *m, struct win_closed *c);

/* Frees the spare buffers when none was taken since the last call (the
 * daemon calls it every second): memory goes back once traffic stops. */
void win_trim_spares(struct win_model *m);

/* Bytes of the spare buffers kept. */
size_t win_spare_bytes(const struct win_model *m);

/* Per-slice state the decision keeps between windows: the last alarm_m
 * window decisions (bit 0 = newest, bit set = drifted) and the calibration
 * baseline. */
struct win_slice_state {
	uint64_t recent;
	bool has_baseline;
	double base_ece, base_brier;
};

/* The K-of-M memory: DRIFTED joins SS's decisions, which then keep the
 * newest ALARM_M (so after alarm.m changes, the newest min(old, new) of
 * the earlier ones count).  Returns how many of those drifted. */
unsigned win_push_decision(struct win_slice_state *ss, bool drifted,
			   unsigned alarm_m);

/* Copies what it needs from P.  NULL on allocation failure or when
 * reference_size < 2, dim == 0 or window_max == 0. */
struct win_model *win_model_new(const struct win_params *p);

/* Applies new window sizes, window_min, reference_min, max_slices, seed
 * and col_sums (a reload); dim, k, reference_size and slice_by must not change and are
 * ignored.  Open windows keep their records: one already past a smaller
 * window_size closes with its next record.  Returns 0 or -ENOMEM. */
int win_model_update(struct win_model *m, const struct win_params *p);
void win_model_free(struct win_model *m);

/* Adds a validated record (dim and scores width already checked) that
 * arrived at NOW_US.  An inline label of a scored record goes to the
 * calibration pairs (live) or the reference labels (reference).  Windows
 * that this record closes are prepended to *closed (caller owns them).
 * Returns REC_OK or REC_ERR_TOO_MANY_SLICES / REC_ERR_REFERENCE_FROZEN /
 * REC_ERR_BAD_FIELD (slice key too long) / REC_ERR_OVERSIZE (out of
 * memory).  The record counts in "*" and in its own slice; a refused
 * record changes nothing.  A window it fills that cannot be closed for
 * lack of memory stays open and closes with the next record or tick. */
enum rec_err win_add(struct win_model *m, const struct record *r,
		     int64_t ts_us, int64_t now_us, struct win_closed **closed);

/* Canonical key of R's slice into BUF (WIN_SLICE_KEY_MAX bytes): "*"
 * without slice_by.  Returns 0 or -1 when it does not fit. */
int win_record_slice(const struct win_model *m, const struct record *r,
		     char *buf);

/* A (scores, label) pair joined later: counts in "*" and in SLICE.
 * Returns 0, -ENOENT when SLICE is gone, -ENOMEM. */
int win_add_labeled(struct win_model *m, const char *slice,
		    const float *scores, int64_t label);

/* Closes every open window (the interval timer's tick): those with fewer
 * than window_min records close as WIN_SHORT_WINDOW.  Returns how many. */
size_t win_close_due(struct win_model *m, struct win_closed **closed);

/* Drops every slice but "*" without a record since NOW_US - IDLE_US: its
 * open window closes first (into *closed); then EXPIRED (when not NULL)
 * is called with the key and the frozen reference (or NULL) before the
 * slice is freed.  Returns how many slices expired. */
size_t win_expire(struct win_model *m, int64_t now_us, uint64_t idle_us,
		  struct win_closed **closed,
		  void (*expired)(void *arg, const char *slice,
				  const struct win_ref *ref),
		  void *arg);

/* Forgets every reference, open window, labeled pair and decision state
 * (a new model was deployed): slices warm up again.  Sets *DROPPED to the
 * records dropped from open windows.  Returns 0 or -ENOMEM (nothing
 * changed). */
int win_reset(struct win_model *m, size_t *dropped);

/* Installs REF (one reference taken over) as the frozen reference of its
 * slice, creating the slice if needed, unless the slice's reference is
 * already in use.  Warm-up records collected so far are dropped.  Returns
 * 0, -EBUSY (reference in use), -EINVAL (the slice is no key of this
 * slice_by), -ENOSPC (max_slices) or -ENOMEM; on error REF is released. */
int win_install_reference(struct win_model *m, struct win_ref *ref);

/* Sets SLICE's K-of-M decisions (win_slice_state.recent) restored at
 * start, creating the slice if needed.  Returns 0, -EINVAL (no key of this
 * slice_by), -ENOSPC (max_slices) or -ENOMEM.  A slice created here or by
 * win_install_reference counts as idle from the first win_expire. */
int win_restore_decisions(struct win_model *m, const char *slice,
			  uint64_t recent);

/* Window ids: every slice numbers its windows upwards from the highest id
 * the model has handed out (or the store holds) when the slice appears,
 * so an id is never reused, even by a slice that expired and came back.
 * win_resume raises that floor, and the next id of every existing slice
 * with it (never lowers them). */
void win_resume(struct win_model *m, int64_t max_id);
int64_t win_max_window_id(const struct win_model *m);

/* Decision state of SLICE, NULL when the slice is gone.  Valid until the
 * next call that adds, expires or resets slices. */
struct win_slice_state *win_state(struct win_model *m, const char *slice);

size_t win_slice_count(const struct win_model *m);
/* Bytes of sample memory held (references, open windows, scores and
 * labeled pairs). */
size_t win_memory(const struct win_model *m);

/* Canonical slice key of R under SLICE_BY: "k1=v1,k2=v2" in slice_by order;
 * a missing label is an empty value; ',', '=' and '\' in values are escaped
 * with '\'.  Returns the length, or -1 when it does not fit in LEN. */
int win_slice_key(const char *const *slice_by, size_t n_slice_by,
		  const struct record *r, char *buf, size_t len);

#endif
