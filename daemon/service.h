/* The daemon's dealings with systemd (prefix svc_): sd_notify states, the
 * watchdog interval, and listening sockets handed over by socket
 * activation.  Without libsystemd at build time these do nothing, with one
 * warning when the environment shows that systemd expects them.  Loop
 * thread only. */
#ifndef DRIFTD_SERVICE_H
#define DRIFTD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#define SVC_MAX_SOCKETS 16	/* per kind */

void svc_ready(const char *status);	/* READY=1 with STATUS= */
void svc_status(const char *status);	/* STATUS=, one line */
void svc_reloading(void);		/* RELOADING=1 + MONOTONIC_USEC */
void svc_stopping(void);		/* STOPPING=1 */
void svc_watchdog(void);		/* WATCHDOG=1 */

/* WatchdogSec= of the unit in µs (WATCHDOG_USEC, for this process), 0
 * when systemd does not watch us. */
uint64_t svc_watchdog_usec(void);

/* Listening stream sockets passed by systemd (LISTEN_FDS), sorted by
 * their FileDescriptorName=: "ingest" or "http".  Every fd is made
 * non-blocking and close-on-exec and belongs to the caller. */
struct svc_sockets {
	int ingest[SVC_MAX_SOCKETS], http[SVC_MAX_SOCKETS];
	size_t n_ingest, n_http;
};

/* Returns how many sockets were taken (0: not socket-activated), or
 * -EINVAL with a reason in ERR when a socket has another name, is not a
 * listening stream socket, or there are too many; then every passed fd
 * is closed. */
int svc_listen_fds(struct svc_sockets *s, char *err, size_t errlen);

#endif
