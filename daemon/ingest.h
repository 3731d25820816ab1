/* NDJSON ingest listeners and connections (prefix ing_), on the loop
 * thread.  Each line is one record (DESIGN §3.2); a refused line gets an
 * error line back naming the line number, the record id and the reason,
 * and the connection goes on.  When the client closes its side, the daemon
 * answers {"done":true,"accepted":N,"rejected":M} and closes.  With a
 * token configured, the first line must be {"auth":"TOKEN"}. */
#ifndef DRIFTD_INGEST_H
#define DRIFTD_INGEST_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct eng;

struct ing_limits {
	size_t max_line;		/* bytes */
	unsigned max_connections;
	uint64_t idle_timeout_us;
	const char *token;		/* NULL = no authentication */
};

struct ing;

struct ing *ing_new(struct event_base *base, struct eng *eng);

/* Takes ownership of the listening socket FD (from addr_listen or from
 * systemd).  Returns 0 or -errno. */
int ing_add_listener(struct ing *g, int fd);

/* Applies new limits to new lines and connections (reload).  The token
 * string is copied. */
int ing_set_limits(struct ing *g, const struct ing_limits *l);

/* Closes the listeners; open connections go on. */
void ing_stop_accepting(struct ing *g);

/* Asks every connection to finish: buffered lines are processed, the
 * summary is sent, then it closes. */
void ing_close_all(struct ing *g);
size_t ing_connections(const struct ing *g);

void ing_free(struct ing *g);

#endif
