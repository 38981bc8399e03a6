/*
 * tarcut.c - the forced cuts of a tar archive (see tarcut.h).
 *
 * The finder walks the headers ahead of the chunker: for a member of at least the floor
 * it queues two cuts (its data's start and end) and moves its cursor past the data and
 * its padding without reading them; headers that carry no member (GNU 'L'/'K' long
 * names, pax 'x'/'g', directories, links, devices) and members below the floor are
 * skipped the same way, so they end up in the run of bytes between two members' cuts.
 * Everything it reads lies before @at + @horizon + TARCUT_LOOKAHEAD, which is what the
 * caller's window guarantees, so what it decides never depends on how much the window
 * happens to hold: the cuts are a function of the bytes.
 *
 * SPDX-License-Identifier: MIT
 */
#include "tarcut.h"

#include <string.h>

#define OFF_SIZE 124
#define OFF_CHKSUM 148
#define OFF_TYPE 156
#define OFF_MAGIC 257
#define MAX_MEMBER (1ull << 62)	/* a larger size is no tar we follow */

/* An octal field (leading spaces, digits, then a NUL, a space or the field's end);
 * -1 if there is no digit or a stray byte. */
static int64_t octal(const uint8_t *f, size_t len)
{
	uint64_t v = 0;
	size_t i = 0;
	bool digit = false;

	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
		digit = true;
	}
	if (!digit || (i < len && f[i] != ' ' && f[i] != '\0'))
		return -1;
	return (int64_t)v;
}

/* The size field: octal, or GNU's base-256 (the first byte's high bit set). -1: bad. */
static int64_t member_size(const uint8_t *h)
{
	const uint8_t *f = h + OFF_SIZE;
	uint64_t v = 0;

	if (!(f[0] & 0x80))
		return octal(f, 12);
	if (f[0] & 0x40)
		return -1;	/* negative */
	v = f[0] & 0x3f;
	for (int i = 1; i < 12; i++) {
		if (v >> 55)
			return -1;
		v = (v << 8) | f[i];
	}
	return (int64_t)v;
}

/* The magic (POSIX "ustar\0" "00", or GNU "ustar  \0") and the checksum (the byte sum
 * with the checksum field as spaces, unsigned or, as old tars wrote it, signed). */
static bool header_ok(const uint8_t *h)
{
	int64_t want;
	uint64_t u = 0;
	int64_t s = 0;

	if (memcmp(h + OFF_MAGIC, "ustar", 5) != 0 ||
	    (h[OFF_MAGIC + 5] != '\0' && h[OFF_MAGIC + 5] != ' '))
		return false;
	want = octal(h + OFF_CHKSUM, 8);
	if (want < 0)
		return false;
	for (unsigned i = 0; i < TARCUT_BLOCK; i++) {
		uint8_t c = i >= OFF_CHKSUM && i < OFF_CHKSUM + 8 ? ' ' : h[i];

		u += c;
		s += (int8_t)c;
	}
	return (int64_t)u == want || s == want;
}

bool tarcut_is_tar(const uint8_t *p, size_t n)
{
	return n >= TARCUT_BLOCK && header_ok(p);
}

void tarcut_start(struct tarcut *t, uint32_t floor, const uint8_t *p, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->floor = floor;
	t->pax_size = UINT64_MAX;
	t->active = floor > 0 && tarcut_is_tar(p, n);
}

static uint64_t stop(struct tarcut *t)
{
	t->active = false;
	t->ncut = t->icut = 0;
	return TARCUT_NONE;
}

static uint64_t padded(uint64_t n)
{
	return (n + TARCUT_BLOCK - 1) & ~(uint64_t)(TARCUT_BLOCK - 1);
}

/*
 * A pax extended header's records ("LEN key=value\n"): its "size" into *@size (kept when
 * absent). false when malformed or when it names a GNU sparse map (whose data is not the
 * member's content).
 */
static bool pax_parse(const uint8_t *p, size_t n, uint64_t *size)
{
	size_t i = 0;

	while (i < n) {
		size_t len = 0, j = i, k, eq;

		if (p[i] == '\0')
			break;	/* some writers pad the records with NULs */
		while (j < n && p[j] >= '0' && p[j] <= '9' && len < n)
			len = len * 10 + (size_t)(p[j++] - '0');
		if (j == i || j >= n || p[j] != ' ' || len > n - i || len < j - i + 3 ||
		    p[i + len - 1] != '\n')
			return false;
		k = j + 1;
		for (eq = k; eq < i + len - 1 && p[eq] != '='; eq++)
			;
		if (eq == i + len - 1)
			return false;
		if (eq - k > 11 && !memcmp(p + k, "GNU.sparse.", 11))
			return false;
		if (eq - k == 4 && !memcmp(p + k, "size", 4)) {
			uint64_t v = 0;
			size_t d;

			for (d = eq + 1; d < i + len - 1; d++) {
				if (p[d] < '0' || p[d] > '9' || v > MAX_MEMBER)
					return false;
				v = v * 10 + (uint64_t)(p[d] - '0');
			}
			if (d == eq + 1 || v > MAX_MEMBER)
				return false;
			*size = v;
		}
		i += len;
	}
	return true;
}

static bool zero_block(const uint8_t *h)
{
	for (unsigned i = 0; i < TARCUT_BLOCK; i++)
		if (h[i])
			return false;
	return true;
}

uint64_t tarcut_next(struct tarcut *t, uint64_t at, const uint8_t *p, size_t n, bool eof,
		     uint64_t horizon)
{
	while (t->active) {
		const uint8_t *h;
		uint64_t off, data, size;
		int64_t sz;
		uint8_t type;

		while (t->icut < t->ncut) {
			if (t->cut[t->icut] > at)
				return t->cut[t->icut];
			t->icut++;
		}
		t->ncut = t->icut = 0;
		if (t->scan < at)
			return stop(t);	/* the caller cut past a header: not ours to follow */
		if (t->scan - at >= horizon)
			return t->scan;	/* no cut before the next header */
		off = t->scan - at;
		if (off + TARCUT_BLOCK > n)
			return stop(t);	/* truncated (or a caller's window too short) */
		h = p + off;
		if (zero_block(h) || !header_ok(h))
			return stop(t);	/* the end of the archive, or not a tar any more */
		sz = member_size(h);
		if (sz < 0 || (uint64_t)sz > MAX_MEMBER)
			return stop(t);
		size = (uint64_t)sz;
		type = h[OFF_TYPE];
		data = t->scan + TARCUT_BLOCK;
		switch (type) {
		case 'L':	/* GNU long name, long link target: metadata */
		case 'K':
			break;
		case 'x':
		case 'g': {
			uint64_t psize = t->pax_size;

			if (size > TARCUT_PAX_MAX || off + TARCUT_BLOCK + size > n ||
			    !pax_parse(h + TARCUT_BLOCK, (size_t)size, &psize))
				return stop(t);
			if (type == 'g' && psize != t->pax_size)
				return stop(t);	/* a size for every member: not followed */
			t->pax_size = psize;
			break;
		}
		case '0':
		case '\0':
		case '7':
			if (t->pax_size != UINT64_MAX)
				size = t->pax_size;
			t->pax_size = UINT64_MAX;
			if (size >= t->floor) {
				t->cut[0] = data;
				t->cut[1] = data + size;
				t->ncut = 2;
			}
			break;
		case '1':	/* hard link, symlink, devices, directory, FIFO: no data */
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
			if (t->pax_size != UINT64_MAX && t->pax_size != 0)
				return stop(t);	/* a pax hard link with data */
			t->pax_size = UINT64_MAX;
			if (size != 0)
				return stop(t);
			break;
		default:	/* 'S' (GNU sparse), 'D', 'M', 'V', vendor types: stop */
			return stop(t);
		}
		t->scan = data + padded(size);
		if (eof && t->scan > at + n && t->ncut == 0)
			return stop(t);	/* the archive ends inside that entry */
	}
	return TARCUT_NONE;
}
