/* libFuzzer harness for the NDJSON record codec (daemon/ndjson.c): any
 * bytes, as one line and split on newlines as the ingest path does, through
 * one long-lived parser like a connection's.  Besides the sanitizers it
 * checks what the codec promises about an accepted record, and reads every
 * borrowed byte so ASan sees stale or short buffers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ndjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void touch_string(const char *s)
{
	for (; *s; s++)
		sink += (unsigned char)*s;
}

static void check(enum rec_err e, const struct record *r, const char *msg)
{
	if ((unsigned)e >= REC_ERR__COUNT)
		abort();
	if (r->id)
		touch_string(r->id);
	if (e != REC_OK) {
		/* A refusal always explains itself (and is NUL-terminated). */
		if (!msg[0] || strlen(msg) >= 256)
			abort();
		return;
	}
	if (!r->model || !r->model[0])
		abort();
	touch_string(r->model);
	if (r->embedding) {
		if (r->dim == 0)
			abort();
		for (unsigned i = 0; i < r->dim; i++)
			if (!isfinite(r->embedding[i]))
				abort();
	} else if (r->dim) {
		abort();
	}
	if (r->scores) {
		if (r->n_scores == 0 || r->n_scores > REC_MAX_SCORES)
			abort();
		for (unsigned i = 0; i < r->n_scores; i++)
			if (!isfinite(r->scores[i]))
				abort();
	} else if (r->n_scores) {
		abort();
	}
	if (r->has_label && r->label < 0)
		abort();
	if (r->role != REC_LIVE && r->role != REC_REFERENCE)
		abort();
	if (r->n_labels > REC_MAX_LABELS)
		abort();
	for (unsigned i = 0; i < r->n_labels; i++) {
		touch_string(r->labels[i].key);
		touch_string(r->labels[i].value);
	}
}

/* Parses LEN bytes from an exact-size heap copy: no NUL after the line,
 * so a read past LEN is caught. */
static void parse(struct ndj_parser *p, const uint8_t *line, size_t len,
		  size_t msglen)
{
	char *copy = malloc(len ? len : 1);
	char msg[256];
	struct record r;
	enum rec_err e;

	if (!copy)
		return;
	memcpy(copy, line, len);
	memset(msg, 0, sizeof(msg));
	e = ndj_parse(p, copy, len, &r, msg, msglen);
	free(copy);
	check(e, &r, msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One parser for the whole run: state left over from any earlier
	 * input must not change how a later one parses or crash it. */
	static struct ndj_parser *p;
	const uint8_t *line = data, *end = data + size, *nl;

	if (!p && !(p = ndj_new()))
		abort();
	parse(p, data, size, 256);
	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			nl = end;
		/* A short message buffer on some lines exercises truncation. */
		parse(p, line, (size_t)(nl - line), (nl - line) % 7 ? 256 : 9);
		line = nl + 1;
	}
	return 0;
}
