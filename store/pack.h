/*
 * pack.h - append-only pack files of self-describing records.
 *
 * A pack is a header (magic "DFSPACK\0", version, pack id, a copy of the store config,
 * XXH3 of the header) followed by records:
 *
 *     u32 magic "DFSR" | u8 version | u8 type | u8 codec | u8 shift |
 *     u32 raw_len | u32 stored_len | u8 id[32] | u64 xxh3 | payload[stored_len]
 *
 * A CHUNK record's id is the SHA-256 of its raw bytes. A META record's payload is a
 * zstd-compressed log of the index operations of one commit (its id holds the commit
 * sequence number), so the whole index can be rebuilt from config + packs.
 * All integers are little-endian.
 *
 * Version 1: shift is 0; the checksum covers the 48 header bytes before it and the
 * payload. Version 2 (a CHUNK stored raw, in blocks): shift (12..20) gives the block
 * size, 1 << shift; the payload is a table of one u64 XXH3 per block of the raw bytes,
 * then the raw bytes (stored_len = 8 * ceil(raw_len / block) + raw_len); the record's
 * checksum covers the 48 header bytes and the table, and each block is checked against
 * its entry, so a part of the chunk can be read and checked without the rest
 * (pack_read_part). A decoder rejects any other version (-EPROTONOSUPPORT).
 *
 * Threads: functions are stateless; callers serialise appends to one pack.
 * Errors: 0/-errno. -EBADMSG: not a valid record or header (corrupt, torn); -EPROTONOSUPPORT:
 * a record or pack of an unknown version.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_STORE_PACK_H
#define DFS_STORE_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "fp.h"

#define PACK_MAGIC "DFSPACK"	/* 8 bytes with its NUL */
#define PACK_VERSION 1u
#define PACK_REC_MAGIC 0x52534644u	/* "DFSR" */
#define PACK_REC_VERSION 1u
#define PACK_REC_VERSION_BLOCKS 2u
#define PACK_BLOCK_SHIFT 14u		/* the writer's blocks: 16 KiB */
#define PACK_BLOCK_SHIFT_MIN 12u
#define PACK_BLOCK_SHIFT_MAX 20u
#define PACK_REC_HDR 56u
#define PACK_REC_MAX (64u << 20)	/* largest payload accepted */
#define PACK_CONFIG_MAX 4096u

enum pack_rec_type {
	PACK_REC_CHUNK = 1,
	PACK_REC_META = 2,
};

struct pack_rec {
	uint8_t type;
	uint8_t codec;
	uint8_t shift;		/* 0: version 1; else a version 2 record's block shift */
	uint32_t raw_len;
	uint32_t stored_len;
	struct fp256 id;
};

/* Bytes of a version 2 record's block table (0 for version 1). */
static inline uint32_t pack_rec_table_len(const struct pack_rec *r)
{
	if (!r->shift)
		return 0;
	return (uint32_t)((((uint64_t)r->raw_len + (1u << r->shift) - 1) >> r->shift) * 8);
}

/* The record's data (what the codec made: compressed or raw bytes) inside @payload. */
static inline const uint8_t *pack_rec_data(const struct pack_rec *r, const uint8_t *payload,
					   uint32_t *len)
{
	*len = r->stored_len - pack_rec_table_len(r);
	return payload + pack_rec_table_len(r);
}

/*
 * Fills @table (8 bytes a block) with the checksums of @data's blocks of 1 << @shift
 * bytes: a version 2 record's table.
 */
void pack_blocks_table(const void *data, uint32_t len, unsigned shift, uint8_t *table);

/* A META record's id holds its commit sequence number, little-endian in its first 8 bytes. */
static inline void pack_meta_seq_set(struct pack_rec *r, uint64_t seq)
{
	for (int i = 0; i < 8; i++)
		r->id.b[i] = (uint8_t)(seq >> (8 * i));
}

static inline uint64_t pack_meta_seq(const struct pack_rec *r)
{
	uint64_t seq = 0;

	for (int i = 7; i >= 0; i--)
		seq = (seq << 8) | r->id.b[i];
	return seq;
}

/* "STORE/packs/NN/00000123.pack" into @buf (NN = low byte of the id, hex). */
int pack_path(const char *store_dir, uint32_t id, char *buf, size_t len);
/* Is @name a pack's file name, "XXXXXXXX.pack" (8 hex digits)? Its id into *@id. */
bool pack_name_parse(const char *name, uint32_t *id);
/* "STORE/packs/NN" */
int pack_dir_path(const char *store_dir, uint32_t id, char *buf, size_t len);

/*
 * Where a pack's bytes are read from: the descriptor @fd (>= 0, read with sio_pread), or
 * else @pread(@arg, @id, ...) (a pack on a remote backend, read through the pack cache:
 * store.c). @pread returns bytes read (short only at the end of the pack) or -errno.
 */
struct pack_src {
	int fd;
	uint32_t id;
	ssize_t (*pread)(void *arg, uint32_t id, void *buf, size_t len, uint64_t off);
	void *arg;
};

static inline struct pack_src pack_src_fd(int fd)
{
	return (struct pack_src){ .fd = fd };
}

/* Reads up to @len bytes at @off from @src. Bytes read or -errno. */
ssize_t pack_src_pread(const struct pack_src *src, void *buf, size_t len, uint64_t off);

/*
 * Encodes a record header for @payload (version 2 when @r->shift: only the payload's
 * table, its first pack_rec_table_len bytes, is read).
 */
void pack_rec_encode(const struct pack_rec *r, const void *payload, uint8_t hdr[PACK_REC_HDR]);
/* Decodes and sanity-checks a header (not the checksum). */
int pack_rec_decode(const uint8_t hdr[PACK_REC_HDR], struct pack_rec *r);
/* Checks the record over @hdr and its whole @payload (version 2: table and every block). */
bool pack_rec_check(const uint8_t hdr[PACK_REC_HDR], const void *payload, size_t len);

/* Builds the pack header for pack @id with the store config bytes into @out. */
int pack_header_encode(uint32_t id, const void *config, size_t config_len, struct dfs_buf *out);
/*
 * Reads and checks the header of the pack @src.
 * @param[out] id, header_len; @param[out] config (optional) receives the config copy.
 */
int pack_header_read(const struct pack_src *src, uint32_t *id, uint64_t *header_len, struct dfs_buf *config);

/*
 * Reads the record at @off: header and payload (into @payload), checking the checksum.
 * @return 0, -EBADMSG (logged with @pack_id and offset), -EIO.
 */
int pack_read_record(const struct pack_src *src, uint32_t pack_id, uint64_t off, struct pack_rec *r,
		     struct dfs_buf *payload);

/*
 * Reads the record at @off whose payload the index says is @stored_len bytes into
 * @payload (capacity >= @stored_len) with one read: header, lengths and checksum checked.
 * @return 0, -EBADMSG (logged with @pack_id and offset, also when the record's stored
 * length is not @stored_len), -EIO.
 */
int pack_read_record_into(const struct pack_src *src, uint32_t pack_id, uint64_t off,
			  uint32_t stored_len, struct pack_rec *r, void *payload);

/*
 * A chunk record whose raw bytes go to @dst (capacity >= @raw_len), with one read: a
 * version 1 raw record (@stored_len == @raw_len, as pack_read_record_into) or a version
 * 2 one (@stored_len - @raw_len bytes of table), checked whole.
 * @return 0, -EBADMSG (logged, also when the record's lengths are not these), -EIO.
 */
int pack_read_chunk_into(const struct pack_src *src, uint32_t pack_id, uint64_t off,
			 uint32_t stored_len, uint32_t raw_len, struct pack_rec *r, void *dst);
/*
 * Bytes [@from, @from + @len) of the raw bytes of the version 2 record at @off (the
 * index says @stored_len and @raw_len) into @dst: reads the header and table, checks
 * them, then reads and checks only the blocks the range touches: in one read with the
 * header when they start within @one_read bytes of the record's raw bytes (PACK_ONE_READ
 * for a disk without seeks; SIZE_MAX: always, for a disk whose second request costs a
 * seek), else two. No byte reaches @dst unchecked.
 * @return 0, -EBADMSG (logged; also a version 1 record, or lengths not these), -EINVAL
 * (a range past raw_len), -ENOMEM, -EIO.
 */
#define PACK_ONE_READ (32u << 10)
int pack_read_part(const struct pack_src *src, uint32_t pack_id, uint64_t off,
		   uint32_t stored_len, uint32_t raw_len, uint64_t from, size_t len,
		   size_t one_read, struct pack_rec *r, void *dst);
/*
 * Walks the records from @off until the end of the file or the first invalid record.
 * Calls @fn for each valid record (payload borrowed for the call). A non-zero return of
 * @fn stops the walk and is returned.
 * @param[out] end  offset just past the last valid record
 * @param[out] torn true if bytes past @end do not form a valid record
 */
int pack_scan(const struct pack_src *src, uint32_t pack_id, uint64_t off,
	      int (*fn)(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload),
	      void *arg, uint64_t *end, bool *torn);

#endif
