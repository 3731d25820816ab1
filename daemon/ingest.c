/* Line framing, limits and replies for NDJSON clients. */
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
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "ndjson.h"
#include "stats.h"

/* Replies a client has not read yet; beyond this the daemon stops reading
 * from it until they drain, so error replies cannot pile up unbounded. */
#define OUT_MAX (1u << 20)

struct ing_conn {
	LIST_ENTRY(ing_conn) link;
	struct ing *ing;
	struct bufferevent *bev;
	struct ndj_parser *parser;
	uint64_t line_no, accepted, rejected;
	size_t leftover;	/* bytes of a partial line already counted */
	bool skipping;		/* discarding the rest of an oversize line */
	bool authed;
	bool closing;		/* summary sent, waiting for it to flush */
};

struct ing {
	struct event_base *base;
	struct eng *eng;
	struct evconnlistener **listeners;
	size_t n_listeners;
	LIST_HEAD(, ing_conn) conns;
	size_t n_conns;
	size_t max_line;
	unsigned max_connections;
	struct timeval idle;
	char *token;
};

static void conn_free(struct ing_conn *c)
{
	LIST_REMOVE(c, link);
	c->ing->n_conns--;
	st.connections_open--;
	bufferevent_free(c->bev);
	ndj_free(c->parser);
	free(c);
}

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

static int64_t now_us(struct ing *g)
{
	struct timeval tv;

	event_base_gettimeofday_cached(g->base, &tv);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The first line of a connection to a daemon with a token. */
static bool check_auth(struct ing_conn *c, const char *line)
{
	json_object *o = json_tokener_parse(line), *tok;
	const char *given = NULL;
	bool ok = false;

	if (o && json_object_object_get_ex(o, "auth", &tok) &&
	    json_object_get_type(tok) == json_type_string)
		given = json_object_get_string(tok);
	if (given && strlen(given) == strlen(c->ing->token))
		ok = CRYPTO_memcmp(given, c->ing->token, strlen(given)) == 0;
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
	if (!c->authed) {
		if (check_auth(c, line)) {
			c->authed = true;
			return;
		}
		reply_error(c, REC_ERR_BAD_FIELD, NULL,
			    "authentication required: the first line must be "
			    "{\"auth\":\"TOKEN\"} with the configured token");
		c->closing = true;
		return;
	}
	e = ndj_parse(c->parser, line, len, &r, msg, sizeof(msg));
	if (e == REC_OK)
		e = eng_ingest(c->ing->eng, &r, now_us(c->ing), msg,
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
		 c->ing->max_line);
	reply_error(c, REC_ERR_OVERSIZE, NULL, msg);
}

/* Consumes the complete lines in the input buffer. */
static void drain_lines(struct ing_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr eol;
	size_t eol_len, avail;

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
			if (avail > c->ing->max_line) {
				refuse_oversize(c);
				evbuffer_drain(in, avail);
				c->skipping = true;
			}
			break;
		}
		if ((size_t)eol.pos > c->ing->max_line) {
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
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_MAX)
		bufferevent_disable(c->bev, EV_READ);
}

/* The client closed its side: a last line without '\n' still counts. */
static void finish(struct ing_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail;

	drain_lines(c);
	avail = evbuffer_get_length(in);
	if (!c->closing && !c->skipping && avail) {
		if (avail > c->ing->max_line) {
			refuse_oversize(c);
		} else {
			evbuffer_add(in, "", 1);
			handle_line(c, (char *)evbuffer_pullup(in, -1), avail);
		}
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	send_summary(c);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct ing_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	st.bytes_received += evbuffer_get_length(in) - c->leftover;
	drain_lines(c);
	c->leftover = evbuffer_get_length(in);
	if (c->closing)
		bufferevent_disable(bev, EV_READ);
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
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		drain_lines(c);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct ing_conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		finish(c);
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("ingest: closing idle connection after %llu lines",
			  (unsigned long long)c->line_no);
	conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct ing *g = arg;
	struct ing_conn *c;

	st.connections_accepted++;
	if (g->n_conns >= g->max_connections) {
		static const char msg[] =
			"{\"error\":\"overloaded\",\"message\":\"too many "
			"connections (max_connections)\"}\n";

		/* Best effort: the socket is fresh, so the line fits. */
		if (write(fd, msg, sizeof(msg) - 1) < 0)
			log_debug("ingest: refusing connection: %m");
		close(fd);
		st.connections_refused++;
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->parser = ndj_new()) ||
	    !(c->bev = bufferevent_socket_new(g->base, fd,
					      BEV_OPT_CLOSE_ON_FREE))) {
		if (c)
			ndj_free(c->parser);
		free(c);
		close(fd);
		return;
	}
	c->ing = g;
	c->authed = g->token == NULL;
	LIST_INSERT_HEAD(&g->conns, c, link);
	g->n_conns++;
	st.connections_open++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, g->max_line + 4096);
	bufferevent_set_timeouts(c->bev, &g->idle, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct ing *ing_new(struct event_base *base, struct eng *eng)
{
	struct ing *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base = base;
	g->eng = eng;
	LIST_INIT(&g->conns);
	g->max_line = 1 << 20;
	g->max_connections = 1024;
	g->idle.tv_sec = 300;
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
	g->listeners[g->n_listeners++] = l;
	return 0;
}

int ing_set_limits(struct ing *g, const struct ing_limits *l)
{
	char *token = NULL;

	if (l->token && !(token = strdup(l->token)))
		return -ENOMEM;
	free(g->token);
	g->token = token;
	g->max_line = l->max_line;
	g->max_connections = l->max_connections;
	g->idle.tv_sec = (time_t)(l->idle_timeout_us / 1000000u);
	g->idle.tv_usec = (suseconds_t)(l->idle_timeout_us % 1000000u);
	return 0;
}

void ing_stop_accepting(struct ing *g)
{
	size_t i;

	for (i = 0; i < g->n_listeners; i++)
		evconnlistener_free(g->listeners[i]);
	g->n_listeners = 0;
}

void ing_close_all(struct ing *g)
{
	struct ing_conn *c, *next;

	for (c = LIST_FIRST(&g->conns); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->closing)
			continue;
		finish(c);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
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
	free(g->listeners);
	free(g->token);
	free(g);
}
