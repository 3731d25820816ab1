/* Listening addresses (prefix addr_): "tcp://HOST:PORT" (HOST numeric,
 * IPv6 in brackets; "localhost" is taken as 127.0.0.1 so binding never
 * waits on DNS) and "unix:/path".  Returns 0 or negative errno; on error
 * writes a reason into err. */
#ifndef DRIFTD_ADDR_H
#define DRIFTD_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;		/* AF_INET, AF_INET6 or AF_UNIX */
	char text[128];		/* as configured, for logs */
};

int addr_parse(const char *spec, struct addr *a, char *err, size_t errlen);

/* A non-blocking, close-on-exec listening socket bound to A; a stale Unix
 * socket file left by a dead daemon is replaced.  Returns the fd or
 * -errno. */
int addr_listen(const struct addr *a, int backlog, char *err, size_t errlen);

/* Bound address of a listening socket as text ("127.0.0.1:7070"). */
void addr_describe_fd(int fd, char *buf, size_t len);

#endif
