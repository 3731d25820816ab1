/* Records waiting for a label sent later (prefix lbl_): a bounded map from
 * a record's id to its slice and predicted scores, oldest first, each entry
 * living until its expiry.  Pure data structure, loop thread only.
 * Errors: 0 or a negative errno. */
#ifndef DRIFTD_LABELS_H
#define DRIFTD_LABELS_H

#include <stddef.h>
#include <stdint.h>

struct lbl;

/* K scores per entry (K >= 1).  NULL on allocation failure. */
struct lbl *lbl_new(unsigned k);
void lbl_free(struct lbl *l);

/* Remembers ID (its slice key and K scores, copied) until EXPIRES_US.  A
 * second record with the same id replaces the first.  With MAX entries
 * held already, the oldest gives way: *EVICTED is set to how many did.
 * -ENOMEM. */
int lbl_put(struct lbl *l, const char *id, const char *slice,
	    const float *scores, int64_t expires_us, size_t max,
	    size_t *evicted);

/* Removes ID's entry, copying its scores to SCORES (K floats) and its
 * slice key to SLICE (LEN bytes, truncated).  -ENOENT when absent. */
int lbl_take(struct lbl *l, const char *id, float *scores, char *slice,
	     size_t len);

/* Drops the entries that expired at NOW_US; returns how many. */
size_t lbl_expire(struct lbl *l, int64_t now_us);

/* Entries held. */
size_t lbl_count(const struct lbl *l);

#endif
