/* Unit tests for detectors/registry: the table agrees with the config
 * parser and with docs/detectors.md; every detector runs through det_run
 * with finite, uniquely named rows; skips, projection and the NaN guard. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "registry.h"
#include "testutil.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static unsigned parsed_mask(const char *detectors)
{
	char text[512], err[1024];
	struct conf *c;
	unsigned mask;

	snprintf(text, sizeof text,
		 "[store]\ndsn = host=/tmp\n[model.m]\ndim = 4\n"
		 "reference.size = 10\nwindow.size = 10\ndetectors = %s\n",
		 detectors);
	if (conf_load_string(text, "t.ini", &c, err, sizeof err))
		fail_msg("%s", err);
	mask = c->models[0].detectors;
	conf_free(c);
	return mask;
}

/* Entry i is bit i of the config's mask, under the same name. */
static void test_names_match_config(void **state)
{
	for (size_t i = 0; i < DET_COUNT; i++) {
		const struct det_def *d = &det_registry[i];

		assert_non_null(d->name);
		assert_non_null(d->keys);
		assert_non_null(d->doc);
		assert_int_equal(parsed_mask(d->name), 1u << i);
		assert_ptr_equal(det_find(d->name), d);
	}
	assert_int_equal(CONF_DET_MMD, 1u << 0);
	assert_int_equal(CONF_DET_CLASSIFIER, 1u << 7);
	assert_null(det_find("psi"));
	assert_null(det_find(NULL));
}

/* Every key a detector reads is a model key of the config. */
static void test_keys_exist(void **state)
{
	char *out = NULL, needle[80];
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	conf_print_defaults(f);
	fclose(f);
	const char *model = strstr(out, "\n[model.NAME]\n");

	assert_non_null(model);
	for (size_t i = 0; i < DET_COUNT; i++)
		for (const char *const *k = det_registry[i].keys; *k; k++) {
			snprintf(needle, sizeof needle, "\n;%s =", *k);
			if (!strstr(model, needle))
				fail_msg("%s reads '%s', not a model key",
					 det_registry[i].name, *k);
		}
	free(out);
}

static struct det_settings settings(void)
{
	return (struct det_settings){
		.alpha = 0.05, .correction = CORR_BH,
		.mmd_permutations = 99, .centroid_threshold = 0.1,
		.energy_permutations = 99, .classifier_permutations = 99,
		.classifier_holdout = 0.5, .classifier_l2 = 0.1,
		.classifier_max_iter = 50, .health_collapse_drop = 0.25,
		.health_uniformity_rise = 0.5, .health_norm_change = 0.25,
		.health_duplicate_rise = 0.05, .health_duplicate_cosine = 0.99,
		.scores_psi_threshold = 0.2, .scores_js_threshold = 0.1,
	};
}

struct sample {
	float ref[40 * 6], win[30 * 6], ref_scores[40 * 3], win_scores[30 * 3];
	struct det_input in;
};

static void make_sample(struct sample *s, double shift)
{
	struct rng r;

	rng_init(&r, 99, 0);
	fill_gauss(&r, s->ref, 40 * 6, 0.0, 1.0);
	fill_gauss(&r, s->win, 30 * 6, shift, 1.0);
	for (size_t i = 0; i < 40 + 30; i++) {
		float *row = i < 40 ? s->ref_scores + 3 * i :
				      s->win_scores + 3 * (i - 40);
		double a = rng_uniform(&r), b = rng_uniform(&r) * (1.0 - a);

		row[0] = (float)a;
		row[1] = (float)b;
		row[2] = (float)(1.0 - a - b);
	}
	s->in = (struct det_input){
		.ref = s->ref, .n = 40, .win = s->win, .m = 30, .dim = 6,
		.ref_scores = s->ref_scores, .win_scores = s->win_scores,
		.k = 3, .seed = 5,
	};
}

/* Each runnable detector: rows finite, named as documented, unique across
 * detectors; kinds carry what the decision needs. */
static void test_every_detector_runs(void **state)
{
	static struct sample s;
	struct det_settings st = settings();
	char *doc = slurp(DOCS_DIR "/detectors.md"), name[48], why[DET_WHY_MAX];
	char seen[DET_COUNT * DET_MAX_ROWS][DET_TEST_NAME_MAX];
	size_t n_seen = 0;

	make_sample(&s, 1.0);
	for (size_t i = 0; i < DET_COUNT; i++) {
		const struct det_def *d = &det_registry[i];
		struct det_output out;

		snprintf(name, sizeof name, "`%s`", d->name);
		if (!strstr(doc, name))
			fail_msg("docs/detectors.md does not mention %s", name);
		for (const char *const *k = d->keys; *k; k++) {
			snprintf(name, sizeof name, "`%s`", *k);
			if (!strstr(doc, name))
				fail_msg("docs/detectors.md does not mention %s", name);
		}
		if (!d->run) {
			assert_int_equal(det_run(d, &s.in, &st, &out, why, sizeof why),
					 -ENOENT);
			assert_true(strlen(why) > 0);
			continue;
		}
		assert_int_equal(det_run(d, &s.in, &st, &out, why, sizeof why), 0);
		assert_string_equal(why, "");
		assert_true(out.n_rows >= 1);
		for (size_t r = 0; r < out.n_rows; r++) {
			const struct det_row *row = &out.rows[r];

			print_message("%-22s statistic %-10.4g p %-10.4g thr %.4g\n",
				      row->test, row->statistic, row->p_value,
				      row->threshold);
			assert_true(strncmp(row->test, d->name, strlen(d->name)) == 0);
			snprintf(name, sizeof name, "`%s`", row->test);
			if (!strstr(doc, name))
				fail_msg("docs/detectors.md does not mention %s", name);
			for (size_t k = 0; k < n_seen; k++)
				assert_string_not_equal(seen[k], row->test);
			snprintf(seen[n_seen++], DET_TEST_NAME_MAX, "%s", row->test);
			assert_true(isfinite(row->statistic));
			assert_true(isfinite(row->effect));
			if (row->kind == DET_P_VALUE) {
				assert_true(row->p_value >= 0.0 && row->p_value <= 1.0);
				assert_true(isnan(row->threshold));
			} else {
				assert_true(isnan(row->p_value));
				assert_true(row->kind == DET_REPORT ?
					    isnan(row->threshold) :
					    isfinite(row->threshold));
			}
		}
	}
	/* the shift of 1 sd is plain to every embedding test */
	assert_true(n_seen >= 14);
	free(doc);
}

static void test_skips(void **state)
{
	static struct sample s;
	struct det_settings st = settings();
	struct det_output out;
	char why[DET_WHY_MAX];

	make_sample(&s, 0.0);
	s.in.win_scores = NULL;
	assert_false(det_ready(det_find("scores"), &s.in, why, sizeof why));
	assert_non_null(strstr(why, "no predicted scores"));
	assert_int_equal(det_run(det_find("scores"), &s.in, &st, &out, why,
				 sizeof why), -ENOENT);
	assert_int_equal(out.n_rows, 0);
	assert_true(det_ready(det_find("mmd"), &s.in, why, sizeof why));
	/* above the memory limit: skipped with the reason */
	s.in.win_scores = s.win_scores;
	st.max_memory = 4096;
	assert_int_equal(det_run(det_find("mmd"), &s.in, &st, &out, why,
				 sizeof why), -E2BIG);
	assert_non_null(strstr(why, "above detectors.max_memory"));
	assert_int_equal(out.n_rows, 0);
	assert_int_equal(det_run(det_find("centroid"), &s.in, &st, &out, why,
				 sizeof why), 0);
	st.max_memory = 64u << 20;
	for (size_t i = 0; i < DET_COUNT; i++)
		if (det_registry[i].run)
			assert_int_equal(det_run(&det_registry[i], &s.in, &st,
						 &out, why, sizeof why), 0);
	/* a window of one record cannot be tested: a reason, no rows */
	s.in.m = 1;
	assert_int_equal(det_run(det_find("energy"), &s.in, &st, &out, why,
				 sizeof why), -EINVAL);
	assert_non_null(strstr(why, "at least 2 records"));
	assert_int_equal(out.n_rows, 0);
}

/* NaN input slips past no guard into a row. */
static void test_nan_rows_dropped(void **state)
{
	static struct sample s;
	struct det_settings st = settings();
	struct det_output out;
	char why[DET_WHY_MAX];

	make_sample(&s, 0.0);
	s.win[0] = NAN;
	assert_int_equal(det_run(det_find("centroid"), &s.in, &st, &out, why,
				 sizeof why), 0);
	/* the Euclidean distance is NaN and must go; what stays is finite */
	assert_true(out.n_rows < 2);
	for (size_t r = 0; r < out.n_rows; r++)
		assert_true(isfinite(out.rows[r].statistic));
	assert_non_null(strstr(why, "centroid_euclidean"));
	assert_non_null(strstr(why, "not usable"));
}

static void test_projection(void **state)
{
	static struct sample s;
	struct det_settings st = settings();
	struct det_projected p;
	struct det_output out;
	char why[DET_WHY_MAX];

	make_sample(&s, 0.0);
	assert_int_equal(det_project(&s.in, &st, &p), 0);
	assert_ptr_equal(p.in.ref, s.ref);
	assert_null(p.buf);
	st.projection_dim = 6;
	assert_int_equal(det_project(&s.in, &st, &p), 0);
	assert_null(p.buf);
	st.projection_dim = 3;
	assert_int_equal(det_project(&s.in, &st, &p), 0);
	assert_non_null(p.buf);
	assert_int_equal(p.in.dim, 3);
	assert_int_equal(p.in.n, 40);
	assert_int_equal(p.in.m, 30);
	assert_ptr_equal(p.in.win, p.in.ref + 40 * 3);
	assert_int_equal(det_run(det_find("mmd"), &p.in, &st, &out, why,
				 sizeof why), 0);
	assert_int_equal(out.n_rows, 1);
	det_projected_free(&p);
	assert_null(p.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_match_config),
		cmocka_unit_test(test_keys_exist),
		cmocka_unit_test(test_every_detector_runs),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_nan_rows_dropped),
		cmocka_unit_test(test_projection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
