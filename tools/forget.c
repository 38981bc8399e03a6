/*
 * forget.c - defrag-forget: drop whole sources from every view (ingest_forget), then
 * rebuild the organized tree (organize_run). The space their data alone used is given
 * back by defrag-gc. A source whose wipe ledger says "safe to wipe: yes" may be the only
 * copy left of a drive already wiped: it is forgotten only with --yes.
 * With --keep-last, --keep-within or --snapshot it drops snapshots of the sources instead
 * (ingest_forget_snapshots): never the newest, so the organized tree stays as it is.
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
#include <time.h>

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

/* A snapshot's name (20261206T124500Z) -> UTC seconds; -1 if it is not one. */
static int64_t parse_snap_time(const char *s)
{
	char back[STORE_SNAP_NAME_LEN + 1];
	struct tm tm;
	const char *end;
	int64_t t;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
	if (!end || *end)
		return -1;
	t = (int64_t)timegm(&tm);
	store_snap_name(t, back);
	return strcmp(back, s) ? -1 : t;
}

/* A duration (30d, 12h, 1w2d, 90m, 45s; y = 365 days) -> seconds; -1 if it is not one. */
static int64_t parse_duration(const char *s)
{
	int64_t total = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		unsigned long long v = strtoull(s, &end, 10);
		int64_t unit;

		if (end == s || *s == '-' || *s == '+')
			return -1;
		switch (*end) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		case 'y': unit = 365 * 86400; break;
		default: return -1;
		}
		if (v > (unsigned long long)(INT64_MAX / 2 - total) / (unsigned long long)unit)
			return -1;
		total += (int64_t)v * unit;
		s = end + 1;
	}
	return total;
}

/* One source's dropped snapshots: a line, or an object appended to @arr (JSON). */
static void report_snaps(json_t *arr, const char *name, const struct ingest_forget_report *fr,
			 bool dry)
{
	char tn[STORE_SNAP_NAME_LEN + 1];

	if (arr) {
		json_t *o = json_object(), *v = json_array();

		for (size_t k = 0; k < fr->snaps_dropped; k++) {
			store_snap_name(fr->dropped[k], tn);
			json_array_append_new(v, json_string(tn));
		}
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "snapshots_dropped", v);
		json_object_set_new(o, "snapshots_kept", json_integer((json_int_t)fr->snaps_kept));
		json_object_set_new(o, "files", json_integer((json_int_t)fr->files));
		json_object_set_new(o, "directories", json_integer((json_int_t)fr->dirs));
		json_array_append_new(arr, o);
		return;
	}
	if (!fr->snaps_dropped) {
		printf("%s: no snapshot to drop (%zu kept)\n", name, fr->snaps_kept);
		return;
	}
	printf("%s%s: %s %zu snapshot%s (", dry ? "dry run: " : "", name,
	       dry ? "would drop" : "dropped", fr->snaps_dropped, fr->snaps_dropped == 1 ? "" : "s");
	for (size_t k = 0; k < fr->snaps_dropped; k++) {
		store_snap_name(fr->dropped[k], tn);
		printf("%s%s", k ? " " : "", tn);
	}
	printf("), %zu kept; %s %" PRIu64 " files and %" PRIu64 " directories only %s "
	       "named\n", fr->snaps_kept, dry ? "would remove" : "removed", fr->files, fr->dirs,
	       fr->snaps_dropped == 1 ? "it" : "they");
}

static void usage(void)
{
	printf("Usage: %s [--store DIR] [--dry-run] [--yes] [--json] NAME... | --all\n"
	       "       %s [--store DIR] [--dry-run] [--json] [--keep-last N] [--keep-within DURATION]\n"
	       "                     NAME... | --all\n"
	       "       %s [--store DIR] [--dry-run] [--json] --snapshot TIME... NAME\n"
	       "Drop whole sources from every view: /.sources/NAME and their origins in the\n"
	       "organized tree, which is rebuilt; or, with --keep-last, --keep-within or\n"
	       "--snapshot, older snapshots of the sources (/.history/NAME/TIME), never the\n"
	       "newest. The data only they referenced is freed by defrag-gc.\n\n"
	       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
	       "      --all         every source of the store\n"
	       "      --keep-last N keep the N newest snapshots of each source, drop the others\n"
	       "      --keep-within DURATION  keep the snapshots taken within DURATION of now\n"
	       "                    (30d, 12h, 2w, 1y2d; s m h d w y), drop the older ones\n"
	       "                    (with --keep-last, a snapshot either rule keeps stays)\n"
	       "      --snapshot TIME  drop this snapshot (its name under /.history/NAME, as\n"
	       "                    20261206T124500Z); may be given more than once\n"
	       "      --dry-run     say what would be forgotten, change nothing\n"
	       "      --yes         also forget sources whose ledger says \"safe to wipe: yes\"\n"
	       "                    (their drive may be gone: the store may hold the only copy)\n"
	       "      --json        the report as JSON\n"
	       "  -h, --help, --version\n\nSee defrag-forget(8).\n",
	       prog, prog, prog, STORE_DEFAULT_DIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "yes", no_argument, NULL, 'y' },
		{ "json", no_argument, NULL, 'J' },
		{ "keep-last", required_argument, NULL, 'L' },
		{ "keep-within", required_argument, NULL, 'W' },
		{ "snapshot", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_WRITER };
	struct names names = { 0 };
	struct store *st;
	struct organize_stats os = { 0 };
	const char *store = NULL;
	bool all = false, dry = false, yes = false, json = false, built = false, snaps = false;
	struct ingest_snap_policy pol = { 0 };
	int64_t *times = NULL;
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
		case 'L': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (end == optarg || *end || *optarg == '-' || v == 0 || v > SIZE_MAX)
				cli_usage_error(prog, "--keep-last takes a number of snapshots, 1 or more");
			pol.keep_last = (size_t)v;
			snaps = true;
			break;
		}
		case 'W': {
			int64_t d = parse_duration(optarg);

			if (d < 0)
				cli_usage_error(prog, "--keep-within takes a duration such as 30d, 12h or 2w");
			pol.keep_within = true;
			pol.keep_after = (int64_t)time(NULL) - d;
			snaps = true;
			break;
		}
		case 'S': {
			int64_t t = parse_snap_time(optarg), *v;

			if (t < 0)
				cli_usage_error(prog, "--snapshot takes a snapshot's name, its UTC time "
						"as 20261206T124500Z");
			v = realloc(times, (pol.ntimes + 1) * sizeof(*v));
			if (!v)
				cli_usage_error(prog, "out of memory");
			times = v;
			times[pol.ntimes++] = t;
			pol.times = times;
			snaps = true;
			break;
		}
		case 'h': usage(); return 0;
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "invalid option");
		}
	}
	if (all && optind < argc)
		cli_usage_error(prog, "--all takes no source name");
	if (pol.ntimes && (pol.keep_last || pol.keep_within))
		cli_usage_error(prog, "--snapshot goes alone, without --keep-last or --keep-within");
	if (pol.ntimes && (all || argc - optind != 1))
		cli_usage_error(prog, "--snapshot names the snapshots of one source: give its NAME");
	if (snaps && yes)
		cli_usage_error(prog, "--yes is for forgetting whole sources");
	if (!all && optind == argc)
		cli_usage_error(prog, "which source? give its NAME (or --all)");
	store = cli_store_dir(store);
	errs = dfs_log_errors();
	rc = store_open(store, &so, &st);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		json_decref(arr);
		free(times);
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
		} else if (snaps) {
			bool *drop = calloc(s.nsnaps + 1, sizeof(*drop));
			char tn[STORE_SNAP_NAME_LEN + 1] = "?";
			int e = drop ? ingest_snaps_select(&s, &pol, drop) : -ENOMEM;

			if (e == -ESRCH || e == -EBUSY) {
				/* the first time at fault, to name it */
				for (size_t k = 0; k < pol.ntimes; k++) {
					struct ingest_snap_policy one = { .times = &pol.times[k],
									  .ntimes = 1 };

					if (ingest_snaps_select(&s, &one, drop) == e) {
						store_snap_name(pol.times[k], tn);
						break;
					}
				}
				if (e == -ESRCH)
					fprintf(stderr, "%s: source '%s' has no snapshot %s (see "
						"/.history/%s); nothing was forgotten\n", prog,
						names.v[i], tn, names.v[i]);
				else
					fprintf(stderr, "%s: %s is the newest snapshot of '%s' "
						"(/.sources/%s): it is never dropped (forget the whole "
						"source instead); nothing was forgotten\n", prog, tn,
						names.v[i], names.v[i]);
				exit_code = CLI_EXIT_USAGE;
			} else if (e < 0) {
				rc = e;
			}
			free(drop);
			store_source_release(&s);
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

		rc = snaps ? ingest_forget_snapshots(st, names.v[i], &pol, dry, &fr)
			   : ingest_forget(st, names.v[i], dry, &fr);
		if (rc < 0) {
			fprintf(stderr, "%s: %s: forgetting '%s'%s failed: %s\n", prog, store,
				names.v[i], snaps ? "'s snapshots" : "", dfs_strerror(rc));
			ingest_forget_report_release(&fr);
			break;
		}
		done++;
		if (snaps) {
			report_snaps(json ? arr : NULL, names.v[i], &fr, dry);
			ingest_forget_report_release(&fr);
			continue;
		}
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
	if (rc == 0 && exit_code == 0 && !dry && done && !snaps) {
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
	free(times);
	organize_stats_release(&os);
	store_close(st);
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
	return exit_code;
}
