/*
 * bench_follow.c - what live follow's catch-up costs a reader (store/index.c), on an
 * index of a given size. Never run by ctest; results go to docs/BENCHMARKS.md.
 *
 *   bench_follow [--keys N] [--rounds N] [DIR]
 *	Builds an index of N inode-sized entries (16-byte keys, 150-byte values; default
 *	2,000,000) in DIR (default a new directory under $TMPDIR), opens a reader (a
 *	secondary instance), then for each round reopens the primary (as every ingest
 *	does), commits one write, and times the reader's catch-up: that one must open a
 *	fresh instance (the primary switched MANIFEST). Then it commits a second write in
 *	the same primary session and times the catch-up again: that one tails the WAL it
 *	knows, RocksDB's own catch-up, which is the baseline. Prints both means (the first
 *	round is not counted), their ratio, and the number of SST files.
 *
 * Errors: exits 1 with a message on any failure. DIR is removed at the end unless given.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/index.h"
#include "store/log.h"
#include "store/sio.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_follow: %s: %s\n", what, rc < 0 ? strerror(-rc) : "failed");
	exit(1);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One committed write of @key in the primary @p. */
static void put_one(struct idx *p, const char *key, uint32_t v)
{
	struct idx_batch *b;
	int rc = idx_batch_new(p, &b);

	if (rc < 0)
		die("batch", rc);
	idx_batch_put(b, IDX_META, key, strlen(key), &v, sizeof(v));
	rc = idx_batch_commit(b, true);
	idx_batch_free(b);
	if (rc < 0)
		die("commit", rc);
}

static void build(const char *path, long keys)
{
	uint64_t x = 88172645463325252ull;
	struct idx_batch *b;
	struct idx *p;
	uint8_t v[150];
	int rc;

	rc = idx_open(path, true, NULL, 0, &p);
	if (rc < 0)
		die(path, rc);
	if ((rc = idx_batch_new(p, &b)) < 0)
		die("batch", rc);
	for (long i = 0; i < keys; i++) {
		uint8_t k[16];

		for (int j = 0; j < 16; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			k[j] = (uint8_t)x;
		}
		for (size_t j = 0; j < sizeof(v); j++)
			v[j] = (uint8_t)(x >> (j % 8 * 8));
		idx_batch_put(b, IDX_INODES, k, sizeof(k), v, sizeof(v));
		if (i % 100000 == 99999 && (rc = idx_batch_commit(b, false)) < 0)
			die("commit", rc);
	}
	if ((rc = idx_batch_commit(b, true)) < 0 || (rc = idx_flush(p, true)) < 0)
		die("commit", rc);
	idx_batch_free(b);
	idx_close(p);
}

/* A whole decimal number in [@min, @max], or exits with a usage error. */
static long number(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "bench_follow: %s: not a number from %ld to %ld\n", s, min, max);
		exit(2);
	}
	return v;
}

static int count_sst(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		n += l > 4 && !strcmp(de->d_name + l - 4, ".sst");
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	long keys = 2000000;
	int rounds = 11, rc;
	const char *dir = NULL;
	char tmp[4000], path[4096], priv[4096];
	double fresh = 0, plain = 0;
	struct idx *s, *p;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc)
			keys = number(argv[++i], 1, 1000000000);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (int)number(argv[++i], 2, 100000);
		else if (argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr, "usage: bench_follow [--keys N] [--rounds N] [DIR]\n");
			return 2;
		}
	}
	dfs_log_set_level(DFS_LOG_ERR);
	if (!dir) {
		snprintf(tmp, sizeof(tmp), "%s/bench_follow.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(tmp))
			die("mkdtemp", -errno);
	} else {
		snprintf(tmp, sizeof(tmp), "%s", dir);
	}
	snprintf(path, sizeof(path), "%s/index", tmp);
	snprintf(priv, sizeof(priv), "%s/private", tmp);
	if (mkdir(priv, 0700) < 0 && errno != EEXIST)
		die(priv, -errno);
	build(path, keys);
	if ((rc = idx_open(path, false, priv, 0, &s)) < 0)
		die("open the reader", rc);
	for (int r = 0; r < rounds; r++) {
		double t0, t1, t2, t3;

		if ((rc = idx_open(path, false, NULL, 0, &p)) < 0)
			die("reopen the primary", rc);
		put_one(p, "a", (uint32_t)r);
		t0 = now();
		if ((rc = idx_catch_up(s)) < 0)
			die("catch up (fresh instance)", rc);
		t1 = now();
		put_one(p, "b", (uint32_t)r);
		t2 = now();
		if ((rc = idx_catch_up(s)) < 0)
			die("catch up (same WAL)", rc);
		t3 = now();
		idx_close(p);
		if (r) {
			fresh += t1 - t0;
			plain += t3 - t2;
		}
	}
	idx_close(s);
	fresh /= rounds - 1;
	plain /= rounds - 1;
	printf("%ld keys, %d SST files: catch-up with a fresh instance %.2f ms, RocksDB's "
	       "catch-up on the same WAL %.2f ms, ratio %.2f (mean of %d rounds)\n",
	       keys, count_sst(path), fresh * 1e3, plain * 1e3, fresh / plain, rounds - 1);
	if (!dir)
		sio_remove_tree(tmp);
	return 0;
}
