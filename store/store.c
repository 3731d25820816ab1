/* store: driftd's writer on top of pgq.  After every (re)connect it takes an
 * advisory lock, brings the schema up to date and releases the lock; then it
 * writes the queue head first, one statement at a time (see store.h). */
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "history.h"
#include "journal.h"
#include "migrations.h"
#include "pgq.h"
#include "request.h"

#define DEFAULT_QUERY_TIMEOUT_US (UINT64_C(10) * 1000000)
#define DEFAULT_MIGRATE_TIMEOUT_US (UINT64_C(600) * 1000000)
#define DEFAULT_MAX_PENDING 10000
#define DEFAULT_JOURNAL_MAX (UINT64_C(256) << 20)
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
	";\nSELECT model, max(max_window_id) FROM driftd.slices GROUP BY model";

/* The newest reference set of every (model, slice), unless a reset or an
 * expiry retired it since or it was saved without vectors; newest first,
 * so that a daemon with fewer slice slots keeps the recent ones. */
static const char references_sql[] =
	"SELECT r.id, r.model, r.slice, r.n, r.dim, r.persist, r.k, r.source_dim,\n"
	"       r.projection_seed, r.cal_n, r.cal_ece, r.cal_brier,\n"
	"       r.source = 'explicit',\n"
	"       (extract(epoch FROM r.created_at) * 1000000)::int8\n"
	"  FROM (SELECT DISTINCT ON (model, slice) *\n"
	"          FROM driftd.reference_sets\n"
	"         ORDER BY model, slice, created_at DESC, id DESC) r\n"
	" WHERE r.persist <> 'none'\n"
	"   AND NOT EXISTS (SELECT 1 FROM driftd.reference_resets x\n"
	"                    WHERE x.model = r.model\n"
	"                      AND (x.slice IS NULL OR x.slice = r.slice)\n"
	"                      AND x.reset_at >= r.created_at)\n"
	" ORDER BY r.created_at DESC";

static const char reference_data_sql[] =
	"SELECT data, scores FROM driftd.reference_sets WHERE id = $1::int8";

/* The K-of-M history: per slice, the decisions of its newest tested
 * windows evaluated after its model's last reset or its own last expiry,
 * as many as the newest of them had alarm.m (the daemon kept no more),
 * oldest first.  Each subquery is one backward index probe per slice; JIT
 * compilation would cost more than it saves on such probes. */
static const char history_sql[] =
	"SET LOCAL jit = off;\n"
	"SELECT s.model, s.slice, h.window_id, h.drifted, h.alarm_m\n"
	"  FROM driftd.slices s\n"
	" CROSS JOIN LATERAL (\n"
	"        SELECT greatest(\n"
	"                 (SELECT max(x.reset_at) FROM driftd.reference_resets x\n"
	"                   WHERE x.model = s.model AND coalesce(x.slice, '') = ''),\n"
	"                 (SELECT max(x.reset_at) FROM driftd.reference_resets x\n"
	"                   WHERE x.model = s.model AND coalesce(x.slice, '') = s.slice))\n"
	"               AS at) r\n"
	" CROSS JOIN LATERAL (\n"
	"        SELECT w.window_id, w.drifted, w.alarm_m FROM driftd.windows w\n"
	"         WHERE w.model = s.model AND w.slice = s.slice\n"
	"           AND w.status = 'tested' AND w.drifted IS NOT NULL AND w.alarm_m > 0\n"
	"           AND w.evaluated_at > coalesce(r.at, '-infinity')\n"
	"         ORDER BY w.window_id DESC\n"
	"         LIMIT (SELECT n.alarm_m FROM driftd.windows n\n"
	"                 WHERE n.model = s.model AND n.slice = s.slice\n"
	"                   AND n.status = 'tested' AND n.drifted IS NOT NULL\n"
	"                   AND n.alarm_m > 0\n"
	"                 ORDER BY n.window_id DESC LIMIT 1)) h\n"
	" ORDER BY s.model, s.slice, h.window_id";

enum boot_step { BOOT_CATALOG, BOOT_MIGRATE, BOOT_FINISH, BOOT_REFS, BOOT_REF_DATA,
		 BOOT_HISTORY };

/* A reference set to restore: its metadata, strings owned. */
struct restore_item {
	struct store_reference meta;
	char *model, *slice;
};

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
	/* Reference restore, first boot only: the list, then one set at a time. */
	bool refs_listed, refs_restored;
	struct restore_item *restore;
	size_t n_restore, restore_next;
	bool history_tried;  /* K-of-M history: one attempt, first boot only */

	/* Writes wait in memory (queue, oldest) and then in the journal: a put
	 * goes to the journal whenever the database is not ready, the journal
	 * already holds writes or memory is full, so the order is kept. */
	struct req_list queue;
	size_t n_queued, n_windows; /* windows and event writes (max_pending) */
	struct jnl *jnl;    /* NULL: no journal */
	struct req *jhead;  /* the journal's oldest write, decoded */
	uint64_t appended, replayed;
	bool in_flight;     /* the head was sent and has not completed */
	bool preparing;     /* what is in flight prepares the head's statement */
	unsigned prepared;  /* bit per req_kind prepared on this connection */
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
static void spill_memory(struct store *s);

static void connection_failed(struct store *s, const char *why)
{
	s->in_flight = s->preparing = false;
	pgq_reset(s->pgq);
	if (s->jnl)
		spill_memory(s);
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
		 "SET statement_timeout = '%llu ms';\n"
		 "SET plan_cache_mode = force_generic_plan%s",
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
static struct req *head(struct store *s);

static void become_ready(struct store *s)
{
	if (!head(s))
		pgq_backoff_reset(s->pgq);
	snprintf(s->why, sizeof(s->why), "schema version %zu", store_n_migrations);
	set_state(s, STORE_READY, s->why);
	send_head(s);
}

static void free_restore(struct store *s)
{
	for (size_t i = 0; i < s->n_restore; i++) {
		free(s->restore[i].model);
		free(s->restore[i].slice);
	}
	free(s->restore);
	s->restore = NULL;
	s->n_restore = s->restore_next = 0;
}

/* The K-of-M history, when wanted, then READY.  One attempt only: a
 * history that cannot be read in time must not hold the start up. */
static void send_history(struct store *s)
{
	bool want = !s->history_tried && s->opts.history_want && s->opts.history &&
		    s->opts.history_want(s->arg);

	s->history_tried = true;
	if (s->free_pending)
		return;
	if (!want) {
		become_ready(s);
		return;
	}
	s->boot = BOOT_HISTORY;
	send_simple(s, history_sql, s->opts.query_timeout_us);
}

/* Asks for the next wanted set's vectors, or goes on with the history. */
static void next_restore(struct store *s)
{
	char id[24];
	const char *values[1] = { id };

	if (s->restore_next >= s->n_restore) {
		free_restore(s);
		s->refs_restored = true;
		send_history(s);
		return;
	}
	snprintf(id, sizeof(id), "%lld", (long long)s->restore[s->restore_next].meta.id);
	s->boot = BOOT_REF_DATA;
	if (pgq_send(s->pgq, reference_data_sql, 1, values, NULL, NULL,
		     s->opts.query_timeout_us) < 0)
		connection_failed(s, pgq_error(s->pgq));
}

static void send_ref_list(struct store *s)
{
	if (s->refs_restored || !s->opts.want || !s->opts.restore) {
		s->refs_restored = true;
		send_history(s);
	} else if (s->refs_listed) {
		next_restore(s);
	} else {
		s->boot = BOOT_REFS;
		send_simple(s, references_sql, s->opts.query_timeout_us);
	}
}

static void finish_boot(struct store *s, const PGresult *res)
{
	if (!s->seqs_loaded) {
		for (int i = 0; i < PQntuples(res) && s->on_seq && !s->free_pending; i++)
			s->on_seq(s->arg, PQgetvalue(res, i, 0),
				  strtoll(PQgetvalue(res, i, 1), NULL, 10));
		s->seqs_loaded = true;
	}
	send_ref_list(s);
}

static double field_double(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? (double)NAN : strtod(PQgetvalue(res, row, col), NULL);
}

static unsigned field_uint(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : (unsigned)strtoul(PQgetvalue(res, row, col),
								   NULL, 10);
}

static enum store_persist persist_of(const char *name)
{
	return !strcmp(name, "raw") ? STORE_PERSIST_RAW :
	       !strcmp(name, "projected") ? STORE_PERSIST_PROJECTED : STORE_PERSIST_NONE;
}

/* Metadata of the sets on offer; the owner picks the ones it wants. */
static void list_references(struct store *s, const PGresult *res)
{
	int rows = PQntuples(res);
	bool oom;

	s->restore = rows ? calloc((size_t)rows, sizeof(*s->restore)) : NULL;
	oom = rows && !s->restore;
	for (int i = 0; i < rows && !oom && !s->free_pending; i++) {
		struct restore_item *it = &s->restore[s->n_restore];

		it->meta = (struct store_reference){
			.id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.model = PQgetvalue(res, i, 1),
			.slice = PQgetvalue(res, i, 2),
			.n = field_uint(res, i, 3),
			.dim = field_uint(res, i, 4),
			.persist = persist_of(PQgetvalue(res, i, 5)),
			.k = field_uint(res, i, 6),
			.source_dim = field_uint(res, i, 7),
			.projection_seed = PQgetisnull(res, i, 8) ? 0 :
				(uint64_t)strtoll(PQgetvalue(res, i, 8), NULL, 10),
			.cal_n = field_uint(res, i, 9),
			.cal_ece = field_double(res, i, 10),
			.cal_brier = field_double(res, i, 11),
			.explicit_records = !strcmp(PQgetvalue(res, i, 12), "t"),
			.created_us = strtoll(PQgetvalue(res, i, 13), NULL, 10),
		};
		if (!s->opts.want(s->arg, &it->meta))
			continue;
		it->model = strdup(it->meta.model);
		it->slice = strdup(it->meta.slice);
		it->meta.model = it->model;
		it->meta.slice = it->slice;
		s->n_restore++;
		oom = !it->model || !it->slice;
	}
	if (oom) {
		free_restore(s);
		connection_failed(s, "out of memory listing reference sets");
		return;
	}
	s->refs_listed = true;
	slog(s, LOG_INFO, "store: restoring %zu of %d saved reference sets", s->n_restore,
	     rows);
	next_restore(s);
}

/* bytea (hex text) of N * WIDTH float32 little-endian, into a new array. */
static float *floats_of(const PGresult *res, int col, size_t count, bool *bad)
{
	size_t len = 0;
	unsigned char *raw;
	float *out;

	if (PQgetisnull(res, 0, col) || count == 0)
		return NULL;
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, col), &len);
	out = raw && len == count * 4 ? malloc(len) : NULL;
	if (out) {
		for (size_t i = 0; i < count; i++) {
			uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
				     (uint32_t)raw[4 * i + 2] << 16 |
				     (uint32_t)raw[4 * i + 3] << 24;

			memcpy(&out[i], &u, sizeof(u));
		}
	}
	*bad = !out;
	PQfreemem(raw);
	return out;
}

static void restore_one(struct store *s, const PGresult *res)
{
	struct restore_item *it = &s->restore[s->restore_next++];
	struct store_reference r = it->meta;
	bool bad_data = false, bad_scores = false;
	float *data = NULL, *scores = NULL;

	if (PQntuples(res) == 1) {
		data = floats_of(res, 0, (size_t)r.n * r.dim, &bad_data);
		scores = floats_of(res, 1, (size_t)r.n * r.k, &bad_scores);
	}
	r.data = data;
	r.scores = scores;
	if (PQntuples(res) != 1 || (r.n && (bad_data || (r.k && bad_scores))))
		slog(s, LOG_WARNING, "store: reference set %lld (%s/%s) could not be read "
		     "back; the slice warms up again", (long long)r.id, r.model, r.slice);
	else
		s->opts.restore(s->arg, &r);
	free(data);
	free(scores);
	if (!s->free_pending)
		next_restore(s);
}

struct journal_scan {
	struct hist *h;
	size_t decisions;
};

/* A journaled window or retirement, after those in the database. */
static int journal_decision(void *arg, const unsigned char *data, size_t len)
{
	struct journal_scan *js = arg;
	const char *model, *slice;
	int64_t id;
	bool drifted;
	unsigned alarm_m;
	struct req *r;
	int err = req_decode(data, len, &r);

	if (err < 0)
		return err == -EINVAL ? 0 : err;	/* the replay drops it */
	if (req_decision(r, &model, &slice, &id, &drifted, &alarm_m)) {
		err = hist_add(js->h, model, slice, id, drifted, alarm_m);
		js->decisions++;
	} else if (req_retirement(r, &model, &slice)) {
		hist_forget(js->h, model, slice);
	}
	req_free(r);
	return err;
}

static void restore_history(struct store *s, const PGresult *res)
{
	struct journal_scan js = { .h = hist_new() };
	const struct store_history *list = NULL;
	size_t n = 0;
	int err = js.h ? 0 : -ENOMEM;

	for (int i = 0; i < PQntuples(res) && !err; i++)
		err = hist_add(js.h, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			       strtoll(PQgetvalue(res, i, 2), NULL, 10),
			       PQgetvalue(res, i, 3)[0] == 't', field_uint(res, i, 4));
	if (!err && s->jnl)
		err = jnl_scan(s->jnl, journal_decision, &js);
	if (!err)
		err = hist_list(js.h, &list, &n);
	if (err) {
		slog(s, LOG_ERR, "store: out of memory gathering the K-of-M history");
	} else {
		slog(s, LOG_INFO, "store: K-of-M history of %zu slices found (%d "
		     "decisions in the database, %zu in the journal)", n,
		     PQntuples(res), js.decisions);
		s->opts.history(s->arg, list, n);
	}
	hist_free(js.h);
	if (!s->free_pending)
		become_ready(s);
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
	case BOOT_REFS:
	case BOOT_REF_DATA:
		return "restoring reference sets failed";
	case BOOT_HISTORY:
		return "restoring the K-of-M history failed";
	}
	return "?";
}

static void on_boot_result(struct store *s, const PGresult *res)
{
	bool rows = s->boot == BOOT_CATALOG || (s->boot == BOOT_FINISH && !s->seqs_loaded) ||
		    s->boot == BOOT_REFS || s->boot == BOOT_REF_DATA ||
		    s->boot == BOOT_HISTORY;

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
	case BOOT_REFS:
		list_references(s, res);
		return;
	case BOOT_REF_DATA:
		restore_one(s, res);
		return;
	case BOOT_HISTORY:
		restore_history(s, res);
		return;
	}
}

static void begin_boot(struct store *s)
{
	s->prepared = 0;	/* a new connection */
	set_state(s, STORE_MIGRATING, "checking schema");
	s->boot = BOOT_CATALOG;
	send_simple(s, catalog_sql, s->opts.migrate_timeout_us);
}

/* ---- the write queue and the journal ---------------------------------------- */

static bool journal_empty(const struct store *s)
{
	return !s->jnl || (!s->jhead && jnl_records(s->jnl) == 0);
}

/* The oldest write: memory first, then the journal (decoded once).  A
 * journal record that is not a request of this build is dropped. */
static struct req *head(struct store *s)
{
	unsigned char *buf;
	size_t len;
	int err;

	if (!TAILQ_EMPTY(&s->queue))
		return TAILQ_FIRST(&s->queue);
	while (!s->jhead && s->jnl && jnl_records(s->jnl)) {
		err = jnl_peek(s->jnl, &buf, &len);
		if (err == -EIO) {
			slog(s, LOG_ERR, "store: journal record unreadable; the rest of its "
			     "segment is lost");
			continue;
		}
		if (err < 0)
			return NULL;
		err = req_decode(buf, len, &s->jhead);
		free(buf);
		if (err == -EINVAL) {
			slog(s, LOG_ERR, "store: journal record is not a write; dropped");
			s->dropped++;
			jnl_consume(s->jnl);
		} else if (err < 0) {
			return NULL;
		}
	}
	return s->jhead;
}

/* Each kind of write is prepared on the connection before its first use:
 * parsing and planning the window statement was half of the server's CPU
 * per window.  Only then, so that a table locked at start holds up the
 * writes waiting for it, not the start. */
static void send_head(struct store *s)
{
	struct req *r;
	int err;

	if (s->state != STORE_READY || s->in_flight || !(r = head(s)))
		return;
	s->preparing = !(s->prepared & (1u << r->kind));
	if (s->preparing)
		err = pgq_prepare(s->pgq, req_kind_name(r->kind),
				  req_kind_sql(r->kind), s->opts.query_timeout_us);
	else
		err = pgq_send_prepared(s->pgq, req_kind_name(r->kind),
					r->nparams, r->values, r->lengths,
					r->formats, s->opts.query_timeout_us);
	if (err < 0) {
		connection_failed(s, pgq_error(s->pgq));
		return;
	}
	s->in_flight = true;
	r->sent_us = mono_us();
}

static void on_prepared(struct store *s, const PGresult *res)
{
	s->in_flight = s->preparing = false;
	if (!status_ok(res, PGRES_COMMAND_OK)) {
		connection_failed(s, result_error(s, "preparing a statement "
						  "failed", res));
		return;
	}
	s->prepared |= 1u << head(s)->kind;
	send_head(s);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	enter(s);
	send_head(s);
	leave(s);
}

/* Windows, event and alarm writes count against max_pending. */
static bool counts_as_window(const struct req *r)
{
	return r->kind == REQ_WINDOW || r->kind == REQ_EVENTS || r->kind == REQ_ALARMS;
}

/* Takes R out of the memory queue and frees it. */
static void queue_drop(struct store *s, struct req *r)
{
	TAILQ_REMOVE(&s->queue, r, link);
	s->n_queued--;
	if (counts_as_window(r))
		s->n_windows--;
	req_free(r);
}

static void pop_head(struct store *s)
{
	struct req *r = TAILQ_FIRST(&s->queue);

	if (!r) {
		req_free(s->jhead);
		s->jhead = NULL;
		jnl_consume(s->jnl);
		s->replayed++;
		return;
	}
	queue_drop(s, r);
}

/* Encodes R onto the journal's tail; R stays the caller's. */
static int journal_append(struct store *s, const struct req *r)
{
	unsigned char *buf;
	size_t len;
	int err = req_encode(r, &buf, &len);

	if (err == 0) {
		err = jnl_append(s->jnl, buf, len);
		free(buf);
	}
	if (err == 0)
		s->appended++;
	return err;
}

/* Appends R to the journal (R is freed either way). */
static int journal_put(struct store *s, struct req *r)
{
	char what[256];
	int err = journal_append(s, r);

	if (err != 0 && err != -ENOSPC) {
		req_describe(r, what, sizeof(what));
		slog(s, LOG_ERR, "store: cannot write %s to the journal: %s", what,
		     strerror(-err));
	}
	req_free(r);
	return err;
}

/* Moves the writes waiting in memory into an empty journal, oldest first,
 * so that they survive a crash while the database is away.  Whatever does
 * not fit stays in memory, still ahead of the journal. */
static void spill_memory(struct store *s)
{
	struct req *r;

	if (!journal_empty(s))
		return;
	while ((r = TAILQ_FIRST(&s->queue)) && journal_append(s, r) == 0)
		queue_drop(s, r);
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
	/* A write replayed from the journal does not know when it was put. */
	if (r->queued_us)
		s->opts.observe(s->arg, STORE_T_COMMIT, now - r->queued_us);
	if (r->closed_us)
		s->opts.observe(s->arg, STORE_T_CLOSED, now - r->closed_us);
}

static bool completed(struct store *s, const struct req *r, const PGresult *res)
{
	char what[256];

	if (r->kind != REQ_WINDOW && r->kind != REQ_EVENTS && r->kind != REQ_ALARMS)
		return status_ok(res, PGRES_COMMAND_OK);
	if (!status_ok(res, PGRES_TUPLES_OK) || PQntuples(res) != 1 || PQnfields(res) != 4)
		return false;
	events_written(s, res);
	if (r->kind != REQ_WINDOW)
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
	const struct req *r = head(s);

	if (s->preparing) {
		on_prepared(s, res);
		return;
	}
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
	if (!head(s))
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
		s->in_flight = s->preparing = false;
		if (s->jnl)
			spill_memory(s);
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
	if (!o->journal_max)
		o->journal_max = DEFAULT_JOURNAL_MAX;
}

static int open_journal(struct store *s)
{
	char msg[512];
	int err;

	if (!s->opts.journal_path)
		return 0;
	err = jnl_open(s->opts.journal_path, s->opts.journal_max, REQ_FORMAT, &s->jnl, msg,
		       sizeof(msg));
	if (err < 0) {
		slog(s, LOG_ERR, "store: %s", msg);
		return err;
	}
	if (jnl_discarded(s->jnl))
		slog(s, LOG_ERR, "store: journal %s: %llu damaged or foreign segment tails "
		     "cut off", s->opts.journal_path,
		     (unsigned long long)jnl_discarded(s->jnl));
	if (jnl_records(s->jnl))
		slog(s, LOG_WARNING, "store: journal %s holds %zu writes from before; they "
		     "are replayed once the database is ready", s->opts.journal_path,
		     jnl_records(s->jnl));
	return 0;
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
	if (!s->applied || !s->kick || !s->pgq || open_journal(s) < 0)
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
	req_free(s->jhead);
	jnl_close(s->jnl);
	free_restore(s);
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

static bool memory_full(const struct store *s)
{
	return s->n_windows >= s->opts.max_pending;
}

static int enqueue(struct store *s, struct req *r)
{
	int err = 0;

	if (s->jnl && (s->state != STORE_READY || !journal_empty(s) ||
		       (counts_as_window(r) && memory_full(s)))) {
		err = journal_put(s, r);
	} else {
		r->queued_us = mono_us();
		TAILQ_INSERT_TAIL(&s->queue, r, link);
		s->n_queued++;
		if (counts_as_window(r))
			s->n_windows++;
	}
	if (err == 0 && s->state == STORE_READY && !s->in_flight)
		event_active(s->kick, 0, 0);
	return err;
}

/* Whether a result write may be queued: not after close, and without a
 * journal not beyond the memory queue's bound. */
static int admit_result(const struct store *s)
{
	if (s->state == STORE_CLOSED)
		return -EPIPE;
	if (!s->jnl && memory_full(s))
		return -ENOBUFS;
	return 0;
}

int store_put_window(struct store *s, const struct store_window *w)
{
	struct req *r;
	int err = admit_result(s);

	if (!err)
		err = req_new_window(w, &r);
	return err ? err : enqueue(s, r);
}

int store_put_events(struct store *s, const struct store_event *ev, size_t n)
{
	struct req *r;
	int err = admit_result(s);

	if (!err)
		err = req_new_events(ev, n, &r);
	return err ? err : enqueue(s, r);
}

int store_put_stream_alarms(struct store *s, const struct store_stream_alarms *a)
{
	struct req *r;
	int err = admit_result(s);

	if (!err)
		err = req_new_alarms(a, &r);
	return err ? err : enqueue(s, r);
}

int store_put_reference(struct store *s, const struct store_reference *ref)
{
	struct req *r;
	int err;

	if (s->state == STORE_CLOSED)
		return -EPIPE;
	err = req_new_reference(ref, &r);
	return err ? err : enqueue(s, r);
}

int store_retire_references(struct store *s, const char *model, const char *slice,
			    int64_t at_us, const char *reason)
{
	struct req *r;
	int err;

	if (s->state == STORE_CLOSED)
		return -EPIPE;
	err = req_new_retire(model, slice, at_us, reason, &r);
	return err ? err : enqueue(s, r);
}

/* Room kept in the journal for the windows already on their way when it
 * stops accepting new ones. */
static uint64_t journal_reserve(const struct store *s)
{
	return jnl_max_bytes(s->jnl) / 16;
}

bool store_accepting(const struct store *s)
{
	if (s->state == STORE_CLOSED)
		return false;
	if (s->state == STORE_READY && journal_empty(s) && !memory_full(s))
		return true;
	if (!s->jnl)
		return !memory_full(s);
	return jnl_bytes(s->jnl) + journal_reserve(s) <= jnl_max_bytes(s->jnl);
}

size_t store_spill(struct store *s)
{
	if (s->jnl && !s->in_flight)
		spill_memory(s);
	return s->n_queued;
}

void store_journal_stats(const struct store *s, struct store_journal_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->appended = s->appended;
	out->replayed = s->replayed;
	if (!s->jnl)
		return;
	out->enabled = true;
	out->full = jnl_bytes(s->jnl) + journal_reserve(s) > jnl_max_bytes(s->jnl);
	out->bytes = jnl_bytes(s->jnl);
	out->max_bytes = jnl_max_bytes(s->jnl);
	out->records = jnl_records(s->jnl);
	out->discarded = jnl_discarded(s->jnl);
}

void store_drain(struct store *s, void (*done)(void *arg), void *arg)
{
	s->drain_done = done;
	s->drain_arg = arg;
	if ((TAILQ_EMPTY(&s->queue) && journal_empty(s)) || s->state == STORE_CLOSED) {
		enter(s);
		call_drain(s);
		leave(s);
	}
}

size_t store_pending(const struct store *s)
{
	return s->n_queued + (s->jnl ? jnl_records(s->jnl) : 0);
}

size_t store_pending_memory(const struct store *s)
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
