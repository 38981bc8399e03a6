/*
 * ra.h - read-ahead: chunks a sequential reader will want next are loaded into the chunk
 * cache by background threads.
 *
 * ll.c detects sequential reads per open file and pushes the extents just past what was
 * read; ra threads decompress them into the cache, where the next read finds them.
 *
 * Threads: thread-safe. Errors: ra_start returns 0 or -errno; ra_push never fails (a
 * full queue drops the hint).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_RA_H
#define DFS_FS_RA_H

#include "fs.h"

#define RA_MAX_THREADS 4

struct ra;

/* Starts @nthreads (1..RA_MAX_THREADS) loader threads over @fs's store and chunk cache. */
int ra_start(struct dfs_fs *fs, unsigned nthreads, struct ra **out);
/* Stops and joins the threads; queued work is dropped. NULL is a no-op. */
void ra_stop(struct ra *ra);
/* Queues extent @e of inode @ino (holes and duplicates of queued work are ignored). */
void ra_push(struct ra *ra, const struct store_extent *e, uint64_t ino);
/*
 * Takes chunk @id off the queue: a reader got there first and loads it itself. Loaded
 * later, after the reader was served it and it left the cache, it would stay there.
 */
void ra_drop(struct ra *ra, const struct fp256 *id);

#endif
