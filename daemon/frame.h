/* Binary ingest protocol codec (prefix frm_), specified in docs/protocol.md.
 * Pure: no I/O, no globals.  Decodes what clients send (frame headers,
 * HELLO, RECORDS and LABELS payloads) into struct record, and encodes what
 * the daemon answers (WELCOME, ACK, ERROR, SUMMARY) into a byte buffer.
 * One decoder per connection, not shared between threads; a decoded record
 * borrows its strings and scores from the decoder until its next call, and
 * its embedding from the payload (on a little-endian host the values are
 * used where they lie, unaligned).  Every integer on the wire is
 * little-endian. */
#ifndef DRIFTD_FRAME_H
#define DRIFTD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* A binary connection starts with these four bytes; NDJSON never does. */
#define FRM_MAGIC "DRFB"
#define FRM_MAGIC_LEN 4
#define FRM_VERSION 1
#define FRM_HEADER_LEN 16
#define FRM_MAX_STRING 65535	/* u16 length fields */
#define FRM_MAX_TOKEN 256

enum frm_type {
	FRM_HELLO = 0x01,	/* client: first frame, optional token */
	FRM_RECORDS = 0x02,	/* client: records */
	FRM_LABELS = 0x03,	/* client: labels for earlier records */
	FRM_WELCOME = 0x81,	/* daemon: handshake accepted */
	FRM_ACK = 0x82,		/* daemon: outcome of one RECORDS/LABELS */
	FRM_ERROR = 0x83,	/* daemon: a frame or the connection refused */
	FRM_SUMMARY = 0x84,	/* daemon: totals, then it closes */
};

/* Frame-level refusals: the wire codes of ERROR frames. */
enum frm_err {
	FRM_OK = 0,
	FRM_ERR_VERSION = 1,	/* fatal: framing of another version */
	FRM_ERR_TYPE = 2,
	FRM_ERR_OVERSIZE = 3,
	FRM_ERR_TRUNCATED = 4,	/* fatal: connection ended mid-frame */
	FRM_ERR_MALFORMED = 5,
	FRM_ERR_AUTH = 6,	/* fatal */
	FRM_ERR_HANDSHAKE = 7,	/* fatal: no HELLO first, or too late */
	FRM_ERR_OVERLOADED = 8,	/* fatal: too many connections */
	FRM_ERR_TIMEOUT = 9,	/* fatal: a frame took too long to arrive */
};

const char *frm_err_name(enum frm_err e);

/* Stable wire code of a record refusal (docs/protocol.md), 255 for a
 * reason this table does not know yet. */
uint8_t frm_reason_code(enum rec_err e);

struct frm_header {
	uint8_t version, type;
	uint16_t flags;
	uint32_t seq;
	uint64_t length;	/* payload bytes after the header */
};

void frm_header_read(const uint8_t b[FRM_HEADER_LEN], struct frm_header *h);

/* Whether a client frame with header H can be taken: FRM_OK, or the
 * refusal with a message.  MAX_FRAME bounds header + payload. */
enum frm_err frm_header_check(const struct frm_header *h, uint64_t max_frame,
			      char *msg, size_t msglen);

struct frm_hello {
	const char *token;	/* not NUL-terminated */
	size_t token_len;
	const char *client;	/* free-form name for logs, not terminated */
	size_t client_len;
};

enum frm_err frm_hello_read(const uint8_t *p, size_t len,
			    struct frm_hello *out, char *msg, size_t msglen);

/* ---- RECORDS and LABELS payloads ---- */

struct frm_decoder;

struct frm_decoder *frm_decoder_new(void);	/* NULL: out of memory */
void frm_decoder_free(struct frm_decoder *d);

/* Starts on the payload of a RECORDS or LABELS frame (borrowed until the
 * last frm_next).  Returns FRM_OK with the record count in *count, or
 * FRM_ERR_MALFORMED when the count cannot fit in the payload. */
enum frm_err frm_begin(struct frm_decoder *d, uint8_t type, const uint8_t *p,
		       size_t len, uint32_t *count, char *msg, size_t msglen);

/* One decoded record or refusal: records FIRST .. FIRST + SPAN - 1 of the
 * frame.  SPAN > 1 only when a record's length runs past the payload, so
 * it and all after it are refused together (REC_ERR_BAD_FRAME). */
struct frm_item {
	uint32_t first, span;
	enum rec_err err;
	struct record rec;	/* valid when err == REC_OK */
};

/* Decodes the next record.  Returns false when the frame is done. */
bool frm_next(struct frm_decoder *d, struct frm_item *it, char *msg,
	      size_t msglen);

/* ---- what the daemon sends ---- */

/* A growable byte buffer for outgoing frames; the caller owns p. */
struct frm_buf {
	uint8_t *p;
	size_t len, cap;
	size_t ack_at;		/* offset of the ACK being built */
};

void frm_buf_free(struct frm_buf *b);

/* Each appends one whole frame; they return 0 or -ENOMEM. */
int frm_put_welcome(struct frm_buf *b, uint64_t max_frame,
		    const char *server);
int frm_put_error(struct frm_buf *b, uint32_t seq, enum frm_err e,
		  bool fatal, const char *msg);
int frm_put_summary(struct frm_buf *b, uint64_t accepted, uint64_t rejected);

/* An ACK is built in three steps: begin, one entry per refusal, end. */
int frm_ack_begin(struct frm_buf *b, uint32_t seq, uint8_t type);
int frm_ack_error(struct frm_buf *b, uint32_t first, uint32_t span,
		  enum rec_err e, const char *msg);
void frm_ack_end(struct frm_buf *b, uint32_t accepted, uint32_t rejected);

#endif
