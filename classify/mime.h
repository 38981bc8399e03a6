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
 * What the quick pass answers when it finds no binary-only type (mime_type_binary_only):
 * the exact answer would be "application/octet-stream", a type of the text analysis
 * (text/..., and a few application/... types such as application/javascript) or another
 * format's type. Stored in the index like any MIME type; the organizer computes the exact
 * type when a rule needs more.
 */
#define MIME_NOT_BINARY "x-defrag/not-binary"

/*
 * Types decided in C before libmagic (classify/container.c), by both passes alike, so
 * they are binary-only types: a SQLite 3 database (its 16-byte header; libmagic's own
 * name for it) and a tar archive compressed with gzip, bzip2, xz or zstd (shared-mime-info's
 * names; libmagic, with decompression off, says only "application/gzip" and the like).
 */
#define MIME_SQLITE "application/vnd.sqlite3"
#define MIME_TAR_GZIP "application/x-compressed-tar"
#define MIME_TAR_XZ "application/x-xz-compressed-tar"
#define MIME_TAR_BZIP2 "application/x-bzip-compressed-tar"
#define MIME_TAR_ZSTD "application/x-zstd-compressed-tar"

/* One of the types above for @buf (the first bytes of a file), or NULL. */
const char *mime_container(const void *buf, size_t len);
/*
 * Does @buf start as gzip, bzip2, xz or zstd data? Such a head that mime_container()
 * does not type is MIME_NOT_BINARY in the quick pass without libmagic: with its
 * decompression off, libmagic types it by the compressor (application/gzip,
 * application/x-bzip2, application/x-xz, application/zstd), never a binary-only type.
 */
bool mime_compressed_head(const void *buf, size_t len);

struct mime;

int mime_new(struct mime **out);
/* A handle whose quick pass uses the whole magic database, never the subset (tests). */
int mime_new_whole(struct mime **out);
void mime_free(struct mime *m);
/*
 * The MIME type of @buf (borrowed until the next call), "application/octet-stream" when
 * unknown. Without @exact (the quick pass), only libmagic's format tests run (not its
 * text analysis, which costs about 1.5 ms per text file against 0.3 ms), and only a
 * binary-only type is answered (the same answer as with @exact); anything else is
 * MIME_NOT_BINARY. ELF files and "#!/" scripts (mime_quick_known) are MIME_NOT_BINARY
 * without libmagic. The quick pass runs a subset of the database first: the tests that
 * can answer a binary-only type (mime_subset_status); of these, the tests whose first
 * entry it can decide in C are asked first, and libmagic runs only the others when none
 * of those can match (docs/CLASSIFY.md, "Probes").
 */
const char *mime_of(struct mime *m, const void *buf, size_t len, bool exact);
/*
 * Is the quick pass's answer for @buf MIME_NOT_BINARY whatever libmagic says, so that
 * mime_of() gives it without calling libmagic? True for ELF files and "#!/" scripts,
 * which libmagic's format tests never type as a binary-only type. Callers that cache
 * answers by the bytes can skip hashing them.
 */
bool mime_quick_known(const void *buf, size_t len);
/*
 * Binary-only types: image/, video/, audio/, font/, model/ and application/pdf, the types
 * of libmagic's format tests, and the types decided in C (mime_container) (the image formats written as text that only the text
 * analysis finds, ASCII PBM/PGM/PPM and XFig, always get the full analysis).
 */
bool mime_type_binary_only(const char *type);
/*
 * Can a glob on MIME types be decided on MIME_NOT_BINARY (as no match)? Yes when it can
 * only match binary-only types (same prefixes, a type decided in C, or a glob of the
 * form "application/x-*compressed-tar", which only mime_container's tar types match:
 * libmagic's database has no type of that form). Anything else needs the exact type.
 */
bool mime_glob_binary_only(const char *glob);
/*
 * Whether the quick pass uses the binary-only subset of the compiled magic database
 * (built once per process from libmagic's magic.mgc): NULL when it does, else why not
 * (another database format, text magic files on libmagic's path, ...): the quick pass
 * then runs the whole database, with the same answers, four times slower on text.
 */
const char *mime_subset_status(void);
/*
 * How many quick passes of @m ran on the subset less its probed tests (*@rest: no probe
 * could match; the tests whose first entry is a plain comparison are asked in C first)
 * and on the whole subset (*@sub). For tests and benchmarks.
 */
void mime_quick_counts(const struct mime *m, unsigned long *rest, unsigned long *sub);

#endif
