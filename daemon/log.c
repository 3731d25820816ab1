/* Journal or stderr; see log.h.  The stderr prefix follows sd-daemon(3)
 * ("<N>"), so journald still assigns priorities when it reads the plain
 * lines from a stream it did not announce. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config.h"

#if HAVE_SYSTEMD
/* CODE_FILE/LINE/FUNC name the caller of log_at(), not this file. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#endif

#define LINE_MAX_BYTES 2048
#define FIELD_BYTES 1024
#define MAX_FIELDS 12

static _Atomic int current_level = LOG_LVL_INFO;
static bool journal;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected to our
 * stdout/stderr; a match means stderr still goes to journald and was not
 * redirected by whoever started us. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;
	char tail;

	if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &sb) < 0)
		return false;
	return (unsigned long long)sb.st_dev == dev &&
	       (unsigned long long)sb.st_ino == ino;
}

void log_init(void)
{
	journal = HAVE_SYSTEMD && stderr_is_journal();
}

bool log_to_journal(void)
{
	return journal;
}

void log_set_level(enum log_level lvl)
{
	atomic_store(&current_level, (int)lvl);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&current_level);
}

#if HAVE_SYSTEMD
struct fields {
	struct iovec iov[MAX_FIELDS];
	int n;
	char buf[FIELD_BYTES];
	size_t used;
};

static void __attribute__((format(printf, 2, 3)))
add_field(struct fields *f, const char *fmt, ...)
{
	size_t room = sizeof(f->buf) - f->used;
	va_list ap;
	int len;

	if (f->n == MAX_FIELDS || room == 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(f->buf + f->used, room, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= room)
		return;		/* a truncated field would lie; leave it out */
	f->iov[f->n].iov_base = f->buf + f->used;
	f->iov[f->n].iov_len = (size_t)len;
	f->n++;
	f->used += (size_t)len + 1;
}

/* Source paths arrive relative to the build directory ("../daemon/x.c"). */
static const char *source_path(const char *file)
{
	while (!strncmp(file, "../", 3))
		file += 3;
	return file;
}

static int send_journal(enum log_level lvl, const struct log_ctx *ctx,
			const char *file, int line, const char *func,
			const char *msg)
{
	struct fields f = { .n = 0 };

	add_field(&f, "PRIORITY=%d", (int)lvl);
	add_field(&f, "SYSLOG_IDENTIFIER=driftd");
	add_field(&f, "CODE_FILE=%s", source_path(file));
	add_field(&f, "CODE_LINE=%d", line);
	add_field(&f, "CODE_FUNC=%s", func);
	if (ctx && ctx->model)
		add_field(&f, "MODEL=%s", ctx->model);
	if (ctx && ctx->slice)
		add_field(&f, "SLICE=%s", ctx->slice);
	if (ctx && ctx->window_id >= 0)
		add_field(&f, "WINDOW_ID=%lld", (long long)ctx->window_id);
	if (ctx && ctx->event)
		add_field(&f, "EVENT=%s", ctx->event);
	if (ctx && ctx->message_id)
		add_field(&f, "MESSAGE_ID=%s", ctx->message_id);
	f.iov[f.n].iov_base = (void *)msg;
	f.iov[f.n].iov_len = strlen(msg);
	f.n++;
	return sd_journal_sendv(f.iov, f.n);
}
#endif

void log_at(enum log_level lvl, const struct log_ctx *ctx, const char *file,
	    int line, const char *func, const char *fmt, ...)
{
	static const char key[] = "MESSAGE=";
	char text[sizeof(key) - 1 + LINE_MAX_BYTES];
	va_list ap;

	if ((int)lvl > atomic_load(&current_level))
		return;
	memcpy(text, key, sizeof(key) - 1);
	va_start(ap, fmt);
	vsnprintf(text + sizeof(key) - 1, LINE_MAX_BYTES, fmt, ap);
	va_end(ap);
#if HAVE_SYSTEMD
	/* A journal that went away falls back to stderr, which systemd
	 * still collects. */
	if (journal && send_journal(lvl, ctx, file, line, func, text) >= 0)
		return;
#else
	(void)ctx, (void)file, (void)line, (void)func;
#endif
	/* One fprintf keeps concurrent lines from interleaving. */
	fprintf(stderr, "<%d>%s\n", (int)lvl, text + sizeof(key) - 1);
}
