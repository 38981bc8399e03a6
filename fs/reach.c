/*
 * reach.c - who may reach an organized entry (see reach.h).
 *
 * The memo maps a directory of /.sources, named by its origin prefix ("NAME:" for a
 * source root, "NAME:/a/b" below it), to what a check needs: its inode, owner, group,
 * mode, access ACL, and whether it and every directory above it are open (searchable by
 * everyone). Direct-mapped: a colliding prefix replaces the older one, which is read from
 * the index again when next needed. Every slot holds its full prefix, so a hash collision
 * can never pass one directory off as another.
 *
 * SPDX-License-Identifier: MIT
 */
#include "reach.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/buf.h"
#include "store/witness.h"

#define MEMO_SLOTS 8192u
#define ACL_VERSION 2
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define ACL_NAME "system.posix_acl_access"

struct dirinfo {
	uint64_t ino;
	uint32_t mode, uid, gid;
	uint8_t *acl;		/* the ACL value, or NULL */
	size_t acl_len;
	bool chain_open;	/* it and every directory above it are open */
};

struct slot {
	char *key;		/* NULL: empty */
	size_t klen;
	struct dirinfo d;
};

struct reach {
	struct store *st;
	const struct fattr_maps *maps;
	pthread_mutex_t lock;	/* protects slots */
	struct slot *slots;
};

void reach_who_init(struct reach_who *w, uid_t uid, gid_t gid,
		    int (*load_groups)(void *, gid_t *, int), void *arg)
{
	memset(w, 0, sizeof(*w));
	w->uid = uid;
	w->gid = gid;
	w->load_groups = load_groups;
	w->arg = arg;
	w->ngroups = -1;
}

void reach_who_release(struct reach_who *w)
{
	free(w->groups);
	w->groups = NULL;
	w->ngroups = -1;
}

static bool in_group(struct reach_who *w, uint32_t gid)
{
	if (w->gid == gid)
		return true;
	if (w->ngroups < 0) {
		int n = w->load_groups ? w->load_groups(w->arg, NULL, 0) : 0;

		w->ngroups = 0;
		if (n > 0 && (w->groups = calloc((size_t)n, sizeof(gid_t)))) {
			int m = w->load_groups(w->arg, w->groups, n);

			/* a group list that changed between the two reads: what fits */
			w->ngroups = m < 0 ? 0 : m > n ? n : m;
		}
	}
	for (int i = 0; i < w->ngroups; i++)
		if (w->groups[i] == gid)
			return true;
	return false;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool acl_valid(const uint8_t *a, size_t n)
{
	return n >= 4 && (n - 4) % 8 == 0 && le32(a) == ACL_VERSION;
}

/* posix_acl_permission() of the kernel, on a stored ACL value (ids mapped). */
static bool acl_permits(const struct fattr_maps *maps, const struct dirinfo *d,
			struct reach_who *w, unsigned want)
{
	unsigned mask = 7, perm;
	bool found = false, has_mask = false;
	uint32_t owner = fattr_map_id(maps->uid, maps->nuid, d->uid);
	uint32_t group = fattr_map_id(maps->gid, maps->ngid, d->gid);

	for (size_t off = 4; off < d->acl_len; off += 8) {
		if ((d->acl[off] | d->acl[off + 1] << 8) == ACL_MASK) {
			mask = (d->acl[off + 2] | d->acl[off + 3] << 8) & 7;
			has_mask = true;
		}
	}
	/* the owner and named users first, then the groups, then others */
	for (size_t off = 4; off < d->acl_len; off += 8) {
		unsigned tag = d->acl[off] | d->acl[off + 1] << 8;
		uint32_t id = le32(d->acl + off + 4);

		perm = (d->acl[off + 2] | d->acl[off + 3] << 8) & 7;
		if (tag == ACL_USER_OBJ && w->uid == owner)
			return (perm & want) == want;
		if (tag == ACL_USER && w->uid == fattr_map_id(maps->uid, maps->nuid, id))
			return (perm & mask & want) == want;
	}
	if (w->uid == owner)
		return false;	/* an ACL without its owner entry: malformed, refuse */
	for (size_t off = 4; off < d->acl_len; off += 8) {
		unsigned tag = d->acl[off] | d->acl[off + 1] << 8;
		uint32_t id = le32(d->acl + off + 4);
		bool member;

		perm = (d->acl[off + 2] | d->acl[off + 3] << 8) & 7;
		if (tag == ACL_GROUP_OBJ)
			member = in_group(w, group);
		else if (tag == ACL_GROUP)
			member = in_group(w, fattr_map_id(maps->gid, maps->ngid, id));
		else
			continue;
		if (member) {
			found = true;
			if ((perm & (has_mask ? mask : 7) & want) == want)
				return true;
		}
	}
	if (found)
		return false;
	for (size_t off = 4; off < d->acl_len; off += 8)
		if ((d->acl[off] | d->acl[off + 1] << 8) == ACL_OTHER)
			return ((d->acl[off + 2] | d->acl[off + 3] << 8) & want) == want;
	return false;
}

static bool dir_permits(const struct fattr_maps *maps, const struct dirinfo *d,
			struct reach_who *w, unsigned want)
{
	unsigned bits;

	if (w->uid == 0)
		return true;	/* CAP_DAC_READ_SEARCH */
	if (d->acl)
		return acl_valid(d->acl, d->acl_len) && acl_permits(maps, d, w, want);
	if (w->uid == fattr_map_id(maps->uid, maps->nuid, d->uid))
		bits = d->mode >> 6;
	else if (in_group(w, fattr_map_id(maps->gid, maps->ngid, d->gid)))
		bits = d->mode >> 3;
	else
		bits = d->mode;
	return (bits & 7 & want) == want;
}

static const struct store_xattr *find_acl(const struct store_inode *in)
{
	for (size_t i = 0; i < in->nxattrs; i++)
		if (in->xattrs[i].name.len == sizeof(ACL_NAME) - 1 &&
		    !memcmp(in->xattrs[i].name.p, ACL_NAME, sizeof(ACL_NAME) - 1))
			return &in->xattrs[i];
	return NULL;
}

bool reach_permits(const struct fattr_maps *maps, const struct store_inode *in,
		   struct reach_who *who, unsigned want)
{
	const struct store_xattr *x = find_acl(in);
	struct dirinfo d = {
		.mode = in->mode, .uid = in->uid, .gid = in->gid,
		.acl = x ? x->value.p : NULL, .acl_len = x ? x->value.len : 0,
	};

	return dir_permits(maps, &d, who, want);
}

/* May everyone search @d: x for owner, group and others, and in every ACL entry? */
static bool dir_open(const struct dirinfo *d)
{
	if ((d->mode & 0111) != 0111)
		return false;
	if (!d->acl)
		return true;
	if (!acl_valid(d->acl, d->acl_len))
		return false;
	for (size_t off = 4; off < d->acl_len; off += 8)
		if (!(d->acl[off + 2] & 1))
			return false;
	return true;
}

int reach_new(struct store *st, const struct fattr_maps *maps, struct reach **out)
{
	struct reach *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r || !(r->slots = calloc(MEMO_SLOTS, sizeof(*r->slots)))) {
		free(r);
		return -ENOMEM;
	}
	r->st = st;
	r->maps = maps;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

static void slot_clear(struct slot *s)
{
	free(s->key);
	free(s->d.acl);
	memset(s, 0, sizeof(*s));
}

void reach_reset(struct reach *r)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < MEMO_SLOTS; i++)
		slot_clear(&r->slots[i]);
	pthread_mutex_unlock(&r->lock);
}

void reach_free(struct reach *r)
{
	if (!r)
		return;
	reach_reset(r);
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	free(r);
}

static size_t slot_of(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)k[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 32) & (MEMO_SLOTS - 1);
}

/* The memo's copy of prefix @k into @d (acl owned by the caller); false if absent. */
static bool memo_get(struct reach *r, const char *k, size_t n, struct dirinfo *d)
{
	struct slot *s = &r->slots[slot_of(k, n)];
	bool hit = false;

	pthread_mutex_lock(&r->lock);
	if (s->key && s->klen == n && !memcmp(s->key, k, n)) {
		*d = s->d;
		d->acl = NULL;
		hit = !s->d.acl || (d->acl = malloc(s->d.acl_len));
		if (d->acl)
			memcpy(d->acl, s->d.acl, s->d.acl_len);
	}
	pthread_mutex_unlock(&r->lock);
	return hit;
}

static void memo_put(struct reach *r, const char *k, size_t n, const struct dirinfo *d)
{
	struct slot *s = &r->slots[slot_of(k, n)];
	char *key = malloc(n ? n : 1);
	uint8_t *acl = d->acl ? malloc(d->acl_len) : NULL;

	if (!key || (d->acl && !acl)) {	/* not remembered: read again next time */
		free(key);
		free(acl);
		return;
	}
	memcpy(key, k, n);
	if (acl)
		memcpy(acl, d->acl, d->acl_len);
	pthread_mutex_lock(&r->lock);
	slot_clear(s);
	s->key = key;
	s->klen = n;
	s->d = *d;
	s->d.acl = acl;
	pthread_mutex_unlock(&r->lock);
}

/* Reads directory @name under @parent into @d (chain_open from @parent_open). */
static int read_dir(struct reach *r, uint64_t parent, const char *name, size_t len,
		    bool parent_open, struct dirinfo *d)
{
	struct store_inode in;
	const struct store_xattr *x;
	uint64_t child;
	uint8_t t;
	int rc = store_lookup(r->st, parent, name, len, &child, &t);

	if (rc < 0)
		return rc;
	rc = store_get_inode(r->st, child, &in);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;	/* a dangling entry is damage */
	memset(d, 0, sizeof(*d));
	d->ino = child;
	d->mode = in.mode;
	d->uid = in.uid;
	d->gid = in.gid;
	x = find_acl(&in);
	if (x && (d->acl = malloc(x->value.len ? x->value.len : 1))) {
		memcpy(d->acl, x->value.p, x->value.len);
		d->acl_len = x->value.len;
	} else if (x) {
		rc = -ENOMEM;
	}
	store_inode_release(&in);
	if (rc == 0 && !S_ISDIR(d->mode))
		rc = -ENOENT;	/* not a directory any more: the origin is gone */
	d->chain_open = parent_open && dir_open(d);
	if (rc < 0) {
		free(d->acl);
		d->acl = NULL;
	}
	return rc;
}

/*
 * Walks the directories above origin @o (@len bytes) from its source root down. @who
 * NULL: is the chain open (*ok)? Else: may @who search every one of them (*ok)?
 * A missing directory gives *ok false (the origin is not there to reach).
 */
static int walk(struct reach *r, const uint8_t *o, size_t len, struct reach_who *who, bool *ok)
{
	const char *p = (const char *)o, *colon = memchr(p, ':', len);
	uint64_t parent = STORE_SOURCES_INO;
	size_t rootlen, endlen, klen, nl;
	const char *name;
	bool open = true;

	*ok = false;
	if (!colon || colon == p || len < (size_t)(colon - p) + 2 || colon[1] != '/')
		return 0;	/* not an origin: reaches nothing */
	rootlen = (size_t)(colon - p) + 1;
	if (len == rootlen + 1) {	/* "NAME:/", a source root: only /.sources above */
		*ok = true;
		return 0;
	}
	/* the parent's prefix: "NAME:/a/b" for "NAME:/a/b/leaf", "NAME:" for "NAME:/leaf" */
	endlen = len;
	while (endlen > rootlen && p[endlen - 1] != '/')
		endlen--;
	endlen = endlen - 1 > rootlen ? endlen - 1 : rootlen;
	if (!who) {	/* usually known already */
		struct dirinfo d;

		if (memo_get(r, p, endlen, &d)) {
			free(d.acl);
			*ok = d.chain_open;
			return 0;
		}
	}
	/* the source root "NAME:" (named NAME in /.sources), then "NAME:/a", "NAME:/a/b" */
	klen = rootlen;
	name = p;
	nl = rootlen - 1;
	for (;;) {
		struct dirinfo d;
		bool pass;

		if (!memo_get(r, p, klen, &d)) {
			int rc = read_dir(r, parent, name, nl, open, &d);

			if (rc == -ENOENT || rc == -ENOTDIR || rc == -ENAMETOOLONG)
				return 0;	/* the origin is not there to reach */
			if (rc < 0)
				return rc;
			memo_put(r, p, klen, &d);
		}
		open = d.chain_open;
		pass = who ? dir_permits(r->maps, &d, who, 1) : open;
		free(d.acl);
		if (!pass)
			return 0;
		if (klen >= endlen)
			break;
		parent = d.ino;
		/* the next component: p[klen] is the '/' before it */
		name = p + klen + 1;
		klen++;
		while (klen < endlen && p[klen] != '/')
			klen++;
		nl = (size_t)(p + klen - name);
	}
	*ok = true;
	return 0;
}

int reach_origin(struct reach *r, const uint8_t *o, size_t len, struct reach_who *who,
		 bool *ok)
{
	if (who->uid == 0) {
		*ok = true;
		return 0;
	}
	return walk(r, o, len, who, ok);
}

bool reach_applies(const struct store_inode *in)
{
	return in->view == STORE_VIEW_ORG &&
	       (in->norigins || (S_ISDIR(in->mode) && store_witness_find(in)));
}

/* @in's witnesses (an organized directory's), or false: it has none stored. A value
 * that does not decode is kept as none, partial: the mount looks below (exact, slower). */
static bool witnesses(const struct store_inode *in, struct store_witnesses *ws)
{
	const struct store_str *v;

	if (in->view != STORE_VIEW_ORG || !S_ISDIR(in->mode) || !(v = store_witness_find(in)))
		return false;
	if (store_witness_decode(v->p, v->len, ws) < 0) {
		memset(ws, 0, sizeof(*ws));
		ws->partial = true;
	}
	return true;
}

int reach_guarded(struct reach *r, const struct store_inode *in, bool *guarded)
{
	struct store_witnesses ws;
	const uint8_t *const *p = NULL;
	const size_t *len = NULL;
	size_t n = 0;

	*guarded = false;
	if (witnesses(in, &ws)) {
		p = ws.p;
		len = ws.len;
		n = ws.n;
	} else if (in->view != STORE_VIEW_ORG || !in->norigins) {
		return 0;
	}
	for (size_t i = 0; i < (p ? n : in->norigins); i++) {
		bool open;
		int rc = p ? walk(r, p[i], len[i], NULL, &open)
			   : walk(r, in->origins[i].p, in->origins[i].len, NULL, &open);

		if (rc < 0)
			return rc;
		if (open)
			return 0;
	}
	*guarded = true;
	return 0;
}

/*
 * May @who reach @in, from what its record holds (*ok)? *below: not known from its
 * record: a directory whose witnesses are partial, none of which lets @who in.
 */
static int reach_record(struct reach *r, const struct store_inode *in, struct reach_who *who,
			bool *ok, bool *below)
{
	struct store_witnesses ws;
	bool guarded;
	int rc = reach_guarded(r, in, &guarded);

	*ok = *below = false;
	if (rc < 0)
		return rc;
	if (!guarded || who->uid == 0) {
		*ok = true;
		return 0;
	}
	if (witnesses(in, &ws)) {
		for (size_t i = 0; i < ws.n && !*ok; i++) {
			rc = walk(r, ws.p[i], ws.len[i], who, ok);
			if (rc < 0)
				return rc;
		}
		*below = !*ok && ws.partial;
		return 0;
	}
	for (size_t i = 0; i < in->norigins && !*ok; i++) {
		rc = walk(r, in->origins[i].p, in->origins[i].len, who, ok);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Is there an entry below @dir that @who reaches (*ok)? Reads the directories whose
 * witnesses are partial, a batch of records at a time, and stops at the first entry
 * found.
 */
static int reach_below(struct reach *r, uint64_t dir, struct reach_who *who, bool *ok)
{
	enum { BATCH = 64 };
	struct dfs_buf s;	/* the directories still to read: uint64_t each */
	int rc;

	*ok = false;
	dfs_buf_init(&s, SIZE_MAX);
	rc = dfs_buf_append(&s, &dir, sizeof(dir));
	while (rc == 0 && s.len && !*ok) {
		struct store_dir_iter *it = NULL;
		uint64_t inos[BATCH], child;
		struct store_inode in[BATCH];
		int rcs[BATCH];
		const uint8_t *nm;
		size_t nl, k;
		uint8_t t;
		int more = 1;

		s.len -= sizeof(dir);
		memcpy(&dir, s.data + s.len, sizeof(dir));
		rc = store_dir_open(r->st, dir, NULL, 0, &it);
		while (rc == 0 && more == 1 && !*ok) {
			for (k = 0; k < BATCH && (more = store_dir_next(it, &nm, &nl, &child, &t)) == 1;)
				inos[k++] = child;
			if (more < 0)
				rc = more;
			if (rc < 0 || !k)
				break;
			store_get_inodes(r->st, inos, k, in, rcs);
			for (size_t j = 0; j < k; j++) {
				bool below = false;

				if (rc == 0 && !*ok && rcs[j] == 0)
					rc = reach_record(r, &in[j], who, ok, &below);
				else if (rc == 0 && rcs[j] < 0 && rcs[j] != -ENOENT)
					rc = rcs[j];	/* gone meanwhile: not there to reach */
				if (rc == 0 && below)
					rc = dfs_buf_append(&s, &inos[j], sizeof(inos[j]));
				store_inode_release(&in[j]);
			}
		}
		if (it)
			store_dir_close(it);
	}
	dfs_buf_release(&s);
	return rc;
}

int reach_entry(struct reach *r, const struct store_inode *in, struct reach_who *who,
		bool *ok)
{
	bool below;
	int rc = reach_record(r, in, who, ok, &below);

	if (rc == 0 && below)
		rc = reach_below(r, in->ino, who, ok);
	return rc;
}
