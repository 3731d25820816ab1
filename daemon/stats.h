/* Daemon-wide counters (prefix st_), exported on /metrics.  Written and
 * read on the loop thread only, so plain integers suffice. */
#ifndef DRIFTD_STATS_H
#define DRIFTD_STATS_H

#include <stdint.h>

#include "record.h"

struct stats {
	uint64_t records_accepted;
	uint64_t records_rejected[REC_ERR__COUNT];
	uint64_t bytes_received;
	uint64_t connections_accepted;
	uint64_t connections_open;
	uint64_t connections_refused;	/* over max_connections */
	uint64_t windows_closed;
	uint64_t windows_written;	/* handed to the store */
	uint64_t windows_failed;	/* detector error */
	uint64_t windows_dropped;	/* store queue full */
	uint64_t windows_insufficient;	/* recorded as insufficient_data */
	uint64_t windows_drifted;
	uint64_t detector_us_total;	/* summed job run time */
	uint64_t reloads, reload_failures;
};

extern struct stats st;

#endif
