/* Webhook delivery policy (see hookpol.h). */
#include "hookpol.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "conf.h"

#define RETRY_AFTER_MAX_S (30 * 86400)

/* ---- URLs ---- */

static int bad(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool is_host_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* host[:port] or [v6][:port], n bytes at s. */
static int parse_authority(const char *s, size_t n, struct hookpol_url *u)
{
	const char *host = s, *end = s + n, *colon;
	unsigned char addr[sizeof(struct in6_addr)];
	size_t host_len;
	unsigned long port = 0;

	if (*s == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return -EINVAL;
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon && *colon != ':')
			return -EINVAL;
	} else {
		colon = memchr(s, ':', n);
		host_len = colon ? (size_t)(colon - s) : n;
		for (size_t i = 0; i < host_len; i++)
			if (!is_host_char(s[i]))
				return -EINVAL;
	}
	if (host_len == 0 || host_len >= sizeof(u->host))
		return -EINVAL;
	for (size_t i = 0; i < host_len; i++)
		u->host[i] = (char)tolower((unsigned char)host[i]);
	u->host[host_len] = '\0';
	if (*s == '[' && inet_pton(AF_INET6, u->host, addr) != 1)
		return -EINVAL;
	u->host_is_ip = *s == '[' || inet_pton(AF_INET, u->host, addr) == 1;
	if (colon) {
		if (colon + 1 == end || (size_t)(end - colon - 1) > 5)
			return -EINVAL;
		for (const char *p = colon + 1; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port == 0 || port > 65535)
			return -EINVAL;
	}
	u->port = port ? (uint16_t)port : u->tls ? 443 : 80;
	snprintf(u->authority, sizeof(u->authority), "%s%s%s", *s == '[' ? "[" : "",
		 u->host, *s == '[' ? "]" : "");
	if (port && u->port != (u->tls ? 443 : 80))
		snprintf(u->authority + strlen(u->authority),
			 sizeof(u->authority) - strlen(u->authority), ":%u", u->port);
	return 0;
}

int hookpol_parse_url(const char *url, struct hookpol_url *u, char *why, size_t whylen)
{
	const char *rest, *path;
	size_t auth_len, path_len;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "https://", 8) == 0) {
		u->tls = true;
		rest = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		rest = url + 7;
	} else {
		return bad(why, whylen, "'%s' is not an http:// or https:// URL", url);
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return bad(why, whylen, "'%s' holds a space, control or non-ASCII "
				   "character (percent-encode it)", url);
	auth_len = strcspn(rest, "/?#");
	if (memchr(rest, '@', auth_len))
		return bad(why, whylen, "'%s' holds user information (user@host); "
			   "put credentials in the path or query", url);
	if (parse_authority(rest, auth_len, u) < 0)
		return bad(why, whylen, "'%s' has no valid host[:port]", url);
	path = rest + auth_len;
	path_len = strcspn(path, "#");
	if (path_len + 2 > sizeof(u->path))
		return bad(why, whylen, "'%s' has a path over 2 KiB", url);
	snprintf(u->path, sizeof(u->path), "%s%.*s", *path == '/' ? "" : "/",
		 (int)path_len, path);
	return 0;
}

/* ---- address ranges ---- */

static bool in4(uint32_t a, uint32_t net, unsigned bits)
{
	return (a >> (32 - bits)) == (net >> (32 - bits));
}

static enum hookpol_range classify4(uint32_t a)
{
	if (in4(a, 0x00000000, 8) || in4(a, 0xe0000000, 4) || in4(a, 0xf0000000, 4))
		return HOOKPOL_NEVER; /* "this network", multicast, reserved + broadcast */
	if (in4(a, 0x7f000000, 8))
		return HOOKPOL_LOOPBACK;
	if (in4(a, 0xa9fe0000, 16))
		return HOOKPOL_LINK_LOCAL;
	if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) || in4(a, 0xc0a80000, 16) ||
	    in4(a, 0x64400000, 10) || in4(a, 0xc6120000, 15))
		return HOOKPOL_PRIVATE;
	return HOOKPOL_PUBLIC;
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static enum hookpol_range classify6(const uint8_t *a)
{
	static const uint8_t zero[16], mapped[12] = { [10] = 0xff, [11] = 0xff },
				       nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

	if (memcmp(a, zero, 16) == 0)
		return HOOKPOL_NEVER;
	if (memcmp(a, zero, 15) == 0 && a[15] == 1)
		return HOOKPOL_LOOPBACK;
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return classify4(be32_at(a + 12));
	if (a[0] == 0x20 && a[1] == 0x02)
		return classify4(be32_at(a + 2));
	if (a[0] == 0xff)
		return HOOKPOL_NEVER;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return HOOKPOL_LINK_LOCAL;
	if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
		return HOOKPOL_PRIVATE; /* unique local; deprecated site-local */
	return HOOKPOL_PUBLIC;
}

enum hookpol_range hookpol_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return classify4(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
		return classify6(((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
	return HOOKPOL_NEVER;
}

const char *hookpol_range_name(enum hookpol_range r)
{
	switch (r) {
	case HOOKPOL_PUBLIC:
		return "public";
	case HOOKPOL_LOOPBACK:
		return "loopback";
	case HOOKPOL_PRIVATE:
		return "private";
	case HOOKPOL_LINK_LOCAL:
		return "link-local";
	case HOOKPOL_NEVER:
		break;
	}
	return "reserved";
}

bool hookpol_allowed(enum hookpol_range r, unsigned allow)
{
	switch (r) {
	case HOOKPOL_PUBLIC:
		return true;
	case HOOKPOL_LOOPBACK:
		return allow & CONF_ALLOW_LOOPBACK;
	case HOOKPOL_PRIVATE:
		return allow & CONF_ALLOW_PRIVATE;
	case HOOKPOL_LINK_LOCAL:
		return allow & CONF_ALLOW_LINK_LOCAL;
	case HOOKPOL_NEVER:
		break;
	}
	return false;
}

/* ---- Retry-After ---- */

int hookpol_retry_after(const char *value, int64_t now_s, uint64_t *delay_us)
{
	struct tm tm = { 0 };
	const char *end;
	uint64_t secs = 0;
	int64_t at;

	while (*value == ' ' || *value == '\t')
		value++;
	if (isdigit((unsigned char)*value)) {
		for (end = value; isdigit((unsigned char)*end); end++)
			if (secs <= RETRY_AFTER_MAX_S)
				secs = secs * 10 + (uint64_t)(*end - '0');
		end += strspn(end, " \t");
		if (*end)
			return -EINVAL;
	} else {
		/* strptime's %a and %b follow LC_TIME, which the daemon leaves
		 * at "C": the English names HTTP dates use. */
		end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		if (!end || end[strspn(end, " \t")])
			return -EINVAL;
		at = (int64_t)timegm(&tm);
		secs = at > now_s ? (uint64_t)(at - now_s) : 0;
	}
	if (secs > RETRY_AFTER_MAX_S)
		secs = RETRY_AFTER_MAX_S;
	*delay_us = secs * 1000000;
	return 0;
}

/* ---- outcomes ---- */

static uint64_t backoff(const struct hookpol_retry *r, unsigned attempts, uint64_t random)
{
	uint64_t b = r->initial_us ? r->initial_us : 1;

	for (unsigned i = 1; i < attempts && b < r->max_delay_us; i++)
		b *= 2;
	if (b > r->max_delay_us)
		b = r->max_delay_us;
	return b / 2 + random % (b / 2 + 1);
}

void hookpol_decide(const struct hookpol_attempt *a, const struct hookpol_retry *r,
		    uint64_t random, struct hookpol_decision *d)
{
	int s = a->http_status;

	*d = (struct hookpol_decision){ .verdict = HOOKPOL_RETRY };
	if (s >= 200 && s <= 299) {
		d->verdict = HOOKPOL_DELIVERED;
		return;
	}
	if (s == 410) {
		d->verdict = HOOKPOL_GONE;
		d->why = "410 Gone: endpoint disabled";
		return;
	}
	if (a->attempts >= r->max_attempts) {
		d->verdict = HOOKPOL_DEAD;
		d->why = "max_attempts reached";
		return;
	}
	d->delay_us = backoff(r, a->attempts, random);
	if ((s == 429 || s == 503) && a->has_retry_after && a->retry_after_us > d->delay_us)
		d->delay_us = a->retry_after_us;
	if (a->elapsed_us + d->delay_us > r->horizon_us) {
		d->verdict = HOOKPOL_DEAD;
		d->why = "retry.horizon reached";
		d->delay_us = 0;
	}
}
