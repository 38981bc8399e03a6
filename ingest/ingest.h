/*
 * ingest.h - a source directory into the store (the engine of defrag-ingest).
 *
 * ingest_source() walks one source once, reads every changed file once, cuts it into
 * chunks (FastCDC), fingerprints them (SHA-256), compresses and appends the new ones, and
 * commits the source's view (/.sources/NAME) in walk order through the caller's
 * transaction, in groups. It never prints: it fills a struct ingest_report, calls the
 * caller's progress function with a struct ingest_progress, and logs through store/log.h.
 * The caller (tools/ingest.c) then runs organize_run() and checkpoints the store.
 *
 * Source view rules (DESIGN.md "Sources and re-ingest"):
 *   - (source, st_ino) -> inode via srcmap; a file whose (st_ino, size, mtime, ctime) did
 *     not change since the last ingest is not read again;
 *   - a directory's stale entries (names no longer listed) are removed at the end of the
 *     run, after the deletion threshold check (@allow_deletions);
 *   - a file that changed while it was read is retried, then reported; its previous
 *     version stays; torn content is never stored.
 *
 * Threads: one call at a time per store; it starts and joins its own threads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_INGEST_H
#define DFS_INGEST_INGEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "classify/classify.h"
#include "store/store.h"

/* What the caller reads while a source is ingested (a snapshot, taken for each call). */
struct ingest_progress {
	const char *source;	/* the source's name */
	uint64_t files_done;
	uint64_t files_total;	/* entries found by the pre-walk so far */
	uint64_t bytes_done;	/* bytes of files read or found unchanged */
	uint64_t bytes_total;
	uint64_t bytes_read;
	uint64_t new_raw;	/* bytes of chunks the store did not have */
	bool totals_final;	/* the pre-walk finished: the totals are complete */
	double elapsed;		/* seconds since the source's walk started */
};

typedef void (*ingest_progress_fn)(const struct ingest_progress *p, void *arg);

/* Chunk ids seen by a dry run, shared by the sources of one run (dedup between them). */
struct ingest_dryset;

int ingest_dryset_new(struct ingest_dryset **out);
void ingest_dryset_free(struct ingest_dryset *d);

struct ingest_opts {
	const char *rules;		/* rules file for MIME-on-read, NULL: the store's
					 * (classify_open_store) */
	const char *const *excludes;	/* fnmatch patterns */
	int nexcludes;
	int jobs;			/* worker threads, <= 0: one per CPU */
	bool one_fs;			/* do not cross into other filesystems */
	bool dry_run;			/* read and hash, write nothing (store may be NULL) */
	bool replace;			/* accept a name now on another filesystem */
	bool allow_deletions;		/* accept removing more than half of the files */
	bool no_organize;		/* no MIME-on-read: the organized tree waits */
	/* the chunking and compression of a dry run without a store */
	const struct store_create_opts *create;
	struct ingest_dryset *dry;	/* dry run: required */
	/* called from the calling thread about every @progress_interval seconds, and once
	 * at the end of the walk; NULL: none */
	ingest_progress_fn progress;
	void *progress_arg;
	double progress_interval;
};

/* An entry that could not be stored, and why. */
struct ingest_failure {
	uint8_t *path;		/* source-relative bytes */
	size_t len;
	char *why;
};

enum ingest_outcome {
	INGEST_DONE = 0,	/* every entry stored */
	INGEST_PARTIAL,		/* finished; the entries in fails[] were not stored */
	INGEST_REFUSED,		/* refused (message): the view is as it was */
	INGEST_SOURCE_FAILED,	/* the source could not be opened (message) */
	INGEST_STORE_FAILED,	/* the store failed (message); what was committed is safe */
};

struct ingest_report {
	char *name;
	enum ingest_outcome outcome;
	char message[768];	/* why, for REFUSED, SOURCE_FAILED and STORE_FAILED */
	uint64_t files;		/* regular files in the view after the run */
	uint64_t bytes;
	uint64_t bytes_read;
	uint64_t new_raw;	/* dry run: bytes of chunks not seen before in this run */
	uint64_t new_stored;
	uint64_t unchanged;	/* files not read again (incremental) */
	uint64_t mime_calls;
	double secs;
	double mime_secs;	/* libmagic's thread time */
	struct ingest_failure *fails;
	size_t nfails;
	/* --one-file-system: the other filesystems' mount points it skipped (why: NULL) */
	struct ingest_failure *skipped;
	size_t nskipped;
	/* dry run: the planned placement per category (regular files) */
	struct cls_tally cats;
	uint64_t planned;
};

void ingest_report_release(struct ingest_report *r);

/*
 * Makes the roots of both views exist (a new store). Call in the first transaction.
 * Returns 0 or -errno.
 */
int ingest_ensure_roots(struct store_txn *tx);

/* Is @name usable as a source name (1..255 bytes, no '/', not "." or "..")? */
bool ingest_valid_name(const char *name);

/*
 * Ingests the directory @path (absolute, resolved) as source @name.
 * @st, @txp: the writer store and its open transaction (committed in groups and replaced
 * here; *txp is an open transaction again on return, or NULL after a store failure);
 * both NULL for a dry run. @rep: filled (released by the caller, also on failure).
 * Returns 0 (rep->outcome DONE or PARTIAL) or -errno (REFUSED: -EXDEV another
 * filesystem, -ECANCELED the deletion threshold; SOURCE_FAILED; STORE_FAILED).
 */
int ingest_source(struct store *st, struct store_txn **txp, const char *path, const char *name,
		  const struct ingest_opts *o, struct ingest_report *rep);

/*
 * --explain (explain.c): how @what (a path inside @source: relative to it, or absolute,
 * its last component not followed) is classified, written to @out: the rules that came
 * close (@all: every rule) and the one that won; then, when @st (a store, may be NULL)
 * holds the source, where it actually placed the entry (conflict and version names,
 * category, rule, other versions). The rules: @rules, else those @st keeps
 * (classify_open_store). @name: the source name (NULL: basename of @source).
 * Returns 0, -ENOENT (no such entry), -EXDEV (@what is outside @source), or -errno;
 * @err receives a message.
 */
int ingest_explain(struct store *st, const char *source, const char *what, const char *name,
		   const char *rules, bool all, FILE *out, char *err, size_t errlen);

#endif
