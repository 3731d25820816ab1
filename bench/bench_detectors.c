/* bench_detectors: times the detectors and the machine's BLAS rate on the
 * same data, for bench/detectors_numpy.py, which compares them with
 * numpy/scipy/sklearn in the same run. Prints one JSON object.
 *
 * Usage:
 *   bench_detectors blas FILE N M D
 *   bench_detectors mmd|energy|classifier FILE N M D PERMUTATIONS [PROJ
 *                   [REPEATS]]
 *   bench_detectors ks FILE N M D
 *   bench_detectors power N D SHIFT PROJ TRIALS PERMUTATIONS
 *   bench_detectors stream N
 * FILE holds (N + M) x D float32 rows, reference first. PROJ > 0 projects
 * to PROJ dimensions first (timed with the test). Times are the best of
 * REPEATS runs (default 3); with REPEATS = 1 the kernel step of mmd and
 * energy (B = 0) is not timed separately. `power` draws its own
 * Gaussian samples (window shifted by SHIFT in every coordinate) and
 * reports the MMD rejection rate at 0.05 and the mean time. `stream`
 * feeds N uniform values, one at a time, to Page-Hinkley and to ADWIN with
 * the daemon's default parameters and reports ns per value of each.
 *
 * Times are CPU time of the process (CLOCK_PROCESS_CPUTIME_ID): with BLAS
 * on one thread (OPENBLAS_NUM_THREADS=1, as the driver sets) that is the
 * compute time, and it stays put when other work shares the machine. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classifier.h"
#include "energy.h"
#include "ks.h"
#include "mmd.h"
#include "projection.h"
#include "rng.h"
#include "stream.h"

#define REPEATS 3

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_detectors: %s: %s\n", what, strerror(-err));
	exit(1);
}

static float *read_rows(const char *path, size_t count)
{
	float *v = malloc(count * sizeof *v);
	FILE *f = fopen(path, "rb");
	size_t got = f && v ? fread(v, sizeof *v, count, f) : 0;

	if (f)
		fclose(f);
	if (got != count) {
		fprintf(stderr, "bench_detectors: cannot read %zu floats from %s\n",
			count, path);
		exit(1);
	}
	return v;
}

/* Best of REPEATS wall times of one sgemm and one ssyrk on the pooled rows:
 * the BLAS rate the kernel step is measured against. */
static void run_blas(const float *z, size_t pooled, size_t d)
{
	float *c = malloc(pooled * pooled * sizeof *c);
	int np = (int)pooled, nd = (int)d;
	double sgemm_s = 1e30, ssyrk_s = 1e30;

	if (!c)
		die("blas", -ENOMEM);
	for (int r = 0; r < REPEATS; r++) {
		double t0 = now();

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, np, np, nd,
			    1.0f, z, nd, z, nd, 0.0f, c, np);
		double t1 = now();

		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, np, nd,
			    1.0f, z, nd, 0.0f, c, np);
		double t2 = now();

		sgemm_s = fmin(sgemm_s, t1 - t0);
		ssyrk_s = fmin(ssyrk_s, t2 - t1);
	}
	free(c);
	printf("{\"sgemm_gflops\": %.2f, \"sgemm_ms\": %.2f, \"ssyrk_ms\": %.2f}\n",
	       2.0 * (double)pooled * (double)pooled * (double)d / sgemm_s * 1e-9,
	       sgemm_s * 1e3, ssyrk_s * 1e3);
}

struct job {
	const char *test;
	const float *x, *y;
	size_t n, m, d, proj;
	unsigned permutations;
	int repeats;
	double statistic, p_value, extra;
	unsigned iterations;
};

/* One run, projection included. */
static void run_once(struct job *j)
{
	const float *x = j->x, *y = j->y;
	float *xp = NULL, *yp = NULL;
	size_t d = j->d;
	int err = 0;

	if (j->proj && j->proj < d) {
		err = proj_pair(x, j->n, y, j->m, d, j->proj, 1, &xp, &yp);
		if (err)
			die("projection", err);
		x = xp;
		y = yp;
		d = j->proj;
	}
	if (!strcmp(j->test, "mmd")) {
		struct mmd_params p = { .permutations = j->permutations, .seed = 1 };
		struct mmd_result r;

		err = mmd_test(x, j->n, y, j->m, d, &p, &r);
		j->statistic = r.statistic;
		j->p_value = r.p_value;
		j->extra = r.bandwidth;
	} else if (!strcmp(j->test, "energy")) {
		struct energy_params p = { .permutations = j->permutations, .seed = 1 };
		struct energy_result r;

		err = energy_test(x, j->n, y, j->m, d, &p, &r);
		j->statistic = r.statistic;
		j->p_value = r.p_value;
	} else if (!strcmp(j->test, "classifier")) {
		struct clf_params p = { .permutations = j->permutations, .seed = 1 };
		struct clf_result r;

		err = clf_test(x, j->n, y, j->m, d, &p, &r);
		j->statistic = r.auc;
		j->p_value = r.p_value;
		j->iterations = r.iterations;
	} else {
		struct ks_dims_params p = { .alpha = 0.05, .correction = CORR_BH };
		struct ks_dims_result r;

		err = ks_dims(x, j->n, y, j->m, d, &p, &r, NULL, NULL);
		j->statistic = r.share;
		j->p_value = r.min_p;
	}
	if (err)
		die(j->test, err);
	free(xp);
	free(yp);
}

static double best_time(struct job *j, int repeats)
{
	double best = 1e30;

	for (int r = 0; r < repeats; r++) {
		double t0 = now();

		run_once(j);
		best = fmin(best, now() - t0);
	}
	return best;
}

static void run_test(struct job *j)
{
	double total_s = best_time(j, j->repeats), kernel_s = 0.0;
	size_t bytes = 0;

	if ((!strcmp(j->test, "mmd") || !strcmp(j->test, "energy")) &&
	    j->repeats > 1) {
		struct mmd_params p = { .permutations = j->permutations };
		struct energy_params q = { .permutations = j->permutations };
		size_t d = j->proj ? j->proj : j->d;
		unsigned b = j->permutations;

		if (!strcmp(j->test, "mmd"))
			mmd_workspace_bytes(j->n, j->m, d, &p, &bytes);
		else
			energy_workspace_bytes(j->n, j->m, d, &q, &bytes);
		j->permutations = 0;
		kernel_s = best_time(j, j->repeats);
		j->permutations = b;
		run_once(j);	/* statistics of the full run again */
	}
	printf("{\"test\": \"%s\", \"total_ms\": %.3f, \"kernel_step_ms\": %.3f, "
	       "\"workspace_mb\": %.1f, \"statistic\": %.10g, \"p_value\": %.6g, "
	       "\"bandwidth\": %.10g, \"iterations\": %u}\n", j->test,
	       total_s * 1e3, kernel_s * 1e3, (double)bytes / 1048576.0,
	       j->statistic, j->p_value, j->extra, j->iterations);
}

/* Standard normal samples, shifted. */
static void gauss(struct rng *r, float *v, size_t len, double shift)
{
	for (size_t i = 0; i < len; i++) {
		double radius = sqrt(-2.0 * log1p(-rng_uniform(r)));

		v[i] = (float)(shift + radius * cos(2.0 * M_PI * rng_uniform(r)));
	}
}

static void run_power(size_t n, size_t d, double shift, size_t proj,
		      unsigned trials, unsigned permutations)
{
	float *x = malloc(n * d * sizeof *x), *y = malloc(n * d * sizeof *y);
	struct job j = { .test = "mmd", .x = x, .y = y, .n = n, .m = n, .d = d,
			 .proj = proj, .permutations = permutations };
	struct rng r;
	unsigned hits = 0;
	double total = 0.0;

	if (!x || !y)
		die("power", -ENOMEM);
	rng_init(&r, 2026, 0);
	for (unsigned t = 0; t < trials; t++) {
		gauss(&r, x, n * d, 0.0);
		gauss(&r, y, n * d, shift);
		double t0 = now();

		run_once(&j);
		total += now() - t0;
		hits += j.p_value <= 0.05;
	}
	printf("{\"rate\": %.4f, \"mean_ms\": %.3f}\n", (double)hits / trials,
	       total / trials * 1e3);
	free(x);
	free(y);
}

static void run_stream(size_t n)
{
	struct stream_ph_params pp = { .delta = 0.025, .threshold = 50.0, .forget = 1.0 };
	struct stream_ph ph;
	struct stream_adwin *a = malloc(sizeof *a);
	double *x = malloc(n * sizeof *x), t0, t_ph, t_adwin;
	size_t alarms = 0;
	struct rng r;

	if (!a || !x || !n || !stream_ph_init(&ph, &pp) || !stream_adwin_init(a, NULL))
		die("stream", -ENOMEM);
	rng_init(&r, 2026, 0);
	for (size_t i = 0; i < n; i++)
		x[i] = rng_uniform(&r);
	t0 = now();
	for (size_t i = 0; i < n; i++)
		alarms += stream_ph_update(&ph, x[i]);
	t_ph = now() - t0;
	t0 = now();
	for (size_t i = 0; i < n; i++)
		alarms += stream_adwin_update(a, x[i]);
	t_adwin = now() - t0;
	printf("{\"page_hinkley_ns\": %.1f, \"adwin_ns\": %.1f, \"alarms\": %zu}\n",
	       t_ph / (double)n * 1e9, t_adwin / (double)n * 1e9, alarms);
	free(a);
	free(x);
}

static size_t arg(const char *s)
{
	return (size_t)strtoull(s, NULL, 10);
}

int main(int argc, char **argv)
{
	if (argc == 8 && !strcmp(argv[1], "power")) {
		run_power(arg(argv[2]), arg(argv[3]), strtod(argv[4], NULL),
			  arg(argv[5]), (unsigned)arg(argv[6]),
			  (unsigned)arg(argv[7]));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "stream")) {
		run_stream(arg(argv[2]));
		return 0;
	}
	if (argc < 6) {
		fprintf(stderr, "usage: see the comment at the top of "
			"bench/bench_detectors.c\n");
		return 2;
	}
	size_t n = arg(argv[3]), m = arg(argv[4]), d = arg(argv[5]);
	float *z = read_rows(argv[2], (n + m) * d);
	struct job j = {
		.test = argv[1], .x = z, .y = z + n * d, .n = n, .m = m, .d = d,
		.permutations = argc > 6 ? (unsigned)arg(argv[6]) : 0,
		.proj = argc > 7 ? arg(argv[7]) : 0,
		.repeats = argc > 8 ? (int)arg(argv[8]) : REPEATS,
	};

	if (j.repeats < 1)
		j.repeats = 1;

	if (!strcmp(argv[1], "blas"))
		run_blas(z, n + m, d);
	else
		run_test(&j);
	free(z);
	return 0;
}
