/* libFuzzer harness for daemon/reqparse: the side port's route matching
 * and query-string times and limits.  The input is split at the first
 * NUL: before it a time string (also parsed as a limit), after it a
 * request path matched against every route pattern.  Checks that a parsed
 * time formats and parses back to itself, that a parsed limit is positive
 * and prints back to its digits (leading zeros aside), and that captured
 * segments are non-empty and free of '/'. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reqparse.h"

static const char *const patterns[] = {
	"/", "/metrics", "/v1/models", "/v1/models/{m}/status",
	"/v1/models/{m}/history", "/v1/models/{m}/alarms", "/a/{x}/b/{y}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 2), *path, buf[64], out[40];
	unsigned limit;
	const char *args[RQ_MAX_ARGS];
	int64_t us, back;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = text[size + 1] = '\0';
	path = text + strlen(text) + 1;
	if (path > text + size)
		path = text + size + 1;
	if (rq_parse_time(text, &us) == 0 && us >= 0 &&
	    us < INT64_C(253402300800) * 1000000) {
		rq_format_time(us, out, sizeof(out));
		if (rq_parse_time(out, &back) != 0 || back != us)
			abort();
	}
	if (rq_parse_limit(text, &limit) == 0) {
		snprintf(out, sizeof(out), "%u", limit);
		if (limit == 0 || strcmp(out, text + strspn(text, "0")))
			abort();
	}
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		int n = rq_match(patterns[i], path, buf, sizeof(buf), args);

		for (int k = 0; k < n; k++)
			if (!args[k][0] || strchr(args[k], '/'))
				abort();
	}
	free(text);
	return 0;
}
