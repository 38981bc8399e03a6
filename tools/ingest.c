/*
 * ingest.c - defrag-ingest: read source drives once into the store (thin main() over
 * lib_ingest.c). Exit status: 0 all stored, 1 some files could not be stored (listed),
 * 2 usage error or a refused action, 3 the store could not be used.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "lib_cli.h"
#include "lib_ingest.h"
#include "store/log.h"

static const char *prog = "defrag-ingest";

static void usage(void)
{
	printf("Usage: %s [OPTION]... SOURCE...\n"
	       "Read each SOURCE directory (a drive's mount point) once, store its content\n"
	       "deduplicated and compressed, and update the organized tree.\n\n"
	       "  -s, --store DIR          the store (default: $DEFRAGFS_STORE, else %s);\n"
	       "                           created on first use\n"
	       "  -n, --name NAME          the source's name (default: basename of SOURCE;\n"
	       "                           only with one SOURCE)\n"
	       "  -r, --rules FILE         classification rules (default: built-in rules and\n"
	       "                           %s if present)\n"
	       "  -x, --exclude GLOB       skip paths matching GLOB (repeatable)\n"
	       "  -j, --jobs N             worker threads (default: number of CPUs)\n"
	       "      --one-file-system    do not cross into other filesystems\n"
	       "      --explain PATH       show how PATH (inside SOURCE) is classified: its\n"
	       "                           unit, every rule considered, the resulting path\n"
	       "      --dry-run            walk, read and hash; estimate; write nothing\n"
	       "      --no-organize        store the sources only; the organized tree is\n"
	       "                           brought up to date by the next run without it\n"
	       "                           or by defrag-reclassify\n"
	       "      --progress=WHEN      auto (on a terminal), always, never\n"
	       "      --json               print the summary as one JSON object\n"
	       "      --replace            accept a source name now on another filesystem\n"
	       "      --allow-deletions    accept a run that removes more than half of a\n"
	       "                           source's stored files\n"
	       "      --chunk-min SIZE, --chunk-avg SIZE, --chunk-max SIZE, --zstd-level N\n"
	       "                           parameters of a store being created (ignored after)\n"
	       "  -v, --verbose            more messages\n"
	       "      --help               display this help and exit\n"
	       "      --version            output version information and exit\n\n"
	       "Exit status: 0 all stored; 1 some files could not be stored (each listed);\n"
	       "2 usage error or refused action; 3 the store could not be used.\n"
	       "See defrag-ingest(8).\n",
	       prog, STORE_DEFAULT_DIR, CLS_SYSTEM_RULES);
	exit(CLI_EXIT_OK);
}

enum { OPT_ONEFS = 256, OPT_DRY, OPT_PROGRESS, OPT_JSON, OPT_REPLACE, OPT_ALLOWDEL,
       OPT_CMIN, OPT_CAVG, OPT_CMAX, OPT_ZLEVEL, OPT_HELP, OPT_VERSION, OPT_EXPLAIN,
       OPT_NOORG };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "rules", required_argument, NULL, 'r' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "one-file-system", no_argument, NULL, OPT_ONEFS },
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ "no-organize", no_argument, NULL, OPT_NOORG },
		{ "progress", required_argument, NULL, OPT_PROGRESS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "replace", no_argument, NULL, OPT_REPLACE },
		{ "allow-deletions", no_argument, NULL, OPT_ALLOWDEL },
		{ "chunk-min", required_argument, NULL, OPT_CMIN },
		{ "chunk-avg", required_argument, NULL, OPT_CAVG },
		{ "chunk-max", required_argument, NULL, OPT_CMAX },
		{ "zstd-level", required_argument, NULL, OPT_ZLEVEL },
		{ "explain", required_argument, NULL, OPT_EXPLAIN },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct ingest_opts o = { 0 };
	const char *store = NULL, *explain = NULL;
	struct classify *cls;
	char err[512];
	uint64_t v;
	int c, rc;

	dfs_log_set_prog(prog);
	store_create_opts_default(&o.create);
	o.progress = PROGRESS_AUTO;
	o.excludes = calloc((size_t)argc, sizeof(*o.excludes));
	if (!o.excludes)
		return CLI_EXIT_STORE;
	while ((c = getopt_long(argc, argv, "s:n:r:x:j:v", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			store = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'r':
			o.rules = optarg;
			break;
		case 'x':
			o.excludes[o.nexcludes++] = optarg;
			break;
		case 'j':
			if (cli_parse_size(optarg, &v) < 0 || v < 1 || v > 256)
				cli_usage_error(prog, "invalid --jobs '%s' (1..256)", optarg);
			o.jobs = (int)v;
			break;
		case OPT_ONEFS:
			o.one_fs = true;
			break;
		case OPT_DRY:
			o.dry_run = true;
			break;
		case OPT_NOORG:
			o.no_organize = true;
			break;
		case OPT_PROGRESS:
			if (!strcmp(optarg, "auto"))
				o.progress = PROGRESS_AUTO;
			else if (!strcmp(optarg, "always"))
				o.progress = PROGRESS_ALWAYS;
			else if (!strcmp(optarg, "never"))
				o.progress = PROGRESS_NEVER;
			else
				cli_usage_error(prog, "invalid --progress '%s' (auto, always, never)",
						optarg);
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_REPLACE:
			o.replace = true;
			break;
		case OPT_ALLOWDEL:
			o.allow_deletions = true;
			break;
		case OPT_CMIN:
		case OPT_CAVG:
		case OPT_CMAX:
			if (cli_parse_size(optarg, &v) < 0 || v > CDC_MAX_LIMIT)
				cli_usage_error(prog, "invalid chunk size '%s'", optarg);
			if (c == OPT_CMIN)
				o.create.cdc.min_size = (uint32_t)v;
			else if (c == OPT_CAVG)
				o.create.cdc.avg_size = (uint32_t)v;
			else
				o.create.cdc.max_size = (uint32_t)v;
			break;
		case OPT_ZLEVEL:
			if (cli_parse_size(optarg, &v) < 0 || v < 1 || v > CODEC_MAX_LEVEL)
				cli_usage_error(prog, "invalid --zstd-level '%s' (1..%d)", optarg,
						CODEC_MAX_LEVEL);
			o.create.zstd_level = (int)v;
			break;
		case OPT_EXPLAIN:
			explain = optarg;
			break;
		case 'v':
			dfs_log_set_level(DFS_LOG_INFO);
			break;
		case OPT_HELP:
			usage();
			break;
		case OPT_VERSION:
			cli_version(prog);
			break;
		default:
			cli_usage_error(prog, "invalid option");
		}
	}
	if (optind >= argc)
		cli_usage_error(prog, "missing SOURCE");
	if (o.name && argc - optind > 1)
		cli_usage_error(prog, "--name applies to a single SOURCE");
	if (cdc_params_check(&o.create.cdc) < 0)
		cli_usage_error(prog, "invalid chunk sizes: need min <= avg <= max, avg a power "
				"of two, within 1 KiB .. 64 MiB");
	o.store_dir = cli_store_dir(store);
	/* A broken rules file stops everything before any byte is ingested. */
	err[0] = '\0';
	rc = classify_open(o.rules, &cls, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err[0] ? err : dfs_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	classify_close(cls);
	if (explain) {
		if (argc - optind != 1)
			cli_usage_error(prog, "--explain needs exactly one SOURCE");
		return ingest_explain(&o, argv[optind], explain);
	}
	rc = ingest_run(&o, argv + optind, argc - optind);
	free(o.excludes);
	return rc;
}
