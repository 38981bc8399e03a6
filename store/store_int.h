/*
 * store_int.h - the store's private state, shared by store.c (open, reads, writer),
 * store_txn.c (transactions, commit protocol) and store_recover.c (rebuild from packs).
 * Not part of the contract: nothing outside store/ includes it.
 *
 * Lock order: st->wlock (appends, pending set) before st->packs_lock (reader fds).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_STORE_INT_H
#define DFS_STORE_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "buf.h"
#include "index.h"
#include "pack.h"
#include "store.h"

#define STORE_CONFIG_VERSION 1
#define STORE_OPLOG_MAX (512u << 20)
#define STORE_META_LEVEL 1	/* zstd level of META records (op logs) */

struct pack_slot {
	uint32_t id;
	int fd;
	unsigned refs;
	uint64_t tick;
};

struct pending_chunk {
	struct fp256 id;
	struct store_chunk_loc loc;
	/* A fresh copy of a damaged chunk the index already names (store_repair_chunk):
	 * the commit repoints the index; the counters change by the stored length only. */
	bool repair;
	uint32_t old_stored_len;
};

/* A pack written since the last commit (to be synced, maybe sealed). */
struct dirty_pack {
	uint32_t id;
	int fd;
	uint64_t len;
	bool is_new;	/* its directory entry must be fsync'd */
	bool sealed;	/* no more appends; close after the commit */
};

struct store {
	char *dir;
	char id_hex[33];
	enum store_mode mode;
	struct store_create_opts params;
	struct dfs_buf config;	/* the config file bytes (copied into pack headers) */
	struct idx *ix;
	char *secondary_dir;
	int lock_fd;

	pthread_mutex_t packs_lock;	/* protects packs[] and tick */
	struct pack_slot *packs;
	unsigned npacks;
	uint64_t tick;

	/* Writer state, protected by wlock. */
	pthread_mutex_t wlock;
	struct pending_chunk *pending;	/* in append order */
	size_t npending, cap_pending;
	uint32_t *pend_hash;		/* open addressing: index+1 into pending, 0 = empty */
	size_t hash_cap;
	struct dirty_pack *dirty;	/* current pack last */
	size_t ndirty, cap_dirty;
	uint32_t next_pack;
	int werr;			/* sticky: after a failed sync nothing is retried */
	uint64_t next_ino;		/* writer: allocated in txns */
	uint64_t commit_seq;
	uint64_t stat_chunks, stat_raw, stat_stored;
	bool txn_open;
	struct codec *meta_codec;	/* META records (writer; under wlock), STORE_META_LEVEL */
};

int store_pack_fd_get(struct store *st, uint32_t id, int *fd);
void store_pack_fd_put(struct store *st, uint32_t id);
int store_read_meta_u64(struct store *st, const char *key, uint64_t *val);
/* Appends a record to the current pack (wlock held). Fills @loc. */
int store_append_locked(struct store *st, const struct pack_rec *r, const void *payload,
			struct store_chunk_loc *loc);
int store_pending_lookup_locked(struct store *st, const struct fp256 *id);
int store_pending_rehash(struct store *st, size_t want);
int store_dir_iter_new(struct idx *ix, struct idx_batch *batch, uint64_t dir, const void *after,
		       size_t after_len, struct store_dir_iter **out);
int store_config_parse(const uint8_t *p, size_t n, char id_hex[33], struct store_create_opts *o);
int store_write_file_atomic(const char *path, const void *data, size_t len);

#endif
