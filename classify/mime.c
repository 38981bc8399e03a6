/*
 * mime.c - libmagic on a buffer (see mime.h). The magic database is loaded on first use,
 * so runs whose rules never ask for a MIME type never pay for it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <errno.h>
#include <stdint.h>
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

/*
 * Image formats written as text, which libmagic finds only with its text analysis (seen
 * with libmagic 5.44): ASCII PBM/PGM/PPM ("P1".."P3", then white space) and XFig
 * ("#FIG"). The quick pass sends these heads to the full analysis, so that its
 * MIME_NOT_BINARY stays "none of the types of mime_glob_binary_only()".
 */
static bool text_image_head(const uint8_t *p, size_t len)
{
	if (len >= 3 && p[0] == 'P' && p[1] >= '1' && p[1] <= '3' &&
	    (p[2] == ' ' || p[2] == '\t' || p[2] == '\n' || p[2] == '\r'))
		return true;
	return len >= 4 && !memcmp(p, "#FIG", 4);
}

/*
 * Heads whose quick-pass answer is known without libmagic: ELF ("\x7fELF") and scripts
 * ("#!", blanks, "/"). libmagic's format tests type them as executables, libraries,
 * objects, script text or nothing: never one of the types of mime_glob_binary_only()
 * (checked with libmagic 5.44 on every such file of a Debian 12 system: 5485 ELF and 4047
 * "#!/" files), so MIME_NOT_BINARY answers the quick pass's question for them, at no cost
 * (0.2 ms a file otherwise: /usr/bin is made of them). The "/" matters: "#!AMR" starts
 * AMR audio (audio/amr), and "#!" followed by anything but a path is left to libmagic.
 */
bool mime_quick_known(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i = 2;

	if (len >= 4 && !memcmp(p, "\x7f" "ELF", 4))
		return true;
	if (len < 3 || p[0] != '#' || p[1] != '!')
		return false;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == '/';
}

const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact)
{
	int flags;
	const char *r;

	if (!exact && mime_quick_known(buf, len))
		return MIME_NOT_BINARY;
	if (!exact && text_image_head(buf, len))
		exact = true;
	flags = exact ? MIME_FLAGS : MIME_FLAGS | MAGIC_NO_CHECK_TEXT;

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
