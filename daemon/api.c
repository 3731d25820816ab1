/* JSON API: request parsing, reads through the store's reader, JSON out. */
#include "api.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "conf.h"
#include "engine.h"
#include "latest.h"
#include "reader.h"
#include "recsig.h"
#include "reqparse.h"

/* /status summarises the streaming alarms of this last span, unless
 * ?since= says where to start. */
#define RECENT_ALARMS_US (INT64_C(24) * 3600 * 1000000)

struct api_call {
	LIST_ENTRY(api_call) link;
	struct api *a;
	struct evhttp_request *req;
	struct rdr_req *rq;
	json_object *status;	/* /status waiting for its alarm summary */
	int64_t since_us;	/* of that summary */
	char model[CONF_NAME_MAX + 1];
};

struct api {
	struct http_srv *h;
	LIST_HEAD(, api_call) calls;
};

struct api *api_new(struct http_srv *h)
{
	struct api *a = calloc(1, sizeof(*a));

	if (a) {
		a->h = h;
		LIST_INIT(&a->calls);
	}
	return a;
}

static void call_free(struct api_call *c)
{
	json_object_put(c->status);
	free(c);
}

void api_free(struct api *a)
{
	struct api_call *c;

	if (!a)
		return;
	while ((c = LIST_FIRST(&a->calls))) {
		rdr_cancel(http_ctx(a->h)->rdr, c->rq);
		LIST_REMOVE(c, link);
		call_free(c);
	}
	free(a);
}

/* ---- JSON ---- */

/* The shortest of %.15g / %.17g that reads back exactly; null for NaN. */
static json_object *jdouble(double v)
{
	char s[32];

	if (!isfinite(v))
		return NULL;
	snprintf(s, sizeof(s), "%.15g", v);
	if (strtod(s, NULL) != v)
		snprintf(s, sizeof(s), "%.17g", v);
	return json_object_new_double_s(v, s);
}

static json_object *jtime(int64_t us)
{
	char s[40];

	rq_format_time(us, s, sizeof(s));
	return json_object_new_string(s);
}

static void add(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static void send_json(struct evhttp_request *req, int code, json_object *o)
{
	struct evbuffer *b = evbuffer_new();
	const char *text = o ? json_object_to_json_string_ext(
				       o, JSON_C_TO_STRING_PLAIN |
						  JSON_C_TO_STRING_NOSLASHESCAPE) :
			       NULL;

	if (!b || !text) {
		http_error_json(req, 503, "out of memory");
	} else {
		evbuffer_add(b, text, strlen(text));
		evbuffer_add(b, "\n", 1);
		http_reply(req, code, "application/json", b);
	}
	if (b)
		evbuffer_free(b);
	json_object_put(o);
}

/* ---- /v1/models ---- */

static const char *correction_name(enum conf_correction c)
{
	return c == CONF_CORR_BONFERRONI ? "bonferroni" :
	       c == CONF_CORR_NONE	 ? "none" :
					   "bh";
}

static void model_json(void *arg, const struct eng_model_info *mi)
{
	const struct conf_model *c = mi->cfg;
	json_object *m = json_object_new_object(), *by = json_object_new_array();
	int64_t last = INT64_MIN;

	for (size_t i = 0; i < c->n_slice_by; i++)
		json_object_array_add(by, json_object_new_string(c->slice_by[i]));
	for (size_t i = 0; i < lat_count(mi->latest); i++)
		if (lat_get(mi->latest, i)->end_us > last)
			last = lat_get(mi->latest, i)->end_us;
	add(m, "name", json_object_new_string(mi->name));
	add(m, "dim", json_object_new_int64(c->dim));
	add(m, "slice_by", by);
	add(m, "reference_size", json_object_new_int64(c->reference_size));
	add(m, "window_size", json_object_new_int64(c->window_size));
	add(m, "window_interval_seconds",
	    jdouble((double)c->window_interval_us / 1e6));
	add(m, "alpha", jdouble(c->alpha));
	add(m, "correction", json_object_new_string(correction_name(c->correction)));
	add(m, "slices", json_object_new_int64((int64_t)mi->slices));
	add(m, "slices_evaluated", json_object_new_int64((int64_t)lat_count(mi->latest)));
	add(m, "slices_drifted", json_object_new_int64((int64_t)lat_drifted(mi->latest)));
	add(m, "records", json_object_new_int64((int64_t)mi->records));
	add(m, "windows", json_object_new_int64((int64_t)mi->windows));
	add(m, "latest_window_end", last == INT64_MIN ? NULL : jtime(last));
	json_object_array_add(arg, m);
}

void api_models(struct http_srv *h, struct evhttp_request *req,
		const char *const *args)
{
	json_object *o = json_object_new_object(), *list = json_object_new_array();

	eng_foreach_model(http_ctx(h)->eng, model_json, list);
	add(o, "models", list);
	send_json(req, 200, o);
}

/* ---- reads ---- */

struct find {
	const char *name;
	bool found;
};

static void find_model(void *arg, const struct eng_model_info *mi)
{
	struct find *f = arg;

	f->found |= !strcmp(f->name, mi->name);
}

static bool known_model(struct http_srv *h, struct evhttp_request *req,
			const char *name)
{
	struct find f = { name, false };

	eng_foreach_model(http_ctx(h)->eng, find_model, &f);
	if (!f.found)
		http_error_json(req, 404, "no model named \"%.64s\"", name);
	return f.found;
}

static struct api_call *call_new(struct http_srv *h, struct evhttp_request *req,
				 const char *model)
{
	struct api_call *c = calloc(1, sizeof(*c));

	if (!c) {
		http_error_json(req, 503, "out of memory");
		return NULL;
	}
	c->a = http_api(h);
	c->req = req;
	snprintf(c->model, sizeof(c->model), "%s", model);
	return c;
}

/* The read was refused at once: answer and drop the call. */
static void refused(struct api_call *c, int err)
{
	http_error_json(c->req, err == -EINVAL ? 400 : 503, "%s",
			err == -ENOTCONN ? "database unavailable" :
			err == -ENOBUFS	 ? "too many queries in progress, retry later" :
			err == -EINVAL	 ? "invalid query" :
					   "out of memory");
	call_free(c);
}

/* A read was asked for: on its way (ERR 0) or refused. */
static void launched(struct api_call *c, int err)
{
	if (err)
		refused(c, err);
	else
		LIST_INSERT_HEAD(&c->a->calls, c, link);
}

/* Answers a failed read; true when it failed. */
static bool read_failed(struct api_call *c, int err, const char *why)
{
	if (!err)
		return false;
	if (err == -ETIMEDOUT)
		http_error_json(c->req, 504, "database query timed out");
	else if (err == -EINVAL)
		http_error_json(c->req, 400, "invalid parameter: %s", why ? why : "");
	else if (err == -ECONNRESET)
		http_error_json(c->req, 503, "database connection lost: %s",
				why ? why : "");
	else
		http_error_json(c->req, 500, "database error: %s", why ? why : "");
	return true;
}

static void finish(struct api_call *c)
{
	LIST_REMOVE(c, link);
	call_free(c);
}

static json_object *test_json(const struct rdr_row *r)
{
	json_object *t = json_object_new_object();

	add(t, "test", json_object_new_string(r->test));
	add(t, "statistic", jdouble(r->statistic));
	add(t, "p_value", jdouble(r->p_value));
	add(t, "threshold", jdouble(r->threshold));
	add(t, "drifted", json_object_new_boolean(r->drifted));
	return t;
}

static json_object *window_json(const struct rdr_row *r)
{
	json_object *w = json_object_new_object();

	add(w, "slice", json_object_new_string(r->slice));
	add(w, "window_id", json_object_new_int64(r->window_id));
	add(w, "window_start", jtime(r->start_us));
	add(w, "window_end", jtime(r->end_us));
	add(w, "n", json_object_new_int64(r->n));
	return w;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_alarm_summary(void *arg, int err, const char *why,
			     const struct rdr_alarm *rows, size_t n,
			     bool truncated)
{
	struct api_call *c = arg;
	json_object *o, *slices;

	if (read_failed(c, err, why)) {
		finish(c);
		return;
	}
	o = json_object_new_object();
	slices = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_new_object();

		add(s, "slice", json_object_new_string(rows[i].slice));
		add(s, "count", json_object_new_int64(rows[i].count));
		add(s, "detected_at", jtime(rows[i].detected_us));
		add(s, "detector", json_object_new_string(rows[i].detector));
		add(s, "signal", json_object_new_string(rows[i].signal));
		add(s, "direction", json_object_new_string(rows[i].direction));
		add(s, "alarm_id", json_object_new_int64(rows[i].alarm_id));
		json_object_array_add(slices, s);
	}
	add(o, "since", jtime(c->since_us));
	add(o, "slices", slices);
	add(o, "truncated", json_object_new_boolean(truncated));
	add(c->status, "stream_alarms", o);
	send_json(c->req, 200, c->status);
	c->status = NULL;
	finish(c);
}

/* The second read of /status: per slice, the streaming alarms since
 * c->since_us. */
static void start_alarm_summary(struct api_call *c)
{
	int err;

	err = rdr_alarm_summary(http_ctx(c->a->h)->rdr, c->model, c->since_us,
				on_alarm_summary, c, &c->rq);
	if (err) {
		LIST_REMOVE(c, link);
		refused(c, err);
	}
}

static void on_status(void *arg, int err, const char *why,
		      const struct rdr_row *rows, size_t n, bool truncated)
{
	struct api_call *c = arg;
	json_object *o, *slices, *w = NULL, *tests = NULL;
	bool drifted = false;

	if (read_failed(c, err, why)) {
		finish(c);
		return;
	}
	o = json_object_new_object();
	slices = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		if (!w || strcmp(rows[i].slice, rows[i - 1].slice)) {
			w = window_json(&rows[i]);
			tests = json_object_new_array();
			drifted = false;
			add(w, "drifted", json_object_new_boolean(false));
			add(w, "tests", tests);
			json_object_array_add(slices, w);
		}
		json_object_array_add(tests, test_json(&rows[i]));
		if (rows[i].drifted && !drifted) {
			drifted = true;
			add(w, "drifted", json_object_new_boolean(true));
		}
	}
	add(o, "model", json_object_new_string(c->model));
	add(o, "slices", slices);
	add(o, "truncated", json_object_new_boolean(truncated));
	c->status = o;
	start_alarm_summary(c);
}

/* The answer of a list endpoint: {model, rows, truncated}. */
static void send_listing(struct api_call *c, json_object *list, bool truncated)
{
	json_object *o = json_object_new_object();

	add(o, "model", json_object_new_string(c->model));
	add(o, "rows", list);
	add(o, "truncated", json_object_new_boolean(truncated));
	send_json(c->req, 200, o);
	finish(c);
}

static void on_history(void *arg, int err, const char *why,
		       const struct rdr_row *rows, size_t n, bool truncated)
{
	struct api_call *c = arg;
	json_object *list;

	if (read_failed(c, err, why)) {
		finish(c);
		return;
	}
	list = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++) {
		json_object *r = window_json(&rows[i]);

		add(r, "test", json_object_new_string(rows[i].test));
		add(r, "statistic", jdouble(rows[i].statistic));
		add(r, "p_value", jdouble(rows[i].p_value));
		add(r, "threshold", jdouble(rows[i].threshold));
		add(r, "drifted", json_object_new_boolean(rows[i].drifted));
		json_object_array_add(list, r);
	}
	send_listing(c, list, truncated);
}

/* The query string's parameters into KV; on a malformed one answers 400. */
static bool parse_query(struct evhttp_request *req, struct evkeyvalq *kv)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	if (query && evhttp_parse_query_str(query, kv) < 0) {
		http_error_json(req, 400, "malformed query string");
		return false;
	}
	return true;
}

/* A filter's value: empty matches anything. */
static const char *any(const char *value)
{
	return *value ? value : NULL;
}

/* since, until and limit, which the list endpoints share: 1 when P is one
 * of them, 0 when it is not, -1 when its value is bad (answered 400). */
static int range_param(struct evhttp_request *req, const struct evkeyval *p,
		       int64_t *since_us, int64_t *until_us, unsigned *limit)
{
	if (!strcmp(p->key, "since") || !strcmp(p->key, "until")) {
		if (rq_parse_time(p->value, p->key[0] == 's' ? since_us : until_us) < 0) {
			http_error_json(req, 400, "%s: not an RFC 3339 time or "
					"unix seconds: \"%.64s\"", p->key, p->value);
			return -1;
		}
		return 1;
	}
	if (!strcmp(p->key, "limit")) {
		if (rq_parse_limit(p->value, limit) < 0) {
			http_error_json(req, 400, "limit: a positive integer, "
					"got \"%.32s\"", p->value);
			return -1;
		}
		return 1;
	}
	return 0;
}

static bool range_ok(struct evhttp_request *req, int64_t since_us,
		     int64_t until_us)
{
	if (since_us < until_us)
		return true;
	http_error_json(req, 400, "since must be before until");
	return false;
}

/* /status's one parameter, since: where its streaming alarm summary
 * starts (RFC 3339 or unix seconds), the last 24 h when absent.  On a bad
 * parameter answers 400. */
static bool status_params(struct evhttp_request *req, struct evkeyvalq *kv,
			  int64_t *since_us)
{
	struct evkeyval *p;
	unsigned unused;

	*since_us = now_us() - RECENT_ALARMS_US;
	if (!parse_query(req, kv))
		return false;
	TAILQ_FOREACH(p, kv, next) {
		if (strcmp(p->key, "since")) {
			http_error_json(req, 400, "unknown parameter \"%.64s\" "
					"(since)", p->key);
			return false;
		}
		if (range_param(req, p, since_us, NULL, &unused) < 0)
			return false;
	}
	return true;
}

void api_status(struct http_srv *h, struct evhttp_request *req,
		const char *const *args)
{
	struct evkeyvalq kv;
	struct api_call *c;
	int64_t since_us;

	TAILQ_INIT(&kv);
	if (known_model(h, req, args[0]) && status_params(req, &kv, &since_us) &&
	    (c = call_new(h, req, args[0]))) {
		c->since_us = since_us;
		launched(c, rdr_status(http_ctx(h)->rdr, c->model, on_status,
				       c, &c->rq));
	}
	evhttp_clear_headers(&kv);
}

/* Fills Q from the query string; on a bad parameter answers 400. */
static bool history_params(struct evhttp_request *req, struct evkeyvalq *kv,
			   struct rdr_history_query *q)
{
	struct evkeyval *p;
	int rc;

	if (!parse_query(req, kv))
		return false;
	TAILQ_FOREACH(p, kv, next) {
		if (!strcmp(p->key, "slice")) {
			q->slice = any(p->value);
		} else if (!strcmp(p->key, "test")) {
			q->test = any(p->value);
		} else if ((rc = range_param(req, p, &q->since_us, &q->until_us,
					     &q->limit))) {
			if (rc < 0)
				return false;
		} else {
			http_error_json(req, 400, "unknown parameter \"%.64s\" (slice, "
					"test, since, until, limit)", p->key);
			return false;
		}
	}
	return range_ok(req, q->since_us, q->until_us);
}

void api_history(struct http_srv *h, struct evhttp_request *req,
		 const char *const *args)
{
	struct rdr_history_query q = { .model = args[0], .since_us = INT64_MIN,
				       .until_us = INT64_MAX };
	struct evkeyvalq kv;
	struct api_call *c = NULL;

	TAILQ_INIT(&kv);
	if (known_model(h, req, args[0]) && history_params(req, &kv, &q) &&
	    (c = call_new(h, req, args[0]))) {
		launched(c, rdr_history(http_ctx(h)->rdr, &q, on_history, c,
					&c->rq));
	}
	evhttp_clear_headers(&kv);
}

/* ---- /v1/models/{m}/alarms ---- */

static json_object *alarm_json(const struct rdr_alarm *a)
{
	json_object *o = json_object_new_object();

	add(o, "alarm_id", json_object_new_int64(a->alarm_id));
	add(o, "slice", json_object_new_string(a->slice));
	add(o, "detected_at", jtime(a->detected_us));
	add(o, "detector", json_object_new_string(a->detector));
	add(o, "signal", json_object_new_string(a->signal));
	add(o, "direction", json_object_new_string(a->direction));
	add(o, "statistic", jdouble(a->statistic));
	add(o, "threshold", jdouble(a->threshold));
	add(o, "records_seen", json_object_new_int64(a->records_seen));
	add(o, "n_before", json_object_new_int64(a->n_before));
	add(o, "mean_before", jdouble(a->mean_before));
	add(o, "n_after", json_object_new_int64(a->n_after));
	add(o, "mean_after", jdouble(a->mean_after));
	/* jsonb's text; the tokenizer keeps each number's spelling */
	add(o, "params", json_tokener_parse(a->params));
	return o;
}

static void on_alarms(void *arg, int err, const char *why,
		      const struct rdr_alarm *rows, size_t n, bool truncated)
{
	struct api_call *c = arg;
	json_object *list;

	if (read_failed(c, err, why)) {
		finish(c);
		return;
	}
	list = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(list, alarm_json(&rows[i]));
	send_listing(c, list, truncated);
}

/* The configuration's name equal to VALUE, or NULL. */
static const char *detector_named(const char *value)
{
	for (int d = 0; d < RSIG_DETECTORS; d++)
		if (!strcmp(value, rsig_detector_name((enum rsig_detector)d)))
			return rsig_detector_name((enum rsig_detector)d);
	return NULL;
}

static const char *signal_named(const char *value)
{
	for (int i = 0; i < RSIG_SIGNALS; i++)
		if (!strcmp(value, rsig_signal_name((enum rsig_signal)i)))
			return rsig_signal_name((enum rsig_signal)i);
	return NULL;
}

static bool alarm_params(struct evhttp_request *req, struct evkeyvalq *kv,
			 struct rdr_alarm_query *q)
{
	struct evkeyval *p;
	int rc;

	if (!parse_query(req, kv))
		return false;
	TAILQ_FOREACH(p, kv, next) {
		if (!strcmp(p->key, "slice")) {
			q->slice = any(p->value);
		} else if (!strcmp(p->key, "detector")) {
			if (*p->value && !(q->detector = detector_named(p->value))) {
				http_error_json(req, 400, "detector: page_hinkley or "
						"adwin, got \"%.64s\"", p->value);
				return false;
			}
		} else if (!strcmp(p->key, "signal")) {
			if (*p->value && !(q->signal = signal_named(p->value))) {
				http_error_json(req, 400, "signal: score or error, "
						"got \"%.64s\"", p->value);
				return false;
			}
		} else if ((rc = range_param(req, p, &q->since_us, &q->until_us,
					     &q->limit))) {
			if (rc < 0)
				return false;
		} else {
			http_error_json(req, 400, "unknown parameter \"%.64s\" (slice, "
					"detector, signal, since, until, limit)", p->key);
			return false;
		}
	}
	return range_ok(req, q->since_us, q->until_us);
}

void api_alarms(struct http_srv *h, struct evhttp_request *req,
		const char *const *args)
{
	struct rdr_alarm_query q = { .model = args[0], .since_us = INT64_MIN,
				     .until_us = INT64_MAX };
	struct evkeyvalq kv;
	struct api_call *c = NULL;

	TAILQ_INIT(&kv);
	if (known_model(h, req, args[0]) && alarm_params(req, &kv, &q) &&
	    (c = call_new(h, req, args[0]))) {
		launched(c, rdr_alarms(http_ctx(h)->rdr, &q, on_alarms, c,
				       &c->rq));
	}
	evhttp_clear_headers(&kv);
}
