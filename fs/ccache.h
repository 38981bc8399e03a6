/*
 * ccache.h - a bounded cache of decompressed chunks for the read path.
 *
 * Entries are keyed by chunk id and refcounted: ccache_acquire hands out a reference
 * (the bytes stay valid until ccache_put), eviction drops only entries nobody holds,
 * least recently used first, so resident bytes stay under the cap plus what readers
 * hold at the moment.
 *
 * Threads: every function is thread-safe (one mutex; bytes are copied outside it).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_CCACHE_H
#define DFS_FS_CCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/fp.h"

struct ccache;
struct ccache_entry;

/* @cap: bytes of chunk data kept (0: an entry goes when its last reference does). */
int ccache_new(size_t cap, struct ccache **out);
void ccache_free(struct ccache *cc);
enum { CCACHE_HIT, CCACHE_CLAIMED, CCACHE_BUSY };
/*
 * A reference to chunk @id in *out (release with ccache_put()). CCACHE_HIT: its bytes are
 * there. CCACHE_CLAIMED: nobody had them or was loading them; the caller is now the one
 * loader and ends with ccache_fill() or ccache_abandon(), while other callers wait for it
 * (@wait) or get CCACHE_BUSY and no reference. -ENOMEM when out of memory.
 */
int ccache_acquire(struct ccache *cc, const struct fp256 *id, bool wait,
		   struct ccache_entry **out);
/* Gives a claimed entry its bytes (@data transferred) and wakes those waiting for it;
 * the caller's reference stays. */
void ccache_fill(struct ccache *cc, struct ccache_entry *e, uint8_t *data, size_t len);
/* The load of a claimed entry failed: it leaves the cache, waiters try for themselves;
 * drops the caller's reference. */
void ccache_abandon(struct ccache *cc, struct ccache_entry *e);
/* Is chunk @id cached or being loaded? */
bool ccache_has(struct ccache *cc, const struct fp256 *id);
void ccache_put(struct ccache *cc, struct ccache_entry *e);
/*
 * ccache_put for @n bytes of the entry served to a sequential reader: once streams have
 * been served as many bytes as it holds, the last holder takes it out of the cache, so
 * that a stream does not fill the cache with chunks it will not read again (their memory
 * goes back to the heap, where the next chunk's buffer finds it, warm, instead of faulting
 * in fresh pages). Counted in bytes, not "read to its end": the kernel has several reads
 * of a stream in flight and they are served in any order.
 */
void ccache_put_streamed(struct ccache *cc, struct ccache_entry *e, size_t n);
/* The bytes (borrowed, valid until ccache_put). */
const uint8_t *ccache_data(const struct ccache_entry *e, size_t *len);
/* Resident bytes and entries (for tests and statistics). */
size_t ccache_bytes(struct ccache *cc);
size_t ccache_count(struct ccache *cc);

#endif
