/* The ingest router and decision policy (prefix eng_): routes validated
 * records to their model's windows, sends closed windows to the workers as
 * one evaluation per model and moment, applies correction across the
 * slices of an evaluation and the alpha / effect-size decision, and hands
 * the results to the store.  Loop thread only. */
#ifndef DRIFTD_ENGINE_H
#define DRIFTD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct conf;
struct conf_model;
struct event_base;
struct lat;
struct store;
struct wq;

struct eng;

/* C must stay alive until the next eng_reconfigure() or eng_free().
 * NULL on allocation failure. */
struct eng *eng_new(struct event_base *base, struct wq *wq,
		    struct store *store, const struct conf *c);

/* Applies a new config: new models start, removed ones drain, changed
 * thresholds and detectors apply to the next window; a model whose shape
 * (dim, slice_by, reference or window sizes) changed starts over.
 * Returns 0 or -ENOMEM (the old state stays). */
int eng_reconfigure(struct eng *e, const struct conf *c);

/* Routes one record.  NOW_US is the arrival time (unix µs), used when the
 * record has no ts.  On refusal writes the reason to msg. */
enum rec_err eng_ingest(struct eng *e, const struct record *r, int64_t now_us,
			char *msg, size_t msglen);

/* Continue window ids of MODEL/SLICE after MAX_ID (from the store). */
void eng_resume(struct eng *e, const char *model, const char *slice,
		int64_t max_id);

/* Evaluations submitted but not yet handed to the store. */
size_t eng_in_flight(const struct eng *e);

/* Backpressure from the detector queues: 0 when every model has fewer
 * than max_queued_windows windows in flight, 1 when one has that many,
 * 2 when one has twice that many. */
int eng_pressure(const struct eng *e);

struct eng_model_info {
	const char *name;
	const struct conf_model *cfg;
	const struct lat *latest;	/* latest result per slice */
	unsigned dim;
	size_t slices;
	size_t sample_bytes;
	uint64_t records, windows;
};
/* Calls FN for each live model, in config order. */
void eng_foreach_model(const struct eng *e,
		       void (*fn)(void *arg, const struct eng_model_info *mi),
		       void *arg);

void eng_free(struct eng *e);

#endif
