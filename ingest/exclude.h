/*
 * exclude.h - the --exclude patterns of an ingest: matching an entry, and keeping the
 * patterns in the source record (store_source.excludes) so that the gate
 * (defrag-verify --against, compare.h) skips what the ingest left out, matched the same
 * way.
 *
 * A pattern matches an entry as ingest_exclude_match() says (ingest.h: rsync's anchored
 * "/PAT" and directory-only "PAT/" forms included), the same for the walker and the gate.
 *
 * Threads: stateless. Errors: 0 or -ENOMEM.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_EXCLUDE_H
#define DFS_INGEST_EXCLUDE_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/*
 * Is the entry at @path (source-relative, NUL-terminated), named @name, excluded by one
 * of the @n patterns @pats (borrowed)? @is_dir: the entry is a directory (for patterns
 * that only match directories).
 */
bool excl_match(const char *const *pats, size_t n, const char *path, const char *name,
		bool is_dir);

/*
 * The @n patterns @pats packed as the source record keeps them (each followed by a NUL)
 * into @out, whose old bytes are freed; no patterns give an empty string. 0 or -ENOMEM
 * (@out then empty).
 */
int excl_pack(const char *const *pats, size_t n, struct store_str *out);

/*
 * The patterns of a packed string @s (borrowed) as an array of pointers into it, in
 * *@pats (returned, free with free(); valid while @s is), their number in *@n.
 * 0 or -ENOMEM (*@pats NULL, *@n 0).
 */
int excl_unpack(const struct store_str *s, const char ***pats, size_t *n);

#endif
