/* history (prefix hist_): the K-of-M decisions the store gathers at start,
 * per (model, slice): first the database's newest tested windows, then the
 * windows and retirements still waiting in the spill journal, in the order
 * they were written.  Pure data structure, no I/O, not thread-safe.
 * Errors: 0 or a negative errno. */
#ifndef DRIFTD_STORE_HISTORY_H
#define DRIFTD_STORE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct hist;

/* NULL on allocation failure. */
struct hist *hist_new(void);

/* The decision of window WINDOW_ID of MODEL/SLICE, decided under ALARM_M,
 * joins the slice's newest decisions (at most STORE_HISTORY_MAX kept).  A
 * window at or below the slice's newest is skipped: the journal's oldest
 * write may be in the database already.  -ENOMEM. */
int hist_add(struct hist *h, const char *model, const char *slice,
	     int64_t window_id, bool drifted, unsigned alarm_m);

/* A reset of MODEL (SLICE NULL: every slice) or the expiry of SLICE: the
 * decisions gathered so far no longer count. */
void hist_forget(struct hist *h, const char *model, const char *slice);

/* The slices holding decisions into *OUT, *N of them, in the order they
 * first appeared; valid until the next call on H.  -ENOMEM. */
int hist_list(struct hist *h, const struct store_history **out, size_t *n);

void hist_free(struct hist *h);

#endif
