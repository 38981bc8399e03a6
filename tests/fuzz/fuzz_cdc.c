/*
 * fuzz_cdc.c - the chunker on arbitrary bytes and parameters from the input: chunks
 * tile the input exactly, respect min/max (but the last), and cutting the same bytes in
 * a stream of small windows gives the same boundaries.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/cdc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdc_params p = { 1024, 4096, 16384, 2, 0 };
	size_t off = 0, cuts[4096], nc = 0;

	if (size && data[0] & 1)
		p.norm_level = data[0] % 4;
	if (cdc_params_check(&p) < 0)
		abort();
	while (off < size && nc < 4096) {
		size_t n = cdc_next(&p, data + off, size - off, 1);

		if (n == 0 || n > size - off || n > p.max_size)
			abort();
		if (n < p.min_size && off + n != size)
			abort();
		off += n;
		cuts[nc++] = off;
	}
	/* streaming: feed at most max_size + 100 bytes at a time */
	{
		size_t pos = 0, k = 0;

		while (pos < size && k < nc) {
			size_t avail = size - pos, win = p.max_size + 100;
			int eof = avail <= win;
			size_t n = cdc_next(&p, data + pos, eof ? avail : win, eof);

			if (n == 0 || pos + n != cuts[k])
				abort();
			pos += n;
			k++;
		}
	}
	return 0;
}
