/*
 * bench_index_size.c - the bytes (keys and values, as stored before RocksDB's own
 * encoding) of every column family of a store's index, and of the derived records
 * (store.h "derived records": copy alignment's signatures) among them: what those records
 * add to the index, free of the compaction state that du(1) of index/ also measures.
 *   bench_index_size STORE      (no writer may hold the store)
 * and, on the last line, what they take on disk: a checkpoint of the index (hard links,
 * the store is not changed) compacted to one sorted run, its table files' bytes with the
 * derived records and again with them deleted and compacted away (filters and index
 * blocks included: what removing them would give back).
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index.h"
#include "store/store.h"

/* The bytes of the table files in @dir; unlinks every file of it when @rm. */
static uint64_t dir_bytes(const char *dir, bool tables, bool rm)
{
	char p[4096];
	uint64_t t = 0;
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.')
			continue;
		if (!tables || (n > 4 && !strcmp(e->d_name + n - 4, ".sst")))
			t += stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
		if (rm)
			unlink(p);
	}
	if (d)
		closedir(d);
	if (rm)
		rmdir(dir);
	return t;
}

/* Deletes every derived record of @ix's META family: 0 or -errno. */
static int drop_cache(struct idx *ix)
{
	const size_t plen = sizeof(STORE_CACHE_PREFIX) - 1;
	struct idx_batch *b = NULL;
	struct idx_iter *it = NULL;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_batch_new(ix, &b);

	if (rc == 0)
		rc = idx_iter_new(ix, NULL, IDX_META, STORE_CACHE_PREFIX, plen, NULL, 0, &it);
	while (rc == 0 && (rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		idx_batch_del(b, IDX_META, k, kl);
		rc = 0;
	}
	if (rc == 0)
		rc = idx_batch_commit(b, false);
	idx_iter_free(it);
	idx_batch_free(b);
	return rc;
}

/* The table bytes of @path's index compacted, with and without the derived records. */
static int on_disk(struct idx *ix, const char *store)
{
	char cp[4096];
	uint64_t with = 0, without = 0;
	struct idx *c = NULL;
	int rc;

	snprintf(cp, sizeof(cp), "%s/index.measure.%d", store, (int)getpid());
	rc = idx_checkpoint(ix, cp);
	if (rc == 0)
		rc = idx_open(cp, false, NULL, 0, &c);
	if (rc == 0 && (rc = idx_compact(c)) == 0)
		with = dir_bytes(cp, true, false);
	if (rc == 0 && (rc = drop_cache(c)) == 0 && (rc = idx_compact(c)) == 0)
		without = dir_bytes(cp, true, false);
	if (c)
		idx_close(c);
	dir_bytes(cp, false, true);
	if (rc < 0)
		return rc;
	printf("on disk, compacted: %" PRIu64 " bytes of table files, %" PRIu64
	       " without the derived records: they take %" PRIu64 " (%.1f%% of the rest)\n",
	       with, without, with - without,
	       without ? 100.0 * (double)(with - without) / (double)without : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[IDX_NCF] = { "meta", "chunks", "contents", "inodes",
						    "dirents", "sources", "srcmap", "packs" };
	uint64_t total = 0, cache = 0, ncache = 0;
	char path[4096];
	struct idx *ix;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_index_size STORE\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/index", argv[1]);
	rc = idx_open(path, false, NULL, 0, &ix);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return 1;
	}
	for (int cf = 0; cf < IDX_NCF && rc >= 0; cf++) {
		uint64_t bytes = 0, n = 0;
		const uint8_t *k, *v;
		size_t kl, vl;
		struct idx_iter *it;

		rc = idx_iter_new(ix, NULL, cf, "", 0, NULL, 0, &it);
		if (rc < 0)
			break;
		while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
			bytes += kl + vl;
			n++;
			if (cf == IDX_META && kl >= sizeof(STORE_CACHE_PREFIX) - 1 &&
			    !memcmp(k, STORE_CACHE_PREFIX, sizeof(STORE_CACHE_PREFIX) - 1)) {
				cache += kl + vl;
				ncache++;
			}
		}
		idx_iter_free(it);
		printf("%-9s %12" PRIu64 " entries %14" PRIu64 " bytes\n", names[cf], n, bytes);
		total += bytes;
	}
	if (rc >= 0) {
		printf("total     %14" PRIu64 " bytes; derived records: %" PRIu64 " entries, %" PRIu64
		       " bytes (%.1f%% of the rest)\n", total, ncache, cache,
		       total > cache ? 100.0 * (double)cache / (double)(total - cache) : 0.0);
		rc = on_disk(ix, argv[1]);
	}
	idx_close(ix);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return 1;
	}
	return 0;
}
