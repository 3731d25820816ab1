/* NDJSON request bodies (prefix bdy_): splits a body into lines and parses
 * each with the NDJSON codec, for POST /v1/ingest and /v1/labels.  Pure:
 * no I/O, no globals; what happens to a parsed record is the caller's
 * callback.  Lines are numbered from 1; empty lines count but are
 * skipped; a trailing '\r' is dropped. */
#ifndef DRIFTD_BODY_H
#define DRIFTD_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct ndj_parser;

/* Called once per non-empty line.  REC is valid only when ERR is REC_OK;
 * ID (or NULL) names the record either way; MSG holds the reason when ERR
 * is not REC_OK.  The callback may refuse an accepted record by returning
 * a reason and writing MSG (MSGLEN bytes); otherwise it returns REC_OK. */
typedef enum rec_err (*bdy_fn)(void *arg, uint64_t line, enum rec_err err,
			       const struct record *rec, const char *id,
			       char *msg, size_t msglen);

struct bdy_counts {
	uint64_t lines, accepted, rejected;
};

/* LABELS: every line must be a label on its own (model, id, label and
 * nothing else).  Lines longer than MAX_LINE are refused (oversize). */
struct bdy_counts bdy_each(struct ndj_parser *p, const char *body,
			   size_t len, size_t max_line, bool labels,
			   bdy_fn fn, void *arg);

#endif
