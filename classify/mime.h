/*
 * mime.h - MIME types from the first bytes of a file (libmagic; the only user of it).
 *
 * Threads: a struct mime belongs to one thread (libmagic handles are not thread-safe).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_MIME_H
#define DFS_CLASSIFY_MIME_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_HEAD 8192	/* bytes looked at */

/*
 * What the quick pass answers when it recognises no format: the exact answer would be
 * "application/octet-stream" or a type of the text analysis (text/..., and a few
 * application/... types such as application/javascript); and what it answers for an
 * executable or script (mime_quick_known). Stored in the index like any MIME type; the
 * organizer computes the exact type when a rule needs more.
 */
#define MIME_NOT_BINARY "x-defrag/not-binary"

struct mime;

int mime_new(struct mime **out);
void mime_free(struct mime *m);
/*
 * The MIME type of @buf (borrowed until the next call), "application/octet-stream" when
 * unknown. Without @exact, only libmagic's format tests run (not its text analysis, which
 * costs about 1.5 ms per text file against 0.1 ms): a format found is the same answer as
 * with @exact, and anything else is MIME_NOT_BINARY. ELF files and "#!/" scripts
 * (mime_quick_known) are MIME_NOT_BINARY in the quick pass without libmagic.
 */
const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact);
/*
 * Is the quick pass's answer for @buf MIME_NOT_BINARY whatever libmagic says, so that
 * mime_of() gives it without calling libmagic? True for ELF files and "#!/" scripts,
 * which libmagic's format tests never type as one of mime_glob_binary_only()'s types.
 * Callers that cache answers by the bytes can skip hashing them.
 */
bool mime_quick_known(const void *buf, size_t len);
/*
 * Can a glob on MIME types be decided on MIME_NOT_BINARY (as no match)? Yes when it can
 * only match types of the format tests: image/, video/, audio/, font/, model/ and
 * application/pdf (the image formats written as text that only the text analysis finds,
 * ASCII PBM/PGM/PPM and XFig, always get the full analysis). Anything else needs the
 * exact type.
 */
bool mime_glob_binary_only(const char *glob);

#endif
