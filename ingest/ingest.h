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
#include <signal.h>
#include <stdio.h>

#include "classify/classify.h"
#include "store/store.h"

/* What the caller reads while a source is ingested (a snapshot, taken for each call). */
struct ingest_progress {
	const char *source;	/* the source's name */
	uint64_t files_done;
	uint64_t files_total;	/* regular files found by the pre-walk so far */
	uint64_t bytes_done;	/* bytes of files read or found unchanged */
	uint64_t bytes_total;
	uint64_t bytes_read;
	uint64_t new_raw;	/* bytes of chunks the store did not have */
	bool totals_final;	/* the pre-walk finished: the totals are complete */
	double elapsed;		/* seconds since the source's walk started */
};

typedef void (*ingest_progress_fn)(const struct ingest_progress *p, void *arg);

/*
 * Chunk ids seen by a dry run, shared by the sources of one run (dedup between them), and
 * what they would add to the store. A chunk counts as new when neither the run nor the
 * store (ingest_dryset_use_store) has it. Memory is bounded: past INGEST_DRY_CAP ids the
 * set keeps one chunk in 2, then 1 in 4 ... chosen by bits of the chunk id (so every copy
 * of a chunk is in or out alike), and the sums are scaled up (an estimate, sample_every >
 * 1). New chunks of the sample are compressed at the store's level: all of the first
 * 256 MiB, then one in 8 (by id) weighing 8: the compression estimate.
 */
struct ingest_dryset;

#define INGEST_DRY_CAP (1u << 23)	/* ids held at most (128 MiB of table) */

int ingest_dryset_new(struct ingest_dryset **out);
void ingest_dryset_free(struct ingest_dryset *d);
/* Chunks @st (an open store, reader or writer, borrowed) holds count as known. */
void ingest_dryset_use_store(struct ingest_dryset *d, struct store *st);

struct ingest_dry_estimate {
	/* op log bytes (compressed) of the content objects neither the store nor the run
	 * had: their heads, inline bytes and chunk lists */
	uint64_t new_content_meta;
	uint64_t new_contents;
	uint64_t new_chunks;	/* distinct chunks neither the store nor the run had */
	uint64_t new_raw;	/* their bytes */
	uint64_t new_stored;	/* their estimated pack bytes (compressed, record headers) */
	double compression;	/* raw / compressed bytes of the compressed sample; 1.0: none */
	uint64_t sample_every;	/* 1: every chunk counted; 2^k: one chunk id in 2^k */
	bool incomplete;	/* out of memory once: a lower bound */
};
void ingest_dryset_estimate(struct ingest_dryset *d, struct ingest_dry_estimate *e);

struct ingest_opts {
	const char *rules;		/* rules file for MIME-on-read, NULL: the store's
					 * (classify_open_store) */
	const char *const *excludes;	/* fnmatch patterns */
	int nexcludes;
	int jobs;			/* worker threads, <= 0: one per CPU */
	bool one_fs;			/* do not cross into other filesystems */
	bool dry_run;			/* read and hash, write nothing (store may be NULL) */
	bool replace;			/* accept a name now on another filesystem (the
					 * deletion threshold still holds) */
	bool allow_deletions;		/* accept removing more than half of the files */
	bool alias;			/* accept a second name for a directory that is
					 * already a source of the store */
	bool no_organize;		/* no MIME-on-read: the organized tree waits */
	/* the chunking and compression of a dry run without a store */
	const struct store_create_opts *create;
	struct ingest_dryset *dry;	/* dry run: required */
	/* called from the calling thread about every @progress_interval seconds, and once
	 * at the end of the walk; NULL: none */
	ingest_progress_fn progress;
	void *progress_arg;
	double progress_interval;
	/* set (by a signal handler) to stop the run: what was applied is committed and the
	 * outcome is INGEST_INTERRUPTED; NULL: none */
	const volatile sig_atomic_t *interrupt;
	/* a remote source (ingest_is_remote): the ssh command ("ssh" when NULL; words split
	 * at blanks, as rsync's -e), and the remote's defrag-ingest ("defrag-ingest") */
	const char *rsh;
	const char *remote_cmd;
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
	INGEST_INTERRUPTED,	/* stopped by @interrupt: files committed, the rest not */
};

/*
 * A dry run's live tree, entry by entry as the source's view would hold it (what copy
 * alignment needs of it: organize_align_live; the tool passes it on).
 */
struct ingest_live_entry {
	uint8_t *path;		/* source-relative, "" for the root (owned) */
	size_t len;
	uint32_t mode;
	uint64_t size;
	uint64_t digest;	/* a regular file: its content id's first 8 bytes (memcpy) */
	uint8_t *target;	/* a symlink's target (owned) */
	size_t target_len;
	uint64_t rdev;
};

struct ingest_report {
	char *name;
	enum ingest_outcome outcome;
	char message[768];	/* why, for REFUSED, SOURCE_FAILED and STORE_FAILED */
	uint64_t files;		/* regular files in the view after the run (INTERRUPTED:
				 * the files this run committed) */
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
	/* op log bytes (compressed, estimated from a sample) of the content objects this run
	 * stored first: what the store's per-file cost leaves out (ingest_cost) */
	uint64_t content_meta;
	/* dry run against a store: the live tree's entries, every one the ingest would store
	 * (a hard link's later names without their content: digest 0) */
	struct ingest_live_entry *live;
	size_t nlive;
	uint64_t bytes_received;	/* a remote source: the bytes that crossed from it */
	uint64_t would_receive;		/* a dry run of one: with the new chunks' data */
};

void ingest_report_release(struct ingest_report *r);

/*
 * Makes the roots of both views exist (a new store). Call in the first transaction.
 * Returns 0 or -errno.
 */
int ingest_ensure_roots(struct store_txn *tx);

/*
 * --exclude: does pattern @pat (fnmatch(3) syntax, with rsync's forms) exclude the entry at
 * @path (source-relative, no leading '/')? A pattern without '/' matches an entry's name
 * at any depth (or the whole path, '*' crossing '/'); "/PAT" is anchored at the source
 * root; "PAT/" matches directories only; "a/b" matches the path or its end after a '/'.
 * '*' may also cross '/' (so "**" matches at any depth). rsync's filter rules ("+ PAT",
 * "- PAT") are not supported: ingest_exclude_check() says so.
 */
bool ingest_exclude_match(const char *pat, const char *path, bool is_dir);
/* NULL when @pat is usable, else what is not supported in it (a static string). */
const char *ingest_exclude_check(const char *pat);

/*
 * What earlier ingests wrote per file besides contents: op log bytes of a file's records
 * in a source view (inode, entry, srcmap; ingest_report.content_meta taken out), and of
 * the organized tree per file placed by a first or an append build. A derived record
 * (`cache/cost`, versioned, not in any op log): sums over the runs since the store was
 * made or recovered. A dry run's "would add" uses it (defrag-ingest --dry-run).
 */
struct ingest_cost {
	uint64_t view_files, view_bytes;
	uint64_t org_files, org_bytes;
};
/* 0; -ENOENT none yet; -EPROTONOSUPPORT, -EBADMSG: another version, damaged (ignored). */
int ingest_cost_get(struct store *st, struct ingest_cost *out);
/* Adds @add to the record, in a commit of its own (writer only). 0 or -errno. */
int ingest_cost_note(struct store *st, const struct ingest_cost *add);

/* Is @name usable as a source name (1..255 bytes, no '/', not "." or "..")? */
bool ingest_valid_name(const char *name);

/*
 * Ingests the directory @path (absolute, resolved) as source @name.
 * @st, @txp: the writer store and its open transaction (committed in groups and replaced
 * here; *txp is an open transaction again on return, or NULL after a store failure);
 * both NULL for a dry run. @rep: filled (released by the caller, also on failure).
 * Returns 0 (rep->outcome DONE or PARTIAL) or -errno (REFUSED: -EXDEV another
 * filesystem, or nothing mounted at @path; -EEXIST the directory is already another
 * source (without @o->alias); -ECANCELED the deletion threshold, also with @o->replace;
 * -EINTR INTERRUPTED; SOURCE_FAILED; STORE_FAILED).
 * A refused run leaves the source record as it was.
 */
int ingest_source(struct store *st, struct store_txn **txp, const char *path, const char *name,
		  const struct ingest_opts *o, struct ingest_report *rep);

/*
 * Remote sources (remote.c, serve.c): `ssh://[USER@]HOST[:PORT]/PATH` or `HOST:PATH` (a
 * ':' before any '/', as scp and rsync). ingest_source() runs `defrag-ingest --serve`
 * there through ssh; only the chunks the store lacks cross, compressed.
 * ingest_remote_base: the last component of the remote path (a default source name),
 * or NULL. ingest_serve: the remote side, on @in and @out (a handshake, then the walk);
 * 0, or -errno with a message in @err (also sent to the other side when it can be).
 */
bool ingest_is_remote(const char *spec);
const char *ingest_remote_base(const char *spec);
int ingest_serve(int in, int out, char *err, size_t errlen);

/*
 * Does the store at @store_dir share a filesystem with the source directory @path, or
 * lie inside it (so that wiping the drive wipes the store)? @store_dir need not exist
 * yet (its nearest existing parent is what counts). Writes how, to follow "the store",
 * to @why ("is inside the source", "is on the same filesystem as the source").
 * Returns 1 yes, 0 no, -errno (@path cannot be examined).
 */
int ingest_path_shares_store_fs(const char *store_dir, const char *path, char *why,
				size_t whylen);

/*
 * Does the store share a filesystem with source @s, as its last completed ingest found
 * (recorded then: META "samefs.<source id>")? For defrag-stat and the gate.
 * Returns 1 yes, 0 no, -ENOENT unknown (not ingested since this was recorded), -errno.
 */
int ingest_store_shares_fs(struct store *st, const struct store_source *s);
#define INGEST_SAMEFS_WARNING \
	"the store shares a filesystem with this drive: wiping the drive wipes the store"

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

/*
 * A whole source out of every view (forget.c, the engine of defrag-forget): its
 * /.sources entry, source record and view records, in committed steps (see forget.c);
 * the caller then rebuilds the organized tree (organize_run). An interrupted forget is
 * finished by the next one, or by ingest_forget_resume.
 */
struct ingest_forget_report {
	uint64_t files;		/* entries of the view that are not directories */
	uint64_t dirs;		/* its directories (the root not counted) */
	uint64_t source_files;	/* files and bytes of its last ingest (the source record) */
	uint64_t bytes;
	uint64_t commits;
	bool resumed;		/* an interrupted forget was finished first */
	/* ingest_forget_snapshots: the snapshots dropped (their times, oldest first; free
	 * with ingest_forget_report_release) and kept; files and dirs are then the
	 * records only the dropped ones named */
	int64_t *dropped;
	size_t snaps_dropped, snaps_kept;
};
void ingest_forget_report_release(struct ingest_forget_report *r);
/* "safe to wipe: yes": the last --against was clean and checked the current ingest. */
bool ingest_safe_to_wipe(const struct store_source *s);
/*
 * @param st       a store open as the writer, no transaction open
 * @param dry_run  count only (the view is walked), change nothing
 * @return 0, -ENOENT (no such source), -errno of the store
 */
int ingest_forget(struct store *st, const char *name, bool dry_run,
		  struct ingest_forget_report *rep);
/* Finishes a forget cut short (nothing to do: 0, *entries 0). */
int ingest_forget_resume(struct store *st, uint64_t *entries);

/*
 * Which snapshots defrag-forget drops from a source (--keep-last, --keep-within,
 * --snapshot). With @times, exactly those; else a snapshot goes unless the newest
 * @keep_last keep it or it is at or after @keep_after (keep_within). The newest snapshot
 * (/.sources/NAME) is never dropped.
 */
struct ingest_snap_policy {
	size_t keep_last;	/* 0: no such rule */
	bool keep_within;
	int64_t keep_after;	/* UTC seconds */
	const int64_t *times;	/* --snapshot TIME, each */
	size_t ntimes;
};
/* @drop[i] for each snapshot of @s. 0; -ESRCH a time names no snapshot, -EBUSY the
 * newest; -EINVAL no rule. */
int ingest_snaps_select(const struct store_source *s, const struct ingest_snap_policy *p,
			bool *drop);
/*
 * Drops the snapshots of source @name that @p selects, in committed steps as
 * ingest_forget (forget.c): the source record without them, then the records only they
 * named (kept snapshots and the current view share the rest). The organized tree shows
 * the newest snapshot, which stays: it needs no rebuild. defrag-gc then frees the data
 * nothing else references. Nothing selected: 0, nothing changed.
 * @return 0, -ENOENT (no such source), ingest_snaps_select's errors, -errno of the store
 */
int ingest_forget_snapshots(struct store *st, const char *name,
			    const struct ingest_snap_policy *p, bool dry_run,
			    struct ingest_forget_report *rep);

#endif
