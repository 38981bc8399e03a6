/*
 * reach.h - who may reach an organized entry (docs/FS.md, "Access through the organized
 * tree").
 *
 * Under /.sources the kernel checks every directory of a path (default_permissions). An
 * organized entry sits under other directories than its origins, so the protection of
 * its origins' parent directories (a 0700 home) would be lost. The mount therefore checks,
 * with -o allow_other: a caller reaches an organized entry when it may search (x) every
 * directory above one of the entry's origins under /.sources, evaluated as the kernel
 * would (owner, group and supplementary groups, POSIX ACLs, uid/gid maps). The entry's own
 * mode is the kernel's to check, as everywhere.
 *
 * An entry with one origin whose directories everyone may search ("open") costs one
 * lookup in a memo of parent paths; only "guarded" entries (every origin behind a
 * directory some users may not search) are checked per caller, and the daemon gives
 * them zero entry/attribute timeouts and keeps directories holding them out of the
 * kernel's readdir cache, since the kernel shares both between users.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_REACH_H
#define DFS_FS_REACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fattr.h"
#include "store/store.h"

struct reach;

/* A caller: its ids, and its supplementary groups, read when first needed. */
struct reach_who {
	uid_t uid;
	gid_t gid;
	/* fills @list with up to @size groups; returns how many the caller has, or -errno */
	int (*load_groups)(void *arg, gid_t *list, int size);
	void *arg;
	gid_t *groups;		/* loaded: owned, free with reach_who_release */
	int ngroups;		/* -1: not loaded yet */
};

void reach_who_init(struct reach_who *w, uid_t uid, gid_t gid,
		    int (*load_groups)(void *, gid_t *, int), void *arg);
void reach_who_release(struct reach_who *w);

/* A memo over @st (borrowed), with @maps (borrowed) applied to stored owners. */
int reach_new(struct store *st, const struct fattr_maps *maps, struct reach **out);
void reach_free(struct reach *r);
/* The index moved (live follow): forget what the memo knows. */
void reach_reset(struct reach *r);

/*
 * Does the check apply to @in: an organized entry with origins, or an organized directory
 * with witnesses (store/witness.h: the highest parent prefixes of the origins of every
 * entry below it, and of its own)? Records of /.sources, the organized root and
 * directories of a tree built before witnesses are never checked.
 */
bool reach_applies(const struct store_inode *in);

/*
 * Is @in guarded: an entry to which the check applies, none of whose origins (a
 * directory: witnesses) is open (every directory above it searchable by everyone)?
 * 0, or -errno (the index could not be read: the caller fails the request).
 */
int reach_guarded(struct reach *r, const struct store_inode *in, bool *guarded);

/* May @who search every directory above the origin @o ("NAME:/path", @len bytes)? */
int reach_origin(struct reach *r, const uint8_t *o, size_t len, struct reach_who *who,
		 bool *ok);

/*
 * May @who reach @in: is it not guarded, or does one of its origins (a directory: one of
 * its witnesses) pass reach_origin? A directory whose witnesses are partial, none of
 * which passes, is reached when an entry below it is (read from the index).
 */
int reach_entry(struct reach *r, const struct store_inode *in, struct reach_who *who,
		bool *ok);

/*
 * The kernel's permission check of @in for @who, @want a mask of 4 (read), 2, 1 (search
 * or execute): owner, owning group and supplementary groups, the POSIX ACL of @in
 * (system.posix_acl_access), with @maps applied to stored ids. uid 0 passes. A malformed
 * ACL refuses.
 */
bool reach_permits(const struct fattr_maps *maps, const struct store_inode *in,
		   struct reach_who *who, unsigned want);

#endif
