/* Records → windows → detector jobs → decision → store. */
#include "engine.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "centroid.h"
#include "conf.h"
#include "correct.h"
#include "hookev.h"
#include "latest.h"
#include "log.h"
#include "mmd.h"
#include "rng.h"
#include "stats.h"
#include "store.h"
#include "window.h"
#include "workers.h"

/* p-value, threshold or bandwidth of a test that has none (SQL NULL). */
#define NO_VALUE ((double)NAN)

/* A time-only window never holds more than this many reference sizes, so
 * a burst cannot grow it without bound; it then closes by count. */
#define WINDOW_MAX_REFERENCES 4

struct eng_model {
	char *name;			/* own copy: outlives a reload */
	const struct conf_model *cfg;	/* in the engine's current conf */
	struct eng *eng;
	struct win_model *win;
	struct event *tick;		/* window.interval */
	unsigned evals_in_flight;
	size_t windows_in_flight;	/* closed, results not back yet */
	bool removed;			/* freed when evals_in_flight hits 0 */
	uint64_t records, windows;
	struct lat *latest;		/* for /metrics */
};

/* Everything a job needs, copied so that a reload cannot pull it away. */
struct det_params {
	unsigned detectors;
	struct mmd_params mmd;
};

struct eng_job {
	struct wq_job wq;
	struct eval *eval;
	struct win_closed *win;
	struct det_params dp;
	int mmd_rc, cen_rc;
	struct mmd_result mmd;
	struct cen_result cen;
	uint64_t run_us;
	uint64_t closed_us;	/* monotonic, for the close -> commit latency */
};

/* The windows of one model closed at the same moment: corrected together. */
struct eval {
	struct eng_model *model;
	double alpha, effect_floor, centroid_threshold;
	enum corr_method correction;
	size_t n, pending;
	struct eng_job *jobs[];
};

struct eng {
	struct event_base *base;
	struct wq *wq;
	struct store *store;
	const struct conf *conf;
	struct eng_model **models;
	size_t n_models;
	struct eng_model **draining;	/* removed, waiting for their jobs */
	size_t n_draining;
	size_t evals_in_flight;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static enum corr_method corr_of(enum conf_correction c)
{
	return c == CONF_CORR_BONFERRONI ? CORR_BONFERRONI :
	       c == CONF_CORR_NONE	 ? CORR_NONE :
					   CORR_BH;
}

/* ---- jobs on workers ---- */

static void job_run(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;
	const struct win_closed *c = j->win;
	uint64_t t0 = mono_us();

	j->mmd_rc = j->cen_rc = -ENOENT;
	if (j->dp.detectors & CONF_DET_MMD)
		j->mmd_rc = mmd_test(c->ref->data, c->ref->n, c->data, c->n,
				     c->dim, &j->dp.mmd, &j->mmd);
	if (j->dp.detectors & CONF_DET_CENTROID)
		j->cen_rc = cen_shift(c->ref->data, c->ref->n, c->data, c->n,
				      c->dim, &j->cen);
	j->run_us = mono_us() - t0;
}

/* The window's buffer goes back to its model for the next window. */
static void job_free(struct eng_model *m, struct eng_job *j)
{
	if (m->removed)
		win_closed_free(j->win);
	else
		win_recycle(m->win, j->win);
	free(j);
}

/* ---- decision and store ---- */

#define MAX_TESTS 3

static size_t build_tests(const struct eval *ev, const struct eng_job *j,
			  double mmd_threshold, struct store_test *t)
{
	size_t n = 0;

	if (j->mmd_rc == 0) {
		t[n] = (struct store_test){
			.test = "mmd",
			.statistic = j->mmd.statistic,
			.p_value = j->mmd.p_value,
			.threshold = mmd_threshold,
			.effect = j->mmd.statistic,
			.bandwidth = j->mmd.bandwidth,
			.permutations = j->mmd.permutations,
		};
		t[n].drifted = j->mmd.p_value <= mmd_threshold &&
			       j->mmd.statistic >= ev->effect_floor;
		n++;
	}
	if (j->cen_rc == 0) {
		t[n++] = (struct store_test){
			.test = "centroid_cosine",
			.statistic = j->cen.cosine,
			.p_value = NO_VALUE,
			.threshold = ev->centroid_threshold,
			.drifted = j->cen.cosine > ev->centroid_threshold,
			.effect = j->cen.cosine,
			.bandwidth = NO_VALUE,
		};
		t[n++] = (struct store_test){
			.test = "centroid_euclidean",
			.statistic = j->cen.euclidean,
			.p_value = NO_VALUE,
			.threshold = NO_VALUE,
			.effect = j->cen.euclidean,
			.bandwidth = NO_VALUE,
		};
	}
	return n;
}

static double eval_mmd_threshold(const struct eval *ev)
{
	double *p = malloc(ev->n * sizeof(double)), thr = ev->alpha / (double)ev->n;
	size_t i;

	if (!p)
		return thr;	/* Bonferroni is never more liberal than BH */
	for (i = 0; i < ev->n; i++)
		p[i] = ev->jobs[i]->mmd_rc == 0 ? ev->jobs[i]->mmd.p_value : NO_VALUE;
	if (corr_threshold(ev->correction, p, ev->n, ev->alpha, &thr) < 0)
		thr = ev->alpha / (double)ev->n;
	free(p);
	return thr;
}

static void put_reference(struct eng *e, const char *model,
			  const struct win_closed *c)
{
	enum conf_persist mode = e->conf->persist_reference;
	struct store_reference r = {
		.model = model,
		.slice = c->slice,
		.id = c->ref->id,
		.n = c->ref->n,
		.dim = c->ref->dim,
		.data = mode == CONF_PERSIST_RAW ? c->ref->data : NULL,
		.persist = mode == CONF_PERSIST_RAW ? STORE_PERSIST_RAW :
			   mode == CONF_PERSIST_PROJECTED ?
							  STORE_PERSIST_PROJECTED :
							  STORE_PERSIST_NONE,
	};

	if (store_put_reference(e->store, &r) < 0)
		log_err("model %s slice %s: reference set %lld not queued for "
			"the database (queue full)",
			model, c->slice, (long long)c->ref->id);
}

static void log_window(const char *model, const struct win_closed *c,
		       const struct store_test *t, size_t n)
{
	struct log_ctx ctx;
	char line[512];
	size_t pos = 0, i;
	bool drifted = false;

	for (i = 0; i < n; i++) {
		drifted |= t[i].drifted;
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
					" %s=%.4g%s", t[i].test, t[i].statistic,
					t[i].drifted ? "(drift)" : "");
		if (pos >= sizeof(line))
			break;
	}
	if (drifted)
		st.windows_drifted++;
	ctx = (struct log_ctx){
		.model = model,
		.slice = c->slice,
		.window_id = c->window_id,
		.event = drifted ? "drift" : "window",
		.message_id = drifted ? LOG_MID_DRIFT : LOG_MID_WINDOW,
	};
	log_event(drifted ? LOG_LVL_NOTICE : LOG_LVL_INFO, &ctx,
		  "model %s slice %s window %lld n=%u: %s%s", model, c->slice,
		  (long long)c->window_id, c->n,
		  drifted ? "DRIFT" : "no drift", line);
}

/* The evaluation's webhook events ride with its last window, so they
 * commit in the transaction of the results they report (hookev.h). */
static void add_events(struct hookev_batch *hb, const char *model,
		       const struct win_closed *c, const struct store_test *t,
		       size_t n, bool last, struct store_window *w)
{
	struct hookev_slice s = {
		.slice = c->slice, .window_id = c->window_id,
		.start_us = c->start_us, .end_us = c->end_us, .n = c->n,
		.reference_set_id = c->ref->id,
	};

	if (hookev_add(hb, HOOKEV_DRIFT, &s, t, n) < 0 ||
	    (last && hookev_take(hb, &w->events, &w->n_events) < 0))
		log_err("model %s: out of memory building its webhook event; "
			"slice %s may be missing from it", model, c->slice);
}

/* Events the last window could not carry (its detectors failed). */
static void flush_events(struct eng *e, struct hookev_batch *hb,
			 const char *model)
{
	const struct store_event *ev;
	size_t n = 0;

	if (hookev_take(hb, &ev, &n) < 0 || (n && store_put_events(e->store, ev, n) < 0))
		log_err("model %s: webhook event lost (out of memory or "
			"database queue full)", model);
	hookev_batch_free(hb);
}

static void write_window(struct eng *e, const struct eval *ev,
			 const struct eng_job *j, double mmd_threshold,
			 struct hookev_batch *hb, bool last)
{
	const char *model = ev->model->name;
	const struct win_closed *c = j->win;
	struct store_test t[MAX_TESTS];
	size_t n = build_tests(ev, j, mmd_threshold, t);
	struct store_window w = {
		.model = model,
		.slice = c->slice,
		.window_id = c->window_id,
		.start_us = c->start_us,
		.end_us = c->end_us,
		.n = c->n,
		.reference_set_id = c->ref->id,
		.seed = j->dp.mmd.seed,
		.tests = t,
		.n_tests = n,
		.closed_us = j->closed_us,
	};

	if (n == 0) {
		st.windows_failed++;
		log_err("model %s slice %s window %lld: no detector ran "
			"(mmd: %s)", model, c->slice, (long long)c->window_id,
			strerror(-j->mmd_rc));
		return;
	}
	log_window(model, c, t, n);
	add_events(hb, model, c, t, n, last, &w);
	if (c->ref_new)
		put_reference(e, model, c);
	if (store_put_window(e->store, &w) < 0) {
		st.windows_dropped++;
		log_err("model %s slice %s window %lld: database queue full, "
			"result dropped", model, c->slice,
			(long long)c->window_id);
		return;
	}
	st.windows_written++;
	if (lat_put(ev->model->latest, &w) < 0)
		log_err("model %s slice %s: out of memory for /metrics", model,
			c->slice);
}

static void model_release(struct eng_model *m);

static void eval_finish(struct eval *ev)
{
	struct eng_model *m = ev->model;
	struct eng *e = m->eng;
	double thr = eval_mmd_threshold(ev);
	struct timespec now;
	struct hookev_batch *hb;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &now);
	hb = hookev_batch_new(e->conf, m->name, (int64_t)now.tv_sec * 1000000 +
						 now.tv_nsec / 1000);
	for (i = 0; i < ev->n; i++) {
		if (ev->jobs[i]->wq.status == 0)
			write_window(e, ev, ev->jobs[i], thr, hb, i + 1 == ev->n);
		job_free(m, ev->jobs[i]);
	}
	flush_events(e, hb, m->name);
	m->windows_in_flight -= ev->n;
	free(ev);
	e->evals_in_flight--;
	m->evals_in_flight--;
	if (m->removed && m->evals_in_flight == 0)
		model_release(m);
}

static void job_done(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;

	st.detector_us_total += j->run_us;
	prom_observe_us(&st.detector_seconds, j->run_us);
	if (--j->eval->pending == 0)
		eval_finish(j->eval);
}

/* Each window gets its own seed, derived only from the model's seed, the
 * slice and the window id: a rerun of the same stream gives the same
 * p-values, and the seed recorded with the row reproduces them. */
static uint64_t window_seed(const struct conf_model *cfg,
			    const struct win_closed *c)
{
	struct rng r;

	rng_init(&r, cfg->seed ^ (uint64_t)c->window_id, c->slice_hash);
	return rng_next(&r);
}

static struct det_params det_params_of(const struct conf_model *cfg,
				       const struct win_closed *c)
{
	struct det_params dp = {
		.detectors = cfg->detectors,
		.mmd = {
			.permutations = cfg->mmd_permutations,
			.seed = window_seed(cfg, c),
			.bandwidth_max_points = cfg->mmd_bandwidth_points,
		},
	};
	return dp;
}

static void submit_eval(struct eng_model *m, struct win_closed *list)
{
	const struct conf_model *cfg = m->cfg;
	struct win_closed *c;
	struct eval *ev;
	size_t n = 0, i = 0;

	for (c = list; c; c = c->next)
		n++;
	if (n == 0)
		return;
	ev = calloc(1, sizeof(*ev) + n * sizeof(ev->jobs[0]));
	for (c = list; ev && c; c = c->next, i++)
		if (!(ev->jobs[i] = calloc(1, sizeof(struct eng_job))))
			break;
	if (!ev || i < n) {
		log_err("model %s: out of memory, %zu windows lost",
			cfg->name, n);
		st.windows_failed += n;
		for (size_t k = 0; ev && k < i; k++)
			free(ev->jobs[k]);
		free(ev);
		while ((c = list)) {
			list = c->next;
			win_closed_free(c);
		}
		return;
	}
	ev->model = m;
	ev->alpha = cfg->alpha;
	ev->effect_floor = cfg->effect_floor;
	ev->centroid_threshold = cfg->centroid_threshold;
	ev->correction = corr_of(cfg->correction);
	ev->n = ev->pending = n;
	m->evals_in_flight++;
	m->windows_in_flight += n;
	m->eng->evals_in_flight++;
	for (i = 0, c = list; c; i++) {
		struct eng_job *j = ev->jobs[i];
		struct win_closed *next = c->next;

		c->next = NULL;
		j->eval = ev;
		j->win = c;
		j->dp = det_params_of(cfg, c);
		j->wq.run = job_run;
		j->wq.done = job_done;
		j->closed_us = mono_us();
		st.windows_closed++;
		m->windows++;
		wq_submit(m->eng->wq, &j->wq, 0);
		c = next;
	}
}

/* ---- models ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct eng_model *m = arg;
	struct win_closed *closed = NULL;

	if (win_close_due(m->win, &closed))
		submit_eval(m, closed);
}

static int arm_tick(struct eng_model *m, uint64_t interval_us)
{
	struct timeval tv = {
		.tv_sec = (time_t)(interval_us / 1000000u),
		.tv_usec = (suseconds_t)(interval_us % 1000000u),
	};

	if (m->tick) {
		event_free(m->tick);
		m->tick = NULL;
	}
	if (!interval_us)
		return 0;
	m->tick = event_new(m->eng->base, -1, EV_PERSIST, on_tick, m);
	return m->tick && event_add(m->tick, &tv) == 0 ? 0 : -ENOMEM;
}

static struct win_params win_params_of(const struct conf_model *cfg)
{
	unsigned cap = cfg->window_size;

	if (!cap)
		cap = cfg->reference_size * WINDOW_MAX_REFERENCES;
	return (struct win_params){
		.dim = cfg->dim,
		.reference_size = cfg->reference_size,
		.window_size = cfg->window_size,
		.window_max = cap,
		.window_min = cfg->window_min_size,
		.max_slices = cfg->max_slices,
		.slice_by = (const char *const *)cfg->slice_by,
		.n_slice_by = cfg->n_slice_by,
		.seed = cfg->seed,
	};
}

static struct eng_model *model_new(struct eng *e, const struct conf_model *cfg)
{
	struct eng_model *m = calloc(1, sizeof(*m));
	struct win_params wp = win_params_of(cfg);

	if (!m)
		return NULL;
	m->cfg = cfg;
	m->eng = e;
	m->name = strdup(cfg->name);
	m->win = win_model_new(&wp);
	m->latest = lat_new();
	if (!m->name || !m->win || !m->latest || arm_tick(m, cfg->window_interval_us) < 0)
		goto fail;
	return m;
fail:
	model_release(m);
	return NULL;
}

static void model_release(struct eng_model *m)
{
	struct eng *e = m->eng;
	size_t i;

	for (i = 0; i < e->n_draining; i++)
		if (e->draining[i] == m)
			e->draining[i] = e->draining[--e->n_draining];
	if (m->tick)
		event_free(m->tick);
	win_model_free(m->win);
	lat_free(m->latest);
	free(m->name);
	free(m);
}

/* Stops a model; it is freed once its evaluations are back. */
static void model_retire(struct eng *e, struct eng_model *m)
{
	struct eng_model **grown;

	if (m->tick)
		event_del(m->tick);
	if (m->evals_in_flight == 0) {
		model_release(m);
		return;
	}
	m->removed = true;
	grown = realloc(e->draining, (e->n_draining + 1) * sizeof(*grown));
	if (grown) {
		e->draining = grown;
		e->draining[e->n_draining++] = m;
	}
	/* Without room in the list the model is still freed by eval_finish;
	 * the list only serves eng_free. */
}

static struct eng_model *model_find(const struct eng *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n_models; i++)
		if (!strcmp(e->models[i]->name, name))
			return e->models[i];
	return NULL;
}

struct eng *eng_new(struct event_base *base, struct wq *wq,
		    struct store *store, const struct conf *c)
{
	struct eng *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->base = base;
	e->wq = wq;
	e->store = store;
	if (eng_reconfigure(e, c) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

/* What a model's samples are made of; a change starts them over. */
static bool same_shape(const struct conf_model *a, const struct conf_model *b)
{
	size_t i;

	if (a->dim != b->dim || a->reference_size != b->reference_size ||
	    a->n_slice_by != b->n_slice_by)
		return false;
	for (i = 0; i < a->n_slice_by; i++)
		if (strcmp(a->slice_by[i], b->slice_by[i]))
			return false;
	return true;
}

/* Window sizes, interval, slice cap and seed apply to the running model. */
static int model_update(struct eng_model *m, const struct conf_model *cfg)
{
	struct win_params wp = win_params_of(cfg);

	if (win_model_update(m->win, &wp) < 0)
		return -ENOMEM;
	if (cfg->window_interval_us != m->cfg->window_interval_us &&
	    arm_tick(m, cfg->window_interval_us) < 0)
		return -ENOMEM;
	return 0;
}

int eng_reconfigure(struct eng *e, const struct conf *c)
{
	struct eng_model **next = calloc(c->n_models, sizeof(*next)), *old;
	size_t i, j;

	if (!next)
		return -ENOMEM;
	for (i = 0; i < c->n_models; i++) {
		old = model_find(e, c->models[i].name);
		if (old && same_shape(old->cfg, &c->models[i]) &&
		    model_update(old, &c->models[i]) == 0) {
			next[i] = old;
			continue;
		}
		if (!(next[i] = model_new(e, &c->models[i]))) {
			for (j = 0; j < i; j++)
				if (next[j] != model_find(e, next[j]->name))
					model_release(next[j]);
			free(next);
			return -ENOMEM;
		}
		if (old)
			log_warning("model %s: dim, slice_by or reference.size "
				    "changed: its references and windows start "
				    "over", c->models[i].name);
	}
	for (i = 0; i < e->n_models; i++) {
		for (j = 0; j < c->n_models && next[j] != e->models[i]; j++)
			;
		if (j == c->n_models)
			model_retire(e, e->models[i]);
	}
	/* Survivors point at the new config from now on. */
	for (i = 0; i < c->n_models; i++)
		next[i]->cfg = &c->models[i];
	free(e->models);
	e->models = next;
	e->n_models = c->n_models;
	e->conf = c;
	return 0;
}

enum rec_err eng_ingest(struct eng *e, const struct record *r, int64_t now_us,
			char *msg, size_t msglen)
{
	struct eng_model *m = model_find(e, r->model);
	struct win_closed *closed = NULL;
	enum rec_err err;

	if (!m) {
		snprintf(msg, msglen, "unknown model \"%.64s\"", r->model);
		return REC_ERR_UNKNOWN_MODEL;
	}
	if (!r->embedding) {
		snprintf(msg, msglen,
			 "record has no embedding (labels sent on their own "
			 "are not joined yet)");
		return r->has_label ? REC_ERR_UNSUPPORTED :
				      REC_ERR_MISSING_EMBEDDING;
	}
	if (r->dim != m->cfg->dim) {
		snprintf(msg, msglen,
			 "embedding has %u values, model %s expects %u",
			 r->dim, m->cfg->name, m->cfg->dim);
		return REC_ERR_WRONG_DIM;
	}
	err = win_add(m->win, r, r->has_ts ? r->ts_us : now_us, &closed);
	if (closed)
		submit_eval(m, closed);
	switch (err) {
	case REC_OK:
		m->records++;
		break;
	case REC_ERR_TOO_MANY_SLICES:
		snprintf(msg, msglen, "model %s already tracks %u slices "
			 "(max_slices)", m->cfg->name, m->cfg->max_slices);
		break;
	case REC_ERR_REFERENCE_FROZEN:
		snprintf(msg, msglen, "the reference of this slice is in use "
			 "and no longer takes reference records");
		break;
	case REC_ERR_BAD_FIELD:
		snprintf(msg, msglen, "slice labels too long for a slice key "
			 "(max %d bytes)", WIN_SLICE_KEY_MAX - 1);
		break;
	default:
		snprintf(msg, msglen, "out of memory for the sample buffers");
		break;
	}
	return err;
}

void eng_resume(struct eng *e, const char *model, const char *slice,
		int64_t max_id)
{
	struct eng_model *m = model_find(e, model);

	if (m)
		win_resume(m->win, slice, max_id);
}

size_t eng_in_flight(const struct eng *e)
{
	return e->evals_in_flight;
}

int eng_pressure(const struct eng *e)
{
	int level = 0;
	size_t i;

	for (i = 0; i < e->n_models; i++) {
		const struct eng_model *m = e->models[i];
		size_t max = m->cfg->max_queued_windows;

		if (m->windows_in_flight >= 2 * max)
			return 2;
		if (m->windows_in_flight >= max)
			level = 1;
	}
	return level;
}

void eng_foreach_model(const struct eng *e,
		       void (*fn)(void *arg, const struct eng_model_info *mi),
		       void *arg)
{
	size_t i;

	for (i = 0; i < e->n_models; i++) {
		const struct eng_model *m = e->models[i];
		struct eng_model_info mi = {
			.name = m->name,
			.cfg = m->cfg,
			.latest = m->latest,
			.dim = m->cfg->dim,
			.slices = win_slice_count(m->win),
			.sample_bytes = win_memory(m->win),
			.records = m->records,
			.windows = m->windows,
		};

		fn(arg, &mi);
	}
}

void eng_free(struct eng *e)
{
	size_t i;

	if (!e)
		return;
	/* The caller freed the workers first, so every evaluation has come
	 * back and released its model. */
	for (i = 0; i < e->n_models; i++)
		model_release(e->models[i]);
	while (e->n_draining)
		model_release(e->draining[0]);
	free(e->draining);
	free(e->models);
	free(e);
}
