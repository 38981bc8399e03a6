/*
 * cdc.c - FastCDC (Xia et al., USENIX ATC'16): a Gear rolling hash, cut-point skipping
 * below min_size, and normalized chunking (a stricter mask before avg_size, a looser one
 * after), which narrows the chunk size distribution around avg_size.
 *
 * The Gear table is derived from a fixed seed (splitmix64), so boundaries depend only on
 * the bytes and the store's (min, avg, max, norm) parameters.
 *
 * Threads: the table is built once (pthread_once); cdc_next is reentrant.
 *
 * SPDX-License-Identifier: MIT
 */
#include "cdc.h"

#include <errno.h>
#include <pthread.h>

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void gear_init(void)
{
	uint64_t x = 0x64656672616766ull;	/* "defragf" */

	for (int i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
}

void cdc_params_default(struct cdc_params *p)
{
	p->min_size = 32u << 10;
	p->avg_size = 128u << 10;
	p->max_size = 512u << 10;
	p->norm_level = 2;
	p->tar_floor = CDC_TAR_FLOOR_DEFAULT;
}

int cdc_params_check(const struct cdc_params *p)
{
	if (p->min_size < CDC_MIN_LIMIT || p->max_size > CDC_MAX_LIMIT ||
	    p->min_size > p->avg_size || p->avg_size > p->max_size ||
	    (p->avg_size & (p->avg_size - 1)) || p->norm_level > 3 ||
	    p->avg_size < (1u << (p->norm_level + 8)))
		return -EINVAL;
	return 0;
}

/* A mask of @bits one-bits in the high end of the word: the Gear hash shifts left, so
 * its high bits depend on the most bytes of the window. */
static uint64_t high_mask(unsigned bits)
{
	if (bits == 0)
		return 0;
	if (bits >= 64)
		return ~0ull;
	return ((1ull << bits) - 1) << (64 - bits);
}

size_t cdc_next(const struct cdc_params *p, const uint8_t *data, size_t len, int eof)
{
	unsigned bits = 0;
	uint64_t mask_s, mask_l, h = 0;
	size_t i, n, normal;

	pthread_once(&gear_once, gear_init);
	while ((1u << bits) < p->avg_size)
		bits++;
	mask_s = high_mask(bits + p->norm_level);
	mask_l = high_mask(bits - p->norm_level);
	if (len <= p->min_size)
		return eof ? len : 0;
	n = len < p->max_size ? len : p->max_size;
	normal = n < p->avg_size ? n : p->avg_size;
	for (i = p->min_size; i < normal; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & mask_s))
			return i + 1;
	}
	for (; i < n; i++) {
		h = (h << 1) + gear[data[i]];
		if (!(h & mask_l))
			return i + 1;
	}
	if (n == p->max_size)
		return n;
	return eof ? len : 0;
}
