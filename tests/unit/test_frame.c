/* Unit tests for daemon/frame: headers and their limits, HELLO, every
 * field of a binary record, every refusal with its code and message, the
 * span of a record that breaks the framing, and the exact bytes of the
 * daemon's replies (docs/protocol.md). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* ---- a little writer for client frames ---- */

struct w {
	uint8_t b[8192];
	size_t n;
};

static void w_bytes(struct w *w, const void *p, size_t n)
{
	assert_true(w->n + n <= sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* N little-endian bytes of V; beyond 8 bytes, zeros. */
static void w_le(struct w *w, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w->b[w->n++] = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
}

static void w_str(struct w *w, const char *s, size_t n)
{
	w_le(w, n, 2);
	w_bytes(w, s, n);
}

static void w_f32(struct w *w, float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	w_le(w, u, 4);
}

struct rec_spec {
	uint8_t role, flags, n_labels;
	int64_t ts, label;
	const char *model, *id;
	const char *const *labels;	/* key, value, key, value ... */
	uint32_t dim;
	const float *emb;
	uint16_t n_scores;
	const float *scores;
};

/* Appends one record with its u32 length (bodies stay under 64 KiB). */
static void w_record(struct w *w, const struct rec_spec *r)
{
	size_t at = w->n, i;

	w_le(w, 0, 4);
	w_le(w, r->role, 1);
	w_le(w, r->flags, 1);
	w_le(w, r->n_labels, 1);
	w_le(w, 0, 1);
	w_le(w, (uint64_t)r->ts, 8);
	w_le(w, (uint64_t)r->label, 8);
	w_str(w, r->model, strlen(r->model));
	w_str(w, r->id ? r->id : "", r->id ? strlen(r->id) : 0);
	for (i = 0; i < 2u * r->n_labels; i++)
		w_str(w, r->labels[i], strlen(r->labels[i]));
	w_le(w, r->dim, 4);
	for (i = 0; i < r->dim; i++)
		w_f32(w, r->emb[i]);
	w_le(w, r->n_scores, 2);
	for (i = 0; i < r->n_scores; i++)
		w_f32(w, r->scores[i]);
	w->b[at] = (uint8_t)(w->n - at - 4);
	w->b[at + 1] = (uint8_t)((w->n - at - 4) >> 8);
}

static const float EMB[4] = { 0.5f, -1.25f, 3.0f, 0.0f };

static struct rec_spec plain(void)
{
	return (struct rec_spec){ .model = "m", .id = "r1", .dim = 4,
				  .emb = EMB };
}

struct fx {
	struct frm_decoder *d;
	char msg[256];
	struct frm_item it;
	struct w payload;	/* the embedding of it.rec points into it */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->d = frm_decoder_new();
	assert_non_null(f->d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	frm_decoder_free(f->d);
	free(f);
	return 0;
}

/* Decodes a one-record RECORDS payload made of W into f->it. */
static enum rec_err decode_one(struct fx *f, uint8_t type, struct w *w)
{
	uint32_t count;
	struct w *p = &f->payload;

	p->n = 0;
	w_le(p, 1, 4);
	w_bytes(p, w->b, w->n);
	assert_int_equal(frm_begin(f->d, type, p->b, p->n, &count, f->msg,
				   sizeof(f->msg)), FRM_OK);
	assert_int_equal(count, 1);
	assert_true(frm_next(f->d, &f->it, f->msg, sizeof(f->msg)));
	assert_int_equal(f->it.first, 0);
	assert_int_equal(f->it.span, 1);
	return f->it.err;
}

static enum rec_err decode_spec(struct fx *f, const struct rec_spec *r)
{
	struct w w = { .n = 0 };

	w_record(&w, r);
	return decode_one(f, FRM_RECORDS, &w);
}

/* ---- headers ---- */

static void header_bytes(uint8_t b[16], uint8_t version, uint8_t type,
			 uint16_t flags, uint32_t seq, uint64_t len)
{
	struct w w = { .n = 0 };

	w_le(&w, version, 1);
	w_le(&w, type, 1);
	w_le(&w, flags, 2);
	w_le(&w, seq, 4);
	w_le(&w, len, 8);
	memcpy(b, w.b, 16);
}

static void test_header(void **state)
{
	uint8_t b[16];
	struct frm_header h;
	char msg[200];

	header_bytes(b, 1, FRM_RECORDS, 0, 0xA1B2C3D4u, 1000);
	frm_header_read(b, &h);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.type, FRM_RECORDS);
	assert_int_equal(h.seq, 0xA1B2C3D4u);
	assert_int_equal(h.length, 1000);
	assert_int_equal(frm_header_check(&h, 1016, msg, sizeof(msg)), FRM_OK);
	assert_int_equal(frm_header_check(&h, 1015, msg, sizeof(msg)),
			 FRM_ERR_OVERSIZE);
	assert_non_null(strstr(msg, "max_frame"));
}

static void test_header_refusals(void **state)
{
	uint8_t b[16];
	struct frm_header h;
	char msg[200];

	header_bytes(b, 1, FRM_RECORDS, 0, 7, UINT64_MAX);
	frm_header_read(b, &h);
	assert_int_equal(frm_header_check(&h, 1 << 20, msg, sizeof(msg)),
			 FRM_ERR_OVERSIZE);
	assert_non_null(strstr(msg, "18446744073709551615"));

	header_bytes(b, 2, FRM_RECORDS, 0, 7, 10);
	frm_header_read(b, &h);
	assert_int_equal(frm_header_check(&h, 1 << 20, msg, sizeof(msg)),
			 FRM_ERR_VERSION);
	assert_non_null(strstr(msg, "version 2"));

	header_bytes(b, 1, FRM_ACK, 0, 7, 10);
	frm_header_read(b, &h);
	assert_int_equal(frm_header_check(&h, 1 << 20, msg, sizeof(msg)),
			 FRM_ERR_TYPE);

	header_bytes(b, 1, FRM_LABELS, 4, 7, 10);
	frm_header_read(b, &h);
	assert_int_equal(frm_header_check(&h, 1 << 20, msg, sizeof(msg)),
			 FRM_ERR_MALFORMED);
	assert_string_equal(frm_err_name(FRM_ERR_TIMEOUT), "timeout");
}

static void test_hello(void **state)
{
	struct w w = { .n = 0 };
	struct frm_hello h;
	char msg[200];

	w_str(&w, "s3cret", 6);
	w_str(&w, "bench", 5);
	assert_int_equal(frm_hello_read(w.b, w.n, &h, msg, sizeof(msg)),
			 FRM_OK);
	assert_int_equal(h.token_len, 6);
	assert_memory_equal(h.token, "s3cret", 6);
	assert_int_equal(h.client_len, 5);
	/* One byte short, and one too many. */
	assert_int_equal(frm_hello_read(w.b, w.n - 1, &h, msg, sizeof(msg)),
			 FRM_ERR_MALFORMED);
	w_le(&w, 0, 1);
	assert_int_equal(frm_hello_read(w.b, w.n, &h, msg, sizeof(msg)),
			 FRM_ERR_MALFORMED);
}

/* ---- records ---- */

static void test_full_record(void **state)
{
	struct fx *f = *state;
	static const char *const labels[] = { "region", "eu", "device", "ios" };
	static const float scores[2] = { 0.25f, 0.75f };
	struct rec_spec r = plain();
	const struct record *rec = &f->it.rec;

	r.role = 1;
	r.flags = 3;
	r.ts = 1764417600123456;
	r.label = 7;
	r.n_labels = 2;
	r.labels = labels;
	r.n_scores = 2;
	r.scores = scores;
	assert_int_equal(decode_spec(f, &r), REC_OK);
	assert_string_equal(rec->model, "m");
	assert_string_equal(rec->id, "r1");
	assert_int_equal(rec->role, REC_REFERENCE);
	assert_true(rec->has_ts);
	assert_int_equal(rec->ts_us, 1764417600123456);
	assert_true(rec->has_label);
	assert_int_equal(rec->label, 7);
	assert_int_equal(rec->n_labels, 2);
	assert_string_equal(rec->labels[1].key, "device");
	assert_string_equal(rec->labels[1].value, "ios");
	assert_int_equal(rec->dim, 4);
	assert_memory_equal(rec->embedding, EMB, sizeof(EMB));
	assert_int_equal(rec->n_scores, 2);
	assert_true(rec->scores[1] == 0.75f);
}

static void test_minimal_record(void **state)
{
	struct fx *f = *state;
	struct rec_spec r = plain();

	r.id = NULL;
	r.ts = 99;	/* ignored without its flag */
	assert_int_equal(decode_spec(f, &r), REC_OK);
	assert_null(f->it.rec.id);
	assert_false(f->it.rec.has_ts);
	assert_false(f->it.rec.has_label);
	assert_null(f->it.rec.scores);
	assert_int_equal(f->it.rec.role, REC_LIVE);
}

/* Strings are copied into the decoder; the embedding stays in the payload
 * (no copy on the hot path), wherever the strings before it leave it. */
static void test_what_is_borrowed(void **state)
{
	struct fx *f = *state;
	static const char *const labels[] = { "region", "eu" };
	static const char *const ids[] = { "a", "ab", "abc", "abcd" };
	struct rec_spec r = plain();
	float v;

	r.n_labels = 1;
	r.labels = labels;
	for (size_t k = 0; k < 4; k++) {
		r.id = ids[k];
		assert_int_equal(decode_spec(f, &r), REC_OK);
		for (unsigned i = 0; i < 4; i++) {
			memcpy(&v, (const char *)f->it.rec.embedding + 4 * i, 4);
			assert_true(v == EMB[i]);
		}
		memset(f->payload.b, 0xEE, f->payload.n);
		assert_string_equal(f->it.rec.model, "m");
		assert_string_equal(f->it.rec.id, ids[k]);
		assert_string_equal(f->it.rec.labels[0].value, "eu");
		assert_memory_not_equal(f->it.rec.embedding, EMB, sizeof(EMB));
	}
}

static void expect(struct fx *f, const struct rec_spec *r, enum rec_err e,
		   const char *words)
{
	assert_int_equal(decode_spec(f, r), e);
	if (!strstr(f->msg, words))
		fail_msg("message \"%s\" lacks \"%s\"", f->msg, words);
}

static void test_record_refusals(void **state)
{
	struct fx *f = *state;
	static const float nan_emb[4] = { 1, NAN, 2, 3 };
	static const float inf_emb[4] = { 1, 2, -INFINITY, 3 };
	static const char *const bad_utf8[] = { "region", "\xff\xfe" };
	static const char *const many[34] = {
		"a", "1", "b", "1", "c", "1", "d", "1", "e", "1", "f", "1",
		"g", "1", "h", "1", "i", "1", "j", "1", "k", "1", "l", "1",
		"m", "1", "n", "1", "o", "1", "p", "1", "q", "1" };
	char long_id[300];
	struct rec_spec r;

	r = plain(), r.emb = nan_emb;
	expect(f, &r, REC_ERR_NOT_FINITE, "embedding[1] is NaN");
	r = plain(), r.emb = inf_emb;
	expect(f, &r, REC_ERR_NOT_FINITE, "embedding[2] is infinite");
	/* The odd last value is checked on its own. */
	static const float odd_tail[5] = { 1, 2, 3, 4, INFINITY };
	r = plain(), r.dim = 5, r.emb = odd_tail;
	expect(f, &r, REC_ERR_NOT_FINITE, "embedding[4] is infinite");
	r = plain(), r.n_labels = 1, r.labels = bad_utf8;
	expect(f, &r, REC_ERR_BAD_UTF8, "slice label value: invalid UTF-8");
	r = plain(), r.n_labels = 17, r.labels = many;
	expect(f, &r, REC_ERR_BAD_FIELD, "more than 16 labels");
	r = plain(), r.model = "";
	expect(f, &r, REC_ERR_MISSING_MODEL, "\"model\"");
	r = plain(), r.role = 2;
	expect(f, &r, REC_ERR_BAD_FIELD, "role");
	r = plain(), r.flags = 0x80;
	expect(f, &r, REC_ERR_BAD_FRAME, "flag");
	r = plain(), r.flags = 2, r.label = -1;
	expect(f, &r, REC_ERR_BAD_FIELD, "label is negative");
	r = plain(), r.flags = 1, r.ts = -5;
	expect(f, &r, REC_ERR_BAD_FIELD, "ts is out of range");
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	r = plain(), r.id = long_id;
	expect(f, &r, REC_ERR_BAD_FIELD, "id is longer than 256");
}

/* A NUL inside a string would cut a C string short: refused. */
static void test_nul_in_string(void **state)
{
	struct fx *f = *state;
	struct rec_spec r = plain();
	struct w w = { .n = 0 };

	r.model = "mX";
	w_record(&w, &r);
	w.b[4 + 20 + 2 + 1] = '\0';	/* the X */
	assert_int_equal(decode_one(f, FRM_RECORDS, &w), REC_ERR_BAD_FIELD);
	assert_non_null(strstr(f->msg, "NUL"));
}

static void test_record_layout_errors(void **state)
{
	struct fx *f = *state;
	struct rec_spec r = plain();
	struct w w = { .n = 0 };

	/* Body one byte longer than its fields. */
	w_record(&w, &r);
	w.b[0]++;
	w_le(&w, 0, 1);
	assert_int_equal(decode_one(f, FRM_RECORDS, &w), REC_ERR_BAD_FRAME);
	assert_non_null(strstr(f->msg, "after its last field"));

	/* dim larger than the bytes that follow. */
	w.n = 0;
	r.dim = 4;
	w_record(&w, &r);
	w.b[4 + 20 + 3 + 4] = 200;	/* low byte of dim */
	assert_int_equal(decode_one(f, FRM_RECORDS, &w), REC_ERR_BAD_FRAME);
	assert_non_null(strstr(f->msg, "embedding of 200 values"));

	/* Shorter than the fixed fields; the next record still decodes. */
	struct w p = { .n = 0 };
	uint32_t count;
	char id[100];

	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	r = plain();
	r.id = id;
	w_le(&p, 2, 4);
	w_le(&p, 3, 4);
	w_le(&p, 0, 3);
	w_record(&p, &r);
	assert_int_equal(frm_begin(f->d, FRM_RECORDS, p.b, p.n, &count,
				   f->msg, sizeof(f->msg)), FRM_OK);
	assert_true(frm_next(f->d, &f->it, f->msg, sizeof(f->msg)));
	assert_int_equal(f->it.err, REC_ERR_BAD_FRAME);
	assert_non_null(strstr(f->msg, "shorter than its fixed fields"));
	assert_true(frm_next(f->d, &f->it, f->msg, sizeof(f->msg)));
	assert_int_equal(f->it.err, REC_OK);
	assert_int_equal(f->it.first, 1);
	assert_string_equal(f->it.rec.id, id);
}

/* A record whose length runs past the frame takes the rest with it, as
 * one refusal with a span: bounded however large the count. */
static void test_truncated_frame_span(void **state)
{
	struct fx *f = *state;
	struct rec_spec r = plain();
	struct w p = { .n = 0 };
	uint32_t count;
	int n = 0;

	w_le(&p, 4, 4);
	w_record(&p, &r);
	w_record(&p, &r);
	w_record(&p, &r);
	p.n -= 10;	/* the third is cut; the fourth is missing */
	assert_int_equal(frm_begin(f->d, FRM_RECORDS, p.b, p.n, &count,
				   f->msg, sizeof(f->msg)), FRM_OK);
	while (frm_next(f->d, &f->it, f->msg, sizeof(f->msg))) {
		if (n < 2) {
			assert_int_equal(f->it.err, REC_OK);
		} else {
			assert_int_equal(f->it.err, REC_ERR_BAD_FRAME);
			assert_int_equal(f->it.first, 2);
			assert_int_equal(f->it.span, 2);
			assert_non_null(strstr(f->msg, "runs past the end"));
		}
		n++;
	}
	assert_int_equal(n, 3);
}

static void test_absurd_count(void **state)
{
	struct fx *f = *state;
	struct w p = { .n = 0 };
	uint32_t count;

	w_le(&p, UINT32_MAX, 4);
	w_le(&p, 0, 64);
	assert_int_equal(frm_begin(f->d, FRM_RECORDS, p.b, p.n, &count,
				   f->msg, sizeof(f->msg)), FRM_ERR_MALFORMED);
	assert_non_null(strstr(f->msg, "4294967295 records cannot fit"));
	assert_int_equal(frm_begin(f->d, FRM_RECORDS, p.b, 3, &count, f->msg,
				   sizeof(f->msg)), FRM_ERR_MALFORMED);
	/* An empty frame is fine. */
	p.n = 0;
	w_le(&p, 0, 4);
	assert_int_equal(frm_begin(f->d, FRM_RECORDS, p.b, p.n, &count,
				   f->msg, sizeof(f->msg)), FRM_OK);
	assert_false(frm_next(f->d, &f->it, f->msg, sizeof(f->msg)));
}

static void w_label(struct w *w, const char *model, const char *id,
		    int64_t label)
{
	size_t at = w->n;

	w_le(w, 0, 4);
	w_str(w, model, strlen(model));
	w_str(w, id, strlen(id));
	w_le(w, (uint64_t)label, 8);
	w->b[at] = (uint8_t)(w->n - at - 4);
}

static void test_labels(void **state)
{
	struct fx *f = *state;
	struct w w = { .n = 0 };

	w_label(&w, "m", "req-9", 3);
	assert_int_equal(decode_one(f, FRM_LABELS, &w), REC_OK);
	assert_string_equal(f->it.rec.id, "req-9");
	assert_true(f->it.rec.has_label);
	assert_int_equal(f->it.rec.label, 3);
	assert_null(f->it.rec.embedding);

	w.n = 0;
	w_label(&w, "m", "", 3);
	assert_int_equal(decode_one(f, FRM_LABELS, &w), REC_ERR_BAD_FIELD);
	assert_non_null(strstr(f->msg, "id"));
	w.n = 0;
	w_label(&w, "m", "x", -2);
	assert_int_equal(decode_one(f, FRM_LABELS, &w), REC_ERR_BAD_FIELD);
}

/* ---- replies ---- */

static uint64_t le_at(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void test_ack_bytes(void **state)
{
	struct frm_buf b = { 0 };
	const uint8_t *p;

	assert_int_equal(frm_ack_begin(&b, 42, FRM_RECORDS), 0);
	assert_int_equal(frm_ack_error(&b, 3, 1, REC_ERR_WRONG_DIM, "dim"), 0);
	assert_int_equal(frm_ack_error(&b, 5, 2, REC_ERR_BAD_FRAME, ""), 0);
	frm_ack_end(&b, 7, 3);
	p = b.p;
	assert_int_equal(p[0], FRM_VERSION);
	assert_int_equal(p[1], FRM_ACK);
	assert_int_equal(le_at(p + 4, 4), 42);
	assert_int_equal(le_at(p + 8, 8), b.len - 16);
	assert_int_equal(p[16], FRM_RECORDS);
	assert_int_equal(le_at(p + 20, 4), 7);
	assert_int_equal(le_at(p + 24, 4), 3);
	assert_int_equal(le_at(p + 28, 4), 2);
	/* first entry: 3, 1, code 7, "wrong_dim", "dim" */
	assert_int_equal(le_at(p + 32, 4), 3);
	assert_int_equal(le_at(p + 36, 4), 1);
	assert_int_equal(p[40], 7);
	assert_int_equal(p[41], 9);
	assert_memory_equal(p + 42, "wrong_dim", 9);
	assert_int_equal(le_at(p + 51, 2), 3);
	assert_memory_equal(p + 53, "dim", 3);
	assert_int_equal(le_at(p + 56, 4), 5);
	assert_int_equal(le_at(p + 60, 4), 2);
	assert_int_equal(p[64], 15);
	assert_int_equal(b.len, 56 + 10 + 9 + 2);
	frm_buf_free(&b);
}

static void test_other_replies(void **state)
{
	struct frm_buf b = { 0 };

	assert_int_equal(frm_put_welcome(&b, 4096, "driftd x"), 0);
	assert_int_equal(b.p[1], FRM_WELCOME);
	assert_int_equal(le_at(b.p + 16, 2), FRM_VERSION);
	assert_int_equal(le_at(b.p + 20, 8), 4096);
	assert_int_equal(le_at(b.p + 28, 2), 8);
	assert_memory_equal(b.p + 30, "driftd x", 8);
	b.len = 0;
	assert_int_equal(frm_put_error(&b, 9, FRM_ERR_OVERSIZE, false, "big"),
			 0);
	assert_int_equal(b.p[1], FRM_ERROR);
	assert_int_equal(le_at(b.p + 4, 4), 9);
	assert_int_equal(b.p[16], FRM_ERR_OVERSIZE);
	assert_int_equal(b.p[17], 0);
	assert_int_equal(le_at(b.p + 18, 2), 3);
	b.len = 0;
	assert_int_equal(frm_put_summary(&b, 10, 2), 0);
	assert_int_equal(b.p[1], FRM_SUMMARY);
	assert_int_equal(le_at(b.p + 16, 8), 10);
	assert_int_equal(le_at(b.p + 24, 8), 2);
	frm_buf_free(&b);
}

/* The wire codes are a contract: pinned here. */
static void test_reason_codes(void **state)
{
	assert_int_equal(frm_reason_code(REC_ERR_BAD_JSON), 1);
	assert_int_equal(frm_reason_code(REC_ERR_UNKNOWN_MODEL), 5);
	assert_int_equal(frm_reason_code(REC_ERR_NOT_FINITE), 8);
	assert_int_equal(frm_reason_code(REC_ERR_UNSUPPORTED), 13);
	assert_int_equal(frm_reason_code(REC_ERR_BAD_FRAME), 15);
	assert_int_equal(frm_reason_code(REC_ERR_UNKNOWN_ID), 16);
	for (int e = 1; e < REC_ERR__COUNT; e++)
		assert_int_not_equal(frm_reason_code((enum rec_err)e), 255);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_hello),
		cmocka_unit_test_setup_teardown(test_full_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_minimal_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_what_is_borrowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_layout_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_frame_span, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absurd_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
		cmocka_unit_test(test_ack_bytes),
		cmocka_unit_test(test_other_replies),
		cmocka_unit_test(test_reason_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
