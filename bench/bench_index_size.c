/*
 * bench_index_size.c - the bytes (keys and values, as stored before RocksDB's own
 * encoding) of every column family of a store's index, and of the derived records
 * (store.h "derived records": copy alignment's signatures) among them: what those records
 * add to the index, free of the compaction state that du(1) of index/ also measures.
 *   bench_index_size STORE      (no writer may hold the store)
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/index.h"
#include "store/store.h"

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
	idx_close(ix);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return 1;
	}
	printf("total     %14" PRIu64 " bytes; derived records: %" PRIu64 " entries, %" PRIu64
	       " bytes (%.1f%% of the rest)\n", total, ncache, cache,
	       total > cache ? 100.0 * (double)cache / (double)(total - cache) : 0.0);
	return 0;
}
