/*
 * lib_organize.h - builds the organized tree from the index alone.
 *
 * Every source's view (/.sources/NAME) is classified through classify/ (over the index:
 * names, metadata, content ids, stored MIME types; a missing MIME type is computed from
 * the stored first chunk, never from the source) and placed under the root:
 *   - the same content at the same organized path from several sources is one entry,
 *     with all its origins (user.defrag.origins);
 *   - different content at one path: the first keeps the name, others become
 *     "name~<8 hex of content id>.ext";
 *   - a unit is placed whole; identical units (same tree hash) are one; another version
 *     of a unit goes to "NAME~<8 hex of its tree hash>".
 * Each run is a new generation: entries it places carry the generation; a final sweep
 * removes what no longer belongs. Inode numbers of entries that stay are kept. A build's
 * last commit records what it was built from, so an ingest that changed nothing skips the
 * next build, and one that only added sources places only those (an append build; see
 * docs/CLASSIFY.md "When the tree is rebuilt").
 *
 * Threads: runs in the caller's thread, with the store's single transaction.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_TOOLS_LIB_ORGANIZE_H
#define DFS_TOOLS_LIB_ORGANIZE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

struct organize_cat {
	char *name;
	uint64_t files;
	uint64_t bytes;
};

struct organize_stats {
	uint64_t entries;	/* organized names written */
	uint64_t merged;	/* origins added to an existing entry (namespace dedup) */
	uint64_t conflicts;	/* renamed "~hash" entries */
	uint64_t units;
	uint64_t removed;	/* stale entries swept */
	double seconds;		/* wall time of the whole build (classification included) */
	uint64_t mimes;		/* MIME types it had to compute from stored content */
	bool skipped;		/* nothing changed since the last complete build */
	bool append;		/* only sources added since the last build were placed */
	struct organize_cat *cats;
	size_t ncats;
};

void organize_stats_release(struct organize_stats *s);
/* organize_run's flags */
#define ORG_DRY_RUN 1u	/* compute and count the placement, commit nothing */
#define ORG_FORCE 2u	/* a full build even when nothing changed */
/*
 * Once the entries are placed, start flushing the index's memtables (what the ingest
 * wrote) on RocksDB's thread, beside the build's final commit: for a caller that
 * checkpoints next (defrag-ingest). Started earlier, the flush takes the core the
 * build's two threads use.
 */
#define ORG_FLUSH 4u

/*
 * @rules: a rules file or NULL (defaults + /etc/defragfs/rules.yml); @flags: ORG_*.
 * Without ORG_FORCE, a store whose sources, rules and algorithm are those of the last
 * complete build is left as it is (out->skipped: defrag-ingest after a run that changed
 * nothing), and one that only gained sources gets an append build (out->append).
 */
int organize_run(struct store *st, const char *rules, unsigned flags,
		 struct organize_stats *out, char *err, size_t errlen);
/* Per-category statistics as a JSON array (new reference). */
json_t *organize_stats_json(const struct organize_stats *s);

#endif
