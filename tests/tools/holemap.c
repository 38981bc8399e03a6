/*
 * holemap.c - dfs-holemap [--data] FILE: the data regions of FILE as SEEK_DATA/SEEK_HOLE
 * show them, one "OFFSET END" line each, then "size N"; with --data, the bytes of those
 * regions instead, in order (so two files' data compare with cmp, without reading their
 * holes: t_huge_file's 300 GiB sparse file). A filesystem without SEEK_DATA (EINVAL) shows
 * the whole file as data, as the kernel's default does.
 * Exit: 0, or 2 on a usage or I/O error (named on stderr).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_region(int fd, off_t off, off_t end, const char *path)
{
	static char buf[1 << 20];

	while (off < end) {
		size_t want = end - off < (off_t)sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
		ssize_t n = pread(fd, buf, want, off);

		if (n <= 0) {
			fprintf(stderr, "dfs-holemap: %s @%lld: %s\n", path, (long long)off,
				n < 0 ? strerror(errno) : "unexpected end of file");
			return -1;
		}
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
			fprintf(stderr, "dfs-holemap: stdout: %s\n", strerror(errno));
			return -1;
		}
		off += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool data = argc == 3 && strcmp(argv[1], "--data") == 0;
	const char *path = argv[argc - 1];
	struct stat sb;
	off_t off = 0;
	int fd, rc = 0;

	if (argc != 2 && !data) {
		fprintf(stderr, "usage: dfs-holemap [--data] FILE\n");
		return 2;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		fprintf(stderr, "dfs-holemap: %s: %s\n", path, strerror(errno));
		return 2;
	}
	while (off < sb.st_size && rc == 0) {
		off_t d = lseek(fd, off, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break;		/* a hole to the end */
		if (d < 0 && errno != EINVAL) {
			fprintf(stderr, "dfs-holemap: %s: SEEK_DATA %lld: %s\n", path,
				(long long)off, strerror(errno));
			rc = -1;
			break;
		}
		if (d < 0)
			d = off;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > sb.st_size)
			h = sb.st_size;
		if (data)
			rc = copy_region(fd, d, h, path);
		else
			printf("%lld %lld\n", (long long)d, (long long)h);
		off = h;
	}
	if (!data)
		printf("size %lld\n", (long long)sb.st_size);
	close(fd);
	if (fflush(stdout) != 0)
		rc = -1;
	return rc < 0 ? 2 : 0;
}
