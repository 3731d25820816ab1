/* Per-model, per-slice sample keeping (prefix win_): the reference sample
 * and the tumbling current window of every slice.  Pure data structure: no
 * event loop, no I/O; used only from the loop thread.  Closed windows leave
 * as struct win_closed, which owns its data and may cross to a worker. */
#ifndef DRIFTD_WINDOW_H
#define DRIFTD_WINDOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define WIN_SLICE_KEY_MAX 512
#define WIN_WHOLE_MODEL "*"

/* A frozen reference sample: immutable and shared by reference count, so
 * jobs on workers can read it while the loop goes on. */
struct win_ref {
	atomic_uint refs;
	int64_t id;		/* random 63-bit, the reference_set_id in SQL */
	unsigned n, dim;
	float data[];		/* n × dim, row-major */
};

struct win_ref *win_ref_get(struct win_ref *r);
void win_ref_put(struct win_ref *r);

struct win_params {
	unsigned dim;
	unsigned reference_size;
	unsigned window_size;		/* 0 = closes by time only */
	unsigned window_max;		/* hard cap of one window, records */
	unsigned window_min;		/* a time close needs at least this */
	unsigned max_slices;		/* including "*" */
	const char *const *slice_by;	/* borrowed for win_model_new only */
	size_t n_slice_by;
	uint64_t seed;
};

struct win_closed {
	struct win_closed *next;
	char *slice;		/* canonical key, owned */
	uint64_t slice_hash;	/* of the key: stable across runs */
	int64_t window_id;
	int64_t start_us, end_us;	/* min and max record ts */
	unsigned n, dim;
	float *data;		/* n × dim, owned; room for cap rows */
	unsigned cap;
	struct win_ref *ref;	/* one reference held */
	bool ref_new;		/* first window against this reference */
};

struct win_model;

void win_closed_free(struct win_closed *c);

/* Like win_closed_free, but M keeps C's sample buffer (up to WIN_SPARES of
 * them) for its next windows: a new window then costs no fresh pages. */
#define WIN_SPARES 2
void win_recycle(struct win_model *m, struct win_closed *c);

/* Copies what it needs from P.  NULL on allocation failure or when
 * reference_size < 2, dim == 0 or window_max == 0. */
struct win_model *win_model_new(const struct win_params *p);

/* Applies new window sizes, window_min, max_slices and seed (a reload);
 * dim, reference_size and slice_by must not change and are ignored.  Open
 * windows keep their records: one already past a smaller window_size
 * closes with its next record.  Returns 0 or -ENOMEM. */
int win_model_update(struct win_model *m, const struct win_params *p);
void win_model_free(struct win_model *m);

/* Adds a validated record (dim already checked).  Windows that this record
 * closes are prepended to *closed (caller owns them).  Returns REC_OK or
 * REC_ERR_TOO_MANY_SLICES / REC_ERR_REFERENCE_FROZEN /
 * REC_ERR_OVERSIZE (out of memory).  The record counts in "*" and in its
 * own slice; a refused record changes nothing. */
enum rec_err win_add(struct win_model *m, const struct record *r,
		     int64_t ts_us, struct win_closed **closed);

/* Closes every open window that holds at least window_min records (the
 * interval timer's tick); smaller windows stay open.  Returns how many. */
size_t win_close_due(struct win_model *m, struct win_closed **closed);

/* Next window id for SLICE continues after MAX_ID (state from the store). */
void win_resume(struct win_model *m, const char *slice, int64_t max_id);

size_t win_slice_count(const struct win_model *m);
/* Bytes of sample memory held (reference + open windows). */
size_t win_memory(const struct win_model *m);

/* Canonical slice key of R under SLICE_BY: "k1=v1,k2=v2" in slice_by order;
 * a missing label is an empty value; ',', '=' and '\' in values are escaped
 * with '\'.  Returns the length, or -1 when it does not fit in LEN. */
int win_slice_key(const char *const *slice_by, size_t n_slice_by,
		  const struct record *r, char *buf, size_t len);

#endif
