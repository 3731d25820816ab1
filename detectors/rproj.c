/* rproj: sign matrix from the seed, then one sgemm. */
#include "rproj.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "rng.h"

#define RPROJ_STREAM 0x72706aULL	/* "rpj" */

int rproj_apply(const float *x, size_t n, unsigned dim, unsigned k,
		uint64_t seed, float *out)
{
	float scale, *r;
	struct rng g;
	uint64_t bits = 0;

	if (!dim || !k)
		return -EINVAL;
	if (!n)
		return 0;
	if (!(r = malloc((size_t)dim * k * sizeof(float))))
		return -ENOMEM;
	scale = 1.0f / sqrtf((float)k);
	rng_init(&g, seed, RPROJ_STREAM);
	for (size_t i = 0; i < (size_t)dim * k; i++) {
		if (i % 64 == 0)
			bits = rng_next(&g);
		r[i] = (bits >> (i % 64)) & 1 ? scale : -scale;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n,
		    (blasint)k, (blasint)dim, 1.0f, x, (blasint)dim, r,
		    (blasint)k, 0.0f, out, (blasint)k);
	free(r);
	return 0;
}
