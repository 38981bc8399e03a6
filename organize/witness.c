/*
 * witness.c - the witnesses of organized directories (store/witness.h; docs/FS.md,
 * "Access through the organized tree").
 *
 * Every entry this build places with an origin hands that origin's parent prefix to its
 * directory and the directories above it, up to the root (which everyone sees). Each
 * directory keeps the highest prefixes only: a prefix covered by one it holds (the same,
 * or one of its ancestors) changes nothing there, nor above, since whatever it holds was
 * handed up too; so a placement usually stops one or two levels up. A directory holds at
 * most STORE_WITNESS_MAX prefixes (STORE_WITNESS_MAX_BYTES bytes): past that it keeps the
 * shortest and is marked partial, and the mount looks below it for a caller none of them
 * lets in.
 *
 * A prefix is kept as a canonical witness: "PREFIX/." (walked as an origin whose parent
 * is PREFIX), or "NAME:/" for an origin that is a source root. The placer owns all of it.
 *
 * A full build hands every entry in the tree again, so the sets it gathers replace the
 * stored ones; an append build adds to them. They are written after every source is
 * placed (org_wit_flush), each directory's record once, and only where they changed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "organize_int.h"
#include "store/log.h"
#include "store/witness.h"

struct org_wset {
	uint64_t dir;
	uint32_t *ids;		/* STORE_WITNESS_MAX at most */
	uint32_t n, cap;
	size_t bytes;
	bool partial;
};

struct org_wit {
	struct u64map parent;	/* directory -> its parent */
	struct u64map slot;	/* directory -> its set's index + 1 */
	struct org_wset *sets;
	size_t nsets, capsets;
	struct pathmap ids;	/* canonical witness -> id */
	struct store_str *str;	/* id -> canonical witness */
	size_t *plen;		/* id -> its prefix's length */
	size_t nstr, capstr;
	uint64_t last_dir;	/* the last hand-up: the next one is often the same */
	uint32_t last_id;
	uint8_t *last_pfx;	/* the last origin's parent prefix, and its witness's id */
	size_t last_plen, last_cap;
	uint32_t last_pfx_id;
	bool have_last;
};

static struct org_wit *wit_of(struct org *o)
{
	if (!o->wit)
		o->wit = calloc(1, sizeof(*o->wit));
	return o->wit;
}

/* The id of the canonical witness @c (@len bytes, @plen its prefix), interned. */
static int intern(struct org_wit *w, const uint8_t *c, size_t len, size_t plen, uint32_t *id)
{
	uint64_t v;

	if (pathmap_get(&w->ids, c, len, &v)) {
		*id = (uint32_t)v;
		return 0;
	}
	if (w->nstr == UINT32_MAX)
		return -ENOMEM;
	if (w->nstr == w->capstr) {
		size_t cap = w->capstr ? w->capstr * 2 : 256;
		struct store_str *s = realloc(w->str, cap * sizeof(*s));
		size_t *p;

		if (!s)
			return -ENOMEM;
		w->str = s;
		p = realloc(w->plen, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->plen = p;
		w->capstr = cap;
	}
	w->str[w->nstr].p = malloc(len ? len : 1);
	if (!w->str[w->nstr].p)
		return -ENOMEM;
	memcpy(w->str[w->nstr].p, c, len);
	w->str[w->nstr].len = len;
	w->plen[w->nstr] = plen;
	*id = (uint32_t)w->nstr;
	if (pathmap_put(&w->ids, c, len, w->nstr) < 0) {
		free(w->str[w->nstr].p);
		return -ENOMEM;
	}
	w->nstr++;
	return 0;
}

/* The id of origin @o's witness; 1 if it has one, 0 if @o is no origin, or -errno. */
static int witness_id(struct org_wit *w, const uint8_t *o, size_t len, uint32_t *id)
{
	size_t plen = store_origin_parent_len(o, len);
	uint8_t *c;
	int rc;

	if (plen == (size_t)-1)
		return 0;	/* reaches nothing: hands nothing up */
	if (plen == 0)
		return intern(w, o, len, 0, id) < 0 ? -ENOMEM : 1;
	/* the files of one source directory come one after the other */
	if (w->have_last && plen == w->last_plen && !memcmp(o, w->last_pfx, plen)) {
		*id = w->last_pfx_id;
		return 1;
	}
	c = malloc(plen + 2);
	if (!c)
		return -ENOMEM;
	memcpy(c, o, plen);
	memcpy(c + plen, "/.", 2);
	rc = intern(w, c, plen + 2, plen, id);
	free(c);
	if (rc < 0)
		return rc;
	if (plen > w->last_cap) {
		uint8_t *n = realloc(w->last_pfx, plen);

		if (!n)
			return 1;	/* only the shortcut is lost */
		w->last_pfx = n;
		w->last_cap = plen;
	}
	memcpy(w->last_pfx, o, plen);
	w->last_plen = plen;
	w->last_pfx_id = *id;
	w->have_last = true;
	return 1;
}

static struct org_wset *set_of(struct org_wit *w, uint64_t dir, int *rc)
{
	uint64_t k;

	*rc = 0;
	if (u64map_get(&w->slot, dir, &k))
		return &w->sets[k - 1];
	if (w->nsets == w->capsets) {
		size_t cap = w->capsets ? w->capsets * 2 : 256;
		struct org_wset *s = realloc(w->sets, cap * sizeof(*s));

		if (!s) {
			*rc = -ENOMEM;
			return NULL;
		}
		w->sets = s;
		w->capsets = cap;
	}
	memset(&w->sets[w->nsets], 0, sizeof(w->sets[0]));
	w->sets[w->nsets].dir = dir;
	*rc = u64map_put(&w->slot, dir, w->nsets + 1);
	if (*rc < 0)
		return NULL;
	return &w->sets[w->nsets++];
}

static bool covers(const struct org_wit *w, uint32_t a, uint32_t b)
{
	return store_prefix_covers(w->str[a].p, w->plen[a], w->str[b].p, w->plen[b]);
}

/*
 * Adds witness @id to @s: 0 when a witness of @s covers it already (nothing changes, here
 * or above), 1 when it was added (or could not be: @s is partial), or -ENOMEM.
 */
static int set_add(struct org_wit *w, struct org_wset *s, uint32_t id)
{
	uint32_t k = 0, longest = 0;
	size_t len = w->str[id].len;

	for (uint32_t i = 0; i < s->n; i++)
		if (covers(w, s->ids[i], id))
			return 0;
	for (uint32_t i = 0; i < s->n; i++) {	/* the ones it covers go */
		if (covers(w, id, s->ids[i])) {
			s->bytes -= w->str[s->ids[i]].len;
			continue;
		}
		s->ids[k++] = s->ids[i];
	}
	s->n = k;
	/* full: the shortest prefixes stay (the likeliest open, and the cheapest) */
	while (s->n && (s->n == STORE_WITNESS_MAX || s->bytes + len > STORE_WITNESS_MAX_BYTES)) {
		for (uint32_t i = 1; i < s->n; i++)
			if (w->plen[s->ids[i]] > w->plen[s->ids[longest]])
				longest = i;
		s->partial = true;
		if (w->plen[s->ids[longest]] <= w->plen[id])
			return 1;
		s->bytes -= w->str[s->ids[longest]].len;
		s->ids[longest] = s->ids[--s->n];
		longest = 0;
	}
	if (len > STORE_WITNESS_MAX_BYTES) {
		s->partial = true;
		return 1;
	}
	if (s->n == s->cap) {	/* most directories hold one or two */
		uint32_t cap = s->cap ? s->cap * 2 : 2;
		uint32_t *v = realloc(s->ids, (cap > STORE_WITNESS_MAX ? STORE_WITNESS_MAX : cap) *
					      sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->ids = v;
		s->cap = cap > STORE_WITNESS_MAX ? STORE_WITNESS_MAX : cap;
	}
	s->ids[s->n++] = id;
	s->bytes += len;
	return 1;
}

int org_wit_dir(struct org *o, uint64_t dir, uint64_t parent)
{
	struct org_wit *w;
	int rc;

	if (o->dry_run)
		return 0;
	if (!(w = wit_of(o)))
		return -ENOMEM;
	rc = u64map_put(&w->parent, dir, parent);
	if (rc == 0)
		(void)set_of(w, dir, &rc);	/* a directory nothing reaches gets an empty set */
	return rc;
}

bool org_wit_parent(struct org *o, uint64_t dir, uint64_t *parent)
{
	return o->wit && u64map_get(&o->wit->parent, dir, parent);
}

int org_wit_add(struct org *o, uint64_t dir, const uint8_t *origin, size_t olen)
{
	struct org_wit *w;
	uint32_t id;
	int rc;

	if (o->dry_run)
		return 0;
	if (!(w = wit_of(o)))
		return -ENOMEM;
	rc = witness_id(w, origin, olen, &id);
	if (rc <= 0)
		return rc;
	if (dir == w->last_dir && id == w->last_id)
		return 0;
	w->last_dir = dir;
	w->last_id = id;
	while (dir != STORE_ROOT_INO) {
		struct org_wset *s = set_of(w, dir, &rc);
		uint64_t up;

		if (!s)
			return rc;
		rc = set_add(w, s, id);
		if (rc <= 0)
			return rc;
		if (!u64map_get(&w->parent, dir, &up)) {
			dfs_err("organize: directory %llu was placed without its parent",
				(unsigned long long)dir);
			return -EIO;
		}
		dir = up;
	}
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	const struct store_str *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* An append build: the witnesses stored in @cur join the set. */
static int merge_stored(struct org_wit *w, struct org_wset *s, const struct store_inode *cur)
{
	const struct store_str *v = store_witness_find(cur);
	struct store_witnesses ws;
	int rc;

	if (!v)
		return 0;
	if (store_witness_decode(v->p, v->len, &ws) < 0) {
		s->partial = true;	/* unreadable: the mount looks below */
		return 0;
	}
	s->partial |= ws.partial;
	for (size_t i = 0; i < ws.n; i++) {
		uint32_t id;

		rc = witness_id(w, ws.p[i], ws.len[i], &id);
		if (rc < 0)
			return rc;
		/* a stored witness is canonical: its own witness is itself */
		if (rc > 0 && (rc = set_add(w, s, id)) < 0)
			return rc;
	}
	return 0;
}

/* Sets @in's witness attribute to @val (@in owns its xattrs, kept sorted by name). */
static int put_attr(struct store_inode *in, const struct dfs_buf *val)
{
	const char *nm = STORE_WITNESS_XATTR;
	size_t nl = strlen(nm), at = 0;
	struct store_xattr *x;
	uint8_t *v = malloc(val->len ? val->len : 1);

	if (!v)
		return -ENOMEM;
	memcpy(v, val->data, val->len);
	for (; at < in->nxattrs; at++) {
		struct store_str *n = &in->xattrs[at].name;
		int c = memcmp(n->p, nm, n->len < nl ? n->len : nl);

		if (!c && n->len == nl) {	/* replace */
			free(in->xattrs[at].value.p);
			in->xattrs[at].value.p = v;
			in->xattrs[at].value.len = val->len;
			return 0;
		}
		if (c > 0 || (!c && n->len > nl))
			break;
	}
	x = realloc(in->xattrs, (in->nxattrs + 1) * sizeof(*x));
	if (!x) {
		free(v);
		return -ENOMEM;
	}
	in->xattrs = x;
	memmove(x + at + 1, x + at, (in->nxattrs - at) * sizeof(*x));
	x[at].name.p = (uint8_t *)strdup(nm);
	if (!x[at].name.p) {
		memmove(x + at, x + at + 1, (in->nxattrs - at) * sizeof(*x));
		free(v);
		return -ENOMEM;
	}
	x[at].name.len = nl;
	x[at].value.p = v;
	x[at].value.len = val->len;
	in->nxattrs++;
	return 0;
}

int org_wit_flush(struct org *o)
{
	struct org_wit *w = o->wit;
	struct store_str *v = NULL;
	struct dfs_buf val;
	int rc = 0;

	if (o->dry_run || !w)
		return 0;
	dfs_buf_init(&val, STORE_XATTR_MAX);
	v = malloc(STORE_WITNESS_MAX * sizeof(*v));
	if (!v)
		rc = -ENOMEM;
	for (size_t i = 0; i < w->nsets && rc == 0; i++) {
		struct org_wset *s = &w->sets[i];
		const struct store_str *old;
		struct store_inode cur;

		rc = store_txn_get_inode(o->tx, s->dir, &cur);
		if (rc < 0)
			break;
		if (!S_ISDIR(cur.mode)) {	/* cannot be: walk_dirs made it a directory */
			store_inode_release(&cur);
			continue;
		}
		if (o->append)
			rc = merge_stored(w, s, &cur);
		for (uint32_t j = 0; j < s->n; j++)
			v[j] = w->str[s->ids[j]];
		qsort(v, s->n, sizeof(*v), str_cmp);
		dfs_buf_clear(&val);
		if (rc == 0)
			rc = store_witness_encode(s->partial, v, s->n, &val);
		old = store_witness_find(&cur);
		if (rc == 0 && !(old && old->len == val.len && !memcmp(old->p, val.data, val.len))) {
			rc = put_attr(&cur, &val);
			if (rc == 0)
				rc = store_txn_put_inode(o->tx, &cur);
		}
		store_inode_release(&cur);
		if (rc == 0)
			rc = org_group_commit(o);
	}
	free(v);
	dfs_buf_release(&val);
	return rc;
}

void org_wit_release(struct org *o)
{
	struct org_wit *w = o->wit;

	if (!w)
		return;
	u64map_release(&w->parent);
	u64map_release(&w->slot);
	for (size_t i = 0; i < w->nsets; i++)
		free(w->sets[i].ids);
	free(w->sets);
	pathmap_release(&w->ids);
	for (size_t i = 0; i < w->nstr; i++)
		free(w->str[i].p);
	free(w->str);
	free(w->plen);
	free(w->last_pfx);
	free(o->wit);
	o->wit = NULL;
}
