/* Plain stderr logging; the level prefix follows sd-daemon(3) ("<N>") so
 * that journald assigns priorities even without structured logging. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>

static _Atomic int current_level = LOG_LVL_INFO;

void log_set_level(enum log_level lvl)
{
	atomic_store(&current_level, (int)lvl);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&current_level);
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[2048];

	if ((int)lvl > atomic_load(&current_level))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf keeps concurrent lines from interleaving. */
	fprintf(stderr, "<%d>%s\n", (int)lvl, line);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}
