/*
 * fattr.h - struct store_inode to struct stat, and the defragfs extended attributes.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_FATTR_H
#define DFS_FS_FATTR_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/buf.h"
#include "store/store.h"

void fattr_fill(const struct store_inode *in, struct stat *st);

/*
 * The extended attributes of @in as the mount shows them: the file's own, plus in the
 * organized view user.defrag.origins, user.defrag.origins_count, user.defrag.category,
 * user.defrag.rule, user.defrag.hash (regular files) and user.defrag.unit (when set).
 * The /.sources view shows the file's own xattrs only, exactly as ingested.
 */
/* Writes the NUL-separated list of names into @out. */
int fattr_list(const struct store_inode *in, struct dfs_buf *out);
/* Writes the value of @name into @out; -ENODATA if absent. */
int fattr_get(const struct store_inode *in, const char *name, struct dfs_buf *out);

#endif
