/* fsort: radix sort of floats through sign-folded integer keys. */
#include "fsort.h"

#include <stdbool.h>

/* Below this many values insertion sort beats four counting passes. */
#define SMALL 48

static float float_of(uint32_t k)
{
	uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
	float f;

	memcpy(&f, &u, sizeof f);
	return f;
}

static void insertion_sort(uint32_t *k, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t v = k[i];
		size_t j = i;

		for (; j > 0 && k[j - 1] > v; j--)
			k[j] = k[j - 1];
		k[j] = v;
	}
}

/* Three digits of 11, 11 and 10 bits: one counting pass fewer than bytes
 * for the price of larger histograms, a gain from a few hundred keys up. */
#define DIGITS 3
#define DIGIT_BITS 11
#define BUCKETS (1u << DIGIT_BITS)

static unsigned digit(uint32_t v, unsigned d)
{
	return (v >> (DIGIT_BITS * d)) & (BUCKETS - 1);
}

/* One stable scatter on digit d using its histogram count. */
static void scatter(const uint32_t *src, uint32_t *dst, size_t n, unsigned d,
		    uint32_t *count)
{
	uint32_t pos = 0;

	for (size_t i = 0; i < BUCKETS; i++) {
		uint32_t c = count[i];

		count[i] = pos;
		pos += c;
	}
	for (size_t i = 0; i < n; i++)
		dst[count[digit(src[i], d)]++] = src[i];
}

void fsort_keys(uint32_t *k, size_t n, uint32_t *tmp)
{
	uint32_t count[DIGITS][BUCKETS] = { { 0 } };
	uint32_t *src = k, *dst = tmp;

	if (n < SMALL || n > UINT32_MAX) {
		insertion_sort(k, n);
		return;
	}
	/* All histograms in one read of the keys. */
	for (size_t i = 0; i < n; i++)
		for (unsigned d = 0; d < DIGITS; d++)
			count[d][digit(k[i], d)]++;
	for (unsigned d = 0; d < DIGITS; d++) {
		/* a digit shared by every key orders nothing */
		if (count[d][digit(k[0], d)] == n)
			continue;
		scatter(src, dst, n, d, count[d]);
		uint32_t *t = src;

		src = dst;
		dst = t;
	}
	if (src != k)
		memcpy(k, src, n * sizeof *k);
}

void fsort(float *v, size_t n, float *tmp)
{
	uint32_t *k = (uint32_t *)(void *)v;

	_Static_assert(sizeof(float) == sizeof(uint32_t), "float is 32 bits");
	for (size_t i = 0; i < n; i++)
		k[i] = fsort_key(v[i]);
	fsort_keys(k, n, (uint32_t *)(void *)tmp);
	for (size_t i = 0; i < n; i++)
		v[i] = float_of(k[i]);
}
