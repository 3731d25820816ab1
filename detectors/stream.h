/* stream: change detectors on per-record signals (DESIGN §4), for alarms
 * between windows: the error indicator of a labelled prediction, or a
 * score.
 *
 * Both detectors are plain state structs updated one value at a time: no
 * allocation (fixed-size state), no globals; one struct must not be
 * updated from two threads at once, separate structs are independent.
 *
 * Page–Hinkley (prefix stream_ph_): with x̄_t the running mean,
 *   up_t = α·up_{t-1} + (x_t - x̄_t - δ),   alarm when up_t - min up > λ
 *   down_t = α·down_{t-1} + (x_t - x̄_t + δ), alarm when max down - down_t > λ
 * (α = 1 is the classic test; α < 1 forgets old deviations). No alarm
 * before min_samples values. After an alarm the state starts over; what
 * the alarm saw stays in `last`, with the change point estimated where
 * the statistic that fired had its extreme (the CUSUM estimate).
 *
 * ADWIN (prefix stream_adwin_; Bifet & Gavaldà 2007, ADWIN2): keeps a
 * window of the recent values in an exponential histogram (at most
 * max_buckets buckets of each size 2^i, so memory is O(max_buckets · log
 * W)) and, every `clock` values, drops the oldest part W0 of the window
 * while some split W = W0·W1, both parts at least min_window long, has
 *   |mean(W0) - mean(W1)| >= sqrt(2/h · σ²_W · ln(2/δ')) + 2/(3h)·ln(2/δ'),
 * h = 1/(1/n0 + 1/n1), δ' = δ/|W|, σ²_W the window's variance. A drop is
 * a detected change; the window then describes the new regime, and
 * `last` keeps the sizes and means of the part dropped and the part kept. */
#ifndef DRIFTD_STREAM_H
#define DRIFTD_STREAM_H

#include <stdbool.h>
#include <stdint.h>

/* ---- Page–Hinkley ---- */

enum stream_dir { STREAM_UP = 1, STREAM_DOWN = 2, STREAM_BOTH = 3 };

/* A zero-initialised struct asks for the defaults shown. */
struct stream_ph_params {
	double delta;          /* tolerated change of the mean; 0 = 0.005 */
	double threshold;      /* λ; 0 = 50 */
	double forget;         /* α in (0, 1]; 0 = 0.9999 */
	unsigned min_samples;  /* 0 = 30 */
	enum stream_dir dir;   /* 0 = STREAM_BOTH */
};

/* What the last alarm saw, before the restart. */
struct stream_ph_alarm {
	enum stream_dir dir;		/* the test that fired */
	uint64_t n;			/* values since the previous restart */
	double statistic;		/* up - min up, or max down - down */
	uint64_t change_at;		/* values before the estimated change */
	double mean_before, mean_after;	/* of either side; NaN when empty */
};

struct stream_ph {
	struct stream_ph_params p;
	uint64_t n;
	double mean, sum;
	double up, up_min, down, down_max;
	/* n and sum when up_min and down_max were reached */
	uint64_t up_min_n, down_max_n;
	double up_min_sum, down_max_sum;
	struct stream_ph_alarm last;
};

/* Returns false for invalid parameters (threshold or delta < 0, forget
 * outside (0, 1], unknown dir); the state is then unusable. */
bool stream_ph_init(struct stream_ph *s, const struct stream_ph_params *p);
/* Adds x; true when this value raised an alarm (the state then restarts).
 * A non-finite x is ignored (false). */
bool stream_ph_update(struct stream_ph *s, double x);

/* ---- ADWIN ---- */

#define STREAM_ADWIN_ROWS 64
#define STREAM_ADWIN_MAX_BUCKETS 16

/* A zero-initialised struct asks for the defaults shown. */
struct stream_adwin_params {
	double delta;         /* confidence; 0 = 0.002 */
	unsigned clock;       /* values between checks; 0 = 32 */
	unsigned max_buckets; /* per size, 2..16; 0 = 5 */
	unsigned min_window;  /* shortest part of a split; 0 = 5 */
};

struct stream_adwin_bucket {
	double total;    /* sum of the values */
	double variance; /* sum of squared deviations from their mean */
};

/* The last change: the values dropped and those kept. */
struct stream_adwin_change {
	uint64_t n_before, n_after;
	double mean_before, mean_after;
};

struct stream_adwin {
	struct stream_adwin_params p;
	/* row i holds buckets of 2^i values, oldest first */
	struct stream_adwin_bucket rows[STREAM_ADWIN_ROWS]
				       [STREAM_ADWIN_MAX_BUCKETS + 1];
	unsigned count[STREAM_ADWIN_ROWS];
	unsigned used_rows;
	uint64_t width;        /* values in the window */
	double total, variance;
	uint64_t since_check;
	uint64_t changes;      /* detections so far */
	struct stream_adwin_change last;
};

/* Returns false for invalid parameters (delta outside (0, 1),
 * max_buckets outside 2..16). */
bool stream_adwin_init(struct stream_adwin *a,
		       const struct stream_adwin_params *p);
/* Adds x; true when the window shrank (a change was detected). A
 * non-finite x is ignored (false). */
bool stream_adwin_update(struct stream_adwin *a, double x);
double stream_adwin_mean(const struct stream_adwin *a);     /* 0 if empty */
double stream_adwin_variance(const struct stream_adwin *a); /* population */
uint64_t stream_adwin_width(const struct stream_adwin *a);

#endif
