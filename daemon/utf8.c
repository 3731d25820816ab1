/* RFC 3629 validation, shared by the NDJSON and binary codecs. */
#include "utf8.h"

#include <string.h>

/* 32 and then 8 ASCII bytes at a time, since most text is ASCII (an
 * NDJSON embedding line is kilobytes of digits). */
size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp, min;
	uint64_t w, x[4];

	while (i < len) {
		if (len - i >= 32) {
			memcpy(x, s + i, 32);
			if (!((x[0] | x[1] | x[2] | x[3]) & 0x8080808080808080ULL)) {
				i += 32;
				continue;
			}
		}
		if (len - i >= 8) {
			memcpy(&w, s + i, 8);
			if (!(w & 0x8080808080808080ULL)) {
				i += 8;
				continue;
			}
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xE0) == 0xC0) {
			n = 1, cp = s[i] & 0x1F, min = 0x80;
		} else if ((s[i] & 0xF0) == 0xE0) {
			n = 2, cp = s[i] & 0x0F, min = 0x800;
		} else if ((s[i] & 0xF8) == 0xF0) {
			n = 3, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += n + 1;
	}
	return len;
}
