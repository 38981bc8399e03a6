/*
 * hset.h - in-memory sets and maps for one-run bookkeeping: hash tables (the organizer's)
 * for a set of non-zero u64 (inode numbers), a map from them to u64 and a map from byte
 * strings (paths) to u64; and a sorted set of 256-bit ids (defrag-verify's damaged chunks
 * and contents, the chunks its repair appended again).
 *
 * Open addressing with linear probing, power-of-two capacity, grown at 1/2 load; nothing
 * is ever removed. Keys of the path map are copied and compared in full (XXH3 only picks
 * the slot), so a hash collision costs a probe, never a wrong answer.
 *
 * Threads: a table belongs to one thread.
 * Errors: inserts return 0 or -ENOMEM (the table is unchanged then).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_HSET_H
#define DFS_STORE_HSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp.h"

/*
 * A 64-bit mix (splitmix64's finaliser): every input bit moves every output bit, so dense
 * keys (inode numbers) spread over the slots. Also a key maker for callers.
 */
uint64_t hset_mix64(uint64_t x);

struct u64set {
	uint64_t *v;	/* 0 = empty slot */
	size_t cap, n;
};

/* Adds @key (non-zero). 1 if it was new, 0 if already there, -ENOMEM. */
int u64set_add(struct u64set *s, uint64_t key);
bool u64set_has(const struct u64set *s, uint64_t key);
void u64set_release(struct u64set *s);

struct u64map {
	uint64_t *k;	/* 0 = empty slot */
	uint64_t *v;
	size_t cap, n;
};

/* Sets @key (non-zero) to @val. */
int u64map_put(struct u64map *m, uint64_t key, uint64_t val);
/* The value of @key into *val: true if present. */
bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val);
void u64map_release(struct u64map *m);

struct pathmap_ent {
	uint64_t h;
	uint8_t *key;	/* NULL = empty slot */
	size_t len;
	uint64_t val;
};

struct pathmap {
	struct pathmap_ent *v;
	size_t cap, n;
};

/* Sets @key to @val (replacing a previous value). */
int pathmap_put(struct pathmap *m, const uint8_t *key, size_t len, uint64_t val);
/* The value of @key into *val: true if present. */
bool pathmap_get(const struct pathmap *m, const uint8_t *key, size_t len, uint64_t *val);
void pathmap_release(struct pathmap *m);

/*
 * A set of ids: an array appended to in any order, sorted (and its duplicates dropped) by
 * the first lookup after an add, so a run of adds then a run of lookups costs one sort.
 * After a lookup, v[0..n) holds each id once, in memcmp order. Zero-initialise it.
 */
struct fpset {
	struct fp256 *v;	/* owned */
	size_t n, cap;
	bool sorted;
};

/* Adds @id (copied). 0, or -ENOMEM (the set is unchanged then). */
int fpset_add(struct fpset *s, const struct fp256 *id);
/* Is @id in @s? Sorts @s first if an add came since the last lookup (so not const). */
bool fpset_has(struct fpset *s, const struct fp256 *id);
/* Frees the array; @s is empty and usable again. */
void fpset_release(struct fpset *s);

#endif
