/*
 * build.c - one build of the organized tree: organize_run.
 *
 * A build first decides what to do from what the last complete build recorded (skip,
 * append, or a full build: can_append, org_state). Each build is a new generation. For
 * each complete source, in id order, a producer thread classifies (classify_source over
 * itree.c) and hands its results in blocks (struct jqueue) to the caller's thread, which
 * places them (place.c) in the producer's order, in one store transaction committed in
 * groups, and also while it waits for the producer. A final sweep deletes every
 * organized entry the new generation did not place, so a rebuild with other rules gives
 * exactly the tree a fresh ingest would; the last commit records what the build was
 * built from.
 *
 * Threads: the placer (organize_run's caller) and one producer per source; what each
 * owns is in organize_int.h.
 * Errors: 0 or -errno (organize.h). The first error on either thread stops both.
 *
 * SPDX-License-Identifier: MIT
 */
#include "organize_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/log.h"

#define ORG_COMMIT_META (8u << 20)	/* op log bytes per commit of the organizer */
#define ORG_IDLE_COMMIT (256u << 10)	/* ... and when it waits for its producer */

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
int org_group_commit(struct org *o)
{
	int rc;

	if (o->dry_run || store_txn_size(o->tx) <= ORG_COMMIT_META)
		return 0;
	rc = store_txn_commit(o->tx);
	o->tx = NULL;
	return rc < 0 ? rc : store_txn_begin(o->st, &o->tx);
}

void organize_stats_release(struct organize_stats *s)
{
	cls_tally_release(&s->cats);
	for (size_t i = 0; i < s->naligned; i++) {
		free(s->aligned[i].source);
		free(s->aligned[i].target_source);
		free(s->aligned[i].path);
		free(s->aligned[i].target);
	}
	free(s->aligned);
	memset(s, 0, sizeof(*s));
}

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

int org_queue_mime(struct jqueue *q, uint64_t file, const char *mime)
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
	rc = org_icache_take(o, r->entry->handle, &j->src);
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

/* Has the caller asked the build to stop (organize_run_stoppable)? */
static bool org_interrupted(const struct org *o)
{
#ifdef DFS_TEST_FAULTS
	/* DFS_FAULT_ORG_PAUSE=1: the build waits (up to 10 s) at its first check for the
	 * signal a test sends, so that it arrives while the build is under way */
	static bool paused;

	if (o->interrupt && !paused && getenv("DFS_FAULT_ORG_PAUSE")) {
		paused = true;
		for (int i = 0; i < 1000 && !*o->interrupt; i++)
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
#endif
	return o->interrupt && *o->interrupt;
}

/* The placer's: one job. */
static int run_job(struct org *o, struct job *j, const uint8_t *bytes)
{
	struct cls_result r = { 0 };

	if (j->kind == JOB_MIME) {
		org_apply_mime(o, j->file, (const char *)bytes + j->dest);
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
	return org_place(o, &r, &j->src);
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
		if (rc == 0 && org_interrupted(o))
			rc = -EINTR;
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

/* An organized directory being swept: its entries (read before any is deleted). */
struct sweep_frame {
	struct sweep_ent {
		uint8_t *name;
		size_t len;
		uint64_t ino;
		uint8_t t;
		bool keep;
	} *v;
	size_t n;
	size_t next;		/* the entry at hand */
	bool inside;		/* its inside is being swept (a frame above this one) */
	uint64_t dir;
};

static void sweep_frame_release(struct sweep_frame *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].name);
	free(f->v);
}

/* Reads directory @dir's entries into @f (zeroed by the caller). 0 or -errno. */
static int sweep_list(struct org *o, uint64_t dir, struct sweep_frame *f)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl, cap = 0;
	uint64_t child;
	uint8_t t;
	int rc;

	f->dir = dir;
	rc = store_txn_dir_open(o->tx, dir, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		struct sweep_ent *e;

		if (f->n == cap) {
			void *x;

			cap = cap ? cap * 2 : 64;
			x = realloc(f->v, cap * sizeof(*f->v));
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			f->v = x;
		}
		e = &f->v[f->n];
		e->name = malloc(nl);
		if (!e->name) {
			rc = -ENOMEM;
			break;
		}
		memcpy(e->name, nm, nl);
		e->len = nl;
		e->ino = child;
		e->t = t;
		e->keep = u64set_has(&o->placed, child);
		f->n++;
	}
	store_dir_close(di);
	return rc;
}

/*
 * Deletes every ORG entry under @root not placed by this generation, each directory's
 * inside before the directory (its entries in name order). The levels are a stack on the
 * heap; past ORG_MAX_DEPTH levels (memory), -ELOOP.
 */
static int sweep(struct org *o, uint64_t root)
{
	struct sweep_frame *v;
	size_t n = 0, cap = 64;
	int rc = 0;

	if (u64set_has(&o->fresh, root))
		return 0;	/* created by this build: nothing older inside */
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	rc = sweep_list(o, root, &v[n++]);
	while (n && rc == 0) {
		struct sweep_frame *f = &v[n - 1];
		struct sweep_ent *e;

		if (f->next == f->n) {
			sweep_frame_release(f);
			n--;
			continue;
		}
		e = &f->v[f->next];
		if (e->t == DT_DIR && !f->inside && !u64set_has(&o->fresh, e->ino)) {
			/* the directory's inside first, then the directory */
			f->inside = true;
			if (n > ORG_MAX_DEPTH) {
				rc = -ELOOP;
				break;
			}
			if (n == cap) {
				struct sweep_frame *x = realloc(v, cap * 2 * sizeof(*x));

				if (!x) {
					rc = -ENOMEM;
					break;
				}
				v = x;
				cap *= 2;
			}
			memset(&v[n], 0, sizeof(v[n]));
			rc = sweep_list(o, e->ino, &v[n++]);
			continue;
		}
		f->inside = false;
		f->next++;
		if (!e->keep) {
			rc = org_del_dirent(o, f->dir, e->name, e->len);
			if (rc == 0)
				rc = store_txn_del_inode(o->tx, e->ino);
			o->stats->removed++;
		}
		if (rc == 0)
			rc = org_group_commit(o);
	}
	while (n)
		sweep_frame_release(&v[--n]);
	free(v);
	return rc;
}

int org_drop_displaced(struct org *o, uint64_t dir, const uint8_t *name, size_t len,
		       uint64_t ino, uint8_t t)
{
	int rc = t == DT_DIR ? sweep(o, ino) : 0;

	if (rc == 0)
		rc = org_del_dirent(o, dir, name, len);
	if (rc == 0)
		rc = store_txn_del_inode(o->tx, ino);
	if (rc == 0)
		o->stats->removed++;
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
 * org_cls    org_fingerprint(): classify's algorithm version and rules, and the
 *            placement's version
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

uint64_t org_fingerprint(uint64_t cls_fp, unsigned placement_version)
{
	struct dfs_buf b;
	uint64_t v;

	if (placement_version == 1)
		return cls_fp;
	dfs_buf_init(&b, 64);
	dfs_buf_put_bytes(&b, "dfs-organize", 12);
	dfs_buf_put_u64(&b, placement_version);
	dfs_buf_put_u64(&b, cls_fp);
	v = hash_u64(&b);
	dfs_buf_release(&b);
	return v;
}

/*
 * What the tree about to be built depends on: the sources' views (the epoch defrag-ingest
 * advances with every change to them, and the complete sources: ids, names, roots,
 * @src_hash) and the algorithm (@cls_fp: org_fingerprint). Equal to the value the last
 * complete build recorded: nothing to do.
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

/* struct cls_tree's aligned(): the path copy alignment classifies directory @dir at. */
static bool tree_aligned(void *ctx, uint64_t dir, const uint8_t **path, size_t *len)
{
	const struct org *o = ctx;

	return org_align_path(o->align, dir, path, len);
}

static const char *src_name(const struct org_src_list *srcs, uint32_t id)
{
	for (size_t i = 0; i < srcs->n; i++)
		if (srcs->v[i].id == id)
			return (const char *)srcs->v[i].name.p;
	return "?";
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

/* struct org_align_sink: alignment's records go through the build's transaction. */
static struct store_txn *align_tx(void *ctx)
{
	struct org *o = ctx;

	return o->dry_run ? NULL : o->tx;
}

static int align_commit(void *ctx)
{
	return org_group_commit(ctx);
}

/* The alignments of the sources with an id above @after into out->aligned. */
static int align_stats(const struct org_align *a, const struct org_src_list *srcs,
		       uint32_t after, struct organize_stats *out)
{
	size_t n = org_align_count(a);

	out->aligned = calloc(n ? n : 1, sizeof(*out->aligned));
	if (!out->aligned)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct org_align_report *r = org_align_get(a, i);
		struct organize_alignment *x = &out->aligned[out->naligned];

		if (r->source <= after)
			continue;
		out->naligned++;
		x->source = strdup(src_name(srcs, r->source));
		x->target_source = strdup(src_name(srcs, r->target_source));
		x->path = dup_bytes(r->path, r->path_len);
		x->target = dup_bytes(r->target, r->target_len);
		x->path_len = r->path_len;
		x->target_len = r->target_len;
		x->similarity = r->similarity;
		x->identical = r->identical;
		x->changed = r->changed;
		x->only_here = r->only_here;
		x->only_there = r->only_there;
		if (!x->source || !x->target_source || !x->path || !x->target)
			return -ENOMEM;
	}
	return 0;
}

int organize_run(struct store *st, const char *rules, unsigned flags,
		 struct organize_stats *out, char *err, size_t errlen)
{
	return organize_run_stoppable(st, rules, flags, NULL, out, err, errlen);
}

int organize_run_stoppable(struct store *st, const char *rules, unsigned flags,
			   const volatile sig_atomic_t *interrupt, struct organize_stats *out,
			   char *err, size_t errlen)
{
	bool dry_run = flags & ORG_DRY_RUN, force = flags & ORG_FORCE;
	struct cls_tree tree = { .list = org_tree_list, .head = org_tree_head,
				 .mime_computed = org_tree_mime, .aligned = tree_aligned };
	struct org_src_list srcs = { 0 };
	struct classify *cls = NULL;
	struct org o = { 0 };
	struct org_built last = { 0 }, now = { 0 };
	struct timespec t0, t1;
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = classify_open_store(st, rules, &cls, err, errlen);
	if (rc < 0)
		return rc;
	o.st = st;
	o.stats = out;
	dfs_buf_init(&o.place_path, ORG_PATH_MAX);
	dfs_buf_init(&o.place_origin, ORG_PATH_MAX);
	o.dry_run = dry_run;
	o.interrupt = interrupt;
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
	now.cls = org_fingerprint(classify_fingerprint(cls), ORG_PLACEMENT_VERSION);
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
	/* copy alignment, from the index alone, before anything is placed */
	{
		struct org_align_sink sink = { .ctx = &o, .tx = align_tx, .commit = align_commit };
		struct org_align_counts ac;
		struct timespec a0, a1;

		clock_gettime(CLOCK_MONOTONIC, &a0);
		rc = org_align_compute(st, &sink, &o.align);
		clock_gettime(CLOCK_MONOTONIC, &a1);
		org_align_get_counts(o.align, &ac);
		out->align_dirs_read = ac.dirs_read;
		out->align_dirs_loaded = ac.dirs_loaded;
		out->align_dirs_listed = ac.dirs_listed;
		out->align_replayed = ac.sources_replayed;
		out->align_lookups = ac.lookups;
		out->align_swept = ac.sources_swept;
		out->align_seconds = (double)(a1.tv_sec - a0.tv_sec) +
				     (double)(a1.tv_nsec - a0.tv_nsec) / 1e9;
	}
	if (rc == 0)
		rc = align_stats(o.align, &srcs, o.append ? last.src_max : 0, out);
	if (rc == 0 && org_interrupted(&o))
		rc = -EINTR;
	if (rc < 0)
		goto out;
	o.icache = calloc(ICACHE_SLOTS, sizeof(*o.icache));
	if (!o.icache)
		rc = -ENOMEM;
	else if (!o.append)
		rc = org_put_dir(&o, STORE_ROOT_INO, NULL, NULL, NULL);
	for (size_t i = 0; i < srcs.n && rc == 0; i++) {
		if (!src_complete(&srcs.v[i]))
			continue;	/* never completed: nothing to show yet */
		if (o.append && srcs.v[i].id <= last.src_max)
			continue;	/* placed by the last build, unchanged */
		o.src = &srcs.v[i];
		org_chain_cut(&o, 0);
		/* a unit is known by its source-relative path within one source only */
		free(o.unit_src);
		free(o.unit_eff);
		o.unit_src = o.unit_eff = NULL;
		o.unit_src_len = o.unit_eff_len = 0;
		rc = organize_source(&o, cls, &tree, &srcs.v[i]);
		if (rc == 0 && o.err)
			rc = o.err;
	}
	if (rc == 0 && org_interrupted(&o))
		rc = -EINTR;
	if (rc == 0 && !dry_run && (flags & ORG_FLUSH))
		store_flush_start(st);
	org_chain_cut(&o, 0);
	org_dc_clear_all(&o);	/* the sweep lists what it needs */
	if (rc == 0)
		rc = org_finish_kept(&o);
	if (rc == 0)
		rc = org_wit_flush(&o);
	/* an append build removes nothing: every older entry is still placed */
	if (rc == 0 && !dry_run && !o.append)
		rc = sweep(&o, STORE_ROOT_INO);
	/* the relative symlinks, against the complete tree */
	if (rc == 0 && !dry_run)
		rc = org_links_check(&o);
	/* only a complete build records what it was built from (in its last commit) */
	if (rc == 0 && !dry_run)
		rc = org_built_rw(o.tx, &now, true);
	if (rc == 0 && !dry_run) {
		rc = store_txn_commit(o.tx);
		o.tx = NULL;
	}
out:
	if (rc == -EINTR && o.tx && !dry_run) {
		/* what is placed is kept; the next build is a full one (o.gen was taken) */
		int crc = store_txn_commit(o.tx);

		o.tx = NULL;
		if (crc < 0)
			rc = crc;
	}
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "%s", rc == -EINTR ? "interrupted" : dfs_strerror(rc));
	store_txn_abort(o.tx);
	codec_free(o.codec);
	if (cls) {
		struct cls_counts cc;

		classify_counts(cls, &cc);
		out->dirs = cc.dirs;
		out->dirs_split = cc.dirs_split;
		out->files = cc.files;
		out->files_unsorted = cc.files_unsorted;
	}
	classify_close(cls);
	free(o.unit_src);
	free(o.unit_eff);
	dfs_buf_release(&o.place_path);
	dfs_buf_release(&o.place_origin);
	u64set_release(&o.placed);
	u64set_release(&o.fresh);
	u64set_release(&o.fresh_names);
	u64map_release(&o.kept);
	pathmap_release(&o.dirs);
	org_dc_clear_all(&o);
	free(o.dc);
	u64map_release(&o.dc_slot);
	u64set_release(&o.dc_big);
	org_itree_release(&o);
	org_align_free(o.align);
	org_wit_release(&o);
	org_links_release(&o);
	for (size_t i = 0; i < srcs.n; i++)
		store_source_release(&srcs.v[i]);
	free(srcs.v);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return rc;
}

int organize_align_live(struct store *st, const char *name,
			const struct org_align_live_entry *e, size_t n, struct organize_stats *out)
{
	struct org_src_list srcs = { 0 };
	struct org_align_live live = { .source = ORG_ALIGN_LIVE_NEW, .e = e, .n = n };
	struct org_align *a = NULL;
	struct org_align_counts ac;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_each_source(st, collect_src, &srcs);
	for (size_t i = 0; rc == 0 && i < srcs.n; i++)
		if (srcs.v[i].name.len == strlen(name) &&
		    !memcmp(srcs.v[i].name.p, name, srcs.v[i].name.len))
			live.source = srcs.v[i].id;
	if (rc == 0 && live.source == ORG_ALIGN_LIVE_NEW) {
		/* the live tree's name, for its reports */
		struct store_source l = { .id = ORG_ALIGN_LIVE_NEW, .root_ino = 1,
					  .name = { .p = (uint8_t *)(uintptr_t)name,
						    .len = strlen(name) } };

		rc = collect_src(&srcs, &l);
	}
	if (rc == 0)
		rc = org_align_live(st, &live, &a);
	if (rc == 0)
		rc = align_stats(a, &srcs, live.source - 1, out);
	org_align_get_counts(a, &ac);
	out->align_dirs_read = ac.dirs_read;
	out->align_dirs_loaded = ac.dirs_loaded;
	out->align_dirs_listed = ac.dirs_listed;
	out->align_replayed = ac.sources_replayed;
	out->align_lookups = ac.lookups;
	org_align_free(a);
	for (size_t i = 0; i < srcs.n; i++)
		store_source_release(&srcs.v[i]);
	free(srcs.v);
	return rc;
}
