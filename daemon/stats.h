/* Daemon-wide counters (prefix st_), exported on /metrics.  Written and
 * read on the loop thread only, so plain integers suffice. */
#ifndef DRIFTD_STATS_H
#define DRIFTD_STATS_H

#include <stdint.h>

#include "prom.h"
#include "record.h"

#define ST_FRAME_ERRS 16	/* > the largest enum frm_err */
/* HTTP ingest refusals by cause: see http_ingest.c. */
enum st_http_refusal {
	ST_HTTP_AUTH, ST_HTTP_OVERLOADED, ST_HTTP_REFUSALS
};

struct stats {
	uint64_t records_accepted;
	uint64_t records_rejected[REC_ERR__COUNT];
	uint64_t bytes_received;
	uint64_t connections_accepted;
	uint64_t connections_open;
	uint64_t connections_refused;	/* over max_connections */
	uint64_t accept_errors;		/* accept() failed, e.g. EMFILE */
	uint64_t frames_received;	/* binary frames handled */
	uint64_t frames_rejected[ST_FRAME_ERRS];	/* by enum frm_err */
	uint64_t auth_failures;
	uint64_t timeouts_handshake, timeouts_frame, timeouts_idle;
	uint64_t ingest_pauses;		/* connections paused by backpressure */
	uint64_t connections_paused;	/* gauge: paused now */
	uint64_t http_ingest_requests;
	uint64_t http_ingest_refused[ST_HTTP_REFUSALS];
	uint64_t windows_closed;
	uint64_t windows_written;	/* handed to the store */
	uint64_t windows_failed;	/* detector error */
	uint64_t windows_dropped;	/* store queue full */
	uint64_t windows_insufficient;	/* recorded as insufficient_data */
	uint64_t windows_drifted;
	uint64_t detector_us_total;	/* summed job run time */
	uint64_t reloads, reload_failures;
	uint64_t workers_wedged;	/* a job outran job_timeout */
	struct prom_hist detector_seconds;	/* one window's detectors */
	struct prom_hist store_write_seconds;	/* one write statement */
	struct prom_hist store_commit_seconds;	/* window queued -> committed */
	struct prom_hist window_latency_seconds;	/* closed -> committed */
	struct prom_hist store_read_seconds;	/* one JSON API query */
	uint64_t http_responses[6];		/* by status class: [2] = 2xx */
};

extern struct stats st;

#endif
