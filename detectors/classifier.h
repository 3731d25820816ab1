/* classifier: domain-classifier drift test (DESIGN §4): can a logistic
 * regression tell window points from reference points?
 *
 * Procedure:
 * 1. every coordinate is standardised with the mean and standard
 *    deviation of the pooled sample (labels unused; a constant coordinate
 *    becomes 0);
 * 2. each sample is split at random (rng_init(seed, CLF_STREAM_SPLIT)):
 *    round(holdout·size) points, at least 1 and at most size - 1, are held
 *    out, the rest train an L2-regularised logistic regression
 *    (window = class 1) by L-BFGS;
 * 3. statistic: the ROC AUC of the model's scores on the held-out points
 *    (Mann–Whitney, ties as half);
 * 4. p-value: (1 + #{b : AUC_b >= AUC}) / (B + 1) over B random
 *    relabellings of the held-out points (rng_init(seed,
 *    CLF_STREAM_PERMUTATION)). Under no drift the held-out labels are
 *    exchangeable given the trained model, so this is an exact
 *    permutation test; it is one-sided (only AUC > 0.5 is drift).
 *
 * Logistic regression objective: (1/N) Σ log(1 + exp(-t_i (w·x_i + b)))
 * + (l2/2)·||w||², t = ±1, intercept b not penalised: sklearn's
 * LogisticRegression with C = 1 / (l2 · N).
 *
 * Conventions: finite float32 row-major input; 0 or a negative errno
 * (-EINVAL bad arguments, -ENOMEM); outputs written only on success; no
 * globals (thread-safe); BLAS on the calling thread. */
#ifndef DRIFTD_CLASSIFIER_H
#define DRIFTD_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#define CLF_DEFAULT_HOLDOUT 0.5
#define CLF_DEFAULT_L2 1.0
#define CLF_DEFAULT_MAX_ITER 100
#define CLF_STREAM_SPLIT 5
#define CLF_STREAM_PERMUTATION 6

/* A zero-initialised struct asks for the defaults. */
struct clf_params {
	double holdout;        /* share held out, in (0, 1); 0 = 0.5 */
	double l2;             /* penalty on standardised weights; 0 = 1 */
	unsigned max_iter;     /* L-BFGS iterations; 0 = 100 */
	unsigned permutations; /* B; 0 = AUC only, p_value = NaN */
	uint64_t seed;
};

struct clf_result {
	double auc;            /* held-out ROC AUC, in [0, 1] */
	double p_value;        /* in [1/(B+1), 1]; NaN when B == 0 */
	unsigned permutations;
	size_t train, test;    /* points used for each step */
	unsigned iterations;   /* L-BFGS iterations taken */
};

/* Reference x (n x d) against window y (m x d); n, m >= 2, d >= 1.
 * Memory: 4·(n + m)·d bytes for the standardised copy plus O(d + n + m). */
int clf_test(const float *x, size_t n, const float *y, size_t m, size_t d,
	     const struct clf_params *p, struct clf_result *out);

/* Peak workspace clf_test allocates for these sizes, in bytes, so that a
 * caller can enforce a memory limit first; -ENOMEM if it overflows. */
int clf_workspace_bytes(size_t n, size_t m, size_t d, size_t *bytes);

/* Fits the logistic regression on a (n x d) with labels t (0 or 1):
 * weights into w[0..d), intercept into *b. Stops after max_iter
 * iterations or when the largest gradient entry is below tol.
 * *iterations (may be NULL) receives the count. */
int clf_fit(const float *a, const unsigned char *t, size_t n, size_t d,
	    double l2, unsigned max_iter, double tol, double *w, double *b,
	    unsigned *iterations);

/* ROC AUC of scores s against labels t (0 or 1), ties counting half;
 * NaN unless both labels occur. */
double clf_auc(const double *s, const unsigned char *t, size_t n);

#endif
