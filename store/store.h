/*
 * store.h - the store facade: open/close, inodes and directories, content reads,
 * chunk puts and committed metadata transactions.
 *
 * A store directory holds config (format, parameters), index/ (RocksDB, a cache that
 * can be rebuilt from the packs), packs/NN/ID.pack (append-only records) and
 * checkpoints/. See docs/ARCHITECTURE.md for the on-disk format and commit protocol.
 *
 * Inode numbers are the index's own, allocated monotonically and never reused:
 *   STORE_ROOT_INO     the organized tree's root (the mount root, FUSE_ROOT_ID)
 *   STORE_SOURCES_INO  the /.sources directory; its entries are source roots
 *
 * Modes: STORE_WRITER (one process at a time, holds STORE/lock, creates the store when
 * asked), STORE_READER (a RocksDB secondary instance: works while a writer runs and
 * follows it with store_catch_up()).
 *
 * Threads: every function taking a struct store is thread-safe, except that a
 * struct store_txn, store_dir_iter or store_content belongs to one thread at a time.
 * Errors: 0 or -errno. -EBADMSG: bytes on disk are invalid (corrupt); -EPROTONOSUPPORT:
 * unknown format version; -ENOENT: no such inode/entry/chunk; -EWOULDBLOCK: another
 * writer holds the store (its pid is logged); -EIO: RocksDB or libc I/O error (logged).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_STORE_H
#define DFS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "cdc.h"
#include "codec.h"
#include "fp.h"

#define STORE_ROOT_INO 1ull
#define STORE_SOURCES_INO 2ull
#define STORE_FIRST_INO 16ull

#define STORE_DEFAULT_DIR "/var/lib/defragfs"
/* Largest value accepted for one xattr, and for the rendered origins list. */
#define STORE_XATTR_MAX 65536

enum store_mode {
	STORE_READER = 0,
	STORE_WRITER = 1,
};

struct store_create_opts {
	struct cdc_params cdc;
	int zstd_level;		/* 1..CODEC_MAX_LEVEL */
	uint64_t pack_target;	/* bytes; a pack is sealed past this size */
	uint32_t inline_max;	/* content up to this size is stored inline in its record */
	uint32_t keep_checkpoints;
	/*
	 * Where sealed packs live (pback.h). Empty: STORE/packs (a local store). Else
	 * "s3://BUCKET[/PREFIX]" on the S3 server @s3_endpoint (http[s]://HOST[:PORT]),
	 * virtual-host addressing if @s3_vhost (else path-style), signed for @s3_region
	 * (empty: $AWS_REGION or us-east-1), with the keys of the environment or of the
	 * file @s3_credentials (never the secret itself). Recorded in the config (its
	 * version 2): a store never changes backend but through defrag-store push.
	 */
	char packs[256];
	char s3_endpoint[256];
	char s3_region[64];
	char s3_credentials[256];
	bool s3_vhost;
};

struct store_open_opts {
	enum store_mode mode;
	bool create;				/* writer only: create the store if absent */
	const struct store_create_opts *create_opts;	/* NULL = defaults */
	size_t block_cache;			/* RocksDB block cache bytes (0 = default) */
	unsigned max_open_packs;		/* reader fd cache (0 = default 64) */
	/* writer only: the index is being rebuilt from the packs (defrag-recover), so it is
	 * not refused for being older than them (-ESTALE otherwise: see store_open) */
	bool rebuilding;
	/* writer only: held for one short change (defrag-verify recording a gate's result).
	 * A writer that finds the lock held by a brief one waits for it (a minute at most)
	 * rather than failing with -EWOULDBLOCK; store_open waits for a brief holder in any
	 * case. */
	bool brief;
	/* A store whose packs are remote reads them through an on-disk cache: @pack_cache
	 * (its packs under a subdirectory named by the store id), at most @pack_cache_size
	 * bytes (0 = 1 GiB). NULL: a private cache, removed at store_close (reads show what
	 * the server holds now: defrag-verify). Ignored for a local store. */
	const char *pack_cache;
	uint64_t pack_cache_size;
	/* Whether the packs' disk has a head, for part reads (store_chunk_read_part): on
	 * one, a chunk's header and the blocks asked for are read in one request (a second
	 * would cost a seek); otherwise two when the blocks are far into the chunk. AUTO
	 * asks the kernel about packs/ (sio_rotational; not known: no head). */
	enum store_disk { STORE_DISK_AUTO = 0, STORE_DISK_FLASH, STORE_DISK_HEAD } disk;
};

struct store;

void store_create_opts_default(struct store_create_opts *o);
/*
 * @return 0; -ENOENT (no store at @dir, and not create), -EWOULDBLOCK (writer lock held),
 * -ESTALE (writer: the packs hold a commit two or more past the index's last, so an older
 * index was put in place; nothing changed, logged with what to do).
 */
int store_open(const char *dir, const struct store_open_opts *o, struct store **out);
void store_close(struct store *st);
/* Reader: catch up with the writer. @return 1 if the index moved, 0 if not, -errno. */
int store_catch_up(struct store *st);
/* Borrowed, valid until store_close. */
const char *store_dir(const struct store *st);
const struct store_create_opts *store_params(const struct store *st);
/* The store's random 16-byte id, as 32 hex digits (borrowed). */
const char *store_id_hex(const struct store *st);

/* ---- inodes ---------------------------------------------------------------- */

enum store_view {
	STORE_VIEW_ORG = 1,	/* organized tree */
	STORE_VIEW_SRC = 2,	/* /.sources/NAME/... */
};

struct store_str {
	uint8_t *p;	/* owned by the inode that holds it */
	size_t len;
};

struct store_xattr {
	struct store_str name;	/* without NUL */
	struct store_str value;
};

struct store_inode {
	uint64_t ino;
	uint8_t view;		/* enum store_view */
	uint32_t mode;		/* st_mode: type and permission bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;		/* st_size (logical, holes included) */
	uint64_t data_bytes;	/* bytes that are not holes (for st_blocks) */
	uint64_t rdev;
	struct timespec atime, mtime, ctime;
	bool has_content;
	struct fp256 content;	/* regular files: content object id */
	/* Source identity (SRC view; first origin in the ORG view). */
	uint32_t source_id;
	uint64_t src_ino;	/* st_ino in the source filesystem */
	uint64_t gen;		/* organized tree generation that wrote it (ORG view) */
	struct store_str target;	/* symlink target bytes */
	struct store_xattr *xattrs;	/* the file's own xattrs, sorted by name */
	size_t nxattrs;
	struct store_str mime;		/* MIME type if computed, else empty */
	struct store_str category;	/* ORG view */
	struct store_str rule;		/* ORG view */
	struct store_str *origins;	/* ORG view: "NAME:/path" bytes, unescaped */
	size_t norigins;
	uint64_t origins_total;		/* full count (origins may be capped) */
	struct store_str unit;		/* ORG: unit kind and root, "" for loose files */
};

/* Frees the owned parts and zeroes the struct (safe on a zeroed struct). */
void store_inode_release(struct store_inode *in);
/* Do @a and @b encode the same record, their generations aside? (-ENOMEM: false) */
bool store_inode_same(const struct store_inode *a, const struct store_inode *b);
/* Deep copy: @dst receives owned copies. 0 or -ENOMEM. */
int store_inode_copy(struct store_inode *dst, const struct store_inode *src);

/* Reads inode @ino. -ENOENT if absent. @out must be released by the caller. */
int store_get_inode(struct store *st, uint64_t ino, struct store_inode *out);
/*
 * Reads the @n inodes @inos[] (any order, repeats allowed) in one batch, much cheaper than
 * @n store_get_inode calls (READDIRPLUS reads a reply's worth at once): one iterator pass
 * when the numbers are dense (a directory's children usually are), else one batched
 * point read.
 * For each i, @rcs[i] and @out[i] are what store_get_inode(@st, @inos[i], &@out[i]) would
 * give: 0 and the record, or -ENOENT (absent), -EBADMSG / -EPROTONOSUPPORT (logged), -EIO.
 * @param[out] out  @n records; the caller releases each with store_inode_release (safe
 *                  on the failed ones too: they hold no memory)
 * @param[out] rcs  @n results
 * @return 0 when the batch ran (results per inode in @rcs); -ENOMEM: nothing was read,
 * every @out[i] is zeroed and every @rcs[i] is -ENOMEM.
 */
int store_get_inodes(struct store *st, const uint64_t *inos, size_t n, struct store_inode *out,
		     int *rcs);

/* ---- directories ------------------------------------------------------------ */

/* dtype values are those of <dirent.h> (DT_REG, DT_DIR ...). */
int store_lookup(struct store *st, uint64_t parent, const void *name, size_t name_len,
		 uint64_t *child, uint8_t *dtype);

struct store_dir_iter;
/* Iterates @dir's entries in byte order of name, starting strictly after @after
 * (NULL: from the first). */
int store_dir_open(struct store *st, uint64_t dir, const void *after, size_t after_len,
		   struct store_dir_iter **out);
/* @return 1 and an entry (name borrowed until the next call), 0 at the end, or -errno. */
int store_dir_next(struct store_dir_iter *it, const uint8_t **name, size_t *name_len,
		   uint64_t *ino, uint8_t *dtype);
void store_dir_close(struct store_dir_iter *it);
/*
 * Walks every entry below directory @dir (store_tree.c), depth first, each directory's
 * entries in name order: @fn gets the entry's path (@path's bytes on entry, then "/NAME"
 * per level; borrowed for the call), its depth (1 for @dir's entries), inode and dtype,
 * and returns 1 to walk into it (a directory), 0 to go on, anything else to stop the
 * walk, which then returns it. Levels are on the heap: any depth. @path is left as it
 * was. Returns 0, @fn's stop value, or -errno (-ENOMEM; the index's).
 */
int store_walk_tree(struct store *st, uint64_t dir, struct dfs_buf *path,
		    int (*fn)(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
			      uint8_t dtype),
		    void *arg);

/* ---- content ------------------------------------------------------------------ */

struct store_extent {
	uint64_t off;		/* offset in the file */
	uint32_t len;
	bool hole;		/* a run of zeros that is not stored */
	struct fp256 chunk;	/* valid when !hole */
};

struct store_content;
/* Opens content object @cid (loads its head, not its chunk list). */
int store_content_open(struct store *st, const struct fp256 *cid, struct store_content **out);
/* The most memory @c holds while it is read (its head and the largest extent block). */
size_t store_content_mem(const struct store_content *c);
void store_content_close(struct store_content *c);
uint64_t store_content_size(const struct store_content *c);
/* Inline content (tiny files): returns the bytes (borrowed, valid until close), else NULL. */
const uint8_t *store_content_inline(const struct store_content *c, size_t *len);
/* The extent containing @off (one block read at most). -ENXIO at or past EOF. */
int store_content_extent(struct store_content *c, uint64_t off, struct store_extent *out);
/* SEEK_DATA / SEEK_HOLE from @off. @return 0 and *res, or -ENXIO. */
int store_content_seek(struct store_content *c, uint64_t off, int whence, uint64_t *res);

/* Raw (decompressed) length of chunk @id, and where it lives. */
struct store_chunk_loc {
	uint32_t pack;
	uint64_t off;		/* record offset in the pack */
	uint32_t raw_len;
	uint32_t stored_len;
	uint8_t codec;
};
int store_chunk_locate(struct store *st, const struct fp256 *id, struct store_chunk_loc *out);
/*
 * Reads chunk @id into @dst (capacity @cap >= raw length), checking the record checksum
 * (and with @verify_id also the SHA-256 of the result). Uses @codec (caller's, one per thread).
 * @return raw length, -EBADMSG on corruption (logged with pack and offset).
 */
ssize_t store_chunk_read(struct store *st, struct codec *codec, const struct fp256 *id,
			 void *dst, size_t cap, bool verify_id);
/*
 * Bytes [@from, @from + @len) of chunk @id (@raw_len bytes, as its extent says) into
 * @dst, reading and checking only the blocks they are in. 0; -EOPNOTSUPP when the chunk
 * is not stored that way (compressed, a version 1 record, a remote pack, not in the
 * index: store_chunk_read reads it whole and reports what is wrong); -EBADMSG (logged),
 * -EIO, -ENOMEM.
 */
int store_chunk_read_part(struct store *st, const struct fp256 *id, uint32_t raw_len,
			  uint64_t from, size_t len, void *dst);
/* Convenience read without a cache: copies [off, off+len) of @c into @buf, zeros for holes.
 * @return bytes read (short only at EOF) or -errno. */
ssize_t store_content_pread(struct store *st, struct codec *codec, struct store_content *c,
			    void *buf, size_t len, uint64_t off);

/* ---- sources ------------------------------------------------------------------ */

struct store_source {
	uint32_t id;
	struct store_str name;
	struct store_str fsid;		/* filesystem UUID or the store's marker id */
	struct store_str path;		/* path given at the last ingest */
	uint64_t root_ino;
	int64_t first_ingest, last_ingest;	/* unix seconds; 0 = never completed */
	uint64_t files, bytes;			/* at the last completed ingest */
	int64_t last_against;			/* last defrag-verify --against, 0 = never */
	int32_t against_result;			/* 0 clean, else failures; -1 never */
	uint64_t against_gen;			/* ingest generation it checked */
	uint64_t ingest_gen;			/* bumped at each completed ingest */
	/* the --exclude patterns of the last ingest, each ending in a NUL ("" = none): the
	 * gate does not report what they kept out of the view (source record v2) */
	struct store_str excludes;
	/* the completed ingests kept as snapshots, oldest first (source record v3); the
	 * last one is the newest, whose root is root_ino once the run completed */
	struct store_snap *snaps;
	size_t nsnaps;
};
/*
 * A snapshot of a source's view: a completed ingest. @time is its UTC time in seconds
 * (unique within the source: its name under /.history/NAME), @gen the ingest generation
 * that made it (every inode record of its tree has gen <= @gen, and no record it names is
 * ever changed: a later ingest copies what it changes), @root its root directory.
 */
struct store_snap {
	int64_t time;
	uint64_t gen;
	uint64_t root;
};
#define STORE_SNAPS_MAX 65536u
/* Appends a snapshot to @s (-ENOMEM, -E2BIG past STORE_SNAPS_MAX). */
int store_source_add_snap(struct store_source *s, const struct store_snap *sn);
/* A snapshot's name: its UTC time, ISO 8601 basic (20261206T124500Z): /.history/NAME/'s
 * entries and defrag-forget --snapshot. @out has STORE_SNAP_NAME_LEN + 1 bytes. */
#define STORE_SNAP_NAME_LEN 16
void store_snap_name(int64_t t, char *out);
void store_source_release(struct store_source *s);
/* By name (-ENOENT). */
int store_get_source(struct store *st, const void *name, size_t len, struct store_source *out);
/* Calls @fn for each source in id order; stops at a non-zero return and returns it. */
int store_each_source(struct store *st, int (*fn)(void *arg, const struct store_source *s),
		      void *arg);

/* Committed (source, st_ino) -> SRC-view inode, for incremental ingest. -ENOENT if none. */
int store_get_srcmap(struct store *st, uint32_t source, uint64_t st_ino, uint64_t *ino);

/* Calls @fn for every chunk in the index (key order). Stops at a non-zero return. */
int store_each_chunk(struct store *st,
		     int (*fn)(void *arg, const struct fp256 *id, const struct store_chunk_loc *l),
		     void *arg);
/* Calls @fn for every (content id, chunk id) reference of every content object.
 * A corrupt content record is reported as fn(arg, cid, NULL). */
int store_each_content_ref(struct store *st,
			   int (*fn)(void *arg, const struct fp256 *cid, const struct fp256 *chunk),
			   void *arg);
/*
 * Checks the structure of every committed pack: the file exists and is not shorter than
 * its committed length, its header (and config copy) is valid, its records tile it
 * exactly up to the committed length, and every META record (the op logs an index
 * rebuild replays) passes its checksum. CHUNK payloads are skipped here (the chunk pass
 * of defrag-verify reads each one the index names). Calls @fn once per damaged pack with
 * a message (borrowed for the call); a non-zero return stops the walk.
 * @param[out] packs, meta  packs checked, META records checked
 */
int store_check_packs(struct store *st,
		      int (*fn)(void *arg, uint32_t pack, uint64_t off, const char *what),
		      void *arg, uint64_t *packs, uint64_t *meta);
/*
 * Records the result of a --against run in the source record (writer only): @result the
 * failures (0 clean), @gen the ingest generation the run compared, read when it started
 * (an ingest that committed meanwhile leaves against_gen != ingest_gen: not "safe").
 */
int store_set_against(struct store *st, const void *name, size_t len, int64_t when,
		      int32_t result, uint64_t gen);

struct store_stats {
	uint64_t chunks;
	uint64_t stored_bytes;	/* sum of chunk stored lengths */
	uint64_t raw_bytes;	/* sum of chunk raw lengths (unique data) */
	uint64_t pack_bytes;	/* committed pack bytes */
	uint64_t packs;
	uint64_t next_ino;
};
int store_get_stats(struct store *st, struct store_stats *out);

/* ---- writing (STORE_WRITER only) ---------------------------------------------- */

#ifdef DFS_TEST_FAULTS
/* Tests: called by a commit as it writes each of the chunk locations it names, without
 * the writer mutex (where workers' appends may come). */
extern void (*store_fault_commit_hook)(struct store *st);
#endif

/* Is chunk @id in the store or already appended (pending commit)? Thread-safe. */
bool store_has_chunk(struct store *st, const struct fp256 *id);
/* Does the index hold content object @cid (committed)? Thread-safe. */
bool store_has_content(struct store *st, const struct fp256 *cid);
/*
 * The block table bytes store_put_chunk adds to a chunk of @raw_len bytes that @codec made
 * @stored_len bytes of: a raw chunk of more than one block is written as a version 2
 * record (a checksum per 16 KiB block), 0 otherwise. A chunk record takes 56 header bytes,
 * these and @stored_len in its pack.
 */
uint32_t store_chunk_table_len(uint32_t raw_len, uint32_t stored_len, enum codec_id codec);

/*
 * Appends chunk @id (already compressed as @codec by the caller's struct codec) to the
 * current pack unless it is present. Thread-safe.
 * @return 1 appended, 0 already present, -errno (-ENOSPC: store disk full).
 */
int store_put_chunk(struct store *st, const struct fp256 *id, uint32_t raw_len,
		    const void *stored, uint32_t stored_len, enum codec_id codec);

/*
 * Appends a fresh copy of chunk @id although the index names it, because the indexed copy
 * is damaged (defrag-verify --repair). The caller has checked that SHA-256 of the raw
 * bytes is @id. The next store_txn_commit repoints the index to the new record; the
 * damaged record stays in its pack, unreferenced (an index rebuild skips it: its checksum
 * fails). Thread-safe.
 * @return 1 appended, 0 already appended in this commit, -ENOENT (the index does not
 * name @id), -EINVAL (@raw_len differs from the indexed length), -errno.
 */
int store_repair_chunk(struct store *st, const struct fp256 *id, uint32_t raw_len,
		       const void *stored, uint32_t stored_len, enum codec_id codec);

/* Content objects are built extent by extent, then named by their id. */
struct store_content_builder;
int store_cb_new(struct store_content_builder **out);
void store_cb_free(struct store_content_builder *cb);
void store_cb_reset(struct store_content_builder *cb);
int store_cb_add_chunk(struct store_content_builder *cb, const struct fp256 *chunk,
		       uint32_t len);
int store_cb_add_hole(struct store_content_builder *cb, uint64_t len);
/* Tiny content kept whole in the record (call instead of add_chunk, once). */
int store_cb_set_inline(struct store_content_builder *cb, const void *data, size_t len);
/* The content id: SHA-256 over the length and the chunk ids (no pass over the data). */
int store_cb_finish(struct store_content_builder *cb, struct fp256 *cid, uint64_t *size,
		    uint64_t *data_bytes);
/*
 * Appends to @out the op log entries (uncompressed) that storing the content @cb built
 * would write: its head (inline bytes included) and its extent blocks. What a dry run
 * and the ingest measure a content's metadata by (docs/ARCHITECTURE.md, "The dry run").
 */
int store_cb_log_bytes(struct store_content_builder *cb, struct dfs_buf *out);
/* A codec that compresses as commits compress their op logs (codec_compress_meta). */
int store_meta_codec_new(struct codec **out);

struct store_txn;
/* One open transaction at a time per store (the committer's). */
int store_txn_begin(struct store *st, struct store_txn **out);
/* Drops the transaction's changes (chunks already appended stay, unreferenced). */
void store_txn_abort(struct store_txn *tx);
/* Makes the transaction durable: pack bytes fdatasync'd, then one synced WriteBatch.
 * Frees @tx on every path. -E2BIG (logged): its op log is larger than one commit holds
 * (one META record: PACK_REC_MAX, 64 MiB; in DFS_TEST_FAULTS builds DFS_FAULT_OPLOG_MAX=
 * BYTES lowers it, not below 256 KiB); nothing was written. */
int store_txn_commit(struct store_txn *tx);
/* Bytes of metadata queued (callers commit past a threshold). */
size_t store_txn_size(const struct store_txn *tx);

uint64_t store_txn_alloc_ino(struct store_txn *tx);
/* Reads see the transaction's own writes. */
int store_txn_get_inode(struct store_txn *tx, uint64_t ino, struct store_inode *out);
int store_txn_lookup(struct store_txn *tx, uint64_t parent, const void *name, size_t len,
		     uint64_t *child, uint8_t *dtype);
bool store_txn_has_content(struct store_txn *tx, const struct fp256 *cid);
/* Puts the content @cb builds (borrowed) unless the store has it; @cid (out) its id. */
int store_txn_put_content(struct store_txn *tx, struct store_content_builder *cb,
			  struct fp256 *cid);
/*
 * store_txn_put_content for a content whose extent list may be larger than one commit
 * holds (a file of about 200 GiB at the default chunking; see store_txn_commit): its
 * extent blocks are put first, and @tx is committed, with everything it held before,
 * whenever the next block would take its op log past a quarter of the limit; the head,
 * the only key by which a reader finds the blocks, is put last, in @tx left open, so the
 * content becomes visible with the caller's next commit and never in part. A crash in
 * between leaves blocks that nothing names (garbage; put again, the same, when the
 * content is stored again). Call it only where @tx holds complete changes (they may be
 * committed), with no iterator over @tx open.
 * @param[out] commits  the commits it made (0: as store_txn_put_content)
 * @return 1: put, 0: the store (or @tx) already had it; -EFBIG (not logged): the head alone would take more than half of a commit
 * (8 bytes per 2048 extents: not at the real limit), nothing was put; -errno of a
 * commit (-EIO, -ENOSPC ...), sticky in @tx as after a failed store_txn_commit.
 */
int store_txn_put_content_split(struct store_txn *tx, struct store_content_builder *cb,
				struct fp256 *cid, unsigned *commits);
int store_txn_put_inode(struct store_txn *tx, const struct store_inode *in);
int store_txn_del_inode(struct store_txn *tx, uint64_t ino);
int store_txn_put_dirent(struct store_txn *tx, uint64_t parent, const void *name, size_t len,
			 uint64_t child, uint8_t dtype);
int store_txn_del_dirent(struct store_txn *tx, uint64_t parent, const void *name, size_t len);
/* Iterates @dir as the transaction sees it (same contract as store_dir_open). */
int store_txn_dir_open(struct store_txn *tx, uint64_t dir, struct store_dir_iter **out);
/* Source records: a new source gets an id when @s->id is 0 (written back). */
int store_txn_put_source(struct store_txn *tx, struct store_source *s);
int store_txn_get_source(struct store_txn *tx, const void *name, size_t len,
			 struct store_source *out);
/* Removes the source record @name (defrag-forget; 0 also when there is none). */
int store_txn_del_source(struct store_txn *tx, const void *name, size_t len);
/* Incremental index: (source, st_ino) -> SRC-view inode. */
int store_txn_get_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino, uint64_t *ino);
int store_txn_put_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino, uint64_t ino);
int store_txn_del_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino);
/* A small named value as last committed: 0 and *val, or -ENOENT (never written). */
int store_get_meta_u64(struct store *st, const char *key, uint64_t *val);
/*
 * "security_xattrs": 0 when no inode of the store has an xattr in the security namespace
 * (written 0 by the first ingest into a new store, 1 by any ingest that stores one);
 * absent in stores made before it existed (unknown).
 */
#define STORE_META_SECURITY_XATTRS "security_xattrs"
/* Small named values in the meta family (e.g. "org_gen"). */
int store_txn_get_meta_u64(struct store_txn *tx, const char *key, uint64_t *val);
int store_txn_put_meta_u64(struct store_txn *tx, const char *key, uint64_t val);
/* Removes the named value @key (in the op log like a put; 0 also when absent). */
int store_txn_del_meta(struct store_txn *tx, const char *key);

/*
 * The rules the store keeps (META "rules"): a copy of the rules file last given to
 * defrag-reclassify or defrag-ingest with --rules FILE, used by every later build until
 * other rules are given. It is in the index like every META value, and in the op log of
 * the commit that wrote it, so defrag-recover keeps it.
 */
#define STORE_RULES_MAX (1u << 20)	/* the largest rules text kept */
struct store_rules {
	char *name;	/* the file's name as it was given (for messages); NUL-terminated */
	char *text;	/* its bytes, NUL-terminated (no NUL inside) */
	size_t len;
};
void store_rules_release(struct store_rules *r);
/* The rules as last committed: 0, -ENOENT (none kept: the built-in rules), -EBADMSG. */
int store_get_rules(struct store *st, struct store_rules *out);
/* The same, as @tx sees them. */
int store_txn_get_rules(struct store_txn *tx, struct store_rules *out);
/* Keeps @len bytes of @text (at most STORE_RULES_MAX, no NUL: -EINVAL) named @name. */
int store_txn_put_rules(struct store_txn *tx, const char *name, const void *text, size_t len);
/* Keeps no rules any more (the built-in ones apply). 0 also when none were kept. */
int store_txn_del_rules(struct store_txn *tx);

/* ---- derived records ---------------------------------------------------------------- */

/*
 * Records an engine derives from the rest of the index and keeps as a cache (copy
 * alignment's directory signatures, organize/align.h): in the meta family under
 * STORE_CACHE_PREFIX | key (keys of up to STORE_CACHE_KEY_MAX bytes, else -EINVAL).
 * They are written with the transaction's commit (atomically with it) but are not in its
 * op log: an index rebuilt from the packs (defrag-recover) has none, and the engine that
 * reads them must check them against what they derive from and recompute what is absent,
 * stale or undecodable. Their bytes count in store_txn_size.
 */
#define STORE_CACHE_PREFIX "cache/"
#define STORE_CACHE_KEY_MAX 48
/* The committed value of @key into @val (cleared first): 0, -ENOENT, -EIO. */
int store_get_cache(struct store *st, const void *key, size_t klen, struct dfs_buf *val);
/*
 * Calls @fn for each committed record whose key starts with @prefix, in key order, from
 * @start (NULL: the first); @k is the engine's key (the prefix included). A non-zero
 * return of @fn stops the walk and is returned.
 */
int store_each_cache(struct store *st, const void *prefix, size_t plen, const void *start,
		     size_t slen,
		     int (*fn)(void *arg, const uint8_t *k, size_t klen, const uint8_t *v,
			       size_t vlen),
		     void *arg);
int store_txn_put_cache(struct store_txn *tx, const void *key, size_t klen, const void *v,
			size_t vlen);
int store_txn_del_cache(struct store_txn *tx, const void *key, size_t klen);

/* ---- garbage collection (store_gc.c) ---------------------------------------------- */

/*
 * Mark and sweep, then pack rewriting (docs/ARCHITECTURE.md "Garbage collection"):
 *   mark   every content object an inode of any view names (both views, every source:
 *          the inode table is the union of the views), then every chunk those contents
 *          name;
 *   sweep  content records nothing marked are deleted (op-log DEL), chunks nothing marked
 *          leave the index (op-log ENC_OP_DROP, so an index rebuilt from the packs drops
 *          them too), in commits of bounded size;
 *   rewrite  a pack whose live bytes (marked chunks the index places in it, and every
 *          META record, which recovery needs) are below @live_pct percent of its
 *          committed length is copied: live chunks and META records (verbatim, same
 *          commit numbers) appended to new packs, synced, one commit repoints the chunks
 *          and drops the old packs from the index, then the old files are removed. A
 *          crash before that commit leaves the new bytes uncommitted (cut at the next
 *          open); after it, old files no commit names, which the next writer's open
 *          removes (store_open), so a gc run again finishes the job.
 * Readers: a reader that still has an old pack open reads on from it (the file lives
 * until its descriptor closes); one that must open a removed pack catches up with the
 * writer and reads the chunk at its new place (store_chunk_read).
 */
#define STORE_GC_LIVE_PCT 90	/* default: rewrite packs less than 90% live */

struct store_gc_opts {
	bool dry_run;		/* mark and count; change nothing */
	unsigned live_pct;	/* 1..100; 0: STORE_GC_LIVE_PCT */
	uint64_t max_rewrite;	/* live bytes to copy at most (0: no limit); the packs with
				 * the least live data go first */
};

/* ---- moving packs between backends (defrag-store push / pull) ------------------------ */

struct store_move_report {
	uint64_t packs;		/* committed packs moved (or found there already) */
	uint64_t bytes;		/* their bytes */
};

/*
 * Moves the committed packs of the local store @dir to the S3 place @to describes (its
 * packs and s3_* fields): each is put and confirmed (one already there with the same
 * size and MD5 is not sent again), then the config becomes version 2, then the local
 * pack files go. Resumable: a cut before the config changed leaves a local store (run
 * again: what was put is not sent twice); after it, a remote one whose next writer
 * removes the local copies left. Takes the writer lock.
 * @return 0; -EEXIST (already remote, or the place holds other packs); the backend's.
 */
int store_push(const char *dir, const struct store_create_opts *to,
	       struct store_move_report *rep);
/*
 * The reverse: every committed pack fetched into STORE/packs (temp file, fsync, rename),
 * then the objects are deleted, then the config becomes version 1 (a cut before it: run
 * again). -EINVAL: the store is local already.
 */
int store_pull(const char *dir, struct store_move_report *rep);

struct store_gc_report {
	uint64_t inodes;			/* inodes marked from */
	uint64_t contents_live, contents_swept;
	uint64_t chunks_live, chunks_swept;
	uint64_t swept_raw, swept_stored;	/* the swept chunks' bytes */
	uint64_t packs_before, pack_bytes_before;
	uint64_t packs_rewritten;		/* old packs removed (or to remove: dry run) */
	uint64_t rewritten_bytes;		/* their committed bytes */
	uint64_t copied_bytes;			/* live bytes copied into new packs */
	uint64_t meta_carried;			/* META records carried forward */
	uint64_t packs_over_budget;		/* candidates left for --max-rewrite */
	uint64_t packs_kept_damaged;		/* candidates not removed: not whole */
	uint64_t packs_after, pack_bytes_after;
	uint64_t commits;
};

/*
 * Runs a gc on @st (writer; no transaction open).
 * @return 0; -EBADMSG an inode or live content record does not decode (nothing swept:
 * a gc never sweeps on a guess; run defrag-verify); -errno of the store.
 */
int store_gc(struct store *st, const struct store_gc_opts *o, struct store_gc_report *rep);

/*
 * What each source and each of its snapshots costs, from the same relation gc marks with
 * (inode -> content -> chunk), partitioned by owner: a snapshot owns the contents of the
 * files its tree names (each snapshot's tree is walked from its root); the organized tree
 * mirrors the newest ones (a content only the organized tree, or a record no snapshot
 * reaches, names counts as owned by none: shared). A chunk owned by one source alone is
 * what forgetting that source (and a gc) frees; by one snapshot alone, what dropping that
 * snapshot (defrag-forget --snapshot) and a gc free; by several, shared; by nothing at
 * all, garbage now (what a gc frees today). The view /.sources/NAME shows when it is not
 * the newest snapshot's (an ingest under way; a store from before history) is one more
 * owner of the source, not reported as a snapshot.
 * Bytes are stored bytes (pack payload, compressed), as store_stats.stored_bytes.
 */
struct store_snap_usage {
	int64_t time;			/* the snapshot's (its name: store_snap_name) */
	uint64_t files;			/* regular files of its tree (hard links once) */
	uint64_t logical;		/* their sizes */
	uint64_t unique_chunks, unique_stored;	/* referenced by this snapshot alone */
	uint64_t shared_chunks, shared_stored;	/* by it and something else */
};
struct store_src_usage {
	uint32_t source;		/* source id */
	uint64_t files;			/* regular files of its view (the newest snapshot) */
	uint64_t logical;		/* their sizes */
	uint64_t unique_chunks, unique_stored;	/* owned by this source alone */
	uint64_t shared_chunks, shared_stored;	/* owned by it and something else */
	struct store_snap_usage *snaps;	/* the source record's snapshots, oldest first */
	size_t nsnaps;
};
struct store_usage {
	struct store_src_usage *v;	/* indexed by source id (ids no source has: zero) */
	size_t n;
	uint64_t garbage_chunks, garbage_stored;	/* chunks nothing names */
};
/*
 * One pass over inodes, contents and chunks, and a walk of every snapshot's tree (a
 * snapshot costs a walk of its whole tree, shared directories included). Memory: 44
 * bytes per (content, run of consecutive snapshots that reference it) and per (chunk,
 * run). 0, -ENOMEM, -EBADMSG, -EIO.
 */
int store_usage_by_source(struct store *st, struct store_usage *out);
void store_usage_release(struct store_usage *u);

/*
 * What an organized directory costs, as du(1) with the store's dedup: its regular files
 * (any depth), their sizes, and the stored bytes of the chunks they reference, split into
 * those no other entry of the organized tree references (unique: exclusive to the
 * directory) and the others (shared). The sources' views mirror the organized tree and
 * are not counted. Same relation and stored bytes as store_usage_by_source.
 */
struct store_du {
	uint64_t files, logical;
	uint64_t unique_chunks, unique_stored;
	uint64_t shared_chunks, shared_stored;
};
/* @dir: the directory's inode. One walk below it and one pass over inodes, contents and
 * chunks; 44 bytes per (content, owner) and (chunk, owner) pair. 0, -ENOMEM, -EBADMSG,
 * -EIO. */
int store_usage_du(struct store *st, uint64_t dir, struct store_du *out);

/* ---- recovery ---------------------------------------------------------------------- */

/* What recovery could not bring back, one entry each (struct store_recover_report). */
enum store_unrec_kind {
	STORE_UNREC_PACK = 1,	/* a pack file that could not be opened or read: none of it */
	STORE_UNREC_HEADER,	/* a damaged pack header (or one naming another pack id):
				 * [off, off + len) up to the first record that checks out;
				 * every record after it that checks out is recovered */
	STORE_UNREC_RANGE,	/* damaged bytes [off, off + len) skipped: between records that
				 * check out, or at a pack's end (see STORE_UNREC_TORN) */
	STORE_UNREC_TORN,	/* [off, off + len) at the end of one of the newest packs is
				 * an incomplete record: a write cut short by a crash, never
				 * committed; not counted as lost */
	STORE_UNREC_COMMIT,	/* the META record at [off, off + len) checks out, but commit
				 * seq could not be replayed (err); nothing of it is applied */
	STORE_UNREC_MISSING,	/* commits seq .. seq + count - 1 have no META record that
				 * checks out: they were in damaged bytes */
};

struct store_unrec {
	enum store_unrec_kind kind;
	uint32_t pack;		/* not for STORE_UNREC_MISSING */
	uint64_t off, len;	/* bytes in the pack; len 0 for a pack whose size is unknown */
	uint64_t seq, count;	/* STORE_UNREC_COMMIT (seq), STORE_UNREC_MISSING */
	int err;		/* -errno: -EBADMSG damage, -EIO a failed read ... */
};

#define STORE_UNREC_MAX 4096	/* entries kept in a report; the counts count every one */

struct store_recover_report {
	uint64_t packs;			/* pack files scanned */
	uint64_t bad_packs;		/* unreadable pack files (STORE_UNREC_PACK) */
	uint64_t bad_headers;		/* damaged pack headers, records recovered past them */
	uint64_t chunks;		/* chunk records indexed */
	uint64_t commits;		/* META records replayed */
	uint64_t failed_commits;	/* META records that check out but could not be replayed */
	uint64_t missing_commits;	/* commit numbers with no META record (up to the last) */
	uint64_t bad_regions;		/* damaged byte ranges skipped (headers not counted) */
	uint64_t bad_bytes;		/* bytes of bad_regions and bad_headers */
	uint64_t torn_tails;		/* packs ending in a write cut short (not lost) */
	uint64_t torn_bytes;
	/* every entry, in pack order then commit order (returned: release with
	 * store_recover_report_release); past STORE_UNREC_MAX, unrec_dropped is set */
	struct store_unrec *unrec;
	size_t nunrec;
	bool unrec_dropped;
	char moved_to[4096];		/* where the old index/ was kept ("" if none) */
	/* the old index/ was healthy (it opened, and held the commit the rebuild ended
	 * at) and nothing was lost: it was removed, not kept */
	bool old_removed;
	char old_why[256];		/* why it was kept: "it does not open: ..." */
};

/*
 * Rebuilds index/ from config and packs alone: moves an existing index/ aside
 * (index.broken-TIMESTAMP), indexes every chunk record that checks out, and replays every
 * META record (the op log of each commit) in commit order. The old index is then
 * removed if it was healthy (it opens, and its last commit is the rebuilt one's) and
 * nothing was lost; else it stays where it was moved (rep->moved_to, rep->old_why). Damage is skipped by
 * resynchronising on the record framing: the scan goes on at the next offset where a
 * record header decodes and its checksum holds, past a damaged pack header too (the
 * header's bytes are then searched from offset 0). A META record is decoded whole before
 * any of its operations is applied. Takes the writer lock.
 * @param[out] rep  counts and the list of what was not recovered; filled on success and
 *                  on failure (partial); release it with store_recover_report_release.
 * @return 0 (even if damage was found: see store_recover_lost), -ENOENT (no store),
 * -EWOULDBLOCK (another writer), -ENOMEM, -EIO, or -errno of moving index/ aside.
 * Not thread-safe.
 */
int store_recover(const char *dir, struct store_recover_report *rep);
/* Whether @rep records anything committed that was not recovered (torn ends aside). */
bool store_recover_lost(const struct store_recover_report *rep);
/* Frees @rep's list; the counts stay. NULL-safe, and safe twice. */
void store_recover_report_release(struct store_recover_report *rep);

/* A RocksDB checkpoint of the index under checkpoints/, keeping the newest N. */
int store_checkpoint(struct store *st);
/*
 * Starts writing what the index holds in memory to its table files, in RocksDB's
 * background threads, and returns: a checkpoint or close soon after has less to write.
 * Durability is the same either way (every commit is in the WAL already).
 */
int store_flush_start(struct store *st);

/* Whether part reads take the packs' disk for one with a head (store_open_opts.disk). */
bool store_disk_head(const struct store *st);

struct idx_table;
/*
 * The index's table files as the store's current view has them (idx_tables in
 * store/index.h, which defines struct idx_table; freed with idx_tables_free): for a
 * reader that keeps them in the page cache (the mount's index warm-up). 0 or -errno.
 */
int store_index_tables(struct store *st, struct idx_table **out, size_t *n);

#endif
