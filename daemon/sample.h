/* Sample storage formats (prefix smp_): how reference and window rows are
 * kept in memory.  float32 keeps each value as it came; float16 (IEEE 754
 * binary16) halves the memory at a relative rounding error of at most
 * 2^-11 (about 5e-4) for magnitudes in [6.1e-5, 65504]; smaller ones keep
 * an absolute error of at most 3e-8, larger ones saturate at ±65504.  The
 * detectors always compute on float32: rows are loaded back before a test.
 * Pure functions, thread-safe; F16C instructions are used when the CPU
 * has them, with the same results as the portable code. */
#ifndef DRIFTD_SAMPLE_H
#define DRIFTD_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

enum smp_format { SMP_FLOAT32, SMP_FLOAT16 };

/* Bytes per stored value. */
static inline size_t smp_width(enum smp_format f)
{
	return f == SMP_FLOAT16 ? 2 : 4;
}

/* Stores N finite float32 values of SRC at DST (N × width bytes) in
 * format F: float16 rounds to nearest, ties to even, after clamping to
 * ±65504.  SRC need not be aligned to a float (records' embeddings). */
void smp_store(enum smp_format f, void *dst, const void *src, size_t n);

/* smp_store, and adds each value as stored (rounded, in float16) to
 * SUM[0..N) and to ALSO[0..N) in double, each when not NULL: the column
 * sums of the windows the row counts in (its slice's and "*"'s), kept as
 * rows arrive, equal bit for bit to summing the stored rows in order
 * afterwards. */
void smp_store_sum(enum smp_format f, void *dst, const void *src, size_t n,
		   double *sum, double *also);

/* Loads N values stored in format F at SRC into DST as float32 (exact). */
void smp_load(enum smp_format f, float *dst, const void *src, size_t n);

/* One value each way (the portable code the bulk functions match). */
uint16_t smp_to_half(float v);
float smp_from_half(uint16_t h);

#endif
