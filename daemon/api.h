/* The JSON API on the side port (prefix api_): GET /v1/models from the
 * engine's memory; /v1/models/{m}/status and /history from PostgreSQL
 * through the store's reader, answered when the read completes so the
 * loop never waits.  Handlers are rows of http.c's route table.  Errors
 * are {"error": "..."} with 400, 404, 500, 503 or 504.  Loop thread only. */
#ifndef DRIFTD_API_H
#define DRIFTD_API_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct api;

struct api *api_new(struct http_srv *h);
/* Cancels the reads still running; their requests go with evhttp. */
void api_free(struct api *a);

void api_models(struct http_srv *h, struct evhttp_request *req,
		const char *const *args);
void api_status(struct http_srv *h, struct evhttp_request *req,
		const char *const *args);
void api_history(struct http_srv *h, struct evhttp_request *req,
		 const char *const *args);

/* RFC 3339 ("2026-11-29T12:00:00.5Z", "...+01:00") or unix seconds
 * ("1795000000", "1795000000.25") to unix µs.  0 or -EINVAL. */
int api_parse_time(const char *s, int64_t *us);
/* "2026-11-29T12:00:00.000000Z"; BUF of at least 32 bytes. */
void api_format_time(int64_t us, char *buf, size_t len);

#endif
