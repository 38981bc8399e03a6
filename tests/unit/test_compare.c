/*
 * test_compare.c - ingest/compare.h: a small source tree is ingested (ingest_source), then
 * compared with its view while it is changed: clean gives no problem; an atime change is
 * a note, not a problem; a changed byte with its mtime put back names its exact offset;
 * a changed mode, a file missing from the store (and the same file accepted), an extra
 * xattr, a FIFO put in place of a regular file; the repair pass reports nothing.
 * Last, a thread swaps a regular file and a FIFO (RENAME_EXCHANGE) while the comparison
 * runs again and again: it must never block in open (alarm(60) guards the run).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ingest/compare.h"
#include "ingest/ingest.h"
#include "store/log.h"
#include "store/sio.h"
#include "store/store.h"

#include "test_check.h"

static char root[64], src[96], sw[128], spare[96];

struct seen {
	unsigned n, problems, notes;
	char rel[8][256];
	char msg[8][256];
	bool problem[8];
};

static void on_diff(void *arg, enum cmp_kind kind, const uint8_t *rel, size_t rlen,
		    const char *msg)
{
	struct seen *s = arg;
	bool problem = kind != CMP_NOTE;

	if (problem)
		s->problems++;
	else
		s->notes++;
	if (s->n < 8) {
		snprintf(s->rel[s->n], sizeof(s->rel[0]), "%.*s", (int)rlen, (const char *)rel);
		snprintf(s->msg[s->n], sizeof(s->msg[0]), "%s", msg);
		s->problem[s->n] = problem;
	}
	s->n++;
}

/* The one problem reported names @rel with @msg. */
static bool one_problem(const struct seen *s, const char *rel, const char *msg)
{
	for (unsigned i = 0; i < s->n && i < 8; i++) {
		if (s->problem[i])
			return s->problems == 1 && !strcmp(s->rel[i], rel) &&
			       !strcmp(s->msg[i], msg);
	}
	return false;
}

static void write_file(const char *path, size_t len, unsigned seed)
{
	FILE *f = fopen(path, "we");
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; f && i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		fputc((int)(x & 0xff), f);
	}
	CHECK(f && fclose(f) == 0, "cannot write %s", path);
}

static int ingest(const char *dir, struct store **out)
{
	struct store_create_opts co;
	struct store_open_opts so = { .mode = STORE_WRITER, .create = true, .create_opts = &co };
	struct ingest_opts io = { .jobs = 2, .no_organize = true };
	struct ingest_report rep = { 0 };
	struct store_txn *tx = NULL;
	struct store *st;
	int rc;

	store_create_opts_default(&co);
	rc = store_open(dir, &so, &st);
	if (rc < 0)
		return rc;
	rc = store_txn_begin(st, &tx);
	if (rc == 0)
		rc = ingest_ensure_roots(tx);
	if (rc == 0)
		rc = ingest_source(st, &tx, src, "t", &io, &rep);
	if (rc == 0 && rep.outcome != INGEST_DONE)
		rc = -EIO;
	if (tx && rc == 0)
		rc = store_txn_commit(tx);
	else if (tx)
		store_txn_abort(tx);
	ingest_report_release(&rep);
	if (rc < 0) {
		store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

static int run(struct store *st, struct codec *codec, uint64_t ino, const char *path,
	       const char *const *accept, size_t naccept, struct seen *s, struct cmp_stats *cs)
{
	struct cmp_opts o = { .accept = accept, .naccept = naccept, .diff = on_diff, .arg = s };

	memset(s, 0, sizeof(*s));
	return cmp_source(st, codec, ino, path, &o, cs);
}

/* Sets the byte at @off of @path to @c, keeping the file's atime and mtime. */
static void poke(const char *path, off_t off, char c)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0 && fstat(fd, &sb) == 0 && pwrite(fd, &c, 1, off) == 1, "poke %s", path);
	if (fd >= 0) {
		struct timespec ts[2] = { sb.st_atim, sb.st_mtim };

		CHECK(futimens(fd, ts) == 0, "futimens");
		close(fd);
	}
}

static volatile bool stop;

static void *swapper(void *arg)
{
	char *f = arg;
	unsigned long n = 0;

	while (!stop) {
		if (renameat2(AT_FDCWD, f, AT_FDCWD, spare, RENAME_EXCHANGE) < 0)
			break;
		n++;
	}
	return (void *)n;
}

static void test_compare(struct store *st, struct codec *codec, uint64_t rino, uint64_t swino)
{
	const char *const accept[] = { "/new.txt" };
	char p[256], q[256];
	struct seen s;
	struct cmp_stats cs;
	int rc;

	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && cs.problems == 0 && s.problems == 0 && cs.entries == 7,
	      "clean tree: rc %d, %llu problems (first: %s: %s), %llu entries", rc,
	      (unsigned long long)cs.problems, s.rel[0], s.msg[0],
	      (unsigned long long)cs.entries);

	/* an atime change: a note, not a problem */
	snprintf(p, sizeof(p), "%s/a.txt", src);
	CHECK(utimensat(AT_FDCWD, p, (struct timespec[2]){ { 12345, 0 }, { 0, UTIME_OMIT } },
			0) == 0, "utimensat");
	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && cs.problems == 0 && cs.notes >= 1 && s.notes == cs.notes,
	      "atime: %llu problems, %llu notes", (unsigned long long)cs.problems,
	      (unsigned long long)cs.notes);

	/* a changed byte, mtime put back: its exact offset */
	snprintf(p, sizeof(p), "%s/dir/b.bin", src);
	poke(p, 1234567, 'X');
	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && one_problem(&s, "dir/b.bin", "bytes differ at offset 1234567") &&
	      cs.problems == 1, "changed byte: %u problems, first %s: %s", s.problems, s.rel[0],
	      s.msg[0]);
	snprintf(q, sizeof(q), "%s/b.orig", root);
	{
		FILE *f = fopen(q, "re");
		int c = f ? (fseek(f, 1234567, SEEK_SET), fgetc(f)) : EOF;

		if (f)
			fclose(f);
		poke(p, 1234567, (char)c);
	}
	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && cs.problems == 0, "byte put back: %llu problems",
	      (unsigned long long)cs.problems);

	/* a changed mode */
	snprintf(p, sizeof(p), "%s/a.txt", src);
	CHECK(chmod(p, 0600) == 0, "chmod");
	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && one_problem(&s, "a.txt", "mode 644 in the store, 600 in the source"),
	      "mode: %u problems, first %s: %s", s.problems, s.rel[0], s.msg[0]);
	{
		/* the repair pass reports nothing and repairs nothing without damage */
		struct fpset none = { 0 }, fixed = { 0 };
		struct cmp_repair rp = { .bad_chunks = &none, .bad_contents = &none,
					 .fixed = &fixed };
		struct cmp_opts o = { .repair = &rp, .diff = on_diff, .arg = &s };

		memset(&s, 0, sizeof(s));
		rc = cmp_source(st, codec, rino, src, &o, &cs);
		CHECK(rc == 0 && s.n == 0 && cs.problems == 0 && cs.repaired == 0 && !fixed.n,
		      "repair pass: rc %d, %u reports", rc, s.n);
		rp.fixed = NULL;
		CHECK(cmp_source(st, codec, rino, src, &o, &cs) == -EINVAL,
		      "a repair pass without its sets");
	}
	CHECK(chmod(p, 0644) == 0, "chmod back");

	/* a file missing from the store; then the same, accepted */
	snprintf(p, sizeof(p), "%s/new.txt", src);
	write_file(p, 10, 9);
	rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
	CHECK(rc == 0 && one_problem(&s, "new.txt", "missing from the store"),
	      "missing: %u problems, first %s: %s", s.problems, s.rel[0], s.msg[0]);
	rc = run(st, codec, rino, src, accept, 1, &s, &cs);
	CHECK(rc == 0 && cs.problems == 0, "accepted missing: %llu problems (%s: %s)",
	      (unsigned long long)cs.problems, s.rel[0], s.msg[0]);
	unlink(p);

	/* an extra xattr */
	snprintf(p, sizeof(p), "%s/dir/b.bin", src);
	if (setxattr(p, "user.extra", "v", 1, 0) == 0) {
		rc = run(st, codec, rino, src, NULL, 0, &s, &cs);
		CHECK(rc == 0 && one_problem(&s, "dir/b.bin", "extended attribute user.extra "
					     "differs or is missing"),
		      "xattr: %u problems, first %s: %s", s.problems, s.rel[0], s.msg[0]);
		removexattr(p, "user.extra");
	} else {
		fprintf(stderr, "test_compare: no user xattrs here (%s), xattr case skipped\n",
			strerror(errno));
	}

	/* a FIFO in place of a regular file */
	snprintf(p, sizeof(p), "%s/f", sw);
	CHECK(renameat2(AT_FDCWD, p, AT_FDCWD, spare, RENAME_EXCHANGE) == 0, "exchange");
	rc = run(st, codec, swino, sw, NULL, 0, &s, &cs);
	CHECK(rc == 0 && one_problem(&s, "f", "type differs"), "FIFO: %u problems, first %s: %s",
	      s.problems, s.rel[0], s.msg[0]);
	CHECK(renameat2(AT_FDCWD, p, AT_FDCWD, spare, RENAME_EXCHANGE) == 0, "exchange back");
	rc = run(st, codec, swino, sw, NULL, 0, &s, &cs);
	CHECK(rc == 0 && cs.problems == 0, "swapped back: %llu problems",
	      (unsigned long long)cs.problems);
}

/* A FIFO swapped in for a regular file between the lstat and the open. */
static void test_swap_race(struct store *st, struct codec *codec, uint64_t swino)
{
	char f[256];
	pthread_t th;
	void *swaps;
	unsigned bad = 0, diffs = 0, runs;
	struct timespec t0, t1;

	snprintf(f, sizeof(f), "%s/f", sw);
	stop = false;
	CHECK(pthread_create(&th, NULL, swapper, f) == 0, "pthread_create");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (runs = 0; runs < 5000; runs++) {
		struct seen s;
		struct cmp_stats cs;
		int rc = run(st, codec, swino, sw, NULL, 0, &s, &cs);

		if (rc < 0 || cs.problems > 1 ||
		    (cs.problems && !one_problem(&s, "f", "type differs")))
			bad++;
		diffs += cs.problems ? 1 : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec >= 10)
			break;	/* the swaps slow each run down: ten seconds of them */
	}
	stop = true;
	pthread_join(th, &swaps);
	CHECK(!bad, "swap race: %u runs gave something else than \"type differs\"", bad);
	printf("test_compare: %lu swaps, %u of %u runs saw the FIFO\n",
	       (unsigned long)(uintptr_t)swaps, diffs, runs);
	/* put the regular file back where the view has it */
	{
		struct stat sb;

		if (lstat(f, &sb) == 0 && S_ISFIFO(sb.st_mode))
			renameat2(AT_FDCWD, f, AT_FDCWD, spare, RENAME_EXCHANGE);
	}
}

int main(void)
{
	struct store *st = NULL;
	struct codec *codec = NULL;
	struct store_source ss;
	char p[256], d[256];
	uint64_t rino = 0, swino = 0;
	uint8_t t;
	int rc;

	alarm(60);	/* a blocked open must fail the test, not hang it */
	dfs_log_set_prog("test_compare");
	snprintf(root, sizeof(root), "/tmp/test_compare.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	snprintf(src, sizeof(src), "%s/src", root);
	snprintf(sw, sizeof(sw), "%s/sw", src);
	snprintf(spare, sizeof(spare), "%s/fifo", root);
	snprintf(d, sizeof(d), "%s/dir", src);
	CHECK(mkdir(src, 0755) == 0 && mkdir(d, 0755) == 0 && mkdir(sw, 0755) == 0, "mkdir");
	snprintf(p, sizeof(p), "%s/a.txt", src);
	write_file(p, 300000, 1);
	CHECK(chmod(p, 0644) == 0, "chmod");
	snprintf(p, sizeof(p), "%s/dir/b.bin", src);
	write_file(p, 2u << 20, 2);
	snprintf(p, sizeof(p), "%s/b.orig", root);
	write_file(p, 2u << 20, 2);
	snprintf(p, sizeof(p), "%s/dir/link", src);
	CHECK(symlink("../a.txt", p) == 0, "symlink");
	snprintf(p, sizeof(p), "%s/empty", src);
	write_file(p, 0, 3);
	snprintf(p, sizeof(p), "%s/f", sw);
	write_file(p, 100, 4);
	CHECK(mkfifo(spare, 0644) == 0, "mkfifo");
	snprintf(p, sizeof(p), "%s/store", root);
	rc = ingest(p, &st);
	CHECK(rc == 0, "ingest: %s", dfs_strerror(rc));
	if (rc == 0) {
		rc = store_get_source(st, "t", 1, &ss);
		CHECK(rc == 0, "the source record: %d", rc);
		if (rc == 0) {
			rino = ss.root_ino;
			store_source_release(&ss);
			rc = store_lookup(st, rino, "sw", 2, &swino, &t);
			CHECK(rc == 0, "lookup sw: %d", rc);
		}
		if (rc == 0)
			rc = codec_new(store_params(st)->zstd_level, &codec);
	}
	if (rc == 0) {
		test_compare(st, codec, rino, swino);
		test_swap_race(st, codec, swino);
	}
	codec_free(codec);
	store_close(st);
	sio_remove_tree(root);
	return test_result("test_compare");
}
