/*
 * test_ingest.c - ingest/ through its contract (ingest_source, srcfile.h) on a temporary
 * store and a generated source tree: what the view holds after a run, the order in which
 * the committer applied it, hard links (and a hard-link set out of memory), the deletion
 * threshold, a FIFO where a regular file was, the incremental re-ingest, the dry run.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "ingest/srcfile.h"
#include "store/codec.h"
#include "store/log.h"
#include "store/sio.h"
#include "store/store.h"

#include "test_check.h"

static char root[64];

static void put(const char *rel, const char *data, size_t len)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/src/%s", root, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0, "create %s", p);
	if (fd < 0)
		return;
	CHECK(write(fd, data, len) == (ssize_t)len, "write %s", p);
	close(fd);
}

static void mkd(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/src/%s", root, rel);
	CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
}

/* A source: dirs, small and large files, two hard links, a symlink, a FIFO. */
static void make_tree(void)
{
	static char big[600000];
	char p[512], q[512];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)((i * 2654435761u) >> 13);
	snprintf(p, sizeof(p), "%s/src", root);
	CHECK(mkdir(p, 0755) == 0, "mkdir src");
	mkd("a");
	mkd("a/b");
	mkd("a/b/c");
	mkd("z");
	put("top.txt", "top\n", 4);
	put("a/one.txt", "one\n", 4);
	put("a/b/two.txt", "two\n", 4);
	put("a/b/c/big.bin", big, sizeof(big));
	for (int i = 0; i < 8; i++) {
		char n[32], d[32];

		snprintf(n, sizeof(n), "z/f%d", i);
		snprintf(d, sizeof(d), "file %d\n", i);
		put(n, d, strlen(d));
	}
	snprintf(p, sizeof(p), "%s/src/a/one.txt", root);
	snprintf(q, sizeof(q), "%s/src/z/link-to-one", root);
	CHECK(link(p, q) == 0, "link");
	snprintf(q, sizeof(q), "%s/src/sym", root);
	CHECK(symlink("a/one.txt", q) == 0, "symlink");
	snprintf(q, sizeof(q), "%s/src/fifo", root);
	CHECK(mkfifo(q, 0600) == 0, "mkfifo");
}

static int open_store(struct store **st)
{
	struct store_create_opts co;
	struct store_open_opts o = { .mode = STORE_WRITER, .create = true, .create_opts = &co };
	char dir[128];

	store_create_opts_default(&co);
	snprintf(dir, sizeof(dir), "%s/store", root);
	return store_open(dir, &o, st);
}

/* One ingest of src as "drv", committed. The report is released by the caller. */
static int ingest(struct store *st, const struct ingest_opts *o, struct ingest_report *rep)
{
	struct store_txn *tx = NULL;
	char path[128];
	int rc;

	snprintf(path, sizeof(path), "%s/src", root);
	rc = store_txn_begin(st, &tx);
	if (rc == 0)
		rc = ingest_ensure_roots(tx);
	if (rc == 0)
		rc = ingest_source(st, &tx, path, "drv", o, rep);
	if (tx) {
		int crc = store_txn_commit(tx);

		if (rc == 0)
			rc = crc;
	}
	return rc;
}

/* The inode of "drv/<rel>" in /.sources (0: missing). */
static uint64_t lookup(struct store *st, const char *rel)
{
	uint64_t ino = STORE_SOURCES_INO, child;
	char buf[256], *save = NULL, *part;
	uint8_t t;

	snprintf(buf, sizeof(buf), "drv/%s", rel);
	for (part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (store_lookup(st, ino, part, strlen(part), &child, &t) < 0)
			return 0;
		ino = child;
	}
	return ino;
}

static bool content_is(struct store *st, uint64_t ino, const void *want, size_t len)
{
	struct store_inode in;
	struct store_content *c = NULL;
	struct codec *codec = NULL;
	uint8_t *buf = malloc(len + 1);
	bool ok = false;

	if (!buf || store_get_inode(st, ino, &in) < 0) {
		free(buf);
		return false;
	}
	if (in.has_content && in.size == len && store_content_open(st, &in.content, &c) == 0 &&
	    codec_new(1, &codec) == 0) {
		ssize_t n = store_content_pread(st, codec, c, buf, len + 1, 0);

		ok = n == (ssize_t)len && !memcmp(buf, want, len);
	}
	codec_free(codec);
	store_content_close(c);
	store_inode_release(&in);
	free(buf);
	return ok;
}

/* The committer applies in walk order: a directory before its entries (inode numbers
 * are allocated as items are applied). */
static void check_order(struct store *st, uint64_t dir, int depth)
{
	struct store_dir_iter *it;
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	int rc;

	CHECK(store_dir_open(st, dir, NULL, 0, &it) == 0, "dir_open %llu", (unsigned long long)dir);
	while ((rc = store_dir_next(it, &nm, &nl, &child, &t)) == 1) {
		struct store_inode in;
		bool later_name = false;	/* a hard link's later name: an earlier inode */

		if (t != DT_DIR && store_get_inode(st, child, &in) == 0) {
			later_name = in.nlink > 1;
			store_inode_release(&in);
		}
		CHECK(child > dir || later_name,
		      "entry %.*s (inode %llu) placed before its directory (%llu)",
		      (int)nl, (const char *)nm, (unsigned long long)child,
		      (unsigned long long)dir);
		if (t == DT_DIR && depth < 16)
			check_order(st, child, depth + 1);
	}
	CHECK(rc == 0, "dir_next");
	store_dir_close(it);
}

static void test_first_ingest(struct store *st)
{
	struct ingest_opts o = { .jobs = 2, .no_organize = true };
	struct ingest_report rep;
	struct store_inode in;
	uint64_t one, link2, drv;
	int rc;

	rc = ingest(st, &o, &rep);
	CHECK(rc == 0 && rep.outcome == INGEST_DONE, "first ingest: %d, outcome %d (%s)", rc,
	      rep.outcome, rep.message);
	CHECK(rep.files == 13, "13 regular names, got %llu", (unsigned long long)rep.files);
	CHECK(rep.nfails == 0, "no failures, got %zu", rep.nfails);
	ingest_report_release(&rep);
	one = lookup(st, "a/one.txt");
	link2 = lookup(st, "z/link-to-one");
	CHECK(one && one == link2, "a hard link's names share one inode (%llu, %llu)",
	      (unsigned long long)one, (unsigned long long)link2);
	CHECK(content_is(st, one, "one\n", 4), "a/one.txt reads back");
	CHECK(lookup(st, "a/b/c/big.bin") != 0, "big.bin stored");
	CHECK(lookup(st, "fifo") && store_get_inode(st, lookup(st, "fifo"), &in) == 0 &&
	      S_ISFIFO(in.mode), "the FIFO is stored as a FIFO");
	if (lookup(st, "fifo"))
		store_inode_release(&in);
	drv = lookup(st, "");
	CHECK(drv != 0, "the source's root");
	if (drv)
		check_order(st, drv, 0);
	{
		static char big[600000];

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (char)((i * 2654435761u) >> 13);
		CHECK(content_is(st, lookup(st, "a/b/c/big.bin"), big, sizeof(big)),
		      "big.bin reads back");
	}
}

/* A re-ingest of an unchanged tree reads nothing. */
static void test_incremental(struct store *st)
{
	struct ingest_opts o = { .jobs = 2, .no_organize = true };
	struct ingest_report rep;
	int rc = ingest(st, &o, &rep);

	CHECK(rc == 0 && rep.outcome == INGEST_DONE, "re-ingest: %d (%s)", rc, rep.message);
	CHECK(rep.bytes_read == 0, "an unchanged tree is not read again (%llu bytes read)",
	      (unsigned long long)rep.bytes_read);
	CHECK(rep.unchanged == 12, "12 unchanged files (a hard link's second name aside), got %llu",
	      (unsigned long long)rep.unchanged);
	ingest_report_release(&rep);
}

/* More than half of the files gone: refused, the view intact; then allowed. */
static void test_deletion_threshold(struct store *st)
{
	struct ingest_opts o = { .jobs = 2, .no_organize = true };
	struct ingest_report rep;
	char p[512];
	int rc;

	for (int i = 0; i < 8; i++) {
		snprintf(p, sizeof(p), "%s/src/z/f%d", root, i);
		CHECK(unlink(p) == 0, "unlink %s", p);
	}
	snprintf(p, sizeof(p), "%s/src/z/link-to-one", root);
	CHECK(unlink(p) == 0, "unlink link");
	rc = ingest(st, &o, &rep);
	CHECK(rc == -ECANCELED && rep.outcome == INGEST_REFUSED,
	      "9 of 13 files gone: refused (%d, outcome %d)", rc, rep.outcome);
	CHECK(strstr(rep.message, "--allow-deletions") != NULL, "the message names the option: %s",
	      rep.message);
	ingest_report_release(&rep);
	CHECK(lookup(st, "z/f3") != 0, "the refused run removed nothing");
	o.allow_deletions = true;
	rc = ingest(st, &o, &rep);
	CHECK(rc == 0 && rep.outcome == INGEST_DONE, "allowed: %d (%s)", rc, rep.message);
	ingest_report_release(&rep);
	CHECK(lookup(st, "z/f3") == 0 && lookup(st, "z") != 0, "removed once allowed");
	CHECK(lookup(st, "a/one.txt") != 0, "the rest stays");
}

/* A FIFO opened as a source file never blocks: O_NONBLOCK, and not a regular file. */
static void test_fifo_open(void)
{
	char p[512];
	struct stat sb;
	int dfd, fd;

	snprintf(p, sizeof(p), "%s/src", root);
	dfd = open(p, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0, "open src");
	alarm(30);	/* a blocking open fails the test by SIGALRM instead of hanging */
	fd = src_open_file(dfd, "fifo");
	alarm(0);
	CHECK(fd >= 0 && fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode),
	      "a FIFO opens without blocking and is seen as a FIFO");
	if (fd >= 0)
		close(fd);
	fd = src_open_file(dfd, "sym");
	CHECK(fd == -ELOOP, "a symlink is never followed (%d)", fd);
	if (fd >= 0)
		close(fd);
	close(dfd);
}

#ifdef DFS_TEST_FAULTS
/* The hard-link set out of memory: each multiply-linked file fails, never a copy. */
static void test_hlset_nomem(void)
{
	struct ingest_opts o = { .jobs = 1, .no_organize = true, .allow_deletions = true };
	struct ingest_report rep;
	struct store *st;
	char p[512], q[512];
	int rc;

	snprintf(p, sizeof(p), "%s/src/a/b/two.txt", root);
	snprintf(q, sizeof(q), "%s/src/a/two-again", root);
	CHECK(link(p, q) == 0, "link");
	snprintf(p, sizeof(p), "%s/store", root);
	sio_remove_tree(p);
	CHECK(open_store(&st) == 0, "a new store");
	setenv("DFS_FAULT_HLSET", "1", 1);
	rc = ingest(st, &o, &rep);
	unsetenv("DFS_FAULT_HLSET");
	CHECK(rc == 0 && rep.outcome == INGEST_PARTIAL, "partial (%d, outcome %d)", rc,
	      rep.outcome);
	CHECK(rep.nfails == 2, "both names of the hard link failed, got %zu", rep.nfails);
	for (size_t i = 0; i < rep.nfails; i++)
		CHECK(strstr(rep.fails[i].why, "hard link") != NULL, "why: %s", rep.fails[i].why);
	ingest_report_release(&rep);
	CHECK(lookup(st, "a/b/two.txt") == 0 && lookup(st, "a/two-again") == 0,
	      "neither name stored as a separate copy");
	CHECK(lookup(st, "top.txt") != 0, "the rest is stored");
	store_close(st);
}
#endif

/* A dry run writes nothing and counts each chunk once across sources. */
static void test_dry_run(void)
{
	struct store_create_opts co;
	struct ingest_opts o = { .jobs = 2, .dry_run = true, .create = &co };
	struct ingest_report a, b;
	char path[128];

	store_create_opts_default(&co);
	CHECK(ingest_dryset_new(&o.dry) == 0, "dryset");
	snprintf(path, sizeof(path), "%s/src", root);
	CHECK(ingest_source(NULL, NULL, path, "d1", &o, &a) == 0, "dry run 1: %s", a.message);
	CHECK(ingest_source(NULL, NULL, path, "d2", &o, &b) == 0, "dry run 2: %s", b.message);
	CHECK(a.new_raw >= 600000 && b.new_raw == 0,
	      "the second copy adds nothing new (%llu, %llu)", (unsigned long long)a.new_raw,
	      (unsigned long long)b.new_raw);
	CHECK(a.planned > 0 && a.cats.n > 0, "a plan by category");
	ingest_report_release(&a);
	ingest_report_release(&b);
	ingest_dryset_free(o.dry);
}

int main(void)
{
	struct store *st;

	snprintf(root, sizeof(root), "/tmp/test_ingest.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	dfs_log_set_level(DFS_LOG_ERR);
	make_tree();
	test_fifo_open();
	test_dry_run();
	CHECK(open_store(&st) == 0, "open a new store");
	if (st) {
		test_first_ingest(st);
		test_incremental(st);
		test_deletion_threshold(st);
		store_close(st);
	}
#ifdef DFS_TEST_FAULTS
	test_hlset_nomem();
#endif
	sio_remove_tree(root);
	return test_result("test_ingest");
}
