/* NDJSON record codec on json-c.  Lenient about JSON spelling (json-c
 * accepts NaN and Infinity so that we can name them precisely), strict about
 * UTF-8, types and finiteness. */
#include "ndjson.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

struct ndj_parser {
	struct json_tokener *tok;
	json_object *root;	/* kept alive: the record borrows its strings */
	float *emb;
	size_t emb_cap;
	float scores[REC_MAX_SCORES];
	char *str;		/* fast path: NUL-terminated string copies */
	size_t str_cap, str_len;
	bool slow_only;
};

static const char *const err_names[REC_ERR__COUNT] = {
	[REC_OK] = "ok",
	[REC_ERR_BAD_JSON] = "bad_json",
	[REC_ERR_BAD_UTF8] = "bad_utf8",
	[REC_ERR_NOT_OBJECT] = "not_object",
	[REC_ERR_MISSING_MODEL] = "missing_model",
	[REC_ERR_UNKNOWN_MODEL] = "unknown_model",
	[REC_ERR_MISSING_EMBEDDING] = "missing_embedding",
	[REC_ERR_WRONG_DIM] = "wrong_dim",
	[REC_ERR_NOT_FINITE] = "not_finite",
	[REC_ERR_BAD_FIELD] = "bad_field",
	[REC_ERR_OVERSIZE] = "oversize",
	[REC_ERR_TOO_MANY_SLICES] = "too_many_slices",
	[REC_ERR_REFERENCE_FROZEN] = "reference_frozen",
	[REC_ERR_UNSUPPORTED] = "unsupported",
	[REC_ERR_OVERLOADED] = "overloaded",
	[REC_ERR_BAD_FRAME] = "bad_frame",
	[REC_ERR_UNKNOWN_ID] = "unknown_id",
};

const char *rec_err_name(enum rec_err e)
{
	return (unsigned)e < REC_ERR__COUNT ? err_names[e] : "unknown";
}

struct ndj_parser *ndj_new(void)
{
	struct ndj_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->tok = json_tokener_new_ex(8);
	if (!p->tok) {
		free(p);
		return NULL;
	}
	return p;
}

void ndj_free(struct ndj_parser *p)
{
	if (!p)
		return;
	json_object_put(p->root);
	json_tokener_free(p->tok);
	free(p->emb);
	free(p->str);
	free(p);
}

void ndj_set_fast(struct ndj_parser *p, bool on)
{
	p->slow_only = !on;
}

static enum rec_err fail(enum rec_err e, char *msg, size_t msglen,
			 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum rec_err fail(enum rec_err e, char *msg, size_t msglen,
			 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return e;
}

static bool is_number(json_object *o)
{
	json_type t = json_object_get_type(o);

	return t == json_type_double || t == json_type_int;
}

/* Converts a JSON number to a finite float32, refusing NaN, ±Inf and
 * values that overflow float32. */
static enum rec_err to_float(json_object *o, const char *field, size_t idx,
			     float *out, char *msg, size_t msglen)
{
	double v;

	if (!is_number(o))
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "%s[%zu] is not a number", field, idx);
	v = json_object_get_double(o);
	*out = (float)v;
	if (!isfinite(v) || !isfinite(*out))
		return fail(REC_ERR_NOT_FINITE, msg, msglen,
			    "%s[%zu] is %s", field, idx,
			    isnan(v) ? "NaN" : "infinite or beyond float32");
	return REC_OK;
}

static enum rec_err parse_embedding(struct ndj_parser *p, json_object *arr,
				    struct record *r, char *msg, size_t msglen)
{
	size_t n, i;
	enum rec_err e;

	if (json_object_get_type(arr) != json_type_array)
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "embedding is not an array");
	n = json_object_array_length(arr);
	if (n == 0)
		return fail(REC_ERR_WRONG_DIM, msg, msglen, "embedding is empty");
	if (n > p->emb_cap) {
		float *grown = realloc(p->emb, n * sizeof(float));

		if (!grown)
			return fail(REC_ERR_OVERSIZE, msg, msglen,
				    "embedding of %zu values: out of memory", n);
		p->emb = grown;
		p->emb_cap = n;
	}
	for (i = 0; i < n; i++) {
		e = to_float(json_object_array_get_idx(arr, i), "embedding", i,
			     &p->emb[i], msg, msglen);
		if (e != REC_OK)
			return e;
	}
	r->embedding = p->emb;
	r->dim = (unsigned)n;
	return REC_OK;
}

/* "scores": one number (binary) or an array of class probabilities. */
static enum rec_err parse_scores(struct ndj_parser *p, json_object *o,
				 struct record *r, char *msg, size_t msglen)
{
	size_t n, i;
	enum rec_err e;

	if (is_number(o)) {
		e = to_float(o, "scores", 0, &p->scores[0], msg, msglen);
		n = 1;
	} else if (json_object_get_type(o) == json_type_array) {
		n = json_object_array_length(o);
		if (n == 0 || n > REC_MAX_SCORES)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "scores must hold 1..%d numbers, not %zu",
				    REC_MAX_SCORES, n);
		e = REC_OK;
		for (i = 0; i < n && e == REC_OK; i++)
			e = to_float(json_object_array_get_idx(o, i), "scores",
				     i, &p->scores[i], msg, msglen);
	} else {
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "scores is neither a number nor an array");
	}
	if (e != REC_OK)
		return e;
	r->scores = p->scores;
	r->n_scores = (unsigned)n;
	return REC_OK;
}

static enum rec_err parse_slice(json_object *o, struct record *r,
				char *msg, size_t msglen)
{
	if (json_object_get_type(o) != json_type_object)
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "slice is not an object of string values");
	json_object_object_foreach(o, key, val) {
		if (json_object_get_type(val) != json_type_string)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "slice label \"%.64s\" is not a string", key);
		if (r->n_labels == REC_MAX_LABELS)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "slice has more than %d labels",
				    REC_MAX_LABELS);
		r->labels[r->n_labels].key = key;
		r->labels[r->n_labels].value = json_object_get_string(val);
		r->n_labels++;
	}
	return REC_OK;
}

static bool two_digits(const char *s, int *v)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return false;
	*v = (s[0] - '0') * 10 + (s[1] - '0');
	return true;
}

/* timegm normalises 2026-02-31 to March 3rd; a real date survives the
 * round trip unchanged. */
static bool valid_date(struct tm *tm, time_t *t)
{
	struct tm back;

	*t = timegm(tm);
	return gmtime_r(t, &back) && back.tm_mday == tm->tm_mday &&
	       back.tm_mon == tm->tm_mon && back.tm_year == tm->tm_year;
}

static bool ts_from_seconds(double v, int64_t *us)
{
	if (!isfinite(v) || v < 0 || v > 253402300799.0)
		return false;
	*us = (int64_t)(v * 1e6);
	return true;
}

/* RFC 3339: "2026-11-29T12:00:00Z", fraction and offset optional. */
static bool ts_from_text(const char *s, int64_t *us)
{
	struct tm tm;
	const char *rest;
	int64_t frac_us = 0;
	int off = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return false;
	if (*rest == '.') {
		/* Digits, not strtod: 0.000249 must stay 249 µs exactly. */
		int digits = 0;

		for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
			if (digits < 6)
				frac_us = frac_us * 10 + (*rest - '0');
		if (digits == 0)
			return false;
		for (; digits < 6; digits++)
			frac_us *= 10;
	}
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int hh, mm;

		if (!two_digits(rest + 1, &hh) || rest[3] != ':' ||
		    !two_digits(rest + 4, &mm) || hh > 23 || mm > 59)
			return false;
		off = (hh * 60 + mm) * 60 * (*rest == '-' ? -1 : 1);
		rest += 6;
	} else {
		return false;
	}
	if (*rest != '\0' || !valid_date(&tm, &t) || t < 0)
		return false;
	*us = ((int64_t)t - off) * 1000000 + frac_us;
	return true;
}

/* RFC 3339 text or a number of unix seconds. */
static enum rec_err parse_ts(json_object *o, int64_t *us, char *msg,
			     size_t msglen)
{
	if (is_number(o)) {
		if (!ts_from_seconds(json_object_get_double(o), us))
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "ts is out of range");
		return REC_OK;
	}
	if (json_object_get_type(o) == json_type_string &&
	    ts_from_text(json_object_get_string(o), us))
		return REC_OK;
	return fail(REC_ERR_BAD_FIELD, msg, msglen,
		    "ts is not RFC 3339 (2026-11-29T12:00:00Z) nor unix seconds");
}

static enum rec_err parse_id(json_object *o,
			     struct record *r, char *msg, size_t msglen)
{
	if (json_object_get_type(o) == json_type_string) {
		r->id = json_object_get_string(o);
		if (json_object_get_string_len(o) > 256)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "id is longer than 256 bytes");
		return REC_OK;
	}
	if (json_object_get_type(o) == json_type_int) {
		/* json-c's own rendering keeps ids beyond int64 intact. */
		r->id = json_object_get_string(o);
		return REC_OK;
	}
	return fail(REC_ERR_BAD_FIELD, msg, msglen,
		    "id is neither a string nor an integer");
}

static enum rec_err parse_label(json_object *o, struct record *r, char *msg,
				size_t msglen)
{
	json_type t = json_object_get_type(o);

	if (t == json_type_boolean) {
		r->label = json_object_get_boolean(o);
	} else if (t == json_type_int) {
		r->label = json_object_get_int64(o);
	} else if (t == json_type_double) {
		double v = json_object_get_double(o);

		if (v != floor(v) || fabs(v) > 1e15)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "label is not an integer class");
		r->label = (int64_t)v;
	} else {
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "label is not an integer class");
	}
	if (r->label < 0)
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "label is negative");
	r->has_label = true;
	return REC_OK;
}

static enum rec_err parse_role(json_object *o, struct record *r, char *msg,
			       size_t msglen)
{
	const char *s = json_object_get_string(o);

	if (json_object_get_type(o) == json_type_string && !strcmp(s, "live"))
		r->role = REC_LIVE;
	else if (json_object_get_type(o) == json_type_string &&
		 !strcmp(s, "reference"))
		r->role = REC_REFERENCE;
	else
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "role must be \"live\" or \"reference\"");
	return REC_OK;
}

/* True when the line holds a \u0000 escape (not an escaped backslash
 * followed by "u0000"): struct record carries C strings, and a NUL would
 * silently cut a model name, slice label or id short. */
static bool has_nul_escape(const char *line, size_t len)
{
	const char *p = line, *end = line + len, *hit;
	size_t run;

	if (!memchr(line, '\\', len))
		return false;
	while ((hit = memmem(p, (size_t)(end - p), "u0000", 5))) {
		for (run = 0; hit - run > line && hit[-1 - (ptrdiff_t)run] == '\\';
		     run++)
			;
		if (run % 2 == 1)
			return true;
		p = hit + 5;
	}
	return false;
}

static char first_char(const char *line, size_t len)
{
	size_t i = 0;

	/* JSON's whitespace, as the fast path skips it (no '\n' in a line). */
	while (i < len &&
	       (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	return i < len ? line[i] : '\0';
}

/* Error path only: tells JSON that is not an object from text that is not
 * JSON.  json-c needs the terminating NUL to end a bare scalar ("42"), so
 * the line is parsed from a terminated copy. */
static enum rec_err not_an_object(struct ndj_parser *p, const char *line,
				  size_t len, char *msg, size_t msglen)
{
	char *copy = strndup(line, len);
	enum json_tokener_error jerr = json_tokener_error_parse_unexpected;
	json_object *o = NULL;

	if (copy) {
		json_tokener_reset(p->tok);
		o = json_tokener_parse_ex(p->tok, copy, (int)len + 1);
		jerr = json_tokener_get_error(p->tok);
		json_object_put(o);
		free(copy);
	}
	if (jerr == json_tokener_success)
		return fail(REC_ERR_NOT_OBJECT, msg, msglen,
			    "a record must be a JSON object");
	return fail(REC_ERR_BAD_JSON, msg, msglen, "not JSON: %s",
		    json_tokener_error_desc(jerr));
}

static enum rec_err tokenize(struct ndj_parser *p, const char *line,
			     size_t len, char *msg, size_t msglen)
{
	enum json_tokener_error jerr;
	size_t end;

	json_object_put(p->root);
	p->root = NULL;
	if (first_char(line, len) != '{')
		return not_an_object(p, line, len, msg, msglen);
	json_tokener_reset(p->tok);
	p->root = json_tokener_parse_ex(p->tok, line, (int)len);
	jerr = json_tokener_get_error(p->tok);
	if (!p->root) {
		return fail(REC_ERR_BAD_JSON, msg, msglen,
			    "not JSON: %s at byte %zu",
			    jerr == json_tokener_continue ?
				    "unexpected end of line" :
				    json_tokener_error_desc(jerr),
			    json_tokener_get_parse_end(p->tok));
	}
	for (end = json_tokener_get_parse_end(p->tok); end < len; end++)
		if (line[end] != ' ' && line[end] != '\t' && line[end] != '\r')
			return fail(REC_ERR_BAD_JSON, msg, msglen,
				    "not JSON: trailing characters at byte %zu",
				    end);
	if (json_object_get_type(p->root) != json_type_object)
		return fail(REC_ERR_NOT_OBJECT, msg, msglen,
			    "a record must be a JSON object");
	return REC_OK;
}

/* ---- fast path ----
 *
 * json-c builds an object per number, which makes a 768-value embedding
 * cost more than the rest of the daemon's work on the record.  This path
 * reads the common shape of a record directly: strict JSON, strings
 * without escapes, the known fields plus skipped unknown ones.  Whenever
 * anything is unusual it gives up and the json-c path above decides, so
 * errors and their messages come from one place; whatever it accepts,
 * the json-c path accepts with the same record (tests/fuzz/fuzz_ndjson.c
 * checks this by parsing every input both ways). */

#define FAST_MAX_DEPTH 4

struct fast {
	const char *p, *end;
	struct ndj_parser *np;
};

static const double pow10_exact[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static void fast_ws(struct fast *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' ||
				 *f->p == '\r'))
		f->p++;
}

static bool fast_char(struct fast *f, char c)
{
	fast_ws(f);
	if (f->p < f->end && *f->p == c) {
		f->p++;
		return true;
	}
	return false;
}

/* A string without escapes or control characters (quotes excluded). */
static bool fast_string(struct fast *f, const char **s, size_t *n)
{
	const char *q;

	if (!fast_char(f, '"'))
		return false;
	for (q = f->p; q < f->end && *q != '"'; q++)
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return false;
	if (q == f->end)
		return false;
	*s = f->p;
	*n = (size_t)(q - f->p);
	f->p = q + 1;
	return true;
}

/* A NUL-terminated copy in the parser; the area holds the whole line. */
static const char *fast_keep(struct fast *f, const char *s, size_t n)
{
	char *d = f->np->str + f->np->str_len;

	memcpy(d, s, n);
	d[n] = '\0';
	f->np->str_len += n + 1;
	return d;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* strtod on a copy, for the numbers the exact shortcut cannot take. */
static bool fast_strtod(const char *s, size_t n, double *out)
{
	char buf[64];

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, NULL);
	return true;
}

static const uint64_t pow10_u64[] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
	1000000000, 10000000000, 100000000000, 1000000000000, 10000000000000,
	100000000000000, 1000000000000000, 10000000000000000,
	100000000000000000, 1000000000000000000,
};

/* Digits from P, at most up to END: returns the count, and their value in
 * *V (meaningful up to 19 digits), read in the same pass. */
static size_t digit_run(const char *p, const char *end, uint64_t *v)
{
	const char *q = p;
	uint64_t acc = 0;

	while (q < end && is_digit(*q))
		acc = acc * 10 + (uint64_t)(*q++ - '0');
	*v = acc;
	return (size_t)(q - p);
}

/* A strict JSON number, valued exactly as json-c values it: integers
 * through int64, others through strtod.  With at most 19 significant
 * digits below 2^53 and a power of ten up to 22, one IEEE multiply or
 * divide is correctly rounded, so it equals strtod (Clinger). */
static bool fast_number(struct fast *f, double *out, bool *integral)
{
	const char *p, *start, *ip, *end = f->end;
	size_t in, fn = 0;
	uint64_t m = 0, iv, fv = 0;
	int exp10, e = 0, esign = 1;
	bool neg;

	fast_ws(f);
	p = start = f->p;
	neg = p < end && *p == '-';
	ip = p += neg;
	in = digit_run(p, end, &iv);
	if (in == 0 || (in > 1 && *ip == '0'))
		return false;
	p += in;
	*integral = true;
	if (p < end && *p == '.') {
		*integral = false;
		++p;
		if ((fn = digit_run(p, end, &fv)) == 0)
			return false;
		p += fn;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*integral = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			esign = *p++ == '-' ? -1 : 1;
		if (p == end || !is_digit(*p))
			return false;
		for (; p < end && is_digit(*p); p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
	}
	f->p = p;
	if (in + fn > 19)
		return !*integral &&
		       fast_strtod(start, (size_t)(p - start), out);
	/* At most 19 digits: m < 10^19 fits. */
	m = iv * pow10_u64[fn] + fv;
	if (*integral) {
		/* Beyond 18 digits json-c leaves int64; "-0" is its int 0. */
		if (in > 18 || (neg && m == 0))
			return false;
		*out = (double)(neg ? -(int64_t)m : (int64_t)m);
		return true;
	}
	exp10 = esign * e - (int)fn;
	if (m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
		double v = (double)m;

		v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
		*out = neg ? -v : v;
		return true;
	}
	return fast_strtod(start, (size_t)(p - start), out);
}

static bool fast_float(struct fast *f, float *out)
{
	double v;
	bool integral;

	if (!fast_number(f, &v, &integral))
		return false;
	*out = (float)v;
	return isfinite(v) && isfinite(*out);
}

/* The shape of nearly every embedding value, "-0.123456": an optional
 * minus, integer digits without a leading zero, an optional fraction, no
 * exponent, at most 18 digits in all, before END.  Returns the position
 * after it with *OUT set as fast_number + fast_float would set it, or
 * NULL for anything else (they then read the value).  Kept apart from
 * fast_number so that the loop over an embedding runs on locals alone. */
static const char *plain_decimal(const char *p, const char *end, float *out)
{
	const char *q = p + (*p == '-'), *ip = q, *fp;
	uint64_t m = 0;
	size_t in, fn = 0;
	double v;

	while (q < end && is_digit(*q))
		m = m * 10 + (uint64_t)(*q++ - '0');
	in = (size_t)(q - ip);
	if (in == 0 || (in > 1 && *ip == '0'))
		return NULL;
	if (q < end && *q == '.') {
		fp = ++q;
		while (q < end && is_digit(*q))
			m = m * 10 + (uint64_t)(*q++ - '0');
		fn = (size_t)(q - fp);
		if (fn == 0)
			return NULL;
	} else if (*p == '-' && m == 0) {
		return NULL;	/* "-0": json-c's integer 0 */
	}
	if (in + fn > 18 || (q < end && (*q == 'e' || *q == 'E')))
		return NULL;
	/* Below 10^18 < 2^63; exact as a double up to 2^53 (Clinger). */
	if (m > (UINT64_C(1) << 53))
		return NULL;
	v = (double)m / pow10_exact[fn];
	*out = (float)(*p == '-' ? -v : v);
	return q;
}

/* A non-empty array of numbers into the parser's embedding buffer. */
static bool fast_embedding(struct fast *f, struct record *r)
{
	struct ndj_parser *p = f->np;
	const char *q;
	size_t n = 0;

	if (!fast_char(f, '['))
		return false;
	do {
		if (n == p->emb_cap) {
			size_t cap = p->emb_cap ? p->emb_cap * 2 : 1024;
			float *grown = realloc(p->emb, cap * sizeof(float));

			if (!grown)
				return false;
			p->emb = grown;
			p->emb_cap = cap;
		}
		q = f->p < f->end ? plain_decimal(f->p, f->end, &p->emb[n]) :
				    NULL;
		if (q)
			f->p = q;
		else if (!fast_float(f, &p->emb[n]))
			return false;
		n++;
	} while (fast_char(f, ','));
	if (!fast_char(f, ']'))
		return false;
	r->embedding = p->emb;
	r->dim = (unsigned)n;
	return true;
}

static bool fast_scores(struct fast *f, struct record *r)
{
	struct ndj_parser *p = f->np;
	size_t n = 0;

	fast_ws(f);
	if (f->p < f->end && *f->p != '[') {
		if (!fast_float(f, &p->scores[0]))
			return false;
		n = 1;
	} else {
		if (!fast_char(f, '['))
			return false;
		do {
			if (n == REC_MAX_SCORES ||
			    !fast_float(f, &p->scores[n++]))
				return false;
		} while (fast_char(f, ','));
		if (!fast_char(f, ']'))
			return false;
	}
	r->scores = p->scores;
	r->n_scores = (unsigned)n;
	return true;
}

static bool fast_slice(struct fast *f, struct record *r)
{
	const char *k, *v;
	size_t kn, vn, i;

	if (!fast_char(f, '{'))
		return false;
	if (fast_char(f, '}'))
		return true;
	do {
		if (r->n_labels == REC_MAX_LABELS || !fast_string(f, &k, &kn) ||
		    !fast_char(f, ':') || !fast_string(f, &v, &vn))
			return false;
		k = fast_keep(f, k, kn);
		for (i = 0; i < r->n_labels; i++)
			if (!strcmp(r->labels[i].key, k))
				return false;	/* json-c keeps the last */
		r->labels[r->n_labels].key = k;
		r->labels[r->n_labels++].value = fast_keep(f, v, vn);
	} while (fast_char(f, ','));
	return fast_char(f, '}');
}

static bool fast_literal(struct fast *f, const char *word)
{
	size_t n = strlen(word);

	fast_ws(f);
	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n))
		return false;
	f->p += n;
	return true;
}

/* Any JSON value of an unknown field, checked and skipped. */
static bool fast_skip(struct fast *f, int depth)
{
	const char *s;
	size_t n;
	double v;
	bool integral;

	fast_ws(f);
	if (f->p == f->end)
		return false;
	switch (*f->p) {
	case '"':
		return fast_string(f, &s, &n);
	case '{':
		if (depth >= FAST_MAX_DEPTH)
			return false;
		f->p++;
		if (fast_char(f, '}'))
			return true;
		do {
			if (!fast_string(f, &s, &n) || !fast_char(f, ':') ||
			    !fast_skip(f, depth + 1))
				return false;
		} while (fast_char(f, ','));
		return fast_char(f, '}');
	case '[':
		if (depth >= FAST_MAX_DEPTH)
			return false;
		f->p++;
		if (fast_char(f, ']'))
			return true;
		do {
			if (!fast_skip(f, depth + 1))
				return false;
		} while (fast_char(f, ','));
		return fast_char(f, ']');
	case 't':
		return fast_literal(f, "true");
	case 'f':
		return fast_literal(f, "false");
	case 'n':
		return fast_literal(f, "null");
	default:
		return fast_number(f, &v, &integral);
	}
}

static bool fast_label(struct fast *f, struct record *r)
{
	double v;
	bool integral;

	if (fast_literal(f, "true") || fast_literal(f, "false")) {
		r->label = f->p[-1] == 'e' && f->p[-2] == 'u';
	} else {
		if (!fast_number(f, &v, &integral) || !integral || v < 0 ||
		    v > 1e15)
			return false;
		r->label = (int64_t)v;
	}
	r->has_label = true;
	return true;
}

static bool fast_ts(struct fast *f, struct record *r)
{
	const char *s;
	size_t n;
	double v;
	bool integral;

	fast_ws(f);
	if (f->p < f->end && *f->p == '"') {
		if (!fast_string(f, &s, &n) ||
		    !ts_from_text(fast_keep(f, s, n), &r->ts_us))
			return false;
	} else if (!fast_number(f, &v, &integral) ||
		   !ts_from_seconds(v, &r->ts_us)) {
		return false;
	}
	r->has_ts = true;
	return true;
}

enum fast_field { F_MODEL, F_ID, F_EMBEDDING, F_SCORES, F_SLICE, F_TS,
		  F_LABEL, F_ROLE, F_OTHER };

static enum fast_field field_of(const char *k, size_t n)
{
	static const char *const names[] = { "model", "id", "embedding",
		"scores", "slice", "ts", "label", "role" };
	unsigned i;

	for (i = 0; i < F_OTHER; i++)
		if (strlen(names[i]) == n && !memcmp(names[i], k, n))
			return (enum fast_field)i;
	return F_OTHER;
}

static bool fast_value(struct fast *f, enum fast_field field,
		       struct record *r)
{
	const char *s;
	size_t n;

	switch (field) {
	case F_MODEL:
		if (!fast_string(f, &s, &n) || n == 0)
			return false;
		r->model = fast_keep(f, s, n);
		return true;
	case F_ID:
		if (!fast_string(f, &s, &n) || n > 256)
			return false;
		r->id = fast_keep(f, s, n);
		return true;
	case F_EMBEDDING:
		return fast_embedding(f, r);
	case F_SCORES:
		return fast_scores(f, r);
	case F_SLICE:
		return fast_slice(f, r);
	case F_TS:
		return fast_ts(f, r);
	case F_LABEL:
		return fast_label(f, r);
	case F_ROLE:
		if (!fast_string(f, &s, &n))
			return false;
		if (n == 4 && !memcmp(s, "live", 4))
			r->role = REC_LIVE;
		else if (n == 9 && !memcmp(s, "reference", 9))
			r->role = REC_REFERENCE;
		else
			return false;
		return true;
	default:
		return fast_skip(f, 1);
	}
}

/* True with *r filled when the line is a record this path fully reads. */
static bool fast_parse(struct ndj_parser *p, const char *line, size_t len,
		       struct record *r)
{
	struct fast f = { line, line + len, p };
	unsigned seen = 0;
	enum fast_field field;
	const char *k;
	size_t kn;

	if (len + 1 > p->str_cap) {
		char *grown = realloc(p->str, len + 1);

		if (!grown)
			return false;
		p->str = grown;
		p->str_cap = len + 1;
	}
	p->str_len = 0;
	if (!fast_char(&f, '{'))
		return false;
	do {
		if (!fast_string(&f, &k, &kn) || !fast_char(&f, ':'))
			return false;
		field = field_of(k, kn);
		if (field != F_OTHER) {
			if (seen & (1u << field))
				return false;	/* json-c keeps the last */
			seen |= 1u << field;
		}
		if (!fast_value(&f, field, r))
			return false;
	} while (fast_char(&f, ','));
	if (!fast_char(&f, '}') || !r->model)
		return false;
	fast_ws(&f);
	return f.p == f.end;
}

enum rec_err ndj_parse(struct ndj_parser *p, const char *line, size_t len,
		       struct record *r, char *msg, size_t msglen)
{
	json_object *v;
	enum rec_err e;
	size_t bad;

	memset(r, 0, sizeof(*r));
	if (len > INT32_MAX)
		return fail(REC_ERR_OVERSIZE, msg, msglen, "line too long");
	bad = utf8_invalid_at((const unsigned char *)line, len);
	if (bad < len)
		return fail(REC_ERR_BAD_UTF8, msg, msglen,
			    "invalid UTF-8 at byte %zu", bad);
	if (has_nul_escape(line, len))
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "strings must not contain \\u0000");
	if (!p->slow_only && fast_parse(p, line, len, r))
		return REC_OK;
	memset(r, 0, sizeof(*r));
	e = tokenize(p, line, len, msg, msglen);
	if (e != REC_OK)
		return e;
	/* id first, so every later error can name the record. */
	if (json_object_object_get_ex(p->root, "id", &v) &&
	    (e = parse_id(v, r, msg, msglen)) != REC_OK)
		return e;
	if (!json_object_object_get_ex(p->root, "model", &v) ||
	    json_object_get_type(v) != json_type_string ||
	    json_object_get_string_len(v) == 0)
		return fail(REC_ERR_MISSING_MODEL, msg, msglen,
			    "\"model\" (a non-empty string) is required");
	r->model = json_object_get_string(v);
	if (json_object_object_get_ex(p->root, "embedding", &v) &&
	    (e = parse_embedding(p, v, r, msg, msglen)) != REC_OK)
		return e;
	if (json_object_object_get_ex(p->root, "scores", &v) &&
	    (e = parse_scores(p, v, r, msg, msglen)) != REC_OK)
		return e;
	if (json_object_object_get_ex(p->root, "slice", &v) &&
	    (e = parse_slice(v, r, msg, msglen)) != REC_OK)
		return e;
	if (json_object_object_get_ex(p->root, "ts", &v)) {
		if ((e = parse_ts(v, &r->ts_us, msg, msglen)) != REC_OK)
			return e;
		r->has_ts = true;
	}
	if (json_object_object_get_ex(p->root, "label", &v) &&
	    (e = parse_label(v, r, msg, msglen)) != REC_OK)
		return e;
	if (json_object_object_get_ex(p->root, "role", &v) &&
	    (e = parse_role(v, r, msg, msglen)) != REC_OK)
		return e;
	return REC_OK;
}
