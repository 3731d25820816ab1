/* POST /v1/ingest and POST /v1/labels on the HTTP side port (prefix
 * hti_), on the loop thread.  The body is NDJSON, one record (or label)
 * per line; the answer is JSON with accepted and rejected counts and one
 * entry per refused line (docs/protocol.md, "HTTP"). */
#ifndef DRIFTD_HTTP_INGEST_H
#define DRIFTD_HTTP_INGEST_H

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;
struct eng;
struct ndj_parser;

struct hti_ctx {
	struct eng *eng;
	struct ndj_parser *parser;	/* one for the side port */
	size_t max_line;
	const char *token;		/* NULL = no authentication */
	int pressure;			/* ing_pressure_fn's level now */
};

/* Answers REQ.  LABELS selects /v1/labels. */
void hti_handle(struct evhttp_request *req, const struct hti_ctx *ctx,
		bool labels);

#endif
