/* The webhook deliverer (prefix hook_).  It claims due rows of the outbox
 * (store/outbox.h), resolves the endpoint with evdns, refuses addresses
 * the endpoint may not reach (hookpol.h), connects to the address it
 * checked (pinned: no second lookup), sends the stored body with Standard
 * Webhooks signatures over evhttp (HTTPS through bufferevent_openssl,
 * certificate and host name verified), never follows redirects, and
 * records each attempt with its verdict.  See docs/webhooks.md.
 *
 * Events come from elsewhere: hookev.h builds them, the store writes them
 * with the results that raise them, and hook_events_written() tells the
 * deliverer to look at once.  Loop thread only; nothing here blocks.
 * Errors: 0 or a negative errno.
 */
#ifndef DRIFTD_HOOK_H
#define DRIFTD_HOOK_H

#include <stddef.h>

#include "hookev.h"

struct conf;
struct evbuffer;
struct event_base;
struct store;
struct hook;

/* C must stay alive until the next hook_reconfigure() or hook_free().
 * NULL on allocation failure (logged). */
struct hook *hook_new(struct event_base *base, const struct conf *c);

/* Connects the outbox (once there are endpoints); call once the store
 * has migrated the schema. */
void hook_start(struct hook *h);

/* New endpoints, secrets and limits apply to attempts that start later;
 * attempts in flight finish with what they started with.  C replaces the
 * old conf in any case; -ENOMEM keeps the old endpoints. */
int hook_reconfigure(struct hook *h, const struct conf *c);

/* The store committed outbox rows (store_opts.events): count them and
 * look for due rows now. */
void hook_events_written(struct hook *h, unsigned queued, unsigned suppressed);

/* Queues a test event for [webhook.NAME] through STORE and writes its
 * webhook-id to id.  -ENOENT (no such webhook), -ENOBUFS (store queue
 * full), -EPIPE, -ENOMEM. */
int hook_send_test(struct hook *h, struct store *store, const char *name,
		   char id[HOOKEV_ID_LEN + 1]);

/* Shutdown: claim nothing more; attempts in flight run to their end. */
void hook_stop(struct hook *h);
/* Attempts in flight plus results not yet written to the database. */
size_t hook_busy(const struct hook *h);

/* Prometheus text for /metrics. */
void hook_write_metrics(const struct hook *h, struct evbuffer *b);

void hook_free(struct hook *h);

#endif
