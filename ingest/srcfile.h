/*
 * srcfile.h - the one way to open and read an entry of a source drive: used by the ingest
 * walker and readers, the source comparison of the gate (compare.c) and --explain
 * (fstree.c), so that each of them opens a source the same way:
 *   - never following a symlink (O_NOFOLLOW), never blocking on a FIFO or a device that a
 *     regular file was swapped for (O_NONBLOCK), never moving atimes where the kernel
 *     allows it (O_NOATIME, retried without it on EPERM), close-on-exec;
 *   - extended attributes through the open fd, or without following a symlink;
 *   - the filesystem's identity by its UUID (libblkid), never by st_dev.
 *
 * Threads: every function is thread-safe. Errors: 0/fd or -errno.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_SRCFILE_H
#define DFS_INGEST_SRCFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"

/* Opens the regular file @name of directory @dirfd for reading. An fd or -errno. */
int src_open_file(int dirfd, const char *name);
/* Opens the directory @name of @dirfd (NULL or ".": @dirfd itself, a new open file
 * description with its own offset). An fd or -errno. */
int src_open_dir(int dirfd, const char *name);
/* Opens the root of a source (a path). An fd or -errno. */
int src_open_root(const char *path);

/*
 * Reads every extended attribute into a sorted array (*out, *n; free with
 * src_xattrs_free): through @fd when >= 0, else those of @entry in @dirfd, without
 * following a symlink. ENOTSUP counts as none. 0, -EAGAIN (changed while read) or -errno.
 */
int src_read_xattrs(int fd, int dirfd, const char *entry, struct store_xattr **out, size_t *n);
void src_xattrs_free(struct store_xattr *x, size_t n);
/* Orders xattrs by name (bytes), for qsort and for comparing sorted arrays. */
int src_xattr_cmp(const void *a, const void *b);

/* The filesystem identity of the open directory @fd ("uuid:..." from libblkid, else
 * "fsid:<f_fsid>:<root inode>"), into @out. */
void src_fsid(int fd, const struct stat *sb, char *out, size_t len);

/* The DT_* type of a mode. */
uint8_t src_dtype(mode_t m);
static inline bool src_same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

#endif
