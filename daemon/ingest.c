/* Listeners, connection lifecycle, protocol detection, timeouts and
 * backpressure; NDJSON line framing and replies.  Binary frames are in
 * ingest_bin.c. */
#include "ingest.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "ingest_conn.h"
#include "log.h"
#include "ndjson.h"
#include "stats.h"

/* Replies a client has not read yet; beyond this the daemon stops reading
 * from it until they drain, so error replies cannot pile up unbounded. */
#define OUT_MAX (1u << 20)
/* Bytes taken from a socket in one read: large reads keep the per-record
 * cost of the loop low at high rates. */
#define READ_CHUNK (256u << 10)
/* While connections are paused, how often the pressure is looked at. */
#define RESUME_TICK_US 20000
/* At pressure level 1 a connection is paused when it brought at least
 * this share of the bytes read lately, and at least BUSY_MIN_BYTES. */
#define BUSY_SHARE 8
#define BUSY_MIN_BYTES (64u << 10)
#define ACCEPT_RETRY_MS 200

/* ---- connection state ---- */

int64_t ing_now_us(struct ing *g)
{
	struct timeval tv;

	event_base_gettimeofday_cached(g->base, &tv);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void conn_free(struct ing_conn *c)
{
	struct ing *g = c->ing;

	LIST_REMOVE(c, link);
	g->n_conns--;
	if (c->paused) {
		g->n_paused--;
		st.connections_paused--;
	}
	st.connections_open--;
	if (c->deadline)
		event_free(c->deadline);
	event_free(c->rd);
	evbuffer_free(c->in);
	bufferevent_free(c->bev);
	ndj_free(c->parser);
	frm_decoder_free(c->dec);
	frm_buf_free(&c->out);
	free(c);
}

/* Reading is on unless the connection is closing, paused for pressure or
 * waiting for its client to read replies. */
static void update_reading(struct ing_conn *c)
{
	if (c->closing || c->paused || c->out_full)
		event_del(c->rd);
	else if (!event_pending(c->rd, EV_READ, NULL))
		event_add(c->rd, &c->ing->idle);
}

/* The final reply is queued: stop reading, free once it is written, and
 * give a client that does not read it an idle timeout's worth of time. */
void conn_closing(struct ing_conn *c)
{
	c->closing = true;
	if (c->deadline)
		event_del(c->deadline);
	bufferevent_set_timeouts(c->bev, NULL, &c->ing->idle);
	update_reading(c);
}

/* A line or frame completed; the next one gets a fresh deadline. */
void conn_unit_done(struct ing_conn *c)
{
	if (c->authed && c->deadline)
		event_del(c->deadline);
}

/* Arms the frame deadline when a partial line or frame waits in the
 * input buffer and none is running. */
static void arm_partial_deadline(struct ing_conn *c)
{
	struct evbuffer *in = c->in;

	if (!c->authed || c->closing || c->paused || !c->deadline)
		return;
	if (evbuffer_get_length(in) == 0 && c->skip == 0) {
		event_del(c->deadline);
		return;
	}
	if (!event_pending(c->deadline, EV_TIMEOUT, NULL))
		event_add(c->deadline, &c->ing->frame);
}

bool conn_check_token(const struct ing *g, const char *given, size_t len)
{
	size_t want = strlen(g->lim.token);

	/* The length is no secret worth a timing channel: tokens are long
	 * random strings; the bytes are compared in constant time. */
	return len == want && CRYPTO_memcmp(given, g->lim.token, want) == 0;
}

/* ---- NDJSON ---- */

static void reply(struct ing_conn *c, json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN, &len);

	evbuffer_add(bufferevent_get_output(c->bev), s, len);
	evbuffer_add(bufferevent_get_output(c->bev), "\n", 1);
	json_object_put(o);
}

static void reply_error(struct ing_conn *c, enum rec_err e, const char *id,
			const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error",
			       json_object_new_string(rec_err_name(e)));
	json_object_object_add(o, "line", json_object_new_int64(
						  (int64_t)c->line_no));
	if (id)
		json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "message", json_object_new_string(msg));
	reply(c, o);
	c->rejected++;
	st.records_rejected[e]++;
}

/* A connection-level refusal: one JSON line, then the daemon closes. */
static void reply_fatal(struct ing_conn *c, const char *error, const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(error));
	json_object_object_add(o, "message", json_object_new_string(msg));
	reply(c, o);
	conn_closing(c);
}

static void send_summary(struct ing_conn *c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "done", json_object_new_boolean(1));
	json_object_object_add(o, "accepted",
			       json_object_new_int64((int64_t)c->accepted));
	json_object_object_add(o, "rejected",
			       json_object_new_int64((int64_t)c->rejected));
	reply(c, o);
}

/* The first line of a connection to a daemon with a token. */
static bool check_auth(struct ing_conn *c, const char *line)
{
	json_object *o = json_tokener_parse(line), *tok;
	bool ok = false;

	if (o && json_object_object_get_ex(o, "auth", &tok) &&
	    json_object_get_type(tok) == json_type_string)
		ok = conn_check_token(c->ing, json_object_get_string(tok),
				      (size_t)json_object_get_string_len(tok));
	json_object_put(o);
	return ok;
}

static void handle_line(struct ing_conn *c, char *line, size_t len)
{
	char msg[256];
	struct record r;
	enum rec_err e;

	c->line_no++;
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	line[len] = '\0';
	if (!c->authed && c->ing->lim.token) {
		if (check_auth(c, line)) {
			c->authed = true;
			event_del(c->deadline);
			return;
		}
		st.auth_failures++;
		reply_error(c, REC_ERR_BAD_FIELD, NULL,
			    "authentication required: the first line must be "
			    "{\"auth\":\"TOKEN\"} with the configured token");
		conn_closing(c);
		return;
	}
	c->authed = true;
	e = ndj_parse(c->parser, line, len, &r, msg, sizeof(msg));
	if (e == REC_OK)
		e = eng_ingest(c->ing->eng, &r, ing_now_us(c->ing), msg,
			       sizeof(msg));
	if (e != REC_OK) {
		reply_error(c, e, r.id, msg);
		return;
	}
	c->accepted++;
	st.records_accepted++;
}

static void refuse_oversize(struct ing_conn *c)
{
	char msg[96];

	c->line_no++;
	snprintf(msg, sizeof(msg), "line longer than max_line (%zu bytes)",
		 c->ing->lim.max_line);
	reply_error(c, REC_ERR_OVERSIZE, NULL, msg);
}

/* Consumes the complete lines in the input buffer. */
static void ndjson_drain(struct ing_conn *c)
{
	struct evbuffer *in = c->in;
	struct evbuffer_ptr eol;
	size_t eol_len, avail, max = c->ing->lim.max_line;

	while (!c->closing) {
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (c->skipping) {
			evbuffer_drain(in, eol.pos < 0 ? avail :
						 (size_t)eol.pos + eol_len);
			c->skipping = eol.pos < 0;
			continue;
		}
		if (eol.pos < 0) {
			if (avail > max) {
				refuse_oversize(c);
				evbuffer_drain(in, avail);
				c->skipping = true;
			}
			break;
		}
		conn_unit_done(c);
		if ((size_t)eol.pos > max) {
			refuse_oversize(c);
			evbuffer_drain(in, (size_t)eol.pos + eol_len);
			continue;
		}
		/* pullup includes the '\n', which handle_line overwrites with
		 * the terminating NUL. */
		handle_line(c, (char *)evbuffer_pullup(in, eol.pos + 1),
			    (size_t)eol.pos);
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
	}
}

/* The client closed its side: a last line without '\n' still counts. */
static void ndjson_finish(struct ing_conn *c)
{
	struct evbuffer *in = c->in;
	size_t avail;

	ndjson_drain(c);
	avail = evbuffer_get_length(in);
	if (!c->closing && !c->skipping && avail) {
		if (avail > c->ing->lim.max_line) {
			refuse_oversize(c);
		} else {
			evbuffer_add(in, "", 1);
			handle_line(c, (char *)evbuffer_pullup(in, -1), avail);
		}
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	if (!c->closing)
		send_summary(c);
	conn_closing(c);
}

/* ---- protocol detection ---- */

/* Decides from the first bytes; false while too few have arrived. */
static bool detect(struct ing_conn *c, bool at_eof)
{
	struct evbuffer *in = c->in;
	unsigned char head[FRM_MAGIC_LEN];
	size_t n = evbuffer_copyout(in, head, sizeof(head));
	struct ing *g = c->ing;

	if (c->proto != PROTO_UNKNOWN)
		return true;
	if (n == 0 || (n < FRM_MAGIC_LEN && !at_eof &&
		       !memcmp(head, FRM_MAGIC, n)))
		return false;
	if (n == FRM_MAGIC_LEN && !memcmp(head, FRM_MAGIC, FRM_MAGIC_LEN)) {
		c->proto = PROTO_BINARY;
		c->dec = frm_decoder_new();
		evbuffer_drain(in, FRM_MAGIC_LEN);
	} else {
		c->proto = PROTO_NDJSON;
		c->parser = ndj_new();
	}
	if (!c->dec && !c->parser) {
		log_err("ingest: out of memory for a new connection");
		evbuffer_drain(in, evbuffer_get_length(in));
		conn_closing(c);
		return false;
	}
	/* Only the binary handshake authenticates; NDJSON without a token
	 * needs nothing more. */
	c->authed = c->proto == PROTO_NDJSON && !g->lim.token;
	if (c->authed)
		event_del(c->deadline);
	return true;
}

static void drain(struct ing_conn *c)
{
	if (c->proto == PROTO_BINARY)
		bin_drain(c);
	else
		ndjson_drain(c);
}

/* ---- backpressure ---- */

static void count_bytes(int64_t now_s, uint64_t n, uint64_t *now,
			uint64_t *prev, int64_t *bucket)
{
	if (now_s != *bucket) {
		*prev = now_s == *bucket + 1 ? *now : 0;
		*now = 0;
		*bucket = now_s;
	}
	*now += n;
}

static void pause_conn(struct ing_conn *c)
{
	struct ing *g = c->ing;
	struct timeval tick = { 0, RESUME_TICK_US };

	if (c->paused)
		return;
	c->paused = true;
	g->n_paused++;
	st.connections_paused++;
	st.ingest_pauses++;
	/* The client is not slow: the daemon is.  No deadline meanwhile. */
	if (c->deadline && c->authed)
		event_del(c->deadline);
	update_reading(c);
	if (!event_pending(g->resume_tick, EV_TIMEOUT, NULL))
		event_add(g->resume_tick, &tick);
}

/* After reading from C: is it among the connections to pause? */
static void apply_pressure(struct ing_conn *c)
{
	struct ing *g = c->ing;
	uint64_t mine = c->bytes_now + c->bytes_prev,
		 all = g->bytes_now + g->bytes_prev;
	int level = g->pressure(g->pressure_arg);

	if (level >= 2 ||
	    (level == 1 && mine >= BUSY_MIN_BYTES && mine * BUSY_SHARE >= all))
		pause_conn(c);
}

static void process(struct ing_conn *c, size_t fresh);
static void finish(struct ing_conn *c);

static void on_resume_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ing *g = arg;
	struct ing_conn *c, *next;
	struct timeval tick = { 0, RESUME_TICK_US };

	if (g->n_paused && g->pressure(g->pressure_arg) > 0) {
		event_add(g->resume_tick, &tick);
		return;
	}
	for (c = LIST_FIRST(&g->conns); c; c = next) {
		next = LIST_NEXT(c, link);
		if (!c->paused)
			continue;
		c->paused = false;
		g->n_paused--;
		st.connections_paused--;
		update_reading(c);
		/* Lines or frames may already wait in the buffer. */
		process(c, 0);
	}
}

/* ---- callbacks ---- */

static void free_if_flushed(struct ing_conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_free(c);
}

static void after_drain(struct ing_conn *c)
{
	if (c->closing)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_MAX) {
		c->out_full = true;
		update_reading(c);
	}
	arm_partial_deadline(c);
}

/* After FRESH bytes arrived (or 0: bytes already buffered may be ready):
 * detect, consume, then look at limits and pressure.  May free C. */
static void process(struct ing_conn *c, size_t fresh)
{
	struct ing *g = c->ing;
	int64_t now_s = ing_now_us(g) / 1000000;

	st.bytes_received += fresh;
	count_bytes(now_s, fresh, &c->bytes_now, &c->bytes_prev, &c->bucket_s);
	count_bytes(now_s, fresh, &g->bytes_now, &g->bytes_prev, &g->bucket_s);
	if (!c->closing && detect(c, false))
		drain(c);
	if (c->closing) {
		free_if_flushed(c);
		return;
	}
	after_drain(c);
	if (fresh)
		apply_pressure(c);
}

/* How much input may wait in the buffer: enough for one whole line or
 * frame, so a complete unit is always taken before more is read. */
static size_t input_limit(const struct ing_conn *c)
{
	if (c->proto == PROTO_BINARY)
		return c->ing->lim.max_frame;
	if (c->proto == PROTO_NDJSON)
		return c->ing->lim.max_line + 4096;
	return 4096;
}

/* One readv of up to WANT bytes straight into the input buffer: large
 * reads keep the loop's cost per record low (evbuffer_read would stop at
 * 4 KiB). */
static ssize_t read_into(struct evbuffer *in, evutil_socket_t fd,
			 size_t want)
{
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t got;
	size_t left = want;
	int n, i, err;

	n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
	if (n <= 0)
		return -1;
	for (i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len < left ? v[i].iov_len : left;
		left -= iov[i].iov_len;
	}
	got = readv(fd, iov, n);
	err = errno;
	left = got > 0 ? (size_t)got : 0;
	for (i = 0; i < n; i++) {
		v[i].iov_len = iov[i].iov_len < left ? iov[i].iov_len : left;
		left -= v[i].iov_len;
	}
	evbuffer_commit_space(in, v, n);
	errno = err;
	return got;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct ing_conn *c = arg;
	struct evbuffer *in = c->in;
	size_t have = evbuffer_get_length(in), limit = input_limit(c);
	ssize_t got;

	if (what & EV_TIMEOUT) {
		st.timeouts_idle++;
		log_debug("ingest: closing a connection idle for %llds after "
			  "%llu records", (long long)c->ing->idle.tv_sec,
			  (unsigned long long)(c->accepted + c->rejected));
		conn_free(c);
		return;
	}
	if (have >= limit) {
		/* Whole units are always consumed, so this cannot last. */
		log_err("ingest: input buffer full (%zu bytes); closing", have);
		conn_free(c);
		return;
	}
	got = read_into(in, fd, limit - have < READ_CHUNK ? limit - have :
							    READ_CHUNK);
	if (got == 0) {
		finish(c);
		free_if_flushed(c);
		return;
	}
	if (got < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_free(c);
		return;
	}
	process(c, (size_t)got);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct ing_conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->closing) {
		conn_free(c);
		return;
	}
	if (c->out_full) {
		c->out_full = false;
		update_reading(c);
		process(c, 0);
	}
}

/* The client closed its side, or the daemon is stopping. */
static void finish(struct ing_conn *c)
{
	if (c->closing)
		return;
	detect(c, true);
	if (c->proto == PROTO_BINARY)
		bin_finish(c);
	else if (c->proto == PROTO_NDJSON)
		ndjson_finish(c);
	else
		conn_closing(c);
}

/* Only the output side is the bufferevent's: a failed write, or a
 * client that does not take its last reply within the idle timeout. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct ing_conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		st.timeouts_idle++;
	conn_free(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct ing_conn *c = arg;
	bool handshake = !c->authed;
	char msg[160];

	if (handshake)
		st.timeouts_handshake++;
	else
		st.timeouts_frame++;
	evbuffer_drain(c->in,
		       evbuffer_get_length(c->in));
	if (c->proto == PROTO_BINARY) {
		bin_timeout(c, handshake);
	} else {
		snprintf(msg, sizeof(msg), handshake ?
			 "no complete first line within handshake_timeout "
			 "(%llds)" :
			 "a line took longer than frame_timeout (%llds) to "
			 "arrive",
			 (long long)(handshake ? c->ing->handshake.tv_sec :
						 c->ing->frame.tv_sec));
		reply_fatal(c, "timeout", msg);
	}
	free_if_flushed(c);
}

static void refuse_connection(evutil_socket_t fd)
{
	static const char msg[] =
		"{\"error\":\"overloaded\",\"message\":\"too many "
		"connections (max_connections)\"}\n";

	/* Best effort: the socket is fresh, so the line fits. */
	if (write(fd, msg, sizeof(msg) - 1) < 0)
		log_debug("ingest: refusing connection: %m");
	close(fd);
	st.connections_refused++;
}

static struct ing_conn *conn_new(struct ing *g, evutil_socket_t fd)
{
	struct ing_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ing = g;
	c->bev = bufferevent_socket_new(g->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->deadline = event_new(g->base, -1, 0, on_deadline, c);
	c->rd = event_new(g->base, fd, EV_READ | EV_PERSIST, on_readable, c);
	c->in = evbuffer_new();
	if (!c->bev || !c->deadline || !c->rd || !c->in) {
		if (c->in)
			evbuffer_free(c->in);
		if (c->rd)
			event_free(c->rd);
		if (c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->deadline)
			event_free(c->deadline);
		free(c);
		return NULL;
	}
	return c;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct ing *g = arg;
	struct ing_conn *c;

	st.connections_accepted++;
	if (g->n_conns >= g->lim.max_connections) {
		refuse_connection(fd);
		return;
	}
	if (!(c = conn_new(g, fd))) {
		log_err("ingest: out of memory accepting a connection");
		return;
	}
	LIST_INSERT_HEAD(&g->conns, c, link);
	g->n_conns++;
	st.connections_open++;
	bufferevent_setcb(c->bev, NULL, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_WRITE);
	event_add(c->deadline, &g->handshake);
	update_reading(c);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct ing *g = arg;
	size_t i;

	for (i = 0; i < g->n_listeners; i++)
		evconnlistener_enable(g->listeners[i]);
}

/* Out of descriptors (or another accept failure): stop accepting for a
 * moment rather than spin on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct ing *g = arg;
	struct timeval tv = { 0, ACCEPT_RETRY_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();
	size_t i;

	st.accept_errors++;
	log_warning("ingest: accept failed: %s; pausing new connections "
		    "for %dms", strerror(err), ACCEPT_RETRY_MS);
	for (i = 0; i < g->n_listeners; i++)
		evconnlistener_disable(g->listeners[i]);
	event_add(g->accept_retry, &tv);
}

/* ---- public ---- */

static struct timeval tv_of(uint64_t us)
{
	return (struct timeval){ .tv_sec = (time_t)(us / 1000000u),
				 .tv_usec = (suseconds_t)(us % 1000000u) };
}

struct ing *ing_new(struct event_base *base, struct eng *eng,
		    ing_pressure_fn pressure, void *arg)
{
	struct ing *g = calloc(1, sizeof(*g));
	struct ing_limits defaults = {
		.max_line = 1 << 20,
		.max_frame = 4 << 20,
		.max_connections = 1024,
		.idle_timeout_us = 300000000u,
		.handshake_timeout_us = 10000000u,
		.frame_timeout_us = 60000000u,
	};

	if (!g)
		return NULL;
	g->base = base;
	g->eng = eng;
	g->pressure = pressure;
	g->pressure_arg = arg;
	LIST_INIT(&g->conns);
	g->resume_tick = evtimer_new(base, on_resume_tick, g);
	g->accept_retry = evtimer_new(base, on_accept_retry, g);
	if (!g->resume_tick || !g->accept_retry ||
	    ing_set_limits(g, &defaults) < 0) {
		ing_free(g);
		return NULL;
	}
	return g;
}

int ing_add_listener(struct ing *g, int fd)
{
	struct evconnlistener *l, **grown;

	grown = realloc(g->listeners, (g->n_listeners + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	g->listeners = grown;
	l = evconnlistener_new(g->base, on_accept, g,
			       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
			       -1, fd);
	if (!l)
		return -errno ? -errno : -ENOMEM;
	evconnlistener_set_error_cb(l, on_accept_error);
	g->listeners[g->n_listeners++] = l;
	return 0;
}

int ing_set_limits(struct ing *g, const struct ing_limits *l)
{
	char *token = NULL;

	if (l->token && !(token = strdup(l->token)))
		return -ENOMEM;
	free(g->token_copy);
	g->token_copy = token;
	g->lim = *l;
	g->lim.token = token;
	g->idle = tv_of(l->idle_timeout_us);
	g->handshake = tv_of(l->handshake_timeout_us);
	g->frame = tv_of(l->frame_timeout_us);
	return 0;
}

void ing_stop_accepting(struct ing *g)
{
	size_t i;

	for (i = 0; i < g->n_listeners; i++)
		evconnlistener_free(g->listeners[i]);
	g->n_listeners = 0;
	if (g->accept_retry)
		event_del(g->accept_retry);
}

void ing_close_all(struct ing *g)
{
	struct ing_conn *c, *next;

	for (c = LIST_FIRST(&g->conns); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->closing)
			continue;
		if (c->paused) {
			c->paused = false;
			g->n_paused--;
			st.connections_paused--;
		}
		finish(c);
		free_if_flushed(c);
	}
}

size_t ing_connections(const struct ing *g)
{
	return g->n_conns;
}

void ing_free(struct ing *g)
{
	if (!g)
		return;
	ing_stop_accepting(g);
	while (!LIST_EMPTY(&g->conns))
		conn_free(LIST_FIRST(&g->conns));
	if (g->resume_tick)
		event_free(g->resume_tick);
	if (g->accept_retry)
		event_free(g->accept_retry);
	free(g->listeners);
	free(g->token_copy);
	free(g);
}
