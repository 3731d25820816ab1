/* libFuzzer harness for daemon/hookev.c: any bytes as a slice name (slice
 * labels come from clients) and a test name, in a drift.detected and a
 * stream.alarm event.  The event bodies must stay printable ASCII and
 * valid JSON, and a valid UTF-8 name must come back from the JSON
 * unchanged. */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hookev.h"

static bool has_4byte(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s & 0xF8) == 0xF0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct conf *conf;

static const char conf_text[] =
	"[store]\ndsn = x\n"
	"[model.m]\ndim = 4\nreference.size = 10\nwindow.size = 5\n"
	"detectors = mmd\non_drift = w\n"
	"[webhook.w]\nurl = https://h/\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF),
 * written apart from hookev's decoder so that it can judge it. */
static bool valid_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned c = *s, len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
						   : (c >> 3) == 30 ? 4 : 0;
		unsigned long v = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;

		if (!len)
			return false;
		for (unsigned i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			v = v << 6 | (s[i] & 0x3f);
		}
		if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
		    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return false;
		s += len;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *s = malloc(size + 1);
	struct store_test t = { .test = "mmd", .statistic = (double)NAN, .p_value = 0.5,
				.threshold = (double)INFINITY, .drifted = true };
	struct hookev_slice sl = { .window_id = 1, .start_us = 0, .end_us = 1, .n = 2 };
	struct store_stream_alarm a = { .id = 1, .detector = "adwin", .signal = "score",
					.records_seen = 1, .statistic = 0.5,
					.threshold = (double)NAN, .mean_before = (double)NAN,
					.mean_after = 1e308, .params = "{}" };
	const struct store_event *ev;
	json_object *o, *slices, *name;
	struct hookev_batch *b;
	size_t n;

	if (!conf && conf_load_string(conf_text, "fuzz", &conf, err, sizeof(err)) != 0)
		abort();
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	sl.slice = s;
	t.test = s;
	a.slice = s;
	b = hookev_batch_new(conf, "m", 1700000000000000);
	if (!b || hookev_add(b, HOOKEV_DRIFT, &sl, &t, 1) < 0 ||
	    hookev_add_stream(b, s, 1700000000000000, &a, 1) < 0 ||
	    hookev_take(b, &ev, &n) < 0 || n != 2)
		abort();
	for (size_t i = 0; i < n; i++) {
		for (const char *p = ev[i].body; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
		if (!(o = json_tokener_parse(ev[i].body)))
			abort();
		json_object_put(o);
	}
	if (!(o = json_tokener_parse(ev->body)))
		abort();
	if (!json_object_object_get_ex(o, "data", &slices) ||
	    !json_object_object_get_ex(slices, "slices", &slices) ||
	    !(slices = json_object_array_get_idx(slices, 0)) ||
	    !json_object_object_get_ex(slices, "slice", &name))
		abort();
	/* Valid UTF-8 comes back exactly through the \u escapes.  Only for
	 * the BMP: json-c 0.16 decodes some surrogate pairs (e.g. U+1DB18 as
	 * \ud836\udf18, which hookev writes correctly) to U+FFFD. */
	if (valid_utf8((const unsigned char *)s) && !has_4byte(s) &&
	    strcmp(json_object_get_string(name), s) != 0)
		abort();
	json_object_put(o);
	hookev_batch_free(b);
	free(s);
	return 0;
}
