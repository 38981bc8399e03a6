/*
 * lib_rules.h - the rules a store keeps (store_get_rules): what `--rules FILE` and
 * `--rules builtin` of defrag-ingest and defrag-reclassify do to them, and the words the
 * summary says about them.
 *
 * Threads: single-threaded helpers for main().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_TOOLS_LIB_RULES_H
#define DFS_TOOLS_LIB_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct store_txn;

struct cli_rules_note {
	bool changed;		/* this run gives the store other rules */
	char in_force[320];	/* "my.yml (kept in the store)", "the built-in rules" */
	char line[800];		/* the summary's line ("" when there is nothing to say) */
};

/*
 * Applies @rules (NULL: none given; CLS_RULES_BUILTIN; or a file) to the rules kept in
 * @tx's store: a file is read, checked (classify_open_text) and kept, replacing what was
 * kept; CLS_RULES_BUILTIN drops what was kept; NULL keeps it. @note says what is in force
 * and whether it changed. 0; -EINVAL a file that cannot be read, is too large or has an
 * error (@err says which: "FILE:LINE:COL: ..."); another -errno from the store.
 */
int cli_rules_keep(struct store_txn *tx, const char *rules, struct cli_rules_note *note,
		   char *err, size_t errlen);

/*
 * Checks the rules @rules names (a file, CLS_RULES_BUILTIN, NULL: the system file if any)
 * before anything else is done: an error is printed ("PROG: FILE:LINE:COL: ...") and
 * gives CLI_EXIT_USAGE; each warning is printed ("PROG: FILE:LINE:COL: warning: ...").
 * Returns 0 or CLI_EXIT_USAGE.
 */
int cli_rules_check(const char *prog, const char *rules);

/* The note as {"in_force", "changed"} (a new reference), or NULL out of memory. */
json_t *cli_rules_json(const struct cli_rules_note *note);

#endif
