/* store: driftd's writer on top of pgq.  After every (re)connect it takes an
 * advisory lock, brings the schema up to date and releases the lock; then it
 * writes the queue head first, one statement at a time (see store.h). */
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "migrations.h"
#include "pgq.h"
#include "request.h"

#define DEFAULT_QUERY_TIMEOUT_US (UINT64_C(10) * 1000000)
#define DEFAULT_MIGRATE_TIMEOUT_US (UINT64_C(600) * 1000000)
#define DEFAULT_MAX_PENDING 10000
#define BACKOFF_MIN_US 100000
#define BACKOFF_MAX_US 10000000

/* pg_advisory_lock key serialising schema changes between daemons that share
 * a database: "driftd" 0x00 0x01 read as a big-endian int64. */
#define MIGRATION_LOCK "7237963439898099713"

/* One implicit transaction.  The session settings persist: warnings only
 * (CREATE ... IF NOT EXISTS notices are noise), and no statement timeout
 * while migrating, as a DBA's default could cut a migration short.  The
 * schema is created only when missing: CREATE SCHEMA IF NOT EXISTS would
 * demand CREATE on the database even when a DBA made the schema for us. */
static const char catalog_sql[] =
	"SET client_min_messages = warning;\n"
	"SET statement_timeout = 0;\n"
	"SELECT pg_advisory_lock(" MIGRATION_LOCK ");\n"
	"DO $$BEGIN\n"
	"  IF to_regnamespace('driftd') IS NULL THEN CREATE SCHEMA driftd; END IF;\n"
	"END$$;\n"
	"CREATE TABLE IF NOT EXISTS driftd.schema_migrations (\n"
	"    version    integer     PRIMARY KEY,\n"
	"    name       text        NOT NULL,\n"
	"    applied_at timestamptz NOT NULL DEFAULT now());\n"
	"SELECT version FROM driftd.schema_migrations ORDER BY version";

static const char sequences_sql[] =
	";\nSELECT model, slice, max_window_id FROM driftd.slices";

enum boot_step { BOOT_CATALOG, BOOT_MIGRATE, BOOT_FINISH };

struct store {
	struct pgq *pgq;
	struct store_opts opts;
	store_state_fn on_state;
	store_seq_fn on_seq;
	void *arg;

	enum store_state state;
	bool started;
	enum boot_step boot;
	size_t boot_next;   /* index of the migration being applied */
	bool *applied;      /* per compiled-in migration: found in the database */
	bool seqs_loaded;

	struct req_list queue;
	size_t n_queued, n_windows; /* windows and event writes (max_pending) */
	bool in_flight;     /* the head was sent and has not completed */
	struct event *kick; /* sends the head from the loop, never from a put */
	uint64_t written, duplicates, dropped;

	void (*drain_done)(void *arg);
	void *drain_arg;

	/* Callbacks may free the store: store_free() then only sets free_pending
	 * and the outermost store frame on the stack frees it on the way out
	 * (pgbouncer frees after the loop iteration for the same reason).  Once
	 * pending, no callback runs again. */
	unsigned depth;
	bool free_pending;
	char why[512];
};

static void destroy(struct store *s);

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void enter(struct store *s)
{
	s->depth++;
}

static void leave(struct store *s)
{
	if (--s->depth == 0 && s->free_pending)
		destroy(s);
}

static void slog(struct store *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void slog(struct store *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s->opts.log || s->free_pending)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->opts.log(s->arg, level, msg);
}

static void pgq_log(void *arg, int level, const char *msg)
{
	slog(arg, level, "%s", msg);
}

static void set_state(struct store *s, enum store_state st, const char *why)
{
	s->state = st;
	if (s->on_state && !s->free_pending)
		s->on_state(s->arg, st, why);
}

static void call_drain(struct store *s)
{
	void (*done)(void *arg) = s->drain_done;

	s->drain_done = NULL;
	if (done && !s->free_pending)
		done(s->drain_arg);
}

/* "prefix: message (SQLSTATE xxxxx)" in s->why. */
static const char *result_error(struct store *s, const char *prefix, const PGresult *res)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (!msg)
		msg = PQresStatus(PQresultStatus(res));
	snprintf(s->why, sizeof(s->why), "%s: %s%s%s%s", prefix, msg,
		 code ? " (SQLSTATE " : "", code ? code : "", code ? ")" : "");
	return s->why;
}

/* Rejected for what the row holds (data exception, integrity constraint,
 * program limit): retrying cannot help.  Every other error belongs to the
 * environment (connection, locks, resources, permissions, a damaged schema)
 * and is retried, since dropping a window for it would lose data. */
static bool is_data_error(const PGresult *res)
{
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return code && (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0 ||
			strncmp(code, "54", 2) == 0);
}

static bool status_ok(const PGresult *res, ExecStatusType want)
{
	return PQresultStatus(res) == want;
}

/* Reconnect after the backoff; the queue head (if sent) is sent again. */
static void connection_failed(struct store *s, const char *why)
{
	s->in_flight = false;
	pgq_reset(s->pgq);
	set_state(s, STORE_DOWN, why);
}

static void fatal(struct store *s, const char *why)
{
	pgq_stop(s->pgq);
	s->in_flight = false;
	set_state(s, STORE_CLOSED, why);
	call_drain(s);
}

static void send_simple(struct store *s, const char *sql, uint64_t timeout_us)
{
	if (pgq_send(s->pgq, sql, 0, NULL, NULL, NULL, timeout_us) < 0)
		connection_failed(s, pgq_error(s->pgq));
}

/* ---- boot: lock, catalog, migrations, unlock + sequences ---------------- */

static void send_migration(struct store *s, const struct store_migration *m)
{
	static const char record[] =
		"\n;\nINSERT INTO driftd.schema_migrations (version, name) VALUES (%d, '%s')";
	size_t len = strlen(m->sql) + sizeof(record) + strlen(m->name) + 16;
	char *sql = malloc(len);

	if (!sql) {
		connection_failed(s, "out of memory");
		return;
	}
	/* Migration and its record in one simple query: one implicit
	 * transaction, so a migration is either applied and recorded or not. */
	snprintf(sql, len, "%s", m->sql);
	snprintf(sql + strlen(sql), len - strlen(sql), record, m->version, m->name);
	s->boot = BOOT_MIGRATE;
	send_simple(s, sql, s->opts.migrate_timeout_us);
	free(sql);
}

static void send_finish(struct store *s)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "SELECT pg_advisory_unlock(" MIGRATION_LOCK ");\n"
		 "SET statement_timeout = '%llu ms'%s",
		 (unsigned long long)(s->opts.query_timeout_us / 1000 + 1),
		 s->seqs_loaded ? "" : sequences_sql);
	s->boot = BOOT_FINISH;
	send_simple(s, sql, s->opts.query_timeout_us);
}

static void next_migration(struct store *s)
{
	while (s->boot_next < store_n_migrations && s->applied[s->boot_next])
		s->boot_next++;
	if (s->boot_next < store_n_migrations)
		send_migration(s, &store_migrations[s->boot_next]);
	else
		send_finish(s);
}

static void check_versions(struct store *s, const PGresult *res)
{
	long v;

	memset(s->applied, 0, store_n_migrations * sizeof(*s->applied));
	for (int i = 0; i < PQntuples(res); i++) {
		v = strtol(PQgetvalue(res, i, 0), NULL, 10);
		if (v > (long)store_n_migrations) {
			snprintf(s->why, sizeof(s->why),
				 "database schema version %ld is newer than this driftd "
				 "knows (%zu); upgrade driftd", v, store_n_migrations);
			fatal(s, s->why);
			return;
		}
		if (v >= 1)
			s->applied[v - 1] = true;
	}
	s->boot_next = 0;
	next_migration(s);
}

static void migrated(struct store *s)
{
	const struct store_migration *m = &store_migrations[s->boot_next];

	slog(s, LOG_INFO, "store: applied schema migration %03d_%s", m->version, m->name);
	s->applied[s->boot_next] = true;
	next_migration(s);
}

static void send_head(struct store *s);

static void finish_boot(struct store *s, const PGresult *res)
{
	if (!s->seqs_loaded) {
		for (int i = 0; i < PQntuples(res) && s->on_seq && !s->free_pending; i++)
			s->on_seq(s->arg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				  strtoll(PQgetvalue(res, i, 2), NULL, 10));
		s->seqs_loaded = true;
	}
	if (TAILQ_EMPTY(&s->queue))
		pgq_backoff_reset(s->pgq);
	snprintf(s->why, sizeof(s->why), "schema version %zu", store_n_migrations);
	set_state(s, STORE_READY, s->why);
	send_head(s);
}

static const char *boot_step_name(const struct store *s)
{
	switch (s->boot) {
	case BOOT_CATALOG:
		return "schema check failed";
	case BOOT_MIGRATE:
		return "schema migration failed";
	case BOOT_FINISH:
		return "loading sequences failed";
	}
	return "?";
}

static void on_boot_result(struct store *s, const PGresult *res)
{
	bool rows = s->boot == BOOT_CATALOG || (s->boot == BOOT_FINISH && !s->seqs_loaded);

	if (!status_ok(res, rows ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
		connection_failed(s, result_error(s, boot_step_name(s), res));
		return;
	}
	switch (s->boot) {
	case BOOT_CATALOG:
		check_versions(s, res);
		return;
	case BOOT_MIGRATE:
		migrated(s);
		return;
	case BOOT_FINISH:
		finish_boot(s, res);
		return;
	}
}

static void begin_boot(struct store *s)
{
	set_state(s, STORE_MIGRATING, "checking schema");
	s->boot = BOOT_CATALOG;
	send_simple(s, catalog_sql, s->opts.migrate_timeout_us);
}

/* ---- the write queue ------------------------------------------------------ */

static void send_head(struct store *s)
{
	struct req *r = TAILQ_FIRST(&s->queue);

	if (s->state != STORE_READY || s->in_flight || !r)
		return;
	if (pgq_send(s->pgq, req_sql(r), r->nparams, r->values, r->lengths,
		     r->formats, s->opts.query_timeout_us) < 0) {
		connection_failed(s, pgq_error(s->pgq));
		return;
	}
	s->in_flight = true;
	r->sent_us = mono_us();
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	enter(s);
	send_head(s);
	leave(s);
}

static void pop_head(struct store *s)
{
	struct req *r = TAILQ_FIRST(&s->queue);

	TAILQ_REMOVE(&s->queue, r, link);
	s->n_queued--;
	if (r->kind != REQ_REFERENCE)
		s->n_windows--;
	req_free(r);
}

static void events_written(struct store *s, const PGresult *res)
{
	unsigned queued = (unsigned)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
	unsigned suppressed = (unsigned)strtoul(PQgetvalue(res, 0, 3), NULL, 10);

	if ((queued || suppressed) && s->opts.events && !s->free_pending)
		s->opts.events(s->arg, queued, suppressed);
}

static void observe(struct store *s, const struct req *r)
{
	uint64_t now = mono_us();

	if (!s->opts.observe || s->free_pending)
		return;
	s->opts.observe(s->arg, STORE_T_WRITE, now - r->sent_us);
	s->opts.observe(s->arg, STORE_T_COMMIT, now - r->queued_us);
}

static bool completed(struct store *s, const struct req *r, const PGresult *res)
{
	char what[256];

	if (r->kind == REQ_REFERENCE)
		return status_ok(res, PGRES_COMMAND_OK);
	if (!status_ok(res, PGRES_TUPLES_OK) || PQntuples(res) != 1 || PQnfields(res) != 4)
		return false;
	events_written(s, res);
	if (r->kind == REQ_EVENTS)
		return true;
	s->written++;
	observe(s, r);
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
		return true;
	s->duplicates++;
	if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		req_describe(r, what, sizeof(what));
		slog(s, LOG_WARNING, "store: %s already stored with other bounds or n; "
		     "kept the stored one (window_id reused?)", what);
	}
	return true;
}

static void drop(struct store *s, const struct req *r, const PGresult *res)
{
	char what[256];

	req_describe(r, what, sizeof(what));
	slog(s, LOG_ERR, "store: dropping %s: %s", what,
	     result_error(s, "rejected by the database", res));
	s->dropped++;
}

static void on_write_result(struct store *s, const PGresult *res)
{
	const struct req *r = TAILQ_FIRST(&s->queue);

	s->in_flight = false;
	if (is_data_error(res)) {
		drop(s, r, res);
	} else if (completed(s, r, res)) {
		pgq_backoff_reset(s->pgq);
	} else {
		connection_failed(s, result_error(s, "write failed", res));
		return;
	}
	pop_head(s);
	if (TAILQ_EMPTY(&s->queue))
		call_drain(s);
	send_head(s);
}

static void on_pgq(void *arg, enum pgq_event ev, PGresult *res, const char *why)
{
	struct store *s = arg;

	enter(s);
	switch (ev) {
	case PGQ_CONNECTING:
		set_state(s, STORE_CONNECTING, "connecting");
		break;
	case PGQ_UP:
		begin_boot(s);
		break;
	case PGQ_DOWN:
		s->in_flight = false;
		set_state(s, STORE_DOWN, why);
		break;
	case PGQ_RESULT:
		if (s->state == STORE_MIGRATING)
			on_boot_result(s, res);
		else
			on_write_result(s, res);
		break;
	}
	PQclear(res);
	leave(s);
}

/* ---- construction ------------------------------------------------------ */

/* Socket directories ("/..." or abstract "@..."), IP literals, or libpq's
 * default socket when empty. */
static bool hosts_need_no_dns(const char *hosts)
{
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];
	size_t len;

	while (hosts && *hosts) {
		len = strcspn(hosts, ",");
		if (*hosts != '/' && *hosts != '@') {
			if (len >= sizeof(buf))
				return false;
			memcpy(buf, hosts, len);
			buf[len] = '\0';
			if (inet_pton(AF_INET, buf, addr) != 1 && inet_pton(AF_INET6, buf, addr) != 1)
				return false;
		}
		hosts += len + (hosts[len] == ',');
	}
	return true;
}

/* libpq resolves host names with a blocking getaddrinfo(), which would stall
 * the whole loop: insist on a DSN that needs no lookup. */
static bool dsn_usable(struct store *s, const char *dsn)
{
	char *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &err);
	const char *host = getenv("PGHOST"), *hostaddr = getenv("PGHOSTADDR");
	bool ok;

	if (!opts) {
		if (err)
			err[strcspn(err, "\n")] = '\0';
		slog(s, LOG_ERR, "store: bad DSN: %s", err ? err : "out of memory");
		PQfreemem(err);
		return false;
	}
	for (const PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val && strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (o->val && strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	ok = (hostaddr && *hostaddr) || hosts_need_no_dns(host);
	if (!ok)
		slog(s, LOG_ERR, "store: DSN host=%s needs a DNS lookup, which would "
		     "block the event loop; use hostaddr=<IP> (keep host= for TLS) "
		     "or a Unix socket directory", host);
	PQconninfoFree(opts);
	return ok;
}

static void set_defaults(struct store_opts *o)
{
	if (!o->query_timeout_us)
		o->query_timeout_us = DEFAULT_QUERY_TIMEOUT_US;
	if (!o->migrate_timeout_us)
		o->migrate_timeout_us = DEFAULT_MIGRATE_TIMEOUT_US;
	if (!o->max_pending)
		o->max_pending = DEFAULT_MAX_PENDING;
}

struct store *store_new(struct event_base *base, const char *dsn,
			const struct store_opts *o, store_state_fn on_state,
			store_seq_fn on_seq, void *arg)
{
	struct store *s = calloc(1, sizeof(*s));
	struct pgq_opts po = { .backoff_min_us = BACKOFF_MIN_US,
			       .backoff_max_us = BACKOFF_MAX_US,
			       .application_name = "driftd", .log = pgq_log };

	if (!s)
		return NULL;
	if (o)
		s->opts = *o;
	set_defaults(&s->opts);
	s->on_state = on_state;
	s->on_seq = on_seq;
	s->arg = arg;
	s->state = STORE_DOWN;
	TAILQ_INIT(&s->queue);
	po.connect_timeout_us = s->opts.query_timeout_us;
	if (!dsn_usable(s, dsn))
		goto fail;
	s->applied = calloc(store_n_migrations, sizeof(*s->applied));
	s->kick = event_new(base, -1, 0, on_kick, s);
	s->pgq = pgq_new(base, dsn, &po, on_pgq, s);
	if (!s->applied || !s->kick || !s->pgq)
		goto fail;
	return s;
fail:
	destroy(s);
	return NULL;
}

static void destroy(struct store *s)
{
	pgq_free(s->pgq);
	if (s->kick)
		event_free(s->kick);
	while (!TAILQ_EMPTY(&s->queue))
		pop_head(s);
	free(s->applied);
	free(s);
}

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->depth) {
		s->free_pending = true;
		return;
	}
	destroy(s);
}

int store_start(struct store *s)
{
	if (s->started)
		return -EALREADY;
	s->started = true;
	pgq_start(s->pgq);
	return 0;
}

static void enqueue(struct store *s, struct req *r)
{
	r->queued_us = mono_us();
	TAILQ_INSERT_TAIL(&s->queue, r, link);
	s->n_queued++;
	if (r->kind != REQ_REFERENCE)
		s->n_windows++;
	if (s->state == STORE_READY && !s->in_flight)
		event_active(s->kick, 0, 0);
}

int store_put_window(struct store *s, const struct store_window *w)
{
	struct req *r;
	int err;

	if (s->state == STORE_CLOSED)
		return -EPIPE;
	if (s->n_windows >= s->opts.max_pending)
		return -ENOBUFS;
	err = req_new_window(w, &r);
	if (err)
		return err;
	enqueue(s, r);
	return 0;
}

int store_put_events(struct store *s, const struct store_event *ev, size_t n)
{
	struct req *r;
	int err;

	if (s->state == STORE_CLOSED)
		return -EPIPE;
	if (s->n_windows >= s->opts.max_pending)
		return -ENOBUFS;
	err = req_new_events(ev, n, &r);
	if (err)
		return err;
	enqueue(s, r);
	return 0;
}

int store_put_reference(struct store *s, const struct store_reference *ref)
{
	struct req *r;
	int err;

	if (s->state == STORE_CLOSED)
		return -EPIPE;
	err = req_new_reference(ref, &r);
	if (err)
		return err;
	enqueue(s, r);
	return 0;
}

void store_drain(struct store *s, void (*done)(void *arg), void *arg)
{
	s->drain_done = done;
	s->drain_arg = arg;
	if (TAILQ_EMPTY(&s->queue) || s->state == STORE_CLOSED) {
		enter(s);
		call_drain(s);
		leave(s);
	}
}

size_t store_pending(const struct store *s)
{
	return s->n_queued;
}

enum store_state store_get_state(const struct store *s)
{
	return s->state;
}

uint64_t store_written(const struct store *s)
{
	return s->written;
}

uint64_t store_duplicates(const struct store *s)
{
	return s->duplicates;
}

uint64_t store_dropped(const struct store *s)
{
	return s->dropped;
}

int store_schema_version(void)
{
	return (int)store_n_migrations;
}
