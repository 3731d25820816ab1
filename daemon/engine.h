/* The ingest router and decision policy (prefix eng_): routes validated
 * records to their model's windows and label-only records to the records
 * waiting for them, sends closed windows to the workers as one evaluation
 * per model and moment, applies correction across the slices of an
 * evaluation, the alpha / effect-size decision and the K-of-M alarm rule,
 * and hands the results to the store.  Also the slice lifecycle (idle
 * expiry), reference resets and restores.  Loop thread only. */
#ifndef DRIFTD_ENGINE_H
#define DRIFTD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recsig.h"
#include "record.h"

struct conf;
struct conf_model;
struct event_base;
struct ids;
struct lat;
struct store;
struct store_history;
struct store_reference;
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
 * record has no ts.  A record without embedding but with an id and a label
 * is joined with the scored record of that id still waiting for it.  Live
 * records are refused (overloaded) while the store cannot keep new
 * windows.  On refusal writes the reason to msg.  A live scored record,
 * and a label joined, also feed the model's streaming detectors (their
 * alarms are written and sent at once, not with a window). */
enum rec_err eng_ingest(struct eng *e, const struct record *r, int64_t now_us,
			char *msg, size_t msglen);

/* Window ids of MODEL continue above MAX_ID (from the store). */
void eng_resume(struct eng *e, const char *model, int64_t max_id);

/* Window-id leases on disk (idlease.h): ids resume above them now, and
 * every id handed out from now on is covered by them.  IDS stays the
 * caller's. */
void eng_set_ids(struct eng *e, struct ids *ids);
/* Writes the exact highest window ids (clean shutdown). */
void eng_save_ids(struct eng *e);

/* Reference restore at start (see store_opts.want / restore). */
bool eng_want_reference(struct eng *e, const struct store_reference *meta);
void eng_restore_reference(struct eng *e, const struct store_reference *r);

/* K-of-M history restore at start (see store_opts.history_want): wanted
 * while a model has alarm.m > 1, until eng_history_close().  Each slice's
 * decisions are replayed into its history, creating the slice if needed. */
bool eng_want_history(struct eng *e);
void eng_restore_history(struct eng *e, const struct store_history *h,
			 size_t n);
/* Decisions begin (the daemon goes ready): nothing is restored from now on,
 * and a history that was not restored is logged, once, as starting empty. */
void eng_history_close(struct eng *e);

/* Forgets MODEL's references, open windows, labeled pairs and alarm
 * history (a new model version was deployed) and retires its saved
 * reference sets.  Returns the slices reset, -ENOENT for an unknown model,
 * -ENOMEM. */
int eng_reset_references(struct eng *e, const char *model);

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
	size_t spare_bytes;	/* closed windows' buffers kept for new ones */
	uint64_t records, windows;
	uint64_t slices_refused;	/* records refused over max_slices */
	uint64_t slices_expired;
	uint64_t windows_insufficient, alarms, resets, references_restored;
	uint64_t histories_restored;	/* slices' K-of-M history at start */
	size_t labels_pending;
	uint64_t labels_joined, labels_unmatched, labels_expired,
		 labels_evicted;
	/* streaming detectors: none when stream_detectors is 0 */
	unsigned stream_detectors, stream_signals;	/* CONF_STREAM_*, CONF_SIGNAL_* */
	uint64_t stream_alarms[RSIG_DETECTORS][RSIG_SIGNALS];	/* recorded */
	uint64_t stream_suppressed[RSIG_DETECTORS][RSIG_SIGNALS];	/* alarm_interval */
	size_t stream_bytes;
};
/* Calls FN for each live model, in config order. */
void eng_foreach_model(const struct eng *e,
		       void (*fn)(void *arg, const struct eng_model_info *mi),
		       void *arg);

void eng_free(struct eng *e);

#endif
