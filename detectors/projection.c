/* projection: seeded ±1/√k random projection (one sgemm per sample). */
#include "projection.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "rng.h"

int proj_matrix(size_t d, size_t k, uint64_t seed, float *r)
{
	size_t len;
	struct rng g;
	uint64_t bits = 0;
	float value;

	if (!r || !d || !k || __builtin_mul_overflow(d, k, &len))
		return -EINVAL;
	value = (float)(1.0 / sqrt((double)k));
	rng_init(&g, seed, PROJ_STREAM);
	for (size_t i = 0; i < len; i++) {
		if (i % 64 == 0)
			bits = rng_next(&g);
		r[i] = (bits >> (i % 64)) & 1 ? value : -value;
	}
	return 0;
}

int proj_apply(const float *a, size_t n, size_t d, const float *r, size_t k,
	       float *out)
{
	if (!a || !r || !out || !n || !d || !k || n > INT32_MAX ||
	    d > INT32_MAX || k > INT32_MAX)
		return -EINVAL;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n,
		    (blasint)k, (blasint)d, 1.0f, a, (blasint)d, r, (blasint)k,
		    0.0f, out, (blasint)k);
	return 0;
}

int proj_pair(const float *x, size_t n, const float *y, size_t m, size_t d,
	      size_t k, uint64_t seed, float **xp, float **yp)
{
	size_t rl, xl, yl;
	float *r, *px, *py;
	int err;

	if (!x || !y || !xp || !yp || !n || !m || !d || !k)
		return -EINVAL;
	if (__builtin_mul_overflow(d, k, &rl) ||
	    __builtin_mul_overflow(n, k, &xl) ||
	    __builtin_mul_overflow(m, k, &yl))
		return -ENOMEM;
	r = malloc(rl * sizeof *r);
	px = malloc(xl * sizeof *px);
	py = malloc(yl * sizeof *py);
	err = r && px && py ? proj_matrix(d, k, seed, r) : -ENOMEM;
	if (!err)
		err = proj_apply(x, n, d, r, k, px);
	if (!err)
		err = proj_apply(y, m, d, r, k, py);
	free(r);
	if (err) {
		free(px);
		free(py);
		return err;
	}
	*xp = px;
	*yp = py;
	return 0;
}
