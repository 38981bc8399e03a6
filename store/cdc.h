/*
 * cdc.h - FastCDC content-defined chunking (Gear hash, normalized chunking).
 *
 * Cut points depend only on the bytes and the parameters, never on where the bytes
 * sit or what category a file has, so the same bytes cut the same way everywhere.
 * The Gear table is fixed (derived from a constant seed), so a store's parameters
 * (min, avg, max) fully determine its boundaries; they are recorded in the store
 * config. tar_floor is not the chunker's: it tells the ingest's readers to force cuts
 * around the members of tar archives (ingest/tarcut.h), and travels with the rest.
 *
 * Threads: stateless; any thread.
 * Errors: cdc_params_check returns 0 or -EINVAL.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_CDC_H
#define DFS_STORE_CDC_H

#include <stddef.h>
#include <stdint.h>

#define CDC_MIN_LIMIT (1u << 10)	/* 1 KiB */
#define CDC_MAX_LIMIT (1u << 26)	/* 64 MiB */
/* The default tar_floor of a new store (measured: docs/BENCHMARKS.md, "Tar members"). */
#define CDC_TAR_FLOOR_DEFAULT 2049u	/* the default inline_max + 1: a smaller loose file
					 * is inline, so it shares no chunk anyway */

struct cdc_params {
	uint32_t min_size;
	uint32_t avg_size;	/* a power of two */
	uint32_t max_size;
	uint32_t norm_level;	/* normalized chunking level, 0..3 (2 recommended) */
	uint32_t tar_floor;	/* cuts around tar members of >= this many bytes; 0: none
				 * (a store's config without the line: made before it) */
};

/* The store default (chosen by measurement, see docs/BENCHMARKS.md). */
void cdc_params_default(struct cdc_params *p);
/* 0 if min <= avg <= max, avg a power of two, limits respected; else -EINVAL. */
int cdc_params_check(const struct cdc_params *p);

/*
 * Finds the next cut point in @data[0..len).
 * @return the length of the next chunk: a value in [min_size, max_size] when len >= max_size;
 * when len < max_size and @eof is false, returns 0 if no cut point was found yet (the caller
 * must supply more bytes); when @eof is true, returns a length <= len (the whole rest if no
 * cut point is found). Never returns more than len or max_size.
 */
size_t cdc_next(const struct cdc_params *p, const uint8_t *data, size_t len, int eof);

#endif
