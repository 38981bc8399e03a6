/*
 * align.c - copy alignment (see align.h).
 *
 * 1. Read each source's header (below), in id order; a source whose stored alignments
 *    were computed from the same views as now (its own and every earlier source's) is
 *    replayed: its alignments are pushed as stored ('R' records hold the paths), and
 *    none of its directories is loaded.
 * 2. Any other source is computed: its directory nodes go into one array, breadth first
 *    from its root (a directory's subdirectories are consecutive in it), from its
 *    signature records ('D', one sequential read, no file) when they are of its view now,
 *    else from its view (its files into a second array, a directory's consecutive; a file
 *    keeps the hash of its name, a 64-bit digest of its content (the first 8 bytes of the
 *    content id; a symlink's target; a device's number) and whether it is evidence), then
 *    signed bottom up: each directory's exact hash (its names, types and contents below
 *    it), its count of evidence files and its MinHash signature over (name, content) of
 *    its evidence files.
 * 3. A computed source is aligned top-down with an explicit stack: a directory with
 *    enough evidence takes its candidates among the canonical directories registered so
 *    far (the first registered with its exact hash, then per LSH band the first
 *    CAND_PER_BAND registered with its key; "first" in the order of registration: sources
 *    in id order, each in its walk's order), verifies the best few on their (relative
 *    path, content) pairs, and aligns to the most similar one above the threshold.
 *    Otherwise it is canonical: registered (its sequence in its source), and its
 *    subdirectories visited. The directories registered in this build are in memory; the
 *    replayed sources' are found through their postings (below): a lookup by key, each
 *    posting checked against what it names, whose source's nodes are loaded on first use
 *    (and its registrations replayed from its stored alignments, canon_walk). So a full
 *    build and an append build take the same candidates, and an append build loads only
 *    the sources its new directories' candidates are in. Verification reads the files of
 *    a loaded directory from the index when it first needs them.
 * 4. Write (the build's transaction, not in dry runs) the records of every computed
 *    source, and the 'D' records of a replayed one whose view had to be read.
 *
 * The records (derived, store.h "derived records"; docs/ARCHITECTURE.md), engine keys
 * "align/" | be32 source | kind | be32 i, values little-endian, version byte first:
 *   'D' i   directory i of the source (breadth-first order): v2 ino varint, parent
 *           varint (its index + 1, 0 for the root), exact u64, evidence varint, ALIGN_K
 *           MinHash u32, name (varint length, bytes; its hash is computed again)
 *   'H' 0   the source's header: v2 view tag u64 (the view the 'D' records are of),
 *           result tag u64 (the views the 'R' records are of), dirs u32, reports u32,
 *           digest of the 'D' values u64, digest of the 'R' values (seeded with dirs) u64
 *   'R' i   alignment i of the source, in the order decided: v2 node u32, target source
 *           u32, target node u32, similarity (double bits) u64, identical, changed,
 *           only here, only there u64, the node's ino varint, its path and the target's
 *           (varint length, bytes each)
 * A record that is absent, of another version, undecodable, or whose header does not
 * match (tags, counts, digests) is never used: its source's view is read again ('D',
 * 'H') or its alignments computed again ('R'), and its records rewritten.
 *
 * Postings: "ap" | u8 version | kind | hash48 | source | seq, no value: the canonical
 * directory of sequence seq of a computed source has that exact hash (kind 'X') or LSH
 * band key (kind '0' + b) whose first 48 bits (big-endian) are hash48; source and seq in
 * an order-keeping varint (a byte below 0xf0 is the value; 0xf0 + n is followed by the
 * value in n big-endian bytes, n = 1..4, the fewest that hold it, and only values from
 * 0xf0 up), so that the keys of one hash sort as the directories were registered. The
 * 48 bits find; the check (match_post) compares all 64. Version 3: 20-byte keys before
 * (be64 hash, be32 source and seq), which on disk took 12% of a worst-case index. Written with the source's records; when they are
 * rewritten, the postings their previous records imply and the new ones do not are
 * removed first, and the new ones they do not imply put (old_posts, write_posts). A
 * posting is only a pointer: a lookup uses it when it names a source replayed before the
 * one aligned whose registered directory of that sequence has that hash, and skips any
 * other (stale, another version's, damaged): what is used is exactly what a full build
 * registers. A posting lost to damage of the index itself (not a cut build: a source's
 * header is removed before and put after its postings) is not noticed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "align.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "store/buf.h"
#include "store/hset.h"

#define NONE UINT32_MAX
#define BATCH 256
#define VERIFY_MAX 4		/* candidates verified on their pairs, per directory */
#define ESTIMATE_MIN 0.25	/* MinHash estimate below which a candidate is not verified */
/*
 * The records' version: bump it with any change to how signatures or alignments are
 * computed that the parameters algo_tag() hashes do not show (the boilerplate names, the
 * hashes): the stored ones are then recomputed, never replayed.
 */
#define REC_VERSION 3
#define KEY_LEN 15
/* postings (align.c "postings"): "ap" | version | kind | hash48 | source | seq */
#define POST_MAX ORG_ALIGN_POST_MAX
#define POST_PFX_LEN ORG_ALIGN_POST_PFX	/* up to the hash: the prefix a lookup walks */
#define POST_SLOT (1 + POST_MAX)	/* a posting in memory: its length, its key */
#define CAND_PER_BAND 8		/* candidates per band: the first registered */

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
	uint32_t seq1;		/* its registration's sequence in its source + 1, 0: none */
	bool files_loaded;	/* file0, nfile valid */
};

/* One alignment as stored: nodes as indices in their own source. */
struct sreport {
	uint32_t node, target_source, target_node;
	double similarity;
	uint64_t identical, changed, only_here, only_there;
	uint64_t ino;		/* the aligned directory's inode */
	uint32_t path_off, path_len, target_off, target_len;	/* in a->paths */
};

struct vec {
	void *v;
	size_t n, cap, size;
};

struct asrc {
	uint32_t id;
	uint64_t root_ino;
	uint32_t root;		/* its root's node index */
	uint32_t ndirs;
	uint64_t view_tag;	/* of its view now */
	uint64_t result_tag;	/* of its view and every earlier source's */
	size_t report0, nreports;	/* its alignments in a->reports */
	uint64_t ddigest;	/* of its 'D' records, when loaded */
	uint64_t rdigest;	/* of its 'R' records, as its header has it */
	bool hdr_ok;		/* its header decodes and is of its view now: ndirs from it */
	bool loaded;		/* its nodes are in a->nodes, from s->root */
	bool sigs_stored;	/* its 'D' records are current: its nodes came from them */
	bool results_stored;	/* its 'R' records are current */
	bool computed;		/* its alignments computed in this build (else replayed) */
	struct sreport *sreps;	/* the stored alignments (results_stored) */
	size_t nsreps;
	struct vec canon;	/* uint32_t: its registered (canonical) nodes, by sequence */
	bool live;		/* a live tree's (org_align_live): nodes from its entries */
};

struct lsh_ent {
	uint64_t key;
	uint32_t node;
	uint32_t next;		/* index + 1, 0: end */
};

struct org_align {
	struct store *st;	/* during org_align_compute */
	size_t cur;		/* the source being aligned (its index in srcs) */
	size_t nreplayed;	/* sources replayed so far: postings to look up */
	struct vec srcs;	/* struct asrc, in id order */
	struct vec rnodes;	/* uint32_t[2] per report: its node and target node */
	struct org_align_counts counts;
	struct vec nodes;	/* struct anode */
	struct vec files;	/* struct afile */
	struct vec names;	/* uint8_t: directory names */
	struct vec lsh;		/* struct lsh_ent */
	uint32_t *heads;	/* LSH buckets: entry index + 1 */
	size_t nheads;
	struct u64map exact;	/* exact hash -> node + 1, the first canonical one */
	struct u64map aligned;	/* SRC dir inode -> report index + 1 */
	struct u64map replay;	/* node + 1 -> stored alignment + 1, of the source replayed */
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
	if (!n)
		return 0;
	if (v->n + n > v->cap) {
		size_t c = v->cap ? v->cap : 256;
		void *nv;

		while (c < v->n + n)
			c *= 2;
		nv = realloc(v->v, c * v->size);
		if (!nv)
			return -ENOMEM;
		v->v = nv;
		v->cap = c;
	}
	memcpy((uint8_t *)v->v + v->n * v->size, p, n * v->size);
	v->n += n;
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

/*
 * Reads the directory node @k's files, and with @subdirs its subdirectories as new nodes
 * (its view is being read); without, only its files (its signature was loaded, and
 * verification needs them).
 */
static int read_dir(struct org_align *a, uint32_t k, bool subdirs)
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
	if (subdirs)
		NODE(a, k).child0 = (uint32_t)a->nodes.n;
	rc = store_dir_open(a->st, NODE(a, k).ino, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(it, &name, &len, &child, &type)) == 1) {
		if (type == DT_DIR) {
			struct anode d = { .ino = child, .nh = hash_bytes(name, len),
					   .parent = k, .source = NODE(a, k).source,
					   .name_off = (uint32_t)a->names.n,
					   .name_len = (uint32_t)len };

			if (!subdirs)
				continue;
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
			rc = add_files(a, a->st, inos, nh, ev, nb);
			nb = 0;
			if (rc < 0)
				break;
		}
	}
	store_dir_close(it);
	if (rc == 0 && nb)
		rc = add_files(a, a->st, inos, nh, ev, nb);
	NODE(a, k).nfile = (uint32_t)(a->files.n - NODE(a, k).file0);
	NODE(a, k).files_loaded = rc == 0;
	if (subdirs)
		a->counts.dirs_read++;
	else
		a->counts.dirs_listed++;
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

/* A source's view, read breadth first from its root: its nodes and their files, signed. */
static int read_view(struct org_align *a, struct asrc *s)
{
	struct anode root = { .ino = s->root_ino, .parent = NONE, .source = s->id };
	uint32_t first = (uint32_t)a->nodes.n;
	int rc = vec_push(&a->nodes, &root);

	/* breadth first: the array is the queue */
	for (uint32_t k = first; rc == 0 && k < a->nodes.n; k++) {
		if (a->nodes.n >= NONE - 1)
			return -EOVERFLOW;
		rc = read_dir(a, k, true);
	}
	if (rc == 0)
		sign(a, first);
	s->ndirs = (uint32_t)(a->nodes.n - first);
	return rc;
}

/* ---- records ------------------------------------------------------------------------- */

size_t org_align_key(uint32_t source, uint8_t kind, uint32_t i, uint8_t *out)
{
	memcpy(out, "align/", 6);
	dfs_put_be32(out + 6, source);
	out[10] = kind;
	dfs_put_be32(out + 11, i);
	return KEY_LEN;
}

static uint64_t digest_step(uint64_t d, const uint8_t *v, size_t n)
{
	return hset_mix64(d * 31 ^ hash_bytes(v, n));
}

struct hdr {
	uint64_t view_tag, result_tag;
	uint32_t ndirs, nreports;
	uint64_t ddigest, rdigest;
};

static void enc_hdr(const struct hdr *h, struct dfs_buf *b)
{
	dfs_buf_clear(b);
	dfs_buf_put_u8(b, REC_VERSION);
	dfs_buf_put_u64(b, h->view_tag);
	dfs_buf_put_u64(b, h->result_tag);
	dfs_buf_put_u32(b, h->ndirs);
	dfs_buf_put_u32(b, h->nreports);
	dfs_buf_put_u64(b, h->ddigest);
	dfs_buf_put_u64(b, h->rdigest);
}

static bool dec_hdr(const uint8_t *v, size_t n, struct hdr *h)
{
	struct dfs_rd r;

	dfs_rd_init(&r, v, n);
	if (dfs_rd_u8(&r) != REC_VERSION)
		return false;
	h->view_tag = dfs_rd_u64(&r);
	h->result_tag = dfs_rd_u64(&r);
	h->ndirs = dfs_rd_u32(&r);
	h->nreports = dfs_rd_u32(&r);
	h->ddigest = dfs_rd_u64(&r);
	h->rdigest = dfs_rd_u64(&r);
	return !r.err && !r.left && h->ndirs >= 1;
}

/* Node @k's 'D' value (@root: its source's root node). */
static void enc_dir(const struct org_align *a, uint32_t k, uint32_t root, struct dfs_buf *b)
{
	const struct anode *d = &NODE(a, k);

	dfs_buf_clear(b);
	dfs_buf_put_u8(b, REC_VERSION);
	dfs_buf_put_varint(b, d->ino);
	dfs_buf_put_varint(b, d->parent == NONE ? 0 : (uint64_t)(d->parent - root) + 1);
	dfs_buf_put_u64(b, d->exact);
	dfs_buf_put_varint(b, d->evidence);
	for (unsigned i = 0; i < ALIGN_K; i++)
		dfs_buf_put_u32(b, d->mh[i]);
	dfs_buf_put_bytes(b, (const uint8_t *)a->names.v + d->name_off, d->name_len);
}

static void enc_rep(const struct org_align *a, const struct sreport *r, struct dfs_buf *b)
{
	uint64_t sim;

	memcpy(&sim, &r->similarity, sizeof(sim));
	dfs_buf_clear(b);
	dfs_buf_put_u8(b, REC_VERSION);
	dfs_buf_put_u32(b, r->node);
	dfs_buf_put_u32(b, r->target_source);
	dfs_buf_put_u32(b, r->target_node);
	dfs_buf_put_u64(b, sim);
	dfs_buf_put_u64(b, r->identical);
	dfs_buf_put_u64(b, r->changed);
	dfs_buf_put_u64(b, r->only_here);
	dfs_buf_put_u64(b, r->only_there);
	dfs_buf_put_varint(b, r->ino);
	dfs_buf_put_bytes(b, (const uint8_t *)a->paths.v + r->path_off, r->path_len);
	dfs_buf_put_bytes(b, (const uint8_t *)a->paths.v + r->target_off, r->target_len);
}

struct load_ctx {
	struct org_align *a;
	struct asrc *s;
	uint32_t next;		/* the index the next record must have */
	uint32_t count;		/* records expected */
	uint64_t digest;
	bool bad;		/* a record not as written: the set is not used */
};

/* Record @x->next, of the version known? Marks @x bad until the caller is done. */
static bool rec_open(struct load_ctx *x, const uint8_t *k, size_t kl, const uint8_t *v,
		     size_t vl, struct dfs_rd *r)
{
	x->bad = true;
	if (kl != KEY_LEN || dfs_get_be32(k + 11) != x->next || x->next >= x->count)
		return false;
	dfs_rd_init(r, v, vl);
	return dfs_rd_u8(r) == REC_VERSION;
}

/* store_each_cache over a source's 'D' records: each one a node, checked. */
static int load_dir(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct load_ctx *x = arg;
	struct org_align *a = x->a;
	struct anode d = { .source = x->s->id };
	const uint8_t *name;
	uint32_t self = (uint32_t)a->nodes.n;
	uint64_t parent, evidence;
	struct dfs_rd r;
	size_t nl;

	if (!rec_open(x, k, kl, v, vl, &r))
		return 1;
	d.ino = dfs_rd_varint(&r);
	parent = dfs_rd_varint(&r);
	d.exact = dfs_rd_u64(&r);
	evidence = dfs_rd_varint(&r);
	for (unsigned i = 0; i < ALIGN_K; i++)
		d.mh[i] = dfs_rd_u32(&r);
	name = dfs_rd_bytes(&r, &nl);
	if (r.err || r.left || !name || self >= NONE - 1 || evidence > UINT32_MAX)
		return 1;
	/* the parent's index + 1, 0 for the root (which alone comes first) */
	if (x->next == 0 ? parent != 0 || (x->s->root_ino && d.ino != x->s->root_ino)
			 : !parent || parent > x->next)
		return 1;
	d.evidence = (uint32_t)evidence;
	if (parent--) {
		/* breadth first: a directory's subdirectories are consecutive */
		struct anode *p = &NODE(a, x->s->root + parent);

		if (p->nchild == 0)
			p->child0 = self;
		else if (p->child0 + p->nchild != self)
			return 1;
		p->nchild++;
		d.parent = (uint32_t)(x->s->root + parent);
		d.nh = hash_bytes(name, nl);	/* as read_dir has it (a root's is 0) */
	} else {
		d.parent = NONE;
	}
	d.name_off = (uint32_t)a->names.n;
	d.name_len = (uint32_t)nl;
	if (vec_append(&a->names, name, nl) < 0 || vec_push(&a->nodes, &d) < 0)
		return -ENOMEM;
	x->digest = digest_step(x->digest, v, vl);
	x->next++;
	x->bad = false;
	return 0;
}

/* store_each_cache over a source's 'R' records. */
static int load_rep(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct load_ctx *x = arg;
	struct sreport *sr;
	const uint8_t *path, *target;
	size_t pl, tl;
	uint64_t sim;
	struct dfs_rd r;

	if (!rec_open(x, k, kl, v, vl, &r))
		return 1;
	sr = &x->s->sreps[x->next];
	sr->node = dfs_rd_u32(&r);
	sr->target_source = dfs_rd_u32(&r);
	sr->target_node = dfs_rd_u32(&r);
	sim = dfs_rd_u64(&r);
	memcpy(&sr->similarity, &sim, sizeof(sim));
	sr->identical = dfs_rd_u64(&r);
	sr->changed = dfs_rd_u64(&r);
	sr->only_here = dfs_rd_u64(&r);
	sr->only_there = dfs_rd_u64(&r);
	sr->ino = dfs_rd_varint(&r);
	path = dfs_rd_bytes(&r, &pl);
	target = dfs_rd_bytes(&r, &tl);
	if (r.err || r.left || !path || !target || pl > UINT32_MAX || tl > UINT32_MAX)
		return 1;
	sr->path_off = (uint32_t)x->a->paths.n;
	sr->path_len = (uint32_t)pl;
	sr->target_off = (uint32_t)(x->a->paths.n + pl);
	sr->target_len = (uint32_t)tl;
	if (vec_append(&x->a->paths, path, pl) < 0 || vec_append(&x->a->paths, target, tl) < 0)
		return -ENOMEM;
	x->digest = digest_step(x->digest, v, vl);
	x->next++;
	x->bad = false;
	return 0;
}

/*
 * Source @s's header, and its stored alignments when they are of the views now
 * (s->results_stored; replayed if replay_ok agrees). Its nodes are loaded later, when
 * needed (load_nodes).
 */
static int load_head(struct org_align *a, struct asrc *s)
{
	uint8_t key[KEY_LEN];
	struct hdr h = { 0 };
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 4096);
	rc = store_get_cache(a->st, key, org_align_key(s->id, 'H', 0, key), &b);
	s->hdr_ok = rc == 0 && dec_hdr(b.data, b.len, &h) && h.view_tag == s->view_tag;
	dfs_buf_release(&b);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (!s->hdr_ok)
		return 0;
	s->ndirs = h.ndirs;
	s->ddigest = h.ddigest;
	s->rdigest = h.rdigest;
	if (h.result_tag == s->result_tag) {
		/* the digest covers the count of directories the alignments' nodes are of */
		struct load_ctx y = { .a = a, .s = s, .count = h.nreports, .digest = h.ndirs };

		s->sreps = calloc(h.nreports ? h.nreports : 1, sizeof(*s->sreps));
		if (!s->sreps)
			return -ENOMEM;
		org_align_key(s->id, 'R', 0, key);
		rc = store_each_cache(a->st, key, KEY_LEN - 4, NULL, 0, load_rep, &y);
		if (rc < 0)
			return rc;
		s->nsreps = y.next;
		s->results_stored = !y.bad && y.next == h.nreports && y.digest == h.rdigest;
	}
	return 0;
}

/* Loads @x->count 'D' records of source @x->s into a->nodes from s->root: true if all. */
static int load_dirs(struct org_align *a, struct load_ctx *x, uint64_t ddigest, bool *ok)
{
	uint8_t key[KEY_LEN];
	int rc;

	org_align_key(x->s->id, 'D', 0, key);
	rc = store_each_cache(a->st, key, KEY_LEN - 4, NULL, 0, load_dir, x);
	*ok = rc >= 0 && !x->bad && x->next == x->count && x->digest == ddigest;
	return rc > 0 ? 0 : rc;
}

/*
 * Source @s's nodes into a->nodes (once): from its 'D' records when its header is of its
 * view now and they check, else from its view.
 */
static int load_nodes(struct org_align *a, struct asrc *s)
{
	size_t n0 = a->nodes.n, names0 = a->names.n;
	uint32_t stored = s->ndirs;
	int rc;

	if (s->loaded)
		return 0;
	s->loaded = true;
	s->root = (uint32_t)n0;
	if (s->hdr_ok) {
		struct load_ctx x = { .a = a, .s = s, .count = s->ndirs };

		rc = load_dirs(a, &x, s->ddigest, &s->sigs_stored);
		if (rc < 0)
			return rc;
		if (s->sigs_stored) {
			a->counts.dirs_loaded += s->ndirs;
			return 0;
		}
	}
	a->nodes.n = n0;	/* what was loaded before a bad record */
	a->names.n = names0;
	rc = read_view(a, s);
	/* a replayed source's stored alignments name nodes of the view its header counts */
	if (rc == 0 && !s->computed && s->results_stored && s->ndirs != stored)
		rc = -EBADMSG;
	return rc;
}

/* Puts (@v) or removes (NULL) the record @key through the build's transaction. */
static int sink_putk(const struct org_align_sink *k, const uint8_t *key, size_t kl,
		     const struct dfs_buf *v)
{
	struct store_txn *tx = k->tx(k->ctx);
	int rc;

	if (v && v->err)
		return v->err;
	rc = v ? store_txn_put_cache(tx, key, kl, v->data, v->len)
	       : store_txn_del_cache(tx, key, kl);
	return rc < 0 ? rc : k->commit(k->ctx);
}

static int sink_put(const struct org_align_sink *k, const uint8_t *key, const struct dfs_buf *v)
{
	return sink_putk(k, key, KEY_LEN, v);
}

static int sink_rec(const struct org_align_sink *k, uint32_t source, uint8_t kind, uint32_t i,
		    const struct dfs_buf *v)
{
	uint8_t key[KEY_LEN];

	org_align_key(source, kind, i, key);
	return sink_put(k, key, v);
}

static int note_stale(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	(void)v;
	(void)vl;
	return kl == KEY_LEN ? vec_push(arg, k) : 0;
}

/* Removes the committed @kind records of @s from index @from on (a smaller set now). */
static int drop_stale(struct org_align *a, const struct asrc *s, uint8_t kind, uint32_t from,
		      const struct org_align_sink *k)
{
	struct vec keys = { .size = KEY_LEN };
	uint8_t pfx[KEY_LEN], start[KEY_LEN];
	int rc;

	org_align_key(s->id, kind, 0, pfx);
	org_align_key(s->id, kind, from, start);
	rc = store_each_cache(a->st, pfx, KEY_LEN - 4, start, KEY_LEN, note_stale, &keys);
	for (size_t i = 0; rc == 0 && i < keys.n; i++)
		rc = sink_put(k, (const uint8_t *)keys.v + i * KEY_LEN, NULL);
	free(keys.v);
	return rc;
}

/* ---- postings ------------------------------------------------------------------------ */

static uint64_t band_key(const struct anode *d, unsigned b)
{
	uint64_t k = (uint64_t)b << 56;

	for (unsigned r = 0; r < ALIGN_ROWS; r++)
		k = hset_mix64(k ^ d->mh[b * ALIGN_ROWS + r] ^ (uint64_t)r << 40);
	return k;
}

/* A posting's kind: 'X' the exact hash, '0' + b band b. Its key (the hash) into @out. */
static uint64_t post_hash(const struct anode *d, uint8_t kind)
{
	return kind == 'X' ? d->exact : band_key(d, (unsigned)(kind - '0'));
}

/* Puts @x as an order-keeping varint ("postings" above) at @p: its length. */
static size_t ovar_put(uint8_t *p, uint32_t x)
{
	size_t n = x < 0x100 ? 1 : x < 0x10000 ? 2 : x < 0x1000000 ? 3 : 4;

	if (x < 0xf0) {
		p[0] = (uint8_t)x;
		return 1;
	}
	p[0] = (uint8_t)(0xf0 + n);
	for (size_t i = 0; i < n; i++)
		p[1 + i] = (uint8_t)(x >> (8 * (n - 1 - i)));
	return 1 + n;
}

/* Reads one at *@p (before @end): false if cut short or not in its shortest form. */
static bool ovar_get(const uint8_t **p, const uint8_t *end, uint32_t *x)
{
	static const uint32_t least[5] = { 0, 0xf0, 0x100, 0x10000, 0x1000000 };
	size_t n;
	uint32_t v = 0;

	if (*p >= end)
		return false;
	if (**p < 0xf0) {
		*x = *(*p)++;
		return true;
	}
	n = (size_t)(**p - 0xf0);
	if (n < 1 || n > 4 || (size_t)(end - *p) < 1 + n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | (*p)[1 + i];
	if (v < least[n])
		return false;
	*p += 1 + n;
	*x = v;
	return true;
}

size_t org_align_post_key(uint8_t kind, uint64_t hash, uint32_t source, uint32_t seq,
			  uint8_t *out)
{
	size_t n = POST_PFX_LEN;

	memcpy(out, "ap", 2);
	out[2] = REC_VERSION;
	out[3] = kind;
	for (int i = 0; i < 6; i++)
		out[4 + i] = (uint8_t)(hash >> (56 - 8 * i));
	n += ovar_put(out + n, source);
	n += ovar_put(out + n, seq);
	return n;
}

bool org_align_post_parse(const uint8_t *k, size_t kl, uint8_t *kind, uint32_t *source,
			  uint32_t *seq)
{
	const uint8_t *p = k + POST_PFX_LEN, *end = k + kl;

	if (kl < POST_PFX_LEN || memcmp(k, "ap", 2) || k[2] != REC_VERSION)
		return false;
	*kind = k[3];
	return ovar_get(&p, end, source) && ovar_get(&p, end, seq) && p == end;
}

/* Pushes node @k's subdirectories on a walk's @stack (uint32_t), the first on top. */
static int push_children(const struct org_align *a, uint32_t k, struct vec *stack)
{
	int rc = 0;

	for (uint32_t c = NODE(a, k).child0 + NODE(a, k).nchild;
	     rc == 0 && c-- > NODE(a, k).child0;)
		rc = vec_push(stack, &c);
	return rc;
}

/*
 * The registered directories of a source whose alignments are @sr[0..n) (its nodes from
 * @root, @ndirs of them), by sequence into @out: the walk align_source makes, without
 * matching (a directory with too little evidence is skipped, an aligned one not entered).
 */
static int canon_walk(struct org_align *a, uint32_t root, uint32_t ndirs,
		      const struct sreport *sr, size_t n, struct vec *out)
{
	bool *al = calloc(ndirs ? ndirs : 1, sizeof(*al));
	struct vec stack = { .size = sizeof(uint32_t) };
	int rc = al ? vec_push(&stack, &root) : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < n; i++)
		if (sr[i].node < ndirs)
			al[sr[i].node] = true;
	out->n = 0;
	while (stack.n && rc == 0) {
		uint32_t k = ((uint32_t *)stack.v)[--stack.n];

		if (NODE(a, k).evidence < ALIGN_MIN_SHARED || al[k - root])
			continue;
		rc = vec_push(out, &k);
		NODE(a, k).seq1 = (uint32_t)out->n;
		if (rc == 0)
			rc = push_children(a, k, &stack);
	}
	free(stack.v);
	free(al);
	return rc;
}

/* The postings of the registered nodes @canon of source @id, appended to @keys (slots). */
static int post_keys(struct org_align *a, uint32_t id, const struct vec *canon, struct vec *keys)
{
	uint8_t key[POST_SLOT];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < canon->n; i++) {
		const struct anode *d = &NODE(a, ((const uint32_t *)canon->v)[i]);

		for (unsigned b = 0; rc == 0 && b <= ALIGN_BANDS; b++) {
			uint8_t kind = b == ALIGN_BANDS ? 'X' : (uint8_t)('0' + b);

			memset(key, 0, sizeof(key));
			key[0] = (uint8_t)org_align_post_key(kind, post_hash(d, kind), id,
							     (uint32_t)i, key + 1);
			rc = vec_push(keys, key);
		}
	}
	return rc;
}

/*
 * The postings source @s's committed records say it has (its header, 'D' and 'R'
 * records, whatever their tags, when they check), appended to @keys: the ones to remove
 * when its results are rewritten. Records that do not check give none (what they wrote
 * stays, and is ignored where found: match_post).
 */
static int old_posts(struct org_align *a, const struct asrc *s, struct vec *keys)
{
	struct asrc t = { .id = s->id, .root = (uint32_t)a->nodes.n };	/* any root ino */
	size_t n0 = a->nodes.n, names0 = a->names.n, paths0 = a->paths.n;
	struct vec canon = { .size = sizeof(uint32_t) };
	uint8_t key[KEY_LEN];
	struct hdr h = { 0 };
	struct dfs_buf b;
	bool ok = false;
	int rc;

	dfs_buf_init(&b, 4096);
	rc = store_get_cache(a->st, key, org_align_key(s->id, 'H', 0, key), &b);
	if (rc == 0 && dec_hdr(b.data, b.len, &h)) {
		struct load_ctx x = { .a = a, .s = &t, .count = h.ndirs };

		rc = load_dirs(a, &x, h.ddigest, &ok);
	}
	dfs_buf_release(&b);
	if (rc == 0 && ok) {
		struct load_ctx y = { .a = a, .s = &t, .count = h.nreports, .digest = h.ndirs };

		t.sreps = calloc(h.nreports ? h.nreports : 1, sizeof(*t.sreps));
		rc = t.sreps ? 0 : -ENOMEM;
		org_align_key(s->id, 'R', 0, key);
		if (rc == 0)
			rc = store_each_cache(a->st, key, KEY_LEN - 4, NULL, 0, load_rep, &y);
		ok = rc >= 0 && !y.bad && y.next == h.nreports && y.digest == h.rdigest;
		rc = rc > 0 ? 0 : rc;
		if (rc == 0 && ok)
			rc = canon_walk(a, t.root, h.ndirs, t.sreps, y.next, &canon);
		if (rc == 0 && ok)
			rc = post_keys(a, s->id, &canon, keys);
	}
	free(t.sreps);
	free(canon.v);
	a->nodes.n = n0;
	a->names.n = names0;
	a->paths.n = paths0;
	return rc == -ENOENT ? 0 : rc;
}

static int key_cmp(const void *x, const void *y)
{
	return memcmp(x, y, POST_SLOT);
}

/*
 * Rewrites source @s's postings: its old ones that are not new removed, the new ones that
 * are not old put (the old ones are there: written before the header that let them be
 * derived).
 */
static int write_posts(struct org_align *a, struct asrc *s, struct vec *old,
		       const struct org_align_sink *k)
{
	struct vec keys = { .size = POST_SLOT };
	struct dfs_buf none;
	int rc = post_keys(a, s->id, &s->canon, &keys);

	dfs_buf_init(&none, 16);	/* a posting says it all in its key */
	if (rc == 0 && keys.n)
		qsort(keys.v, keys.n, POST_SLOT, key_cmp);
	if (rc == 0 && old->n)
		qsort(old->v, old->n, POST_SLOT, key_cmp);
	for (size_t i = 0; rc == 0 && i < old->n; i++) {
		const uint8_t *o = (const uint8_t *)old->v + i * POST_SLOT;

		if (!keys.n || !bsearch(o, keys.v, keys.n, POST_SLOT, key_cmp))
			rc = sink_putk(k, o + 1, o[0], NULL);
	}
	for (size_t i = 0; rc == 0 && i < keys.n; i++) {
		const uint8_t *n = (const uint8_t *)keys.v + i * POST_SLOT;

		if (!old->n || !bsearch(n, old->v, old->n, POST_SLOT, key_cmp))
			rc = sink_putk(k, n + 1, n[0], &none);
	}
	dfs_buf_release(&none);
	free(keys.v);
	return rc;
}

static struct asrc *source_by_id(struct org_align *a, uint32_t id, size_t *idx);

/* ---- sweeping what no source has -------------------------------------------------- */

#define SWEEP_BATCH 65536	/* keys collected per walk, then removed */
#define SWEEP_SLOT (1 + STORE_CACHE_KEY_MAX)

struct sweep_ctx {
	struct vec keys;	/* SWEEP_SLOT each: length, key */
	bool more;		/* the batch is full: walk again after its last key */
	uint32_t source;	/* note_first: the source of the first record found */
	bool found;
};

/* Postings of a version other than this one's (before it: the walk stops at its own). */
static int note_other(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct sweep_ctx *x = arg;
	uint8_t slot[SWEEP_SLOT] = { 0 };

	(void)v;
	(void)vl;
	if (kl > 2 && k[2] == REC_VERSION)
		return 1;
	if (kl > STORE_CACHE_KEY_MAX)
		return 0;	/* (no key is longer) */
	slot[0] = (uint8_t)kl;
	memcpy(slot + 1, k, kl);
	if (vec_push(&x->keys, slot) < 0)
		return -ENOMEM;
	x->more = x->keys.n == SWEEP_BATCH;
	return x->more;
}

/* Removes every key @note_other takes of the walk of "ap" from @start (@slen bytes). */
static int sweep_walk(struct org_align *a, const uint8_t *start, size_t slen,
		      const struct org_align_sink *k)
{
	struct sweep_ctx x = { .keys = { .size = SWEEP_SLOT } };
	uint8_t from[SWEEP_SLOT + 1];
	int rc;

	memcpy(from, start, slen);
	do {
		x.keys.n = 0;
		x.more = false;
		rc = store_each_cache(a->st, "ap", 2, from, slen, note_other, &x);
		rc = rc > 0 ? 0 : rc;
		for (size_t i = 0; rc == 0 && i < x.keys.n; i++) {
			const uint8_t *o = (const uint8_t *)x.keys.v + i * SWEEP_SLOT;

			rc = sink_putk(k, o + 1, o[0], NULL);
		}
		if (rc == 0 && x.more) {	/* on after the last one */
			const uint8_t *o = (const uint8_t *)x.keys.v + (x.keys.n - 1) * SWEEP_SLOT;

			memcpy(from, o + 1, o[0]);
			from[o[0]] = 0;
			slen = (size_t)o[0] + 1;
		}
	} while (rc == 0 && x.more);
	free(x.keys.v);
	return rc;
}

static int note_first(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct sweep_ctx *x = arg;

	(void)v;
	(void)vl;
	if (kl < 10)
		return 0;
	x->source = dfs_get_be32(k + 6);
	x->found = true;
	return 1;
}

/*
 * Removes what no source of the store has: the records and postings of a source that is
 * gone (defrag-forget removes the source; its records stay until here), and the
 * postings of another version (records of another version are rewritten with their
 * source). One seek per source, and per other version's range. The postings of a gone
 * source go first (derived from its records, as when they are rewritten), then its
 * records: a build cut short between leaves records that derive them again.
 */
static int sweep(struct org_align *a, const struct org_align_sink *k)
{
	uint8_t start[KEY_LEN] = "align/", ap[3] = { 'a', 'p', 0 };
	struct sweep_ctx x = { .found = false };	/* note_first's answer only */
	uint32_t id = 0;
	size_t ti;
	int rc = sweep_walk(a, ap, 2, k);

	if (rc == 0 && REC_VERSION < 255) {
		ap[2] = REC_VERSION + 1;
		rc = sweep_walk(a, ap, 3, k);
	}
	while (rc == 0) {
		struct asrc gone = { 0 };
		struct vec old = { .size = POST_SLOT };

		x.found = false;
		dfs_put_be32(start + 6, id);
		rc = store_each_cache(a->st, "align/", 6, start, 10, note_first, &x);
		if (rc < 0 || !x.found)
			return rc < 0 ? rc : 0;
		rc = 0;
		if (source_by_id(a, x.source, &ti)) {
			if (x.source == UINT32_MAX)
				return 0;
			id = x.source + 1;
			continue;
		}
		gone.id = x.source;
		id = x.source + 1;	/* (its removal is not committed yet: not seen again) */
		rc = old_posts(a, &gone, &old);
		for (size_t i = 0; rc == 0 && i < old.n; i++) {
			const uint8_t *o = (const uint8_t *)old.v + i * POST_SLOT;

			rc = sink_putk(k, o + 1, o[0], NULL);
		}
		free(old.v);
		for (const char *kind = "DHR"; rc == 0 && *kind; kind++)
			rc = drop_stale(a, &gone, (uint8_t)*kind, 0, k);
		a->counts.sources_swept++;
		if (gone.id == UINT32_MAX)
			break;
	}
	return rc;
}

/*
 * Writes the records of @s that were not current: its header removed first and put
 * last, so that a build cut short between (its commits are intermediate) leaves no
 * header, and the next build reads the source again. A computed source's 'R' records and
 * postings are rewritten; a replayed one's stay (only its 'D' records, if its view had to
 * be read).
 */
static int write_source(struct org_align *a, struct asrc *s, const struct org_align_sink *k)
{
	const uint32_t (*rn)[2] = a->rnodes.v;
	const struct asrc *srcs = a->srcs.v;
	struct hdr h = { .view_tag = s->view_tag, .result_tag = s->result_tag,
			 .ndirs = s->ndirs, .nreports = (uint32_t)s->nsreps,
			 .ddigest = s->ddigest, .rdigest = s->rdigest };
	struct vec old = { .size = POST_SLOT };
	struct dfs_buf b;
	int rc = 0;

	if (s->computed)
		rc = old_posts(a, s, &old);	/* before any of them changes */
	dfs_buf_init(&b, 1u << 20);
	if (rc == 0)
		rc = sink_rec(k, s->id, 'H', 0, NULL);
	for (uint32_t i = 0; rc == 0 && !s->sigs_stored && i < s->ndirs; i++) {
		enc_dir(a, s->root + i, s->root, &b);
		h.ddigest = digest_step(i ? h.ddigest : 0, b.data, b.len);
		rc = sink_rec(k, s->id, 'D', i, &b);
	}
	if (rc == 0 && !s->sigs_stored)
		rc = drop_stale(a, s, 'D', s->ndirs, k);
	if (s->computed) {
		h.nreports = (uint32_t)s->nreports;
		h.rdigest = s->ndirs;
	}
	for (size_t i = 0; rc == 0 && s->computed && i < s->nreports; i++) {
		const struct org_align_report *r = org_align_get(a, s->report0 + i);
		const struct asrc *t = srcs;
		struct sreport sr = { .node = rn[s->report0 + i][0] - s->root,
				      .target_source = r->target_source,
				      .similarity = r->similarity, .identical = r->identical,
				      .changed = r->changed, .only_here = r->only_here,
				      .only_there = r->only_there,
				      .ino = NODE(a, rn[s->report0 + i][0]).ino,
				      .path_off = (uint32_t)(uintptr_t)r->path,
				      .path_len = (uint32_t)r->path_len,
				      .target_off = (uint32_t)(uintptr_t)r->target,
				      .target_len = (uint32_t)r->target_len };

		while (t->id != r->target_source)
			t++;	/* an earlier source (or @s): present, and loaded */
		sr.target_node = rn[s->report0 + i][1] - t->root;
		enc_rep(a, &sr, &b);
		h.rdigest = digest_step(h.rdigest, b.data, b.len);
		rc = sink_rec(k, s->id, 'R', (uint32_t)i, &b);
	}
	if (rc == 0 && s->computed)
		rc = drop_stale(a, s, 'R', (uint32_t)s->nreports, k);
	if (rc == 0 && s->computed)
		rc = write_posts(a, s, &old, k);
	if (rc == 0) {
		enc_hdr(&h, &b);
		rc = sink_rec(k, s->id, 'H', 0, &b);
	}
	free(old.v);
	dfs_buf_release(&b);
	return rc;
}

/* ---- candidates ---------------------------------------------------------------------- */

/* Chains LSH entry @e (index + 1) into its bucket. */
static void lsh_chain(struct org_align *a, uint32_t e)
{
	struct lsh_ent *le = &((struct lsh_ent *)a->lsh.v)[e - 1];
	size_t h = (size_t)(le->key & (a->nheads - 1));

	le->next = a->heads[h];
	a->heads[h] = e;
}

/*
 * Registers node @node's bands, each only while fewer than CAND_PER_BAND nodes have the
 * same key: a lookup takes the first registered only (match).
 */
static int lsh_insert(struct org_align *a, uint32_t node)
{
	if (a->lsh.n + ALIGN_BANDS > a->nheads) {
		size_t nh = a->nheads * 2;
		uint32_t *heads = calloc(nh, sizeof(*heads));

		if (!heads)
			return -ENOMEM;
		free(a->heads);
		a->heads = heads;
		a->nheads = nh;
		for (size_t e = 0; e < a->lsh.n; e++)	/* in order: the newest first again */
			lsh_chain(a, (uint32_t)e + 1);
	}
	for (unsigned b = 0; b < ALIGN_BANDS; b++) {
		struct lsh_ent e = { .key = band_key(&NODE(a, node), b), .node = node };
		unsigned same = 0;

		for (uint32_t x = a->heads[e.key & (a->nheads - 1)]; x; ) {
			const struct lsh_ent *le = &((struct lsh_ent *)a->lsh.v)[x - 1];

			same += le->key == e.key;
			x = le->next;
		}
		if (same >= CAND_PER_BAND)
			continue;
		if (vec_push(&a->lsh, &e) < 0)
			return -ENOMEM;
		lsh_chain(a, (uint32_t)a->lsh.n);
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

		if (!d->files_loaded && (rc = read_dir(a, k, false)) < 0)
			break;	/* (the nodes do not move: @d stays valid) */

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

/* A registered directory: its source id, its sequence there, its node. */
struct cref {
	uint32_t source, seq, node;
};

static bool cref_before(const struct cref *x, const struct cref *y)
{
	return x->source != y->source ? x->source < y->source : x->seq < y->seq;
}

static struct asrc *source_by_id(struct org_align *a, uint32_t id, size_t *idx)
{
	struct asrc *srcs = a->srcs.v;
	size_t lo = 0, hi = a->srcs.n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (srcs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == a->srcs.n || srcs[lo].id != id)
		return NULL;
	*idx = lo;
	return &srcs[lo];
}

struct post_ctx {
	struct org_align *a;
	uint8_t kind;
	uint64_t hash;
	struct cref *out;
	size_t n, max;
};

/*
 * store_each_cache over the postings of one (kind, hash): each one checked against what
 * it names, a source replayed before the one being aligned (its nodes loaded on first
 * use) whose registered directory of that sequence has that hash. Anything else (a stale
 * or damaged posting, another version's) is skipped.
 */
static int match_post(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct post_ctx *x = arg;
	struct org_align *a = x->a;
	struct asrc *t;
	uint32_t source, seq, node;
	uint8_t kind;
	size_t ti;
	int rc;

	(void)v;
	(void)vl;
	if (!org_align_post_parse(k, kl, &kind, &source, &seq) || kind != x->kind)
		return 0;
	t = source_by_id(a, source, &ti);
	if (!t || ti >= a->cur || t->computed)
		return 0;
	if (!t->loaded) {
		rc = load_nodes(a, t);
		if (rc == 0)
			rc = canon_walk(a, t->root, t->ndirs, t->sreps, t->nsreps, &t->canon);
		if (rc < 0)
			return rc;
	}
	if (seq >= t->canon.n)
		return 0;
	node = ((const uint32_t *)t->canon.v)[seq];
	if (post_hash(&NODE(a, node), x->kind) != x->hash)
		return 0;
	x->out[x->n++] = (struct cref){ t->id, seq, node };
	return x->n == x->max;
}

/* The first @max postings of (@kind, @hash) that check, into @out: their count or -errno. */
static int lookup(struct org_align *a, uint8_t kind, uint64_t hash, struct cref *out, size_t max)
{
	struct post_ctx x = { .a = a, .kind = kind, .hash = hash, .out = out, .max = max };
	uint8_t key[POST_MAX];
	int rc;

	if (!a->nreplayed)
		return 0;	/* no earlier source's postings apply */
	a->counts.lookups++;
	org_align_post_key(kind, hash, 0, 0, key);
	rc = store_each_cache(a->st, key, POST_PFX_LEN, NULL, 0, match_post, &x);
	return rc < 0 ? rc : (int)x.n;
}

static struct cref cref_of(const struct org_align *a, uint32_t node)
{
	return (struct cref){ NODE(a, node).source, NODE(a, node).seq1 - 1, node };
}

/*
 * The candidates for node @d: the first registered directory (sources in id order, each
 * in its walk's order) with its exact hash, then for each band the first CAND_PER_BAND
 * registered with its key, from the directories registered in this build (in memory) and
 * the postings of the sources replayed (in the index): a full build and an append build
 * take the same ones.
 */
static int candidates(struct org_align *a, uint32_t d, uint32_t *cand, size_t *ncand, size_t cap)
{
	struct cref p[CAND_PER_BAND], m[CAND_PER_BAND];
	size_t nc = 0;
	uint64_t v;
	int np;

	np = lookup(a, 'X', NODE(a, d).exact, p, 1);
	if (np < 0)
		return np;
	if (u64map_get(&a->exact, NODE(a, d).exact, &v)) {
		m[0] = cref_of(a, (uint32_t)(v - 1));
		if (!np || cref_before(&m[0], &p[0]))
			p[0] = m[0];
		np = 1;
	}
	if (np)
		cand[nc++] = p[0].node;
	for (unsigned b = 0; b < ALIGN_BANDS; b++) {
		uint64_t key = band_key(&NODE(a, d), b);
		size_t nm = 0, i = 0, j = 0;

		np = lookup(a, (uint8_t)('0' + b), key, p, CAND_PER_BAND);
		if (np < 0)
			return np;
		/* in memory: at most CAND_PER_BAND (lsh_insert), the newest first */
		for (uint32_t e = a->heads[key & (a->nheads - 1)]; e; ) {
			const struct lsh_ent *le = &((struct lsh_ent *)a->lsh.v)[e - 1];

			e = le->next;
			if (le->key == key && nm < CAND_PER_BAND)
				m[nm++] = cref_of(a, le->node);
		}
		for (size_t x = 0; x < nm / 2; x++) {
			struct cref t = m[x];

			m[x] = m[nm - 1 - x];
			m[nm - 1 - x] = t;
		}
		for (unsigned taken = 0; taken < CAND_PER_BAND && (i < (size_t)np || j < nm);
		     taken++) {
			uint32_t node = j == nm || (i < (size_t)np && cref_before(&p[i], &m[j]))
					? p[i++].node : m[j++].node;
			bool dup = false;

			for (size_t c = 0; c < nc; c++)
				dup |= cand[c] == node;
			if (!dup && nc < cap)
				cand[nc++] = node;
		}
	}
	*ncand = nc;
	return 0;
}

/* Looks for the directory @d copies; *best NONE if none. */
static int match(struct org_align *a, uint32_t d, uint32_t *best,
		 struct org_align_report *br)
{
	uint32_t cand[ALIGN_BANDS * CAND_PER_BAND + 1];
	double est[ALIGN_BANDS * CAND_PER_BAND + 1];
	size_t nc = 0;
	int rc;

	*best = NONE;
	rc = candidates(a, d, cand, &nc, sizeof(cand) / sizeof(cand[0]));
	if (rc < 0)
		return rc;
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

/*
 * Can source @si's stored alignments be replayed? Each names a node of it and a node of a
 * source up to it (their counts of directories known by now), and no node twice.
 */
static int replay_ok(struct org_align *a, size_t si, bool *ok)
{
	const struct asrc *srcs = a->srcs.v, *s = &srcs[si];
	int rc = 0;

	*ok = false;
	u64map_release(&a->replay);
	for (size_t i = 0; i < s->nsreps; i++) {
		const struct sreport *sr = &s->sreps[i];
		size_t t = 0;

		while (t <= si && srcs[t].id != sr->target_source)
			t++;
		if (sr->node >= s->ndirs || t > si || sr->target_node >= srcs[t].ndirs ||
		    u64map_get(&a->replay, (uint64_t)sr->node + 1, &(uint64_t){ 0 }))
			return 0;
		rc = u64map_put(&a->replay, (uint64_t)sr->node + 1, i + 1);
		if (rc < 0)
			return rc;
	}
	*ok = true;
	return 0;
}

/* Pushes alignment @r (paths as offsets in a->paths) with its nodes @k, @best. */
static int push_report(struct org_align *a, const struct org_align_report *r, uint64_t ino,
		       uint32_t k, uint32_t best)
{
	uint32_t nodes[2] = { k, best };
	int rc = vec_push(&a->reports, r);

	if (rc == 0)
		rc = vec_push(&a->rnodes, nodes);
	if (rc == 0)
		rc = u64map_put(&a->aligned, ino, a->reports.n);
	return rc;
}

/* Replays source @s's stored alignments: no node of it is needed. */
static int replay_source(struct org_align *a, struct asrc *s)
{
	int rc = 0;

	s->report0 = a->reports.n;
	for (size_t i = 0; rc == 0 && i < s->nsreps; i++) {
		const struct sreport *sr = &s->sreps[i];
		struct org_align_report r = {
			.source = s->id, .target_source = sr->target_source,
			.path = (const uint8_t *)(uintptr_t)sr->path_off, .path_len = sr->path_len,
			.target = (const uint8_t *)(uintptr_t)sr->target_off,
			.target_len = sr->target_len, .similarity = sr->similarity,
			.identical = sr->identical, .changed = sr->changed,
			.only_here = sr->only_here, .only_there = sr->only_there };

		rc = push_report(a, &r, sr->ino, NONE, NONE);
	}
	s->nreports = a->reports.n - s->report0;
	a->counts.sources_replayed++;
	a->nreplayed++;
	return rc;
}

/* Registers node @k of source @s as canonical: a candidate for what follows. */
static int register_node(struct org_align *a, struct asrc *s, uint32_t k)
{
	int rc = vec_push(&s->canon, &k);

	NODE(a, k).seq1 = (uint32_t)s->canon.n;
	if (rc == 0 && !u64map_get(&a->exact, NODE(a, k).exact, &(uint64_t){ 0 }))
		rc = u64map_put(&a->exact, NODE(a, k).exact, (uint64_t)k + 1);
	if (rc == 0)
		rc = lsh_insert(a, k);
	return rc;
}

/* Aligns source @si, its nodes loaded: top-down, each directory matched. */
static int align_source(struct org_align *a, size_t si)
{
	struct asrc *s = &((struct asrc *)a->srcs.v)[si];
	struct vec stack = { .size = sizeof(uint32_t) };
	int rc = vec_push(&stack, &s->root);

	s->report0 = a->reports.n;
	while (stack.n && rc == 0) {
		uint32_t k = ((uint32_t *)stack.v)[--stack.n], best = NONE;
		struct org_align_report r = { 0 };

		if (NODE(a, k).evidence < ALIGN_MIN_SHARED)
			continue;	/* nothing below it can align: canonical, unregistered */
		rc = match(a, k, &best, &r);	/* (may load nodes: NODE() moves) */
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
				rc = push_report(a, &r, NODE(a, k).ino, k, best);
			continue;
		}
		if (rc == 0)
			rc = register_node(a, s, k);
		if (rc == 0)
			rc = push_children(a, k, &stack);
	}
	free(stack.v);
	s->nreports = a->reports.n - s->report0;
	return rc;
}

/* The complete sources (struct store_each_source callback): id order. */
static int collect_source(void *arg, const struct store_source *ss)
{
	struct org_align *a = arg;
	struct asrc s = { .id = ss->id, .root_ino = ss->root_ino,
			  .canon = { .size = sizeof(uint32_t) } };

	if (!ss->root_ino || !ss->last_ingest)
		return 0;	/* not complete: not placed either */
	return vec_push(&a->srcs, &s);
}

/* What the records' content depends on besides the views. */
static uint64_t algo_tag(void)
{
	const double d[] = { ALIGN_THRESHOLD, ALIGN_THRESHOLD_SAME, ESTIMATE_MIN };
	uint64_t h = hash_bytes("dfs-align", 9), u;

	h = hset_mix64(h ^ REC_VERSION);
	h = hset_mix64(h ^ ((uint64_t)ALIGN_K << 32 | ALIGN_BANDS << 16 | ALIGN_ROWS));
	h = hset_mix64(h ^ ((uint64_t)ALIGN_MIN_SHARED << 32 | VERIFY_MAX));
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		memcpy(&u, &d[i], sizeof(u));
		h = hset_mix64(h ^ u);
	}
	return h;
}

/*
 * The sources' tags. A source's view changes only in an ingest run, which writes
 * "src_changed.ID" (the store's new "src_epoch", a number never given before) in the
 * transaction of its first change (ingest/commit.c); with the root inode and the
 * algorithm, that is its view tag. Its result tag also covers every earlier source's.
 */
static int tag_sources(struct org_align *a)
{
	struct asrc *s = a->srcs.v;
	uint64_t algo = algo_tag(), chain = algo;

	for (size_t i = 0; i < a->srcs.n; i++) {
		char key[40];
		uint64_t changed = 0;
		int rc;

		snprintf(key, sizeof(key), "src_changed.%" PRIu32, s[i].id);
		rc = store_get_meta_u64(a->st, key, &changed);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		s[i].view_tag = hset_mix64(algo ^ hset_mix64(s[i].id ^ hset_mix64(
			s[i].root_ino ^ hset_mix64(changed))));
		chain = hset_mix64(chain * 31 ^ s[i].view_tag);
		s[i].result_tag = chain;
	}
	return 0;
}

static int name_cmp(const uint8_t *p, size_t pl, const uint8_t *q, size_t ql)
{
	int c = memcmp(p, q, pl < ql ? pl : ql);

	return c ? c : (pl > ql) - (pl < ql);
}

/* A live tree's directory: its path. */
struct ldir {
	const uint8_t *path;
	size_t len;
};

static int live_dir_cmp(const void *x, const void *y)
{
	const struct ldir *p = x, *q = y;

	return name_cmp(p->path, p->len, q->path, q->len);
}

/* The index in @dirs (sorted by path) of the directory holding @path, or NONE. */
static uint32_t live_parent(const struct ldir *dirs, size_t nd, const uint8_t *path,
			    size_t len, size_t *name_off)
{
	size_t pl = len, lo = 0, hi = nd;

	while (pl && path[pl - 1] != '/')
		pl--;
	*name_off = pl;
	pl = pl ? pl - 1 : 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = name_cmp(dirs[mid].path, dirs[mid].len, path, pl);

		if (c == 0)
			return (uint32_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NONE;
}

struct live_file {
	uint32_t node;
	struct afile f;
};

static int live_file_cmp(const void *x, const void *y)
{
	const struct live_file *p = x, *q = y;

	return (p->node > q->node) - (p->node < q->node);
}

/*
 * Source @s's nodes from a live tree's entries @e[0..n): the directories breadth first,
 * each one's subdirectories in byte order of name (as store_dir_next gives them), its
 * files' digests as content_digest has them in the store.
 */
static int live_nodes(struct org_align *a, struct asrc *s, const struct org_align_live_entry *e,
		      size_t n)
{
	size_t nd = 0, nf = 0, off, first = a->nodes.n;
	struct ldir *dirs = malloc((n ? n : 1) * sizeof(*dirs));
	uint32_t *par = malloc((n ? n : 1) * sizeof(*par));
	uint32_t *node_of = malloc((n ? n : 1) * sizeof(*node_of));
	uint32_t *kids = malloc((n ? n : 1) * sizeof(*kids));
	uint32_t *kid0 = calloc(n + 1, sizeof(*kid0));
	struct live_file *lf = malloc((n ? n : 1) * sizeof(*lf));
	int rc = dirs && par && node_of && kids && kid0 && lf ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < n; i++)
		if (S_ISDIR(e[i].mode))
			dirs[nd++] = (struct ldir){ e[i].path, e[i].len };
	if (rc == 0)
		qsort(dirs, nd, sizeof(*dirs), live_dir_cmp);
	if (rc == 0 && (!nd || dirs[0].len))
		rc = -EINVAL;	/* no root */
	/* parents (a parent sorts before its children: a missing one drops them) */
	for (size_t i = 0; rc == 0 && i < nd; i++) {
		par[i] = i ? live_parent(dirs, nd, dirs[i].path, dirs[i].len, &off) : NONE;
		if (i && (par[i] == NONE || par[i] >= i || node_of[par[i]] == 0))
			par[i] = NONE, node_of[i] = 0;	/* dropped */
		else
			node_of[i] = 1;	/* kept (a node index once placed) */
		if (i && node_of[i])
			kid0[par[i] + 1]++;
	}
	for (size_t i = 0; rc == 0 && i < nd; i++)
		kid0[i + 1] += kid0[i];
	{
		uint32_t *fill = rc == 0 ? calloc(nd + 1, sizeof(*fill)) : NULL;

		if (rc == 0 && !fill)
			rc = -ENOMEM;
		for (size_t i = 1; rc == 0 && i < nd; i++)	/* in path order: by name */
			if (node_of[i])
				kids[kid0[par[i]] + fill[par[i]]++] = (uint32_t)i;
		free(fill);
	}
	/* breadth first: the node array is the queue, node_of[] the map */
	if (rc == 0) {
		struct anode root = { .ino = (uint64_t)1 << 63, .parent = NONE, .source = s->id };

		rc = vec_push(&a->nodes, &root);
		node_of[0] = (uint32_t)first;
	}
	for (size_t q = 0, qd = 0; rc == 0 && first + q < a->nodes.n; q++) {
		uint32_t k = (uint32_t)(first + q);

		/* the directory of node k: found by the queue order (dirs enqueued below) */
		qd = q == 0 ? 0 : kids[NODE(a, k).file0];
		NODE(a, k).child0 = (uint32_t)a->nodes.n;
		for (uint32_t c = kid0[qd]; rc == 0 && c < kid0[qd + 1]; c++) {
			const struct ldir *d = &dirs[kids[c]];
			size_t no;
			struct anode x = { .parent = k, .source = s->id,
					   .name_off = (uint32_t)a->names.n };

			live_parent(dirs, nd, d->path, d->len, &no);
			x.ino = (uint64_t)1 << 63 | (a->nodes.n - first);
			x.nh = hash_bytes(d->path + no, d->len - no);
			x.name_len = (uint32_t)(d->len - no);
			x.file0 = c;	/* its place in kids[], until its files are known */
			node_of[kids[c]] = (uint32_t)a->nodes.n;
			rc = vec_append(&a->names, d->path + no, d->len - no);
			if (rc == 0)
				rc = vec_push(&a->nodes, &x);
			if (rc == 0)
				NODE(a, k).nchild++;
		}
	}
	/* the files, by node */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint32_t pd;
		size_t no;

		if (S_ISDIR(e[i].mode))
			continue;
		pd = live_parent(dirs, nd, e[i].path, e[i].len, &no);
		if (pd == NONE || (pd && par[pd] == NONE))
			continue;	/* under no directory kept */
		lf[nf].node = node_of[pd];
		lf[nf].f.nh = hash_bytes(e[i].path + no, e[i].len - no);
		if (S_ISREG(e[i].mode))
			lf[nf].f.cv = e[i].digest ? e[i].digest : 1;
		else if (S_ISLNK(e[i].mode))
			lf[nf].f.cv = hash_bytes(e[i].target, e[i].target_len) ^ 2;
		else
			lf[nf].f.cv = hset_mix64(e[i].rdev ^ ((uint64_t)(e[i].mode & S_IFMT) << 40)) ^ 3;
		lf[nf].f.evidence = S_ISREG(e[i].mode) && e[i].size > 0 &&
				    !boilerplate(e[i].path + no, e[i].len - no);
		nf++;
	}
	if (rc == 0)
		qsort(lf, nf, sizeof(*lf), live_file_cmp);
	for (size_t k = first, j = 0; rc == 0 && k < a->nodes.n; k++) {
		NODE(a, k).file0 = (uint32_t)a->files.n;
		for (; rc == 0 && j < nf && lf[j].node == k; j++)
			rc = vec_push(&a->files, &lf[j].f);
		NODE(a, k).nfile = (uint32_t)(a->files.n - NODE(a, k).file0);
		NODE(a, k).files_loaded = true;
	}
	if (rc == 0) {
		sign(a, (uint32_t)first);
		s->root = (uint32_t)first;
		s->ndirs = (uint32_t)(a->nodes.n - first);
		s->loaded = true;
		a->counts.dirs_read += s->ndirs;
	}
	free(dirs);
	free(par);
	free(node_of);
	free(kids);
	free(kid0);
	free(lf);
	return rc;
}

/*
 * Aligns the sources of @st, and with @live the live tree of @live->source (in place of
 * that source if the store has it, and of those after it; else after every source).
 */
static int compute(struct store *st, const struct org_align_sink *sink,
		   const struct org_align_live *live, struct org_align **out)
{
	struct org_align *a = calloc(1, sizeof(*a));
	struct asrc *srcs;
	int rc;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->st = st;
	a->srcs.size = sizeof(struct asrc);
	a->rnodes.size = 2 * sizeof(uint32_t);
	a->nodes.size = sizeof(struct anode);
	a->files.size = sizeof(struct afile);
	a->names.size = a->paths.size = 1;
	a->lsh.size = sizeof(struct lsh_ent);
	a->reports.size = sizeof(struct org_align_report);
	a->pa.size = a->pb.size = sizeof(struct pair);
	rc = store_each_source(st, collect_source, a);
	if (rc == 0)
		rc = tag_sources(a);
	if (rc == 0 && live) {
		struct asrc l = { .id = live->source, .live = true, .computed = true,
				  .canon = { .size = sizeof(uint32_t) } };
		size_t i = 0;

		while (i < a->srcs.n && ((struct asrc *)a->srcs.v)[i].id < live->source)
			i++;
		a->srcs.n = i;	/* it and the later ones: not as they will be */
		rc = vec_push(&a->srcs, &l);
	}
	srcs = a->srcs.v;	/* (no source is added from here on) */
	for (size_t i = 0; rc == 0 && i < a->srcs.n; i++)
		if (!srcs[i].live)
			rc = load_head(a, &srcs[i]);
	a->nheads = 1024;
	a->heads = calloc(a->nheads, sizeof(*a->heads));
	if (rc == 0 && !a->heads)
		rc = -ENOMEM;
	/* sources in id order: replayed when their stored alignments are current, else
	 * computed (their nodes loaded, the earlier ones' found by lookup) */
	for (size_t i = 0; rc == 0 && i < a->srcs.n; i++) {
		bool ok = false;

		a->cur = i;
		if (srcs[i].results_stored)
			rc = replay_ok(a, i, &ok);
		if (rc == 0 && ok) {
			rc = replay_source(a, &srcs[i]);
			continue;
		}
		srcs[i].computed = true;
		if (rc == 0)
			rc = srcs[i].live ? live_nodes(a, &srcs[i], live->e, live->n)
					  : load_nodes(a, &srcs[i]);
		if (rc == 0)
			rc = align_source(a, i);
	}
	for (size_t i = 0; rc == 0 && sink && sink->tx(sink->ctx) && i < a->srcs.n; i++)
		if (!srcs[i].live && (srcs[i].computed || (srcs[i].loaded && !srcs[i].sigs_stored)))
			rc = write_source(a, &srcs[i], sink);
	if (rc == 0 && !live && sink && sink->tx(sink->ctx))
		rc = sweep(a, sink);
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
	a->st = NULL;
	if (rc < 0) {
		org_align_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int org_align_compute(struct store *st, const struct org_align_sink *sink,
		      struct org_align **out)
{
	return compute(st, sink, NULL, out);
}

int org_align_live(struct store *st, const struct org_align_live *live, struct org_align **out)
{
	return compute(st, NULL, live, out);
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
	for (size_t i = 0; i < a->srcs.n; i++) {
		free(((struct asrc *)a->srcs.v)[i].sreps);
		free(((struct asrc *)a->srcs.v)[i].canon.v);
	}
	free(a->srcs.v);
	free(a->rnodes.v);
	u64map_release(&a->replay);
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

void org_align_get_counts(const struct org_align *a, struct org_align_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (a)
		*out = a->counts;
}

size_t org_align_count(const struct org_align *a)
{
	return a ? a->reports.n : 0;
}

const struct org_align_report *org_align_get(const struct org_align *a, size_t i)
{
	return &((const struct org_align_report *)a->reports.v)[i];
}
