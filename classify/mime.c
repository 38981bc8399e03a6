/*
 * mime.c - libmagic on a buffer (see mime.h). The magic database is loaded on first use,
 * so runs whose rules never ask for a MIME type never pay for it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <magic.h>

#include "store/log.h"

/* no decompression, no ELF details (neither changes the MIME type for our purposes) */
#define MIME_FLAGS (MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF | MAGIC_ERROR)

struct mime {
	magic_t cookie;
	int flags;	/* those set on the cookie */
	int failed;
};

int mime_new(struct mime **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void mime_free(struct mime *m)
{
	if (!m)
		return;
	if (m->cookie)
		magic_close(m->cookie);
	free(m);
}

const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact)
{
	int flags = exact ? MIME_FLAGS : MIME_FLAGS | MAGIC_NO_CHECK_TEXT;
	const char *r;

	if (!m->cookie && !m->failed) {
		m->cookie = magic_open(flags);
		m->flags = flags;
		if (!m->cookie || magic_load(m->cookie, NULL) != 0) {
			dfs_warn("libmagic: cannot load the magic database: %s",
				 m->cookie ? magic_error(m->cookie) : "out of memory");
			m->failed = 1;
		}
	}
	if (m->failed || !len)
		return len ? "application/octet-stream" : "inode/x-empty";
	if (m->flags != flags) {
		if (magic_setflags(m->cookie, flags) < 0)
			return "application/octet-stream";
		m->flags = flags;
	}
	r = magic_buffer(m->cookie, buf, len);
	if (!r)
		r = "application/octet-stream";
	if (!exact && !strcmp(r, "application/octet-stream"))
		r = MIME_NOT_BINARY;
	return r;
}

bool mime_glob_binary_only(const char *glob)
{
	static const char *const major[] = { "image/", "video/", "audio/", "font/", "model/" };

	for (size_t i = 0; i < sizeof(major) / sizeof(major[0]); i++)
		if (!strncmp(glob, major[i], strlen(major[i])))
			return true;
	return !strcmp(glob, "application/pdf");
}
