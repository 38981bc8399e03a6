/*
 * log.h - the project-wide logger and errno wording (dfs_log_*, dfs_strerror).
 *
 * Messages go to stderr, or to syslog once dfs_log_use_syslog() was called (the
 * daemon after it detaches). A message is logged once, where its context is
 * ("pack 0007 @1234: bad checksum"); callers then propagate the errno.
 *
 * Threads: every function is thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_LOG_H
#define DFS_STORE_LOG_H

#include <stdbool.h>

enum dfs_log_level { DFS_LOG_ERR = 0, DFS_LOG_WARN = 1, DFS_LOG_INFO = 2, DFS_LOG_DEBUG = 3 };

/* Messages above @level are dropped (default DFS_LOG_WARN). */
void dfs_log_set_level(enum dfs_log_level level);
/* Send messages to syslog under @ident from now on (ident is borrowed for the process life). */
void dfs_log_use_syslog(const char *ident);
/* Prefix stderr lines with @prog ("defrag-ingest: "); borrowed for the process life. */
void dfs_log_set_prog(const char *prog);

void dfs_log(enum dfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* How many error messages were logged so far (a caller that logged nothing new says
 * why itself; one that did leaves it at that: errors are printed once). */
unsigned long dfs_log_errors(void);

#define dfs_err(...) dfs_log(DFS_LOG_ERR, __VA_ARGS__)
#define dfs_warn(...) dfs_log(DFS_LOG_WARN, __VA_ARGS__)
#define dfs_info(...) dfs_log(DFS_LOG_INFO, __VA_ARGS__)
#define dfs_debug(...) dfs_log(DFS_LOG_DEBUG, __VA_ARGS__)

/*
 * Words a negative (or positive) errno for users. Our domain meanings win over libc's:
 * EBADMSG "corrupt data in the store", EPROTONOSUPPORT "unsupported store format version".
 * Returns a static string.
 */
const char *dfs_strerror(int err);

#endif
