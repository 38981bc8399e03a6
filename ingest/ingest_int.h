/*
 * ingest_int.h - what the ingest modules share: the run's state, its threads and locks.
 *
 * Threads of one ingest_source() call:
 *   - the walker (walk.c, one thread): lists directories, stats entries, decides what
 *     needs reading (excludes, hard links, the incremental check) and appends items to
 *     the ring in walk order (a directory before its entries);
 *   - the pre-walk (walk.c, one thread): counts entries and bytes for the progress totals;
 *   - the workers (read.c, @jobs threads): claim file items of the ring and read each once;
 *     a big file's chunks are fingerprinted and compressed by the helpers too;
 *   - the helpers (read.c, @jobs threads): take chunk batches from the pool;
 *   - the committer (ingest.c, the caller's thread): applies the head item once it is
 *     done (commit.c), so index changes happen in walk order, in one thread, and a
 *     parent's inode number is known before its children are placed.
 *
 * Locks, and what each protects:
 *   - ring_lock: the ring (ring, head, tail, claim), each item's state, walk_done, stop
 *     (written under it; the pre-walk reads it without), the failure list;
 *   - pool_lock: the chunk batch list (batches, pool_stop) and each batch's done/users/link;
 *   - mime_lock: the MIME cache's slots;
 *   - dry->lock: the dry run's set of chunk ids;
 *   - none: the counters (atomics); the walker's own fields (fs[].hl, skip_devs); the
 *     committer's own fields (dels, ndels, epoch_noted, security_noted, skipped_unchanged);
 *     an item's result fields, written by the one worker that claimed it, read by the
 *     committer after it saw IT_DONE under ring_lock.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_INGEST_INT_H
#define DFS_INGEST_INGEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ingest.h"
#include "classify/classify.h"
#include "classify/mime.h"
#include "store/buf.h"
#include "store/codec.h"
#include "store/hset.h"
#include "store/store.h"
#include "tarcut.h"

#define IN_RING 4096u
#define READ_WINDOW (8u << 20)
/*
 * A reader's window: READ_WINDOW, or room for two of the largest chunks and the tar
 * finder's look-ahead when chunks may be larger (--chunk-max up to 64 MiB): a cut needs
 * max_size bytes ahead of it, and a window that cannot hold them never cuts.
 */
static inline size_t ing_window_cap(const struct cdc_params *cp)
{
	size_t need = 2 * ((size_t)cp->max_size + TARCUT_LOOKAHEAD);

	return need > READ_WINDOW ? need : READ_WINDOW;
}
#define CHANGE_RETRIES 3
#define COMMIT_BYTES (256ull << 20)	/* file bytes per commit group */
#define COMMIT_META (8u << 20)		/* op log bytes per commit group */
#define MIME_CACHE_SLOTS 16384		/* 2 MiB of remembered MIME types */
#define COMMIT_SECONDS 5
/* The deepest level the walker enters (the root is level 0): a directory deeper is a
 * failed entry, so nothing stored is too deep for the organizer (classify.h). */
#define ING_MAX_DEPTH CLS_MAX_DEPTH
/*
 * Filesystems per source: the root's (index 0) and up to 255 met below it. Inode numbers
 * are unique only within one filesystem (two ext4 filesystems, or two snapshots, number
 * their files alike), so every key made of an st_ino also names the filesystem: the
 * srcmap of a filesystem k > 0 lives under id ING_FS_MAP(source, k) instead of the
 * source's own id, and each filesystem has its own set of hard-linked inodes.
 */
#define ING_MAX_FS 256
#define ING_FS_MAP(source, k) ((k) ? (1u << 31) | ((uint32_t)(source) << 8) | (uint32_t)(k) \
				   : (uint32_t)(source))

/* A directory of the walk: its fd (for openat by workers) and, once the committer has
 * placed it, its inode number. Refcounted: the walker, each child item and each
 * subdirectory hold one. */
struct wdir {
	int fd;
	atomic_int refs;
	uint16_t fs;		/* its filesystem (index in ing.fs) */
	uint64_t st_ino;	/* on the drive */
	struct wdir *up;	/* its parent (a reference), NULL for the root */
	uint8_t *name;		/* its name in the parent (the root's: unused) */
	size_t name_len;
	/* committer only: set before any child is applied; a copy made by dir_writable
	 * replaces it (mine: its record is this run's, changed in place) */
	uint64_t ino;
	bool mine;
};

enum item_state { IT_WAIT = 0, IT_BUSY, IT_DONE };

struct item {
	int state;			/* ring_lock */
	bool is_file_work;		/* a worker must read it */
	struct stat sb;
	uint8_t *path;			/* source-relative, "" for the root */
	size_t path_len;
	size_t name_off;
	struct wdir *parent;		/* NULL for the root */
	struct wdir *self;		/* directories */
	/* results */
	int err;			/* -errno; the item is reported and not stored */
	const char *why;		/* static text for err */
	bool unchanged;			/* incremental: keep the stored record */
	bool link_only;			/* hardlink seen earlier in this run */
	uint64_t old_ino;		/* srcmap hit (unchanged or link_only) */
	struct store_content_builder *cb;
	struct store_str target;
	struct store_xattr *xattrs;
	size_t nxattrs;
	uint8_t *names;			/* directories: sorted child names, NUL-separated */
	size_t names_len;
	bool listing_ok;
	uint16_t fs;			/* the filesystem it is on (index in ing.fs) */
	char *mime;			/* regular files: MIME type from the first bytes read,
					 * when a rule may need it (NULL otherwise) */
};

struct fstree;

struct ingest_dryset {
	pthread_mutex_t lock;
	/* the first 8 bytes (| 1) of each chunk id of the sample -> its raw length (and for
	 * a remote source, in bits 32..62, the DATA frame a real run would receive), or
	 * DRY_KNOWN when the store has it */
	struct u64map ids;
	unsigned shift;			/* in the sample: bits 1..shift of the key are 0 */
	size_t cap;			/* entries before the sample halves */
	uint64_t raw, chunks;		/* new chunks of the sample, and their bytes */
	uint64_t wire;			/* remote sources: their DATA frames' bytes */
	uint64_t comp_raw, comp_stored;	/* the compressed sample, weighted */
	uint64_t comp_all;		/* bytes of new chunks compressed before sampling */
	struct store *st;		/* the existing store, or NULL */
	int err;			/* an insert failed: the estimate is a lower bound */
	/* content ids (first 8 bytes) met in this run, up to cap: past it a content is
	 * counted as new unless the store has it (an upper bound) */
	struct u64set cids;
	struct ing_meter *meter;	/* the op log bytes of new contents */
};
#define DRY_KNOWN (1ull << 63)
#define DRY_RAW 0xffffffffull		/* the raw length in an ids value */
/*
 * The sample (read.c): a chunk id whose key (first 8 bytes | 1) has bits 1..shift zero,
 * so one distinct id in 2^shift, the same ids whichever source or file meets them, and
 * the counts of the sample times 2^shift estimate the whole. ing_dry_halve (d->lock
 * held) keeps the entries still in it at shift + 1 (when the map reaches d->cap).
 */
bool ing_dry_sampled(uint64_t key, unsigned shift);
void ing_dry_halve(struct ingest_dryset *d);
#define DRY_COMP_ALL (256ull << 20)	/* new bytes all compressed, then 1 chunk in 8 */

/* meter.c: the op log bytes of new content objects, compressed as commits do */
struct ing_meter;
int ing_meter_new(struct ing_meter **out);
void ing_meter_free(struct ing_meter *m);
/* Meters content @cb (store_cb_finish'ed, id @cid). 0 or -errno. */
int ing_meter_add(struct ing_meter *m, struct store_content_builder *cb);
/* Meters a reference to content @cid that is not new (its id in a file's inode record:
 * a new content's id there compresses against its record just before). 0 or -errno. */
int ing_meter_add_ref(struct ing_meter *m, const struct fp256 *cid);
/* The compressed op log bytes of every content metered. */
uint64_t ing_meter_estimate(struct ing_meter *m);
uint64_t ing_meter_contents(const struct ing_meter *m);

struct ing {
	const struct ingest_opts *o;
	/* dry run against a store: the live tree (ingest_report.live), in walk order */
	struct ingest_live_entry *live;
	size_t nlive, live_cap;
	int live_err;			/* -ENOMEM once: no alignment said */
	/* a remote source's dry run: its tree as the stream gave it, for the plan (the
	 * committer's); plan_err: -ENOMEM once, no plan */
	struct fstree *plan;
	int plan_err;
	struct store *st;
	const struct store_create_opts *params;
	uint32_t source_id;
	const char *source_name;
	struct classify *cls;		/* rules, for MIME-on-read (NULL: dry run or none) */
	uint64_t run_gen;
	uint64_t epoch;			/* "src_epoch" at the start of the run */
	bool security_noted;		/* STORE_META_SECURITY_XATTRS set in this run */
	bool epoch_noted;		/* advanced in a transaction of this run */
	dev_t root_dev;
	dev_t store_dev;
	ino_t store_ino;
	dev_t *skip_devs;
	size_t nskip_devs;

	/*
	 * MIME types by SHA-256 of the bytes libmagic looks at: the same head gives the same
	 * type, and backups hold many copies (a direct-mapped, fixed-size cache; a slot's
	 * older key is simply replaced).
	 */
	pthread_mutex_t mime_lock;
	struct mime_slot {
		struct fp256 key;
		bool exact;
		char type[96];
	} *mime_cache;
	pthread_mutex_t ring_lock;
	pthread_cond_t ring_cond;	/* any state change */
	struct item *ring[IN_RING];
	uint64_t head, tail, claim;	/* head: next to commit; tail: next free; claim >= head */
	bool walk_done;
	atomic_bool stop;

	/*
	 * The source's filesystems: fs[0] the root's; the others as met by the walker (dev
	 * is this run's st_dev, found again by identity on the next run). The walker fills
	 * an entry before it pushes an item on it; the committer reads it after the ring
	 * hands it the item, and writes fs_saved.
	 */
	struct ing_fs {
		dev_t dev;		/* this run's st_dev, 0: not met in this run */
		uint64_t id;		/* hash of its identity (src_fsid) */
		bool saved;		/* recorded in the store (committer) */
		struct u64set hl;	/* st_ino of multiply-linked files seen (walker) */
	} fs[ING_MAX_FS];
	_Atomic unsigned nfs;		/* entries in fs (grown by the walker) */
	struct ingest_failure *skipped;	/* --one-file-system: mount points (walker) */
	size_t nskipped;

	/* counters */
	atomic_uint_fast64_t files_done, bytes_done, bytes_read, new_raw, new_stored;
	atomic_uint_fast64_t mime_calls, mime_ns;	/* libmagic calls and their thread time */
	atomic_uint_fast64_t total_files, total_bytes;
	atomic_bool prewalk_done;
	uint64_t skipped_unchanged;
	uint64_t committed_files;	/* an interrupted run: files applied and committed */
	/* --replace onto another filesystem: no srcmap entry of the old drive is used, and
	 * the new root (swap_new) takes the old one's name (swap_old) at the end (committer) */
	bool fresh;
	uint64_t swap_old, swap_new;
	bool undoing;			/* ing_undo_replacement at work (committer) */
	/* frozen inodes (a snapshot's: gen < run_gen) placed by this run without being
	 * written: shared directories, renamed unchanged files (committer) */
	struct u64set placed;

	/* failures (committer and walker, under ring_lock) */
	struct ingest_failure *fails;
	size_t nfails, capfails;

	/* chunk pool: big files are cut by one worker and hashed/compressed by many */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;	/* a batch has work */
	pthread_cond_t pool_done;	/* a batch finished */
	struct cbatch *batches;		/* pool_lock */
	bool pool_stop;			/* pool_lock */

	/* deletions deferred to the end: (parent ino, name) */
	struct dfs_buf dels;
	uint64_t ndels;
	/* inodes whose name was given to another inode, dropped at the end unless placed
	 * again (a moved directory): (ino, dtype) */
	struct dfs_buf drops;
	/* a replacement (fresh): the old tree's srcmap entries its files took over,
	 * (map id u32, st_ino u64, old ino u64), put back if the replacement is refused */
	struct dfs_buf srcmap_undo;
	struct ing_meter *meter;	/* committer: contents this run stores first */
	atomic_int fatal;		/* -errno of a failure that stops everything */
};

/* One chunk to fingerprint, and to compress and append if it is new. */
struct cjob {
	const uint8_t *p;
	uint32_t len;
	struct fp256 id;
	int rc;
};

struct cbatch {
	struct cjob *jobs;
	size_t n;
	atomic_size_t next;	/* next job to take */
	size_t done;		/* pool_lock */
	int users;		/* helpers inside the batch; pool_lock */
	struct cbatch *link;	/* pool_lock */
};

struct worker {
	struct ing *g;
	struct codec *codec;
	uint8_t *win;
	uint8_t *cbuf;
	size_t cbuf_cap;
	struct cbatch batch;	/* the chunks of one window */
	struct mime *mime;	/* this worker's libmagic handle (loaded on first use) */
	bool mime_exact;	/* the file being read needs its exact MIME type */
};

struct helper {
	struct ing *g;
	struct codec *codec;
	uint8_t *cbuf;
	size_t cap;
	pthread_t tid;
	bool started;
};

/* ingest.c */
void ing_add_failure(struct ing *g, const uint8_t *path, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* walk.c: items, and the walker and pre-walk threads (arg: struct walk_start) */
struct walk_start {
	struct ing *g;
	int fd;			/* the source root, owned by the thread */
	struct stat sb;
};
void ing_item_free(struct item *it);
const uint8_t *ing_item_name(const struct item *it, size_t *len);
void *ing_walker_main(void *arg);
void *ing_prewalk_main(void *arg);
void ing_collect_skip_devs(struct ing *g);
void ing_stop_all(struct ing *g);

/* read.c: the workers and helpers */
void *ing_worker_main(void *arg);
void *ing_helper_main(void *arg);
/* Does @it need a MIME type? Sets w->mime_exact to how much of one. */
bool ing_want_mime(struct worker *w, const struct item *it);

/* walk.c, for the remote source (remote.c): the walker's own steps */
struct item *ing_item_new(const uint8_t *ppath, size_t plen, const uint8_t *name, size_t nlen);
/* Queues @it for the committer; false when the run is stopping (@it is freed then). */
bool ing_ring_push(struct ing *g, struct item *it);
int ing_hl_seen(struct ing *g, unsigned fs, uint64_t ino);
bool ing_incremental_hit(struct ing *g, struct item *it);
struct wdir *ing_wdir_get(struct wdir *d);
void ing_wdir_put(struct wdir *d);

/*
 * remote.c: a remote source (ssh://HOST/PATH, HOST:PATH). ing_remote_open() starts ssh
 * and the handshake, and fills the root's stat and identity; ing_remote_start() starts
 * the thread that turns the remote's stream into the ring's items (the walker and the
 * workers of a local source); ing_remote_join() stops and joins it.
 */
struct ing_remote;
int ing_remote_open(struct ing *g, const char *spec, struct stat *rootsb, char *fsid,
		    size_t fsidlen, uint64_t *root_fs_id, struct ing_remote **out, char *err,
		    size_t errlen);
int ing_remote_start(struct ing_remote *r);
/* Stops the thread (killing ssh when the run stopped early) and joins it; a failure of
 * the stream: -errno and its message in @err. */
int ing_remote_join(struct ing_remote *r, char *err, size_t errlen);
/* The bytes received; and those a dry run would have received (the chunks' data too). */
void ing_remote_counts(const struct ing_remote *r, uint64_t *received, uint64_t *would);
void ing_remote_close(struct ing_remote *r);

/* ingest.c: the source's filesystem table (read at the start of a run) */
int ing_fs_load(struct ing *g, struct store_txn *tx);
uint64_t ing_fs_id(int fd, const struct stat *sb);

/* commit.c: the committer's changes to the source's view */
int ing_apply_item(struct ing *g, struct store_txn *tx, struct item *it);
/* The deferred deletions: the files they would remove, or applied. Then the drops. */
uint64_t ing_count_deletions(struct ing *g, struct store_txn *tx);
int ing_apply_deletions(struct ing *g, struct store_txn *tx);
int ing_apply_drops(struct ing *g, struct store_txn *tx);
/* A replacement: the files of the old root's tree with no same path under the new one. */
uint64_t ing_count_replaced(struct ing *g, struct store_txn *tx, uint64_t old, uint64_t new);
/*
 * A replacement refused: its new tree (under swap_new, never named) is removed with the
 * srcmap entries that name it, so nothing of it stays in the index. The old drive's
 * entries it overwrote in the srcmap are gone: its next ingest reads its files again.
 */
int ing_undo_replacement(struct ing *g, struct store_txn *tx);

#endif
