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
#include "tarcut.h"

/* Opens the regular file @name of directory @dirfd for reading. An fd or -errno. */
int src_open_file(int dirfd, const char *name);
/*
 * Opens the regular file @name of @dirfd for reading, as the walk saw it (inode @ino): an
 * fd and its fstat in *@sb; -ESTALE when another file (or no regular file) is there now;
 * -errno (-ENOENT: it vanished).
 */
int src_reopen_file(int dirfd, const char *name, ino_t ino, struct stat *sb);
/* Opens the directory @name of @dirfd (NULL or ".": @dirfd itself, a new open file
 * description with its own offset). An fd or -errno. */
int src_open_dir(int dirfd, const char *name);
/* Opens the root of a source (a path). An fd or -errno. */
int src_open_root(const char *path);

/*
 * A directory's listing: every name but "." and "..", sorted by bytes (as memcmp, a
 * prefix first), the one order of every walk of a source (ingest, the gate, --explain).
 */
struct src_name {
	const char *p;		/* NUL-terminated, inside the listing's buffer */
	size_t len;
};

struct src_listing {
	char *buf;		/* the names as read, each followed by a NUL */
	size_t len;		/* bytes of buf used */
	struct src_name *v;	/* the n names in sorted order, pointing into buf */
	size_t n;
	int err;		/* 0, or -errno of the readdir that ended the listing early
				 * (the names read until then are listed) */
};

/*
 * Lists the directory open at @dirfd through an open file description of its own (so the
 * offset of @dirfd is not moved, and @dirfd stays open) into @out (release with
 * src_listing_release, also after a failure). The names are read whole before they are
 * sorted, so memory grows with the directory (at most SRC_LIST_MAX bytes of names).
 * Returns 0 (then check @out->err), or -errno when the directory cannot be opened
 * (nothing listed), or -ENOMEM (nothing listed). Thread-safe.
 */
#define SRC_LIST_MAX (1ull << 32)
int src_list_dir(int dirfd, struct src_listing *out);
void src_listing_release(struct src_listing *l);

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

/*
 * The next data region of the file open at @fd (@size bytes) from @off: [*data, *hole),
 * holes found by SEEK_DATA/SEEK_HOLE (unsupported: all data); *data == @size when only a
 * hole is left. The ingest's readers and the remote side's read files the same way.
 */
void src_next_data(int fd, off_t off, off_t size, off_t *data, off_t *hole);

/*
 * A data region [start, end) of a file read in large windows and cut into chunks
 * (FastCDC), the one way the ingest's readers and the remote side do it:
 *   src_window_init(&sw, buf, cap, start, end);
 *   while (src_window_more(&sw)) {
 *           got = src_window_fill(&sw, fd);      (-errno; -ESTALE: the file shrank)
 *           while ((n = src_window_cut(&sw, cp))) the chunk is sw.buf + sw.pos - n;
 *   }
 * (a caller may stop taking chunks before src_window_cut returns 0, and take the rest
 * before the next fill). A region that starts at the file's offset 0 and is a tar
 * archive (tarcut.h) is also cut at the start and end of each member's data of at least
 * cp->tar_floor bytes, so that the member is cut as the same bytes in a file of their own.
 */
struct src_window {
	uint8_t *buf;		/* the caller's, cap bytes */
	size_t cap, have, pos;	/* bytes in buf; the first not cut yet */
	off_t off, end;		/* the next byte to read; the region's end */
	bool eof;		/* the region is read whole */
	bool tar_seen;		/* the region's first bytes were looked at (tar) */
	struct tarcut tar;	/* the forced cuts of a tar archive */
};
void src_window_init(struct src_window *w, uint8_t *buf, size_t cap, off_t start, off_t end);
/* Keeps what is not cut yet (moved to the front) and reads more: the bytes read, -errno. */
ssize_t src_window_fill(struct src_window *w, int fd);
/* The next chunk the window holds for sure (max_size bytes ahead, more for a tar, or the
 * region's end): its length, 0 when the window must be filled again (or all is cut). */
size_t src_window_cut(struct src_window *w, const struct cdc_params *cp);
/* The most chunks one window (of @cap bytes) can give between two fills: the caller's
 * batch of chunks, of this many, never overflows. */
size_t src_window_max_cuts(size_t cap, const struct cdc_params *cp);
static inline bool src_window_more(const struct src_window *w)
{
	return !w->eof || w->pos < w->have;
}

/* The DT_* type of a mode. */
uint8_t src_dtype(mode_t m);
static inline bool src_same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

#endif
