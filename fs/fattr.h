/*
 * fattr.h - struct store_inode to struct stat, and the defragfs extended attributes.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_FATTR_H
#define DFS_FS_FATTR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/buf.h"
#include "store/store.h"

void fattr_fill(const struct store_inode *in, struct stat *st);

/*
 * Owner maps (-o uidmap=FROM:TO[:COUNT], gidmap=...): the numeric ids of another
 * machine's drive are stored as they were, and shown as this machine's. An id in
 * [FROM, FROM + COUNT) is shown as TO + (id - FROM); the first map that holds it wins;
 * ids no map holds are shown as stored.
 */
#define FATTR_MAX_MAPS 16
struct fattr_idmap {
	uint32_t from, to, count;
};

struct fattr_maps {
	struct fattr_idmap uid[FATTR_MAX_MAPS], gid[FATTR_MAX_MAPS];
	size_t nuid, ngid;
};

/* Parses "FROM:TO[:COUNT]" (COUNT default 1; no overflow of either range) into @out.
 * 0 or -EINVAL. */
int fattr_map_parse(const char *spec, struct fattr_idmap *out);
uint32_t fattr_map_id(const struct fattr_idmap *m, size_t n, uint32_t id);
/* The owner and group of @st, mapped. */
void fattr_map_owner(const struct fattr_maps *maps, struct stat *st);
/*
 * The user and group ids inside a POSIX ACL value (@name system.posix_acl_access or
 * system.posix_acl_default, @val as fattr_get wrote it), mapped in place; other names are
 * left alone. 0, or -EIO for an ACL value that does not decode.
 */
int fattr_map_acl(const struct fattr_maps *maps, const char *name, struct dfs_buf *val);

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
