/* NDJSON record codec (prefix ndj_): turns one line of text into a struct
 * record.  Pure: no I/O, no globals; one parser per connection, not shared
 * between threads.  The record borrows from the parser until the next call. */
#ifndef DRIFTD_NDJSON_H
#define DRIFTD_NDJSON_H

#include <stdbool.h>

#include "record.h"

struct ndj_parser;

/* Returns NULL on allocation failure. */
struct ndj_parser *ndj_new(void);
void ndj_free(struct ndj_parser *p);

/* The fast path (on by default) reads common records without json-c and
 * gives way to it for anything else; off, every line goes through json-c.
 * Both give the same results: this exists to test that they do. */
void ndj_set_fast(struct ndj_parser *p, bool on);

/* Parses LEN bytes (no newline needed, none allowed inside).  On success
 * fills *out and returns REC_OK.  On failure returns the reason and writes
 * a human-readable message into msg; *out->id is set when the line got far
 * enough to carry one, else NULL. */
enum rec_err ndj_parse(struct ndj_parser *p, const char *line, size_t len,
		       struct record *out, char *msg, size_t msglen);

#endif
