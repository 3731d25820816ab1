/* registry: every detector behind one run signature, in config-bit order. */
#include "registry.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "centroid.h"
#include "classifier.h"
#include "energy.h"
#include "health.h"
#include "ks.h"
#include "mmd.h"
#include "projection.h"
#include "scores.h"

#define NONE ((double)NAN)

static struct det_row *add_row(struct det_output *out, const char *test,
			       enum det_kind kind, double statistic)
{
	struct det_row *r = &out->rows[out->n_rows++];

	*r = (struct det_row){
		.kind = kind, .statistic = statistic, .p_value = NONE,
		.threshold = NONE, .effect = statistic, .bandwidth = NONE,
	};
	snprintf(r->test, sizeof r->test, "%s", test);
	return r;
}

static int failed(int err, const char *what, char *why, size_t whylen)
{
	snprintf(why, whylen, "%s: %s", what,
		 err == -EINVAL ? "invalid input (each side needs at least "
				  "2 records)" :
		 err == -ENOMEM ? "out of memory" : strerror(-err));
	return err;
}

static int run_mmd(const struct det_input *in, const struct det_settings *s,
		   struct det_output *out, char *why, size_t whylen)
{
	struct mmd_params p = {
		.permutations = s->mmd_permutations,
		.seed = in->seed,
		.bandwidth_max_points = s->mmd_bandwidth_points,
	};
	struct mmd_result res;
	int err = mmd_test(in->ref, in->n, in->win, in->m, in->dim, &p, &res);

	if (err)
		return failed(err, "mmd", why, whylen);
	struct det_row *r = add_row(out, "mmd", DET_P_VALUE, res.statistic);

	r->p_value = res.p_value;
	r->bandwidth = res.bandwidth;
	r->permutations = res.permutations;
	return 0;
}

static int run_centroid(const struct det_input *in,
			const struct det_settings *s, struct det_output *out,
			char *why, size_t whylen)
{
	struct cen_result res;
	int err = in->win_sums ?
		cen_shift_sums(in->ref, in->n, in->win_sums, in->m, in->dim,
			       &res) :
		cen_shift(in->ref, in->n, in->win, in->m, in->dim, &res);

	if (err)
		return failed(err, "centroid", why, whylen);
	add_row(out, "centroid_cosine", DET_ABOVE, res.cosine)->threshold =
		s->centroid_threshold;
	add_row(out, "centroid_euclidean", DET_REPORT, res.euclidean);
	return 0;
}

static int run_energy(const struct det_input *in, const struct det_settings *s,
		      struct det_output *out, char *why, size_t whylen)
{
	struct energy_params p = {
		.permutations = s->energy_permutations, .seed = in->seed,
	};
	struct energy_result res;
	int err = energy_test(in->ref, in->n, in->win, in->m, in->dim, &p, &res);

	if (err)
		return failed(err, "energy", why, whylen);
	struct det_row *r = add_row(out, "energy", DET_P_VALUE, res.statistic);

	r->p_value = res.p_value;
	r->permutations = res.permutations;
	return 0;
}

/* statistic: share of drifted coordinates; p: the smallest p-value after
 * correction across coordinates (the model-level test). */
static int run_ks_dims(const struct det_input *in, const struct det_settings *s,
		       struct det_output *out, char *why, size_t whylen)
{
	struct ks_dims_params p = { .alpha = s->alpha,
				    .correction = s->correction };
	struct ks_dims_result res;
	int err = ks_dims(in->ref, in->n, in->win, in->m, in->dim, &p, &res,
			  NULL, NULL);

	if (err)
		return failed(err, "ks_dims", why, whylen);
	add_row(out, "ks_dims", DET_P_VALUE, res.share)->p_value = res.min_p;
	return 0;
}

static int run_health(const struct det_input *in, const struct det_settings *s,
		      struct det_output *out, char *why, size_t whylen)
{
	struct hl_params p = { .dup_cosine = s->health_duplicate_cosine,
			       .seed = in->seed };
	struct hl_result res;
	int err = hl_compare(in->ref, in->n, in->win, in->m, in->dim, &p, &res);

	if (err)
		return failed(err, "health", why, whylen);
	add_row(out, "health_effective_rank", DET_ABOVE, res.rank_drop)
		->threshold = s->health_collapse_drop;
	add_row(out, "health_uniformity", DET_ABOVE, res.uniformity_rise)
		->threshold = s->health_uniformity_rise;
	add_row(out, "health_mean_norm", DET_ABOVE, res.norm_change)
		->threshold = s->health_norm_change;
	add_row(out, "health_duplicates", DET_ABOVE, res.duplicate_rise)
		->threshold = s->health_duplicate_rise;
	return 0;
}

static int run_scores(const struct det_input *in, const struct det_settings *s,
		      struct det_output *out, char *why, size_t whylen)
{
	struct sc_result res;
	int err = sc_compare(in->ref_scores, in->n, in->win_scores, in->m,
			     in->k, NULL, &res);

	if (err)
		return failed(err, "scores", why, whylen);
	struct det_row *r = add_row(out, "scores_ks", DET_P_VALUE,
				    res.ks.statistic);

	r->p_value = res.ks.p_value;
	add_row(out, "scores_psi", DET_ABOVE, res.psi)->threshold =
		s->scores_psi_threshold;
	add_row(out, "scores_js", DET_ABOVE, res.js)->threshold =
		s->scores_js_threshold;
	add_row(out, "scores_w1", DET_REPORT, res.wasserstein);
	r = add_row(out, "scores_chi2", DET_P_VALUE, res.chi2);
	r->p_value = res.chi2_p;
	/* Cramér's V of the 2 x C table */
	r->effect = sqrt(res.chi2 / (double)(in->n + in->m));
	return 0;
}

static int run_classifier(const struct det_input *in,
			  const struct det_settings *s, struct det_output *out,
			  char *why, size_t whylen)
{
	struct clf_params p = {
		.holdout = s->classifier_holdout,
		.l2 = s->classifier_l2,
		.max_iter = s->classifier_max_iter,
		.permutations = s->classifier_permutations,
		.seed = in->seed,
	};
	struct clf_result res;
	int err = clf_test(in->ref, in->n, in->win, in->m, in->dim, &p, &res);

	if (err)
		return failed(err, "classifier", why, whylen);
	struct det_row *r = add_row(out, "classifier", DET_P_VALUE, res.auc);

	r->p_value = res.p_value;
	r->effect = res.auc - 0.5;
	r->permutations = res.permutations;
	return 0;
}

static int mmd_bytes(const struct det_input *in, const struct det_settings *s,
		     size_t *bytes)
{
	struct mmd_params p = { .permutations = s->mmd_permutations,
				.bandwidth_max_points = s->mmd_bandwidth_points };

	return mmd_workspace_bytes(in->n, in->m, in->dim, &p, bytes);
}

static int energy_bytes(const struct det_input *in,
			const struct det_settings *s, size_t *bytes)
{
	struct energy_params p = { .permutations = s->energy_permutations };

	return energy_workspace_bytes(in->n, in->m, in->dim, &p, bytes);
}

static int classifier_bytes(const struct det_input *in,
			    const struct det_settings *s, size_t *bytes)
{
	return clf_workspace_bytes(in->n, in->m, in->dim, bytes);
}

static int health_bytes(const struct det_input *in,
			const struct det_settings *s, size_t *bytes)
{
	return hl_workspace_bytes(in->n, in->m, in->dim, bytes);
}

static const char *const mmd_keys[] = { "mmd.permutations",
	"mmd.bandwidth_points", "projection.dim", "detectors.max_memory", NULL };
static const char *const centroid_keys[] = { "centroid.threshold", NULL };
static const char *const energy_keys[] = { "energy.permutations",
	"projection.dim", "detectors.max_memory", NULL };
static const char *const ks_dims_keys[] = { "alpha", "correction", NULL };
static const char *const no_keys[] = { NULL };
static const char *const health_keys[] = { "health.collapse_drop",
	"health.uniformity_rise", "health.norm_change",
	"health.duplicate_rise", "health.duplicate_cosine",
	"detectors.max_memory", NULL };
static const char *const scores_keys[] = { "scores.psi_threshold",
	"scores.js_threshold", NULL };
static const char *const classifier_keys[] = { "classifier.permutations",
	"classifier.holdout", "classifier.l2", "classifier.max_iter",
	"projection.dim", "detectors.max_memory", NULL };

/* Order = bit order of the model's detector mask (CONF_DET_*). */
const struct det_def det_registry[DET_COUNT] = {
	{ .name = "mmd", .needs = DET_NEEDS_EMBEDDINGS, .projectable = true,
	  .run = run_mmd, .workspace = mmd_bytes, .keys = mmd_keys,
	  .doc = "Gaussian-kernel MMD² with a permutation p-value" },
	{ .name = "centroid", .needs = DET_NEEDS_EMBEDDINGS,
	  .sums_suffice = true, .run = run_centroid, .keys = centroid_keys,
	  .doc = "cosine and Euclidean distance between the means" },
	{ .name = "energy", .needs = DET_NEEDS_EMBEDDINGS, .projectable = true,
	  .run = run_energy, .workspace = energy_bytes, .keys = energy_keys,
	  .doc = "energy distance with a permutation p-value" },
	{ .name = "ks_dims", .needs = DET_NEEDS_EMBEDDINGS,
	  .run = run_ks_dims, .keys = ks_dims_keys,
	  .doc = "KS on every coordinate, corrected across coordinates" },
	{ .name = "calibration", .needs = DET_NEEDS_SCORES | DET_NEEDS_LABELS,
	  .keys = no_keys,
	  .doc = "ECE, MCE, Brier, accuracy once labels arrive; computed by "
		 "the calibration windows, not on embedding windows" },
	{ .name = "health", .needs = DET_NEEDS_EMBEDDINGS, .run = run_health,
	  .workspace = health_bytes, .keys = health_keys,
	  .doc = "effective rank, uniformity, mean norm, near-duplicates" },
	{ .name = "scores", .needs = DET_NEEDS_SCORES, .run = run_scores,
	  .keys = scores_keys,
	  .doc = "KS, PSI, Jensen-Shannon, Wasserstein-1, chi2 on scores" },
	{ .name = "classifier", .needs = DET_NEEDS_EMBEDDINGS,
	  .projectable = true, .run = run_classifier,
	  .workspace = classifier_bytes, .keys = classifier_keys,
	  .doc = "held-out AUC of a logistic domain classifier" },
};

const struct det_def *det_find(const char *name)
{
	for (size_t i = 0; name && i < DET_COUNT; i++)
		if (!strcmp(det_registry[i].name, name))
			return &det_registry[i];
	return NULL;
}

bool det_ready(const struct det_def *def, const struct det_input *in,
	       char *why, size_t whylen)
{
	if (!def->run) {
		snprintf(why, whylen, "%s does not run on embedding windows",
			 def->name);
		return false;
	}
	if ((def->needs & DET_NEEDS_SCORES) &&
	    (!in->ref_scores || !in->win_scores || !in->k)) {
		snprintf(why, whylen, "%s: the window or its reference has "
			 "no predicted scores", def->name);
		return false;
	}
	if (def->needs & DET_NEEDS_LABELS) {
		snprintf(why, whylen, "%s needs labels", def->name);
		return false;
	}
	return true;
}

int det_project(const struct det_input *in, const struct det_settings *s,
		struct det_projected *out)
{
	size_t k = s->projection_dim, r_len, buf_len;
	float *r, *buf;
	int err;

	out->in = *in;
	out->buf = NULL;
	if (!k || k >= in->dim)
		return 0;
	if (__builtin_mul_overflow(in->dim, k, &r_len) ||
	    __builtin_mul_overflow(in->n + in->m, k, &buf_len))
		return -ENOMEM;
	r = malloc(r_len * sizeof *r);
	buf = malloc(buf_len * sizeof *buf);
	err = r && buf ? proj_matrix(in->dim, k, in->seed, r) : -ENOMEM;
	if (!err)
		err = proj_apply(in->ref, in->n, in->dim, r, k, buf);
	if (!err)
		err = proj_apply(in->win, in->m, in->dim, r, k, buf + in->n * k);
	free(r);
	if (err) {
		free(buf);
		return err;
	}
	out->buf = buf;
	out->in.ref = buf;
	out->in.win = buf + in->n * k;
	out->in.dim = k;
	return 0;
}

void det_projected_free(struct det_projected *p)
{
	free(p->buf);
	p->buf = NULL;
}

static int within_memory(const struct det_def *def, const struct det_input *in,
			 const struct det_settings *s, char *why, size_t whylen)
{
	size_t bytes;
	int err;

	if (!def->workspace || !s->max_memory)
		return 0;
	err = def->workspace(in, s, &bytes);
	if (err == -EINVAL)
		return 0;	/* run reports the bad input itself */
	if (err || bytes > s->max_memory) {
		snprintf(why, whylen, "%s: needs %zu MiB of working memory for "
			 "%zu + %zu points, above detectors.max_memory (%zu MiB)",
			 def->name, err ? SIZE_MAX >> 20 : bytes >> 20, in->n,
			 in->m, s->max_memory >> 20);
		return -E2BIG;
	}
	return 0;
}

static bool row_ok(const struct det_row *r)
{
	return isfinite(r->statistic) &&
	       (isnan(r->p_value) || (r->p_value >= 0.0 && r->p_value <= 1.0));
}

int det_run(const struct det_def *def, const struct det_input *in,
	    const struct det_settings *s, struct det_output *out, char *why,
	    size_t whylen)
{
	size_t kept = 0;
	int err;

	out->n_rows = 0;
	if (why && whylen)
		why[0] = '\0';
	if (!det_ready(def, in, why, whylen))
		return -ENOENT;
	err = within_memory(def, in, s, why, whylen);
	if (!err)
		err = def->run(in, s, out, why, whylen);
	if (err) {
		out->n_rows = 0;
		return err;
	}
	for (size_t i = 0; i < out->n_rows; i++) {
		if (row_ok(&out->rows[i])) {
			out->rows[kept++] = out->rows[i];
			continue;
		}
		snprintf(why, whylen, "%s: statistic %g / p %g not usable, row "
			 "left out", out->rows[i].test, out->rows[i].statistic,
			 out->rows[i].p_value);
	}
	out->n_rows = kept;
	return 0;
}
