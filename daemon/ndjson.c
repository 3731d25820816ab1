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

struct ndj_parser {
	struct json_tokener *tok;
	json_object *root;	/* kept alive: the record borrows its strings */
	float *emb;
	size_t emb_cap;
	float scores[REC_MAX_SCORES];
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
	free(p);
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

/* RFC 3339 ("2026-11-29T12:00:00Z", fraction and offset optional) or a
 * number of unix seconds. */
static enum rec_err parse_ts(json_object *o, int64_t *us, char *msg,
			     size_t msglen)
{
	struct tm tm;
	const char *s, *rest;
	int64_t frac_us = 0;
	int off = 0;
	time_t t;

	if (is_number(o)) {
		double v = json_object_get_double(o);

		if (!isfinite(v) || v < 0 || v > 253402300799.0)
			return fail(REC_ERR_BAD_FIELD, msg, msglen,
				    "ts is out of range");
		*us = (int64_t)(v * 1e6);
		return REC_OK;
	}
	if (json_object_get_type(o) != json_type_string)
		goto bad;
	s = json_object_get_string(o);
	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		goto bad;
	if (*rest == '.') {
		/* Digits, not strtod: 0.000249 must stay 249 µs exactly. */
		int digits = 0;

		for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
			if (digits < 6)
				frac_us = frac_us * 10 + (*rest - '0');
		if (digits == 0)
			goto bad;
		for (; digits < 6; digits++)
			frac_us *= 10;
	}
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int hh, mm;

		if (!two_digits(rest + 1, &hh) || rest[3] != ':' ||
		    !two_digits(rest + 4, &mm) || hh > 23 || mm > 59)
			goto bad;
		off = (hh * 60 + mm) * 60 * (*rest == '-' ? -1 : 1);
		rest += 6;
	} else {
		goto bad;
	}
	if (*rest != '\0' || !valid_date(&tm, &t) || t < 0)
		goto bad;
	*us = ((int64_t)t - off) * 1000000 + frac_us;
	return REC_OK;
bad:
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

/* Offset of the first byte that breaks RFC 3629 UTF-8 (overlong forms,
 * surrogates, beyond U+10FFFF, truncated sequences), or LEN. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp, min;
	uint64_t w;

	while (i < len) {
		if (len - i >= 8) {
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xE0) == 0xC0) {
			n = 1, cp = s[i] & 0x1F, min = 0x80;
		} else if ((s[i] & 0xF0) == 0xE0) {
			n = 2, cp = s[i] & 0x0F, min = 0x800;
		} else if ((s[i] & 0xF8) == 0xF0) {
			n = 3, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return len;
}

/* True when the line holds a \u0000 escape (not an escaped backslash
 * followed by "u0000"): struct record carries C strings, and a NUL would
 * silently cut a model name, slice label or id short. */
static bool has_nul_escape(const char *line, size_t len)
{
	const char *p = line, *end = line + len, *hit;
	size_t run;

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

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
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
	end = utf8_invalid_at((const unsigned char *)line, len);
	if (end < len)
		return fail(REC_ERR_BAD_UTF8, msg, msglen,
			    "invalid UTF-8 at byte %zu", end);
	if (has_nul_escape(line, len))
		return fail(REC_ERR_BAD_FIELD, msg, msglen,
			    "strings must not contain \\u0000");
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

enum rec_err ndj_parse(struct ndj_parser *p, const char *line, size_t len,
		       struct record *r, char *msg, size_t msglen)
{
	json_object *v;
	enum rec_err e;

	memset(r, 0, sizeof(*r));
	if (len > INT32_MAX)
		return fail(REC_ERR_OVERSIZE, msg, msglen, "line too long");
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
