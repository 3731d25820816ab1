/* energy: the energy distance as MMD²_u of the kernel -||a-b|| (kperm). */
#include "energy.h"

#include <errno.h>

#include "kperm.h"

int energy_workspace_bytes(size_t n, size_t m, size_t d,
			   const struct energy_params *p, size_t *bytes)
{
	if (!bytes)
		return -EINVAL;
	return kperm_bytes(n, m, d, p ? p->permutations : 0, bytes);
}

int energy_test(const float *x, size_t n, const float *y, size_t m, size_t d,
		const struct energy_params *p, struct energy_result *out)
{
	const struct energy_params defaults = { 0 };
	struct kperm_work w;
	int err;

	if (!x || !y || !out)
		return -EINVAL;
	if (!p)
		p = &defaults;
	err = kperm_alloc(&w, n, m, d, p->permutations);
	if (err)
		return err;
	kperm_gram(&w, x, y);
	kperm_run(&w, kperm_apply(&w, KPERM_DISTANCE, 0.0), p->permutations,
		  p->seed, ENERGY_STREAM_PERMUTATION, &out->statistic,
		  &out->p_value);
	out->permutations = p->permutations;
	kperm_free(&w);
	return 0;
}
