/* Parsing of client input on the side port (prefix rq_): route patterns
 * against request paths, and times and limits in query strings.  Pure and
 * thread-safe. */
#ifndef DRIFTD_REQPARSE_H
#define DRIFTD_REQPARSE_H

#include <stddef.h>
#include <stdint.h>

#define RQ_MAX_ARGS 4

/* Matches PATH against PATTERN segment by segment; "{x}" takes one
 * non-empty segment, copied into BUF (ARGS point into it).  Returns the
 * number of arguments, or -1 when PATH does not match or BUF is short. */
int rq_match(const char *pattern, const char *path, char *buf, size_t len,
	     const char **args);

/* RFC 3339 ("2026-11-29T12:00:00.5Z", "...+01:00") or unix seconds
 * ("1795000000", "1795000000.25") to unix µs.  0 or -EINVAL. */
int rq_parse_time(const char *s, int64_t *us);
/* A row limit: decimal digits only, 1 to UINT32_MAX.  0 or -EINVAL. */
int rq_parse_limit(const char *s, unsigned *v);
/* "2026-11-29T12:00:00.000000Z"; BUF of at least 32 bytes. */
void rq_format_time(int64_t us, char *buf, size_t len);

#endif
