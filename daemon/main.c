/* driftd: start-up, signals, reload and shutdown around the event loop. */
#include <cblas.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "config.h"
#include "engine.h"
#include "hook.h"
#include "http.h"
#include "idlease.h"
#include "ingest.h"
#include "log.h"
#include "reader.h"
#include "service.h"
#include "stats.h"
#include "store.h"
#include "workers.h"

struct stats st;

#define LISTEN_BACKLOG 512
#define MAX_LISTENERS SVC_MAX_SOCKETS
#define DRAIN_POLL_MS 50
#define HEALTH_POLL_MS 1000

struct daemon {
	struct event_base *base;
	struct conf *conf;
	const char *config_path;
	struct wq *wq;
	struct store *store;
	struct hook *hook;
	struct rdr *rdr;		/* the JSON API's reads */
	struct eng *eng;
	struct ing *ing;
	struct http_srv *http;
	int ingest_fds[MAX_LISTENERS], http_fds[MAX_LISTENERS];
	size_t n_ingest_fds, n_http_fds;
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
	struct event *watchdog_timer, *status_timer, *health_timer;
	uint64_t drain_deadline_ms;
	uint64_t status_at_ms, status_records;	/* for records/s */
	double records_per_s;
	struct ids *ids;		/* window-id leases in state_dir */
	bool ids_existed;		/* an earlier run left them */
	char *journal_dir;
	bool ready, stopping, activated, wedged, accepting, waiting_logged;
	int exit_code;
};

static enum log_level level_of(enum conf_log_level l)
{
	static const enum log_level map[] = {
		[CONF_LOG_ERR] = LOG_LVL_ERR,
		[CONF_LOG_WARNING] = LOG_LVL_WARNING,
		[CONF_LOG_NOTICE] = LOG_LVL_NOTICE,
		[CONF_LOG_INFO] = LOG_LVL_INFO,
		[CONF_LOG_DEBUG] = LOG_LVL_DEBUG,
	};
	return map[l];
}

static const char *store_state_name(enum store_state s)
{
	static const char *const names[] = {
		[STORE_CONNECTING] = "connecting", [STORE_MIGRATING] = "migrating",
		[STORE_READY] = "ready", [STORE_DOWN] = "down",
		[STORE_CLOSED] = "closed",
	};
	return names[s];
}

static void add_slices(void *arg, const struct eng_model_info *mi)
{
	*(size_t *)arg += mi->slices;
}

/* The line `systemctl status` shows. */
static void status_line(struct daemon *d, char *buf, size_t len)
{
	size_t slices = 0;

	eng_foreach_model(d->eng, add_slices, &slices);
	snprintf(buf, len, "%zu models, %zu slices, %.0f records/s, "
		 "store %s (%zu pending), %zu connections%s",
		 d->conf->n_models, slices, d->records_per_s,
		 store_state_name(store_get_state(d->store)),
		 store_pending(d->store), ing_connections(d->ing),
		 d->wedged ? ", a worker is wedged" : "");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- systemd: status and watchdog ---- */

static int arm_timer(struct daemon *d, struct event **ev, uint64_t period_us,
		     event_callback_fn fn)
{
	struct timeval tv = {
		.tv_sec = (time_t)(period_us / 1000000u),
		.tv_usec = (suseconds_t)(period_us % 1000000u),
	};

	if (!*ev && !(*ev = event_new(d->base, -1, EV_PERSIST, fn, d)))
		return -1;
	return event_add(*ev, &tv);
}

/* Healthy unless a job has outrun job_timeout: only a restart frees a
 * wedged worker.  Logs and counts each change; checked on every watchdog
 * and status tick, so the count moves without a watchdog too. */
static bool workers_healthy(struct daemon *d)
{
	uint64_t limit = d->conf->job_timeout_us, run = wq_longest_run_us(d->wq);

	if (limit && run > limit) {
		if (!d->wedged) {
			st.workers_wedged++;
			log_err("a detector job has run for %.1fs, beyond "
				"job_timeout (%.1fs): worker wedged%s",
				(double)run / 1e6, (double)limit / 1e6,
				d->watchdog_timer ? ", watchdog pings stop so "
				"that systemd restarts driftd" : "");
		}
		d->wedged = true;
		return false;
	}
	if (d->wedged)
		log_notice("workers healthy again%s",
			   d->watchdog_timer ? ": watchdog pings resume" : "");
	d->wedged = false;
	return true;
}

/* The tick itself shows that the loop turns.  A database outage does not
 * stop the pings: a restart would not bring the database back. */
static void on_watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	if (workers_healthy(d))
		svc_watchdog();
}

static void on_status_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	uint64_t now = now_ms();
	char status[256];

	if (now > d->status_at_ms)
		d->records_per_s = (double)(st.records_accepted -
					    d->status_records) *
				   1000.0 / (double)(now - d->status_at_ms);
	d->status_at_ms = now;
	d->status_records = st.records_accepted;
	workers_healthy(d);
	status_line(d, status, sizeof(status));
	svc_status(status);
}

static int start_timers(struct daemon *d)
{
	uint64_t watchdog_us = svc_watchdog_usec();

	d->status_at_ms = now_ms();
	if (arm_timer(d, &d->status_timer, d->conf->status_interval_us,
		      on_status_tick) < 0)
		return -1;
	if (!watchdog_us)
		return 0;
	log_info("systemd watchdog: %.1fs, pinging every %.1fs",
		 (double)watchdog_us / 1e6, (double)watchdog_us / 2e6);
	return arm_timer(d, &d->watchdog_timer, watchdog_us / 2,
			 on_watchdog_tick);
}

/* ---- listeners ---- */

/* Binds every configured address up front, so a taken port fails the
 * start at once rather than after the database answered. */
static int bind_all(char **specs, size_t n, int *fds, size_t *n_fds)
{
	char err[256];
	struct addr a;
	size_t i;
	int fd;

	if (n > MAX_LISTENERS) {
		log_err("at most %d listen addresses per kind", MAX_LISTENERS);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (addr_parse(specs[i], &a, err, sizeof(err)) < 0 ||
		    (fd = addr_listen(&a, LISTEN_BACKLOG, err, sizeof(err))) < 0) {
			log_err("cannot listen: %s", err);
			return -EINVAL;
		}
		fds[(*n_fds)++] = fd;
	}
	return 0;
}

/* Sockets systemd passed replace the configured addresses of their kind;
 * a kind it did not pass is bound from the config as usual. */
static int take_listeners(struct daemon *d)
{
	struct svc_sockets s;
	char err[256];
	int n = svc_listen_fds(&s, err, sizeof(err));

	if (n < 0) {
		log_err("socket activation: %s", err);
		return -1;
	}
	d->activated = n > 0;
	memcpy(d->ingest_fds, s.ingest, s.n_ingest * sizeof(int));
	memcpy(d->http_fds, s.http, s.n_http * sizeof(int));
	d->n_ingest_fds = s.n_ingest;
	d->n_http_fds = s.n_http;
	if (d->activated)
		log_notice("socket activation: %zu ingest and %zu http sockets "
			   "from systemd", s.n_ingest, s.n_http);
	if (!s.n_ingest && bind_all(d->conf->ingest, d->conf->n_ingest,
				    d->ingest_fds, &d->n_ingest_fds) < 0)
		return -1;
	if (!s.n_http && bind_all(d->conf->http, d->conf->n_http, d->http_fds,
				  &d->n_http_fds) < 0)
		return -1;
	return 0;
}

static void log_listening(const char *what, const int *fds, size_t n,
			  bool activated)
{
	char where[160];
	size_t i;

	for (i = 0; i < n; i++) {
		addr_describe_fd(fds[i], where, sizeof(where));
		log_notice("listening for %s on %s%s", what, where,
			   activated ? " (socket from systemd)" : "");
	}
}

/* Ingest waits for the database; the side port answers from the start,
 * so /readyz can say why the daemon is not ready yet. */
static int open_listeners(struct daemon *d, bool ingest)
{
	size_t i;

	for (i = 0; ingest && i < d->n_ingest_fds; i++)
		if (ing_add_listener(d->ing, d->ingest_fds[i]) < 0)
			return -1;
	for (i = 0; !ingest && i < d->n_http_fds; i++)
		if (http_add_listener(d->http, d->http_fds[i]) < 0)
			return -1;
	if (ingest) {
		log_listening("ingest", d->ingest_fds, d->n_ingest_fds,
			      d->activated);
		d->n_ingest_fds = 0;	/* owned by ing now */
	} else {
		log_listening("http", d->http_fds, d->n_http_fds, d->activated);
		d->n_http_fds = 0;	/* owned by http now */
	}
	return 0;
}

/* Ready while results can be kept: in the database, or in the spill
 * journal while the database is away; a full journal makes it unready. */
static bool is_ready(void *arg, const char **why)
{
	struct daemon *d = arg;

	if (d->stopping)
		*why = "stopping";
	else if (!d->ready)
		*why = "starting: waiting for the database";
	else if (!store_accepting(d->store))
		*why = "database unavailable and spill journal full";
	else
		return true;
	return false;
}

/* ---- store callbacks ---- */

/* Opens ingest and tells systemd; the status line goes to STATUS. */
static int go_ready(struct daemon *d, char *status, size_t len)
{
	hook_start(d->hook);
	if (open_listeners(d, true) < 0) {
		log_err("cannot start listeners");
		d->exit_code = 1;
		event_base_loopbreak(d->base);
		return -1;
	}
	d->ready = true;
	/* From now on every window id handed out is covered on disk first,
	 * so that a later start may go ahead without the database. */
	eng_set_ids(d->eng, d->ids);
	eng_history_close(d->eng);
	status_line(d, status, len);
	svc_ready(status);
	return 0;
}

/* The database answers first, normally: window-id sequences and reference
 * sets are loaded before READY.  When it is unreachable at start, a daemon
 * that ran here before (window-id leases in state_dir) goes ready on its
 * spill journal; a first start waits, as only the database knows which
 * window ids are taken. */
static void on_store_state(void *arg, enum store_state s, const char *why)
{
	struct daemon *d = arg;
	char status[256];

	if (!d->ready && !d->stopping) {
		if (s == STORE_READY) {
			if (go_ready(d, status, sizeof(status)) == 0)
				log_notice("ready: %s", status);
			return;
		}
		if (s == STORE_DOWN && d->ids_existed &&
		    store_accepting(d->store)) {
			log_warning("database unreachable at start (%s): going "
				    "ready on the spill journal; references are "
				    "restored when it answers", why ? why : "");
			if (go_ready(d, status, sizeof(status)) == 0)
				log_notice("ready without the database: %s", status);
			return;
		}
		if (s == STORE_DOWN && !d->waiting_logged) {
			d->waiting_logged = true;
			log_warning("database unreachable at start (%s): waiting, "
				    "as no earlier run left window ids in %s",
				    why ? why : "", d->conf->state_dir);
		}
	}
	if (s == STORE_DOWN)
		log_warning("database: %s", why ? why : "connection lost");
	else if (why)
		log_info("database: %s", why);
}

static void on_store_seq(void *arg, const char *model, int64_t max_window_id)
{
	struct daemon *d = arg;

	eng_resume(d->eng, model, max_window_id);
}

static bool on_store_want(void *arg, const struct store_reference *meta)
{
	struct daemon *d = arg;

	return eng_want_reference(d->eng, meta);
}

static void on_store_restore(void *arg, const struct store_reference *r)
{
	struct daemon *d = arg;

	eng_restore_reference(d->eng, r);
}

static bool on_history_want(void *arg)
{
	struct daemon *d = arg;

	return eng_want_history(d->eng);
}

static void on_history(void *arg, const struct store_history *h, size_t n)
{
	struct daemon *d = arg;

	eng_restore_history(d->eng, h, n);
}

/* Says so loudly when results stop having anywhere to go, and again when
 * they have. */
static void on_health_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct store_journal_stats js;
	bool accepting = store_accepting(d->store);

	if (accepting == d->accepting)
		return;
	d->accepting = accepting;
	store_journal_stats(d->store, &js);
	if (!accepting)
		log_err("database unreachable and spill journal full (%llu of "
			"%llu bytes): new windows are refused and live records "
			"answered \"overloaded\" until the database is back",
			(unsigned long long)js.bytes,
			(unsigned long long)js.max_bytes);
	else
		log_notice("results can be kept again: live records accepted");
}

static void on_store_events(void *arg, unsigned queued, unsigned suppressed)
{
	struct daemon *d = arg;

	hook_events_written(d->hook, queued, suppressed);
}

static void on_store_log(void *arg, int level, const char *msg)
{
	log_msg((enum log_level)level, "database: %s", msg);
}

static void on_store_timing(void *arg, enum store_timing what, uint64_t us)
{
	prom_observe_us(what == STORE_T_WRITE  ? &st.store_write_seconds :
			what == STORE_T_COMMIT ? &st.store_commit_seconds :
						 &st.window_latency_seconds, us);
}

static void on_read_timing(void *arg, uint64_t us)
{
	prom_observe_us(&st.store_read_seconds, us);
}

/* ---- signals ---- */

/* Writes still to do before exiting: all of them while the database
 * takes them; with it away, those the journal cannot take. */
static size_t writes_left(struct daemon *d)
{
	if (store_get_state(d->store) == STORE_READY)
		return store_pending(d->store);
	return store_spill(d->store);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	size_t conns = ing_connections(d->ing), evals = eng_in_flight(d->eng),
	       pending = writes_left(d), hooks = hook_busy(d->hook);

	if (conns == 0 && evals == 0 && pending == 0 && hooks == 0) {
		if (store_pending(d->store))
			log_notice("%zu database writes kept in the spill journal "
				   "for the next start", store_pending(d->store));
		log_notice("stopped cleanly");
		event_base_loopexit(d->base, NULL);
		return;
	}
	if (now_ms() >= d->drain_deadline_ms) {
		pending = store_spill(d->store);
		if (store_pending(d->store) > pending)
			log_notice("%zu database writes kept in the spill journal "
				   "for the next start",
				   store_pending(d->store) - pending);
		log_warning("shutdown_timeout reached, abandoning: %zu client "
			    "connections, %zu window evaluations (%zu detector "
			    "jobs running, %zu queued), %zu results not yet in "
			    "the database, %zu webhook attempts (sent again "
			    "after restart)",
			    conns, evals, wq_running(d->wq), wq_depth(d->wq),
			    pending, hooks);
		event_base_loopexit(d->base, NULL);
	}
}

static void begin_shutdown(struct daemon *d)
{
	struct timeval poll = { 0, DRAIN_POLL_MS * 1000 };

	d->stopping = true;
	svc_stopping();
	log_notice("stopping: draining connections, detector jobs, database "
		   "writes and webhook attempts (at most %llus); signal again "
		   "to exit now",
		   (unsigned long long)(d->conf->shutdown_timeout_us / 1000000u));
	ing_stop_accepting(d->ing);
	ing_close_all(d->ing);
	hook_stop(d->hook);
	d->drain_deadline_ms = now_ms() + d->conf->shutdown_timeout_us / 1000u;
	d->drain_timer = event_new(d->base, -1, EV_PERSIST, on_drain_tick, d);
	if (!d->drain_timer || event_add(d->drain_timer, &poll) < 0)
		event_base_loopexit(d->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (d->stopping) {
		log_warning("second signal: exiting now");
		event_base_loopbreak(d->base);
		return;
	}
	begin_shutdown(d);
}

static void apply_limits(struct daemon *d, const struct conf *c)
{
	struct ing_limits l = {
		.max_line = c->max_line,
		.max_frame = c->max_frame,
		.max_connections = c->max_connections,
		.idle_timeout_us = c->idle_timeout_us,
		.handshake_timeout_us = c->handshake_timeout_us,
		.frame_timeout_us = c->frame_timeout_us,
		.token = c->token,
	};

	if (ing_set_limits(d->ing, &l) < 0 || http_set_limits(d->http, c) < 0)
		log_err("reload: out of memory applying listener limits");
}

/* Ingest backpressure: the detector queues, and the database queue
 * before it would have to drop results. */
static int pressure(void *arg)
{
	struct daemon *d = arg;

	/* Writes beyond max_pending go to the spill journal, which has its own
	 * bound (store_accepting): only a slow database fills memory. */
	if (store_pending_memory(d->store) >= d->conf->max_pending / 2)
		return 2;
	return eng_pressure(d->eng);
}

/* Before the first READY=1 systemd knows no reload, so it hears none. */
static void reload_done(struct daemon *d, const char *outcome)
{
	char status[256], line[320];

	status_line(d, status, sizeof(status));
	snprintf(line, sizeof(line), "%s; %s", outcome, status);
	if (d->ready)
		svc_ready(line);
	else
		svc_status(line);
}

static void reload(struct daemon *d)
{
	char err[2048], keys[512];
	struct conf *next;

	if (d->ready)
		svc_reloading();
	if (conf_load(d->config_path, &next, err, sizeof(err)) != 0) {
		st.reload_failures++;
		log_err("reload refused, the running configuration stays:\n%s",
			err);
		reload_done(d, "reload refused, see log");
		return;
	}
	if (eng_reconfigure(d->eng, next) < 0) {
		st.reload_failures++;
		log_err("reload refused: out of memory");
		conf_free(next);
		reload_done(d, "reload refused, see log");
		return;
	}
	if (hook_reconfigure(d->hook, next) < 0)
		log_err("reload: out of memory; webhooks keep their old endpoints");
	if (conf_restart_keys(d->conf, next, keys, sizeof(keys)))
		log_warning("reload: these keys change only after a restart: %s",
			    keys);
	apply_limits(d, next);
	log_set_level(level_of(next->log_level));
	conf_free(d->conf);
	d->conf = next;
	if (arm_timer(d, &d->status_timer, next->status_interval_us,
		      on_status_tick) < 0)
		log_err("reload: cannot rearm the status timer");
	st.reloads++;
	log_notice("configuration reloaded from %s (%zu models)",
		   d->config_path, next->n_models);
	reload_done(d, "configuration reloaded");
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (!d->stopping)
		reload(d);
}

/* ---- start and stop ---- */

static int setup_signals(struct daemon *d)
{
	signal(SIGPIPE, SIG_IGN);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	if (!d->sig_term || !d->sig_int || !d->sig_hup ||
	    evsignal_add(d->sig_term, NULL) < 0 ||
	    evsignal_add(d->sig_int, NULL) < 0 ||
	    evsignal_add(d->sig_hup, NULL) < 0)
		return -1;
	return 0;
}

/* Local state: window-id leases and the spill journal in state_dir. */
static int open_state(struct daemon *d)
{
	char msg[512];
	int err;

	err = ids_open(d->conf->state_dir, &d->ids, &d->ids_existed, msg,
		       sizeof(msg));
	if (err < 0) {
		log_err("state directory %s: %s", d->conf->state_dir,
			err == -ENOMEM ? "out of memory" : msg);
		return -1;
	}
	if (asprintf(&d->journal_dir, "%s/journal", d->conf->state_dir) < 0) {
		d->journal_dir = NULL;
		return -1;
	}
	return 0;
}

/* Each connection is a descriptor: take the hard limit, so that
 * max_connections is what bounds them rather than EMFILE. */
static void raise_fd_limit(unsigned want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want + 64)
		log_warning("max_connections = %u, but only %llu file "
			    "descriptors are allowed (RLIMIT_NOFILE)", want,
			    (unsigned long long)rl.rlim_cur);
}

static int setup(struct daemon *d)
{
	struct store_opts so = {
		.query_timeout_us = d->conf->query_timeout_us,
		.max_pending = d->conf->max_pending,
		.log = on_store_log,
		.events = on_store_events,
		.observe = on_store_timing,
		.journal_max = d->conf->journal_max,
		.want = on_store_want,
		.restore = on_store_restore,
		.history_want = on_history_want,
		.history = on_history,
	};
	struct rdr_opts ro = {
		.timeout_us = d->conf->read_timeout_us,
		.max_rows = d->conf->read_max_rows,
		.log = on_store_log,
		.observe = on_read_timing,
	};
	struct http_ctx hc;

	raise_fd_limit(d->conf->max_connections);
	if (evthread_use_pthreads() < 0 || !(d->base = event_base_new())) {
		log_err("cannot create the event loop");
		return -1;
	}
	if (take_listeners(d) < 0 || open_state(d) < 0)
		return -1;
	so.journal_path = d->journal_dir;
	/* Parallelism comes from the worker threads, one window each; BLAS
	 * threads inside them would only contend for the same cores. */
	openblas_set_num_threads(1);
	d->wq = wq_new(d->base, d->conf->workers);
	d->store = store_new(d->base, d->conf->dsn, &so, on_store_state,
			     on_store_seq, d);
	if (!d->store)
		log_err("cannot start the database writer (bad DSN, or the spill "
			"journal in %s cannot be opened)", d->journal_dir);
	d->rdr = d->store ? rdr_new(d->base, d->conf->dsn, &ro) : NULL;
	d->hook = d->store ? hook_new(d->base, d->conf) : NULL;
	if (!d->wq || !d->store || !d->rdr || !d->hook)
		goto oom;
	d->eng = eng_new(d->base, d->wq, d->store, d->conf);
	d->ing = d->eng ? ing_new(d->base, d->eng, pressure, d) : NULL;
	hc = (struct http_ctx){ .eng = d->eng, .store = d->store, .rdr = d->rdr,
				.wq = d->wq, .hook = d->hook,
				.conf = (const struct conf *const *)&d->conf,
				.is_ready = is_ready, .pressure = pressure, .arg = d };
	d->http = d->eng ? http_new(d->base, &hc) : NULL;
	if (!d->eng || !d->ing || !d->http)
		goto oom;
	apply_limits(d, d->conf);
	d->accepting = true;
	if (open_listeners(d, false) < 0 || setup_signals(d) < 0 ||
	    start_timers(d) < 0 ||
	    arm_timer(d, &d->health_timer, HEALTH_POLL_MS * 1000,
		      on_health_tick) < 0 ||
	    store_start(d->store) < 0)
		goto oom;
	rdr_start(d->rdr);
	log_notice("driftd %s starting: %zu models, %u workers, waiting for "
		   "the database", DRIFTD_VERSION, d->conf->n_models,
		   wq_threads(d->wq));
	return 0;
oom:
	log_err("start-up failed: out of memory or resources");
	return -1;
}

static void teardown(struct daemon *d)
{
	size_t i;

	/* Workers first: their pending results call back into the engine. */
	wq_free(d->wq);
	ing_free(d->ing);
	http_free(d->http);	/* cancels its reads: before rdr_free */
	rdr_free(d->rdr);
	if (d->eng && d->ready)
		eng_save_ids(d->eng);
	eng_free(d->eng);
	hook_free(d->hook);
	store_free(d->store);
	ids_free(d->ids);
	free(d->journal_dir);
	for (i = 0; i < d->n_ingest_fds; i++)
		close(d->ingest_fds[i]);
	for (i = 0; i < d->n_http_fds; i++)
		close(d->http_fds[i]);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->drain_timer)
		event_free(d->drain_timer);
	if (d->watchdog_timer)
		event_free(d->watchdog_timer);
	if (d->status_timer)
		event_free(d->status_timer);
	if (d->health_timer)
		event_free(d->health_timer);
	if (d->base)
		event_base_free(d->base);
	conf_free(d->conf);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: driftd --config FILE       run in the foreground\n"
		"       driftd --check-config FILE validate FILE and exit\n"
		"       driftd --print-defaults    every key, documented\n"
		"       driftd --version\n");
}

static int load_config(const char *path, struct conf **out)
{
	char err[2048];
	int rc = conf_load(path, out, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "%s%s", err,
			err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "print-defaults", no_argument, NULL, 'P' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .exit_code = 0 };
	struct conf *checked;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'C':
			if (load_config(optarg, &checked) != 0)
				return 1;
			printf("%s: ok (%zu models, %zu webhooks)\n", optarg,
			       checked->n_models, checked->n_webhooks);
			conf_free(checked);
			return 0;
		case 'P':
			conf_print_defaults(stdout);
			return 0;
		case 'V':
			printf("driftd %s\n", DRIFTD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!d.config_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init();
	if (load_config(d.config_path, &d.conf) != 0)
		return 1;
	log_set_level(level_of(d.conf->log_level));
	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	event_base_dispatch(d.base);
	if (wq_running(d.wq) > 0) {
		/* Joining a wedged worker would hang; its memory goes with
		 * the process. */
		log_warning("exiting with %zu detector jobs still running; "
			    "their windows are not written", wq_running(d.wq));
		fflush(stderr);
		_exit(d.exit_code);
	}
	teardown(&d);
	return d.exit_code;
}
