/* The side port: route table, health, readiness, /metrics, the status page. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "conf.h"
#include "config.h"
#include "engine.h"
#include "frame.h"
#include "hook.h"
#include "http_ingest.h"
#include "latest.h"
#include "ndjson.h"
#include "prom.h"
#include "reader.h"
#include "reqparse.h"
#include "stats.h"
#include "store.h"
#include "workers.h"
#include "www.h"

#define HTTP_MAX_HEADERS 16384
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_TIMEOUT_S 30
#define HTTP_PATH_MAX 1024

struct http_srv {
	struct evhttp *http;
	struct http_ctx ctx;
	struct api *api;
	struct ndj_parser *parser;	/* for ingest bodies */
	size_t max_line;
	char *token;
};

/* ---- replies ---- */

void http_reply(struct evhttp_request *req, int code, const char *ctype,
		struct evbuffer *body)
{
	if (ctype)
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "Content-Type", ctype);
	if (code >= 100 && code < 600)
		st.http_responses[code / 100]++;
	evhttp_send_reply(req, code, NULL, body);
}

static void reply_text(struct evhttp_request *req, int code, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
static void reply_text(struct evhttp_request *req, int code, const char *fmt,
		       ...)
{
	struct evbuffer *b = evbuffer_new();
	va_list ap;

	if (b) {
		va_start(ap, fmt);
		evbuffer_add_vprintf(b, fmt, ap);
		va_end(ap);
	}
	http_reply(req, code, "text/plain; charset=utf-8", b);
	if (b)
		evbuffer_free(b);
}

/* JSON string escaping for a message that may quote client input. */
static void add_json_string(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(b, "\\u%04x", ch);
		else
			evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

void http_error_json(struct evhttp_request *req, int code, const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (b) {
		evbuffer_add_printf(b, "{\"error\":");
		add_json_string(b, msg);
		evbuffer_add_printf(b, "}\n");
	}
	http_reply(req, code, "application/json", b);
	if (b)
		evbuffer_free(b);
}

/* ---- /metrics ---- */

struct model_list {
	struct eng_model_info *m;	/* NULL: counting */
	size_t n;
};

static void collect_model(void *arg, const struct eng_model_info *mi)
{
	struct model_list *l = arg;

	if (l->m)
		l->m[l->n] = *mi;
	l->n++;
}

/* The slices of one model that get their own series: "*" first, then the
 * drifted ones, then the rest, each in key order, up to CAP. */
static size_t select_slices(const struct lat *l, size_t cap, size_t *idx)
{
	size_t n = 0, total = lat_count(l), i;
	int pass;

	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < total && n < cap; i++) {
			const struct lat_slice *s = lat_get(l, i);
			bool star = !strcmp(s->key, "*");
			int want = star ? 0 : s->drifted ? 1 : 2;

			if (want == pass)
				idx[n++] = i;
		}
	return n;
}

enum slice_metric { SM_DRIFTED, SM_WINDOW_END, SM_WINDOW_ID };
enum test_metric { TM_STAT, TM_P, TM_THRESHOLD, TM_DRIFTED };

struct sel {
	const struct eng_model_info *mi;
	size_t *idx, n;
};

static void slice_family(struct evbuffer *b, const struct sel *sel, size_t ns,
			 enum slice_metric what)
{
	static const struct { const char *name, *type, *help; } f[] = {
		[SM_DRIFTED] = { "driftd_slice_drifted", "gauge",
				 "1 when any test of the slice's latest window drifted." },
		[SM_WINDOW_END] = { "driftd_slice_window_end_seconds", "gauge",
				    "End of the slice's latest evaluated window, unix seconds." },
		[SM_WINDOW_ID] = { "driftd_slice_window_id", "gauge",
				   "window_id of the slice's latest evaluated window." },
	};

	prom_family(b, f[what].name, f[what].type, f[what].help);
	for (size_t m = 0; m < ns; m++)
		for (size_t i = 0; i < sel[m].n; i++) {
			const struct lat_slice *s = lat_get(sel[m].mi->latest, sel[m].idx[i]);
			double v = what == SM_DRIFTED ? (double)s->drifted :
				   what == SM_WINDOW_END ? (double)s->end_us / 1e6 :
							   (double)s->window_id;

			prom_sample(b, f[what].name, v, "model", sel[m].mi->name,
				    "slice", s->key, NULL);
		}
}

static void test_family(struct evbuffer *b, const struct sel *sel, size_t ns,
			enum test_metric what)
{
	static const struct { const char *name, *help; } f[] = {
		[TM_STAT] = { "driftd_test_statistic",
			      "Statistic of each test on the slice's latest window." },
		[TM_P] = { "driftd_test_p_value",
			   "p-value of each test on the slice's latest window (tests with one)." },
		[TM_THRESHOLD] = { "driftd_test_threshold",
				   "Cut-off the decision used: on the p-value when the test has one, else on the statistic." },
		[TM_DRIFTED] = { "driftd_test_drifted",
				 "1 when the test drifted on the slice's latest window, after correction." },
	};

	prom_family(b, f[what].name, "gauge", f[what].help);
	for (size_t m = 0; m < ns; m++)
		for (size_t i = 0; i < sel[m].n; i++) {
			const struct lat_slice *s = lat_get(sel[m].mi->latest, sel[m].idx[i]);

			for (size_t t = 0; t < s->n_tests; t++) {
				const struct lat_test *lt = &s->tests[t];
				double v = what == TM_STAT ? lt->statistic :
					   what == TM_P ? lt->p_value :
					   what == TM_THRESHOLD ? lt->threshold :
								  (double)lt->drifted;

				if (isnan(v) && what != TM_STAT)
					continue;
				prom_sample(b, f[what].name, v, "model", sel[m].mi->name,
					    "slice", s->key, "test", lt->name, NULL);
			}
		}
}

/* Labels sent on their own, by what became of them; expired and evicted
 * count scored records whose label never came. */
static void label_family(struct evbuffer *b, const struct model_list *ml)
{
	static const char *const outcomes[] = { "joined", "unmatched", "expired",
						"evicted" };

	prom_family(b, "driftd_model_labels_total", "counter",
		    "Labels joined or not, and records whose label never came.");
	for (size_t i = 0; i < ml->n; i++) {
		const struct eng_model_info *mi = &ml->m[i];
		uint64_t v[] = { mi->labels_joined, mi->labels_unmatched,
				 mi->labels_expired, mi->labels_evicted };

		for (size_t k = 0; k < 4; k++)
			prom_sample(b, "driftd_model_labels_total", (double)v[k],
				    "model", mi->name, "outcome", outcomes[k], NULL);
	}
}

/* Streaming alarms per model, detector and signal: few series whatever
 * the slices (their alarms per slice are in driftd.stream_alarm_history). */
static void stream_families(struct evbuffer *b, const struct model_list *ml)
{
	static const unsigned det_flags[RSIG_DETECTORS] = {
		[RSIG_PH] = CONF_STREAM_PH, [RSIG_ADWIN] = CONF_STREAM_ADWIN,
	};
	static const unsigned sig_flags[RSIG_SIGNALS] = {
		[RSIG_SCORE] = CONF_SIGNAL_SCORE, [RSIG_ERROR] = CONF_SIGNAL_ERROR,
	};
	static const struct { const char *name, *help; } f[] = {
		{ "driftd_stream_alarms_total",
		  "Streaming detector alarms recorded, per detector and signal." },
		{ "driftd_stream_alarms_suppressed_total",
		  "Streaming detector alarms within stream.alarm_interval of the previous one: counted only." },
	};

	for (size_t k = 0; k < 2; k++) {
		prom_family(b, f[k].name, "counter", f[k].help);
		for (size_t i = 0; i < ml->n; i++) {
			const struct eng_model_info *mi = &ml->m[i];

			for (int d = 0; d < RSIG_DETECTORS; d++)
				for (int g = 0; g < RSIG_SIGNALS; g++) {
					if (!(mi->stream_detectors & det_flags[d]) ||
					    !(mi->stream_signals & sig_flags[g]))
						continue;
					prom_sample(b, f[k].name, (double)(k ?
						    mi->stream_suppressed[d][g] :
						    mi->stream_alarms[d][g]),
						    "model", mi->name, "detector",
						    rsig_detector_name((enum rsig_detector)d),
						    "signal",
						    rsig_signal_name((enum rsig_signal)g), NULL);
				}
		}
	}
	prom_family(b, "driftd_stream_state_bytes", "gauge",
		    "Bytes of streaming detector state per model.");
	for (size_t i = 0; i < ml->n; i++)
		if (ml->m[i].stream_detectors)
			prom_sample(b, "driftd_stream_state_bytes",
				    (double)ml->m[i].stream_bytes, "model",
				    ml->m[i].name, NULL);
}

static void model_families(struct evbuffer *b, const struct model_list *ml)
{
	static const struct { const char *name, *type, *help; } f[] = {
		{ "driftd_model_slices", "gauge", "Slices tracked per model." },
		{ "driftd_model_sample_bytes", "gauge",
		  "Bytes of reference and window samples per model." },
		{ "driftd_model_spare_window_bytes", "gauge",
		  "Bytes of closed windows' buffers kept for the next windows." },
		{ "driftd_model_records_total", "counter", "Records accepted per model." },
		{ "driftd_model_windows_total", "counter", "Windows closed per model." },
		{ "driftd_model_slices_drifted", "gauge",
		  "Slices whose latest window drifted, all slices counted." },
		{ "driftd_model_slices_refused_total", "counter",
		  "Records refused because the model tracks max_slices slices." },
		{ "driftd_model_slices_expired_total", "counter",
		  "Slices dropped after slice.idle_timeout without records." },
		{ "driftd_model_windows_insufficient_total", "counter",
		  "Windows recorded as insufficient_data instead of tested." },
		{ "driftd_model_alarms_total", "counter",
		  "Windows whose slice met the alarm.k of alarm.m rule." },
		{ "driftd_model_reference_resets_total", "counter",
		  "Reference resets (POST /v1/models/M/reference/reset)." },
		{ "driftd_model_references_restored_total", "counter",
		  "Reference sets restored from PostgreSQL at start." },
		{ "driftd_model_alarm_histories_restored_total", "counter",
		  "Slices whose K-of-M alarm history was restored at start." },
		{ "driftd_model_labels_pending", "gauge",
		  "Scored records waiting for a label sent later." },
	};

	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		prom_family(b, f[k].name, f[k].type, f[k].help);
		for (size_t i = 0; i < ml->n; i++) {
			const struct eng_model_info *mi = &ml->m[i];
			double v[] = { (double)mi->slices, (double)mi->sample_bytes,
				       (double)mi->spare_bytes,
				       (double)mi->records, (double)mi->windows,
				       (double)lat_drifted(mi->latest),
				       (double)mi->slices_refused,
				       (double)mi->slices_expired,
				       (double)mi->windows_insufficient,
				       (double)mi->alarms, (double)mi->resets,
				       (double)mi->references_restored,
				       (double)mi->histories_restored,
				       (double)mi->labels_pending };

			prom_sample(b, f[k].name, v[k], "model", mi->name, NULL);
		}
	}
	label_family(b, ml);
	stream_families(b, ml);
}

/* Per-slice series, capped per model by [listen] metrics_max_slices. */
static void slice_families(const struct http_srv *h, struct evbuffer *b,
			   const struct model_list *ml)
{
	size_t cap = (*h->ctx.conf)->metrics_max_slices, i;
	struct sel *sel = calloc(ml->n ? ml->n : 1, sizeof(*sel));
	bool oom = !sel;

	for (i = 0; sel && i < ml->n; i++) {
		size_t total = lat_count(ml->m[i].latest);

		sel[i].mi = &ml->m[i];
		sel[i].idx = calloc(total < cap ? total + 1 : cap + 1, sizeof(size_t));
		oom |= !sel[i].idx;
		if (sel[i].idx)
			sel[i].n = select_slices(ml->m[i].latest, cap, sel[i].idx);
	}
	prom_family(b, "driftd_metrics_slices_omitted", "gauge",
		    "Slices left out of the per-slice series by metrics_max_slices.");
	for (i = 0; i < ml->n; i++)
		prom_sample(b, "driftd_metrics_slices_omitted",
			    (double)(lat_count(ml->m[i].latest) - (sel ? sel[i].n : 0)),
			    "model", ml->m[i].name, NULL);
	if (!oom) {
		slice_family(b, sel, ml->n, SM_DRIFTED);
		slice_family(b, sel, ml->n, SM_WINDOW_END);
		slice_family(b, sel, ml->n, SM_WINDOW_ID);
		for (int t = TM_STAT; t <= TM_DRIFTED; t++)
			test_family(b, sel, ml->n, (enum test_metric)t);
	}
	for (i = 0; sel && i < ml->n; i++)
		free(sel[i].idx);
	free(sel);
}

/* The spill journal (docs/slices.md, "When PostgreSQL is away"). */
static void journal_families(const struct http_srv *h, struct evbuffer *b)
{
	struct store_journal_stats js;

	store_journal_stats(h->ctx.store, &js);
	prom_gauge(b, "driftd_store_journal_bytes",
		   "Bytes of the spill journal in state_dir.", (double)js.bytes);
	prom_gauge(b, "driftd_store_journal_max_bytes",
		   "Size the spill journal may reach ([store] journal_max).",
		   (double)js.max_bytes);
	prom_gauge(b, "driftd_store_journal_records",
		   "Database writes waiting in the spill journal.", (double)js.records);
	prom_gauge(b, "driftd_store_journal_full",
		   "1 when the spill journal is full: new windows are refused.",
		   js.full);
	prom_counter(b, "driftd_store_journal_appended_total",
		     "Database writes put in the spill journal.", js.appended);
	prom_counter(b, "driftd_store_journal_replayed_total",
		     "Journaled writes committed after the database came back.",
		     js.replayed);
	prom_counter(b, "driftd_store_journal_discarded_total",
		     "Damaged journal segment tails cut off.", js.discarded);
	prom_gauge(b, "driftd_store_accepting",
		   "1 when new windows can be kept (database or journal).",
		   store_accepting(h->ctx.store));
}

static void store_families(const struct http_srv *h, struct evbuffer *b)
{
	static const char *const names[] = {
		[STORE_CONNECTING] = "connecting", [STORE_MIGRATING] = "migrating",
		[STORE_READY] = "ready", [STORE_DOWN] = "down", [STORE_CLOSED] = "closed",
	};
	enum store_state now = store_get_state(h->ctx.store);

	prom_gauge(b, "driftd_store_up", "1 when the database connection is ready.",
		   now == STORE_READY);
	prom_family(b, "driftd_store_state", "gauge",
		    "1 for the database writer's current state.");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		prom_sample(b, "driftd_store_state", i == now, "state", names[i], NULL);
	prom_gauge(b, "driftd_store_pending", "Writes queued for the database.",
		   (double)store_pending(h->ctx.store));
	prom_counter(b, "driftd_store_written_total",
		     "Windows committed to the database.", store_written(h->ctx.store));
	prom_counter(b, "driftd_store_duplicates_total",
		     "Windows found already written (replays).",
		     store_duplicates(h->ctx.store));
	prom_counter(b, "driftd_store_dropped_total",
		     "Writes the database rejected for their content.",
		     store_dropped(h->ctx.store));
	prom_histogram(b, "driftd_store_write_duration_seconds",
		       "One window write statement, sent to committed.",
		       &st.store_write_seconds);
	prom_histogram(b, "driftd_store_commit_delay_seconds",
		       "One window, handed to the store to committed (queue wait included).",
		       &st.store_commit_seconds);
	prom_gauge(b, "driftd_store_read_up",
		   "1 when the JSON API's database connection is ready.",
		   rdr_up(h->ctx.rdr));
	prom_gauge(b, "driftd_store_reads_queued",
		   "JSON API queries waiting or running.", (double)rdr_queued(h->ctx.rdr));
	prom_histogram(b, "driftd_store_read_duration_seconds",
		       "One JSON API query, sent to answered.", &st.store_read_seconds);
	journal_families(h, b);
}

/* Limits and refusals of the ingest paths (ingest.c, http_ingest.c). */
static void ingest_families(struct evbuffer *b)
{
	static const char *const http_causes[ST_HTTP_REFUSALS] = {
		[ST_HTTP_AUTH] = "auth", [ST_HTTP_OVERLOADED] = "overloaded",
	};
	static const char *const timeouts[] = { "handshake", "frame", "idle" };
	const uint64_t timeout_counts[] = { st.timeouts_handshake,
					    st.timeouts_frame, st.timeouts_idle };
	int e;

	prom_counter(b, "driftd_frames_received_total",
		     "Binary frames received.", st.frames_received);
	prom_family(b, "driftd_frames_rejected_total", "counter",
		    "Binary frames refused, by reason.");
	for (e = FRM_ERR_VERSION; e <= FRM_ERR_TIMEOUT; e++)
		prom_sample(b, "driftd_frames_rejected_total",
			    (double)st.frames_rejected[e], "reason",
			    frm_err_name((enum frm_err)e), NULL);
	prom_counter(b, "driftd_auth_failures_total",
		     "Clients refused for a missing or wrong token.",
		     st.auth_failures);
	prom_family(b, "driftd_connection_timeouts_total", "counter",
		    "Ingest connections closed by a timeout, by kind.");
	for (e = 0; e < 3; e++)
		prom_sample(b, "driftd_connection_timeouts_total",
			    (double)timeout_counts[e], "kind", timeouts[e], NULL);
	prom_counter(b, "driftd_accept_errors_total",
		     "Failed accepts (e.g. out of file descriptors).",
		     st.accept_errors);
	prom_counter(b, "driftd_ingest_pauses_total",
		     "Times a connection stopped being read for backpressure.",
		     st.ingest_pauses);
	prom_gauge(b, "driftd_connections_paused",
		   "Ingest connections not read now, for backpressure.",
		   (double)st.connections_paused);
	prom_counter(b, "driftd_http_ingest_requests_total",
		     "POST /v1/ingest and /v1/labels requests.",
		     st.http_ingest_requests);
	prom_family(b, "driftd_http_ingest_refused_total", "counter",
		    "HTTP ingest requests refused whole, by cause.");
	for (e = 0; e < ST_HTTP_REFUSALS; e++)
		prom_sample(b, "driftd_http_ingest_refused_total",
			    (double)st.http_ingest_refused[e], "cause",
			    http_causes[e], NULL);
}

static void write_metrics(const struct http_srv *h, struct evbuffer *b)
{
	static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	struct model_list ml = { NULL, 0 };
	const char *why;
	int e;

	prom_family(b, "driftd_build_info", "gauge", "Always 1; the version as a label.");
	prom_sample(b, "driftd_build_info", 1, "version", DRIFTD_VERSION, NULL);
	prom_gauge(b, "driftd_ready", "1 when /readyz answers 200.",
		   h->ctx.is_ready(h->ctx.arg, &why));
	prom_counter(b, "driftd_records_accepted_total",
		     "Records accepted into windows.", st.records_accepted);
	prom_family(b, "driftd_records_rejected_total", "counter",
		    "Records refused, by reason.");
	for (e = 1; e < REC_ERR__COUNT; e++)
		prom_sample(b, "driftd_records_rejected_total",
			    (double)st.records_rejected[e], "reason",
			    rec_err_name((enum rec_err)e), NULL);
	prom_counter(b, "driftd_ingest_bytes_total",
		     "Bytes read from ingest connections.", st.bytes_received);
	prom_counter(b, "driftd_connections_accepted_total",
		     "Ingest connections accepted.", st.connections_accepted);
	prom_counter(b, "driftd_connections_refused_total",
		     "Ingest connections refused over max_connections.",
		     st.connections_refused);
	prom_gauge(b, "driftd_connections_open", "Ingest connections open.",
		   (double)st.connections_open);
	ingest_families(b);
	prom_counter(b, "driftd_windows_closed_total",
		     "Windows closed and sent to the detectors.", st.windows_closed);
	prom_counter(b, "driftd_windows_written_total",
		     "Window results handed to the database writer.",
		     st.windows_written);
	prom_counter(b, "driftd_windows_drifted_total",
		     "Windows with at least one drifted test.", st.windows_drifted);
	prom_counter(b, "driftd_windows_failed_total",
		     "Windows whose detectors failed.", st.windows_failed);
	prom_counter(b, "driftd_windows_dropped_total",
		     "Window results dropped: database unreachable and journal full.",
		     st.windows_dropped);
	prom_counter(b, "driftd_windows_insufficient_total",
		     "Windows recorded as insufficient_data instead of tested.",
		     st.windows_insufficient);
	prom_family(b, "driftd_detector_seconds_total", "counter",
		    "Time spent in detector jobs.");
	prom_sample(b, "driftd_detector_seconds_total",
		    (double)st.detector_us_total / 1e6, NULL);
	prom_histogram(b, "driftd_detector_duration_seconds",
		       "Detectors on one window (one job on a worker thread).",
		       &st.detector_seconds);
	prom_histogram(b, "driftd_window_commit_latency_seconds",
		       "One window, closed to its rows committed.",
		       &st.window_latency_seconds);
	prom_gauge(b, "driftd_jobs_queued", "Detector jobs waiting for a worker.",
		   (double)wq_depth(h->ctx.wq));
	prom_gauge(b, "driftd_job_longest_run_seconds",
		   "Run time so far of the longest job on a worker (job_timeout).",
		   (double)wq_longest_run_us(h->ctx.wq) / 1e6);
	prom_counter(b, "driftd_workers_wedged_total",
		     "Times a job outran job_timeout (watchdog pings stop).",
		     st.workers_wedged);
	prom_gauge(b, "driftd_evaluations_in_flight",
		   "Evaluations submitted to the workers and not yet stored.",
		   (double)eng_in_flight(h->ctx.eng));
	store_families(h, b);
	prom_counter(b, "driftd_reloads_total", "Configuration reloads applied.",
		     st.reloads);
	prom_counter(b, "driftd_reload_failures_total",
		     "Configuration reloads refused.", st.reload_failures);
	prom_family(b, "driftd_http_responses_total", "counter",
		    "Answers on the HTTP side port, by status class.");
	for (e = 0; e < 5; e++)
		prom_sample(b, "driftd_http_responses_total",
			    (double)st.http_responses[e + 1], "code", classes[e], NULL);
	eng_foreach_model(h->ctx.eng, collect_model, &ml);
	if (!(ml.m = calloc(ml.n ? ml.n : 1, sizeof(*ml.m))))
		return;
	ml.n = 0;
	eng_foreach_model(h->ctx.eng, collect_model, &ml);
	model_families(b, &ml);
	slice_families(h, b, &ml);
	free(ml.m);
	hook_write_metrics(h->ctx.hook, b);
}

/* ---- handlers ---- */

static void get_metrics(struct http_srv *h, struct evhttp_request *req,
			const char *const *args)
{
	struct evbuffer *b = evbuffer_new();

	if (!b) {
		reply_text(req, 503, "out of memory\n");
		return;
	}
	write_metrics(h, b);
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

static void get_healthz(struct http_srv *h, struct evhttp_request *req,
			const char *const *args)
{
	reply_text(req, 200, "ok\n");
}

static void get_readyz(struct http_srv *h, struct evhttp_request *req,
		       const char *const *args)
{
	const char *why = "not ready";

	if (h->ctx.is_ready(h->ctx.arg, &why))
		reply_text(req, 200, "ready\n");
	else
		reply_text(req, 503, "not ready: %s\n", why);
}

static void get_index(struct http_srv *h, struct evhttp_request *req,
		      const char *const *args)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (!b) {
		reply_text(req, 503, "out of memory\n");
		return;
	}
	/* Everything the page needs is inline or under /v1 on this port. */
	evhttp_add_header(out, "Content-Security-Policy",
			  "default-src 'none'; script-src 'unsafe-inline'; "
			  "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evbuffer_add_reference(b, www_index_html, www_index_html_len, NULL, NULL);
	http_reply(req, 200, "text/html; charset=utf-8", b);
	evbuffer_free(b);
}

/* POST /v1/models/{m}/reference/reset: a new model version was deployed;
 * its slices warm up (or take explicit reference records) again. */
static void post_reference_reset(struct http_srv *h, struct evhttp_request *req,
				 const char *const *args)
{
	int n = eng_reset_references(h->ctx.eng, args[0]);
	struct evbuffer *b;

	if (n == -ENOENT) {
		http_error_json(req, 404, "unknown_model: no model %s in the "
				"configuration", args[0]);
		return;
	}
	if (n < 0 || !(b = evbuffer_new())) {
		http_error_json(req, 503, "out of memory");
		return;
	}
	/* A model that exists has a name of [A-Za-z0-9_.-]: nothing to escape. */
	evbuffer_add_printf(b, "{\"model\":\"%s\",\"slices_reset\":%d}\n",
			    args[0], n);
	http_reply(req, 200, "application/json", b);
	evbuffer_free(b);
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

static void post_ingest(struct http_srv *h, struct evhttp_request *req,
			const char *const *args)
{
	ingest(h, req, false);
}

static void post_labels(struct http_srv *h, struct evhttp_request *req,
			const char *const *args)
{
	ingest(h, req, true);
}

/* POST /v1/webhooks/{name}/test: queue a signed test event (driftctl
 * webhooks test); 202 with its webhook-id, whose delivery then shows in
 * driftd.webhook_deliveries. */
static void post_webhook_test(struct http_srv *h, struct evhttp_request *req,
			      const char *const *args)
{
	char id[HOOKEV_ID_LEN + 1];
	struct evbuffer *b;
	int rc = strlen(args[0]) <= CONF_NAME_MAX
			 ? hook_send_test(h->ctx.hook, h->ctx.store, args[0], id) : -ENOENT;

	if (rc == -ENOENT) {
		http_error_json(req, 404, "no [webhook.%.64s] in the configuration", args[0]);
		return;
	}
	if (rc < 0 || !(b = evbuffer_new())) {
		http_error_json(req, 503, "cannot queue the test event: %s",
				strerror(rc < 0 ? -rc : ENOMEM));
		return;
	}
	/* A configured name is [A-Za-z0-9_.-]: nothing to escape. */
	evbuffer_add_printf(b, "{\"id\":\"%s\",\"endpoint\":\"%s\"}\n", id, args[0]);
	http_reply(req, 202, "application/json", b);
	evbuffer_free(b);
}

/* One row per endpoint.  A handler on another branch becomes one row here;
 * patterns take {name} segments, passed to the handler in order. */
static const struct route {
	enum evhttp_cmd_type method;
	const char *pattern;
	http_fn fn;
} routes[] = {
	{ EVHTTP_REQ_GET, "/", get_index },
	{ EVHTTP_REQ_GET, "/healthz", get_healthz },
	{ EVHTTP_REQ_GET, "/readyz", get_readyz },
	{ EVHTTP_REQ_GET, "/metrics", get_metrics },
	{ EVHTTP_REQ_GET, "/v1/models", api_models },
	{ EVHTTP_REQ_GET, "/v1/models/{m}/status", api_status },
	{ EVHTTP_REQ_GET, "/v1/models/{m}/history", api_history },
	{ EVHTTP_REQ_GET, "/v1/models/{m}/alarms", api_alarms },
	{ EVHTTP_REQ_POST, "/v1/models/{m}/reference/reset", post_reference_reset },
	{ EVHTTP_REQ_POST, "/v1/webhooks/{name}/test", post_webhook_test },
	{ EVHTTP_REQ_POST, "/v1/ingest", post_ingest },
	{ EVHTTP_REQ_POST, "/v1/labels", post_labels },
};

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_srv *h = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const char *args[HTTP_MAX_ARGS] = { NULL };
	char buf[HTTP_PATH_MAX];
	bool other_method = false;
	size_t i;

	if (!path || strlen(path) >= sizeof(buf)) {
		reply_text(req, 400, "bad request path\n");
		return;
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (rq_match(routes[i].pattern, path, buf, sizeof(buf), args) < 0)
			continue;
		if (routes[i].method == method) {
			routes[i].fn(h, req, args);
			return;
		}
		other_method = true;
	}
	if (other_method)
		reply_text(req, 405, "method not allowed on %s\n", path);
	else
		reply_text(req, 404, "no such endpoint: %s\n", path);
}

struct http_srv *http_new(struct event_base *base, const struct http_ctx *ctx)
{
	struct http_srv *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = *ctx;
	h->http = evhttp_new(base);
	h->api = api_new(h);
	h->parser = ndj_new();
	h->max_line = HTTP_MAX_BODY;
	if (!h->http || !h->api || !h->parser) {
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

const struct http_ctx *http_ctx(const struct http_srv *h)
{
	return &h->ctx;
}

struct api *http_api(const struct http_srv *h)
{
	return h->api;
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
	/* Pending reads first: freeing evhttp frees their requests. */
	api_free(h->api);
	if (h->http)
		evhttp_free(h->http);
	ndj_free(h->parser);
	free(h->token);
	free(h);
}
