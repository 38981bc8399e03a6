/*
 * lookup.c - lookups in the organized tree for the placer: org_lookup and the reads and
 * writes of names that go with it.
 *
 * A lookup in a directory this build created is answered from memory when the name was
 * never put there (struct org's fresh_names). In full builds over an existing tree, an
 * existing directory is listed once, with one iterator, on its first lookup, and its
 * listing kept (struct dcache, within DC_BUDGET entries in all, the least recently used
 * dropped first); the records of its entries are read in batches from the entry looked
 * up on (store_get_inodes). The names the build puts or deletes are noted in the kept
 * listing too, so it always says what the transaction would.
 *
 * Threads: the placer's only (organize_int.h).
 * Errors: 0 or -errno, as the store_txn_* call each function stands for. A listing that
 * cannot be kept (no memory, too large, a read error) is benign: the directory is asked
 * name by name, and that read reports the error.
 *
 * SPDX-License-Identifier: MIT
 */
#include "organize_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/fp.h"

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
		/* room for 16 slots, then twice as many whenever full (a power of 2): a deep
		 * tree keeps one listing per level, and growing by one slot copied them all */
		if (o->ndc == 0 || (o->ndc >= 16 && !(o->ndc & (o->ndc - 1)))) {
			size_t cap = o->ndc ? o->ndc * 2 : 16;
			struct dcache *v = realloc(o->dc, cap * sizeof(*v));

			if (!v)
				return NULL;
			o->dc = v;
		}
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
int org_get_inode(struct org *o, uint64_t ino, struct store_inode *out)
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
int org_lookup(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
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
int org_put_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
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

int org_del_dirent(struct org *o, uint64_t dir, const uint8_t *name, size_t len)
{
	int rc = store_txn_del_dirent(o->tx, dir, name, len);

	if (rc == 0)
		dc_note(o, dir, name, len, 0, 0);
	return rc;
}

void org_dc_clear_all(struct org *o)
{
	for (size_t i = 0; i < o->ndc; i++)
		dc_clear(o, &o->dc[i]);
}
