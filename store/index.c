/*
 * index.c - RocksDB behind the idx_ API (the only file that sees rocksdb_*).
 *
 * Column families: see enum idx_cf (meta is "default"). Batches are
 * WriteBatchWithIndex so a transaction reads its own writes; iterators over a batch
 * are built "with base" on a database iterator.
 *
 * Threads: rocksdb_t is thread-safe; a batch or iterator belongs to one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "log.h"

static const char *const cf_names[IDX_NCF] = {
	"default", "chunks", "contents", "inodes", "dirents", "sources", "srcmap", "packs",
};

struct idx {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cf_opts[IDX_NCF];
	rocksdb_block_based_table_options_t *topts;
	rocksdb_cache_t *cache;
	rocksdb_filterpolicy_t *filter;	/* owned by topts once set */
	rocksdb_column_family_handle_t *cf[IDX_NCF];
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wsync;
	rocksdb_writeoptions_t *wnosync;
	bool secondary;
};

struct idx_batch {
	struct idx *ix;
	rocksdb_writebatch_wi_t *wb;
};

struct idx_iter {
	rocksdb_iterator_t *it;
	uint8_t *prefix;
	size_t plen;
	bool started;
};

static int take_err(char *err, const char *what)
{
	if (!err)
		return 0;
	dfs_err("index: %s: %s", what, err);
	rocksdb_free(err);
	return -EIO;
}

int idx_open(const char *path, bool create, const char *secondary_path, size_t block_cache,
	     struct idx **out)
{
	const char *names[IDX_NCF];
	const rocksdb_options_t *cfo[IDX_NCF];
	rocksdb_lru_cache_options_t *lo;
	struct idx *ix;
	char *err = NULL;
	int rc;

	*out = NULL;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	ix->secondary = secondary_path != NULL;
	/*
	 * Filters and indexes are partitioned (small blocks, a pinned top level) and live
	 * in the block cache: a whole-file filter block of a large SST (1.5 MB for a 69 MB
	 * file) did not fit a cache shard, so every point lookup read it from disk again.
	 * Few shards, so that any block fits one.
	 */
	lo = rocksdb_lru_cache_options_create();
	rocksdb_lru_cache_options_set_capacity(lo, block_cache ? block_cache : (64u << 20));
	rocksdb_lru_cache_options_set_num_shard_bits(lo, 2);
	ix->cache = rocksdb_cache_create_lru_opts(lo);
	rocksdb_lru_cache_options_destroy(lo);
	ix->topts = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(ix->topts, ix->cache);
	ix->filter = rocksdb_filterpolicy_create_bloom_full(10);
	rocksdb_block_based_options_set_filter_policy(ix->topts, ix->filter);
	rocksdb_block_based_options_set_index_type(ix->topts,
		rocksdb_block_based_table_index_type_two_level_index_search);
	rocksdb_block_based_options_set_partition_filters(ix->topts, 1);
	rocksdb_block_based_options_set_metadata_block_size(ix->topts, 4096);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(ix->topts, 1);
	rocksdb_block_based_options_set_pin_top_level_index_and_filter(ix->topts, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(ix->topts, 1);
	rocksdb_block_based_options_set_format_version(ix->topts, 5);

	ix->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(ix->opts, create);
	rocksdb_options_set_create_missing_column_families(ix->opts, create);
	rocksdb_options_set_paranoid_checks(ix->opts, 1);
	rocksdb_options_set_wal_recovery_mode(ix->opts, rocksdb_point_in_time_recovery);
	rocksdb_options_set_max_background_jobs(ix->opts, 2);
	/* memtables of all column families together: memory bounded by configuration */
	rocksdb_options_set_db_write_buffer_size(ix->opts, 64u << 20);
	rocksdb_options_set_write_buffer_size(ix->opts, 32u << 20);
	rocksdb_options_set_keep_log_file_num(ix->opts, 3);
	rocksdb_options_set_info_log_level(ix->opts, 2 /* WARN */);
	if (ix->secondary)
		rocksdb_options_set_max_open_files(ix->opts, -1);
	else
		rocksdb_options_set_max_open_files(ix->opts, 512);
	for (int i = 0; i < IDX_NCF; i++) {
		ix->cf_opts[i] = rocksdb_options_create_copy(ix->opts);
		rocksdb_options_set_block_based_table_factory(ix->cf_opts[i], ix->topts);
		rocksdb_options_set_compression(ix->cf_opts[i],
						i == IDX_CHUNKS ? rocksdb_no_compression
								: rocksdb_lz4_compression);
		names[i] = cf_names[i];
		cfo[i] = ix->cf_opts[i];
	}
	if (ix->secondary)
		ix->db = rocksdb_open_as_secondary_column_families(ix->opts, path, secondary_path,
								   IDX_NCF, names, cfo, ix->cf,
								   &err);
	else
		ix->db = rocksdb_open_column_families(ix->opts, path, IDX_NCF, names, cfo, ix->cf,
						      &err);
	rc = take_err(err, path);
	if (rc < 0) {
		idx_close(ix);
		return rc;
	}
	ix->ropts = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(ix->ropts, 1);
	ix->wsync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(ix->wsync, 1);
	ix->wnosync = rocksdb_writeoptions_create();
	*out = ix;
	return 0;
}

void idx_close(struct idx *ix)
{
	if (!ix)
		return;
	for (int i = 0; i < IDX_NCF; i++)
		if (ix->cf[i])
			rocksdb_column_family_handle_destroy(ix->cf[i]);
	if (ix->db)
		rocksdb_close(ix->db);
	for (int i = 0; i < IDX_NCF; i++)
		if (ix->cf_opts[i])
			rocksdb_options_destroy(ix->cf_opts[i]);
	if (ix->opts)
		rocksdb_options_destroy(ix->opts);
	if (ix->topts)
		rocksdb_block_based_options_destroy(ix->topts);
	if (ix->cache)
		rocksdb_cache_destroy(ix->cache);
	if (ix->ropts)
		rocksdb_readoptions_destroy(ix->ropts);
	if (ix->wsync)
		rocksdb_writeoptions_destroy(ix->wsync);
	if (ix->wnosync)
		rocksdb_writeoptions_destroy(ix->wnosync);
	free(ix);
}

int idx_catch_up(struct idx *ix)
{
	char *err = NULL;

	if (!ix->secondary)
		return 0;
	rocksdb_try_catch_up_with_primary(ix->db, &err);
	return take_err(err, "catch up with the writer");
}

uint64_t idx_sequence(struct idx *ix)
{
	return rocksdb_get_latest_sequence_number(ix->db);
}

int idx_get(struct idx *ix, enum idx_cf cf, const void *key, size_t klen, struct dfs_buf *val)
{
	char *err = NULL;
	size_t vlen = 0;
	char *v;
	int rc;

	dfs_buf_clear(val);
	v = rocksdb_get_cf(ix->db, ix->ropts, ix->cf[cf], key, klen, &vlen, &err);
	rc = take_err(err, "get");
	if (rc < 0)
		return rc;
	if (!v)
		return -ENOENT;
	rc = dfs_buf_append(val, v, vlen);
	rocksdb_free(v);
	return rc;
}

int idx_multi_get(struct idx *ix, enum idx_cf cf, size_t n, const void *const *keys,
		  const size_t *klens,
		  void (*fn)(void *arg, size_t i, int rc, const uint8_t *v, size_t vlen),
		  void *arg)
{
	rocksdb_pinnableslice_t **vals;
	char **errs;

	if (n == 0)
		return 0;
	vals = calloc(n, sizeof(*vals));
	errs = calloc(n, sizeof(*errs));
	if (!vals || !errs) {
		free(vals);
		free(errs);
		return -ENOMEM;
	}
	rocksdb_batched_multi_get_cf(ix->db, ix->ropts, ix->cf[cf], n, (const char *const *)keys,
				     klens, vals, errs, false);
	for (size_t i = 0; i < n; i++) {
		const char *v;
		size_t vlen = 0;

		if (errs[i]) {
			fn(arg, i, take_err(errs[i], "multi-get"), NULL, 0);
		} else if (!vals[i]) {
			fn(arg, i, -ENOENT, NULL, 0);
		} else {
			v = rocksdb_pinnableslice_value(vals[i], &vlen);
			fn(arg, i, 0, (const uint8_t *)v, vlen);
		}
		if (vals[i])
			rocksdb_pinnableslice_destroy(vals[i]);
	}
	free(errs);
	free(vals);
	return 0;
}

int idx_batch_new(struct idx *ix, struct idx_batch **out)
{
	struct idx_batch *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return -ENOMEM;
	b->ix = ix;
	b->wb = rocksdb_writebatch_wi_create(0, 1 /* overwrite_keys */);
	*out = b;
	return 0;
}

void idx_batch_free(struct idx_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_wi_destroy(b->wb);
	free(b);
}

void idx_batch_put(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen,
		   const void *v, size_t vlen)
{
	rocksdb_writebatch_wi_put_cf(b->wb, b->ix->cf[cf], k, klen, v, vlen);
}

void idx_batch_del(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen)
{
	rocksdb_writebatch_wi_delete_cf(b->wb, b->ix->cf[cf], k, klen);
}

int idx_batch_get(struct idx_batch *b, enum idx_cf cf, const void *key, size_t klen,
		  struct dfs_buf *val)
{
	char *err = NULL;
	size_t vlen = 0;
	char *v;
	int rc;

	dfs_buf_clear(val);
	v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b->wb, b->ix->db, b->ix->ropts,
							   b->ix->cf[cf], key, klen, &vlen, &err);
	rc = take_err(err, "get (batch)");
	if (rc < 0)
		return rc;
	if (!v)
		return -ENOENT;
	rc = dfs_buf_append(val, v, vlen);
	rocksdb_free(v);
	return rc;
}

size_t idx_batch_bytes(struct idx_batch *b)
{
	size_t n = 0;

	rocksdb_writebatch_wi_data(b->wb, &n);
	return n;
}

int idx_batch_commit(struct idx_batch *b, bool sync)
{
	char *err = NULL;
	int rc;

	rocksdb_write_writebatch_wi(b->ix->db, sync ? b->ix->wsync : b->ix->wnosync, b->wb,
				    &err);
	rc = take_err(err, "commit");
	rocksdb_writebatch_wi_clear(b->wb);
	return rc;
}

int idx_iter_new(struct idx *ix, struct idx_batch *b, enum idx_cf cf, const void *prefix,
		 size_t plen, const void *start, size_t slen, struct idx_iter **out)
{
	struct idx_iter *it = calloc(1, sizeof(*it));
	rocksdb_iterator_t *base;

	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->prefix = malloc(plen ? plen : 1);
	if (!it->prefix) {
		free(it);
		return -ENOMEM;
	}
	memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	base = rocksdb_create_iterator_cf(ix->db, ix->ropts, ix->cf[cf]);
	if (b)
		it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(b->wb, base,
									    ix->cf[cf]);
	else
		it->it = base;
	if (start)
		rocksdb_iter_seek(it->it, start, slen);
	else
		rocksdb_iter_seek(it->it, prefix, plen);
	*out = it;
	return 0;
}

int idx_iter_next(struct idx_iter *it, const uint8_t **k, size_t *klen, const uint8_t **v,
		  size_t *vlen)
{
	char *err = NULL;
	const char *kp;

	if (it->started)
		rocksdb_iter_next(it->it);
	it->started = true;
	if (!rocksdb_iter_valid(it->it)) {
		rocksdb_iter_get_error(it->it, &err);
		return take_err(err, "iterate");
	}
	kp = rocksdb_iter_key(it->it, klen);
	if (*klen < it->plen || memcmp(kp, it->prefix, it->plen) != 0)
		return 0;
	*k = (const uint8_t *)kp;
	*v = (const uint8_t *)rocksdb_iter_value(it->it, vlen);
	return 1;
}

void idx_iter_free(struct idx_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	free(it->prefix);
	free(it);
}

int idx_checkpoint(struct idx *ix, const char *dir)
{
	rocksdb_checkpoint_t *cp;
	char *err = NULL;
	int rc;

	cp = rocksdb_checkpoint_object_create(ix->db, &err);
	rc = take_err(err, "checkpoint");
	if (rc < 0)
		return rc;
	rocksdb_checkpoint_create(cp, dir, 0, &err);
	rc = take_err(err, dir);
	rocksdb_checkpoint_object_destroy(cp);
	return rc;
}

int idx_flush(struct idx *ix, bool wait)
{
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	char *err = NULL;

	rocksdb_flushoptions_set_wait(fo, wait);
	for (int i = 0; i < IDX_NCF && !err; i++)
		rocksdb_flush_cf(ix->db, fo, ix->cf[i], &err);
	rocksdb_flushoptions_destroy(fo);
	return take_err(err, "flush");
}
