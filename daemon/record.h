/* One ingested record as the codecs hand it to the router.  All pointers
 * borrow from the codec that produced the record and stay valid until that
 * codec parses its next input. */
#ifndef DRIFTD_RECORD_H
#define DRIFTD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_MAX_LABELS 16	/* slice labels carried by one record */
#define REC_MAX_SCORES 4096	/* class probabilities in one record */

enum rec_role { REC_LIVE, REC_REFERENCE };

/* Why a record was refused.  The names (rec_err_name) are part of the
 * client-facing error lines and of the metrics labels. */
enum rec_err {
	REC_OK = 0,
	REC_ERR_BAD_JSON,
	REC_ERR_BAD_UTF8,
	REC_ERR_NOT_OBJECT,
	REC_ERR_MISSING_MODEL,
	REC_ERR_UNKNOWN_MODEL,
	REC_ERR_MISSING_EMBEDDING,
	REC_ERR_WRONG_DIM,
	REC_ERR_NOT_FINITE,
	REC_ERR_BAD_FIELD,
	REC_ERR_OVERSIZE,
	REC_ERR_TOO_MANY_SLICES,
	REC_ERR_REFERENCE_FROZEN,
	REC_ERR_UNSUPPORTED,
	REC_ERR_OVERLOADED,
	REC_ERR_BAD_FRAME,	/* binary record that does not follow its layout */
	REC_ERR_UNKNOWN_ID,	/* a label for no record waiting for one */
	REC_ERR__COUNT
};

const char *rec_err_name(enum rec_err e);

struct rec_label {
	const char *key;
	const char *value;
};

struct record {
	const char *model;
	const char *id;			/* NULL when absent */
	bool has_ts;			/* false: arrival time stands in */
	int64_t ts_us;			/* unix µs */
	enum rec_role role;
	/* dim float32 values in host order, NULL for a label-only record.
	 * Not necessarily aligned to a float: the binary decoder leaves them
	 * where they lie in the frame, so read them with memcpy or
	 * smp_store. */
	const void *embedding;
	unsigned dim;
	const float *scores;		/* NULL when absent */
	unsigned n_scores;
	bool has_label;
	int64_t label;
	unsigned n_labels;
	struct rec_label labels[REC_MAX_LABELS];
};

#endif
