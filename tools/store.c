/*
 * store.c - defrag-store: moves a store's packs between backends. "push" puts the packs
 * of a local store on S3 (--packs s3://BUCKET/PREFIX --s3-endpoint URL, as defrag-ingest
 * takes them at creation); "pull" fetches them back into the store directory. Both are
 * resumable: run the same command again after a cut (store_push / store_pull).
 * Exit: 0 moved, 2 usage or refused (already there, another store's objects), 3 the
 * store or the server could not be used (nothing is lost: run it again).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib_cli.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-store";

static void usage(void)
{
	printf("Usage: %s [--store DIR] push --packs s3://BUCKET[/PREFIX] --s3-endpoint URL\n"
	       "          [--s3-addressing path|vhost] [--s3-region R] [--s3-credentials FILE]\n"
	       "       %s [--store DIR] pull\n"
	       "Move the packs of a store: push puts a local store's packs in an S3 bucket\n"
	       "(the index and a staging area stay in DIR), pull fetches them back. Both can\n"
	       "be cut and run again; keys from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY\n"
	       "or the credentials file.\n\n"
	       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
	       "  -h, --help, --version\n\nSee defrag-store(8).\n",
	       prog, prog, STORE_DEFAULT_DIR);
}

enum { OPT_PACKS = 256, OPT_S3_ENDPOINT, OPT_S3_ADDRESSING, OPT_S3_REGION,
       OPT_S3_CREDENTIALS, OPT_VERSION };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		CLI_PACKS_LONGOPTS(OPT_PACKS),
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct store_create_opts to = { 0 };
	struct store_move_report rep;
	const char *store = NULL, *dir, *verb;
	unsigned long errs;
	int c, rc;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			store = optarg;
			break;
		case OPT_PACKS:
		case OPT_S3_ENDPOINT:
		case OPT_S3_ADDRESSING:
		case OPT_S3_REGION:
		case OPT_S3_CREDENTIALS:
			cli_packs_option(prog, c - OPT_PACKS, optarg, &to);
			break;
		case 'h':
			usage();
			return CLI_EXIT_OK;
		case OPT_VERSION:
			cli_version(prog);
		default:
			cli_usage_error(prog, "invalid option");
		}
	}
	if (optind + 1 != argc)
		cli_usage_error(prog, "one command: push or pull");
	verb = argv[optind];
	dir = cli_store_dir(store);
	errs = dfs_log_errors();
	if (!strcmp(verb, "push")) {
		if (!to.packs[0])
			cli_usage_error(prog, "push needs --packs s3://BUCKET[/PREFIX]");
		cli_packs_check(prog, &to);
		rc = store_push(dir, &to, &rep);
	} else if (!strcmp(verb, "pull")) {
		if (to.packs[0] || to.s3_endpoint[0])
			cli_usage_error(prog, "pull takes its place from the store's config");
		rc = store_pull(dir, &rep);
	} else {
		cli_usage_error(prog, "unknown command '%s' (push, pull)", verb);
	}
	if (rc < 0) {
		cli_store_failed(prog, dir, rc, errs);
		return rc == -EEXIST || rc == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
	}
	printf("%s: %" PRIu64 " packs, %" PRIu64 " bytes %s\n", dir, rep.packs, rep.bytes,
	       !strcmp(verb, "push") ? "on the server" : "in the store directory");
	return CLI_EXIT_OK;
}
