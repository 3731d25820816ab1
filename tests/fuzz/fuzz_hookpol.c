/* libFuzzer harness for daemon/hookpol.c: any bytes as an endpoint URL
 * and as a Retry-After header (which comes from the receiver).  Besides
 * the sanitizers it checks what the parsers promise about what they
 * accept. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookpol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_url(const char *s)
{
	struct hookpol_url u;
	char why[256];

	if (hookpol_parse_url(s, &u, why, sizeof(why)) != 0) {
		if (!why[0] || strlen(why) >= sizeof(why))
			abort();
		return;
	}
	if (!u.host[0] || u.port == 0 || u.path[0] != '/' || !u.authority[0])
		abort();
	/* What goes into the request line and Host header is printable. */
	for (const char *p = u.path; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			abort();
	if (strchr(u.authority, '@') || strchr(u.host, '/'))
		abort();
}

static void check_retry_after(const char *s)
{
	uint64_t d = UINT64_MAX;

	if (hookpol_retry_after(s, 1700000000, &d) == 0 &&
	    d > UINT64_C(30) * 86400 * 1000000)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_url(s);
	check_retry_after(s);
	free(s);
	return 0;
}
