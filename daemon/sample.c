/* float32 ⇄ float16 for sample storage. */
#include "sample.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define SMP_X86 1
#endif

#define HALF_MAX_BITS 0x477fe000u	/* 65504.0f, the largest half */
#define HALF_MIN_NORMAL_BITS 0x38800000u	/* 2^-14 */

uint16_t smp_to_half(float v)
{
	uint32_t x, ax, sign;

	memcpy(&x, &v, sizeof(x));
	sign = (x >> 16) & 0x8000u;
	ax = x & 0x7fffffffu;
	if (ax > HALF_MAX_BITS)		/* saturate; NaN stays NaN */
		return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7bffu));
	if (ax < HALF_MIN_NORMAL_BITS) {
		/* A subnormal half counts units of 2^-24: scaling by 2^24 is
		 * exact and lrintf rounds to nearest even; 1024 is the smallest
		 * normal half, whose bits are 0x0400 as well. */
		float a;

		memcpy(&a, &ax, sizeof(a));
		return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
	}
	/* Rebias the exponent (127 → 15) and round the 13 dropped bits to
	 * nearest even; a carry moves into the exponent as it should. */
	ax += 0xc8000fffu + ((ax >> 13) & 1u);
	return (uint16_t)(sign | (ax >> 13));
}

float smp_from_half(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu,
		 m = h & 0x3ffu, x;
	float v;

	if (e == 0) {
		v = (float)m * 5.9604644775390625e-8f;	/* m × 2^-24 */
		memcpy(&x, &v, sizeof(x));
		x |= sign;
	} else if (e == 31) {
		x = sign | 0x7f800000u | (m << 13);
	} else {
		x = sign | ((e + 112u) << 23) | (m << 13);
	}
	memcpy(&v, &x, sizeof(v));
	return v;
}

/* Value I of SRC, which may not be aligned to a float. */
static float at(const void *src, size_t i)
{
	float v;

	memcpy(&v, (const char *)src + i * sizeof(v), sizeof(v));
	return v;
}

/* Adds V to SUM[I] and ALSO[I], each when not NULL. */
static void add_to(double *sum, double *also, size_t i, double v)
{
	if (sum)
		sum[i] += v;
	if (also)
		also[i] += v;
}

/* Value I of SRC into DST[I] as float32, and into the sums. */
static void put_f32(float *dst, const void *src, size_t i, double *sum,
		    double *also)
{
	float v = at(src, i);

	dst[i] = v;
	add_to(sum, also, i, (double)v);
}

/* The same as float16; the sums get the value as rounded. */
static void put_f16(uint16_t *dst, const void *src, size_t i, double *sum,
		    double *also)
{
	dst[i] = smp_to_half(at(src, i));
	add_to(sum, also, i, (double)smp_from_half(dst[i]));
}

static void store_portable(enum smp_format f, void *dst, const void *src,
			   size_t n, double *sum, double *also)
{
	for (size_t i = 0; i < n; i++) {
		if (f == SMP_FLOAT16)
			put_f16(dst, src, i, sum, also);
		else
			put_f32(dst, src, i, sum, also);
	}
}

static void load_portable(float *dst, const uint16_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = smp_from_half(src[i]);
}

#ifdef SMP_X86
/* Adds the four values in LO and HI to SUM[I..I+4) and, when not NULL,
 * ALSO[I..I+4). */
static inline void add4(double *sum, double *also, size_t i, __m128d lo,
			__m128d hi)
{
	_mm_storeu_pd(sum + i, _mm_add_pd(_mm_loadu_pd(sum + i), lo));
	_mm_storeu_pd(sum + i + 2, _mm_add_pd(_mm_loadu_pd(sum + i + 2), hi));
	if (also) {
		_mm_storeu_pd(also + i, _mm_add_pd(_mm_loadu_pd(also + i), lo));
		_mm_storeu_pd(also + i + 2,
			      _mm_add_pd(_mm_loadu_pd(also + i + 2), hi));
	}
}

/* Rows are written once and read much later by a detector on another
 * thread: streaming stores skip reading each destination line into the
 * cache first (the loop thread's copy into windows cost a quarter less in
 * the ingest profile).  The fence publishes them before the buffer can be
 * handed over.  SUM is NULL only when ALSO is (smp_store_sum). */
static void store_f32_stream(float *dst, const void *src, size_t n,
			     double *sum, double *also)
{
	const char *s = src;
	size_t i = 0;

	for (; i < n && ((uintptr_t)(dst + i) & 15); i++)
		put_f32(dst, src, i, sum, also);
	for (; i + 4 <= n; i += 4) {
		__m128 v;

		memcpy(&v, s + i * 4, sizeof(v));
		_mm_stream_ps(dst + i, v);
		if (sum)
			add4(sum, also, i, _mm_cvtps_pd(v),
			     _mm_cvtps_pd(_mm_movehl_ps(v, v)));
	}
	for (; i < n; i++)
		put_f32(dst, src, i, sum, also);
	_mm_sfence();
}

/* add4 for eight values. */
__attribute__((target("avx"))) static inline void
add8(double *sum, double *also, size_t i, __m256d lo, __m256d hi)
{
	_mm256_storeu_pd(sum + i, _mm256_add_pd(_mm256_loadu_pd(sum + i), lo));
	_mm256_storeu_pd(sum + i + 4,
			 _mm256_add_pd(_mm256_loadu_pd(sum + i + 4), hi));
	if (also) {
		_mm256_storeu_pd(also + i,
				 _mm256_add_pd(_mm256_loadu_pd(also + i), lo));
		_mm256_storeu_pd(also + i + 4,
				 _mm256_add_pd(_mm256_loadu_pd(also + i + 4), hi));
	}
}

/* Eight values per instruction, streamed as above; the ends go through
 * put_f16, which rounds the same way. */
__attribute__((target("avx,f16c"))) static void
store_f16c(uint16_t *dst, const void *src, size_t n, double *sum, double *also)
{
	const __m256 hi = _mm256_set1_ps(65504.0f), lo = _mm256_set1_ps(-65504.0f);
	const char *s = src;
	size_t i = 0;

	for (; i < n && ((uintptr_t)(dst + i) & 15); i++)
		put_f16(dst, src, i, sum, also);
	for (; i + 8 <= n; i += 8) {
		__m256 v;
		__m128i h;

		memcpy(&v, s + i * 4, sizeof(v));
		v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
		h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT |
					       _MM_FROUND_NO_EXC);
		_mm_stream_si128((__m128i *)(void *)(dst + i), h);
		if (sum) {
			v = _mm256_cvtph_ps(h);
			add8(sum, also, i,
			     _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
			     _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
		}
	}
	for (; i < n; i++)
		put_f16(dst, src, i, sum, also);
	_mm_sfence();
}

__attribute__((target("avx,f16c"))) static void
load_f16c(float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
						  (const __m128i *)(const void *)(src + i))));
	load_portable(dst + i, src + i, n - i);
}

/* CPUID leaf 1 says F16C and AVX, and XGETBV that the OS saves the YMM
 * registers.  (clang 14's __builtin_cpu_supports does not know "f16c".)
 * The answer never changes, so it is looked up once. */
static bool probe_f16c(void)
{
	unsigned a, b, c, d, lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_F16C) ||
	    !(c & bit_AVX) || !(c & bit_OSXSAVE))
		return false;
	__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

static bool have_f16c(void)
{
	static _Atomic int known = -1;
	int v = atomic_load_explicit(&known, memory_order_relaxed);

	if (v < 0) {
		v = probe_f16c();
		atomic_store_explicit(&known, v, memory_order_relaxed);
	}
	return v;
}
#endif

void smp_store_sum(enum smp_format f, void *dst, const void *src, size_t n,
		   double *sum, double *also)
{
	if (!sum) {	/* one sum array: the fast paths test only SUM */
		sum = also;
		also = NULL;
	}
#ifdef SMP_X86
	if (f == SMP_FLOAT32) {
		store_f32_stream(dst, src, n, sum, also);
		return;
	}
	if (have_f16c()) {
		store_f16c(dst, src, n, sum, also);
		return;
	}
#else
	if (f == SMP_FLOAT32 && !sum && !also) {
		memcpy(dst, src, n * sizeof(float));
		return;
	}
#endif
	store_portable(f, dst, src, n, sum, also);
}

void smp_store(enum smp_format f, void *dst, const void *src, size_t n)
{
	smp_store_sum(f, dst, src, n, NULL, NULL);
}

void smp_load(enum smp_format f, float *dst, const void *src, size_t n)
{
	if (f == SMP_FLOAT32) {
		memcpy(dst, src, n * sizeof(float));
		return;
	}
#ifdef SMP_X86
	if (have_f16c()) {
		load_f16c(dst, src, n);
		return;
	}
#endif
	load_portable(dst, src, n);
}
