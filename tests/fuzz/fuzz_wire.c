/*
 * fuzz_wire.c - the remote source protocol's decoder (ingest/wire.c) on arbitrary bytes:
 * a stream split into frames, each decoded by its type's decoder; it must accept or
 * reject, never crash, leak or read out of bounds. The seeds are made by
 * tests/fuzz/wire_seeds.sh from a real conversation (never a committed corpus).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>

#include "ingest/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int n = wire_decode_all(data, size);

	/* a frame is at least its header: more frames than that is a decoder bug */
	if (n > 0 && (size_t)n > size / WIRE_HDR)
		abort();
	return 0;
}
