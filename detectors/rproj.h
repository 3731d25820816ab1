/* rproj: a seeded random projection of embeddings to fewer dimensions, so
 * a reference can be saved (and tests restored) without its raw vectors.
 *
 * The matrix R is dim × k with entries +1/sqrt(k) or -1/sqrt(k), each sign
 * a fair coin from rng(seed, stream 0x72706a) taken row by row: a
 * Johnson–Lindenstrauss map that keeps squared distances in expectation
 * (E||xR||² = ||x||²).  The same (dim, k, seed) always gives the same R, so
 * a window projected later lines up with a reference projected earlier.
 *
 * Pure: no globals, thread-safe; allocates dim·k floats for the call.
 * Returns 0, -EINVAL (dim or k is 0) or -ENOMEM. */
#ifndef DRIFTD_RPROJ_H
#define DRIFTD_RPROJ_H

#include <stddef.h>
#include <stdint.h>

/* out (n × k) = x (n × dim) · R, row-major float32. */
int rproj_apply(const float *x, size_t n, unsigned dim, unsigned k,
		uint64_t seed, float *out);

#endif
