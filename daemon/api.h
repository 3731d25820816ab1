/* The JSON API on the side port (prefix api_): GET /v1/models from the
 * engine's memory; /v1/models/{m}/status, /history and /alarms (the
 * streaming detectors' alarms) from PostgreSQL through the store's reader,
 * answered when the read completes so the loop never waits.  /status is
 * two reads: the newest windows, then the last 24 h of streaming alarms
 * per slice.  Handlers are rows of http.c's route table.  Errors
 * are {"error": "..."} with 400, 404, 500, 503 or 504.  Loop thread only.
 *
 * The status page draws a slice's reliability diagram from an optional
 * "calibration" member of its /status entry: {"n_labeled", "ece", "brier",
 * "bins": [{"confidence", "accuracy", "count"}, ...]}; without it the page
 * says "no labels yet". */
#ifndef DRIFTD_API_H
#define DRIFTD_API_H

#include "http.h"

struct api;

struct api *api_new(struct http_srv *h);
/* Cancels the reads still running; their requests go with evhttp. */
void api_free(struct api *a);

void api_models(struct http_srv *h, struct evhttp_request *req,
		const char *const *args);
void api_status(struct http_srv *h, struct evhttp_request *req,
		const char *const *args);
void api_history(struct http_srv *h, struct evhttp_request *req,
		 const char *const *args);
void api_alarms(struct http_srv *h, struct evhttp_request *req,
		const char *const *args);

#endif
