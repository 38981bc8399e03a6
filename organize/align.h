/*
 * align.h - copy alignment: which directories of the sources' views are copies (exact or
 * near) of directories placed before them, so that the organized tree shows each file
 * once, wherever its copies sat (docs/CLASSIFY.md, "Copy alignment").
 *
 * Sources are taken in id order (the order they were first ingested), and each source's
 * directories top-down. A directory aligns to an earlier, unaligned ("canonical")
 * directory of any source and any path when their (relative path, content) pairs of
 * evidence files agree enough: Jaccard similarity >= ALIGN_THRESHOLD (another source)
 * or ALIGN_THRESHOLD_SAME (the same source), at least ALIGN_MIN_SHARED pairs in common
 * (a folder of a few files is left where it is: its duplicate costs little, and a few
 * shared files are weak evidence). Evidence files are non-empty regular files other
 * than boilerplate (LICENSE, COPYING, NOTICE, AUTHORS, .gitignore, .gitkeep): two
 * unrelated trees that share a license are not copies. The highest aligned directory
 * wins: what is below it follows it. Candidates come from an exact subtree hash and from
 * locality-sensitive hashing of MinHash signatures (ALIGN_BANDS bands of ALIGN_ROWS), so
 * finding them never scans every directory.
 *
 * An aligned directory's entries are classified as if they sat at the path of the
 * directory it copies (org_align_path): the rules then place a copy where its original
 * went, identical files merge (one entry, every origin) and changed files become
 * versions ("name~hash.ext").
 *
 * Computed from the index alone (names, types, content ids: no file data), at each build.
 * What it needs of each directory (its signature: exact hash, evidence count, MinHash)
 * is kept in the index as derived records, per source, with the alignments found and
 * postings of the canonical directories' exact hashes and LSH band keys (align.c
 * "records", "postings"): a build replays the alignments of the sources whose views (and
 * every earlier source's) did not change since, reads the views of the sources that
 * changed, and looks the candidates of their directories up by key, loading only the
 * sources those candidates are in. Errors: 0 or -errno.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_ORGANIZE_ALIGN_H
#define DFS_ORGANIZE_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define ALIGN_THRESHOLD 0.5	/* Jaccard of (path, content) pairs (CLASSIFY.md) */
/* within one source, where near copies are more often variants (one package's docs
 * beside another's, a build for each architecture) than backups */
#define ALIGN_THRESHOLD_SAME 0.9
#define ALIGN_MIN_SHARED 8	/* evidence pairs in common, at least */
#define ALIGN_K 16		/* MinHash values per directory */
#define ALIGN_BANDS 8
#define ALIGN_ROWS 2

struct org_align;

/* How the build's transaction takes the records written (build.c). */
struct org_align_sink {
	void *ctx;
	/* the transaction now (it changes at each commit); NULL: write nothing (dry run) */
	struct store_txn *(*tx)(void *ctx);
	/* called after each record: commits the transaction past its threshold */
	int (*commit)(void *ctx);
};

/* What a computation read (struct organize_stats shows them). */
struct org_align_counts {
	uint64_t dirs_read;	/* directories of views read (changed or new sources) */
	uint64_t dirs_loaded;	/* directories whose signature came from the index */
	uint64_t lookups;	/* postings looked up (one exact hash or band key each) */
	uint64_t dirs_listed;	/* loaded directories whose files verification read */
	uint64_t sources_replayed;	/* sources whose stored alignments were current */
	uint64_t sources_swept;	/* gone sources whose records and postings were removed */
};

/* One alignment found (for the summary, --dry-run and --explain). */
struct org_align_report {
	uint32_t source, target_source;	/* source ids */
	const uint8_t *path;		/* the aligned directory, source-relative ("" root) */
	size_t path_len;
	const uint8_t *target;		/* the directory it copies, in target_source */
	size_t target_len;
	double similarity;		/* Jaccard of evidence pairs, 0..1 */
	uint64_t identical, changed, only_here, only_there;	/* evidence files */
};

/*
 * Aligns every complete source of @st, from their views (names, types, content ids) or
 * the signatures of them kept in the index, and writes the records that were not
 * current through @sink (NULL: none). The result depends only on the views and their
 * order, so an append build gets for the sources placed before exactly what their own
 * build got, and the records never change it.
 */
int org_align_compute(struct store *st, const struct org_align_sink *sink,
		      struct org_align **out);

/* One entry of a live tree (a dry run's source, before its ingest): as the view would
 * hold it. */
struct org_align_live_entry {
	const uint8_t *path;	/* source-relative, no leading '/', "" for the root */
	size_t len;
	uint32_t mode;		/* type bits and permissions */
	uint64_t size;
	uint64_t digest;	/* a regular file: its content id's first 8 bytes (memcpy) */
	const uint8_t *target;	/* a symlink's target */
	size_t target_len;
	uint64_t rdev;		/* a device's number */
};

struct org_align_live {
	uint32_t source;	/* its id if the store has it, else ORG_ALIGN_LIVE_NEW */
	const struct org_align_live_entry *e;
	size_t n;
};
#define ORG_ALIGN_LIVE_NEW UINT32_MAX

/*
 * Aligns the live tree @live as its ingest would, against the store's sources before it
 * (read-only: @st may be a reader; nothing is written): the earlier sources replayed or
 * computed as a build does, the live tree's directories looked up and verified. Its
 * alignments are the reports whose source is @live->source. The entries must hold the
 * root (""), and each entry's parent directory (entries below a missing one are left
 * out).
 */
int org_align_live(struct store *st, const struct org_align_live *live, struct org_align **out);
void org_align_get_counts(const struct org_align *a, struct org_align_counts *out);
/* The engine key (store_*_cache) of record @kind ('D', 'H', 'R') @i of @source in
 * @out (KEY_LEN = 15 bytes, returned): for tests. */
size_t org_align_key(uint32_t source, uint8_t kind, uint32_t i, uint8_t *out);
/*
 * The engine key of a posting ('X' an exact hash, '0' + b band b's key; align.c
 * "postings") in @out (at most ORG_ALIGN_POST_MAX bytes; its length returned): for tests.
 * The first ORG_ALIGN_POST_PFX bytes are the prefix (kind and hash) a lookup walks.
 * org_align_post_parse decodes one: true when @k is a posting of this version.
 */
#define ORG_ALIGN_POST_MAX 20
#define ORG_ALIGN_POST_PFX 10
size_t org_align_post_key(uint8_t kind, uint64_t hash, uint32_t source, uint32_t seq,
			  uint8_t *out);
bool org_align_post_parse(const uint8_t *k, size_t kl, uint8_t *kind, uint32_t *source,
			  uint32_t *seq);
void org_align_free(struct org_align *a);

/*
 * The path (source-relative, "" for a root) at which directory @dir (a /.sources inode)
 * is to be classified, when it is the top of an aligned subtree: true and *@path,
 * *@len (borrowed from @a). False for every other directory (below an aligned one, the
 * path follows from its parent's).
 */
bool org_align_path(const struct org_align *a, uint64_t dir, const uint8_t **path,
		    size_t *len);

/* The alignments found, in the order they were decided. */
size_t org_align_count(const struct org_align *a);
const struct org_align_report *org_align_get(const struct org_align *a, size_t i);

#endif
