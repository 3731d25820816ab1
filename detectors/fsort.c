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

/* One stable scatter on byte b using its precomputed histogram count. */
static void scatter(const uint32_t *src, uint32_t *dst, size_t n, unsigned b,
		    size_t *count)
{
	size_t pos = 0;
	unsigned shift = 8 * b;

	for (size_t i = 0; i < 256; i++) {
		size_t c = count[i];

		count[i] = pos;
		pos += c;
	}
	for (size_t i = 0; i < n; i++)
		dst[count[(src[i] >> shift) & 0xffu]++] = src[i];
}

void fsort_keys(uint32_t *k, size_t n, uint32_t *tmp)
{
	size_t count[4][256] = { { 0 } };
	uint32_t *src = k, *dst = tmp;

	if (n < SMALL) {
		insertion_sort(k, n);
		return;
	}
	/* All four histograms in one read of the keys. */
	for (size_t i = 0; i < n; i++) {
		uint32_t v = k[i];

		count[0][v & 0xffu]++;
		count[1][(v >> 8) & 0xffu]++;
		count[2][(v >> 16) & 0xffu]++;
		count[3][v >> 24]++;
	}
	for (unsigned b = 0; b < 4; b++) {
		/* a byte shared by every key orders nothing */
		if (count[b][(k[0] >> (8 * b)) & 0xffu] == n)
			continue;
		scatter(src, dst, n, b, count[b]);
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
