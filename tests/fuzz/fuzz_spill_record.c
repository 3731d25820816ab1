/* libFuzzer harness for the journal form of store requests (store/request.c
 * req_decode): arbitrary bytes are refused or decode to a request whose
 * encoding gives back exactly the same bytes; what a decoded request means
 * for the K-of-M history (req_decision, req_retirement) goes through
 * store/history.c as at start. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void to_history(const struct req *r)
{
	struct hist *h = hist_new();
	const struct store_history *list;
	const char *model, *slice;
	int64_t id;
	bool drifted;
	unsigned alarm_m;
	size_t n;

	if (!h)
		return;
	if (req_decision(r, &model, &slice, &id, &drifted, &alarm_m)) {
		if (!model || !slice || hist_add(h, model, slice, id, drifted, alarm_m) < 0)
			abort();
	} else if (req_retirement(r, &model, &slice)) {
		if (!model)
			abort();
		hist_forget(h, model, slice);
	}
	if (hist_list(h, &list, &n) < 0 || n > 1)
		abort();
	hist_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req *r;
	unsigned char *again;
	size_t len;

	if (req_decode(data, size, &r) != 0)
		return 0;
	if (req_encode(r, &again, &len) == 0) {
		if (len != size || memcmp(again, data, size))
			abort();
		free(again);
	}
	to_history(r);
	req_free(r);
	return 0;
}
