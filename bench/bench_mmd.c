/* bench_mmd: times mmd_test and the machine's sgemm rate on the same data.
 * Usage: bench_mmd FILE N M D PERMUTATIONS, FILE holding (N + M) x D
 * float32 rows (reference first). Prints one JSON object; mmd_numpy.py
 * drives it and compares with numpy. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmd.h"

#define REPEATS 3

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *read_rows(const char *path, size_t count)
{
	float *v = malloc(count * sizeof *v);
	FILE *f = fopen(path, "rb");
	size_t got = f && v ? fread(v, sizeof *v, count, f) : 0;

	if (f)
		fclose(f);
	if (got != count) {
		fprintf(stderr, "bench_mmd: cannot read %zu floats from %s\n",
			count, path);
		free(v);
		return NULL;
	}
	return v;
}

/* Best of REPEATS wall times of one sgemm and one ssyrk on the pooled rows:
 * the BLAS rate the kernel step is measured against. */
static void blas_times(const float *z, size_t pooled, size_t d,
		       double *sgemm_s, double *ssyrk_s)
{
	float *c = malloc(pooled * pooled * sizeof *c);
	int np = (int)pooled, nd = (int)d;

	*sgemm_s = *ssyrk_s = 1e30;
	for (int r = 0; c && r < REPEATS; r++) {
		double t0 = now();

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, np, np, nd,
			    1.0f, z, nd, z, nd, 0.0f, c, np);
		double t1 = now();

		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, np, nd,
			    1.0f, z, nd, 0.0f, c, np);
		double t2 = now();

		if (t1 - t0 < *sgemm_s)
			*sgemm_s = t1 - t0;
		if (t2 - t1 < *ssyrk_s)
			*ssyrk_s = t2 - t1;
	}
	free(c);
}

static double best_mmd(const float *x, size_t n, const float *y, size_t m,
		       size_t d, const struct mmd_params *p,
		       struct mmd_result *res)
{
	double best = 1e30;

	for (int r = 0; r < REPEATS; r++) {
		double t0 = now();
		int err = mmd_test(x, n, y, m, d, p, res);
		double t = now() - t0;

		if (err) {
			fprintf(stderr, "bench_mmd: mmd_test: %s\n",
				strerror(-err));
			exit(1);
		}
		if (t < best)
			best = t;
	}
	return best;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: bench_mmd FILE N M D PERMUTATIONS\n");
		return 2;
	}
	size_t n = strtoul(argv[2], NULL, 10), m = strtoul(argv[3], NULL, 10);
	size_t d = strtoul(argv[4], NULL, 10), pooled = n + m;
	struct mmd_params p = { .permutations = 0, .seed = 1 };
	struct mmd_result res;
	double sgemm_s, ssyrk_s, kernel_s, total_s, flops;
	size_t bytes;
	float *z = read_rows(argv[1], pooled * d);

	if (!z)
		return 1;
	blas_times(z, pooled, d, &sgemm_s, &ssyrk_s);
	kernel_s = best_mmd(z, n, z + n * d, m, d, &p, &res);
	p.permutations = (unsigned)strtoul(argv[5], NULL, 10);
	total_s = best_mmd(z, n, z + n * d, m, d, &p, &res);
	mmd_workspace_bytes(n, m, d, &p, &bytes);

	/* ssyrk does half of sgemm's 2·N²·d flops. */
	flops = (double)pooled * (double)pooled * (double)d;
	printf("{\"sgemm_gflops\": %.2f, \"ssyrk_ms\": %.2f, "
	       "\"kernel_step_ms\": %.2f, \"kernel_step_gflops\": %.2f, "
	       "\"total_ms\": %.2f, \"workspace_mb\": %.1f, "
	       "\"statistic\": %.10g, \"p_value\": %.6g, \"bandwidth\": %.10g}\n",
	       2.0 * flops / sgemm_s * 1e-9, ssyrk_s * 1e3, kernel_s * 1e3,
	       flops / kernel_s * 1e-9, total_s * 1e3, (double)bytes / 1048576.0,
	       res.statistic, res.p_value, res.bandwidth);
	free(z);
	return 0;
}
