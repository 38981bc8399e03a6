/*
 * warm.h - the index's table files kept in the page cache while the mount is used.
 *
 * A cold index costs a random 4 KiB read for nearly every chunk a reader meets (its
 * location), one after the other, beside the pack reads. The table files are small
 * beside the packs they describe, so they are read whole, in large requests, in the
 * background, when requests come and the files are not (or no longer) in the page cache.
 *
 * Threads: warm_poke from any thread (every request: an atomic load, a wake-up at most
 * every 50 ms); one thread of its own does the rest. Errors: warm_start returns 0 or
 * -errno; the rest never fail (a hint: reads work without it).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_WARM_H
#define DFS_FS_WARM_H

#include <stdint.h>

#include "store/store.h"

struct warm;

/*
 * Starts the thread over @st's index: table files are kept in the page cache up to
 * @budget bytes (upper levels first, then smaller files first), and at most twice the
 * bytes that fit are asked of the kernel a minute (memory pressure that evicts them
 * again does not become a steady stream of reads). The files are held open and mapped
 * (address space, not memory: their pages are never touched) until they leave the index.
 */
int warm_start(struct store *st, uint64_t budget, struct warm **out);
/* A request came: the thread checks the files (at most every 50 ms). NULL: no-op. */
void warm_poke(struct warm *w);
/* Stops and joins the thread. NULL is a no-op. */
void warm_stop(struct warm *w);

#endif
