/*
 * unit.c - unit markers (see unit.h and docs/CLASSIFY.md). Each test looks at the
 * directory's own listing first and reads at most one marker file or one child listing,
 * so detection costs little next to the walk itself.
 *
 * SPDX-License-Identifier: MIT
 */
#include "unit.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

static bool eq(const uint8_t *p, size_t n, const char *s)
{
	return n == strlen(s) && !memcmp(p, s, n);
}

static bool ends(const uint8_t *p, size_t n, const char *s)
{
	size_t k = strlen(s);

	return n >= k && !memcmp(p + n - k, s, k);
}

static bool starts(const uint8_t *p, size_t n, const char *s)
{
	size_t k = strlen(s);

	return n >= k && !memcmp(p, s, k);
}

static const struct unit_child *find(const struct unit_child *k, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (eq(k[i].name, k[i].len, name))
			return &k[i];
	return NULL;
}

static bool has_dir(const struct unit_child *k, size_t n, const char *name)
{
	const struct unit_child *c = find(k, n, name);

	return c && S_ISDIR(c->mode);
}

static bool has_file(const struct unit_child *k, size_t n, const char *name)
{
	const struct unit_child *c = find(k, n, name);

	return c && S_ISREG(c->mode);
}

static size_t count_suffix(const struct unit_child *k, size_t n, const char *suf, bool files)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if ((!files || S_ISREG(k[i].mode)) && ends(k[i].name, k[i].len, suf))
			c++;
	return c;
}

static size_t count_prefix_dirs(const struct unit_child *k, size_t n, const char *pre)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (S_ISDIR(k[i].mode) && starts(k[i].name, k[i].len, pre))
			c++;
	return c;
}

/* The names of a child directory (up to 64), for one level of look-ahead. */
struct peek {
	char names[64][64];
	uint32_t modes[64];
	size_t n;
};

static int peek_cb(void *arg, const struct cls_entry *e)
{
	struct peek *p = arg;

	if (p->n < 64 && e->name_len < 64) {
		memcpy(p->names[p->n], e->name, e->name_len);
		p->names[p->n][e->name_len] = '\0';
		p->modes[p->n] = e->mode;
		p->n++;
	}
	return p->n >= 64 ? 1 : 0;
}

static bool peek_has(const struct peek *p, const char *name, bool dir)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->names[i], name) && (dir ? S_ISDIR(p->modes[i]) : !S_ISDIR(p->modes[i])))
			return true;
	return false;
}

static bool peek_dir(const struct cls_tree *t, const struct unit_child *c, struct peek *p)
{
	p->n = 0;
	if (!c || !S_ISDIR(c->mode))
		return false;
	return t->list(t->ctx, c->handle, peek_cb, p) >= 0;
}

static bool head_starts(const struct cls_tree *t, const struct unit_child *c, const char *s)
{
	char buf[128];
	ssize_t n;
	size_t k = strlen(s);

	if (!c || !S_ISREG(c->mode) || k > sizeof(buf))
		return false;
	n = t->head(t->ctx, c->handle, buf, k);
	return n == (ssize_t)k && !memcmp(buf, s, k);
}

static bool git_triple(const struct unit_child *k, size_t n)
{
	return has_file(k, n, "HEAD") && has_dir(k, n, "objects") && has_dir(k, n, "refs");
}

/* Every kind unit_detect() returns, sorted: what a rule's 'unit:' may name. */
static const char *const kinds[] = {
	"borg-repository", "bup-repository", "chromium-profile", "conda-env",
	"docker-volume", "firefox-profile", "git-bare", "git-worktree", "gitea",
	"go-modcache", "gradle-cache", "huggingface-cache", "llm-model",
	"maven-repository", "mongodb", "mysql", "node-modules", "npm-cache",
	"ollama-models", "pip-cache", "pnpm-store", "postgresql", "pycache", "python-venv",
	"redis", "restic-repository", "wheelhouse", "yarn-cache"
};

bool unit_kind_known(const char *kind)
{
	size_t lo = 0, hi = sizeof(kinds) / sizeof(*kinds);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(kind, kinds[mid]);

		if (!c)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

const char *const *unit_kind_list(size_t *n)
{
	*n = sizeof(kinds) / sizeof(*kinds);
	return kinds;
}

static const char *detect(const struct cls_tree *t, const uint8_t *name, size_t nlen,
			  const uint8_t *parent, size_t plen, const struct unit_child *kids,
			  size_t n)
{
	const struct unit_child *c;
	struct peek pk;

	/* source control */
	c = find(kids, n, ".git");
	if (c && S_ISDIR(c->mode) && peek_dir(t, c, &pk) && peek_has(&pk, "HEAD", false) &&
	    peek_has(&pk, "objects", true) && peek_has(&pk, "refs", true))
		return "git-worktree";
	if (c && S_ISREG(c->mode) && head_starts(t, c, "gitdir:"))
		return "git-worktree";
	if (git_triple(kids, n) && has_file(kids, n, "config") && !find(kids, n, ".git")) {
		if (has_file(kids, n, "bupindex"))
			return "bup-repository";
		return "git-bare";
	}
	if ((has_dir(kids, n, "gitea-repositories") || has_dir(kids, n, "repositories")) &&
	    (has_dir(kids, n, "lfs") || has_dir(kids, n, "avatars") ||
	     has_dir(kids, n, "repo-avatars") || has_file(kids, n, "app.ini") ||
	     has_dir(kids, n, "gitea")))
		return "gitea";

	/* databases */
	if (has_file(kids, n, "PG_VERSION") && has_dir(kids, n, "base") && has_dir(kids, n, "global"))
		return "postgresql";
	if (has_dir(kids, n, "mysql") && (has_file(kids, n, "ibdata1") ||
					  has_file(kids, n, "auto.cnf") ||
					  has_file(kids, n, "ib_logfile0") ||
					  has_dir(kids, n, "#innodb_redo")))
		return "mysql";
	if (has_file(kids, n, "WiredTiger") && (has_file(kids, n, "storage.bson") ||
						has_file(kids, n, "mongod.lock")))
		return "mongodb";
	if ((c = find(kids, n, "dump.rdb")) && head_starts(t, c, "REDIS"))
		return "redis";
	if (has_dir(kids, n, "appendonlydir") || has_file(kids, n, "appendonly.aof"))
		return "redis";

	/* containers */
	if (has_dir(kids, n, "_data") && eq(parent, plen, "volumes"))
		return "docker-volume";

	/* JVM, JavaScript, Python, Go caches */
	if (eq(name, nlen, "repository") && eq(parent, plen, ".m2") && n)
		return "maven-repository";
	if (has_dir(kids, n, "caches") && peek_dir(t, find(kids, n, "caches"), &pk) &&
	    (peek_has(&pk, "modules-2", true) || peek_has(&pk, "build-cache-1", true)))
		return "gradle-cache";
	if (has_dir(kids, n, "_cacache") && peek_dir(t, find(kids, n, "_cacache"), &pk) &&
	    peek_has(&pk, "index-v5", true))
		return "npm-cache";
	if (eq(name, nlen, "node_modules") &&
	    (has_file(kids, n, ".package-lock.json") || has_file(kids, n, ".modules.yaml") ||
	     has_file(kids, n, ".yarn-integrity") || has_dir(kids, n, ".bin") ||
	     has_dir(kids, n, ".pnpm")))
		return "node-modules";
	if (eq(parent, plen, "yarn") && starts(name, nlen, "v") && count_suffix(kids, n, "", false) &&
	    (count_prefix_dirs(kids, n, "npm-") || has_file(kids, n, ".tmp")))
		return "yarn-cache";
	if (starts(name, nlen, "v") && has_dir(kids, n, "files") &&
	    (eq(parent, plen, "store") || eq(parent, plen, ".pnpm-store")))
		return "pnpm-store";
	if ((has_dir(kids, n, "http-v2") || has_dir(kids, n, "http")) &&
	    (has_dir(kids, n, "wheels") || has_dir(kids, n, "selfcheck")) && eq(name, nlen, "pip"))
		return "pip-cache";
	if (eq(name, nlen, "__pycache__") && count_suffix(kids, n, ".pyc", true))
		return "pycache";
	if (has_file(kids, n, "pyvenv.cfg") && has_dir(kids, n, "bin") && has_dir(kids, n, "lib"))
		return "python-venv";
	if (has_dir(kids, n, "conda-meta") && peek_dir(t, find(kids, n, "conda-meta"), &pk) &&
	    peek_has(&pk, "history", false))
		return "conda-env";
	if (count_suffix(kids, n, ".whl", true) >= 2 && count_suffix(kids, n, ".whl", true) * 2 >= n)
		return "wheelhouse";
	if (has_dir(kids, n, "cache") && peek_dir(t, find(kids, n, "cache"), &pk) &&
	    peek_has(&pk, "download", true) && eq(name, nlen, "mod"))
		return "go-modcache";

	/* models */
	if (count_prefix_dirs(kids, n, "models--") || count_prefix_dirs(kids, n, "datasets--"))
		return "huggingface-cache";
	if (has_dir(kids, n, "blobs") && has_dir(kids, n, "manifests"))
		return "ollama-models";
	if (count_suffix(kids, n, ".gguf", true) || count_suffix(kids, n, ".safetensors", true))
		return "llm-model";

	/* browsers */
	if (has_file(kids, n, "prefs.js") && has_file(kids, n, "places.sqlite"))
		return "firefox-profile";
	if (has_file(kids, n, "Preferences") && (has_file(kids, n, "History") ||
						 has_dir(kids, n, "Cache")))
		return "chromium-profile";

	/* other tools' backup repositories */
	if (has_file(kids, n, "config") && has_dir(kids, n, "data") && has_dir(kids, n, "index") &&
	    has_dir(kids, n, "keys") && has_dir(kids, n, "snapshots"))
		return "restic-repository";
	if ((c = find(kids, n, "README")) && has_dir(kids, n, "data") &&
	    has_file(kids, n, "config") && head_starts(t, c, "This is a Borg Backup repository"))
		return "borg-repository";
	return NULL;
}

const char *unit_detect(const struct cls_tree *t, const uint8_t *name, size_t nlen,
			const uint8_t *parent, size_t plen, const struct unit_child *kids, size_t n)
{
	const char *k = detect(t, name, nlen, parent, plen, kids, n);

	assert(!k || unit_kind_known(k));	/* a new kind goes into kinds[] too */
	return k;
}
