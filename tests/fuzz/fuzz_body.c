/* libFuzzer harness for HTTP ingest bodies (daemon/body.c over the NDJSON
 * codec): any bytes as a POST /v1/ingest and a /v1/labels body, with a
 * small line limit so that oversize lines come up.  Checks that every
 * non-empty line is answered exactly once, in order, and that refusals
 * explain themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "ndjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	uint64_t last_line, calls;
	bool labels;
};

static enum rec_err on_line(void *arg, uint64_t line, enum rec_err err,
			    const struct record *rec, const char *id,
			    char *msg, size_t msglen)
{
	struct seen *s = arg;

	if (line <= s->last_line || (unsigned)err >= REC_ERR__COUNT)
		abort();
	s->last_line = line;
	s->calls++;
	if (err != REC_OK) {
		if (!msg[0] || strlen(msg) >= msglen)
			abort();
		return err;
	}
	if (!rec->model || (s->labels && (rec->embedding || !rec->id ||
					  !rec->has_label)))
		abort();
	return REC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ndj_parser *p;
	struct bdy_counts n;
	char *copy;

	if (!p && !(p = ndj_new()))
		abort();
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	for (int labels = 0; labels < 2; labels++) {
		struct seen s = { .labels = labels };

		n = bdy_each(p, copy, size, 512, labels, on_line, &s);
		if (n.accepted + n.rejected != s.calls || s.calls > n.lines)
			abort();
	}
	free(copy);
	return 0;
}
