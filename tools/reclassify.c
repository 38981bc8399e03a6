/*
 * reclassify.c - defrag-reclassify: rebuild the organized tree from the index alone
 * (with changed rules), without reading any source or file data again (a missing MIME
 * type is computed from the stored first chunk). --rules FILE is kept in the store and used
 * by every later build until other rules are given (--rules builtin: the built-in ones
 * again; lib_rules.h). Exit: 0, 2 usage/rules error, 3 store.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "classify/classify.h"
#include "lib_cli.h"
#include "lib_rules.h"
#include "organize/organize.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-reclassify";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "rules", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_WRITER };
	struct organize_stats os;
	struct cli_rules_note note;
	struct store_txn *tx = NULL;
	struct store *st;
	const char *store = NULL, *rules = NULL;
	bool dry = false, json = false;
	char err[512], h[32];
	unsigned long errs;
	int c, rc;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:r:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 'r': rules = optarg; break;
		case 'd': dry = true; break;
		case 'J': json = true; break;
		case 'h':
			printf("Usage: %s [--store DIR] [--rules FILE] [--dry-run] [--json]\n"
			       "Rebuild the organized tree from the index alone with the current (or\n"
			       "given) rules. No source is read.\n\n"
			       "  -s, --store DIR    the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "  -r, --rules FILE   rules file, kept in the store for later runs;\n"
			       "                     'builtin': the built-in rules again (default: the\n"
			       "                     rules the store keeps, else the built-in ones)\n"
			       "      --dry-run      compute and count, change nothing\n"
			       "      --json         the per-category counts as JSON\n"
			       "      --help, --version\n\nSee defrag-reclassify(8).\n",
			       prog, STORE_DEFAULT_DIR);
			return 0;
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "invalid option");
		}
	}
	if (optind < argc)
		cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	/* a broken rules file changes nothing; its warnings are said */
	if (rules && cli_rules_check(prog, rules))
		return CLI_EXIT_USAGE;
	store = cli_store_dir(store);
	errs = dfs_log_errors();
	rc = store_open(store, &so, &st);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		return CLI_EXIT_STORE;
	}
	/* the rules first: kept (or dropped) in their own commit unless this is a dry run */
	rc = store_txn_begin(st, &tx);
	if (rc == 0)
		rc = cli_rules_keep(tx, rules, &note, err, sizeof(err));
	if (rc == 0 && note.changed && !dry)
		rc = store_txn_commit(tx);
	else
		store_txn_abort(tx);
	tx = NULL;
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err[0] ? err : dfs_strerror(rc));
		store_close(st);
		return rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
	}
	/* a dry run builds with what was given; a real one with what the store now keeps */
	rc = organize_run(st, dry ? rules : NULL, ORG_FORCE | (dry ? ORG_DRY_RUN : 0), &os, err,
			  sizeof(err));
	store_close(st);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		organize_stats_release(&os);
		return rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
	}
	if (json) {
		json_t *o = json_object();

		json_object_set_new(o, "dry_run", json_boolean(dry));
		json_object_set_new(o, "entries", json_integer((json_int_t)os.entries));
		json_object_set_new(o, "merged", json_integer((json_int_t)os.merged));
		json_object_set_new(o, "conflicts", json_integer((json_int_t)os.conflicts));
		json_object_set_new(o, "units", json_integer((json_int_t)os.units));
		json_object_set_new(o, "removed", json_integer((json_int_t)os.removed));
		json_object_set_new(o, "categories", cli_categories_json(&os.cats));
		json_object_set_new(o, "figures", cli_figures_json(&os));
		json_object_set_new(o, "alignments", cli_alignments_json(&os));
		json_object_set_new(o, "symlinks", cli_links_json(&os));
		json_object_set_new(o, "rules", cli_rules_json(&note));
		json_dumpf(o, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(o);
	} else {
		for (size_t i = 0; i < os.cats.n; i++)
			printf("  %-32s %10" PRIu64 " files  %s\n", os.cats.v[i].name,
			       os.cats.v[i].files, cli_human(os.cats.v[i].bytes, h, sizeof(h)));
		printf("%s%" PRIu64 " entries, %" PRIu64 " merged origins, %" PRIu64
		       " renamed on conflict, %" PRIu64 " units, %" PRIu64 " stale entries removed\n",
		       dry ? "dry run: " : "", os.entries, os.merged, os.conflicts, os.units,
		       os.removed);
		cli_print_alignments(stdout, &os);
		cli_print_figures(stdout, &os);
		cli_print_links(stdout, &os);
		if (note.line[0])
			printf("%s%s\n", dry && note.changed ? "dry run: " : "", note.line);
	}
	organize_stats_release(&os);
	return 0;
}
