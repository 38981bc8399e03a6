/*
 * enc.h - versioned encodings of index keys and values.
 *
 * Every value starts with a version byte; decoders reject an unknown version with
 * -EPROTONOSUPPORT and malformed bytes (truncated, overlong, trailing garbage) with
 * -EBADMSG, never a crash. Keys put integers big-endian so byte order sorts them.
 *
 *   chunks    sha256[32]                 -> v1 pack, offset, raw_len, stored_len, codec
 *   contents  cid[32]                    -> v1 content head (size, inline bytes or extents)
 *             cid[32] | be32 block       -> v1 extent block
 *   inodes    be64 ino                   -> v1 inode record
 *   dirents   be64 parent | name bytes   -> v1 child ino, dtype
 *   sources   name bytes                 -> v1 source record; v2 = v1 and the --exclude
 *                                           patterns of the last ingest (bytes: each
 *                                           pattern followed by a NUL), written only when
 *                                           there are some; v3 = v2's fields with
 *                                           the patterns always present (maybe empty),
 *                                           then varint count and per snapshot u64
 *                                           time, varint gen, varint root (written
 *                                           when there is a snapshot)
 *   srcmap    be32 source | be64 st_ino  -> v1 ino
 *   packs     be32 pack                  -> v1 committed length, sealed flag
 *   meta      ascii name                 -> v1 u64
 *   meta      "rules"                    -> v1 bytes name, bytes text (store_get_rules)
 *             "cache/" | engine key        -> the engine's own versioned record, derived
 *                                             from the rest (store.h "derived records";
 *                                             not in the op log; organize/align.c)
 *
 * Threads: stateless. Decoded structs own their memory (release with store_*_release).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_ENC_H
#define DFS_STORE_ENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

#define ENC_VERSION 1u
#define ENC_SOURCE_V2 2u	/* a source record with exclude patterns */
#define ENC_SOURCE_V3 3u	/* v2 (patterns possibly none) and the snapshots */
#define ENC_BLOCK_EXTENTS 2048u	/* extents per content block */

int enc_inode(const struct store_inode *in, struct dfs_buf *out);
int dec_inode(uint64_t ino, const void *p, size_t n, struct store_inode *out);

int enc_dirent_val(uint64_t child, uint8_t dtype, struct dfs_buf *out);
int dec_dirent_val(const void *p, size_t n, uint64_t *child, uint8_t *dtype);
/* Key = be64 parent | name. @out must have room for 8 + name_len bytes. */
size_t enc_dirent_key(uint64_t parent, const void *name, size_t name_len, uint8_t *out);

int enc_chunk_loc(const struct store_chunk_loc *l, struct dfs_buf *out);
int dec_chunk_loc(const void *p, size_t n, struct store_chunk_loc *out);

int enc_source(const struct store_source *s, struct dfs_buf *out);
int dec_source(const void *p, size_t n, struct store_source *out);

/* META "rules": v1 | bytes name | bytes text (the rules the store keeps). */
int enc_rules_val(const char *name, const void *text, size_t len, struct dfs_buf *out);
int dec_rules_val(const void *p, size_t n, struct store_rules *out);

int enc_u64_val(uint64_t v, struct dfs_buf *out);
int dec_u64_val(const void *p, size_t n, uint64_t *v);

int enc_pack_val(uint64_t committed, bool sealed, struct dfs_buf *out);
int dec_pack_val(const void *p, size_t n, uint64_t *committed, bool *sealed);

/* One extent as stored in a block. */
struct enc_extent {
	uint64_t len;
	bool hole;
	struct fp256 chunk;
};

/* Content head: nblocks == 0 means the extents are inside the head. */
struct enc_content_head {
	uint64_t size;
	uint64_t data_bytes;
	bool is_inline;
	const uint8_t *inline_data;	/* borrowed from the decoded buffer */
	size_t inline_len;
	uint64_t nextents;
	uint32_t nblocks;
	uint64_t *block_start;	/* owned: file offset of each block's first extent */
	const uint8_t *extents;	/* borrowed: encoded extents when nblocks == 0 */
	size_t extents_len;
};

int enc_content_head(uint64_t size, uint64_t data_bytes, const void *inline_data,
		     size_t inline_len, bool is_inline, uint64_t nextents,
		     const uint64_t *block_start, uint32_t nblocks, const struct enc_extent *ext,
		     size_t next, struct dfs_buf *out);
int dec_content_head(const void *p, size_t n, struct enc_content_head *out);
void enc_content_head_release(struct enc_content_head *h);
int enc_extent_block(const struct enc_extent *ext, size_t next, struct dfs_buf *out);
/* Decodes a block (version byte and count first) or the head's inline extent list. */
int dec_extents(const void *p, size_t n, bool with_header, struct enc_extent **out,
		size_t *count);

/* The op log carried by META records: (cf, op, key, value) tuples. */
/*
 * ENC_OP_DROP (op log version 2 only, defrag-gc): key a chunk id, value the be32 pack id
 * P from which the gc's commit wrote: the chunk's records in packs below P are garbage;
 * a record in pack P or later was written after the gc started (stored again) and stays.
 * An op log holding a DROP is written as version ENC_OPLOG_V2, so a decoder that knows
 * only version 1 refuses the whole commit rather than replaying it in part.
 */
enum enc_op { ENC_OP_PUT = 1, ENC_OP_DEL = 2, ENC_OP_DROP = 3 };
#define ENC_OPLOG_V2 2u
int enc_oplog_begin(uint64_t seq, struct dfs_buf *out);
int enc_oplog_add(struct dfs_buf *out, uint8_t cf, uint8_t op, const void *k, size_t klen,
		  const void *v, size_t vlen);
/* Walks an op log; @fn gets each op (bytes borrowed). */
int dec_oplog(const void *p, size_t n, uint64_t *seq,
	      int (*fn)(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
			const uint8_t *v, size_t vlen),
	      void *arg);

#endif
