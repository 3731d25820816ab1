/* Health and metrics on the side port. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "engine.h"
#include "frame.h"
#include "http_ingest.h"
#include "ndjson.h"
#include "stats.h"
#include "store.h"
#include "workers.h"

#define HTTP_MAX_HEADERS 16384
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_TIMEOUT_S 30

struct http_srv {
	struct evhttp *http;
	struct http_ctx ctx;
	struct ndj_parser *parser;	/* for ingest bodies */
	size_t max_line;
	char *token;
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

static void labelled(struct evbuffer *b, const char *name, const char *label,
		     const char *value, uint64_t n)
{
	evbuffer_add_printf(b, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label,
			    value, n);
}

/* Limits and refusals of the ingest paths (ingest.c, http_ingest.c). */
static void ingest_metrics(struct evbuffer *b)
{
	static const char *const http_causes[ST_HTTP_REFUSALS] = {
		[ST_HTTP_AUTH] = "auth", [ST_HTTP_OVERLOADED] = "overloaded",
		[ST_HTTP_METHOD] = "method",
	};
	int e;

	metric(b, "driftd_frames_received_total", "counter",
	       "Binary frames received.", st.frames_received);
	header(b, "driftd_frames_rejected_total", "counter",
	       "Binary frames refused, by reason.");
	for (e = FRM_ERR_VERSION; e <= FRM_ERR_TIMEOUT; e++)
		labelled(b, "driftd_frames_rejected_total", "reason",
			 frm_err_name((enum frm_err)e), st.frames_rejected[e]);
	metric(b, "driftd_auth_failures_total", "counter",
	       "Clients refused for a missing or wrong token.",
	       st.auth_failures);
	header(b, "driftd_connection_timeouts_total", "counter",
	       "Ingest connections closed by a timeout, by kind.");
	labelled(b, "driftd_connection_timeouts_total", "kind", "handshake",
		 st.timeouts_handshake);
	labelled(b, "driftd_connection_timeouts_total", "kind", "frame",
		 st.timeouts_frame);
	labelled(b, "driftd_connection_timeouts_total", "kind", "idle",
		 st.timeouts_idle);
	metric(b, "driftd_accept_errors_total", "counter",
	       "Failed accepts (e.g. out of file descriptors).",
	       st.accept_errors);
	metric(b, "driftd_ingest_pauses_total", "counter",
	       "Times a connection stopped being read for backpressure.",
	       st.ingest_pauses);
	metric(b, "driftd_connections_paused", "gauge",
	       "Ingest connections not read now, for backpressure.",
	       st.connections_paused);
	metric(b, "driftd_http_ingest_requests_total", "counter",
	       "POST /v1/ingest and /v1/labels requests.",
	       st.http_ingest_requests);
	header(b, "driftd_http_ingest_refused_total", "counter",
	       "HTTP ingest requests refused whole, by cause.");
	for (e = 0; e < ST_HTTP_REFUSALS; e++)
		labelled(b, "driftd_http_ingest_refused_total", "cause",
			 http_causes[e], st.http_ingest_refused[e]);
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
	ingest_metrics(b);
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
	       "Window results dropped because the database queue was full.",
	       st.windows_dropped);
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
}

static void send_text(struct evhttp_request *req, int code, const char *reason,
		      const char *ctype, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, body);
}

static void ingest(struct http_srv *h, struct evhttp_request *req,
		   bool labels)
{
	struct hti_ctx c = {
		.eng = h->ctx.eng,
		.parser = h->parser,
		.max_line = h->max_line,
		.token = h->token,
		.pressure = h->ctx.pressure(h->ctx.arg),
	};

	hti_handle(req, &c, labels);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_srv *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b = evbuffer_new();
	bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;

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
	} else if (!strcmp(path, "/v1/ingest")) {
		ingest(h, req, false);
	} else if (!strcmp(path, "/v1/labels")) {
		ingest(h, req, true);
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
	h->parser = ndj_new();
	h->max_line = HTTP_MAX_BODY;
	if (!h->http || !h->parser) {
		http_free(h);
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

int http_set_limits(struct http_srv *h, const struct conf *c)
{
	char *token = NULL;

	if (c->token && !(token = strdup(c->token)))
		return -ENOMEM;
	free(h->token);
	h->token = token;
	h->max_line = c->max_line;
	evhttp_set_max_body_size(h->http, c->max_body);
	evhttp_set_timeout(h->http, (int)((c->http_timeout_us + 999999) /
					  1000000));
	return 0;
}

void http_free(struct http_srv *h)
{
	if (!h)
		return;
	if (h->http)
		evhttp_free(h->http);
	ndj_free(h->parser);
	free(h->token);
	free(h);
}
