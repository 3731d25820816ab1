/* Records → windows → detector jobs → decision → store. */
#include "engine.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "calibration.h"
#include "conf.h"
#include "correct.h"
#include "hookev.h"
#include "idlease.h"
#include "labels.h"
#include "latest.h"
#include "log.h"
#include "projection.h"
#include "recsig.h"
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

/* Idle slices and unlabeled records are swept this often. */
#define SWEEP_US 1000000

/* The seed of the projection saved with persist_reference = projected:
 * fixed, so every saved set of a model shares one projection. */
#define PROJECTION_SEED 0x64726966747072ULL	/* "driftpr" */

struct eval;

struct eng_model {
	char *name;			/* own copy: outlives a reload */
	const struct conf_model *cfg;	/* in the engine's current conf */
	struct eng *eng;
	struct win_model *win;
	struct lbl *labels;		/* scored records waiting for a label */
	struct event *tick;		/* window.interval */
	unsigned evals_in_flight;
	/* Evaluations in submission order: decided in that order, so the
	 * alarm history of a slice sees its windows one after the other. */
	struct eval *evals_first, *evals_last;
	size_t windows_in_flight;	/* closed, results not back yet */
	bool removed;			/* freed when evals_in_flight hits 0 */
	uint64_t records, windows;
	struct lat *latest;		/* for /metrics */
	uint64_t slices_refused, slices_expired, windows_insufficient, alarms,
		 resets, references_restored, histories_restored;
	uint64_t labels_joined, labels_unmatched, labels_expired,
		 labels_evicted;
	struct rsig_model *stream;	/* streaming detectors; NULL: off */
	uint64_t stream_alarms[RSIG_DETECTORS][RSIG_SIGNALS];
	uint64_t stream_suppressed[RSIG_DETECTORS][RSIG_SIGNALS];
	bool stream_oom_logged;
};

/* Everything a job needs, copied so that a reload cannot pull it away. */
struct det_params {
	unsigned detectors;	/* bit i selects det_registry[i] */
	uint64_t seed;		/* the window's, recorded with its rows */
	struct det_settings s;
};

#define MAX_TESTS (DET_COUNT * DET_MAX_ROWS)

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
	/* calibration of the window's labeled pairs, and of the reference's
	 * labeled rows when it froze for this window */
	int cal_rc, ref_cal_rc;
	struct cal_result cal, ref_cal;
	float *ref_proj;	/* persist_reference = projected: the copy saved */
	const float *ref_raw;	/* persist_reference = raw: the rows saved */
	float *ref_copy;	/* ref_raw widened from float16, owned */
	struct store_test tests[MAX_TESTS];
	size_t n_tests;
	uint64_t closed_us;	/* monotonic, for the close -> commit latency */
};

/* What the decision needs, copied at submission: a reload (or the model's
 * removal) cannot pull it away. */
struct decision_cfg {
	double alpha, effect_floor;
	char **floors;			/* effect_floor.by_test, copied */
	size_t n_floors;
	enum corr_method correction;
	unsigned alarm_k, alarm_m;
	bool calibration;
	unsigned min_labels;
	double ece_margin, brier_margin;
	enum conf_persist persist;
	unsigned projection_dim;
	unsigned window_min, reference_min;	/* for insufficient_data rows */
};

/* The windows of one model closed at the same moment: corrected together. */
struct eval {
	struct eng_model *model;
	struct eval *next;		/* the model's next evaluation */
	struct decision_cfg dc;
	size_t n, pending;
	struct eng_job *jobs[];
};

struct eng {
	struct event_base *base;
	struct wq *wq;
	struct store *store;
	struct ids *ids;		/* window-id leases, may be NULL */
	const struct conf *conf;
	struct eng_model **models;
	size_t n_models;
	struct eng_model **draining;	/* removed, waiting for their jobs */
	size_t n_draining;
	size_t evals_in_flight;
	struct event *sweep;		/* idle slices, unlabeled records */
	bool history_restored, history_closed;	/* K-of-M restore at start */
};

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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

/* A window closed by count holds window.size records: with a smaller
 * window.min_size than that, the size is the minimum. */
static unsigned window_min_of(const struct conf_model *cfg)
{
	return cfg->window_size && cfg->window_size < cfg->window_min_size ?
		       cfg->window_size :
		       cfg->window_min_size;
}

/* ---- jobs on workers ---- */

/* The window as the detectors see it, its rows and its reference's as
 * float32 (win_ref_rows). */
static struct det_input det_input_of(const struct win_closed *c,
				     const float *ref, const float *win,
				     uint64_t seed)
{
	return (struct det_input){
		.ref = ref, .n = c->ref->n,
		.win = win, .m = c->n,
		.win_sums = c->sums,
		.dim = c->dim,
		.ref_scores = c->ref->scores,
		.win_scores = c->scores,
		.k = c->k,
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

/* Whether a detector of DETECTORS reads the window's rows themselves, not
 * only their column sums (present when HAVE_SUMS): gathering the rows of
 * a "*" window is then worth its copy. */
static bool reads_rows(unsigned detectors, bool have_sums)
{
	for (size_t i = 0; i < DET_COUNT; i++) {
		const struct det_def *def = &det_registry[i];

		if ((detectors & (1u << i)) && def->run &&
		    (def->needs & DET_NEEDS_EMBEDDINGS) &&
		    !(def->sums_suffice && have_sums))
			return true;
	}
	return false;
}

static void job_run(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;
	uint64_t t0 = mono_us();
	float *ref_copy, *win_copy = NULL;
	bool rows = reads_rows(j->dp.detectors, j->win->sums != NULL);
	const float *ref = win_ref_rows(j->win->ref, &ref_copy),
		    *win = rows ? win_closed_rows(j->win, &win_copy) : NULL;
	struct det_input in = det_input_of(j->win, ref, win, j->dp.seed);
	struct det_projected proj = { .in = in };
	int proj_rc = ref && (win || !rows) ? 0 : -ENOMEM;

	if (!proj_rc && any_projectable(j->dp.detectors))
		proj_rc = det_project(&in, &j->dp.s, &proj);
	for (size_t i = 0; i < DET_COUNT; i++) {
		const struct det_def *def = &det_registry[i];

		j->rc[i] = -ENOENT;
		j->why[i][0] = '\0';
		/* calibration has no window run: the label join feeds it */
		if (!(j->dp.detectors & (1u << i)) || !def->run)
			continue;
		if (!ref || (rows && !win)) {
			j->rc[i] = -ENOMEM;
			snprintf(j->why[i], sizeof j->why[i], "%s: out of memory "
				 "for the float32 copy of the samples",
				 def->name);
			continue;
		}
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
	free(ref_copy);
	free(win_copy);
	j->run_us = mono_us() - t0;
}

/* The window's buffer goes back to its model for the next window. */
static void job_free(struct eng_model *m, struct eng_job *j)
{
	if (!j)
		return;
	if (m->removed)
		win_closed_free(j->win);
	else
		win_recycle(m->win, j->win);
	free(j->ref_proj);
	free(j->ref_copy);
	free(j);
}

/* X (n × d) projected to K dimensions with the matrix of SEED, into a new
 * array (projection.h). */
static float *project(const float *x, size_t n, size_t d, size_t k,
		      uint64_t seed)
{
	float *r = malloc(d * k * sizeof(float)), *out = malloc(n * k * sizeof(float));

	if (!r || !out || proj_matrix(d, k, seed, r) < 0 ||
	    proj_apply(x, n, d, r, k, out) < 0) {
		free(out);
		out = NULL;
	}
	free(r);
	return out;
}

/* A reference restored from a projected copy lives in the projected
 * space: the window goes there too before the tests. */
static int project_window(struct win_closed *c)
{
	const struct win_ref *r = c->ref;
	float *out, *copy;
	const float *rows;

	if (!r->source_dim)
		return 0;
	rows = win_closed_rows(c, &copy);
	out = rows ? project(rows, c->n, c->dim, r->dim, r->proj_seed) : NULL;
	free(copy);
	if (!out)
		return -ENOMEM;
	free(c->sums);	/* of the rows before projection */
	c->sums = NULL;
	c->projected = out;
	c->dim = r->dim;
	c->format = SMP_FLOAT32;
	return 0;
}

/* The reference's labeled rows, summarised as its calibration baseline. */
static void calibrate_reference(struct eng_job *j)
{
	const struct win_ref *r = j->win->ref;
	float *scores = NULL;
	int64_t *labels = NULL;
	size_t n = 0;

	j->ref_cal_rc = -ENOENT;
	if (!r->k || !(scores = malloc((size_t)r->n * r->k * sizeof(float))) ||
	    !(labels = malloc(r->n * sizeof(int64_t))))
		goto out;
	for (unsigned i = 0; i < r->n; i++) {
		if (r->labels[i] == WIN_NO_LABEL)
			continue;
		memcpy(scores + n * r->k, r->scores + (size_t)i * r->k,
		       r->k * sizeof(float));
		labels[n++] = r->labels[i];
	}
	if (n)
		j->ref_cal_rc = cal_metrics(scores, r->k, labels, n, NULL,
					    &j->ref_cal);
out:
	free(scores);
	free(labels);
}

/* Everything of one window that runs on a worker: the detectors (unless
 * the window is recorded without a test), its calibration, and what the
 * reference it froze needs before it is saved. */
static void eval_job_run(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;
	struct win_closed *c = j->win;
	const struct decision_cfg *dc = &j->eval->dc;

	if (c->status == WIN_TESTED && project_window(c) == 0) {
		job_run(w);
	} else if (c->status == WIN_TESTED) {
		for (size_t i = 0; i < DET_COUNT; i++)
			j->rc[i] = -ENOMEM;
		snprintf(j->why[0], sizeof(j->why[0]), "out of memory projecting "
			 "the window onto its restored reference");
	}
	j->cal_rc = -ENOENT;
	if (dc->calibration && c->n_labeled)
		j->cal_rc = cal_metrics(c->cal_scores, c->k, c->cal_labels,
					c->n_labeled, NULL, &j->cal);
	if (!c->ref_new)
		return;
	if (dc->calibration)
		calibrate_reference(j);
	if (dc->persist == CONF_PERSIST_PROJECTED && !c->ref->source_dim) {
		float *copy;
		const float *rows = win_ref_rows(c->ref, &copy);

		j->ref_proj = rows ? project(rows, c->ref->n, c->ref->dim,
					     dc->projection_dim,
					     PROJECTION_SEED) : NULL;
		free(copy);
	}
	/* Saved references are float32 whatever the storage. */
	if (dc->persist == CONF_PERSIST_RAW)
		j->ref_raw = win_ref_rows(c->ref, &j->ref_copy);
}

/* ---- decision and store ---- */

/* One result row of a detector as it is stored: a p-valued row leaves
 * its threshold NaN, for decide() to set the corrected cut-off; decide()
 * sets drifted for every row. */
static struct store_test store_row(const struct det_row *r)
{
	return (struct store_test){
		.test = r->test,
		.statistic = r->statistic,
		.p_value = r->kind == DET_P_VALUE ? r->p_value : NO_VALUE,
		.threshold = r->kind == DET_ABOVE ? r->threshold : NO_VALUE,
		.effect = r->effect,
		.bandwidth = r->bandwidth,
		.permutations = r->permutations,
	};
}

static size_t build_tests(const struct eng_job *j, struct store_test *t)
{
	size_t n = 0;

	for (size_t i = 0; i < DET_COUNT; i++)
		for (size_t r = 0; j->rc[i] == 0 && r < j->out[i].n_rows; r++)
			t[n++] = store_row(&j->out[i].rows[r]);
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

static const char *corr_name(enum corr_method c)
{
	return c == CORR_BONFERRONI ? "bonferroni" : c == CORR_NONE ? "none" : "bh";
}

static bool is_tested(const struct eng_job *j)
{
	return j->wq.status == 0 && j->win->status == WIN_TESTED && j->n_tests;
}

/* The corrected cut-off of TEST across the windows of EV that ran it:
 * one family per test name (DESIGN §4).  A test whose p-value is itself
 * combined over dimensions (per-dimension tests) enters with that one
 * p-value per window. */
static double family_threshold(const struct eval *ev, const char *test)
{
	double *p = malloc(ev->n * sizeof(double)), thr;
	size_t i, k, m = 0;

	for (i = 0; p && i < ev->n; i++) {
		const struct eng_job *j = ev->jobs[i];

		for (k = 0; is_tested(j) && k < j->n_tests; k++)
			if (!strcmp(j->tests[k].test, test) &&
			    !isnan(j->tests[k].p_value))
				p[m++] = j->tests[k].p_value;
	}
	thr = ev->dc.alpha / (double)(m ? m : 1);
	/* Out of memory: Bonferroni, never more liberal than BH. */
	if (p && corr_threshold(ev->dc.correction, p, m, ev->dc.alpha, &thr) < 0)
		thr = ev->dc.alpha / (double)(m ? m : 1);
	free(p);
	return thr;
}

/* Sets threshold (p-value tests) and drifted for every test of every
 * window: corrected p <= threshold, or statistic above its threshold, and
 * in both cases the effect size at or above the test's floor. */
static void decide(struct eval *ev)
{
	size_t i, k, i2, k2;

	for (i = 0; i < ev->n; i++) {
		struct eng_job *j = ev->jobs[i];

		for (k = 0; is_tested(j) && k < j->n_tests; k++) {
			struct store_test *t = &j->tests[k];
			double thr = NO_VALUE;
			bool passes;

			/* The first window holding a test computes its family's
			 * threshold for all of them. */
			if (!isnan(t->p_value) && isnan(t->threshold)) {
				thr = family_threshold(ev, t->test);
				for (i2 = i; i2 < ev->n; i2++)
					for (k2 = 0; is_tested(ev->jobs[i2]) &&
						     k2 < ev->jobs[i2]->n_tests; k2++)
						if (!strcmp(ev->jobs[i2]->tests[k2].test, t->test))
							ev->jobs[i2]->tests[k2].threshold = thr;
			}
			t->effect_floor = conf_floor_find(ev->dc.floors, ev->dc.n_floors,
							  ev->dc.effect_floor, t->test);
			passes = isnan(t->effect) || t->effect >= t->effect_floor;
			if (isnan(t->effect))
				t->effect_floor = NO_VALUE;
			if (!isnan(t->p_value))
				t->drifted = t->p_value <= t->threshold && passes;
			else
				t->drifted = !isnan(t->threshold) &&
					     t->statistic > t->threshold && passes;
		}
	}
}

static void put_reference(struct eng *e, const struct eval *ev,
			  const struct eng_job *j)
{
	const struct win_ref *ref = j->win->ref;
	enum conf_persist mode = ev->dc.persist;
	bool projected = mode == CONF_PERSIST_PROJECTED && j->ref_proj;
	struct store_reference r = {
		.model = ev->model->name,
		.slice = ref->slice,
		.id = ref->id,
		.created_us = ref->created_us,
		.n = ref->n,
		.dim = projected ? ev->dc.projection_dim : ref->dim,
		.data = projected ? j->ref_proj : j->ref_raw,
		.persist = mode == CONF_PERSIST_RAW ? STORE_PERSIST_RAW :
			   projected ? STORE_PERSIST_PROJECTED : STORE_PERSIST_NONE,
		.explicit_records = ref->explicit_records,
		.k = ref->k,
		.scores = ref->scores,
		.source_dim = projected ? ref->dim : 0,
		.projection_seed = PROJECTION_SEED,
	};

	if (mode == CONF_PERSIST_RAW && !j->ref_raw) {
		log_err("model %s slice %s: reference set %lld not saved: out "
			"of memory for its float32 copy", r.model, r.slice,
			(long long)r.id);
		return;
	}
	if (j->ref_cal_rc == 0 && j->ref_cal.n >= ev->dc.min_labels) {
		r.cal_n = j->ref_cal.n;
		r.cal_ece = j->ref_cal.ece;
		r.cal_brier = j->ref_cal.brier;
	}
	if (store_put_reference(e->store, &r) < 0)
		log_err("model %s slice %s: reference set %lld not saved (database "
			"queue and journal full)", r.model, r.slice, (long long)r.id);
}

static void log_window(const char *model, const struct win_closed *c,
		       const struct store_test *t, size_t n, bool alarm)
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
		  "model %s slice %s window %lld n=%u%s: %s%s%s", model, c->slice,
		  (long long)c->window_id, c->n,
		  c->ref_fallback ? " (whole-model reference)" : "",
		  drifted ? "DRIFT" : "no drift", alarm ? ", ALARM" : "", line);
}

/* The K-of-M rule: the window's decision joins the slice's history (a
 * slice gone meanwhile has none). */
static bool alarm_of(const struct eval *ev, struct win_slice_state *ss,
		     bool drifted, unsigned *recent)
{
	struct win_slice_state gone = { 0 };

	*recent = win_push_decision(ss ? ss : &gone, drifted, ev->dc.alarm_m);
	return *recent >= ev->dc.alarm_k;
}

/* Calibration of a window against the slice's baseline; the first window
 * with enough labels becomes the baseline when the reference had none. */
static bool calibration_of(const struct eval *ev, const struct eng_job *j,
			   struct win_slice_state *ss, struct store_calibration *out)
{
	const struct win_closed *c = j->win;
	bool enough = j->cal_rc == 0 && c->n_labeled >= ev->dc.min_labels;

	if (!ev->dc.calibration || !c->labels_seen)
		return false;
	*out = (struct store_calibration){
		.n_labeled = c->n_labeled,
		.labels_seen = c->labels_seen,
		.ece = enough ? j->cal.ece : NO_VALUE,
		.mce = enough ? j->cal.mce : NO_VALUE,
		.brier = enough ? j->cal.brier : NO_VALUE,
		.accuracy = enough ? j->cal.accuracy : NO_VALUE,
		.reference_ece = NO_VALUE,
		.reference_brier = NO_VALUE,
	};
	if (!ss)
		return true;
	if (!ss->has_baseline && enough) {
		ss->has_baseline = true;
		ss->base_ece = j->cal.ece;
		ss->base_brier = j->cal.brier;
	}
	if (ss->has_baseline) {
		out->reference_ece = ss->base_ece;
		out->reference_brier = ss->base_brier;
		out->degraded = enough &&
			(j->cal.ece > ss->base_ece + ev->dc.ece_margin ||
			 j->cal.brier > ss->base_brier + ev->dc.brier_margin);
	}
	return true;
}

/* The evaluation's webhook events ride with its last window, so they
 * commit in the transaction of the results they report (hookev.h).  A
 * slice is in drift.detected when it alarms (ALARM_TESTS: its tests, the
 * alarm.k of alarm.m rule met), in calibration.degraded when CAL says so. */
static void add_events(struct hookev_batch *hb, const char *model,
		       const struct win_closed *c, const struct store_test *alarm_tests,
		       size_t n, const struct store_calibration *cal, bool last,
		       struct store_window *w)
{
	struct hookev_slice s = {
		.slice = c->slice, .window_id = c->window_id,
		.start_us = c->start_us, .end_us = c->end_us, .n = c->n,
		.reference_set_id = c->ref ? c->ref->id : 0,
	};
	struct store_test ct[2];
	int err = 0;

	if (alarm_tests)
		err |= hookev_add(hb, HOOKEV_DRIFT, &s, alarm_tests, n);
	if (cal && cal->degraded) {
		ct[0] = (struct store_test){
			.test = "ece", .statistic = cal->ece, .p_value = NO_VALUE,
			.threshold = cal->reference_ece, .effect = NO_VALUE,
			.bandwidth = NO_VALUE, .effect_floor = NO_VALUE,
			.drifted = true,
		};
		ct[1] = ct[0];
		ct[1].test = "brier";
		ct[1].statistic = cal->brier;
		ct[1].threshold = cal->reference_brier;
		err |= hookev_add(hb, HOOKEV_CALIBRATION, &s, ct, 2);
	}
	if (last)
		err |= hookev_take(hb, &w->events, &w->n_events);
	if (err < 0)
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

/* A reference that froze for this window brings its baseline along. */
static void take_baseline(const struct eval *ev, const struct eng_job *j)
{
	struct win_slice_state *ss;

	if (!j->win->ref_new || j->ref_cal_rc != 0 ||
	    j->ref_cal.n < ev->dc.min_labels ||
	    !(ss = win_state(ev->model->win, j->win->ref->slice)))
		return;
	ss->has_baseline = true;
	ss->base_ece = j->ref_cal.ece;
	ss->base_brier = j->ref_cal.brier;
}

/* A window recorded without a test: one insufficient_data row whose
 * statistic is the sample that fell short and threshold its minimum. */
static size_t insufficient_row(const struct eval *ev, const struct win_closed *c,
			       struct store_test *t)
{
	*t = (struct store_test){
		.test = "insufficient_data",
		.statistic = c->short_of,
		.p_value = NO_VALUE,
		.threshold = c->status == WIN_SHORT_WINDOW ?
				     (double)ev->dc.window_min :
				     (double)ev->dc.reference_min,
		.effect = NO_VALUE,
		.bandwidth = NO_VALUE,
		.effect_floor = NO_VALUE,
	};
	return 1;
}

static void write_window(struct eng *e, struct eval *ev, struct eng_job *j,
			 size_t family, int64_t evaluated_us,
			 struct hookev_batch *hb, bool last)
{
	struct eng_model *m = ev->model;
	const struct win_closed *c = j->win;
	struct win_slice_state *ss = win_state(m->win, c->slice);
	bool tested = c->status == WIN_TESTED, drifted = false;
	struct store_test short_row;
	struct store_calibration cal;
	struct store_decision d = {
		.alpha = ev->dc.alpha,
		.correction = corr_name(ev->dc.correction),
		.family_size = (unsigned)family,
		.alarm_k = ev->dc.alarm_k,
		.alarm_m = ev->dc.alarm_m,
		.evaluated_us = evaluated_us,
	};
	struct store_window w = {
		.model = m->name,
		.slice = c->slice,
		.window_id = c->window_id,
		.start_us = c->start_us,
		.end_us = c->end_us,
		.n = c->n,
		.reference_set_id = tested ? c->ref->id : 0,
		.seed = j->dp.seed,
		.tests = j->tests,
		.n_tests = j->n_tests,
		.insufficient = !tested,
		.reference_fallback = c->ref_fallback,
		.decision = &d,
		.closed_us = j->closed_us,
	};

	if (tested)
		log_reasons(m->name, c, j);
	if (tested && j->n_tests == 0) {
		st.windows_failed++;
		log_err("model %s slice %s window %lld: no detector produced "
			"a result", m->name, c->slice, (long long)c->window_id);
		return;
	}
	if (tested) {
		for (size_t k = 0; k < j->n_tests; k++)
			drifted |= j->tests[k].drifted;
		d.drifted = drifted;
		d.alarm = alarm_of(ev, ss, drifted, &d.recent_drifted);
		m->alarms += d.alarm;
		log_window(m->name, c, j->tests, j->n_tests, d.alarm);
		take_baseline(ev, j);
	} else {
		w.tests = &short_row;
		w.n_tests = insufficient_row(ev, c, &short_row);
		w.decision = NULL;
		m->windows_insufficient++;
		st.windows_insufficient++;
	}
	if (calibration_of(ev, j, ss, &cal))
		w.calibration = &cal;
	add_events(hb, m->name, c, d.alarm ? j->tests : NULL, j->n_tests,
		   w.calibration, last, &w);
	if (c->ref_new && !c->ref->persisted)
		put_reference(e, ev, j);
	if (store_put_window(e->store, &w) < 0) {
		st.windows_dropped++;
		log_err("model %s slice %s window %lld: result dropped: database "
			"unreachable and spill journal full", m->name, c->slice,
			(long long)c->window_id);
		return;
	}
	st.windows_written++;
	if (lat_put(ev->model->latest, &w) < 0)
		log_err("model %s slice %s: out of memory for /metrics", m->name,
			c->slice);
}

static void model_release(struct eng_model *m);

static void eval_free(struct eval *ev)
{
	for (size_t i = 0; i < ev->n; i++)
		job_free(ev->model, ev->jobs[i]);
	for (size_t i = 0; i < ev->dc.n_floors; i++)
		free(ev->dc.floors[i]);
	free(ev->dc.floors);
	free(ev);
}

static void eval_finish(struct eval *ev)
{
	struct eng_model *m = ev->model;
	struct eng *e = m->eng;
	int64_t now = wall_us();
	struct hookev_batch *hb = hookev_batch_new(e->conf, m->name, now);
	size_t i, family = 0;

	for (i = 0; i < ev->n; i++) {
		struct eng_job *j = ev->jobs[i];

		if (j->wq.status == 0 && j->win->status == WIN_TESTED)
			j->n_tests = build_tests(j, j->tests);
		family += is_tested(j);
	}
	decide(ev);
	for (i = 0; i < ev->n; i++)
		if (ev->jobs[i]->wq.status == 0)
			write_window(e, ev, ev->jobs[i], family, now, hb,
				     i + 1 == ev->n);
	flush_events(e, hb, m->name);
	m->windows_in_flight -= ev->n;
	eval_free(ev);
	e->evals_in_flight--;
	m->evals_in_flight--;
}

/* Finishes the model's evaluations whose jobs are all back, oldest first,
 * stopping at the first still running. */
static void finish_ready(struct eng_model *m)
{
	struct eval *ev;

	while ((ev = m->evals_first) && ev->pending == 0) {
		m->evals_first = ev->next;
		if (!m->evals_first)
			m->evals_last = NULL;
		eval_finish(ev);
	}
	if (m->removed && m->evals_in_flight == 0)
		model_release(m);
}

static void job_done(struct wq_job *w)
{
	struct eng_job *j = (struct eng_job *)w;

	st.detector_us_total += j->run_us;
	prom_observe_us(&st.detector_seconds, j->run_us);
	if (--j->eval->pending == 0)
		finish_ready(j->eval->model);
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

static int copy_floors(struct decision_cfg *dc, const struct conf_model *cfg)
{
	dc->floors = calloc(cfg->n_effect_floor_by_test + 1, sizeof(char *));
	if (!dc->floors)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_effect_floor_by_test; i++) {
		if (!(dc->floors[i] = strdup(cfg->effect_floor_by_test[i])))
			return -ENOMEM;
		dc->n_floors++;
	}
	return 0;
}

static int decision_cfg_of(const struct eng *e, const struct conf_model *cfg,
			   struct decision_cfg *dc)
{
	*dc = (struct decision_cfg){
		.alpha = cfg->alpha,
		.effect_floor = cfg->effect_floor,
		.correction = corr_of(cfg->correction),
		.alarm_k = cfg->alarm_k,
		.alarm_m = cfg->alarm_m,
		.calibration = (cfg->detectors & CONF_DET_CALIBRATION) &&
			       cfg->scores_width,
		.min_labels = cfg->calibration_min_labels,
		.ece_margin = cfg->calibration_ece_margin,
		.brier_margin = cfg->calibration_brier_margin,
		.persist = e->conf->persist_reference,
		.projection_dim = e->conf->persist_projection_dim,
		.window_min = window_min_of(cfg),
		.reference_min = cfg->reference_min_size < cfg->reference_size ?
					 cfg->reference_min_size :
					 cfg->reference_size,
	};
	return copy_floors(dc, cfg);
}

/* Ids handed out are covered by the lease on disk before they can reach
 * the store. */
static void cover_ids(struct eng_model *m)
{
	struct eng *e = m->eng;
	int err;

	if (e->ids && (err = ids_cover(e->ids, m->name,
				       win_max_window_id(m->win))) < 0)
		log_err("model %s: cannot save window ids in the state "
			"directory: %s", m->name, strerror(-err));
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
	cover_ids(m);
	ev = calloc(1, sizeof(*ev) + n * sizeof(ev->jobs[0]));
	if (ev)
		ev->model = m;
	for (c = list; ev && c; c = c->next, i++)
		if (!(ev->jobs[i] = calloc(1, sizeof(struct eng_job))))
			break;
	if (!ev || i < n || decision_cfg_of(m->eng, cfg, &ev->dc) < 0) {
		log_err("model %s: out of memory, %zu windows lost",
			cfg->name, n);
		st.windows_failed += n;
		if (ev) {
			ev->n = i;
			eval_free(ev);
		}
		while ((c = list)) {
			list = c->next;
			win_closed_free(c);
		}
		return;
	}
	ev->n = ev->pending = n;
	if (m->evals_last)
		m->evals_last->next = ev;
	else
		m->evals_first = ev;
	m->evals_last = ev;
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
		j->wq.run = eval_job_run;
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

	/* With nowhere to keep results, windows stay open (and records are
	 * refused) rather than closing into a result that would be lost. */
	if (!store_accepting(m->eng->store))
		return;
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

static enum smp_format format_of(const struct conf_model *cfg)
{
	return cfg->storage == CONF_STORAGE_FLOAT16 ? SMP_FLOAT16 : SMP_FLOAT32;
}

static struct win_params win_params_of(const struct conf_model *cfg)
{
	unsigned cap = cfg->window_size;

	if (!cap)
		cap = cfg->reference_size * WINDOW_MAX_REFERENCES;
	return (struct win_params){
		.dim = cfg->dim,
		.k = cfg->scores_width,
		.reference_size = cfg->reference_size,
		.reference_min = cfg->reference_min_size,
		.window_size = cfg->window_size,
		.window_max = cap,
		.window_min = window_min_of(cfg),
		.max_slices = cfg->max_slices,
		.slice_by = (const char *const *)cfg->slice_by,
		.n_slice_by = cfg->n_slice_by,
		.seed = cfg->seed,
		.format = format_of(cfg),
		.col_sums = (cfg->detectors & CONF_DET_CENTROID) != 0,
	};
}

/* The streaming detectors CFG asks for into *OUT (NULL when none).
 * -ENOMEM. */
static int stream_new(const struct conf_model *cfg, struct rsig_model **out)
{
	struct rsig_params p = rsig_params_of(cfg);

	*out = NULL;
	if (!cfg->stream_detectors)
		return 0;
	*out = rsig_new(&p, cfg->stream_alarm_interval_us);
	return *out ? 0 : -ENOMEM;
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
	m->labels = lbl_new(cfg->scores_width);
	m->latest = lat_new();
	if (!m->name || !m->win || !m->labels || !m->latest ||
	    stream_new(cfg, &m->stream) < 0 ||
	    arm_tick(m, cfg->window_interval_us) < 0)
		goto fail;
	if (e->ids)
		win_resume(m->win, ids_lease(e->ids, m->name) - 1);
	if ((cfg->detectors & CONF_DET_CALIBRATION) && !cfg->scores_width)
		log_warning("model %s: the calibration detector needs scores: "
			    "set scores.width (labels are refused until then)",
			    m->name);
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
	lbl_free(m->labels);
	lat_free(m->latest);
	rsig_free(m->stream);
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

static void on_sweep(evutil_socket_t fd, short what, void *arg);

struct eng *eng_new(struct event_base *base, struct wq *wq,
		    struct store *store, const struct conf *c)
{
	struct eng *e = calloc(1, sizeof(*e));
	struct timeval every = { SWEEP_US / 1000000, SWEEP_US % 1000000 };

	if (!e)
		return NULL;
	e->base = base;
	e->wq = wq;
	e->store = store;
	e->sweep = event_new(base, -1, EV_PERSIST, on_sweep, e);
	if (!e->sweep || event_add(e->sweep, &every) < 0 ||
	    eng_reconfigure(e, c) < 0) {
		if (e->sweep)
			event_free(e->sweep);
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
	    a->scores_width != b->scores_width || a->storage != b->storage ||
	    a->n_slice_by != b->n_slice_by)
		return false;
	for (i = 0; i < a->n_slice_by; i++)
		if (strcmp(a->slice_by[i], b->slice_by[i]))
			return false;
	return true;
}

/* Whether the streaming detectors of CFG differ from those running: new
 * detectors, signals or parameters start every slice's detectors over. */
static bool stream_changed(const struct eng_model *m, const struct conf_model *cfg)
{
	struct rsig_params p = rsig_params_of(cfg);

	if (!m->stream)
		return cfg->stream_detectors != 0;
	return !cfg->stream_detectors || !rsig_same_params(rsig_params(m->stream), &p);
}

/* Window sizes, interval, slice cap and seed apply to the running model;
 * streaming detectors start over when their settings changed. */
static int model_update(struct eng_model *m, const struct conf_model *cfg)
{
	struct win_params wp = win_params_of(cfg);
	bool restart = stream_changed(m, cfg);
	struct rsig_model *fresh = NULL;

	if (restart && stream_new(cfg, &fresh) < 0)
		return -ENOMEM;
	if (win_model_update(m->win, &wp) < 0 ||
	    (cfg->window_interval_us != m->cfg->window_interval_us &&
	     arm_tick(m, cfg->window_interval_us) < 0)) {
		rsig_free(fresh);
		return -ENOMEM;
	}
	if (restart) {
		rsig_free(m->stream);
		m->stream = fresh;
		log_info("model %s: streaming detectors %s", m->name,
			 fresh ? "reconfigured: every slice's start over" : "off");
	} else if (m->stream) {
		rsig_set_interval(m->stream, cfg->stream_alarm_interval_us);
	}
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
			log_warning("model %s: dim, slice_by, reference.size or "
				    "scores.width changed: its references and "
				    "windows start over", c->models[i].name);
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

/* Classes a label may name: 0/1 with one score, 0..k-1 with k. */
static int64_t label_classes(const struct conf_model *cfg)
{
	return cfg->scores_width > 1 ? cfg->scores_width : 2;
}

static bool calibrates(const struct conf_model *cfg)
{
	return cfg->scores_width && (cfg->detectors & CONF_DET_CALIBRATION);
}

/* The error signal of the streaming detectors needs labels too. */
static bool takes_labels(const struct conf_model *cfg)
{
	return calibrates(cfg) ||
	       (cfg->scores_width && cfg->stream_detectors &&
		(cfg->stream_signals & CONF_SIGNAL_ERROR));
}

/* ---- streaming detectors ---- */

static int64_t new_alarm_id(void)
{
	static uint64_t fallback;
	uint64_t id;

	/* Random like reference set ids: unique across restarts and daemons
	 * sharing a database without a round trip. */
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id)) {
		fallback += 0x9e3779b97f4a7c15ULL;
		id = fallback ^ mono_us() * 0xbf58476d1ce4e5b9ULL;
	}
	id &= INT64_MAX;
	return id ? (int64_t)id : 1;
}

static void log_alarm(const struct eng_model *m, const struct rsig_alarm *a)
{
	struct log_ctx ctx = {
		.model = m->name,
		.slice = a->slice,
		.window_id = -1,
		.event = "stream_alarm",
		.message_id = LOG_MID_STREAM,
	};

	log_event(a->suppressed ? LOG_LVL_INFO : LOG_LVL_NOTICE, &ctx,
		  "model %s slice %s: stream alarm: %s on %s, mean %s from %.4g "
		  "to %.4g (%llu and %llu records, statistic %.4g)%s", m->name,
		  a->slice, rsig_detector_name(a->detector),
		  rsig_signal_name(a->signal), a->up ? "up" : "down",
		  a->mean_before, a->mean_after, (unsigned long long)a->n_before,
		  (unsigned long long)a->n_after, a->statistic,
		  a->suppressed ? ", not recorded (stream.alarm_interval)" : "");
}

static struct store_stream_alarm alarm_row(const struct rsig_alarm *a,
					   const char *params)
{
	return (struct store_stream_alarm){
		.id = new_alarm_id(),
		.slice = a->slice,
		.detector = rsig_detector_name(a->detector),
		.signal = rsig_signal_name(a->signal),
		.records_seen = a->seen,
		.statistic = a->statistic,
		.threshold = a->threshold,
		.up = a->up,
		.n_before = a->n_before,
		.n_after = a->n_after,
		.mean_before = a->mean_before,
		.mean_after = a->mean_after,
		.params = params,
	};
}

/* The alarms one record or label raised, each slice's together: logged,
 * counted, and the recorded ones written with their stream.alarm event in
 * one statement. */
static void stream_alarms(struct eng_model *m, const struct rsig_alarm *a,
			  size_t n, int64_t now_us)
{
	struct store_stream_alarm rows[RSIG_MAX_ALARMS];
	struct store_stream_alarms w = { .model = m->name, .detected_us = now_us,
					 .alarms = rows };
	char params[RSIG_DETECTORS][256];
	struct hookev_batch *hb;
	size_t i, first = 0;
	int err = 0;

	for (i = 0; i < RSIG_DETECTORS; i++)
		rsig_params_json(rsig_params(m->stream), (enum rsig_detector)i,
				 params[i], sizeof(params[i]));
	for (i = 0; i < n; i++) {
		log_alarm(m, &a[i]);
		if (a[i].suppressed) {
			m->stream_suppressed[a[i].detector][a[i].signal]++;
			continue;
		}
		m->stream_alarms[a[i].detector][a[i].signal]++;
		rows[w.n++] = alarm_row(&a[i], params[a[i].detector]);
	}
	if (!w.n)
		return;
	hb = hookev_batch_new(m->eng->conf, m->name, now_us);
	for (i = 1; i <= w.n; i++)
		if (i == w.n || strcmp(rows[i].slice, rows[first].slice)) {
			err |= hookev_add_stream(hb, rows[first].slice, now_us,
						 rows + first, i - first);
			first = i;
		}
	err |= hookev_take(hb, &w.events, &w.n_events);
	if (err < 0)
		log_err("model %s: out of memory building its stream.alarm "
			"event; some slices may be missing from it", m->name);
	if (store_put_stream_alarms(m->eng->store, &w) < 0)
		log_err("model %s: %zu stream alarms not recorded: database "
			"unreachable and spill journal full", m->name, w.n);
	hookev_batch_free(hb);
}

/* The detectors of slice KEY; with CREATE, made when missing. */
static struct rsig_slice *stream_slice(struct eng_model *m, const char *key,
				       bool create)
{
	struct rsig_slice *sl = rsig_slice(m->stream, key, create);

	if (!sl && create && !m->stream_oom_logged) {
		m->stream_oom_logged = true;
		log_err("model %s slice %s: out of memory for its streaming "
			"detectors; its records are not watched", m->name, key);
	}
	return sl;
}

/* Feeds the score and the error indicator (NaN: no label) to the
 * detectors of SL[0..n), each slice's signals together. */
static void stream_feed(struct eng_model *m, struct rsig_slice *const *sl,
			size_t n, double score, double error, int64_t now_us)
{
	struct rsig_alarm a[RSIG_MAX_ALARMS];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (!sl[i])
			continue;
		k += rsig_feed(m->stream, sl[i], RSIG_SCORE, score, now_us, a + k);
		k += rsig_feed(m->stream, sl[i], RSIG_ERROR, error, now_us, a + k);
	}
	if (k)
		stream_alarms(m, a, k, now_us);
}

/* A live record the windows took: its score, and the error of an inline
 * label, in "*" and in its own slice (which exists now, so it counts
 * against max_slices like the windows' slices). */
static void stream_record(struct eng_model *m, const struct record *r,
			  int64_t now_us)
{
	struct rsig_slice *sl[2] = { NULL, NULL };
	char key[WIN_SLICE_KEY_MAX];
	unsigned k = m->cfg->scores_width;

	/* Watching errors only, a record without its label feeds nothing. */
	if (!m->stream || r->role != REC_LIVE ||
	    (!r->has_label && !(rsig_params(m->stream)->signals & CONF_SIGNAL_SCORE)))
		return;
	sl[0] = stream_slice(m, WIN_WHOLE_MODEL, true);
	if (m->cfg->n_slice_by && win_record_slice(m->win, r, key) == 0)
		sl[1] = stream_slice(m, key, true);
	stream_feed(m, sl, 2, rsig_score(r->scores, k),
		    r->has_label ? rsig_error(r->scores, k, r->label) : NO_VALUE,
		    now_us);
}

/* A label joined to its record's SCORES: the error in "*" and in SLICE,
 * unless the slice went (idle expiry) since.  Its detectors may not exist
 * yet: records without a label feed nothing when only errors are watched. */
static void stream_label(struct eng_model *m, const char *slice,
			 const float *scores, int64_t label, int64_t now_us)
{
	struct rsig_slice *sl[2] = { NULL, NULL };

	if (!m->stream)
		return;
	sl[0] = stream_slice(m, WIN_WHOLE_MODEL, true);
	if (strcmp(slice, WIN_WHOLE_MODEL) && win_state(m->win, slice))
		sl[1] = stream_slice(m, slice, true);
	stream_feed(m, sl, 2, NO_VALUE,
		    rsig_error(scores, m->cfg->scores_width, label), now_us);
}

/* A label sent on its own meets the scored record waiting for it. */
static enum rec_err join_label(struct eng_model *m, const struct record *r,
			       int64_t now_us, char *msg, size_t msglen)
{
	float scores[REC_MAX_SCORES];
	char slice[WIN_SLICE_KEY_MAX];

	if (!takes_labels(m->cfg)) {
		snprintf(msg, msglen, "model %s takes no labels (it needs "
			 "scores.width and the calibration detector or the "
			 "error signal of stream.detectors)", m->name);
		return REC_ERR_UNSUPPORTED;
	}
	if (!r->id) {
		snprintf(msg, msglen, "a label sent on its own needs the id of "
			 "its record");
		return REC_ERR_BAD_FIELD;
	}
	if (r->label >= label_classes(m->cfg)) {
		snprintf(msg, msglen, "label %lld is not a class of model %s "
			 "(0..%lld)", (long long)r->label, m->name,
			 (long long)label_classes(m->cfg) - 1);
		return REC_ERR_BAD_FIELD;
	}
	if (lbl_take(m->labels, r->id, scores, slice, sizeof(slice)) < 0) {
		m->labels_unmatched++;
		snprintf(msg, msglen, "no scored record with id \"%.64s\" is "
			 "waiting for a label (never sent, labeled already, or "
			 "older than labels.ttl)", r->id);
		return REC_ERR_UNKNOWN_ID;
	}
	if (calibrates(m->cfg) &&
	    win_add_labeled(m->win, slice, scores, r->label) < 0) {
		m->labels_unmatched++;
		snprintf(msg, msglen, "the slice of record \"%.64s\" is gone "
			 "(idle expiry or reset)", r->id);
		return REC_ERR_UNKNOWN_ID;
	}
	stream_label(m, slice, scores, r->label, now_us);
	m->labels_joined++;
	return REC_OK;
}

/* Scores and inline label against the model's scores.width. */
static enum rec_err check_scores(const struct eng_model *m,
				 const struct record *r, char *msg,
				 size_t msglen)
{
	unsigned width = m->cfg->scores_width;

	if (width && r->n_scores != width) {
		snprintf(msg, msglen, "model %s expects %u scores per record "
			 "(scores.width), got %u", m->name, width, r->n_scores);
		return REC_ERR_BAD_FIELD;
	}
	for (unsigned i = 0; i < width; i++) {
		if (r->scores[i] < 0 || r->scores[i] > 1) {
			snprintf(msg, msglen, "scores are probabilities: %g is "
				 "outside [0, 1]", (double)r->scores[i]);
			return REC_ERR_BAD_FIELD;
		}
	}
	if (width && r->has_label && r->label >= label_classes(m->cfg)) {
		snprintf(msg, msglen, "label %lld is not a class of model %s "
			 "(0..%lld)", (long long)r->label, m->name,
			 (long long)label_classes(m->cfg) - 1);
		return REC_ERR_BAD_FIELD;
	}
	return REC_OK;
}

/* A scored live record with an id and no label waits for its label. */
static void await_label(struct eng_model *m, const struct record *r,
			int64_t now_us)
{
	char slice[WIN_SLICE_KEY_MAX];
	size_t evicted = 0;

	if (!takes_labels(m->cfg) || !r->id || r->has_label ||
	    r->role != REC_LIVE || win_record_slice(m->win, r, slice) < 0)
		return;
	if (lbl_put(m->labels, r->id, slice, r->scores,
		    now_us + (int64_t)m->cfg->labels_ttl_us,
		    m->cfg->labels_max_pending, &evicted) < 0)
		log_err("model %s: out of memory for records awaiting labels",
			m->name);
	m->labels_evicted += evicted;
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
	if (!r->embedding && r->has_label)
		return join_label(m, r, now_us, msg, msglen);
	if (!r->embedding) {
		snprintf(msg, msglen, "record has no embedding");
		return REC_ERR_MISSING_EMBEDDING;
	}
	if (r->dim != m->cfg->dim) {
		snprintf(msg, msglen,
			 "embedding has %u values, model %s expects %u",
			 r->dim, m->cfg->name, m->cfg->dim);
		return REC_ERR_WRONG_DIM;
	}
	if ((err = check_scores(m, r, msg, msglen)) != REC_OK)
		return err;
	if (r->role == REC_LIVE && !store_accepting(e->store)) {
		snprintf(msg, msglen, "results cannot be kept: the database is "
			 "unreachable and the spill journal is full");
		return REC_ERR_OVERLOADED;
	}
	err = win_add(m->win, r, r->has_ts ? r->ts_us : now_us, now_us, &closed);
	if (closed)
		submit_eval(m, closed);
	switch (err) {
	case REC_OK:
		m->records++;
		await_label(m, r, now_us);
		stream_record(m, r, now_us);
		break;
	case REC_ERR_TOO_MANY_SLICES:
		m->slices_refused++;
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

void eng_resume(struct eng *e, const char *model, int64_t max_id)
{
	struct eng_model *m = model_find(e, model);

	if (m)
		win_resume(m->win, max_id);
}

void eng_set_ids(struct eng *e, struct ids *ids)
{
	e->ids = ids;
	for (size_t i = 0; ids && i < e->n_models; i++) {
		win_resume(e->models[i]->win,
			   ids_lease(ids, e->models[i]->name) - 1);
		cover_ids(e->models[i]);
	}
}

void eng_save_ids(struct eng *e)
{
	int err;

	if (!e->ids)
		return;
	for (size_t i = 0; i < e->n_models; i++)
		ids_set_exact(e->ids, e->models[i]->name,
			      win_max_window_id(e->models[i]->win));
	if ((err = ids_save(e->ids)) < 0)
		log_err("cannot save window ids in the state directory: %s",
			strerror(-err));
}

/* ---- slice lifecycle, references ---- */

struct expiry {
	struct eng *e;
	struct eng_model *m;
	int64_t now;
};

/* An expired slice's saved reference is retired with it, so a restart does
 * not bring the slice back; the row also ends its K-of-M history, so it is
 * written for a slice without a reference too. */
static void on_slice_expired(void *arg, const char *slice,
			     const struct win_ref *ref)
{
	struct expiry *x = arg;

	x->m->slices_expired++;
	log_info("model %s slice %s: idle for slice.idle_timeout, dropped",
		 x->m->name, slice);
	if (x->m->stream)
		rsig_forget(x->m->stream, slice);
	if (store_retire_references(x->e->store, x->m->name, slice, x->now,
				    "expired") < 0)
		log_err("model %s slice %s: retiring its reference not queued",
			x->m->name, slice);
}

static void sweep_model(struct eng *e, struct eng_model *m, int64_t now)
{
	struct expiry x = { e, m, now };
	struct win_closed *closed = NULL;

	m->labels_expired += lbl_expire(m->labels, now);
	win_trim_spares(m->win);
	if (!m->cfg->slice_idle_us || !store_accepting(e->store))
		return;
	win_expire(m->win, now, m->cfg->slice_idle_us, &closed,
		   on_slice_expired, &x);
	if (closed)
		submit_eval(m, closed);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct eng *e = arg;
	int64_t now = wall_us();

	for (size_t i = 0; i < e->n_models; i++)
		sweep_model(e, e->models[i], now);
}

int eng_reset_references(struct eng *e, const char *model)
{
	struct eng_model *m = model_find(e, model);
	struct lbl *fresh;
	size_t dropped;
	int err;

	if (!m)
		return -ENOENT;
	if (!(fresh = lbl_new(m->cfg->scores_width)))
		return -ENOMEM;
	if ((err = win_reset(m->win, &dropped)) < 0) {
		lbl_free(fresh);
		return err;
	}
	/* Predictions of the old model version no longer count. */
	lbl_free(m->labels);
	m->labels = fresh;
	if (m->stream)
		rsig_reset(m->stream);
	m->resets++;
	if (store_retire_references(e->store, m->name, NULL, wall_us(),
				    "reset") < 0)
		log_err("model %s: retiring its saved references not queued "
			"(database queue and journal full)", m->name);
	log_notice("model %s: references reset: %zu slices warm up again, "
		   "%zu records of open windows dropped", m->name,
		   win_slice_count(m->win), dropped);
	return (int)win_slice_count(m->win);
}

bool eng_want_reference(struct eng *e, const struct store_reference *r)
{
	struct eng_model *m = model_find(e, r->model);
	unsigned dim;

	if (!m || r->n < 2 || r->k != m->cfg->scores_width)
		return false;
	dim = r->persist == STORE_PERSIST_PROJECTED ? r->source_dim : r->dim;
	return dim == m->cfg->dim && (r->persist == STORE_PERSIST_RAW ||
				      r->persist == STORE_PERSIST_PROJECTED);
}

void eng_restore_reference(struct eng *e, const struct store_reference *r)
{
	struct eng_model *m = model_find(e, r->model);
	unsigned n, i;
	struct win_ref *ref;
	struct win_slice_state *ss;
	int err;

	if (!m || !eng_want_reference(e, r))
		return;
	n = r->n < m->cfg->reference_size ? r->n : m->cfg->reference_size;
	if (!(ref = win_ref_new(r->slice, n, r->dim, r->k,
				format_of(m->cfg)))) {
		log_err("model %s slice %s: out of memory restoring its "
			"reference", m->name, r->slice);
		return;
	}
	ref->n = n;
	ref->id = r->id;
	ref->created_us = r->created_us;
	ref->explicit_records = r->explicit_records;
	ref->persisted = true;
	if (r->persist == STORE_PERSIST_PROJECTED) {
		ref->source_dim = r->source_dim;
		ref->proj_seed = r->projection_seed;
	}
	smp_store(ref->format, ref->data, r->data, (size_t)n * r->dim);
	if (r->k) {
		memcpy((float *)ref->scores, r->scores,
		       (size_t)n * r->k * sizeof(float));
		for (i = 0; i < n; i++)
			((int64_t *)ref->labels)[i] = WIN_NO_LABEL;
	}
	if ((err = win_install_reference(m->win, ref)) < 0) {
		log_info("model %s slice %s: saved reference %lld not restored: "
			 "%s", m->name, r->slice, (long long)r->id,
			 err == -EBUSY ? "the slice already uses a new one" :
			 err == -ENOSPC ? "max_slices reached" :
			 err == -EINVAL ? "saved under another slice_by" :
			 strerror(-err));
		return;
	}
	m->references_restored++;
	if (r->cal_n && (ss = win_state(m->win, r->slice))) {
		ss->has_baseline = true;
		ss->base_ece = r->cal_ece;
		ss->base_brier = r->cal_brier;
	}
}

static bool wants_history(const struct eng *e)
{
	for (size_t i = 0; i < e->n_models; i++)
		if (e->models[i]->cfg->alarm_m > 1)
			return true;
	return false;
}

bool eng_want_history(struct eng *e)
{
	return !e->history_closed && wants_history(e);
}

/* A slice's decisions, oldest first, replayed as they were made; a history
 * without a drifted window among those kept is no history. */
static int restore_decisions(struct eng_model *m, const struct store_history *h)
{
	struct win_slice_state replay = { 0 };

	for (size_t i = 0; i < h->n; i++)
		win_push_decision(&replay, h->drifted[i], h->alarm_m[i]);
	return replay.recent ?
		       win_restore_decisions(m->win, h->slice, replay.recent) : 0;
}

void eng_restore_history(struct eng *e, const struct store_history *h, size_t n)
{
	if (e->history_closed)
		return;
	e->history_restored = true;
	for (size_t j = 0; j < e->n_models; j++) {
		struct eng_model *m = e->models[j];
		size_t done = 0, left = 0;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(h[i].model, m->name))
				continue;
			if (restore_decisions(m, &h[i]) < 0)
				left++;
			else
				done++;
		}
		m->histories_restored += done;
		if (done || left || m->cfg->alarm_m > 1)
			log_info("restored K-of-M history of %zu slices of model %s "
				 "(alarm.k = %u, alarm.m = %u)%s", done, m->name,
				 m->cfg->alarm_k, m->cfg->alarm_m,
				 left ? "; more slices than max_slices, or slices "
					"of another slice_by, left out" : "");
	}
}

void eng_history_close(struct eng *e)
{
	char names[256] = "";
	size_t len = 0;

	if (e->history_closed)
		return;
	e->history_closed = true;
	if (e->history_restored || !wants_history(e))
		return;
	for (size_t i = 0; i < e->n_models && len < sizeof(names); i++)
		if (e->models[i]->cfg->alarm_m > 1)
			len += (size_t)snprintf(names + len, sizeof(names) - len,
						"%s%s", len ? ", " : "",
						e->models[i]->name);
	log_warning("K-of-M alarm history starts empty (alarm.m > 1 in %s): it "
		    "could not be read from the database at start", names);
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
			.spare_bytes = win_spare_bytes(m->win),
			.records = m->records,
			.windows = m->windows,
			.slices_refused = m->slices_refused,
			.slices_expired = m->slices_expired,
			.windows_insufficient = m->windows_insufficient,
			.alarms = m->alarms,
			.resets = m->resets,
			.references_restored = m->references_restored,
			.histories_restored = m->histories_restored,
			.labels_pending = lbl_count(m->labels),
			.labels_joined = m->labels_joined,
			.labels_unmatched = m->labels_unmatched,
			.labels_expired = m->labels_expired,
			.labels_evicted = m->labels_evicted,
			.stream_detectors = m->stream ? rsig_params(m->stream)->detectors : 0,
			.stream_signals = m->stream ? rsig_params(m->stream)->signals : 0,
			.stream_bytes = m->stream ? rsig_memory(m->stream) : 0,
		};

		memcpy(mi.stream_alarms, m->stream_alarms, sizeof(mi.stream_alarms));
		memcpy(mi.stream_suppressed, m->stream_suppressed,
		       sizeof(mi.stream_suppressed));
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
	if (e->sweep)
		event_free(e->sweep);
	free(e->draining);
	free(e->models);
	free(e);
}
