/* The daemon's word to systemd (prefix svc_): sd_notify states.  Without
 * libsystemd at build time these are no-ops, with one warning when
 * NOTIFY_SOCKET asks for them. */
#ifndef DRIFTD_SERVICE_H
#define DRIFTD_SERVICE_H

void svc_ready(const char *status);
void svc_status(const char *status);
void svc_reloading(void);
void svc_stopping(void);

#endif
