/*
 * align.c - copy alignment (see align.h).
 *
 * 1. Read: every complete source's view, breadth first from its root, into one array of
 *    directory nodes (a directory's subdirectories are consecutive in it) and one of
 *    files (a directory's files are consecutive too). A file keeps the hash of its name,
 *    a 64-bit digest of its content (the first 8 bytes of the content id; a symlink's
 *    target; a device's number) and whether it is evidence.
 * 2. Sign, bottom up (children come after their parents in the array): each directory's
 *    exact hash (its names, types and contents below it), its count of evidence files
 *    and its MinHash signature over (name, content) of its evidence files.
 * 3. Align, source by source in id order, each top-down with an explicit stack: a
 *    directory with enough evidence looks for candidates among the canonical directories
 *    registered so far (the exact hash, then the LSH bands), verifies the best few on
 *    their (relative path, content) pairs, and aligns to the most similar one above the
 *    threshold. Otherwise it is canonical: registered, and its subdirectories visited.
 *
 * SPDX-License-Identifier: MIT
 */
#include "align.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "store/hset.h"

#define NONE UINT32_MAX
#define BATCH 256
#define VERIFY_MAX 4		/* candidates verified on their pairs, per directory */
#define ESTIMATE_MIN 0.25	/* MinHash estimate below which a candidate is not verified */

struct afile {
	uint64_t nh;		/* name hash */
	uint64_t cv;		/* content digest */
	bool evidence;
};

struct anode {
	uint64_t ino;
	uint64_t nh;		/* name hash (0 for a root) */
	uint64_t exact;
	uint32_t parent;	/* NONE for a root */
	uint32_t child0, nchild;
	uint32_t file0, nfile;
	uint32_t name_off, name_len;	/* in names */
	uint32_t source;
	uint32_t evidence;	/* evidence files at and below it */
	uint32_t mh[ALIGN_K];
	bool canonical;
};

struct lsh_ent {
	uint64_t key;
	uint32_t node;
	uint32_t next;		/* index + 1, 0: end */
};

struct vec {
	void *v;
	size_t n, cap, size;
};

struct org_align {
	struct vec nodes;	/* struct anode */
	struct vec files;	/* struct afile */
	struct vec names;	/* uint8_t: directory names */
	struct vec lsh;		/* struct lsh_ent */
	uint32_t *heads;	/* LSH buckets: entry index + 1 */
	size_t nheads;
	struct u64map exact;	/* exact hash -> node + 1, the first canonical one */
	struct u64map aligned;	/* SRC dir inode -> report index + 1 */
	struct vec reports;	/* struct org_align_report */
	struct vec paths;	/* uint8_t: the reports' paths */
	struct vec pa, pb;	/* scratch: struct pair */
};

struct pair {
	uint64_t p;		/* relative path hash */
	uint64_t c;		/* content digest */
};

static int vec_push(struct vec *v, const void *x)
{
	if (v->n == v->cap) {
		size_t c = v->cap ? v->cap * 2 : 256;
		void *nv = realloc(v->v, c * v->size);

		if (!nv)
			return -ENOMEM;
		v->v = nv;
		v->cap = c;
	}
	memcpy((uint8_t *)v->v + v->n * v->size, x, v->size);
	v->n++;
	return 0;
}

static int vec_append(struct vec *v, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (vec_push(v, (const uint8_t *)p + i) < 0)
			return -ENOMEM;
	return 0;
}

#define NODE(a, i) (((struct anode *)(a)->nodes.v)[i])
#define FILE_(a, i) (((struct afile *)(a)->files.v)[i])

static uint64_t hash_bytes(const void *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return hset_mix64(h);
}

/* Names two unrelated trees often share: not evidence that one copies the other. */
static bool boilerplate(const uint8_t *name, size_t len)
{
	static const char *const pfx[] = { "license", "licence", "copying", "notice",
					   "authors", ".gitignore", ".gitkeep", ".keep" };

	for (size_t i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++) {
		size_t l = strlen(pfx[i]);

		if (len >= l && !strncasecmp((const char *)name, pfx[i], l))
			return true;
	}
	return false;
}

static uint64_t content_digest(const struct store_inode *in)
{
	uint64_t v = 0;

	if (S_ISREG(in->mode)) {
		if (in->has_content)
			memcpy(&v, in->content.b, sizeof(v));
		return v ? v : 1;
	}
	if (S_ISLNK(in->mode))
		return hash_bytes(in->target.p, in->target.len) ^ 2;
	return hset_mix64(in->rdev ^ ((uint64_t)(in->mode & S_IFMT) << 40)) ^ 3;
}

/* The files named in @inos[0..n) (names already hashed in @nh) become @dir's files. */
static int add_files(struct org_align *a, struct store *st, const uint64_t *inos,
		     const uint64_t *nh, const bool *ev_name, size_t n)
{
	struct store_inode in[BATCH];
	int rcs[BATCH], rc = 0;

	store_get_inodes(st, inos, n, in, rcs);
	for (size_t i = 0; i < n; i++) {
		struct afile f = { .nh = nh[i] };

		if (rc == 0 && rcs[i] < 0)
			rc = rcs[i] == -ENOENT ? -EBADMSG : rcs[i];
		if (rc == 0) {
			f.cv = content_digest(&in[i]);
			f.evidence = S_ISREG(in[i].mode) && in[i].size > 0 && ev_name[i];
			rc = vec_push(&a->files, &f);
		}
		store_inode_release(&in[i]);
	}
	return rc;
}

/* Reads the directory node @k: its files, and its subdirectories as new nodes. */
static int read_dir(struct org_align *a, struct store *st, uint32_t k)
{
	struct store_dir_iter *it;
	uint64_t inos[BATCH], nh[BATCH];
	bool ev[BATCH];
	const uint8_t *name;
	size_t len, nb = 0;
	uint64_t child;
	uint8_t type;
	int rc;

	NODE(a, k).file0 = (uint32_t)a->files.n;
	NODE(a, k).child0 = (uint32_t)a->nodes.n;
	rc = store_dir_open(st, NODE(a, k).ino, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(it, &name, &len, &child, &type)) == 1) {
		if (type == DT_DIR) {
			struct anode d = { .ino = child, .nh = hash_bytes(name, len),
					   .parent = k, .source = NODE(a, k).source,
					   .name_off = (uint32_t)a->names.n,
					   .name_len = (uint32_t)len };

			rc = vec_append(&a->names, name, len);
			if (rc == 0)
				rc = vec_push(&a->nodes, &d);	/* may move the array */
			if (rc < 0)
				break;
			NODE(a, k).nchild++;
			continue;
		}
		inos[nb] = child;
		nh[nb] = hash_bytes(name, len);
		ev[nb] = !boilerplate(name, len);
		if (++nb == BATCH) {
			rc = add_files(a, st, inos, nh, ev, nb);
			nb = 0;
			if (rc < 0)
				break;
		}
	}
	store_dir_close(it);
	if (rc == 0 && nb)
		rc = add_files(a, st, inos, nh, ev, nb);
	NODE(a, k).nfile = (uint32_t)(a->files.n - NODE(a, k).file0);
	return rc;
}

static uint32_t mh_of(uint64_t item, unsigned i)
{
	return (uint32_t)(hset_mix64(item ^ (0x9e3779b97f4a7c15ull * (i + 1))) >> 32);
}

/* Step 2 for the nodes [first, a->nodes.n): own files first, then bottom up. */
static void sign(struct org_align *a, uint32_t first)
{
	for (uint32_t k = first; k < a->nodes.n; k++) {
		struct anode *d = &NODE(a, k);
		uint64_t e = 0;

		for (unsigned i = 0; i < ALIGN_K; i++)
			d->mh[i] = UINT32_MAX;
		for (uint32_t j = d->file0; j < d->file0 + d->nfile; j++) {
			const struct afile *f = &FILE_(a, j);
			uint64_t item = hset_mix64(f->nh * 31 ^ f->cv);

			e += item;
			if (!f->evidence)
				continue;
			d->evidence++;
			for (unsigned i = 0; i < ALIGN_K; i++) {
				uint32_t m = mh_of(item, i);

				if (m < d->mh[i])
					d->mh[i] = m;
			}
		}
		d->exact = e + d->nfile;
	}
	for (uint32_t k = (uint32_t)a->nodes.n; k-- > first;) {
		struct anode *d = &NODE(a, k);
		struct anode *p;

		d->exact = hset_mix64(d->exact ^ 0x5bd1e995ull * (d->nchild + 1)) | 1;	/* non-zero */
		if (d->parent == NONE)
			continue;
		p = &NODE(a, d->parent);
		p->exact += hset_mix64(d->nh * 37 ^ d->exact) + 1;
		p->evidence += d->evidence;
		for (unsigned i = 0; i < ALIGN_K; i++)
			if (d->mh[i] < p->mh[i])
				p->mh[i] = d->mh[i];
	}
}

struct read_ctx {
	struct org_align *a;
	struct store *st;
	int rc;
};

static int read_source(void *arg, const struct store_source *s)
{
	struct read_ctx *x = arg;
	struct org_align *a = x->a;
	struct anode root = { .ino = s->root_ino, .parent = NONE, .source = s->id };
	uint32_t first = (uint32_t)a->nodes.n;

	if (!s->root_ino || !s->last_ingest)
		return 0;	/* not complete: not placed either */
	x->rc = vec_push(&a->nodes, &root);
	/* breadth first: the array is the queue */
	for (uint32_t k = first; x->rc == 0 && k < a->nodes.n; k++) {
		if (a->nodes.n >= NONE - 1) {
			x->rc = -EOVERFLOW;
			break;
		}
		x->rc = read_dir(a, x->st, k);
	}
	if (x->rc == 0)
		sign(a, first);
	return x->rc;
}

/* ---- candidates ---------------------------------------------------------------------- */

static uint64_t band_key(const struct anode *d, unsigned b)
{
	uint64_t k = (uint64_t)b << 56;

	for (unsigned r = 0; r < ALIGN_ROWS; r++)
		k = hset_mix64(k ^ d->mh[b * ALIGN_ROWS + r] ^ (uint64_t)r << 40);
	return k;
}

static int lsh_insert(struct org_align *a, uint32_t node)
{
	for (unsigned b = 0; b < ALIGN_BANDS; b++) {
		struct lsh_ent e = { .key = band_key(&NODE(a, node), b), .node = node };
		size_t h = (size_t)(e.key & (a->nheads - 1));

		e.next = a->heads[h];
		if (vec_push(&a->lsh, &e) < 0)
			return -ENOMEM;
		a->heads[h] = (uint32_t)a->lsh.n;
	}
	return 0;
}

static int pair_cmp(const void *x, const void *y)
{
	const struct pair *p = x, *q = y;

	if (p->p != q->p)
		return p->p < q->p ? -1 : 1;
	return p->c < q->c ? -1 : p->c > q->c;
}

/* The (relative path, content) pairs of the evidence files below @top, sorted. */
static int pairs_of(struct org_align *a, uint32_t top, struct vec *out)
{
	struct { uint32_t node; uint64_t rh; } *stack;
	size_t n = 0, cap = 64;
	int rc = 0;

	out->n = 0;
	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[n].node = top;
	stack[n++].rh = 0;
	while (n && rc == 0) {
		uint32_t k = stack[--n].node;
		uint64_t rh = stack[n].rh;
		const struct anode *d = &NODE(a, k);

		for (uint32_t j = d->file0; j < d->file0 + d->nfile && rc == 0; j++) {
			const struct afile *f = &FILE_(a, j);
			struct pair p = { hset_mix64(rh * 31 ^ f->nh), f->cv };

			if (f->evidence)
				rc = vec_push(out, &p);
		}
		for (uint32_t c = d->child0; c < d->child0 + d->nchild && rc == 0; c++) {
			if (n == cap) {
				void *ns = realloc(stack, cap * 2 * sizeof(*stack));

				if (!ns) {
					rc = -ENOMEM;
					break;
				}
				stack = ns;
				cap *= 2;
			}
			stack[n].node = c;
			stack[n++].rh = hset_mix64(rh * 31 ^ NODE(a, c).nh);
		}
	}
	free(stack);
	if (rc == 0 && out->n)
		qsort(out->v, out->n, sizeof(struct pair), pair_cmp);
	return rc;
}

/* Compares the pairs of @d and @c: *sim and the counts of r (only_* as seen from @d). */
static int verify(struct org_align *a, uint32_t d, uint32_t c, struct org_align_report *r)
{
	const struct pair *x, *y;
	size_t i = 0, j = 0;
	int rc = pairs_of(a, d, &a->pa);

	if (rc == 0)
		rc = pairs_of(a, c, &a->pb);
	if (rc < 0)
		return rc;
	x = a->pa.v;
	y = a->pb.v;
	r->identical = r->changed = r->only_here = r->only_there = 0;
	while (i < a->pa.n || j < a->pb.n) {
		if (j == a->pb.n || (i < a->pa.n && x[i].p < y[j].p)) {
			r->only_here++;
			i++;
		} else if (i == a->pa.n || y[j].p < x[i].p) {
			r->only_there++;
			j++;
		} else {
			/* one path in both: identical, or changed (several contents at one
			 * path cannot happen in one directory tree) */
			if (x[i].c == y[j].c)
				r->identical++;
			else
				r->changed++;
			i++;
			j++;
		}
	}
	{
		uint64_t uni = a->pa.n + a->pb.n - r->identical;

		r->similarity = uni ? (double)r->identical / (double)uni : 0;
	}
	return 0;
}

static bool is_ancestor(const struct org_align *a, uint32_t c, uint32_t d)
{
	for (uint32_t k = NODE(a, d).parent; k != NONE; k = NODE(a, k).parent)
		if (k == c)
			return true;
	return false;
}

/* Appends the source-relative path of node @k to a->paths. */
static int put_path(struct org_align *a, uint32_t k, size_t *off, size_t *len)
{
	size_t depth = 0, start = a->paths.n;
	uint32_t *chain = NULL;
	int rc = 0;

	for (uint32_t j = k; NODE(a, j).parent != NONE; j = NODE(a, j).parent)
		depth++;
	if (depth && !(chain = malloc(depth * sizeof(*chain))))
		return -ENOMEM;
	for (uint32_t j = k, i = 0; NODE(a, j).parent != NONE; j = NODE(a, j).parent)
		chain[depth - 1 - i++] = j;
	for (size_t i = 0; i < depth && rc == 0; i++) {
		const struct anode *d = &NODE(a, chain[i]);

		if (i)
			rc = vec_push(&a->paths, "/");
		if (rc == 0)
			rc = vec_append(&a->paths, (const uint8_t *)a->names.v + d->name_off,
					d->name_len);
	}
	free(chain);
	*off = start;
	*len = a->paths.n - start;
	return rc;
}

/* Looks for the directory @d copies; *best NONE if none. */
static int match(struct org_align *a, uint32_t d, uint32_t *best,
		 struct org_align_report *br)
{
	uint32_t cand[ALIGN_BANDS * 8 + 1];
	double est[ALIGN_BANDS * 8 + 1];
	size_t nc = 0;
	uint64_t v;

	*best = NONE;
	if (u64map_get(&a->exact, NODE(a, d).exact, &v))
		cand[nc++] = (uint32_t)(v - 1);
	for (unsigned b = 0; b < ALIGN_BANDS; b++) {
		uint64_t key = band_key(&NODE(a, d), b);
		unsigned seen = 0;

		for (uint32_t e = a->heads[key & (a->nheads - 1)]; e && seen < 8; ) {
			const struct lsh_ent *le = &((struct lsh_ent *)a->lsh.v)[e - 1];
			bool dup = false;

			e = le->next;
			if (le->key != key)
				continue;
			seen++;
			for (size_t i = 0; i < nc; i++)
				dup |= cand[i] == le->node;
			if (!dup && nc < sizeof(cand) / sizeof(cand[0]))
				cand[nc++] = le->node;
		}
	}
	for (size_t i = 0; i < nc; i++) {
		unsigned same = 0;

		for (unsigned k = 0; k < ALIGN_K; k++)
			same += NODE(a, d).mh[k] == NODE(a, cand[i]).mh[k];
		est[i] = (double)same / ALIGN_K;
	}
	/* the best estimates first (insertion sort: a few dozen at most) */
	for (size_t i = 1; i < nc; i++) {
		for (size_t j = i; j > 0 && est[j] > est[j - 1]; j--) {
			double t = est[j];
			uint32_t u = cand[j];

			est[j] = est[j - 1];
			cand[j] = cand[j - 1];
			est[j - 1] = t;
			cand[j - 1] = u;
		}
	}
	for (size_t i = 0; i < nc && i < VERIFY_MAX; i++) {
		struct org_align_report r = { 0 };
		int rc;

		if (est[i] < ESTIMATE_MIN)
			break;
		if (is_ancestor(a, cand[i], d))
			continue;
		rc = verify(a, d, cand[i], &r);
		if (rc < 0)
			return rc;
		if (r.similarity >= (NODE(a, cand[i]).source == NODE(a, d).source
					     ? ALIGN_THRESHOLD_SAME : ALIGN_THRESHOLD) &&
		    r.identical >= ALIGN_MIN_SHARED &&
		    (*best == NONE || r.similarity > br->similarity)) {
			*best = cand[i];
			*br = r;
		}
	}
	return 0;
}

static int align_source(struct org_align *a, uint32_t root)
{
	uint32_t *stack;
	size_t n = 0, cap = 64;
	int rc = 0;

	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	stack[n++] = root;
	while (n && rc == 0) {
		uint32_t k = stack[--n], best;
		struct org_align_report r = { 0 };
		struct anode *d = &NODE(a, k);

		if (d->evidence < ALIGN_MIN_SHARED)
			continue;	/* nothing below it can align: canonical, unregistered */
		rc = match(a, k, &best, &r);
		if (rc == 0 && best != NONE) {
			size_t po, pl, to, tl;

			r.source = NODE(a, k).source;
			r.target_source = NODE(a, best).source;
			rc = put_path(a, k, &po, &pl);
			if (rc == 0)
				rc = put_path(a, best, &to, &tl);
			/* offsets now: pointers once every path is written */
			r.path = (const uint8_t *)(uintptr_t)po;
			r.path_len = pl;
			r.target = (const uint8_t *)(uintptr_t)to;
			r.target_len = tl;
			if (rc == 0)
				rc = vec_push(&a->reports, &r);
			if (rc == 0)
				rc = u64map_put(&a->aligned, NODE(a, k).ino, a->reports.n);
			continue;
		}
		if (rc < 0)
			break;
		d->canonical = true;
		if (!u64map_get(&a->exact, d->exact, &(uint64_t){ 0 }))
			rc = u64map_put(&a->exact, d->exact, (uint64_t)k + 1);
		if (rc == 0)
			rc = lsh_insert(a, k);
		/* the children, the first on top */
		for (uint32_t c = d->child0 + d->nchild; rc == 0 && c-- > d->child0;) {
			if (n == cap) {
				uint32_t *ns = realloc(stack, cap * 2 * sizeof(*stack));

				if (!ns) {
					rc = -ENOMEM;
					break;
				}
				stack = ns;
				cap *= 2;
			}
			stack[n++] = c;
		}
	}
	free(stack);
	return rc;
}

int org_align_compute(struct store *st, struct org_align **out)
{
	struct org_align *a = calloc(1, sizeof(*a));
	struct read_ctx x = { .st = st };
	int rc;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->nodes.size = sizeof(struct anode);
	a->files.size = sizeof(struct afile);
	a->names.size = a->paths.size = 1;
	a->lsh.size = sizeof(struct lsh_ent);
	a->reports.size = sizeof(struct org_align_report);
	a->pa.size = a->pb.size = sizeof(struct pair);
	x.a = a;
	rc = store_each_source(st, read_source, &x);
	if (rc == 0)
		rc = x.rc;
	if (rc == 0) {
		a->nheads = 1024;
		while (a->nheads < a->nodes.n * 2)
			a->nheads *= 2;
		a->heads = calloc(a->nheads, sizeof(*a->heads));
		if (!a->heads)
			rc = -ENOMEM;
	}
	/* sources in id order: their roots, in the order they were read */
	for (uint32_t k = 0; rc == 0 && k < a->nodes.n; k++)
		if (NODE(a, k).parent == NONE)
			rc = align_source(a, k);
	if (rc == 0) {
		struct org_align_report *r = a->reports.v;

		for (size_t i = 0; i < a->reports.n; i++) {
			r[i].path = (const uint8_t *)a->paths.v + (uintptr_t)r[i].path;
			r[i].target = (const uint8_t *)a->paths.v + (uintptr_t)r[i].target;
		}
	}
	free(a->pa.v);
	free(a->pb.v);
	a->pa.v = a->pb.v = NULL;
	if (rc < 0) {
		org_align_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void org_align_free(struct org_align *a)
{
	if (!a)
		return;
	free(a->nodes.v);
	free(a->files.v);
	free(a->names.v);
	free(a->lsh.v);
	free(a->heads);
	free(a->reports.v);
	free(a->paths.v);
	free(a->pa.v);
	free(a->pb.v);
	u64map_release(&a->exact);
	u64map_release(&a->aligned);
	free(a);
}

bool org_align_path(const struct org_align *a, uint64_t dir, const uint8_t **path,
		    size_t *len)
{
	const struct org_align_report *r;
	uint64_t v;

	if (!a || !u64map_get(&a->aligned, dir, &v))
		return false;
	r = &((const struct org_align_report *)a->reports.v)[v - 1];
	*path = r->target;
	*len = r->target_len;
	return true;
}

size_t org_align_count(const struct org_align *a)
{
	return a ? a->reports.n : 0;
}

const struct org_align_report *org_align_get(const struct org_align *a, size_t i)
{
	return &((const struct org_align_report *)a->reports.v)[i];
}
