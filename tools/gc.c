/*
 * gc.c - defrag-gc: reclaim the space of data no view references (store_gc: mark,
 * sweep, rewrite packs). It first finishes a defrag-forget that was cut short, whose
 * unreachable records would otherwise keep their data alive, and brings the organized
 * tree up to date with the sources (organize_run; nothing to do when it is).
 * Exit: 0, 1 the gc failed part way (every completed step is committed; run it again),
 * 2 usage, 3 store unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ingest/ingest.h"
#include "lib_cli.h"
#include "organize/organize.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-gc";

static void usage(void)
{
	printf("Usage: %s [--store DIR] [--dry-run] [--max-rewrite SIZE] [--live-threshold PCT]\n"
	       "          [--json]\n"
	       "Free the space of chunks and contents no view references: mark from every\n"
	       "view, sweep, and rewrite packs that are mostly garbage.\n\n"
	       "  -s, --store DIR           the store (default: $DEFRAGFS_STORE, else %s)\n"
	       "      --dry-run             count what would be swept and rewritten\n"
	       "      --max-rewrite SIZE    copy at most SIZE live bytes (64M, 2G ...)\n"
	       "      --live-threshold PCT  rewrite packs less than PCT%% live (default %d)\n"
	       "      --json                the report as JSON\n"
	       "  -h, --help, --version\n\nSee defrag-gc(8).\n",
	       prog, STORE_DEFAULT_DIR, STORE_GC_LIVE_PCT);
}

static void report_json(const struct store_gc_report *r, bool dry, uint64_t resumed)
{
	json_t *o = json_object();
	const struct {
		const char *k;
		uint64_t v;
	} f[] = {
		{ "inodes", r->inodes },
		{ "contents_live", r->contents_live },
		{ "contents_swept", r->contents_swept },
		{ "chunks_live", r->chunks_live },
		{ "chunks_swept", r->chunks_swept },
		{ "swept_raw_bytes", r->swept_raw },
		{ "swept_stored_bytes", r->swept_stored },
		{ "packs_before", r->packs_before },
		{ "pack_bytes_before", r->pack_bytes_before },
		{ "packs_rewritten", r->packs_rewritten },
		{ "rewritten_pack_bytes", r->rewritten_bytes },
		{ "copied_bytes", r->copied_bytes },
		{ "meta_records_carried", r->meta_carried },
		{ "packs_over_budget", r->packs_over_budget },
		{ "packs_kept_damaged", r->packs_kept_damaged },
		{ "packs_after", r->packs_after },
		{ "pack_bytes_after", r->pack_bytes_after },
		{ "commits", r->commits },
		{ "forget_entries_finished", resumed },
	};

	json_object_set_new(o, "dry_run", json_boolean(dry));
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_object_set_new(o, f[i].k, json_integer((json_int_t)f[i].v));
	json_dumpf(o, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(o);
}

static void report_text(const struct store_gc_report *r, bool dry, uint64_t resumed)
{
	char a[32], b[32], c[32];
	const char *pre = dry ? "dry run: would " : "";

	if (resumed)
		printf("finished an interrupted defrag-forget: %" PRIu64 " entries\n", resumed);
	printf("marked %" PRIu64 " contents and %" PRIu64 " chunks from %" PRIu64 " inodes\n",
	       r->contents_live, r->chunks_live, r->inodes);
	printf("%ssweep %" PRIu64 " contents and %" PRIu64 " chunks (%s, %s stored)\n", pre,
	       r->contents_swept, r->chunks_swept, cli_human(r->swept_raw, a, sizeof(a)),
	       cli_human(r->swept_stored, b, sizeof(b)));
	printf("%srewrite %" PRIu64 " packs (%s), copying %s of live records\n", pre,
	       r->packs_rewritten, cli_human(r->rewritten_bytes, a, sizeof(a)),
	       cli_human(r->copied_bytes, b, sizeof(b)));
	if (r->packs_over_budget)
		printf("  %" PRIu64 " more packs are left for a later run (--max-rewrite)\n",
		       r->packs_over_budget);
	if (r->packs_kept_damaged)
		printf("  %" PRIu64 " packs are not whole and were kept: run defrag-verify\n",
		       r->packs_kept_damaged);
	if (!dry)
		printf("packs: %" PRIu64 " (%s) -> %" PRIu64 " (%s), %s freed\n", r->packs_before,
		       cli_human(r->pack_bytes_before, a, sizeof(a)), r->packs_after,
		       cli_human(r->pack_bytes_after, b, sizeof(b)),
		       cli_human(r->pack_bytes_before > r->pack_bytes_after ?
					 r->pack_bytes_before - r->pack_bytes_after : 0,
				 c, sizeof(c)));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "dry-run", no_argument, NULL, 'd' },
		{ "max-rewrite", required_argument, NULL, 'm' },
		{ "live-threshold", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_WRITER };
	struct store_gc_opts go = { 0 };
	struct store_gc_report rep;
	struct organize_stats os = { 0 };
	struct store *st;
	const char *store = NULL;
	bool json = false;
	uint64_t resumed = 0, pct;
	char err[512];
	unsigned long errs;
	char *end;
	int c, rc;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 'd': go.dry_run = true; break;
		case 'm':
			if (cli_parse_size(optarg, &go.max_rewrite) < 0 || go.max_rewrite == 0)
				cli_usage_error(prog, "--max-rewrite: a size such as 512M or 4G");
			break;
		case 'l':
			pct = strtoull(optarg, &end, 10);
			if (*end || end == optarg || pct < 1 || pct > 100)
				cli_usage_error(prog, "--live-threshold: a percentage, 1 to 100");
			go.live_pct = (unsigned)pct;
			break;
		case 'J': json = true; break;
		case 'h': usage(); return 0;
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "invalid option");
		}
	}
	if (optind < argc)
		cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	store = cli_store_dir(store);
	errs = dfs_log_errors();
	rc = store_open(store, &so, &st);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		return CLI_EXIT_STORE;
	}
	/*
	 * The organized tree is marked from as it is: first make it what the sources say
	 * (a forget cut short before its rebuild left the forgotten source's entries; the
	 * build is skipped when nothing changed since the last one).
	 */
	err[0] = '\0';
	rc = go.dry_run ? 0 : ingest_forget_resume(st, &resumed);
	if (rc == 0 && !go.dry_run)
		rc = organize_run(st, NULL, 0, &os, err, sizeof(err));
	organize_stats_release(&os);
	if (rc == 0)
		rc = store_gc(st, &go, &rep);
	store_close(st);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s; every step done so far is committed: run defrag-gc "
			"again\n", prog, store, err[0] ? err : dfs_strerror(rc));
		return CLI_EXIT_PARTIAL;
	}
	if (json)
		report_json(&rep, go.dry_run, resumed);
	else
		report_text(&rep, go.dry_run, resumed);
	return CLI_EXIT_OK;
}
