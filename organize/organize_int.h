/*
 * organize_int.h - the organizer's private state, shared by build.c (generations, the
 * skip/append decision, the producer/placer queue, the sweep, organize_run), place.c
 * (placement, conflict names, unit versions, origins), lookup.c (lookups in the organized
 * tree, with the listings of existing directories) and itree.c (the index seen as a tree
 * by classify/). Not part of the contract: nothing outside organize/ includes it.
 *
 * Threads. A build has two:
 *   - the placer: the caller of organize_run. It owns the store transaction and every
 *     field of struct org not marked otherwise, and runs build.c, place.c and lookup.c.
 *   - the producer: one thread per source (build.c's produce), started and joined by the
 *     placer in organize_source. It runs classify_source over itree.c's callbacks and
 *     queue_emit, reads the source views outside the transaction (committed state:
 *     the build writes nothing there but the MIME types the producer hands over), and
 *     owns the fields marked "producer".
 * They share only struct jqueue, under its lock, and the fields marked "both", which do
 * not change while a producer runs. The tree never depends on timing: the placer places
 * results in the producer's order.
 * Lock order: there is one lock (jqueue.lock); nothing else is locked while it is held
 * but the condition wait.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_ORGANIZE_ORGANIZE_INT_H
#define DFS_ORGANIZE_ORGANIZE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "align.h"
#include "classify/classify.h"
#include "organize.h"
#include "store/buf.h"
#include "store/codec.h"
#include "store/hset.h"
#include "store/store.h"

#define CHAIN_MAX 128
#define ORG_PATH_MAX (1ull << 32)	/* an organized path or an origin, at most */
/* The organized tree's levels the sweep goes down: a source's deepest (CLS_MAX_DEPTH),
 * below the few levels of a rule's destination, with room to spare (memory only). */
#define ORG_MAX_DEPTH (2 * CLS_MAX_DEPTH)
#define ICACHE_SLOTS 4096	/* source records listed and not yet placed (see itree.c) */

struct chain_ent {
	uint8_t *name;
	size_t len;
	uint64_t ino;
};

struct dcache;		/* lookup.c: a kept listing of an existing organized directory */
struct list_batch;	/* itree.c: a listing's batch of entries and their records */
struct jqueue;

struct org {
	struct store *st;	/* both: the store (thread-safe reads) */
	struct store_txn *tx;
	struct codec *codec;	/* producer: reads of stored heads (tree_head) */
	uint64_t gen;
	bool dry_run;		/* both */
	const volatile sig_atomic_t *interrupt;	/* placer: stop when set (NULL: never) */
	size_t idle_commit;	/* idle_commit_bytes() */
	const struct store_source *src;	/* the source being placed */
	/* copy alignment of every source (align.h): read-only once computed, so both */
	struct org_align *align;
	/* placer, but for ->mimes, which only the producer counts (org_tree_mime) */
	struct organize_stats *stats;
	struct timespec now;	/* times of directories the tree makes up: those of the
				 * entry whose placement created them (deterministic) */
	/* the directory chain of the previous placement */
	struct chain_ent chain[CHAIN_MAX];
	size_t nchain;
	/* the unit being placed */
	uint8_t *unit_src;
	size_t unit_src_len;
	uint8_t *unit_eff;	/* effective organized root of the unit */
	size_t unit_eff_len;
	/* org_place's organized path and origin ("SOURCE:/path"): any length, their memory
	 * kept from one entry to the next (ORG_PATH_MAX bytes at most) */
	struct dfs_buf place_path;
	struct dfs_buf place_origin;
	/* every organized inode this build placed or re-marked: what the sweep keeps, and
	 * what decides "taken by this build" without reading the record */
	struct u64set placed;
	/*
	 * Entries an earlier build wrote that this one placed again unchanged, not written:
	 * inode -> KEPT(stored origins, origins this build confirmed, in order), or
	 * KEPT_DONE once written after all (place.c). Origins never confirmed are dropped at
	 * the end (org_finish_kept).
	 */
	struct u64map kept;
	/* an append build: every entry already in the tree is a placement of this build's
	 * (see organize_run) */
	bool append;
	/* directories this build created: all they hold is this build's (no sweep) */
	struct u64set fresh;
	/* XXH3 of (directory, name) of every name this build put in a fresh directory: a
	 * name not in it is not there (org_lookup), without asking the index */
	struct u64set fresh_names;
	/* organized directory paths resolved by this build -> inode (walk_dirs) */
	struct pathmap dirs;
	/*
	 * producer: source records decoded by org_tree_list, by inode number modulo
	 * ICACHE_SLOTS, so the placement of an entry listed just before does not read and
	 * decode it again. Records leave it moved into the jobs (org_icache_take).
	 */
	struct icache_slot {
		uint64_t ino;	/* 0: empty */
		struct store_inode in;
	} *icache;
	/* producer: org_tree_list's batch, kept for the next listing: one per directory
	 * listed (and per unit marker peeked at) would be allocated and cleared again */
	struct list_batch *lb;
	bool lb_busy;
	/*
	 * Full builds over an existing tree (defrag-reclassify, a changed source): the
	 * listings of existing organized directories (not fresh ones), each read once with
	 * one iterator on its first lookup, and the records of their entries, read in
	 * batches from the entry looked up on. Such a build looks up nearly every name and
	 * reads nearly every record it finds, and a point read costs several times an
	 * iterator step. The names this build puts or deletes are put or deleted in the
	 * listing too. A record is used only for an entry this build has not placed, which
	 * it has therefore not written (the index holds what the listing saw), and once.
	 */
	struct dcache *dc;	/* the listings kept (and free slots) */
	size_t ndc;
	struct u64map dc_slot;	/* directory -> its slot + 1 (0: not kept) */
	size_t dc_entries;	/* in all listings kept: at most about DC_BUDGET */
	uint64_t dc_clock;
	struct u64set dc_big;	/* directories too large to keep */
	size_t dc_hit;		/* the slot + 1 and entry of the last lookup answered */
	size_t dc_hit_idx;
	/* the witnesses of the directories this build placed (witness.c) */
	struct org_wit *wit;
	/* the relative symlinks this build placed (links.c) */
	struct org_links *links;
	/* both: the current source's results (see organize_source); set before its
	 * producer starts and cleared after it is joined */
	struct jqueue *q;
	int err;
};

/* ---- the producer/placer queue (build.c) ------------------------------------------------ */

#define JOB_BLOCK 128		/* results per block */
#define JOB_BYTES (1u << 20)	/* path bytes per block, at most about */
#define JQ_BLOCKS 8		/* blocks in flight: the producer waits beyond */

enum { JOB_PLACE, JOB_MIME };

/* A result of classify_source, copied for the placer (paths in the block's bytes). */
struct job {
	uint8_t kind;
	bool in_unit, unit_hash_valid, unit_merges;
	const char *category, *rule, *unit_kind;	/* the rules' and units': alive all run */
	size_t src_path, src_path_len, dest, dest_len, unit_dest, unit_dest_len;
	size_t unit_src_len;	/* the unit's source path is a prefix of src_path */
	uint8_t unit_hash[32];
	uint64_t file;		/* JOB_MIME: the source inode; the type at dest */
	struct store_inode src;	/* JOB_PLACE: the source record (the block's until reset) */
};

/*
 * A block of jobs. It belongs to the producer while it fills it (jqueue.cur), to the
 * placer from the moment it is on jqueue.head's list until it is back on free_blocks,
 * and to the producer again when it takes it from there (jb_reset).
 */
struct job_block {
	struct job v[JOB_BLOCK];
	size_t n;
	struct dfs_buf bytes;
	struct job_block *next;	/* under jqueue.lock while on a list */
};

struct jqueue {
	pthread_mutex_t lock;		/* protects every field below but cur */
	pthread_cond_t cond;		/* any change of them (both threads wait on it) */
	struct job_block *head, *tail;	/* full blocks, in order */
	struct job_block *free_blocks;
	struct job_block *cur;		/* the producer's, being filled (no lock) */
	size_t nblocks;
	bool done;			/* the producer has finished */
	int prod_rc;			/* with this */
	int stop;			/* the placer failed: the producer stops */
};

/* ---- calls between the files (all the placer's unless said) ---------------------------- */

/* build.c: commits the build's transaction once it holds enough op log; 0 or -errno. */
int org_group_commit(struct org *o);
/*
 * build.c: entry (@dir, @name[0..@len)) -> @ino of type @t, left by an earlier generation
 * and not placed by this one, loses its name to an entry this build places there: its
 * dirent and inode record are deleted now, and a directory's inside first (as the sweep
 * would: this build's final sweep walks names, so it never meets the entry again, and
 * its content would stay marked for gc). The caller puts the new entry in the same
 * transaction. Not in a dry run. 0 or -errno.
 */
int org_drop_displaced(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		       uint64_t ino, uint8_t t);
/*
 * build.c: the fingerprint of the algorithm a build records (org_cls): @cls_fp
 * (classify_fingerprint) as it is for placement version 1 (organize.h), else a hash of
 * both. Thread-safe.
 */
uint64_t org_fingerprint(uint64_t cls_fp, unsigned placement_version);
/* build.c, the producer's: hands a MIME type classify computed to the placer. */
int org_queue_mime(struct jqueue *q, uint64_t file, const char *mime);

/*
 * witness.c: directory @dir, child of @parent, is placed by this build; entries placed
 * below @dir (its own origin included) hand up @origin; the sets are written at the end
 * (after every source, before the sweep). 0 or -errno; nothing in a dry run.
 */
int org_wit_dir(struct org *o, uint64_t dir, uint64_t parent);
int org_wit_add(struct org *o, uint64_t dir, const uint8_t *origin, size_t olen);
int org_wit_flush(struct org *o);
void org_wit_release(struct org *o);
/* witness.c: the parent of directory @dir placed by this build, if known. */
bool org_wit_parent(struct org *o, uint64_t dir, uint64_t *parent);

/*
 * links.c: a symlink @src (source path @src_path) placed in organized directory @dir is
 * noted when its target is relative; org_links_check resolves every one noted, once the
 * tree is complete, and counts them in the stats (links_*). 0 or -errno.
 */
int org_links_note(struct org *o, uint64_t dir, const uint8_t *src_path, size_t src_len,
		   const struct store_inode *src);
int org_links_check(struct org *o);
void org_links_release(struct org *o);

/* place.c: places the entry of @r, whose source record is @srcp (borrowed). */
int org_place(struct org *o, const struct cls_result *r, const struct store_inode *srcp);
/* place.c: stores a MIME type classify computed (a failure sets o->err). */
void org_apply_mime(struct org *o, uint64_t file, const char *mime);
/* place.c: writes the directory @ino for this generation (@meta, @cur may be NULL). */
int org_put_dir(struct org *o, uint64_t ino, const struct store_inode *meta, const char *unit,
		const struct store_inode *cur);
/* place.c: forgets the directory chain below depth @n. */
void org_chain_cut(struct org *o, size_t n);
/* place.c: drops the origins no placement confirmed from the entries kept unwritten. */
int org_finish_kept(struct org *o);

/* lookup.c: store_txn_lookup through the build's knowledge of the tree. */
int org_lookup(struct org *o, uint64_t dir, const uint8_t *name, size_t len, uint64_t *child,
	       uint8_t *t);
/* lookup.c: store_txn_get_inode of @ino, found by the last org_lookup. */
int org_get_inode(struct org *o, uint64_t ino, struct store_inode *out);
/* lookup.c: store_txn_put_dirent / store_txn_del_dirent, kept listings updated. */
int org_put_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		   uint64_t child, uint8_t t);
int org_del_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len);
/* lookup.c: drops every kept listing (o->dc itself stays allocated). */
void org_dc_clear_all(struct org *o);

/* itree.c, the producer's: struct cls_tree's callbacks over the index (ctx: struct org). */
int org_tree_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		  void *arg);
ssize_t org_tree_head(void *ctx, uint64_t file, void *buf, size_t len);
void org_tree_mime(void *ctx, uint64_t file, const char *mime);
/* itree.c, the producer's: the source record @ino, from the cache (moved out) or the index. */
int org_icache_take(struct org *o, uint64_t ino, struct store_inode *out);
/* itree.c: frees the record cache and the listing batch (no producer running). */
void org_itree_release(struct org *o);

#endif
