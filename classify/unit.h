/*
 * unit.h - units: directories whose inside must stay whole (a git repository, a database
 * data directory, a package cache ...), recognised by their markers (docs/CLASSIFY.md).
 *
 * Threads: stateless; the tree callbacks decide.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_UNIT_H
#define DFS_CLASSIFY_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify.h"

struct unit_child {
	const uint8_t *name;
	size_t len;
	uint32_t mode;
	uint64_t size;
	uint64_t handle;
};

/*
 * The kind of unit the directory @name (child of @parent; both may be empty) is, given its
 * sorted children @kids, or NULL. May list a child directory or read the first bytes of a
 * marker file through @t.
 */
/* Is @kind one unit_detect() can return (a rule's 'unit:' must be)? */
bool unit_kind_known(const char *kind);
/* Every kind, sorted (borrowed, static), their number in *@n. */
const char *const *unit_kind_list(size_t *n);

const char *unit_detect(const struct cls_tree *t, const uint8_t *name, size_t nlen,
			const uint8_t *parent, size_t plen, const struct unit_child *kids,
			size_t n);

#endif
