/*
 * exclude.c - the --exclude patterns: matching, and their form in the source record
 * (see exclude.h).
 *
 * Threads: stateless. Errors: 0 or -ENOMEM.
 *
 * SPDX-License-Identifier: MIT
 */
#include "exclude.h"
#include "ingest.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Does @pat (no leading or trailing '/') match @path or, unless @anchored, the end of @path
 * after some '/' (rsync's rule for a pattern with a '/' inside)? */
static bool match_path(const char *pat, size_t plen, const char *path, bool anchored)
{
	char buf[PATH_MAX];

	if (plen >= sizeof(buf))
		return false;
	memcpy(buf, pat, plen);
	buf[plen] = '\0';
	if (fnmatch(buf, path, FNM_PATHNAME | FNM_PERIOD) == 0 || fnmatch(buf, path, 0) == 0)
		return true;
	for (const char *p = path; !anchored && (p = strchr(p, '/')); p++)
		if (fnmatch(buf, p + 1, FNM_PATHNAME | FNM_PERIOD) == 0)
			return true;
	return false;
}

bool ingest_exclude_match(const char *pat, const char *path, bool is_dir)
{
	size_t plen = strlen(pat);
	bool anchored = pat[0] == '/';
	const char *name = strrchr(path, '/');

	name = name ? name + 1 : path;
	if (anchored) {
		pat++;
		plen--;
	}
	if (plen && pat[plen - 1] == '/') {	/* "dir/": directories only */
		if (!is_dir)
			return false;
		plen--;
	}
	if (!plen)
		return false;
	if (!anchored && !memchr(pat, '/', plen)) {
		char buf[NAME_MAX + 1];

		if (plen > NAME_MAX)
			return false;
		memcpy(buf, pat, plen);
		buf[plen] = '\0';
		/* a plain name pattern: any entry of that name, at any depth; or the path */
		return fnmatch(buf, name, FNM_PERIOD) == 0 || fnmatch(buf, path, 0) == 0;
	}
	return match_path(pat, plen, path, anchored);
}

bool excl_match(const char *const *pats, size_t n, const char *path, const char *name,
		bool is_dir)
{
	(void)name;	/* the last component of @path */
	for (size_t i = 0; i < n; i++)
		if (ingest_exclude_match(pats[i], path, is_dir))
			return true;
	return false;
}

int excl_pack(const char *const *pats, size_t n, struct store_str *out)
{
	size_t len = 0, off = 0;
	uint8_t *p;

	free(out->p);
	out->p = NULL;
	out->len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(pats[i]) + 1;
	if (!len)
		return 0;
	p = malloc(len + 1);	/* and a NUL past the end, as decoded strings have */
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(pats[i]) + 1;

		memcpy(p + off, pats[i], l);
		off += l;
	}
	p[len] = '\0';
	out->p = p;
	out->len = len;
	return 0;
}

int excl_unpack(const struct store_str *s, const char ***pats, size_t *n)
{
	const char **v;
	size_t k = 0;

	*pats = NULL;
	*n = 0;
	for (size_t i = 0; i < s->len; i++)
		k += s->p[i] == '\0';
	if (!k)
		return 0;
	v = calloc(k, sizeof(*v));
	if (!v)
		return -ENOMEM;
	k = 0;
	for (size_t i = 0; i < s->len; i += strlen((const char *)s->p + i) + 1)
		v[k++] = (const char *)s->p + i;
	*pats = v;
	*n = k;
	return 0;
}
