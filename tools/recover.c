/*
 * recover.c - defrag-recover: rebuild index/ from config + packs (store_recover()).
 * Exit status: 0 rebuilt with no damage found; 1 rebuilt, but damaged ranges were
 * skipped (files using them will fail defrag-verify); 2 usage; 3 the store is unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib_cli.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-recover";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_recover_report rep;
	const char *store = NULL;
	bool json = false;
	int c, rc;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			store = optarg;
			break;
		case 'J':
			json = true;
			break;
		case 'h':
			printf("Usage: %s [--store DIR] [--json]\n"
			       "Rebuild the store's index from its config and pack files alone.\n"
			       "The old index/ (if any) is moved aside to index.broken-TIME first.\n\n"
			       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "      --json        print the report as JSON\n"
			       "      --help        display this help and exit\n"
			       "      --version     output version information and exit\n\n"
			       "Exit status: 0 rebuilt, no damage; 1 rebuilt, damaged ranges skipped;\n"
			       "2 usage error; 3 the store could not be used. See defrag-recover(8).\n",
			       prog, STORE_DEFAULT_DIR);
			return CLI_EXIT_OK;
		case 'V':
			cli_version(prog);
		default:
			cli_usage_error(prog, "invalid option");
		}
	}
	if (optind < argc)
		cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	store = cli_store_dir(store);
	rc = store_recover(store, &rep);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, store, dfs_strerror(rc));
		return CLI_EXIT_STORE;
	}
	if (json) {
		printf("{\"packs\": %" PRIu64 ", \"bad_packs\": %" PRIu64 ", \"chunks\": %" PRIu64
		       ", \"commits\": %" PRIu64 ", \"bad_regions\": %" PRIu64
		       ", \"bad_bytes\": %" PRIu64 ", \"torn_tails\": %" PRIu64 "}\n",
		       rep.packs, rep.bad_packs, rep.chunks, rep.commits, rep.bad_regions,
		       rep.bad_bytes, rep.torn_tails);
	} else {
		if (rep.moved_to[0])
			printf("old index moved to %s\n", rep.moved_to);
		printf("restored: %" PRIu64 " packs, %" PRIu64 " chunks, %" PRIu64
		       " commits replayed\n", rep.packs, rep.chunks, rep.commits);
		if (rep.bad_packs || rep.bad_regions || rep.torn_tails)
			printf("could not restore: %" PRIu64 " unreadable packs, %" PRIu64
			       " damaged ranges (%" PRIu64 " bytes), %" PRIu64 " torn pack ends\n"
			       "run defrag-verify to list the files that are affected\n",
			       rep.bad_packs, rep.bad_regions, rep.bad_bytes, rep.torn_tails);
		else
			printf("nothing was lost\n");
	}
	return rep.bad_packs || rep.bad_regions ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
}
