/*
 * store_gc.c - garbage collection: mark, sweep, rewrite packs (store_gc, store.h).
 *
 * Mark: every inode (the inode table is the union of every view) names its content; every
 * marked content names its chunks. Both sets are struct fpset (sorted arrays: 32 bytes
 * an id). Sweep: unmarked content records are deleted, unmarked chunks dropped
 * (ENC_OP_DROP with the first pack id the gc may write, so that recovery drops exactly
 * the copies written before the gc: enc.h). Rewrite: see store.h; the order of the
 * steps is what makes a crash harmless: copies appended, synced and named by one commit
 * that also removes the old packs from the index, and only then the old files unlinked.
 *
 * Threads: the caller's only; holds the writer's transaction slot for its run.
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enc.h"
#include "hset.h"
#include "log.h"
#include "sio.h"
#include "store_int.h"

#define GC_COMMIT_BYTES (8u << 20)	/* op log bytes per sweep commit */

struct gc_pack {
	uint32_t id;
	uint64_t committed;
	uint64_t live;		/* live chunk records' bytes, then META records' too */
};

struct gc {
	struct store *st;
	const struct store_gc_opts *o;
	struct store_gc_report *rep;
	struct fpset contents, chunks;
	struct u64map live;	/* pack id -> live chunk record bytes */
	struct store_txn *tx;
	uint32_t bound;
	/* the pack being rewritten */
	uint32_t cur;
	uint64_t moved;
	int err;
};

/* Commits the sweep's transaction when it is large (or @force), and opens the next. */
static int gc_commit(struct gc *g, bool force)
{
	int rc;

	if (!g->tx || (!force && store_txn_size(g->tx) < GC_COMMIT_BYTES))
		return 0;
	rc = store_txn_commit(g->tx);
	g->tx = NULL;
	if (rc < 0)
		return rc;
	g->rep->commits++;
	return force ? 0 : store_txn_begin(g->st, &g->tx);
}

static int mark_inodes(struct gc *g)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_new(g->st->ix, NULL, IDX_INODES, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct store_inode in;
		uint64_t ino = kl == 8 ? dfs_get_be64(k) : 0;

		rc = kl == 8 ? dec_inode(ino, v, vl, &in) : -EBADMSG;
		if (rc < 0) {
			dfs_err("gc: inode %" PRIu64 " does not decode: nothing is swept; run "
				"defrag-verify", ino);
			rc = -EBADMSG;
			break;
		}
		g->rep->inodes++;
		if (in.has_content)
			rc = fpset_add(&g->contents, &in.content);
		store_inode_release(&in);
		if (rc < 0)
			break;
	}
	idx_iter_free(it);
	return rc;
}

/* Content records: a live one's chunks are marked, a dead one's keys noted in @dead. */
static int mark_contents(struct gc *g, struct dfs_buf *dead)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_new(g->st->ix, NULL, IDX_CONTENTS, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct enc_extent *ext = NULL;
		struct fp256 cid;
		size_t n = 0;
		int drc = 0;

		if (kl != FP_LEN && kl != FP_LEN + 4)
			continue;
		memcpy(cid.b, k, FP_LEN);
		if (!fpset_has(&g->contents, &cid)) {
			if (kl == FP_LEN)
				g->rep->contents_swept++;
			dfs_buf_put_bytes(dead, k, kl);
			rc = dead->err;
			if (rc < 0)
				break;
			continue;
		}
		if (kl == FP_LEN)
			g->rep->contents_live++;
		drc = store_content_rec_extents(kl, v, vl, &ext, &n);
		if (drc < 0) {
			char hex[FP_HEX_LEN + 1];

			fp_to_hex(&cid, hex);
			dfs_err("gc: content %.16s does not decode: nothing is swept; run "
				"defrag-verify", hex);
			rc = -EBADMSG;
			break;
		}
		for (size_t i = 0; i < n && rc >= 0; i++)
			if (!ext[i].hole)
				rc = fpset_add(&g->chunks, &ext[i].chunk);
		free(ext);
		if (rc < 0)
			break;
		rc = 0;
	}
	idx_iter_free(it);
	return rc;
}

/* Chunks: live ones count for their pack, dead ones are noted in @dead (id, loc). */
static int mark_chunks(struct gc *g, struct dfs_buf *dead)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_new(g->st->ix, NULL, IDX_CHUNKS, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct store_chunk_loc loc;
		struct fp256 id;
		uint64_t cur = 0;

		if (kl != FP_LEN || dec_chunk_loc(v, vl, &loc) < 0) {
			dfs_err("gc: index: corrupt chunk record: nothing is swept");
			rc = -EBADMSG;
			break;
		}
		memcpy(id.b, k, FP_LEN);
		if (!fpset_has(&g->chunks, &id)) {
			g->rep->chunks_swept++;
			g->rep->swept_raw += loc.raw_len;
			g->rep->swept_stored += loc.stored_len;
			dfs_buf_append(dead, &id, sizeof(id));
			dfs_buf_append(dead, &loc, sizeof(loc));
			rc = dead->err;
			if (rc < 0)
				break;
			continue;
		}
		g->rep->chunks_live++;
		u64map_get(&g->live, loc.pack, &cur);
		rc = u64map_put(&g->live, loc.pack, cur + PACK_REC_HDR + loc.stored_len);
		if (rc < 0)
			break;
	}
	idx_iter_free(it);
	return rc;
}

static int sweep(struct gc *g, const struct dfs_buf *dead_contents,
		 const struct dfs_buf *dead_chunks)
{
	struct dfs_rd r;
	size_t kl;
	int rc = 0;

	dfs_rd_init(&r, dead_contents->data, dead_contents->len);
	while (rc == 0 && r.left) {
		const uint8_t *k = dfs_rd_bytes(&r, &kl);

		rc = k ? store_txn_del_key(g->tx, IDX_CONTENTS, k, kl) : -EBADMSG;
		if (rc == 0)
			rc = gc_commit(g, false);
	}
	for (size_t off = 0; rc == 0 && off < dead_chunks->len;) {
		struct fp256 id;
		struct store_chunk_loc loc;

		memcpy(&id, dead_chunks->data + off, sizeof(id));
		memcpy(&loc, dead_chunks->data + off + sizeof(id), sizeof(loc));
		off += sizeof(id) + sizeof(loc);
		rc = store_txn_drop_chunk(g->tx, &id, &loc, g->bound);
		if (rc == 0)
			rc = gc_commit(g, false);
	}
	return rc;
}

/* The bytes of META records in pack @fd from @off to @end (record headers only). */
static int meta_bytes(const struct pack_src *src, uint64_t off, uint64_t end,
		      uint64_t *bytes)
{
	uint8_t hdr[PACK_REC_HDR];
	struct pack_rec r;

	*bytes = 0;
	while (off + PACK_REC_HDR <= end) {
		ssize_t n = pack_src_pread(src, hdr, sizeof(hdr), off);

		if (n < 0)
			return (int)n;
		if ((size_t)n < sizeof(hdr) || pack_rec_decode(hdr, &r) < 0)
			return 0;	/* damage: the rewrite's own walk finds it */
		if (r.type == PACK_REC_META)
			*bytes += PACK_REC_HDR + r.stored_len;
		off += PACK_REC_HDR + r.stored_len;
	}
	return 0;
}

static int cmp_live(const void *a, const void *b)
{
	const struct gc_pack *x = a, *y = b;
	/* live fraction, ascending: x.live/x.committed < y.live/y.committed */
	unsigned __int128 l = (unsigned __int128)x->live * y->committed,
			  r = (unsigned __int128)y->live * x->committed;

	if (l != r)
		return l < r ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* The packs to rewrite, least live first, within the budget. */
static int pick_packs(struct gc *g, struct gc_pack **out, size_t *nout)
{
	unsigned pct = g->o->live_pct ? g->o->live_pct : STORE_GC_LIVE_PCT;
	struct gc_pack *v = NULL;
	size_t n = 0, cap = 0, keep = 0;
	struct idx_iter *it;
	const uint8_t *k, *val;
	size_t kl, vl;
	uint64_t budget = 0;
	int rc = idx_iter_new(g->st->ix, NULL, IDX_PACKS, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		struct gc_pack p = { 0 };
		bool sealed;

		if (kl != 4 || dec_pack_val(val, vl, &p.committed, &sealed) < 0)
			continue;	/* verify's to report */
		p.id = dfs_get_be32(k);
		g->rep->packs_before++;
		g->rep->pack_bytes_before += p.committed;
		u64map_get(&g->live, p.id, &p.live);
		if (p.id >= g->bound || p.live * 100 >= p.committed * pct)
			continue;
		if (n == cap) {
			struct gc_pack *nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = p;
	}
	idx_iter_free(it);
	/* META records are live too (recovery needs every one) */
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct pack_src src;
		uint64_t hlen, mb = 0;
		uint32_t hid;

		if (store_pack_src_get(g->st, v[i].id, &src) < 0) {
			v[i].live = UINT64_MAX;	/* missing: verify's to report; never picked */
			continue;
		}
		if (pack_header_read(&src, &hid, &hlen, NULL) == 0)
			rc = meta_bytes(&src, hlen, v[i].committed, &mb);
		else
			mb = UINT64_MAX - v[i].live;	/* damaged header: not picked */
		store_pack_src_put(g->st, &src);
		v[i].live += mb;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if (v[i].live != UINT64_MAX && v[i].live * 100 < v[i].committed * pct)
			v[keep++] = v[i];
	n = rc == 0 ? keep : 0;
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_live);
	keep = 0;
	for (size_t i = 0; i < n; i++) {
		if (g->o->max_rewrite && budget + v[i].live > g->o->max_rewrite) {
			g->rep->packs_over_budget++;
			continue;
		}
		budget += v[i].live;
		v[keep++] = v[i];
	}
	*out = v;
	*nout = keep;
	return rc;
}

/* pack_scan's callback over a pack being rewritten: live chunks and META records out. */
static int copy_record(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload)
{
	struct gc *g = arg;
	struct store_chunk_loc loc;
	const uint8_t *data;
	uint32_t dlen;
	int rc;

	if (r->type == PACK_REC_META) {
		pthread_mutex_lock(&g->st->wlock);
		rc = store_append_locked(g->st, r, payload, &loc);
		pthread_mutex_unlock(&g->st->wlock);
		if (rc == 0) {
			g->rep->meta_carried++;
			g->moved += PACK_REC_HDR + r->stored_len;
		}
		return rc;
	}
	rc = store_chunk_locate(g->st, &r->id, &loc);
	if (rc == -ENOENT)
		return 0;	/* garbage */
	if (rc < 0)
		return rc;
	if (loc.pack != g->cur || loc.off != off)
		return 0;	/* an older copy; the index names another */
	/* what the codec made (a version 2 record's table aside: the copy gets its own) */
	data = pack_rec_data(r, payload, &dlen);
	rc = store_repair_chunk(g->st, &r->id, r->raw_len, data, dlen, (enum codec_id)r->codec);
	if (rc < 0)
		return rc;
	g->moved += PACK_REC_HDR + r->stored_len;
	return 0;
}

/* Copies the live records of pack @p; 1 if it can go (every live byte copied), 0 if not. */
static int copy_pack(struct gc *g, const struct gc_pack *p)
{
	struct pack_src src;
	uint64_t hlen, end = 0;
	uint32_t hid;
	bool torn = false;
	int rc;

	if (store_pack_src_get(g->st, p->id, &src) < 0)
		return 0;
	rc = pack_header_read(&src, &hid, &hlen, NULL);
	if (rc == 0 && hid != p->id)
		rc = -EBADMSG;
	g->cur = p->id;
	g->moved = 0;
	if (rc == 0)
		rc = pack_scan(&src, p->id, hlen, copy_record, g, &end, &torn);
	store_pack_src_put(g->st, &src);
	if (rc == -EBADMSG || (rc == 0 && (end != p->committed || g->moved != p->live))) {
		dfs_warn("gc: pack %08" PRIx32 " is not whole (a damaged record?): its live "
			 "records were copied, the pack is kept; run defrag-verify", p->id);
		g->rep->packs_kept_damaged++;
		return 0;
	}
	if (rc < 0)
		return rc;
	g->rep->copied_bytes += g->moved;
	return 1;
}

/* Removes the files of packs the last commit dropped from the index. */
static void remove_packs(struct gc *g, const uint32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = store_pack_remove(g->st, ids[i]);

		if (rc < 0 && rc != -ENOENT)
			dfs_warn("gc: pack %08" PRIx32 ": cannot remove it (%s); the next gc "
				 "removes it", ids[i], dfs_strerror(rc));
	}
}

#define GC_PACKS_PER_COMMIT 16

static int rewrite(struct gc *g, const struct gc_pack *v, size_t n)
{
	uint32_t ids[GC_PACKS_PER_COMMIT];
	size_t nid = 0;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!g->tx)
			rc = store_txn_begin(g->st, &g->tx);
		if (rc == 0)
			rc = copy_pack(g, &v[i]);
		if (rc == 1) {
			/* sealed before the gc appended anything: all of it is committed */
			store_drop_dirty(g->st, v[i].id);
			store_txn_retire_pack(g->tx, v[i].id);
			ids[nid++] = v[i].id;
			g->rep->packs_rewritten++;
			g->rep->rewritten_bytes += v[i].committed;
			rc = 0;
		}
		if (rc == 0 && (nid == GC_PACKS_PER_COMMIT || i + 1 == n)) {
			rc = gc_commit(g, true);
			if (rc == 0)
				remove_packs(g, ids, nid);
			nid = 0;
		}
	}
	return rc;
}

static int count_after(struct gc *g)
{
	struct store_stats ss;
	int rc = store_get_stats(g->st, &ss);

	if (rc == 0) {
		g->rep->packs_after = ss.packs;
		g->rep->pack_bytes_after = ss.pack_bytes;
	}
	return rc;
}

int store_gc(struct store *st, const struct store_gc_opts *o, struct store_gc_report *rep)
{
	struct gc g = { .st = st, .o = o, .rep = rep };
	struct dfs_buf dead_contents, dead_chunks;
	struct gc_pack *packs = NULL;
	size_t npacks = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (st->mode != STORE_WRITER)
		return -EROFS;
	dfs_buf_init(&dead_contents, SIZE_MAX / 2);
	dfs_buf_init(&dead_chunks, SIZE_MAX / 2);
	rc = mark_inodes(&g);
	if (rc == 0)
		rc = mark_contents(&g, &dead_contents);
	if (rc == 0)
		rc = mark_chunks(&g, &dead_chunks);
	/*
	 * Every record appended from here on is in a pack >= bound (enc.h, ENC_OP_DROP): the
	 * pack being appended to takes no more (recorded sealed by the gc's first commit,
	 * the one with the drops), and may itself be rewritten.
	 */
	if (o->dry_run) {
		pthread_mutex_lock(&st->wlock);
		g.bound = st->next_pack;
		pthread_mutex_unlock(&st->wlock);
	} else {
		g.bound = store_seal_current(st);
	}
	if (rc == 0)
		rc = pick_packs(&g, &packs, &npacks);
	if (rc == 0 && o->dry_run) {
		for (size_t i = 0; i < npacks; i++) {
			rep->packs_rewritten++;
			rep->rewritten_bytes += packs[i].committed;
			rep->copied_bytes += packs[i].live;
		}
		rep->packs_after = rep->packs_before;
		rep->pack_bytes_after = rep->pack_bytes_before;
		goto out;
	}
	if (rc == 0 && (dead_contents.len || dead_chunks.len)) {
		rc = store_txn_begin(st, &g.tx);
		if (rc == 0)
			rc = sweep(&g, &dead_contents, &dead_chunks);
		if (rc == 0)
			rc = gc_commit(&g, true);
	}
	if (rc == 0 && npacks)
		rc = rewrite(&g, packs, npacks);
	if (rc == 0)
		store_remove_orphans(st);	/* objects an earlier delete failed to remove */
	if (rc == 0)
		rc = count_after(&g);
out:
	store_txn_abort(g.tx);
	free(packs);
	fpset_release(&g.contents);
	fpset_release(&g.chunks);
	u64map_release(&g.live);
	dfs_buf_release(&dead_contents);
	dfs_buf_release(&dead_chunks);
	return rc;
}

/* ---- what each source and snapshot costs (store_usage_by_source) ----------------------- */

#define OWNER_NONE UINT32_MAX	/* no snapshot: the organized tree, or a record no root reaches */

/* A content or chunk referenced by snapshots a..b (indices) of source src, or OWNER_NONE. */
struct own {
	struct fp256 id;
	uint32_t src;
	uint32_t a, b;
};

struct owns {
	struct own *v;
	size_t n, cap;
};

static int own_push(struct owns *o, const struct fp256 *id, uint32_t src, uint32_t a,
		    uint32_t b)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 4096;
		struct own *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n] = (struct own){ .id = *id, .src = src, .a = a, .b = b };
	o->n++;
	return 0;
}

static int cmp_own(const void *x_, const void *y_)
{
	const struct own *x = x_, *y = y_;
	int c = memcmp(x->id.b, y->id.b, FP_LEN);

	if (c)
		return c;
	if (x->src != y->src)
		return x->src < y->src ? -1 : 1;
	if (x->a != y->a)
		return x->a < y->a ? -1 : 1;
	return (x->b > y->b) - (x->b < y->b);
}

/*
 * Sorts @o and drops repeated pairs; with @mirror also (id, OWNER_NONE) when a snapshot
 * references id (contents: the organized tree mirrors the newest snapshots).
 */
static void own_sort(struct owns *o, bool mirror)
{
	size_t k = 0;

	if (o->n > 1)
		qsort(o->v, o->n, sizeof(*o->v), cmp_own);
	for (size_t i = 0; i < o->n; i++) {
		if (k && fp_equal(&o->v[k - 1].id, &o->v[i].id) &&
		    (!cmp_own(&o->v[k - 1], &o->v[i]) ||
		     (mirror && o->v[i].src == OWNER_NONE)))
			continue;	/* OWNER_NONE sorts last among one id's pairs */
		o->v[k++] = o->v[i];
	}
	o->n = k;
}

/* The first pair of @id in sorted @o, or o->n. */
static size_t own_find(const struct owns *o, const struct fp256 *id)
{
	size_t lo = 0, hi = o->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(o->v[mid].id.b, id->b, FP_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < o->n && fp_equal(&o->v[lo].id, id) ? lo : o->n;
}

static struct store_src_usage *usage_of(struct store_usage *u, uint32_t source)
{
	if (source >= u->n) {
		struct store_src_usage *v = realloc(u->v, (source + 1) * sizeof(*v));

		if (!v)
			return NULL;
		memset(v + u->n, 0, (source + 1 - u->n) * sizeof(*v));
		for (size_t i = u->n; i <= source; i++)
			v[i].source = (uint32_t)i;
		u->v = v;
		u->n = source + 1;
	}
	return &u->v[source];
}

/*
 * Contents: (content, OWNER_NONE) for every inode that names one (what gc marks from), or
 * with @below for the organized entries it does not hold (--du: the rest of the tree).
 */
static int usage_inodes(struct store *st, struct owns *co, const struct u64set *below)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_new(st->ix, NULL, IDX_INODES, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct store_inode in;

		uint64_t ino = kl == 8 ? dfs_get_be64(k) : 0;

		rc = kl == 8 ? dec_inode(ino, v, vl, &in) : -EBADMSG;
		if (rc < 0)
			break;
		if (in.has_content && (!below || (in.view == STORE_VIEW_ORG &&
						  !u64set_has(below, ino))))
			rc = own_push(co, &in.content, OWNER_NONE, 0, 0);
		store_inode_release(&in);
		if (rc < 0)
			break;
	}
	idx_iter_free(it);
	return rc;
}

/*
 * A tree walk's entry (store_walk_tree): 1 for a directory (walk into it), 0 to go on, 2
 * with a regular file's record in @in (the caller releases it) when @seen did not hold
 * it yet (only the files with several names are added, or all with @all), or -errno.
 */
static int walk_file(struct store *st, uint64_t ino, uint8_t dtype, struct u64set *seen,
		     bool all, struct store_inode *in)
{
	int rc;

	if (dtype == DT_DIR)
		return 1;
	if (dtype != DT_REG)
		return 0;
	rc = store_get_inode(st, ino, in);
	if (rc == -ENOENT)
		return 0;	/* verify's to report */
	if (rc < 0)
		return rc;
	if ((all || in->nlink > 1) && (rc = u64set_add(seen, ino)) <= 0) {
		store_inode_release(in);
		return rc;	/* met already in this walk (0), or -ENOMEM */
	}
	return 2;
}

/* One source's snapshots walked in order (usage_walk). */
struct uwalk {
	struct store *st;
	struct owns *co;
	uint32_t src;
	uint32_t i;			/* the snapshot walked */
	struct store_snap_usage *su;	/* its figures */
	struct u64map last;		/* content (first 8 bytes, never 0) -> its pair + 1 */
	struct u64set links;		/* inodes with several names met in this walk */
};

static int uwalk_entry(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
		       uint8_t dtype)
{
	struct uwalk *w = arg;
	struct store_inode in;
	uint64_t key, at = 0;
	int rc;

	(void)path;
	(void)depth;
	rc = walk_file(w->st, ino, dtype, &w->links, false, &in);
	if (rc != 2)
		return rc;
	rc = 0;
	if (in.has_content) {
		bool found, push = true, map;

		w->su->files++;
		w->su->logical += in.size;
		memcpy(&key, in.content.b, sizeof(key));
		key |= 1;
		found = u64map_get(&w->last, key, &at);
		map = !found;	/* a content with the same first 8 bytes keeps the slot */
		if (found && fp_equal(&w->co->v[at - 1].id, &in.content)) {
			struct own *p = &w->co->v[at - 1];

			map = true;
			if (p->b == w->i) {
				push = false;	/* met already in this snapshot */
			} else if (p->b + 1 == w->i) {
				p->b = w->i;	/* referenced by the previous snapshot too */
				push = false;
			}	/* else a gap: a new run of snapshots */
		}
		if (push)
			rc = own_push(w->co, &in.content, w->src, w->i, w->i);
		if (rc == 0 && push && map)
			rc = u64map_put(&w->last, key, w->co->n);
	}
	store_inode_release(&in);
	return rc;
}

/* Walks every snapshot of @s into @co, and the view /.sources/NAME shows when no snapshot
 * has its root (a store from before history, an ingest under way) as one more. */
static int usage_walk(struct store *st, struct store_usage *u, const struct store_source *s,
		      struct owns *co)
{
	struct store_src_usage *su = usage_of(u, s->id);
	struct uwalk w = { .st = st, .co = co, .src = s->id };
	struct dfs_buf path;
	uint64_t cur = 0;
	uint8_t t;
	size_t n;
	int rc = 0;

	if (!su)
		return -ENOMEM;
	if (store_lookup(st, STORE_SOURCES_INO, s->name.p, s->name.len, &cur, &t) < 0 ||
	    t != DT_DIR)
		cur = 0;
	n = s->nsnaps + (cur && (!s->nsnaps || s->snaps[s->nsnaps - 1].root != cur));
	su->snaps = calloc(n ? n : 1, sizeof(*su->snaps));
	if (!su->snaps)
		return -ENOMEM;
	su->nsnaps = s->nsnaps;
	dfs_buf_init(&path, SIZE_MAX / 2);
	for (size_t i = 0; i < n && rc == 0; i++) {
		w.i = (uint32_t)i;
		w.su = &su->snaps[i];
		if (i < s->nsnaps)
			w.su->time = s->snaps[i].time;
		u64set_release(&w.links);
		rc = store_walk_tree(st, i < s->nsnaps ? s->snaps[i].root : cur, &path,
				     uwalk_entry, &w);
	}
	if (rc == 0 && n) {
		su->files = su->snaps[n - 1].files;
		su->logical = su->snaps[n - 1].logical;
	}
	dfs_buf_release(&path);
	u64set_release(&w.links);
	u64map_release(&w.last);
	return rc;
}

struct usage_src_ctx {
	struct store *st;
	struct store_usage *u;
	struct owns *co;
};

static int usage_src(void *arg, const struct store_source *s)
{
	struct usage_src_ctx *c = arg;

	return usage_walk(c->st, c->u, s, c->co);
}

/* Contents' owners pass to their chunks: @ch gets (chunk, owner) pairs. */
static int usage_contents(struct store *st, struct owns *co, struct owns *ch)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_new(st->ix, NULL, IDX_CONTENTS, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct enc_extent *ext = NULL;
		struct fp256 cid;
		size_t n = 0, at;

		if (kl != FP_LEN && kl != FP_LEN + 4)
			continue;
		memcpy(cid.b, k, FP_LEN);
		at = own_find(co, &cid);
		if (at == co->n)
			continue;	/* garbage: nothing names it */
		rc = store_content_rec_extents(kl, v, vl, &ext, &n);
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (ext[i].hole)
				continue;
			for (size_t j = at; j < co->n && fp_equal(&co->v[j].id, &cid) && rc == 0;
			     j++)
				rc = own_push(ch, &ext[i].chunk, co->v[j].src, co->v[j].a,
					      co->v[j].b);
		}
		free(ext);
		if (rc < 0)
			break;
	}
	idx_iter_free(it);
	return rc;
}

/*
 * One chunk's pairs @p[0..n) (sorted): to its sources (one alone: unique) and to each
 * snapshot they cover (one snapshot alone, of one source, nothing else: unique).
 */
static void usage_chunk(struct store_usage *u, const struct own *p, size_t n,
			const struct store_chunk_loc *loc)
{
	bool one_src = p[0].src != OWNER_NONE && p[n - 1].src == p[0].src;
	bool one_snap = one_src;

	for (size_t j = 1; j < n && one_snap; j++)
		one_snap = p[j].a == p[0].a && p[j].b == p[0].b;
	one_snap = one_snap && p[0].a == p[0].b;
	for (size_t j = 0; j < n;) {
		struct store_src_usage *s = p[j].src < u->n ? &u->v[p[j].src] : NULL;
		size_t end = j;
		uint32_t next = 0;	/* the first snapshot not counted yet */

		while (end < n && p[end].src == p[j].src)
			end++;
		if (s) {
			if (one_src) {
				s->unique_chunks++;
				s->unique_stored += loc->stored_len;
			} else {
				s->shared_chunks++;
				s->shared_stored += loc->stored_len;
			}
		}
		/* sorted by a: each covered snapshot once */
		for (size_t q = j; s && q < end; q++) {
			for (uint32_t i = p[q].a > next ? p[q].a : next; i <= p[q].b; i++) {
				struct store_snap_usage *x = i < s->nsnaps ? &s->snaps[i] : NULL;

				if (x && one_snap) {
					x->unique_chunks++;
					x->unique_stored += loc->stored_len;
				} else if (x) {
					x->shared_chunks++;
					x->shared_stored += loc->stored_len;
				}
			}
			if (p[q].b + 1 > next)
				next = p[q].b + 1;
		}
		j = end;
	}
}

/* A chunk's sorted pairs @p[0..n) to @arg's figures (n = 0: nothing names it). */
typedef void chunk_tally_fn(void *arg, const struct own *p, size_t n,
			    const struct store_chunk_loc *loc);

static void usage_tally(void *arg, const struct own *p, size_t n,
			const struct store_chunk_loc *loc)
{
	struct store_usage *u = arg;

	if (!n) {
		u->garbage_chunks++;
		u->garbage_stored += loc->stored_len;
	} else {
		usage_chunk(u, p, n, loc);
	}
}

/* Chunks in key order beside the sorted pairs @ch, each chunk's to @tally. */
static int usage_chunks(struct store *st, chunk_tally_fn *tally, void *arg,
			const struct owns *ch)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl, at = 0;
	int rc = idx_iter_new(st->ix, NULL, IDX_CHUNKS, "", 0, NULL, 0, &it);

	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct store_chunk_loc loc;
		size_t end;

		if (kl != FP_LEN || dec_chunk_loc(v, vl, &loc) < 0) {
			rc = -EBADMSG;
			break;
		}
		while (at < ch->n && memcmp(ch->v[at].id.b, k, FP_LEN) < 0)
			at++;
		for (end = at; end < ch->n && memcmp(ch->v[end].id.b, k, FP_LEN) == 0; end++)
			;
		tally(arg, ch->v + at, end - at, &loc);
		at = end;
	}
	idx_iter_free(it);
	return rc;
}

int store_usage_by_source(struct store *st, struct store_usage *out)
{
	struct owns co = { 0 }, ch = { 0 };
	struct usage_src_ctx c = { .st = st, .u = out, .co = &co };
	int rc;

	memset(out, 0, sizeof(*out));
	rc = usage_inodes(st, &co, NULL);
	if (rc == 0)
		rc = store_each_source(st, usage_src, &c);
	if (rc == 0) {
		own_sort(&co, true);
		rc = usage_contents(st, &co, &ch);
	}
	free(co.v);
	if (rc == 0) {
		own_sort(&ch, false);
		rc = usage_chunks(st, usage_tally, out, &ch);
	}
	free(ch.v);
	if (rc < 0)
		store_usage_release(out);
	return rc;
}

/* ---- what an organized directory costs (store_usage_du) --------------------------------- */

#define DU_IN 0u	/* owner: a file below the directory; OWNER_NONE: another entry */

struct du_walk {
	struct store *st;
	struct owns *co;
	struct store_du *out;
	struct u64set below;	/* the files below the directory */
};

static int du_entry(void *arg, const struct dfs_buf *path, size_t depth, uint64_t ino,
		    uint8_t dtype)
{
	struct du_walk *w = arg;
	struct store_inode in;
	int rc;

	(void)path;
	(void)depth;
	rc = walk_file(w->st, ino, dtype, &w->below, true, &in);
	if (rc != 2)
		return rc;
	rc = 0;
	if (in.has_content) {
		w->out->files++;
		w->out->logical += in.size;
		rc = own_push(w->co, &in.content, DU_IN, 0, 0);
	}
	store_inode_release(&in);
	return rc;
}

static void du_tally(void *arg, const struct own *p, size_t n, const struct store_chunk_loc *loc)
{
	struct store_du *d = arg;

	if (!n || p[0].src != DU_IN)
		return;		/* not below the directory */
	if (n == 1) {
		d->unique_chunks++;
		d->unique_stored += loc->stored_len;
	} else {
		d->shared_chunks++;
		d->shared_stored += loc->stored_len;
	}
}

int store_usage_du(struct store *st, uint64_t dir, struct store_du *out)
{
	struct owns co = { 0 }, ch = { 0 };
	struct du_walk w = { .st = st, .co = &co, .out = out };
	struct dfs_buf path;
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_buf_init(&path, SIZE_MAX / 2);
	rc = store_walk_tree(st, dir, &path, du_entry, &w);
	dfs_buf_release(&path);
	if (rc == 0)
		rc = usage_inodes(st, &co, &w.below);
	u64set_release(&w.below);
	if (rc == 0) {
		own_sort(&co, false);
		rc = usage_contents(st, &co, &ch);
	}
	free(co.v);
	if (rc == 0) {
		own_sort(&ch, false);
		rc = usage_chunks(st, du_tally, out, &ch);
	}
	free(ch.v);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

void store_usage_release(struct store_usage *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i].snaps);
	free(u->v);
	memset(u, 0, sizeof(*u));
}
