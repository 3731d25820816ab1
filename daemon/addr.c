/* Address parsing and binding shared by the ingest and HTTP listeners. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int parse_unix(const char *path, struct addr *a, char *err,
		      size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;

	if (path[0] != '/' || strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "unix socket path must be absolute and "
			 "shorter than %zu bytes", sizeof(sun->sun_path));
		return -EINVAL;
	}
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, path);
	a->len = sizeof(*sun);
	a->family = AF_UNIX;
	return 0;
}

static int parse_port(const char *s, unsigned *port)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	return 0;
}

static int parse_tcp(const char *hostport, struct addr *a, char *err,
		     size_t errlen)
{
	char host[64];
	const char *colon;
	unsigned port;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');

		if (!close || close[1] != ':')
			goto bad;
		snprintf(host, sizeof(host), "%.*s",
			 (int)(close - hostport - 1), hostport + 1);
		colon = close + 1;
	} else {
		colon = strrchr(hostport, ':');
		if (!colon || (size_t)(colon - hostport) >= sizeof(host))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport),
			 hostport);
	}
	if (parse_port(colon + 1, &port) < 0)
		goto bad;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		a->len = sizeof(*sin);
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*sin6);
		a->family = AF_INET6;
		return 0;
	}
bad:
	snprintf(err, errlen, "\"%s\" is not HOST:PORT with a numeric host",
		 hostport);
	return -EINVAL;
}

int addr_parse(const char *spec, struct addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->text, sizeof(a->text), "%s", spec);
	if (!strncmp(spec, "unix:", 5))
		return parse_unix(spec + 5, a, err, errlen);
	if (!strncmp(spec, "tcp://", 6))
		return parse_tcp(spec + 6, a, err, errlen);
	snprintf(err, errlen, "\"%s\": address must start with tcp:// or "
		 "unix:", spec);
	return -EINVAL;
}

/* Replaces a socket file only when nobody answers on it, so a second
 * daemon cannot steal a live daemon's socket. */
static int clear_stale_unix(const struct addr *a)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
	struct stat sb;
	int fd, rc;

	if (lstat(sun->sun_path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	return unlink(sun->sun_path) < 0 ? -errno : 0;
}

int addr_listen(const struct addr *a, int backlog, char *err, size_t errlen)
{
	int fd, one = 1, rc;

	if (a->family == AF_UNIX && (rc = clear_stale_unix(a)) < 0) {
		snprintf(err, errlen, "%s: %s", a->text, strerror(-rc));
		return rc;
	}
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (a->family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	snprintf(err, errlen, "%s: %s", a->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

void addr_describe_fd(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "fd %d", fd);
	} else if (ss.ss_family == AF_UNIX) {
		snprintf(buf, len, "unix:%s",
			 ((struct sockaddr_un *)&ss)->sun_path);
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
}
