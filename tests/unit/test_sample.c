/* Unit tests for daemon/sample (float16 sample storage): conversions
 * against numpy's float16 (tests/data/half_vectors.txt, from
 * gen_half_vectors.py), every half back to float32 against its definition,
 * saturation, the bulk (F16C) paths against the portable ones at every
 * length and alignment, and MMD on float16-stored samples against float32. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmd.h"
#include "rng.h"
#include "sample.h"

#ifndef DATA_DIR
#error "DATA_DIR must point at tests/data"
#endif

static float f32_of_bits(uint32_t b)
{
	float v;

	memcpy(&v, &b, sizeof(v));
	return v;
}

static void numpy_vectors(void **state)
{
	FILE *f = fopen(DATA_DIR "/half_vectors.txt", "r");
	char line[128];
	float *x = NULL;
	uint16_t *want = NULL, *got;
	size_t n = 0, cap = 0;
	unsigned a, b;

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		assert_int_equal(sscanf(line, "%x %x", &a, &b), 2);
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			x = realloc(x, cap * sizeof(*x));
			want = realloc(want, cap * sizeof(*want));
			assert_non_null(x);
			assert_non_null(want);
		}
		x[n] = f32_of_bits(a);
		want[n++] = (uint16_t)b;
	}
	fclose(f);
	assert_true(n > 4000);
	got = calloc(n, sizeof(*got));
	assert_non_null(got);
	smp_store(SMP_FLOAT16, got, x, n);
	for (size_t i = 0; i < n; i++) {
		if (smp_to_half(x[i]) != want[i] || got[i] != want[i])
			fail_msg("%.9g: numpy %04x, portable %04x, bulk %04x",
				 (double)x[i], want[i], smp_to_half(x[i]),
				 got[i]);
	}
	free(x);
	free(want);
	free(got);
}

/* Every half, by its definition: (-1)^s × m × 2^-24 when subnormal, else
 * (-1)^s × (1024 + m) × 2^(e - 25); and back to the same bits. */
static void every_half(void **state)
{
	static uint16_t h[65536];
	static float bulk[65536];

	(void)state;
	for (uint32_t i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;
	smp_load(SMP_FLOAT16, bulk, h, 65536);
	for (uint32_t i = 0; i < 65536; i++) {
		unsigned e = (i >> 10) & 31, m = i & 1023;
		double want = e == 0  ? ldexp(m, -24) :
			      e == 31 ? (m ? (double)NAN : (double)INFINITY) :
					ldexp(1024 + m, (int)e - 25);
		float got = smp_from_half((uint16_t)i);

		if (i & 0x8000)
			want = -want;
		if (isnan(want)) {
			assert_true(isnan(got) && isnan(bulk[i]));
			continue;
		}
		assert_true((double)got == want);
		assert_memory_equal(&got, &bulk[i], sizeof(got));
		if (e != 31)
			assert_int_equal(smp_to_half(got), i);
	}
}

static void saturates(void **state)
{
	const float big[] = { 65504.0f, 65505.0f, 65512.0f, 65520.0f, 7e4f,
			      1e30f, FLT_MAX, -65512.0f, -FLT_MAX };
	const uint16_t want[] = { 0x7bff, 0x7bff, 0x7bff, 0x7bff, 0x7bff,
				  0x7bff, 0x7bff, 0xfbff, 0xfbff };
	float src[16];
	uint16_t got[16];

	(void)state;
	for (size_t i = 0; i < 9; i++)
		assert_int_equal(smp_to_half(big[i]), want[i]);
	/* Twice over, so that the eight-wide path sees them too. */
	for (size_t i = 0; i < 16; i++)
		src[i] = big[i % 8];
	smp_store(SMP_FLOAT16, got, src, 16);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(got[i], want[i % 8]);
}

/* Bulk and portable agree at every length and misalignment. */
static void bulk_lengths(void **state)
{
	float src[80], back[80], pool[80];
	uint16_t h[81], one;
	uint32_t guard;
	struct rng r;

	(void)state;
	rng_init(&r, 5, 0);
	for (size_t i = 0; i < 80; i++)
		pool[i] = (float)((rng_uniform(&r) - 0.5) * 1000.0);
	for (size_t off = 0; off < 3; off++)
		for (size_t n = 0; n + off <= 64; n++) {
			memcpy(src, pool + off, n * sizeof(float));
			memset(h, 0xee, sizeof(h));
			smp_store(SMP_FLOAT16, h + off, src, n);
			assert_int_equal(h[off + n], 0xeeee);
			smp_load(SMP_FLOAT16, back, h + off, n);
			for (size_t i = 0; i < n; i++) {
				one = smp_to_half(src[i]);
				assert_int_equal(h[off + i], one);
				assert_true(back[i] == smp_from_half(one));
				assert_true(fabsf(back[i] - src[i]) <=
					    fabsf(src[i]) * 0x1p-11f);
			}
		}
	/* float32 storage is a copy, whatever the alignment. */
	for (size_t off = 0; off < 5; off++)
		for (size_t n = 0; n + off <= 70; n++) {
			memset(back, 0xee, sizeof(back));
			smp_store(SMP_FLOAT32, back + off, pool, n);
			assert_memory_equal(back + off, pool, n * sizeof(float));
			memcpy(&guard, back + off + n, sizeof(guard));
			assert_int_equal(guard, 0xeeeeeeeeu);
			smp_load(SMP_FLOAT32, src, back + off, n);
			assert_memory_equal(src, pool, n * sizeof(float));
		}
}

/* smp_store_sum stores what smp_store does and adds each value as stored,
 * in order, to the running sums it is given (either or both): bit for bit
 * what adding the rows loaded back gives, at every length and
 * misalignment, in both formats.  The second sums start elsewhere, so
 * that the two are seen to be kept apart. */
static void store_sum_is_rows_summed(void **state)
{
	enum smp_format formats[] = { SMP_FLOAT32, SMP_FLOAT16 };
	float pool[3][80], back[80];
	uint16_t a[2][170], b[2][170];
	double got[2][80], want[2][80];
	struct rng r;

	(void)state;
	rng_init(&r, 9, 0);
	for (size_t k = 0; k < 3; k++)
		for (size_t i = 0; i < 80; i++)	/* far from 0: rounding shows */
			pool[k][i] = (float)(1e4 + (rng_uniform(&r) - 0.5) * 7.0);
	for (unsigned use = 1; use < 8; use++) {
		/* bit 0: SUM given, bit 1: ALSO given, bit 2: float16 */
		enum smp_format f = formats[use >> 2];
		size_t w = smp_width(f);

		for (size_t off = 0; off < 5; off++)
			for (size_t n = 0; n + off <= 70; n++) {
				memset(a, 0xee, sizeof(a));
				memset(b, 0xee, sizeof(b));
				for (size_t i = 0; i < 80; i++) {
					got[0][i] = want[0][i] = 0.0;
					got[1][i] = want[1][i] = 0.25 * (double)i;
				}
				for (size_t k = 0; k < 3; k++) {
					char *ra = (char *)a[k % 2] + off * w,
					     *rb = (char *)b[k % 2] + off * w;

					smp_store_sum(f, ra, pool[k], n,
						      use & 1 ? got[0] : NULL,
						      use & 2 ? got[1] : NULL);
					smp_store(f, rb, pool[k], n);
					assert_memory_equal(ra, rb, n * w);
					assert_int_equal(((unsigned char *)ra)[n * w],
							 0xee);
					smp_load(f, back, rb, n);
					for (size_t j = 0; j < 2; j++)
						for (size_t i = 0; i < n; i++)
							if (use & (1u << j))
								want[j][i] += (double)back[i];
				}
				assert_memory_equal(got, want, sizeof(got));
			}
	}
}

static void gaussian(struct rng *r, float *x, size_t n, float shift)
{
	for (size_t i = 0; i < n; i++) {
		double u = rng_uniform(r), v = rng_uniform(r);

		x[i] = (float)(sqrt(-2.0 * log(1.0 - u)) * cos(2 * M_PI * v)) +
		       shift;
	}
}

/* MMD on samples kept as float16 (stored, then loaded back) against the
 * same samples in float32: same decision, statistic within 1% and
 * p-value within 0.02, on a null, a weak and a strong shift. */
static void mmd_float16_close(void **state)
{
	enum { N = 300, D = 64 };
	const float shifts[] = { 0.0f, 0.025f, 0.3f };
	static float x[N * D], y[N * D], x16[N * D], y16[N * D];
	static uint16_t hx[N * D], hy[N * D];
	struct mmd_params p = { .permutations = 500, .seed = 42 };
	struct mmd_result a, b;
	struct rng r;

	(void)state;
	rng_init(&r, 7, 0);
	for (size_t k = 0; k < 3; k++) {
		gaussian(&r, x, N * D, 0.0f);
		gaussian(&r, y, N * D, shifts[k]);
		smp_store(SMP_FLOAT16, hx, x, N * D);
		smp_store(SMP_FLOAT16, hy, y, N * D);
		smp_load(SMP_FLOAT16, x16, hx, N * D);
		smp_load(SMP_FLOAT16, y16, hy, N * D);
		assert_int_equal(mmd_test(x, N, y, N, D, &p, &a), 0);
		assert_int_equal(mmd_test(x16, N, y16, N, D, &p, &b), 0);
		print_message("shift %.2f: statistic %.6g / %.6g, p %.4f / %.4f\n",
			      (double)shifts[k], a.statistic, b.statistic,
			      a.p_value, b.p_value);
		assert_true(fabs(b.statistic - a.statistic) <=
			    0.01 * fabs(a.statistic) + 1e-6);
		assert_true(fabs(b.p_value - a.p_value) <= 0.02);
		assert_int_equal(a.p_value <= 0.05, b.p_value <= 0.05);
		assert_true(fabs(b.bandwidth - a.bandwidth) <= 1e-3 * a.bandwidth);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numpy_vectors),
		cmocka_unit_test(every_half),
		cmocka_unit_test(saturates),
		cmocka_unit_test(bulk_lengths),
		cmocka_unit_test(store_sum_is_rows_summed),
		cmocka_unit_test(mmd_float16_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
