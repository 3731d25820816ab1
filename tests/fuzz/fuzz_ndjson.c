/* libFuzzer harness for the NDJSON record codec (daemon/ndjson.c): any
 * bytes, as one line and split on newlines as the ingest path does, through
 * one long-lived parser like a connection's.  Besides the sanitizers it
 * checks what the codec promises about an accepted record, reads every
 * borrowed byte so ASan sees stale or short buffers, and parses each line
 * again with the fast path off: both must give the same answer and, for
 * an accepted record, the same record. */
#include <math.h>
#include <stdbool.h>
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
		const float *v = r->embedding;	/* the parser's own array */

		for (unsigned i = 0; i < r->dim; i++)
			if (!isfinite(v[i]))
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

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_floats(const void *a, const void *b, unsigned n)
{
	return (!a && !b) || (a && b && !memcmp(a, b, n * sizeof(float)));
}

/* The fast path and json-c must agree on every record either accepts. */
static void compare(enum rec_err fe, const struct record *f,
		    enum rec_err se, const struct record *s)
{
	if (fe != se)
		abort();
	if (fe != REC_OK)
		return;
	if (!same_str(f->model, s->model) || !same_str(f->id, s->id) ||
	    f->has_ts != s->has_ts || (f->has_ts && f->ts_us != s->ts_us) ||
	    f->role != s->role || f->dim != s->dim ||
	    !same_floats(f->embedding, s->embedding, f->dim) ||
	    f->n_scores != s->n_scores ||
	    !same_floats(f->scores, s->scores, f->n_scores) ||
	    f->has_label != s->has_label ||
	    (f->has_label && f->label != s->label) ||
	    f->n_labels != s->n_labels)
		abort();
	for (unsigned i = 0; i < f->n_labels; i++)
		if (strcmp(f->labels[i].key, s->labels[i].key) ||
		    strcmp(f->labels[i].value, s->labels[i].value))
			abort();
}

/* Parses LEN bytes from an exact-size heap copy: no NUL after the line,
 * so a read past LEN is caught.  SLOW parses it again with json-c only. */
static void parse(struct ndj_parser *p, struct ndj_parser *slow,
		  const uint8_t *line, size_t len, size_t msglen)
{
	char *copy = malloc(len ? len : 1);
	char msg[256], smsg[256];
	struct record r, sr;
	enum rec_err e, se;

	if (!copy)
		return;
	memcpy(copy, line, len);
	memset(msg, 0, sizeof(msg));
	e = ndj_parse(p, copy, len, &r, msg, msglen);
	check(e, &r, msg);
	se = ndj_parse(slow, copy, len, &sr, smsg, sizeof(smsg));
	compare(e, &r, se, &sr);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One parser for the whole run: state left over from any earlier
	 * input must not change how a later one parses or crash it. */
	static struct ndj_parser *p, *slow;
	const uint8_t *line = data, *end = data + size, *nl;

	if (!p && !(p = ndj_new()))
		abort();
	if (!slow) {
		if (!(slow = ndj_new()))
			abort();
		ndj_set_fast(slow, false);
	}
	parse(p, slow, data, size, 256);
	while (line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			nl = end;
		/* A short message buffer on some lines exercises truncation. */
		parse(p, slow, line, (size_t)(nl - line),
		      (nl - line) % 7 ? 256 : 9);
		line = nl + 1;
	}
	return 0;
}
