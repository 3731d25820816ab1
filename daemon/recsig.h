/* Streaming detectors on per-record signals (prefix rsig_), DESIGN §4
 * "Streaming": the signals of a scored record — its score, and its error
 * indicator once the label is known — and, per model, the Page–Hinkley
 * and ADWIN state (detectors/stream.h) of every slice and signal, fed one
 * value at a time, so that a change raises an alarm between windows.
 *
 * Pure data structure: no I/O, no event loop, no logging; loop thread
 * only.  A slice's state is one allocation made when the slice is first
 * fed (ADWIN's ~18 KB per signal only when ADWIN is configured); feeding
 * a value allocates nothing.  Times are unix µs.  Errors: NULL or a
 * negative errno, as stated per function. */
#ifndef DRIFTD_RECSIG_H
#define DRIFTD_RECSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

struct conf_model;

enum rsig_signal { RSIG_SCORE, RSIG_ERROR, RSIG_SIGNALS };
enum rsig_detector { RSIG_PH, RSIG_ADWIN, RSIG_DETECTORS };

/* Alarms one value can raise (one per detector); one record feeds at
 * most two signals to two slices. */
#define RSIG_MAX_ALARMS (RSIG_DETECTORS * RSIG_SIGNALS * 2)

/* "score", "error"; "page_hinkley", "adwin" (the config's names). */
const char *rsig_signal_name(enum rsig_signal s);
const char *rsig_detector_name(enum rsig_detector d);

/* The score watched for a record of K scores: the positive-class score
 * of a binary model (the only score, or the second of two), the largest
 * score (top-label confidence) of K > 2 classes. */
double rsig_score(const float *scores, unsigned k);
/* The predicted class: score >= 0.5 for one score, else the index of the
 * largest (the first of equals). */
unsigned rsig_predicted(const float *scores, unsigned k);
/* 1 when the predicted class is not LABEL, else 0. */
double rsig_error(const float *scores, unsigned k, int64_t label);

struct rsig_params {
	unsigned detectors;		/* CONF_STREAM_* */
	unsigned signals;		/* CONF_SIGNAL_* */
	struct stream_ph_params ph;
	struct stream_adwin_params adwin;
};

/* The stream.* keys of CFG (alarm_interval aside). */
struct rsig_params rsig_params_of(const struct conf_model *cfg);
bool rsig_same_params(const struct rsig_params *a, const struct rsig_params *b);
/* DETECTOR's parameters as a JSON object into BUF (LEN bytes), as
 * recorded with its alarms.  Returns BUF. */
const char *rsig_params_json(const struct rsig_params *p,
			     enum rsig_detector d, char *buf, size_t len);

/* One alarm of one detector on one signal of one slice. */
struct rsig_alarm {
	enum rsig_detector detector;
	enum rsig_signal signal;
	const char *slice;		/* the slice's key, valid until it goes */
	bool suppressed;		/* within alarm_interval of the last one */
	uint64_t seen;			/* values since the detector's previous
					 * alarm (or start) */
	double statistic;		/* PH: the cumulative deviation; ADWIN:
					 * |mean_after - mean_before| */
	double threshold;		/* PH: lambda; ADWIN: NaN (none) */
	bool up;			/* the mean rose */
	/* PH: the values before and after the estimated change point;
	 * ADWIN: the older part dropped and the part kept.  NaN: empty. */
	uint64_t n_before, n_after;
	double mean_before, mean_after;
};

struct rsig_model;
struct rsig_slice;

/* NULL when P selects no detector or signal, its parameters are invalid,
 * or on allocation failure.  Alarms closer than INTERVAL_US to the
 * previous recorded one of the same detector, signal and slice are
 * marked suppressed. */
struct rsig_model *rsig_new(const struct rsig_params *p, uint64_t interval_us);
void rsig_free(struct rsig_model *m);
void rsig_set_interval(struct rsig_model *m, uint64_t interval_us);
const struct rsig_params *rsig_params(const struct rsig_model *m);

/* The state of slice KEY; with CREATE, a missing one is made (NULL on
 * allocation failure), else NULL when missing.  Valid until rsig_forget
 * of that key or rsig_free. */
struct rsig_slice *rsig_slice(struct rsig_model *m, const char *key,
			      bool create);

/* Feeds X to the detectors of signal S of slice SL (nothing when the
 * model does not watch S, or X is not finite).  Alarms go to OUT (room
 * for RSIG_DETECTORS); returns how many.  A detector that alarmed starts
 * over (Page–Hinkley) or keeps only the new regime (ADWIN). */
size_t rsig_feed(struct rsig_model *m, struct rsig_slice *sl,
		 enum rsig_signal s, double x, int64_t now_us,
		 struct rsig_alarm *out);

/* Drops slice KEY (it expired); "*" is never dropped. */
void rsig_forget(struct rsig_model *m, const char *key);
/* Every slice's detectors start over (a new model version). */
void rsig_reset(struct rsig_model *m);

size_t rsig_slice_count(const struct rsig_model *m);
/* Bytes of detector state held. */
size_t rsig_memory(const struct rsig_model *m);

#endif
