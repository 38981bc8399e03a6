/*
 * place.c - placement: the results of classify/ written into the organized tree.
 *
 * Directories along the way are created or re-marked with the build's generation; files
 * become ORG-view inodes that borrow metadata and content from their first origin. The
 * same content at the same organized path is one entry with every origin (namespace
 * dedup); different content at a taken name gets a "~hash" name (conflict_name,
 * alt_name); a unit is placed whole, at its own path when that is free or holds the same
 * unit, else as another version at "NAME~hash" (resolve_unit). An entry an earlier build
 * wrote and this one places again unchanged is not written again (struct org's kept).
 * The rules are in docs/CLASSIFY.md, "Placing the results".
 *
 * Threads: the placer's only (organize_int.h).
 * Errors: 0 or -errno from the store or -ENOMEM; -ENAMETOOLONG for an organized path
 * too long; -EEXIST when every name for a unit's version is taken. An entry for which
 * every name is taken is left out of the tree (logged), not an error.
 *
 * SPDX-License-Identifier: MIT
 */
#include "organize_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/witness.h"

#define ORIGINS_CAP_BYTES 60000u
#define ORG_NAME_TRIES 1000	/* names tried for one entry or unit (see alt_name) */
#define KEPT_DONE UINT64_MAX	/* a kept entry written since (see struct org) */
#define KEPT(stored, confirmed) ((uint64_t)(stored) << 32 | (confirmed))
#define KEPT_STORED(v) ((v) >> 32)
#define KEPT_CONFIRMED(v) ((v) & 0xffffffffu)

/* Is the organized entry @ino a placement of this build? */
static bool taken(const struct org *o, uint64_t ino)
{
	return o->append || u64set_has(&o->placed, ino);
}


/* The placer's: stores a MIME type classify computed. */
void org_apply_mime(struct org *o, uint64_t file, const char *mime)
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

static bool is_defrag_xattr(const struct store_xattr *x)
{
	return x->name.len >= 12 && !memcmp(x->name.p, "user.defrag.", 12);
}

/*
 * The xattrs of an organized directory made from @meta (NULL: made up): @meta's own
 * without their user.defrag.* (the organizer's namespace in the organized tree), and the
 * witnesses the stored record @cur has (org_wit_flush replaces them at the end of the
 * build; keeping them until then keeps an unchanged record unwritten). An array to free
 * whose parts are borrowed, sorted by name as @meta's are.
 */
static int dir_xattrs(const struct store_inode *meta, const struct store_inode *cur,
		      struct store_xattr **out, size_t *n)
{
	const struct store_str *w = cur ? store_witness_find(cur) : NULL;
	size_t have = meta ? meta->nxattrs : 0, nl = sizeof(STORE_WITNESS_XATTR) - 1;
	bool put = !w;

	*n = 0;
	*out = calloc(have + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < have; i++) {
		const struct store_xattr *x = &meta->xattrs[i];

		if (is_defrag_xattr(x))
			continue;
		if (!put) {
			int c = memcmp(x->name.p, STORE_WITNESS_XATTR, x->name.len < nl ? x->name.len : nl);

			if (c > 0 || (!c && x->name.len > nl)) {
				(*out)[*n].name.p = (uint8_t *)STORE_WITNESS_XATTR;
				(*out)[*n].name.len = nl;
				(*out)[(*n)++].value = *w;
				put = true;
			}
		}
		(*out)[(*n)++] = *x;
	}
	if (!put) {
		(*out)[*n].name.p = (uint8_t *)STORE_WITNESS_XATTR;
		(*out)[*n].name.len = nl;
		(*out)[(*n)++].value = *w;
	}
	return 0;
}

/* @cur: the stored record of @ino, or NULL; a record equal to it is not written again. */
int org_put_dir(struct org *o, uint64_t ino, const struct store_inode *meta, const char *unit,
		const struct store_inode *cur)
{
	struct store_inode in = { 0 };
	struct store_xattr *xs;
	int rc;

	if (meta) {
		/* shallow: borrowed parts, never released here; the origins are the
		 * directory's own (place), or none */
		in = *meta;
		in.has_content = false;
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
	rc = dir_xattrs(meta, cur, &xs, &in.nxattrs);
	if (rc < 0)
		return rc;
	in.xattrs = xs;
	if (!o->dry_run && !(cur && store_inode_same(&in, cur)))
		rc = store_txn_put_inode(o->tx, &in);
	free(xs);
	return rc;
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
		rc = org_wit_dir(o, child, parent);
		if (rc < 0 || taken(o, child))
			return rc;
		rc = org_get_inode(o, child, &in);
		if (rc < 0)
			return rc;
		rc = org_put_dir(o, child, meta, (const char *)in.unit.p, &in);
		store_inode_release(&in);
		return rc;
	}
	if (rc == 0) {
		if (taken(o, child))
			return -ENOTDIR;
		if (!o->dry_run && (rc = org_drop_displaced(o, parent, name, len, child, t)) < 0)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	}
	child = store_txn_alloc_ino(o->tx);
	if (u64set_add(&o->fresh, child) < 0 || org_wit_dir(o, child, parent) < 0)
		return -ENOMEM;
	rc = org_put_dir(o, child, meta, NULL, NULL);
	if (rc == 0)
		rc = org_put_dirent(o, parent, name, len, child, DT_DIR);
	*ino = child;
	return rc;
}

void org_chain_cut(struct org *o, size_t n)
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
			org_chain_cut(o, depth);
			if (!pathmap_get(&o->dirs, path, pos + cl, &ino)) {
				rc = ensure_dir(o, cur, path + pos, cl, NULL, &ino);
				/*
				 * a file of this generation holds the name: "name~dir~<8 hex of
				 * the organized path>" (a directory of that path from any
				 * source meets the others there; never an unrelated directory
				 * named "name~dir"), then "...~2", "...~3" past files holding
				 * those too
				 */
				for (int k = 1; rc == -ENOTDIR && k < ORG_NAME_TRIES; k++) {
					uint8_t alt[256];
					char hex[FP_HEX_LEN + 1];
					struct fp256 h;
					size_t al = cl > 230 ? 230 : cl;
					int tl;

					fp_sha256(path, pos + cl, &h);
					fp_to_hex(&h, hex);
					memcpy(alt, path + pos, al);
					tl = k == 1 ? snprintf((char *)alt + al, sizeof(alt) - al,
							       "~dir~%.8s", hex)
						    : snprintf((char *)alt + al, sizeof(alt) - al,
							       "~dir~%.8s~%d", hex, k);
					rc = ensure_dir(o, cur, alt, al + (size_t)tl, NULL, &ino);
				}
				if (rc == -ENOTDIR)
					dfs_err("organize: no name for the directory %.*s: every "
						"one tried is a file", (int)(pos + cl), path);
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
 * Appends @sfx to the last component of @path (*plen bytes), shortening that component
 * first when the result would exceed 255 bytes (NAME_MAX), without splitting a UTF-8
 * sequence: every organized name fits any filesystem a user copies it to.
 */
static void suffix_last(uint8_t *path, size_t *plen, const char *sfx)
{
	size_t sl = strlen(sfx), start = *plen;

	while (start > 0 && path[start - 1] != '/')
		start--;
	if (*plen - start + sl > 255) {
		size_t keep = 255 - sl;

		while (keep > 0 && (path[start + keep] & 0xc0) == 0x80)
			keep--;
		*plen = start + keep;
	}
	memcpy(path + *plen, sfx, sl);
	*plen += sl;
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
int org_finish_kept(struct org *o)
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
			rc = org_group_commit(o);
	}
	return rc;
}

/* ---- versions: user.defrag.versions ---------------------------------------------------- */

#define VERSIONS_XATTR "user.defrag.versions"
#define VX_LEN (sizeof(VERSIONS_XATTR) - 1)

/*
 * @src's xattrs for an organized file: the source's own user.defrag.* left out (they show
 * under /.sources only; in the organized tree that namespace is the organizer's). *@out
 * is NULL when nothing is left out (@src's array serves), else an array to free whose
 * parts are borrowed from @src.
 */
static int org_file_xattrs(const struct store_inode *src, struct store_xattr **out, size_t *n)
{
	size_t k = 0;

	*out = NULL;
	*n = src->nxattrs;
	for (size_t i = 0; i < src->nxattrs; i++)
		k += is_defrag_xattr(&src->xattrs[i]);
	if (!k)
		return 0;
	*out = calloc(src->nxattrs - k + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < src->nxattrs; i++)
		if (!is_defrag_xattr(&src->xattrs[i]))
			(*out)[(*n)++] = src->xattrs[i];
	return 0;
}

/* Appends @name escaped as in user.defrag.origins ('\n', '\\'), then '\n'. */
static void put_escaped(struct dfs_buf *b, const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '\n')
			dfs_buf_append(b, "\\n", 2);
		else if (name[i] == '\\')
			dfs_buf_append(b, "\\\\", 2);
		else
			dfs_buf_put_u8(b, name[i]);
	}
	dfs_buf_put_u8(b, '\n');
}

/* One escaped line of a versions list back into a name (@out: 256 bytes). */
static size_t unescape(const uint8_t *p, size_t len, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < 255; i++) {
		if (p[i] == '\\' && i + 1 < len) {
			out[n++] = p[i + 1] == 'n' ? '\n' : p[i + 1];
			i++;
		} else {
			out[n++] = p[i];
		}
	}
	return n;
}

/* Sets @in's user.defrag.versions to @val (replacing it; @in owns its xattrs). */
static int set_versions(struct store_inode *in, const struct dfs_buf *val)
{
	struct store_xattr *x = NULL, *v;
	size_t at = in->nxattrs;

	for (size_t i = 0; i < in->nxattrs; i++) {
		int c = memcmp(in->xattrs[i].name.p, VERSIONS_XATTR,
			       in->xattrs[i].name.len < VX_LEN ? in->xattrs[i].name.len : VX_LEN);

		if (c == 0 && in->xattrs[i].name.len == VX_LEN) {
			x = &in->xattrs[i];
			break;
		}
		if (c > 0 || (c == 0 && in->xattrs[i].name.len > VX_LEN)) {
			at = i;	/* sorted by name: it goes here */
			break;
		}
	}
	if (!x) {
		v = realloc(in->xattrs, (in->nxattrs + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		in->xattrs = v;
		memmove(&v[at + 1], &v[at], (in->nxattrs - at) * sizeof(*v));
		x = &v[at];
		memset(x, 0, sizeof(*x));
		in->nxattrs++;
		x->name.p = (uint8_t *)strdup(VERSIONS_XATTR);
		if (!x->name.p)
			return -ENOMEM;
		x->name.len = VX_LEN;
	}
	free(x->value.p);
	x->value.p = malloc(val->len ? val->len : 1);
	x->value.len = 0;
	if (!x->value.p)
		return -ENOMEM;
	memcpy(x->value.p, val->data, val->len);
	x->value.len = val->len;
	return 0;
}

/*
 * The stored user.defrag.versions is one line per other version, "<16 hex inode> <name>"
 * (the name escaped as in user.defrag.origins): the mount shows the names only, and with
 * allow_other only those of versions the reader can reach (fs/ll.c). Appends @in's names
 * (without their inodes) to @out as lines.
 */
#define VLINE_INO 17	/* "<16 hex> " */

static void append_version_names(const struct store_inode *in, struct dfs_buf *out)
{
	for (size_t i = 0; i < in->nxattrs; i++) {
		const struct store_str *v = &in->xattrs[i].value;

		if (in->xattrs[i].name.len != VX_LEN ||
		    memcmp(in->xattrs[i].name.p, VERSIONS_XATTR, VX_LEN))
			continue;
		for (size_t off = 0; off < v->len;) {
			const uint8_t *nl = memchr(v->p + off, '\n', v->len - off);
			size_t l = nl ? (size_t)(nl - (v->p + off)) + 1 : v->len - off;

			if (l > VLINE_INO && nl)
				dfs_buf_append(out, v->p + off + VLINE_INO, l - VLINE_INO);
			off += l;
		}
	}
}

/* Writes @list, without the line @self (escaped, with its '\n'), as @ino's versions. */
static int write_versions(struct org *o, uint64_t ino, const struct dfs_buf *list,
			  const uint8_t *self, size_t slen)
{
	struct store_inode cur;
	struct dfs_buf val;
	int rc = org_get_inode(o, ino, &cur);

	if (rc < 0)
		return rc;
	dfs_buf_init(&val, STORE_XATTR_MAX);
	for (size_t off = 0; off < list->len;) {
		const uint8_t *nl = memchr(list->data + off, '\n', list->len - off);
		size_t l = (size_t)(nl - (list->data + off)) + 1;

		if (val.len + l > STORE_XATTR_MAX)
			break;	/* capped, as user.defrag.origins is */
		if (l != slen || memcmp(list->data + off, self, slen))
			dfs_buf_append(&val, list->data + off, l);
		off += l;
	}
	rc = val.err;
	if (rc == 0)
		rc = set_versions(&cur, &val);
	if (rc == 0)
		rc = store_txn_put_inode(o->tx, &cur);
	dfs_buf_release(&val);
	store_inode_release(&cur);
	return rc;
}

/*
 * The entry placed at @alt in @dir is another version of the one at @name: every member of
 * the group (the plain name first, then the versions in the order they were placed)
 * lists the others in user.defrag.versions.
 */
/* Does @list ('\n'-ended lines) hold the line @line (with its '\n')? */
static bool has_line(const struct dfs_buf *list, const struct dfs_buf *line)
{
	for (size_t off = 0; off + line->len <= list->len;) {
		const uint8_t *nl = memchr(list->data + off, '\n', list->len - off);
		size_t l = (size_t)(nl - (list->data + off)) + 1;

		if (l == line->len && !memcmp(list->data + off, line->data, l))
			return true;
		off += l;
	}
	return false;
}

static int note_version(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
			const uint8_t *alt, size_t al)
{
	struct store_inode plain;
	struct dfs_buf all, me, pre;
	uint64_t pino;
	uint8_t t;
	int rc = org_lookup(o, dir, name, len, &pino, &t);

	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	if (t == DT_DIR)
		return 0;
	rc = org_get_inode(o, pino, &plain);
	if (rc < 0)
		return rc;
	dfs_buf_init(&all, 1u << 20);
	dfs_buf_init(&me, 1024);
	put_escaped(&all, name, len);
	append_version_names(&plain, &all);
	put_escaped(&me, alt, al);
	if (!has_line(&all, &me))
		dfs_buf_append(&all, me.data, me.len);
	store_inode_release(&plain);
	rc = all.err ? all.err : me.err;
	dfs_buf_init(&pre, 1u << 20);
	/* the members there still are, each with its inode */
	for (size_t off = 0; rc == 0 && off < all.len;) {
		const uint8_t *nl = memchr(all.data + off, '\n', all.len - off);
		size_t l = (size_t)(nl - (all.data + off)) + 1;
		uint8_t nm[256];
		size_t n = unescape(all.data + off, l - 1, nm);
		uint64_t member;
		char ih[VLINE_INO + 1];

		rc = org_lookup(o, dir, nm, n, &member, &t);
		if (rc == 0 && t != DT_DIR) {
			snprintf(ih, sizeof(ih), "%016" PRIx64 " ", member);
			dfs_buf_append(&pre, ih, VLINE_INO);
			dfs_buf_append(&pre, all.data + off, l);
			rc = pre.err;
		} else if (rc == 0 || rc == -ENOENT) {
			rc = 0;	/* swept since, or a directory now: left out */
		}
		off += l;
	}
	/* everyone in the group, the new one included, lists the others */
	for (size_t off = 0; rc == 0 && off < pre.len;) {
		const uint8_t *nl = memchr(pre.data + off, '\n', pre.len - off);
		size_t l = (size_t)(nl - (pre.data + off)) + 1;

		rc = write_versions(o, strtoull((const char *)pre.data + off, NULL, 16), &pre,
				    pre.data + off, l);
		off += l;
	}
	dfs_buf_release(&pre);
	dfs_buf_release(&all);
	dfs_buf_release(&me);
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
			if (!reuse && !o->dry_run) {
				/* another entry (other bytes, or a directory) in the way */
				rc = org_drop_displaced(o, dir, nm, nl, child, t);
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
			struct store_xattr *xs;

			rc = org_file_xattrs(src, &xs, &in.nxattrs);
			if (rc < 0) {
				if (reuse)
					store_inode_release(&cur);
				return rc;
			}
			if (xs)
				in.xattrs = xs;
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
				if (keep && attempt == 0) {
					free(xs);
					o->stats->entries++;
					return u64map_put(&o->kept, ino, KEPT(norig, 1));
				}
			}
			if (!o->dry_run) {
				rc = store_txn_put_inode(o->tx, &in);
				if (rc == 0 && !reuse)
					rc = org_put_dirent(o, dir, nm, nl, ino, IFTODT(src->mode));
				if (rc == 0 && attempt > 0)
					rc = note_version(o, dir, name, len, nm, nl);
			}
			free(xs);
			if (rc < 0)
				return rc;
		}
		o->stats->entries++;
		return 0;
	}
	return 0;
}

/* Resolves where the unit of @r goes: its own path, or NAME~<hash8> for another version. */
static int resolve_unit(struct org *o, const struct cls_result *r)
{
	char sfx[48];
	char want[80], thex[FP_HEX_LEN + 1];
	uint8_t *path;
	size_t plen = r->unit_dest_len;
	int rc = 0;

	if (o->unit_src && o->unit_src_len == r->unit_src_len &&
	    !memcmp(o->unit_src, r->unit_src, r->unit_src_len))
		return 0;
	free(o->unit_src);
	free(o->unit_eff);
	o->unit_eff = NULL;
	o->unit_src = malloc(r->unit_src_len + 1);
	if (!o->unit_src)
		return -ENOMEM;
	memcpy(o->unit_src, r->unit_src, r->unit_src_len);
	o->unit_src_len = r->unit_src_len;
	o->stats->units++;
	/* room for the longest suffix (suffix_last) */
	path = malloc(plen + sizeof(sfx));
	if (!path)
		return -ENOMEM;
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
		dfs_buf_init(&w, ORG_PATH_MAX);
		dfs_buf_append(&w, o->src->name.p, o->src->name.len);
		dfs_buf_append(&w, ":/", 2);
		dfs_buf_append(&w, r->unit_src, r->unit_src_len);
		rc = w.err;
		if (rc == 0)
			fp_sha256(w.data, w.len, &wh);
		dfs_buf_release(&w);
		if (rc < 0)
			goto out;
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
			bool free_slot = true;

			rc = walk_dirs(o, path, dl, &dir);
			if (rc < 0)
				goto out;
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
					goto out;
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
				rc = -EEXIST;
				goto out;
			}
			plen = r->unit_dest_len;
			if (attempt == 0)
				snprintf(sfx, sizeof(sfx), "~%.8s", thex);
			else if (attempt == 1)
				snprintf(sfx, sizeof(sfx), "~%.16s", thex);
			else
				snprintf(sfx, sizeof(sfx), "~%.16s~%d", thex, attempt + 1);
			suffix_last(path, &plen, sfx);
			if (attempt == 0)
				o->stats->conflicts++;
		}
	}
	o->unit_eff = malloc(plen + 1);
	if (!o->unit_eff) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(o->unit_eff, path, plen);
	o->unit_eff_len = plen;
out:
	free(path);
	return rc;
}

/* Places the entry of @r, whose source record is @srcp (borrowed from its job block). */
int org_place(struct org *o, const struct cls_result *r, const struct store_inode *srcp)
{
	struct dfs_buf *pb = &o->place_path, *ob = &o->place_origin;
	const uint8_t *dest = r->dest, *origin;
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
			dfs_buf_clear(pb);
			dfs_buf_append(pb, o->unit_eff, o->unit_eff_len);
			dfs_buf_append(pb, r->dest + r->unit_dest_len, dlen - r->unit_dest_len);
			rc = pb->err == -E2BIG ? -ENAMETOOLONG : pb->err;
			dest = pb->data;
			dlen = pb->len;
		}
	}
	if (rc < 0)
		return rc;
	dfs_buf_clear(ob);
	dfs_buf_append(ob, o->src->name.p, o->src->name.len);
	dfs_buf_append(ob, ":/", 2);
	dfs_buf_append(ob, r->src_path, r->src_path_len);
	if (ob->err)
		return ob->err == -E2BIG ? -ENAMETOOLONG : ob->err;
	origin = ob->data;
	olen = ob->len;

	if (S_ISDIR(src.mode)) {
		uint64_t ino;

		rc = walk_dirs(o, dest, dlen, &ino);
		if (rc == 0) {
			/* keep a unit root's identity (written by resolve_unit) */
			struct store_inode cur;
			bool have = store_txn_get_inode(o->tx, ino, &cur) == 0;
			struct store_str os = { .p = (uint8_t *)origin, .len = olen };

			if (have && cur.norigins && taken(o, ino)) {
				/* another source directory at this path: one more origin
				 * (the mount checks that a caller can reach one, FS.md) */
				rc = merge_origin(o, ino, &cur, origin, olen);
			} else {
				src.origins = &os;
				src.norigins = 1;
				src.origins_total = 1;
				rc = org_put_dir(o, ino, &src,
						 have && cur.unit.len ? (const char *)cur.unit.p : NULL,
						 have ? &cur : NULL);
			}
			if (have)
				store_inode_release(&cur);
		}
		/* its own origin makes it, and the directories above, visible (witness.c) */
		if (rc == 0)
			rc = org_wit_add(o, ino, origin, olen);
		org_chain_cut(o, 0);
		return rc;
	}
	slash = memrchr(dest, '/', dlen);
	rc = walk_dirs(o, dest, slash ? (size_t)(slash - dest) : 0, &dir);
	if (rc == 0)
		rc = place_leaf(o, dir, slash ? slash + 1 : dest,
				slash ? dlen - (size_t)(slash - dest) - 1 : dlen, r, &src, origin,
				olen);
	if (rc == 0)
		rc = org_wit_add(o, dir, origin, olen);
	if (rc == 0 && S_ISLNK(src.mode))
		rc = org_links_note(o, dir, r->src_path, r->src_path_len, &src);
	if (rc == 0 && S_ISREG(src.mode))
		(void)cls_tally_add(&o->stats->cats, r->category, 1, src.size);	/* stats only */
	if (rc == 0)
		rc = org_group_commit(o);
	return rc;
}
