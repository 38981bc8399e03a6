/*
 * classify.c - units first, files second (see classify.h).
 *
 * The walk lists each directory once (sorted by name), asks unit.c whether it is a unit,
 * and either places the unit whole (two passes over its subtree: the tree hash, then the
 * entries) or goes down into it. Loose entries go through the rules; the first match wins,
 * the built-in "unsorted" rule catches the rest, so every entry lands somewhere. Both walks
 * keep their levels on the heap (struct cstack: a listing and a cursor per level), never
 * on the C stack, down to CLS_MAX_DEPTH levels (then -ELOOP).
 *
 * SPDX-License-Identifier: MIT
 */
#include "classify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify_int.h"
#include "mime.h"
#include "rules.h"
#include "store/buf.h"
#include "store/fp.h"
#include "store/log.h"
#include "store/store.h"
#include "unit.h"

struct classify {
	struct rules *rules;
	struct mime *mime;
	uint8_t *headbuf;
	struct cls_counts counts;
};

void classify_counts(const struct classify *c, struct cls_counts *out)
{
	*out = c->counts;
}

/*
 * The user's rules: the file @rules_path, else the text @text (@tlen bytes, named @tname
 * in messages), else CLS_SYSTEM_RULES when it exists; then the built-in ones.
 */
static int open_rules(const char *rules_path, const char *tname, const char *text, size_t tlen,
		      struct classify **out, char *err, size_t errlen)
{
	struct classify *c;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = rules_new(&c->rules);
	if (rc == 0)
		rc = mime_new(&c->mime);
	c->headbuf = malloc(MIME_HEAD);
	if (rc == 0 && !c->headbuf)
		rc = -ENOMEM;
	if (rc == 0) {
		if (text) {
			rc = rules_parse(c->rules, tname, text, tlen, err, errlen);
		} else if (rules_path) {
			rc = rules_load(c->rules, rules_path, err, errlen);
			if (rc < 0 && rc != -EINVAL)
				rc = -EINVAL;	/* a named file that cannot be read is a usage error */
		} else {
			rc = rules_load(c->rules, CLS_SYSTEM_RULES, err, errlen);
			if (rc == -ENOENT) {
				rc = 0;
				if (errlen)
					err[0] = '\0';
			}
		}
	}
	if (rc == 0)
		rc = rules_parse(c->rules, "<built-in rules>", classify_default_rules,
				 strlen(classify_default_rules), err, errlen);
	if (rc < 0) {
		classify_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int classify_open(const char *rules_path, struct classify **out, char *err, size_t errlen)
{
	if (rules_path && !strcmp(rules_path, CLS_RULES_BUILTIN))
		rules_path = NULL;
	return open_rules(rules_path, NULL, NULL, 0, out, err, errlen);
}

const char *const *classify_warnings(const struct classify *c, size_t *n)
{
	return rules_warnings(c->rules, n);
}

int classify_open_text(const char *name, const char *text, size_t len, struct classify **out,
		       char *err, size_t errlen)
{
	return open_rules(NULL, name, text, len, out, err, errlen);
}

int classify_open_store(struct store *st, const char *rules_path, struct classify **out,
			char *err, size_t errlen)
{
	struct store_rules r;
	char name[300];
	int rc;

	if (rules_path || !st)
		return classify_open(rules_path, out, err, errlen);
	rc = store_get_rules(st, &r);
	if (rc == -ENOENT)
		return classify_open(NULL, out, err, errlen);
	if (rc < 0) {
		*out = NULL;
		snprintf(err, errlen, "the rules kept in the store cannot be read: %s",
			 dfs_strerror(rc));
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	snprintf(name, sizeof(name), "%s (kept in the store)", r.name);
	rc = classify_open_text(name, r.text, r.len, out, err, errlen);
	store_rules_release(&r);
	return rc;
}

uint64_t classify_fingerprint(const struct classify *c)
{
	uint8_t buf[16 + FP_LEN];
	struct fp256 d, h;
	uint64_t v = 0;

	rules_digest(c->rules, &d);
	memset(buf, 0, sizeof(buf));
	snprintf((char *)buf, 16, "dfs-classify-%d", CLS_ALGO_VERSION);
	memcpy(buf + 16, d.b, FP_LEN);
	fp_sha256(buf, sizeof(buf), &h);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)h.b[i] << (8 * i);
	return v;
}

void classify_close(struct classify *c)
{
	if (!c)
		return;
	rules_free(c->rules);
	mime_free(c->mime);
	free(c->headbuf);
	free(c);
}

/* ---- directory listings ---------------------------------------------------------------- */

struct kid {
	uint8_t *name;
	size_t len;
	struct cls_entry e;		/* name points into .name; content_id into .cid */
	uint8_t cid[32];
	char *mime;
};

struct kids {
	struct kid *v;
	size_t n, cap;
	int err;
};

static int kids_cb(void *arg, const struct cls_entry *e)
{
	struct kids *k = arg;
	struct kid *x;

	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 32;
		struct kid *v = realloc(k->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = cap;
	}
	x = &k->v[k->n];
	memset(x, 0, sizeof(*x));
	x->name = malloc(e->name_len + 1);
	if (!x->name)
		return -ENOMEM;
	memcpy(x->name, e->name, e->name_len);
	x->name[e->name_len] = '\0';
	x->len = e->name_len;
	x->e = *e;
	x->e.name = x->name;
	if (e->content_id) {
		memcpy(x->cid, e->content_id, 32);
		x->e.content_id = x->cid;
	}
	if (e->mime) {
		x->mime = strdup(e->mime);
		x->e.mime = x->mime;
	}
	k->n++;
	return 0;
}

static void kids_release(struct kids *k)
{
	for (size_t i = 0; i < k->n; i++) {
		free(k->v[i].name);
		free(k->v[i].mime);
	}
	free(k->v);
	memset(k, 0, sizeof(*k));
}

static int list_kids(const struct cls_tree *t, uint64_t dir, struct kids *k)
{
	memset(k, 0, sizeof(*k));
	return t->list(t->ctx, dir, kids_cb, k);
}

/* A directory being walked: one per level, on the heap. */
struct cframe {
	struct kids k;			/* its entries, sorted */
	/* walk_tree: each entry's own rule (-1: a directory), and what the folder rules
	 * decided for the directory (fold.rule -1: nothing, files go by their own rules) */
	int *own;
	struct rules_folder_result fold;
	/* the split figure (cls_counts): the top-level category of its first regular file
	 * placed (borrowed from the rules), and whether another one followed */
	const char *top;
	size_t top_len;
	bool any, split;
	size_t next;			/* the next to walk */
	size_t base;			/* its path: the first base bytes of walk.path */
	size_t rstart, rbase;		/* its rule path: walk.rpath[rstart, rbase) */
	const struct cls_entry *self;	/* walk_tree: its own entry (in the parent frame's
					 * listing), NULL for the root */
};

struct cstack {
	struct cframe *v;
	size_t n, cap;
};

/* A new top frame (zeroed), or NULL out of memory. */
static struct cframe *cstack_push(struct cstack *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct cframe *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[s->n]));
	return &s->v[s->n++];
}

static void cstack_pop(struct cstack *s)
{
	kids_release(&s->v[--s->n].k);
	free(s->v[s->n].own);
}

static void cstack_release(struct cstack *s)
{
	while (s->n)
		cstack_pop(s);
	free(s->v);
	s->v = NULL;
	s->cap = 0;
}

/* ---- the walk ----------------------------------------------------------------------------- */

struct walk {
	struct classify *c;
	const struct cls_tree *t;
	const char *source;
	cls_emit_fn emit;
	void *arg;
	struct dfs_buf path;	/* source-relative path of the current entry */
	/*
	 * The path the rules see (copy alignment, cls_tree.aligned): rpath[rstart, len).
	 * Below an aligned directory it starts with the path of the directory it copies;
	 * the prefixes of the frames above stay in front of it.
	 */
	struct dfs_buf rpath;
	size_t rstart;
	struct dfs_buf dest;
	struct dfs_buf udest;	/* the current unit's destination */
	FILE *explain;
	bool explain_all;	/* --explain -v: every rule, not only those that came close */
	const uint8_t *target;	/* --explain: the path looked for */
	size_t target_len;
	bool found;
	struct dfs_buf *result;	/* --explain: the target's destination, once found */
};

/* rules_match's explanation for @f (NULL: none) as this walk wants it */
static const struct rules_explain *rex(struct walk *w, FILE *f, struct rules_explain *buf)
{
	buf->f = f;
	buf->all = w->explain_all;
	return f ? buf : NULL;
}

/* --explain found its target, placed at @dest */
static void found_at(struct walk *w, const struct dfs_buf *dest)
{
	w->found = true;
	if (w->result) {
		dfs_buf_clear(w->result);
		dfs_buf_append(w->result, dest->data, dest->len);
	}
}

static void subject_of(struct walk *w, const struct cls_entry *e, const char *unit_kind,
		       struct rules_subject *s)
{
	const uint8_t *rp = w->rpath.data + w->rstart, *slash;
	size_t rl = w->rpath.len - w->rstart;

	memset(s, 0, sizeof(*s));
	s->path = rp;
	s->path_len = rl;
	/* the name the rules see is the rule path's last (an aligned directory takes the
	 * name of the one it copies), but for an aligned source root ("") */
	slash = rl ? memrchr(rp, '/', rl) : NULL;
	s->name = rl ? (slash ? slash + 1 : rp) : e->name;
	s->name_len = rl ? (size_t)(rp + rl - s->name) : e->name_len;
	s->mode = e->mode;
	s->size = e->size;
	s->mtime = e->mtime;
	s->unit_kind = unit_kind;
	s->source = w->source;
	s->mime = e->mime;
}

enum rules_mime classify_may_need_mime(const struct classify *c, const uint8_t *path,
				       size_t path_len, const uint8_t *name, size_t name_len,
				       uint32_t mode, uint64_t size, int64_t mtime,
				       const char *source_name)
{
	struct rules_subject s = {
		.path = path, .path_len = path_len, .name = name, .name_len = name_len,
		.mode = mode, .size = size, .mtime = mtime, .source = source_name,
	};

	return S_ISREG(mode) ? rules_need_mime(c->rules, &s) : RULES_MIME_NONE;
}

/*
 * The MIME type, computed from the first bytes if a rule needs it and what is stored is
 * not enough (none, or MIME_NOT_BINARY where a rule needs the exact type).
 */
static const char *need_mime(struct walk *w, const struct cls_entry *e, struct rules_subject *s)
{
	enum rules_mime need;
	ssize_t n;
	const char *m;

	if (!S_ISREG(e->mode))
		return e->mime;
	need = rules_need_mime(w->c->rules, s);
	if (need == RULES_MIME_NONE ||
	    (e->mime && (need == RULES_MIME_BINARY || strcmp(e->mime, MIME_NOT_BINARY))))
		return e->mime;
	n = w->t->head(w->t->ctx, e->handle, w->c->headbuf, MIME_HEAD);
	if (n < 0)
		return NULL;
	m = mime_of(w->c->mime, w->c->headbuf, (size_t)n, need == RULES_MIME_EXACT);
	if (w->t->mime_computed)
		w->t->mime_computed(w->t->ctx, e->handle, m);
	return m;
}

static bool explaining_this(struct walk *w)
{
	return w->explain && w->path.len == w->target_len &&
	       !memcmp(w->path.data, w->target, w->target_len);
}

/* The top-level category of @cat: its first component. */
static size_t top_len(const char *cat)
{
	return strcspn(cat, "/");
}

/* Counts a regular file placed in @cat (cls_counts), in directory frame @f (NULL: none). */
static void count_file(struct walk *w, struct cframe *f, const char *cat)
{
	size_t tl = top_len(cat);

	if (w->explain)
		return;
	w->c->counts.files++;
	if (tl == strlen("unsorted") && !memcmp(cat, "unsorted", tl))
		w->c->counts.files_unsorted++;
	if (!f)
		return;
	if (!f->any) {
		f->any = true;
		f->top = cat;
		f->top_len = tl;
	} else if (tl != f->top_len || memcmp(cat, f->top, tl)) {
		f->split = true;
	}
}

/* A directory frame is done: counts it (cls_counts). */
static void count_dir(struct walk *w, const struct cframe *f)
{
	if (w->explain || !f->any)
		return;
	w->c->counts.dirs++;
	w->c->counts.dirs_split += f->split;
}

/*
 * Places loose entry @e: entry @i of frame @f (with its own rule, f->own[i], and its
 * folder's decision, f->fold), or with @f NULL an empty directory (by its own rules).
 */
static int place_loose(struct walk *w, const struct cls_entry *e, struct cframe *f, size_t i)
{
	const struct rules *rs = w->c->rules;
	struct rules_subject s;
	struct cls_result r = { 0 };
	FILE *ex = explaining_this(w) ? w->explain : NULL;
	struct rules_explain rx;
	const char *cat, *rule;
	int idx;

	subject_of(w, e, NULL, &s);
	if (ex)
		fprintf(ex, "not inside a unit; rules in order:\n");
	if (f && f->own && !ex) {
		idx = f->own[i];
		if (idx < 0 || rules_render(rs, idx, &s, &w->dest) < 0)
			return -EIO;
	} else {
		s.mime = need_mime(w, e, &s);
		idx = rules_match(rs, &s, &w->dest, rex(w, ex, &rx));
		if (idx < 0)
			return -EIO;	/* the built-in fallback always matches */
	}
	cat = rules_category(rs, idx);
	rule = rules_name(rs, idx);
	if (f && f->fold.rule >= 0) {
		const struct rules_folder_result *fo = &f->fold;
		bool own_to = !rules_folder_to(rs, fo->rule);
		int by = own_to ? fo->main : fo->rule;

		if (rules_alone(rs, idx)) {
			if (ex)
				fprintf(ex, "its folder: %u of %u files are %s (rule %s); rule %s "
					"places this file apart from it (alone)\n", fo->files,
					fo->total, rules_category(rs, fo->main),
					rules_name(rs, fo->rule), rule);
		} else if (own_to && !strcmp(cat, fo->category)) {
			if (ex)
				fprintf(ex, "placed with its folder: %u of %u files are %s (rule "
					"%s)\n", fo->files, fo->total, rules_category(rs, fo->main),
					rules_name(rs, fo->rule));
		} else if (rules_render(rs, by, &s, &w->dest) == 0) {
			if (ex)
				fprintf(ex, "placed with its folder: %u of %u files are %s (rule "
					"%s)\n", fo->files, fo->total, rules_category(rs, fo->main),
					rules_name(rs, fo->rule));
			cat = fo->category;
			rule = rules_name(rs, fo->rule);
		} else {
			/* the folder's template leaves the tree for this file: its own rule */
			subject_of(w, e, NULL, &s);
			if (rules_render(rs, idx, &s, &w->dest) < 0)
				return -EIO;
			if (ex)
				fprintf(ex, "its folder's rule would place it outside the tree: "
					"its own rule decides\n");
		}
	}
	if (ex) {
		fprintf(ex, "result: %.*s (category %s, rule %s)\n", (int)w->dest.len,
			(const char *)w->dest.data, cat, rule);
		found_at(w, &w->dest);
	}
	if (S_ISREG(e->mode))
		count_file(w, f, cat);
	if (!w->emit)
		return 0;
	r.src_path = w->path.data;
	r.src_path_len = w->path.len;
	r.entry = e;
	r.dest = w->dest.data;
	r.dest_len = w->dest.len;
	r.category = cat;
	r.rule = rule;
	return w->emit(w->arg, &r);
}

/*
 * The folder rules for the loose directory of frame @f (w->path and w->rpath hold its
 * paths, @self its entry, NULL for the root): each entry's own rule first (MIME types
 * computed as rules need them and kept in the listing), then the vote of its regular
 * files whose own rule is not 'alone'.
 */
static int folder_decide(struct walk *w, struct cframe *f, const struct cls_entry *self)
{
	const struct rules *rs = w->c->rules;
	size_t nr = rules_count(rs), rb = w->rpath.len;
	uint32_t *per = NULL, total = 0;
	struct rules_subject s;
	FILE *ex = NULL;
	int rc = 0;

	f->fold.rule = f->fold.main = -1;
	f->own = malloc((f->k.n ? f->k.n : 1) * sizeof(*f->own));
	per = calloc(nr ? nr : 1, sizeof(*per));
	if (!f->own || !per) {
		free(per);
		return -ENOMEM;
	}
	for (size_t i = 0; i < f->k.n && rc == 0; i++) {
		struct kid *k = &f->k.v[i];
		int idx;

		f->own[i] = -1;
		if (S_ISDIR(k->e.mode))
			continue;
		w->rpath.len = rb;
		if (rb > w->rstart)
			dfs_buf_put_u8(&w->rpath, '/');
		dfs_buf_append(&w->rpath, k->name, k->len);
		if (w->rpath.err) {
			rc = w->rpath.err;
			break;
		}
		subject_of(w, &k->e, NULL, &s);
		s.mime = need_mime(w, &k->e, &s);
		if (s.mime && s.mime != k->e.mime &&
		    (!k->e.mime || strcmp(s.mime, k->e.mime))) {
			char *m = strdup(s.mime);

			if (!m) {
				rc = -ENOMEM;
				break;
			}
			free(k->mime);
			k->mime = m;
			k->e.mime = m;
			s.mime = m;
		}
		idx = rules_match(rs, &s, &w->dest, NULL);
		if (idx < 0) {
			rc = -EIO;	/* the built-in fallback always matches */
			break;
		}
		f->own[i] = idx;
		if (S_ISREG(k->e.mode) && !rules_alone(rs, idx)) {
			per[idx]++;
			total++;
		}
	}
	w->rpath.len = rb;
	if (rc == 0 && total) {
		const uint8_t *rp = w->rpath.data + w->rstart, *slash;
		size_t rl = rb - w->rstart;

		memset(&s, 0, sizeof(s));
		s.path = rp;
		s.path_len = rl;
		slash = rl ? memrchr(rp, '/', rl) : NULL;
		s.name = slash ? slash + 1 : rp;
		s.name_len = (size_t)(rp + rl - s.name);
		s.mode = S_IFDIR | 0755;
		s.mtime = self ? self->mtime : 0;
		s.source = w->source;
		/* --explain of a file of this directory: why its folder went as it did */
		for (size_t i = 0; w->explain && i < f->k.n && !ex; i++) {
			size_t pl = w->path.len + (w->path.len ? 1 : 0);

			if (!S_ISDIR(f->k.v[i].e.mode) && w->target_len == pl + f->k.v[i].len &&
			    !memcmp(w->target, w->path.data, w->path.len) &&
			    (!w->path.len || w->target[w->path.len] == '/') &&
			    !memcmp(w->target + pl, f->k.v[i].name, f->k.v[i].len))
				ex = w->explain;
		}
		if (ex)
			fprintf(ex, "its folder '%.*s': %u files vote; folder rules in order:\n",
				(int)w->path.len, (const char *)w->path.data, total);
		if (rules_folder(rs, &s, per, total, &f->fold, ex) >= 0 && ex)
			fprintf(ex, "  folder rule %-21s MATCH (%u of %u files are %s)\n",
				rules_name(rs, f->fold.rule), f->fold.files, total,
				rules_category(rs, f->fold.main));
	}
	free(per);
	return rc;
}

struct unit_ctx {
	const char *kind;
	int rule;
	size_t src_len;		/* length of the unit root's source path */
	struct fp_sha *sha;
	bool hash_valid;
	uint8_t hash[32];
};

/* Lists the unit's directory @dir (at @depth below the unit's root) onto @s. */
static int unit_enter(struct walk *w, struct cstack *s, uint64_t dir, size_t depth)
{
	struct cframe *f;

	if (depth > CLS_MAX_DEPTH)
		return -ELOOP;
	f = cstack_push(s);
	if (!f)
		return -ENOMEM;
	f->base = w->path.len;
	return list_kids(w->t, dir, &f->k);
}

/* Pass 1 (emit == false) hashes the unit's tree; pass 2 emits every entry. */
static int unit_walk(struct walk *w, struct unit_ctx *u, uint64_t dir, bool emit)
{
	struct cstack s = { 0 };
	int rc = unit_enter(w, &s, dir, 0);

	while (s.n && rc == 0) {
		struct cframe *f = &s.v[s.n - 1];
		const struct cls_entry *e;

		if (f->next == f->k.n) {
			w->path.len = f->base;
			if (emit)
				count_dir(w, f);
			cstack_pop(&s);
			continue;
		}
		e = &f->k.v[f->next++].e;
		w->path.len = f->base;
		dfs_buf_put_u8(&w->path, '/');
		dfs_buf_append(&w->path, e->name, e->name_len);
		if (w->path.err) {
			rc = w->path.err;
			break;
		}
		if (!emit) {
			uint8_t rec[8 + 8];
			const uint8_t *rel = w->path.data + u->src_len;
			size_t rl = w->path.len - u->src_len;

			for (int j = 0; j < 8; j++) {
				rec[j] = (uint8_t)((uint64_t)e->mode >> (8 * j));
				rec[8 + j] = (uint8_t)(e->size >> (8 * j));
			}
			fp_sha_update(u->sha, &rl, sizeof(rl));
			fp_sha_update(u->sha, rel, rl);
			fp_sha_update(u->sha, rec, sizeof(rec));
			if (S_ISREG(e->mode) || S_ISLNK(e->mode)) {
				if (e->content_id)
					fp_sha_update(u->sha, e->content_id, 32);
				else
					u->hash_valid = false;
			}
		} else {
			struct cls_result r = { 0 };
			size_t rl = w->path.len - u->src_len;

			dfs_buf_clear(&w->dest);
			dfs_buf_append(&w->dest, w->udest.data, w->udest.len);
			dfs_buf_append(&w->dest, w->path.data + u->src_len, rl);
			if (w->dest.err) {
				rc = w->dest.err;
				break;
			}
			if (S_ISREG(e->mode))
				count_file(w, f, rules_category(w->c->rules, u->rule));
			if (explaining_this(w)) {
				fprintf(w->explain, "inside the unit; its place decides: %.*s\n",
					(int)w->dest.len, (const char *)w->dest.data);
				found_at(w, &w->dest);
			}
			if (w->emit) {
				r.src_path = w->path.data;
				r.src_path_len = w->path.len;
				r.entry = e;
				r.dest = w->dest.data;
				r.dest_len = w->dest.len;
				r.category = rules_category(w->c->rules, u->rule);
				r.rule = rules_name(w->c->rules, u->rule);
				r.in_unit = true;
				r.unit_kind = u->kind;
				r.unit_dest = w->udest.data;
				r.unit_dest_len = w->udest.len;
				r.unit_src = w->path.data;
				r.unit_src_len = u->src_len;
				r.unit_hash_valid = u->hash_valid;
				memcpy(r.unit_hash, u->hash, 32);
				r.unit_merges = rules_merges(w->c->rules, u->rule);
				rc = w->emit(w->arg, &r);
			}
		}
		if (rc == 0 && S_ISDIR(e->mode))
			rc = unit_enter(w, &s, e->handle, s.n);
	}
	if (s.n)
		w->path.len = s.v[0].base;
	cstack_release(&s);
	return rc;
}

static int place_unit(struct walk *w, const struct cls_entry *self, const char *kind)
{
	struct unit_ctx u = { .kind = kind, .src_len = w->path.len, .hash_valid = true };
	struct rules_subject s;
	struct cls_result r = { 0 };
	FILE *ex = explaining_this(w) ? w->explain : NULL;
	struct rules_explain rx;
	int rc;

	subject_of(w, self, kind, &s);
	if (w->explain && w->target_len >= w->path.len &&
	    !memcmp(w->target, w->path.data, w->path.len) &&
	    (w->target_len == w->path.len || w->target[w->path.len] == '/')) {
		fprintf(w->explain, "unit: %s at '%.*s'; rules for its root:\n", kind,
			(int)w->path.len, (const char *)w->path.data);
		ex = w->explain;
	}
	u.rule = rules_match(w->c->rules, &s, &w->udest, rex(w, ex, &rx));
	if (u.rule < 0)
		return -EIO;
	rc = fp_sha_new(&u.sha);
	if (rc < 0)
		return rc;
	rc = unit_walk(w, &u, self->handle, false);
	if (rc == 0)
		rc = fp_sha_final(u.sha, (struct fp256 *)u.hash);
	fp_sha_free(u.sha);
	if (rc < 0)
		return rc;
	if (explaining_this(w)) {
		fprintf(w->explain, "result: %.*s (the unit's root)\n", (int)w->udest.len,
			(const char *)w->udest.data);
		found_at(w, &w->udest);
	}
	if (w->emit) {
		r.src_path = w->path.data;
		r.src_path_len = w->path.len;
		r.entry = self;
		r.dest = w->udest.data;
		r.dest_len = w->udest.len;
		r.category = rules_category(w->c->rules, u.rule);
		r.rule = rules_name(w->c->rules, u.rule);
		r.in_unit = true;
		r.unit_kind = kind;
		r.unit_dest = w->udest.data;
		r.unit_dest_len = w->udest.len;
		r.unit_src = w->path.data;
		r.unit_src_len = w->path.len;
		r.unit_hash_valid = u.hash_valid;
		memcpy(r.unit_hash, u.hash, 32);
		r.unit_merges = rules_merges(w->c->rules, u.rule);
		rc = w->emit(w->arg, &r);
	}
	if (rc == 0)
		rc = unit_walk(w, &u, self->handle, true);
	return rc;
}

/*
 * Enters the loose directory @dir at @depth (its own entry @self, NULL for the source
 * root; @parent and @plen the name of the directory it is in): a unit is placed whole, an
 * empty directory placed as it is, anything else pushed onto @s to be walked. w->path
 * holds its path.
 */
static int dir_enter(struct walk *w, struct cstack *s, uint64_t dir, const struct cls_entry *self,
		     const uint8_t *parent, size_t plen, size_t depth)
{
	struct unit_child *uk = NULL;
	const char *kind;
	struct kids k;
	struct cframe *f;
	int rc;

	if (depth > CLS_MAX_DEPTH)
		return -ELOOP;
	rc = list_kids(w->t, dir, &k);
	if (rc < 0) {
		kids_release(&k);
		return rc;
	}
	if (w->t->aligned) {
		const uint8_t *ap;
		size_t al;

		if (w->t->aligned(w->t->ctx, dir, &ap, &al)) {
			/* a copy: what is below it is classified at the copied path */
			if (w->explain && w->target_len >= w->path.len &&
			    !memcmp(w->target, w->path.data, w->path.len))
				fprintf(w->explain, "'%.*s' is a copy of '%.*s' (copy alignment): "
					"classified there\n", (int)w->path.len,
					(const char *)w->path.data, (int)al, (const char *)ap);
			w->rstart = w->rpath.len;
			dfs_buf_append(&w->rpath, ap, al);
			if (w->rpath.err) {
				kids_release(&k);
				return w->rpath.err;
			}
		}
	}
	if (self) {
		uk = calloc(k.n ? k.n : 1, sizeof(*uk));
		if (!uk) {
			kids_release(&k);
			return -ENOMEM;
		}
		for (size_t i = 0; i < k.n; i++) {
			uk[i].name = k.v[i].name;
			uk[i].len = k.v[i].len;
			uk[i].mode = k.v[i].e.mode;
			uk[i].size = k.v[i].e.size;
			uk[i].handle = k.v[i].e.handle;
		}
		kind = unit_detect(w->t, self->name, self->name_len, parent, plen, uk, k.n);
		free(uk);
		if (kind) {
			rc = place_unit(w, self, kind);
			kids_release(&k);
			return rc;
		}
		if (k.n == 0) {	/* an empty directory outside units stays visible */
			rc = place_loose(w, self, NULL, 0);
			kids_release(&k);
			return rc;
		}
	}
	f = cstack_push(s);
	if (!f) {
		kids_release(&k);
		return -ENOMEM;
	}
	f->k = k;
	f->base = w->path.len;
	f->rstart = w->rstart;
	f->rbase = w->rpath.len;
	f->self = self;
	return folder_decide(w, f, self);
}

/* Walks the source tree under @root: loose directories top-down, in name order. */
static int walk_tree(struct walk *w, uint64_t root)
{
	struct cstack s = { 0 };
	int rc = dir_enter(w, &s, root, NULL, NULL, 0, 0);

	while (s.n && rc == 0) {
		struct cframe *f = &s.v[s.n - 1];
		const struct cls_entry *e;

		if (f->next == f->k.n) {
			w->path.len = f->base;
			count_dir(w, f);
			cstack_pop(&s);
			continue;
		}
		e = &f->k.v[f->next++].e;
		w->path.len = f->base;
		if (f->base)
			dfs_buf_put_u8(&w->path, '/');
		dfs_buf_append(&w->path, e->name, e->name_len);
		w->rpath.len = f->rbase;
		w->rstart = f->rstart;
		if (f->rbase > f->rstart)
			dfs_buf_put_u8(&w->rpath, '/');
		dfs_buf_append(&w->rpath, e->name, e->name_len);
		if (w->path.err || w->rpath.err) {
			rc = w->path.err ? w->path.err : w->rpath.err;
			break;
		}
		/* --explain: only the branch that leads to the target */
		if (w->explain && !(w->target_len >= w->path.len &&
				    !memcmp(w->target, w->path.data, w->path.len) &&
				    (w->target_len == w->path.len ||
				     w->target[w->path.len] == '/')))
			continue;
		if (S_ISDIR(e->mode))
			/* the frame's listing stays where it is: @e and its name stay valid */
			rc = dir_enter(w, &s, e->handle, e, f->self ? f->self->name : NULL,
				       f->self ? f->self->name_len : 0, s.n);
		else
			rc = place_loose(w, e, f, f->next - 1);
	}
	if (s.n)
		w->path.len = s.v[0].base;
	cstack_release(&s);
	return rc;
}

/* A path of CLS_MAX_DEPTH + 1 names of 255 bytes, with room for a rule's prefix */
#define WALK_PATH_MAX ((size_t)(CLS_MAX_DEPTH + 2) * 256 + (1u << 20))

static void walk_init(struct walk *w)
{
	dfs_buf_init(&w->path, WALK_PATH_MAX);
	dfs_buf_init(&w->rpath, WALK_PATH_MAX);
	dfs_buf_init(&w->dest, WALK_PATH_MAX);
	dfs_buf_init(&w->udest, WALK_PATH_MAX);
}

static void walk_release(struct walk *w)
{
	dfs_buf_release(&w->path);
	dfs_buf_release(&w->rpath);
	dfs_buf_release(&w->dest);
	dfs_buf_release(&w->udest);
}

int classify_source(struct classify *c, const struct cls_tree *tree, uint64_t root,
		    const char *source_name, cls_emit_fn emit, void *arg)
{
	struct walk w = { .c = c, .t = tree, .source = source_name, .emit = emit, .arg = arg };
	int rc;

	walk_init(&w);
	rc = walk_tree(&w, root);
	walk_release(&w);
	return rc;
}

int classify_explain(struct classify *c, const struct cls_tree *tree, uint64_t root,
		     const char *source_name, const uint8_t *src_path, size_t src_path_len,
		     bool all, FILE *out, struct dfs_buf *result)
{
	struct walk w = { .c = c, .t = tree, .source = source_name, .explain = out,
			  .explain_all = all, .target = src_path, .target_len = src_path_len,
			  .result = result };
	int rc;

	while (w.target_len && w.target[w.target_len - 1] == '/')
		w.target_len--;
	fprintf(out, "source %s, path %.*s\n", source_name, (int)w.target_len,
		(const char *)w.target);
	walk_init(&w);
	rc = walk_tree(&w, root);
	walk_release(&w);
	if (rc == 0 && !w.found)
		rc = -ENOENT;
	return rc;
}

int cls_tally_add(struct cls_tally *t, const char *cat, uint64_t files, uint64_t bytes)
{
	size_t i;

	if (!cat)
		cat = "";
	for (i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, cat))
			break;
	if (i == t->n) {
		struct cls_cat *v = realloc(t->v, (t->n + 1) * sizeof(*v));
		char *name = strdup(cat);

		if (v)
			t->v = v;
		if (!v || !name) {
			free(name);
			return -ENOMEM;
		}
		v[i].name = name;
		v[i].files = 0;
		v[i].bytes = 0;
		t->n++;
	}
	t->v[i].files += files;
	t->v[i].bytes += bytes;
	return 0;
}

void cls_tally_release(struct cls_tally *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
