/*
 * fuzz_tarcut.c - the tar cut finder on arbitrary bytes (a file's content): every forced
 * cut lies past the offset asked about and the cuts of a file only go forward; chunking
 * the bytes as the ingest does (src_window over the file, FastCDC between the forced
 * cuts) tiles the file exactly, never gives a chunk over max_size, and gives the same
 * chunks through two window sizes.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ingest/srcfile.h"
#include "ingest/tarcut.h"
#include "store/cdc.h"

#define MAX_CUTS 65536

static size_t chunk_all(int fd, size_t size, size_t cap, const struct cdc_params *p,
			size_t *cuts)
{
	uint8_t *buf = malloc(cap);
	struct src_window sw;
	size_t n = 0, k, off = 0;

	if (!buf)
		abort();
	src_window_init(&sw, buf, cap, 0, (off_t)size);
	while (src_window_more(&sw)) {
		if (src_window_fill(&sw, fd) < 0)
			abort();
		while ((k = src_window_cut(&sw, p))) {
			if (k > p->max_size || n == MAX_CUTS)
				abort();
			off += k;
			cuts[n++] = off;
		}
	}
	free(buf);
	if (off != size)
		abort();	/* the chunks tile the file */
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdc_params p = { 1024, 4096, 16384, 2, 1 };
	static size_t a[MAX_CUTS], b[MAX_CUTS];
	struct tarcut t;
	uint64_t at = 0, c;
	size_t na, nb;
	int fd;

	if (size && (data[0] & 0x80))
		p.tar_floor = 2049;
	/* the finder alone, on the whole file: cuts go forward */
	tarcut_start(&t, p.tar_floor, data, size);
	while ((c = tarcut_next(&t, at, data + at, size - at, 1, UINT64_MAX / 4)) !=
	       TARCUT_NONE) {
		if (c <= at)
			abort();
		if (c >= size)
			break;
		at = c;
	}
	/* the ingest's way, through a file, with two windows */
	fd = memfd_create("fuzz_tarcut", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	na = chunk_all(fd, size, 600u << 10, &p, a);
	nb = chunk_all(fd, size, 1700u << 10, &p, b);
	close(fd);
	if (na != nb || memcmp(a, b, na * sizeof(*a)) != 0)
		abort();	/* deterministic: the window does not matter */
	return 0;
}
