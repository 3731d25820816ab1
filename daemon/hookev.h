/* Webhook events (prefix hookev_): which endpoint an event goes to, its
 * webhook-id and its JSON body (docs/webhooks.md), built once so that the
 * bytes stored in the outbox are the bytes signed and sent.  No I/O; a
 * batch belongs to one thread.  Errors: 0 or a negative errno.
 *
 * Raising events from an evaluation (the engine does this for drift):
 *
 *     struct hookev_batch *b = hookev_batch_new(conf, model, now_us);
 *     hookev_add(b, HOOKEV_COLLAPSE, &slice, tests, n_tests);  per slice
 *     hookev_take(b, &w.events, &w.n_events);   on the last window written
 *     store_put_window(store, &w);              events in its transaction
 *     hookev_batch_free(b);
 *
 * All slices added to one batch form ONE event per type; every function
 * accepts a NULL batch (the model calls no webhook) and then does nothing.
 * Cooldown, retries and delivery happen later (store, hook.c).
 */
#ifndef DRIFTD_HOOKEV_H
#define DRIFTD_HOOKEV_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct conf;

enum hookev_type {
	HOOKEV_DRIFT,       /* drift.detected: a drift test fired */
	HOOKEV_CALIBRATION, /* calibration.degraded: ECE or the like over its limit */
	HOOKEV_COLLAPSE,    /* embedding.collapse: effective rank dropped */
	HOOKEV_STREAM,      /* stream.alarm: a streaming detector alarmed;
			     * hookev_add_stream() only */
	HOOKEV_TEST,        /* test: driftctl webhooks test; hookev_test() only */
	HOOKEV__COUNT,
};

/* "drift.detected", ..., "test". */
const char *hookev_type_name(enum hookev_type t);

/* The window of one slice that an event refers to. */
struct hookev_slice {
	const char *slice;
	int64_t window_id;
	int64_t start_us, end_us;
	unsigned n;
	int64_t reference_set_id;
};

struct hookev_batch;

/* The events of one evaluation of MODEL at NOW_US (unix µs).  NULL when
 * the model names no webhook (on_drift) or on allocation failure; C must
 * outlive the batch. */
struct hookev_batch *hookev_batch_new(const struct conf *c, const char *model,
				      int64_t now_us);

/* Lists slice S in the batch's event of type T, with those of the tests
 * T[0..n) marked drifted (= fired).  Nothing happens when none fired, when
 * the endpoint's `events` leaves T out, or once taken.  -EINVAL for
 * HOOKEV_STREAM and HOOKEV_TEST; -ENOMEM (the batch stays usable). */
int hookev_add(struct hookev_batch *b, enum hookev_type t,
	       const struct hookev_slice *s, const struct store_test *tests,
	       size_t n);

/* Lists SLICE in the batch's stream.alarm event with the alarms A[0..n)
 * that one record raised there at DETECTED_US (each a "test" named
 * detector:signal).  Nothing happens for n == 0, when the endpoint's
 * `events` leaves stream.alarm out, or once taken.  -ENOMEM (the batch
 * stays usable). */
int hookev_add_stream(struct hookev_batch *b, const char *slice,
		      int64_t detected_us, const struct store_stream_alarm *a,
		      size_t n);

/* Builds the bodies and hands out one store_event per type that has
 * slices, valid until hookev_batch_free; *n = 0 when there are none or
 * they were taken before.  -ENOMEM. */
int hookev_take(struct hookev_batch *b, const struct store_event **ev,
		size_t *n);

void hookev_batch_free(struct hookev_batch *b);

/* A test event for endpoint NAME.  The strings live in *mem (free() it),
 * except endpoint, which is C's.  -ENOENT when there is no [webhook.NAME];
 * -ENOMEM. */
int hookev_test(const struct conf *c, const char *name, int64_t now_us,
		struct store_event *ev, char **mem);

/* A fresh webhook-id: "msg_" + 12 hex digits of unix ms + 16 random hex
 * digits, so ids sort by creation time.  BUF holds HOOKEV_ID_LEN + 1. */
#define HOOKEV_ID_LEN (4 + 12 + 16)
void hookev_new_id(int64_t now_us, char *buf);

#endif
