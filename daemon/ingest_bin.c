/* Binary protocol connections: frames out of the input buffer, records to
 * the router, one ACK (or ERROR) per frame back. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "ingest_conn.h"
#include "log.h"
#include "stats.h"

/* Queues what was built in c->out. */
static void flush_out(struct ing_conn *c)
{
	if (c->out.len)
		evbuffer_add(bufferevent_get_output(c->bev), c->out.p,
			     c->out.len);
	c->out.len = 0;
}

static void send_error(struct ing_conn *c, uint32_t seq, enum frm_err e,
		       bool fatal, const char *msg)
{
	st.frames_rejected[e]++;
	if (frm_put_error(&c->out, seq, e, fatal, msg) == 0)
		flush_out(c);
	if (fatal)
		conn_closing(c);
}

static void send_summary(struct ing_conn *c)
{
	if (frm_put_summary(&c->out, c->accepted, c->rejected) == 0)
		flush_out(c);
}

static void handle_hello(struct ing_conn *c, const struct frm_header *h,
			 const uint8_t *p)
{
	struct ing *g = c->ing;
	struct frm_hello hello;
	char msg[160];
	enum frm_err e;

	if (c->authed) {
		send_error(c, h->seq, FRM_ERR_MALFORMED, false,
			   "HELLO was already received on this connection");
		return;
	}
	e = frm_hello_read(p, h->length, &hello, msg, sizeof(msg));
	if (e != FRM_OK) {
		send_error(c, h->seq, e, true, msg);
		return;
	}
	if (g->lim.token &&
	    !conn_check_token(g, hello.token, hello.token_len)) {
		st.auth_failures++;
		send_error(c, h->seq, FRM_ERR_AUTH, true,
			   hello.token_len ? "wrong token" :
					     "this daemon requires a token");
		return;
	}
	c->authed = true;
	event_del(c->deadline);
	if (frm_put_welcome(&c->out, g->lim.max_frame,
			    "driftd " DRIFTD_VERSION) == 0)
		flush_out(c);
}

static void handle_records(struct ing_conn *c, const struct frm_header *h,
			   const uint8_t *p)
{
	struct eng *eng = c->ing->eng;
	int64_t now = ing_now_us(c->ing);
	uint32_t count, accepted = 0, rejected = 0;
	struct frm_item it;
	char msg[256];
	enum rec_err e;

	if (frm_begin(c->dec, h->type, p, h->length, &count, msg,
		      sizeof(msg)) != FRM_OK) {
		send_error(c, h->seq, FRM_ERR_MALFORMED, false, msg);
		return;
	}
	if (frm_ack_begin(&c->out, h->seq, h->type) < 0)
		goto oom;
	while (frm_next(c->dec, &it, msg, sizeof(msg))) {
		e = it.err;
		if (e == REC_OK)
			e = eng_ingest(eng, &it.rec, now, msg, sizeof(msg));
		if (e == REC_OK) {
			accepted++;
			continue;
		}
		rejected += it.span;
		st.records_rejected[e] += it.span;
		if (frm_ack_error(&c->out, it.first, it.span, e, msg) < 0)
			goto oom;
	}
	frm_ack_end(&c->out, accepted, rejected);
	flush_out(c);
	c->accepted += accepted;
	c->rejected += rejected;
	st.records_accepted += accepted;
	return;
oom:
	/* Records already routed stay routed; the client cannot be told
	 * which, so the connection ends. */
	c->out.len = 0;
	log_err("ingest: out of memory building an ACK; closing");
	send_error(c, h->seq, FRM_ERR_OVERLOADED, true,
		   "daemon out of memory while acknowledging this frame");
}

static void handle_frame(struct ing_conn *c, const struct frm_header *h,
			 const uint8_t *payload)
{
	st.frames_received++;
	if (h->type == FRM_HELLO)
		handle_hello(c, h, payload);
	else
		handle_records(c, h, payload);
}

/* A refused frame whose length is known: say so, then skip its payload
 * as it arrives (the framing survives). */
static void refuse_frame(struct ing_conn *c, const struct frm_header *h,
			 enum frm_err e, const char *msg)
{
	send_error(c, h->seq, e, false, msg);
	c->skip = h->length;
}

void bin_drain(struct ing_conn *c)
{
	struct evbuffer *in = c->in;
	uint8_t hb[FRM_HEADER_LEN];
	struct frm_header h;
	char msg[160];
	enum frm_err e;
	size_t avail;

	while (!c->closing) {
		avail = evbuffer_get_length(in);
		if (c->skip) {
			size_t n = avail < c->skip ? avail : (size_t)c->skip;

			evbuffer_drain(in, n);
			c->skip -= n;
			if (c->skip)
				break;
			conn_unit_done(c);
			continue;
		}
		if (avail < FRM_HEADER_LEN)
			break;
		evbuffer_copyout(in, hb, sizeof(hb));
		frm_header_read(hb, &h);
		e = frm_header_check(&h, c->ing->lim.max_frame, msg,
				     sizeof(msg));
		if (e == FRM_ERR_VERSION) {
			send_error(c, h.seq, e, true, msg);
			break;
		}
		if (!c->authed && (e != FRM_OK || h.type != FRM_HELLO)) {
			/* Before the handshake nothing is skipped. */
			send_error(c, h.seq, e != FRM_OK ? e : FRM_ERR_HANDSHAKE,
				   true, e != FRM_OK ? msg :
				   "the first frame must be a HELLO");
			break;
		}
		if (e != FRM_OK) {
			evbuffer_drain(in, FRM_HEADER_LEN);
			refuse_frame(c, &h, e, msg);
			continue;
		}
		if (avail - FRM_HEADER_LEN < h.length)
			break;	/* the rest of the frame is on its way */
		handle_frame(c, &h, evbuffer_pullup(in, FRM_HEADER_LEN +
							     h.length) +
					    FRM_HEADER_LEN);
		evbuffer_drain(in, FRM_HEADER_LEN + h.length);
		conn_unit_done(c);
	}
}

void bin_finish(struct ing_conn *c)
{
	struct evbuffer *in = c->in;
	uint8_t hb[FRM_HEADER_LEN];
	struct frm_header h = { 0 };
	size_t avail;
	char msg[160];

	bin_drain(c);
	if (c->closing)
		return;
	avail = evbuffer_get_length(in);
	if (avail && !c->skip) {
		if (avail >= FRM_HEADER_LEN) {
			evbuffer_copyout(in, hb, sizeof(hb));
			frm_header_read(hb, &h);
			snprintf(msg, sizeof(msg), "connection ended %zu bytes "
				 "into a frame of %" PRIu64 " payload bytes",
				 avail - FRM_HEADER_LEN, h.length);
		} else {
			snprintf(msg, sizeof(msg), "connection ended %zu bytes "
				 "into a frame header", avail);
		}
		send_error(c, h.seq, FRM_ERR_TRUNCATED, false, msg);
	}
	evbuffer_drain(in, avail);
	send_summary(c);
	conn_closing(c);
}

void bin_timeout(struct ing_conn *c, bool handshake)
{
	char msg[160];

	snprintf(msg, sizeof(msg), handshake ?
		 "no HELLO within handshake_timeout (%llds)" :
		 "a frame took longer than frame_timeout (%llds) to arrive",
		 (long long)(handshake ? c->ing->handshake.tv_sec :
					 c->ing->frame.tv_sec));
	send_error(c, 0, handshake ? FRM_ERR_HANDSHAKE : FRM_ERR_TIMEOUT, true,
		   msg);
}
