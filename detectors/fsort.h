/* fsort: ascending sort of float32 arrays for the rank-based detectors
 * (ks, scores, calibration). LSD radix sort on order-preserving integer
 * keys: linear time, stable, no comparisons. Values must not be NaN; -0.0
 * and +0.0 get the same key (they compare equal under IEEE), and fsort
 * writes -0.0 back as +0.0. Pure, no allocation, thread-safe. */
#ifndef DRIFTD_FSORT_H
#define DRIFTD_FSORT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Key of f: keys compare as the floats do. Negative values have all bits
 * flipped, non-negative ones the sign bit set. */
static inline uint32_t fsort_key(float f)
{
	uint32_t u;

	f += 0.0f; /* -0.0 becomes +0.0 */
	memcpy(&u, &f, sizeof u);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Sorts keys k[0..n) in place; tmp is scratch space of n keys. */
void fsort_keys(uint32_t *k, size_t n, uint32_t *tmp);

/* Sorts v[0..n) in place; tmp is scratch space of n floats. */
void fsort(float *v, size_t n, float *tmp);

#endif
