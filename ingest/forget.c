/*
 * forget.c - a whole source out of the store's views (the engine of defrag-forget).
 *
 * ingest_forget() removes a source in two stages, each a committed step:
 *   1. one commit: the /.sources/NAME entry, the source record and the source's META
 *      values (src_changed.ID, srcfs.ID.k, samefs.ID) go, and "forget_root" /
 *      "forget_src" / "forget_nfs" note the now unreachable view as pending; from this
 *      commit on no view shows the source;
 *   2. its view's records (dirents, inodes, srcmap entries) are deleted, descendants
 *      before their directory, in commits of COMMIT_META bytes of op log; the last one
 *      clears the pending note.
 * Every step is in the op log like any commit, so defrag-recover replays it. A forget
 * interrupted in stage 2 leaves an unreachable part of the view noted as pending: the
 * next ingest_forget (or ingest_forget_resume) deletes it first. The caller rebuilds the
 * organized tree afterwards (organize_run: the set of sources changed, so a full build
 * sweeps the source's origins out of the tree).
 *
 * The bytes the source alone referenced stay in the packs until defrag-gc.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "ingest_int.h"
#include "store/log.h"

struct fg_ent {
	uint64_t ino;
	uint8_t dtype;
};

struct fg_list {
	struct fg_ent *v;
	size_t n, cap;
	uint64_t files, dirs;
};

static int fg_push(struct fg_list *l, uint64_t ino, uint8_t dtype)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct fg_ent *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct fg_ent){ ino, dtype };
	if (dtype == DT_DIR)
		l->dirs++;
	else
		l->files++;
	return 0;
}

static int fg_visit(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
		    uint8_t dtype)
{
	(void)path;
	(void)depth;
	int rc = fg_push(arg, ino, dtype);

	if (rc < 0)
		return rc;
	return dtype == DT_DIR ? 1 : 0;
}

/* Every entry of the view below @root, @root first, in depth-first pre-order. */
static int fg_collect(struct store *st, uint64_t root, struct fg_list *l)
{
	struct dfs_buf path;
	int rc = fg_push(l, root, DT_DIR);

	l->dirs--;	/* the root is not one of the source's directories */
	if (rc < 0)
		return rc;
	dfs_buf_init(&path, 1u << 24);
	rc = store_walk_tree(st, root, &path, fg_visit, l);
	dfs_buf_release(&path);
	return rc == -ENOENT ? 0 : rc;
}

/* Deletes the names in directory @dir (listed first: an iterator must not see its own
 * deletions). */
static int fg_del_names(struct store_txn *tx, uint64_t dir)
{
	struct store_dir_iter *di;
	struct dfs_buf names;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc = store_txn_dir_open(tx, dir, &di);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	dfs_buf_init(&names, 1ull << 32);
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1)
		dfs_buf_put_bytes(&names, nm, nl);
	store_dir_close(di);
	if (rc == 0 && names.err)
		rc = names.err;
	if (rc == 0) {
		struct dfs_rd r;

		dfs_rd_init(&r, names.data, names.len);
		while (rc == 0 && r.left > 0) {
			const uint8_t *p = dfs_rd_bytes(&r, &nl);

			if (!p) {
				rc = -EBADMSG;
				break;
			}
			rc = store_txn_del_dirent(tx, dir, p, nl);
		}
	}
	dfs_buf_release(&names);
	return rc;
}

/* One entry's records: its names (a directory), srcmap entry and inode. */
static int fg_del_one(struct store_txn *tx, const struct fg_ent *e, uint32_t src,
		      unsigned nfs)
{
	struct store_inode in;
	int rc = 0;

	if (e->dtype == DT_DIR)
		rc = fg_del_names(tx, e->ino);
	if (rc < 0)
		return rc;
	rc = store_txn_get_inode(tx, e->ino, &in);
	if (rc == -ENOENT)
		return 0;	/* a second name of a hard link, or done before a crash */
	if (rc < 0)
		return rc;
	for (unsigned k = 0; k < nfs && rc == 0; k++) {
		uint64_t mapped;
		uint32_t id = ING_FS_MAP(src, k);

		if (store_txn_get_srcmap(tx, id, in.src_ino, &mapped) == 0 && mapped == e->ino)
			rc = store_txn_del_srcmap(tx, id, in.src_ino);
	}
	store_inode_release(&in);
	if (rc == 0)
		rc = store_txn_del_inode(tx, e->ino);
	return rc;
}

/* Stage 2 for the view noted as pending, if any: 0 and *@entries, or -errno. */
static int fg_finish(struct store *st, struct store_txn **txp, struct ingest_forget_report *rep)
{
	struct fg_list l = { 0 };
	uint64_t root = 0, src = 0, nfs = 1;
	int rc = store_txn_get_meta_u64(*txp, "forget_root", &root);

	if (rc == -ENOENT || (rc == 0 && root == 0))
		return 0;
	if (rc == 0)
		rc = store_txn_get_meta_u64(*txp, "forget_src", &src);
	if (rc == 0)
		rc = store_txn_get_meta_u64(*txp, "forget_nfs", &nfs);
	if (rc == 0)
		rc = fg_collect(st, root, &l);
	if (rc == 0 && rep) {
		rep->files = l.files;
		rep->dirs = l.dirs;
	}
	/* descendants before their directory: the view stays a tree at every commit */
	for (size_t i = l.n; i-- > 0 && rc == 0;) {
		rc = fg_del_one(*txp, &l.v[i], (uint32_t)src, (unsigned)nfs);
		if (rc == 0 && store_txn_size(*txp) > COMMIT_META) {
			rc = store_txn_commit(*txp);
			*txp = NULL;
			if (rc == 0 && rep)
				rep->commits++;
			if (rc == 0)
				rc = store_txn_begin(st, txp);
		}
	}
	free(l.v);
	if (rc == 0)
		rc = store_txn_del_meta(*txp, "forget_root");
	if (rc == 0)
		rc = store_txn_del_meta(*txp, "forget_src");
	if (rc == 0)
		rc = store_txn_del_meta(*txp, "forget_nfs");
	if (rc == 0) {
		rc = store_txn_commit(*txp);
		*txp = NULL;
		if (rc == 0 && rep)
			rep->commits++;
	}
	return rc;
}

bool ingest_safe_to_wipe(const struct store_source *s)
{
	return s->last_against && s->against_result == 0 && s->against_gen == s->ingest_gen &&
	       s->ingest_gen > 0;
}

int ingest_forget_resume(struct store *st, uint64_t *entries)
{
	struct ingest_forget_report r = { 0 };
	struct store_txn *tx = NULL;
	int rc = store_txn_begin(st, &tx);

	if (rc == 0)
		rc = fg_finish(st, &tx, &r);
	store_txn_abort(tx);
	if (entries)
		*entries = r.files + r.dirs;
	return rc;
}

/* Stage 1: the source out of every view, its view noted as pending. */
static int fg_unlink(struct store_txn *tx, const struct store_source *s, unsigned *nfs)
{
	char key[64];
	uint64_t id;
	int rc;

	*nfs = 1;
	for (unsigned k = 1; k < ING_MAX_FS; k++) {
		snprintf(key, sizeof(key), "srcfs.%" PRIu32 ".%u", s->id, k);
		rc = store_txn_get_meta_u64(tx, key, &id);
		if (rc == -ENOENT || (rc == 0 && id == 0))
			break;
		if (rc == 0)
			rc = store_txn_del_meta(tx, key);
		if (rc < 0)
			return rc;
		*nfs = k + 1;
	}
	rc = store_txn_del_dirent(tx, STORE_SOURCES_INO, s->name.p, s->name.len);
	if (rc == 0)
		rc = store_txn_del_source(tx, s->name.p, s->name.len);
	snprintf(key, sizeof(key), "src_changed.%" PRIu32, s->id);
	if (rc == 0)
		rc = store_txn_del_meta(tx, key);
	snprintf(key, sizeof(key), "samefs.%" PRIu32, s->id);
	if (rc == 0)
		rc = store_txn_del_meta(tx, key);
	if (rc == 0 && s->root_ino) {
		rc = store_txn_put_meta_u64(tx, "forget_root", s->root_ino);
		if (rc == 0)
			rc = store_txn_put_meta_u64(tx, "forget_src", s->id);
		if (rc == 0)
			rc = store_txn_put_meta_u64(tx, "forget_nfs", *nfs);
	}
	return rc;
}

int ingest_forget(struct store *st, const char *name, bool dry_run,
		  struct ingest_forget_report *rep)
{
	struct store_source s;
	struct store_txn *tx = NULL;
	unsigned nfs;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = store_get_source(st, name, strlen(name), &s);
	if (rc < 0)
		return rc;
	rep->bytes = s.bytes;
	rep->source_files = s.files;
	if (dry_run) {
		struct fg_list l = { 0 };

		rc = s.root_ino ? fg_collect(st, s.root_ino, &l) : 0;
		rep->files = l.files;
		rep->dirs = l.dirs;
		free(l.v);
		store_source_release(&s);
		return rc;
	}
	rc = store_txn_begin(st, &tx);
	/* an earlier forget cut short: its view first (one pending view at a time) */
	if (rc == 0) {
		uint64_t root = 0;

		if (store_txn_get_meta_u64(tx, "forget_root", &root) == 0 && root) {
			rep->resumed = true;
			rc = fg_finish(st, &tx, NULL);
			if (rc == 0)
				rc = store_txn_begin(st, &tx);
		}
	}
	if (rc == 0)
		rc = fg_unlink(tx, &s, &nfs);
	if (rc == 0) {
		rc = store_txn_commit(tx);
		tx = NULL;
		if (rc == 0)
			rep->commits++;
	}
	if (rc == 0)
		rc = store_txn_begin(st, &tx);
	if (rc == 0)
		rc = fg_finish(st, &tx, rep);
	store_txn_abort(tx);
	store_source_release(&s);
	return rc;
}
