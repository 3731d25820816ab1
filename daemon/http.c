/* Health and metrics on the side port. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "stats.h"
#include "store.h"
#include "workers.h"

#define HTTP_MAX_HEADERS 16384
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_TIMEOUT_S 30

struct http_srv {
	struct evhttp *http;
	struct http_ctx ctx;
};

static void metric(struct evbuffer *b, const char *name, const char *type,
		   const char *help, uint64_t value)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
			    name, help, name, type, name, value);
}

static void header(struct evbuffer *b, const char *name, const char *type,
		   const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			    name, type);
}

static void model_metrics(void *arg, const struct eng_model_info *mi)
{
	struct evbuffer *b = arg;

	evbuffer_add_printf(b,
			    "driftd_model_slices{model=\"%s\"} %zu\n"
			    "driftd_model_sample_bytes{model=\"%s\"} %zu\n"
			    "driftd_model_records_total{model=\"%s\"} %" PRIu64 "\n"
			    "driftd_model_windows_total{model=\"%s\"} %" PRIu64 "\n",
			    mi->name, mi->slices, mi->name, mi->sample_bytes,
			    mi->name, mi->records, mi->name, mi->windows);
}

/* One labelled sample per model of the slice, reference and label
 * counters (their HELP/TYPE lines come first, in slice_metric_headers). */
static void slice_metrics(void *arg, const struct eng_model_info *mi)
{
	struct evbuffer *b = arg;
	const char *m = mi->name;

	evbuffer_add_printf(b,
		"driftd_model_slices_refused_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_slices_expired_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_windows_insufficient_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_alarms_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_reference_resets_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_references_restored_total{model=\"%s\"} %" PRIu64 "\n"
		"driftd_model_labels_pending{model=\"%s\"} %zu\n",
		m, mi->slices_refused, m, mi->slices_expired, m,
		mi->windows_insufficient, m, mi->alarms, m, mi->resets, m,
		mi->references_restored, m, mi->labels_pending);
	evbuffer_add_printf(b,
		"driftd_model_labels_total{model=\"%s\",outcome=\"joined\"} %" PRIu64 "\n"
		"driftd_model_labels_total{model=\"%s\",outcome=\"unmatched\"} %" PRIu64 "\n"
		"driftd_model_labels_total{model=\"%s\",outcome=\"expired\"} %" PRIu64 "\n"
		"driftd_model_labels_total{model=\"%s\",outcome=\"evicted\"} %" PRIu64 "\n",
		m, mi->labels_joined, m, mi->labels_unmatched, m,
		mi->labels_expired, m, mi->labels_evicted);
}

static void slice_metric_headers(struct evbuffer *b)
{
	header(b, "driftd_model_slices_refused_total", "counter",
	       "Records refused because the model tracks max_slices slices.");
	header(b, "driftd_model_slices_expired_total", "counter",
	       "Slices dropped after slice.idle_timeout without records.");
	header(b, "driftd_model_windows_insufficient_total", "counter",
	       "Windows recorded as insufficient_data instead of tested.");
	header(b, "driftd_model_alarms_total", "counter",
	       "Windows whose slice met the alarm.k of alarm.m rule.");
	header(b, "driftd_model_reference_resets_total", "counter",
	       "Reference resets (POST /v1/models/M/reference/reset).");
	header(b, "driftd_model_references_restored_total", "counter",
	       "Reference sets restored from PostgreSQL at start.");
	header(b, "driftd_model_labels_pending", "gauge",
	       "Scored records waiting for a label sent later.");
	header(b, "driftd_model_labels_total", "counter",
	       "Labels sent on their own, by outcome; expired and evicted "
	       "count records whose label never came.");
}

/* The spill journal (docs/sql.md, "When PostgreSQL is away"). */
static void journal_metrics(const struct http_srv *h, struct evbuffer *b)
{
	struct store_journal_stats js;

	store_journal_stats(h->ctx.store, &js);
	metric(b, "driftd_store_journal_bytes", "gauge",
	       "Bytes of the spill journal in state_dir.", js.bytes);
	metric(b, "driftd_store_journal_max_bytes", "gauge",
	       "Configured size of the spill journal (store.journal_max).",
	       js.max_bytes);
	metric(b, "driftd_store_journal_records", "gauge",
	       "Database writes waiting in the spill journal.", js.records);
	metric(b, "driftd_store_journal_full", "gauge",
	       "1 when the journal is full: new windows are refused.",
	       js.full);
	metric(b, "driftd_store_journal_appended_total", "counter",
	       "Database writes put in the spill journal.", js.appended);
	metric(b, "driftd_store_journal_replayed_total", "counter",
	       "Journaled writes committed after the database came back.",
	       js.replayed);
	metric(b, "driftd_store_journal_discarded_total", "counter",
	       "Damaged journal records cut off at start.", js.discarded);
	metric(b, "driftd_store_accepting", "gauge",
	       "1 when new windows can be kept (database or journal).",
	       store_accepting(h->ctx.store));
}

static void write_metrics(const struct http_srv *h, struct evbuffer *b)
{
	int e;

	metric(b, "driftd_records_accepted_total", "counter",
	       "Records accepted into windows.", st.records_accepted);
	header(b, "driftd_records_rejected_total", "counter",
	       "Records refused, by reason.");
	for (e = 1; e < REC_ERR__COUNT; e++)
		evbuffer_add_printf(b, "driftd_records_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
				    rec_err_name((enum rec_err)e),
				    st.records_rejected[e]);
	metric(b, "driftd_ingest_bytes_total", "counter",
	       "Bytes read from ingest connections.", st.bytes_received);
	metric(b, "driftd_connections_accepted_total", "counter",
	       "Ingest connections accepted.", st.connections_accepted);
	metric(b, "driftd_connections_refused_total", "counter",
	       "Ingest connections refused over max_connections.",
	       st.connections_refused);
	metric(b, "driftd_connections_open", "gauge",
	       "Ingest connections open.", st.connections_open);
	metric(b, "driftd_windows_closed_total", "counter",
	       "Windows closed and sent to the detectors.", st.windows_closed);
	metric(b, "driftd_windows_written_total", "counter",
	       "Window results handed to the database writer.",
	       st.windows_written);
	metric(b, "driftd_windows_drifted_total", "counter",
	       "Windows with at least one drifted test.", st.windows_drifted);
	metric(b, "driftd_windows_failed_total", "counter",
	       "Windows whose detectors failed.", st.windows_failed);
	metric(b, "driftd_windows_dropped_total", "counter",
	       "Window results dropped: database unreachable and journal full.",
	       st.windows_dropped);
	metric(b, "driftd_windows_insufficient_total", "counter",
	       "Windows recorded as insufficient_data instead of tested.",
	       st.windows_insufficient);
	header(b, "driftd_detector_seconds_total", "counter",
	       "Time spent in detector jobs.");
	evbuffer_add_printf(b, "driftd_detector_seconds_total %.6f\n",
			    (double)st.detector_us_total / 1e6);
	metric(b, "driftd_jobs_queued", "gauge",
	       "Detector jobs waiting for a worker.", wq_depth(h->ctx.wq));
	metric(b, "driftd_store_up", "gauge",
	       "1 when the database connection is ready.",
	       store_get_state(h->ctx.store) == STORE_READY);
	metric(b, "driftd_store_pending", "gauge",
	       "Results queued for the database.", store_pending(h->ctx.store));
	metric(b, "driftd_store_written_total", "counter",
	       "Windows committed to the database.",
	       store_written(h->ctx.store));
	metric(b, "driftd_store_duplicates_total", "counter",
	       "Windows the database already held (replays).",
	       store_duplicates(h->ctx.store));
	journal_metrics(h, b);
	metric(b, "driftd_reloads_total", "counter",
	       "Configuration reloads applied.", st.reloads);
	metric(b, "driftd_reload_failures_total", "counter",
	       "Configuration reloads refused.", st.reload_failures);
	header(b, "driftd_model_slices", "gauge", "Slices tracked per model.");
	header(b, "driftd_model_sample_bytes", "gauge",
	       "Bytes of reference and window samples per model.");
	header(b, "driftd_model_records_total", "counter",
	       "Records accepted per model.");
	header(b, "driftd_model_windows_total", "counter",
	       "Windows closed per model.");
	eng_foreach_model(h->ctx.eng, model_metrics, b);
	slice_metric_headers(b);
	eng_foreach_model(h->ctx.eng, slice_metrics, b);
}

static void send_text(struct evhttp_request *req, int code, const char *reason,
		      const char *ctype, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

#define RESET_PREFIX "/v1/models/"
#define RESET_SUFFIX "/reference/reset"

/* POST /v1/models/{m}/reference/reset: a retraining pipeline deployed a
 * new model version; its slices warm up (or take explicit reference
 * records) again.  Answers JSON. */
static void reference_reset(struct http_srv *h, struct evhttp_request *req,
			    const char *path, struct evbuffer *b)
{
	size_t len = strlen(path) - strlen(RESET_PREFIX) - strlen(RESET_SUFFIX);
	char model[128];
	int n;

	if (len == 0 || len >= sizeof(model)) {
		evbuffer_add_printf(b, "{\"error\":\"unknown_model\"}\n");
		send_text(req, HTTP_NOTFOUND, "Not Found", "application/json", b);
		return;
	}
	memcpy(model, path + strlen(RESET_PREFIX), len);
	model[len] = '\0';
	n = strchr(model, '/') ? -ENOENT : eng_reset_references(h->ctx.eng, model);
	if (n == -ENOENT) {
		evbuffer_add_printf(b, "{\"error\":\"unknown_model\",\"message\":"
				    "\"no model named in the configuration\"}\n");
		send_text(req, HTTP_NOTFOUND, "Not Found", "application/json", b);
	} else if (n < 0) {
		evbuffer_add_printf(b, "{\"error\":\"overloaded\",\"message\":"
				    "\"out of memory\"}\n");
		send_text(req, HTTP_SERVUNAVAIL, "Service Unavailable",
			  "application/json", b);
	} else {
		/* Model names are [A-Za-z0-9_.-]: no JSON escaping needed. */
		evbuffer_add_printf(b, "{\"model\":\"%s\",\"slices_reset\":%d}\n",
				    model, n);
		send_text(req, HTTP_OK, "OK", "application/json", b);
	}
}

static bool is_reset_path(const char *path)
{
	size_t len = strlen(path);

	return len > strlen(RESET_PREFIX) + strlen(RESET_SUFFIX) &&
	       !strncmp(path, RESET_PREFIX, strlen(RESET_PREFIX)) &&
	       !strcmp(path + len - strlen(RESET_SUFFIX), RESET_SUFFIX);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_srv *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
	bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;

	if (!b) {
		evhttp_send_error(req, HTTP_SERVUNAVAIL, "out of memory");
		return;
	}
	if (!path) {
		evbuffer_add_printf(b, "bad request\n");
		send_text(req, HTTP_BADREQUEST, "Bad Request", "text/plain", b);
	} else if (get && !strcmp(path, "/metrics")) {
		write_metrics(h, b);
		send_text(req, HTTP_OK, "OK",
			  "text/plain; version=0.0.4; charset=utf-8", b);
	} else if (get && !strcmp(path, "/healthz")) {
		evbuffer_add_printf(b, "ok\n");
		send_text(req, HTTP_OK, "OK", "text/plain", b);
	} else if (get && !strcmp(path, "/readyz")) {
		bool ready = h->ctx.is_ready(h->ctx.arg);

		evbuffer_add_printf(b, ready ? "ready\n" : "not ready\n");
		send_text(req, ready ? HTTP_OK : HTTP_SERVUNAVAIL,
			  ready ? "OK" : "Service Unavailable", "text/plain", b);
	} else if (post && is_reset_path(path)) {
		reference_reset(h, req, path, b);
	} else {
		evbuffer_add_printf(b, "no such endpoint: %s\n", path);
		send_text(req, HTTP_NOTFOUND, "Not Found", "text/plain", b);
	}
	evbuffer_free(b);
}

struct http_srv *http_new(struct event_base *base, const struct http_ctx *ctx)
{
	struct http_srv *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = *ctx;
	h->http = evhttp_new(base);
	if (!h->http) {
		free(h);
		return NULL;
	}
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTP_MAX_BODY);
	evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(h->http, on_request, h);
	return h;
}

int http_add_listener(struct http_srv *h, int fd)
{
	return evhttp_accept_socket_with_handle(h->http, fd) ? 0 : -ENOMEM;
}

void http_free(struct http_srv *h)
{
	if (!h)
		return;
	evhttp_free(h->http);
	free(h);
}
