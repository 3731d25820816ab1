/* Ingest listeners and connections (prefix ing_), on the loop thread.
 *
 * A connection speaks NDJSON or the binary protocol (docs/protocol.md),
 * told apart by its first bytes: binary starts with FRM_MAGIC.  NDJSON:
 * each line is one record (DESIGN §3.2); a refused line gets an error line
 * naming the line number, the record id and the reason, and the
 * connection goes on; when the client closes its side, the daemon answers
 * {"done":true,"accepted":N,"rejected":M} and closes; with a token
 * configured, the first line must be {"auth":"TOKEN"}.  Binary: HELLO
 * first (with the token, if one is configured), then one ACK per frame.
 *
 * Limits: line and frame size (checked before authentication), connection
 * count, handshake, frame and idle timeouts.  Backpressure: when the
 * pressure probe reports saturation, the busiest connections stop being
 * read (level 1) or all of them (level 2), until it clears; nothing
 * already read is dropped. */
#ifndef DRIFTD_INGEST_H
#define DRIFTD_INGEST_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct eng;

struct ing_limits {
	size_t max_line;		/* bytes */
	size_t max_frame;		/* bytes, header included */
	unsigned max_connections;
	uint64_t idle_timeout_us;
	uint64_t handshake_timeout_us;	/* connect → first line or HELLO */
	uint64_t frame_timeout_us;	/* first → last byte of a line/frame */
	const char *token;		/* NULL = no authentication */
};

/* 0: keep reading; 1: pause the busiest connections; 2: pause all. */
typedef int (*ing_pressure_fn)(void *arg);

struct ing;

struct ing *ing_new(struct event_base *base, struct eng *eng,
		    ing_pressure_fn pressure, void *arg);

/* Takes ownership of the listening socket FD (from addr_listen or from
 * systemd).  Returns 0 or -errno. */
int ing_add_listener(struct ing *g, int fd);

/* Applies new limits to new lines and connections (reload).  The token
 * string is copied. */
int ing_set_limits(struct ing *g, const struct ing_limits *l);

/* Closes the listeners; open connections go on. */
void ing_stop_accepting(struct ing *g);

/* Asks every connection to finish: buffered lines and frames are
 * processed, the summary is sent, then it closes. */
void ing_close_all(struct ing *g);
size_t ing_connections(const struct ing *g);

void ing_free(struct ing *g);

#endif
