/* Webhook event bodies (see hookev.h and docs/webhooks.md).  Each slice is
 * rendered to JSON when it is added, so a batch holds text, not copies of
 * the engine's structs.  Bodies are pure ASCII (non-ASCII is \u-escaped):
 * they then survive any database encoding byte for byte. */
#include "hookev.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "conf.h"

/* Event types that a [webhook.NAME] events key selects, by hookev_type. */
static const unsigned type_flags[HOOKEV__COUNT] = {
	[HOOKEV_DRIFT] = CONF_EV_DRIFT,
	[HOOKEV_CALIBRATION] = CONF_EV_CALIBRATION,
	[HOOKEV_COLLAPSE] = CONF_EV_COLLAPSE,
	[HOOKEV_STREAM] = CONF_EV_STREAM,
};

static const char *const type_names[HOOKEV__COUNT] = {
	[HOOKEV_DRIFT] = "drift.detected",
	[HOOKEV_CALIBRATION] = "calibration.degraded",
	[HOOKEV_COLLAPSE] = "embedding.collapse",
	[HOOKEV_STREAM] = "stream.alarm",
	[HOOKEV_TEST] = "test",
};

/* The view holding the rows an event's ready-made query selects, the
 * key its listed rows are matched on, and their order. */
static const char *const type_views[HOOKEV__COUNT] = {
	[HOOKEV_DRIFT] = "driftd.drift_history",
	[HOOKEV_CALIBRATION] = "driftd.calibration_history",
	[HOOKEV_COLLAPSE] = "driftd.drift_history",
	[HOOKEV_STREAM] = "driftd.stream_alarm_history",
};
static const char *const type_keys[HOOKEV__COUNT] = {
	[HOOKEV_DRIFT] = "(slice, window_id)",
	[HOOKEV_CALIBRATION] = "(slice, window_id)",
	[HOOKEV_COLLAPSE] = "(slice, window_id)",
	[HOOKEV_STREAM] = "alarm_id",
};
static const char *const type_order[HOOKEV__COUNT] = {
	[HOOKEV_DRIFT] = "slice, window_id",
	[HOOKEV_CALIBRATION] = "slice, window_id",
	[HOOKEV_COLLAPSE] = "slice, window_id",
	[HOOKEV_STREAM] = "slice, detected_at, alarm_id",
};

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

struct gathered {
	struct sbuf slices;	/* JSON objects, comma separated */
	struct sbuf pairs;	/* SQL keys of the rows listed (type_keys) */
	size_t listed, total;
	char id[HOOKEV_ID_LEN + 1];
	struct sbuf body;
};

struct hookev_batch {
	const struct conf_webhook *hook;
	char *model;
	int64_t now_us;
	bool taken;
	struct gathered g[HOOKEV__COUNT];
	struct store_event out[HOOKEV__COUNT];
};

const char *hookev_type_name(enum hookev_type t)
{
	return (unsigned)t < HOOKEV__COUNT ? type_names[t] : "unknown";
}

/* ---- text building ---- */

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		for (cap = b->cap ? b->cap : 256; cap < b->len + n + 1; cap *= 2)
			;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void truncate_to(struct sbuf *b, size_t len)
{
	b->len = len;
	b->oom = false;
	if (b->p)
		b->p[len] = '\0';
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){ 0 };
}

/* One UTF-8 sequence at s (n bytes left) to a code point; invalid input
 * becomes U+FFFD, consuming one byte.  Returns the bytes consumed. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
	uint32_t v = len == 4 ? s[0] & 0x07u : len == 3 ? s[0] & 0x0fu : s[0] & 0x1fu;
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };

	*cp = 0xfffd;
	if (len == 1 || len > n || s[0] > 0xf4)
		return 1;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		v = v << 6 | (s[i] & 0x3fu);
	}
	if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 1;
	*cp = v;
	return len;
}

/* A JSON string literal in ASCII only. */
static void sb_json(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), used;
	uint32_t cp;

	sb_add(b, "\"", 1);
	for (size_t i = 0; i < n; i += used) {
		used = 1;
		if (p[i] == '"' || p[i] == '\\') {
			sb_add(b, "\\", 1);
			sb_add(b, s + i, 1);
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			sb_add(b, s + i, 1);
		} else if (p[i] < 0x80) {
			sb_fmt(b, "\\u%04x", p[i]);
		} else {
			used = utf8_decode(p + i, n - i, &cp);
			if (cp >= 0x10000)
				sb_fmt(b, "\\u%04x\\u%04x", 0xd800 + ((cp - 0x10000) >> 10),
				       0xdc00 + ((cp - 0x10000) & 0x3ff));
			else
				sb_fmt(b, "\\u%04x", cp);
		}
	}
	sb_add(b, "\"", 1);
}

/* A SQL string literal ('' doubles a quote; standard_conforming_strings). */
static void sb_sql(struct sbuf *b, const char *s)
{
	sb_add(b, "'", 1);
	for (; *s; s++) {
		if (*s == '\'')
			sb_add(b, "'", 1);
		sb_add(b, s, 1);
	}
	sb_add(b, "'", 1);
}

/* Non-finite numbers have no JSON spelling: null. */
static void sb_num(struct sbuf *b, double v)
{
	if (isfinite(v))
		sb_fmt(b, "%.10g", v);
	else
		sb_str(b, "null");
}

/* RFC 3339 in UTC with microseconds, as a JSON string. */
static void sb_time(struct sbuf *b, int64_t us)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	sb_fmt(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"", tm.tm_year + 1900,
	       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	       (int)(us % 1000000));
}

/* ---- ids ---- */

void hookev_new_id(int64_t now_us, char *buf)
{
	static uint64_t fallback;
	uint64_t r;

	/* getrandom only fails this way before the kernel's pool is ready;
	 * the id must be unique, not secret, so a clock mix will do then. */
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		fallback += 0x9e3779b97f4a7c15u;
		r = fallback ^ (uint64_t)now_us * 0xbf58476d1ce4e5b9u;
	}
	snprintf(buf, HOOKEV_ID_LEN + 1, "msg_%012" PRIx64 "%016" PRIx64,
		 (uint64_t)(now_us / 1000) & UINT64_C(0xffffffffffff), r);
}

/* ---- batches ---- */

struct hookev_batch *hookev_batch_new(const struct conf *c, const char *model,
				      int64_t now_us)
{
	const struct conf_model *m = conf_model_find(c, model);
	const struct conf_webhook *w = m && m->on_drift ? conf_webhook_find(c, m->on_drift) : NULL;
	struct hookev_batch *b;

	if (!w || !(b = calloc(1, sizeof(*b))))
		return NULL;
	b->hook = w;
	b->now_us = now_us;
	if (!(b->model = strdup(model))) {
		free(b);
		return NULL;
	}
	return b;
}

static void add_tests(struct sbuf *j, const struct store_test *t, size_t n)
{
	bool first = true;

	sb_str(j, "\"tests\":[");
	for (size_t i = 0; i < n; i++) {
		if (!t[i].drifted)
			continue;
		sb_str(j, first ? "{\"test\":" : ",{\"test\":");
		sb_json(j, t[i].test);
		sb_str(j, ",\"statistic\":");
		sb_num(j, t[i].statistic);
		sb_str(j, ",\"p_value\":");
		sb_num(j, t[i].p_value);
		sb_str(j, ",\"threshold\":");
		sb_num(j, t[i].threshold);
		sb_str(j, "}");
		first = false;
	}
	sb_str(j, "]");
}

int hookev_add(struct hookev_batch *b, enum hookev_type t,
	       const struct hookev_slice *s, const struct store_test *tests,
	       size_t n)
{
	struct gathered *g;
	size_t fired = 0, len0, pairs0;

	if ((unsigned)t >= HOOKEV_TEST || t == HOOKEV_STREAM)
		return -EINVAL;
	if (!b || b->taken || !(b->hook->events & type_flags[t]))
		return 0;
	for (size_t i = 0; i < n; i++)
		fired += tests[i].drifted;
	if (!fired)
		return 0;
	g = &b->g[t];
	g->total++;
	if (g->listed >= b->hook->payload_max_slices)
		return 0;
	len0 = g->slices.len;
	pairs0 = g->pairs.len;
	sb_str(&g->slices, g->listed ? ",{\"slice\":" : "{\"slice\":");
	sb_json(&g->slices, s->slice);
	sb_fmt(&g->slices, ",\"window_id\":%" PRId64 ",\"window_start\":", s->window_id);
	sb_time(&g->slices, s->start_us);
	sb_str(&g->slices, ",\"window_end\":");
	sb_time(&g->slices, s->end_us);
	sb_fmt(&g->slices, ",\"n\":%u,\"reference_set_id\":%" PRId64 ",", s->n,
	       s->reference_set_id);
	add_tests(&g->slices, tests, n);
	sb_str(&g->slices, "}");
	sb_str(&g->pairs, g->listed ? ", (" : "(");
	sb_sql(&g->pairs, s->slice);
	sb_fmt(&g->pairs, ", %" PRId64 ")", s->window_id);
	if (g->slices.oom || g->pairs.oom) {
		/* Leave the text as it was, so the batch can still be sent. */
		truncate_to(&g->slices, len0);
		truncate_to(&g->pairs, pairs0);
		g->total--;
		return -ENOMEM;
	}
	g->listed++;
	return 0;
}

static void add_alarm(struct sbuf *j, const struct store_stream_alarm *a)
{
	char test[64];

	snprintf(test, sizeof(test), "%s:%s", a->detector, a->signal);
	sb_str(j, "{\"test\":");
	sb_json(j, test);
	sb_str(j, ",\"detector\":");
	sb_json(j, a->detector);
	sb_str(j, ",\"signal\":");
	sb_json(j, a->signal);
	sb_fmt(j, ",\"alarm_id\":%" PRId64 ",\"statistic\":", a->id);
	sb_num(j, a->statistic);
	sb_str(j, ",\"p_value\":null,\"threshold\":");
	sb_num(j, a->threshold);
	sb_fmt(j, ",\"direction\":\"%s\",\"records_seen\":%" PRIu64
	       ",\"n_before\":%" PRIu64 ",\"mean_before\":",
	       a->up ? "up" : "down", a->records_seen, a->n_before);
	sb_num(j, a->mean_before);
	sb_fmt(j, ",\"n_after\":%" PRIu64 ",\"mean_after\":", a->n_after);
	sb_num(j, a->mean_after);
	sb_str(j, "}");
}

int hookev_add_stream(struct hookev_batch *b, const char *slice,
		      int64_t detected_us, const struct store_stream_alarm *a,
		      size_t n)
{
	struct gathered *g;
	size_t len0, pairs0;

	if (!b || b->taken || !n || !(b->hook->events & type_flags[HOOKEV_STREAM]))
		return 0;
	g = &b->g[HOOKEV_STREAM];
	g->total++;
	if (g->listed >= b->hook->payload_max_slices)
		return 0;
	len0 = g->slices.len;
	pairs0 = g->pairs.len;
	sb_str(&g->slices, g->listed ? ",{\"slice\":" : "{\"slice\":");
	sb_json(&g->slices, slice);
	sb_str(&g->slices, ",\"window_id\":null,\"detected_at\":");
	sb_time(&g->slices, detected_us);
	sb_str(&g->slices, ",\"tests\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_str(&g->slices, ",");
		add_alarm(&g->slices, &a[i]);
		sb_fmt(&g->pairs, "%s%" PRId64, g->pairs.len ? ", " : "", a[i].id);
	}
	sb_str(&g->slices, "]}");
	if (g->slices.oom || g->pairs.oom) {
		truncate_to(&g->slices, len0);
		truncate_to(&g->pairs, pairs0);
		g->total--;
		return -ENOMEM;
	}
	g->listed++;
	return 0;
}

/* SELECT ... WHERE model = 'm' AND <key> IN (...), as JSON. */
static void add_query(struct sbuf *body, enum hookev_type t, const char *model,
		      const struct gathered *g)
{
	struct sbuf q = { 0 };

	sb_str(&q, "SELECT * FROM ");
	sb_str(&q, type_views[t]);
	sb_str(&q, " WHERE model = ");
	sb_sql(&q, model);
	sb_str(&q, " AND ");
	sb_str(&q, type_keys[t]);
	sb_str(&q, " IN (");
	sb_str(&q, g->pairs.p);
	sb_str(&q, ") ORDER BY ");
	sb_str(&q, type_order[t]);
	if (q.oom)
		body->oom = true;
	else
		sb_json(body, q.p);
	sb_free(&q);
}

static int build(struct hookev_batch *b, enum hookev_type t)
{
	struct gathered *g = &b->g[t];
	struct sbuf *body = &g->body;

	hookev_new_id(b->now_us, g->id);
	sb_str(body, "{\"type\":");
	sb_json(body, type_names[t]);
	sb_str(body, ",\"timestamp\":");
	sb_time(body, b->now_us);
	sb_str(body, ",\"data\":{\"model\":");
	sb_json(body, b->model);
	sb_fmt(body, ",\"slices_total\":%zu,\"slices\":[", g->total);
	sb_str(body, g->slices.p);
	sb_str(body, "],\"query\":");
	add_query(body, t, b->model, g);
	sb_str(body, "}}");
	if (body->oom) {
		sb_free(body);
		return -ENOMEM;
	}
	return 0;
}

int hookev_take(struct hookev_batch *b, const struct store_event **ev, size_t *n)
{
	size_t k = 0;

	*ev = NULL;
	*n = 0;
	if (!b || b->taken)
		return 0;
	for (int t = 0; t < HOOKEV_TEST; t++) {
		if (!b->g[t].listed)
			continue;
		if (build(b, (enum hookev_type)t) < 0)
			return -ENOMEM;
		b->out[k++] = (struct store_event){
			.id = b->g[t].id,
			.endpoint = b->hook->name,
			.type = type_names[t],
			.model = b->model,
			.body = b->g[t].body.p,
			.created_us = b->now_us,
			.cooldown_us = b->hook->cooldown_us,
		};
	}
	b->taken = true;
	*ev = b->out;
	*n = k;
	return 0;
}

void hookev_batch_free(struct hookev_batch *b)
{
	if (!b)
		return;
	for (int t = 0; t < HOOKEV__COUNT; t++) {
		sb_free(&b->g[t].slices);
		sb_free(&b->g[t].pairs);
		sb_free(&b->g[t].body);
	}
	free(b->model);
	free(b);
}

/* ---- the test event ---- */

int hookev_test(const struct conf *c, const char *name, int64_t now_us,
		struct store_event *ev, char **mem)
{
	const struct conf_webhook *w = conf_webhook_find(c, name);
	char id[HOOKEV_ID_LEN + 1];
	struct sbuf b = { 0 };

	if (!w)
		return -ENOENT;
	hookev_new_id(now_us, id);
	/* One allocation: the id with its NUL, then the body. */
	sb_add(&b, id, sizeof(id));
	sb_str(&b, "{\"type\":\"test\",\"timestamp\":");
	sb_time(&b, now_us);
	sb_str(&b, ",\"data\":{\"endpoint\":");
	sb_json(&b, w->name);
	sb_str(&b, ",\"message\":\"test event from driftctl webhooks test\"}}");
	if (b.oom) {
		sb_free(&b);
		return -ENOMEM;
	}
	*ev = (struct store_event){
		.id = b.p,
		.endpoint = w->name,
		.type = type_names[HOOKEV_TEST],
		.body = b.p + sizeof(id),
		.created_us = now_us,
	};
	*mem = b.p;
	return 0;
}
