/* fsort: radix sort of floats through sign-folded integer keys. */
#include "fsort.h"

#include <stdbool.h>
#include <string.h>

/* Below this many values insertion sort beats four counting passes. */
#define SMALL 48

/* Integer keys in the order of the floats: negative values have all bits
 * flipped, non-negative ones the sign bit set. */
static uint32_t key_of(float f)
{
	uint32_t u;

	f += 0.0f; /* -0.0 becomes +0.0 */
	memcpy(&u, &f, sizeof u);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

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

/* One stable counting pass on byte `shift/8`; false (and nothing moved)
 * when every key has the same byte there. */
static bool radix_pass(const uint32_t *src, uint32_t *dst, size_t n,
		       unsigned shift)
{
	size_t count[256] = { 0 }, pos = 0;

	for (size_t i = 0; i < n; i++)
		count[(src[i] >> shift) & 0xffu]++;
	if (count[(src[0] >> shift) & 0xffu] == n)
		return false;
	for (size_t b = 0; b < 256; b++) {
		size_t c = count[b];

		count[b] = pos;
		pos += c;
	}
	for (size_t i = 0; i < n; i++)
		dst[count[(src[i] >> shift) & 0xffu]++] = src[i];
	return true;
}

void fsort(float *v, size_t n, float *tmp)
{
	uint32_t *a = (uint32_t *)(void *)v, *b = (uint32_t *)(void *)tmp;

	_Static_assert(sizeof(float) == sizeof(uint32_t), "float is 32 bits");
	for (size_t i = 0; i < n; i++)
		a[i] = key_of(v[i]);
	if (n < SMALL) {
		insertion_sort(a, n);
	} else {
		for (unsigned shift = 0; shift < 32; shift += 8)
			if (radix_pass(a, b, n, shift)) {
				uint32_t *t = a;

				a = b;
				b = t;
			}
		if (a != (uint32_t *)(void *)v)
			memcpy(v, a, n * sizeof *a);
	}
	for (size_t i = 0; i < n; i++)
		v[i] = float_of(((uint32_t *)(void *)v)[i]);
}
