/*
 * forget.c - defrag-forget: drop whole sources from every view (ingest_forget), then
 * rebuild the organized tree (organize_run). The space their data alone used is given
 * back by defrag-gc. A source whose wipe ledger says "safe to wipe: yes" may be the only
 * copy left of a drive already wiped: it is forgotten only with --yes.
 * Exit: 0, 1 a store error part way (what was done is said), 2 usage or refused (nothing
 * changed), 3 store unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "lib_cli.h"
#include "organize/organize.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-forget";

struct names {
	char **v;
	size_t n;
};

static int add_name(struct names *l, const void *p, size_t len)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	v[l->n] = strndup(p, len);
	if (!v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static int each_name(void *arg, const struct store_source *s)
{
	return add_name(arg, s->name.p, s->name.len);
}

static void usage(void)
{
	printf("Usage: %s [--store DIR] [--dry-run] [--yes] [--json] NAME... | --all\n"
	       "Drop whole sources from every view: /.sources/NAME and their origins in the\n"
	       "organized tree, which is rebuilt. The data only they referenced is freed by\n"
	       "defrag-gc.\n\n"
	       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
	       "      --all         every source of the store\n"
	       "      --dry-run     say what would be forgotten, change nothing\n"
	       "      --yes         also forget sources whose ledger says \"safe to wipe: yes\"\n"
	       "                    (their drive may be gone: the store may hold the only copy)\n"
	       "      --json        the report as JSON\n"
	       "  -h, --help, --version\n\nSee defrag-forget(8).\n",
	       prog, STORE_DEFAULT_DIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "yes", no_argument, NULL, 'y' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_WRITER };
	struct names names = { 0 };
	struct store *st;
	struct organize_stats os = { 0 };
	const char *store = NULL;
	bool all = false, dry = false, yes = false, json = false, built = false;
	json_t *arr = json_array();
	char err[512], h[32];
	unsigned long errs;
	int c, rc = 0, exit_code = CLI_EXIT_OK;
	size_t done = 0;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 'a': all = true; break;
		case 'd': dry = true; break;
		case 'y': yes = true; break;
		case 'J': json = true; break;
		case 'h': usage(); return 0;
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "invalid option");
		}
	}
	if (all && optind < argc)
		cli_usage_error(prog, "--all takes no source name");
	if (!all && optind == argc)
		cli_usage_error(prog, "which source? give its NAME (or --all)");
	store = cli_store_dir(store);
	errs = dfs_log_errors();
	rc = store_open(store, &so, &st);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		return CLI_EXIT_STORE;
	}
	/* a forget cut short: its view first, and the tree it left stale */
	if (!dry) {
		uint64_t resumed = 0;

		rc = ingest_forget_resume(st, &resumed);
		if (rc == 0 && resumed) {
			printf("finished an interrupted forget (%" PRIu64 " entries)\n", resumed);
			rc = organize_run(st, NULL, 0, &os, err, sizeof(err));
			organize_stats_release(&os);
		}
		if (rc < 0) {
			fprintf(stderr, "%s: %s: finishing an interrupted forget failed: %s\n",
				prog, store, dfs_strerror(rc));
			store_close(st);
			return CLI_EXIT_STORE;
		}
	}
	rc = all ? store_each_source(st, each_name, &names) : 0;
	for (int i = optind; i < argc && rc == 0; i++)
		rc = add_name(&names, argv[i], strlen(argv[i]));
	/* every name is checked before anything changes */
	for (size_t i = 0; i < names.n && rc == 0 && exit_code == 0; i++) {
		struct store_source s;
		int r = store_get_source(st, names.v[i], strlen(names.v[i]), &s);

		if (r == -ENOENT) {
			fprintf(stderr, "%s: %s: no source named '%s'; nothing was forgotten\n",
				prog, store, names.v[i]);
			exit_code = CLI_EXIT_USAGE;
		} else if (r < 0) {
			rc = r;
		} else {
			if (ingest_safe_to_wipe(&s) && !yes && !dry) {
				fprintf(stderr, "%s: source '%s' is marked \"safe to wipe: yes\": its "
					"drive may already be wiped and this store may hold the only "
					"copy of its files; nothing was forgotten; run again with --yes "
					"to forget it anyway\n", prog, names.v[i]);
				exit_code = CLI_EXIT_USAGE;
			}
			store_source_release(&s);
		}
	}
	for (size_t i = 0; i < names.n && rc == 0 && exit_code == 0; i++) {
		struct ingest_forget_report fr;

		rc = ingest_forget(st, names.v[i], dry, &fr);
		if (rc < 0) {
			fprintf(stderr, "%s: %s: forgetting '%s' failed: %s\n", prog, store,
				names.v[i], dfs_strerror(rc));
			break;
		}
		done++;
		if (json) {
			json_t *o = json_object();

			json_object_set_new(o, "name", json_string(names.v[i]));
			json_object_set_new(o, "files", json_integer((json_int_t)fr.files));
			json_object_set_new(o, "directories", json_integer((json_int_t)fr.dirs));
			json_object_set_new(o, "bytes", json_integer((json_int_t)fr.bytes));
			json_array_append_new(arr, o);
		} else {
			printf("%sforgot source %s: %" PRIu64 " files, %" PRIu64 " directories, %s\n",
			       dry ? "dry run: would have " : "", names.v[i], fr.files, fr.dirs,
			       cli_human(fr.bytes, h, sizeof(h)));
		}
	}
	if (rc == 0 && exit_code == 0 && !dry && done) {
		rc = organize_run(st, NULL, 0, &os, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "%s: %s: rebuilding the organized tree failed: %s\n", prog,
				store, err);
		else
			built = true;
	}
	if (rc < 0 && exit_code == 0)
		exit_code = done ? CLI_EXIT_PARTIAL : CLI_EXIT_STORE;
	if (exit_code == 0 && json) {
		json_t *o = json_object();

		json_object_set_new(o, "dry_run", json_boolean(dry));
		json_object_set_new(o, "forgotten", arr);
		arr = NULL;
		if (built) {
			json_object_set_new(o, "organized_removed",
					    json_integer((json_int_t)os.removed));
			json_object_set_new(o, "organized_entries",
					    json_integer((json_int_t)os.entries));
			json_object_set_new(o, "alignment_sources_swept",
					    json_integer((json_int_t)os.align_swept));
		}
		json_dumpf(o, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(o);
	} else if (exit_code == 0 && built) {
		printf("organized tree rebuilt: %" PRIu64 " entries, %" PRIu64
		       " stale entries removed; run defrag-gc to free the space\n", os.entries,
		       os.removed);
	}
	json_decref(arr);
	organize_stats_release(&os);
	store_close(st);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	return exit_code;
}
