/*
 * exclude.c - the --exclude patterns: matching, and their form in the source record
 * (see exclude.h).
 *
 * Threads: stateless. Errors: 0 or -ENOMEM.
 *
 * SPDX-License-Identifier: MIT
 */
#include "exclude.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool excl_match(const char *const *pats, size_t n, const char *path, const char *name,
		bool is_dir)
{
	(void)is_dir;	/* every pattern matches files and directories alike */
	for (size_t i = 0; i < n; i++) {
		const char *pat = pats[i];

		if (fnmatch(pat, path, FNM_PATHNAME | FNM_PERIOD) == 0 ||
		    (!strchr(pat, '/') && fnmatch(pat, name, FNM_PERIOD) == 0) ||
		    fnmatch(pat, path, 0) == 0)
			return true;
	}
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
