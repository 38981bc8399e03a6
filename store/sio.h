/*
 * sio.h - the store's file I/O, in one thin layer that tests can make fail.
 *
 * Every pack and config write, sync, rename and truncate goes through sio_*, so tests
 * can inject EIO, ENOSPC, short writes, or "crash after N mutating operations".
 * Faults exist only in builds with DFS_TEST_FAULTS and are armed from the environment:
 *   DFS_FAULT_AT=N        the Nth mutating operation (1-based) fails ...
 *   DFS_FAULT_ERRNO=E     ... with errno E (EIO, ENOSPC; default EIO), or
 *   DFS_FAULT_SHORT=1     ... as a short write (half the bytes), or
 *   DFS_FAULT_CRASH=1     ... by _exit(137) just before it runs (a crash point)
 *   DFS_FAULT_COUNT=FILE  at exit, the number of mutating operations is written to FILE
 *   DFS_FAULT_SKIP_SYNC=N the Nth sio_fdatasync (1-based, counted on its own) returns 0
 *                         without syncing: a seeded bug that tests/integration/t_powercut.sh
 *                         must catch (it still counts as a mutating operation)
 * RocksDB's own files do not pass here (its C API has no custom Env); the fault
 * filesystem in tests/tools covers them.
 *
 * Threads: all functions are thread-safe (the fault counter is atomic).
 * Errors: 0 / bytes, or -errno; never retried after a failed fsync.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_SIO_H
#define DFS_STORE_SIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

int sio_open(const char *path, int flags, mode_t mode);
int sio_openat(int dirfd, const char *path, int flags, mode_t mode);
/* Writes all of @len bytes at @off (loops over partial writes). 0 or -errno. */
int sio_pwrite(int fd, const void *buf, size_t len, off_t off);
/* Reads up to @len bytes at @off, looping until EOF. Returns bytes read or -errno. */
ssize_t sio_pread(int fd, void *buf, size_t len, off_t off);
/* Reads @alen bytes into @a then @blen into @b from @off in one preadv (looping like
 * sio_pread). Returns bytes read (short only at EOF) or -errno. */
ssize_t sio_pread2(int fd, void *a, size_t alen, void *b, size_t blen, off_t off);
/* Asks the kernel to start reading @len bytes at @off (posix_fadvise WILLNEED): a hint,
 * returns at once; errors are ignored. */
void sio_willneed(int fd, off_t off, size_t len);
/*
 * Whether the block device that holds @path has a head: 1 when the kernel says it is
 * rotational (/sys/dev/block/MAJ:MIN/queue/rotational, or its whole disk's for a
 * partition) and it is not a virtual machine's disk, nor made of one (driver virtio_blk
 * or Xen's vbd, for the device or a device in its slaves/: those say rotational whatever
 * the host's media is); 0 when not; -ENOENT when not
 * known (tmpfs, FUSE, NFS, btrfs over several devices), other -errno.
 */
int sio_rotational(const char *path);
int sio_fdatasync(int fd);
int sio_fsync(int fd);
int sio_ftruncate(int fd, off_t len);
int sio_rename(const char *from, const char *to);
int sio_unlink(const char *path);
int sio_mkdir(const char *path, mode_t mode);
/* fsync of the directory holding @path (or of @path itself if it is a directory). */
int sio_fsync_dir(const char *path);
/*
 * The end of writing @tmp through @fd (@rc: 0, or the write's error): fsync, close,
 * rename to @path, fsync of its directory; on any error @tmp is removed. @fd is closed
 * in every case. 0 or -errno.
 */
int sio_commit_tmp(int fd, int rc, const char *tmp, const char *path);
void sio_close(int fd);
/*
 * Removes the directory @path and everything under it, as far as it can: for temporary
 * and private directories (a half-created index, old checkpoints), so not a counted
 * operation and no error is returned. Only the directories above @path are reached by
 * path; @path itself and every level below are opened with O_NOFOLLOW and emptied with
 * unlinkat, so a symlink (at @path or below) is never followed: one below is unlinked,
 * and anything but a directory at @path is left as it is. Another filesystem mounted
 * below is not entered, and levels deeper than 256 are left (a descriptor each).
 */
void sio_remove_tree(const char *path);

/*
 * Private directories: a reader's follow directories, in a directory others can write
 * (/tmp). Made with an unpredictable name, reached and removed only through descriptors,
 * checked with fstat: a path someone else made is never reused or followed.
 * None is a counted operation. Thread-safe.
 */
#define SIO_PRIVATE_RANDOM 12	/* random characters ([A-Za-z0-9]) in a private name */

/*
 * Checks that the directory open at @fd is private to us: a directory still linked (not
 * removed), owned by the effective uid, with no group or other permission bits.
 * @param[out] sb  its fstat on success (optional)
 * @return 0; -ENOENT removed; -ENOTDIR; -EPERM another owner or a group/other bit; -errno.
 */
int sio_private_check(int fd, struct stat *sb);
/*
 * Makes a fresh private directory under @parent_fd (borrowed), as mkdtemp does but
 * relative to a descriptor: @prefix followed by SIO_PRIVATE_RANDOM random characters,
 * made with mkdirat (a name that exists, a planted symlink included, is never reused:
 * another is drawn), mode 0700, opened with O_NOFOLLOW and checked (sio_private_check).
 * @param[out] name  its name (@cap bytes: strlen(@prefix) + SIO_PRIVATE_RANDOM + 1 at least)
 * @param[out] fd    an O_DIRECTORY descriptor of it (the caller closes it); -1 on failure
 * @param[out] sb    its fstat: the identity sio_private_remove checks
 * @return 0; -ENAMETOOLONG (@cap); -EEXIST (100 names drawn, all taken); -EPERM (the
 * directory made is not ours: a filesystem that ignores the owner); -errno of mkdirat.
 */
int sio_private_mkdir(int parent_fd, const char *prefix, char *name, size_t cap, int *fd,
		      struct stat *sb);
/*
 * Removes the directory @name under @parent_fd (borrowed) if it is still the directory
 * @id (same st_dev and st_ino), never following a symlink: with @tree everything under it
 * first (as sio_remove_tree below @path), else only if it is empty.
 * @return 0; -ESTALE (@name is another directory now: nothing removed); -ELOOP or
 * -ENOTDIR (a symlink or a file at @name: left); -ENOENT (gone); -ENOTEMPTY (without
 * @tree, something is in it: left); -errno.
 */
int sio_private_remove(int parent_fd, const char *name, const struct stat *id, bool tree);

#endif
