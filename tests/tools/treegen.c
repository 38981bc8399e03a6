/*
 * treegen.c - dfs-treegen DIR --seed N [--scale S] [--big]: a deterministic edge-case
 * source tree for the integration tests: every file type, odd names (any byte but '/'
 * and NUL, invalid UTF-8, newlines, 255 bytes), a path longer than PATH_MAX, hard links,
 * sparse files, xattrs (user, trusted, POSIX ACLs), setuid/sticky modes, owners above
 * 65535, timestamps in nanoseconds before 1970 and after 2038.
 *
 * Everything is made relative to directory fds, so depth is unlimited. Root is needed
 * for device nodes, owners and trusted.* (skipped with a note otherwise).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng;
static unsigned long n_files, n_dirs, n_links, n_special, n_bytes, n_skipped;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void die(const char *what, const char *name);

/* Calls whose failure leaves a tree the tests cannot trust stop the generator. */
#define MUST(call, what) do { if ((call) < 0) die(what, #call); } while (0)

static void die(const char *what, const char *name)
{
	fprintf(stderr, "dfs-treegen: %s %s: %s\n", what, name, strerror(errno));
	exit(2);
}

static int mkd(int dfd, const char *name)
{
	int fd;

	if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
		die("mkdir", name);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		die("open", name);
	n_dirs++;
	return fd;
}

/* Content kinds: 0 text, 1 random, 2 zeros, 3 a shared run (dedup at shifted offsets) */
static void fill(uint8_t *p, size_t n, int kind, unsigned seed)
{
	static const char words[] = "alpha beta gamma delta epsilon zeta eta theta iota kappa ";
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;

	for (size_t i = 0; i < n; i++) {
		switch (kind) {
		case 0:
			p[i] = (uint8_t)words[(i + seed) % (sizeof(words) - 1)];
			if (i % 61 == 60)
				p[i] = '\n';
			break;
		case 1:
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (uint8_t)x;
			break;
		case 2:
			p[i] = 0;
			break;
		default:
			x = (i * 2654435761u) ^ (i >> 12);
			p[i] = (uint8_t)(x >> 8);
		}
	}
}

static void wfile(int dfd, const char *name, size_t size, int kind, unsigned seed, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, mode);
	uint8_t *buf;

	if (fd < 0)
		die("create", name);
	buf = malloc(size ? size : 1);
	if (!buf)
		die("malloc", name);
	fill(buf, size, kind, seed);
	if (size && write(fd, buf, size) != (ssize_t)size)
		die("write", name);
	MUST(fchmod(fd, mode), "fchmod");
	close(fd);
	free(buf);
	n_files++;
	n_bytes += size;
}

static void set_times(int dfd, const char *name, int64_t sec, long nsec)
{
	struct timespec ts[2] = { { (time_t)sec + 17, nsec / 3 }, { (time_t)sec, nsec } };

	utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

/* An ACL xattr: version 2, then (tag u16, perm u16, id u32) entries. */
static void set_acl(int dfd, const char *name)
{
	struct { uint16_t tag, perm; uint32_t id; } __attribute__((packed)) e[] = {
		{ 0x01, 6, UINT32_MAX },	/* USER_OBJ rw */
		{ 0x02, 4, 1234 },		/* USER 1234 r */
		{ 0x04, 4, UINT32_MAX },	/* GROUP_OBJ r */
		{ 0x10, 4, UINT32_MAX },	/* MASK r */
		{ 0x20, 0, UINT32_MAX },	/* OTHER - */
	};
	uint8_t buf[4 + sizeof(e)];
	char path[128];
	uint32_t v = 2;

	memcpy(buf, &v, 4);
	memcpy(buf + 4, e, sizeof(e));
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
	if (setxattr(path, "system.posix_acl_access", buf, sizeof(buf), 0) < 0)
		n_skipped++;
}

static void xattr(int dfd, const char *name, const char *key, const void *v, size_t n)
{
	char path[4200];

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
	if (lsetxattr(path, key, v, n, 0) < 0)
		n_skipped++;
}

/* Gives every entry whose times were not set on purpose a time derived from its name, so
 * two trees made with the same seed are equal but for ctime (post-order: a directory's
 * times are set after its entries are made). */
static void settle_times(int dfd, int depth)
{
	int d2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *de;
	time_t now = time(NULL);

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat sb;
		uint64_t h = 1469598103934665603ull;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(sb.st_mode) && depth < 100) {
			int c = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

			if (c >= 0) {
				settle_times(c, depth + 1);
				close(c);
			}
		}
		if (sb.st_mtime < now - 3600 || sb.st_mtime > now + 3600)
			continue;
		for (const char *p = de->d_name; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		set_times(dfd, de->d_name, 1400000000 + (int64_t)(h % 300000000),
			  (long)((h >> 32) % 1000000000));
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	unsigned seed = 1, scale = 1;
	int big = 0, root, d, e, deep;
	char name[300];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
			scale = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--big"))
			big = 1;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr, "usage: dfs-treegen DIR [--seed N] [--scale S] [--big]\n");
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "usage: dfs-treegen DIR [--seed N] [--scale S] [--big]\n");
		return 2;
	}
	rng = seed * 0x2545f4914f6cdd1dull + 1;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die("mkdir", dir);
	root = open(dir, O_RDONLY | O_DIRECTORY);
	if (root < 0)
		die("open", dir);

	/* ordinary files of many sizes and kinds, some duplicated */
	d = mkd(root, "files");
	{
		static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 65535, 65536, 65537,
						300000, 1 << 20, (3 << 20) + 17 };

		for (unsigned s = 0; s < scale; s++)
			for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++)
				for (int k = 0; k < 4; k++) {
					snprintf(name, sizeof(name), "f%u-%zu-k%d", s, sizes[i], k);
					wfile(d, name, sizes[i], k, seed + (unsigned)i + s * 100, 0644);
					set_times(d, name, 1600000000 + (int64_t)(rnd() % 100000000),
						  (long)(rnd() % 1000000000));
				}
	}
	e = mkd(d, "copies");
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "copy%d-of-1M-k0", i);
		wfile(e, name, 1 << 20, 0, seed + 10, 0644);
	}
	close(e);
	close(d);

	/* names */
	d = mkd(root, "names");
	for (int c = 1; c < 256; c++) {
		if (c == '/')
			continue;
		snprintf(name, sizeof(name), "byte-%02x-%c", c, c);
		if (c == '.')
			snprintf(name, sizeof(name), "byte-2e-.");
		wfile(d, name, (size_t)c, 0, (unsigned)c, 0644);
	}
	wfile(d, "bad-utf8-\xff\xfe\xc3\x28", 10, 0, 1, 0644);
	wfile(d, "new\nline", 10, 0, 2, 0644);
	wfile(d, "tab\there back\\slash", 10, 0, 3, 0644);
	wfile(d, "-leading-dash", 10, 0, 4, 0644);
	wfile(d, "Case", 1, 0, 5, 0644);
	wfile(d, "case", 2, 0, 6, 0644);
	wfile(d, " space ", 3, 0, 7, 0644);
	memset(name, 'n', 255);
	name[255] = '\0';
	wfile(d, name, 255, 0, 8, 0644);
	close(d);

	/* a path longer than PATH_MAX */
	deep = mkd(root, "deep");
	for (int i = 0; i < 40; i++) {
		int next;

		memset(name, 'a' + i % 26, 120);
		name[120] = '\0';
		next = mkd(deep, name);
		close(deep);
		deep = next;
	}
	wfile(deep, "bottom", 1234, 0, 9, 0644);
	close(deep);

	/* empty things */
	d = mkd(root, "empty");
	close(mkd(d, "empty-dir"));
	wfile(d, "empty-file", 0, 0, 0, 0644);
	close(d);

	/* hard links across directories */
	d = mkd(root, "links");
	e = mkd(d, "other");
	wfile(d, "target", 5000, 0, 11, 0640);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "hard%d", i);
		if (linkat(d, "target", i == 1 ? e : d, name, 0) == 0)
			n_links++;
	}
	wfile(e, "pair-a", 7000, 1, 12, 0600);
	if (linkat(e, "pair-a", d, "pair-b", 0) == 0)
		n_links++;
	/* symlinks */
	MUST(symlinkat("target", d, "sym-rel"), "symlinkat");
	MUST(symlinkat("/etc/hostname", d, "sym-abs"), "symlinkat");
	MUST(symlinkat("does/not/exist", d, "sym-dangling"), "symlinkat");
	MUST(symlinkat("other", d, "sym-dir"), "symlinkat");
	MUST(symlinkat("\xff\xfe-not-utf8", d, "sym-bad-utf8"), "symlinkat");
	{
		char t[4001];

		memset(t, 'x', 4000);
		t[4000] = '\0';
		for (int i = 100; i < 4000; i += 100)
			t[i] = '/';
		MUST(symlinkat(t, d, "sym-long"), "symlinkat");
	}
	n_links += 6;
	close(e);
	close(d);

	/* sparse files */
	d = mkd(root, "sparse");
	{
		int fd = openat(d, "sparse-1G", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		uint8_t buf[65536];

		fill(buf, sizeof(buf), 1, 21);
		for (int i = 0; i < 4; i++)
			if (pwrite(fd, buf, sizeof(buf), (off_t)(i * 300) << 20) < 0)
				die("pwrite", "sparse");
		MUST(ftruncate(fd, 1ll << 30), "ftruncate");
		close(fd);
		fd = openat(d, "all-hole", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		MUST(ftruncate(fd, 100 << 20), "ftruncate");
		close(fd);
		fd = openat(d, "hole-at-end", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (write(fd, buf, sizeof(buf)) < 0)
			die("write", "hole-at-end");
		MUST(ftruncate(fd, 10 << 20), "ftruncate");
		close(fd);
		n_files += 3;
	}
	close(d);

	/* special files */
	d = mkd(root, "special");
	if (mkfifoat(d, "fifo", 0644) == 0)
		n_special++;
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/socket", d);
		if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			n_special++;
		if (s >= 0)
			close(s);
	}
	if (mknodat(d, "chardev", S_IFCHR | 0600, makedev(1, 3)) == 0 &&
	    mknodat(d, "blockdev", S_IFBLK | 0600, makedev(7, 99)) == 0)
		n_special += 2;
	else
		n_skipped++;
	close(d);

	/* modes, owners, times, xattrs */
	d = mkd(root, "meta");
	wfile(d, "setuid", 10, 0, 31, 04755);
	wfile(d, "setgid", 10, 0, 32, 02755);
	wfile(d, "mode000", 10, 0, 33, 0);
	close(mkd(d, "sticky"));
	MUST(fchmodat(d, "sticky", 01777, 0), "fchmodat");
	MUST(fchmodat(d, "setuid", 04755, 0), "fchmodat");
	MUST(fchmodat(d, "setgid", 02755, 0), "fchmodat");
	wfile(d, "bigowner", 10, 0, 34, 0644);
	if (fchownat(d, "bigowner", 100000, 200000, 0) < 0)
		n_skipped++;
	wfile(d, "pre1970", 10, 0, 35, 0644);
	wfile(d, "post2038", 10, 0, 36, 0644);
	wfile(d, "xattrs", 10, 0, 37, 0644);
	{
		uint8_t bin[4096];

		fill(bin, sizeof(bin), 1, 38);
		xattr(d, "xattrs", "user.binary", bin, 64);
		xattr(d, "xattrs", "user.empty", "", 0);
		xattr(d, "xattrs", "user.big", bin, sizeof(bin));
		xattr(d, "xattrs", "trusted.secret", "root only", 9);
	}
	wfile(d, "acl", 10, 0, 39, 0640);
	set_acl(d, "acl");
	xattr(d, "sticky", "user.on-a-dir", "yes", 3);
	MUST(symlinkat("xattrs", d, "symlink-with-time"), "symlinkat");
	set_times(d, "pre1970", -86400 * 365 * 5 - 1, 123456789);
	set_times(d, "post2038", 4102444800ll, 987654321);
	set_times(d, "symlink-with-time", 1234567890, 5);
	close(d);

	if (big) {
		d = mkd(root, "big");
		wfile(d, "big-256M", 256u << 20, 0, 40, 0644);
		close(d);
	}

	settle_times(root, 0);
	/* directory times last, so entries made above do not move them */
	set_times(root, "meta", 1500000000, 42);
	set_times(root, "files", 1500000001, 43);
	close(root);
	printf("dfs-treegen: %s: %lu files, %lu dirs, %lu links, %lu special, %lu bytes written, "
	       "%lu skipped\n", dir, n_files, n_dirs, n_links, n_special, n_bytes, n_skipped);
	return 0;
}
