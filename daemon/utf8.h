/* UTF-8 validation (prefix utf8_).  Pure, thread-safe. */
#ifndef DRIFTD_UTF8_H
#define DRIFTD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Offset of the first byte of S that breaks RFC 3629 UTF-8 (overlong
 * forms, surrogates, beyond U+10FFFF, truncated sequences), or LEN when
 * all LEN bytes are valid. */
size_t utf8_invalid_at(const unsigned char *s, size_t len);

#endif
