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

#include <stddef.h>
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
int sio_fdatasync(int fd);
int sio_fsync(int fd);
int sio_ftruncate(int fd, off_t len);
int sio_rename(const char *from, const char *to);
int sio_unlink(const char *path);
int sio_mkdir(const char *path, mode_t mode);
/* fsync of the directory holding @path (or of @path itself if it is a directory). */
int sio_fsync_dir(const char *path);
void sio_close(int fd);
/*
 * Removes @path and everything under it (never following symlinks), as far as it can:
 * for temporary and private directories (a reader's follow directories, a half-created
 * store), so not a counted operation and no error is returned.
 */
void sio_remove_tree(const char *path);

#endif
