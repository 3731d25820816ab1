/* libFuzzer harness for the binary protocol codec (daemon/frame.c): the
 * input is a client's byte stream after the magic, cut into frames the way
 * ingest_bin.c cuts it (header, limit check, payload), each payload
 * decoded record by record through one long-lived decoder.  Besides the
 * sanitizers it checks what the codec promises: spans cover every record
 * exactly once, refusals explain themselves, accepted records are
 * well-formed, and replies encode. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME (64u << 10)

static volatile unsigned sink;

static void touch(const char *s)
{
	for (; *s; s++)
		sink += (unsigned char)*s;
}

static void check_record(const struct record *r)
{
	if (!r->model || !r->model[0])
		abort();
	touch(r->model);
	if (r->id)
		touch(r->id);
	if ((r->embedding == NULL) != (r->dim == 0))
		abort();
	/* The embedding lies in the frame, not necessarily aligned. */
	for (unsigned i = 0; i < r->dim; i++) {
		float v;

		memcpy(&v, (const char *)r->embedding + i * sizeof(v), sizeof(v));
		if (!isfinite(v))
			abort();
	}
	if ((r->scores == NULL) != (r->n_scores == 0) ||
	    r->n_scores > REC_MAX_SCORES)
		abort();
	for (unsigned i = 0; i < r->n_scores; i++)
		if (!isfinite(r->scores[i]))
			abort();
	if (r->n_labels > REC_MAX_LABELS || (r->has_label && r->label < 0))
		abort();
	for (unsigned i = 0; i < r->n_labels; i++) {
		touch(r->labels[i].key);
		touch(r->labels[i].value);
	}
}

static void payload(struct frm_decoder *d, struct frm_buf *out,
		    const struct frm_header *h, const uint8_t *p)
{
	uint32_t count, seen = 0, acc = 0, rej = 0;
	struct frm_item it;
	struct frm_hello hello;
	char msg[256];

	if (h->type == FRM_HELLO) {
		if (frm_hello_read(p, h->length, &hello, msg, sizeof(msg)) ==
		    FRM_OK && hello.token_len > FRM_MAX_TOKEN)
			abort();
		return;
	}
	if (frm_begin(d, h->type, p, h->length, &count, msg, sizeof(msg)) !=
	    FRM_OK) {
		if (!msg[0])
			abort();
		return;
	}
	if (frm_ack_begin(out, h->seq, h->type) < 0)
		abort();
	while (frm_next(d, &it, msg, sizeof(msg))) {
		if (it.first != seen || it.span == 0 ||
		    it.span > count - seen)
			abort();
		seen += it.span;
		if (it.err == REC_OK) {
			check_record(&it.rec);
			acc++;
		} else {
			if (!msg[0] || strlen(msg) >= sizeof(msg))
				abort();
			rej += it.span;
			frm_ack_error(out, it.first, it.span, it.err, msg);
		}
	}
	if (seen != count || acc + rej != count)
		abort();
	frm_ack_end(out, acc, rej);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frm_decoder *d;
	struct frm_buf out = { 0 };
	struct frm_header h;
	char msg[256];
	uint8_t *copy;

	if (!d && !(d = frm_decoder_new()))
		abort();
	while (size >= FRM_HEADER_LEN) {
		frm_header_read(data, &h);
		data += FRM_HEADER_LEN;
		size -= FRM_HEADER_LEN;
		if (frm_header_check(&h, MAX_FRAME, msg, sizeof(msg)) != FRM_OK) {
			if (!msg[0])
				abort();
			frm_put_error(&out, h.seq, FRM_ERR_MALFORMED, false, msg);
			/* A refused frame's payload is skipped, as it would be. */
			if (h.length >= size)
				break;
			data += h.length;
			size -= h.length;
			continue;
		}
		if (h.length > size)
			break;
		/* An exact-size copy: a read past the payload is caught. */
		copy = malloc(h.length ? h.length : 1);
		if (!copy)
			abort();
		memcpy(copy, data, h.length);
		payload(d, &out, &h, copy);
		free(copy);
		data += h.length;
		size -= h.length;
	}
	frm_buf_free(&out);
	return 0;
}
