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
#include <stdatomic.h>
#include <stdbool.h>

#include "buf.h"
#include "index.h"
#include "pack.h"
#include "pback.h"
#include "store.h"

#define STORE_CONFIG_VERSION 1
#define STORE_CONFIG_VERSION_REMOTE 2	/* + packs, s3_* lines: pback.h */
#define STORE_OPLOG_MAX (512u << 20)
#define STORE_META_LEVEL 1	/* zstd level of META records (op logs) */
/* A remote store's newest pack stays open across commits while it is smaller than this
 * (put again, whole, by each commit that adds to it), so commits that store little or no
 * data (their META record only) do not leave an object each. */
#define STORE_REMOTE_OPEN_MAX (4u << 20)

/*
 * The writer lock: flock(STORE/lock), whose line names the holder ("PID", or "PID brief").
 * A brief holder (store_open_opts.brief) is waited for, up to STORE_LOCK_BRIEF_WAIT_MS;
 * any other holder fails the call after STORE_LOCK_GRACE_MS with -EWOULDBLOCK (said on
 * the log with the holder's pid). @fd_out: the locked descriptor (close releases it).
 */
#define STORE_LOCK_GRACE_MS 250
#define STORE_LOCK_BRIEF_WAIT_MS 60000
int store_writer_lock(const char *dir, bool brief, int *fd_out);

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
	uint64_t put_len; /* remote backend: its bytes confirmed on the server (a pack kept
			   * open, the newest and small, is put again when it grew) */
	bool named;	/* remote backend: sealed, and a commit named it (staged copy removed) */
};

/* A remote store's uploader (store_upload.c); every field protected by @lock. */
struct upl_job;
struct store_upl {
	pthread_mutex_t lock;	/* after st->wlock */
	pthread_cond_t cond;	/* a job queued or finished, an error, stop */
	pthread_t thread;
	bool started, stop;
	struct upl_job *jobs;	/* queued, being put, or confirmed and not yet committed */
	size_t njobs, cap;
	unsigned busy;		/* jobs queued or being put (bounded) */
	int err;		/* sticky: the first failed put */
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

	/* Where packs live: @stage is STORE/packs/ (where every pack is written, and the
	 * whole backend of a local store); @pb is @stage, or a remote backend (pback.h) that
	 * sealed packs are put to before a commit names them. @pc caches a remote backend's
	 * bytes on disk (pcache.h). All three are set at open and thread-safe. */
	struct pback *stage;
	struct pback *pb;
	struct pcache *pc;
	char *pc_private;	/* a private cache directory made for this open (removed) */
	int pc_lock_fd;		/* @pc_private open and flock()ed: in use (store.c) */

	pthread_mutex_t packs_lock;	/* protects packs[] and tick */
	struct pack_slot *packs;
	unsigned npacks;
	size_t one_read;	/* pack_read_part's @one_read (store_open_opts.disk) */
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
	_Atomic uint64_t reported_seq;	/* reader: the index sequence store_catch_up reported */
	struct store_upl upl;		/* remote backend, writer: sealed packs being put */
};

int store_pack_fd_get(struct store *st, uint32_t id, int *fd);
void store_pack_fd_put(struct store *st, uint32_t id);
/*
 * Pack @id for reading: its file in STORE/packs/ if there is one (a local store's, or a
 * remote one's staged pack), else the remote backend through the pack cache.
 * -ENOENT when neither has it. Release with store_pack_src_put.
 */
int store_pack_src_get(struct store *st, uint32_t id, struct pack_src *src);
void store_pack_src_put(struct store *st, const struct pack_src *src);
/* The size of pack @id where readers find it (as store_pack_src_get). */
int store_pack_size(struct store *st, uint32_t id, uint64_t *size);
/* Removes pack @id from the backend and from STORE/packs/ (-ENOENT if in neither). */
int store_pack_remove(struct store *st, uint32_t id);
/* Remote backend: puts the staged, sealed pack @id of @len bytes (and confirms it). */
int store_pack_put(struct store *st, uint32_t id, uint64_t len);
/* Remote backend: removes the staged copy of pack @id once a commit named it. */
void store_pack_unstage(struct store *st, uint32_t id);
/*
 * The uploader (store_upload.c), remote backend only. store_upl_queue: pack @id, sealed at
 * @len bytes, is put in the background (starts the thread; waits while UPL_MAX_QUEUED are
 * queued; a pack already queued is not queued twice). store_upl_wait: until every pack of
 * @ids is confirmed on the server. store_upl_forget: a commit named them. All return the
 * first failed put, sticky (store_upl_err). store_upl_stop (at close) ends the thread;
 * queued puts not started are dropped.
 */
void store_upl_init(struct store *st);
int store_upl_queue(struct store *st, uint32_t id, uint64_t len);
int store_upl_wait(struct store *st, const uint32_t *ids, size_t n);
void store_upl_forget(struct store *st, const uint32_t *ids, size_t n);
int store_upl_err(struct store *st);
void store_upl_stop(struct store *st);
/*
 * Remote backend, writer: removes the objects of packs below next_pack that the index
 * does not name and that are not staged (a gc's delete that failed, a pull's): no commit
 * can name them again, pack ids are never reused. Lists the bucket. Failures are logged
 * and left for the next call. Returns how many were removed.
 */
uint64_t store_remove_orphans(struct store *st);
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

/* The extents a content record lists (IDX_CONTENTS: a head, key FP_LEN bytes, or an
 * extent block, FP_LEN + 4): none for an inline content or a head with blocks. Free
 * *@ext. 0 or -EBADMSG / -ENOMEM. */
struct enc_extent;
int store_content_rec_extents(size_t kl, const void *v, size_t vl, struct enc_extent **ext,
			      size_t *n);
/* defrag-gc (store_gc.c) on a writer's transaction (store_txn.c): */
/* deletes key @k of family @cf (in the op log) */
int store_txn_del_key(struct store_txn *tx, enum idx_cf cf, const void *k, size_t klen);
/* chunk @id (at @loc) is garbage: ENC_OP_DROP with @bound in the op log, the index entry
 * deleted and the counters lowered at the commit */
int store_txn_drop_chunk(struct store_txn *tx, const struct fp256 *id,
			 const struct store_chunk_loc *loc, uint32_t bound);
/* pack @id leaves the index with the commit (not in the op log: packs are found on disk) */
void store_txn_retire_pack(struct store_txn *tx, uint32_t id);
/* Seals the pack being appended to, so the next append starts a new one; returns the id
 * the next pack will have (every record appended from now on is in a pack >= it). */
uint32_t store_seal_current(struct store *st);
/* Pack @id, sealed by store_seal_current with every byte committed, leaves the writer's
 * list of packs to record at the next commit (which drops it from the index). */
void store_drop_dirty(struct store *st, uint32_t id);

#endif
