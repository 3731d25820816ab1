/* hookpol: URL parsing, the SSRF address ranges, Retry-After, and the
 * retry decisions (backoff bounds, horizon, attempts, 410, 3xx). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conf.h"
#include "hookpol.h"

#define SEC UINT64_C(1000000)

static void test_urls(void **state)
{
	struct hookpol_url u;
	char why[256];

	(void)state;
	assert_int_equal(hookpol_parse_url("https://CI.Example.com/hooks/retrain?team=ml#frag",
					   &u, why, sizeof(why)), 0);
	assert_true(u.tls);
	assert_false(u.host_is_ip);
	assert_string_equal(u.host, "ci.example.com");
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/hooks/retrain?team=ml");
	assert_string_equal(u.authority, "ci.example.com");

	assert_int_equal(hookpol_parse_url("http://127.0.0.1:8080", &u, why, sizeof(why)), 0);
	assert_false(u.tls);
	assert_true(u.host_is_ip);
	assert_int_equal(u.port, 8080);
	assert_string_equal(u.path, "/");
	assert_string_equal(u.authority, "127.0.0.1:8080");

	assert_int_equal(hookpol_parse_url("HTTP://[::1]:80?x=1", &u, why, sizeof(why)), 0);
	assert_true(u.host_is_ip);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 80);
	assert_string_equal(u.path, "/?x=1");
	assert_string_equal(u.authority, "[::1]");

	static const char *const bad[] = {
		"ftp://h/", "https://", "https:///x", "https://user:pw@h/",
		"https://h:0/", "https://h:65536/", "https://h:/", "https://h:8a/",
		"https://[::1/", "https://[zz]/", "https://[::1]x/", "https://h h/",
		"https://h/\x01", "https://h/\xc3\xa9", "https://h%2e/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hookpol_parse_url(bad[i], &u, why, sizeof(why)) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(hookpol_parse_url("https://a@h/", &u, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "user information"));
}

static enum hookpol_range range_of(const char *ip)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	if (inet_pton(AF_INET, ip, &in4.sin_addr) == 1)
		return hookpol_classify((struct sockaddr *)&in4);
	assert_int_equal(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
	return hookpol_classify((struct sockaddr *)&in6);
}

static void test_ranges(void **state)
{
	static const struct {
		const char *ip;
		enum hookpol_range r;
	} cases[] = {
		{ "8.8.8.8", HOOKPOL_PUBLIC },
		{ "172.32.0.1", HOOKPOL_PUBLIC },
		{ "100.128.0.1", HOOKPOL_PUBLIC },
		{ "127.0.0.1", HOOKPOL_LOOPBACK },
		{ "127.255.0.9", HOOKPOL_LOOPBACK },
		{ "10.1.2.3", HOOKPOL_PRIVATE },
		{ "172.16.0.1", HOOKPOL_PRIVATE },
		{ "172.31.255.255", HOOKPOL_PRIVATE },
		{ "192.168.1.1", HOOKPOL_PRIVATE },
		{ "100.64.0.1", HOOKPOL_PRIVATE },
		{ "198.19.0.1", HOOKPOL_PRIVATE },
		{ "169.254.169.254", HOOKPOL_LINK_LOCAL },
		{ "0.0.0.0", HOOKPOL_NEVER },
		{ "0.1.2.3", HOOKPOL_NEVER },
		{ "224.0.0.1", HOOKPOL_NEVER },
		{ "255.255.255.255", HOOKPOL_NEVER },
		{ "2001:4860:4860::8888", HOOKPOL_PUBLIC },
		{ "::1", HOOKPOL_LOOPBACK },
		{ "::", HOOKPOL_NEVER },
		{ "fe80::1", HOOKPOL_LINK_LOCAL },
		{ "febf::1", HOOKPOL_LINK_LOCAL },
		{ "fd00::1", HOOKPOL_PRIVATE },
		{ "fc00::1", HOOKPOL_PRIVATE },
		{ "ff02::1", HOOKPOL_NEVER },
		/* IPv4 inside IPv6 is judged as IPv4. */
		{ "::ffff:169.254.169.254", HOOKPOL_LINK_LOCAL },
		{ "::ffff:127.0.0.1", HOOKPOL_LOOPBACK },
		{ "::ffff:8.8.8.8", HOOKPOL_PUBLIC },
		{ "64:ff9b::a9fe:a9fe", HOOKPOL_LINK_LOCAL },
		{ "2002:a9fe:a9fe::1", HOOKPOL_LINK_LOCAL },
		{ "2002:0808:0808::1", HOOKPOL_PUBLIC },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (range_of(cases[i].ip) != cases[i].r)
			fail_msg("%s: range %s, expected %s", cases[i].ip,
				 hookpol_range_name(range_of(cases[i].ip)),
				 hookpol_range_name(cases[i].r));
}

static void test_allowed(void **state)
{
	(void)state;
	assert_true(hookpol_allowed(HOOKPOL_PUBLIC, 0));
	assert_false(hookpol_allowed(HOOKPOL_LOOPBACK, 0));
	assert_false(hookpol_allowed(HOOKPOL_PRIVATE, 0));
	assert_false(hookpol_allowed(HOOKPOL_LINK_LOCAL, 0));
	assert_true(hookpol_allowed(HOOKPOL_LOOPBACK, CONF_ALLOW_LOOPBACK));
	assert_false(hookpol_allowed(HOOKPOL_PRIVATE, CONF_ALLOW_LOOPBACK));
	assert_true(hookpol_allowed(HOOKPOL_PRIVATE, CONF_ALLOW_PRIVATE));
	assert_true(hookpol_allowed(HOOKPOL_LINK_LOCAL, CONF_ALLOW_LINK_LOCAL));
	assert_false(hookpol_allowed(HOOKPOL_NEVER, ~0u));
}

static void test_retry_after(void **state)
{
	uint64_t d = 0;
	const int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	assert_int_equal(hookpol_retry_after("120", now, &d), 0);
	assert_int_equal(d, 120 * SEC);
	assert_int_equal(hookpol_retry_after(" 0 ", now, &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(hookpol_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now, &d), 0);
	assert_int_equal(d, 30 * SEC);
	assert_int_equal(hookpol_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now, &d), 0);
	assert_int_equal(d, 0);
	assert_int_equal(hookpol_retry_after("99999999999999999999999", now, &d), 0);
	assert_int_equal(d, 30 * 86400 * SEC);
	assert_int_equal(hookpol_retry_after("-5", now, &d), -EINVAL);
	assert_int_equal(hookpol_retry_after("1.5", now, &d), -EINVAL);
	assert_int_equal(hookpol_retry_after("soon", now, &d), -EINVAL);
	assert_int_equal(hookpol_retry_after("Sun, 06 Nov 1994 08:50:07 PST", now, &d), -EINVAL);
	assert_int_equal(hookpol_retry_after("", now, &d), -EINVAL);
}

static const struct hookpol_retry policy = {
	.initial_us = 1 * SEC, .max_delay_us = 60 * SEC, .horizon_us = 3600 * SEC,
	.max_attempts = 10,
};

static struct hookpol_decision decide(int status, unsigned attempts, uint64_t elapsed,
				      uint64_t random)
{
	struct hookpol_attempt a = { .http_status = status, .attempts = attempts,
				     .elapsed_us = elapsed };
	struct hookpol_decision d;

	hookpol_decide(&a, &policy, random, &d);
	return d;
}

static void test_outcomes(void **state)
{
	struct hookpol_decision d;

	(void)state;
	assert_int_equal(decide(200, 1, 0, 0).verdict, HOOKPOL_DELIVERED);
	assert_int_equal(decide(204, 9, 0, 0).verdict, HOOKPOL_DELIVERED);
	assert_int_equal(decide(299, 10, 0, 0).verdict, HOOKPOL_DELIVERED);
	d = decide(410, 1, 0, 0);
	assert_int_equal(d.verdict, HOOKPOL_GONE);
	/* Redirects, client and server errors and no answer all retry. */
	assert_int_equal(decide(301, 1, 0, 0).verdict, HOOKPOL_RETRY);
	assert_int_equal(decide(302, 1, 0, 0).verdict, HOOKPOL_RETRY);
	assert_int_equal(decide(400, 1, 0, 0).verdict, HOOKPOL_RETRY);
	assert_int_equal(decide(500, 1, 0, 0).verdict, HOOKPOL_RETRY);
	assert_int_equal(decide(0, 1, 0, 0).verdict, HOOKPOL_RETRY);
	assert_int_equal(decide(199, 1, 0, 0).verdict, HOOKPOL_RETRY);
	d = decide(500, 10, 0, 0);
	assert_int_equal(d.verdict, HOOKPOL_DEAD);
	assert_string_equal(d.why, "max_attempts reached");
	d = decide(500, 2, 3599 * SEC + SEC / 2, 0);
	assert_int_equal(d.verdict, HOOKPOL_DEAD);
	assert_string_equal(d.why, "retry.horizon reached");
}

/* Retry n waits within [b/2, b], b = 1 s * 2^(n-1) capped at 60 s, over
 * the whole range of the random draw. */
static void test_backoff_bounds(void **state)
{
	static const uint64_t draws[] = { 0, 1, 12345, UINT64_MAX / 2, UINT64_MAX };

	(void)state;
	for (unsigned n = 1; n <= 9; n++) {
		uint64_t b = SEC << (n - 1);
		uint64_t lo = UINT64_MAX, hi = 0;

		if (b > 60 * SEC)
			b = 60 * SEC;
		for (size_t i = 0; i < sizeof(draws) / sizeof(draws[0]); i++) {
			struct hookpol_decision d = decide(503, n, 0, draws[i]);

			assert_int_equal(d.verdict, HOOKPOL_RETRY);
			assert_true(d.delay_us >= b / 2 && d.delay_us <= b);
			lo = d.delay_us < lo ? d.delay_us : lo;
			hi = d.delay_us > hi ? d.delay_us : hi;
		}
		assert_int_equal(lo, b / 2);
		assert_true(hi > lo); /* jitter */
	}
}

static void test_retry_after_honoured(void **state)
{
	struct hookpol_attempt a = { .http_status = 429, .attempts = 1,
				     .has_retry_after = true, .retry_after_us = 30 * SEC };
	struct hookpol_decision d;

	(void)state;
	hookpol_decide(&a, &policy, 0, &d);
	assert_int_equal(d.verdict, HOOKPOL_RETRY);
	assert_int_equal(d.delay_us, 30 * SEC);
	/* Only 429 and 503 carry it; a shorter one leaves the backoff. */
	a.http_status = 500;
	hookpol_decide(&a, &policy, 0, &d);
	assert_true(d.delay_us <= SEC);
	a.http_status = 503;
	a.attempts = 7;
	a.retry_after_us = 1 * SEC;
	hookpol_decide(&a, &policy, 0, &d);
	assert_int_equal(d.delay_us, 30 * SEC);
	/* Beyond the horizon: dead now rather than later. */
	a.retry_after_us = 7200 * SEC;
	hookpol_decide(&a, &policy, 0, &d);
	assert_int_equal(d.verdict, HOOKPOL_DEAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_retry_after_honoured),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
