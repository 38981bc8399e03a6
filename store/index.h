/*
 * index.h - the RocksDB index: column families, point reads, prefix iteration,
 * batches that read their own writes, secondary (follower) instances, checkpoints.
 *
 * The only module that includes <rocksdb/c.h>. RocksDB's errptr strings are logged
 * here, freed, and turned into -EIO.
 *
 * Options set for trust: WAL on, commits with sync=true, paranoid_checks,
 * wal_recovery_mode = PointInTime, Bloom filters (10 bits/key) on every family.
 *
 * Threads: struct idx is thread-safe; an idx_batch and an idx_iter belong to one thread.
 * Errors: 0/-errno; -ENOENT for a missing key; -EIO for RocksDB failures (logged).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_INDEX_H
#define DFS_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum idx_cf {
	IDX_META = 0,
	IDX_CHUNKS,
	IDX_CONTENTS,
	IDX_INODES,
	IDX_DIRENTS,
	IDX_SOURCES,
	IDX_SRCMAP,
	IDX_PACKS,
	IDX_NCF,
};

struct idx;
struct idx_batch;
struct idx_iter;

/*
 * Opens (or with @create, creates) the index at @path. With @secondary_path non-NULL the
 * index is opened as a RocksDB secondary instance (read-only, follows the primary):
 * @secondary_path is a directory for the reader alone (made with mode 0700 if missing;
 * best made by the caller with mkdtemp), which must be a directory, not a symlink, owned
 * by the effective uid with no group or other permission (else -ELOOP, -ENOTDIR or
 * -EPERM, logged). Each instance gets a directory in it with an unpredictable name,
 * removed when that instance closes; idx_close removes @secondary_path too if it is
 * still that directory and empty. The directory is kept open and never reached by its
 * path again: if it is removed (a cleaner of /tmp), a fresh one is made beside it,
 * "@secondary_path.XXXXXXXXXXXX" (mkdtemp-like, checked the same way), and if that
 * fails idx_catch_up keeps the current view (see there); a symlink or another user's
 * directory put at its name is never followed, and a removal never follows a symlink.
 * idx_checkpoint and idx_flush on a secondary give -EROFS.
 */
int idx_open(const char *path, bool create, const char *secondary_path, size_t block_cache,
	     struct idx **out);
void idx_close(struct idx *ix);
/*
 * Secondary: catch up with the primary. When the primary switched MANIFEST or WAL since
 * the current instance was opened, a fresh instance replaces it (RocksDB's catch-up
 * loses writes across such a switch) and 1 is returned, even if the sequence number did
 * not move (it may repair writes an earlier catch-up lost); reads and iterators already
 * started keep the instance they began on. If the fresh open fails, the view stays as it
 * is (0; a warning from the third failure in a row). Otherwise RocksDB's catch-up tails
 * the WAL: 0 or -EIO. When the primary's MANIFEST and newest WAL are as they were at the
 * last call (names, sizes, mtimes), nothing is done (0). Calls are serialized. Nothing
 * on a primary (0).
 */
int idx_catch_up(struct idx *ix);
/* How many times idx_catch_up ran RocksDB's catch-up (for tests). */
uint64_t idx_catch_up_count(struct idx *ix);
/* The latest sequence number (changes when anything was written or caught up). */
uint64_t idx_sequence(struct idx *ix);

/* A table file of the current view (idx_tables). */
struct idx_table {
	char *path;		/* absolute or as the index's path was given */
	uint64_t size;		/* bytes */
	int level;		/* LSM level: 0 is the newest data */
};
/*
 * The table files of the current view, fewest-levels-down first, then smallest first
 * (the order in which they are worth keeping in memory: the upper levels are small and
 * hold the newest writes). *@out is freed with idx_tables_free. 0 or -errno.
 */
int idx_tables(struct idx *ix, struct idx_table **out, size_t *n);
void idx_tables_free(struct idx_table *t, size_t n);

/* Reads @key of @cf into @val (cleared first). 0, -ENOENT, -EIO. */
int idx_get(struct idx *ix, enum idx_cf cf, const void *key, size_t klen, struct dfs_buf *val);

/*
 * Reads the @n keys @keys[i] (@klens[i] bytes, any order) of @cf in one batched lookup
 * (RocksDB's batched MultiGet: one pass through the memtables and each file, instead of
 * @n point reads). Calls @fn(@arg, i, rc, v, vlen) once for each i, in index order: rc is
 * 0 with the value (borrowed for the call), or -ENOENT or -EIO (logged) with v NULL.
 * @return 0 when the batch ran (the per-key results went to @fn); -ENOMEM: nothing was
 * read and @fn was not called.
 * Thread-safe.
 */
int idx_multi_get(struct idx *ix, enum idx_cf cf, size_t n, const void *const *keys,
		  const size_t *klens,
		  void (*fn)(void *arg, size_t i, int rc, const uint8_t *v, size_t vlen),
		  void *arg);

/*
 * A batch reads its own writes (idx_batch_get, and idx_iter_new over it). A write it
 * cannot keep (out of memory) makes every later read of the batch and its commit fail
 * with that error: nothing of it is committed. -EROFS on a secondary.
 */
int idx_batch_new(struct idx *ix, struct idx_batch **out);
void idx_batch_free(struct idx_batch *b);
void idx_batch_put(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen,
		   const void *v, size_t vlen);
void idx_batch_del(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen);
/* Reads through the batch, then the database. */
int idx_batch_get(struct idx_batch *b, enum idx_cf cf, const void *key, size_t klen,
		  struct dfs_buf *val);
size_t idx_batch_bytes(struct idx_batch *b);
/* Writes the batch atomically (synced when @sync). The batch is emptied either way. */
int idx_batch_commit(struct idx_batch *b, bool sync);

/*
 * Iterates @cf over keys that start with @prefix, from @start (>= prefix; NULL = prefix).
 * With @b non-NULL the iteration sees the batch's writes over the database.
 */
int idx_iter_new(struct idx *ix, struct idx_batch *b, enum idx_cf cf, const void *prefix,
		 size_t plen, const void *start, size_t slen, struct idx_iter **out);
/* 1 and key/value (borrowed until the next call), 0 at the end, -errno. */
int idx_iter_next(struct idx_iter *it, const uint8_t **k, size_t *klen, const uint8_t **v,
		  size_t *vlen);
void idx_iter_free(struct idx_iter *it);

/* RocksDB checkpoint of the current state into @dir (must not exist). */
int idx_checkpoint(struct idx *ix, const char *dir);
/*
 * Writes the memtables of every column family to table files; with @wait unset, only
 * starts that in RocksDB's background threads (nothing changes for durability: the WAL
 * holds every commit either way).
 */
int idx_flush(struct idx *ix, bool wait);
/*
 * Flushes, then compacts every column family down to one sorted run with its
 * bottommost files rewritten: the table files then hold each live key once (for
 * measuring what the index takes on disk; bench_index_size). -EROFS on a secondary.
 */
int idx_compact(struct idx *ix);

#endif
