/*
 * mime.c - libmagic on a buffer (see mime.h). The magic database is loaded on first use,
 * so runs whose rules never ask for a MIME type never pay for it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "mime.h"

#include <ctype.h>
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
	magic_t rest;	/* the subset less the tests its probes rule out (see probes_may) */
	void *rest_buf;
	unsigned long n_rest, n_sub;	/* quick passes on each (mime_quick_counts) */
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
/* what the probes (below) read of a test's first entry */
#define MGC_OFF_FLAG 2u
#define MGC_OFF_RELN 4u
#define MGC_OFF_VALLEN 5u
#define MGC_OFF_MASKOP 9u
#define MGC_OFF_COND 10u
#define MGC_OFF_OFFSET 12u
#define MGC_OFF_U 24u		/* numbers: the mask; strings: range (u32), flags (u32) */
#define MGC_F_INDIR 0x01u	/* the offset is read from the file */
#define MGC_F_UNSIGNED 0x08u	/* numbers: compared unsigned (else sign-extended) */
#define MGC_F_OFFNEG 0x80u	/* the offset counts from the end */
#define MGC_T_STRING 5
#define MGC_T_REGEX 17
#define MGC_T_SEARCH 20
/* string flags: W and w (white space; the probe compares the value up to its first
 * white space), c and C (case); s (offset after the match), t and b do not change what
 * matches */
#define MGC_S_COMPACT_WS 0x01u
#define MGC_S_OPTIONAL_WS 0x02u
#define MGC_S_LOWER 0x04u	/* a lower-case letter of the value matches either case */
#define MGC_S_UPPER 0x08u	/* an upper-case letter likewise */
#define MGC_S_PROBED 0x7fu
#define PROBES_LIBMAGIC 544	/* the libmagic version the probes follow (magic_version) */

static struct {
	uint8_t *buf;		/* the subset, in the compiled format */
	size_t len;
	char why[4400];		/* empty: in use; else why the whole database is used */
} subset;

/*
 * A probe: the first entry of a test of the subset, when it is a plain comparison this
 * code can make (the bytes of a string, or a number under a mask, at a fixed offset; a
 * string searched for in a range). A test whose first entry does not match never runs
 * the rest of its entries, so when no probe can match, the subset less the probed tests
 * (`rest`) answers as the subset would.
 */
enum { PR_BYTES, PR_INT, PR_SEARCH, PR_LINE };

struct probe {
	uint8_t kind, width, be, len;	/* width: PR_INT bytes; len: PR_BYTES/PR_SEARCH */
	uint8_t reln, is_unsigned;	/* PR_INT: '=', '<' or '>' */
	uint8_t sflags;			/* PR_BYTES, PR_SEARCH: MGC_S_LOWER, MGC_S_UPPER */
	uint8_t blanks;			/* PR_LINE: blanks may come before the byte */
	uint8_t first[2];		/* PR_SEARCH: the bytes the value's first matches */
	uint32_t off, range;		/* range: PR_SEARCH, 0 for the whole buffer */
	uint64_t value, mask;		/* PR_INT (mask already cut to the width) */
	uint8_t bytes[MGC_VALUE_LEN];
};

static struct {
	struct probe *v;
	size_t n;
	uint8_t *rest;		/* the subset less the probed tests; NULL: no probes */
	size_t rest_len;
} probes;
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
	return !strcmp(type, "application/pdf") || !strcmp(type, MIME_SQLITE) ||
	       !strcmp(type, MIME_TAR_GZIP) || !strcmp(type, MIME_TAR_XZ) ||
	       !strcmp(type, MIME_TAR_ZSTD) || !strcmp(type, MIME_TAR_BZIP2);
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

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Does the buffer's byte @b match the value's @a, as libmagic's file_strncmp()? */
static bool ch_match(uint8_t a, uint8_t b, unsigned fl)
{
	if ((fl & MGC_S_LOWER) && islower(a))
		return tolower(b) == a;
	if ((fl & MGC_S_UPPER) && isupper(a))
		return toupper(b) == a;
	return a == b;
}

/* The probe of the test whose first entry is @e, or false when it has none. */
static bool probe_of(const uint8_t *e, struct probe *p)
{
	static const struct { uint8_t type, width, be; } ints[] = {
		{ 1, 1, 0 }, { 2, 2, 0 }, { 4, 4, 0 }, { 7, 2, 1 }, { 8, 4, 1 }, { 10, 2, 0 },
		{ 11, 4, 0 }, { 24, 8, 0 }, { 25, 8, 0 }, { 26, 8, 1 },
	};
	unsigned type = e[MGC_OFF_TYPE], vallen = e[MGC_OFF_VALLEN];
	int32_t off = (int32_t)get_le32(e + MGC_OFF_OFFSET);

	memset(p, 0, sizeof(*p));
	if ((e[MGC_OFF_FLAG] & (MGC_F_INDIR | MGC_F_OFFNEG)) || e[MGC_OFF_MASKOP] ||
	    e[MGC_OFF_COND] || off < 0)
		return false;
	p->off = (uint32_t)off;
	p->reln = e[MGC_OFF_RELN];
	if (type == MGC_T_STRING || type == MGC_T_SEARCH) {
		uint32_t fl = get_le32(e + MGC_OFF_U + 4);
		size_t n = vallen;

		if (p->reln != '=' || !vallen || vallen > MGC_VALUE_LEN || (fl & ~MGC_S_PROBED))
			return false;
		/* with W or w, a white space of the value matches a run of the buffer's: the
		 * positions agree up to the first one only */
		if (fl & (MGC_S_COMPACT_WS | MGC_S_OPTIONAL_WS))
			for (n = 0; n < vallen && !isspace(e[MGC_OFF_VALUE + n]); n++)
				;
		if (!n)
			return false;
		p->kind = type == MGC_T_STRING ? PR_BYTES : PR_SEARCH;
		p->len = (uint8_t)n;
		p->sflags = (uint8_t)(fl & (MGC_S_LOWER | MGC_S_UPPER));
		p->range = type == MGC_T_SEARCH ? get_le32(e + MGC_OFF_U) : 0;
		memcpy(p->bytes, e + MGC_OFF_VALUE, n);
		p->first[0] = p->first[1] = p->bytes[0];
		for (unsigned c = 0; c < 256; c++)
			if (c != p->bytes[0] && ch_match(p->bytes[0], (uint8_t)c, p->sflags))
				p->first[1] = (uint8_t)c;
		return true;
	}
	if (type == MGC_T_REGEX) {
		/*
		 * A regular expression of the form "^c..." or "^[ \t]*c..." (c a letter or
		 * digit not made optional by what follows, no '|' anywhere): libmagic
		 * compiles it with REG_NEWLINE (and no REG_ICASE without the c/C flags), so
		 * it can match only where a line (of the buffer, from the offset) starts
		 * with c, after blanks for the second form.
		 */
		const char *rx = (const char *)e + MGC_OFF_VALUE;
		size_t i = 1;

		if (p->reln != '=' || (get_le32(e + MGC_OFF_U + 4) & ~0x70u) ||
		    !memchr(rx, 0, MGC_VALUE_LEN) || rx[0] != '^' || strchr(rx, '|'))
			return false;
		if (!strncmp(rx + 1, "[ \t]*", 5)) {
			p->blanks = 1;
			i += 5;
		}
		if (!isalnum((unsigned char)rx[i]) || (rx[i + 1] && strchr("*?{", rx[i + 1])))
			return false;
		p->kind = PR_LINE;
		p->bytes[0] = (uint8_t)rx[i];
		p->len = 1;
		return true;
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		uint64_t mask = get_le64(e + MGC_OFF_U);

		if (ints[i].type != type)
			continue;
		if (p->reln != '=' && p->reln != '<' && p->reln != '>')
			return false;
		p->kind = PR_INT;
		p->is_unsigned = !!(e[MGC_OFF_FLAG] & MGC_F_UNSIGNED);
		p->width = ints[i].width;
		p->be = ints[i].be;
		p->value = get_le64(e + MGC_OFF_VALUE);
		p->mask = mask ? mask : ~0ull;	/* libmagic masks only with a non-zero mask */
		if (p->width < 8)
			p->mask &= (1ull << (8 * p->width)) - 1;
		return true;
	}
	return false;
}

/* Do the bytes at @b match @p's value (its first p->len bytes, see probe_of)? */
static bool bytes_match(const struct probe *p, const uint8_t *b)
{
	if (!p->sflags)
		return !memcmp(b, p->bytes, p->len);
	for (size_t i = 0; i < p->len; i++)
		if (!ch_match(p->bytes[i], b[i], p->sflags))
			return false;
	return true;
}

/*
 * Can the test of @p match @b? False only when libmagic cannot match it, as its mget()
 * and magiccheck() do (file 5.44): a value that does not fit in the buffer from its
 * offset never matches (a string is also taken as unmatched where its value has a
 * non-zero byte past the end, which covers zero padding too); a number is read in its
 * byte order, masked, sign-extended unless unsigned, and compared as libmagic does (for
 * '=' only the bits of its width are compared: a difference there is a difference); a
 * search looks at the buffer's bytes only.
 */
static bool probe_may(const struct probe *p, const uint8_t *b, size_t len)
{
	switch (p->kind) {
	case PR_BYTES:
		for (size_t i = 0; i < p->len; i++) {
			size_t at = (size_t)p->off + i;

			if (!ch_match(p->bytes[i], at < len ? b[at] : 0, p->sflags))
				return false;
		}
		return true;
	case PR_INT: {
		uint64_t v = 0;

		if ((uint64_t)p->off + p->width > len)
			return false;
		for (unsigned i = 0; i < p->width; i++)
			v |= (uint64_t)b[p->off + (p->be ? p->width - 1u - i : i)] << (8 * i);
		v &= p->mask;
		if (p->reln == '=')
			return !((v ^ p->value) & p->mask);
		if (!p->is_unsigned && p->width < 8 && (v >> (8 * p->width - 1)) & 1)
			v |= ~0ull << (8 * p->width);	/* sign-extended */
		if (p->is_unsigned)
			return p->reln == '<' ? v < p->value : v > p->value;
		return p->reln == '<' ? (int64_t)v < (int64_t)p->value :
					(int64_t)v > (int64_t)p->value;
	}
	case PR_LINE:
		for (size_t at = p->off; at < len;) {
			const uint8_t *nl;

			while (p->blanks && at < len && (b[at] == ' ' || b[at] == '\t'))
				at++;
			if (at < len && b[at] == p->bytes[0])
				return true;
			nl = memchr(b + at, '\n', len - at);
			if (!nl)
				break;
			at = (size_t)(nl - b) + 1;
		}
		return false;
	default: {
		size_t end = len;

		if (p->off >= len)
			return false;
		if (p->range && (uint64_t)p->off + p->range + p->len < len)
			end = (size_t)p->off + p->range + p->len;
		if (!p->sflags)
			return memmem(b + p->off, end - p->off, p->bytes, p->len) != NULL;
		for (size_t at = p->off; at + p->len <= end; at++)
			if ((b[at] == p->first[0] || b[at] == p->first[1]) && bytes_match(p, b + at))
				return true;
		return false;
	}
	}
}

/* Can any probed test match @b? */
static bool probes_may(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < probes.n; i++)
		if (probe_may(&probes.v[i], b, len))
			return true;
	return false;
}

/*
 * Builds the probes of the subset @sub (@n0 tests' entries, then set 1) and the subset
 * less the probed tests. Only when no test left in it reaches an "indirect" entry
 * (directly or through "use", @ind per group of the whole database, @group of each
 * entry of @db): an indirect test runs the whole (here: the remaining) database again at
 * another offset, where the probes were not asked. Without probes the subset is used
 * for every quick pass, with the same answers.
 */
static void probes_of(const uint8_t *db, size_t n0, size_t n1, const size_t *group,
		      const uint8_t *hit, const uint8_t *ind)
{
	struct probe *v = calloc(n0, sizeof(*v));
	uint8_t *probed = calloc(n0 + 1, 1), *out = NULL;
	size_t np = 0, left = 0, k = 1;

	if (!v || !probed)
		goto fail;
	for (size_t i = 1; i <= n0; i++) {
		const uint8_t *e = db + i * MGC_ENTRY;

		if (!hit[group[i]] || (e[0] | e[1]))
			continue;
		/*
		 * An order ('<', '>') matches much (one test: "belong > 99", any text), so
		 * it is probed only where it must be: on a test with an indirect entry.
		 */
		if (probe_of(e, &v[np]) && (v[np].reln == '=' || ind[group[i]])) {
			probed[i] = 1;
			np++;
		} else if (ind[group[i]]) {
			goto fail;	/* an unprobed test with an indirect entry */
		}
	}
	for (size_t i = 1, first = 0; i <= n0; i++) {
		const uint8_t *e = db + i * MGC_ENTRY;

		if (!(e[0] | e[1]))
			first = i;
		if (hit[group[i]] && !probed[first])
			left++;
	}
	out = malloc((1 + left + n1) * MGC_ENTRY);
	if (!out)
		goto fail;
	memcpy(out, db, MGC_ENTRY);
	put_le32(out + 8, (uint32_t)left);
	for (size_t i = 1, first = 0; i <= n0; i++) {
		const uint8_t *e = db + i * MGC_ENTRY;

		if (!(e[0] | e[1]))
			first = i;
		if (hit[group[i]] && !probed[first])
			memcpy(out + MGC_ENTRY * k++, e, MGC_ENTRY);
	}
	memcpy(out + MGC_ENTRY * k, db + (n0 + 1) * MGC_ENTRY, n1 * MGC_ENTRY);
	if (np) {	/* room was made for every entry */
		struct probe *fit = realloc(v, np * sizeof(*v));

		if (fit)
			v = fit;
	}
	probes.v = v;
	probes.n = np;
	probes.rest = out;
	probes.rest_len = (k + n1) * MGC_ENTRY;
	free(probed);
	return;
fail:
	free(v);
	free(probed);
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
	uint8_t *hit = NULL, *ind = NULL, *out;
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
	ind = calloc(n, 1);
	if (!group || !name_grp || !names || !use_grp || !use_to || !uses || !hit || !ind) {
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
		if (type == MGC_T_INDIRECT)
			ind[group[i]] = 1;
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
			hit[use_grp[u]] = ind[use_grp[u]] = 1;	/* unknown: assume it can */
		use_to[u] = k < nnames ? name_grp[k] : SIZE_MAX;
	}
	while (changed) {
		changed = false;
		for (size_t u = 0; u < nuses; u++) {
			if (use_to[u] == SIZE_MAX)
				continue;
			if (hit[use_to[u]] && !hit[use_grp[u]])
				hit[use_grp[u]] = changed = true;
			if (ind[use_to[u]] && !ind[use_grp[u]])
				ind[use_grp[u]] = changed = true;
		}
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
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__	/* "short", "long", "quad": the host's order */
	/* the probes follow libmagic 5.44's matching (Debian 12), checked against it */
	if (magic_version() == PROBES_LIBMAGIC)
		probes_of(db, n0, n1, group, hit, ind);
#endif
	rc = 0;
out:
	free(group);
	free(name_grp);
	free(names);
	free(use_grp);
	free(use_to);
	free(uses);
	free(hit);
	free(ind);
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
	if (m->rest)
		magic_close(m->rest);
	free(m->rest_buf);
	free(m);
}

/*
 * A cookie on a copy of the compiled database @db (a copy per handle: libmagic keeps the
 * buffer and may swap it in place), into *@cookie and *@buf; false if it cannot load.
 */
static bool load_copy(const uint8_t *db, size_t len, magic_t *cookie, void **buf)
{
	void *bufs[1];
	size_t lens[1];

	*buf = malloc(len);
	*cookie = *buf ? magic_open(QUICK_FLAGS) : NULL;
	if (*cookie) {
		memcpy(*buf, db, len);
		bufs[0] = *buf;
		lens[0] = len;
		if (magic_load_buffers(*cookie, bufs, lens, 1) == 0)
			return true;
		dfs_warn("libmagic: cannot load the binary-only subset of its database (%s); "
			 "using the whole database", magic_error(*cookie));
		magic_close(*cookie);
		*cookie = NULL;
	}
	free(*buf);
	*buf = NULL;
	return false;
}

/* The cookie on the subset, loaded on first use; NULL when the subset is not in use. */
static magic_t sub_cookie(struct mime *m)
{
	if (m->sub || m->sub_failed || m->whole_only)
		return m->sub;
	if (mime_subset_status() || !load_copy(subset.buf, subset.len, &m->sub, &m->sub_buf)) {
		m->sub_failed = 1;
		return NULL;
	}
	/* the rest is an optimisation: without it the subset answers every quick pass */
	if (probes.rest)
		load_copy(probes.rest, probes.rest_len, &m->rest, &m->rest_buf);
	return m->sub;
}

void mime_quick_counts(const struct mime *m, unsigned long *rest, unsigned long *sub)
{
	*rest = m->n_rest;
	*sub = m->n_sub;
}

const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact)
{
	magic_t sub;
	int flags;
	const char *r;

	if (!len)
		return "inode/x-empty";
	r = mime_container(buf, len);
	if (r)
		return r;
	if (!exact && mime_compressed_head(buf, len))
		return MIME_NOT_BINARY;	/* a compressed single file: no libmagic call */
	if (!exact && mime_quick_known(buf, len))
		return MIME_NOT_BINARY;
	if (!exact && text_image_head(buf, len))
		exact = true;
	/*
	 * The quick pass asks the subset first: much faster on text (docs/BENCHMARKS.md,
	 * "Classification").
	 * It finds every binary-only type the whole database finds, since it runs the same
	 * tests in the same order, less tests that cannot answer one. It may also find one
	 * the whole database does not (a test it left out matches first there, with no
	 * type): the whole database then decides.
	 */
	if (!exact && (sub = sub_cookie(m))) {
		if (m->rest && !probes_may(buf, len)) {
			r = magic_buffer(m->rest, buf, len);
			m->n_rest++;
		} else {
			r = magic_buffer(sub, buf, len);
			m->n_sub++;
		}
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
	static const char pre[] = "application/x-", suf[] = "compressed-tar";
	size_t n = strlen(glob);

	if (n >= strlen(pre) + strlen(suf) && !strncmp(glob, pre, strlen(pre)) &&
	    !strcmp(glob + n - strlen(suf), suf) && !strchr(glob + strlen(pre), '/'))
		return true;
	return mime_type_binary_only(glob);
}
