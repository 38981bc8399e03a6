/*
 * recover.c - defrag-recover: rebuild index/ from config + packs (store_recover()).
 * It lists everything the rebuild could not bring back: unreadable packs, damaged pack
 * headers (the records after them are recovered), damaged byte ranges, commits that could
 * not be replayed and commits whose record was not found; a pack's end that a crash cut
 * short is listed apart (never committed).
 * Exit status: 0 rebuilt and nothing committed was lost; 1 rebuilt, but something was
 * not recovered (each listed; files using it will fail defrag-verify); 2 usage; 3 the
 * store is unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib_cli.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-recover";

static const char *kind_name(enum store_unrec_kind k)
{
	switch (k) {
	case STORE_UNREC_PACK:
		return "pack";
	case STORE_UNREC_HEADER:
		return "header";
	case STORE_UNREC_RANGE:
		return "range";
	case STORE_UNREC_TORN:
		return "torn";
	case STORE_UNREC_COMMIT:
		return "commit";
	case STORE_UNREC_MISSING:
		return "missing";
	}
	return "?";
}

static void print_unrec(const struct store_unrec *u)
{
	switch (u->kind) {
	case STORE_UNREC_PACK:
		printf("  pack %08" PRIx32 ": unreadable (%s): none of it restored\n", u->pack,
		       dfs_strerror(u->err));
		break;
	case STORE_UNREC_HEADER:
		printf("  pack %08" PRIx32 " @%" PRIu64 " +%" PRIu64 " bytes: damaged pack header"
		       "; the records after it were restored\n", u->pack, u->off, u->len);
		break;
	case STORE_UNREC_RANGE:
		printf("  pack %08" PRIx32 " @%" PRIu64 " +%" PRIu64 " bytes: damaged, skipped\n",
		       u->pack, u->off, u->len);
		break;
	case STORE_UNREC_TORN:
		printf("  pack %08" PRIx32 " @%" PRIu64 " +%" PRIu64 " bytes: an incomplete "
		       "record at the end (a write cut short by a crash, never committed)\n",
		       u->pack, u->off, u->len);
		break;
	case STORE_UNREC_COMMIT:
		printf("  commit %" PRIu64 " (pack %08" PRIx32 " @%" PRIu64 " +%" PRIu64
		       " bytes): cannot be replayed (%s), nothing of it applied\n", u->seq,
		       u->pack, u->off, u->len, dfs_strerror(u->err));
		break;
	case STORE_UNREC_MISSING:
		if (u->count == 1)
			printf("  commit %" PRIu64 ": its record was not found (damaged)\n",
			       u->seq);
		else
			printf("  commits %" PRIu64 "-%" PRIu64 ": their records were not found "
			       "(damaged)\n", u->seq, u->seq + u->count - 1);
		break;
	}
}

static void print_json(const struct store_recover_report *rep)
{
	json_t *o = json_object(), *arr = json_array();

	json_object_set_new(o, "moved_to", rep->moved_to[0] ? json_string(rep->moved_to)
							    : json_null());
	json_object_set_new(o, "old_index_removed", json_boolean(rep->old_removed));
	json_object_set_new(o, "old_index_kept_because",
			    rep->old_why[0] ? json_string(rep->old_why) : json_null());
	json_object_set_new(o, "packs", json_integer((json_int_t)rep->packs));
	json_object_set_new(o, "chunks", json_integer((json_int_t)rep->chunks));
	json_object_set_new(o, "commits", json_integer((json_int_t)rep->commits));
	json_object_set_new(o, "bad_packs", json_integer((json_int_t)rep->bad_packs));
	json_object_set_new(o, "bad_headers", json_integer((json_int_t)rep->bad_headers));
	json_object_set_new(o, "bad_regions", json_integer((json_int_t)rep->bad_regions));
	json_object_set_new(o, "bad_bytes", json_integer((json_int_t)rep->bad_bytes));
	json_object_set_new(o, "failed_commits", json_integer((json_int_t)rep->failed_commits));
	json_object_set_new(o, "missing_commits",
			    json_integer((json_int_t)rep->missing_commits));
	json_object_set_new(o, "torn_tails", json_integer((json_int_t)rep->torn_tails));
	json_object_set_new(o, "torn_bytes", json_integer((json_int_t)rep->torn_bytes));
	json_object_set_new(o, "lost", json_boolean(store_recover_lost(rep)));
	for (size_t i = 0; i < rep->nunrec; i++) {
		const struct store_unrec *u = &rep->unrec[i];
		json_t *e = json_object();

		json_object_set_new(e, "kind", json_string(kind_name(u->kind)));
		if (u->kind == STORE_UNREC_COMMIT || u->kind == STORE_UNREC_MISSING)
			json_object_set_new(e, "seq", json_integer((json_int_t)u->seq));
		if (u->kind == STORE_UNREC_MISSING) {
			json_object_set_new(e, "count", json_integer((json_int_t)u->count));
		} else {
			json_object_set_new(e, "pack", json_integer(u->pack));
			json_object_set_new(e, "offset", json_integer((json_int_t)u->off));
			json_object_set_new(e, "length", json_integer((json_int_t)u->len));
		}
		json_object_set_new(e, "error", json_string(dfs_strerror(u->err)));
		json_array_append_new(arr, e);
	}
	json_object_set_new(o, "not_recovered", arr);
	json_object_set_new(o, "not_recovered_truncated", json_boolean(rep->unrec_dropped));
	json_dumpf(o, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(o);
}

static void print_text(const struct store_recover_report *rep)
{
	bool lost = store_recover_lost(rep);

	if (rep->moved_to[0])
		printf("old index kept at %s (%s)\n", rep->moved_to, rep->old_why);
	else if (rep->old_removed)
		printf("the old index was healthy (it held the same last commit): removed\n");
	printf("restored: %" PRIu64 " packs, %" PRIu64 " chunks, %" PRIu64 " commits replayed\n",
	       rep->packs, rep->chunks, rep->commits);
	if (lost) {
		printf("not restored:\n");
		for (size_t i = 0; i < rep->nunrec; i++)
			if (rep->unrec[i].kind != STORE_UNREC_TORN)
				print_unrec(&rep->unrec[i]);
	}
	if (rep->torn_tails) {
		printf("not counted as lost:\n");
		for (size_t i = 0; i < rep->nunrec; i++)
			if (rep->unrec[i].kind == STORE_UNREC_TORN)
				print_unrec(&rep->unrec[i]);
	}
	if (rep->unrec_dropped)
		printf("  (the list stops at %u entries; the counts below count all)\n",
		       STORE_UNREC_MAX);
	if (lost)
		printf("could not restore: %" PRIu64 " unreadable packs, %" PRIu64 " damaged pack "
		       "headers, %" PRIu64 " damaged ranges (%" PRIu64 " bytes), %" PRIu64
		       " commits not replayed, %" PRIu64 " commits not found\n"
		       "run defrag-verify to list the files that are affected\n",
		       rep->bad_packs, rep->bad_headers, rep->bad_regions, rep->bad_bytes,
		       rep->failed_commits, rep->missing_commits);
	else if (rep->torn_tails)
		printf("nothing committed was lost\n");
	else
		printf("nothing was lost\n");
}

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
	unsigned long errs;
	int c, rc;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
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
			       "The old index/ (if any) is moved aside to index.broken-TIME first;\n"
			       "it is removed afterwards if it was healthy and nothing was lost.\n\n"
			       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "      --json        print the report as JSON\n"
			       "      --help        display this help and exit\n"
			       "      --version     output version information and exit\n\n"
			       "Every record that checks out is restored, past damage too;\n"
			       "what was not (packs, headers, byte ranges, commits) is listed.\n\n"
			       "Exit status: 0 rebuilt, nothing committed lost; 1 rebuilt,\n"
			       "something not restored (listed); 2 usage error; 3 the store\n"
			       "could not be used. See defrag-recover(8).\n",
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
	errs = dfs_log_errors();
	rc = store_recover(store, &rep);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		store_recover_report_release(&rep);
		return CLI_EXIT_STORE;
	}
	if (json)
		print_json(&rep);
	else
		print_text(&rep);
	rc = store_recover_lost(&rep) ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
	store_recover_report_release(&rep);
	return rc;
}
