/* registry: the table of detectors a model can select in its config
 * (`detectors = mmd, ks_dims, ...`). Each entry names the detector as the
 * config and the result rows do, says what input it needs, lists the
 * config keys it reads, and runs it on one closed window against its
 * reference, producing result rows.
 *
 * The daemon loops over this table instead of naming detectors: entry i
 * is selected by bit i of the model's detector mask (conf.h's CONF_DET_*
 * bits are in the same order; test_registry checks that the names agree
 * with the config parser, and that every key and name is documented in
 * docs/detectors.md).
 *
 * Rows: each p-valued row (DET_P_VALUE) is decided by the caller after
 * correcting its p-value across the slices evaluated together, per test
 * name; DET_ABOVE rows are drifted when statistic > threshold; DET_REPORT
 * rows are recorded only. Statistics are always finite: det_run drops a
 * row that is not and says why.
 *
 * Pure computation like the rest of detectors/: no I/O, no globals
 * besides the constant table; runs on a worker thread. */
#ifndef DRIFTD_REGISTRY_H
#define DRIFTD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "correct.h"

enum det_need {
	DET_NEEDS_EMBEDDINGS = 1u << 0,
	DET_NEEDS_SCORES = 1u << 1,  /* predicted scores of every record */
	DET_NEEDS_LABELS = 1u << 2,  /* true labels (joined later) */
};

enum det_kind {
	DET_P_VALUE, /* drifted when the corrected p-value is small */
	DET_ABOVE,   /* drifted when statistic > threshold */
	DET_REPORT,  /* recorded, never drifted by itself */
};

/* One closed window and its reference. */
struct det_input {
	const float *ref, *win;   /* n x dim and m x dim embeddings */
	size_t n, m, dim;
	/* Column sums of win in double, added in row order (the loop keeps
	 * them as records arrive), or NULL: centroid then sums win itself. */
	const double *win_sums;
	const float *ref_scores;  /* n x k, NULL when the model has none */
	const float *win_scores;  /* m x k, NULL when the model has none */
	unsigned k;
	uint64_t seed;            /* the window's seed, recorded with it */
};

/* Every detector parameter, as configured for the model (conf.h). */
struct det_settings {
	double alpha;                  /* ks_dims: level across coordinates */
	enum corr_method correction;   /* ks_dims: correction across them */
	unsigned projection_dim;       /* 0 = embeddings as they are */
	size_t max_memory;             /* bytes one detector may allocate */
	unsigned mmd_permutations;
	size_t mmd_bandwidth_points;
	double centroid_threshold;
	unsigned energy_permutations;
	unsigned classifier_permutations;
	double classifier_holdout;
	double classifier_l2;
	unsigned classifier_max_iter;
	double health_collapse_drop;
	double health_uniformity_rise;
	double health_norm_change;
	double health_duplicate_rise;
	double health_duplicate_cosine;
	double scores_psi_threshold;
	double scores_js_threshold;
};

#define DET_TEST_NAME_MAX 32
#define DET_MAX_ROWS 6
#define DET_WHY_MAX 160

struct det_row {
	char test[DET_TEST_NAME_MAX]; /* "mmd", "scores_psi", ...: unique */
	enum det_kind kind;
	double statistic;             /* finite */
	double p_value;               /* NaN: none */
	double threshold;             /* DET_ABOVE: its threshold; else NaN */
	double effect;                /* effect size for the decision floor */
	double bandwidth;             /* NaN unless a kernel bandwidth */
	unsigned permutations;        /* 0: none */
};

struct det_output {
	struct det_row rows[DET_MAX_ROWS];
	size_t n_rows;
};

struct det_def {
	const char *name;     /* as in the config's detectors list */
	unsigned needs;       /* DET_NEEDS_* */
	bool projectable;     /* runs on det_project's input */
	/* Reads the window's rows only through win_sums when they are
	 * given: the caller need not gather them for it. */
	bool sums_suffice;
	/* Returns 0, or a negative errno with a reason in why. NULL: the
	 * detector does not run on windows (see its doc). */
	int (*run)(const struct det_input *in, const struct det_settings *s,
		   struct det_output *out, char *why, size_t whylen);
	/* Bytes run would allocate on in; NULL when that is small (linear
	 * in the input). */
	int (*workspace)(const struct det_input *in,
			 const struct det_settings *s, size_t *bytes);
	const char *const *keys; /* config keys it reads, NULL-terminated */
	const char *doc;
};

/* Entries in det_registry: one per bit of the detector mask. */
#define DET_COUNT 8

extern const struct det_def det_registry[DET_COUNT];

/* NULL when no detector has that name. */
const struct det_def *det_find(const char *name);

/* Whether in carries what def needs; false with the reason in why. */
bool det_ready(const struct det_def *def, const struct det_input *in,
	       char *why, size_t whylen);

/* The input of the projectable detectors: in itself, or, when
 * s->projection_dim is set and below in->dim, in with both embedding
 * samples randomly projected to projection_dim (projection.h, seed
 * in->seed). Computed once per window; det_projected_free releases it. */
struct det_projected {
	struct det_input in;
	float *buf; /* owned projections, NULL when none */
};

int det_project(const struct det_input *in, const struct det_settings *s,
		struct det_projected *out);
void det_projected_free(struct det_projected *p);

/* Runs def on in (for a projectable detector, pass det_project's input)
 * unless its workspace exceeds s->max_memory (-E2BIG), then drops rows whose statistic is not finite or whose p-value is
 * outside [0, 1]. Returns 0 (rows in out, possibly fewer than the
 * detector made; the reason for any drop in why) or a negative errno with
 * the reason in why. */
int det_run(const struct det_def *def, const struct det_input *in,
	    const struct det_settings *s, struct det_output *out, char *why,
	    size_t whylen);

#endif
