/*
 * treecmp.c - dfs-treecmp [--ignore-atime] [--ignore-ctime] [--no-owner] [--holes]
 * [--quiet] A B: compares two trees entry by entry: presence, type, mode, owner, size,
 * mtime (ns), atime/ctime (unless ignored), link count, device numbers, symlink targets,
 * extended attributes (names and values, ACLs included), every byte, hard-link structure,
 * and with --holes the SEEK_DATA/SEEK_HOLE map. Never follows symlinks; works at any
 * depth (every access is relative to a directory fd).
 * Exit: 0 equal, 1 different, 2 usage or I/O error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static bool ign_atime, ign_ctime, no_owner, holes, quiet;
static unsigned long entries, diffs;

struct hl {
	dev_t dev;
	ino_t a;
	ino_t b;
};
static struct hl *hls;
static size_t nhl;

static void say(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const char *path, const char *fmt, ...)
{
	va_list ap;

	diffs++;
	if (quiet)
		return;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '\\')
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	printf(": ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int names_of(int fd, char ***out, size_t *n)
{
	int d2 = openat(fd, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *de;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*out = realloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = strdup(de->d_name);
	}
	closedir(d);
	return 0;
}

static int scmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static ssize_t xlist(int dfd, const char *name, char *buf, size_t len)
{
	char p[4200];

	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dfd, name);
	return llistxattr(p, buf, len);
}

static ssize_t xget(int dfd, const char *name, const char *key, char *buf, size_t len)
{
	char p[4200];

	snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dfd, name);
	return lgetxattr(p, key, buf, len);
}

static void cmp_xattrs(int da, int db, const char *name, const char *path)
{
	static char la[65536], lb[65536], va[65536], vb[65536];
	ssize_t na = xlist(da, name, la, sizeof(la)), nb = xlist(db, name, lb, sizeof(lb));
	char *ka[1024], *kb[1024];
	size_t ca = 0, cb = 0;

	if (na < 0)
		na = 0;
	if (nb < 0)
		nb = 0;
	for (ssize_t o = 0; o < na && ca < 1024; o += (ssize_t)strlen(la + o) + 1)
		ka[ca++] = la + o;
	for (ssize_t o = 0; o < nb && cb < 1024; o += (ssize_t)strlen(lb + o) + 1)
		kb[cb++] = lb + o;
	qsort(ka, ca, sizeof(*ka), scmp);
	qsort(kb, cb, sizeof(*kb), scmp);
	if (ca != cb) {
		say(path, "%zu xattrs vs %zu", ca, cb);
		return;
	}
	for (size_t i = 0; i < ca; i++) {
		ssize_t a, b;

		if (strcmp(ka[i], kb[i])) {
			say(path, "xattr %s vs %s", ka[i], kb[i]);
			return;
		}
		a = xget(da, name, ka[i], va, sizeof(va));
		b = xget(db, name, kb[i], vb, sizeof(vb));
		if (a != b || (a > 0 && memcmp(va, vb, (size_t)a)))
			say(path, "xattr %s value differs", ka[i]);
	}
}

static void cmp_data(int da, int db, const char *name, const char *path, off_t size)
{
	static char ba[1 << 20], bb[1 << 20];
	int fa = openat(da, name, O_RDONLY | O_NOFOLLOW), fb = openat(db, name, O_RDONLY | O_NOFOLLOW);
	off_t off = 0;

	if (fa < 0 || fb < 0) {
		say(path, "cannot open (%s)", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t a = read(fa, ba, sizeof(ba)), b = read(fb, bb, sizeof(bb));

		while (b >= 0 && b < a) {	/* FUSE may return short reads */
			ssize_t m = read(fb, bb + b, (size_t)(a - b));

			if (m <= 0)
				break;
			b += m;
		}
		if (a < 0 || b < 0) {
			say(path, "read error at %lld: %s", (long long)off, strerror(errno));
			break;
		}
		if (a != b || memcmp(ba, bb, (size_t)a)) {
			say(path, "bytes differ near offset %lld", (long long)off);
			break;
		}
		if (a == 0)
			break;
		off += a;
	}
	if (holes && size > 0) {
		off_t pa = 0, pb = 0;

		for (int i = 0; i < 10000; i++) {
			off_t xa = lseek(fa, pa, SEEK_DATA), xb = lseek(fb, pb, SEEK_DATA);

			if (xa != xb) {
				say(path, "data map differs (%lld vs %lld)", (long long)xa, (long long)xb);
				break;
			}
			if (xa < 0)
				break;
			xa = lseek(fa, xa, SEEK_HOLE);
			xb = lseek(fb, xb, SEEK_HOLE);
			if (xa != xb) {
				say(path, "hole map differs (%lld vs %lld)", (long long)xa, (long long)xb);
				break;
			}
			pa = pb = xa;
			if (xa >= size)
				break;
		}
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
}

static void note_hardlink(const struct stat *a, const struct stat *b, const char *path)
{
	for (size_t i = 0; i < nhl; i++) {
		if (hls[i].a == a->st_ino && hls[i].dev == a->st_dev) {
			if (hls[i].b != b->st_ino)
				say(path, "hard link structure differs");
			return;
		}
		if (hls[i].b == b->st_ino) {
			say(path, "hard link structure differs (joined in B only)");
			return;
		}
	}
	hls = realloc(hls, (nhl + 1) * sizeof(*hls));
	hls[nhl++] = (struct hl){ a->st_dev, a->st_ino, b->st_ino };
}

static void cmp_dir(int da, int db, const char *path)
{
	char **na, **nb;
	size_t ca, cb, i = 0, j = 0;

	if (names_of(da, &na, &ca) < 0 || names_of(db, &nb, &cb) < 0) {
		say(path, "cannot list");
		return;
	}
	if (ca)	/* an empty directory has no array at all */
		qsort(na, ca, sizeof(*na), scmp);
	if (cb)
		qsort(nb, cb, sizeof(*nb), scmp);
	while (i < ca || j < cb) {
		int c = i == ca ? 1 : j == cb ? -1 : strcmp(na[i], nb[j]);
		size_t pl = strlen(path);
		char *sub;

		if (c) {
			char *n = c < 0 ? na[i++] : nb[j++];

			sub = malloc(pl + strlen(n) + 2);
			snprintf(sub, pl + strlen(n) + 2, "%s/%s", path, n);
			say(sub, "only in %s", c < 0 ? "A" : "B");
			free(sub);
			free(n);
			continue;
		}
		sub = malloc(pl + strlen(na[i]) + 2);
		snprintf(sub, pl + strlen(na[i]) + 2, "%s/%s", path, na[i]);
		{
			struct stat sa, sb;
			const char *n = na[i];

			entries++;
			if (fstatat(da, n, &sa, AT_SYMLINK_NOFOLLOW) < 0 ||
			    fstatat(db, n, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
				say(sub, "cannot stat: %s", strerror(errno));
				goto next;
			}
			if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
				say(sub, "type %o vs %o", sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
				goto next;
			}
			if (sa.st_mode != sb.st_mode)
				say(sub, "mode %o vs %o", sa.st_mode, sb.st_mode);
			if (!no_owner && (sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid))
				say(sub, "owner %u:%u vs %u:%u", sa.st_uid, sa.st_gid, sb.st_uid,
				    sb.st_gid);
			if (!S_ISDIR(sa.st_mode) && sa.st_size != sb.st_size)
				say(sub, "size %lld vs %lld", (long long)sa.st_size,
				    (long long)sb.st_size);
			if (!S_ISDIR(sa.st_mode) && sa.st_nlink != sb.st_nlink)
				say(sub, "nlink %lu vs %lu", (unsigned long)sa.st_nlink,
				    (unsigned long)sb.st_nlink);
			if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
			    sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
				say(sub, "mtime %lld.%09ld vs %lld.%09ld", (long long)sa.st_mtim.tv_sec,
				    sa.st_mtim.tv_nsec, (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
			if (!ign_atime && (sa.st_atim.tv_sec != sb.st_atim.tv_sec ||
					   sa.st_atim.tv_nsec != sb.st_atim.tv_nsec))
				say(sub, "atime differs");
			if (!ign_ctime && (sa.st_ctim.tv_sec != sb.st_ctim.tv_sec ||
					   sa.st_ctim.tv_nsec != sb.st_ctim.tv_nsec))
				say(sub, "ctime differs");
			if ((S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode)) && sa.st_rdev != sb.st_rdev)
				say(sub, "rdev differs");
			cmp_xattrs(da, db, n, sub);
			if (S_ISLNK(sa.st_mode)) {
				char ta[8192], tb[8192];
				ssize_t a = readlinkat(da, n, ta, sizeof(ta));
				ssize_t b = readlinkat(db, n, tb, sizeof(tb));

				if (a != b || a < 0 || memcmp(ta, tb, (size_t)a))
					say(sub, "symlink target differs");
			}
			if (S_ISREG(sa.st_mode)) {
				cmp_data(da, db, n, sub, sa.st_size);
				if (sa.st_nlink > 1)
					note_hardlink(&sa, &sb, sub);
			}
			if (S_ISDIR(sa.st_mode)) {
				int fa = openat(da, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
				int fb = openat(db, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

				if (fa < 0 || fb < 0)
					say(sub, "cannot open directory: %s", strerror(errno));
				else
					cmp_dir(fa, fb, sub);
				if (fa >= 0)
					close(fa);
				if (fb >= 0)
					close(fb);
			}
		}
next:
		free(sub);
		free(na[i++]);
		free(nb[j++]);
	}
	while (i < ca)
		free(na[i++]);
	while (j < cb)
		free(nb[j++]);
	free(na);
	free(nb);
}

int main(int argc, char **argv)
{
	const char *a = NULL, *b = NULL;
	int fa, fb;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ignore-atime"))
			ign_atime = true;
		else if (!strcmp(argv[i], "--ignore-ctime"))
			ign_ctime = true;
		else if (!strcmp(argv[i], "--no-owner"))
			no_owner = true;
		else if (!strcmp(argv[i], "--holes"))
			holes = true;
		else if (!strcmp(argv[i], "--quiet"))
			quiet = true;
		else if (!a)
			a = argv[i];
		else if (!b)
			b = argv[i];
		else
			a = NULL;
	}
	if (!a || !b) {
		fprintf(stderr, "usage: dfs-treecmp [--ignore-atime] [--ignore-ctime] [--no-owner] "
			"[--holes] [--quiet] A B\n");
		return 2;
	}
	fa = open(a, O_RDONLY | O_DIRECTORY);
	fb = open(b, O_RDONLY | O_DIRECTORY);
	if (fa < 0 || fb < 0) {
		fprintf(stderr, "dfs-treecmp: %s: %s\n", fa < 0 ? a : b, strerror(errno));
		return 2;
	}
	cmp_dir(fa, fb, "");
	printf("treecmp: %lu entries, %lu differences\n", entries, diffs);
	return diffs ? 1 : 0;
}
