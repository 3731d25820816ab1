/* driftd: start-up, signals, reload and shutdown around the event loop. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "config.h"
#include "engine.h"
#include "http.h"
#include "idlease.h"
#include "ingest.h"
#include "log.h"
#include "service.h"
#include "stats.h"
#include "store.h"
#include "workers.h"

struct stats st;

#define LISTEN_BACKLOG 512
#define MAX_LISTENERS 16
#define DRAIN_POLL_MS 50
#define HEALTH_POLL_MS 1000

struct daemon {
	struct event_base *base;
	struct conf *conf;
	const char *config_path;
	struct wq *wq;
	struct store *store;
	struct eng *eng;
	struct ing *ing;
	struct http_srv *http;
	int ingest_fds[MAX_LISTENERS], http_fds[MAX_LISTENERS];
	size_t n_ingest_fds, n_http_fds;
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer, *health;
	uint64_t drain_deadline_ms;
	struct ids *ids;		/* window-id leases in state_dir */
	bool ids_existed;		/* a previous run left them */
	char *journal_dir;
	bool ready, stopping, accepting, waiting_logged;
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

static void status_line(struct daemon *d, char *buf, size_t len)
{
	snprintf(buf, len, "%zu models, %zu connections, store %s, "
		 "%llu records accepted",
		 d->conf->n_models, d->ing ? ing_connections(d->ing) : 0,
		 store_get_state(d->store) == STORE_READY ? "ready" : "down",
		 (unsigned long long)st.records_accepted);
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

static void log_listening(const char *what, const int *fds, size_t n)
{
	char where[160];
	size_t i;

	for (i = 0; i < n; i++) {
		addr_describe_fd(fds[i], where, sizeof(where));
		log_notice("listening for %s on %s", what, where);
	}
}

static int open_listeners(struct daemon *d)
{
	size_t i;

	for (i = 0; i < d->n_ingest_fds; i++)
		if (ing_add_listener(d->ing, d->ingest_fds[i]) < 0)
			return -1;
	for (i = 0; i < d->n_http_fds; i++)
		if (http_add_listener(d->http, d->http_fds[i]) < 0)
			return -1;
	log_listening("ingest", d->ingest_fds, d->n_ingest_fds);
	log_listening("http", d->http_fds, d->n_http_fds);
	d->n_ingest_fds = d->n_http_fds = 0;	/* owned by ing and http now */
	return 0;
}

/* Ready while results can be kept: in the database, or in the journal
 * while the database is away (a full journal makes the daemon unready). */
static bool is_ready(void *arg)
{
	struct daemon *d = arg;

	return d->ready && !d->stopping && store_accepting(d->store);
}

/* ---- store callbacks ---- */

static void go_ready(struct daemon *d, const char *how)
{
	char status[256];

	if (open_listeners(d) < 0) {
		log_err("cannot start listeners");
		d->exit_code = 1;
		event_base_loopbreak(d->base);
		return;
	}
	d->ready = true;
	/* From now on every id handed out is on disk first, so a later start
	 * may go ahead without the database. */
	eng_set_ids(d->eng, d->ids);
	status_line(d, status, sizeof(status));
	svc_ready(status);
	log_notice("ready%s: %s", how, status);
}

/* The database answers first, normally: sequences and references are
 * loaded before READY.  When it is unreachable at start, a daemon that
 * ran here before (window-id leases in state_dir) goes ready on its spill
 * journal; a first start waits, as only the database knows which window
 * ids are taken. */
static void on_store_state(void *arg, enum store_state s, const char *why)
{
	struct daemon *d = arg;

	if (!d->ready && !d->stopping) {
		if (s == STORE_READY) {
			go_ready(d, "");
			return;
		}
		if (s == STORE_DOWN && d->ids_existed && d->journal_dir &&
		    store_accepting(d->store)) {
			log_warning("database unreachable at start (%s): going "
				    "ready on the spill journal; references are "
				    "restored when it answers", why ? why : "");
			go_ready(d, " without the database");
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

/* Says so loudly when results stop having anywhere to go, and again when
 * they have. */
static void on_health(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct store_journal_stats js;
	bool accepting = store_accepting(d->store);

	if (accepting == d->accepting)
		return;
	d->accepting = accepting;
	store_journal_stats(d->store, &js);
	if (!accepting) {
		log_err("database unreachable and spill journal full (%llu of "
			"%llu bytes): new windows are refused and live records "
			"answered \"overloaded\" until the database is back",
			(unsigned long long)js.bytes,
			(unsigned long long)js.max_bytes);
		svc_status("spill journal full: refusing new windows");
	} else {
		log_notice("results can be kept again: live records accepted");
		svc_status("accepting records");
	}
}

static void on_store_log(void *arg, int level, const char *msg)
{
	log_msg((enum log_level)level, "database: %s", msg);
}

/* ---- signals ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
	       pending = writes_left(d);

	if (conns == 0 && evals == 0 && pending == 0) {
		if (store_pending(d->store))
			log_notice("%zu database writes kept in the spill journal "
				   "for the next start", store_pending(d->store));
		log_notice("stopped cleanly");
		event_base_loopexit(d->base, NULL);
		return;
	}
	if (now_ms() >= d->drain_deadline_ms) {
		pending = store_spill(d->store);
		log_warning("shutdown timeout: %zu connections, %zu evaluations "
			    "and %zu database writes abandoned (%zu more kept in "
			    "the spill journal)", conns, evals, pending,
			    store_pending(d->store) - pending);
		event_base_loopexit(d->base, NULL);
	}
}

static void begin_shutdown(struct daemon *d)
{
	struct timeval poll = { 0, DRAIN_POLL_MS * 1000 };

	d->stopping = true;
	svc_stopping();
	log_notice("stopping: draining connections, detector jobs and "
		   "database writes (at most %llus); signal again to exit now",
		   (unsigned long long)(d->conf->shutdown_timeout_us / 1000000u));
	ing_stop_accepting(d->ing);
	ing_close_all(d->ing);
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
		.max_connections = c->max_connections,
		.idle_timeout_us = c->idle_timeout_us,
		.token = c->token,
	};

	if (ing_set_limits(d->ing, &l) < 0)
		log_err("reload: out of memory applying listener limits");
}

static void reload(struct daemon *d)
{
	char err[2048], keys[512];
	struct conf *next;

	svc_reloading();
	if (conf_load(d->config_path, &next, err, sizeof(err)) != 0) {
		st.reload_failures++;
		log_err("reload refused, the running configuration stays:\n%s",
			err);
		svc_ready("reload refused, see log");
		return;
	}
	if (eng_reconfigure(d->eng, next) < 0) {
		st.reload_failures++;
		log_err("reload refused: out of memory");
		conf_free(next);
		svc_ready("reload refused, see log");
		return;
	}
	if (conf_restart_keys(d->conf, next, keys, sizeof(keys)))
		log_warning("reload: these keys change only after a restart: %s",
			    keys);
	apply_limits(d, next);
	log_set_level(level_of(next->log_level));
	conf_free(d->conf);
	d->conf = next;
	st.reloads++;
	log_notice("configuration reloaded from %s (%zu models)",
		   d->config_path, next->n_models);
	svc_ready("configuration reloaded");
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

static int setup(struct daemon *d)
{
	struct store_opts so = {
		.query_timeout_us = d->conf->query_timeout_us,
		.max_pending = d->conf->max_pending,
		.log = on_store_log,
		.journal_max = d->conf->journal_max,
		.want = on_store_want,
		.restore = on_store_restore,
	};
	struct timeval health = { 0, HEALTH_POLL_MS * 1000 };
	struct http_ctx hc;

	if (evthread_use_pthreads() < 0 || !(d->base = event_base_new())) {
		log_err("cannot create the event loop");
		return -1;
	}
	if (bind_all(d->conf->ingest, d->conf->n_ingest, d->ingest_fds,
		     &d->n_ingest_fds) < 0 ||
	    bind_all(d->conf->http, d->conf->n_http, d->http_fds,
		     &d->n_http_fds) < 0 || open_state(d) < 0)
		return -1;
	so.journal_path = d->journal_dir;
	d->wq = wq_new(d->base, d->conf->workers);
	d->store = store_new(d->base, d->conf->dsn, &so, on_store_state,
			     on_store_seq, d);
	if (!d->store)
		log_err("cannot start the database writer (bad DSN, or the spill "
			"journal in %s cannot be opened)", d->journal_dir);
	if (!d->wq || !d->store)
		goto oom;
	d->accepting = true;
	d->health = event_new(d->base, -1, EV_PERSIST, on_health, d);
	if (!d->health || event_add(d->health, &health) < 0)
		goto oom;
	d->eng = eng_new(d->base, d->wq, d->store, d->conf);
	d->ing = d->eng ? ing_new(d->base, d->eng) : NULL;
	hc = (struct http_ctx){ d->eng, d->store, d->wq, is_ready, d };
	d->http = http_new(d->base, &hc);
	if (!d->eng || !d->ing || !d->http)
		goto oom;
	apply_limits(d, d->conf);
	if (setup_signals(d) < 0 || store_start(d->store) < 0)
		goto oom;
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
	http_free(d->http);
	if (d->eng && d->ready)
		eng_save_ids(d->eng);
	eng_free(d->eng);
	store_free(d->store);
	ids_free(d->ids);
	free(d->journal_dir);
	if (d->health)
		event_free(d->health);
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
	if (load_config(d.config_path, &d.conf) != 0)
		return 1;
	log_set_level(level_of(d.conf->log_level));
	if (setup(&d) < 0) {
		teardown(&d);
		return 1;
	}
	event_base_dispatch(d.base);
	teardown(&d);
	return d.exit_code;
}
