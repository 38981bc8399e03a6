/*
 * tarcut.h - where an uncompressed tar archive forces chunk cuts: at the start and at the
 * end of each member's data, so that a member's content is cut by FastCDC from its own
 * first byte, exactly as the same content stored as a loose file is (and shares its
 * chunks). The header blocks, GNU long names, pax headers, padding and the members
 * below the floor lie between those cuts and are cut by FastCDC as any bytes are.
 *
 * A file is a tar when its first 512-byte block is a ustar header (POSIX "ustar\0" or
 * GNU "ustar " magic at offset 257) whose checksum is right; its name is never looked at.
 * Members are followed header by header; at anything not understood (a bad checksum or
 * magic, a sparse member, a link or device with data, an unknown entry type, a pax header
 * larger than TARCUT_PAX_MAX or naming a GNU sparse map, the archive's end, a truncated
 * header) the finder stops for the rest of the file: the bytes after are cut as plain
 * FastCDC. The cuts depend only on the file's bytes and the floor (deterministic).
 *
 * Threads: a struct tarcut belongs to one reader. Errors: none (a file that is not a
 * tar, or stops being one, just gets no more forced cuts).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_TARCUT_H
#define DFS_INGEST_TARCUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TARCUT_BLOCK 512u
#define TARCUT_PAX_MAX (256u << 10)	/* a larger pax header stops the finder */
/* The bytes past the caller's horizon that tarcut_next may have to see (a header, and the
 * data of a pax header before it is skipped). */
#define TARCUT_LOOKAHEAD (TARCUT_PAX_MAX + 2 * TARCUT_BLOCK)
#define TARCUT_NONE UINT64_MAX

struct tarcut {
	bool active;		/* false: no more forced cuts in this file */
	uint32_t floor;		/* cuts around members of at least this many bytes */
	uint64_t scan;		/* the offset of the next header block not parsed yet */
	uint64_t cut[2];	/* a member's data start and end, when pending */
	unsigned ncut, icut;
	uint64_t pax_size;	/* a pax "size" for the next member; UINT64_MAX: none */
};

/* Is @p (@n bytes from a file's offset 0) the start of a tar archive? */
bool tarcut_is_tar(const uint8_t *p, size_t n);

/*
 * Starts the finder on a file whose first bytes are @p (@n bytes from offset 0): active
 * when @floor > 0 and tarcut_is_tar(@p, @n). @floor 0 turns the finder off.
 */
void tarcut_start(struct tarcut *t, uint32_t floor, const uint8_t *p, size_t n);

/*
 * The next forced cut after offset @at, given the file's bytes @p[0..@n) from @at (@eof:
 * the file ends at @at + @n). Only cuts before @at + @horizon are told for sure: a value
 * >= @at + @horizon means "none before @at + @horizon". TARCUT_NONE: none any more.
 * Unless @eof, @n must be at least @horizon + TARCUT_LOOKAHEAD, and @at must not pass a
 * cut the finder returned (the caller cuts there).
 */
uint64_t tarcut_next(struct tarcut *t, uint64_t at, const uint8_t *p, size_t n, bool eof,
		     uint64_t horizon);

#endif
