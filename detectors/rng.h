/* rng: small deterministic PRNG (xoshiro256** seeded through splitmix64) for
 * reproducible subsampling and permutation tests.
 *
 * The state is an explicit struct owned by the caller: no globals, so separate
 * states may be used from separate threads. These functions cannot fail and
 * return values directly. The sequence for a given (seed, stream) is part of
 * the reproducibility contract: results recorded with a seed can be recomputed. */
#ifndef DRIFTD_RNG_H
#define DRIFTD_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
	uint64_t s[4];
};

/* Seed from (seed, stream). Distinct streams give unrelated sequences for the
 * same seed; stream 0 is the plain splitmix64 seeding of xoshiro256**. */
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);

/* Next 64 uniformly distributed bits. */
uint64_t rng_next(struct rng *r);

/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(struct rng *r);

/* Uniform integer in [0, n) without modulo bias; returns 0 when n == 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

/* Partial Fisher–Yates: afterwards idx[0..k) is a uniformly random ordered
 * selection of k of the len entries (whatever their initial order) and
 * idx[k..len) holds the rest. k > len is treated as k = len. */
void rng_shuffle_prefix(struct rng *r, size_t *idx, size_t len, size_t k);

/* Uniformly random permutation of idx[0..len). */
void rng_shuffle(struct rng *r, size_t *idx, size_t len);

#endif
