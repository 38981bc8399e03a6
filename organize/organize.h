/*
 * organize.h - the organizer: builds the organized tree from the index alone.
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
 * The organizer returns data and -errno and never prints: what a build did is a struct
 * organize_stats the caller displays. Errors worth a line are logged (store/log.h).
 *
 * Threads: organize_run places in the caller's thread and classifies on one producer
 * thread per source (organize/organize_int.h). It holds the store's writer transaction
 * for its whole run: one organize_run per store at a time, and no other transaction
 * beside it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_ORGANIZE_ORGANIZE_H
#define DFS_ORGANIZE_ORGANIZE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify/classify.h"
#include "store/store.h"

/*
 * The placement algorithm's version: bump it with any change to where or how the
 * organizer places what classify/ decided (conflict names, unit versions, merges,
 * origins, directory metadata), so that a tree built by another version is rebuilt at
 * the next ingest. It is recorded with classify's fingerprint (CLS_ALGO_VERSION and the
 * rules) in the last complete build's "org_cls" meta value. Version 1 is the placement
 * CLS_ALGO_VERSION 4 covered before the organizer had a version of its own, and leaves
 * that value as classify_fingerprint() alone, so trees built then are not rebuilt.
 */
#define ORG_PLACEMENT_VERSION 3	/* 2: copy alignment; 3: directory witnesses */

/* What a build did (filled by organize_run; release with organize_stats_release). */
struct organize_stats {
	uint64_t entries;	/* organized names written */
	uint64_t merged;	/* origins added to an existing entry (namespace dedup) */
	uint64_t conflicts;	/* renamed "~hash" entries */
	uint64_t units;
	uint64_t removed;	/* stale entries swept */
	double seconds;		/* wall time of the whole build (classification included) */
	double align_seconds;	/* of which copy alignment (align.h) */
	/* copy alignment's reads: directories of the views it read (sources changed since
	 * the last build), whose signatures it loaded from the index, and loaded ones whose
	 * files it read to verify a match; sources whose alignments it replayed; postings it
	 * looked up (candidates among the replayed sources' directories); sources gone from
	 * the store (forgotten) whose alignment records and postings it removed */
	uint64_t align_dirs_read, align_dirs_loaded, align_dirs_listed, align_replayed;
	uint64_t align_lookups, align_swept;
	uint64_t mimes;		/* MIME types it had to compute from stored content */
	/* relative symlinks this build placed; of them, those whose target is not where it
	 * leads in the organized tree although it is on the drive (placed elsewhere), and
	 * those already dangling on the drive (organize/links.c) */
	uint64_t links_relative, links_elsewhere, links_dangling;
	bool skipped;		/* nothing changed since the last complete build */
	bool append;		/* only sources added since the last build were placed */
	struct cls_tally cats;	/* regular files placed, by category (owned) */
	/*
	 * The tree's figures for the sources this build classified (classify.h's
	 * cls_counts; all of them but in an append build): source directories holding
	 * regular files, those split across top-level categories, regular files, and those
	 * in the "unsorted" category.
	 */
	uint64_t dirs, dirs_split, files, files_unsorted;
	/* copy alignment (align.h): the directories of the sources this build placed that
	 * were found to be copies, in the order decided (owned) */
	struct organize_alignment {
		char *source, *target_source;	/* source names */
		uint8_t *path, *target;		/* source-relative, "" for a root */
		size_t path_len, target_len;
		double similarity;		/* Jaccard of evidence files, 0..1 */
		uint64_t identical, changed, only_here, only_there;
	} *aligned;
	size_t naligned;
};

/*
 * Frees the categories of @s and zeroes it. @s may be zeroed already (a no-op then).
 * Thread-safe for distinct @s.
 */
void organize_stats_release(struct organize_stats *s);

/*
 * A dry run's copy alignment: the alignments the ingest of the live tree @e[0..n) as
 * source @name would find (org_align_live: read-only, @st may be a reader), into
 * out->aligned with the names of their sources (and out->align_* counters). 0 or -errno.
 */
struct org_align_live_entry;
int organize_align_live(struct store *st, const char *name,
			const struct org_align_live_entry *e, size_t n, struct organize_stats *out);

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
 * Builds the organized tree of @st from the sources' views in the index.
 * Without ORG_FORCE, a store whose sources, rules and algorithm (CLS_ALGO_VERSION,
 * ORG_PLACEMENT_VERSION) are those of the last complete build is left as it is
 * (out->skipped: defrag-ingest after a run that changed nothing), and one that only
 * gained sources gets an append build (out->append).
 * @param st      a store open as the writer (borrowed); no transaction may be open on it
 * @param rules   a rules file, CLS_RULES_BUILTIN for the defaults (+ /etc/defragfs/rules.yml),
 *                or NULL for the rules the store keeps, else the defaults
 * @param flags   ORG_* flags
 * @param out     receives what the build did, also on failure (partly filled then);
 *                release it with organize_stats_release in every case
 * @param err     receives a message on failure ("FILE:LINE:COL: ..." for a rules error)
 * @param errlen  the size of @err (at least 1)
 * @return 0; -EINVAL a bad rules file; -ENOMEM; -EIO, -ENOSPC the store could not write;
 *         -EBADMSG damage in the index; -ENAMETOOLONG an organized path too long;
 *         -EEXIST every name for a unit's version taken (crafted names only).
 *         On failure the build's intermediate commits stay: a tree half built, which
 *         the next build (a full one then) corrects.
 * Blocks for the whole build. Not thread-safe for one store (see "Threads" above).
 */
int organize_run(struct store *st, const char *rules, unsigned flags,
		 struct organize_stats *out, char *err, size_t errlen);
/*
 * organize_run that stops when *@interrupt becomes non-zero (set by a signal handler;
 * NULL: never): checked between blocks of placed entries, and before the sweep. The
 * entries placed so far are committed and -EINTR is returned; the build is not recorded
 * as complete, so the next one is a full build that finishes the tree.
 */
int organize_run_stoppable(struct store *st, const char *rules, unsigned flags,
			   const volatile sig_atomic_t *interrupt, struct organize_stats *out,
			   char *err, size_t errlen);

#endif
