/*
 * test_classify.c - classification of a fixture tree holding every unit kind and every
 * loose-file category, compared with tests/golden/classify/default.golden; plus the
 * properties: every non-directory entry is placed exactly once, no destination escapes
 * the tree, units are placed whole, identical units hash the same and different ones
 * differ; and rules files: errors with line and column, unknown keys and versions,
 * unsafe templates, globs.
 *
 * Set DFS_GOLDEN_WRITE=1 to rewrite the golden file (then review the diff).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classify/classify.h"
#include "classify/mime.h"
#include "classify/rules.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden/classify"
#endif

#include "test_check.h"

/* ---- an in-memory tree -------------------------------------------------------------- */

struct node {
	char *path;	/* "" for the root */
	uint32_t mode;
	const char *data;
	uint64_t size;
	uint8_t cid[32];
	int emitted;
};

static struct node nodes[512];
static size_t nnodes;

static void add(const char *path, uint32_t mode, const char *data)
{
	struct node *n = &nodes[nnodes++];

	n->path = strdup(path);
	n->mode = mode;
	n->data = data;
	n->size = data ? strlen(data) : 0;
	/* a content id that depends on the bytes only */
	memset(n->cid, 0, 32);
	for (size_t i = 0; data && data[i]; i++)
		n->cid[i % 32] = (uint8_t)(n->cid[i % 32] * 31 + (uint8_t)data[i]);
	n->cid[31] ^= (uint8_t)n->size;
}

static void file(const char *path, const char *data)
{
	add(path, S_IFREG | 0644, data ? data : "x");
}

/* a file of @len bytes that may hold NULs */
static void file_bin(const char *path, const char *data, size_t len)
{
	add(path, S_IFREG | 0644, data);
	nodes[nnodes - 1].size = len;
	for (size_t i = 0; i < len; i++)
		nodes[nnodes - 1].cid[i % 32] ^= (uint8_t)(data[i] + i);
}

/* a gzip'ed ustar archive holding a.txt ("hello"), and a gzip'ed "hi" (no tar) */
static const char tar_gz[] =
	"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xed\xd0\x31\x0a\x83\x40\x10\x05\xd0\xad\x73\x8a\x9c\x40"
	"\x34\x88\x9e\xc7\x42\x48\x21\x2c\x6c\x36\xe0\xf1\xdd\x58\x89\x85\xa9\x14\x84\xf7\x9a\x19\xe6\x17"
	"\xc3\xcc\x50\xe5\x39\x87\x73\xd5\x45\xd7\xb6\x6b\x2d\xf6\xf5\x97\x6e\xfa\x32\x6f\x9a\xbe\x7f\x85"
	"\x67\x1d\x2e\xf0\xfd\xe4\x21\x95\xf5\x29\xc6\xc3\x3f\xfc\xcb\xf7\xc7\xdd\xc4\x7b\x9c\xa6\xf8\x08"
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\xdc\xcc\x02\x0a\x58\x3a\xdc\x00\x28\x00\x00";
static const char text_gz[] =
	"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcb\xc8\xe4\x02\x00\x7a\x7a\x6f\xed\x03\x00\x00\x00";
static char sqlite_db[1024] = "SQLite format 3";

static void dir(const char *path)
{
	add(path, S_IFDIR | 0755, NULL);
}

static int parent_of(size_t i, size_t j)
{
	const char *p = nodes[i].path, *c = nodes[j].path;
	size_t pl = strlen(p);
	const char *rest;

	if (i == j || strncmp(p, c, pl))
		return 0;
	rest = c + pl;
	if (pl) {
		if (*rest != '/')
			return 0;
		rest++;
	}
	return *rest && !strchr(rest, '/');
}

static int cmp_idx(const void *a, const void *b)
{
	const char *x = strrchr(nodes[*(const size_t *)a].path, '/');
	const char *y = strrchr(nodes[*(const size_t *)b].path, '/');

	x = x ? x + 1 : nodes[*(const size_t *)a].path;
	y = y ? y + 1 : nodes[*(const size_t *)b].path;
	return strcmp(x, y);
}

static int t_list(void *ctx, uint64_t d, int (*fn)(void *, const struct cls_entry *), void *arg)
{
	size_t kids[512], n = 0;

	(void)ctx;
	for (size_t j = 0; j < nnodes; j++)
		if (parent_of(d, j))
			kids[n++] = j;
	qsort(kids, n, sizeof(*kids), cmp_idx);
	for (size_t k = 0; k < n; k++) {
		struct node *x = &nodes[kids[k]];
		const char *name = strrchr(x->path, '/');
		struct cls_entry e = { 0 };
		int rc;

		name = name ? name + 1 : x->path;
		e.name = (const uint8_t *)name;
		e.name_len = strlen(name);
		e.mode = x->mode;
		e.size = x->size;
		e.mtime = 1600000000;
		e.handle = kids[k];
		e.content_id = S_ISREG(x->mode) ? x->cid : NULL;
		rc = fn(arg, &e);
		if (rc)
			return rc;
	}
	return 0;
}

static ssize_t t_head(void *ctx, uint64_t f, void *buf, size_t len)
{
	size_t n;

	(void)ctx;
	if (!nodes[f].data)
		return 0;
	n = nodes[f].size < len ? nodes[f].size : len;
	memcpy(buf, nodes[f].data, n);
	return (ssize_t)n;
}

static void fixture(void)
{
	dir("");
	/* git working tree (with node_modules and __pycache__ inside: they stay inside) */
	dir("home"); dir("home/ann"); dir("home/ann/src"); dir("home/ann/src/app");
	dir("home/ann/src/app/.git"); file("home/ann/src/app/.git/HEAD", "ref: refs/heads/main\n");
	dir("home/ann/src/app/.git/objects"); dir("home/ann/src/app/.git/refs");
	file("home/ann/src/app/main.c", "int main(void){return 0;}");
	dir("home/ann/src/app/node_modules"); file("home/ann/src/app/node_modules/.package-lock.json", "{}");
	dir("home/ann/src/app/empty");
	/* the same repository copied elsewhere (identical unit) and a changed copy */
	dir("backup"); dir("backup/app"); dir("backup/app/.git");
	file("backup/app/.git/HEAD", "ref: refs/heads/main\n"); dir("backup/app/.git/objects");
	dir("backup/app/.git/refs"); file("backup/app/main.c", "int main(void){return 0;}");
	dir("backup/app/node_modules"); file("backup/app/node_modules/.package-lock.json", "{}");
	dir("backup/app/empty");
	dir("old"); dir("old/app"); dir("old/app/.git"); file("old/app/.git/HEAD", "ref: refs/heads/main\n");
	dir("old/app/.git/objects"); dir("old/app/.git/refs"); file("old/app/main.c", "int main(){}");
	/* a submodule-style .git file */
	dir("home/ann/src/sub"); file("home/ann/src/sub/.git", "gitdir: ../.git/modules/sub\n");
	/* bare repository, gitea */
	dir("srv"); dir("srv/repo.git"); file("srv/repo.git/HEAD", "ref: refs/heads/main\n");
	file("srv/repo.git/config", "[core]\n\tbare = true\n"); dir("srv/repo.git/objects");
	dir("srv/repo.git/refs");
	dir("srv/gitea"); dir("srv/gitea/repositories"); dir("srv/gitea/lfs"); file("srv/gitea/app.ini", "[repository]\n");
	/* databases */
	dir("var"); dir("var/lib"); dir("var/lib/postgresql"); dir("var/lib/postgresql/15");
	dir("var/lib/postgresql/15/main"); file("var/lib/postgresql/15/main/PG_VERSION", "15\n");
	dir("var/lib/postgresql/15/main/base"); dir("var/lib/postgresql/15/main/global");
	dir("var/lib/mysql"); dir("var/lib/mysql/mysql"); file("var/lib/mysql/ibdata1", "innodb");
	dir("var/lib/mongodb"); file("var/lib/mongodb/WiredTiger", "WiredTiger"); file("var/lib/mongodb/storage.bson", "b");
	dir("var/lib/redis"); file("var/lib/redis/dump.rdb", "REDIS0009");
	/* docker volume */
	dir("var/lib/docker"); dir("var/lib/docker/volumes"); dir("var/lib/docker/volumes/pgdata");
	dir("var/lib/docker/volumes/pgdata/_data"); file("var/lib/docker/volumes/pgdata/_data/x", "data");
	/* caches */
	dir("home/ann/.m2"); dir("home/ann/.m2/repository"); dir("home/ann/.m2/repository/org");
	file("home/ann/.m2/repository/org/a-1.pom", "<project/>");
	dir("home/ann/.gradle"); dir("home/ann/.gradle/caches"); dir("home/ann/.gradle/caches/modules-2");
	dir("home/ann/.npm"); dir("home/ann/.npm/_cacache"); dir("home/ann/.npm/_cacache/index-v5");
	dir("home/ann/.npm/_cacache/content-v2");
	dir("home/ann/.cache"); dir("home/ann/.cache/pip"); dir("home/ann/.cache/pip/http-v2");
	dir("home/ann/.cache/pip/wheels");
	dir("home/ann/.cache/huggingface"); dir("home/ann/.cache/huggingface/hub");
	dir("home/ann/.cache/huggingface/hub/models--org--tiny"); file("home/ann/.cache/huggingface/hub/models--org--tiny/refs", "main");
	dir("home/ann/go"); dir("home/ann/go/pkg"); dir("home/ann/go/pkg/mod"); dir("home/ann/go/pkg/mod/cache");
	dir("home/ann/go/pkg/mod/cache/download");
	dir("home/ann/wheels"); file("home/ann/wheels/a-1.0-py3-none-any.whl", "PK1"); file("home/ann/wheels/b-2.0-py3-none-any.whl", "PK2");
	dir("home/ann/venv"); file("home/ann/venv/pyvenv.cfg", "home = /usr/bin\n"); dir("home/ann/venv/bin"); dir("home/ann/venv/lib");
	dir("home/ann/proj"); dir("home/ann/proj/__pycache__"); file("home/ann/proj/__pycache__/m.cpython-311.pyc", "pyc");
	dir("models"); file("models/llama.gguf", "GGUF"); dir("ollama"); dir("ollama/blobs"); dir("ollama/manifests");
	dir("home/ann/.mozilla"); dir("home/ann/.mozilla/p1"); file("home/ann/.mozilla/p1/prefs.js", "user_pref"); file("home/ann/.mozilla/p1/places.sqlite", "SQLite");
	dir("restic"); file("restic/config", "c"); dir("restic/data"); dir("restic/index"); dir("restic/keys"); dir("restic/snapshots");
	dir("borg"); file("borg/README", "This is a Borg Backup repository.\n"); file("borg/config", "c"); dir("borg/data");
	/* loose files */
	dir("etc"); file("etc/fstab", "/dev/sda1 / ext4 defaults 0 1\n");
	dir("home/ann/Documents"); file("home/ann/Documents/report.pdf", "%PDF-1.4 report");
	file("home/ann/Documents/notes.TXT", "notes");
	dir("home/ann/Pictures"); file("home/ann/Pictures/cat.JPG", "jpeg");
	/* a GIF without extension, placed by its MIME type (128 bytes and more ask libmagic) */
	file("home/ann/Pictures/noext", "GIF89a\x01\x01\x01\x01\x80\x01\x01 gif image data"
	     "................................................................................"
	     "................................................");
	/* the same bytes in a tiny file are not worth a libmagic call: unsorted */
	file("home/ann/Pictures/tiny", "GIF89a\x01\x01\x01\x01\x80\x01\x01 gif");
	dir("home/ann/Music"); file("home/ann/Music/song.flac", "fLaC");
	dir("home/ann/Videos"); file("home/ann/Videos/clip.mkv", "mkv");
	file("home/ann/db.sql", "CREATE TABLE t;"); file("home/ann/backup.tar.gz", "gz");
	file("home/ann/script.py", "print(1)"); file("home/ann/mystery.bin", "\x01\x02\x03");
	dir("home/ann/tmp"); file("home/ann/tmp/scratch", "s");
	file("home/ann/x.swp", "swp");
	dir("home/ann/empty-dir");
	add("home/ann/link", S_IFLNK | 0777, "Documents");
	/* folders stay whole (issue 22): a package's doc folder with a compressed changelog,
	 * its copyright, an icon and a README goes to documents/ whole */
	dir("usr"); dir("usr/share"); dir("usr/share/doc"); dir("usr/share/doc/cmake-data");
	file_bin("usr/share/doc/cmake-data/changelog.Debian.gz", text_gz, sizeof(text_gz) - 1);
	file("usr/share/doc/cmake-data/copyright", "Format: https://www.debian.org/doc/");
	file("usr/share/doc/cmake-data/cmake.png", "\x89PNG icon");
	file("usr/share/doc/cmake-data/README", "cmake data");
	/* a folder of photos with one note stays under media/images */
	dir("home/ann/Photos"); file("home/ann/Photos/a.jpg", "jpeg a"); file("home/ann/Photos/b.jpg", "jpeg b");
	file("home/ann/Photos/c.jpg", "jpeg c"); file("home/ann/Photos/d.jpg", "jpeg d");
	file("home/ann/Photos/notes.txt", "which is which");
	/* a real .tar.gz is a backup archive, apart from its folder */
	dir("home/ann/Letters"); file("home/ann/Letters/a.txt", "dear a"); file("home/ann/Letters/b.txt", "dear b");
	file_bin("home/ann/Letters/letters.tar.gz", tar_gz, sizeof(tar_gz) - 1);
	/* a standalone SQLite database by its header */
	dir("srv/db"); dir("srv/db/sqlite");
	file_bin("srv/db/sqlite/app.db", sqlite_db, sizeof(sqlite_db));
	file("srv/db/sqlite/notes.txt", "app data");
	/* a Maven project's target/ and an npm project's dist/ (the seed's build outputs) */
	dir("home/ann/mvn"); file("home/ann/mvn/pom.xml", "<project/>");
	dir("home/ann/mvn/src"); file("home/ann/mvn/src/App.java", "class App {}");
	dir("home/ann/mvn/target"); file("home/ann/mvn/target/app-1.0.jar", "PK jar");
	dir("home/ann/mvn/target/classes"); file("home/ann/mvn/target/classes/App.class", "\xca\xfe\xba\xbe");
	dir("home/ann/web"); file("home/ann/web/package.json", "{}");
	dir("home/ann/web/dist"); file("home/ann/web/dist/bundle.js", "x=1");
	file("home/ann/web/dist/bundle.js.map", "{}");
	file("home/ann/odd\nname\xff", "odd");
}

struct seen {
	FILE *out;
	size_t emitted;
	int bad_dest;
	uint8_t unit_hash[3][32];	/* home/ann/src/app, backup/app, old/app */
	int unit_seen[3];
};

static int emit(void *arg, const struct cls_result *r)
{
	struct seen *s = arg;
	size_t idx = r->entry->handle;

	nodes[idx].emitted++;
	s->emitted++;
	/* no empty, "." or ".." component, not absolute */
	if (!r->dest_len || r->dest[0] == '/')
		s->bad_dest++;
	for (size_t i = 0, st = 0; i <= r->dest_len; i++) {
		if (i == r->dest_len || r->dest[i] == '/') {
			size_t n = i - st;

			if (!n || (n == 1 && r->dest[st] == '.') ||
			    (n == 2 && r->dest[st] == '.' && r->dest[st + 1] == '.'))
				s->bad_dest++;
			st = i + 1;
		}
	}
	if (r->in_unit && r->unit_src_len == r->src_path_len) {
		const char *roots[3] = { "home/ann/src/app", "backup/app", "old/app" };

		for (int i = 0; i < 3; i++) {
			if (strlen(roots[i]) == r->src_path_len &&
			    !memcmp(roots[i], r->src_path, r->src_path_len)) {
				memcpy(s->unit_hash[i], r->unit_hash, 32);
				s->unit_seen[i] = r->unit_hash_valid;
			}
		}
	}
	for (size_t i = 0; i < r->src_path_len; i++)
		fputc(r->src_path[i] == '\n' ? '?' : r->src_path[i] >= 0x80 ? '?' : r->src_path[i],
		      s->out);
	fprintf(s->out, " -> ");
	for (size_t i = 0; i < r->dest_len; i++)
		fputc(r->dest[i] == '\n' ? '?' : r->dest[i] >= 0x80 ? '?' : r->dest[i], s->out);
	fprintf(s->out, "  [%s, %s%s%s]\n", r->category, r->rule, r->in_unit ? ", unit " : "",
		r->in_unit ? r->unit_kind : "");
	return 0;
}

static void test_fixture(void)
{
	struct cls_tree t = { .list = t_list, .head = t_head };
	struct classify *c;
	struct seen s = { 0 };
	char err[256], *got = NULL, path[512];
	size_t got_len = 0;
	FILE *g;
	int rc;

	fixture();
	setenv("HOME", "/nonexistent", 1);
	rc = classify_open(NULL, &c, err, sizeof(err));
	CHECK(rc == 0, "classify_open: %s", err);
	if (rc)
		return;
	s.out = open_memstream(&got, &got_len);
	rc = classify_source(c, &t, 0, "nvme1", emit, &s);
	fclose(s.out);
	CHECK(rc == 0, "classify_source: %d", rc);
	CHECK(!s.bad_dest, "%d unsafe destinations", s.bad_dest);
	for (size_t i = 1; i < nnodes; i++)
		if (!S_ISDIR(nodes[i].mode))
			CHECK(nodes[i].emitted == 1, "%s emitted %d times", nodes[i].path,
			      nodes[i].emitted);
	CHECK(s.unit_seen[0] && s.unit_seen[1] && s.unit_seen[2], "unit hashes missing");
	CHECK(!memcmp(s.unit_hash[0], s.unit_hash[1], 32), "identical units hash differently");
	CHECK(memcmp(s.unit_hash[0], s.unit_hash[2], 32), "different units hash the same");
	snprintf(path, sizeof(path), "%s/default.golden", GOLDEN_DIR);
	if (getenv("DFS_GOLDEN_WRITE")) {
		g = fopen(path, "w");
		if (g) {
			fwrite(got, 1, got_len, g);
			fclose(g);
		}
	} else {
		char *want = NULL;
		size_t wl = 0, n;

		g = fopen(path, "r");
		CHECK(g != NULL, "%s missing", path);
		if (g) {
			want = malloc(1 << 20);
			n = fread(want, 1, 1 << 20, g);
			wl = n;
			fclose(g);
			if (wl != got_len || memcmp(want, got, wl)) {
				fprintf(stderr, "FAIL: classification differs from %s; got:\n%.*s", path,
					(int)got_len, got);
				failures++;
			}
			free(want);
		}
	}
	free(got);
	classify_close(c);
}

static void test_rules_errors(void)
{
	static const struct {
		const char *text;
		const char *want;	/* substring of the error: "FILE:LINE:COL" */
	} bad[] = {
		{ "version: 2\nrules: []\n", "t.yml:1:10: unsupported rules version" },
		{ "rules: []\n", "missing 'version" },
		{ "version: 1\nrules:\n  - name: a\n    to: x\n    colour: red\n", "t.yml:5:5: unknown key 'colour'" },
		{ "version: 1\nrules:\n  - name: a\n    match: {size_min: lots}\n    to: x\n", "t.yml:4:23: invalid size" },
		{ "version: 1\nrules:\n  - name: a\n    to: '/abs'\n", "t.yml:4:5: 'to' must be a relative path" },
		{ "version: 1\nrules:\n  - name: a\n    to: '{nope}'\n", "unknown variable '{nope}'" },
		{ "version: 1\nrules:\n  - name: a\n", "a rule needs 'name' and 'to'" },
		{ "version: 1\nrules: [\n", "t.yml:" },
		{ "version: 1\nrules:\n  - name: a\n    match: {bogus: 1}\n    to: x\n", "unknown condition 'bogus'" },
		/* folder rules (issue 22) */
		{ "version: 1\nrules:\n  - name: f\n    match: {contains: {category: documents, at_least: 160%}}\n",
		  "t.yml:4:55: at_least must be a percentage" },
		{ "version: 1\nrules:\n  - name: f\n    match: {contains: {category: documents}}\n",
		  "t.yml:4:23: 'contains' needs 'category'" },
		{ "version: 1\nrules:\n  - name: f\n    match: {contains: {category: d, at_least: 60%, most: 1}}\n",
		  "unknown key 'most' under 'contains'" },
		{ "version: 1\nrules:\n  - name: f\n    match: {ext: txt, contains: {category: d, at_least: 60%}}\n",
		  "t.yml:3:5: a folder rule ('contains') matches a directory" },
		{ "version: 1\nrules:\n  - name: f\n    alone: true\n    match: {contains: {category: d, at_least: 60%}}\n",
		  "'alone' is for rules that place files" },
		{ "version: 1\nrules:\n  - name: a\n    alone: maybe\n    to: x\n", "alone must be true or false" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct rules *r;
		int rc;

		rules_new(&r);
		rc = rules_parse(r, "t.yml", bad[i].text, strlen(bad[i].text), err, sizeof(err));
		CHECK(rc == -EINVAL && strstr(err, bad[i].want), "case %zu: rc %d, err '%s', want '%s'",
		      i, rc, err, bad[i].want);
		rules_free(r);
	}
}

static void test_rules_templates(void)
{
	const char *text = "version: 1\nrules:\n"
			   "  - {name: up, to: '{name}/../x'}\n"
			   "  - {name: slash, match: {ext: [txt]}, to: 'docs/{source}/{name}'}\n"
			   "  - {name: all, to: 'u/{path}'}\n";
	struct rules_subject s = { 0 };
	struct dfs_buf d;
	struct rules *r;
	char err[256];
	int idx;

	rules_new(&r);
	CHECK(rules_parse(r, "t", text, strlen(text), err, sizeof(err)) == 0, "parse: %s", err);
	dfs_buf_init(&d, 1 << 16);
	s.path = (const uint8_t *)"a/b.txt";
	s.path_len = 7;
	s.name = (const uint8_t *)"b.txt";
	s.name_len = 5;
	s.mode = S_IFREG | 0644;
	s.source = "evil/../src";
	idx = rules_match(r, &s, &d, NULL);
	/* 'up' renders "b.txt/../x": rejected; 'slash' keeps the source as one component */
	CHECK(idx == 1 && d.len == strlen("docs/evil_.._src/b.txt") &&
	      !memcmp(d.data, "docs/evil_.._src/b.txt", d.len), "template safety: %d '%.*s'", idx,
	      (int)d.len, (char *)d.data);
	CHECK(rules_glob("**/x/*.c", (const uint8_t *)"a/b/x/y.c", 9), "glob **");
	CHECK(rules_glob("**/x/*.c", (const uint8_t *)"x/y.c", 5), "glob ** zero dirs");
	CHECK(!rules_glob("*.c", (const uint8_t *)"a/y.c", 5), "* crossed /");
	CHECK(rules_glob("[a-c]?", (const uint8_t *)"bz", 2), "class");
	dfs_buf_release(&d);
	rules_free(r);
}

/*
 * Globs in rules are tested on their literal prefix and longest literal run first
 * (rules.c glob_lits): the same answers as rules_glob, including "**" + "/" matching no
 * directory, whose "/" is not required.
 */
static void test_rules_glob_literals(void)
{
	const char *text = "version: 1\nrules:\n"
			   "  - {name: etc, match: {path: 'etc/**'}, to: 'e/{path}'}\n"
			   "  - {name: tmp, match: {path: '**/tmp/**'}, to: 't/{path}'}\n"
			   "  - {name: img, match: {name: 'IMG_*.[jJ]pg'}, to: 'i/{name}'}\n"
			   "  - {name: deep, match: {path: 'a/**/b/c?.d'}, to: 'd/{name}'}\n"
			   "  - {name: long, match: {ext: [verylongextension, Tar]}, to: 'l/{name}'}\n"
			   "  - {name: all, to: 'u/{path}'}\n";
	static const struct {
		const char *path;
		int rule;
	} v[] = {
		{ "etc/passwd", 0 }, { "etc", 5 }, { "xetc/a", 5 }, { "tmp/x", 1 },
		{ "a/tmp/x", 1 }, { "a/tmpx/y", 5 }, { "tmp", 5 }, { "p/IMG_1.jpg", 2 },
		{ "IMG_.Jpg", 2 }, { "IMG_1.png", 5 }, { "x/IMG_1.jpg.gz", 5 },
		{ "a/b/c1.d", 3 }, { "a/x/y/b/c1.d", 3 }, { "a/b/c12.d", 5 }, { "ab/c1.d", 5 },
		{ "f.VERYLONGEXTENSION", 4 }, { "f.verylongextensioN2", 5 }, { "f.tar", 4 },
		{ "f.ta", 5 },
	};
	struct rules_subject s = { .mode = S_IFREG | 0644, .source = "src" };
	struct dfs_buf d;
	struct rules *r;
	char err[256];

	rules_new(&r);
	CHECK(rules_parse(r, "t", text, strlen(text), err, sizeof(err)) == 0, "parse: %s", err);
	dfs_buf_init(&d, 1 << 16);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *slash = strrchr(v[i].path, '/');
		int idx;

		s.path = (const uint8_t *)v[i].path;
		s.path_len = strlen(v[i].path);
		s.name = (const uint8_t *)(slash ? slash + 1 : v[i].path);
		s.name_len = strlen((const char *)s.name);
		idx = rules_match(r, &s, &d, NULL);
		CHECK(idx == v[i].rule, "%s: rule %d, want %d", v[i].path, idx, v[i].rule);
	}
	dfs_buf_release(&d);
	rules_free(r);
}

/* The quick (format-only) libmagic pass against the exact one. */
static void test_mime_passes(void)
{
	static const unsigned char png[] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
		0, 0, 0, 16, 0, 0, 0, 16, 8, 6, 0, 0, 0, 0x1f, 0xf3, 0xff, 0x61,
	};
	static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n"
				  "trailer << /Root 1 0 R >>\n%%EOF\n";
	static const char svg[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" "
				  "height=\"1\"><rect width=\"1\" height=\"1\"/></svg>\n";
	static const char sh[] = "#!/bin/sh\nset -e\necho hello\nexit 0\n";
	static const char txt[] = "This is a plain text file with several words in it.\n"
				  "It has a second line, too, and nothing else.\n";
	/* images written as text: only libmagic's text analysis finds them */
	static const char pgm[] = "P2\n2 2\n255\n0 1\n1 0\n";
	static const char fig[] = "#FIG 3.2\nLandscape\nCenter\n";
	static const struct {
		const void *buf;
		size_t len;
		const char *quick, *exact;
	} v[] = {
		{ png, sizeof(png), "image/png", "image/png" },
		{ pdf, sizeof(pdf) - 1, "application/pdf", "application/pdf" },
		{ svg, sizeof(svg) - 1, "image/svg+xml", "image/svg+xml" },
		{ sh, sizeof(sh) - 1, MIME_NOT_BINARY, "text/x-shellscript" },
		{ txt, sizeof(txt) - 1, MIME_NOT_BINARY, "text/plain" },
		{ pgm, sizeof(pgm) - 1, "image/x-portable-graymap", "image/x-portable-graymap" },
		{ fig, sizeof(fig) - 1, "image/x-xfig", "image/x-xfig" },
		{ NULL, 4096, MIME_NOT_BINARY, "application/octet-stream" },
	};
	unsigned char noise[4096];
	uint32_t x = 2463534242u;
	struct mime *m;

	for (size_t i = 0; i < sizeof(noise); i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		noise[i] = (unsigned char)x;
	}
	CHECK(mime_new(&m) == 0, "mime_new");
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const void *b = v[i].buf ? v[i].buf : noise;
		const char *q = mime_of(m, b, v[i].len, false);

		CHECK(!strcmp(q, v[i].quick), "case %zu: quick pass %s, want %s", i, q, v[i].quick);
		q = mime_of(m, b, v[i].len, true);
		CHECK(!strcmp(q, v[i].exact), "case %zu: exact %s, want %s", i, q, v[i].exact);
		/* and back: the flags switch both ways on one handle */
		q = mime_of(m, b, v[i].len, false);
		CHECK(!strcmp(q, v[i].quick), "case %zu: quick again %s", i, q);
	}
	mime_free(m);
	CHECK(mime_glob_binary_only("image/*") && mime_glob_binary_only("video/mp4") &&
	      mime_glob_binary_only("application/pdf"), "binary-only globs");
	CHECK(!mime_glob_binary_only("text/*") && !mime_glob_binary_only("*") &&
	      !mime_glob_binary_only("application/*") && !mime_glob_binary_only("*/svg+xml"),
	      "globs that need the exact type");
}

/*
 * ELF files and "#!/" scripts are MIME_NOT_BINARY in the quick pass without libmagic
 * (mime_quick_known), and get their real type in the exact pass; "#!" without a path
 * ("#!AMR": AMR audio) still goes to libmagic.
 */
static void test_mime_prescreen(void)
{
	/* an ELF64 header: class 2, little-endian, version 1; e_type 2 (EXEC), x86-64 */
	static const unsigned char elf[128] = {
		0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 62, 0, 1, 0, 0, 0, 0, 0x10, 0x40, 0, 0, 0, 0, 0,
		64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 64, 0, 56, 0, 0, 0, 64, 0, 0, 0, 0, 0,
	};
	static const char perl[] = "#!/usr/bin/perl -w\nuse strict;\nprint \"hello\\n\";\n";
	static const char sh[] = "#! /bin/sh\necho hi\n";
	static const struct {
		const void *buf;
		size_t len;
		const char *exact;
	} v[] = {
		{ elf, sizeof(elf), "application/x-executable" },
		{ perl, sizeof(perl) - 1, "text/x-perl" },	/* the format tests find it */
		{ sh, sizeof(sh) - 1, "text/x-shellscript" },
	};
	unsigned char amr[512] = "#!AMR\n";
	struct mime *m;

	for (size_t i = 6; i < sizeof(amr); i++)
		amr[i] = (unsigned char)i;
	CHECK(mime_new(&m) == 0, "mime_new");
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *q;

		CHECK(mime_quick_known(v[i].buf, v[i].len), "case %zu: pre-screened", i);
		q = mime_of(m, v[i].buf, v[i].len, false);
		CHECK(!strcmp(q, MIME_NOT_BINARY), "case %zu: quick pass %s", i, q);
		q = mime_of(m, v[i].buf, v[i].len, true);
		CHECK(!strcmp(q, v[i].exact), "case %zu: exact %s, want %s", i, q, v[i].exact);
	}
	CHECK(!mime_quick_known(amr, sizeof(amr)) && !mime_quick_known("#!", 2) &&
	      !mime_quick_known("#! x", 4) && !mime_quick_known("\x7f" "EL", 3),
	      "heads left to libmagic");
	CHECK(!strcmp(mime_of(m, amr, sizeof(amr), false), "audio/amr"), "#!AMR: audio");
	mime_free(m);
}

/* ---- the binary-only subset of the magic database ----------------------------------- */

static struct mime *sub_m, *whole_m;
/*
 * The sample of real files: SUB_WANT spread evenly over /usr, and at least SUB_MIN of them.
 * /usr is what .ci/deps.sh installs on a fresh Debian 12 (build-essential, cmake, the -dev
 * packages, perl, file: about 20,000 non-empty files), so the count does not depend on what
 * else the host happens to have.
 */
#define SUB_WANT 4000ul
#define SUB_MIN 1000ul
static unsigned long sub_files, sub_binary, sub_every = 1, sub_seen, sub_max = SUB_WANT;
static unsigned long sub_population;

static int sub_count(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F && S_ISREG(sb->st_mode) && sb->st_size > 0)
		sub_population++;
	return 0;
}

static void sub_compare(const char *what, const void *buf, size_t len)
{
	char a[128];

	snprintf(a, sizeof(a), "%s", mime_of(sub_m, buf, len, false));
	const char *b = mime_of(whole_m, buf, len, false);

	CHECK(!strcmp(a, b), "%s: quick pass with the subset %s, with the whole database %s",
	      what, a, b);
	sub_binary += strcmp(b, MIME_NOT_BINARY) != 0;
}

static int sub_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	unsigned char buf[MIME_HEAD];
	ssize_t n;
	int fd;

	(void)ftw;
	if (type != FTW_F || !S_ISREG(sb->st_mode) || sb->st_size == 0)
		return 0;
	if (sub_seen++ % sub_every)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0) {
		sub_compare(path, buf, (size_t)n);
		sub_files++;
	}
	return sub_files >= sub_max;
}

/*
 * The quick pass on the subset answers what it answers on the whole database: for heads of
 * many formats, and for a sample of this system's files (SUB_WANT spread evenly over /usr,
 * never fewer than SUB_MIN; DFS_MIME_SUBSET_ALL=1: every file, the soak). The X11 cursor head is the case the
 * subset alone gets wrong (with libmagic 5.44 it says image/x-xcursor, because the test
 * that matches first on the whole database, "X11 cursor", has no MIME type and is left
 * out): the whole database's check must correct it.
 */
static void test_mime_subset(void)
{
	static const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\x06\0\0\0";
	static const unsigned char jpg[] = "\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
	static const unsigned char gif[] = "GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!";
	static const unsigned char bmp[] = "BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0";
	static const unsigned char tif[] = "II*\0\x08\0\0\0\x0c\0\0\x01\x03\0\x01\0\0\0\x01\0";
	static const unsigned char webp[] = "RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0\x30\x01\0\x9d\x01\x2a";
	static const unsigned char wav[] = "RIFF\x24\x08\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x44\xac\0\0";
	static const unsigned char avi[] = "RIFF\x24\x08\0\0AVI LIST\x10\0\0\0hdrlavih";
	static const unsigned char mp3[] = "ID3\x03\0\0\0\0\0\x0aTIT2\0\0\0\x02\0\0\0x\xff\xfb\x90\x64";
	static const unsigned char flac[] = "fLaC\0\0\0\x22\x10\0\x10\0\0\0\0\0\0\0\x0a\xc4\x42\xf0";
	static const unsigned char ogg[] = "OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\x01\x1e\x01vorbis\0\0\0\0\x02\x44\xac";
	static const unsigned char mp4[] = "\0\0\0\x18" "ftypmp42\0\0\0\0mp42isom\0\0\0\x08" "free";
	static const unsigned char mkv[] = "\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x88matroska";
	static const unsigned char woff[] = "wOFF\0\x01\0\0\0\0\x04\0\0\x0c\0\0\0\0\0\0\0\0\x08\0";
	static const unsigned char ttf[] = "\0\x01\0\0\0\x0c\0\x80\0\x03\0\x40OS/2\0\0\0\0\0\0\0\0\0\0\0\0cmap";
	static const unsigned char ico[] = "\0\0\x01\0\x01\0\x10\x10\0\0\x01\0\x20\0\x68\x04\0\0\x16\0\0\0";
	static const unsigned char psd[] = "8BPS\0\x01\0\0\0\0\0\0\0\x03\0\0\0\x01\0\0\0\x01\0\x08\0\x03";
	static const unsigned char midi[] = "MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk\0\0\0\x04\0\xff\x2f\0";
	static const unsigned char pdf[] = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
	static const unsigned char svg[] = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n";
	static const unsigned char xpm[] = "/* XPM */\nstatic char *x[] = {\n\"1 1 1 1\",\n\"a c #000000\",\n\"a\"};\n";
	static const unsigned char zip[] = "PK\x03\x04\x14\0\0\0\x08\0\0\0!\0\0\0\0\0\0\0\0\0\0\0\0\0\x05\0\0\0a.txt";
	static const unsigned char gz[] = "\x1f\x8b\x08\0\0\0\0\0\0\x03\x4b\x4c\x4a\x06\0\xc2\x41\x24\x35\x03\0\0\0";
	static const unsigned char txt[] = "Copyright: 2001 Someone\nLicense: GPL-2+\n This program is free software.\n";
	/* heads the probes must send to libmagic (see mime.c, "probes") */
	static const unsigned char dxf[] = "  0\r\nSECTION\r\n  2\r\nHEADER\r\n  9\r\n$ACADVER\r\n  1\r\nAC1015\r\n";
	static const unsigned char zero_line[] = "a table\n0 1 2\n\t0\tend\n";
	static const unsigned char svg_dt[] = "<?xml version=\"1.0\" standalone=\"no\"?>\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\">\n<svg/>\n";
	static const unsigned char miff[] = "Id=ImageMagick  version=1.0\nclass=DirectClass  colors=0\ncolumns=1  rows=1\n\f\n:\x1a\0\0\0";
	static const unsigned char vrml[] = "#VRML V2.0 utf8\nShape { geometry Box { } }\n";
	static const unsigned char cgm[] = "BEGMF \"x\";\nMFVERSION 1;\nENDMF;\n";
	static const unsigned char xcur[48] = "Xcur\x10\0\0\0\0\0\x01\0\x05\0\0\0\x02\0\xfd\xff\x18\0\0\0\x4c\0\0\0\x02\0\xfd\xff\x20\0\0\0\x70\x09\0\0\x02\0\xfd\xff\x30\0\0\0";
	static const struct {
		const char *name;
		const unsigned char *buf;
		size_t len;
	} v[] = {
#define HEAD(x) { #x, x, sizeof(x) }
		HEAD(png), HEAD(jpg), HEAD(gif), HEAD(bmp), HEAD(tif), HEAD(webp), HEAD(wav),
		HEAD(avi), HEAD(mp3), HEAD(flac), HEAD(ogg), HEAD(mp4), HEAD(mkv), HEAD(woff),
		HEAD(ttf), HEAD(ico), HEAD(psd), HEAD(midi), HEAD(pdf), HEAD(svg), HEAD(xpm),
		HEAD(zip), HEAD(gz), HEAD(txt), HEAD(xcur), HEAD(dxf), HEAD(zero_line),
		HEAD(svg_dt), HEAD(miff), HEAD(vrml), HEAD(cgm),
#undef HEAD
	};
	const char *why = mime_subset_status(), *all = getenv("DFS_MIME_SUBSET_ALL");
	unsigned char head[MIME_HEAD];

	/* Debian 12's libmagic 5.44: the subset must be in use, or nothing here tests it */
	CHECK(!why, "the quick pass does not use the subset: %s", why ? why : "");
	CHECK(mime_new(&sub_m) == 0 && mime_new_whole(&whole_m) == 0, "mime_new");
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		/* the heads, and the same followed by zeroes (a file's first 8 KiB) */
		memset(head, 0, sizeof(head));
		memcpy(head, v[i].buf, v[i].len);
		sub_compare(v[i].name, v[i].buf, v[i].len);
		sub_compare(v[i].name, head, sizeof(head));
	}
	CHECK(sub_binary >= 30, "only %lu of the heads have a binary-only type", sub_binary);
	CHECK(!strcmp(mime_of(sub_m, xcur, sizeof(xcur), false), MIME_NOT_BINARY),
	      "X11 cursor: the whole database decides");
	CHECK(!strcmp(mime_of(sub_m, png, sizeof(png), false), "image/png"), "png");
	CHECK(!strcmp(mime_of(sub_m, dxf, sizeof(dxf), false), "image/vnd.dxf"), "dxf: %s",
	      mime_of(sub_m, dxf, sizeof(dxf), false));
	{
		unsigned long rest, sub;

		/* both paths taken, or the comparisons above did not test the probes */
		mime_quick_counts(sub_m, &rest, &sub);
		CHECK(rest > 0 && sub > 0, "quick passes: %lu on the rest, %lu on the subset",
		      rest, sub);
	}
	nftw("/usr", sub_count, 64, FTW_PHYS | FTW_MOUNT);
	CHECK(sub_population >= SUB_MIN,
	      "only %lu non-empty files under /usr, the sample needs %lu: run .ci/deps.sh, which "
	      "installs the packages that provide them", sub_population, SUB_MIN);
	if (all && !strcmp(all, "1")) {
		sub_every = 1;
		sub_max = ~0ul;
	} else {
		sub_every = sub_population > SUB_WANT ? sub_population / SUB_WANT : 1;
	}
	sub_binary = 0;
	nftw("/usr", sub_visit, 64, FTW_PHYS | FTW_MOUNT);
	printf("mime subset: %lu of %lu files of /usr compared (every %lu; %lu with a binary-only "
	       "type)\n", sub_files, sub_population, sub_every, sub_binary);
	CHECK(sub_files >= SUB_MIN, "only %lu files under /usr compared, %lu needed", sub_files,
	      SUB_MIN);
	mime_free(sub_m);
	mime_free(whole_m);
}

/* How much of a MIME type rules need, and MIME_NOT_BINARY against binary-only globs. */
static void test_rules_mime_need(void)
{
	const char *bin = "version: 1\nrules:\n"
			  "  - {name: img, match: {ext: [''], mime: 'image/*'}, to: 'm/{path}'}\n"
			  "  - {name: pdf, match: {ext: [''], mime: application/pdf}, to: 'd/{path}'}\n"
			  "  - {name: bytype, match: {ext: [dat]}, to: 'by/{mime_type}/{name}'}\n"
			  "  - {name: all, to: 'u/{path}'}\n";
	const char *text = "version: 1\nrules:\n"
			   "  - {name: img, match: {ext: [''], mime: 'image/*'}, to: 'm/{path}'}\n"
			   "  - {name: txt, match: {ext: [''], mime: 'text/*'}, to: 't/{path}'}\n"
			   "  - {name: all, to: 'u/{path}'}\n";
	struct rules_subject s = { .mode = S_IFREG | 0644, .size = 1000, .source = "src" };
	struct rules *rb, *rt;
	struct dfs_buf d;
	char err[256];
	int idx;

	rules_new(&rb);
	rules_new(&rt);
	CHECK(rules_parse(rb, "b", bin, strlen(bin), err, sizeof(err)) == 0, "parse: %s", err);
	CHECK(rules_parse(rt, "t", text, strlen(text), err, sizeof(err)) == 0, "parse: %s", err);
	dfs_buf_init(&d, 1 << 16);
	s.path = s.name = (const uint8_t *)"README";
	s.path_len = s.name_len = 6;
	CHECK(rules_need_mime(rb, &s) == RULES_MIME_BINARY, "image/pdf rules: binary pass");
	CHECK(rules_need_mime(rt, &s) == RULES_MIME_EXACT, "a text/* rule: exact");
	s.mime = MIME_NOT_BINARY;
	idx = rules_match(rb, &s, &d, NULL);
	CHECK(idx == 3 && d.len == 8 && !memcmp(d.data, "u/README", 8),
	      "not binary: no image, no pdf (%d)", idx);
	s.mime = "image/png";
	CHECK(rules_match(rb, &s, &d, NULL) == 0, "an image");
	s.path = s.name = (const uint8_t *)"x.dat";
	s.path_len = s.name_len = 5;
	s.mime = NULL;
	CHECK(rules_need_mime(rb, &s) == RULES_MIME_EXACT, "{mime_type} in 'to': exact");
	s.mime = "text/plain";
	idx = rules_match(rb, &s, &d, NULL);
	CHECK(idx == 2 && d.len == strlen("by/text_plain/x.dat") &&
	      !memcmp(d.data, "by/text_plain/x.dat", d.len), "mime_type rendered (%d)", idx);
	s.path = s.name = (const uint8_t *)"x.c";
	s.path_len = s.name_len = 3;
	CHECK(rules_need_mime(rb, &s) == RULES_MIME_NONE, "x.c: none");
	dfs_buf_release(&d);
	rules_free(rb);
	rules_free(rt);
}

/* The types decided in C (mime_container): the same in both passes, binary-only. */
static void test_mime_container(void)
{
	struct mime *m;
	char trunc[40];

	CHECK(mime_new(&m) == 0, "mime_new");
	CHECK(!strcmp(mime_of(m, tar_gz, sizeof(tar_gz) - 1, false), MIME_TAR_GZIP) &&
	      !strcmp(mime_of(m, tar_gz, sizeof(tar_gz) - 1, true), MIME_TAR_GZIP),
	      "a gzip'ed tar is %s", mime_of(m, tar_gz, sizeof(tar_gz) - 1, true));
	CHECK(!mime_container(text_gz, sizeof(text_gz) - 1), "a gzip'ed text is not a tar");
	CHECK(!strcmp(mime_of(m, text_gz, sizeof(text_gz) - 1, true), "application/gzip"),
	      "a gzip'ed text: %s", mime_of(m, text_gz, sizeof(text_gz) - 1, true));
	CHECK(!strcmp(mime_of(m, text_gz, sizeof(text_gz) - 1, false), MIME_NOT_BINARY),
	      "a gzip'ed text, quick pass: %s", mime_of(m, text_gz, sizeof(text_gz) - 1, false));
	/* cut before the tar header's magic is decompressed: not a tar */
	memcpy(trunc, tar_gz, sizeof(trunc));
	CHECK(!mime_container(trunc, 12), "12 bytes of a .tar.gz are no tar");
	CHECK(!strcmp(mime_of(m, sqlite_db, sizeof(sqlite_db), false), MIME_SQLITE),
	      "the SQLite header");
	CHECK(!mime_container("SQLite format 2", 16), "not SQLite 3");
	CHECK(mime_type_binary_only(MIME_SQLITE) && mime_type_binary_only(MIME_TAR_XZ),
	      "types decided in C are binary-only");
	CHECK(mime_glob_binary_only("application/x-*compressed-tar") &&
	      !mime_glob_binary_only("application/x-*") &&
	      !mime_glob_binary_only("application/x-*/compressed-tar"), "compressed-tar globs");
	mime_free(m);
}

int main(void)
{
	test_fixture();
	test_mime_container();
	test_rules_errors();
	test_rules_templates();
	test_rules_glob_literals();
	test_mime_passes();
	test_mime_prescreen();
	test_mime_subset();
	test_rules_mime_need();
	return test_result("test_classify");
}
