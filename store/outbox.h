/* outbox: the delivering side of the webhook outbox (prefix outbox_).  It
 * claims due rows and records attempts on a PostgreSQL connection of its
 * own, so deliveries never wait behind window writes, nor the other way
 * round.  Start it once the store has brought the schema up to date
 * (STORE_READY).  The rows themselves are written by the store, in the
 * statement of the result that raises them (store.h, struct store_event).
 *
 * Loop thread only, never blocks.  Callbacks may call any outbox function
 * except outbox_free.  Times are microseconds.  Errors: 0 or a negative
 * errno.
 */
#ifndef DRIFTD_STORE_OUTBOX_H
#define DRIFTD_STORE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct outbox;

struct outbox_row {
	const char *id, *endpoint, *type, *body; /* valid during the callback */
	unsigned attempts;  /* made before, since the last redelivery */
	uint64_t age_us;    /* since the first of them; 0 before the first */
};

struct outbox_claim {
	const struct outbox_row *rows;
	size_t n;
	int64_t next_due_us;	      /* until the next unclaimed row is due
				       * (0 = now); -1 = none is queued */
	const char *const *disabled; /* endpoints asked for that a 410 disabled */
	size_t n_disabled;
};

/* c == NULL: the claim failed (connection lost or timed out); nothing was
 * claimed that is not released by its lease. */
typedef void (*outbox_claim_fn)(void *arg, const struct outbox_claim *c);

/* One finished attempt. */
struct outbox_attempt {
	const char *id;
	unsigned attempt;	  /* this attempt's number: row attempts + 1 */
	const char *status;	  /* "delivered", "retrying" or "dead" */
	int http_status;	  /* 0 = no response */
	const char *error;	  /* NULL when delivered */
	int64_t started_us;	  /* unix time */
	uint64_t duration_us;
	uint64_t retry_in_us;	  /* "retrying": the next attempt is due then */
	const char *address;	  /* pinned "IP:port"; NULL if never resolved */
	const char *disable_endpoint; /* non-NULL: a 410; mark it disabled */
	const char *disable_url;  /* its url, with disable_endpoint */
};

struct outbox_opts {
	uint64_t query_timeout_us;	/* 10 s */
	unsigned max_pending;		/* 10000 attempts queued; beyond: -ENOBUFS */
	void (*log)(void *arg, int level, const char *msg); /* syslog levels */
	void (*up)(void *arg);		/* (re)connected: claims can go out */
};

/* NULL on allocation failure.  o may be NULL. */
struct outbox *outbox_new(struct event_base *base, const char *dsn,
			  const struct outbox_opts *o, void *arg);
/* Connects (and reconnects, with backoff) from the next loop turn; a
 * no-op once started. */
void outbox_start(struct outbox *o);

/* Claims at most LIMIT due rows of the named endpoints, leasing each for
 * LEASE_US.  Runs after the attempts already queued, so a claim never sees
 * a row whose attempt is still unrecorded.  One claim at a time: -EBUSY.
 * -ENOTCONN while the connection is down (nothing is queued); -EINVAL. */
int outbox_claim(struct outbox *o, const char *const *endpoints, size_t n,
		 unsigned limit, uint64_t lease_us, outbox_claim_fn fn,
		 void *arg);

/* Queues an attempt's result; written in order, retried across reconnects,
 * dropped (and logged) only when the database rejects its content.
 * -EINVAL, -ENOBUFS, -ENOMEM. */
int outbox_record(struct outbox *o, const struct outbox_attempt *a);

size_t outbox_pending(const struct outbox *o); /* attempts not yet written */
bool outbox_up(const struct outbox *o);
void outbox_free(struct outbox *o);

#endif
