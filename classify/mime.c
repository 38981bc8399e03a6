/*
 * mime.c - libmagic on a buffer (see mime.h). The magic database is loaded on first use,
 * so runs whose rules never ask for a MIME type never pay for it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <errno.h>
#include <stdlib.h>

#include <magic.h>

#include "store/log.h"

struct mime {
	magic_t cookie;
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

const char *mime_of(struct mime *m, const void *buf, size_t len)
{
	const char *r;

	if (!m->cookie && !m->failed) {
		m->cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS |
				       MAGIC_NO_CHECK_ELF | MAGIC_ERROR);
		if (!m->cookie || magic_load(m->cookie, NULL) != 0) {
			dfs_warn("libmagic: cannot load the magic database: %s",
				 m->cookie ? magic_error(m->cookie) : "out of memory");
			m->failed = 1;
		}
	}
	if (m->failed || !len)
		return len ? "application/octet-stream" : "inode/x-empty";
	r = magic_buffer(m->cookie, buf, len);
	return r ? r : "application/octet-stream";
}
