/*
 * test_organize.c - the organizer (organize/organize.h) on small source views written
 * straight into a temporary store, checked through the store's API:
 *   - the same content at the same organized path from two sources is one entry with
 *     both origins (merged);
 *   - different content at one path: the first keeps the name, the other gets
 *     "name~<8 hex of its content id>.ext" (conflicts);
 *   - unit versions: two different git working trees at one path, the second at
 *     "NAME~<8 hex of its tree hash>"; two identical ones are one unit;
 *   - the sweep: a file removed from a source is gone from the tree after the next build
 *     (removed), and the entries that stay keep their inode numbers;
 *   - a source added later gives an append build, whose tree is the one a forced full
 *     build gives;
 *   - a build with nothing changed is skipped;
 *   - copy alignment's records (align.h): a build after a change of one source reads
 *     only that source's view and loads the others' signatures; records that are
 *     corrupt, of another version or absent are recomputed, never trusted (the same
 *     tree and alignments as without them), and the alignments equal those of a fresh
 *     store built from the same views;
 *   - the fingerprint recorded (org_cls) is classify's alone for placement version 1 (a
 *     store built before organize/ had its own version is not rebuilt), and another
 *     placement version changes it.
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
#include <time.h>
#include <unistd.h>

#include "classify/classify.h"
#include "organize/organize.h"
#include "organize/organize_int.h"	/* org_fingerprint: a version bump must show */
#include "store/buf.h"
#include "store/log.h"
#include "store/sio.h"
#include "store/store.h"

#include "test_check.h"

#define MTIME 1700000000

static char root[256];
static char rules[300];

/* A source entry: a path ending in '/' is a directory, else a file holding @data. */
struct tfile {
	const char *path;
	const char *data;
};

static int open_writer(const char *dir, struct store **st)
{
	struct store_create_opts co;
	struct store_open_opts o = { .mode = STORE_WRITER, .create = true, .create_opts = &co };

	store_create_opts_default(&co);
	return store_open(dir, &o, st);
}

/* The two roots every store has (as defrag-ingest's first run writes them). */
static int put_roots(struct store *st)
{
	struct store_inode in = { 0 };
	struct store_txn *tx;
	int rc = store_txn_begin(st, &tx);

	if (rc < 0)
		return rc;
	in.ino = STORE_ROOT_INO;
	in.view = STORE_VIEW_ORG;
	in.mode = S_IFDIR | 0755;
	in.nlink = 2;
	in.atime.tv_sec = in.mtime.tv_sec = in.ctime.tv_sec = MTIME;
	rc = store_txn_put_inode(tx, &in);
	in.ino = STORE_SOURCES_INO;
	in.view = STORE_VIEW_SRC;
	in.mode = S_IFDIR | 0555;
	if (rc == 0)
		rc = store_txn_put_inode(tx, &in);
	if (rc == 0)
		return store_txn_commit(tx);
	store_txn_abort(tx);
	return rc;
}

/* Advances "src_epoch" and notes that source @id changed, as an ingest's change does. */
static int note_change(struct store_txn *tx, uint32_t id)
{
	char key[40];
	uint64_t epoch = 0;
	int rc = store_txn_get_meta_u64(tx, "src_epoch", &epoch);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	snprintf(key, sizeof(key), "src_changed.%" PRIu32, id);
	rc = store_txn_put_meta_u64(tx, "src_epoch", epoch + 1);
	return rc < 0 ? rc : store_txn_put_meta_u64(tx, key, epoch + 1);
}

static void src_inode(struct store_inode *in, uint64_t ino, uint32_t mode, uint32_t id)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->view = STORE_VIEW_SRC;
	in->mode = mode;
	in->nlink = 1;
	in->source_id = id;
	in->src_ino = ino;
	in->atime.tv_sec = in->mtime.tv_sec = in->ctime.tv_sec = MTIME;
}

/* Puts @f under the source root @dir (directories on the way created); its content id
 * (files) into @cid. */
static int put_entry(struct store_txn *tx, uint64_t dir, uint32_t id, const struct tfile *f,
		     struct fp256 *cid)
{
	const char *p = f->path;
	struct store_inode in;
	int rc;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		uint64_t child;
		uint8_t t;

		if (!len)
			return 0;	/* a directory path, done */
		if (slash) {
			rc = store_txn_lookup(tx, dir, p, len, &child, &t);
			if (rc == -ENOENT) {
				child = store_txn_alloc_ino(tx);
				src_inode(&in, child, S_IFDIR | 0755, id);
				rc = store_txn_put_inode(tx, &in);
				if (rc == 0)
					rc = store_txn_put_dirent(tx, dir, p, len, child, DT_DIR);
			}
			if (rc < 0)
				return rc;
			dir = child;
			p = slash + 1;
			continue;
		}
		{
			struct store_content_builder *cb;

			rc = store_cb_new(&cb);
			if (rc < 0)
				return rc;
			src_inode(&in, store_txn_alloc_ino(tx), S_IFREG | 0644, id);
			rc = store_cb_set_inline(cb, f->data, strlen(f->data));
			if (rc == 0)
				rc = store_txn_put_content(tx, cb, &in.content);
			store_cb_free(cb);
			in.has_content = true;
			in.size = in.data_bytes = strlen(f->data);
			if (cid)
				*cid = in.content;
			if (rc == 0)
				rc = store_txn_put_inode(tx, &in);
			return rc < 0 ? rc : store_txn_put_dirent(tx, dir, p, len, in.ino, DT_REG);
		}
	}
}

/* Adds the source @name holding @files as one complete ingest would leave it. */
static int add_source(struct store *st, const char *name, const struct tfile *files, size_t n,
		      struct fp256 *cids)
{
	struct store_source src = { 0 };
	struct store_inode in;
	struct store_txn *tx;
	int rc = store_txn_begin(st, &tx);

	if (rc < 0)
		return rc;
	src.name.p = (uint8_t *)strdup(name);
	src.name.len = strlen(name);
	src.first_ingest = MTIME;
	src.against_result = -1;
	rc = store_txn_put_source(tx, &src);
	if (rc == 0) {
		src.root_ino = store_txn_alloc_ino(tx);
		src_inode(&in, src.root_ino, S_IFDIR | 0755, src.id);
		rc = store_txn_put_inode(tx, &in);
	}
	if (rc == 0)
		rc = store_txn_put_dirent(tx, STORE_SOURCES_INO, name, strlen(name), src.root_ino,
					  DT_DIR);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = put_entry(tx, src.root_ino, src.id, &files[i], cids ? &cids[i] : NULL);
	if (rc == 0)
		rc = note_change(tx, src.id);
	src.last_ingest = MTIME;
	src.files = n;
	if (rc == 0)
		rc = store_txn_put_source(tx, &src);
	store_source_release(&src);
	if (rc == 0)
		return store_txn_commit(tx);
	store_txn_abort(tx);
	return rc;
}

/* The inode at @path ("a/b/c") under @dir, or 0. */
static uint64_t find(struct store *st, uint64_t dir, const char *path)
{
	const char *p = path;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		uint8_t t;

		if (store_lookup(st, dir, p, len, &dir, &t) < 0)
			return 0;
		p = slash ? slash + 1 : p + len;
	}
	return dir;
}

/* Removes the file @path of source @name, as an ingest that saw it gone does. */
static int remove_file(struct store *st, const char *name, const char *path)
{
	struct store_source src;
	struct store_txn *tx;
	const char *base = strrchr(path, '/');
	char dirpath[256];
	uint64_t sroot = find(st, STORE_SOURCES_INO, name), dir, ino;
	int rc;

	snprintf(dirpath, sizeof(dirpath), "%.*s", base ? (int)(base - path) : 0, path);
	dir = find(st, sroot, dirpath);
	ino = find(st, sroot, path);
	if (!sroot || !dir || !ino)
		return -ENOENT;
	rc = store_get_source(st, name, strlen(name), &src);
	if (rc < 0)
		return rc;
	rc = store_txn_begin(st, &tx);
	if (rc == 0) {
		rc = store_txn_del_dirent(tx, dir, base ? base + 1 : path,
					  strlen(base ? base + 1 : path));
		if (rc == 0)
			rc = store_txn_del_inode(tx, ino);
		if (rc == 0)
			rc = note_change(tx, src.id);
		if (rc == 0)
			rc = store_txn_commit(tx);
		else
			store_txn_abort(tx);
	}
	store_source_release(&src);
	return rc;
}

static bool has_origin(const struct store_inode *in, const char *o)
{
	for (size_t i = 0; i < in->norigins; i++)
		if (in->origins[i].len == strlen(o) && !memcmp(in->origins[i].p, o, in->origins[i].len))
			return true;
	return false;
}

/* Appends one line per organized entry under @dir (path, inode, mode, content, unit,
 * category, origins) to @out, in name order. */
static int dump(struct store *st, uint64_t dir, const char *prefix, struct dfs_buf *out, int depth)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	struct { char path[512]; uint64_t ino; uint8_t t; } v[64];
	size_t n = 0;
	int rc;

	if (depth > 32)
		return -ELOOP;
	rc = store_dir_open(st, dir, NULL, 0, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1 && n < 64) {
		snprintf(v[n].path, sizeof(v[n].path), "%s/%.*s", prefix, (int)nl, (const char *)nm);
		v[n].ino = child;
		v[n++].t = t;
	}
	store_dir_close(di);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct store_inode in;
		char line[1024], hex[FP_HEX_LEN + 1] = "-";
		int len;

		rc = store_get_inode(st, v[i].ino, &in);
		if (rc < 0)
			break;
		if (in.has_content)
			fp_to_hex(&in.content, hex);
		len = snprintf(line, sizeof(line), "%s ino=%" PRIu64 " mode=%o content=%.16s "
			       "unit=%.*s cat=%.*s origins=%" PRIu64 ":", v[i].path, in.ino,
			       in.mode, hex, (int)in.unit.len, in.unit.p ? (char *)in.unit.p : "",
			       (int)in.category.len, in.category.p ? (char *)in.category.p : "",
			       in.origins_total);
		dfs_buf_append(out, line, (size_t)len);
		for (size_t k = 0; k < in.norigins; k++) {
			dfs_buf_append(out, " ", 1);
			dfs_buf_append(out, in.origins[k].p, in.origins[k].len);
		}
		dfs_buf_append(out, "\n", 1);
		store_inode_release(&in);
		if (v[i].t == DT_DIR)
			rc = dump(st, v[i].ino, v[i].path, out, depth + 1);
	}
	return rc < 0 ? rc : out->err;
}

static int build(struct store *st, unsigned flags, struct organize_stats *os)
{
	char err[256];
	int rc;

	organize_stats_release(os);
	rc = organize_run(st, rules, flags, os, err, sizeof(err));
	CHECK(rc == 0, "organize_run: %d %s", rc, err);
	return rc;
}

/* The inode @path of the organized tree, and its record in @in (released by the caller). */
static uint64_t get_org(struct store *st, const char *path, struct store_inode *in)
{
	uint64_t ino = find(st, STORE_ROOT_INO, path);

	memset(in, 0, sizeof(*in));
	if (ino && store_get_inode(st, ino, in) < 0)
		ino = 0;
	return ino;
}

static const struct tfile src_a[] = {
	{ "notes/a.txt", "the same text on both drives\n" },
	{ "notes/b.txt", "alpha\n" },
	{ "proj/.git/HEAD", "ref: refs/heads/main\n" },
	{ "proj/.git/objects/", NULL },
	{ "proj/.git/refs/", NULL },
	{ "proj/main.c", "int main(void) { return 0; }\n" },
	{ "lib/.git/HEAD", "ref: refs/heads/main\n" },
	{ "lib/.git/objects/", NULL },
	{ "lib/.git/refs/", NULL },
	{ "lib/x.c", "int x;\n" },
};

static const struct tfile src_b[] = {
	{ "notes/a.txt", "the same text on both drives\n" },
	{ "notes/b.txt", "beta\n" },
	{ "notes/only_b.txt", "only on the second drive\n" },
	{ "proj/.git/HEAD", "ref: refs/heads/main\n" },
	{ "proj/.git/objects/", NULL },
	{ "proj/.git/refs/", NULL },
	{ "proj/main.c", "int main(void) { return 1; }\n" },
	{ "lib/.git/HEAD", "ref: refs/heads/main\n" },
	{ "lib/.git/objects/", NULL },
	{ "lib/.git/refs/", NULL },
	{ "lib/x.c", "int x;\n" },
};

static const struct tfile src_c[] = {
	{ "notes/a.txt", "the same text on both drives\n" },
	{ "notes/b.txt", "gamma\n" },
	{ "notes/c.txt", "only on the third drive\n" },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_organize(void)
{
	char dir[300], hex[FP_HEX_LEN + 1], want[64];
	struct fp256 cid_b[N(src_b)];
	struct organize_stats os = { 0 };
	struct store_inode in, in2;
	struct store *st;
	struct dfs_buf d1, d2;
	uint64_t ino_a, ino_b, ino_main, ino;

	snprintf(dir, sizeof(dir), "%s/store", root);
	if (open_writer(dir, &st) < 0) {
		CHECK(0, "cannot create a store in %s", dir);
		return;
	}
	CHECK(put_roots(st) == 0, "roots");
	CHECK(add_source(st, "A", src_a, N(src_a), NULL) == 0, "source A");
	CHECK(add_source(st, "B", src_b, N(src_b), cid_b) == 0, "source B");
	if (build(st, 0, &os) < 0)
		goto out;
	CHECK(!os.skipped && !os.append, "a first build is a full one");

	/* (a) namespace dedup: one entry, both origins */
	ino_a = get_org(st, "documents/notes/a.txt", &in);
	CHECK(ino_a && in.norigins == 2 && in.origins_total == 2 &&
	      has_origin(&in, "A:/notes/a.txt") && has_origin(&in, "B:/notes/a.txt"),
	      "documents/notes/a.txt: one entry with both origins (%zu)", in.norigins);
	store_inode_release(&in);
	/* a.txt, and the two files of the identical unit "lib" */
	CHECK(os.merged == 3, "merged %" PRIu64 ", want 3", os.merged);

	/* (b) different content at one path */
	ino_b = get_org(st, "documents/notes/b.txt", &in);
	CHECK(ino_b && in.norigins == 1 && has_origin(&in, "A:/notes/b.txt"),
	      "documents/notes/b.txt is the first source's");
	store_inode_release(&in);
	fp_to_hex(&cid_b[1], hex);
	snprintf(want, sizeof(want), "documents/notes/b~%.8s.txt", hex);
	CHECK(get_org(st, want, &in) && in.has_content && fp_equal(&in.content, &cid_b[1]) &&
	      has_origin(&in, "B:/notes/b.txt"), "%s holds the second source's b.txt", want);
	store_inode_release(&in);
	/* b.txt, and the second version of the unit "proj" */
	CHECK(os.conflicts == 2, "conflicts %" PRIu64 ", want 2", os.conflicts);

	/* (c) unit versions */
	CHECK(get_org(st, "development/projects/proj", &in) &&
	      in.unit.len == strlen("git-worktree:") + FP_HEX_LEN &&
	      !memcmp(in.unit.p, "git-worktree:", 13), "proj is a git-worktree unit root");
	snprintf(want, sizeof(want), "development/projects/proj~%.8s",
		 in.unit.len > 21 ? (const char *)in.unit.p + 13 : "");
	CHECK(!find(st, STORE_ROOT_INO, want), "the first version has no ~hash name");
	ino_main = get_org(st, "development/projects/proj/main.c", &in2);
	CHECK(ino_main && has_origin(&in2, "A:/proj/main.c") && in2.norigins == 1,
	      "proj/main.c is the first source's");
	store_inode_release(&in2);
	ino = 0;
	{
		struct store_dir_iter *di;
		const uint8_t *nm;
		size_t nl;
		uint64_t c;
		uint8_t t;
		int n = 0;

		CHECK(store_dir_open(st, find(st, STORE_ROOT_INO, "development/projects"), NULL, 0,
				     &di) == 0, "list development/projects");
		while (di && store_dir_next(di, &nm, &nl, &c, &t) == 1) {
			n++;
			if (nl == 13 && !memcmp(nm, "proj~", 5)) {
				snprintf(want, sizeof(want), "development/projects/%.*s", (int)nl,
					 (const char *)nm);
				ino = c;
			}
		}
		store_dir_close(di);
		CHECK(n == 3, "development/projects holds proj, proj~hash, lib (%d entries)", n);
	}
	CHECK(ino && get_org(st, want, &in2) == ino && in2.unit.len == in.unit.len &&
	      memcmp(in2.unit.p, in.unit.p, in.unit.len) &&
	      !memcmp(want + strlen("development/projects/proj~"), in2.unit.p + 13, 8),
	      "the second version of proj is at proj~<8 hex of its tree hash> (%s)", want);
	store_inode_release(&in);
	store_inode_release(&in2);
	snprintf(want + strlen(want), sizeof(want) - strlen(want), "/main.c");
	CHECK(get_org(st, want, &in) && has_origin(&in, "B:/proj/main.c"),
	      "%s is the second source's", want);
	store_inode_release(&in);
	CHECK(get_org(st, "development/projects/lib/x.c", &in) && in.norigins == 2 &&
	      has_origin(&in, "A:/lib/x.c") && has_origin(&in, "B:/lib/x.c"),
	      "identical units are one: lib/x.c has both origins");
	store_inode_release(&in);
	CHECK(os.units == 4, "units %" PRIu64 ", want 4", os.units);

	/* (f) nothing changed: skipped */
	CHECK(build(st, 0, &os) == 0 && os.skipped && !os.append && os.entries == 0,
	      "a build with nothing changed is skipped (skipped %d)", os.skipped);

	/* (d) the sweep */
	CHECK(remove_file(st, "B", "notes/only_b.txt") == 0, "remove B:/notes/only_b.txt");
	CHECK(find(st, STORE_ROOT_INO, "documents/notes/only_b.txt"), "only_b.txt was placed");
	if (build(st, 0, &os) < 0)
		goto out;
	CHECK(!os.skipped && !os.append && os.removed == 1,
	      "a changed source: a full build that removes 1 entry (skipped %d append %d "
	      "removed %" PRIu64 ")", os.skipped, os.append, os.removed);
	CHECK(!find(st, STORE_ROOT_INO, "documents/notes/only_b.txt"),
	      "only_b.txt is gone from the tree");
	CHECK(find(st, STORE_ROOT_INO, "documents/notes/a.txt") == ino_a &&
	      find(st, STORE_ROOT_INO, "documents/notes/b.txt") == ino_b &&
	      find(st, STORE_ROOT_INO, "development/projects/proj/main.c") == ino_main,
	      "entries that stay keep their inode numbers");

	/* (e) a new source: an append build, the tree of a full one */
	CHECK(add_source(st, "C", src_c, N(src_c), NULL) == 0, "source C");
	if (build(st, 0, &os) < 0)
		goto out;
	CHECK(os.append && !os.skipped && os.removed == 0 && os.merged == 1 && os.conflicts == 1,
	      "a new source: an append build (append %d merged %" PRIu64 " conflicts %" PRIu64
	      ")", os.append, os.merged, os.conflicts);
	CHECK(get_org(st, "documents/notes/a.txt", &in) == ino_a && in.norigins == 3 &&
	      has_origin(&in, "C:/notes/a.txt"), "the append build merged C:/notes/a.txt");
	store_inode_release(&in);
	dfs_buf_init(&d1, 1u << 20);
	dfs_buf_init(&d2, 1u << 20);
	CHECK(dump(st, STORE_ROOT_INO, "", &d1, 0) == 0, "dump after the append build");
	if (build(st, ORG_FORCE, &os) == 0)
		CHECK(!os.append && !os.skipped && os.removed == 0,
		      "ORG_FORCE: a full build that removes nothing (removed %" PRIu64 ")",
		      os.removed);
	CHECK(dump(st, STORE_ROOT_INO, "", &d2, 0) == 0, "dump after the full build");
	CHECK(d1.len && d1.len == d2.len && !memcmp(d1.data, d2.data, d1.len),
	      "the append build's tree is the full build's:\n%.*s---\n%.*s", (int)d1.len,
	      (const char *)d1.data, (int)d2.len, (const char *)d2.data);
	dfs_buf_release(&d1);
	dfs_buf_release(&d2);
	CHECK(build(st, 0, &os) == 0 && os.skipped, "skipped after the forced build");

	/* the fingerprint recorded */
	{
		struct classify *cls;
		struct store_txn *tx;
		uint64_t v = 0;
		char err[256];

		CHECK(classify_open(rules, &cls, err, sizeof(err)) == 0, "classify_open: %s", err);
		CHECK(store_txn_begin(st, &tx) == 0 &&
		      store_txn_get_meta_u64(tx, "org_cls", &v) == 0, "read org_cls");
		store_txn_abort(tx);
		CHECK(ORG_PLACEMENT_VERSION != 1 || v == classify_fingerprint(cls),
		      "placement version 1 records classify's fingerprint as it is");
		CHECK(v == org_fingerprint(classify_fingerprint(cls), ORG_PLACEMENT_VERSION),
		      "org_cls is org_fingerprint()");
		CHECK(org_fingerprint(v, ORG_PLACEMENT_VERSION + 1) != v &&
		      org_fingerprint(v, ORG_PLACEMENT_VERSION + 1) !=
		      org_fingerprint(v, ORG_PLACEMENT_VERSION + 2),
		      "another placement version changes the fingerprint");
		classify_close(cls);
	}
out:
	organize_stats_release(&os);
	store_close(st);
}

/*
 * Two versions of a git working tree whose name is 250 bytes: the second version's name
 * "NAME~hash8" is shortened to fit 255 bytes, never longer.
 */
static void test_long_unit_name(void)
{
	char dir[300], name[251], paths[4][300];
	const char *data1 = "int main(void) { return 0; }\n", *data2 = "int main(void) { return 2; }\n";
	struct tfile v1[4], v2[4];
	struct organize_stats os = { 0 };
	struct store_dir_iter *di;
	struct store *st;
	const uint8_t *nm;
	size_t nl;
	uint64_t c;
	uint8_t t;
	int n = 0, plain = 0, shortened = 0;

	memset(name, 'u', 250);
	name[250] = '\0';
	snprintf(paths[0], sizeof(paths[0]), "%s/.git/HEAD", name);
	snprintf(paths[1], sizeof(paths[1]), "%s/.git/objects/", name);
	snprintf(paths[2], sizeof(paths[2]), "%s/.git/refs/", name);
	snprintf(paths[3], sizeof(paths[3]), "%s/main.c", name);
	for (int i = 0; i < 4; i++) {
		v1[i].path = v2[i].path = paths[i];
		v1[i].data = v2[i].data = i == 0 ? "ref: refs/heads/main\n" : NULL;
	}
	v1[3].data = data1;
	v2[3].data = data2;
	snprintf(dir, sizeof(dir), "%s/store-long", root);
	if (open_writer(dir, &st) < 0) {
		CHECK(0, "cannot create a store in %s", dir);
		return;
	}
	CHECK(put_roots(st) == 0, "roots");
	CHECK(add_source(st, "L1", v1, 4, NULL) == 0, "source L1");
	CHECK(add_source(st, "L2", v2, 4, NULL) == 0, "source L2");
	if (build(st, 0, &os) == 0 &&
	    store_dir_open(st, find(st, STORE_ROOT_INO, "development/projects"), NULL, 0,
			   &di) == 0) {
		while (store_dir_next(di, &nm, &nl, &c, &t) == 1) {
			n++;
			CHECK(nl <= 255, "an organized name of %zu bytes", nl);
			plain += nl == 250 && !memcmp(nm, name, 250);
			shortened += nl == 255 && nm[246] == '~' && !memcmp(nm, name, 246);
		}
		store_dir_close(di);
	}
	CHECK(n == 2 && plain == 1 && shortened == 1,
	      "the first version keeps its 250-byte name, the second is NAME[:246]~hash8 "
	      "(%d entries, %d plain, %d shortened)", n, plain, shortened);
	organize_stats_release(&os);
	store_close(st);
}

/* The alignments of a build, one line each, into @out. */
static void aligned_str(const struct organize_stats *os, struct dfs_buf *out)
{
	dfs_buf_clear(out);
	for (size_t i = 0; i < os->naligned; i++) {
		const struct organize_alignment *x = &os->aligned[i];
		char line[512];
		int n = snprintf(line, sizeof(line), "%s:%.*s -> %s:%.*s %.6f %" PRIu64 " %" PRIu64
				 " %" PRIu64 " %" PRIu64 "\n", x->source, (int)x->path_len,
				 (const char *)x->path, x->target_source, (int)x->target_len,
				 (const char *)x->target, x->similarity, x->identical, x->changed,
				 x->only_here, x->only_there);

		dfs_buf_append(out, line, (size_t)n);
	}
}

/* Three sources: A (3 dirs), B holding a copy of A's proj (5 dirs), C unrelated (2);
 * a fourth, D, holds another copy of A's proj (3 dirs). */
static struct tfile al_a[24], al_b[25], al_c[10], al_d[24];
static char al_path[83][64], al_data[59][64];

static void align_fixture(void)
{
	int n = 0;

	for (int i = 0; i < 24; i++, n++) {
		snprintf(al_path[n], 64, "proj/%sfile%02d.txt", i < 12 ? "" : "sub/", i);
		snprintf(al_data[n], 64, "content of file %d of the project\n", i);
		al_a[i].path = al_path[n];
		al_a[i].data = al_data[n];
	}
	for (int i = 0; i < 24; i++, n++) {
		snprintf(al_path[n], 64, "bak/proj/%sfile%02d.txt", i < 12 ? "" : "sub/", i);
		al_b[i].path = al_path[n];
		al_b[i].data = al_a[i].data;
	}
	al_b[24].path = "misc/readme.txt";
	al_b[24].data = "b's own\n";
	for (int i = 0; i < 10; i++, n++) {
		snprintf(al_path[n], 64, "other/memo%d.txt", i);
		snprintf(al_data[n], 64, "memo %d, unrelated\n", i);
		al_c[i].path = al_path[n];
		al_c[i].data = al_data[n];
	}
	for (int i = 0; i < 24; i++, n++) {
		snprintf(al_path[n], 64, "kept/%sfile%02d.txt", i < 12 ? "" : "sub/", i);
		al_d[i].path = al_path[n];
		al_d[i].data = al_a[i].data;
	}
}

struct posts {
	struct vec_keys { uint8_t k[ORG_ALIGN_POST_MAX]; size_t len; } *v;
	size_t n;
	uint32_t source;	/* the postings of this source */
	size_t other;		/* keys under "ap" that are not this version's postings */
};

static int note_post(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	struct posts *p = arg;
	uint32_t source, seq;
	uint8_t kind;
	void *nv;

	(void)v;
	(void)vl;
	if (!org_align_post_parse(k, kl, &kind, &source, &seq)) {
		p->other++;
		return 0;
	}
	if (source != p->source)
		return 0;
	nv = realloc(p->v, (p->n + 1) * sizeof(*p->v));
	if (!nv)
		return -ENOMEM;
	p->v = nv;
	memcpy(p->v[p->n].k, k, kl);
	p->v[p->n++].len = kl;
	return 0;
}

/* The count of @source's postings (and in *@other, of keys under "ap" that are not
 * postings of this version), or -errno. */
static int count_postings(struct store *st, uint32_t source, size_t *other)
{
	struct posts p = { .source = source };
	int rc = store_each_cache(st, "ap", 2, NULL, 0, note_post, &p);

	free(p.v);
	if (other)
		*other = p.other;
	return rc < 0 ? rc : (int)p.n;
}

static int note_any(void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	++*(size_t *)arg;
	return 0;
}

/*
 * Stale and damaged postings beside source @source's: under each of its keys, ten of
 * source 0 (none; they sort first), one of source 2 with sequence 0 (B's root, another
 * key), one of @source with a sequence it does not have, one with a value of garbage.
 * Returns the count of its postings, or -errno.
 */
static int spoil_postings(struct store *st, uint32_t source)
{
	struct posts p = { .source = source };
	struct store_txn *tx;
	int rc = store_each_cache(st, "ap", 2, NULL, 0, note_post, &p);

	if (rc == 0)
		rc = store_txn_begin(st, &tx);
	for (size_t i = 0; rc == 0 && i < p.n; i++) {
		uint8_t k[ORG_ALIGN_POST_MAX];
		uint64_t hash = 0;	/* its first 48 bits: the same prefix */

		for (int b = 0; b < 6; b++)
			hash |= (uint64_t)p.v[i].k[4 + b] << (56 - 8 * b);
		for (uint32_t j = 0; rc == 0 && j < 12; j++) {
			size_t kl = org_align_post_key(p.v[i].k[3], hash,
						       j < 10 ? 0 : j == 10 ? 2 : source,
						       j < 10 ? j : j == 10 ? 0 : 100000, k);

			rc = store_txn_put_cache(tx, k, kl, "", 0);
		}
		if (rc == 0)
			rc = store_txn_put_cache(tx, p.v[i].k, p.v[i].len, "\xee\xee", 2);
	}
	if (rc == 0 && p.n)
		rc = store_txn_commit(tx);
	else if (p.n || rc < 0)
		store_txn_abort(tx);
	free(p.v);
	return rc < 0 ? rc : (int)p.n;
}

/* Puts @v (NULL: garbage) as alignment record (@source, @kind, @i). */
static int put_record(struct store *st, uint32_t source, uint8_t kind, uint32_t i,
		      const void *v, size_t vlen)
{
	uint8_t key[32];
	struct store_txn *tx;
	int rc = store_txn_begin(st, &tx);

	if (rc < 0)
		return rc;
	rc = store_txn_put_cache(tx, key, org_align_key(source, kind, i, key), v, vlen);
	if (rc == 0)
		return store_txn_commit(tx);
	store_txn_abort(tx);
	return rc;
}

static void test_align_records(void)
{
	char dir[300], dir2[300];
	struct organize_stats os = { 0 };
	struct dfs_buf t1, t2, r1, r2;
	struct store *st, *st2;
	struct dfs_buf v;
	uint8_t key[32];

	align_fixture();
	dfs_buf_init(&t1, 1u << 20);
	dfs_buf_init(&t2, 1u << 20);
	dfs_buf_init(&r1, 1u << 20);
	dfs_buf_init(&r2, 1u << 20);
	dfs_buf_init(&v, 4096);
	snprintf(dir, sizeof(dir), "%s/store-align", root);
	snprintf(dir2, sizeof(dir2), "%s/store-align2", root);
	if (open_writer(dir, &st) < 0) {
		CHECK(0, "cannot create a store in %s", dir);
		return;
	}
	CHECK(put_roots(st) == 0, "roots");
	CHECK(add_source(st, "A", al_a, N(al_a), NULL) == 0, "source A");
	CHECK(add_source(st, "B", al_b, N(al_b), NULL) == 0, "source B");
	build(st, 0, &os);
	CHECK(os.align_dirs_read == 8 && os.align_dirs_loaded == 0,
	      "first build: every view read (%" PRIu64 " read, %" PRIu64 " loaded)",
	      os.align_dirs_read, os.align_dirs_loaded);
	CHECK(os.naligned == 1, "B's bak/proj aligns to A's proj (%zu alignments)", os.naligned);
	/* a source added: the others' signatures and alignments from the index */
	CHECK(add_source(st, "C", al_c, N(al_c), NULL) == 0, "source C");
	build(st, 0, &os);
	CHECK(os.append && os.align_dirs_read == 2 && os.align_dirs_loaded == 0 &&
	      os.align_replayed == 2 && os.align_lookups == 2 * (ALIGN_BANDS + 1),
	      "append build: C's 2 directories read and looked up, none of A's and B's loaded, "
	      "2 sources replayed (%" PRIu64 " read, %" PRIu64 " loaded, %" PRIu64 " replayed, "
	      "%" PRIu64 " lookups)", os.align_dirs_read, os.align_dirs_loaded, os.align_replayed,
	      os.align_lookups);
	build(st, ORG_FORCE, &os);
	CHECK(os.align_dirs_read == 0 && os.align_dirs_loaded == 0 && os.align_replayed == 3 &&
	      os.align_dirs_listed == 0 && os.naligned == 1,
	      "a forced build with nothing changed reads no view and verifies nothing "
	      "(%" PRIu64 " read, %" PRIu64 " loaded, %" PRIu64 " listed, %zu alignments)",
	      os.align_dirs_read, os.align_dirs_loaded, os.align_dirs_listed, os.naligned);
	/* one source changes: its view alone is read; B's alignment is verified again */
	CHECK(remove_file(st, "A", "proj/sub/file20.txt") == 0, "remove a file of A");
	build(st, 0, &os);
	CHECK(os.align_dirs_read == 3 && os.align_dirs_loaded == 7 && os.align_replayed == 0 &&
	      os.align_dirs_listed > 0 && os.naligned == 1,
	      "after A changed: A's 3 directories read, B's and C's 7 loaded and B's listed "
	      "to verify (%" PRIu64 " read, %" PRIu64 " loaded, %" PRIu64 " listed)",
	      os.align_dirs_read, os.align_dirs_loaded, os.align_dirs_listed);
	aligned_str(&os, &r1);
	CHECK(dump(st, STORE_ROOT_INO, "", &t1, 0) == 0, "dump");
	/* damaged records: a directory of A of another version, B's header cut short,
	 * C's header of version 0; all recomputed, the same tree */
	CHECK(store_get_cache(st, key, org_align_key(1, 'D', 1, key), &v) == 0 && v.len > 1,
	      "A's record of directory 1 is in the index");
	if (v.len > 1) {
		v.data[0] = 0xee;
		CHECK(put_record(st, 1, 'D', 1, v.data, v.len) == 0, "put a record of version 0xee");
	}
	CHECK(store_get_cache(st, key, org_align_key(2, 'H', 0, key), &v) == 0, "B's header");
	CHECK(put_record(st, 2, 'H', 0, v.data, v.len - 3) == 0, "cut B's header short");
	CHECK(store_get_cache(st, key, org_align_key(3, 'H', 0, key), &v) == 0, "C's header");
	v.data[0] = 0;
	CHECK(put_record(st, 3, 'H', 0, v.data, v.len) == 0, "put a v0 header");
	build(st, ORG_FORCE, &os);
	CHECK(os.align_dirs_read == 10 && os.align_dirs_loaded == 0,
	      "damaged records are not used (%" PRIu64 " read, %" PRIu64 " loaded)",
	      os.align_dirs_read, os.align_dirs_loaded);
	aligned_str(&os, &r2);
	CHECK(r1.len == r2.len && !memcmp(r1.data, r2.data, r1.len),
	      "the same alignments:\n%.*s---\n%.*s", (int)r1.len, (char *)r1.data, (int)r2.len,
	      (char *)r2.data);
	CHECK(dump(st, STORE_ROOT_INO, "", &t2, 0) == 0 && t1.len == t2.len &&
	      !memcmp(t1.data, t2.data, t1.len), "the same tree with damaged records");
	build(st, ORG_FORCE, &os);
	CHECK(os.align_dirs_read == 0 && os.align_dirs_loaded == 0 && os.align_replayed == 3,
	      "the records written again are used (%" PRIu64 " read)", os.align_dirs_read);
	aligned_str(&os, &r2);
	CHECK(r1.len == r2.len && !memcmp(r1.data, r2.data, r1.len), "replayed alignments");
	/* D copies A's proj: an append build looks its directories up, loads A's records
	 * alone (the candidate's source) and aligns; stale and damaged postings under A's
	 * keys change nothing */
	CHECK(spoil_postings(st, 1) == 3 * (ALIGN_BANDS + 1),
	      "A's postings: its root, proj and proj/sub, an exact hash and %d bands each",
	      ALIGN_BANDS);
	CHECK(add_source(st, "D", al_d, N(al_d), NULL) == 0, "source D");
	build(st, 0, &os);
	CHECK(os.append && os.align_dirs_read == 3 && os.align_dirs_loaded == 8 &&
	      os.align_replayed == 3 && os.align_lookups == 2 * (ALIGN_BANDS + 1) &&
	      os.naligned == 1,
	      "append build of a copy: D's 3 directories read, its root and kept looked up, the "
	      "candidates' sources A and B loaded (8 directories), C not (%" PRIu64 " read, "
	      "%" PRIu64 " loaded, %" PRIu64 " lookups, %zu alignments)", os.align_dirs_read,
	      os.align_dirs_loaded, os.align_lookups, os.naligned);
	aligned_str(&os, &r1);
	CHECK(memmem(r1.data, r1.len, "D:kept -> A:proj ", 17) != NULL,
	      "D's kept aligns to A's proj:\n%.*s", (int)r1.len, (char *)r1.data);
	build(st, ORG_FORCE, &os);	/* every source's alignments, replayed */
	CHECK(os.align_dirs_read == 0 && os.align_dirs_loaded == 0 && os.align_replayed == 4,
	      "D's records written (%" PRIu64 " read, %" PRIu64 " replayed)", os.align_dirs_read,
	      os.align_replayed);
	aligned_str(&os, &r1);
	/* a fresh store of the same views aligns the same */
	if (open_writer(dir2, &st2) == 0) {
		CHECK(put_roots(st2) == 0, "roots");
		CHECK(add_source(st2, "A", al_a, N(al_a), NULL) == 0, "source A");
		CHECK(remove_file(st2, "A", "proj/sub/file20.txt") == 0, "remove");
		CHECK(add_source(st2, "B", al_b, N(al_b), NULL) == 0, "source B");
		CHECK(add_source(st2, "C", al_c, N(al_c), NULL) == 0, "source C");
		CHECK(add_source(st2, "D", al_d, N(al_d), NULL) == 0, "source D");
		build(st2, 0, &os);
		aligned_str(&os, &r2);
		CHECK(os.align_dirs_loaded == 0 && os.align_lookups == 0 && r1.len == r2.len &&
		      !memcmp(r1.data, r2.data, r1.len), "a fresh store: the same alignments:\n"
		      "%.*s---\n%.*s", (int)r1.len, (char *)r1.data, (int)r2.len, (char *)r2.data);
		store_close(st2);
	}
	/* C forgotten (its source record removed): the next build removes its records and
	 * postings, and the postings of other versions (a v2 one, a v255 one), and nothing
	 * of the others */
	{
		static const uint8_t v2[20] = "ap\x02X\x01\x02\x03\x04\x05\x06\x07\x08";
		static const uint8_t v255[12] = "ap\xff" "0abcdefgh";
		uint8_t pfx[32];
		struct store_txn *tx;
		size_t other = 1, left = 1;
		int na = count_postings(st, 1, NULL), nd = count_postings(st, 4, NULL);

		CHECK(count_postings(st, 3, NULL) > 0, "C has postings");
		CHECK(store_txn_begin(st, &tx) == 0, "begin");
		CHECK(store_txn_del_source(tx, "C", 1) == 0 &&
		      store_txn_put_cache(tx, v2, sizeof(v2), "", 0) == 0 &&
		      store_txn_put_cache(tx, v255, sizeof(v255), "", 0) == 0 &&
		      store_txn_commit(tx) == 0, "remove C's source record, put 2 other postings");
		build(st, ORG_FORCE, &os);
		CHECK(os.align_swept == 1, "one source swept (%" PRIu64 ")", os.align_swept);
		CHECK(count_postings(st, 3, &other) == 0 && other == 0,
		      "none of C's postings, no other version's (%zu)", other);
		left = 0;
		org_align_key(3, 'D', 0, pfx);
		CHECK(store_each_cache(st, pfx, 10, NULL, 0, note_any, &left) == 0 && left == 0,
		      "none of C's records (%zu)", left);
		CHECK(count_postings(st, 1, NULL) == na && count_postings(st, 4, NULL) == nd &&
		      na > 0 && nd > 0, "A's and D's postings stay");
		build(st, ORG_FORCE, &os);
		CHECK(os.align_swept == 0 && os.align_replayed == 3,
		      "the next build sweeps nothing and replays A, B, D");
	}
	organize_stats_release(&os);
	dfs_buf_release(&t1);
	dfs_buf_release(&t2);
	dfs_buf_release(&r1);
	dfs_buf_release(&r2);
	dfs_buf_release(&v);
	store_close(st);
}

int main(void)
{
	FILE *f;

	snprintf(root, sizeof(root), "/tmp/test_organize.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	dfs_log_set_level(DFS_LOG_ERR);
	snprintf(rules, sizeof(rules), "%s/rules.yml", root);
	f = fopen(rules, "w");
	if (!f)
		return 1;
	fputs("version: 1\nrules: []\n", f);	/* the defaults only, whatever /etc holds */
	fclose(f);
	test_organize();
	test_long_unit_name();
	test_align_records();
	sio_remove_tree(root);
	return test_result("test_organize");
}
