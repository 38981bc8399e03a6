/*
 * classify.h - where each source entry appears in the organized tree.
 *
 * Units first, files second: classify_source() walks a source tree top-down through
 * the struct cls_tree callbacks (so it runs on a live source walk, for --dry-run and
 * --explain, or on the index alone, for reclassify), detects units by their markers
 * (a git working tree, a PostgreSQL data dir, a Maven repository, a node_modules tree,
 * a Hugging Face cache ...; see docs/ARCHITECTURE.md#classify), keeps a unit's inside
 * whole, and places loose files by rules (path globs with **, name, extension, size,
 * MIME type). It emits one struct cls_result per entry; placing results in the index
 * (namespace dedup, conflict names) is the caller's job.
 *
 * Threads: a struct classify is read-only after classify_open() except for its libmagic
 * handle; use one struct classify per thread.
 * Errors: 0 or -errno; rules-file errors are -EINVAL with "FILE:LINE:COL: message" in
 * the caller's error buffer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_CLASSIFY_H
#define DFS_CLASSIFY_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rules.h"

#define CLS_SYSTEM_RULES "/etc/defragfs/rules.yml"
/*
 * The classification algorithm's version: bump it with any change to unit detection,
 * rule semantics or MIME use, so that whatever was built from a classification by
 * another version can tell (classify_fingerprint).
 */
#define CLS_ALGO_VERSION 5	/* 5: folders, archives by content, the seed's rules */
/*
 * The deepest directory level any walk of the project goes to (the walks keep their
 * levels on the heap, so this only bounds their memory): the source walk of ingest
 * stores nothing deeper (a directory deeper is a failed entry), so classification, which
 * stops with -ELOOP past it, never meets a deeper stored tree.
 */
#define CLS_MAX_DEPTH (1u << 20)

struct classify;

/* The rules path that names the built-in set (with CLS_SYSTEM_RULES when it exists, as
 * when no rules are given): `--rules builtin`. A file of that name is ./builtin. */
#define CLS_RULES_BUILTIN "builtin"

struct store;

/*
 * Compiles the built-in default rules, then the user's rules file on top.
 * @param rules_path  a YAML rules file, or NULL (or CLS_RULES_BUILTIN) for
 *                    CLS_SYSTEM_RULES when it exists
 * @param err, errlen receives "FILE:LINE:COL: message" on -EINVAL
 */
int classify_open(const char *rules_path, struct classify **out, char *err, size_t errlen);
/* The warnings of the rules file (rules.h's rules_warnings): borrowed until
 * classify_close. */
const char *const *classify_warnings(const struct classify *c, size_t *n);
/* The same with the user's rules given as @len bytes of @text, named @name in messages
 * (the rules the store keeps). */
int classify_open_text(const char *name, const char *text, size_t len, struct classify **out,
		       char *err, size_t errlen);
/*
 * The rules in force for store @st: @rules_path when given (a file, or CLS_RULES_BUILTIN);
 * else the rules the store keeps (store_get_rules), named "FILE (kept in the store)" in
 * messages; else as classify_open(NULL). @st may be NULL (no store: classify_open).
 * -EINVAL also when the kept rules cannot be read (@err says so).
 */
int classify_open_store(struct store *st, const char *rules_path, struct classify **out,
			char *err, size_t errlen);
void classify_close(struct classify *c);

/* Files and bytes per category: what a build placed, or what a dry run plans. */
struct cls_cat {
	char *name;		/* the rules' category ("" for none); owned by the tally */
	uint64_t files;
	uint64_t bytes;
};

struct cls_tally {
	struct cls_cat *v;	/* in the order categories were first met */
	size_t n;
};

/*
 * Adds @files files of @bytes bytes to category @cat (NULL: ""). Returns 0, or -ENOMEM
 * with the tally unchanged. Not thread-safe (a tally belongs to one thread).
 */
int cls_tally_add(struct cls_tally *t, const char *cat, uint64_t files, uint64_t bytes);
void cls_tally_release(struct cls_tally *t);

/* One entry of a directory, as the tree callbacks report it. All fields borrowed for the
 * duration of the callback. */
struct cls_entry {
	const uint8_t *name;	/* one component: any bytes but '/' and NUL */
	size_t name_len;
	uint32_t mode;		/* st_mode */
	uint64_t size;
	int64_t mtime;
	uint64_t handle;	/* opaque to classify; passed back to the callbacks */
	/* Regular files: the 32-byte content id; symlinks: SHA-256 of the target bytes;
	 * NULL if not known. */
	const uint8_t *content_id;
	const char *mime;	/* stored MIME type, or NULL if never computed */
};

struct cls_tree {
	void *ctx;
	/* Calls @fn(@arg, entry) for each child of directory @dir, in byte order of name.
	 * Stops and returns @fn's non-zero return. */
	int (*list)(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		    void *arg);
	/* Reads up to @len bytes from the start of regular file @file. -errno on failure. */
	ssize_t (*head)(void *ctx, uint64_t file, void *buf, size_t len);
	/* Optional (may be NULL): called when classify computed a MIME type that was missing,
	 * so the caller can store it. */
	void (*mime_computed)(void *ctx, uint64_t file, const char *mime);
	/* Optional (may be NULL): copy alignment. True, with the source-relative path ("" for
	 * a root) of the directory @dir copies, when @dir is the top of an aligned subtree:
	 * the rules then see that path for @dir and everything below it. */
	bool (*aligned)(void *ctx, uint64_t dir, const uint8_t **path, size_t *len);
};

struct cls_result {
	/* The entry, relative to the source root: "dir/sub/file" (no leading '/'); the
	 * root itself is never emitted. Bytes, not NUL-terminated. */
	const uint8_t *src_path;
	size_t src_path_len;
	const struct cls_entry *entry;
	/* Organized path relative to the mount root, e.g. "development/projects/foo/a.c".
	 * Every component is non-empty, never "." or "..", has no '/' or NUL. */
	const uint8_t *dest;
	size_t dest_len;
	const char *category;	/* e.g. "development", "cache/llm-models" */
	const char *rule;	/* the name of the rule that placed it */
	/* Units: set for every entry inside a unit, and for the unit root directory itself
	 * (which is emitted, as are directories inside units, so empty dirs survive). */
	bool in_unit;
	const char *unit_kind;		/* e.g. "git-worktree", "postgresql" */
	const uint8_t *unit_dest;	/* the unit root's organized path */
	size_t unit_dest_len;
	const uint8_t *unit_src;	/* the unit root's source-relative path */
	size_t unit_src_len;
	/* SHA-256 over the unit's (relative path, type, mode, content id or target) list,
	 * valid when in_unit and every file of the unit had a content_id. */
	bool unit_hash_valid;
	uint8_t unit_hash[32];
	bool unit_merges;	/* content-addressed caches merge across drives into one tree */
};

/* Called for each placed entry. A non-zero return stops the walk and is returned. */
typedef int (*cls_emit_fn)(void *arg, const struct cls_result *r);

/*
 * Classifies the source tree under @root (a directory handle of @tree), emitting every
 * non-directory entry, every directory inside a unit (and the unit root), and every
 * empty directory outside units. Loose entries no rule claims go to
 * "unsorted/SOURCE/original/path". Units are emitted whole, depth-first, after their
 * tree hash is known.
 * @param source_name  the source's name (a single path component)
 * @return 0, a non-zero return of @emit, or -errno from the callbacks.
 */
int classify_source(struct classify *c, const struct cls_tree *tree, uint64_t root,
		    const char *source_name, cls_emit_fn emit, void *arg);

/*
 * What the classifications of a struct classify placed, since classify_open (the
 * organized tree's figures, docs/CLASSIFY.md "Folders"): source directories that hold
 * regular files, those whose regular files went to more than one top-level category
 * (the first component of a category: "media" for "media/images"), regular files, and
 * those placed in the "unsorted" category. Directories inside units count as not split.
 * --explain counts nothing.
 */
struct cls_counts {
	uint64_t dirs, dirs_split;
	uint64_t files, files_unsorted;
};

void classify_counts(const struct classify *c, struct cls_counts *out);

/*
 * The classification's identity: the algorithm's version (CLS_ALGO_VERSION) and the rules
 * in force (each text parsed); equal fingerprints classify alike. The first 8 bytes of a
 * SHA-256, as a number.
 */
uint64_t classify_fingerprint(const struct classify *c);

/*
 * Could a rule need the MIME type of this loose regular file, and how much of it
 * (rules_need_mime)? (The first rule that matches without looking at MIME decides; unit
 * membership is not known here, so files inside units may get a yes they would not
 * need.) Ingest asks it to compute MIME types from the bytes it reads anyway, in its
 * workers, instead of the organizer re-reading the stored first chunk. @path is
 * source-relative. Thread-safe (read-only).
 */
enum rules_mime classify_may_need_mime(const struct classify *c, const uint8_t *path,
				       size_t path_len, const uint8_t *name, size_t name_len,
				       uint32_t mode, uint64_t size, int64_t mtime,
				       const char *source_name);

/*
 * --explain: writes to @out a human-readable account for the entry at @src_path (relative
 * to @root): the unit it belongs to, the rules that came close (@all: every rule
 * considered) and the one that won, and the resulting organized path, also put into
 * @result (NULL: not) as the rules give it (before conflict names, unit versions and
 * copy alignment). 0, -ENOENT if the path does not exist in @tree.
 */
int classify_explain(struct classify *c, const struct cls_tree *tree, uint64_t root,
		     const char *source_name, const uint8_t *src_path, size_t src_path_len,
		     bool all, FILE *out, struct dfs_buf *result);

#endif
