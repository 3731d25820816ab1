/* The HTTP side port (prefix http_): /healthz, /readyz, /metrics in the
 * Prometheus text format, and POST /v1/webhooks/NAME/test.  evhttp on the loop thread, with header,
 * body and time limits on every connection. */
#ifndef DRIFTD_HTTP_H
#define DRIFTD_HTTP_H

#include <stdbool.h>

struct event_base;
struct eng;
struct hook;
struct store;
struct wq;

struct http_ctx {
	struct eng *eng;
	struct store *store;
	struct wq *wq;
	struct hook *hook;		/* POST /v1/webhooks/NAME/test, metrics */
	bool (*is_ready)(void *arg);	/* listeners up, store reachable */
	void *arg;
};

struct http_srv;

struct http_srv *http_new(struct event_base *base, const struct http_ctx *ctx);
/* Takes ownership of the listening socket FD.  Returns 0 or -errno. */
int http_add_listener(struct http_srv *h, int fd);
void http_free(struct http_srv *h);

#endif
