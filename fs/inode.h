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
/*
 * One more lookup of each of @inos[0..@n) (a repeated number gets one per occurrence), all
 * under one lock: what @n ino_ref(t, inos[i], 1) calls do, each followed, where @plain is
 * non-NULL and @plain[i] true, by ino_set_plain(t, inos[i], @gen). For READDIRPLUS replies.
 */
void ino_ref_many(struct ino_table *t, const uint64_t *inos, const bool *plain, size_t n,
		  uint64_t gen);
void ino_forget(struct ino_table *t, uint64_t ino, uint64_t n);
/*
 * Page cache of an inode whose content can change under live follow (a re-ingest gives
 * the same source inode new content). ino_open notes an open with content @tag (a digest
 * of the content id, never 0) and says whether the kernel may keep its cached pages
 * (keep_cache): only if every open so far saw this same content, and no handle on an
 * older content is open or was released since the cache was last dropped (its reads may
 * have put old pages back, after live follow invalidated them). ino_release pairs with
 * each ino_open.
 */
bool ino_open(struct ino_table *t, uint64_t ino, uint64_t tag);
void ino_release(struct ino_table *t, uint64_t ino, uint64_t tag);
/*
 * The xattrs of a known inode, as far as it matters for a fast ENODATA: ino_set_plain notes
 * that @ino, read from the index while live follow's generation was @gen, has no xattrs of
 * its own (it may still have the synthetic user.defrag.* ones); ino_is_plain says whether
 * that was noted under generation @gen (a catch-up since makes it unknown again). Nothing
 * is noted for an inode the table does not hold, and forgetting an inode forgets it.
 */
void ino_set_plain(struct ino_table *t, uint64_t ino, uint64_t gen);
bool ino_is_plain(struct ino_table *t, uint64_t ino, uint64_t gen);
/*
 * What the kernel's directory cache may hold for a known directory (fs/ll.c op_opendir):
 * nothing noted, a listing of names only, or one with attributes (READDIRPLUS with
 * inodes). ino_set_listing notes it, ino_listing asks. Nothing is noted for an inode the
 * table does not hold, and forgetting it forgets the note.
 */
enum ino_listing { INO_UNLISTED, INO_LISTED_NAMES, INO_LISTED_ATTRS };
void ino_set_listing(struct ino_table *t, uint64_t ino, enum ino_listing l);
enum ino_listing ino_listing(struct ino_table *t, uint64_t ino);
/* Copies up to @max known inode numbers into @out; returns how many. */
size_t ino_snapshot(struct ino_table *t, uint64_t *out, size_t max);
size_t ino_count(struct ino_table *t);

#endif
