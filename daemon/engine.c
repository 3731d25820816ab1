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

#include "conf.h"
#include "correct.h"
#include "hookev.h"
#include "latest.h"
#include "log.h"
#include "registry.h"
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
	unsigned detectors;	/* bit i selects det_registry[i] */
	uint64_t seed;		/* the window's, recorded with its rows */
	struct det_settings s;
};

/* Results per registry entry: rc 0 = ran (rows in out), -ENOENT = not
 * selected or not runnable on this window, else failed; why holds the
 * reason for a skip, a failure or a row left out. */
struct eng_job {
	struct wq_job wq;
	struct eval *eval;
	struct win_closed *win;
	struct det_params dp;
	int rc[DET_COUNT];
	struct det_output out[DET_COUNT];
	char why[DET_COUNT][DET_WHY_MAX];
	uint64_t run_us;
	uint64_t closed_us;	/* monotonic, for the close -> commit latency */
};

/* The windows of one model closed at the same moment: corrected together. */
struct eval {
	struct eng_model *model;
	double alpha, effect_floor;
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

/* The window as the detectors see it. */
static struct det_input det_input_of(const struct win_closed *c, uint64_t seed)
{
	return (struct det_input){
		.ref = c->ref->data, .n = c->ref->n,
		.win = c->data, .m = c->n,
		.dim = c->dim,
		.seed = seed,
	};
}

static bool any_projectable(unsigned detectors)
{
	for (size_t i = 0; i < DET_COUNT; i++)
		if ((detectors & (1u << i)) && det_registry[i].projectable)
			return true;
	return false;
}

static void job_run(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;
	struct det_input in = det_input_of(j->win, j->dp.seed);
	struct det_projected proj = { .in = in };
	int proj_rc = 0;
	uint64_t t0 = mono_us();

	if (any_projectable(j->dp.detectors))
		proj_rc = det_project(&in, &j->dp.s, &proj);
	for (size_t i = 0; i < DET_COUNT; i++) {
		const struct det_def *def = &det_registry[i];

		j->rc[i] = -ENOENT;
		j->why[i][0] = '\0';
		/* calibration has no window run: the label join feeds it */
		if (!(j->dp.detectors & (1u << i)) || !def->run)
			continue;
		if (def->projectable && proj_rc) {
			j->rc[i] = proj_rc;
			snprintf(j->why[i], sizeof j->why[i], "%s: projection "
				 "failed: %s", def->name, strerror(-proj_rc));
			continue;
		}
		j->rc[i] = det_run(def, def->projectable ? &proj.in : &in,
				   &j->dp.s, &j->out[i], j->why[i],
				   sizeof j->why[i]);
	}
	det_projected_free(&proj);
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

#define MAX_TESTS (DET_COUNT * DET_MAX_ROWS)

/* Corrected threshold of one p-valued test over an evaluation's slices;
 * the name is copied, as jobs are freed while the table is still used. */
struct test_threshold {
	char test[DET_TEST_NAME_MAX];
	double threshold;
};

static const struct det_row *find_row(const struct eng_job *j,
				      const char *test)
{
	for (size_t i = 0; i < DET_COUNT; i++)
		for (size_t r = 0; j->rc[i] == 0 && r < j->out[i].n_rows; r++)
			if (!strcmp(j->out[i].rows[r].test, test))
				return &j->out[i].rows[r];
	return NULL;
}

/* Corrects TEST's p-values across the slices of the evaluation (windows
 * where it did not run count as NaN, i.e. not at all). */
static double corrected_threshold(const struct eval *ev, const char *test,
				  double *p)
{
	double thr = ev->alpha / (double)ev->n;

	for (size_t k = 0; k < ev->n; k++) {
		const struct det_row *r = ev->jobs[k]->wq.status == 0 ?
			find_row(ev->jobs[k], test) : NULL;

		p[k] = r ? r->p_value : NO_VALUE;
	}
	/* On failure Bonferroni stands in: never more liberal than BH. */
	if (corr_threshold(ev->correction, p, ev->n, ev->alpha, &thr) < 0)
		thr = ev->alpha / (double)ev->n;
	return thr;
}

/* One threshold per p-valued test name seen in the evaluation. */
static size_t eval_thresholds(const struct eval *ev, struct test_threshold *t)
{
	double *p = malloc(ev->n * sizeof(double));
	size_t n = 0;

	for (size_t k = 0; k < ev->n; k++) {
		const struct eng_job *j = ev->jobs[k];

		for (size_t i = 0; j->wq.status == 0 && i < DET_COUNT; i++)
			for (size_t r = 0; j->rc[i] == 0 && r < j->out[i].n_rows; r++) {
				const struct det_row *row = &j->out[i].rows[r];
				size_t seen = 0;

				while (seen < n && strcmp(t[seen].test, row->test))
					seen++;
				if (row->kind != DET_P_VALUE || seen < n ||
				    n == MAX_TESTS)
					continue;
				snprintf(t[n].test, sizeof t[n].test, "%s", row->test);
				t[n++].threshold = p ?
					corrected_threshold(ev, row->test, p) :
					ev->alpha / (double)ev->n;
			}
	}
	free(p);
	return n;
}

static double threshold_of(const struct test_threshold *t, size_t n,
			   const char *test, double alpha)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].test, test))
			return t[i].threshold;
	return alpha;
}

static struct store_test store_row(const struct eval *ev,
				   const struct det_row *r,
				   const struct test_threshold *thr,
				   size_t n_thr)
{
	struct store_test t = {
		.test = r->test,
		.statistic = r->statistic,
		.p_value = r->p_value,
		.threshold = NO_VALUE,
		.effect = r->effect,
		.bandwidth = r->bandwidth,
		.permutations = r->permutations,
	};

	switch (r->kind) {
	case DET_P_VALUE:
		if (isnan(r->p_value))
			break;	/* statistic only (no permutations) */
		t.threshold = threshold_of(thr, n_thr, r->test, ev->alpha);
		t.drifted = r->p_value <= t.threshold &&
			    r->effect >= ev->effect_floor;
		break;
	case DET_ABOVE:
		t.threshold = r->threshold;
		t.drifted = r->statistic > r->threshold;
		break;
	case DET_REPORT:
		break;
	}
	return t;
}

static size_t build_tests(const struct eval *ev, const struct eng_job *j,
			  const struct test_threshold *thr, size_t n_thr,
			  struct store_test *t)
{
	size_t n = 0;

	for (size_t i = 0; i < DET_COUNT; i++)
		for (size_t r = 0; j->rc[i] == 0 && r < j->out[i].n_rows; r++)
			t[n++] = store_row(ev, &j->out[i].rows[r], thr, n_thr);
	return n;
}

/* Skipped, failed or partly dropped detectors, on the loop thread. */
static void log_reasons(const char *model, const struct win_closed *c,
			const struct eng_job *j)
{
	for (size_t i = 0; i < DET_COUNT; i++) {
		if (!j->why[i][0])
			continue;
		log_msg(j->rc[i] == -ENOENT ? LOG_LVL_INFO :
			j->rc[i] == 0 ? LOG_LVL_WARNING : LOG_LVL_ERR,
			"model %s slice %s window %lld: %s%s", model, c->slice,
			(long long)c->window_id,
			j->rc[i] == -ENOENT || j->rc[i] == 0 ? "" :
							       "detector failed: ",
			j->why[i]);
	}
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
			 const struct eng_job *j,
			 const struct test_threshold *thr, size_t n_thr,
			 struct hookev_batch *hb, bool last)
{
	const char *model = ev->model->name;
	const struct win_closed *c = j->win;
	struct store_test t[MAX_TESTS];
	size_t n = build_tests(ev, j, thr, n_thr, t);
	struct store_window w = {
		.model = model,
		.slice = c->slice,
		.window_id = c->window_id,
		.start_us = c->start_us,
		.end_us = c->end_us,
		.n = c->n,
		.reference_set_id = c->ref->id,
		.seed = j->dp.seed,
		.tests = t,
		.n_tests = n,
		.closed_us = j->closed_us,
	};

	log_reasons(model, c, j);
	if (n == 0) {
		st.windows_failed++;
		log_err("model %s slice %s window %lld: no detector produced "
			"a result", model, c->slice, (long long)c->window_id);
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
	struct test_threshold thr[MAX_TESTS];
	size_t n_thr = eval_thresholds(ev, thr), i;
	struct timespec now;
	struct hookev_batch *hb;

	clock_gettime(CLOCK_REALTIME, &now);
	hb = hookev_batch_new(e->conf, m->name, (int64_t)now.tv_sec * 1000000 +
						 now.tv_nsec / 1000);
	for (i = 0; i < ev->n; i++) {
		if (ev->jobs[i]->wq.status == 0)
			write_window(e, ev, ev->jobs[i], thr, n_thr, hb,
				     i + 1 == ev->n);
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
	return (struct det_params){
		.detectors = cfg->detectors,
		.seed = window_seed(cfg, c),
		.s = {
			.alpha = cfg->alpha,
			.correction = corr_of(cfg->correction),
			.projection_dim = cfg->projection_dim,
			.max_memory = cfg->detector_memory,
			.mmd_permutations = cfg->mmd_permutations,
			.mmd_bandwidth_points = cfg->mmd_bandwidth_points,
			.centroid_threshold = cfg->centroid_threshold,
			.energy_permutations = cfg->energy_permutations,
			.classifier_permutations = cfg->classifier_permutations,
			.classifier_holdout = cfg->classifier_holdout,
			.classifier_l2 = cfg->classifier_l2,
			.classifier_max_iter = cfg->classifier_max_iter,
			.health_collapse_drop = cfg->health_collapse_drop,
			.health_uniformity_rise = cfg->health_uniformity_rise,
			.health_norm_change = cfg->health_norm_change,
			.health_duplicate_rise = cfg->health_duplicate_rise,
			.health_duplicate_cosine = cfg->health_duplicate_cosine,
			.scores_psi_threshold = cfg->scores_psi_threshold,
			.scores_js_threshold = cfg->scores_js_threshold,
		},
	};
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
