/* Webhook delivery on the loop (see hook.h and docs/webhooks.md).
 *
 * One attempt: claim -> resolve (evdns, or the IP literal) -> check the
 * address -> connect to that address -> POST -> verdict -> record.  A
 * deadline timer bounds the whole attempt at the endpoint's timeout.
 * Attempts are freed from a deferred event, never inside an evhttp or
 * evdns callback, since those still use the connection after calling us. */
#include "hook.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "config.h"
#include "hookpol.h"
#include "log.h"
#include "outbox.h"
#include "sign.h"
#include "store.h"

#define MAX_KEYS 8				/* conf: 1..8 secrets */
#define LEASE_MARGIN_US (UINT64_C(5) * 1000000)	/* lease = timeout + this */
#define MIN_POLL_US 50000			/* floor of the claim timer */
#define RESPONSE_MAX_HEADERS (16 * 1024)
#define RESPONSE_MAX_BODY (64 * 1024)
#define EXCERPT_MAX 200				/* response bytes kept in last_error */
#define ERROR_MAX 512

enum result { R_DELIVERED, R_HTTP_ERROR, R_TIMEOUT, R_NETWORK, R_TLS, R_REFUSED, R__COUNT };

static const char *const result_names[R__COUNT] = {
	[R_DELIVERED] = "delivered", [R_HTTP_ERROR] = "http_error",
	[R_TIMEOUT] = "timeout",     [R_NETWORK] = "network",
	[R_TLS] = "tls",	     [R_REFUSED] = "refused",
};

struct ep_stats {
	uint64_t attempts[R__COUNT];
	uint64_t delivered, dead;
	bool disabled;			/* a 410 disabled it (from the database) */
};

struct endpoint {
	char *name, *url_text;
	struct hookpol_url url;
	char setup_error[512];		/* non-empty: every attempt fails with it */
	struct sign_key keys[MAX_KEYS];
	size_t n_keys;
	struct hookpol_retry retry;
	uint64_t timeout_us;
	unsigned allow;
	SSL_CTX *ssl;			/* https only */
	struct ep_stats st;
};

enum phase { A_START, A_RESOLVING, A_SENDING, A_DONE };

struct attempt {
	TAILQ_ENTRY(attempt) link;
	struct hook *h;
	char *id, *endpoint, *type, *body, *url_text;
	size_t body_len;
	unsigned number;		/* this attempt's: attempts before + 1 */
	uint64_t age_us;		/* since the first attempt, at the claim */
	uint64_t claimed_mono_us, started_mono_us;
	int64_t started_us;		/* unix time */
	struct hookpol_url url;
	struct sign_key keys[MAX_KEYS];
	size_t n_keys;
	struct hookpol_retry retry;
	uint64_t timeout_us;
	unsigned allow;
	SSL_CTX *ssl;			/* a reference; NULL for http */
	char setup_error[512];

	enum phase phase;
	struct evdns_getaddrinfo_request *dns;
	struct evhttp_connection *conn;
	struct event *deadline, *reap;
	bool has_req_error;
	enum evhttp_request_error req_error;
	char ip[INET6_ADDRSTRLEN];
	char address[INET6_ADDRSTRLEN + 8];

	enum result result;
	int http_status;
	bool has_retry_after;
	uint64_t retry_after_us;
	char error[ERROR_MAX];
};

TAILQ_HEAD(attempt_list, attempt);

struct hook {
	struct event_base *base;
	const struct conf *conf;
	struct outbox *outbox;
	struct evdns_base *dns;
	struct endpoint *eps;
	size_t n_eps;
	struct attempt_list attempts;	/* in flight, then until reaped */
	size_t in_flight;
	struct event *timer, *kick;
	uint64_t timer_due_mono_us;	/* when the armed timer fires */
	bool started, stopped, claiming, more_due;
	unsigned claim_limit;
	uint64_t rng;
	uint64_t events_queued, events_suppressed, records_dropped;
};

static void try_claim(struct hook *h);

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval tv_of(uint64_t us)
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000),
			      .tv_usec = (suseconds_t)(us % 1000000) };
	return tv;
}

/* Jitter only needs spreading, not secrecy. */
static uint64_t next_random(struct hook *h)
{
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return h->rng;
}

/* ---- endpoints ---- */

static void openssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown OpenSSL error");
	ERR_clear_error();
}

static SSL_CTX *ssl_ctx_new(const struct conf_webhook *w, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char err[256];
	int ok;

	if (!ctx) {
		openssl_error(err, sizeof(err));
		snprintf(why, len, "cannot create a TLS context: %.200s", err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = w->ca_file ? SSL_CTX_load_verify_locations(ctx, w->ca_file, NULL)
			: SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		openssl_error(err, sizeof(err));
		snprintf(why, len, "cannot load %.200s: %.200s",
			 w->ca_file ? w->ca_file : "the system's CA certificates", err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Problems the config check cannot see (URL details, CA files) do not stop
 * the daemon: they become the error of every attempt, visible in SQL. */
static int endpoint_init(struct endpoint *ep, const struct conf_webhook *w)
{
	ep->name = strdup(w->name);
	ep->url_text = strdup(w->url);
	if (!ep->name || !ep->url_text)
		return -ENOMEM;
	ep->retry = (struct hookpol_retry){
		.initial_us = w->retry_initial_us,
		.max_delay_us = w->retry_max_delay_us,
		.horizon_us = w->retry_horizon_us,
		.max_attempts = w->max_attempts,
	};
	ep->timeout_us = w->timeout_us;
	ep->allow = w->allow_addresses;
	for (size_t i = 0; i < w->n_secrets && i < MAX_KEYS; i++)
		if (sign_key_decode(w->secrets[i], &ep->keys[ep->n_keys++]) < 0)
			snprintf(ep->setup_error, sizeof(ep->setup_error),
				 "secret %zu cannot be decoded", i + 1);
	if (hookpol_parse_url(w->url, &ep->url, ep->setup_error, sizeof(ep->setup_error)) == 0 &&
	    ep->url.tls)
		ep->ssl = ssl_ctx_new(w, ep->setup_error, sizeof(ep->setup_error));
	if (ep->setup_error[0])
		log_err("webhook %s: %s; its deliveries fail until this is fixed",
			ep->name, ep->setup_error);
	return 0;
}

static void endpoint_clear(struct endpoint *ep)
{
	free(ep->name);
	free(ep->url_text);
	SSL_CTX_free(ep->ssl);
	OPENSSL_cleanse(ep->keys, sizeof(ep->keys));
}

static void free_endpoints(struct endpoint *eps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		endpoint_clear(&eps[i]);
	free(eps);
}

static struct endpoint *find_ep(const struct hook *h, const char *name)
{
	for (size_t i = 0; i < h->n_eps; i++)
		if (strcmp(h->eps[i].name, name) == 0)
			return &h->eps[i];
	return NULL;
}

int hook_reconfigure(struct hook *h, const struct conf *c)
{
	struct endpoint *eps = c->n_webhooks ? calloc(c->n_webhooks, sizeof(*eps)) : NULL;
	const struct endpoint *old;

	/* The endpoints below are copies; C itself is adopted in any case,
	 * as the caller frees the old one. */
	h->conf = c;
	if (c->n_webhooks && !eps)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_webhooks; i++) {
		if (endpoint_init(&eps[i], &c->webhooks[i]) < 0) {
			free_endpoints(eps, c->n_webhooks);
			return -ENOMEM;
		}
		/* Counters go on under the same name. */
		if ((old = find_ep(h, eps[i].name)))
			eps[i].st = old->st;
	}
	free_endpoints(h->eps, h->n_eps);
	h->eps = eps;
	h->n_eps = c->n_webhooks;
	if (h->started && !h->stopped && h->n_eps) {
		outbox_start(h->outbox);
		event_active(h->kick, 0, 0);
	}
	return 0;
}

/* ---- the claim cycle ---- */

static void arm(struct hook *h, uint64_t us)
{
	struct timeval tv;

	if (h->stopped)
		return;
	us = us < MIN_POLL_US ? MIN_POLL_US : us;
	tv = tv_of(us);
	h->timer_due_mono_us = mono_us() + us;
	evtimer_add(h->timer, &tv);
}

/* Claims again within US at the latest (a retry recorded just now is due
 * then), without delaying a claim planned earlier. */
static void arm_at_most(struct hook *h, uint64_t us)
{
	if (!evtimer_pending(h->timer, NULL) || mono_us() + us < h->timer_due_mono_us)
		arm(h, us);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	try_claim(arg);
}

static void start_attempt(struct hook *h, struct endpoint *ep, const struct outbox_row *row);

static void on_claim(void *arg, const struct outbox_claim *c)
{
	struct hook *h = arg;
	uint64_t delay = h->conf->webhook_poll_us;
	struct endpoint *ep;

	h->claiming = false;
	if (!c) {
		arm_at_most(h, delay);
		return;
	}
	for (size_t i = 0; i < h->n_eps; i++) {
		bool off = false;

		for (size_t k = 0; k < c->n_disabled; k++)
			off |= strcmp(c->disabled[k], h->eps[i].name) == 0;
		h->eps[i].st.disabled = off;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (!(ep = find_ep(h, c->rows[i].endpoint))) {
			log_warning("webhook %s: no longer configured; %s waits for its "
				    "lease to end", c->rows[i].endpoint, c->rows[i].id);
			continue;
		}
		start_attempt(h, ep, &c->rows[i]);
	}
	h->more_due = c->n >= h->claim_limit;
	if (c->next_due_us >= 0 && (uint64_t)c->next_due_us < delay)
		delay = (uint64_t)c->next_due_us;
	/* A retry recorded while this claim ran may be due sooner. */
	arm_at_most(h, delay);
	if (h->more_due)
		try_claim(h);
}

static uint64_t lease_us(const struct hook *h)
{
	uint64_t longest = 0;

	for (size_t i = 0; i < h->n_eps; i++)
		if (h->eps[i].timeout_us > longest)
			longest = h->eps[i].timeout_us;
	return longest + LEASE_MARGIN_US;
}

static void try_claim(struct hook *h)
{
	const char **names;
	unsigned limit;
	int rc;

	if (!h->started || h->stopped || h->claiming || h->n_eps == 0 ||
	    h->in_flight >= h->conf->webhook_concurrency)
		return;
	limit = h->conf->webhook_concurrency - (unsigned)h->in_flight;
	if (!(names = calloc(h->n_eps, sizeof(*names)))) {
		arm(h, h->conf->webhook_poll_us);
		return;
	}
	for (size_t i = 0; i < h->n_eps; i++)
		names[i] = h->eps[i].name;
	rc = outbox_claim(h->outbox, names, h->n_eps, limit, lease_us(h), on_claim, h);
	free(names);
	if (rc == 0) {
		h->claiming = true;
		h->claim_limit = limit;
		return;
	}
	if (rc != -ENOTCONN)
		log_err("webhooks: cannot claim outbox rows: %s", strerror(-rc));
	arm(h, h->conf->webhook_poll_us);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	try_claim(arg);
}

/* ---- finishing an attempt ---- */

static void attempt_free(struct attempt *a)
{
	if (a->conn)
		evhttp_connection_free(a->conn);
	if (a->deadline)
		event_free(a->deadline);
	if (a->reap)
		event_free(a->reap);
	SSL_CTX_free(a->ssl);
	OPENSSL_cleanse(a->keys, sizeof(a->keys));
	free(a->id);
	free(a->endpoint);
	free(a->type);
	free(a->body);
	free(a->url_text);
	free(a);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;

	TAILQ_REMOVE(&a->h->attempts, a, link);
	attempt_free(a);
}

static void log_outcome(const struct attempt *a, const struct hookpol_decision *d,
			uint64_t duration_us)
{
	switch (d->verdict) {
	case HOOKPOL_DELIVERED:
		log_info("webhook %s: delivered %s (%s) on attempt %u, HTTP %d in %.0f ms",
			 a->endpoint, a->id, a->type, a->number, a->http_status,
			 (double)duration_us / 1000.0);
		return;
	case HOOKPOL_RETRY:
		log_warning("webhook %s: %s attempt %u failed: %s; retrying in %.1f s",
			    a->endpoint, a->id, a->number, a->error,
			    (double)d->delay_us / 1e6);
		return;
	case HOOKPOL_DEAD:
		log_err("webhook %s: %s failed %u times: %s", a->endpoint, a->id,
			a->number, a->error);
		return;
	case HOOKPOL_GONE:
		log_err("webhook %s: the receiver answered 410 Gone: endpoint disabled; "
			"its deliveries wait for `driftctl webhooks enable %s`",
			a->endpoint, a->endpoint);
		return;
	}
}

static const char *status_of(enum hookpol_verdict v)
{
	switch (v) {
	case HOOKPOL_DELIVERED:
		return "delivered";
	case HOOKPOL_RETRY:
		return "retrying";
	case HOOKPOL_DEAD:
	case HOOKPOL_GONE:
		break;
	}
	return "dead";
}

static void count(struct hook *h, const struct attempt *a, enum hookpol_verdict v)
{
	struct endpoint *ep = find_ep(h, a->endpoint);

	if (!ep)
		return;
	ep->st.attempts[a->result]++;
	if (v == HOOKPOL_DELIVERED)
		ep->st.delivered++;
	else if (v != HOOKPOL_RETRY)
		ep->st.dead++;
	if (v == HOOKPOL_GONE)
		ep->st.disabled = true;
}

/* Decides, records and schedules the free.  Every path of an attempt ends
 * here exactly once. */
static void complete(struct attempt *a)
{
	struct hook *h = a->h;
	uint64_t now = mono_us(), duration = now - a->started_mono_us;
	struct hookpol_attempt pa = {
		.http_status = a->http_status,
		.has_retry_after = a->has_retry_after,
		.retry_after_us = a->retry_after_us,
		.attempts = a->number,
		.elapsed_us = a->age_us + (now - a->claimed_mono_us),
	};
	struct hookpol_decision d;
	struct outbox_attempt oa;
	struct evdns_getaddrinfo_request *dns = a->dns;
	int rc;

	a->phase = A_DONE;
	evtimer_del(a->deadline);
	/* evdns calls back even after a cancel, later: on_resolved frees the
	 * attempt then. */
	if (dns)
		evdns_getaddrinfo_cancel(dns);
	hookpol_decide(&pa, &a->retry, next_random(h), &d);
	if (d.verdict == HOOKPOL_GONE)
		snprintf(a->error, sizeof(a->error), "%s", d.why);
	else if (d.verdict == HOOKPOL_DEAD)
		snprintf(a->error + strlen(a->error), sizeof(a->error) - strlen(a->error),
			 " (dead: %s)", d.why);
	oa = (struct outbox_attempt){
		.id = a->id,
		.attempt = a->number,
		.status = status_of(d.verdict),
		.http_status = a->http_status,
		.error = d.verdict == HOOKPOL_DELIVERED ? NULL : a->error,
		.started_us = a->started_us,
		.duration_us = duration,
		.retry_in_us = d.delay_us,
		.address = a->address[0] ? a->address : NULL,
		.disable_endpoint = d.verdict == HOOKPOL_GONE ? a->endpoint : NULL,
		.disable_url = a->url_text,
	};
	if ((rc = outbox_record(h->outbox, &oa)) < 0) {
		h->records_dropped++;
		log_err("webhook %s: cannot record attempt %u of %s (%s); it is sent "
			"again when its lease ends", a->endpoint, a->number, a->id,
			strerror(-rc));
	}
	count(h, a, d.verdict);
	log_outcome(a, &d, duration);
	if (d.verdict == HOOKPOL_RETRY)
		arm_at_most(h, d.delay_us);
	h->in_flight--;
	if (!dns)
		event_active(a->reap, 0, 0);
	if (h->more_due)
		event_active(h->kick, 0, 0);
}

static void fail(struct attempt *a, enum result r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct attempt *a, enum result r, const char *fmt, ...)
{
	va_list ap;

	a->result = r;
	va_start(ap, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, ap);
	va_end(ap);
	complete(a);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;
	unsigned long long ms = (unsigned long long)(a->timeout_us / 1000);

	if (a->phase == A_SENDING) {
		/* Freed here, outside any evhttp callback: the request goes
		 * with it, without calling us back. */
		evhttp_connection_free(a->conn);
		a->conn = NULL;
		fail(a, R_TIMEOUT, "timed out after %llu ms without a complete response "
		     "from %s", ms, a->address);
	} else {
		fail(a, R_TIMEOUT, "timed out after %llu ms resolving %s", ms, a->url.host);
	}
}

/* ---- the HTTP exchange ---- */

/* Why a TLS connection failed, or "" when TLS has nothing to say. */
static void tls_detail(struct attempt *a, char *buf, size_t len)
{
	struct bufferevent *bev = a->conn ? evhttp_connection_get_bufferevent(a->conn) : NULL;
	SSL *ssl = bev && a->ssl ? bufferevent_openssl_get_ssl(bev) : NULL;
	unsigned long e = bev && a->ssl ? bufferevent_get_openssl_error(bev) : 0;
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	buf[0] = '\0';
	if (vr != X509_V_OK)
		snprintf(buf, len, "TLS: certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (e)
		ERR_error_string_n(e, buf, len);
}

static void network_failure(struct attempt *a, bool connected)
{
	static const char *const what[] = {
		[EVREQ_HTTP_TIMEOUT] = "timed out waiting for the receiver",
		[EVREQ_HTTP_EOF] = "connection closed before a complete response",
		[EVREQ_HTTP_INVALID_HEADER] = "malformed response",
		[EVREQ_HTTP_BUFFER_ERROR] = "network error",
		[EVREQ_HTTP_REQUEST_CANCEL] = "request cancelled",
		[EVREQ_HTTP_DATA_TOO_LONG] = "response headers or body over the size limit",
	};
	char tls[256];

	tls_detail(a, tls, sizeof(tls));
	if (tls[0])
		fail(a, R_TLS, "%s (%s)", tls, a->address);
	else if (!connected)
		fail(a, R_NETWORK, "could not connect to %s", a->address);
	else if (a->req_error == EVREQ_HTTP_TIMEOUT)
		fail(a, R_TIMEOUT, "%s (%s)", what[EVREQ_HTTP_TIMEOUT], a->address);
	else
		fail(a, R_NETWORK, "%s (%s)",
		     (unsigned)a->req_error < sizeof(what) / sizeof(what[0]) &&
				     what[a->req_error] ? what[a->req_error] : "network error",
		     a->address);
}

/* Printable ASCII of the first bytes of the response body. */
static void excerpt(struct evhttp_request *req, char *buf, size_t len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	ev_ssize_t n = evbuffer_copyout(in, buf, len - 1);

	n = n > 0 ? n : 0;
	for (ev_ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < ' ' || (unsigned char)buf[i] > '~')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

static void http_failure(struct attempt *a, struct evhttp_request *req, int code)
{
	const struct evkeyvalq *hdr = evhttp_request_get_input_headers(req);
	const char *line = evhttp_request_get_response_code_line(req);
	const char *location = evhttp_find_header(hdr, "Location");
	const char *retry_after = evhttp_find_header(hdr, "Retry-After");
	char body[EXCERPT_MAX + 1], extra[ERROR_MAX / 2] = "";

	a->http_status = code;
	if (code >= 300 && code < 400)
		snprintf(extra, sizeof(extra), "; redirects are not followed (Location: %.200s)",
			 location ? location : "none");
	if ((code == 429 || code == 503) && retry_after &&
	    hookpol_retry_after(retry_after, wall_us() / 1000000, &a->retry_after_us) == 0) {
		a->has_retry_after = true;
		snprintf(extra, sizeof(extra), "; Retry-After: %.64s", retry_after);
	}
	excerpt(req, body, sizeof(body));
	fail(a, R_HTTP_ERROR, "HTTP %d %.64s%s%s%s", code, line ? line : "", extra,
	     body[0] ? ": " : "", body);
}

static void on_response(struct evhttp_request *req, void *arg)
{
	struct attempt *a = arg;
	int code;

	if (a->phase != A_SENDING)
		return;
	if (!req) {
		network_failure(a, true);
		return;
	}
	/* Code 0 with a request: the connection never came up. */
	code = evhttp_request_get_response_code(req);
	if (code == 0) {
		network_failure(a, false);
	} else if (code >= 200 && code <= 299) {
		a->http_status = code;
		a->result = R_DELIVERED;
		complete(a);
	} else {
		http_failure(a, req, code);
	}
}

static void on_request_error(enum evhttp_request_error err, void *arg)
{
	struct attempt *a = arg;

	a->has_req_error = true;
	a->req_error = err;
}

/* The TLS session verifies the certificate chain and that it names the
 * URL's host (DNS name or IP address), and sends SNI for names. */
static struct bufferevent *tls_bufferevent(struct attempt *a)
{
	SSL *ssl = SSL_new(a->ssl);
	struct bufferevent *bev;
	int ok;

	if (!ssl)
		return NULL;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (a->url.host_is_ip)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), a->url.host);
	else
		ok = SSL_set1_host(ssl, a->url.host) && SSL_set_tlsext_host_name(ssl, a->url.host);
	if (ok != 1) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(a->h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	/* Receivers often close without close_notify after the response. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int add_headers(struct attempt *a, struct evhttp_request *req)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char sig[MAX_KEYS * (SIGN_V1_LEN + 1)], ts[24];
	int64_t now_s = wall_us() / 1000000;

	if (sign_header(a->keys, a->n_keys, a->id, now_s, a->body, a->body_len, sig,
			sizeof(sig)) < 0)
		return -EIO;
	snprintf(ts, sizeof(ts), "%" PRId64, now_s);
	if (evhttp_add_header(out, "Host", a->url.authority) < 0 ||
	    evhttp_add_header(out, "User-Agent", "driftd/" DRIFTD_VERSION) < 0 ||
	    evhttp_add_header(out, "Content-Type", "application/json") < 0 ||
	    evhttp_add_header(out, "Connection", "close") < 0 ||
	    evhttp_add_header(out, "webhook-id", a->id) < 0 ||
	    evhttp_add_header(out, "webhook-timestamp", ts) < 0 ||
	    evhttp_add_header(out, "webhook-signature", sig) < 0 ||
	    evbuffer_add(evhttp_request_get_output_buffer(req), a->body, a->body_len) < 0)
		return -ENOMEM;
	return 0;
}

static void send_request(struct attempt *a)
{
	struct timeval io = tv_of(a->timeout_us + 1000000);
	struct bufferevent *bev = NULL;
	struct evhttp_request *req;

	if (a->ssl && !(bev = tls_bufferevent(a))) {
		fail(a, R_TLS, "cannot set up TLS for %s", a->url.host);
		return;
	}
	/* The IP literal: evdns answers it at once, with no lookup, so the
	 * connection goes to the address that was checked. */
	a->conn = evhttp_connection_base_bufferevent_new(a->h->base, a->h->dns, bev, a->ip,
							 a->url.port);
	if (!a->conn) {
		if (bev)
			bufferevent_free(bev);
		fail(a, R_NETWORK, "out of memory");
		return;
	}
	/* The deadline timer is the attempt's limit; evhttp's own, a little
	 * later, only backs it up. */
	evhttp_connection_set_timeout_tv(a->conn, &io);
	evhttp_connection_set_retries(a->conn, 0);
	evhttp_connection_set_max_headers_size(a->conn, RESPONSE_MAX_HEADERS);
	evhttp_connection_set_max_body_size(a->conn, RESPONSE_MAX_BODY);
	if (!(req = evhttp_request_new(on_response, a))) {
		fail(a, R_NETWORK, "out of memory");
		return;
	}
	evhttp_request_set_error_cb(req, on_request_error);
	if (add_headers(a, req) < 0) {
		evhttp_request_free(req);
		fail(a, R_NETWORK, "cannot sign or build the request");
		return;
	}
	a->phase = A_SENDING;
	/* A connection refused at once calls on_response from in here. */
	if (evhttp_make_request(a->conn, req, EVHTTP_REQ_POST, a->url.path) != 0 &&
	    a->phase == A_SENDING)
		fail(a, R_NETWORK, "cannot start the request to %s", a->address);
}

/* The SSRF guard: the address must be in a range the endpoint may reach;
 * it is then the only one used. */
static void connect_to(struct attempt *a, const struct sockaddr *sa)
{
	enum hookpol_range r = hookpol_classify(sa);
	const void *addr = sa->sa_family == AF_INET6
				   ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
				   : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	inet_ntop(sa->sa_family, addr, a->ip, sizeof(a->ip));
	snprintf(a->address, sizeof(a->address), sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 a->ip, a->url.port);
	if (!hookpol_allowed(r, a->allow)) {
		fail(a, R_REFUSED, "refused: %s is a %s address, which allow_addresses does "
		     "not permit", a->ip, hookpol_range_name(r));
		return;
	}
	send_request(a);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct attempt *a = arg;
	const struct evutil_addrinfo *ai, *pick = NULL;
	char seen[256] = "", ip[INET6_ADDRSTRLEN];
	size_t used = 0;

	a->dns = NULL;
	if (a->phase != A_RESOLVING) {
		/* Cancelled by the deadline: the attempt waited for this. */
		if (res)
			evutil_freeaddrinfo(res);
		event_active(a->reap, 0, 0);
		return;
	}
	if (result) {
		fail(a, R_NETWORK, "cannot resolve %s: %s", a->url.host,
		     evutil_gai_strerror(result));
		return;
	}
	for (ai = res; ai && !pick; ai = ai->ai_next) {
		if (hookpol_allowed(hookpol_classify(ai->ai_addr), a->allow)) {
			pick = ai;
			break;
		}
		inet_ntop(ai->ai_family, ai->ai_family == AF_INET6
			  ? (const void *)&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr
			  : (const void *)&((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr,
			  ip, sizeof(ip));
		used += (size_t)snprintf(seen + used, used < sizeof(seen) ? sizeof(seen) - used : 0,
					 "%s%s (%s)", used ? ", " : "", ip,
					 hookpol_range_name(hookpol_classify(ai->ai_addr)));
	}
	if (pick)
		connect_to(a, pick->ai_addr);
	else
		fail(a, R_REFUSED, "refused: %s resolves only to addresses allow_addresses "
		     "does not permit: %s", a->url.host, seen);
	evutil_freeaddrinfo(res);
}

static void resolve(struct attempt *a)
{
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_protocol = IPPROTO_TCP };
	struct evdns_getaddrinfo_request *req;

	a->phase = A_RESOLVING;
	req = evdns_getaddrinfo(a->h->dns, a->url.host, NULL, &hints, on_resolved, a);
	/* NULL: answered at once, on_resolved already ran. */
	if (req && a->phase == A_RESOLVING)
		a->dns = req;
}

static void begin(struct attempt *a)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct timeval tv = tv_of(a->timeout_us);

	a->started_us = wall_us();
	a->started_mono_us = mono_us();
	/* The deadline counts from now, not from the loop's cached time. */
	event_base_update_cache_time(a->h->base);
	evtimer_add(a->deadline, &tv);
	if (a->setup_error[0])
		fail(a, a->url.tls ? R_TLS : R_NETWORK, "%s", a->setup_error);
	else if (!a->url.host_is_ip)
		resolve(a);
	else if (inet_pton(AF_INET, a->url.host, &in4.sin_addr) == 1)
		connect_to(a, (struct sockaddr *)&in4);
	else if (inet_pton(AF_INET6, a->url.host, &in6.sin6_addr) == 1)
		connect_to(a, (struct sockaddr *)&in6);
	else
		fail(a, R_NETWORK, "bad address %s", a->url.host);
}

static void start_attempt(struct hook *h, struct endpoint *ep, const struct outbox_row *row)
{
	struct attempt *a = calloc(1, sizeof(*a));

	if (a) {
		a->h = h;
		a->id = strdup(row->id);
		a->endpoint = strdup(row->endpoint);
		a->type = strdup(row->type);
		a->body = strdup(row->body);
		a->url_text = strdup(ep->url_text);
		a->deadline = evtimer_new(h->base, on_deadline, a);
		a->reap = event_new(h->base, -1, 0, on_reap, a);
	}
	if (!a || !a->id || !a->endpoint || !a->type || !a->body || !a->url_text ||
	    !a->deadline || !a->reap) {
		log_err("webhook %s: out of memory for %s; it is sent again when its "
			"lease ends", ep->name, row->id);
		if (a)
			attempt_free(a);
		return;
	}
	a->body_len = strlen(a->body);
	a->number = row->attempts + 1;
	a->age_us = row->age_us;
	a->claimed_mono_us = mono_us();
	a->url = ep->url;
	memcpy(a->keys, ep->keys, sizeof(a->keys));
	a->n_keys = ep->n_keys;
	a->retry = ep->retry;
	a->timeout_us = ep->timeout_us;
	a->allow = ep->allow;
	snprintf(a->setup_error, sizeof(a->setup_error), "%s", ep->setup_error);
	if (ep->ssl && SSL_CTX_up_ref(ep->ssl) == 1)
		a->ssl = ep->ssl;
	else if (ep->ssl)
		snprintf(a->setup_error, sizeof(a->setup_error), "cannot reference the TLS context");
	TAILQ_INSERT_TAIL(&h->attempts, a, link);
	h->in_flight++;
	begin(a);
}

/* ---- the module ---- */

static void on_outbox_log(void *arg, int level, const char *msg)
{
	log_msg((enum log_level)level, "webhooks: %s", msg);
}

static void on_outbox_up(void *arg)
{
	struct hook *h = arg;

	if (!h->stopped)
		event_active(h->kick, 0, 0);
}

static struct evdns_base *dns_new(struct event_base *base)
{
	struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
							       EVDNS_BASE_DISABLE_WHEN_INACTIVE);

	if (dns)
		return dns;
	log_warning("webhooks: cannot read /etc/resolv.conf; endpoint names resolve "
		    "through /etc/hosts only");
	dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (dns && evdns_base_load_hosts(dns, "/etc/hosts") < 0)
		evdns_base_load_hosts(dns, NULL);
	return dns;
}

struct hook *hook_new(struct event_base *base, const struct conf *c)
{
	struct hook *h = calloc(1, sizeof(*h));
	struct outbox_opts oo = { .query_timeout_us = c->query_timeout_us,
				  .log = on_outbox_log, .up = on_outbox_up };

	if (!h)
		return NULL;
	h->base = base;
	h->conf = c;
	TAILQ_INIT(&h->attempts);
	h->rng = ((uint64_t)wall_us() ^ (uint64_t)(uintptr_t)h) | 1;
	h->dns = dns_new(base);
	h->outbox = outbox_new(base, c->dsn, &oo, h);
	h->timer = evtimer_new(base, on_timer, h);
	h->kick = event_new(base, -1, 0, on_kick, h);
	if (!h->dns || !h->outbox || !h->timer || !h->kick || hook_reconfigure(h, c) < 0) {
		hook_free(h);
		return NULL;
	}
	return h;
}

void hook_start(struct hook *h)
{
	if (h->started)
		return;
	h->started = true;
	/* Without endpoints there is nothing to claim: no connection. */
	if (h->n_eps)
		outbox_start(h->outbox);
}

void hook_events_written(struct hook *h, unsigned queued, unsigned suppressed)
{
	h->events_queued += queued;
	h->events_suppressed += suppressed;
	if (suppressed)
		log_info("webhooks: %u event%s held back by a cooldown (see "
			 "driftd.webhook_suppressed)", suppressed, suppressed == 1 ? "" : "s");
	if (queued && h->started && !h->stopped)
		event_active(h->kick, 0, 0);
}

int hook_send_test(struct hook *h, struct store *store, const char *name,
		   char id[HOOKEV_ID_LEN + 1])
{
	struct store_event ev;
	char *mem = NULL;
	int rc = hookev_test(h->conf, name, wall_us(), &ev, &mem);

	if (rc < 0)
		return rc;
	rc = store_put_events(store, &ev, 1);
	if (rc == 0) {
		memcpy(id, ev.id, HOOKEV_ID_LEN + 1);
		log_info("webhook %s: test event %s queued", name, id);
	}
	free(mem);
	return rc;
}

void hook_stop(struct hook *h)
{
	h->stopped = true;
	evtimer_del(h->timer);
}

size_t hook_busy(const struct hook *h)
{
	return h->in_flight + outbox_pending(h->outbox);
}

static void metric_head(struct evbuffer *b, const char *name, const char *type,
			const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void hook_write_metrics(const struct hook *h, struct evbuffer *b)
{
	metric_head(b, "driftd_webhook_events_total", "counter",
		    "Webhook events committed to the outbox, by outcome.");
	evbuffer_add_printf(b, "driftd_webhook_events_total{outcome=\"queued\"} %" PRIu64 "\n"
			    "driftd_webhook_events_total{outcome=\"suppressed\"} %" PRIu64 "\n",
			    h->events_queued, h->events_suppressed);
	metric_head(b, "driftd_webhook_attempts_total", "counter",
		    "Delivery attempts, by endpoint and result.");
	for (size_t i = 0; i < h->n_eps; i++)
		for (int r = 0; r < R__COUNT; r++)
			evbuffer_add_printf(b, "driftd_webhook_attempts_total{endpoint=\"%s\","
					    "result=\"%s\"} %" PRIu64 "\n", h->eps[i].name,
					    result_names[r], h->eps[i].st.attempts[r]);
	metric_head(b, "driftd_webhook_deliveries_total", "counter",
		    "Deliveries finished, by endpoint and final status.");
	for (size_t i = 0; i < h->n_eps; i++)
		evbuffer_add_printf(b, "driftd_webhook_deliveries_total{endpoint=\"%s\","
				    "status=\"delivered\"} %" PRIu64 "\n"
				    "driftd_webhook_deliveries_total{endpoint=\"%s\","
				    "status=\"dead\"} %" PRIu64 "\n",
				    h->eps[i].name, h->eps[i].st.delivered, h->eps[i].name,
				    h->eps[i].st.dead);
	metric_head(b, "driftd_webhook_endpoint_disabled", "gauge",
		    "1 when the receiver answered 410 Gone and the endpoint is disabled.");
	for (size_t i = 0; i < h->n_eps; i++)
		evbuffer_add_printf(b, "driftd_webhook_endpoint_disabled{endpoint=\"%s\"} %d\n",
				    h->eps[i].name, h->eps[i].st.disabled);
	metric_head(b, "driftd_webhook_in_flight", "gauge", "Delivery attempts in flight.");
	evbuffer_add_printf(b, "driftd_webhook_in_flight %zu\n", h->in_flight);
	metric_head(b, "driftd_webhook_records_pending", "gauge",
		    "Attempt results waiting to be written to the database.");
	evbuffer_add_printf(b, "driftd_webhook_records_pending %zu\n", outbox_pending(h->outbox));
	metric_head(b, "driftd_webhook_records_dropped_total", "counter",
		    "Attempt results that could not be queued (sent again after the lease).");
	evbuffer_add_printf(b, "driftd_webhook_records_dropped_total %" PRIu64 "\n",
			    h->records_dropped);
	metric_head(b, "driftd_webhook_outbox_up", "gauge",
		    "1 when the delivery connection to the database is up.");
	evbuffer_add_printf(b, "driftd_webhook_outbox_up %d\n", outbox_up(h->outbox));
}

void hook_free(struct hook *h)
{
	struct attempt *a;

	if (!h)
		return;
	while ((a = TAILQ_FIRST(&h->attempts))) {
		TAILQ_REMOVE(&h->attempts, a, link);
		/* The loop has stopped: a callback of evdns never comes now. */
		if (a->dns && a->phase == A_RESOLVING)
			evdns_getaddrinfo_cancel(a->dns);
		attempt_free(a);
	}
	outbox_free(h->outbox);
	if (h->dns)
		evdns_base_free(h->dns, 0);
	if (h->timer)
		event_free(h->timer);
	if (h->kick)
		event_free(h->kick);
	free_endpoints(h->eps, h->n_eps);
	free(h);
}
