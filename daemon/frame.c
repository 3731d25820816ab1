/* Binary protocol codec: bounds-checked reads from a payload, records into
 * struct record, replies into a byte buffer.  Error messages mirror the
 * NDJSON codec's where the problem is the same. */
#include "frame.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Fixed fields of a record body: role, flags, n_labels, reserved, ts,
 * label, model_len, id_len, dim, n_scores. */
#define REC_FIXED (4 + 8 + 8 + 2 + 2 + 4 + 2)
/* Of a label body: model_len, id_len, label. */
#define LABEL_FIXED (2 + 2 + 8)
#define FLAG_TS 0x01u
#define FLAG_LABEL 0x02u
#define ID_MAX 256
#define TS_MAX_S 253402300799LL	/* 9999-12-31T23:59:59Z */

struct frm_decoder {
	const uint8_t *p, *end;	/* rest of the payload */
	uint8_t type;
	uint32_t count, index;
	float *emb;
	size_t emb_cap;
	float scores[REC_MAX_SCORES];
	char *str;		/* NUL-terminated copies of this record's strings */
	size_t str_cap, str_len;
};

static const char *const frm_err_names[] = {
	[FRM_OK] = "ok",
	[FRM_ERR_VERSION] = "bad_version",
	[FRM_ERR_TYPE] = "bad_type",
	[FRM_ERR_OVERSIZE] = "oversize",
	[FRM_ERR_TRUNCATED] = "truncated",
	[FRM_ERR_MALFORMED] = "malformed",
	[FRM_ERR_AUTH] = "auth",
	[FRM_ERR_HANDSHAKE] = "handshake",
	[FRM_ERR_OVERLOADED] = "overloaded",
	[FRM_ERR_TIMEOUT] = "timeout",
};

const char *frm_err_name(enum frm_err e)
{
	return (unsigned)e < sizeof(frm_err_names) / sizeof(frm_err_names[0]) ?
		       frm_err_names[e] : "unknown";
}

/* The wire codes are fixed by docs/protocol.md; the enum may grow or be
 * reordered without changing them. */
uint8_t frm_reason_code(enum rec_err e)
{
	switch (e) {
	case REC_OK: return 0;
	case REC_ERR_BAD_JSON: return 1;
	case REC_ERR_BAD_UTF8: return 2;
	case REC_ERR_NOT_OBJECT: return 3;
	case REC_ERR_MISSING_MODEL: return 4;
	case REC_ERR_UNKNOWN_MODEL: return 5;
	case REC_ERR_MISSING_EMBEDDING: return 6;
	case REC_ERR_WRONG_DIM: return 7;
	case REC_ERR_NOT_FINITE: return 8;
	case REC_ERR_BAD_FIELD: return 9;
	case REC_ERR_OVERSIZE: return 10;
	case REC_ERR_TOO_MANY_SLICES: return 11;
	case REC_ERR_REFERENCE_FROZEN: return 12;
	case REC_ERR_UNSUPPORTED: return 13;
	case REC_ERR_OVERLOADED: return 14;
	case REC_ERR_BAD_FRAME: return 15;
	case REC_ERR_UNKNOWN_ID: return 16;
	default: return 255;
	}
}

static int fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- little-endian reads from a bounded cursor ---- */

struct cur {
	const uint8_t *p, *end;
};

static bool take(struct cur *c, size_t n, const uint8_t **out)
{
	if ((size_t)(c->end - c->p) < n)
		return false;
	*out = c->p;
	c->p += n;
	return true;
}

static bool u8(struct cur *c, uint8_t *v)
{
	const uint8_t *b;

	if (!take(c, 1, &b))
		return false;
	*v = b[0];
	return true;
}

static bool u16(struct cur *c, uint16_t *v)
{
	const uint8_t *b;

	if (!take(c, 2, &b))
		return false;
	memcpy(v, b, 2);
	*v = le16toh(*v);
	return true;
}

static bool u32(struct cur *c, uint32_t *v)
{
	const uint8_t *b;

	if (!take(c, 4, &b))
		return false;
	memcpy(v, b, 4);
	*v = le32toh(*v);
	return true;
}

static bool u64(struct cur *c, uint64_t *v)
{
	const uint8_t *b;

	if (!take(c, 8, &b))
		return false;
	memcpy(v, b, 8);
	*v = le64toh(*v);
	return true;
}

/* ---- header and handshake ---- */

void frm_header_read(const uint8_t b[FRM_HEADER_LEN], struct frm_header *h)
{
	struct cur c = { b, b + FRM_HEADER_LEN };

	u8(&c, &h->version);
	u8(&c, &h->type);
	u16(&c, &h->flags);
	u32(&c, &h->seq);
	u64(&c, &h->length);
}

enum frm_err frm_header_check(const struct frm_header *h, uint64_t max_frame,
			      char *msg, size_t msglen)
{
	if (h->version != FRM_VERSION) {
		fail(msg, msglen, "protocol version %u is not supported (this "
		     "daemon speaks version %u)", h->version, FRM_VERSION);
		return FRM_ERR_VERSION;
	}
	if (h->length > max_frame - FRM_HEADER_LEN) {
		fail(msg, msglen, "frame of %" PRIu64 " payload bytes is over "
		     "max_frame (%" PRIu64 " bytes with its header)", h->length,
		     max_frame);
		return FRM_ERR_OVERSIZE;
	}
	if (h->type != FRM_HELLO && h->type != FRM_RECORDS &&
	    h->type != FRM_LABELS) {
		fail(msg, msglen, "frame type 0x%02x is not one a client sends",
		     h->type);
		return FRM_ERR_TYPE;
	}
	if (h->flags) {
		fail(msg, msglen, "frame flags 0x%04x: no flag is defined",
		     h->flags);
		return FRM_ERR_MALFORMED;
	}
	return FRM_OK;
}

enum frm_err frm_hello_read(const uint8_t *p, size_t len,
			    struct frm_hello *out, char *msg, size_t msglen)
{
	struct cur c = { p, p + len };
	const uint8_t *tok, *name;
	uint16_t tl, nl;

	if (!u16(&c, &tl) || !take(&c, tl, &tok) || !u16(&c, &nl) ||
	    !take(&c, nl, &name) || c.p != c.end) {
		fail(msg, msglen, "HELLO payload is not u16 token length, "
		     "token, u16 name length, name");
		return FRM_ERR_MALFORMED;
	}
	if (tl > FRM_MAX_TOKEN) {
		fail(msg, msglen, "token longer than %d bytes", FRM_MAX_TOKEN);
		return FRM_ERR_MALFORMED;
	}
	out->token = (const char *)tok;
	out->token_len = tl;
	out->client = (const char *)name;
	out->client_len = nl;
	return FRM_OK;
}

/* ---- records ---- */

struct frm_decoder *frm_decoder_new(void)
{
	return calloc(1, sizeof(struct frm_decoder));
}

void frm_decoder_free(struct frm_decoder *d)
{
	if (!d)
		return;
	free(d->emb);
	free(d->str);
	free(d);
}

enum frm_err frm_begin(struct frm_decoder *d, uint8_t type, const uint8_t *p,
		       size_t len, uint32_t *count, char *msg, size_t msglen)
{
	struct cur c = { p, p + len };
	size_t min = 4 + (type == FRM_LABELS ? LABEL_FIXED : REC_FIXED);

	d->type = type;
	d->index = d->count = 0;
	d->p = d->end = NULL;
	if (!u32(&c, count)) {
		fail(msg, msglen, "payload of %zu bytes has no record count",
		     len);
		return FRM_ERR_MALFORMED;
	}
	/* Refusing here keeps an absurd count from costing one ACK entry
	 * per record that is not there. */
	if (*count > (len - 4) / min) {
		fail(msg, msglen, "%" PRIu32 " records cannot fit in %zu "
		     "bytes", *count, len - 4);
		return FRM_ERR_MALFORMED;
	}
	d->count = *count;
	d->p = c.p;
	d->end = c.end;
	return FRM_OK;
}

/* Copies a length-prefixed string into the decoder's string area, checked
 * for UTF-8 and NUL bytes. */
static enum rec_err str_field(struct frm_decoder *d, struct cur *c,
			      const char *what, const char **out, size_t *olen,
			      char *msg, size_t msglen)
{
	const uint8_t *s;
	uint16_t n;
	size_t bad;

	if (!u16(c, &n) || !take(c, n, &s)) {
		fail(msg, msglen, "%s runs past the end of the record", what);
		return REC_ERR_BAD_FRAME;
	}
	bad = utf8_invalid_at(s, n);
	if (bad < n) {
		fail(msg, msglen, "%s: invalid UTF-8 at byte %zu", what, bad);
		return REC_ERR_BAD_UTF8;
	}
	if (memchr(s, '\0', n)) {
		fail(msg, msglen, "%s contains a NUL byte", what);
		return REC_ERR_BAD_FIELD;
	}
	/* The area was sized for the whole record, so this always fits. */
	memcpy(d->str + d->str_len, s, n);
	d->str[d->str_len + n] = '\0';
	*out = d->str + d->str_len;
	*olen = n;
	d->str_len += (size_t)n + 1;
	return REC_OK;
}

/* Two floats per 64-bit word: a lane is NaN or infinite when its exponent
 * bits are all ones, i.e. when (lane & EXP) ^ EXP is zero; zero lanes are
 * found without a branch per value (the values are below 2^31, so the
 * borrow of one lane never reaches the next).  V need not be aligned. */
static bool all_finite(const void *v, uint32_t n)
{
	const uint64_t exp = 0x7f8000007f800000ULL, one = 0x0000000100000001ULL,
		       top = 0x8000000080000000ULL;
	const uint8_t *b = v;
	uint64_t w, t, bad = 0;
	uint32_t i;
	float last;

	for (i = 0; i + 2 <= n; i += 2) {
		memcpy(&w, b + (size_t)i * 4, 8);
		t = (w & exp) ^ exp;
		bad |= (t - one) & ~t & top;
	}
	if (bad || i == n)
		return !bad;
	memcpy(&last, b + (size_t)i * 4, 4);
	return isfinite(last);
}

/* REC_OK when the N floats at V (host order, any alignment) are finite;
 * otherwise names the first one that is not. */
static enum rec_err check_finite(const void *v, uint32_t n, const char *what,
				 char *msg, size_t msglen)
{
	uint32_t i;
	float x = 0;

	if (all_finite(v, n))
		return REC_OK;
	for (i = 0; i < n; i++) {
		memcpy(&x, (const uint8_t *)v + (size_t)i * 4, 4);
		if (!isfinite(x))
			break;
	}
	fail(msg, msglen, "%s[%" PRIu32 "] is %s", what, i,
	     isnan(x) ? "NaN" : "infinite");
	return REC_ERR_NOT_FINITE;
}

static bool floats_fit(struct cur *c, uint32_t n, const char *what,
		       char *msg, size_t msglen)
{
	if ((size_t)(c->end - c->p) / 4 >= n)
		return true;
	fail(msg, msglen, "%s of %" PRIu32 " values runs past the end of the "
	     "record", what, n);
	return false;
}

/* N float32 values into DST, each finite. */
static enum rec_err floats(struct cur *c, uint32_t n, float *dst,
			   const char *what, char *msg, size_t msglen)
{
	const uint8_t *b = NULL;
	uint32_t i, w;

	if (!floats_fit(c, n, what, msg, msglen))
		return REC_ERR_BAD_FRAME;
	take(c, (size_t)n * 4, &b);
	memcpy(dst, b, (size_t)n * 4);
	if (BYTE_ORDER != LITTLE_ENDIAN) {
		for (i = 0; i < n; i++) {
			memcpy(&w, dst + i, 4);
			w = le32toh(w);
			memcpy(dst + i, &w, 4);
		}
	}
	return check_finite(dst, n, what, msg, msglen);
}

/* The embedding, left where it lies in the frame on a little-endian host:
 * copying every record once more was 7% of the binary ingest loop. */
static enum rec_err embedding(struct frm_decoder *d, struct cur *c,
			      uint32_t n, struct record *r, char *msg,
			      size_t msglen)
{
	const uint8_t *b = NULL;
	enum rec_err e;

	if (BYTE_ORDER != LITTLE_ENDIAN) {
		if ((e = floats(c, n, d->emb, "embedding", msg, msglen)))
			return e;
		r->embedding = d->emb;
		return REC_OK;
	}
	if (!floats_fit(c, n, "embedding", msg, msglen))
		return REC_ERR_BAD_FRAME;
	take(c, (size_t)n * 4, &b);
	if ((e = check_finite(b, n, "embedding", msg, msglen)))
		return e;
	r->embedding = b;
	return REC_OK;
}

static int reserve(struct frm_decoder *d, size_t strings, uint32_t dim)
{
	if (strings > d->str_cap) {
		char *grown = realloc(d->str, strings);

		if (!grown)
			return -1;
		d->str = grown;
		d->str_cap = strings;
	}
	if (dim > d->emb_cap) {
		float *grown = realloc(d->emb, (size_t)dim * sizeof(float));

		if (!grown)
			return -1;
		d->emb = grown;
		d->emb_cap = dim;
	}
	d->str_len = 0;
	return 0;
}

static enum rec_err model_and_id(struct frm_decoder *d, struct cur *c,
				 struct record *r, char *msg, size_t msglen)
{
	enum rec_err e;
	size_t n;

	if ((e = str_field(d, c, "model", &r->model, &n, msg, msglen)))
		return e;
	if (n == 0) {
		fail(msg, msglen, "\"model\" (a non-empty string) is required");
		return REC_ERR_MISSING_MODEL;
	}
	if ((e = str_field(d, c, "id", &r->id, &n, msg, msglen)))
		return e;
	if (n > ID_MAX) {
		fail(msg, msglen, "id is longer than %d bytes", ID_MAX);
		return REC_ERR_BAD_FIELD;
	}
	if (n == 0)
		r->id = NULL;
	return REC_OK;
}

static enum rec_err check_label(int64_t label, char *msg, size_t msglen)
{
	if (label < 0) {
		fail(msg, msglen, "label is negative");
		return REC_ERR_BAD_FIELD;
	}
	return REC_OK;
}

static enum rec_err head_fields(struct cur *c, struct record *r,
				uint8_t *n_labels, char *msg, size_t msglen)
{
	uint8_t role = 0, flags = 0, reserved = 0;
	uint64_t ts = 0, label = 0;

	/* frm_next checked the length of these fixed fields. */
	*n_labels = 0;
	u8(c, &role);
	u8(c, &flags);
	u8(c, n_labels);
	u8(c, &reserved);
	u64(c, &ts);
	u64(c, &label);
	if (role > 1) {
		fail(msg, msglen, "role must be 0 (live) or 1 (reference), "
		     "not %u", role);
		return REC_ERR_BAD_FIELD;
	}
	r->role = role ? REC_REFERENCE : REC_LIVE;
	if ((flags & ~(FLAG_TS | FLAG_LABEL)) || reserved) {
		fail(msg, msglen, "undefined flag bits 0x%02x or reserved byte "
		     "%u set", flags & ~(FLAG_TS | FLAG_LABEL), reserved);
		return REC_ERR_BAD_FRAME;
	}
	if (*n_labels > REC_MAX_LABELS) {
		fail(msg, msglen, "slice has more than %d labels",
		     REC_MAX_LABELS);
		return REC_ERR_BAD_FIELD;
	}
	if (flags & FLAG_TS) {
		if ((int64_t)ts < 0 || (int64_t)ts / 1000000 > TS_MAX_S) {
			fail(msg, msglen, "ts is out of range");
			return REC_ERR_BAD_FIELD;
		}
		r->has_ts = true;
		r->ts_us = (int64_t)ts;
	}
	if (flags & FLAG_LABEL) {
		r->has_label = true;
		r->label = (int64_t)label;
		return check_label(r->label, msg, msglen);
	}
	return REC_OK;
}

static enum rec_err record_body(struct frm_decoder *d, struct cur *c,
				struct record *r, char *msg, size_t msglen)
{
	uint8_t n_labels = 0, i;
	uint32_t dim;
	uint16_t n_scores;
	enum rec_err e;
	size_t n;

	if ((e = head_fields(c, r, &n_labels, msg, msglen)) ||
	    (e = model_and_id(d, c, r, msg, msglen)))
		return e;
	for (i = 0; i < n_labels; i++) {
		struct rec_label *l = &r->labels[i];

		if ((e = str_field(d, c, "slice label key", &l->key, &n, msg,
				   msglen)) ||
		    (e = str_field(d, c, "slice label value", &l->value, &n,
				   msg, msglen)))
			return e;
	}
	r->n_labels = n_labels;
	if (!u32(c, &dim)) {
		fail(msg, msglen, "record ends before its dim");
		return REC_ERR_BAD_FRAME;
	}
	if (dim > d->emb_cap) {
		fail(msg, msglen, "embedding of %" PRIu32 " values runs past "
		     "the end of the record", dim);
		return REC_ERR_BAD_FRAME;
	}
	if (dim) {
		if ((e = embedding(d, c, dim, r, msg, msglen)))
			return e;
		r->dim = dim;
	}
	if (!u16(c, &n_scores)) {
		fail(msg, msglen, "record ends before its score count");
		return REC_ERR_BAD_FRAME;
	}
	if (n_scores > REC_MAX_SCORES) {
		fail(msg, msglen, "scores must hold 1..%d numbers, not %u",
		     REC_MAX_SCORES, n_scores);
		return REC_ERR_BAD_FIELD;
	}
	if (n_scores) {
		if ((e = floats(c, n_scores, d->scores, "scores", msg, msglen)))
			return e;
		r->scores = d->scores;
		r->n_scores = n_scores;
	}
	return REC_OK;
}

static enum rec_err label_body(struct frm_decoder *d, struct cur *c,
			       struct record *r, char *msg, size_t msglen)
{
	uint64_t label;
	enum rec_err e;

	if ((e = model_and_id(d, c, r, msg, msglen)))
		return e;
	if (!u64(c, &label)) {
		fail(msg, msglen, "label entry ends before its label");
		return REC_ERR_BAD_FRAME;
	}
	if (!r->id) {
		fail(msg, msglen, "a label needs the id of its record");
		return REC_ERR_BAD_FIELD;
	}
	r->has_label = true;
	r->label = (int64_t)label;
	return check_label(r->label, msg, msglen);
}

/* The rest of the frame cannot be split into records any more. */
static bool refuse_rest(struct frm_decoder *d, struct frm_item *it)
{
	it->span = d->count - d->index;
	it->err = REC_ERR_BAD_FRAME;
	d->index = d->count;
	return true;
}

bool frm_next(struct frm_decoder *d, struct frm_item *it, char *msg,
	      size_t msglen)
{
	struct cur c = { d->p, d->end }, body;
	size_t min = d->type == FRM_LABELS ? LABEL_FIXED : REC_FIXED;
	const uint8_t *b;
	uint32_t len;

	if (d->index >= d->count)
		return false;
	/* Not the label slots: readers stop at n_labels, and clearing all
	 * sixteen was most of this function in the ingest profile. */
	memset(it, 0, offsetof(struct frm_item, rec) +
			      offsetof(struct record, labels));
	it->first = d->index;
	it->span = 1;
	if (!u32(&c, &len) || !take(&c, len, &b)) {
		fail(msg, msglen, "record %" PRIu32 " runs past the end of the "
		     "frame; it and the %" PRIu32 " after it were not read",
		     d->index, d->count - d->index - 1);
		return refuse_rest(d, it);
	}
	d->p = c.p;
	d->index++;
	if (len < min) {
		fail(msg, msglen, "record of %" PRIu32 " bytes is shorter than "
		     "its fixed fields (%zu)", len, min);
		it->err = REC_ERR_BAD_FRAME;
		return true;
	}
	/* Strings and floats of one record never exceed its length. */
	if (reserve(d, len + 2 * REC_MAX_LABELS + 2, len / 4) < 0) {
		fail(msg, msglen, "record of %" PRIu32 " bytes: out of memory",
		     len);
		it->err = REC_ERR_OVERSIZE;
		return true;
	}
	body = (struct cur){ b, b + len };
	it->err = d->type == FRM_LABELS ?
			  label_body(d, &body, &it->rec, msg, msglen) :
			  record_body(d, &body, &it->rec, msg, msglen);
	if (it->err == REC_OK && body.p != body.end) {
		fail(msg, msglen, "record has %zu bytes after its last field",
		     (size_t)(body.end - body.p));
		it->err = REC_ERR_BAD_FRAME;
	}
	return true;
}

/* ---- replies ---- */

void frm_buf_free(struct frm_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int grow(struct frm_buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (b->len + more <= b->cap)
		return 0;
	while (cap < b->len + more)
		cap *= 2;
	if (!(p = realloc(b->p, cap)))
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void put(struct frm_buf *b, const void *v, size_t n)
{
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

static void put8(struct frm_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct frm_buf *b, uint16_t v)
{
	v = htole16(v);
	put(b, &v, 2);
}

static void put32(struct frm_buf *b, uint32_t v)
{
	v = htole32(v);
	put(b, &v, 4);
}

static void put64(struct frm_buf *b, uint64_t v)
{
	v = htole64(v);
	put(b, &v, 8);
}

static void put_header(struct frm_buf *b, uint8_t type, uint32_t seq,
		       uint64_t length)
{
	put8(b, FRM_VERSION);
	put8(b, type);
	put16(b, 0);
	put32(b, seq);
	put64(b, length);
}

/* A u16-length string, cut at 65535 bytes. */
static size_t str_len16(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > FRM_MAX_STRING ? FRM_MAX_STRING : n;
}

int frm_put_welcome(struct frm_buf *b, uint64_t max_frame,
		    const char *server)
{
	size_t n = str_len16(server), len = 2 + 2 + 8 + 2 + n;

	if (grow(b, FRM_HEADER_LEN + len) < 0)
		return -ENOMEM;
	put_header(b, FRM_WELCOME, 0, len);
	put16(b, FRM_VERSION);
	put16(b, 0);
	put64(b, max_frame);
	put16(b, (uint16_t)n);
	put(b, server, n);
	return 0;
}

int frm_put_error(struct frm_buf *b, uint32_t seq, enum frm_err e,
		  bool fatal, const char *msg)
{
	size_t n = str_len16(msg), len = 1 + 1 + 2 + n;

	if (grow(b, FRM_HEADER_LEN + len) < 0)
		return -ENOMEM;
	put_header(b, FRM_ERROR, seq, len);
	put8(b, (uint8_t)e);
	put8(b, fatal);
	put16(b, (uint16_t)n);
	put(b, msg, n);
	return 0;
}

int frm_put_summary(struct frm_buf *b, uint64_t accepted, uint64_t rejected)
{
	if (grow(b, FRM_HEADER_LEN + 16) < 0)
		return -ENOMEM;
	put_header(b, FRM_SUMMARY, 0, 16);
	put64(b, accepted);
	put64(b, rejected);
	return 0;
}

int frm_ack_begin(struct frm_buf *b, uint32_t seq, uint8_t type)
{
	if (grow(b, FRM_HEADER_LEN + 16) < 0)
		return -ENOMEM;
	b->ack_at = b->len;
	put_header(b, FRM_ACK, seq, 0);
	put8(b, type);
	put8(b, 0);
	put16(b, 0);
	put32(b, 0);	/* accepted, rejected, entries: filled by ack_end */
	put32(b, 0);
	put32(b, 0);
	return 0;
}

int frm_ack_error(struct frm_buf *b, uint32_t first, uint32_t span,
		  enum rec_err e, const char *msg)
{
	const char *name = rec_err_name(e);
	size_t nl = strlen(name), ml = str_len16(msg);
	uint32_t entries;

	if (nl > 255)
		nl = 255;
	if (grow(b, 4 + 4 + 1 + 1 + nl + 2 + ml) < 0)
		return -ENOMEM;
	put32(b, first);
	put32(b, span);
	put8(b, frm_reason_code(e));
	put8(b, (uint8_t)nl);
	put(b, name, nl);
	put16(b, (uint16_t)ml);
	put(b, msg, ml);
	memcpy(&entries, b->p + b->ack_at + FRM_HEADER_LEN + 12, 4);
	entries = htole32(le32toh(entries) + 1);
	memcpy(b->p + b->ack_at + FRM_HEADER_LEN + 12, &entries, 4);
	return 0;
}

void frm_ack_end(struct frm_buf *b, uint32_t accepted, uint32_t rejected)
{
	uint8_t *h = b->p + b->ack_at;
	uint64_t len = htole64(b->len - b->ack_at - FRM_HEADER_LEN);

	accepted = htole32(accepted);
	rejected = htole32(rejected);
	memcpy(h + 8, &len, 8);
	memcpy(h + FRM_HEADER_LEN + 4, &accepted, 4);
	memcpy(h + FRM_HEADER_LEN + 8, &rejected, 4);
}
