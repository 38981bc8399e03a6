/*
 * log.c - the project-wide logger (stderr or syslog) and dfs_strerror().
 *
 * Threads: the level and sink are set once at start-up; dfs_log() itself formats into a
 * local buffer and writes it with one call, so lines from threads do not interleave.
 *
 * SPDX-License-Identifier: MIT
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static enum dfs_log_level log_level = DFS_LOG_WARN;
static bool log_syslog;
static const char *log_prog;
static atomic_ulong log_errors;

unsigned long dfs_log_errors(void)
{
	return atomic_load(&log_errors);
}

void dfs_log_set_level(enum dfs_log_level level)
{
	log_level = level;
}

void dfs_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

void dfs_log_set_prog(const char *prog)
{
	log_prog = prog;
}

void dfs_log(enum dfs_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	size_t n = 0;
	va_list ap;

	if (level == DFS_LOG_ERR)
		atomic_fetch_add(&log_errors, 1);
	if (level > log_level)
		return;
	if (!log_syslog && log_prog) {
		int k = snprintf(line, sizeof(line), "%s: ", log_prog);

		if (k > 0)
			n = (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1;
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	n = strlen(line);
	if (n < sizeof(line) - 1)
		line[n++] = '\n';
	else
		line[sizeof(line) - 2] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
}

const char *dfs_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case EBADMSG:
		return "corrupt data in the store";
	case EPROTONOSUPPORT:
		return "unsupported store format version";
	case EWOULDBLOCK:
		return "the store is locked by another writer";
	case ENOSPC:
		return "no space left on the store's device";
	default:
		return strerror(err);
	}
}
