/* libFuzzer harness for the journal form of store requests (store/request.c
 * req_decode): arbitrary bytes are refused or decode to a request whose
 * encoding gives back exactly the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	req_free(r);
	return 0;
}
