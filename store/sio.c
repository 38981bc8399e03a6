/*
 * sio.c - file I/O for packs and config, with test-only fault injection.
 *
 * See sio.h for the DFS_FAULT_* switches (compiled in only with DFS_TEST_FAULTS).
 * Mutating operations are counted: write, sync, truncate, rename, unlink, mkdir,
 * and opens that create.
 *
 * SPDX-License-Identifier: MIT
 */
#include "sio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"

#ifdef DFS_TEST_FAULTS
#include <stdatomic.h>

static atomic_ulong fault_ops;
static long fault_at = -1;
static int fault_errno = EIO;
static int fault_short;
static int fault_crash;
static long fault_skip_sync = -1;	/* DFS_FAULT_SKIP_SYNC */
static atomic_ulong fault_syncs;
static pid_t fault_init_pid;	/* re-read the switches in a forked child */
static const char *fault_count_file;

static void fault_write_count(void)
{
	FILE *f = fopen(fault_count_file, "w");

	if (f) {
		fprintf(f, "%lu\n", (unsigned long)atomic_load(&fault_ops));
		fclose(f);
	}
}

static void fault_init(void)
{
	const char *s;

	if (fault_init_pid == getpid())
		return;
	if (fault_init_pid) {
		atomic_store(&fault_ops, 0);
		atomic_store(&fault_syncs, 0);
	}
	fault_init_pid = getpid();
	fault_at = -1;
	fault_errno = EIO;
	s = getenv("DFS_FAULT_AT");
	if (s)
		fault_at = strtol(s, NULL, 10);
	s = getenv("DFS_FAULT_SKIP_SYNC");
	fault_skip_sync = s ? strtol(s, NULL, 10) : -1;
	s = getenv("DFS_FAULT_ERRNO");
	if (s)
		fault_errno = strcmp(s, "ENOSPC") == 0 ? ENOSPC : strcmp(s, "EIO") == 0 ? EIO
								     : (int)strtol(s, NULL, 10);
	fault_short = getenv("DFS_FAULT_SHORT") != NULL;
	fault_crash = getenv("DFS_FAULT_CRASH") != NULL;
	fault_count_file = getenv("DFS_FAULT_COUNT");
	if (fault_count_file) {
		static int registered;

		if (!registered++)
			atexit(fault_write_count);
	}
}

/* Returns 0 to go on, 1 to make a write short, or -errno to fail the operation. */
static int fault_check(const char *what)
{
	unsigned long n;

	fault_init();
	n = atomic_fetch_add(&fault_ops, 1) + 1;
	if (fault_count_file && fault_at < 0)
		return 0;
	if ((long)n != fault_at)
		return 0;
	if (fault_crash) {
		if (fault_count_file)
			fault_write_count();
		dfs_warn("fault injection: crash before %s (op %lu)", what, n);
		_exit(137);
	}
	if (fault_short && strcmp(what, "write") == 0)
		return 1;
	dfs_warn("fault injection: %s fails with %s (op %lu)", what, strerror(fault_errno), n);
	return -fault_errno;
}

/* True for the one fdatasync that DFS_FAULT_SKIP_SYNC names (the seeded missing sync). */
static bool fault_skip_sync_now(void)
{
	unsigned long n;

	fault_init();
	n = atomic_fetch_add(&fault_syncs, 1) + 1;
	if ((long)n != fault_skip_sync)
		return false;
	dfs_warn("fault injection: fdatasync %lu skipped (seeded bug)", n);
	return true;
}
#else
static inline int fault_check(const char *what)
{
	(void)what;
	return 0;
}

static inline bool fault_skip_sync_now(void)
{
	return false;
}
#endif

int sio_open(const char *path, int flags, mode_t mode)
{
	return sio_openat(AT_FDCWD, path, flags, mode);
}

int sio_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int fd, rc;

	if (flags & O_CREAT) {
		rc = fault_check("open");
		if (rc < 0)
			return rc;
	}
	fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	return fd;
}

int sio_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	int f = fault_check("write");

	if (f < 0)
		return f;
	if (f == 1 && len > 1) {
		/* A short write that persists half the bytes, then fails like a full disk. */
		if (pwrite(fd, p, len / 2, off) < 0)
			return -errno;
		return -ENOSPC;
	}
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t sio_pread(int fd, void *buf, size_t len, off_t off)
{
	return sio_pread2(fd, buf, len, NULL, 0, off);
}

ssize_t sio_pread2(int fd, void *a, size_t alen, void *b, size_t blen, off_t off)
{
	size_t got = 0;

	while (got < alen + blen) {
		struct iovec iov[2];
		int n_iov = 0;
		ssize_t n;

		if (got < alen)
			iov[n_iov++] = (struct iovec){ (char *)a + got, alen - got };
		iov[n_iov++] = (struct iovec){ (char *)b + (got > alen ? got - alen : 0),
					       blen - (got > alen ? got - alen : 0) };
		n = preadv(fd, iov, n_iov, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int sio_fdatasync(int fd)
{
	int rc = fault_check("fdatasync");

	if (rc < 0)
		return rc;
	if (fault_skip_sync_now())
		return 0;
	return fdatasync(fd) < 0 ? -errno : 0;
}

int sio_fsync(int fd)
{
	int rc = fault_check("fsync");

	if (rc < 0)
		return rc;
	return fsync(fd) < 0 ? -errno : 0;
}

int sio_ftruncate(int fd, off_t len)
{
	int rc = fault_check("ftruncate");

	if (rc < 0)
		return rc;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

int sio_rename(const char *from, const char *to)
{
	int rc = fault_check("rename");

	if (rc < 0)
		return rc;
	return rename(from, to) < 0 ? -errno : 0;
}

int sio_unlink(const char *path)
{
	int rc = fault_check("unlink");

	if (rc < 0)
		return rc;
	return unlink(path) < 0 ? -errno : 0;
}

int sio_mkdir(const char *path, mode_t mode)
{
	int rc = fault_check("mkdir");

	if (rc < 0)
		return rc;
	return mkdir(path, mode) < 0 ? -errno : 0;
}

int sio_fsync_dir(const char *path)
{
	struct stat sb;
	char dir[PATH_MAX];
	const char *target = path;
	int fd, rc;

	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		const char *slash = strrchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : 0;

		if (n == 0) {
			target = slash ? "/" : ".";
		} else {
			if (n >= sizeof(dir))
				return -ENAMETOOLONG;
			memcpy(dir, path, n);
			dir[n] = '\0';
			target = dir;
		}
	}
	fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = sio_fsync(fd);
	close(fd);
	return rc;
}

void sio_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int remove_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void sio_remove_tree(const char *path)
{
	nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}
