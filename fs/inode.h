/*
 * inode.h - the inodes the kernel holds, with their lookup counts.
 *
 * Kinds of inode identifier: the FUSE ino *is* the index inode number (stable across
 * mounts); FUSE_ROOT_ID == STORE_ROOT_INO (the organized root) and STORE_SOURCES_INO is
 * /.sources. No per-inode state is needed to serve requests; the table exists so live
 * follow can invalidate exactly what the kernel caches, and it follows the FUSE lookup
 * count contract (lookup/readdirplus add, forget subtracts).
 *
 * Threads: thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_INODE_H
#define DFS_FS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ino_table;

int ino_table_new(struct ino_table **out);
void ino_table_free(struct ino_table *t);
void ino_ref(struct ino_table *t, uint64_t ino, uint64_t n);
void ino_forget(struct ino_table *t, uint64_t ino, uint64_t n);
/*
 * Notes that inode @ino is opened with content @tag (a digest of its content id, never
 * 0). Returns false if the kernel may cache pages of another content of this inode (a
 * re-ingest changed the file under the same inode), so the open must not keep the
 * kernel's page cache; true otherwise. Live follow invalidates cached inodes too, but a
 * read that raced with the catch-up can put old pages back after that invalidation.
 */
bool ino_note_open(struct ino_table *t, uint64_t ino, uint64_t tag);
/* Copies up to @max known inode numbers into @out; returns how many. */
size_t ino_snapshot(struct ino_table *t, uint64_t *out, size_t max);
size_t ino_count(struct ino_table *t);

#endif
