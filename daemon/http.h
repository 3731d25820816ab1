/* The HTTP side port (prefix http_): a route table of (method, path
 * pattern, handler) served by evhttp on the loop thread, with header,
 * body and time limits on every connection.  Routes: the status page at
 * /, /healthz, /readyz, /metrics (Prometheus text format), the JSON API
 * under /v1 (api.h), including POST /v1/webhooks/NAME/test, and POST
 * /v1/ingest and /v1/labels (http_ingest.h). */
#ifndef DRIFTD_HTTP_H
#define DRIFTD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "reqparse.h"

struct api;
struct conf;
struct eng;
struct event_base;
struct evbuffer;
struct evhttp_request;
struct hook;
struct rdr;
struct store;
struct wq;

struct http_ctx {
	struct eng *eng;
	struct store *store;
	struct rdr *rdr;
	struct wq *wq;
	struct hook *hook;		/* POST /v1/webhooks/NAME/test, metrics */
	const struct conf *const *conf;	/* the daemon's current config */
	/* false with the reason (static text) while not ready */
	bool (*is_ready)(void *arg, const char **why);
	int (*pressure)(void *arg);	/* ingest backpressure level, 0..2 */
	void *arg;
};

struct http_srv;

/* A route's handler.  ARGS holds the path's {name} segments in pattern
 * order.  It must answer REQ, now or later (see api.c). */
#define HTTP_MAX_ARGS RQ_MAX_ARGS
typedef void (*http_fn)(struct http_srv *h, struct evhttp_request *req,
			const char *const *args);

struct http_srv *http_new(struct event_base *base, const struct http_ctx *ctx);
/* Takes ownership of the listening socket FD.  Returns 0 or -errno. */
int http_add_listener(struct http_srv *h, int fd);
/* Body size, timeout, token and line limit for POST /v1/ingest and
 * /v1/labels (http_ingest.h), from C at start and on reload.  Returns 0
 * or -ENOMEM. */
int http_set_limits(struct http_srv *h, const struct conf *c);
const struct http_ctx *http_ctx(const struct http_srv *h);
struct api *http_api(const struct http_srv *h);
void http_free(struct http_srv *h);

/* Sends BODY (may be NULL) with CODE and CTYPE, and counts the answer
 * in driftd_http_responses_total. */
void http_reply(struct evhttp_request *req, int code, const char *ctype,
		struct evbuffer *body);
/* {"error": MESSAGE} with CODE. */
void http_error_json(struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
