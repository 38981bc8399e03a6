/*
 * store_recover.c - rebuild the index from config + packs (defrag-recover).
 *
 * Every committed change is in the packs: chunk records carry the data, META records the
 * op log of each commit (enc.h). Recovery indexes chunk records (of several valid copies,
 * the latest written: highest pack, then offset), then replays META records by commit
 * sequence (a gc's ENC_OP_DROP removes a chunk whose indexed copy predates the gc), so
 * the rebuilt index equals the lost one for everything whose records survive. Damage is skipped by resynchronising on the
 * record framing: the scan goes on at the next offset where a record header decodes and
 * its checksum holds. A damaged pack header costs only its own bytes: the search for the
 * first record then starts at offset 0. Everything not recovered is listed in the report
 * (struct store_unrec): unreadable packs, damaged headers and ranges, commits whose META
 * record checks out but cannot be replayed (decoded whole first, so none is half
 * applied), and commit numbers with no META record at all (gaps below the last: each
 * commit writes exactly one, numbered one past the previous).
 *
 * A pack's end that is not a whole record is either a write a crash cut short (never
 * committed: the commit that would have named it did not happen) or committed bytes lost
 * later. Without the index the two are told apart by shape and order: it counts as torn
 * (not lost) only if it is an incomplete record (fewer bytes than its header announces, a
 * prefix of a header, or zeros) and no commit older than the newest has its META record
 * in a later pack (after a commit completes, every pack written before it was synced).
 *
 * Threads: single-threaded; holds the writer lock through store_open(STORE_WRITER).
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enc.h"
#include "log.h"
#include "sio.h"
#include "store_int.h"

struct meta_ref {
	uint64_t seq;
	uint32_t pack;
	uint64_t off;
	uint64_t len;	/* header + payload */
};

/* A pack's end that is not a whole record, classified once every META is known. */
struct tail_ref {
	uint32_t pack;
	uint64_t off, len;
	bool incomplete;	/* the shape of a write cut short (tail_incomplete) */
	bool header;		/* no record at all: the header itself is cut or damaged */
};

struct rec_state {
	struct store *st;
	struct idx_batch *b;
	struct store_recover_report *rep;
	size_t cap_unrec;
	struct meta_ref *metas;
	size_t nmeta, capmeta;
	struct tail_ref *tails;
	size_t ntail, captail;
	uint64_t max_ino;
};

/* Adds @u to the report's list (capped at STORE_UNREC_MAX; the counts go on). */
static void unrec_add(struct rec_state *rs, const struct store_unrec *u)
{
	struct store_recover_report *rep = rs->rep;

	if (rep->nunrec == rs->cap_unrec) {
		size_t cap = rs->cap_unrec ? rs->cap_unrec * 2 : 16;
		struct store_unrec *v;

		if (cap > STORE_UNREC_MAX)
			cap = STORE_UNREC_MAX;
		v = cap > rs->cap_unrec ? realloc(rep->unrec, cap * sizeof(*v)) : NULL;
		if (!v) {	/* full, or no memory: the counts still say how much */
			rep->unrec_dropped = true;
			return;
		}
		rep->unrec = v;
		rs->cap_unrec = cap;
	}
	rep->unrec[rep->nunrec++] = *u;
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *p;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 256;
	p = realloc(*v, c * size);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

/* The length of the record that checks out at @off of @p (@n bytes), else 0. */
static uint64_t rec_at(const uint8_t *p, size_t n, uint64_t off, struct pack_rec *r)
{
	const uint8_t *q = p + off;

	if (off + PACK_REC_HDR > n || memcmp(q, "DFSR", 4) != 0 || pack_rec_decode(q, r) < 0 ||
	    off + PACK_REC_HDR + r->stored_len > n ||
	    !pack_rec_check(q, q + PACK_REC_HDR, r->stored_len))
		return 0;
	return PACK_REC_HDR + (uint64_t)r->stored_len;
}

/*
 * Whether @n bytes at a pack's end look like a write cut short: zeros (space a crash left
 * unwritten), a prefix of a record (or, with @header, of a pack header), or a record
 * header that decodes and announces more bytes than there are. A complete record that
 * fails its checksum, or bytes that are no prefix of one, are damage.
 */
static bool tail_incomplete(const uint8_t *p, size_t n, bool header)
{
	struct pack_rec r;
	size_t i;

	for (i = 0; i < n && p[i] == 0; i++)
		;
	if (i == n)
		return true;
	if (header) {
		uint32_t clen;

		if (memcmp(p, PACK_MAGIC, n < 8 ? n : 8) != 0)
			return false;
		if (n < 20)
			return true;
		clen = (uint32_t)p[16] | (uint32_t)p[17] << 8 | (uint32_t)p[18] << 16 |
		       (uint32_t)p[19] << 24;
		return clen <= PACK_CONFIG_MAX && n < 20 + (size_t)clen + 8;
	}
	if (n < PACK_REC_HDR)
		return memcmp(p, "DFSR", n < 4 ? n : 4) == 0;
	return pack_rec_decode(p, &r) == 0 && PACK_REC_HDR + (size_t)r.stored_len > n;
}

static void pack_unreadable(struct rec_state *rs, uint32_t id, uint64_t size, int err)
{
	struct store_unrec u = { .kind = STORE_UNREC_PACK, .pack = id, .len = size, .err = err };

	rs->rep->bad_packs++;
	unrec_add(rs, &u);
}

/* Commit order; for one sequence number, the later pack last (see the replay loop). */
static int cmp_meta(const void *a, const void *b)
{
	const struct meta_ref *x = a, *y = b;

	if (x->seq != y->seq)
		return (x->seq > y->seq) - (x->seq < y->seq);
	if (x->pack != y->pack)
		return (x->pack > y->pack) - (x->pack < y->pack);
	return (x->off > y->off) - (x->off < y->off);
}

static int flush_batch(struct rec_state *rs, bool force)
{
	if (!force && idx_batch_bytes(rs->b) < (32u << 20))
		return 0;
	return idx_batch_commit(rs->b, force);
}

static int index_chunk(struct rec_state *rs, uint32_t pack, uint64_t off, const struct pack_rec *r)
{
	struct store_chunk_loc loc = { .pack = pack, .off = off, .raw_len = r->raw_len,
				       .stored_len = r->stored_len, .codec = r->codec };
	struct dfs_buf v;
	int rc;

	dfs_buf_init(&v, 64);
	if (idx_batch_get(rs->b, IDX_CHUNKS, r->id.b, FP_LEN, &v) == 0) {
		struct store_chunk_loc old;

		/*
		 * A second copy (a repair, a gc's rewrite, a chunk stored again after a gc
		 * dropped it): the latest written, in (pack, offset) order, is the one the
		 * writer's index named last, and the one a gc's ENC_OP_DROP is judged by.
		 */
		bool ok = dec_chunk_loc(v.data, v.len, &old) == 0;

		if (ok && (old.pack > pack || (old.pack == pack && old.off > off))) {
			dfs_buf_release(&v);
			return 0;
		}
		if (ok) {
			rs->st->stat_chunks--;
			rs->st->stat_raw -= old.raw_len;
			rs->st->stat_stored -= old.stored_len;
			rs->rep->chunks--;
		}
	}
	dfs_buf_clear(&v);
	rc = enc_chunk_loc(&loc, &v);
	if (rc == 0) {
		idx_batch_put(rs->b, IDX_CHUNKS, r->id.b, FP_LEN, v.data, v.len);
		rs->st->stat_chunks++;
		rs->st->stat_raw += r->raw_len;
		rs->st->stat_stored += r->stored_len;
		rs->rep->chunks++;
	}
	dfs_buf_release(&v);
	return rc;
}

/* A record that checks out: a chunk is indexed, a META record noted for the replay. */
static int take_record(struct rec_state *rs, uint32_t id, uint64_t off, const struct pack_rec *r)
{
	int rc;

	if (r->type == PACK_REC_CHUNK)
		return index_chunk(rs, id, off, r);
	rc = grow((void **)&rs->metas, &rs->capmeta, rs->nmeta, sizeof(*rs->metas));
	if (rc < 0)
		return rc;
	rs->metas[rs->nmeta++] = (struct meta_ref){ pack_meta_seq(r), id, off,
						    PACK_REC_HDR + (uint64_t)r->stored_len };
	return 0;
}

/*
 * Scans one pack in memory, resynchronising after damage (a damaged header included).
 * Damage between records is reported here; a damaged end is noted in rs->tails.
 */
static int scan_pack(struct rec_state *rs, uint32_t id)
{
	struct dfs_buf data;
	uint64_t hlen = 0, off, end, size = 0;
	struct pack_src src;
	bool header_ok;
	uint32_t hid = 0;
	int rc;
	ssize_t n;

	rc = store_pack_size(rs->st, id, &size);
	if (rc == 0)
		rc = store_pack_src_get(rs->st, id, &src);
	if (rc < 0) {
		dfs_err("pack %08" PRIx32 ": cannot open: %s", id, dfs_strerror(rc));
		pack_unreadable(rs, id, 0, rc);
		return 0;
	}
	dfs_buf_init(&data, (size_t)size + 1);
	rc = dfs_buf_reserve(&data, (size_t)size);
	if (rc < 0)
		goto out;
	n = pack_src_pread(&src, data.data, (size_t)size, 0);
	if (n < 0) {
		dfs_err("pack %08" PRIx32 ": read failed: %s", id, dfs_strerror((int)n));
		pack_unreadable(rs, id, size, (int)n);
		goto out;
	}
	data.len = (size_t)n;
	rc = pack_header_read(&src, &hid, &hlen, NULL);
	header_ok = rc == 0 && hid == id;
	if (rc == 0 && hid != id)
		dfs_err("pack %08" PRIx32 ": its header names pack %08" PRIx32, id, hid);
	else if (rc < 0)
		dfs_err("pack %08" PRIx32 ": damaged pack header (%s); searching its records",
			id, dfs_strerror(rc));
	rc = 0;
	off = header_ok ? hlen : 0;
	end = off;
	if (!header_ok && rec_at(data.data, data.len, 0, &(struct pack_rec){ 0 })) {
		/* a record where the header should be: the header is gone, not damaged */
		struct store_unrec u = { .kind = STORE_UNREC_HEADER, .pack = id,
					 .err = -EBADMSG };

		rs->rep->bad_headers++;
		unrec_add(rs, &u);
	}
	while (off < data.len) {
		struct pack_rec r;
		uint64_t len = rec_at(data.data, data.len, off, &r), bad;
		struct store_unrec u = { .pack = id, .err = -EBADMSG };

		if (len) {
			rc = take_record(rs, id, off, &r);
			if (rc < 0)
				goto out;
			off += len;
			end = off;
			continue;
		}
		/* damage: the next offset where a record checks out */
		for (bad = off++; off + PACK_REC_HDR <= data.len; off++)
			if (rec_at(data.data, data.len, off, &r))
				break;
		if (off + PACK_REC_HDR > data.len) {
			bool hdr = !header_ok && !bad;

			rc = grow((void **)&rs->tails, &rs->captail, rs->ntail,
				  sizeof(*rs->tails));
			if (rc < 0)
				goto out;
			rs->tails[rs->ntail++] = (struct tail_ref){
				id, bad, data.len - bad,
				tail_incomplete(data.data + bad, data.len - bad, hdr), hdr };
			off = data.len;
			break;
		}
		u.off = bad;
		u.len = off - bad;
		rs->rep->bad_bytes += u.len;
		if (!header_ok && bad == 0) {
			u.kind = STORE_UNREC_HEADER;
			rs->rep->bad_headers++;
			dfs_err("pack %08" PRIx32 " @0: %" PRIu64 " bytes of a damaged header "
				"skipped; the records after them are recovered", id, u.len);
		} else {
			u.kind = STORE_UNREC_RANGE;
			rs->rep->bad_regions++;
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": %" PRIu64
				" damaged bytes skipped", id, bad, u.len);
		}
		unrec_add(rs, &u);
	}
	if (!data.len) {	/* not even a header: a pack a crash left empty, or emptied */
		rc = grow((void **)&rs->tails, &rs->captail, rs->ntail, sizeof(*rs->tails));
		if (rc < 0)
			goto out;
		rs->tails[rs->ntail++] = (struct tail_ref){ id, 0, 0, true, true };
	}
	/* a pack without one record that checks out is left for the next writer not to
	 * cut: the index does not name it */
	if (header_ok || end) {
		uint8_t key[4];
		struct dfs_buf v;

		dfs_buf_init(&v, 32);
		dfs_put_be32(key, id);
		enc_pack_val(end, true, &v);
		idx_batch_put(rs->b, IDX_PACKS, key, sizeof(key), v.data, v.len);
		dfs_buf_release(&v);
	}
	rs->rep->packs++;
	rc = flush_batch(rs, false);
out:
	store_pack_src_put(rs->st, &src);
	dfs_buf_release(&data);
	return rc;
}

/*
 * Each pack's damaged end: torn (a write a crash cut short) if it has that shape and no
 * commit older than the newest has its META record in a later pack; else lost. @metas
 * sorted.
 */
static void classify_tails(struct rec_state *rs)
{
	uint64_t max_seq = rs->nmeta ? rs->metas[rs->nmeta - 1].seq : 0;
	uint32_t later = 0;	/* the last pack holding a commit older than the newest */
	bool any = false;

	for (size_t i = 0; i < rs->nmeta; i++)
		if (rs->metas[i].seq < max_seq && (!any || rs->metas[i].pack > later)) {
			later = rs->metas[i].pack;
			any = true;
		}
	for (size_t i = 0; i < rs->ntail; i++) {
		const struct tail_ref *t = &rs->tails[i];
		bool torn = t->incomplete && (!any || t->pack >= later);
		struct store_unrec u = { .pack = t->pack, .off = t->off, .len = t->len,
					 .err = -EBADMSG };

		if (torn) {
			u.kind = STORE_UNREC_TORN;
			rs->rep->torn_tails++;
			rs->rep->torn_bytes += t->len;
			dfs_warn("pack %08" PRIx32 " @%" PRIu64 ": %" PRIu64 " bytes at the end "
				 "are not a complete record (a write cut short by a crash)",
				 t->pack, t->off, t->len);
		} else {
			u.kind = t->header ? STORE_UNREC_HEADER : STORE_UNREC_RANGE;
			if (t->header)
				rs->rep->bad_headers++;
			else
				rs->rep->bad_regions++;
			rs->rep->bad_bytes += t->len;
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": %" PRIu64 " damaged bytes at "
				"the end%s", t->pack, t->off, t->len,
				t->header ? " (no record in the pack checks out)" : "");
		}
		unrec_add(rs, &u);
	}
}

/* The report's order: pack entries by pack and offset, then commits by number. */
static int cmp_unrec(const void *a, const void *b)
{
	const struct store_unrec *x = a, *y = b;
	bool xc = x->kind == STORE_UNREC_COMMIT || x->kind == STORE_UNREC_MISSING;
	bool yc = y->kind == STORE_UNREC_COMMIT || y->kind == STORE_UNREC_MISSING;

	if (xc != yc)
		return xc - yc;
	if (xc)
		return (x->seq > y->seq) - (x->seq < y->seq);
	if (x->pack != y->pack)
		return (x->pack > y->pack) - (x->pack < y->pack);
	return (x->off > y->off) - (x->off < y->off);
}

/* Commit numbers below the last with no META record (@metas sorted). */
static void find_missing(struct rec_state *rs)
{
	uint64_t next = 1;

	for (size_t i = 0; i < rs->nmeta; i++) {
		uint64_t seq = rs->metas[i].seq;

		if (seq > next) {
			struct store_unrec u = { .kind = STORE_UNREC_MISSING, .seq = next,
						 .count = seq - next, .err = -ENOENT };

			rs->rep->missing_commits += u.count;
			if (u.count == 1)
				dfs_err("commit %" PRIu64 ": no metadata record found", next);
			else
				dfs_err("commits %" PRIu64 " to %" PRIu64 ": no metadata record "
					"found", next, seq - 1);
			unrec_add(rs, &u);
		}
		if (seq >= next)
			next = seq + 1;
	}
}

/* A pass over an op log that applies nothing: a commit is replayed whole or not at all. */
static int check_op(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	(void)arg;
	(void)k;
	(void)v;
	if (op == ENC_OP_DROP)	/* a gc's: a chunk id and a be32 pack id */
		return cf == IDX_CHUNKS && klen == FP_LEN && vlen == 4 ? 0 : -EBADMSG;
	return cf >= IDX_NCF || cf == IDX_CHUNKS || cf == IDX_PACKS ? -EBADMSG : 0;
}

/* A gc dropped chunk @k: its copy written before the gc (pack < the bound) goes. */
static int replay_drop(struct rec_state *rs, const uint8_t *k, const uint8_t *v)
{
	struct store_chunk_loc loc;
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 64);
	rc = idx_batch_get(rs->b, IDX_CHUNKS, k, FP_LEN, &b);
	if (rc == 0 && dec_chunk_loc(b.data, b.len, &loc) == 0 && loc.pack < dfs_get_be32(v)) {
		idx_batch_del(rs->b, IDX_CHUNKS, k, FP_LEN);
		rs->st->stat_chunks--;
		rs->st->stat_raw -= loc.raw_len;
		rs->st->stat_stored -= loc.stored_len;
		rs->rep->chunks--;
	}
	dfs_buf_release(&b);
	return rc == -ENOENT ? 0 : rc;
}

static int replay_op(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct rec_state *rs = arg;

	if (check_op(arg, cf, op, k, klen, v, vlen) < 0)
		return -EBADMSG;
	if (op == ENC_OP_DROP)
		return replay_drop(rs, k, v);
	if (op == ENC_OP_PUT)
		idx_batch_put(rs->b, (enum idx_cf)cf, k, klen, v, vlen);
	else
		idx_batch_del(rs->b, (enum idx_cf)cf, k, klen);
	if (cf == IDX_INODES && klen == 8 && op == ENC_OP_PUT) {
		uint64_t ino = dfs_get_be64(k);

		if (ino >= rs->max_ino)
			rs->max_ino = ino + 1;
	}
	return 0;
}

static int replay_meta(struct rec_state *rs, const struct meta_ref *m, struct codec *codec)
{
	struct dfs_buf payload, raw;
	struct pack_rec r;
	uint64_t seq;
	struct pack_src src;
	int rc;

	dfs_buf_init(&payload, PACK_REC_MAX);
	dfs_buf_init(&raw, PACK_REC_MAX);
	rc = store_pack_src_get(rs->st, m->pack, &src);
	if (rc == 0) {
		rc = pack_read_record(&src, m->pack, m->off, &r, &payload);
		store_pack_src_put(rs->st, &src);
	}
	if (rc == 0)
		rc = dfs_buf_reserve(&raw, r.raw_len);
	if (rc == 0)
		rc = codec_decompress(codec, (enum codec_id)r.codec, payload.data, payload.len,
				      raw.data, r.raw_len);
	if (rc == 0)
		rc = dec_oplog(raw.data, r.raw_len, &seq, check_op, rs);
	if (rc == 0 && seq != m->seq)
		rc = -EBADMSG;	/* the op log is not the one its record names */
	if (rc == 0)
		rc = dec_oplog(raw.data, r.raw_len, &seq, replay_op, rs);
	if (rc < 0 && rc != -ENOMEM) {
		struct store_unrec u = { .kind = STORE_UNREC_COMMIT, .pack = m->pack,
					 .off = m->off, .len = m->len, .seq = m->seq, .err = rc };

		dfs_err("pack %08" PRIx32 " @%" PRIu64 ": commit %" PRIu64
			" cannot be replayed: %s", m->pack, m->off, m->seq, dfs_strerror(rc));
		rs->rep->failed_commits++;
		unrec_add(rs, &u);
	} else if (rc == 0) {
		rs->rep->commits++;
	}
	dfs_buf_release(&payload);
	dfs_buf_release(&raw);
	return rc == -ENOMEM ? rc : 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -errno : 0;
}

/*
 * The old index, moved aside to rep->moved_to, once the rebuild is done (its last commit
 * @seq): healthy (it opens and holds commit @seq) with nothing lost, it is removed;
 * otherwise it stays, and rep->old_why says why.
 */
static void old_index_done(struct store_recover_report *rep, uint64_t seq)
{
	struct idx *ix;
	struct dfs_buf v;
	uint64_t old = 0;
	int rc;

	if (!rep->moved_to[0])
		return;
	if (store_recover_lost(rep)) {
		snprintf(rep->old_why, sizeof(rep->old_why), "something was not restored: it may "
			 "hold what the packs lost");
		return;
	}
	rc = idx_open(rep->moved_to, false, NULL, 8u << 20, &ix);
	if (rc < 0) {
		snprintf(rep->old_why, sizeof(rep->old_why), "it does not open: %s",
			 dfs_strerror(rc));
		return;
	}
	dfs_buf_init(&v, 64);
	rc = idx_get(ix, IDX_META, "commit_seq", 10, &v);
	if (rc == 0)
		rc = dec_u64_val(v.data, v.len, &old);
	dfs_buf_release(&v);
	idx_close(ix);
	if (rc < 0 || old != seq) {
		if (rc < 0)
			snprintf(rep->old_why, sizeof(rep->old_why), "its last commit cannot be "
				 "read: %s", dfs_strerror(rc));
		else
			snprintf(rep->old_why, sizeof(rep->old_why), "it ends at commit %" PRIu64
				 ", the packs at %" PRIu64, old, seq);
		return;
	}
	rc = nftw(rep->moved_to, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (rc != 0) {
		snprintf(rep->old_why, sizeof(rep->old_why), "it was healthy, but could not be "
			 "removed: %s", strerror(rc < 0 ? -rc : errno));
		return;
	}
	rep->moved_to[0] = '\0';
	rep->old_removed = true;
}

struct pack_ids {
	uint32_t *v;
	size_t n, cap;
};

static int note_pack_id(void *arg, uint32_t id, uint64_t size)
{
	struct pack_ids *p = arg;

	(void)size;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		uint32_t *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = id;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int store_recover(const char *dir, struct store_recover_report *rep)
{
	struct store_open_opts so = { .mode = STORE_WRITER, .rebuilding = true };
	struct rec_state rs = { 0 };
	struct codec *codec = NULL;
	struct pack_ids ids = { 0 };
	char path[PATH_MAX], moved[PATH_MAX];
	struct stat sb;
	uint32_t max_pack = 0;
	uint64_t last_seq = 0;
	int rc, lockfd;

	memset(rep, 0, sizeof(*rep));
	snprintf(path, sizeof(path), "%s/config", dir);
	if (stat(path, &sb) < 0) {
		dfs_err("%s: no defragfs store here (no config file)", dir);
		return -ENOENT;
	}
	/* Hold the writer lock while the index is moved aside. */
	rc = store_writer_lock(dir, false, &lockfd);
	if (rc < 0)
		return rc;
	/* released just before store_open() takes it again on its own descriptor */
	snprintf(path, sizeof(path), "%s/index", dir);
	if (stat(path, &sb) == 0) {
		struct stat mb;
		long long now = (long long)time(NULL);

		/* a name nothing holds: a second recovery in the same second got
		 * ENOTEMPTY from rename(), and an empty directory would be replaced */
		snprintf(moved, sizeof(moved), "%s/index.broken-%lld", dir, now);
		for (int k = 2; lstat(moved, &mb) == 0 && k < 10000; k++)
			snprintf(moved, sizeof(moved), "%s/index.broken-%lld.%d", dir, now, k);
		rc = sio_rename(path, moved);
		if (rc < 0) {
			close(lockfd);
			dfs_err("%s: cannot move the old index aside: %s", path, dfs_strerror(rc));
			return rc;
		}
		snprintf(rep->moved_to, sizeof(rep->moved_to), "%s", moved);
	}
	flock(lockfd, LOCK_UN);
	close(lockfd);
	rc = store_open(dir, &so, &rs.st);
	if (rc < 0)
		return rc;
	rs.rep = rep;
	rs.max_ino = STORE_FIRST_INO;
	rs.st->stat_chunks = rs.st->stat_raw = rs.st->stat_stored = 0;
	rc = idx_batch_new(rs.st->ix, &rs.b);
	if (rc == 0)
		rc = codec_new(1, &codec);
	/* every pack there is: the backend's, and (remote) those still staged */
	if (rc == 0)
		rc = pback_list(rs.st->pb, note_pack_id, &ids);
	if (rc == 0 && rs.st->pb != rs.st->stage)
		rc = pback_list(rs.st->stage, note_pack_id, &ids);
	if (rc < 0)
		dfs_err("%s: cannot list the packs (%s backend): %s", dir, rs.st->pb->ops->name,
			dfs_strerror(rc));
	if (ids.n > 1)
		qsort(ids.v, ids.n, sizeof(*ids.v), cmp_u32);
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		if (i && ids.v[i] == ids.v[i - 1])
			continue;
		rc = scan_pack(&rs, ids.v[i]);
		if (ids.v[i] > max_pack)
			max_pack = ids.v[i];
	}
	free(ids.v);
	if (rc == 0)
		rc = flush_batch(&rs, true);
	if (rs.nmeta > 1)
		qsort(rs.metas, rs.nmeta, sizeof(*rs.metas), cmp_meta);
	if (rc == 0) {
		classify_tails(&rs);
		find_missing(&rs);
	}
	for (size_t i = 0; i < rs.nmeta && rc == 0; i++) {
		/*
		 * Two commits with one number: a writer crashed after syncing a new pack
		 * with its META record but before the index named it, and the next writer
		 * (whose packs come later) reused the number. History went on without the
		 * first: replay the one in the later pack only.
		 */
		if (i + 1 < rs.nmeta && rs.metas[i + 1].seq == rs.metas[i].seq)
			continue;
		rc = replay_meta(&rs, &rs.metas[i], codec);
		if (rc == 0)
			rc = flush_batch(&rs, false);
	}
	if (rc == 0) {
		struct dfs_buf v;
		const char *keys[] = { "commit_seq", "next_pack", "stat_chunks", "stat_raw",
				       "stat_stored", "next_ino" };
		uint64_t vals[6];

		vals[0] = rs.nmeta ? rs.metas[rs.nmeta - 1].seq : 0;
		last_seq = vals[0];
		vals[1] = (uint64_t)max_pack + 1;
		vals[2] = rs.st->stat_chunks;
		vals[3] = rs.st->stat_raw;
		vals[4] = rs.st->stat_stored;
		vals[5] = rs.max_ino;
		dfs_buf_init(&v, 32);
		for (int i = 0; i < 6; i++) {
			uint64_t cur = 0;

			if (i == 5 && idx_batch_get(rs.b, IDX_META, "next_ino", 8, &v) == 0 &&
			    dec_u64_val(v.data, v.len, &cur) == 0 && cur > vals[5])
				vals[5] = cur;
			dfs_buf_clear(&v);
			enc_u64_val(vals[i], &v);
			idx_batch_put(rs.b, IDX_META, keys[i], strlen(keys[i]), v.data, v.len);
		}
		dfs_buf_release(&v);
		rc = flush_batch(&rs, true);
	}
	if (rep->nunrec > 1)
		qsort(rep->unrec, rep->nunrec, sizeof(*rep->unrec), cmp_unrec);
	free(rs.metas);
	free(rs.tails);
	codec_free(codec);
	idx_batch_free(rs.b);
	store_close(rs.st);
	if (rc == 0)
		old_index_done(rep, last_seq);
	return rc;
}

bool store_recover_lost(const struct store_recover_report *rep)
{
	return rep->bad_packs || rep->bad_headers || rep->bad_regions || rep->failed_commits ||
	       rep->missing_commits;
}

void store_recover_report_release(struct store_recover_report *rep)
{
	if (!rep)
		return;
	free(rep->unrec);
	rep->unrec = NULL;
	rep->nunrec = 0;
}
