/*
 * witness.h - the witnesses of an organized directory (docs/FS.md, "Access through the
 * organized tree").
 *
 * With -o allow_other a user may see an organized directory only when it leads to
 * something the user may reach: one of its own origins, or one of an entry's below it.
 * Reaching an origin "NAME:/a/b/leaf" means searching every directory of its parent
 * prefix "NAME:/a/b" (the source root NAME, a, a/b); whoever reaches a deeper prefix
 * reaches every shallower one of the same branch, so a directory needs only the highest
 * parent prefixes of the origins below it: its witnesses. The organizer stores them in
 * the directory's record as the attribute STORE_WITNESS_XATTR (hidden from readers, as
 * every user.defrag.* attribute of an organized record is), one representative origin
 * per prefix; the mount checks them as it checks an entry's origins.
 *
 * Value: u8 version (1), u8 flags (bit 0: "partial": there were more than
 * STORE_WITNESS_MAX witnesses, or STORE_WITNESS_MAX_BYTES bytes of them, and those stored
 * are some of them; for a caller none of them lets in, the mount looks below), varint
 * count, then count times (varint length, witness bytes), sorted by bytes. A witness is
 * written as an origin whose parent prefix is the witness: "PREFIX/.", or "NAME:/" for a
 * source root. The decoder rejects another version (-EPROTONOSUPPORT), unknown flags,
 * and truncated, trailing, unsorted or malformed bytes (-EBADMSG).
 *
 * Threads: stateless.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_WITNESS_H
#define DFS_STORE_WITNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

#define STORE_WITNESS_XATTR "user.defrag.reach"
#define STORE_WITNESS_VERSION 1u
#define STORE_WITNESS_MAX 32u
#define STORE_WITNESS_MAX_BYTES 16384u
#define STORE_WITNESS_PARTIAL 0x01u

/* A decoded value: pointers into the attribute's bytes (borrowed). */
struct store_witnesses {
	bool partial;
	size_t n;
	const uint8_t *p[STORE_WITNESS_MAX];
	size_t len[STORE_WITNESS_MAX];
};

/* @in's witness attribute, or NULL: an organized directory built before witnesses. */
const struct store_str *store_witness_find(const struct store_inode *in);
int store_witness_decode(const uint8_t *p, size_t n, struct store_witnesses *out);
/* @v: @n witnesses, sorted by bytes, without duplicates; @partial: see above. */
int store_witness_encode(bool partial, const struct store_str *v, size_t n, struct dfs_buf *out);

/*
 * The length of an origin's parent prefix: "NAME:/a/b" -> "NAME:/a", "NAME:/b" ->
 * "NAME:" (the source root), and 0 for "NAME:/" itself (only /.sources is above it).
 * (size_t)-1 for bytes that are no origin.
 */
size_t store_origin_parent_len(const uint8_t *o, size_t len);

/* Does whoever reaches parent prefix @a (length @alen, 0: everyone) reach @b's too? */
bool store_prefix_covers(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
