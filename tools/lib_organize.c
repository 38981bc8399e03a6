/*
 * lib_organize.c - the organized tree, built from the index alone (see lib_organize.h).
 *
 * classify/ walks each source view through struct cls_tree callbacks that read the index
 * (handles are inode numbers) and emits (source path -> organized path) results; this
 * file places them: directories along the way are created or re-marked with the new
 * generation, files become ORG-view inodes that borrow metadata and content from their
 * first origin. A final sweep deletes every ORG entry that the new generation did not
 * place, so a rebuild with other rules gives exactly the tree a fresh ingest would.
 *
 * Threads: two per source. A producer thread runs classify_source (listing the source view,
 * reading its records, unit detection, rules) and hands its results, with the source
 * records read for them, to the caller's thread in blocks (struct jqueue); the caller's
 * thread places them in one store transaction, committed in groups. The producer owns
 * the record cache, the listing buffer and the codec; the placer everything else.
 *
 * SPDX-License-Identifier: MIT
 */
#include "lib_organize.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "classify/classify.h"
#include "store/buf.h"
#include "store/hset.h"
#include "store/log.h"

#define ORG_COMMIT_META (8u << 20)	/* op log bytes per commit of the organizer */
#define ORG_IDLE_COMMIT (256u << 10)	/* ... and when it waits for its producer */
#define ORIGINS_CAP_BYTES 60000u
#define CHAIN_MAX 128
#define ORG_NAME_TRIES 1000	/* names tried for one entry or unit (see alt_name) */
#define ICACHE_SLOTS 4096	/* source records listed and not yet placed (see tree_list) */
#define KEPT_DONE UINT64_MAX	/* a kept entry written since (see struct org) */
#define KEPT(stored, confirmed) ((uint64_t)(stored) << 32 | (confirmed))
#define KEPT_STORED(v) ((v) >> 32)
#define KEPT_CONFIRMED(v) ((v) & 0xffffffffu)

struct chain_ent {
	uint8_t *name;
	size_t len;
	uint64_t ino;
};

#define DC_BUDGET (1u << 18)	/* entries of kept listings, in all (40 bytes each) */
#define DC_MAX (1u << 14)	/* of one: a larger directory is asked name by name */
#define DC_READ 64		/* records read at once, from the entry looked up on */

enum { DC_REC_UNREAD, DC_REC_READ, DC_REC_GONE };

/* An entry of a kept listing (see struct org). */
struct dc_ent {
	uint64_t ino;		/* 0: deleted by this build */
	size_t name_off, name_len;	/* in the listing's names */
	uint8_t t;
	uint8_t rec;		/* DC_REC_*: GONE also for entries put by this build */
	struct store_inode *in;	/* DC_REC_READ: the stored record */
};

struct dcache {
	uint64_t dir;		/* 0: a free slot */
	uint64_t used;		/* when last looked in */
	struct dfs_buf names;
	struct dc_ent *v;
	size_t n, cap;
	uint32_t *tab;		/* entry index + 1 by hash of the name (0: empty) */
	size_t tcap;		/* a power of 2, at least twice n */
};

struct org {
	struct store *st;
	struct store_txn *tx;
	struct codec *codec;
	uint64_t gen;
	bool dry_run;
	size_t idle_commit;	/* idle_commit_bytes() */
	const struct store_source *src;
	struct organize_stats *stats;
	struct timespec now;	/* times of directories the tree makes up: those of the
				 * entry whose placement created them (deterministic) */
	/* the directory chain of the previous placement */
	struct chain_ent chain[CHAIN_MAX];
	size_t nchain;
	/* the unit being placed */
	uint8_t *unit_src;
	size_t unit_src_len;
	uint8_t *unit_eff;	/* effective organized root of the unit */
	size_t unit_eff_len;
	/* every organized inode this build placed or re-marked: what the sweep keeps, and
	 * what decides "taken by this build" without reading the record */
	struct u64set placed;
	/*
	 * Entries an earlier build wrote that this one placed again unchanged, not written:
	 * inode -> KEPT(stored origins, origins this build confirmed, in order), or
	 * KEPT_DONE once written after all. Origins never confirmed are dropped at the end
	 * (finish_kept).
	 */
	struct u64map kept;
	/* an append build: every entry already in the tree is a placement of this build's
	 * (see organize_run) */
	bool append;
	/* directories this build created: all they hold is this build's (no sweep) */
	struct u64set fresh;
	/* XXH3 of (directory, name) of every name this build put in a fresh directory: a
	 * name not in it is not there (org_lookup), without asking the index */
	struct u64set fresh_names;
	/* organized directory paths resolved by this build -> inode (walk_dirs) */
	struct pathmap dirs;
	/*
	 * Source records decoded by tree_list, by inode number modulo ICACHE_SLOTS, so the
	 * placement of an entry listed just before does not read and decode it again.
	 */
	struct icache_slot {
		uint64_t ino;	/* 0: empty */
		struct store_inode in;
	} *icache;
	/* tree_list's batch (80 KiB), kept for the next listing: one per directory listed
	 * (and per unit marker peeked at) would be allocated and cleared again */
	struct list_batch *lb;
	bool lb_busy;
	/*
	 * Full builds over an existing tree (defrag-reclassify, a changed source): the
	 * listings of existing organized directories (not fresh ones), each read once with
	 * one iterator on its first lookup, and the records of their entries, read in
	 * batches from the entry looked up on. Such a build looks up nearly every name and
	 * reads nearly every record it finds, and a point read costs several times an
	 * iterator step. The names this build puts or deletes are put or deleted in the
	 * listing too. A record is used only for an entry this build has not placed, which
	 * it has therefore not written (the index holds what the listing saw), and once.
	 */
	struct dcache *dc;	/* the listings kept (and free slots) */
	size_t ndc;
	struct u64map dc_slot;	/* directory -> its slot + 1 (0: not kept) */
	size_t dc_entries;	/* in all listings kept: at most about DC_BUDGET */
	uint64_t dc_clock;
	struct u64set dc_big;	/* directories too large to keep */
	size_t dc_hit;		/* the slot + 1 and entry of the last lookup answered */
	size_t dc_hit_idx;
	struct jqueue *q;	/* the current source's results (see organize_source) */
	int err;
};

static uint64_t name_key(uint64_t dir, const uint8_t *name, size_t len)
{
	uint8_t b[8 + 256];
	uint64_t h;

	if (len > 256)
		len = 256;
	memcpy(b, &dir, 8);
	memcpy(b + 8, name, len);
	h = fp_xxh3(b, 8 + len);
	return h ? h : 1;
}

/* ---- listings of existing directories (struct org's dc) ------------------------------- */

static void dc_clear(struct org *o, struct dcache *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].in)
			store_inode_release(d->v[i].in);
		free(d->v[i].in);
	}
	if (d->dir)	/* on -ENOMEM: left, and dc_kept() sees the slot is another's */
		u64map_put(&o->dc_slot, d->dir, 0);
	o->dc_entries -= d->n;
	if (o->dc_hit == (size_t)(d - o->dc) + 1)
		o->dc_hit = 0;
	dfs_buf_release(&d->names);
	free(d->v);
	free(d->tab);
	memset(d, 0, sizeof(*d));
}

/* The index of @name's entry in @d (deleted ones too), or -1. */
static ssize_t dc_find(const struct dcache *d, const uint8_t *name, size_t len)
{
	size_t mask = d->tcap - 1;

	if (!d->tcap)
		return -1;
	for (size_t i = fp_xxh3(name, len) & mask;; i = (i + 1) & mask) {
		const struct dc_ent *e;

		if (!d->tab[i])
			return -1;
		e = &d->v[d->tab[i] - 1];
		if (e->name_len == len && !memcmp(d->names.data + e->name_off, name, len))
			return d->tab[i] - 1;
	}
}

/* Sets @name to (@ino, @t) in @d, its record @rec (UNREAD: read it if needed). */
static int dc_set(struct org *o, struct dcache *d, const uint8_t *name, size_t len,
		  uint64_t ino, uint8_t t, uint8_t rec)
{
	ssize_t at = dc_find(d, name, len);
	struct dc_ent *e;

	if (at >= 0) {
		e = &d->v[at];
		if (e->in)
			store_inode_release(e->in);
		free(e->in);
		e->in = NULL;
		e->ino = ino;
		e->t = t;
		e->rec = rec;
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dc_ent *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	if ((d->n + 1) * 2 > d->tcap) {
		size_t tcap = d->tcap ? d->tcap * 2 : 128;
		uint32_t *tab = calloc(tcap, sizeof(*tab));

		if (!tab)
			return -ENOMEM;
		for (size_t k = 0; k < d->n; k++) {
			const struct dc_ent *x = &d->v[k];
			size_t i = fp_xxh3(d->names.data + x->name_off, x->name_len) & (tcap - 1);

			while (tab[i])
				i = (i + 1) & (tcap - 1);
			tab[i] = (uint32_t)k + 1;
		}
		free(d->tab);
		d->tab = tab;
		d->tcap = tcap;
	}
	e = &d->v[d->n];
	memset(e, 0, sizeof(*e));
	e->name_off = d->names.len;
	e->name_len = len;
	e->ino = ino;
	e->t = t;
	e->rec = rec;
	dfs_buf_append(&d->names, name, len);
	if (d->names.err)
		return d->names.err;
	for (size_t i = fp_xxh3(name, len) & (d->tcap - 1);; i = (i + 1) & (d->tcap - 1)) {
		if (!d->tab[i]) {
			d->tab[i] = (uint32_t)d->n + 1;
			break;
		}
	}
	d->n++;
	o->dc_entries++;
	return 0;
}

static struct dcache *dc_kept(struct org *o, uint64_t dir)
{
	uint64_t slot;

	if (!u64map_get(&o->dc_slot, dir, &slot) || !slot || slot > o->ndc ||
	    o->dc[slot - 1].dir != dir)
		return NULL;
	return &o->dc[slot - 1];
}

/* A slot for a new listing: a free one, else a new one, once the oldest are dropped. */
static struct dcache *dc_slot_new(struct org *o)
{
	struct dcache *d = NULL;

	while (o->dc_entries >= DC_BUDGET - DC_MAX) {
		struct dcache *old = NULL;

		for (size_t i = 0; i < o->ndc; i++)
			if (o->dc[i].dir && (!old || o->dc[i].used < old->used))
				old = &o->dc[i];
		if (!old)
			break;
		dc_clear(o, old);
	}
	for (size_t i = 0; i < o->ndc && !d; i++)
		if (!o->dc[i].dir)
			d = &o->dc[i];
	if (!d) {
		struct dcache *v = realloc(o->dc, (o->ndc + 1) * sizeof(*v));

		if (!v)
			return NULL;
		o->dc = v;
		d = &o->dc[o->ndc++];
		memset(d, 0, sizeof(*d));
	}
	return d;
}

/* The kept listing of the existing directory @dir, read now if not kept; or NULL. */
static struct dcache *dc_get(struct org *o, uint64_t dir)
{
	struct store_dir_iter *di;
	struct dcache *d = dc_kept(o, dir);
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	int rc;

	if (d) {
		d->used = ++o->dc_clock;
		return d;
	}
	if (o->append || o->dry_run || u64set_has(&o->fresh, dir) || u64set_has(&o->dc_big, dir))
		return NULL;
	d = dc_slot_new(o);
	if (!d)
		return NULL;
	dfs_buf_init(&d->names, 1ull << 30);
	if (store_txn_dir_open(o->tx, dir, &di) < 0)
		return NULL;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		if (d->n == DC_MAX) {
			u64set_add(&o->dc_big, dir);	/* if it fails: tried again */
			break;
		}
		if (dc_set(o, d, nm, nl, child, t, DC_REC_UNREAD) < 0)
			break;
	}
	store_dir_close(di);
	if (rc != 0 || u64map_put(&o->dc_slot, dir, (uint64_t)(d - o->dc) + 1) < 0) {
		/* too large, or an error: asked name by name (which reports an error) */
		dc_clear(o, d);
		return NULL;
	}
	d->dir = dir;
	d->used = ++o->dc_clock;
	return d;
}

/* Notes a name this build put in (@child) or deleted from (0) @dir in its kept listing. */
static void dc_note(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		    uint64_t child, uint8_t t)
{
	struct dcache *d = dc_kept(o, dir);

	if (d && dc_set(o, d, name, len, child, t, DC_REC_GONE) < 0)
		dc_clear(o, d);	/* listed again when needed */
}

/* Reads the records of up to DC_READ entries of @d from @idx that this build has not placed. */
static void dc_read(struct org *o, struct dcache *d, size_t idx)
{
	uint64_t inos[DC_READ];
	size_t at[DC_READ], k = 0;
	struct store_inode *in;
	int rcs[DC_READ];

	for (size_t i = idx; i < d->n && k < DC_READ; i++) {
		if (d->v[i].rec != DC_REC_UNREAD || !d->v[i].ino ||
		    u64set_has(&o->placed, d->v[i].ino))
			continue;
		inos[k] = d->v[i].ino;
		at[k++] = i;
	}
	in = k ? calloc(k, sizeof(*in)) : NULL;
	if (!in)
		return;
	store_get_inodes(o->st, inos, k, in, rcs);
	for (size_t i = 0; i < k; i++) {
		struct dc_ent *e = &d->v[at[i]];

		e->rec = DC_REC_GONE;	/* on an error: read again alone, which reports it */
		if (rcs[i] == 0) {
			e->in = malloc(sizeof(*e->in));
			if (e->in) {
				*e->in = in[i];	/* moved */
				e->rec = DC_REC_READ;
				continue;
			}
		}
		store_inode_release(&in[i]);
	}
	free(in);
}

/*
 * store_txn_get_inode of @ino, found by the last org_lookup: from its kept listing when
 * this build has not placed it.
 */
static int org_get_inode(struct org *o, uint64_t ino, struct store_inode *out)
{
	struct dcache *d = o->dc_hit ? &o->dc[o->dc_hit - 1] : NULL;

	if (d && o->dc_hit_idx < d->n && d->v[o->dc_hit_idx].ino == ino &&
	    !u64set_has(&o->placed, ino)) {
		struct dc_ent *e = &d->v[o->dc_hit_idx];

		if (e->rec == DC_REC_UNREAD)
			dc_read(o, d, o->dc_hit_idx);
		if (e->rec == DC_REC_READ) {
			*out = *e->in;	/* moved: used once */
			free(e->in);
			e->in = NULL;
			e->rec = DC_REC_GONE;
			return 0;
		}
	}
	return store_txn_get_inode(o->tx, ino, out);
}

/*
 * store_txn_lookup, answering for fresh directories from memory when the name is absent,
 * and for existing ones from their kept listings.
 */
static int org_lookup(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		      uint64_t *child, uint8_t *t)
{
	struct dcache *d;
	ssize_t i;

	o->dc_hit = 0;
	if (u64set_has(&o->fresh, dir) && !u64set_has(&o->fresh_names, name_key(dir, name, len)))
		return -ENOENT;
	d = dc_get(o, dir);
	if (!d)
		return store_txn_lookup(o->tx, dir, name, len, child, t);
	i = dc_find(d, name, len);
	if (i < 0 || !d->v[i].ino)
		return -ENOENT;
	*child = d->v[i].ino;
	*t = d->v[i].t;
	o->dc_hit = (size_t)(d - o->dc) + 1;
	o->dc_hit_idx = (size_t)i;
	return 0;
}

/* store_txn_put_dirent, noting names put in fresh directories. */
static int org_put_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
			  uint64_t child, uint8_t t)
{
	int rc;

	if (u64set_has(&o->fresh, dir) && u64set_add(&o->fresh_names,
						     name_key(dir, name, len)) < 0)
		return -ENOMEM;
	if (o->dry_run)
		return 0;
	rc = store_txn_put_dirent(o->tx, dir, name, len, child, t);
	if (rc == 0)
		dc_note(o, dir, name, len, child, t);
	return rc;
}

static int org_del_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len)
{
	int rc = store_txn_del_dirent(o->tx, dir, name, len);

	if (rc == 0)
		dc_note(o, dir, name, len, 0, 0);
	return rc;
}

/*
 * The op log bytes from which the placer commits while it waits for its producer:
 * ORG_IDLE_COMMIT, or DFS_FAULT_ORG_COMMIT in DFS_TEST_FAULTS builds (the tests set 1:
 * a commit at every wait, so that small trees get the commits large ones have).
 */
static size_t idle_commit_bytes(void)
{
#ifdef DFS_TEST_FAULTS
	const char *s = getenv("DFS_FAULT_ORG_COMMIT");

	if (s && *s)
		return (size_t)strtoull(s, NULL, 10);
#endif
	return ORG_IDLE_COMMIT;
}

/* Commits the build's transaction once it holds ORG_COMMIT_META bytes of op log. */
static int group_commit(struct org *o)
{
	int rc;

	if (o->dry_run || store_txn_size(o->tx) <= ORG_COMMIT_META)
		return 0;
	rc = store_txn_commit(o->tx);
	o->tx = NULL;
	return rc < 0 ? rc : store_txn_begin(o->st, &o->tx);
}

/* Is the organized entry @ino a placement of this build? */
static bool taken(const struct org *o, uint64_t ino)
{
	return o->append || u64set_has(&o->placed, ino);
}

static void icache_put(struct org *o, struct store_inode *in)
{
	struct icache_slot *sl = &o->icache[in->ino % ICACHE_SLOTS];

	if (sl->ino)
		store_inode_release(&sl->in);
	sl->in = *in;	/* moved */
	sl->ino = in->ino;
}

/* The source record @ino, from the cache (moved out) or the index. */
static int icache_take(struct org *o, uint64_t ino, struct store_inode *out)
{
	struct icache_slot *sl = &o->icache[ino % ICACHE_SLOTS];

	if (sl->ino != ino)
		return store_get_inode(o->st, ino, out);
	*out = sl->in;
	sl->ino = 0;
	return 0;
}

static void icache_drop(struct org *o, uint64_t ino)
{
	struct icache_slot *sl = &o->icache[ino % ICACHE_SLOTS];

	if (sl->ino == ino) {
		store_inode_release(&sl->in);
		sl->ino = 0;
	}
}

void organize_stats_release(struct organize_stats *s)
{
	for (size_t i = 0; i < s->ncats; i++)
		free(s->cats[i].name);
	free(s->cats);
	memset(s, 0, sizeof(*s));
}

json_t *organize_stats_json(const struct organize_stats *s)
{
	json_t *a = json_array();

	for (size_t i = 0; i < s->ncats; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "category", json_string(s->cats[i].name));
		json_object_set_new(o, "files", json_integer((json_int_t)s->cats[i].files));
		json_object_set_new(o, "bytes", json_integer((json_int_t)s->cats[i].bytes));
		json_array_append_new(a, o);
	}
	return a;
}

static void count_cat(struct organize_stats *s, const char *cat, uint64_t bytes)
{
	size_t i;

	if (!cat)
		cat = "";
	for (i = 0; i < s->ncats; i++)
		if (!strcmp(s->cats[i].name, cat))
			break;
	if (i == s->ncats) {
		struct organize_cat *c = realloc(s->cats, (s->ncats + 1) * sizeof(*c));

		if (!c)
			return;
		s->cats = c;
		s->cats[i].name = strdup(cat);
		s->cats[i].files = 0;
		s->cats[i].bytes = 0;
		if (!s->cats[i].name)
			return;
		s->ncats++;
	}
	s->cats[i].files++;
	s->cats[i].bytes += bytes;
}

/* ---- the index seen as a tree (for classify) ---------------------------------------------- */

struct list_ctx {
	struct org *o;
	int (*fn)(void *arg, const struct cls_entry *e);
	void *arg;
};

#define LIST_BATCH 256	/* directory entries whose records are read in one batch */

/* A batch of listed entries: names (copied), inode numbers, then their records. */
struct list_batch {
	struct dfs_buf names;
	size_t off[LIST_BATCH + 1];
	uint64_t ino[LIST_BATCH];
	struct store_inode in[LIST_BATCH];
	int rcs[LIST_BATCH];
	size_t n;
};

/* Reads the records of the batch in one go and hands each entry to @fn. */
static int list_flush(struct org *o, struct list_batch *b,
		      int (*fn)(void *arg, const struct cls_entry *e), void *arg)
{
	size_t i = 0;
	int rc = b->names.err;

	if (rc < 0)
		goto out;
	/* every record read is moved into the cache or released here */
	rc = store_get_inodes(o->st, b->ino, b->n, b->in, b->rcs);
	for (; i < b->n && rc == 0; i++) {
		struct store_inode *in = &b->in[i];
		struct cls_entry e = { 0 };
		struct fp256 lh;

		rc = b->rcs[i];
		if (rc < 0)
			break;
		e.name = b->names.data + b->off[i];
		e.name_len = b->off[i + 1] - b->off[i];
		e.mode = in->mode;
		e.size = in->size;
		e.mtime = in->mtime.tv_sec;
		e.handle = b->ino[i];
		e.content_id = in->has_content ? in->content.b : NULL;
		if (S_ISLNK(in->mode)) {	/* a unit's tree hash covers symlink targets */
			fp_sha256(in->target.p ? in->target.p : (const uint8_t *)"", in->target.len,
				  &lh);
			e.content_id = lh.b;
		}
		e.mime = in->mime.len ? (const char *)in->mime.p : NULL;
		rc = fn(arg, &e);
		in->ino = b->ino[i];
		icache_put(o, in);	/* moved: nothing left to release */
	}
	for (; i < b->n; i++)
		store_inode_release(&b->in[i]);
out:
	b->n = 0;
	dfs_buf_clear(&b->names);
	return rc;
}

static int tree_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		     void *arg)
{
	struct org *o = ctx;
	struct store_dir_iter *di;
	struct list_batch *b;
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	int rc;

	if (o->lb && !o->lb_busy) {
		b = o->lb;
	} else {	/* the first listing, or @fn lists too (classify's never do) */
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		dfs_buf_init(&b->names, 1u << 20);
		if (!o->lb)
			o->lb = b;
	}
	if (b == o->lb)
		o->lb_busy = true;
	rc = store_dir_open(o->st, dir, NULL, 0, &di);
	if (rc < 0)
		goto out;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		b->off[b->n] = b->names.len;
		dfs_buf_append(&b->names, nm, nl);
		b->ino[b->n++] = child;
		b->off[b->n] = b->names.len;
		if (b->n == LIST_BATCH) {
			rc = list_flush(o, b, fn, arg);
			if (rc)
				break;
		}
	}
	if (rc == 0 && b->n)
		rc = list_flush(o, b, fn, arg);
	store_dir_close(di);
out:
	b->n = 0;
	dfs_buf_clear(&b->names);
	if (b == o->lb) {
		o->lb_busy = false;
	} else {
		dfs_buf_release(&b->names);
		free(b);
	}
	return rc;
}

static ssize_t tree_head(void *ctx, uint64_t file, void *buf, size_t len)
{
	struct org *o = ctx;
	struct store_content *c;
	struct store_inode in;
	ssize_t n;
	int rc;

	rc = store_get_inode(o->st, file, &in);
	if (rc < 0)
		return rc;
	if (!in.has_content) {
		store_inode_release(&in);
		return 0;
	}
	rc = store_content_open(o->st, &in.content, &c);
	store_inode_release(&in);
	if (rc < 0)
		return rc;
	n = store_content_pread(o->st, o->codec, c, buf, len, 0);
	store_content_close(c);
	return n;
}

static int queue_mime(struct jqueue *q, uint64_t file, const char *mime);

/* The producer's: the record it cached is out of date; the placer stores the type. */
static void tree_mime(void *ctx, uint64_t file, const char *mime)
{
	struct org *o = ctx;

	o->stats->mimes++;
	icache_drop(o, file);	/* its MIME type changes */
	if (!o->dry_run)
		queue_mime(o->q, file, mime);
}

/* The placer's: stores a MIME type classify computed. */
static void apply_mime(struct org *o, uint64_t file, const char *mime)
{
	struct store_inode in;

	if (store_txn_get_inode(o->tx, file, &in) < 0)
		return;
	free(in.mime.p);
	in.mime.p = (uint8_t *)strdup(mime);
	in.mime.len = in.mime.p ? strlen(mime) : 0;
	if (store_txn_put_inode(o->tx, &in) < 0)
		o->err = -EIO;
	store_inode_release(&in);
}

/* ---- placement ------------------------------------------------------------------------------ */

/* @cur: the stored record of @ino, or NULL; a record equal to it is not written again. */
static int put_dir(struct org *o, uint64_t ino, const struct store_inode *meta, const char *unit,
		   const struct store_inode *cur)
{
	struct store_inode in = { 0 };

	if (meta) {
		in = *meta;	/* shallow: borrowed parts, never released here */
		in.has_content = false;
		in.origins = NULL;
		in.norigins = 0;
	} else {
		in.mode = S_IFDIR | 0755;
		in.atime = in.mtime = in.ctime = o->now;
	}
	in.ino = ino;
	in.view = STORE_VIEW_ORG;
	in.nlink = 1;	/* unknown: keeps find(1) from its leaf optimisation */
	in.gen = o->gen;
	in.size = 0;
	in.unit.p = (uint8_t *)unit;
	in.unit.len = unit ? strlen(unit) : 0;
	in.category.len = in.rule.len = in.mime.len = 0;
	in.category.p = in.rule.p = in.mime.p = NULL;
	if (u64set_add(&o->placed, ino) < 0)
		return -ENOMEM;
	if (o->dry_run || (cur && store_inode_same(&in, cur)))
		return 0;
	return store_txn_put_inode(o->tx, &in);
}

/*
 * The directory @name under @parent, created or re-marked for this generation.
 * @return its inode in *ino; -ENOTDIR when a non-directory of this generation holds it.
 */
static int ensure_dir(struct org *o, uint64_t parent, const uint8_t *name, size_t len,
		      const struct store_inode *meta, uint64_t *ino)
{
	struct store_inode in;
	uint64_t child;
	uint8_t t;
	int rc;

	rc = org_lookup(o, parent, name, len, &child, &t);
	if (rc == 0 && t == DT_DIR) {
		*ino = child;
		if (taken(o, child))
			return 0;
		rc = org_get_inode(o, child, &in);
		if (rc < 0)
			return rc;
		rc = put_dir(o, child, meta, (const char *)in.unit.p, &in);
		store_inode_release(&in);
		return rc;
	}
	if (rc == 0) {
		if (taken(o, child))
			return -ENOTDIR;
	} else if (rc != -ENOENT) {
		return rc;
	}
	child = store_txn_alloc_ino(o->tx);
	if (u64set_add(&o->fresh, child) < 0)
		return -ENOMEM;
	rc = put_dir(o, child, meta, NULL, NULL);
	if (rc == 0)
		rc = org_put_dirent(o, parent, name, len, child, DT_DIR);
	*ino = child;
	return rc;
}

static void chain_cut(struct org *o, size_t n)
{
	while (o->nchain > n)
		free(o->chain[--o->nchain].name);
}

/*
 * Resolves (creating) the directories of @path[0..len) and returns the last one. Every
 * prefix resolved is remembered (o->dirs): once placed by this build, a directory stays
 * what its path resolves to, and going back to a branch left earlier (from "documents/..."
 * to "development/sources/...") would otherwise look up each of its names again.
 */
static int walk_dirs(struct org *o, const uint8_t *path, size_t len, uint64_t *out)
{
	uint64_t cur = STORE_ROOT_INO;
	size_t depth = 0, pos = 0;
	int rc;

	if (pathmap_get(&o->dirs, path, len, out))
		return 0;
	while (pos < len) {
		const uint8_t *slash = memchr(path + pos, '/', len - pos);
		size_t cl = slash ? (size_t)(slash - (path + pos)) : len - pos;
		uint64_t ino;

		if (depth < o->nchain && o->chain[depth].len == cl &&
		    !memcmp(o->chain[depth].name, path + pos, cl)) {
			cur = o->chain[depth].ino;
		} else {
			chain_cut(o, depth);
			if (!pathmap_get(&o->dirs, path, pos + cl, &ino)) {
				rc = ensure_dir(o, cur, path + pos, cl, NULL, &ino);
				if (rc == -ENOTDIR) {
					/* a file of this generation holds the name: use
					 * "name~dir" */
					uint8_t alt[260];
					size_t al = cl > 250 ? 250 : cl;

					memcpy(alt, path + pos, al);
					memcpy(alt + al, "~dir", 4);
					rc = ensure_dir(o, cur, alt, al + 4, NULL, &ino);
				}
				if (rc == 0)
					rc = pathmap_put(&o->dirs, path, pos + cl, ino);
				if (rc < 0)
					return rc;
			}
			cur = ino;
			if (depth < CHAIN_MAX) {
				o->chain[depth].name = malloc(cl ? cl : 1);
				if (o->chain[depth].name) {
					memcpy(o->chain[depth].name, path + pos, cl);
					o->chain[depth].len = cl;
					o->chain[depth].ino = ino;
					o->nchain = depth + 1;
				}
			}
		}
		depth++;
		pos += cl + 1;
	}
	*out = cur;
	return pathmap_put(&o->dirs, path, len, cur);
}

static bool same_entry(const struct store_inode *a, const struct store_inode *b)
{
	if ((a->mode & S_IFMT) != (b->mode & S_IFMT))
		return false;
	if (S_ISREG(a->mode))
		return a->has_content && b->has_content && fp_equal(&a->content, &b->content);
	if (S_ISLNK(a->mode))
		return a->target.len == b->target.len &&
		       !memcmp(a->target.p, b->target.p, a->target.len);
	return a->rdev == b->rdev;
}

/* "name.ext" -> "name~TAG.ext" into @out (256 bytes), shortening the name to keep within
 * NAME_MAX; dotfiles keep their leading dot. */
static size_t conflict_name(const uint8_t *name, size_t len, const char *tag, size_t tl,
			    uint8_t *out)
{
	size_t dot = len, base;

	for (size_t i = len; i > 1; i--) {
		if (name[i - 1] == '.') {
			dot = i - 1;
			break;
		}
	}
	if (dot == 0)
		dot = len;
	base = dot;
	if (base + 1 + tl + (len - dot) > 255)
		base = 255 - 1 - tl - (len - dot > 100 ? 100 : len - dot);
	if (base > dot)
		base = dot;
	memcpy(out, name, base);
	out[base] = '~';
	memcpy(out + base + 1, tag, tl);
	memcpy(out + base + 1 + tl, name + dot, len - dot > 100 ? 100 : len - dot);
	return base + 1 + tl + (len - dot > 100 ? 100 : len - dot);
}

/*
 * The name to try after @attempt - 1 names were taken by other entries (documented in
 * docs/CLASSIFY.md): 1 "name~hash8.ext" (the usual conflict name), 2 "name~hash16.ext"
 * (8 hex digits alike, or a file really named so: still one entry per content),
 * 3 "name~hash16~orig8.ext" (the origin "SOURCE:/path" is unique), then
 * "name~hash16~orig8~N.ext" from N = 4. @hex: the content id (or target hash) in hex.
 */
static size_t alt_name(const uint8_t *name, size_t len, const char *hex, const uint8_t *origin,
		       size_t olen, int attempt, uint8_t *out)
{
	char tag[64];
	int tl;

	if (attempt <= 2) {
		tl = attempt == 1 ? 8 : 16;
		memcpy(tag, hex, (size_t)tl);
	} else {
		struct fp256 oh;
		char ohex[FP_HEX_LEN + 1];

		fp_sha256(origin, olen, &oh);
		fp_to_hex(&oh, ohex);
		tl = attempt == 3 ? snprintf(tag, sizeof(tag), "%.16s~%.8s", hex, ohex)
				  : snprintf(tag, sizeof(tag), "%.16s~%.8s~%d", hex, ohex, attempt);
	}
	return conflict_name(name, len, tag, (size_t)tl, out);
}

static int add_origin(struct store_inode *in, const uint8_t *o, size_t len)
{
	size_t total = 0;
	struct store_str *n;

	for (size_t i = 0; i < in->norigins; i++) {
		if (in->origins[i].len == len && !memcmp(in->origins[i].p, o, len))
			return 0;
		total += in->origins[i].len + 1;
	}
	in->origins_total++;
	if (total + len + 1 > ORIGINS_CAP_BYTES)
		return 1;
	n = realloc(in->origins, (in->norigins + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	in->origins = n;
	n[in->norigins].p = malloc(len + 1);
	if (!n[in->norigins].p)
		return -ENOMEM;
	memcpy(n[in->norigins].p, o, len);
	n[in->norigins].p[len] = '\0';
	n[in->norigins].len = len;
	in->norigins++;
	return 1;
}

static int set_str(struct store_str *s, const void *p, size_t len)
{
	free(s->p);
	s->p = malloc(len + 1);
	if (!s->p) {
		s->len = 0;
		return -ENOMEM;
	}
	memcpy(s->p, p, len);
	s->p[len] = '\0';
	s->len = len;
	return 0;
}

static void truncate_origins(struct store_inode *in, size_t k)
{
	while (in->norigins > k)
		free(in->origins[--in->norigins].p);
	in->origins_total = k;
}

/* Adds @origin to the entry @ino placed by this build (its record @cur). */
static int merge_origin(struct org *o, uint64_t ino, struct store_inode *cur,
			const uint8_t *origin, size_t olen)
{
	uint64_t k;
	int rc;

	if (u64map_get(&o->kept, ino, &k) && k != KEPT_DONE) {
		/* kept unwritten: confirm the next stored origin, or write it after all */
		k = KEPT_CONFIRMED(k);
		if (k < cur->norigins && cur->origins[k].len == olen &&
		    !memcmp(cur->origins[k].p, origin, olen))
			return u64map_put(&o->kept, ino, KEPT(cur->norigins, k + 1));
		truncate_origins(cur, (size_t)k);
		rc = u64map_put(&o->kept, ino, KEPT_DONE);
		if (rc == 0)
			rc = add_origin(cur, origin, olen);
		if (rc >= 0 && !o->dry_run)
			rc = store_txn_put_inode(o->tx, cur);
		return rc < 0 ? rc : 0;
	}
	rc = add_origin(cur, origin, olen);
	if (rc > 0 && !o->dry_run)
		rc = store_txn_put_inode(o->tx, cur);
	return rc < 0 ? rc : 0;
}

/*
 * Can @in (one origin: @origin) stay as the stored @cur, unwritten? Yes when @cur's first
 * origin is @origin and everything else but the origins and the generation is the same
 * (its further origins are confirmed or dropped as the build goes on).
 */
static bool keep_unwritten(const struct store_inode *in, const struct store_inode *cur,
			   const uint8_t *origin, size_t olen)
{
	struct store_inode x = *in;	/* shallow */

	if (!cur->norigins || cur->origins_total != cur->norigins ||
	    cur->origins[0].len != olen || memcmp(cur->origins[0].p, origin, olen))
		return false;
	x.origins = cur->origins;
	x.norigins = cur->norigins;
	x.origins_total = cur->origins_total;
	return store_inode_same(&x, cur);
}

/* Drops the origins no placement of this build confirmed from the entries kept unwritten. */
static int finish_kept(struct org *o)
{
	int rc = 0;

	for (size_t i = 0; i < o->kept.cap && rc == 0; i++) {
		uint64_t ino = o->kept.k[i], k = o->kept.v[i];
		struct store_inode cur;

		if (!ino || k == KEPT_DONE || KEPT_STORED(k) == KEPT_CONFIRMED(k))
			continue;
		rc = store_txn_get_inode(o->tx, ino, &cur);
		if (rc < 0)
			break;
		if (cur.norigins != KEPT_CONFIRMED(k)) {
			truncate_origins(&cur, (size_t)KEPT_CONFIRMED(k));
			if (!o->dry_run)
				rc = store_txn_put_inode(o->tx, &cur);
		}
		store_inode_release(&cur);
		if (rc == 0)
			rc = group_commit(o);
	}
	return rc;
}

/* Places a non-directory result at (dir, name). */
static int place_leaf(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		      const struct cls_result *r, struct store_inode *src, const uint8_t *origin,
		      size_t olen)
{
	uint8_t alt[256];
	char hex[FP_HEX_LEN + 1];
	const uint8_t *nm = name;
	size_t nl = len;
	int rc;

	if (src->has_content)
		fp_to_hex(&src->content, hex);
	else {
		struct fp256 h;

		fp_sha256(src->target.p ? src->target.p : (const uint8_t *)"", src->target.len, &h);
		fp_to_hex(&h, hex);
	}
	for (int attempt = 0; attempt < ORG_NAME_TRIES; attempt++) {
		struct store_inode cur;
		uint64_t child, ino;
		uint8_t t;
		bool reuse = false;

		rc = org_lookup(o, dir, nm, nl, &child, &t);
		if (rc == 0) {
			rc = org_get_inode(o, child, &cur);
			if (rc < 0)
				return rc;
			if (taken(o, child)) {
				if (t != DT_DIR && same_entry(&cur, src)) {
					/* namespace dedup: one entry, every origin */
					rc = merge_origin(o, child, &cur, origin, olen);
					store_inode_release(&cur);
					o->stats->merged++;
					return rc;
				}
				store_inode_release(&cur);
				if (attempt == 0)
					o->stats->conflicts++;
				if (attempt + 1 == ORG_NAME_TRIES) {
					/* only crafted names get here: the entry stays in /.sources */
					dfs_err("organize: cannot place %.*s: every name taken",
						(int)len, name);
					return 0;
				}
				nl = alt_name(name, len, hex, origin, olen, attempt + 1, alt);
				nm = alt;
				continue;
			}
			/* left from an earlier generation: keep its inode if the bytes are the same */
			reuse = t != DT_DIR && same_entry(&cur, src);
			if (!reuse)
				store_inode_release(&cur);
			if (!reuse && t == DT_DIR && !o->dry_run) {
				/* an old directory in the way: the sweep cannot see it any more */
				rc = org_del_dirent(o, dir, nm, nl);
				if (rc < 0)
					return rc;
			}
		} else if (rc != -ENOENT) {
			return rc;
		}
		ino = reuse ? child : store_txn_alloc_ino(o->tx);
		rc = u64set_add(&o->placed, ino);
		if (rc < 0) {
			if (reuse)
				store_inode_release(&cur);
			return rc;
		}
		{
			struct store_inode in = *src;	/* shallow copy of the source record */
			struct store_str orig = { (uint8_t *)origin, olen };

			in.ino = ino;
			in.view = STORE_VIEW_ORG;
			in.nlink = 1;
			in.gen = o->gen;
			in.category.p = (uint8_t *)r->category;
			in.category.len = r->category ? strlen(r->category) : 0;
			in.rule.p = (uint8_t *)r->rule;
			in.rule.len = r->rule ? strlen(r->rule) : 0;
			in.origins = &orig;
			in.norigins = 1;
			in.origins_total = 1;
			in.unit.p = (uint8_t *)(r->in_unit ? r->unit_kind : NULL);
			in.unit.len = r->in_unit && r->unit_kind ? strlen(r->unit_kind) : 0;
			if (reuse) {
				bool keep = keep_unwritten(&in, &cur, origin, olen);
				size_t norig = cur.norigins;

				store_inode_release(&cur);
				if (keep) {
					o->stats->entries++;
					return u64map_put(&o->kept, ino, KEPT(norig, 1));
				}
			}
			if (!o->dry_run) {
				rc = store_txn_put_inode(o->tx, &in);
				if (rc == 0 && !reuse)
					rc = org_put_dirent(o, dir, nm, nl, ino, IFTODT(src->mode));
				if (rc < 0)
					return rc;
			}
		}
		o->stats->entries++;
		return 0;
	}
	return 0;
}

/* Resolves where the unit of @r goes: its own path, or NAME~<hash8> for another version. */
static int resolve_unit(struct org *o, const struct cls_result *r)
{
	char want[80], thex[FP_HEX_LEN + 1];
	uint8_t path[4096];
	size_t plen = r->unit_dest_len;

	if (o->unit_src && o->unit_src_len == r->unit_src_len &&
	    !memcmp(o->unit_src, r->unit_src, r->unit_src_len))
		return 0;
	free(o->unit_src);
	free(o->unit_eff);
	o->unit_src = malloc(r->unit_src_len + 1);
	if (!o->unit_src)
		return -ENOMEM;
	memcpy(o->unit_src, r->unit_src, r->unit_src_len);
	o->unit_src_len = r->unit_src_len;
	o->stats->units++;
	if (plen + 32 > sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, r->unit_dest, plen);
	if (r->unit_hash_valid) {
		struct fp256 uh;

		memcpy(uh.b, r->unit_hash, FP_LEN);
		fp_to_hex(&uh, thex);
		snprintf(want, sizeof(want), "%s:%s", r->unit_kind ? r->unit_kind : "unit", thex);
	} else {
		/* no tree hash (a file without content id): never merged; the suffix comes
		 * from where the unit is, which is unique */
		struct fp256 wh;
		struct dfs_buf w;

		snprintf(want, sizeof(want), "%s:", r->unit_kind ? r->unit_kind : "unit");
		dfs_buf_init(&w, 8192);
		dfs_buf_append(&w, o->src->name.p, o->src->name.len);
		dfs_buf_append(&w, ":/", 2);
		dfs_buf_append(&w, r->unit_src, r->unit_src_len);
		fp_sha256(w.data, w.len, &wh);
		dfs_buf_release(&w);
		fp_to_hex(&wh, thex);
	}
	if (!r->unit_merges) {
		for (int attempt = 0;; attempt++) {
			const uint8_t *slash = memrchr(path, '/', plen);
			size_t dl = slash ? (size_t)(slash - path) : 0;
			size_t off = slash ? dl + 1 : 0;
			uint64_t dir, child;
			uint8_t t;
			struct store_inode in;
			int rc = walk_dirs(o, path, dl, &dir);
			bool free_slot = true;

			if (rc < 0)
				return rc;
			rc = org_lookup(o, dir, path + off, plen - off, &child, &t);
			if (rc == 0 && taken(o, child) &&
			    store_txn_get_inode(o->tx, child, &in) == 0) {
				free_slot = in.unit.len == strlen(want) && r->unit_hash_valid &&
					    !memcmp(in.unit.p, want, in.unit.len);
				store_inode_release(&in);
			}
			if (free_slot) {
				uint64_t ino;

				rc = ensure_dir(o, dir, path + off, plen - off, NULL, &ino);
				if (rc == 0) {
					/* record the unit's identity on its root */
					struct store_inode root;

					rc = store_txn_get_inode(o->tx, ino, &root);
					if (rc == 0) {
						/* written only if it differs */
						if (root.unit.len != strlen(want) ||
						    memcmp(root.unit.p, want, root.unit.len)) {
							rc = set_str(&root.unit, want, strlen(want));
							if (rc == 0 && !o->dry_run)
								rc = store_txn_put_inode(o->tx,
											 &root);
						}
						store_inode_release(&root);
					} else if (o->dry_run) {
						rc = 0;
					}
				}
				if (rc < 0)
					return rc;
				break;
			}
			/*
			 * another version of this unit holds the name: NAME~hash8, then
			 * NAME~hash16 (8 hex digits alike, or a directory really named so),
			 * then NAME~hash16~N
			 */
			if (attempt + 1 == ORG_NAME_TRIES) {
				dfs_err("organize: cannot place unit %.*s: every name taken",
					(int)r->unit_src_len, (const char *)r->unit_src);
				return -EEXIST;
			}
			plen = r->unit_dest_len;
			if (attempt == 0)
				plen += (size_t)snprintf((char *)path + plen, 32, "~%.8s", thex);
			else if (attempt == 1)
				plen += (size_t)snprintf((char *)path + plen, 32, "~%.16s", thex);
			else
				plen += (size_t)snprintf((char *)path + plen, 32, "~%.16s~%d", thex,
							 attempt + 1);
			if (attempt == 0)
				o->stats->conflicts++;
		}
	}
	o->unit_eff = malloc(plen + 1);
	if (!o->unit_eff)
		return -ENOMEM;
	memcpy(o->unit_eff, path, plen);
	o->unit_eff_len = plen;
	return 0;
}

/* Places the entry of @r, whose source record is @srcp (borrowed from its job block). */
static int place(struct org *o, const struct cls_result *r, const struct store_inode *srcp)
{
	uint8_t path[8192], origin[8192];
	const uint8_t *dest = r->dest;
	size_t dlen = r->dest_len, olen;
	struct store_inode src = *srcp;	/* borrowed: the job block's */
	const uint8_t *slash;
	uint64_t dir;
	int rc = 0;

	if (o->err)
		return o->err;
	/* before resolve_unit: the directories it makes up get this entry's time, not the
	 * previous entry's (or, for the first entry of a build, the clock's) */
	o->now = src.mtime;
	if (r->in_unit) {
		rc = resolve_unit(o, r);
		if (rc == 0 && (o->unit_eff_len != r->unit_dest_len ||
				memcmp(o->unit_eff, r->unit_dest, r->unit_dest_len))) {
			size_t rest = dlen - r->unit_dest_len;

			if (o->unit_eff_len + rest > sizeof(path)) {
				rc = -ENAMETOOLONG;
			} else {
				memcpy(path, o->unit_eff, o->unit_eff_len);
				memcpy(path + o->unit_eff_len, r->dest + r->unit_dest_len, rest);
				dest = path;
				dlen = o->unit_eff_len + rest;
			}
		}
	}
	olen = o->src->name.len + 2 + r->src_path_len;
	if (rc == 0 && olen > sizeof(origin))
		rc = -ENAMETOOLONG;
	if (rc < 0)
		return rc;
	memcpy(origin, o->src->name.p, o->src->name.len);
	memcpy(origin + o->src->name.len, ":/", 2);
	memcpy(origin + o->src->name.len + 2, r->src_path, r->src_path_len);

	if (S_ISDIR(src.mode)) {
		uint64_t ino;

		rc = walk_dirs(o, dest, dlen, &ino);
		if (rc == 0) {
			/* keep a unit root's identity (written by resolve_unit) */
			struct store_inode cur;
			bool have = store_txn_get_inode(o->tx, ino, &cur) == 0;

			rc = put_dir(o, ino, &src, have && cur.unit.len ? (const char *)cur.unit.p
								      : NULL, have ? &cur : NULL);
			if (have)
				store_inode_release(&cur);
		}
		chain_cut(o, 0);
		return rc;
	}
	slash = memrchr(dest, '/', dlen);
	rc = walk_dirs(o, dest, slash ? (size_t)(slash - dest) : 0, &dir);
	if (rc == 0)
		rc = place_leaf(o, dir, slash ? slash + 1 : dest,
				slash ? dlen - (size_t)(slash - dest) - 1 : dlen, r, &src, origin,
				olen);
	if (rc == 0 && S_ISREG(src.mode))
		count_cat(o->stats, r->category, src.size);
	if (rc == 0)
		rc = group_commit(o);
	return rc;
}

/* ---- the producer and the placer -------------------------------------------------------- */

#define JOB_BLOCK 128		/* results per block */
#define JOB_BYTES (1u << 20)	/* path bytes per block, at most about */
#define JQ_BLOCKS 8		/* blocks in flight: the producer waits beyond */

enum { JOB_PLACE, JOB_MIME };

/* A result of classify_source, copied for the placer (paths in the block's bytes). */
struct job {
	uint8_t kind;
	bool in_unit, unit_hash_valid, unit_merges;
	const char *category, *rule, *unit_kind;	/* the rules' and units': alive all run */
	size_t src_path, src_path_len, dest, dest_len, unit_dest, unit_dest_len;
	size_t unit_src_len;	/* the unit's source path is a prefix of src_path */
	uint8_t unit_hash[32];
	uint64_t file;		/* JOB_MIME: the source inode; the type at dest */
	struct store_inode src;	/* JOB_PLACE: the source record (the block's until reset) */
};

struct job_block {
	struct job v[JOB_BLOCK];
	size_t n;
	struct dfs_buf bytes;
	struct job_block *next;
};

/*
 * Empties a block the placer is done with. The producer's, when it takes the block again
 * (or the end's): the source records were allocated on its thread, and freeing them there
 * keeps them out of the placer's time (a free from another thread's arena costs more).
 */
static void jb_reset(struct job_block *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].kind == JOB_PLACE)
			store_inode_release(&b->v[i].src);
	b->n = 0;
	dfs_buf_clear(&b->bytes);
}

struct jqueue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_block *head, *tail;	/* full blocks, in order */
	struct job_block *free_blocks;
	struct job_block *cur;		/* the producer's, being filled */
	size_t nblocks;
	bool done;			/* the producer has finished */
	int prod_rc;			/* with this */
	int stop;			/* the placer failed: the producer stops */
};

/* The producer's: hands a full block over. */
static void jq_push(struct jqueue *q)
{
	struct job_block *b = q->cur;

	q->cur = NULL;
	if (!b)
		return;
	pthread_mutex_lock(&q->lock);
	b->next = NULL;
	if (q->tail)
		q->tail->next = b;
	else
		q->head = b;
	q->tail = b;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* The producer's: a job slot in the current block (a new block when it is full). */
static int jq_slot(struct jqueue *q, size_t bytes, struct job **out)
{
	struct job_block *b = q->cur;
	int rc = 0;

	if (b && (b->n == JOB_BLOCK || b->bytes.len + bytes > JOB_BYTES) && b->n)
		jq_push(q);
	if (!q->cur) {
		pthread_mutex_lock(&q->lock);
		while (!q->stop && !q->free_blocks && q->nblocks >= JQ_BLOCKS)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop) {
			rc = q->stop;
		} else if (q->free_blocks) {
			q->cur = q->free_blocks;
			q->free_blocks = q->cur->next;
		} else {
			q->cur = calloc(1, sizeof(*q->cur));
			if (q->cur) {
				dfs_buf_init(&q->cur->bytes, 1ull << 32);
				q->nblocks++;
			} else {
				rc = -ENOMEM;
			}
		}
		pthread_mutex_unlock(&q->lock);
		if (rc < 0)
			return rc;
		jb_reset(q->cur);
	}
	b = q->cur;
	*out = &b->v[b->n];
	memset(*out, 0, sizeof(**out));
	return 0;
}

/* The producer's: appends @len bytes to the current block; their offset into *off. */
static void jq_bytes(struct jqueue *q, const void *p, size_t len, size_t *off)
{
	*off = q->cur->bytes.len;
	dfs_buf_append(&q->cur->bytes, p, len);
}

/* The producer's: the job just filled in is complete. */
static int jq_commit(struct jqueue *q)
{
	if (q->cur->bytes.err)
		return q->cur->bytes.err;
	q->cur->n++;
	return 0;
}

static int queue_mime(struct jqueue *q, uint64_t file, const char *mime)
{
	size_t len = strlen(mime) + 1;
	struct job *j;
	int rc = jq_slot(q, len, &j);

	if (rc < 0)
		return rc;
	j->kind = JOB_MIME;
	j->file = file;
	jq_bytes(q, mime, len, &j->dest);
	return jq_commit(q);
}

/* The producer's emit: the result and its source record go to the placer. */
static int queue_emit(void *arg, const struct cls_result *r)
{
	struct org *o = arg;
	struct jqueue *q = o->q;
	size_t bytes = r->src_path_len + r->dest_len + (r->in_unit ? r->unit_dest_len : 0);
	struct job *j;
	int rc = jq_slot(q, bytes, &j);

	if (rc < 0)
		return rc;
	rc = icache_take(o, r->entry->handle, &j->src);
	if (rc < 0)
		return rc;
	j->kind = JOB_PLACE;
	j->category = r->category;
	j->rule = r->rule;
	j->in_unit = r->in_unit;
	jq_bytes(q, r->src_path, r->src_path_len, &j->src_path);
	j->src_path_len = r->src_path_len;
	jq_bytes(q, r->dest, r->dest_len, &j->dest);
	j->dest_len = r->dest_len;
	if (r->in_unit) {
		j->unit_kind = r->unit_kind;
		jq_bytes(q, r->unit_dest, r->unit_dest_len, &j->unit_dest);
		j->unit_dest_len = r->unit_dest_len;
		j->unit_src_len = r->unit_src_len;
		j->unit_hash_valid = r->unit_hash_valid;
		memcpy(j->unit_hash, r->unit_hash, sizeof(j->unit_hash));
		j->unit_merges = r->unit_merges;
	}
	rc = jq_commit(q);
	if (rc < 0)
		store_inode_release(&j->src);
	return rc;
}

struct producer {
	struct org *o;
	struct classify *cls;
	const struct cls_tree *tree;
	const struct store_source *src;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct jqueue *q = p->o->q;
	int rc = classify_source(p->cls, p->tree, p->src->root_ino, (const char *)p->src->name.p,
				 queue_emit, p->o);

	if (q->cur && q->cur->n)
		jq_push(q);
	pthread_mutex_lock(&q->lock);
	if (q->cur) {	/* empty */
		q->cur->next = q->free_blocks;
		q->free_blocks = q->cur;
		q->cur = NULL;
	}
	q->done = true;
	q->prod_rc = rc;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* The placer's: one job. */
static int run_job(struct org *o, struct job *j, const uint8_t *bytes)
{
	struct cls_result r = { 0 };

	if (j->kind == JOB_MIME) {
		apply_mime(o, j->file, (const char *)bytes + j->dest);
		return o->err;
	}
	r.src_path = bytes + j->src_path;
	r.src_path_len = j->src_path_len;
	r.dest = bytes + j->dest;
	r.dest_len = j->dest_len;
	r.category = j->category;
	r.rule = j->rule;
	r.in_unit = j->in_unit;
	if (j->in_unit) {
		r.unit_kind = j->unit_kind;
		r.unit_dest = bytes + j->unit_dest;
		r.unit_dest_len = j->unit_dest_len;
		r.unit_src = r.src_path;
		r.unit_src_len = j->unit_src_len;
		r.unit_hash_valid = j->unit_hash_valid;
		memcpy(r.unit_hash, j->unit_hash, sizeof(r.unit_hash));
		r.unit_merges = j->unit_merges;
	}
	return place(o, &r, &j->src);
}

/*
 * Classifies and places the source @s: classify_source on a producer thread, placement
 * here, block by block in the producer's order (the same order as one thread would place
 * them: the tree does not depend on timing).
 */
static int organize_source(struct org *o, struct classify *cls, const struct cls_tree *tree,
			   const struct store_source *s)
{
	struct jqueue q = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct producer p = { .o = o, .cls = cls, .tree = tree, .src = s };
	pthread_t tid;
	int rc = 0, prc;

	o->q = &q;
	prc = pthread_create(&tid, NULL, produce, &p);
	if (prc) {
		o->q = NULL;
		return -prc;
	}
	for (;;) {
		struct job_block *b;

		pthread_mutex_lock(&q.lock);
		if (!q.head && !q.done && rc == 0 && !o->dry_run &&
		    store_txn_size(o->tx) >= o->idle_commit) {
			/* the producer is behind: commit what is placed while it works */
			pthread_mutex_unlock(&q.lock);
			rc = store_txn_commit(o->tx);
			o->tx = NULL;
			if (rc == 0)
				rc = store_txn_begin(o->st, &o->tx);
			pthread_mutex_lock(&q.lock);
			if (rc && !q.stop)
				q.stop = rc;
			pthread_cond_broadcast(&q.cond);
		}
		while (!q.head && !q.done)
			pthread_cond_wait(&q.cond, &q.lock);
		b = q.head;
		if (b) {
			q.head = b->next;
			if (!q.head)
				q.tail = NULL;
		}
		pthread_mutex_unlock(&q.lock);
		if (!b)
			break;
		for (size_t i = 0; i < b->n && rc == 0; i++)
			rc = run_job(o, &b->v[i], b->bytes.data);
		/* the records are freed when the producer takes the block again (jb_reset) */
		pthread_mutex_lock(&q.lock);
		b->next = q.free_blocks;
		q.free_blocks = b;
		if (rc && !q.stop)
			q.stop = rc;
		pthread_cond_broadcast(&q.cond);
		pthread_mutex_unlock(&q.lock);
	}
	pthread_join(tid, NULL);
	o->q = NULL;
	if (rc == 0)
		rc = q.prod_rc;
	/* every block is back on the free list (the placer drains them all) */
	while (q.free_blocks) {
		struct job_block *b = q.free_blocks;

		q.free_blocks = b->next;
		jb_reset(b);
		dfs_buf_release(&b->bytes);
		free(b);
	}
	pthread_mutex_destroy(&q.lock);
	pthread_cond_destroy(&q.cond);
	return rc;
}

/* Deletes every ORG entry under @dir not placed by this generation. */
static int sweep(struct org *o, uint64_t dir, int depth)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	struct { uint8_t *name; size_t len; uint64_t ino; uint8_t t; bool keep; } *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (depth > 4096)
		return -ELOOP;
	if (u64set_has(&o->fresh, dir))
		return 0;	/* created by this build: nothing older inside */
	rc = store_txn_dir_open(o->tx, dir, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		if (n == cap) {
			void *x;

			cap = cap ? cap * 2 : 64;
			x = realloc(v, cap * sizeof(*v));
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			v = x;
		}
		v[n].name = malloc(nl);
		if (!v[n].name) {
			rc = -ENOMEM;
			break;
		}
		memcpy(v[n].name, nm, nl);
		v[n].len = nl;
		v[n].ino = child;
		v[n].t = t;
		v[n].keep = u64set_has(&o->placed, child);
		n++;
	}
	store_dir_close(di);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (v[i].t == DT_DIR)
			rc = sweep(o, v[i].ino, depth + 1);
		if (rc == 0 && !v[i].keep) {
			rc = store_txn_del_dirent(o->tx, dir, v[i].name, v[i].len);
			if (rc == 0)
				rc = store_txn_del_inode(o->tx, v[i].ino);
			o->stats->removed++;
		}
		if (rc == 0)
			rc = group_commit(o);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return rc;
}

struct org_src_list {
	struct store_source *v;
	size_t n;
};

static int collect_src(void *arg, const struct store_source *s)
{
	struct org_src_list *l = arg;
	struct store_source *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	memset(&v[l->n], 0, sizeof(v[l->n]));
	v[l->n].id = s->id;
	v[l->n].root_ino = s->root_ino;
	v[l->n].last_ingest = s->last_ingest;
	v[l->n].name.p = malloc(s->name.len + 1);
	if (!v[l->n].name.p)
		return -ENOMEM;
	memcpy(v[l->n].name.p, s->name.p, s->name.len);
	v[l->n].name.p[s->name.len] = '\0';
	v[l->n].name.len = s->name.len;
	l->n++;
	return 0;
}

static bool src_complete(const struct store_source *s)
{
	return s->root_ino && s->last_ingest;
}

static uint64_t hash_u64(const struct dfs_buf *b)
{
	struct fp256 h;
	uint64_t v = 0;

	if (b->err)
		return 0;	/* never equal to a recorded value: build */
	fp_sha256(b->data, b->len, &h);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)h.b[i] << (8 * i);
	return v | 1;	/* never 0 */
}

/* The complete sources with an id up to @max_id: ids, roots and names. */
static uint64_t src_set_hash(const struct org_src_list *srcs, uint64_t max_id)
{
	struct dfs_buf b;
	uint64_t v;

	dfs_buf_init(&b, 1ull << 30);
	for (size_t i = 0; i < srcs->n; i++) {
		if (!src_complete(&srcs->v[i]) || srcs->v[i].id > max_id)
			continue;
		dfs_buf_put_u64(&b, srcs->v[i].id);
		dfs_buf_put_u64(&b, srcs->v[i].root_ino);
		dfs_buf_put_bytes(&b, srcs->v[i].name.p, srcs->v[i].name.len);
	}
	v = hash_u64(&b);
	dfs_buf_release(&b);
	return v;
}

/*
 * What the last complete build was built from (meta values written in its last commit):
 * org_state  hash of everything below (equal: nothing to do)
 * org_epoch  "src_epoch" then; a source changed after it has src_changed.ID > org_epoch
 * org_cls    classify_fingerprint() (algorithm version and rules)
 * org_src_max, org_src_hash  the highest source id placed, and src_set_hash() of them
 * org_built_gen  its generation: another "org_gen" means a build began after it and did
 *            not complete, and may have left entries of its own
 */
struct org_built {
	uint64_t state, epoch, cls, src_max, src_hash, gen;
};

static const char *const org_built_keys[] = { "org_state", "org_epoch", "org_cls",
					      "org_src_max", "org_src_hash", "org_built_gen" };

static int org_built_rw(struct store_txn *tx, struct org_built *b, bool put)
{
	uint64_t *v[] = { &b->state, &b->epoch, &b->cls, &b->src_max, &b->src_hash, &b->gen };
	int rc = 0;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) && rc == 0; i++)
		rc = put ? store_txn_put_meta_u64(tx, org_built_keys[i], *v[i])
			 : store_txn_get_meta_u64(tx, org_built_keys[i], v[i]);
	return rc;
}

/*
 * Can this build place only the sources added since the last one (an append build)?
 * Sources are placed in id order, so a source added later never changes where earlier
 * ones went: when the rules and every source placed last time are the same and
 * unchanged, the tree holds exactly what a full build would place for them, and only the
 * new sources remain, placed after them as a full build would (every existing entry
 * counts as taken).
 */
static int can_append(struct store_txn *tx, const struct org_src_list *srcs,
		      const struct org_built *last, uint64_t cls_fp, uint64_t gen, bool *out)
{
	bool newer = false;

	*out = false;
	if (!last->state || last->gen != gen || last->cls != cls_fp ||
	    src_set_hash(srcs, last->src_max) != last->src_hash)
		return 0;
	for (size_t i = 0; i < srcs->n; i++) {
		char key[40];
		uint64_t changed;
		int rc;

		if (!src_complete(&srcs->v[i]))
			continue;
		if (srcs->v[i].id > last->src_max) {
			newer = true;
			continue;
		}
		snprintf(key, sizeof(key), "src_changed.%" PRIu32, srcs->v[i].id);
		rc = store_txn_get_meta_u64(tx, key, &changed);
		if (rc < 0)
			return rc;
		if (changed > last->epoch)
			return 0;
	}
	*out = newer;
	return 0;
}

/*
 * What the tree about to be built depends on: the sources' views (the epoch defrag-ingest
 * advances with every change to them, and the complete sources: ids, names, roots,
 * @src_hash) and the classification (algorithm version and rules). Equal to the value
 * the last complete build recorded: nothing to do.
 */
static uint64_t org_state(uint64_t epoch, uint64_t cls_fp, uint64_t src_hash)
{
	struct dfs_buf b;
	uint64_t v;

	dfs_buf_init(&b, 64);
	dfs_buf_put_u64(&b, epoch);
	dfs_buf_put_u64(&b, cls_fp);
	dfs_buf_put_u64(&b, src_hash);
	v = hash_u64(&b);
	dfs_buf_release(&b);
	return v;
}

int organize_run(struct store *st, const char *rules, unsigned flags,
		 struct organize_stats *out, char *err, size_t errlen)
{
	bool dry_run = flags & ORG_DRY_RUN, force = flags & ORG_FORCE;
	struct cls_tree tree = { .list = tree_list, .head = tree_head, .mime_computed = tree_mime };
	struct org_src_list srcs = { 0 };
	struct classify *cls = NULL;
	struct org o = { 0 };
	struct org_built last = { 0 }, now = { 0 };
	struct timespec t0, t1;
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = classify_open(rules, &cls, err, errlen);
	if (rc < 0)
		return rc;
	o.st = st;
	o.stats = out;
	o.dry_run = dry_run;
	o.idle_commit = idle_commit_bytes();
	clock_gettime(CLOCK_REALTIME, &o.now);
	rc = codec_new(store_params(st)->zstd_level, &o.codec);
	if (rc == 0)
		rc = store_txn_begin(st, &o.tx);
	if (rc == 0)
		rc = store_each_source(st, collect_src, &srcs);
	if (rc == 0)
		rc = store_txn_get_meta_u64(o.tx, "src_epoch", &now.epoch);
	if (rc == 0)
		rc = org_built_rw(o.tx, &last, false);
	if (rc < 0)
		goto out;
	now.cls = classify_fingerprint(cls);
	for (size_t i = 0; i < srcs.n; i++)
		if (src_complete(&srcs.v[i]) && srcs.v[i].id > now.src_max)
			now.src_max = srcs.v[i].id;
	now.src_hash = src_set_hash(&srcs, now.src_max);
	now.state = org_state(now.epoch, now.cls, now.src_hash);
	rc = store_txn_get_meta_u64(o.tx, "org_gen", &o.gen);
	if (rc < 0)
		goto out;
	/* the same inputs, and no build begun since the last complete one (a reclassify
	 * that failed half way leaves its entries: the next build must be full) */
	if (!dry_run && !force && now.state == last.state && o.gen == last.gen) {
		out->skipped = true;
		goto out;
	}
	if (!dry_run && !force)
		rc = can_append(o.tx, &srcs, &last, now.cls, o.gen, &o.append);
	if (rc < 0)
		goto out;
	out->append = o.append;
	o.gen++;
	now.gen = o.gen;
	/*
	 * The generation is taken in the run's first commit: a run that fails after some
	 * intermediate commits never hands its number to the next run.
	 */
	if (!dry_run)
		rc = store_txn_put_meta_u64(o.tx, "org_gen", o.gen);
	if (rc < 0)
		goto out;
	tree.ctx = &o;
	o.icache = calloc(ICACHE_SLOTS, sizeof(*o.icache));
	if (!o.icache)
		rc = -ENOMEM;
	else if (!o.append)
		rc = put_dir(&o, STORE_ROOT_INO, NULL, NULL, NULL);
	for (size_t i = 0; i < srcs.n && rc == 0; i++) {
		if (!src_complete(&srcs.v[i]))
			continue;	/* never completed: nothing to show yet */
		if (o.append && srcs.v[i].id <= last.src_max)
			continue;	/* placed by the last build, unchanged */
		o.src = &srcs.v[i];
		chain_cut(&o, 0);
		/* a unit is known by its source-relative path within one source only */
		free(o.unit_src);
		free(o.unit_eff);
		o.unit_src = o.unit_eff = NULL;
		o.unit_src_len = o.unit_eff_len = 0;
		rc = organize_source(&o, cls, &tree, &srcs.v[i]);
		if (rc == 0 && o.err)
			rc = o.err;
	}
	if (rc == 0 && !dry_run && (flags & ORG_FLUSH))
		store_flush_start(st);
	chain_cut(&o, 0);
	for (size_t i = 0; i < o.ndc; i++)	/* the sweep lists what it needs */
		dc_clear(&o, &o.dc[i]);
	if (rc == 0)
		rc = finish_kept(&o);
	/* an append build removes nothing: every older entry is still placed */
	if (rc == 0 && !dry_run && !o.append)
		rc = sweep(&o, STORE_ROOT_INO, 0);
	/* only a complete build records what it was built from (in its last commit) */
	if (rc == 0 && !dry_run)
		rc = org_built_rw(o.tx, &now, true);
	if (rc == 0 && !dry_run) {
		rc = store_txn_commit(o.tx);
		o.tx = NULL;
	}
out:
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s", dfs_strerror(rc));
	store_txn_abort(o.tx);
	codec_free(o.codec);
	classify_close(cls);
	free(o.unit_src);
	free(o.unit_eff);
	u64set_release(&o.placed);
	u64set_release(&o.fresh);
	u64set_release(&o.fresh_names);
	u64map_release(&o.kept);
	pathmap_release(&o.dirs);
	for (size_t i = 0; i < o.ndc; i++)
		dc_clear(&o, &o.dc[i]);
	free(o.dc);
	u64map_release(&o.dc_slot);
	u64set_release(&o.dc_big);
	for (size_t i = 0; o.icache && i < ICACHE_SLOTS; i++)
		if (o.icache[i].ino)
			store_inode_release(&o.icache[i].in);
	free(o.icache);
	if (o.lb) {
		dfs_buf_release(&o.lb->names);
		free(o.lb);
	}
	for (size_t i = 0; i < srcs.n; i++)
		store_source_release(&srcs.v[i]);
	free(srcs.v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return rc;
}
