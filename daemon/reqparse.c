/* Parsing of what HTTP clients send: route patterns against paths, and
 * times and limits in query strings.  Pure functions, fuzzed (tests/fuzz). */
#include "reqparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* 9999-12-31T23:59:59Z, the last second RFC 3339 can write. */
#define UNIX_MAX_S INT64_C(253402300799)

int rq_match(const char *pattern, const char *path, char *buf, size_t len,
	     const char **args)
{
	int n = 0;

	while (*pattern && *path) {
		if (*pattern == '{') {
			size_t seg = strcspn(path, "/");

			if (seg == 0 || seg + 1 > len || n == RQ_MAX_ARGS)
				return -1;
			memcpy(buf, path, seg);
			buf[seg] = '\0';
			args[n++] = buf;
			buf += seg + 1;
			len -= seg + 1;
			path += seg;
			pattern = strchr(pattern, '}');
			if (!pattern)
				return -1;
			pattern++;
		} else if (*pattern++ != *path++) {
			return -1;
		}
	}
	return *pattern || *path ? -1 : n;
}


static bool digits(const char **s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*s)++) {
		if (!isdigit((unsigned char)**s))
			return false;
		*v = *v * 10 + (**s - '0');
	}
	return true;
}

/* Fraction digits after a '.', as µs (extra digits truncated). */
static bool fraction(const char **s, int64_t *us)
{
	int64_t scale = 100000;

	*us = 0;
	if (**s != '.')
		return true;
	if (!isdigit((unsigned char)*++*s))
		return false;
	for (; isdigit((unsigned char)**s); (*s)++, scale /= 10)
		*us += (**s - '0') * scale;
	return true;
}

static int parse_unix(const char *s, int64_t *us)
{
	int64_t sec = 0, frac;

	for (; isdigit((unsigned char)*s); s++) {
		sec = sec * 10 + (*s - '0');
		if (sec > UNIX_MAX_S)
			return -EINVAL;
	}
	if (!fraction(&s, &frac) || *s)
		return -EINVAL;
	*us = sec * 1000000 + frac;
	return 0;
}

int rq_parse_time(const char *s, int64_t *us)
{
	struct tm tm = { 0 };
	int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
	int64_t frac, t;

	if (!s || !*s)
		return -EINVAL;
	if (strlen(s) < 20 || s[4] != '-')
		return isdigit((unsigned char)*s) ? parse_unix(s, us) : -EINVAL;
	if (!digits(&s, 4, &Y) || *s++ != '-' || !digits(&s, 2, &M) ||
	    *s++ != '-' || !digits(&s, 2, &D) || (*s != 'T' && *s != 't' && *s != ' ') ||
	    !(s++, digits(&s, 2, &h)) || *s++ != ':' || !digits(&s, 2, &m) ||
	    *s++ != ':' || !digits(&s, 2, &sec) || !fraction(&s, &frac))
		return -EINVAL;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*s || Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 ||
	    m > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
	if (tm.tm_mday != D)	/* timegm normalised Feb 30 into March */
		return -EINVAL;
	*us = t * 1000000 + frac;
	return 0;
}

int rq_parse_limit(const char *s, unsigned *v)
{
	uint64_t n = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		n = n * 10 + (uint64_t)(*s - '0');
		if (n > UINT32_MAX)
			return -EINVAL;
	}
	if (n == 0)
		return -EINVAL;
	*v = (unsigned)n;
	return 0;
}

void rq_format_time(int64_t us, char *buf, size_t len)
{
	time_t sec = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
	long frac = (long)(us - (int64_t)sec * 1000000);
	struct tm tm;
	char day[24];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", day, frac);
}
