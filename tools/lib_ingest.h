/*
 * lib_ingest.h - the ingest engine behind defrag-ingest.
 *
 * Pipeline: one walker thread (directory walk, lstat, incremental check), N worker
 * threads (read each changed file once, sparse-aware; FastCDC; SHA-256; compress and
 * append only new chunks), and the committer (the calling thread), which applies
 * results in walk order to one metadata transaction and commits it every few seconds
 * or megabytes (store_txn_commit: durable on return). A stat pre-walk thread feeds
 * the progress totals. Memory is bounded by the in-flight ring (IN_RING items).
 *
 * Errors: ingest_run returns an exit status (enum cli_exit) and prints every failure.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_TOOLS_LIB_INGEST_H
#define DFS_TOOLS_LIB_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

enum ingest_progress { PROGRESS_AUTO, PROGRESS_ALWAYS, PROGRESS_NEVER };

struct ingest_opts {
	const char *store_dir;
	const char *name;		/* only with one source */
	const char *rules;
	const char **excludes;
	int nexcludes;
	int jobs;
	bool one_fs;
	bool dry_run;
	bool json;
	bool replace;
	bool allow_deletions;
	bool no_organize;		/* leave the organized tree (and MIME types) for later */
	enum ingest_progress progress;
	struct store_create_opts create;	/* used when the store is created */
};

/* --explain: prints how @what (a path inside @source, absolute or relative to it) would
 * be classified. Reads only what classification needs. Returns an exit status. */
int ingest_explain(const struct ingest_opts *o, const char *source, const char *what);

/* Ingests @sources (paths) into the store, then rebuilds the organized tree. */
int ingest_run(const struct ingest_opts *o, char **sources, int nsources);

#endif
