/*
 * compare.h - a source drive against the store's view of it (the gate before a drive is
 * wiped, defrag-verify --against), and the repair of damaged chunks from that drive
 * (--repair).
 *
 * cmp_source() walks the source directory and the view side by side, both ways. For each
 * entry of the source it compares presence in the view, type, mode, owner, mtime
 * (directories too), link count, size (regular files and symlinks), device number, the
 * hard-link group (the same set of names on both sides), symlink target, extended
 * attributes (and so ACLs), every byte of a regular file and its hole map
 * (SEEK_DATA/SEEK_HOLE), and reports every difference of the entry in one message (a
 * different type ends the list). Every name of the view must be on the drive too
 * ("missing from the drive"). An entry or directory that cannot be stat'ed, opened, read
 * or listed (EIO, EACCES, EMFILE, a listing that ends in an error) is a difference naming
 * its errno, never skipped; so is a directory deeper than CLS_MAX_DEPTH levels
 * (classify.h; ingest stores none). The walk keeps its levels on the heap, one open
 * directory per level, so the open files limit bounds the depth compared (an open that
 * fails is a difference). Entries that differ only in atime or ctime give a note, which
 * is not a failure. Entries are opened through srcfile.h: a regular file swapped for a
 * FIFO or a device while the walk runs gives "type differs", never a blocked open.
 *
 * Each difference says where it happened (enum cmp_kind): the store's copy of a regular
 * file is read whole whenever the entry differs, so a store that fails its checks is told
 * from a drive that changed (a newer mtime or ctime, or another size).
 *
 * Entries matching the ingest's --exclude patterns (@o->excludes, exclude.h) are not
 * compared, nor what is below them; they are counted, and each one @o->accept does not
 * list is reported ("excluded at ingest: not in the store") and fails the gate: wiping
 * the drive would lose it (DESIGN.md, "Trust").
 *
 * The repair pass (@o->repair) walks the same way but reports nothing: each extent of a
 * file whose content uses a damaged chunk is read from the source again, and when its
 * bytes still hash to the chunk's id it is appended to a new pack (store_repair_chunk);
 * the repairs are committed at the end. A changed source simply matches nothing.
 *
 * It never prints: differences go to @o->diff, repairs to @o->repair->repaired; failures
 * of one file's repair and of the commit are logged (store/log.h).
 *
 * Threads: one call at a time per store (the repair pass needs the writer); the callbacks
 * run on the calling thread.
 * Errors: 0 or -errno; a difference is never an error.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_COMPARE_H
#define DFS_INGEST_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/hset.h"
#include "store/store.h"

/* The repair pass's inputs and output. */
struct cmp_repair {
	struct fpset *bad_chunks;	/* borrowed: damaged or missing chunk ids */
	struct fpset *bad_contents;	/* borrowed: the content ids that use one of them */
	struct fpset *fixed;		/* borrowed, in/out: chunks appended again are added;
					 * those already in it are not appended twice */
	/* Called after each chunk is appended (not yet committed): @chunk its id, @rel and
	 * @rlen the source-relative path it was read from (borrowed for the call), @off the
	 * offset of the extent in that file. NULL: not called. */
	void (*repaired)(void *arg, const struct fp256 *chunk, const uint8_t *rel, size_t rlen,
			 uint64_t off);
};

/* Where a difference happened. */
enum cmp_kind {
	CMP_NOTE,	/* atime or ctime differ only: not a failure */
	CMP_CHANGED,	/* changed on the drive since the last ingest (a newer mtime or
			 * ctime, another size, a name added or removed), and the store's
			 * copy is intact */
	CMP_DAMAGED,	/* damaged in the store: its copy fails its checks (a chunk's
			 * checksum, an unreadable content or inode record) */
	CMP_DIFFERS,	/* differs with no sign of a change on the drive, or the drive
			 * cannot be read there (an I/O error, a permission) */
};

struct cmp_stats;

struct cmp_opts {
	/* Source-relative paths (a leading '/' ignored) that may be missing from the view
	 * without a difference being reported; borrowed. */
	const char *const *accept;
	size_t naccept;
	/* The --exclude patterns of the source's last ingest (exclude.h), borrowed:
	 * matching entries are skipped and counted in excluded. */
	const char *const *excludes;
	size_t nexcludes;
	/* The source's last ingest (unix seconds; 0 unknown): an entry missing from the store
	 * whose ctime is later is new on the drive (CMP_CHANGED). */
	int64_t last_ingest;
	/* NULL: compare. Else the repair pass: no difference is reported or counted. */
	struct cmp_repair *repair;
	/* Called for each entry that differs: @kind where; @rel and @rlen the source-relative
	 * path ("" for the source's root), @msg every difference ("mode 644 in the store,
	 * 600 in the source; mtime differs (...)"); both borrowed for the call.
	 * NULL: only counted. */
	void (*diff)(void *arg, enum cmp_kind kind, const uint8_t *rel, size_t rlen,
		     const char *msg);
	/* Called after each entry and each 4 MiB compared, with the counts so far; NULL: not
	 * called. */
	void (*progress)(void *arg, const struct cmp_stats *s);
	void *arg;	/* passed to @diff, @progress and @repair->repaired */
};

struct cmp_stats {
	uint64_t entries;	/* source entries compared (or walked by the repair pass) */
	uint64_t files;		/* of them: regular files */
	uint64_t bytes;		/* bytes of the source read and compared */
	uint64_t problems;	/* differences that fail the gate */
	uint64_t changed;	/* of them: CMP_CHANGED */
	uint64_t damaged;	/* of them: CMP_DAMAGED */
	uint64_t notes;		/* entries that differ only in atime or ctime */
	uint64_t excluded;	/* entries skipped by the ingest's --exclude patterns (not
				 * entered: what is below an excluded directory is not counted) */
	uint64_t excluded_unaccepted;	/* of them, not listed by --accept-missing: each is
					 * a problem (it is not in the store) */
	uint64_t repaired;	/* chunks appended again by this call */
};

/*
 * Is @path the source @src? Its filesystem's identity (srcfile.h's src_fsid) must be the
 * one recorded at the source's last ingest, and its root directory the one the view was
 * made from (the inode number the view's root was stored with): an unmounted mount point
 * (the empty directory under it), another drive, or another directory of the same drive
 * is refused, while the same drive mounted elsewhere is accepted.
 * Returns 0, -EXDEV (@msg names both identities), or -errno (@path cannot be opened, or
 * the view's root cannot be read; @msg says which).
 */
int cmp_identity(struct store *st, const struct store_source *src, const char *path,
		 char *msg, size_t mlen);

/*
 * Compares the source directory @path with the view whose root inode is @root_ino
 * (a source's root_ino, struct store_source), or repairs from it (@o->repair).
 * @st: the store (a writer for the repair pass); @codec: a codec of the caller's (used by
 * this thread only during the call); @o: borrowed; @out: the counts, written also on
 * failure (what was done until then).
 * Returns 0, or -errno: the source root cannot be opened (-ENOENT, -ENOTDIR, -EACCES ...),
 * -ENOMEM, -EINVAL (a repair pass without its sets), or the repair's commit failed (the
 * store's errno; logged).
 */
int cmp_source(struct store *st, struct codec *codec, uint64_t root_ino, const char *path,
	       const struct cmp_opts *o, struct cmp_stats *out);

/*
 * The gate for a drive on another machine (ingest_is_remote: ssh://[USER@]HOST[:PORT]/PATH
 * or HOST:PATH): `defrag-ingest --serve` there (through @rsh, default ssh; @remote_cmd,
 * default defrag-ingest) walks the drive once and sends every entry's metadata and each
 * file's chunk ids (a file stored inline: the SHA-256 of its bytes); no file data
 * crosses. The comparison, its messages and its kinds are cmp_source()'s, content by
 * content id (the same chunking as the store's, sent in the handshake), and the store's
 * copy of every file is read as cmp_source() reads it, so damage is told from change.
 * The drive's identity is checked as cmp_identity() does (-EXDEV). @received: the bytes
 * that crossed. Returns 0, or -errno with @msg (the connection, the remote side's error,
 * a malformed stream).
 * With @o->repair it is the repair pass instead (nothing compared or reported): the
 * remote side walks nothing, and each extent of a view file whose content uses a damaged
 * chunk is asked for by path and offset (FETCH); the bytes that come back are hashed
 * again, appended with store_repair_chunk() and committed as cmp_source()'s repair pass
 * does; only those bytes cross. -EINVAL: a repair pass without its sets.
 */
int cmp_remote(struct store *st, struct codec *codec, const struct store_source *src,
	       const char *spec, const char *rsh, const char *remote_cmd,
	       const struct cmp_opts *o, struct cmp_stats *out, uint64_t *received, char *msg,
	       size_t mlen);

#endif
