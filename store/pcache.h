/*
 * pcache.h - a bounded on-disk cache of remote packs' bytes.
 *
 * Each pack read through the cache has a sparse file DIR/XXXXXXXX.pack, as long as the
 * pack, into which blocks of PCACHE_BLOCK bytes are written as they are fetched from the
 * backend (one ranged GET per missing run of blocks). A block is present when the file
 * has data there (SEEK_DATA/SEEK_HOLE): so the cache survives a restart without an index
 * of its own, and a block torn by a crash reads as a hole, or as bytes whose record
 * checksum fails (pcache_forget then drops them and the caller reads once more).
 * Packs are immutable, so cached bytes never go stale; a pack removed from the backend
 * (gc) is dropped with pcache_drop.
 *
 * The bytes kept (allocated blocks of every file) stay under the size given: past it,
 * the files of the least recently read packs that no reader holds are removed.
 *
 * Threads: all functions are thread-safe; fetches of one pack are serialised, of
 * different packs run in parallel. Errors: the backend's (pback.h), or -errno of the
 * cache files.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_PCACHE_H
#define DFS_STORE_PCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pback.h"

#define PCACHE_BLOCK (1u << 20)

struct pcache;

/*
 * Opens (creating it, mode 0700) the cache directory @dir for the packs of backend @b
 * (borrowed; must outlive the cache), keeping at most @max_bytes.
 */
int pcache_open(const char *dir, uint64_t max_bytes, struct pback *b, struct pcache **out);
void pcache_close(struct pcache *c);
/* The size of pack @id (asked once from the backend, then the cache file's). */
int pcache_size(struct pcache *c, uint32_t id, uint64_t *size);
/* Up to @len bytes of pack @id at @off (short only at its end), fetching what is missing. */
ssize_t pcache_read(struct pcache *c, uint32_t id, void *buf, size_t len, uint64_t off);
/* Forgets the cached bytes of pack @id in [@off, @off + @len) (they failed a check). */
void pcache_forget(struct pcache *c, uint32_t id, uint64_t off, size_t len);
/* Drops pack @id's file (the pack left the backend). */
void pcache_drop(struct pcache *c, uint32_t id);
/* Bytes fetched from the backend and bytes served from the cache since open. */
void pcache_stats(struct pcache *c, uint64_t *fetched, uint64_t *hit);

#endif
