/*
 * mime.h - MIME types from the first bytes of a file (libmagic; the only user of it).
 *
 * Threads: a struct mime belongs to one thread (libmagic handles are not thread-safe).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_MIME_H
#define DFS_CLASSIFY_MIME_H

#include <stddef.h>

#define MIME_HEAD 8192	/* bytes looked at */

struct mime;

int mime_new(struct mime **out);
void mime_free(struct mime *m);
/* The MIME type of @buf (borrowed until the next call), "application/octet-stream" when
 * unknown. */
const char *mime_of(struct mime *m, const void *buf, size_t len);

#endif
