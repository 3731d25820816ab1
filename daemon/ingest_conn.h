/* Internal to ingest.c and ingest_bin.c: one client connection and the
 * listener state it reads its limits from. */
#ifndef DRIFTD_INGEST_CONN_H
#define DRIFTD_INGEST_CONN_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "frame.h"
#include "ingest.h"

enum ing_proto { PROTO_UNKNOWN, PROTO_NDJSON, PROTO_BINARY };

struct ing_conn {
	LIST_ENTRY(ing_conn) link;
	struct ing *ing;
	struct bufferevent *bev;	/* output only */
	struct evbuffer *in;	/* input, filled by on_readable */
	struct event *rd;	/* readable, with the idle timeout */
	struct event *deadline;	/* handshake, then partial line or frame */
	enum ing_proto proto;
	struct ndj_parser *parser;	/* NDJSON, made on detection */
	struct frm_decoder *dec;	/* binary, made on detection */
	struct frm_buf out;		/* binary replies being built */
	uint64_t line_no, accepted, rejected;
	uint64_t skip;		/* binary: payload bytes of a refused frame */
	bool skipping;		/* NDJSON: rest of an oversize line */
	bool authed;
	bool closing;		/* summary sent, waiting for it to flush */
	bool paused;		/* not read: the daemon is saturated */
	bool out_full;		/* not read: the client is not reading */
	/* bytes read in the current and the previous second */
	uint64_t bytes_now, bytes_prev;
	int64_t bucket_s;
};

struct ing {
	struct event_base *base;
	struct eng *eng;
	ing_pressure_fn pressure;
	void *pressure_arg;
	struct evconnlistener **listeners;
	size_t n_listeners;
	struct event *resume_tick;	/* while connections are paused */
	struct event *accept_retry;	/* after running out of descriptors */
	LIST_HEAD(, ing_conn) conns;
	size_t n_conns, n_paused;
	struct ing_limits lim;		/* token points at .token_copy */
	char *token_copy;
	struct timeval idle, handshake, frame;
	uint64_t bytes_now, bytes_prev;	/* all connections, as per conn */
	int64_t bucket_s;
};

int64_t ing_now_us(struct ing *g);

/* ingest_bin.c: frames in the input buffer, and the end of the stream. */
void bin_drain(struct ing_conn *c);
void bin_finish(struct ing_conn *c);
void bin_timeout(struct ing_conn *c, bool handshake);

/* ingest.c, for ingest_bin.c */
void conn_closing(struct ing_conn *c);
void conn_unit_done(struct ing_conn *c);
bool conn_check_token(const struct ing *g, const char *given, size_t len);

#endif
