/*
 * lib_cli.h - what every defrag-* tool shares: exit codes, GNU-style --help/--version
 * and usage errors, the store directory rule, sizes with suffixes, printing paths.
 *
 * Threads: single-threaded helpers for main().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_TOOLS_LIB_CLI_H
#define DFS_TOOLS_LIB_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct cls_tally;

enum cli_exit {
	CLI_EXIT_OK = 0,	/* everything done */
	CLI_EXIT_PARTIAL = 1,	/* finished, but some items failed (each listed) */
	CLI_EXIT_USAGE = 2,	/* bad command line, or a refused action (e.g. --replace) */
	CLI_EXIT_STORE = 3,	/* the store could not be used */
	CLI_EXIT_INTERRUPTED = 130,	/* stopped by SIGINT or SIGTERM (128 + SIGINT) */
};

/* --store, else $DEFRAGFS_STORE, else /var/lib/defragfs. */
const char *cli_store_dir(const char *opt);
/* Prints "PROG: message" and "Try 'PROG --help' for more information." and exits 2. */
void cli_usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Prints "PROG (defragfs) VERSION" and exits 0. */
void cli_version(const char *prog) __attribute__((noreturn));
/*
 * A store that could not be opened (@rc): "PROG: DIR: cannot use the store: why", unless
 * the store already logged why (an error logged since dfs_log_errors() was @errs_before):
 * errors are printed once.
 */
void cli_store_failed(const char *prog, const char *dir, int rc, unsigned long errs_before);
struct store_create_opts;
/*
 * The options that put a new store's packs on S3 (defrag-ingest, defrag-store push):
 * @which 0 --packs, 1 --s3-endpoint, 2 --s3-addressing, 3 --s3-region,
 * 4 --s3-credentials (made absolute); a bad value is a usage error (exits 2).
 */
void cli_packs_option(const char *prog, int which, const char *arg, struct store_create_opts *o);
/* The getopt_long entries of those options, with values FIRST .. FIRST + 4. */
#define CLI_PACKS_LONGOPTS(first)                                                         \
	{ "packs", required_argument, NULL, (first) },                                    \
	{ "s3-endpoint", required_argument, NULL, (first) + 1 },                          \
	{ "s3-addressing", required_argument, NULL, (first) + 2 },                        \
	{ "s3-region", required_argument, NULL, (first) + 3 },                            \
	{ "s3-credentials", required_argument, NULL, (first) + 4 }
/* Usage error unless --packs and --s3-endpoint come together (or neither is given). */
void cli_packs_check(const char *prog, const struct store_create_opts *o);
/* "64K", "1M", "2G", "123" -> bytes. 0 or -EINVAL. */
int cli_parse_size(const char *s, uint64_t *out);
/* Writes @p (bytes) with non-printable bytes, '\\' and newlines escaped as \xNN. */
void cli_print_path(FILE *f, const uint8_t *p, size_t n);
/* Sets "path" (valid UTF-8) or "path_b64" (the exact bytes, base64) in @obj. */
void cli_json_set_path(json_t *obj, const char *key_utf8, const uint8_t *p, size_t n);
/*
 * The categories of a tally (a build's, or a dry run's plan) as a JSON array of
 * {"category", "files", "bytes"} objects, in their order. @cats is borrowed.
 * @return a new reference (json_decref it), or NULL when out of memory.
 */
json_t *cli_categories_json(const struct cls_tally *cats);
struct organize_stats;
/*
 * What copy alignment found in a build (organize_stats.aligned): one line each,
 * "  aligned: b:/backup-2024 is a copy of a:/ (93% identical: 115 files identical,
 * 5 changed, 1 only here, 3 only there)", to @f; or a JSON array of objects.
 */
void cli_print_alignments(FILE *f, const struct organize_stats *os);
/* The relative symlinks of a build (organize/links.c): one line (none: nothing), JSON. */
void cli_print_links(FILE *f, const struct organize_stats *os);
/*
 * The tree's figures (organize_stats dirs, dirs_split, files, files_unsorted): a
 * "folders: ..." line (nothing when the build classified nothing), and as JSON
 * {dirs, dirs_split, dirs_split_share, files, files_unsorted, files_unsorted_share}
 * (shares in percent).
 */
void cli_print_figures(FILE *f, const struct organize_stats *os);
json_t *cli_figures_json(const struct organize_stats *os);
json_t *cli_links_json(const struct organize_stats *os);
json_t *cli_alignments_json(const struct organize_stats *os);
/* Human-readable byte count into @buf ("1.5 GiB"). */
const char *cli_human(uint64_t bytes, char *buf, size_t len);
bool cli_utf8_valid(const uint8_t *p, size_t n);

struct ingest_progress;
/*
 * Writes the progress line of an ingest to @f: files, bytes, MB/s, ETA and the dedup ratio
 * so far. @tty: redraw one line ("\r" and erase) instead of one line per call.
 */
void cli_progress_line(FILE *f, bool tty, const struct ingest_progress *p);

#endif
