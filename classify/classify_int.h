/*
 * classify_int.h - classify/'s private declarations.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_CLASSIFY_INT_H
#define DFS_CLASSIFY_CLASSIFY_INT_H

/* The built-in rules (YAML), parsed after the user's. */
extern const char classify_default_rules[];

#endif
