/* sd_notify wrappers; see service.h. */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "log.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify(const char *msg)
{
	sd_notify(0, msg);
}
#else
static void notify(const char *msg)
{
	static int warned;

	(void)msg;
	if (!warned && getenv("NOTIFY_SOCKET")) {
		warned = 1;
		log_warning("NOTIFY_SOCKET is set but driftd was built without "
			    "libsystemd: systemd will not hear READY=1");
	}
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
