/*
 * hist.h - /.history: the older snapshots of each source, read-only.
 *
 * A snapshot shares unchanged inodes with the newer ones (ingest/commit.c copies only what
 * changed), and Linux refuses one directory inode under two parents, so an entry reached
 * through /.history gets a FUSE inode of its own: HIST_BIT | slot << HIST_SLOT_SHIFT |
 * index inode, where the slot (1 ..) names one snapshot (source id, generation) for the
 * life of the mount. Slot 0 holds the virtual directories: HIST_INO is /.history and
 * HIST_INO | source id is /.history/NAME, which lists that source's snapshots by UTC time
 * (ISO 8601 basic, 20261206T124500Z). Index inodes at or above 2^HIST_SLOT_SHIFT are not
 * reachable through /.history (-EOVERFLOW).
 *
 * Threads: thread-safe (the slot table has a lock).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_HIST_H
#define DFS_FS_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define HIST_NAME ".history"
#define HIST_BIT (1ull << 63)
#define HIST_SLOT_SHIFT 40
#define HIST_INO HIST_BIT

struct hist;

int hist_new(struct store *st, struct hist **out);
void hist_free(struct hist *h);

static inline bool hist_is(uint64_t ino)
{
	return (ino & HIST_BIT) != 0;
}

/* The index inode a FUSE inode reads (itself outside /.history; 0 for a virtual one). */
uint64_t hist_index_ino(uint64_t ino);
/* The FUSE inode of index inode @child seen below /.history entry @parent. */
int hist_child(uint64_t parent, uint64_t child, uint64_t *out);
/* The record of FUSE inode @ino (virtual directories made up; ->ino is @ino). */
int hist_get_inode(struct hist *h, uint64_t ino, struct store_inode *out);
/* Looks @name up in a virtual directory @parent (/.history or /.history/NAME). */
int hist_lookup(struct hist *h, uint64_t parent, const char *name, uint64_t *child);
/*
 * After a catch-up (live follow): @gone(arg, parent FUSE inode, name) for each name the
 * kernel may cache that now names something else or nothing (the caller drops the cached
 * entry): /.sources/NAME whose root a re-ingest copied (copy-on-write) or that was
 * forgotten, and the snapshots and sources of /.history dropped since (defrag-forget);
 * a dropped snapshot's inodes answer -ENOENT from then on. Live follow's thread only.
 */
int hist_refresh(struct hist *h, void (*gone)(void *arg, uint64_t parent, const char *name),
		 void *arg);
/* Lists virtual directory @dir: @fn(arg, name, len, FUSE inode, DT_DIR) per entry. */
int hist_list(struct hist *h, uint64_t dir,
	      int (*fn)(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type),
	      void *arg);

#endif
