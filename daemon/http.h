/* The HTTP side port (prefix http_): /healthz, /readyz, /metrics in the
 * Prometheus text format, and POST /v1/ingest and /v1/labels
 * (http_ingest.h).  evhttp on the loop thread, with header, body and time
 * limits on every connection. */
#ifndef DRIFTD_HTTP_H
#define DRIFTD_HTTP_H

#include <stdbool.h>

struct conf;
struct event_base;
struct eng;
struct store;
struct wq;

struct http_ctx {
	struct eng *eng;
	struct store *store;
	struct wq *wq;
	bool (*is_ready)(void *arg);	/* listeners up, store reachable */
	int (*pressure)(void *arg);	/* ingest backpressure level, 0..2 */
	void *arg;
};

struct http_srv;

struct http_srv *http_new(struct event_base *base, const struct http_ctx *ctx);
/* Takes ownership of the listening socket FD.  Returns 0 or -errno. */
int http_add_listener(struct http_srv *h, int fd);
/* Body size, timeout, token and line limit from C (start and reload).
 * Returns 0 or -ENOMEM. */
int http_set_limits(struct http_srv *h, const struct conf *c);
void http_free(struct http_srv *h);

#endif
