/* Webhook delivery policy (prefix hookpol_): endpoint URLs, which
 * addresses an endpoint may reach (the SSRF guard), Retry-After, and what
 * an attempt's outcome means for the next one.  Pure functions, no I/O,
 * thread-safe.  Times are microseconds.  Errors: 0 or a negative errno. */
#ifndef DRIFTD_HOOKPOL_H
#define DRIFTD_HOOKPOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define HOOKPOL_HOST_MAX 256
#define HOOKPOL_PATH_MAX 2048

struct hookpol_url {
	bool tls;			/* https */
	bool host_is_ip;		/* an IPv4 or IPv6 literal */
	char host[HOOKPOL_HOST_MAX];	/* lowercase; IPv6 without brackets */
	uint16_t port;			/* explicit or 80 / 443 */
	char path[HOOKPOL_PATH_MAX];	/* path and query, "/" at least */
	char authority[HOOKPOL_HOST_MAX + 8]; /* the Host header */
};

/* http[s]://host[:port][/path][?query][#fragment]; the fragment is
 * dropped.  -EINVAL with the reason in why: user info (a@b), bad host or
 * port, control characters, anything over the sizes above. */
int hookpol_parse_url(const char *url, struct hookpol_url *u, char *why,
		      size_t whylen);

enum hookpol_range {
	HOOKPOL_PUBLIC,
	HOOKPOL_LOOPBACK,	/* 127/8, ::1 */
	HOOKPOL_PRIVATE,	/* 10/8, 172.16/12, 192.168/16, 100.64/10,
				 * 198.18/15, fc00::/7 */
	HOOKPOL_LINK_LOCAL,	/* 169.254/16 (cloud metadata), fe80::/10 */
	HOOKPOL_NEVER,		/* unspecified, multicast, broadcast, reserved */
};

/* The range of an AF_INET or AF_INET6 address; IPv4 embedded in IPv6
 * (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) counts as
 * that IPv4 address.  Other families are HOOKPOL_NEVER. */
enum hookpol_range hookpol_classify(const struct sockaddr *sa);
/* "public", "loopback", "private", "link-local", "reserved". */
const char *hookpol_range_name(enum hookpol_range r);
/* Whether a CONF_ALLOW_* mask lets an endpoint connect to range R. */
bool hookpol_allowed(enum hookpol_range r, unsigned allow);

/* A Retry-After value: delay-seconds or an HTTP date (IMF-fixdate),
 * relative to NOW_S (unix seconds); a date in the past is 0.  Capped at
 * 30 days.  -EINVAL when it is neither. */
int hookpol_retry_after(const char *value, int64_t now_s, uint64_t *delay_us);

struct hookpol_retry {
	uint64_t initial_us, max_delay_us, horizon_us;
	unsigned max_attempts;
};

struct hookpol_attempt {
	int http_status;	/* 0 = no response (network error, timeout) */
	bool has_retry_after;	/* a usable Retry-After came with 429 or 503 */
	uint64_t retry_after_us;
	unsigned attempts;	/* made so far, this one included */
	uint64_t elapsed_us;	/* since the first attempt started, until now */
};

enum hookpol_verdict {
	HOOKPOL_DELIVERED,	/* 2xx */
	HOOKPOL_RETRY,		/* try again after delay_us */
	HOOKPOL_DEAD,		/* out of attempts or past the horizon */
	HOOKPOL_GONE,		/* 410: dead, and the endpoint is disabled */
};

struct hookpol_decision {
	enum hookpol_verdict verdict;
	uint64_t delay_us;	/* HOOKPOL_RETRY only */
	const char *why;	/* HOOKPOL_DEAD: which limit ended it */
};

/* Exponential backoff with jitter: retry n (n = attempts) waits a uniform
 * draw from [b/2, b] where b = initial * 2^(n-1), capped at max_delay; a
 * Retry-After asks for at least its delay.  RANDOM is any 64-bit value
 * (it picks the draw).  Only 2xx delivers; 3xx and every other answer
 * retry. */
void hookpol_decide(const struct hookpol_attempt *a, const struct hookpol_retry *r,
		    uint64_t random, struct hookpol_decision *d);

#endif
