/*
 * store_txn.c - content builders, metadata transactions and the commit protocol.
 *
 * Commit (docs/ARCHITECTURE.md#commit):
 *   1. under wlock: note the pending chunks and the dirty packs, append one META record
 *      (the transaction's op log, zstd) to the current pack;
 *   2. fdatasync every pack written since the last commit, fsync the directory of each
 *      new pack; a remote store's packs are sealed, and the commit waits until the
 *      uploader (store_upload.c) has put and confirmed each one on the server;
 *   3. one synced RocksDB WriteBatch: the transaction's ops, the chunk locations of the
 *      noted pending chunks, each pack's committed length, counters.
 * A crash before 3 leaves bytes past the committed lengths, which the next writer cuts.
 * A failed sync is never retried: the error is sticky and the run stops.
 *
 * One commit's op log is one META record, so it holds at most PACK_REC_MAX bytes (64 MiB,
 * lowered by DFS_FAULT_OPLOG_MAX in DFS_TEST_FAULTS builds). A content whose extent list
 * is larger (a file of about 200 GiB at the default chunking) is stored across commits by
 * store_txn_put_content_split: its extent blocks first, each commit a part, and its head,
 * the only key that names the blocks, last, in the transaction left open.
 *
 * Threads: one transaction at a time, owned by the committing thread. Chunk appends
 * from workers go on concurrently (wlock).
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enc.h"
#include "log.h"
#include "sio.h"
#include "store_int.h"

/* ---- content builder -------------------------------------------------------------- */

#define CB_MAX_EXTENTS (64u << 20)

struct store_content_builder {
	struct enc_extent *ext;
	size_t next, cap;
	uint64_t size, data_bytes;
	struct dfs_buf inl;
	bool is_inline;
	int err;
};

int store_cb_new(struct store_content_builder **out)
{
	struct store_content_builder *cb = calloc(1, sizeof(*cb));

	*out = NULL;
	if (!cb)
		return -ENOMEM;
	dfs_buf_init(&cb->inl, 1u << 20);
	*out = cb;
	return 0;
}

void store_cb_free(struct store_content_builder *cb)
{
	if (!cb)
		return;
	free(cb->ext);
	dfs_buf_release(&cb->inl);
	free(cb);
}

void store_cb_reset(struct store_content_builder *cb)
{
	cb->next = 0;
	cb->size = 0;
	cb->data_bytes = 0;
	cb->is_inline = false;
	cb->err = 0;
	dfs_buf_clear(&cb->inl);
}

static int cb_push(struct store_content_builder *cb, const struct enc_extent *e)
{
	if (cb->err)
		return cb->err;
	if (cb->is_inline) {
		cb->err = -EINVAL;
		return cb->err;
	}
	if (cb->next == cb->cap) {
		size_t cap = cb->cap ? cb->cap * 2 : 64;
		struct enc_extent *n;

		if (cap > CB_MAX_EXTENTS) {
			cb->err = -EFBIG;
			return cb->err;
		}
		n = realloc(cb->ext, cap * sizeof(*n));
		if (!n) {
			cb->err = -ENOMEM;
			return cb->err;
		}
		cb->ext = n;
		cb->cap = cap;
	}
	cb->ext[cb->next++] = *e;
	cb->size += e->len;
	if (!e->hole)
		cb->data_bytes += e->len;
	return 0;
}

int store_cb_add_chunk(struct store_content_builder *cb, const struct fp256 *chunk, uint32_t len)
{
	struct enc_extent e = { .len = len, .hole = false, .chunk = *chunk };

	if (len == 0)
		return 0;
	return cb_push(cb, &e);
}

int store_cb_add_hole(struct store_content_builder *cb, uint64_t len)
{
	struct enc_extent e = { .len = len, .hole = true };

	if (len == 0)
		return 0;
	/* Merge adjacent holes so a hole is always one extent. */
	if (cb->next && cb->ext[cb->next - 1].hole && !cb->err) {
		cb->ext[cb->next - 1].len += len;
		cb->size += len;
		return 0;
	}
	return cb_push(cb, &e);
}

int store_cb_set_inline(struct store_content_builder *cb, const void *data, size_t len)
{
	if (cb->err)
		return cb->err;
	if (cb->next || cb->is_inline) {
		cb->err = -EINVAL;
		return cb->err;
	}
	cb->is_inline = true;
	cb->size = len;
	cb->data_bytes = len;
	cb->err = dfs_buf_append(&cb->inl, data, len);
	return cb->err;
}

/*
 * Content id = SHA-256("dfs-content-v1" | u64 size | per extent: u8 kind | u64 len | id),
 * with inline data counted as one chunk whose id is its SHA-256, so storing a tiny file
 * inline or as a chunk names the same content.
 */
int store_cb_finish(struct store_content_builder *cb, struct fp256 *cid, uint64_t *size,
		    uint64_t *data_bytes)
{
	static const char tag[] = "dfs-content-v1";
	struct fp_sha *sha;
	uint8_t rec[1 + 8 + FP_LEN];
	int rc;

	if (cb->err)
		return cb->err;
	rc = fp_sha_new(&sha);
	if (rc < 0)
		return rc;
	fp_sha_update(sha, tag, sizeof(tag) - 1);
	for (int i = 0; i < 8; i++)
		rec[i] = (uint8_t)(cb->size >> (8 * i));
	fp_sha_update(sha, rec, 8);
	if (cb->is_inline) {
		if (cb->size) {
			struct fp256 id;

			fp_sha256(cb->inl.data, cb->inl.len, &id);
			rec[0] = 0;
			for (int i = 0; i < 8; i++)
				rec[1 + i] = (uint8_t)(cb->size >> (8 * i));
			memcpy(rec + 9, id.b, FP_LEN);
			fp_sha_update(sha, rec, sizeof(rec));
		}
	} else {
		for (size_t i = 0; i < cb->next; i++) {
			const struct enc_extent *e = &cb->ext[i];

			rec[0] = e->hole ? 1 : 0;
			for (int j = 0; j < 8; j++)
				rec[1 + j] = (uint8_t)(e->len >> (8 * j));
			if (e->hole)
				memset(rec + 9, 0, FP_LEN);
			else
				memcpy(rec + 9, e->chunk.b, FP_LEN);
			fp_sha_update(sha, rec, sizeof(rec));
		}
	}
	rc = fp_sha_final(sha, cid);
	fp_sha_free(sha);
	if (size)
		*size = cb->size;
	if (data_bytes)
		*data_bytes = cb->data_bytes;
	return rc;
}

/* ---- transactions ------------------------------------------------------------------ */

struct store_txn {
	struct store *st;
	struct idx_batch *b;
	struct dfs_buf oplog;
	struct dfs_buf tmp;
	uint64_t nops;
	size_t cache_bytes;	/* of derived records (store_txn_put_cache): not in the op log */
	size_t limit;		/* op log bytes one commit may hold (txn_oplog_limit) */
	/* chunks this commit drops (store_txn_drop_chunk): subtracted from the counters */
	uint64_t drop_chunks, drop_raw, drop_stored;
	int err;
};

/* A test may not lower the limit below this: an extent block and a head always fit. */
#define TXN_OPLOG_TEST_MIN (256u << 10)

/*
 * The op log bytes one commit may hold: one META record (PACK_REC_MAX). In DFS_TEST_FAULTS
 * builds DFS_FAULT_OPLOG_MAX=BYTES lowers it (not below TXN_OPLOG_TEST_MIN), so the tests
 * meet the limit with megabytes instead of 200 GiB (tests/integration/t_huge_file.sh).
 */
/*
 * DFS_TEST_FAULTS builds: DFS_FAULT_S3=put ends the process (_exit(137), a power cut of
 * the local side) after a commit's packs are put and confirmed, before the index names
 * them; DFS_FAULT_S3=seal after the commit sealed its packs, before it queues them for
 * the upload (packs sealed by size before may be put already); DFS_FAULT_S3=commit after
 * the index commit, before the staged copies go.
 */
static void s3_crash_point(const char *when)
{
#ifdef DFS_TEST_FAULTS
	const char *s = getenv("DFS_FAULT_S3");

	if (s && !strcmp(s, when))
		_exit(137);
#else
	(void)when;
#endif
}

#ifdef DFS_TEST_FAULTS
void (*store_fault_commit_hook)(struct store *st);

static void fault_commit_hook(struct store *st)
{
	if (store_fault_commit_hook)
		store_fault_commit_hook(st);
}
#else
static void fault_commit_hook(struct store *st)
{
	(void)st;
}
#endif

static size_t txn_oplog_limit(void)
{
#ifdef DFS_TEST_FAULTS
	const char *s = getenv("DFS_FAULT_OPLOG_MAX");

	if (s && *s) {
		unsigned long long v = strtoull(s, NULL, 10);

		if (v < TXN_OPLOG_TEST_MIN)
			v = TXN_OPLOG_TEST_MIN;
		if (v < PACK_REC_MAX)
			return (size_t)v;
	}
#endif
	return PACK_REC_MAX;
}

int store_txn_begin(struct store *st, struct store_txn **out)
{
	struct store_txn *tx;
	int rc;

	*out = NULL;
	if (st->mode != STORE_WRITER)
		return -EROFS;
	if (st->txn_open)
		return -EBUSY;
	tx = calloc(1, sizeof(*tx));
	if (!tx)
		return -ENOMEM;
	tx->st = st;
	tx->limit = txn_oplog_limit();
	dfs_buf_init(&tx->oplog, STORE_OPLOG_MAX);
	dfs_buf_init(&tx->tmp, 64u << 20);
	rc = idx_batch_new(st->ix, &tx->b);
	if (rc == 0)
		rc = enc_oplog_begin(st->commit_seq + 1, &tx->oplog);
	if (rc < 0) {
		idx_batch_free(tx->b);
		dfs_buf_release(&tx->oplog);
		dfs_buf_release(&tx->tmp);
		free(tx);
		return rc;
	}
	st->txn_open = true;
	*out = tx;
	return 0;
}

static void txn_free(struct store_txn *tx)
{
	tx->st->txn_open = false;
	idx_batch_free(tx->b);
	dfs_buf_release(&tx->oplog);
	dfs_buf_release(&tx->tmp);
	free(tx);
}

void store_txn_abort(struct store_txn *tx)
{
	if (tx)
		txn_free(tx);
}

size_t store_txn_size(const struct store_txn *tx)
{
	return tx->oplog.len + tx->cache_bytes;
}

/* Every logical change goes to the batch and to the op log carried by the META record. */
static int txn_put(struct store_txn *tx, enum idx_cf cf, const void *k, size_t klen,
		   const void *v, size_t vlen)
{
	int rc;

	if (tx->err)
		return tx->err;
	rc = enc_oplog_add(&tx->oplog, (uint8_t)cf, ENC_OP_PUT, k, klen, v, vlen);
	if (rc < 0) {
		tx->err = rc;
		return rc;
	}
	idx_batch_put(tx->b, cf, k, klen, v, vlen);
	tx->nops++;
	return 0;
}

static int txn_del(struct store_txn *tx, enum idx_cf cf, const void *k, size_t klen)
{
	int rc;

	if (tx->err)
		return tx->err;
	rc = enc_oplog_add(&tx->oplog, (uint8_t)cf, ENC_OP_DEL, k, klen, NULL, 0);
	if (rc < 0) {
		tx->err = rc;
		return rc;
	}
	idx_batch_del(tx->b, cf, k, klen);
	tx->nops++;
	return 0;
}

uint64_t store_txn_alloc_ino(struct store_txn *tx)
{
	return tx->st->next_ino++;
}

int store_txn_get_inode(struct store_txn *tx, uint64_t ino, struct store_inode *out)
{
	uint8_t key[8];
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_put_be64(key, ino);
	rc = idx_batch_get(tx->b, IDX_INODES, key, sizeof(key), &tx->tmp);
	if (rc == 0) {
		rc = dec_inode(ino, tx->tmp.data, tx->tmp.len, out);
		if (rc < 0)
			dfs_err("index: inode %" PRIu64 ": corrupt record", ino);
	}
	return rc;
}

int store_txn_lookup(struct store_txn *tx, uint64_t parent, const void *name, size_t len,
		     uint64_t *child, uint8_t *dtype)
{
	uint8_t key[8 + 256];
	int rc;

	if (len == 0 || len > 255)
		return len ? -ENAMETOOLONG : -ENOENT;
	rc = idx_batch_get(tx->b, IDX_DIRENTS, key, enc_dirent_key(parent, name, len, key),
			   &tx->tmp);
	if (rc == 0)
		rc = dec_dirent_val(tx->tmp.data, tx->tmp.len, child, dtype);
	return rc;
}

bool store_txn_has_content(struct store_txn *tx, const struct fp256 *cid)
{
	return idx_batch_get(tx->b, IDX_CONTENTS, cid->b, FP_LEN, &tx->tmp) == 0;
}

static int txn_flush(struct store_txn *tx);

/* The op log bytes a put of @klen + @vlen bytes adds (cf, op, two length varints). */
static size_t oplog_cost(size_t klen, size_t vlen)
{
	return klen + vlen + 2 + 2 * 10;
}

/*
 * Before a put of @cost op log bytes while @split: commits what @tx holds when the put
 * would take it past a quarter of the limit (a part), so that the op log left for the rest
 * of the caller's item and its commit group stays well under the limit.
 */
static int txn_make_room(struct store_txn *tx, size_t cost, bool split, unsigned *commits)
{
	int rc;

	if (!split || tx->nops == 0 || tx->oplog.len + cost <= tx->limit / 4)
		return 0;
	rc = txn_flush(tx);
	if (rc == 0) {
		(*commits)++;
		dfs_info("commit %" PRIu64 ": part %u of a content too large for one commit",
			 tx->st->commit_seq, *commits);
	}
	return rc;
}

/*
 * The head of the content @cb built (store_cb_finish done: @size, @data_bytes) into
 * @head, and the number of its extent blocks (0: the extents are in the head). 0 or
 * -errno.
 */
static int cb_head(const struct store_content_builder *cb, uint64_t size, uint64_t data_bytes,
		   struct dfs_buf *head, uint32_t *nblocks)
{
	uint64_t *starts = NULL, off = 0;
	int rc;

	*nblocks = 0;
	if (!cb->is_inline && cb->next > ENC_BLOCK_EXTENTS) {
		*nblocks = (uint32_t)((cb->next + ENC_BLOCK_EXTENTS - 1) / ENC_BLOCK_EXTENTS);
		starts = calloc(*nblocks, sizeof(*starts));
		if (!starts)
			return -ENOMEM;
		for (size_t i = 0; i < cb->next; i++) {
			if (i % ENC_BLOCK_EXTENTS == 0)
				starts[i / ENC_BLOCK_EXTENTS] = off;
			off += cb->ext[i].len;
		}
	}
	rc = enc_content_head(size, data_bytes, cb->inl.data, cb->inl.len, cb->is_inline,
			      cb->next, starts, *nblocks, cb->ext, cb->next, head);
	free(starts);
	return rc;
}

/* Extent block @blk of @cb into @val (cleared first). */
static int cb_block(const struct store_content_builder *cb, uint32_t blk, struct dfs_buf *val)
{
	size_t first = (size_t)blk * ENC_BLOCK_EXTENTS;
	size_t n = cb->next - first < ENC_BLOCK_EXTENTS ? cb->next - first : ENC_BLOCK_EXTENTS;

	dfs_buf_clear(val);
	return enc_extent_block(cb->ext + first, n, val);
}

int store_cb_log_bytes(struct store_content_builder *cb, struct dfs_buf *out)
{
	struct dfs_buf val, head;
	struct fp256 cid;
	uint64_t size, data_bytes;
	uint32_t nblocks = 0;
	int rc;

	rc = store_cb_finish(cb, &cid, &size, &data_bytes);
	if (rc < 0)
		return rc;
	dfs_buf_init(&val, 64u << 20);
	dfs_buf_init(&head, 64u << 20);
	rc = cb_head(cb, size, data_bytes, &head, &nblocks);
	for (uint32_t blk = 0; blk < nblocks && rc == 0; blk++) {
		uint8_t key[FP_LEN + 4];

		memcpy(key, cid.b, FP_LEN);
		dfs_put_be32(key + FP_LEN, blk);
		rc = cb_block(cb, blk, &val);
		if (rc == 0)
			rc = enc_oplog_add(out, IDX_CONTENTS, ENC_OP_PUT, key, sizeof(key),
					   val.data, val.len);
	}
	if (rc == 0)
		rc = enc_oplog_add(out, IDX_CONTENTS, ENC_OP_PUT, cid.b, FP_LEN, head.data,
				   head.len);
	dfs_buf_release(&val);
	dfs_buf_release(&head);
	return rc;
}

static int txn_put_content(struct store_txn *tx, struct store_content_builder *cb,
			   struct fp256 *cid, bool split, unsigned *commits)
{
	struct dfs_buf val, head;
	uint64_t size, data_bytes;
	uint32_t nblocks = 0;
	int rc;

	rc = store_cb_finish(cb, cid, &size, &data_bytes);
	if (rc < 0)
		return rc;
	if (store_txn_has_content(tx, cid))
		return 0;	/* the store (or @tx) has it */
	dfs_buf_init(&val, 64u << 20);
	dfs_buf_init(&head, 64u << 20);
	rc = cb_head(cb, size, data_bytes, &head, &nblocks);
	if (rc < 0)
		goto out;
	/* the head and the caller's item must fit one commit: else the content is refused
	 * before anything of it is written (8 bytes a block: never at the real limit) */
	if (split && oplog_cost(FP_LEN, head.len) > tx->limit / 2) {
		rc = -EFBIG;	/* not logged: the caller names the file */
		goto out;
	}
	for (uint32_t blk = 0; blk < nblocks; blk++) {
		uint8_t key[FP_LEN + 4];

		memcpy(key, cid->b, FP_LEN);
		dfs_put_be32(key + FP_LEN, blk);
		rc = cb_block(cb, blk, &val);
		if (rc == 0)
			rc = txn_make_room(tx, oplog_cost(sizeof(key), val.len), split, commits);
		if (rc == 0)
			rc = txn_put(tx, IDX_CONTENTS, key, sizeof(key), val.data, val.len);
		if (rc < 0)
			goto out;
	}
	rc = txn_make_room(tx, oplog_cost(FP_LEN, head.len), split, commits);
	if (rc == 0)
		rc = txn_put(tx, IDX_CONTENTS, cid->b, FP_LEN, head.data, head.len);
out:
	dfs_buf_release(&val);
	dfs_buf_release(&head);
	return rc < 0 ? rc : 1;
}

int store_txn_put_content(struct store_txn *tx, struct store_content_builder *cb,
			  struct fp256 *cid)
{
	unsigned commits = 0;
	int rc = txn_put_content(tx, cb, cid, false, &commits);

	return rc < 0 ? rc : 0;
}

int store_txn_put_content_split(struct store_txn *tx, struct store_content_builder *cb,
				struct fp256 *cid, unsigned *commits)
{
	*commits = 0;
	return txn_put_content(tx, cb, cid, true, commits);
}

int store_txn_put_inode(struct store_txn *tx, const struct store_inode *in)
{
	struct dfs_buf val;
	uint8_t key[8];
	int rc;

	dfs_buf_init(&val, 64u << 20);
	dfs_put_be64(key, in->ino);
	rc = enc_inode(in, &val);
	if (rc == 0)
		rc = txn_put(tx, IDX_INODES, key, sizeof(key), val.data, val.len);
	dfs_buf_release(&val);
	return rc;
}

int store_txn_del_inode(struct store_txn *tx, uint64_t ino)
{
	uint8_t key[8];

	dfs_put_be64(key, ino);
	return txn_del(tx, IDX_INODES, key, sizeof(key));
}

int store_txn_put_dirent(struct store_txn *tx, uint64_t parent, const void *name, size_t len,
			 uint64_t child, uint8_t dtype)
{
	uint8_t key[8 + 256];
	uint8_t vb[16];
	struct dfs_buf val;
	int rc;

	if (len == 0 || len > 255 || memchr(name, '/', len) || memchr(name, 0, len))
		return -EINVAL;
	dfs_buf_init(&val, sizeof(vb));
	rc = enc_dirent_val(child, dtype, &val);
	if (rc == 0)
		rc = txn_put(tx, IDX_DIRENTS, key, enc_dirent_key(parent, name, len, key), val.data,
			     val.len);
	dfs_buf_release(&val);
	return rc;
}

int store_txn_del_dirent(struct store_txn *tx, uint64_t parent, const void *name, size_t len)
{
	uint8_t key[8 + 256];

	if (len == 0 || len > 255)
		return -EINVAL;
	return txn_del(tx, IDX_DIRENTS, key, enc_dirent_key(parent, name, len, key));
}

int store_txn_dir_open(struct store_txn *tx, uint64_t dir, struct store_dir_iter **out)
{
	return store_dir_iter_new(tx->st->ix, tx->b, dir, NULL, 0, out);
}

int store_txn_get_meta_u64(struct store_txn *tx, const char *key, uint64_t *val)
{
	int rc = idx_batch_get(tx->b, IDX_META, key, strlen(key), &tx->tmp);

	if (rc == -ENOENT) {
		*val = 0;
		return 0;
	}
	if (rc == 0)
		rc = dec_u64_val(tx->tmp.data, tx->tmp.len, val);
	return rc;
}

int store_txn_put_meta_u64(struct store_txn *tx, const char *key, uint64_t val)
{
	uint8_t vb[16];
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, sizeof(vb));
	rc = enc_u64_val(val, &b);
	if (rc == 0)
		rc = txn_put(tx, IDX_META, key, strlen(key), b.data, b.len);
	dfs_buf_release(&b);
	return rc;
}

#define RULES_KEY "rules"

void store_rules_release(struct store_rules *r)
{
	free(r->name);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

int store_get_rules(struct store *st, struct store_rules *out)
{
	struct dfs_buf b;
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_buf_init(&b, STORE_RULES_MAX + 4096);
	rc = idx_get(st->ix, IDX_META, RULES_KEY, strlen(RULES_KEY), &b);
	if (rc == 0)
		rc = dec_rules_val(b.data, b.len, out);
	dfs_buf_release(&b);
	return rc;
}

int store_txn_get_rules(struct store_txn *tx, struct store_rules *out)
{
	int rc = idx_batch_get(tx->b, IDX_META, RULES_KEY, strlen(RULES_KEY), &tx->tmp);

	memset(out, 0, sizeof(*out));
	if (rc == 0)
		rc = dec_rules_val(tx->tmp.data, tx->tmp.len, out);
	return rc;
}

int store_txn_put_rules(struct store_txn *tx, const char *name, const void *text, size_t len)
{
	struct dfs_buf b;
	int rc;

	if (len > STORE_RULES_MAX || memchr(text, '\0', len) || strlen(name) > 4096)
		return -EINVAL;
	dfs_buf_init(&b, STORE_RULES_MAX + 8192);
	rc = enc_rules_val(name, text, len, &b);
	if (rc == 0)
		rc = txn_put(tx, IDX_META, RULES_KEY, strlen(RULES_KEY), b.data, b.len);
	dfs_buf_release(&b);
	return rc;
}

int store_txn_del_rules(struct store_txn *tx)
{
	struct store_rules r;
	int rc = store_txn_get_rules(tx, &r);

	if (rc == -ENOENT)
		return 0;
	store_rules_release(&r);	/* a damaged record goes too */
	return txn_del(tx, IDX_META, RULES_KEY, strlen(RULES_KEY));
}

/* The meta family's key of derived record @key: STORE_CACHE_PREFIX | @key. */
static int cache_key(const void *key, size_t klen, uint8_t *out, size_t *olen)
{
	size_t pl = sizeof(STORE_CACHE_PREFIX) - 1;

	if (klen > STORE_CACHE_KEY_MAX)
		return -EINVAL;
	memcpy(out, STORE_CACHE_PREFIX, pl);
	memcpy(out + pl, key, klen);
	*olen = pl + klen;
	return 0;
}

/* Derived records go to the batch alone: committed with it, never in the op log. */
int store_txn_put_cache(struct store_txn *tx, const void *key, size_t klen, const void *v,
			size_t vlen)
{
	uint8_t k[sizeof(STORE_CACHE_PREFIX) + STORE_CACHE_KEY_MAX];
	size_t kl = 0;
	int rc = tx->err ? tx->err : cache_key(key, klen, k, &kl);

	if (rc < 0)
		return rc;
	idx_batch_put(tx->b, IDX_META, k, kl, v, vlen);
	tx->cache_bytes += kl + vlen;
	return 0;
}

int store_txn_del_cache(struct store_txn *tx, const void *key, size_t klen)
{
	uint8_t k[sizeof(STORE_CACHE_PREFIX) + STORE_CACHE_KEY_MAX];
	size_t kl = 0;
	int rc = tx->err ? tx->err : cache_key(key, klen, k, &kl);

	if (rc < 0)
		return rc;
	idx_batch_del(tx->b, IDX_META, k, kl);
	tx->cache_bytes += kl;
	return 0;
}

int store_txn_put_source(struct store_txn *tx, struct store_source *s)
{
	struct dfs_buf val;
	int rc;

	if (s->id == 0) {
		uint64_t next;

		rc = store_txn_get_meta_u64(tx, "next_source", &next);
		if (rc < 0)
			return rc;
		if (next == 0)
			next = 1;
		s->id = (uint32_t)next;
		rc = store_txn_put_meta_u64(tx, "next_source", next + 1);
		if (rc < 0)
			return rc;
	}
	dfs_buf_init(&val, 1u << 20);
	rc = enc_source(s, &val);
	if (rc == 0)
		rc = txn_put(tx, IDX_SOURCES, s->name.p, s->name.len, val.data, val.len);
	dfs_buf_release(&val);
	return rc;
}

int store_txn_del_source(struct store_txn *tx, const void *name, size_t len)
{
	return txn_del(tx, IDX_SOURCES, name, len);
}

int store_txn_del_meta(struct store_txn *tx, const char *key)
{
	return txn_del(tx, IDX_META, key, strlen(key));
}

int store_txn_get_source(struct store_txn *tx, const void *name, size_t len,
			 struct store_source *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = idx_batch_get(tx->b, IDX_SOURCES, name, len, &tx->tmp);
	if (rc == 0)
		rc = dec_source(tx->tmp.data, tx->tmp.len, out);
	return rc;
}

static size_t srcmap_key(uint32_t source, uint64_t st_ino, uint8_t *key)
{
	dfs_put_be32(key, source);
	dfs_put_be64(key + 4, st_ino);
	return 12;
}

int store_txn_get_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino, uint64_t *ino)
{
	uint8_t key[12];
	int rc;

	rc = idx_batch_get(tx->b, IDX_SRCMAP, key, srcmap_key(source, st_ino, key), &tx->tmp);
	if (rc == 0)
		rc = dec_u64_val(tx->tmp.data, tx->tmp.len, ino);
	return rc;
}

int store_txn_put_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino, uint64_t ino)
{
	uint8_t key[12], vb[16];
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, sizeof(vb));
	rc = enc_u64_val(ino, &b);
	if (rc == 0)
		rc = txn_put(tx, IDX_SRCMAP, key, srcmap_key(source, st_ino, key), b.data, b.len);
	dfs_buf_release(&b);
	return rc;
}

int store_txn_del_srcmap(struct store_txn *tx, uint32_t source, uint64_t st_ino)
{
	uint8_t key[12];

	return txn_del(tx, IDX_SRCMAP, key, srcmap_key(source, st_ino, key));
}

/* ---- defrag-gc's operations (store_int.h) ---------------------------------------------- */

int store_txn_del_key(struct store_txn *tx, enum idx_cf cf, const void *k, size_t klen)
{
	return txn_del(tx, cf, k, klen);
}

int store_txn_drop_chunk(struct store_txn *tx, const struct fp256 *id,
			 const struct store_chunk_loc *loc, uint32_t bound)
{
	uint8_t v[4];
	int rc;

	if (tx->err)
		return tx->err;
	dfs_put_be32(v, bound);
	rc = enc_oplog_add(&tx->oplog, (uint8_t)IDX_CHUNKS, ENC_OP_DROP, id->b, FP_LEN, v,
			   sizeof(v));
	if (rc < 0) {
		tx->err = rc;
		return rc;
	}
	tx->nops++;
	idx_batch_del(tx->b, IDX_CHUNKS, id->b, FP_LEN);
	tx->drop_chunks++;
	tx->drop_raw += loc->raw_len;
	tx->drop_stored += loc->stored_len;
	return 0;
}

void store_txn_retire_pack(struct store_txn *tx, uint32_t id)
{
	uint8_t key[4];

	dfs_put_be32(key, id);
	idx_batch_del(tx->b, IDX_PACKS, key, sizeof(key));
}

/* ---- commit ---------------------------------------------------------------------------- */

static void batch_put_u64(struct idx_batch *b, enum idx_cf cf, const char *key, uint64_t v)
{
	uint8_t vb[16];
	struct dfs_buf val;

	dfs_buf_init(&val, sizeof(vb));
	enc_u64_val(v, &val);
	idx_batch_put(b, cf, key, strlen(key), val.data, val.len);
	dfs_buf_release(&val);
}

/* A copy of @n bytes at @p (freed by the caller), NULL when out of memory. */
static void *snapshot(const void *p, size_t n)
{
	void *c = malloc(n);

	return c ? memcpy(c, p, n) : NULL;
}

/* The commit protocol for what @tx holds; @tx stays allocated (store_txn_commit frees it,
 * txn_flush starts it again empty). */
static int txn_commit_keep(struct store_txn *tx)
{
	struct store *st = tx->st;
	struct dirty_pack *dirty = NULL;
	struct pending_chunk *pend = NULL;
	bool remote = st->pb != st->stage;
	uint32_t *upl = NULL;	/* the packs this commit waits for the uploader to confirm */
	size_t nupl = 0;
	struct dfs_buf meta, val;
	struct store_chunk_loc mloc;
	struct pack_rec r;
	size_t npend, ndirty;
	uint64_t seq = st->commit_seq + 1;
	int rc;

	dfs_buf_init(&meta, codec_bound(STORE_OPLOG_MAX));
	dfs_buf_init(&val, 256);
	if (tx->err) {
		rc = tx->err;
		goto out;
	}
	/* Counters that recovery would otherwise have to guess ride in the op log. */
	rc = store_txn_put_meta_u64(tx, "next_ino", st->next_ino);
	if (rc < 0)
		goto out;
	if (tx->oplog.len > tx->limit) {
		dfs_err("commit %" PRIu64 ": %zu bytes of op log, more than one commit holds "
			"(%zu)", seq, tx->oplog.len, tx->limit);
		rc = -E2BIG;
		goto out;
	}

	/* 1. META record, and a snapshot of what this commit makes durable. */
	pthread_mutex_lock(&st->wlock);
	rc = dfs_buf_reserve(&meta, codec_bound(tx->oplog.len));
	if (rc == 0) {
		ssize_t n = codec_compress_meta(st->meta_codec, tx->oplog.data, tx->oplog.len,
						meta.data, meta.cap);

		rc = n < 0 ? (int)n : 0;
		meta.len = n < 0 ? 0 : (size_t)n;
	}
	if (rc == 0) {
		memset(&r, 0, sizeof(r));
		r.type = PACK_REC_META;
		r.codec = CODEC_ZSTD;
		r.raw_len = (uint32_t)tx->oplog.len;
		r.stored_len = (uint32_t)meta.len;
		pack_meta_seq_set(&r, seq);
		rc = store_append_locked(st, &r, meta.data, &mloc);
	}
	npend = st->npending;
	ndirty = st->ndirty;
	/* the chunks this commit names, copied: a worker's append may move the array
	 * (realloc in pending_reserve_locked) while step 3 reads it without the mutex */
	if (rc == 0 && npend && !(pend = snapshot(st->pending, npend * sizeof(*pend))))
		rc = -ENOMEM;
	/* A remote backend takes whole records only: every pack this commit names is sealed
	 * now (a worker's next record starts a new pack), put, and confirmed below; but for
	 * the newest while it is small (STORE_REMOTE_OPEN_MAX), which stays open and is put
	 * as it is now (the prefix of whole records this commit names), and put again by
	 * the next commit that adds to it. */
	for (size_t i = 0; rc == 0 && remote && i < ndirty; i++)
		if (i + 1 < ndirty || st->dirty[i].len >= STORE_REMOTE_OPEN_MAX)
			st->dirty[i].sealed = true;
	if (rc == 0 && ndirty && !(dirty = snapshot(st->dirty, ndirty * sizeof(*dirty))))
		rc = -ENOMEM;
	pthread_mutex_unlock(&st->wlock);
	if (rc < 0)
		goto out;

	/* 2a. Remote backend: every pack not put yet goes to the uploader (those sealed by
	 * size are there already, maybe confirmed), to be put while the packs are synced. */
	if (remote && ndirty) {
		s3_crash_point("seal");
		upl = malloc(ndirty * sizeof(*upl));
		if (!upl)
			rc = -ENOMEM;
		for (size_t i = 0; i < ndirty && rc == 0; i++)
			if (dirty[i].put_len != dirty[i].len) {
				rc = store_upl_queue(st, dirty[i].id, dirty[i].len);
				upl[nupl++] = dirty[i].id;
			}
	}
	/* 2. Make the pack bytes durable before anything names them. */
	for (size_t i = 0; i < ndirty && rc == 0; i++) {
		rc = sio_fdatasync(dirty[i].fd);
		if (rc == 0 && dirty[i].is_new) {
			char path[4096];

			pack_path(st->dir, dirty[i].id, path, sizeof(path));
			rc = sio_fsync_dir(path);
		}
		if (rc < 0)
			dfs_err("pack %08" PRIx32 ": sync failed: %s", dirty[i].id,
				dfs_strerror(rc));
	}
	/* 2b. Remote backend: wait until the server confirmed every pack this commit names
	 * (size and checksum of what it stores); the index names none of them before. The
	 * staged copies go after the commit. */
	if (rc == 0 && nupl)
		rc = store_upl_wait(st, upl, nupl);
	if (rc < 0) {
		pthread_mutex_lock(&st->wlock);
		st->werr = rc;
		pthread_mutex_unlock(&st->wlock);
		goto out;
	}

	if (remote && ndirty)
		s3_crash_point("put");

	/* 3. One synced batch: the transaction, chunk locations, pack lengths, counters. */
	for (size_t i = 0; i < npend; i++) {
		const struct pending_chunk *pc = &pend[i];

		fault_commit_hook(st);

		dfs_buf_clear(&val);
		enc_chunk_loc(&pc->loc, &val);
		idx_batch_put(tx->b, IDX_CHUNKS, pc->id.b, FP_LEN, val.data, val.len);
		if (pc->repair) {	/* the same chunk, now at a new place */
			st->stat_stored += pc->loc.stored_len;
			st->stat_stored -= pc->old_stored_len;
			continue;
		}
		st->stat_chunks++;
		st->stat_raw += pc->loc.raw_len;
		st->stat_stored += pc->loc.stored_len;
	}
	for (size_t i = 0; i < ndirty; i++) {
		uint8_t key[4];

		dfs_put_be32(key, dirty[i].id);
		dfs_buf_clear(&val);
		enc_pack_val(dirty[i].len, dirty[i].sealed, &val);
		idx_batch_put(tx->b, IDX_PACKS, key, sizeof(key), val.data, val.len);
	}
	st->stat_chunks -= tx->drop_chunks;
	st->stat_raw -= tx->drop_raw;
	st->stat_stored -= tx->drop_stored;
	tx->drop_chunks = tx->drop_raw = tx->drop_stored = 0;
	batch_put_u64(tx->b, IDX_META, "commit_seq", seq);
	batch_put_u64(tx->b, IDX_META, "next_pack", st->next_pack);
	batch_put_u64(tx->b, IDX_META, "stat_chunks", st->stat_chunks);
	batch_put_u64(tx->b, IDX_META, "stat_raw", st->stat_raw);
	batch_put_u64(tx->b, IDX_META, "stat_stored", st->stat_stored);
	rc = idx_batch_commit(tx->b, true);
	if (rc < 0) {
		pthread_mutex_lock(&st->wlock);
		st->werr = rc;
		pthread_mutex_unlock(&st->wlock);
		goto out;
	}
	st->commit_seq = seq;
	store_upl_forget(st, upl, nupl);
	if (remote && ndirty)
		s3_crash_point("commit");

	/* The committed chunks are in the index now: drop them from the pending set, and
	 * forget packs that are sealed and synced. */
	pthread_mutex_lock(&st->wlock);
	if (st->npending > npend)
		memmove(st->pending, st->pending + npend,
			(st->npending - npend) * sizeof(*st->pending));
	st->npending -= npend;
	store_pending_rehash(st, st->npending);
	/*
	 * A pack leaves the dirty list only if it was sealed when this commit took its
	 * snapshot: then the length just made durable and recorded is its final length.
	 * A pack sealed by a worker after the snapshot holds bytes this commit did not
	 * record; it stays for the next commit (dropping it once left its committed length
	 * short, and the next writer open cut committed chunks off).
	 */
	for (size_t j = 0, k = 0; j < ndirty && k < st->ndirty; j++) {
		assert(st->dirty[k].id == dirty[j].id);
		st->dirty[k].is_new = false;
		st->dirty[k].put_len = dirty[j].len;
		if (remote && dirty[j].sealed && !dirty[j].named) {
			st->dirty[k].named = true;
			store_pack_unstage(st, dirty[j].id);
		}
		if (dirty[j].sealed && k + 1 < st->ndirty) {
			sio_close(st->dirty[k].fd);
			memmove(st->dirty + k, st->dirty + k + 1,
				(st->ndirty - k - 1) * sizeof(*st->dirty));
			st->ndirty--;
		} else {
			k++;
		}
	}
	pthread_mutex_unlock(&st->wlock);
out:
	free(upl);
	free(dirty);
	free(pend);
	dfs_buf_release(&meta);
	dfs_buf_release(&val);
	return rc;
}

int store_txn_commit(struct store_txn *tx)
{
	int rc = txn_commit_keep(tx);

	txn_free(tx);
	return rc;
}

/*
 * Commits what @tx holds and leaves it open and empty, as if just begun: a part of a
 * content too large for one commit (txn_put_content). The new batch is made first, so a
 * failure leaves @tx as it was, its error sticky (store_txn_commit then reports it).
 */
static int txn_flush(struct store_txn *tx)
{
	struct idx_batch *nb;
	int rc = tx->err;

	if (rc < 0)
		return rc;
	rc = idx_batch_new(tx->st->ix, &nb);
	if (rc == 0) {
		rc = txn_commit_keep(tx);
		if (rc < 0)
			idx_batch_free(nb);
	}
	if (rc < 0) {
		tx->err = rc;
		return rc;
	}
	idx_batch_free(tx->b);
	tx->b = nb;
	tx->nops = 0;
	tx->cache_bytes = 0;
	dfs_buf_clear(&tx->oplog);
	rc = enc_oplog_begin(tx->st->commit_seq + 1, &tx->oplog);
	if (rc < 0)
		tx->err = rc;
	return rc;
}
