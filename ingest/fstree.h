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

#include <stdint.h>

#include "classify/classify.h"

struct fstree;

/* Opens @root (a directory). The tree's root handle is fstree_root(). */
int fstree_open(const char *root, struct fstree **out);
void fstree_close(struct fstree *t);
const struct cls_tree *fstree_tree(struct fstree *t);
uint64_t fstree_root(const struct fstree *t);

#endif
