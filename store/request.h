/* request: one queued write, validated and turned into SQL parameters at
 * enqueue time, so the queue owns plain bytes and the caller's structs can go.
 * Errors: 0 or a negative errno. */
#ifndef DRIFTD_STORE_REQUEST_H
#define DRIFTD_STORE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "outbox.h"
#include "store.h"

#define REQ_MAX_PARAMS 48

/* Bumped whenever a statement's parameters change: journal records of
 * another format cannot be replayed. */
#define REQ_FORMAT 2

/* Journal records carry the kind's number: append new kinds at the end. */
enum req_kind {
	REQ_REFERENCE, REQ_WINDOW, REQ_EVENTS, REQ_CLAIM, REQ_ATTEMPT, REQ_RETIRE,
	REQ_ALARMS, REQ__COUNT
};

struct req {
	TAILQ_ENTRY(req) link;
	enum req_kind kind;
	int nparams;
	const char *values[REQ_MAX_PARAMS]; /* into buf; NULL = SQL NULL */
	int lengths[REQ_MAX_PARAMS];        /* used by binary parameters only */
	int formats[REQ_MAX_PARAMS];        /* 0 text, 1 binary */
	char *buf;
	uint64_t queued_us, sent_us;        /* monotonic, for store_opts.observe */
	uint64_t closed_us;                 /* a window's close, 0: unknown */
};

TAILQ_HEAD(req_list, req);

int req_new_window(const struct store_window *w, struct req **out);
int req_new_reference(const struct store_reference *r, struct req **out);
int req_new_events(const struct store_event *ev, size_t n, struct req **out);
int req_new_alarms(const struct store_stream_alarms *a, struct req **out);
/* The outbox's statements (outbox.c). */
int req_new_claim(const char *const *endpoints, size_t n, unsigned limit,
		  uint64_t lease_us, struct req **out);
int req_new_attempt(const struct outbox_attempt *a, struct req **out);
int req_new_retire(const char *model, const char *slice, int64_t at_us,
		   const char *reason, struct req **out);
void req_free(struct req *r);

/* Journal form of a request of the store's queue (reference, window,
 * events, retirement, stream alarms): its kind and parameters as bytes.
 * req_encode: malloc'd buffer in *out (length *len), 0 or -ENOMEM.
 * req_decode: 0, -EINVAL for bytes that are not such a request, -ENOMEM. */
int req_encode(const struct req *r, unsigned char **out, size_t *len);
int req_decode(const unsigned char *buf, size_t len, struct req **out);

/* What a journaled write means for the K-of-M history restored at start:
 * a tested window's decision (req_decision) or a retirement, which ends
 * the history of one slice or (*SLICE NULL) of every slice of a model
 * (req_retirement).  False for other writes; the strings point into R. */
bool req_decision(const struct req *r, const char **model, const char **slice,
		  int64_t *window_id, bool *drifted, unsigned *alarm_m);
bool req_retirement(const struct req *r, const char **model, const char **slice);

/* The statement for r's kind.  Windows, events and alarms return one row:
 * (inserted int8, reused bool, events_queued int8, events_suppressed
 * int8), see store.c. */
const char *req_sql(const struct req *r);
/* The statement of KIND, and the name it is prepared under. */
const char *req_kind_sql(enum req_kind kind);
const char *req_kind_name(enum req_kind kind);
/* "window m/s/42", "reference set 7 (m/s)" or "reference retirement
 * (m/s)", for log lines. */
void req_describe(const struct req *r, char *buf, size_t len);

#endif
