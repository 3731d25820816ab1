/* rng: xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "rng.h"

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL

/* splitmix64's output function: a bijection on 64-bit words. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
	/* mix64(0) == 0, so stream 0 reproduces the reference seeding. */
	uint64_t counter = seed ^ mix64(stream);

	for (int i = 0; i < 4; i++) {
		counter += GOLDEN_GAMMA;
		r->s[i] = mix64(counter);
	}
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rng_uniform(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Lemire's multiply-and-reject: the high word of x*n is uniform on [0, n)
 * once the low words that would over-represent some values are rejected. */
uint64_t rng_below(struct rng *r, uint64_t n)
{
	if (n == 0)
		return 0;
	unsigned __int128 prod = (unsigned __int128)rng_next(r) * n;
	uint64_t low = (uint64_t)prod;

	if (low < n) {
		uint64_t reject_below = -n % n;

		while (low < reject_below) {
			prod = (unsigned __int128)rng_next(r) * n;
			low = (uint64_t)prod;
		}
	}
	return (uint64_t)(prod >> 64);
}

void rng_shuffle_prefix(struct rng *r, size_t *idx, size_t len, size_t k)
{
	if (k > len)
		k = len;
	for (size_t i = 0; i < k; i++) {
		size_t j = i + (size_t)rng_below(r, len - i);
		size_t tmp = idx[i];

		idx[i] = idx[j];
		idx[j] = tmp;
	}
}

void rng_shuffle(struct rng *r, size_t *idx, size_t len)
{
	rng_shuffle_prefix(r, idx, len, len);
}
