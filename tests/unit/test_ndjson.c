/* Unit tests for daemon/ndjson: every field of a record, every refusal with
 * its code and a message that names the problem, and parser reuse. */
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

#include "ndjson.h"

#define MSG_LEN 256

struct fixture {
	struct ndj_parser *p;
	struct record r;
	char msg[MSG_LEN];
};

/* The NDJSON parser's embedding is its own float array, so aligned. */
static const float *emb(const struct fixture *f)
{
	return f->r.embedding;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || !(f->p = ndj_new())) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ndj_free(f->p);
	free(f);
	return 0;
}

/* Copies LINE into a buffer of exactly its length, without a terminating
 * NUL, so that the sanitizer build catches any read past len: the ingest
 * path hands the parser slices of a receive buffer, not C strings. */
static enum rec_err parse(struct fixture *f, const char *line)
{
	size_t len = strlen(line);
	char *copy = malloc(len ? len : 1);
	enum rec_err e;

	assert_non_null(copy);
	memcpy(copy, line, len);
	strcpy(f->msg, "(untouched)");
	e = ndj_parse(f->p, copy, len, &f->r, f->msg, sizeof(f->msg));
	free(copy);
	return e;
}

/* parse() for lines that must be accepted.  The line is already freed
 * when the caller looks at the record: record.h promises that the record
 * borrows from the parser, not from the caller's buffer. */
static void parse_ok(struct fixture *f, const char *line)
{
	enum rec_err e = parse(f, line);

	if (e != REC_OK)
		fail_msg("refused (%s: %s): %s", rec_err_name(e), f->msg, line);
}

static void assert_msg_has(const struct fixture *f, const char *needle)
{
	if (!strstr(f->msg, needle))
		fail_msg("message \"%s\" does not mention \"%s\"", f->msg,
			 needle);
}

static void test_full_record(void **state)
{
	struct fixture *f = *state;
	const float want[] = { 0.12f, -0.03f, 1e-7f, 3.0e38f };

	parse_ok(f, "{\"model\":\"search-encoder\","
		    "\"slice\":{\"region\":\"eu\",\"device\":\"ios\"},"
		    "\"ts\":\"2026-11-29T12:00:00Z\",\"id\":\"req-123\","
		    "\"embedding\":[0.12,-0.03,1e-7,3.0e38],"
		    "\"scores\":[0.8,0.15,0.05],\"label\":1,"
		    "\"role\":\"reference\"}");
	assert_string_equal(f->r.model, "search-encoder");
	assert_string_equal(f->r.id, "req-123");
	assert_true(f->r.ts_us == INT64_C(1795953600000000));
	assert_int_equal(f->r.role, REC_REFERENCE);
	assert_int_equal(f->r.dim, 4);
	assert_non_null(f->r.embedding);
	/* Exact: the codec must round each JSON number to the nearest
	 * float32 exactly as a client's float32 array would hold it. */
	assert_memory_equal(f->r.embedding, want, sizeof(want));
	assert_int_equal(f->r.n_scores, 3);
	assert_true(f->r.scores[0] == 0.8f && f->r.scores[1] == 0.15f &&
		    f->r.scores[2] == 0.05f);
	assert_true(f->r.has_label);
	assert_int_equal(f->r.label, 1);
	assert_int_equal(f->r.n_labels, 2);
	for (unsigned i = 0; i < f->r.n_labels; i++) {
		const struct rec_label *l = &f->r.labels[i];

		if (!strcmp(l->key, "region"))
			assert_string_equal(l->value, "eu");
		else if (!strcmp(l->key, "device"))
			assert_string_equal(l->value, "ios");
		else
			fail_msg("unexpected slice label %s", l->key);
	}
}

/* The smallest record: defaults are live, no ts, no id, no label. */
static void test_defaults(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"embedding\":[1]}");
	assert_string_equal(f->r.model, "m");
	assert_null(f->r.id);
	assert_true(f->r.ts_us == 0);
	assert_int_equal(f->r.role, REC_LIVE);
	assert_int_equal(f->r.dim, 1);
	assert_null(f->r.scores);
	assert_int_equal(f->r.n_scores, 0);
	assert_false(f->r.has_label);
	assert_int_equal(f->r.n_labels, 0);
}

/* DESIGN §3.2: a label may come later on its own. */
static void test_label_only_record(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"id\":\"req-123\",\"label\":1}");
	assert_null(f->r.embedding);
	assert_int_equal(f->r.dim, 0);
	assert_string_equal(f->r.id, "req-123");
	assert_true(f->r.has_label);
	assert_int_equal(f->r.label, 1);
}

static void test_ts_forms(void **state)
{
	struct fixture *f = *state;
	/* Expected values from Python's datetime.fromisoformat. */
	static const struct {
		const char *ts;
		int64_t us;
	} cases[] = {
		{ "\"2026-11-29T12:00:00Z\"", INT64_C(1795953600000000) },
		{ "\"2026-11-29T12:00:00z\"", INT64_C(1795953600000000) },
		{ "\"2026-11-29T12:00:00+00:00\"", INT64_C(1795953600000000) },
		{ "\"2026-11-29T12:00:00-05:00\"", INT64_C(1795971600000000) },
		{ "\"2026-11-29T12:00:00.25+01:30\"",
		  INT64_C(1795948200250000) },
		{ "\"2026-11-29T12:00:00.123456Z\"",
		  INT64_C(1795953600123456) },
		{ "\"2000-02-29T23:59:59+00:00\"", INT64_C(951868799000000) },
		{ "1700000000", INT64_C(1700000000000000) },
		{ "1700000000.5", INT64_C(1700000000500000) },
	};
	char line[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "{\"model\":\"m\",\"ts\":%s}",
			 cases[i].ts);
		parse_ok(f, line);
		if (f->r.ts_us != cases[i].us)
			fail_msg("ts %s: got %lld, want %lld", cases[i].ts,
				 (long long)f->r.ts_us, (long long)cases[i].us);
	}
}

/* Microsecond fractions must come through exactly: windows are bounded
 * by these stamps and ids of results depend on them.  A double such as
 * 0.000249 is slightly below 249e-6, so truncating frac*1e6 loses 1 µs. */
static void test_ts_fraction_exact_us(void **state)
{
	struct fixture *f = *state;
	static const char *const fracs[] = { "000249", "000251", "000489",
					     "000001", "999999", "500000" };
	char line[128];

	for (size_t i = 0; i < sizeof(fracs) / sizeof(fracs[0]); i++) {
		int64_t want = INT64_C(1795953600000000) +
			       strtoll(fracs[i], NULL, 10);

		snprintf(line, sizeof(line),
			 "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00.%sZ\"}",
			 fracs[i]);
		parse_ok(f, line);
		if (f->r.ts_us != want)
			fail_msg(".%s: got %lld, want %lld", fracs[i],
				 (long long)f->r.ts_us, (long long)want);
	}
}

static void test_id_forms(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"id\":\"abc\"}");
	assert_string_equal(f->r.id, "abc");
	parse_ok(f, "{\"model\":\"m\",\"id\":42}");
	assert_string_equal(f->r.id, "42");
	parse_ok(f, "{\"model\":\"m\",\"id\":-7}");
	assert_string_equal(f->r.id, "-7");
	parse_ok(f, "{\"model\":\"m\",\"id\":9223372036854775807}");
	assert_string_equal(f->r.id, "9223372036854775807");
}

/* Integer ids are join keys for late labels: two different ids must never
 * come out as the same text.  json-c holds integers above INT64_MAX as
 * uint64, and reading them back as int64 clamps. */
static void test_id_above_int64_kept(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"id\":18446744073709551615}");
	assert_string_equal(f->r.id, "18446744073709551615");
}

static void test_scores_and_labels(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"scores\":0.25,\"label\":true}");
	assert_int_equal(f->r.n_scores, 1);
	assert_true(f->r.scores[0] == 0.25f);
	assert_true(f->r.has_label);
	assert_int_equal(f->r.label, 1);

	parse_ok(f, "{\"model\":\"m\",\"scores\":[0.5,0.5],\"label\":false}");
	assert_int_equal(f->r.n_scores, 2);
	assert_true(f->r.has_label);
	assert_int_equal(f->r.label, 0);

	parse_ok(f, "{\"model\":\"m\",\"label\":7}");
	assert_int_equal(f->r.label, 7);
	/* 2.0 is an integer class written by a client that has only floats. */
	parse_ok(f, "{\"model\":\"m\",\"label\":2.0}");
	assert_int_equal(f->r.label, 2);
}

static void test_roles(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "{\"model\":\"m\",\"role\":\"live\"}");
	assert_int_equal(f->r.role, REC_LIVE);
	parse_ok(f, "{\"model\":\"m\",\"role\":\"reference\"}");
	assert_int_equal(f->r.role, REC_REFERENCE);
}

/* Clients on Windows send CRLF; the '\r' is whitespace, not garbage. */
static void test_trailing_whitespace_ok(void **state)
{
	struct fixture *f = *state;

	parse_ok(f, "  {\"model\":\"m\"} \t\r");
	assert_string_equal(f->r.model, "m");
}

/* The parser must read exactly LEN bytes: the next line of a receive
 * buffer follows directly. */
static void test_reads_only_len(void **state)
{
	struct fixture *f = *state;
	const char buf[] = "{\"model\":\"m\",\"embedding\":[1,2]}"
			   "{\"model\":\"other\"}";
	size_t first = strlen("{\"model\":\"m\",\"embedding\":[1,2]}");

	assert_int_equal(ndj_parse(f->p, buf, first, &f->r, f->msg,
				   sizeof(f->msg)), REC_OK);
	assert_string_equal(f->r.model, "m");
	assert_int_equal(f->r.dim, 2);
	/* One byte short of the closing brace is a truncated line. */
	assert_int_equal(ndj_parse(f->p, buf, first - 1, &f->r, f->msg,
				   sizeof(f->msg)), REC_ERR_BAD_JSON);
}

struct bad_case {
	const char *line;
	enum rec_err code;
	const char *needle;	/* must appear in the message */
	const char *id;		/* expected out->id, NULL = must be NULL */
};

/* The id sits at the end of most lines on purpose: the codec promises to
 * name the record on any error after the id, whatever the key order. */
static const struct bad_case bad_cases[] = {
	{ "hello", REC_ERR_BAD_JSON, "not JSON", NULL },
	{ "", REC_ERR_BAD_JSON, "not JSON", NULL },
	{ "{\"model\":\"m\"} x", REC_ERR_BAD_JSON, "trailing", NULL },
	{ "{\"model\":\"m\"}{\"model\":\"m\"}", REC_ERR_BAD_JSON, "trailing",
	  NULL },
	{ "{\"model\":\"m\",\"embedding\":[1,2", REC_ERR_BAD_JSON,
	  "end of line", NULL },
	{ "{\"model\":\"m\x80\"}", REC_ERR_BAD_UTF8, "UTF-8", NULL },
	{ "{\"model\":\"m\",\"slice\":{\"r\":\"\xc3\x28\"}}", REC_ERR_BAD_UTF8,
	  "UTF-8", NULL },
	{ "{\"model\":\"m\",\"id\":\"\xff\"}", REC_ERR_BAD_UTF8, "UTF-8",
	  NULL },
	{ "[1,2]", REC_ERR_NOT_OBJECT, "object", NULL },
	{ "\"text\"", REC_ERR_NOT_OBJECT, "object", NULL },
	{ "{\"embedding\":[1],\"id\":\"r1\"}", REC_ERR_MISSING_MODEL, "model",
	  "r1" },
	{ "{\"model\":\"\",\"id\":\"r2\"}", REC_ERR_MISSING_MODEL, "model",
	  "r2" },
	{ "{\"model\":7,\"id\":\"r3\"}", REC_ERR_MISSING_MODEL, "model", "r3" },
	{ "{\"model\":\"m\",\"embedding\":\"1,2\",\"id\":\"r4\"}",
	  REC_ERR_BAD_FIELD, "embedding", "r4" },
	{ "{\"model\":\"m\",\"embedding\":{\"0\":1},\"id\":5}",
	  REC_ERR_BAD_FIELD, "embedding", "5" },
	{ "{\"model\":\"m\",\"embedding\":[],\"id\":\"r6\"}", REC_ERR_WRONG_DIM,
	  "embedding", "r6" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,\"2\",3],\"id\":\"r7\"}",
	  REC_ERR_BAD_FIELD, "embedding[2]", "r7" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,[2]],\"id\":\"r7b\"}",
	  REC_ERR_BAD_FIELD, "embedding[2]", "r7b" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,NaN,3],\"id\":\"r8\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r8" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,Infinity],\"id\":\"r9\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r9" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,-Infinity],\"id\":\"r10\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r10" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,1e39],\"id\":\"r11\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r11" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,-3.5e38],\"id\":\"r12\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r12" },
	{ "{\"model\":\"m\",\"embedding\":[0,1,1e400],\"id\":\"r13\"}",
	  REC_ERR_NOT_FINITE, "embedding[2]", "r13" },
	{ "{\"model\":\"m\",\"scores\":NaN,\"id\":\"r14\"}", REC_ERR_NOT_FINITE,
	  "scores[0]", "r14" },
	{ "{\"model\":\"m\",\"scores\":[0.5,Infinity],\"id\":\"r15\"}",
	  REC_ERR_NOT_FINITE, "scores[1]", "r15" },
	{ "{\"model\":\"m\",\"scores\":[],\"id\":\"r16\"}", REC_ERR_BAD_FIELD,
	  "scores", "r16" },
	{ "{\"model\":\"m\",\"scores\":\"0.5\",\"id\":\"r17\"}",
	  REC_ERR_BAD_FIELD, "scores", "r17" },
	{ "{\"model\":\"m\",\"slice\":{\"region\":3},\"id\":\"r18\"}",
	  REC_ERR_BAD_FIELD, "region", "r18" },
	{ "{\"model\":\"m\",\"slice\":{\"region\":{\"a\":\"b\"}},\"id\":\"r19\"}",
	  REC_ERR_BAD_FIELD, "region", "r19" },
	{ "{\"model\":\"m\",\"slice\":[\"eu\"],\"id\":\"r20\"}",
	  REC_ERR_BAD_FIELD, "slice", "r20" },
	{ "{\"model\":\"m\",\"slice\":\"region=eu\",\"id\":\"r21\"}",
	  REC_ERR_BAD_FIELD, "slice", "r21" },
	{ "{\"model\":\"m\",\"ts\":\"yesterday\",\"id\":\"r22\"}",
	  REC_ERR_BAD_FIELD, "ts", "r22" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00\",\"id\":\"r23\"}",
	  REC_ERR_BAD_FIELD, "ts", "r23" },
	{ "{\"model\":\"m\",\"ts\":\"2026-13-01T00:00:00Z\",\"id\":\"r24\"}",
	  REC_ERR_BAD_FIELD, "ts", "r24" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00Zjunk\",\"id\":\"r25\"}",
	  REC_ERR_BAD_FIELD, "ts", "r25" },
	{ "{\"model\":\"m\",\"ts\":-1,\"id\":\"r26\"}", REC_ERR_BAD_FIELD,
	  "ts", "r26" },
	{ "{\"model\":\"m\",\"ts\":1e300,\"id\":\"r27\"}", REC_ERR_BAD_FIELD,
	  "ts", "r27" },
	{ "{\"model\":\"m\",\"ts\":true,\"id\":\"r28\"}", REC_ERR_BAD_FIELD,
	  "ts", "r28" },
	{ "{\"model\":\"m\",\"role\":\"shadow\",\"id\":\"r34\"}",
	  REC_ERR_BAD_FIELD, "role", "r34" },
	{ "{\"model\":\"m\",\"role\":1,\"id\":\"r35\"}", REC_ERR_BAD_FIELD,
	  "role", "r35" },
	{ "{\"model\":\"m\",\"label\":-1,\"id\":\"r36\"}", REC_ERR_BAD_FIELD,
	  "label", "r36" },
	{ "{\"model\":\"m\",\"label\":1.5,\"id\":\"r37\"}", REC_ERR_BAD_FIELD,
	  "label", "r37" },
	{ "{\"model\":\"m\",\"label\":\"1\",\"id\":\"r38\"}", REC_ERR_BAD_FIELD,
	  "label", "r38" },
	{ "{\"model\":\"m\",\"label\":NaN,\"id\":\"r39\"}", REC_ERR_BAD_FIELD,
	  "label", "r39" },
	{ "{\"model\":\"m\",\"id\":1.5}", REC_ERR_BAD_FIELD, "id", NULL },
	{ "{\"model\":\"m\",\"id\":[\"a\"]}", REC_ERR_BAD_FIELD, "id", NULL },
};

/* Failure output shows bytes outside printable ASCII as \xNN. */
static const char *printable(const char *line)
{
	static char buf[512];
	size_t pos = 0;

	for (; *line && pos + 5 < sizeof(buf); line++) {
		unsigned char c = (unsigned char)*line;

		if (c >= 0x20 && c < 0x7f)
			buf[pos++] = (char)c;
		else
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos,
						"\\x%02x", c);
	}
	buf[pos] = '\0';
	return buf;
}

/* Checks every case and reports each mismatch before failing, so one
 * regression does not hide the others. */
static void check_bad(struct fixture *f, const struct bad_case *cases,
		      size_t n)
{
	size_t failures = 0;

	for (size_t i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];
		enum rec_err e = parse(f, c->line);
		bool ok = true;

		if (e != c->code) {
			print_error("%s: got %s (%s), want %s\n",
				    printable(c->line), rec_err_name(e),
				    f->msg, rec_err_name(c->code));
			ok = false;
		} else if (!strstr(f->msg, c->needle)) {
			print_error("%s: message \"%s\" does not mention "
				    "\"%s\"\n", printable(c->line), f->msg,
				    c->needle);
			ok = false;
		}
		if (!c->id && f->r.id) {
			print_error("%s: id %s, want none\n",
				    printable(c->line), f->r.id);
			ok = false;
		}
		if (c->id && (!f->r.id || strcmp(f->r.id, c->id))) {
			print_error("%s: id %s, want %s\n", printable(c->line),
				    f->r.id ? f->r.id : "(none)", c->id);
			ok = false;
		}
		failures += !ok;
	}
	if (failures)
		fail_msg("%zu of %zu lines handled wrongly", failures, n);
}

static void test_bad_lines(void **state)
{
	check_bad(*state, bad_cases, sizeof(bad_cases) / sizeof(bad_cases[0]));
}

/* A bare number or literal is valid JSON, just not an object.  json-c
 * cannot know that "42" has ended without a terminator, so the codec has
 * to tell it that the line is complete. */
static const struct bad_case scalar_cases[] = {
	{ "42", REC_ERR_NOT_OBJECT, "object", NULL },
	{ "-1.5e3", REC_ERR_NOT_OBJECT, "object", NULL },
	{ "true", REC_ERR_NOT_OBJECT, "object", NULL },
	{ "null", REC_ERR_NOT_OBJECT, "object", NULL },
};

static void test_scalar_not_object(void **state)
{
	check_bad(*state, scalar_cases,
		  sizeof(scalar_cases) / sizeof(scalar_cases[0]));
}

/* RFC 3339 spells the offset exactly ±HH:MM and the fraction as digits
 * only.  A short offset ("+1:00") makes a parser that skips a fixed six
 * bytes step past the end of the string; an exponent in the fraction
 * moves the stamp by minutes or overflows the conversion to int64. */
static const struct bad_case strict_ts_cases[] = {
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00+1:00\",\"id\":\"r29\"}",
	  REC_ERR_BAD_FIELD, "ts", "r29" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00+01:0\",\"id\":\"r30\"}",
	  REC_ERR_BAD_FIELD, "ts", "r30" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00+01\",\"id\":\"r31\"}",
	  REC_ERR_BAD_FIELD, "ts", "r31" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00+-1:00\",\"id\":\"r32\"}",
	  REC_ERR_BAD_FIELD, "ts", "r32" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00+ 1:00\",\"id\":\"r33\"}",
	  REC_ERR_BAD_FIELD, "ts", "r33" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00.5e3Z\",\"id\":\"r34\"}",
	  REC_ERR_BAD_FIELD, "ts", "r34" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00.1e999Z\",\"id\":\"r35\"}",
	  REC_ERR_BAD_FIELD, "ts", "r35" },
	{ "{\"model\":\"m\",\"ts\":\"2026-11-29T12:00:00.Z\",\"id\":\"r36\"}",
	  REC_ERR_BAD_FIELD, "ts", "r36" },
};

static void test_ts_strict_offset_and_fraction(void **state)
{
	check_bad(*state, strict_ts_cases,
		  sizeof(strict_ts_cases) / sizeof(strict_ts_cases[0]));
}

/* RFC 3629 UTF-8 only: model, slice and id text goes into PostgreSQL
 * text columns, which refuse overlong forms, surrogates and code points
 * above U+10FFFF, so letting them through fails the whole window's
 * transaction later instead of refusing one record now.  json-c's own
 * check only looks at the byte structure. */
static const struct bad_case strict_utf8_cases[] = {
	{ "{\"model\":\"\xc0\x80\"}", REC_ERR_BAD_UTF8, "UTF-8", NULL },
	{ "{\"model\":\"\xe0\x80\xaf\"}", REC_ERR_BAD_UTF8, "UTF-8", NULL },
	{ "{\"model\":\"m\",\"slice\":{\"r\":\"\xed\xa0\x80\"}}",
	  REC_ERR_BAD_UTF8, "UTF-8", NULL },
	{ "{\"model\":\"\xf4\x90\x80\x80\"}", REC_ERR_BAD_UTF8, "UTF-8",
	  NULL },
	{ "{\"model\":\"\xf5\x80\x80\x80\"}", REC_ERR_BAD_UTF8, "UTF-8",
	  NULL },
};

static void test_utf8_strict(void **state)
{
	struct fixture *f = *state;

	check_bad(f, strict_utf8_cases,
		  sizeof(strict_utf8_cases) / sizeof(strict_utf8_cases[0]));
	/* The largest scalar values that are valid stay accepted. */
	parse_ok(f, "{\"model\":\"\xf4\x8f\xbf\xbf\xef\xbf\xbd\"}");
}

/* A \u0000 escape cannot be carried in the C strings of struct record:
 * accepting it would cut "eu\u0000x" to "eu" and silently merge the
 * record into another slice (or model). */
static void test_nul_escape_refused(void **state)
{
	struct fixture *f = *state;

	assert_int_not_equal(parse(f, "{\"model\":\"m\",\"slice\":"
				      "{\"region\":\"eu\\u0000x\"}}"), REC_OK);
	assert_int_not_equal(parse(f, "{\"model\":\"a\\u0000b\"}"), REC_OK);
}

/* 17 labels exceed REC_MAX_LABELS; the fixed array must not overflow. */
static void test_too_many_slice_labels(void **state)
{
	struct fixture *f = *state;
	char line[1024];
	size_t pos;

	pos = (size_t)snprintf(line, sizeof(line),
			       "{\"model\":\"m\",\"slice\":{");
	for (int i = 0; i <= REC_MAX_LABELS; i++)
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
					"%s\"k%d\":\"v\"", i ? "," : "", i);
	snprintf(line + pos, sizeof(line) - pos, "}}");
	assert_int_equal(parse(f, line), REC_ERR_BAD_FIELD);
	assert_msg_has(f, "slice");
}

static void test_long_id_refused(void **state)
{
	struct fixture *f = *state;
	char line[512];

	snprintf(line, sizeof(line), "{\"model\":\"m\",\"id\":\"%0257d\"}", 0);
	assert_int_equal(parse(f, line), REC_ERR_BAD_FIELD);
	assert_msg_has(f, "id");
	snprintf(line, sizeof(line), "{\"model\":\"m\",\"id\":\"%0256d\"}", 0);
	parse_ok(f, line);
	assert_int_equal(strlen(f->r.id), 256);
}

/* JSON nested past the tokenizer's depth limit is refused, not parsed
 * recursively without bound. */
static void test_deep_nesting_refused(void **state)
{
	struct fixture *f = *state;
	char line[256];
	size_t pos;

	pos = (size_t)snprintf(line, sizeof(line), "{\"model\":\"m\",\"x\":");
	for (int i = 0; i < 50; i++)
		line[pos++] = '[';
	for (int i = 0; i < 50; i++)
		line[pos++] = ']';
	line[pos++] = '}';
	line[pos] = '\0';
	assert_int_equal(parse(f, line), REC_ERR_BAD_JSON);
}

/* A short message buffer truncates instead of overflowing. */
static void test_short_message_buffer(void **state)
{
	struct fixture *f = *state;
	const char line[] = "{\"model\":\"m\",\"embedding\":[1,NaN]}";
	char msg[12];

	memset(msg, 'x', sizeof(msg));
	assert_int_equal(ndj_parse(f->p, line, strlen(line), &f->r, msg,
				   sizeof(msg)), REC_ERR_NOT_FINITE);
	assert_int_equal(strlen(msg), sizeof(msg) - 1);
	assert_memory_equal(msg, "embedding[1", sizeof(msg) - 1);
}

/* One parser per connection sees thousands of lines: nothing from a
 * previous line (labels, scores, label flag, id, embedding) may leak into
 * the next, good or bad. */
static void test_reuse_no_leaks(void **state)
{
	struct fixture *f = *state;
	char line[512], id[32];

	for (int round = 0; round < 200; round++) {
		snprintf(line, sizeof(line),
			 "{\"model\":\"m%d\",\"id\":%d,\"slice\":{\"a\":\"x\","
			 "\"b\":\"y\"},\"scores\":[0.1,0.9],\"label\":3,"
			 "\"role\":\"reference\",\"ts\":1000,"
			 "\"embedding\":[%d,2,3,4,5]}",
			 round, round, round);
		parse_ok(f, line);
		assert_int_equal(f->r.dim, 5);
		assert_true(emb(f)[0] == (float)round);

		snprintf(id, sizeof(id), "bad%d", round);
		snprintf(line, sizeof(line),
			 "{\"model\":\"m\",\"id\":\"%s\",\"embedding\":"
			 "[1,2,NaN]}", id);
		assert_int_equal(parse(f, line), REC_ERR_NOT_FINITE);
		assert_string_equal(f->r.id, id);

		assert_int_equal(parse(f, "not json"), REC_ERR_BAD_JSON);
		assert_null(f->r.id);

		snprintf(line, sizeof(line),
			 "{\"model\":\"n\",\"embedding\":[%d.5,-1]}", round);
		parse_ok(f, line);
		assert_string_equal(f->r.model, "n");
		assert_null(f->r.id);
		assert_int_equal(f->r.dim, 2);
		assert_true(emb(f)[0] == (float)round + 0.5f);
		assert_true(emb(f)[1] == -1.0f);
		assert_int_equal(f->r.n_labels, 0);
		assert_null(f->r.scores);
		assert_int_equal(f->r.n_scores, 0);
		assert_false(f->r.has_label);
		assert_int_equal(f->r.role, REC_LIVE);
		assert_true(f->r.ts_us == 0);
	}
}

/* Deterministic "random" float32 values with every bit pattern class
 * that matters (signs, tiny and large exponents). */
static float test_value(unsigned i)
{
	uint32_t h = i * 2654435761u;
	float mant = (float)(h >> 8) / (float)(1u << 24);
	int exp = (int)((h >> 3) % 40) - 20;

	return (h & 1 ? -1.0f : 1.0f) * ldexpf(mant, exp);
}

/* The production dimension: every value printed with 9 significant digits
 * (enough to round-trip float32) must come back bit-exact. */
static void test_768_dims(void **state)
{
	struct fixture *f = *state;
	enum { D = 768 };
	size_t cap = 32 + (size_t)D * 20, pos;
	char *line = malloc(cap);
	float want[D];

	assert_non_null(line);
	pos = (size_t)snprintf(line, cap, "{\"model\":\"big\",\"embedding\":[");
	for (unsigned i = 0; i < D; i++) {
		want[i] = test_value(i);
		pos += (size_t)snprintf(line + pos, cap - pos, "%s%.9g",
					i ? "," : "", (double)want[i]);
	}
	snprintf(line + pos, cap - pos, "]}");
	parse_ok(f, line);
	assert_int_equal(f->r.dim, D);
	assert_memory_equal(f->r.embedding, want, sizeof(want));

	/* A short line after a long one: dim shrinks, values are fresh. */
	parse_ok(f, "{\"model\":\"big\",\"embedding\":[7,8]}");
	assert_int_equal(f->r.dim, 2);
	assert_true(emb(f)[0] == 7.0f && emb(f)[1] == 8.0f);
	parse_ok(f, line);
	assert_int_equal(f->r.dim, D);
	assert_memory_equal(f->r.embedding, want, sizeof(want));
	free(line);
}

static void test_err_names(void **state)
{
	(void)state;
	for (int i = 0; i < REC_ERR__COUNT; i++) {
		const char *name = rec_err_name((enum rec_err)i);

		assert_non_null(name);
		assert_string_not_equal(name, "unknown");
		/* Names are metric labels: distinct. */
		for (int j = 0; j < i; j++)
			assert_string_not_equal(name,
						rec_err_name((enum rec_err)j));
	}
	assert_string_equal(rec_err_name(REC_ERR__COUNT), "unknown");
	assert_string_equal(rec_err_name(REC_ERR_NOT_FINITE), "not_finite");
}

/* The fast path and the json-c path give the same answer and the same
 * record, on numbers chosen to hit each branch of the fast reader (exact
 * shortcut, strtod, integers, -0, limits of float32) and on the shapes it
 * hands over to json-c (escapes, duplicates, NaN). */
static void test_fast_path_agrees(void **state)
{
	static const char *const lines[] = {
		"{\"model\":\"m\",\"embedding\":[0.1,-0.000001,1e-7,1E+3,"
		"123456789012345678,1.2345678901234567890123,-0.0,0,5e-324,"
		"3.4028234e38,0.30000000000000004,9007199254740993.5,1e22,"
		"1e23,4.9406564584124654e-324]}",
		"{\"model\":\"m\",\"embedding\":[-0.5,-0.0,0.000001,"
		"123456789.123456789,999999999999999999,99999999999999999,"
		"9007199254740993,0.9007199254740993,-12.5e1,7,-7, 1.5 ,2\t]}",
		"{\"model\":\"m\",\"embedding\":[-00.1]}",
		"{\"model\":\"m\",\"embedding\":[-.5]}",
		"{\"model\":\"m\",\"embedding\":[-]}",
		"{\"model\":\"m\",\"embedding\":[1,-0]}",
		"{\"model\":\"m\",\"embedding\":[0.5]",
		"{\"model\":\"m\",\"embedding\":[-0],\"label\":true}",
		"{\"model\":\"m\",\"embedding\":[1],\"label\":false}",
		"{\"model\":\"m\",\"embedding\":[1],\"label\":7.0}",
		"{\"model\":\"m\",\"embedding\":[1],\"slice\":{\"a\":\"1\","
		"\"a\":\"2\"}}",
		"{\"model\":\"m\",\"embedding\":[1],\"model\":\"n\"}",
		"{\"model\":\"m\",\"embedding\":[01]}",
		"{\"model\":\"m\",\"embedding\":[1.]}",
		"{\"model\":\"m\",\"embedding\":[NaN]}",
		"{\"model\":\"m\",\"embedding\":[1e39]}",
		"{\"model\":\"m\",\"id\":\"q\\\"d\",\"embedding\":[1]}",
		"{\"model\":\"m\",\"id\":12345,\"embedding\":[1]}",
		"{\"model\":\"m\",\"embedding\":[1],\"ts\":"
		"\"2026-11-29T12:00:00.5+01:00\",\"scores\":[0.25,0.75],"
		"\"role\":\"reference\",\"x\":{\"y\":[1,{\"z\":null}]}}",
		"{\"model\":\"m\",\"embedding\":[1],\"ts\":1764417600.25}",
		"{\"model\":\"m\",\"embedding\":[1],\"ts\":-1}",
		"{\"model\":\"m\",\"embedding\":[1],\"scores\":0.5} \t",
		"{\"model\":\"\",\"embedding\":[1]}",
		"{\"model\":\"m\",\"embedding\":[]}",
		"{\"model\":\"m\",\"label\":4}",
		"{\"model\":\"m\",\"embedding\":[1]} x",
	};
	struct ndj_parser *slow = ndj_new();
	struct fixture *f = *state;
	struct record s;
	char smsg[MSG_LEN];
	size_t i;

	assert_non_null(slow);
	ndj_set_fast(slow, false);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		enum rec_err fe = parse(f, lines[i]);
		enum rec_err se = ndj_parse(slow, lines[i], strlen(lines[i]),
					    &s, smsg, sizeof(smsg));

		if (fe != se)
			fail_msg("line %zu: fast %d, json-c %d", i, fe, se);
		if (fe != REC_OK) {
			assert_string_equal(f->msg, smsg);
			continue;
		}
		assert_string_equal(f->r.model, s.model);
		assert_int_equal(f->r.dim, s.dim);
		if (f->r.dim)
			assert_memory_equal(f->r.embedding, s.embedding,
					    f->r.dim * sizeof(float));
		assert_int_equal(f->r.n_scores, s.n_scores);
		assert_int_equal(f->r.has_ts, s.has_ts);
		assert_int_equal(f->r.ts_us, s.ts_us);
		assert_int_equal(f->r.has_label, s.has_label);
		assert_int_equal(f->r.label, s.label);
		assert_int_equal(f->r.role, s.role);
		assert_int_equal(f->r.n_labels, s.n_labels);
		assert_true((f->r.id == NULL) == (s.id == NULL));
	}
	ndj_free(slow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_only_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ts_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ts_fraction_exact_us, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_id_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id_above_int64_kept, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scores_and_labels, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailing_whitespace_ok,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reads_only_len, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scalar_not_object, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_utf8_strict, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nul_escape_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_too_many_slice_labels, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_id_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deep_nesting_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_short_message_buffer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reuse_no_leaks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_768_dims, setup, teardown),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test_setup_teardown(test_fast_path_agrees, setup,
						teardown),
		/* Last: in the sanitizer build its out-of-bounds read aborts
		 * the program, which would hide the tests after it. */
		cmocka_unit_test_setup_teardown(
			test_ts_strict_offset_and_fraction, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
