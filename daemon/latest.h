/* The latest window result of every slice of one model (prefix lat_), kept
 * in memory for /metrics: statistic, p-value, threshold and decision per
 * test.  Slices are kept sorted by key.  Loop thread only.  Errors: 0 or a
 * negative errno. */
#ifndef DRIFTD_LATEST_H
#define DRIFTD_LATEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct lat_test {
	char *name;
	double statistic, p_value, threshold;	/* NaN: none */
	bool drifted;
};

struct lat_slice {
	char *key;
	int64_t window_id, end_us;
	unsigned n;
	bool drifted;		/* any test drifted */
	struct lat_test *tests;
	size_t n_tests;
};

struct lat;

struct lat *lat_new(void);
/* Records W as its slice's latest unless that slice already holds a newer
 * window_id.  Copies everything.  -ENOMEM leaves the previous entry. */
int lat_put(struct lat *l, const struct store_window *w);
size_t lat_count(const struct lat *l);
size_t lat_drifted(const struct lat *l);	/* slices whose latest drifted */
/* I < lat_count(); in key order; valid until the next lat_put. */
const struct lat_slice *lat_get(const struct lat *l, size_t i);
void lat_free(struct lat *l);

#endif
