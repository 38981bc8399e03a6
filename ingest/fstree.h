/*
 * fstree.h - a live directory seen as a struct cls_tree, for classification without
 * the index: defrag-ingest --dry-run (the plan) and --explain PATH.
 *
 * Handles are indexes into a table of the entries listed, each its parent and name
 * (memory grows with the entries listed; this is for planning, not for ingest). Opens
 * one component at a time, relative to its directory, so any depth works; it keeps the
 * directories of the last one opened open (one fd per level). Never follows symlinks,
 * opens with O_NOATIME where permitted, reads at most the requested head of a file.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_FSTREE_H
#define DFS_INGEST_FSTREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "classify/classify.h"

struct fstree;

/* Opens @root (a directory). The tree's root handle is fstree_root(). */
int fstree_open(const char *root, struct fstree **out);
/*
 * A tree given entry by entry, with nothing behind it (a remote source's dry run: its plan
 * from the walk's stream): fstree_add() each entry below the root in walk order (depth
 * first, each directory's entries sorted), @depth 1 for the root's entries, with its stat
 * and its MIME type (NULL: not known; the tree's head callback fails, so a rule that needs
 * one sees none). An entry whose parent was not added (a failed directory) is left out.
 * Memory grows with the entries, as fstree_open's. 0 or -ENOMEM.
 */
int fstree_new_given(struct fstree **out);
int fstree_add(struct fstree *t, size_t depth, const uint8_t *name, size_t nl,
	       const struct stat *sb, const char *mime);
/* An entry at @depth that is not added (it failed): what is below it is left out. */
void fstree_skip(struct fstree *t, size_t depth);
void fstree_close(struct fstree *t);
const struct cls_tree *fstree_tree(struct fstree *t);
uint64_t fstree_root(const struct fstree *t);

#endif
