/*
 * explain.c - defrag-ingest --explain: how an entry of a live source is classified, and
 * where the store actually placed it (see ingest.h).
 *
 * The path is taken as the user gave it: relative to the source, or absolute (its
 * directory resolved, its last component not: a symlink is explained as the symlink it
 * is). Classification runs on the live source (fstree.c) with the rules in force for
 * the store (the kept ones unless --rules is given). When the source is in the store,
 * the entry is looked up in /.sources/NAME and then in the organized tree: along the
 * rules' destination, each component taken as it is or as a conflict or version name of
 * it ("NAME~...", "STEM~....EXT"), the one whose origins hold this entry (or a
 * directory above it); when that finds nothing (copy alignment placed it elsewhere), by
 * a walk of the whole organized tree for an entry with this origin.
 *
 * Threads: the caller's. Errors: 0 or -errno, a message in @err; it writes only to @out.
 *
 * SPDX-License-Identifier: MIT
 */
#include "ingest.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify/classify.h"
#include "fstree.h"
#include "store/buf.h"
#include "store/log.h"

/* The organized entry's origins: 3 it is this entry, 2 a directory above it, 0 neither. */
static int origin_score(const struct store_inode *in, const struct dfs_buf *want)
{
	int best = 0;

	for (size_t i = 0; i < in->norigins; i++) {
		const struct store_str *o = &in->origins[i];

		if (o->len == want->len && !memcmp(o->p, want->data, o->len))
			return 3;
		if (o->len < want->len && !memcmp(o->p, want->data, o->len) &&
		    want->data[o->len] == '/')
			best = 2;
	}
	return best;
}

/* Is @nm (@nl bytes) component @c itself, or a conflict or version name of it? */
static bool variant_of(const uint8_t *nm, size_t nl, const char *c, size_t cl)
{
	const char *dot = memrchr(c, '.', cl);
	size_t stem = dot && dot > c ? (size_t)(dot - c) : cl;

	if (nl == cl && !memcmp(nm, c, cl))
		return true;
	/* name~..., name~dir~..., NAME~<hash> */
	if (nl > cl + 1 && !memcmp(nm, c, cl) && nm[cl] == '~')
		return true;
	/* stem~<hex>.ext: a loose file's conflict name keeps its extension */
	return stem < cl && nl > cl + 1 && !memcmp(nm, c, stem) && nm[stem] == '~' &&
	       !memcmp(nm + nl - (cl - stem), c + stem, cl - stem);
}

/* The best candidate of one level of follow_dest. */
struct cand {
	uint64_t ino;
	int score;		/* -1: none yet */
	uint8_t name[NAME_MAX + 1];
	size_t len;
};

/* Entry @child named @nm is a candidate for component @cl bytes long: kept if better. */
static void consider(struct store *st, uint64_t child, const uint8_t *nm, size_t nl, size_t cl,
		     const struct dfs_buf *want, struct cand *b)
{
	struct store_inode in;
	int s;

	if (nl > NAME_MAX || store_get_inode(st, child, &in) < 0)
		return;
	/* the origins decide; between equals, the plain name */
	s = origin_score(&in, want) * 2 + (nl == cl);
	store_inode_release(&in);
	if (s > b->score) {
		b->score = s;
		b->ino = child;
		b->len = nl;
		memcpy(b->name, nm, nl);
	}
}

/*
 * Follows @dest (the rules' destination) in the organized tree: at each level the
 * variant of the component whose origins hold @want best (the plain name when no
 * origin decides). The organized path found goes into @found. 1 found (the last
 * component's origins name @want), 0 not, -errno.
 */
static int follow_dest(struct store *st, const struct dfs_buf *dest, const struct dfs_buf *want,
		       struct dfs_buf *found)
{
	uint64_t cur = STORE_ROOT_INO;
	size_t off = 0;
	int score = 0;

	dfs_buf_clear(found);
	while (off < dest->len) {
		const char *c = (const char *)dest->data + off;
		const uint8_t *sl = memchr(c, '/', dest->len - off);
		size_t cl = sl ? (size_t)(sl - (const uint8_t *)c) : dest->len - off;
		const char *dot = memrchr(c, '.', cl);
		size_t stem = dot && dot > c ? (size_t)(dot - c) : cl;
		struct cand b = { .score = -1 };
		struct store_dir_iter *di;
		const uint8_t *nm;
		size_t nl;
		uint64_t child;
		uint8_t t;
		int rc;

		off += cl + (sl != NULL);
		if (!cl)
			continue;
		rc = store_lookup(st, cur, c, cl, &child, &t);
		if (rc == 0)
			consider(st, child, (const uint8_t *)c, cl, cl, want, &b);
		else if (rc != -ENOENT)
			return rc;
		/* every variant sorts after the stem, among the names that start with it */
		rc = store_dir_open(st, cur, c, stem, &di);
		if (rc < 0)
			return rc;
		while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
			if (nl < stem || memcmp(nm, c, stem))
				break;
			if (!(nl == cl && !memcmp(nm, c, cl)) && variant_of(nm, nl, c, cl))
				consider(st, child, nm, nl, cl, want, &b);
		}
		store_dir_close(di);
		if (rc < 0)
			return rc;
		if (b.score < 0)
			return 0;
		if (found->len)
			dfs_buf_put_u8(found, '/');
		dfs_buf_append(found, b.name, b.len);
		score = b.score / 2;
		cur = b.ino;
	}
	if (found->err)
		return found->err;
	return score == 3;
}

struct search {
	struct store *st;
	const struct dfs_buf *want;
	struct dfs_buf *found;
};

/* One entry of the organized tree (store_walk_tree): is it @want's? */
static int search_entry(void *arg, const struct dfs_buf *path, size_t depth, uint64_t child,
			uint8_t t)
{
	struct search *s = arg;
	struct store_inode in;
	int sc, rc = 0;

	(void)t;
	if (depth == 1 && path->len == 9 && !memcmp(path->data, "/.sources", 9))
		return 0;
	if (store_get_inode(s->st, child, &in) < 0)
		return 0;
	sc = origin_score(&in, s->want);
	if (sc == 3) {
		dfs_buf_clear(s->found);
		dfs_buf_append(s->found, path->data + 1, path->len - 1);
		rc = s->found->err ? s->found->err : 2;
	} else if (S_ISDIR(in.mode) && depth < CLS_MAX_DEPTH) {
		rc = 1;
	}
	store_inode_release(&in);
	return rc;
}

/*
 * The whole organized tree, for an entry whose origins name @want (copy alignment can
 * place an entry away from the rules' destination). 1 found (@found its path), 0, -errno.
 */
static int search_all(struct store *st, const struct dfs_buf *want, struct dfs_buf *found)
{
	struct search s = { st, want, found };
	struct dfs_buf path;
	int rc;

	dfs_buf_clear(found);
	dfs_buf_init(&path, (size_t)CLS_MAX_DEPTH * (NAME_MAX + 1));
	rc = store_walk_tree(st, STORE_ROOT_INO, &path, search_entry, &s);
	dfs_buf_release(&path);
	return rc == 2 ? 1 : rc;
}

/* The other versions an organized file names (user.defrag.versions: "<16 hex> NAME\n"). */
static void print_versions(FILE *out, const struct store_inode *in)
{
	for (size_t i = 0; i < in->nxattrs; i++) {
		const struct store_xattr *x = &in->xattrs[i];
		const uint8_t *p = x->value.p, *e = p + x->value.len;
		bool first = true;

		if (x->name.len != 20 || memcmp(x->name.p, "user.defrag.versions", 20))
			continue;
		fprintf(out, "  other versions beside it:");
		while (p < e) {
			const uint8_t *nl = memchr(p, '\n', (size_t)(e - p));
			const uint8_t *end = nl ? nl : e;

			if (end - p > 17)
				fprintf(out, "%s %.*s", first ? "" : ",", (int)(end - p - 17),
					(const char *)p + 17);
			first = false;
			p = end + 1;
		}
		fputc('\n', out);
	}
}

/*
 * Where the store holds source @name's entry @rel: its /.sources path, then its organized
 * path (the rules gave @dest). Writes to @out; 0 or -ENOMEM.
 */
static int explain_store(struct store *st, const char *name, const char *rel,
			 const struct dfs_buf *dest, FILE *out)
{
	struct store_source src;
	struct store_inode in = { 0 };
	struct dfs_buf want, found;
	uint64_t ino;
	const char *p = rel;
	int rc;

	if (store_get_source(st, name, strlen(name), &src) < 0) {
		fprintf(out, "in the store: no source named '%s' yet (the result above is where "
			"an ingest would put it)\n", name);
		return 0;
	}
	ino = src.root_ino;
	store_source_release(&src);
	while (*p) {
		size_t l = strcspn(p, "/");
		uint8_t t;

		if (l && store_lookup(st, ino, p, l, &ino, &t) < 0) {
			fprintf(out, "in the store: /.sources/%s/%s is not there (new on the "
				"drive since the last ingest, or excluded)\n", name, rel);
			return 0;
		}
		p += l + (p[l] == '/');
	}
	dfs_buf_init(&want, PATH_MAX + 512);
	dfs_buf_init(&found, (size_t)CLS_MAX_DEPTH * (NAME_MAX + 1));
	dfs_buf_append(&want, name, strlen(name));
	dfs_buf_append(&want, ":/", 2);
	dfs_buf_append(&want, rel, strlen(rel));
	rc = want.err ? want.err : follow_dest(st, dest, &want, &found);
	if (rc == 0)
		rc = search_all(st, &want, &found);
	if (rc < 0 && rc != -ENOMEM) {
		fprintf(out, "in the store: the organized tree cannot be read: %s\n",
			dfs_strerror(rc));
		rc = 0;
	} else if (rc == 0) {
		fprintf(out, "in the store: /.sources/%s/%s, not in the organized tree (the "
			"tree is built by the next ingest or defrag-reclassify)\n", name, rel);
	} else if (rc == 1) {
		uint64_t cur = STORE_ROOT_INO;
		const uint8_t *q = found.data, *e = found.data + found.len;
		uint8_t t;

		fprintf(out, "in the store: %.*s%s\n", (int)found.len, (const char *)found.data,
			found.len == dest->len && !memcmp(found.data, dest->data, dest->len)
				? "" : " (not the rules' result: a conflict or version name, or "
				"a copy's place)");
		/* its record, for the versions it names */
		while (q < e) {
			const uint8_t *sl = memchr(q, '/', (size_t)(e - q));
			size_t l = sl ? (size_t)(sl - q) : (size_t)(e - q);

			if (store_lookup(st, cur, q, l, &cur, &t) < 0)
				break;
			q += l + 1;
		}
		if (q >= e && store_get_inode(st, cur, &in) == 0) {
			if (in.category.len)
				fprintf(out, "  category %.*s, rule %.*s\n", (int)in.category.len,
					(const char *)in.category.p, (int)in.rule.len,
					(const char *)in.rule.p);
			print_versions(out, &in);
			store_inode_release(&in);
		}
		rc = 0;
	}
	dfs_buf_release(&want);
	dfs_buf_release(&found);
	return rc;
}

/*
 * @what as a path relative to the source root @real, into @rel (returned, free()):
 * absolute paths have their directory resolved (not their last component); relative
 * ones are relative to the source ("./" and repeated '/' dropped, ".." refused).
 */
static int source_rel(const char *real, const char *what, char **rel, char *err, size_t errlen)
{
	size_t rl = strlen(real);
	char *r, *w;

	*rel = NULL;
	if (what[0] == '/') {
		char *copy = strdup(what), *slash, *dir;
		const char *base;

		if (!copy)
			return -ENOMEM;
		while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
			copy[strlen(copy) - 1] = '\0';
		slash = strrchr(copy, '/');
		*slash = '\0';
		base = slash + 1;
		dir = realpath(copy[0] ? copy : "/", NULL);	/* not the last component */
		if (!dir) {
			snprintf(err, errlen, "%s: %s", what, strerror(errno));
			free(copy);
			return -ENOENT;
		}
		r = malloc(strlen(dir) + strlen(base) + 2);
		if (r)
			snprintf(r, strlen(dir) + strlen(base) + 2, "%s%s%s", dir,
				 strcmp(dir, "/") ? "/" : "", base);
		free(dir);
		free(copy);
		if (!r)
			return -ENOMEM;
		if (strncmp(r, real, rl) || (r[rl] && r[rl] != '/' && rl > 1)) {
			snprintf(err, errlen, "%s is not inside %s", what, real);
			free(r);
			return -EXDEV;
		}
		memmove(r, r + (rl > 1 ? rl : 0), strlen(r + (rl > 1 ? rl : 0)) + 1);
	} else {
		r = strdup(what);
		if (!r)
			return -ENOMEM;
	}
	/* drop "." components and empty ones; refuse ".." */
	w = r;
	for (char *p = r; *p;) {
		size_t l = strcspn(p, "/");

		if (l == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(err, errlen, "--explain %s: '..' is not inside the source", what);
			free(r);
			return -EXDEV;
		}
		if (l && !(l == 1 && p[0] == '.')) {
			if (w != r)
				*w++ = '/';
			memmove(w, p, l);
			w += l;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	*w = '\0';
	*rel = r;
	return 0;
}

int ingest_explain(struct store *st, const char *source, const char *what, const char *name,
		   const char *rules, bool all, FILE *out, char *err, size_t errlen)
{
	struct classify *cls = NULL;
	struct fstree *t = NULL;
	struct dfs_buf dest;
	char *real = realpath(source, NULL), *rel = NULL;
	int rc;

	err[0] = '\0';
	if (!real) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", source, strerror(-rc));
		return rc;
	}
	rc = source_rel(real, what, &rel, err, errlen);
	if (rc < 0) {
		free(real);
		return rc;
	}
	if (!name) {
		name = strrchr(real, '/');
		name = name && name[1] ? name + 1 : "root";
	}
	dfs_buf_init(&dest, (size_t)CLS_MAX_DEPTH * (NAME_MAX + 1));
	rc = classify_open_store(st, rules, &cls, err, errlen);
	if (rc == 0)
		rc = fstree_open(real, &t);
	if (rc == 0)
		rc = classify_explain(cls, fstree_tree(t), fstree_root(t), name,
				      (const uint8_t *)rel, strlen(rel), all, out, &dest);
	if (rc == 0 && st)
		rc = explain_store(st, name, rel, &dest, out);
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "--explain %s: %s", what,
			 rc == -ENOENT ? "no such entry in the source" : dfs_strerror(rc));
	dfs_buf_release(&dest);
	fstree_close(t);
	classify_close(cls);
	free(real);
	free(rel);
	return rc;
}
