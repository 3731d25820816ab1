/* fsort: ascending sort of float32 arrays for the rank-based detectors
 * (ks, scores, calibration). LSD radix sort on order-preserving integer
 * keys: linear time, stable, no comparisons. Values must not be NaN; -0.0
 * is written back as +0.0 so that the two compare and tie as equal, as
 * they do under IEEE comparison. Pure, no allocation, thread-safe. */
#ifndef DRIFTD_FSORT_H
#define DRIFTD_FSORT_H

#include <stddef.h>
#include <stdint.h>

/* Sorts v[0..n) in place; tmp is scratch space of n floats. */
void fsort(float *v, size_t n, float *tmp);

#endif
