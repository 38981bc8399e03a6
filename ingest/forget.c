/*
 * forget.c - a whole source out of the store's views (the engine of defrag-forget).
 *
 * ingest_forget() removes a source in two stages, each a committed step:
 *   1. one commit: the /.sources/NAME entry, the source record and the source's META
 *      values (src_changed.ID, srcfs.ID.k, samefs.ID) go, and the pending note (below)
 *      names the roots of the now unreachable view and of every snapshot; from this
 *      commit on no view shows the source;
 *   2. the records reachable from the noted roots (dirents, inodes, srcmap entries) and
 *      from no root the source still has are deleted, descendants before their
 *      directory, in commits of COMMIT_META bytes of op log; the last one clears the
 *      pending note.
 * ingest_forget_snapshots() drops snapshots of a source the same way: stage 1 writes the
 * source record without them and notes their roots; stage 2 deletes what only they
 * named (records shared with a kept snapshot or the current view stay).
 * The pending note, META: "forget_src" (source id), "forget_nfs", "forget_nroots" (absent:
 * 1), "forget_root" (the first root) and "forget_root.K" (root K, 1 <= K < nroots).
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

/* The kept side of a collection: every record reachable from the kept roots. */
static int fg_keep_visit(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
			 uint8_t dtype)
{
	(void)path;
	(void)depth;
	int rc = u64set_add(arg, ino);

	if (rc < 0)
		return rc;
	return rc == 1 && dtype == DT_DIR ? 1 : 0;	/* a directory seen: its tree too */
}

struct fg_drop {
	struct fg_list *l;
	const struct u64set *keep;
	struct u64set seen;
};

static int fg_drop_visit(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
			 uint8_t dtype)
{
	(void)path;
	(void)depth;
	struct fg_drop *d = arg;
	int rc;

	if (u64set_has(d->keep, ino))
		return 0;	/* a kept root names it, and what is below it */
	rc = u64set_add(&d->seen, ino);
	if (rc <= 0)
		return rc;	/* met before (shared by two dropped roots) */
	rc = fg_push(d->l, ino, dtype);
	if (rc < 0)
		return rc;
	return dtype == DT_DIR ? 1 : 0;
}

/*
 * The records reachable from the @nd roots @drop and from none of the @nk roots @keep, in
 * depth-first pre-order of their first meeting (so deleting the list backwards deletes
 * every entry before the directory it was met in). A root is not one of the source's
 * directories (not counted); a root gone already (a forget cut short) has nothing left.
 */
static int fg_collect(struct store *st, const uint64_t *drop, size_t nd, const uint64_t *keep,
		      size_t nk, struct fg_list *l)
{
	struct u64set k = { 0 };
	struct fg_drop d = { .l = l, .keep = &k };
	struct dfs_buf path;
	int rc = 0;

	dfs_buf_init(&path, 1u << 24);
	for (size_t i = 0; i < nk && rc >= 0; i++) {
		rc = keep[i] ? u64set_add(&k, keep[i]) : 0;
		if (rc == 1)
			rc = store_walk_tree(st, keep[i], &path, fg_keep_visit, &k);
		rc = rc == -ENOENT ? 0 : rc;
	}
	for (size_t i = 0; i < nd && rc >= 0; i++) {
		if (!drop[i] || u64set_has(&k, drop[i]))
			continue;
		rc = u64set_add(&d.seen, drop[i]);
		if (rc == 1 && (rc = fg_push(l, drop[i], DT_DIR)) == 0) {
			l->dirs--;
			rc = store_walk_tree(st, drop[i], &path, fg_drop_visit, &d);
		}
		rc = rc == -ENOENT ? 0 : rc;
	}
	dfs_buf_release(&path);
	u64set_release(&k);
	u64set_release(&d.seen);
	return rc < 0 ? rc : 0;
}

/* The roots source @s still shows: its snapshots', its record's and /.sources/NAME's
 * (an ingest cut short may have copied the root already). */
static int fg_kept_roots(struct store *st, const struct store_source *s, uint64_t **out,
			 size_t *n)
{
	uint64_t *v = calloc(s->nsnaps + 2, sizeof(*v)), cur;
	uint8_t t;

	*out = v;
	*n = 0;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->nsnaps; i++)
		v[(*n)++] = s->snaps[i].root;
	if (s->root_ino)
		v[(*n)++] = s->root_ino;
	if (store_lookup(st, STORE_SOURCES_INO, s->name.p, s->name.len, &cur, &t) == 0 && cur)
		v[(*n)++] = cur;
	return 0;
}

struct fg_by_id {
	struct store *st;
	uint32_t id;
	uint64_t *roots;
	size_t n;
	int rc;
};

static int fg_find_source(void *arg, const struct store_source *s)
{
	struct fg_by_id *b = arg;

	if (s->id != b->id)
		return 0;
	b->rc = fg_kept_roots(b->st, s, &b->roots, &b->n);
	return 1;
}

/* The pending note's roots (none: *n 0). */
static int fg_note_read(struct store_txn *tx, uint64_t **roots, size_t *n)
{
	uint64_t nr = 1, v;
	char key[48];
	int rc = store_txn_get_meta_u64(tx, "forget_root", &v);

	*roots = NULL;
	*n = 0;
	if (rc == -ENOENT || (rc == 0 && v == 0))
		return 0;
	if (rc == 0 && store_txn_get_meta_u64(tx, "forget_nroots", &nr) == -ENOENT)
		nr = 1;
	if (rc < 0)
		return rc;
	if (nr == 0 || nr > STORE_SNAPS_MAX + 2)
		return -EBADMSG;
	*roots = calloc(nr, sizeof(**roots));
	if (!*roots)
		return -ENOMEM;
	(*roots)[0] = v;
	for (uint64_t k = 1; k < nr && rc == 0; k++) {
		snprintf(key, sizeof(key), "forget_root.%" PRIu64, k);
		rc = store_txn_get_meta_u64(tx, key, &(*roots)[k]);
	}
	*n = (size_t)nr;
	return rc;
}

/* Notes @n roots (n >= 1) of source @src as pending. */
static int fg_note_put(struct store_txn *tx, uint32_t src, unsigned nfs, const uint64_t *roots,
		       size_t n)
{
	char key[48];
	int rc = store_txn_put_meta_u64(tx, "forget_root", roots[0]);

	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, "forget_src", src);
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, "forget_nfs", nfs);
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, "forget_nroots", n);
	for (size_t k = 1; k < n && rc == 0; k++) {
		snprintf(key, sizeof(key), "forget_root.%zu", k);
		rc = store_txn_put_meta_u64(tx, key, roots[k]);
	}
	return rc;
}

static int fg_note_clear(struct store_txn *tx, size_t n)
{
	char key[48];
	int rc = store_txn_del_meta(tx, "forget_root");

	if (rc == 0)
		rc = store_txn_del_meta(tx, "forget_src");
	if (rc == 0)
		rc = store_txn_del_meta(tx, "forget_nfs");
	if (rc == 0)
		rc = store_txn_del_meta(tx, "forget_nroots");
	for (size_t k = 1; k < n && rc == 0; k++) {
		snprintf(key, sizeof(key), "forget_root.%zu", k);
		rc = store_txn_del_meta(tx, key);
	}
	return rc;
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

/* Stage 2 for the roots noted as pending, if any: 0 and the entries in @rep, or -errno.
 * What the source (if it still exists) shows is kept. */
static int fg_finish(struct store *st, struct store_txn **txp, struct ingest_forget_report *rep)
{
	struct fg_list l = { 0 };
	struct fg_by_id keep = { 0 };
	uint64_t src = 0, nfs = 1, *roots;
	size_t nroots;
	int rc = fg_note_read(*txp, &roots, &nroots);

	if (rc < 0 || !nroots)
		return rc;
	rc = store_txn_get_meta_u64(*txp, "forget_src", &src);
	if (rc == 0)
		rc = store_txn_get_meta_u64(*txp, "forget_nfs", &nfs);
	keep.st = st;
	keep.id = (uint32_t)src;
	if (rc == 0 && store_each_source(st, fg_find_source, &keep) < 0)
		rc = -EIO;	/* a source record that does not decode: delete nothing */
	if (rc == 0)
		rc = keep.rc;
	if (rc == 0)
		rc = fg_collect(st, roots, nroots, keep.roots, keep.n, &l);
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
	free(keep.roots);
	free(roots);
	if (rc == 0)
		rc = fg_note_clear(*txp, nroots);
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

/* The filesystems met below source @s (srcfs.ID.k, k >= 1) in *@nfs (1 + their
 * number); with @del their META values go. */
static int fg_nfs(struct store_txn *tx, const struct store_source *s, bool del, unsigned *nfs)
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
		if (rc == 0 && del)
			rc = store_txn_del_meta(tx, key);
		if (rc < 0)
			return rc;
		*nfs = k + 1;
	}
	return 0;
}

/* Stage 1: the source out of every view, its view and snapshots noted as pending. */
static int fg_unlink(struct store *st, struct store_txn *tx, const struct store_source *s,
		     unsigned *nfs)
{
	uint64_t *roots;
	size_t n;
	char key[64];
	/* every root it had (the record's, /.sources/NAME's, each snapshot's) */
	int rc = fg_kept_roots(st, s, &roots, &n);

	if (rc == 0)
		rc = fg_nfs(tx, s, true, nfs);
	if (rc == 0)
		rc = store_txn_del_dirent(tx, STORE_SOURCES_INO, s->name.p, s->name.len);
	if (rc == 0)
		rc = store_txn_del_source(tx, s->name.p, s->name.len);
	snprintf(key, sizeof(key), "src_changed.%" PRIu32, s->id);
	if (rc == 0)
		rc = store_txn_del_meta(tx, key);
	snprintf(key, sizeof(key), "samefs.%" PRIu32, s->id);
	if (rc == 0)
		rc = store_txn_del_meta(tx, key);
	if (rc == 0 && n)
		rc = fg_note_put(tx, s->id, *nfs, roots, n);
	free(roots);
	return rc;
}

/* Source @name into @s, and the report started with its last ingest's figures. */
static int fg_source(struct store *st, const char *name, struct store_source *s,
		     struct ingest_forget_report *rep)
{
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = store_get_source(st, name, strlen(name), s);
	if (rc < 0)
		return rc;
	rep->bytes = s->bytes;
	rep->source_files = s->files;
	return 0;
}

/* A dry run: what fg_collect would delete, counted into @rep. */
static int fg_count(struct store *st, const uint64_t *drop, size_t nd, const uint64_t *keep,
		    size_t nk, struct ingest_forget_report *rep)
{
	struct fg_list l = { 0 };
	int rc = fg_collect(st, drop, nd, keep, nk, &l);

	rep->files = l.files;
	rep->dirs = l.dirs;
	free(l.v);
	return rc;
}

/*
 * A forget's committed steps: a note left by one cut short is finished first (one note
 * at a time), then @stage1 in one commit (it writes the note), then stage 2 (fg_finish).
 */
static int fg_run(struct store *st, int (*stage1)(struct store *st, struct store_txn *tx,
						  void *arg),
		  void *arg, struct ingest_forget_report *rep)
{
	struct store_txn *tx = NULL;
	uint64_t root = 0;
	int rc = store_txn_begin(st, &tx);

	if (rc == 0 && store_txn_get_meta_u64(tx, "forget_root", &root) == 0 && root) {
		rep->resumed = true;
		rc = fg_finish(st, &tx, NULL);
		if (rc == 0)
			rc = store_txn_begin(st, &tx);
	}
	if (rc == 0)
		rc = stage1(st, tx, arg);
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
	return rc;
}

static int fg_stage1_source(struct store *st, struct store_txn *tx, void *arg)
{
	unsigned nfs;

	return fg_unlink(st, tx, arg, &nfs);
}

/* Stage 1 of dropping snapshots: the source record without them (so /.history no longer
 * shows them), their roots noted. */
struct fg_snaps {
	struct store_source *s;		/* its snapshots are the kept ones */
	const uint64_t *roots;		/* the dropped ones' */
	size_t n;
};

static int fg_stage1_snaps(struct store *st, struct store_txn *tx, void *arg)
{
	struct fg_snaps *a = arg;
	unsigned nfs;
	int rc = fg_nfs(tx, a->s, false, &nfs);

	(void)st;
	if (rc == 0)
		rc = store_txn_put_source(tx, a->s);
	if (rc == 0)
		rc = fg_note_put(tx, a->s->id, nfs, a->roots, a->n);
	return rc;
}

int ingest_forget(struct store *st, const char *name, bool dry_run,
		  struct ingest_forget_report *rep)
{
	struct store_source s;
	int rc;

	rc = fg_source(st, name, &s, rep);
	if (rc < 0)
		return rc;
	if (dry_run) {
		uint64_t *roots;
		size_t n;

		rc = fg_kept_roots(st, &s, &roots, &n);
		if (rc == 0)
			rc = fg_count(st, roots, n, NULL, 0, rep);
		free(roots);
		store_source_release(&s);
		return rc;
	}
	rc = fg_run(st, fg_stage1_source, &s, rep);
	store_source_release(&s);
	return rc;
}

int ingest_snaps_select(const struct store_source *s, const struct ingest_snap_policy *p,
			bool *drop)
{
	size_t n = s->nsnaps;

	for (size_t i = 0; i < n; i++)
		drop[i] = false;
	for (size_t k = 0; k < p->ntimes; k++) {
		size_t i = 0;

		while (i < n && s->snaps[i].time != p->times[k])
			i++;
		if (i == n)
			return -ESRCH;
		if (i == n - 1)
			return -EBUSY;	/* the newest: /.sources/NAME */
		drop[i] = true;
	}
	if (p->ntimes)
		return 0;
	if (!p->keep_last && !p->keep_within)
		return -EINVAL;
	/* a snapshot goes when no rule keeps it; the newest always stays */
	for (size_t i = 0; i + 1 < n; i++)
		drop[i] = !(p->keep_last && i + p->keep_last >= n) &&
			  !(p->keep_within && s->snaps[i].time >= p->keep_after);
	return 0;
}

void ingest_forget_report_release(struct ingest_forget_report *r)
{
	free(r->dropped);
	r->dropped = NULL;
	r->snaps_dropped = 0;
}

int ingest_forget_snapshots(struct store *st, const char *name,
			    const struct ingest_snap_policy *p, bool dry_run,
			    struct ingest_forget_report *rep)
{
	struct store_source s;
	uint64_t *roots = NULL, *keep = NULL;
	size_t nd = 0, nk = 0, kept = 0;
	bool *drop = NULL;
	int rc;

	rc = fg_source(st, name, &s, rep);
	if (rc < 0)
		return rc;
	drop = calloc(s.nsnaps + 1, sizeof(*drop));
	roots = calloc(s.nsnaps + 1, sizeof(*roots));
	rep->dropped = calloc(s.nsnaps + 1, sizeof(*rep->dropped));
	rc = drop && roots && rep->dropped ? ingest_snaps_select(&s, p, drop) : -ENOMEM;
	/* the record without the dropped snapshots, their roots apart */
	for (size_t i = 0; rc == 0 && i < s.nsnaps; i++) {
		if (drop[i]) {
			rep->dropped[rep->snaps_dropped++] = s.snaps[i].time;
			roots[nd++] = s.snaps[i].root;
		} else {
			s.snaps[kept++] = s.snaps[i];
		}
	}
	free(drop);
	if (rc == 0) {
		s.nsnaps = kept;
		rep->snaps_kept = kept;
	}
	if (rc < 0 || !nd)
		goto out;
	if (dry_run) {
		rc = fg_kept_roots(st, &s, &keep, &nk);
		if (rc == 0)
			rc = fg_count(st, roots, nd, keep, nk, rep);
		goto out;
	}
	{
		struct fg_snaps a = { &s, roots, nd };

		rc = fg_run(st, fg_stage1_snaps, &a, rep);
	}
out:
	free(keep);
	free(roots);
	store_source_release(&s);
	return rc;
}
