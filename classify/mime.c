/*
 * mime.c - libmagic on a buffer (see mime.h). The magic database is loaded on first use,
 * so runs whose rules never ask for a MIME type never pay for it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <magic.h>

#include "store/log.h"

/* no decompression, no ELF details (neither changes the MIME type for our purposes) */
#define MIME_FLAGS (MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF | MAGIC_ERROR)
#define QUICK_FLAGS (MIME_FLAGS | MAGIC_NO_CHECK_TEXT)

struct mime {
	magic_t cookie;	/* the whole database */
	int flags;	/* those set on the cookie */
	int failed;
	magic_t sub;	/* the binary-only subset (quick pass only) */
	void *sub_buf;	/* its copy of the subset, alive as long as the cookie */
	int sub_failed;
	bool whole_only;
};

/* ---- the binary-only subset of the compiled magic database ------------------------------ */

/*
 * The compiled database (magic.mgc) is an array of libmagic's struct magic, whose layout
 * is fixed by the format version: a header entry (magic number, version, the entry counts
 * of the two sets), then set 0 (the format tests, the only set the quick pass runs), then
 * set 1 (text tests and named subroutines). A test is a top-level entry (continuation
 * level 0) and the continuation entries after it. These are the offsets of version 18
 * (file 5.35 to 5.45 at least); any other version, or a type code above the highest
 * version 18 has, turns the subset off.
 */
#define MGC_MAGICNO 0xF11E041Cu
#define MGC_VERSION 18u
#define MGC_ENTRY 376u
#define MGC_OFF_TYPE 6u
#define MGC_OFF_VALUE 32u
#define MGC_VALUE_LEN 128u
#define MGC_OFF_MIME 224u
#define MGC_MIME_LEN 80u
#define MGC_T_INDIRECT 41	/* "indirect": the whole database again, at an offset */
#define MGC_T_NAME 45		/* "name": a named subroutine */
#define MGC_T_USE 46		/* "use": calls one */
#define MGC_T_MAX 57
#define MGC_MAX_BYTES (256u << 20)

static struct {
	uint8_t *buf;		/* the subset, in the compiled format */
	size_t len;
	char why[4400];		/* empty: in use; else why the whole database is used */
} subset;
static pthread_once_t subset_once = PTHREAD_ONCE_INIT;

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Records why the subset is not used; returns @rc. */
static int no_subset(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(subset.why, sizeof(subset.why), fmt, ap);
	va_end(ap);
	return rc;
}

bool mime_type_binary_only(const char *type)
{
	static const char *const major[] = { "image/", "video/", "audio/", "font/", "model/" };

	for (size_t i = 0; i < sizeof(major) / sizeof(major[0]); i++)
		if (!strncmp(type, major[i], strlen(major[i])))
			return true;
	return !strcmp(type, "application/pdf");
}

/* Does the text magic file or directory @path hold any test (a line not blank, not '#')? */
static bool has_tests(const char *path, const struct stat *sb)
{
	char line[512];
	bool any = false;
	FILE *f;

	if (S_ISDIR(sb->st_mode)) {
		DIR *d = opendir(path);
		struct dirent *de;

		if (!d)
			return true;
		while (!any && (de = readdir(d)))
			any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
		closedir(d);
		return any;
	}
	f = fopen(path, "re");
	if (!f)
		return true;
	while (!any && fgets(line, sizeof(line), f)) {
		const char *p = line + strspn(line, " \t\r\n");

		any = *p && *p != '#';
	}
	fclose(f);
	return any;
}

/*
 * Finds the one compiled database of libmagic's search path ($MAGIC or the built-in
 * path: each component NAME is NAME.mgc when that exists, else a text magic file or
 * directory). Anything but exactly one compiled database beside empty text files (Debian's
 * /etc/magic holds only comments) turns the subset off: tests it cannot see would be lost.
 */
static int find_db(char *out, size_t outlen)
{
	const char *path = magic_getpath(NULL, 0);
	char comp[4096], mgc[4200];
	bool found = false;

	if (!path)
		return no_subset(-ENOENT, "no magic path");
	while (*path) {
		size_t n = strcspn(path, ":");
		struct stat sb;

		if (n >= sizeof(comp))
			return no_subset(-ENAMETOOLONG, "magic path too long");
		memcpy(comp, path, n);
		comp[n] = '\0';
		path += n + (path[n] == ':');
		if (!n)
			continue;
		snprintf(mgc, sizeof(mgc), "%s.mgc", comp);
		if (stat(mgc, &sb) == 0 && S_ISREG(sb.st_mode)) {
			if (found)
				return no_subset(-EEXIST, "more than one compiled magic database");
			snprintf(out, outlen, "%s", mgc);
			found = true;
		} else if (stat(comp, &sb) == 0 && has_tests(comp, &sb)) {
			return no_subset(-EEXIST, "text magic in %s", comp);
		}
	}
	if (!found)
		return no_subset(-ENOENT, "no compiled magic database");
	return 0;
}

/*
 * Maps the database read-only (12 ms to read 8 MiB into fresh memory at the first MIME
 * call of an ingest, against well under 1 ms to map it from the page cache). Package
 * managers replace it by rename, which leaves a mapping intact.
 */
static int map_all(const char *path, const uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	void *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0 || (uint64_t)sb.st_size > MGC_MAX_BYTES) {
		close(fd);
		return -EFBIG;
	}
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	*len = (size_t)sb.st_size;
	return 0;
}

/*
 * Keeps of set 0 the tests that can answer a binary-only type (mime_type_binary_only):
 * those with such a type on one of their entries, those with an "indirect" entry, and
 * those that "use" a named subroutine that can (transitively; an unknown name counts as
 * one that can). Set 1 is kept whole. The order is kept (libmagic stores the tests
 * sorted by strength and takes the first that matches).
 */
static int subset_of(const uint8_t *db, size_t len)
{
	size_t n = len / MGC_ENTRY, n0, n1, ngroups = 0, nnames = 0, nuses = 0, kept = 0;
	size_t *group = NULL, *name_grp = NULL, *use_grp = NULL, *use_to = NULL;
	const char **names = NULL, **uses = NULL;
	uint8_t *hit = NULL, *out;
	bool changed = true;
	int rc = -EPROTONOSUPPORT;

	if (len % MGC_ENTRY || n < 2 || get_le32(db) != MGC_MAGICNO ||
	    get_le32(db + 4) != MGC_VERSION)
		return no_subset(rc, "not a version %u compiled magic database", MGC_VERSION);
	n0 = get_le32(db + 8);
	n1 = get_le32(db + 12);
	if (n0 + n1 + 1 != n || !n0)
		return no_subset(rc, "entry counts do not add up");
	group = calloc(n, sizeof(*group));
	name_grp = calloc(n, sizeof(*name_grp));
	names = calloc(n, sizeof(*names));
	use_grp = calloc(n, sizeof(*use_grp));
	use_to = calloc(n, sizeof(*use_to));
	uses = calloc(n, sizeof(*uses));
	hit = calloc(n, 1);
	if (!group || !name_grp || !names || !use_grp || !use_to || !uses || !hit) {
		rc = -ENOMEM;
		no_subset(0, "out of memory");
		goto out;
	}
	for (size_t i = 1; i < n; i++) {
		const uint8_t *e = db + i * MGC_ENTRY;
		unsigned cont = (unsigned)e[0] | (unsigned)e[1] << 8, type = e[MGC_OFF_TYPE];
		const char *val = (const char *)e + MGC_OFF_VALUE;
		const char *mime = (const char *)e + MGC_OFF_MIME;

		if ((i == 1 || i == n0 + 1) && cont) {
			no_subset(0, "a set starts inside a test");
			goto out;
		}
		if (type > MGC_T_MAX || !memchr(mime, 0, MGC_MIME_LEN) ||
		    ((type == MGC_T_NAME || type == MGC_T_USE) && !memchr(val, 0, MGC_VALUE_LEN))) {
			no_subset(0, "entry %zu not understood", i);
			goto out;
		}
		if (!cont)
			ngroups++;
		group[i] = ngroups - 1;
		if (mime_type_binary_only(mime) || type == MGC_T_INDIRECT)
			hit[group[i]] = 1;
		if (type == MGC_T_NAME && !cont) {
			names[nnames] = val;
			name_grp[nnames++] = group[i];
		} else if (type == MGC_T_USE) {
			uses[nuses] = val + (val[0] == '^');	/* '^': the other byte order */
			use_grp[nuses++] = group[i];
		}
	}
	for (size_t u = 0; u < nuses; u++) {
		size_t k = 0;

		while (k < nnames && strcmp(names[k], uses[u]))
			k++;
		if (k == nnames)
			hit[use_grp[u]] = 1;	/* unknown: assume it can */
		use_to[u] = k < nnames ? name_grp[k] : SIZE_MAX;
	}
	while (changed) {
		changed = false;
		for (size_t u = 0; u < nuses; u++)
			if (use_to[u] != SIZE_MAX && hit[use_to[u]] && !hit[use_grp[u]])
				hit[use_grp[u]] = changed = true;
	}
	for (size_t i = 1; i <= n0; i++)
		kept += hit[group[i]];
	out = malloc((1 + kept + n1) * MGC_ENTRY);
	if (!out) {
		rc = -ENOMEM;
		no_subset(0, "out of memory");
		goto out;
	}
	memcpy(out, db, MGC_ENTRY);
	put_le32(out + 8, (uint32_t)kept);
	kept = 1;
	for (size_t i = 1; i <= n0; i++)
		if (hit[group[i]])
			memcpy(out + MGC_ENTRY * kept++, db + i * MGC_ENTRY, MGC_ENTRY);
	memcpy(out + MGC_ENTRY * kept, db + (n0 + 1) * MGC_ENTRY, n1 * MGC_ENTRY);
	subset.buf = out;
	subset.len = (kept + n1) * MGC_ENTRY;
	rc = 0;
out:
	free(group);
	free(name_grp);
	free(names);
	free(use_grp);
	free(use_to);
	free(uses);
	free(hit);
	return rc;
}

static void subset_build(void)
{
	char path[4200];
	const uint8_t *db = NULL;
	size_t len = 0;
	int rc = find_db(path, sizeof(path));

	if (rc < 0)
		return;
	rc = map_all(path, &db, &len);
	if (rc < 0) {
		no_subset(0, "%s: %s", path, strerror(-rc));
		return;
	}
	subset_of(db, len);
	munmap((void *)db, len);
}

const char *mime_subset_status(void)
{
	pthread_once(&subset_once, subset_build);
	return subset.why[0] ? subset.why : NULL;
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

int mime_new(struct mime **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

int mime_new_whole(struct mime **out)
{
	int rc = mime_new(out);

	if (rc == 0)
		(*out)->whole_only = true;
	return rc;
}

void mime_free(struct mime *m)
{
	if (!m)
		return;
	if (m->cookie)
		magic_close(m->cookie);
	if (m->sub)
		magic_close(m->sub);
	free(m->sub_buf);
	free(m);
}

/* The cookie on the subset, loaded on first use; NULL when the subset is not in use. */
static magic_t sub_cookie(struct mime *m)
{
	void *bufs[1];
	size_t lens[1];

	if (m->sub || m->sub_failed || m->whole_only)
		return m->sub;
	if (mime_subset_status()) {
		m->sub_failed = 1;
		return NULL;
	}
	/* a copy per handle: libmagic keeps the buffer and may swap it in place */
	m->sub_buf = malloc(subset.len);
	m->sub = m->sub_buf ? magic_open(QUICK_FLAGS) : NULL;
	if (m->sub) {
		memcpy(m->sub_buf, subset.buf, subset.len);
		bufs[0] = m->sub_buf;
		lens[0] = subset.len;
		if (magic_load_buffers(m->sub, bufs, lens, 1) == 0)
			return m->sub;
		dfs_warn("libmagic: cannot load the binary-only subset of its database (%s); "
			 "using the whole database", magic_error(m->sub));
		magic_close(m->sub);
		m->sub = NULL;
	}
	free(m->sub_buf);
	m->sub_buf = NULL;
	m->sub_failed = 1;
	return NULL;
}

const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact)
{
	magic_t sub;
	int flags;
	const char *r;

	if (!len)
		return "inode/x-empty";
	if (!exact && mime_quick_known(buf, len))
		return MIME_NOT_BINARY;
	if (!exact && text_image_head(buf, len))
		exact = true;
	/*
	 * The quick pass asks the subset first (4 times faster on text: 0.08 against 0.33 ms).
	 * It finds every binary-only type the whole database finds, since it runs the same
	 * tests in the same order, less tests that cannot answer one. It may also find one
	 * the whole database does not (a test it left out matches first there, with no
	 * type): the whole database then decides.
	 */
	if (!exact && (sub = sub_cookie(m))) {
		r = magic_buffer(sub, buf, len);
		if (!r || !mime_type_binary_only(r))
			return MIME_NOT_BINARY;
	}
	flags = exact ? MIME_FLAGS : QUICK_FLAGS;
	if (!m->cookie && !m->failed) {
		m->cookie = magic_open(flags);
		m->flags = flags;
		if (!m->cookie || magic_load(m->cookie, NULL) != 0) {
			dfs_warn("libmagic: cannot load the magic database: %s",
				 m->cookie ? magic_error(m->cookie) : "out of memory");
			m->failed = 1;
		}
	}
	if (m->failed)
		return exact ? "application/octet-stream" : MIME_NOT_BINARY;
	if (m->flags != flags) {
		if (magic_setflags(m->cookie, flags) < 0)
			return exact ? "application/octet-stream" : MIME_NOT_BINARY;
		m->flags = flags;
	}
	r = magic_buffer(m->cookie, buf, len);
	if (!r)
		r = "application/octet-stream";
	if (!exact && !mime_type_binary_only(r))
		r = MIME_NOT_BINARY;
	return r;
}

bool mime_glob_binary_only(const char *glob)
{
	return mime_type_binary_only(glob);
}
