/*
 * sio.c - file I/O for packs and config, with test-only fault injection.
 *
 * See sio.h for the DFS_FAULT_* switches (compiled in only with DFS_TEST_FAULTS).
 * Mutating operations are counted: write, sync, truncate, rename, unlink, mkdir,
 * and opens that create. Tree removal and private directories (a reader's, never the
 * store's data) are not counted, and work through directory descriptors only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "sio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

void sio_willneed(int fd, off_t off, size_t len)
{
	(void)posix_fadvise(fd, off, (off_t)len, POSIX_FADV_WILLNEED);
}

/* Whether @dir (a block device's directory in sysfs) or its whole disk is driven by a
 * virtual machine's disk driver (virtio_blk, Xen's vbd). */
static bool virtual_disk(const char *dir)
{
	static const char *const where[] = { "device/driver", "../device/driver" };
	char p[PATH_MAX], drv[PATH_MAX];

	for (size_t i = 0; i < sizeof(where) / sizeof(*where); i++) {
		ssize_t n;
		const char *base;

		if (snprintf(p, sizeof(p), "%s/%s", dir, where[i]) >= (int)sizeof(p))
			return false;
		n = readlink(p, drv, sizeof(drv) - 1);
		if (n <= 0)
			continue;
		drv[n] = '\0';
		base = strrchr(drv, '/') ? strrchr(drv, '/') + 1 : drv;
		return !strcmp(base, "virtio_blk") || !strcmp(base, "vbd");
	}
	return false;
}

int sio_rotational(const char *path)
{
	/* the device's own queue, else its parent's (a partition's directory is inside its
	 * disk's) */
	static const char *const where[] = { "", "../" };
	struct stat st;
	char dev[64], p[96], v[8];
	DIR *d;

	if (stat(path, &st) < 0)
		return -errno;
	snprintf(dev, sizeof(dev), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	for (size_t i = 0; i < sizeof(where) / sizeof(*where); i++) {
		ssize_t n;
		int fd;

		snprintf(p, sizeof(p), "%s/%squeue/rotational", dev, where[i]);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, v, sizeof(v) - 1);
		close(fd);
		if (n <= 0 || (v[0] != '0' && v[0] != '1'))
			continue;
		if (v[0] == '0')
			return 0;
		/* the device, or what it is made of (LVM, dm-crypt, md: slaves/) */
		if (virtual_disk(dev))
			return 0;
		snprintf(p, sizeof(p), "%s/slaves", dev);
		if ((d = opendir(p))) {
			struct dirent *de;
			bool virt = false;

			while (!virt && (de = readdir(d))) {
				char sp[300];

				if (de->d_name[0] == '.')
					continue;
				snprintf(sp, sizeof(sp), "/sys/class/block/%s", de->d_name);
				virt = virtual_disk(sp);
			}
			closedir(d);
			if (virt)
				return 0;
		}
		return 1;
	}
	return -ENOENT;
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

int sio_commit_tmp(int fd, int rc, const char *tmp, const char *path)
{
	if (rc == 0)
		rc = sio_fsync(fd);
	sio_close(fd);
	if (rc == 0)
		rc = sio_rename(tmp, path);
	if (rc == 0)
		rc = sio_fsync_dir(path);
	if (rc < 0)
		unlink(tmp);
	return rc;
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

/*
 * Removal and private directories work through directory descriptors only: each level is
 * opened with openat(O_NOFOLLOW | O_DIRECTORY) and its entries are removed with unlinkat,
 * so a symlink is an entry to unlink, never a way into another directory, and a
 * directory renamed or swapped during the walk is not followed either. Another
 * filesystem mounted below is not entered.
 */
#define SIO_REMOVE_DEPTH 256	/* deeper levels are left (one descriptor per level) */

/* Removes every entry of the directory open at @fd (transferred: closed). Best effort. */
static void remove_children(int fd, unsigned depth)
{
	struct stat top;
	struct dirent *de;
	DIR *d;
	int dfd;

	if (fstat(fd, &top) < 0 || !(d = fdopendir(fd))) {
		close(fd);
		return;
	}
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		struct stat sb;
		int sub;

		if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
			continue;
		/* Linux answers EISDIR for a directory, POSIX EPERM */
		if (unlinkat(dfd, n, 0) == 0 || (errno != EISDIR && errno != EPERM) ||
		    depth >= SIO_REMOVE_DEPTH)
			continue;
		sub = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		if (fstat(sub, &sb) < 0 || sb.st_dev != top.st_dev) {
			close(sub);	/* a mount point: not ours to empty */
			continue;
		}
		remove_children(sub, depth + 1);
		unlinkat(dfd, n, AT_REMOVEDIR);
	}
	closedir(d);
}

void sio_remove_tree(const char *path)
{
	char *dir = strdup(path), *name, *slash;
	int pfd, fd;

	if (!dir)
		return;
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		name = slash + 1;
	} else {
		name = dir;
	}
	pfd = open(!slash ? "." : slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
		goto out;
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		remove_children(fd, 0);
		unlinkat(pfd, name, AT_REMOVEDIR);
	}
out:
	if (pfd >= 0)
		close(pfd);
	free(dir);
}

int sio_private_check(int fd, struct stat *sb)
{
	struct stat s;

	if (fstat(fd, &s) < 0)
		return -errno;
	if (!S_ISDIR(s.st_mode))
		return -ENOTDIR;
	if (s.st_nlink == 0)
		return -ENOENT;
	if (s.st_uid != geteuid() || (s.st_mode & 077))
		return -EPERM;
	if (sb)
		*sb = s;
	return 0;
}

int sio_private_mkdir(int parent_fd, const char *prefix, char *name, size_t cap, int *fd,
		      struct stat *sb)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t plen = strlen(prefix);
	int rc;

	*fd = -1;
	if (plen + SIO_PRIVATE_RANDOM + 1 > cap)
		return -ENAMETOOLONG;
	for (int tries = 0; tries < 100; tries++) {
		uint8_t rnd[SIO_PRIVATE_RANDOM];
		ssize_t got = getrandom(rnd, sizeof(rnd), 0);
		int dfd;

		if (got != (ssize_t)sizeof(rnd))
			return got < 0 ? -errno : -EIO;
		memcpy(name, prefix, plen);
		for (size_t i = 0; i < sizeof(rnd); i++)
			name[plen + i] = set[rnd[i] % (sizeof(set) - 1)];
		name[plen + sizeof(rnd)] = '\0';
		/* mkdirat never follows or reuses what is there: a new name is drawn */
		if (mkdirat(parent_fd, name, 0700) < 0) {
			if (errno == EEXIST)
				continue;
			return -errno;
		}
		dfd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		/* the umask may have taken the owner's bits */
		rc = fchmod(dfd, 0700) < 0 ? -errno : sio_private_check(dfd, sb);
		if (rc < 0) {
			close(dfd);
			return rc;
		}
		*fd = dfd;
		return 0;
	}
	return -EEXIST;
}

int sio_private_remove(int parent_fd, const char *name, const struct stat *id, bool tree)
{
	struct stat sb;
	int fd, rc;

	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (sb.st_dev != id->st_dev || sb.st_ino != id->st_ino) {
		close(fd);
		return -ESTALE;
	}
	if (tree)
		remove_children(fd, 0);
	else
		close(fd);
	return unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}
