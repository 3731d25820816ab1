/* Logging for the daemon (prefix log_).  Under systemd, when JOURNAL_STREAM
 * names the device and inode of our stderr, messages go to the journal
 * with structured fields (PRIORITY, CODE_FILE/LINE/FUNC, and MODEL, SLICE,
 * WINDOW_ID, EVENT, MESSAGE_ID from a log_ctx); otherwise one line per
 * message on stderr, prefixed "<N>" with the syslog priority.
 * Thread-safe (one write per message).  detectors/ and store/ never log
 * directly. */
#ifndef DRIFTD_LOG_H
#define DRIFTD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_NOTICE = 5,
                 LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* MESSAGE_ID values, stable across releases, so that
 * `journalctl MESSAGE_ID=...` finds every such event. */
#define LOG_MID_DRIFT  "72ebbb5d277647eeae00b1957000c594"	/* a window drifted */
#define LOG_MID_WINDOW "a86ddf065f3c4a5483dbcb11ebbcfd52"	/* a window without drift */
#define LOG_MID_STREAM "03aab40defd542ffb1ebb6e1a8262189"	/* a streaming detector alarmed */

/* What a message is about; NULL fields and window_id < 0 are left out. */
struct log_ctx {
	const char *model, *slice;
	int64_t window_id;
	const char *event;		/* EVENT=, e.g. "drift" */
	const char *message_id;		/* MESSAGE_ID=, one of LOG_MID_* */
};

/* Chooses the journal or stderr once, from JOURNAL_STREAM and fd 2.  Call
 * before any thread starts; without it messages go to stderr. */
void log_init(void);
bool log_to_journal(void);

/* Messages above this level are dropped.  Set once at start and on reload
 * from the loop thread; readers tolerate a stale value. */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

void log_at(enum log_level lvl, const struct log_ctx *ctx, const char *file,
	    int line, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#define log_event(lvl, ctx, ...) \
	log_at((lvl), (ctx), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_msg(lvl, ...) log_event((lvl), NULL, __VA_ARGS__)
#define log_err(...)     log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
