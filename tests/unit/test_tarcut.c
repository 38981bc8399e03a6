/*
 * test_tarcut.c - the forced cuts of tar archives (ingest/tarcut.h) and the windowed
 * chunking that uses them (srcfile.h's src_window): ustar and GNU headers, GNU long names,
 * pax headers (a "size" that overrides the header's, a GNU sparse map that stops the
 * finder), sparse members, a corrupt checksum, a truncated archive, base-256 sizes, a file
 * that begins like a tar and is not one; a member's chunks are those of the same bytes as
 * a file of their own, whatever the window, and the chunks tile the archive exactly.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/srcfile.h"
#include "ingest/tarcut.h"
#include "store/cdc.h"
#include "store/fp.h"

#include "test_check.h"

#define BLK TARCUT_BLOCK

struct tarbuf {
	uint8_t *p;
	size_t len, cap;
};

static void tb_reserve(struct tarbuf *t, size_t more)
{
	if (t->len + more <= t->cap)
		return;
	t->cap = (t->len + more) * 2;
	t->p = realloc(t->p, t->cap);
	if (!t->p)
		abort();
}

/* A header block: @gnu: GNU magic ("ustar  \0") else POSIX ("ustar\0" "00"). */
static void tb_header(struct tarbuf *t, const char *name, char type, uint64_t size, bool gnu)
{
	uint8_t *h;
	unsigned sum = 0;

	tb_reserve(t, BLK);
	h = t->p + t->len;
	memset(h, 0, BLK);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	if (size < 077777777777ull) {
		snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	} else {	/* GNU base-256 */
		h[124] = 0x80;
		for (int i = 0; i < 8; i++)
			h[135 - i] = (uint8_t)(size >> (8 * i));
	}
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (uint8_t)type;
	memcpy(h + 257, gnu ? "ustar  " : "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	for (unsigned i = 0; i < BLK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	t->len += BLK;
}

/* @n bytes of data (from @d, or pseudo-random from @seed), padded to a block. */
static void tb_data(struct tarbuf *t, const uint8_t *d, size_t n, uint64_t seed)
{
	size_t pad = (BLK - n % BLK) % BLK;

	tb_reserve(t, n + pad);
	if (d)
		memcpy(t->p + t->len, d, n);
	else
		test_fill(t->p + t->len, n, seed);
	memset(t->p + t->len + n, 0, pad);
	t->len += n + pad;
}

static void tb_end(struct tarbuf *t)
{
	tb_reserve(t, 2 * BLK);
	memset(t->p + t->len, 0, 2 * BLK);
	t->len += 2 * BLK;
}

/* Every forced cut of the archive in @t seen whole: at most @max into @cuts. */
static size_t all_cuts(const struct tarbuf *t, uint32_t floor, uint64_t *cuts, size_t max)
{
	struct tarcut tc;
	uint64_t at = 0, c;
	size_t n = 0;

	tarcut_start(&tc, floor, t->p, t->len);
	while ((c = tarcut_next(&tc, at, t->p + at, t->len - at, true, UINT64_MAX / 4)) !=
	       TARCUT_NONE) {
		if (n < max)
			cuts[n] = c;
		n++;
		at = c;
		if (c >= t->len)
			break;
	}
	return n;
}

static void test_ustar_and_gnu(void)
{
	for (int gnu = 0; gnu < 2; gnu++) {
		struct tarbuf t = { 0 };
		uint64_t cuts[16];
		size_t n;

		tb_header(&t, "dir/", '5', 0, gnu);
		tb_header(&t, "dir/small", '0', 100, gnu);
		tb_data(&t, NULL, 100, 1);
		tb_header(&t, "dir/big", '0', 70000, gnu);
		tb_data(&t, NULL, 70000, 2);
		tb_header(&t, "dir/hard", '1', 0, gnu);
		tb_header(&t, "dir/sym", '2', 0, gnu);
		tb_header(&t, "dir/empty", '0', 0, gnu);
		tb_header(&t, "dir/exact", '7', 1024, gnu);
		tb_data(&t, NULL, 1024, 3);
		tb_end(&t);
		CHECK(tarcut_is_tar(t.p, t.len), "gnu %d: not seen as a tar", gnu);
		n = all_cuts(&t, 1, cuts, 16);
		CHECK(n == 6, "gnu %d: %zu cuts, want 6", gnu, n);
		CHECK(n >= 6 && cuts[0] == 2 * BLK && cuts[1] == 2 * BLK + 100 &&
		      cuts[2] == 4 * BLK && cuts[3] == 4 * BLK + 70000 &&
		      cuts[4] == 4 * BLK + 70144 + 4 * BLK && cuts[5] == cuts[4] + 1024,
		      "gnu %d: cuts at the wrong places", gnu);
		/* the floor: the 100 and 1024-byte members lie in the runs between */
		n = all_cuts(&t, 4096, cuts, 16);
		CHECK(n == 2 && cuts[0] == 4 * BLK && cuts[1] == 4 * BLK + 70000,
		      "gnu %d: floor 4096 gave %zu cuts", gnu, n);
		/* floor 0: off */
		CHECK(all_cuts(&t, 0, cuts, 16) == 0, "floor 0 cuts");
		free(t.p);
	}
}

static void test_long_names_and_pax(void)
{
	struct tarbuf t = { 0 };
	char name[300], pax[256];
	uint64_t cuts[16], base;
	size_t n;
	int pl;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	tb_header(&t, "././@LongLink", 'L', sizeof(name), true);
	tb_data(&t, (const uint8_t *)name, sizeof(name), 0);
	tb_header(&t, "nnnn", '0', 5000, true);
	tb_data(&t, NULL, 5000, 4);
	base = t.len;
	/* pax: the header says 0 bytes, the pax record 3000 (and a path) */
	pl = snprintf(pax, sizeof(pax), "30 path=a/very/long/name/here\n13 size=3000\n");
	CHECK(pl == 43, "pax record lengths: %d", pl);
	tb_header(&t, "PaxHeaders/x", 'x', (uint64_t)pl, false);
	tb_data(&t, (const uint8_t *)pax, (size_t)pl, 0);
	tb_header(&t, "x", '0', 0, false);
	tb_data(&t, NULL, 3000, 5);
	tb_header(&t, "y", '0', 2000, false);
	tb_data(&t, NULL, 2000, 6);
	tb_end(&t);
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 6, "long name + pax: %zu cuts, want 6", n);
	CHECK(n >= 6 && cuts[0] == 3 * BLK && cuts[1] == 3 * BLK + 5000 &&
	      cuts[2] == base + 3 * BLK && cuts[3] == base + 3 * BLK + 3000 &&
	      cuts[4] == base + 3 * BLK + 3072 + BLK && cuts[5] == cuts[4] + 2000,
	      "long name + pax: cuts at the wrong places");
	free(t.p);

	/* a pax GNU sparse map: the member's data is not its content: stop there */
	memset(&t, 0, sizeof(t));
	tb_header(&t, "a", '0', 4000, false);
	tb_data(&t, NULL, 4000, 7);
	pl = snprintf(pax, sizeof(pax), "22 GNU.sparse.major=1\n");
	tb_header(&t, "PaxHeaders/b", 'x', (uint64_t)pl, false);
	tb_data(&t, (const uint8_t *)pax, (size_t)pl, 0);
	tb_header(&t, "b", '0', 4000, false);
	tb_data(&t, NULL, 4000, 8);
	tb_end(&t);
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 2 && cuts[0] == BLK && cuts[1] == BLK + 4000, "pax sparse: %zu cuts", n);
	free(t.p);

	/* a malformed pax record: stop */
	memset(&t, 0, sizeof(t));
	tb_header(&t, "PaxHeaders/c", 'x', 10, false);
	tb_data(&t, (const uint8_t *)"99 size=1\n", 10, 0);
	tb_header(&t, "c", '0', 4000, false);
	tb_data(&t, NULL, 4000, 9);
	tb_end(&t);
	CHECK(all_cuts(&t, 1, cuts, 16) == 0, "malformed pax: cuts");
	free(t.p);
}

static void test_stops(void)
{
	struct tarbuf t = { 0 };
	uint64_t cuts[16];
	size_t n, len;

	/* GNU sparse member: stop */
	tb_header(&t, "a", '0', 3000, true);
	tb_data(&t, NULL, 3000, 10);
	tb_header(&t, "s", 'S', 3000, true);
	tb_data(&t, NULL, 3000, 11);
	tb_header(&t, "b", '0', 3000, true);
	tb_data(&t, NULL, 3000, 12);
	tb_end(&t);
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 2 && cuts[1] == BLK + 3000, "sparse: %zu cuts", n);

	/* a corrupt checksum in the second header: the first member only */
	t.p[BLK + 3072 + 140] ^= 1;	/* the sparse header's mtime byte */
	t.p[BLK + 3072 + 156] = '0';	/* and not sparse: the checksum alone stops it */
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 2 && cuts[1] == BLK + 3000, "corrupt checksum: %zu cuts", n);
	/* a corrupt first header: not a tar */
	t.p[0] ^= 1;
	CHECK(!tarcut_is_tar(t.p, t.len), "a corrupt first header is a tar");
	CHECK(all_cuts(&t, 1, cuts, 16) == 0, "cuts in a corrupt tar");
	free(t.p);

	/* truncated: inside the second header, and inside a member's data */
	memset(&t, 0, sizeof(t));
	tb_header(&t, "a", '0', 3000, false);
	tb_data(&t, NULL, 3000, 13);
	tb_header(&t, "b", '0', 9000, false);
	tb_data(&t, NULL, 9000, 14);
	len = t.len;
	t.len = BLK + 3072 + 300;
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 2 && cuts[1] == BLK + 3000, "truncated header: %zu cuts", n);
	t.len = BLK + 3072 + BLK + 100;
	n = all_cuts(&t, 1, cuts, 16);	/* the second member's start; its end past the file */
	CHECK(n == 4 && cuts[2] == BLK + 3072 + BLK && cuts[3] > t.len,
	      "truncated data: %zu cuts", n);
	t.len = len;
	/* a link with data: stop */
	t.p[BLK + 3072 + 156] = '2';
	memset(t.p + BLK + 3072 + 148, ' ', 8);
	{
		unsigned sum = 0;

		for (unsigned i = 0; i < BLK; i++)
			sum += t.p[BLK + 3072 + i];
		snprintf((char *)t.p + BLK + 3072 + 148, 8, "%06o", sum);
	}
	n = all_cuts(&t, 1, cuts, 16);
	CHECK(n == 2, "a symlink with data: %zu cuts", n);
	free(t.p);

	/* not a tar: text with "ustar" at 257, and a short file */
	{
		uint8_t txt[2048];

		memset(txt, 'a', sizeof(txt));
		memcpy(txt + 257, "ustar\0" "00", 8);
		memcpy(txt + 148, "0000000", 8);
		CHECK(!tarcut_is_tar(txt, sizeof(txt)), "text with ustar magic is a tar");
		CHECK(!tarcut_is_tar(txt, 100), "100 bytes are a tar");
	}
}

static void test_base256(void)
{
	struct tarbuf t = { 0 };
	struct tarcut tc;
	uint64_t big = 9ull << 30, c;	/* 9 GiB: past the octal field */

	tb_header(&t, "huge", '0', big, true);
	tb_data(&t, NULL, 4096, 15);	/* what a window sees of it */
	tarcut_start(&tc, 1, t.p, t.len);
	c = tarcut_next(&tc, 0, t.p, t.len, false, 1 << 20);
	CHECK(c == BLK, "base-256: first cut %llu", (unsigned long long)c);
	c = tarcut_next(&tc, BLK, t.p + BLK, t.len - BLK, false, 1 << 20);
	CHECK(c == BLK + big, "base-256: end cut %llu", (unsigned long long)c);
	free(t.p);
}

/* ---- the windowed path: src_window over a file ---- */

struct chunks {
	struct fp256 *id;
	uint32_t *len;
	size_t n, cap;
};

static void chunk_file(const char *path, size_t cap, const struct cdc_params *cp,
		       struct chunks *out)
{
	int fd = open(path, O_RDONLY);
	uint8_t *buf = malloc(cap);
	struct src_window sw;
	off_t end = lseek(fd, 0, SEEK_END);
	size_t k;

	memset(out, 0, sizeof(*out));
	src_window_init(&sw, buf, cap, 0, end);
	while (src_window_more(&sw)) {
		ssize_t got = src_window_fill(&sw, fd);

		CHECK(got >= 0, "fill: %zd", got);
		if (got < 0)
			break;
		while ((k = src_window_cut(&sw, cp))) {
			if (out->n == out->cap) {
				out->cap = out->cap ? out->cap * 2 : 64;
				out->id = realloc(out->id, out->cap * sizeof(*out->id));
				out->len = realloc(out->len, out->cap * sizeof(*out->len));
			}
			fp_sha256(sw.buf + sw.pos - k, k, &out->id[out->n]);
			out->len[out->n++] = (uint32_t)k;
		}
	}
	free(buf);
	close(fd);
}

static void chunks_free(struct chunks *c)
{
	free(c->id);
	free(c->len);
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n, "write %s", path);
	close(fd);
}

/* Is @m's chunk list a run of @t's? */
static bool contains(const struct chunks *t, const struct chunks *m)
{
	for (size_t i = 0; i + m->n <= t->n; i++) {
		size_t j = 0;

		while (j < m->n && t->len[i + j] == m->len[j] &&
		       fp_equal(&t->id[i + j], &m->id[j]))
			j++;
		if (j == m->n)
			return true;
	}
	return false;
}

static void test_window(void)
{
	struct cdc_params cp = { 1024, 4096, 16384, 2, 1 };
	char dir[] = "/tmp/test_tarcut.XXXXXX", tpath[64], mpath[64];
	struct tarbuf t = { 0 };
	struct chunks a, b, m, plain;
	uint8_t *member = malloc(3u << 20);
	uint64_t sum = 0;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(tpath, sizeof(tpath), "%s/a.tar", dir);
	snprintf(mpath, sizeof(mpath), "%s/member", dir);
	/* members around one of 3 MiB (larger than the windows below) */
	test_fill(member, 3u << 20, 99);
	for (int i = 0; i < 50; i++) {
		char nm[32];

		snprintf(nm, sizeof(nm), "f%d", i);
		tb_header(&t, nm, '0', (uint64_t)(i * 37 + 1), false);
		tb_data(&t, NULL, (size_t)(i * 37 + 1), (uint64_t)i + 100);
	}
	tb_header(&t, "big", '0', 3u << 20, false);
	tb_data(&t, member, 3u << 20, 0);
	tb_header(&t, "after", '0', 20000, false);
	tb_data(&t, NULL, 20000, 7);
	tb_end(&t);
	write_file(tpath, t.p, t.len);
	write_file(mpath, member, 3u << 20);

	chunk_file(tpath, 1u << 20, &cp, &a);
	chunk_file(tpath, 3u << 20, &cp, &b);
	chunk_file(mpath, 1u << 20, &cp, &m);
	CHECK(a.n == b.n, "another window, %zu chunks against %zu", a.n, b.n);
	for (size_t i = 0; i < a.n && i < b.n; i++)
		CHECK(a.len[i] == b.len[i] && fp_equal(&a.id[i], &b.id[i]),
		      "another window, chunk %zu differs", i);
	for (size_t i = 0; i < a.n; i++)
		sum += a.len[i];
	CHECK(sum == t.len, "the chunks tile the archive: %llu of %zu",
	      (unsigned long long)sum, t.len);
	CHECK(contains(&a, &m), "the member's chunks are not in the archive's");
	/* without the finder they are not (the member does not start at a cut) */
	cp.tar_floor = 0;
	chunk_file(tpath, 1u << 20, &cp, &plain);
	CHECK(!contains(&plain, &m), "plain FastCDC already cut the member alike");
	chunks_free(&a);
	chunks_free(&b);
	chunks_free(&m);
	chunks_free(&plain);
	unlink(tpath);
	unlink(mpath);
	rmdir(dir);
	free(member);
	free(t.p);
}

int main(void)
{
	test_ustar_and_gnu();
	test_long_names_and_pax();
	test_stops();
	test_base256();
	test_window();
	return test_result("test_tarcut");
}
