/* sd_notify, sd_watchdog_enabled and sd_listen_fds_with_names; see
 * service.h. */
#include "service.h"

#include <errno.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify(const char *msg)
{
	sd_notify(0, msg);
}

uint64_t svc_watchdog_usec(void)
{
	uint64_t usec = 0;

	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

static int check_socket(int fd, const char *name, char *err, size_t errlen)
{
	if (strcmp(name, "ingest") && strcmp(name, "http")) {
		snprintf(err, errlen, "systemd passed a socket named \"%s\"; "
			 "driftd takes \"ingest\" and \"http\" "
			 "(FileDescriptorName= in the .socket unit)", name);
		return -EINVAL;
	}
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
		snprintf(err, errlen, "the \"%s\" socket systemd passed is not "
			 "a listening stream socket (ListenStream=)", name);
		return -EINVAL;
	}
	return 0;
}

static int sort_socket(struct svc_sockets *s, int fd, const char *name,
		       char *err, size_t errlen)
{
	bool ingest = !strcmp(name, "ingest");
	size_t *n = ingest ? &s->n_ingest : &s->n_http;

	if (check_socket(fd, name, err, errlen) < 0)
		return -EINVAL;
	if (*n == SVC_MAX_SOCKETS) {
		snprintf(err, errlen, "more than %d \"%s\" sockets",
			 SVC_MAX_SOCKETS, name);
		return -EINVAL;
	}
	if (evutil_make_socket_nonblocking(fd) < 0) {
		snprintf(err, errlen, "\"%s\" socket: %s", name,
			 strerror(errno));
		return -EINVAL;
	}
	(ingest ? s->ingest : s->http)[(*n)++] = fd;
	return 0;
}

int svc_listen_fds(struct svc_sockets *s, char *err, size_t errlen)
{
	char **names = NULL;
	int n, i, rc = 0;

	s->n_ingest = s->n_http = 0;
	/* Unsets LISTEN_* so nothing we might start inherits them; the fds
	 * come close-on-exec. */
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		snprintf(err, errlen, "LISTEN_FDS: %s", strerror(-n));
		return -EINVAL;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = sort_socket(s, SD_LISTEN_FDS_START + i, names[i], err,
				 errlen);
	if (rc < 0)
		for (i = 0; i < n; i++)
			close(SD_LISTEN_FDS_START + i);
	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	return rc < 0 ? rc : n;
}
#else
/* Built without libsystemd: say once that systemd's requests go unheard. */
static void warn_unsupported(void)
{
	static bool warned;

	if (warned || !(getenv("NOTIFY_SOCKET") || getenv("WATCHDOG_USEC") ||
			getenv("LISTEN_FDS")))
		return;
	warned = true;
	log_warning("started by systemd, but driftd was built without "
		    "libsystemd: no READY=1, watchdog pings or socket "
		    "activation");
}

static void notify(const char *msg)
{
	(void)msg;
	warn_unsupported();
}

uint64_t svc_watchdog_usec(void)
{
	warn_unsupported();
	return 0;
}

int svc_listen_fds(struct svc_sockets *s, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	s->n_ingest = s->n_http = 0;
	warn_unsupported();
	return 0;
}
#endif

void svc_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	notify(msg);
}

void svc_status(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify(msg);
}

void svc_reloading(void)
{
	struct timespec ts;
	char msg[96];

	/* systemd orders a reload by RELOADING=1 with MONOTONIC_USEC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL +
			 (unsigned long long)ts.tv_nsec / 1000ULL);
	notify(msg);
}

void svc_stopping(void)
{
	notify("STOPPING=1");
}

void svc_watchdog(void)
{
	notify("WATCHDOG=1");
}
