/*
 * commit.c - the committer's changes to a source's view (/.sources/NAME), applied in walk
 * order through the run's transaction: inodes (new, changed, or a known file at a new
 * name), directory entries, the srcmap of the incremental check, the stale names of each
 * listed directory (deferred to the end of the run, after the deletion threshold), and
 * the store's "src_epoch" that tells the organizer its tree is out of date.
 *
 * Threads: the committer only (the caller's thread). Errors: -errno of the store; an
 * entry that cannot be stored is added to the run's failures and is not an error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ingest_int.h"
#include "srcfile.h"
#include "store/fp.h"

static int fill_inode_common(struct ing *g, const struct item *it, uint64_t ino,
			     struct store_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->view = STORE_VIEW_SRC;
	in->mode = it->sb.st_mode;
	in->uid = it->sb.st_uid;
	in->gid = it->sb.st_gid;
	in->nlink = (uint32_t)it->sb.st_nlink;
	in->size = S_ISREG(it->sb.st_mode) || S_ISLNK(it->sb.st_mode) ? (uint64_t)it->sb.st_size
									 : 0;
	in->rdev = S_ISCHR(it->sb.st_mode) || S_ISBLK(it->sb.st_mode) ? it->sb.st_rdev : 0;
	in->atime = it->sb.st_atim;
	in->mtime = it->sb.st_mtim;
	in->ctime = it->sb.st_ctim;
	in->source_id = g->source_id;
	in->src_ino = (uint64_t)it->sb.st_ino;
	in->gen = g->run_gen;
	/* borrowed from the item: the caller never releases @in */
	in->target = it->target;
	in->xattrs = it->xattrs;
	in->nxattrs = it->nxattrs;
	return 0;
}

/*
 * The view is about to change: the wipe ledger's last --against no longer describes it,
 * even if this run is interrupted or refused before it completes (only a completed run
 * moves ingest_gen). Written in the same transaction as the first change.
 */
static int ledger_reset(struct ing *g, struct store_txn *tx)
{
	struct store_source s;
	int rc = store_txn_get_source(tx, g->source_name, strlen(g->source_name), &s);

	if (rc < 0)
		return rc;
	if (s.against_gen == s.ingest_gen && s.last_against) {
		s.against_gen = 0;	/* never a completed ingest's generation */
		rc = store_txn_put_source(tx, &s);
	}
	store_source_release(&s);
	return rc;
}

/*
 * Called before a change to the source's view: advances "src_epoch" once per run, in the
 * same transaction as the change, so the organizer knows its tree is out of date (and
 * that an ingest which changed nothing needs no new build).
 */
static int note_change(struct ing *g, struct store_txn *tx)
{
	char key[40];
	int rc;

	if (g->epoch_noted)
		return 0;
	/* and when this source last changed: an append build needs the older ones unchanged */
	snprintf(key, sizeof(key), "src_changed.%" PRIu32, g->source_id);
	rc = store_txn_put_meta_u64(tx, "src_epoch", g->epoch + 1);
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, key, g->epoch + 1);
	if (rc == 0)
		rc = ledger_reset(g, tx);
	if (rc == 0)
		g->epoch_noted = true;
	return rc;
}

/* Is @in part of a snapshot (a completed ingest's)? Then nothing changes it, ever. */
static bool frozen(const struct ing *g, const struct store_inode *in)
{
	return in->gen < g->run_gen;
}

/* The entries of directory @from put again under @to (a copy-on-write copy). */
static int copy_dir(struct store_txn *tx, uint64_t from, uint64_t to)
{
	struct dfs_buf ents;	/* (name, ino, dtype) each */
	struct store_dir_iter *di;
	const uint8_t *nm;
	struct dfs_rd r;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc;

	dfs_buf_init(&ents, 1ull << 34);
	rc = store_txn_dir_open(tx, from, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1) {
		dfs_buf_put_bytes(&ents, nm, nl);
		dfs_buf_put_u64(&ents, c);
		dfs_buf_put_u8(&ents, t);
	}
	store_dir_close(di);
	if (rc == 0)
		rc = ents.err;
	dfs_rd_init(&r, ents.data, ents.len);
	while (rc == 0 && r.left) {
		nm = dfs_rd_bytes(&r, &nl);
		c = dfs_rd_u64(&r);
		t = dfs_rd_u8(&r);
		rc = !nm || r.err ? -EBADMSG : store_txn_put_dirent(tx, to, nm, nl, c, t);
	}
	dfs_buf_release(&ents);
	return rc;
}

/*
 * Directory @w is about to change (an entry added, replaced or removed): if its record
 * is a snapshot's, it gets a new inode with its entries copied, and so does each
 * ancestor up to the source's root, whose new number /.sources/NAME takes. Unchanged
 * subtrees stay shared between the snapshots; a directory is copied at most once a run.
 */
static int dir_writable(struct ing *g, struct store_txn *tx, struct wdir *w)
{
	uint32_t mid = ING_FS_MAP(g->source_id, w->fs);
	uint64_t parent = STORE_SOURCES_INO, old = w->ino, fresh, mapped;
	const uint8_t *name = (const uint8_t *)g->source_name;
	size_t nlen = strlen(g->source_name);
	struct store_inode in;
	int rc;

	if (w->mine)
		return 0;
	rc = store_txn_get_inode(tx, old, &in);
	if (rc < 0)
		return rc;
	if (!frozen(g, &in)) {
		store_inode_release(&in);
		w->mine = true;
		return 0;
	}
	if (w->up) {
		rc = dir_writable(g, tx, w->up);
		parent = w->up->ino;
		name = w->name;
		nlen = w->name_len;
	}
	if (rc == 0)
		rc = u64set_add(&g->placed, old);	/* lives on in the copy */
	rc = rc < 0 ? rc : 0;
	fresh = store_txn_alloc_ino(tx);
	in.ino = fresh;
	in.gen = g->run_gen;
	if (rc == 0)
		rc = note_change(g, tx);
	if (rc == 0)
		rc = store_txn_put_inode(tx, &in);
	store_inode_release(&in);
	if (rc == 0)
		rc = copy_dir(tx, old, fresh);
	if (rc == 0)
		rc = store_txn_put_dirent(tx, parent, name, nlen, fresh, DT_DIR);
	if (rc == 0 && store_txn_get_srcmap(tx, mid, w->st_ino, &mapped) == 0 && mapped == old)
		rc = store_txn_put_srcmap(tx, mid, w->st_ino, fresh);
	if (rc < 0)
		return rc;
	w->ino = fresh;
	w->mine = true;
	return 0;
}

/*
 * Is @b the same entry as @a for the organized tree? The same record (store_inode_same,
 * which sets the generation aside) but for the atime and the MIME type: reading a
 * directory moves its atime (relatime), so every ingest would see a change, and a file
 * whose atime alone moved is not read again either (the incremental key); a MIME type
 * only follows the bytes.
 */
static bool same_record(const struct store_inode *a, const struct store_inode *b)
{
	struct store_inode x = *b;	/* shallow */

	x.atime = a->atime;
	x.mime = a->mime;
	return store_inode_same(&x, a);
}

/*
 * Is @in still part of the view after this run? Placed (or moved) in this run, or a file
 * with other names. A directory moved elsewhere keeps what is inside it: its listing was
 * reconciled where it was placed.
 */
static bool still_placed(const struct ing *g, const struct store_inode *in, uint8_t dtype)
{
	if (g->undoing)		/* a refused replacement's own tree: everything goes */
		return false;
	return in->gen == g->run_gen || u64set_has(&g->placed, in->ino) ||
	       (dtype != DT_DIR && in->nlink > 1);
}



/* The names in directory @dir (collected first: an iterator must not see its own
 * deletions), NUL-free and length-prefixed in @names. */
static int list_names(struct store_txn *tx, uint64_t dir, struct dfs_buf *names)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int rc = store_txn_dir_open(tx, dir, &di);

	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1)
		dfs_buf_put_bytes(names, nm, nl);
	store_dir_close(di);
	return rc < 0 ? rc : names->err;
}

/* A directory being dropped: its record, and the names still to delete in it. */
struct drop_frame {
	uint64_t ino;
	struct store_inode in;
	struct dfs_buf names;
	struct dfs_rd r;
};

/* @child's srcmap entry (if it still names @child), under the id of whichever
 * filesystem it was on. */
static int unmap(struct ing *g, struct store_txn *tx, uint64_t child, const struct store_inode *in)
{
	uint64_t mapped;

	for (unsigned k = 0; k < g->nfs; k++) {
		uint32_t id = ING_FS_MAP(in->source_id, k);

		if (store_txn_get_srcmap(tx, id, in->src_ino, &mapped) == 0 && mapped == child)
			return store_txn_del_srcmap(tx, id, in->src_ino);
	}
	return 0;
}

/* The end of dropping @child (its entries, if a directory, are gone): its srcmap entry
 * and its record. */
static int drop_finish(struct ing *g, struct store_txn *tx, uint64_t child,
		       const struct store_inode *in, uint8_t dtype, uint64_t *files)
{
	int rc;

	if (dtype != DT_DIR && files)
		(*files)++;
	rc = unmap(g, tx, child, in);
	if (rc == 0)
		rc = store_txn_del_inode(tx, child);
	return rc;
}

/*
 * Calls @fn for @child and each entry below it that dropping @child would take along
 * (drop_child's rule, read-only: one still placed is skipped with what is below it). The
 * entries still to see are a list on the heap (any depth), one directory iterator open
 * at a time. 0 or the first error (a record gone is skipped).
 */
static int each_unplaced(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype,
			 int (*fn)(struct ing *g, struct store_txn *tx, uint64_t ino,
				   const struct store_inode *in, uint8_t dtype, void *arg),
			 void *arg)
{
	struct store_dir_iter *di;
	struct store_inode in;
	struct dfs_buf todo;	/* (be64 ino, u8 dtype) each */
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t, rec[9];
	int rc = 0;

	dfs_buf_init(&todo, 1ull << 40);
	dfs_put_be64(rec, child);
	rec[8] = dtype;
	dfs_buf_append(&todo, rec, sizeof(rec));
	while (rc == 0 && todo.len && !todo.err) {
		bool keep;

		todo.len -= sizeof(rec);
		child = dfs_get_be64(todo.data + todo.len);
		dtype = todo.data[todo.len + 8];
		rc = store_txn_get_inode(tx, child, &in);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		keep = still_placed(g, &in, dtype);
		if (!keep)
			rc = fn(g, tx, child, &in, dtype, arg);
		store_inode_release(&in);
		if (rc < 0 || keep || dtype != DT_DIR)
			continue;
		rc = store_txn_dir_open(tx, child, &di);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		while (rc == 0 && (rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1) {
			dfs_put_be64(rec, c);
			rec[8] = t;
			rc = dfs_buf_append(&todo, rec, sizeof(rec));
		}
		store_dir_close(di);
	}
	if (rc == 0)
		rc = todo.err;
	dfs_buf_release(&todo);
	return rc;
}

static int unmap_one(struct ing *g, struct store_txn *tx, uint64_t ino,
		     const struct store_inode *in, uint8_t dtype, void *arg)
{
	(void)dtype;
	(void)arg;
	return unmap(g, tx, ino, in);
}

/*
 * A snapshot's entry @child left the view: its record, and everything below it, stays
 * for the snapshots that name it, but no file on the drive maps to it any more (the
 * incremental check must not find it): the srcmap entries of it and of every entry below
 * it that is not still placed elsewhere go. Below a snapshot's directory every record is
 * a snapshot's too (a directory that changes is copied first).
 */
static int unmap_frozen(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype)
{
	return each_unplaced(g, tx, child, dtype, unmap_one, NULL);
}

struct drop_stack {
	struct drop_frame *v;
	size_t n, cap;
};

/*
 * Starts dropping @child: nothing if it is gone or still placed; a file at once; a
 * directory pushed on @s with its names (collected first: an iterator must not see its
 * own deletions).
 */
static int drop_start(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype,
		      uint64_t *files, struct drop_stack *s)
{
	struct store_inode in;
	struct drop_frame *f;
	int rc = store_txn_get_inode(tx, child, &in);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	/* a snapshot's record stays as it is, with everything below it: the snapshots
	 * that name it read it (defrag-forget removes what no kept snapshot names) */
	if (still_placed(g, &in, dtype)) {
		store_inode_release(&in);
		return 0;
	}
	if (frozen(g, &in)) {
		store_inode_release(&in);
		return unmap_frozen(g, tx, child, dtype);
	}
	if (dtype != DT_DIR) {
		rc = drop_finish(g, tx, child, &in, dtype, files);
		store_inode_release(&in);
		return rc;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct drop_frame *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			store_inode_release(&in);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	f = &s->v[s->n++];
	f->ino = child;
	f->in = in;
	dfs_buf_init(&f->names, 1ull << 32);
	rc = list_names(tx, child, &f->names);
	dfs_rd_init(&f->r, f->names.data, f->names.len);
	return rc;
}

static void drop_pop(struct drop_stack *s)
{
	struct drop_frame *f = &s->v[--s->n];

	store_inode_release(&f->in);
	dfs_buf_release(&f->names);
}

/*
 * The entry (parent, name) no longer names @child: drop @child unless it is still placed
 * (still_placed); a directory dropped takes the entries inside it along, each by the same
 * rule, each directory's entries before its own record. Only at the end of a run, once
 * every entry of the walk is placed: a directory whose old name is replaced early may be
 * found again later in the same walk. Any depth: the directories being dropped are a
 * stack on the heap.
 */
static int drop_child(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype,
		      uint64_t *files)
{
	struct drop_stack s = { 0 };
	int rc = drop_start(g, tx, child, dtype, files, &s);

	while (rc == 0 && s.n) {
		struct drop_frame *f = &s.v[s.n - 1];
		const uint8_t *nm;
		size_t nl;
		uint64_t c;
		uint8_t t;

		if (!f->r.left) {
			rc = drop_finish(g, tx, f->ino, &f->in, DT_DIR, files);
			drop_pop(&s);
			continue;
		}
		nm = dfs_rd_bytes(&f->r, &nl);
		if (!nm) {
			rc = -EBADMSG;
			break;
		}
		rc = store_txn_lookup(tx, f->ino, nm, nl, &c, &t);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = note_change(g, tx);
		if (rc == 0)
			rc = store_txn_del_dirent(tx, f->ino, nm, nl);
		if (rc == 0)
			rc = drop_start(g, tx, c, t, files, &s);	/* may move s.v */
	}
	while (s.n)
		drop_pop(&s);
	free(s.v);
	return rc;
}

static int delete_entry(struct ing *g, struct store_txn *tx, uint64_t parent, const uint8_t *name,
			size_t nlen, uint64_t *files)
{
	uint64_t child;
	uint8_t dtype;
	int rc = store_txn_lookup(tx, parent, name, nlen, &child, &dtype);

	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = note_change(g, tx);
	if (rc == 0)
		rc = store_txn_del_dirent(tx, parent, name, nlen);
	if (rc == 0)
		rc = drop_child(g, tx, child, dtype, files);
	return rc;
}

/*
 * The files that dropping @child would remove (drop_child's rule, read-only): what the
 * deletion threshold weighs. A directory moved elsewhere removes nothing. Any depth
 * (each_unplaced). When the count fails (out of memory, an index error) it is unknown,
 * and counts as COUNT_UNKNOWN, past any threshold: the run refuses rather than guess.
 */
#define COUNT_UNKNOWN (1ull << 40)	/* more files than a source holds; sums stay finite */
static int count_one(struct ing *g, struct store_txn *tx, uint64_t ino,
		     const struct store_inode *in, uint8_t dtype, void *arg)
{
	(void)g;
	(void)tx;
	(void)ino;
	(void)in;
	if (dtype != DT_DIR)
		(*(uint64_t *)arg)++;
	return 0;
}

static uint64_t count_drop(struct ing *g, struct store_txn *tx, uint64_t child, uint8_t dtype)
{
	uint64_t n = 0;

	return each_unplaced(g, tx, child, dtype, count_one, &n) < 0 ? COUNT_UNKNOWN : n;
}

/*
 * A replacement (--replace onto another filesystem): the files of the old tree @old whose
 * path has no entry of the same kind in the new tree @new, which is what the swap of the
 * roots removes from the view (count_drop's count for each missing subtree). The pairs
 * of directories still to compare are a list on the heap; each directory's names are
 * read whole before any is looked up. Out of memory: COUNT_UNKNOWN.
 */
uint64_t ing_count_replaced(struct ing *g, struct store_txn *tx, uint64_t old, uint64_t new)
{
	struct dfs_buf todo, names;	/* (be64 old, be64 new) each; (name, ino, dtype) */
	uint64_t n = 0;
	uint8_t rec[16];

	dfs_buf_init(&todo, 1ull << 40);
	dfs_buf_init(&names, 1ull << 40);
	dfs_put_be64(rec, old);
	dfs_put_be64(rec + 8, new);
	dfs_buf_append(&todo, rec, sizeof(rec));
	while (todo.len && !todo.err && !names.err) {
		struct store_dir_iter *di;
		const uint8_t *nm;
		struct dfs_rd r;
		size_t nl;
		uint64_t c;
		uint8_t t;

		todo.len -= sizeof(rec);
		old = dfs_get_be64(todo.data + todo.len);
		new = dfs_get_be64(todo.data + todo.len + 8);
		if (store_txn_dir_open(tx, old, &di) < 0)
			continue;
		dfs_buf_clear(&names);
		while (store_dir_next(di, &nm, &nl, &c, &t) == 1) {
			dfs_buf_put_bytes(&names, nm, nl);
			dfs_buf_put_u64(&names, c);
			dfs_buf_put_u8(&names, t);
		}
		store_dir_close(di);
		dfs_rd_init(&r, names.data, names.len);
		while (r.left && !todo.err) {
			uint64_t nc;
			uint8_t nt;

			nm = dfs_rd_bytes(&r, &nl);
			c = dfs_rd_u64(&r);
			t = dfs_rd_u8(&r);
			if (!nm || r.err)
				break;
			if (store_txn_lookup(tx, new, nm, nl, &nc, &nt) < 0 ||
			    (nt == DT_DIR) != (t == DT_DIR)) {
				n += count_drop(g, tx, c, t);
			} else if (t == DT_DIR) {
				dfs_put_be64(rec, c);
				dfs_put_be64(rec + 8, nc);
				dfs_buf_append(&todo, rec, sizeof(rec));
			}
		}
	}
	if (todo.err || names.err)
		n = COUNT_UNKNOWN;
	dfs_buf_release(&todo);
	dfs_buf_release(&names);
	return n;
}

/* Names of the index directory @dir missing from the item's sorted listing: @any set if
 * there is one; with @record, each goes to g->dels. */
static int note_stale(struct ing *g, struct store_txn *tx, uint64_t dir, const struct item *it,
		      bool record, bool *any)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl, pos = 0;
	uint64_t c;
	uint8_t t;
	int rc;

	rc = store_txn_dir_open(tx, dir, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &c, &t)) == 1) {
		int cmp = 1;

		while (pos < it->names_len) {
			const uint8_t *cur = it->names + pos;
			size_t cl = strlen((const char *)cur), m = cl < nl ? cl : nl;

			cmp = memcmp(cur, nm, m);
			if (!cmp)
				cmp = (cl > nl) - (cl < nl);
			if (cmp >= 0)
				break;
			pos += cl + 1;
		}
		if (cmp == 0)
			continue;
		*any = true;
		if (!record)
			break;
		dfs_buf_put_u64(&g->dels, dir);
		dfs_buf_put_bytes(&g->dels, nm, nl);
		g->ndels++;
	}
	store_dir_close(di);
	return rc < 0 ? rc : g->dels.err;
}

/* Records filesystem @k of the source in the store the first time an entry of it is. */
static int fs_save(struct ing *g, struct store_txn *tx, unsigned k)
{
	char key[48];
	int rc;

	if (g->fs[k].saved)
		return 0;
	snprintf(key, sizeof(key), "srcfs.%" PRIu32 ".%u", g->source_id, k);
	rc = store_txn_put_meta_u64(tx, key, g->fs[k].id);
	if (rc == 0)
		g->fs[k].saved = true;
	return rc;
}

/* A regular file's content, stored before anything else of its item (file_content). */
struct file_content {
	struct fp256 cid;
	uint64_t size, data_bytes;
};

/*
 * Stores the content of file item @it, first of everything the item changes: a content
 * too large for one commit's op log (store_txn_put_content_split) commits the items
 * before it with its first parts, and none of this item's changes may be in them (its
 * srcmap entry without its inode would make a rerun believe it stored). Only the
 * content's head, put last, names the parts. 1: stored; 0: the file is refused alone
 * (a failed entry); -errno: the store failed.
 */
static int file_content(struct ing *g, struct store_txn *tx, struct item *it,
			struct file_content *fc)
{
	unsigned commits;
	bool fresh;
	int rc;

	rc = store_cb_finish(it->cb, &fc->cid, &fc->size, &fc->data_bytes);
	if (rc < 0)
		return rc;
	rc = store_txn_put_content_split(tx, it->cb, &fc->cid, &commits);
	if (rc == -EFBIG) {
		ing_add_failure(g, it->path, it->path_len, "%" PRIu64 " bytes: the list of its "
				"extents does not fit one commit; not stored", fc->size);
		return 0;
	}
	if (rc < 0)
		return rc;
	fresh = rc == 1;
	/* tiny files live inline in their content record: new ones count as new data */
	if (fresh && fc->size && fc->size <= g->params->inline_max) {
		atomic_fetch_add(&g->new_raw, fc->size);
		atomic_fetch_add(&g->new_stored, fc->size);
	}
	/* what its records cost in the op log (a meter that fails gives no figure) */
	if (g->meter && (fresh ? ing_meter_add(g->meter, it->cb)
			       : ing_meter_add_ref(g->meter, &fc->cid)) < 0) {
		ing_meter_free(g->meter);
		g->meter = NULL;
	}
	return 1;
}

int ing_apply_item(struct ing *g, struct store_txn *tx, struct item *it)
{
	uint32_t mid = ING_FS_MAP(g->source_id, it->fs);
	uint64_t parent = it->parent ? it->parent->ino : STORE_SOURCES_INO;
	const uint8_t *name;
	size_t nlen;
	uint64_t cur = 0, ino = 0;
	uint8_t cur_type = 0, dtype = src_dtype(it->sb.st_mode);
	struct store_inode in, old;
	struct file_content fc = { .size = 0 };
	bool have_old = false, shared = false;
	int rc;

	if (it->parent) {
		name = ing_item_name(it, &nlen);
	} else {
		name = (const uint8_t *)g->source_name;
		nlen = strlen(g->source_name);
	}
	if (it->err && !it->self) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s%s%s", it->why ? it->why : "",
			 it->why ? ": " : "", strerror(-it->err));
		ing_add_failure(g, it->path, it->path_len, "%s", msg);
		return 0;
	}
	if (it->err)	/* a directory whose xattrs failed: placed, and reported */
		ing_add_failure(g, it->path, it->path_len, "%s: %s", it->why, strerror(-it->err));
	rc = store_txn_lookup(tx, parent, name, nlen, &cur, &cur_type);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (it->link_only) {
		rc = store_txn_get_srcmap(tx, mid, (uint64_t)it->sb.st_ino, &ino);
		if (rc < 0) {
			ing_add_failure(g, it->path, it->path_len,
				    "hard link whose first name could not be stored");
			return 0;
		}
		goto put_dirent;
	}
	if (it->unchanged) {
		ino = it->old_ino;
		if (cur == ino)
			return 0;
		/* Same file at a new name (a rename): seen in this run (its record, maybe a
		 * snapshot's, is not written) */
		rc = u64set_add(&g->placed, ino);
		if (rc < 0)
			return rc;
		goto put_dirent;
	}
	if (S_ISREG(it->sb.st_mode)) {
		rc = file_content(g, tx, it, &fc);
		if (rc <= 0)
			return rc;
	}
	rc = fs_save(g, tx, it->fs);
	if (rc == 0)
		rc = store_txn_get_srcmap(tx, mid, (uint64_t)it->sb.st_ino, &ino);
	if (rc == 0) {
		have_old = store_txn_get_inode(tx, ino, &old) == 0;
		/* a replacement: the old drive's inode numbers name other files */
		if (g->fresh && (!have_old || old.gen != g->run_gen)) {
			/* the old tree's entry, kept to be put back if this is refused */
			if (have_old && old.view == STORE_VIEW_SRC) {
				dfs_buf_put_u32(&g->srcmap_undo, mid);
				dfs_buf_put_u64(&g->srcmap_undo, (uint64_t)it->sb.st_ino);
				dfs_buf_put_u64(&g->srcmap_undo, ino);
				if (g->srcmap_undo.err)
					return g->srcmap_undo.err;
			}
			if (have_old)
				store_inode_release(&old);
			have_old = false;
			rc = -ENOENT;
		}
	}
	if (rc == -ENOENT) {
		ino = store_txn_alloc_ino(tx);
		rc = store_txn_put_srcmap(tx, mid, (uint64_t)it->sb.st_ino, ino);
	}
	if (rc < 0)
		return rc;
	fill_inode_common(g, it, ino, &in);
	if (S_ISREG(it->sb.st_mode)) {
		in.content = fc.cid;
		in.has_content = true;
		in.size = fc.size;
		in.data_bytes = fc.data_bytes;
		if (it->mime) {		/* borrowed from the item */
			in.mime.p = (uint8_t *)it->mime;
			in.mime.len = strlen(it->mime);
		} else if (have_old && old.has_content && fp_equal(&old.content, &in.content)) {
			in.mime = old.mime;	/* borrowed: the MIME type of the same bytes */
		}
	}
	/* the mount refuses security.* names outright while no inode has one */
	if (rc == 0 && !g->security_noted) {
		for (size_t i = 0; i < in.nxattrs; i++) {
			if (in.xattrs[i].name.len > 9 &&
			    !memcmp(in.xattrs[i].name.p, "security.", 9)) {
				rc = store_txn_put_meta_u64(tx, STORE_META_SECURITY_XATTRS, 1);
				g->security_noted = rc == 0;
				break;
			}
		}
	}
	if (rc == 0 && have_old && frozen(g, &old)) {
		/* a snapshot's record: shared when the same, else the entry gets a new inode
		 * (a directory with its entries copied) and the snapshot keeps the old one */
		if (same_record(&old, &in)) {
			shared = true;
			rc = u64set_add(&g->placed, ino);
			rc = rc < 0 ? rc : 0;
		} else {
			uint64_t prev = ino;

			/* the old record lives on in the copy: not a deletion */
			rc = u64set_add(&g->placed, prev);
			ino = in.ino = store_txn_alloc_ino(tx);
			if (rc >= 0)
				rc = store_txn_put_srcmap(tx, mid, (uint64_t)it->sb.st_ino, ino);
			if (rc == 0 && S_ISDIR(it->sb.st_mode))
				rc = copy_dir(tx, prev, ino);
		}
	}
	/* a mutable record (this run's) is stored again each time; only a new or
	 * different record changes the view */
	if (rc == 0 && !shared && (!have_old || !same_record(&old, &in)))
		rc = note_change(g, tx);
	if (rc == 0 && !shared)
		rc = store_txn_put_inode(tx, &in);
	if (have_old)
		store_inode_release(&old);
	if (rc < 0)
		return rc;
put_dirent:
	if (S_ISDIR(it->sb.st_mode) && it->self) {
		it->self->ino = ino;
		it->self->mine = !shared && !it->unchanged && !it->link_only;
	}
	if (!it->parent && g->fresh && cur && cur != ino) {
		/* a replacement's new root: swapped in by source_finish, once the deletion
		 * threshold has weighed it; until then the old view stays as it was */
		g->swap_old = cur;
		g->swap_new = ino;
		return 0;
	}
	if (cur != ino || cur_type != dtype) {
		rc = note_change(g, tx);
		if (rc == 0 && it->parent) {
			rc = dir_writable(g, tx, it->parent);
			parent = it->parent->ino;
		}
		if (rc == 0)
			rc = store_txn_put_dirent(tx, parent, name, nlen, ino, dtype);
		if (rc == 0 && cur && cur != ino) {
			/* dropped at the end of the run, unless placed again by then */
			dfs_buf_put_u64(&g->drops, cur);
			dfs_buf_put_u8(&g->drops, cur_type);
			rc = g->drops.err;
		}
		if (rc < 0)
			return rc;
	}
	if (S_ISDIR(it->sb.st_mode) && it->listing_ok && !it->err && it->self) {
		/* names to delete at the end: in a copy of a snapshot's directory */
		bool any = false;

		rc = note_stale(g, tx, it->self->ino, it, false, &any);
		if (rc == 0 && any)
			rc = dir_writable(g, tx, it->self);
		if (rc == 0 && any)
			rc = note_stale(g, tx, it->self->ino, it, true, &any);
	}
	/* an unchanged file (also one at a new name) is counted by the committer's
	 * skipped_unchanged */
	if (S_ISREG(it->sb.st_mode) && !it->unchanged)
		atomic_fetch_add(&g->files_done, 1);
	return rc;
}

int ing_undo_replacement(struct ing *g, struct store_txn *tx)
{
	int rc;

	struct dfs_rd r;

	g->undoing = true;
	rc = drop_child(g, tx, g->swap_new, DT_DIR, NULL);
	g->undoing = false;
	/* the old drive's incremental map, as it was: its next ingest reads only changes */
	dfs_rd_init(&r, g->srcmap_undo.data, g->srcmap_undo.len);
	while (rc == 0 && r.left) {
		uint32_t mid = dfs_rd_u32(&r);
		uint64_t st_ino = dfs_rd_u64(&r), ino = dfs_rd_u64(&r);
		struct store_inode in;

		if (r.err)
			return -EBADMSG;
		/* only an inode the old tree still holds (the new tree's are dropped) */
		if (store_txn_get_inode(tx, ino, &in) < 0)
			continue;
		store_inode_release(&in);
		rc = store_txn_put_srcmap(tx, mid, st_ino, ino);
	}
	return rc;
}

uint64_t ing_count_deletions(struct ing *g, struct store_txn *tx)
{
	struct dfs_rd r;
	uint64_t removed = 0;

	dfs_rd_init(&r, g->dels.data, g->dels.len);
	while (r.left) {
		uint64_t parent = dfs_rd_u64(&r);
		size_t nl;
		const uint8_t *nm = dfs_rd_bytes(&r, &nl);

		uint64_t child;
		uint8_t t;

		if (!nm)
			break;
		if (store_txn_lookup(tx, parent, nm, nl, &child, &t) == 0)
			removed += count_drop(g, tx, child, t);
	}
	return removed;
}

int ing_apply_deletions(struct ing *g, struct store_txn *tx)
{
	struct dfs_rd r;
	int rc = 0;

	dfs_rd_init(&r, g->dels.data, g->dels.len);
	while (r.left && rc == 0) {
		uint64_t parent = dfs_rd_u64(&r);
		size_t nl;
		const uint8_t *nm = dfs_rd_bytes(&r, &nl);

		rc = nm ? delete_entry(g, tx, parent, nm, nl, NULL) : -EBADMSG;
	}
	return rc;
}

int ing_apply_drops(struct ing *g, struct store_txn *tx)
{
	struct dfs_rd r;
	int rc = 0;

	dfs_rd_init(&r, g->drops.data, g->drops.len);
	while (r.left && rc == 0) {
		uint64_t child = dfs_rd_u64(&r);
		uint8_t t = dfs_rd_u8(&r);

		rc = r.err ? -EBADMSG : drop_child(g, tx, child, t, NULL);
	}
	return rc;
}

int ingest_ensure_roots(struct store_txn *tx)
{
	struct store_inode in;
	struct timespec now;
	int rc;

	rc = store_txn_get_inode(tx, STORE_ROOT_INO, &in);
	if (rc == 0) {
		store_inode_release(&in);
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&in, 0, sizeof(in));
	in.ino = STORE_ROOT_INO;
	in.view = STORE_VIEW_ORG;
	in.mode = S_IFDIR | 0755;
	in.nlink = 2;
	in.atime = in.mtime = in.ctime = now;
	rc = store_txn_put_inode(tx, &in);
	if (rc < 0)
		return rc;
	in.ino = STORE_SOURCES_INO;
	in.view = STORE_VIEW_SRC;
	in.mode = S_IFDIR | 0555;
	rc = store_txn_put_inode(tx, &in);
	/* a new store: nothing has security.* xattrs yet (an ingest that stores one says so) */
	if (rc == 0)
		rc = store_txn_put_meta_u64(tx, STORE_META_SECURITY_XATTRS, 0);
	return rc;
}
