/*
 * stat.c - defrag-stat: what the store holds, per source, and the wipe ledger.
 *
 * A source is "safe to wipe: yes" only when its last defrag-verify --against was clean
 * and checked the current state (no ingest of that source since). A source whose last
 * ingest found the store on its filesystem carries a warning (INGEST_SAMEFS_WARNING).
 * Exit status: 0, 2 usage, 3 store unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/ingest.h"
#include "lib_cli.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-stat";

struct sctx {
	struct store *st;
	bool json;
	json_t *arr;
	uint64_t logical;
	const struct store_usage *usage;	/* --by-source, else NULL */
};

static const char *when(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!t)
		return "never";
	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

/* A time in unix seconds, or null for never (0). */
static json_t *json_time(int64_t t)
{
	return t ? json_integer(t) : json_null();
}

/* The cost fields --by-source and --du share, into @o. */
static void cost_json(json_t *o, uint64_t logical, uint64_t ust, uint64_t uch, uint64_t sst,
		      uint64_t sch)
{
	json_object_set_new(o, "logical_bytes", json_integer((json_int_t)logical));
	json_object_set_new(o, "unique_stored_bytes", json_integer((json_int_t)ust));
	json_object_set_new(o, "unique_chunks", json_integer((json_int_t)uch));
	json_object_set_new(o, "shared_stored_bytes", json_integer((json_int_t)sst));
	json_object_set_new(o, "shared_chunks", json_integer((json_int_t)sch));
}

/* --by-source --json: a source's snapshots, oldest first. */
static json_t *snaps_json(const struct store_src_usage *u)
{
	json_t *a = json_array();

	for (size_t i = 0; i < u->nsnaps; i++) {
		const struct store_snap_usage *x = &u->snaps[i];
		char nm[STORE_SNAP_NAME_LEN + 1];
		json_t *o = json_object();

		store_snap_name(x->time, nm);
		json_object_set_new(o, "name", json_string(nm));
		json_object_set_new(o, "time", json_integer((json_int_t)x->time));
		json_object_set_new(o, "files", json_integer((json_int_t)x->files));
		cost_json(o, x->logical, x->unique_stored, x->unique_chunks, x->shared_stored,
			  x->shared_chunks);
		json_array_append_new(a, o);
	}
	return a;
}

static int show(void *arg, const struct store_source *s)
{
	struct sctx *c = arg;
	char a[64], b[64], h[32];
	int shared = ingest_store_shares_fs(c->st, s);	/* 1, 0, or unknown */
	static const struct store_src_usage none;
	const struct store_src_usage *u =
		!c->usage ? NULL : s->id < c->usage->n ? &c->usage->v[s->id] : &none;

	c->logical += s->bytes;
	if (c->json) {
		json_t *o = json_object();

		json_object_set_new(o, "name", json_stringn((const char *)s->name.p, s->name.len));
		json_object_set_new(o, "filesystem", json_stringn((const char *)s->fsid.p,
								  s->fsid.len));
		json_object_set_new(o, "path", json_stringn((const char *)s->path.p, s->path.len));
		/* "never" is null in every field (it was 0 in some, null in another) */
		json_object_set_new(o, "first_ingest", json_time(s->first_ingest));
		json_object_set_new(o, "last_ingest", json_time(s->last_ingest));
		json_object_set_new(o, "files", json_integer((json_int_t)s->files));
		json_object_set_new(o, "bytes", json_integer((json_int_t)s->bytes));
		json_object_set_new(o, "last_against", json_time(s->last_against));
		json_object_set_new(o, "against_failures",
				    s->last_against ? json_integer(s->against_result) : json_null());
		json_object_set_new(o, "safe_to_wipe", json_boolean(ingest_safe_to_wipe(s)));
		json_object_set_new(o, "store_shares_filesystem",
				    shared >= 0 ? json_boolean(shared) : json_null());
		if (u) {
			json_object_set_new(o, "view_files", json_integer((json_int_t)u->files));
			cost_json(o, u->logical, u->unique_stored, u->unique_chunks,
				  u->shared_stored, u->shared_chunks);
			json_object_set_new(o, "snapshots", snaps_json(u));
		}
		json_array_append_new(c->arr, o);
		return 0;
	}
	printf("source %.*s\n", (int)s->name.len, (const char *)s->name.p);
	printf("  filesystem:    %.*s\n", (int)s->fsid.len, (const char *)s->fsid.p);
	printf("  path:          %.*s\n", (int)s->path.len, (const char *)s->path.p);
	printf("  last ingest:   %s (%" PRIu64 " files, %s)\n", when(s->last_ingest, a, sizeof(a)),
	       s->files, cli_human(s->bytes, h, sizeof(h)));
	if (s->last_against)
		printf("  last --against: %s, %s%s\n", when(s->last_against, b, sizeof(b)),
		       s->against_result ? "FAILED" : "clean",
		       s->against_gen != s->ingest_gen ? " (before the last ingest)" : "");
	else
		printf("  last --against: never\n");
	printf("  safe to wipe:  %s\n", ingest_safe_to_wipe(s) ? "yes" : "no");
	if (u) {
		char l[32], o[32], sh[32];

		printf("  view:          %" PRIu64 " files, %s logical\n", u->files,
		       cli_human(u->logical, l, sizeof(l)));
		printf("  only here:     %s stored in %" PRIu64 " chunks (forgetting it and a gc "
		       "free this)\n", cli_human(u->unique_stored, o, sizeof(o)), u->unique_chunks);
		printf("  shared:        %s stored in %" PRIu64 " chunks\n",
		       cli_human(u->shared_stored, sh, sizeof(sh)), u->shared_chunks);
		for (size_t i = 0; i < u->nsnaps; i++) {
			const struct store_snap_usage *x = &u->snaps[i];
			char nm[STORE_SNAP_NAME_LEN + 1];

			store_snap_name(x->time, nm);
			printf("  snapshot %s%s: %" PRIu64 " files, %s logical; only it: %s "
			       "(%" PRIu64 " chunks%s); shared: %s\n", nm,
			       i + 1 == u->nsnaps ? " (newest)" : "", x->files,
			       cli_human(x->logical, l, sizeof(l)),
			       cli_human(x->unique_stored, o, sizeof(o)), x->unique_chunks,
			       i + 1 == u->nsnaps ? "" : ": dropping it and a gc free this",
			       cli_human(x->shared_stored, sh, sizeof(sh)));
		}
	}
	if (shared == 1)
		printf("  warning:       %s\n", INGEST_SAMEFS_WARNING);
	return 0;
}

/* --du PATH: an organized directory's figures (store_usage_du). Exit status. */
static int du_report(struct store *st, const char *store, const char *path, bool json)
{
	uint64_t dir = STORE_ROOT_INO;
	const char *p = path;
	struct store_du d;
	char h[3][32];
	int rc = 0;

	while (*p && rc == 0) {
		size_t n = strcspn(p, "/");
		uint8_t t = DT_DIR;

		if (n)
			rc = store_lookup(st, dir, p, n, &dir, &t);
		if (rc == 0 && t != DT_DIR)
			rc = -ENOTDIR;
		p += n + (p[n] == '/');
	}
	if (rc == 0)
		rc = store_usage_du(st, dir, &d);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		fprintf(stderr, "%s: %s: no such directory in the organized tree (a path from its "
			"root, as under the mount point)\n", prog, path);
		return CLI_EXIT_USAGE;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, store, dfs_strerror(rc));
		return CLI_EXIT_STORE;
	}
	if (json) {
		json_t *o = json_object();

		json_object_set_new(o, "store", json_string(store));
		cli_json_set_path(o, "path", (const uint8_t *)path, strlen(path));
		json_object_set_new(o, "files", json_integer((json_int_t)d.files));
		cost_json(o, d.logical, d.unique_stored, d.unique_chunks, d.shared_stored,
			  d.shared_chunks);
		json_dumpf(o, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(o);
		return 0;
	}
	if (*path)
		cli_print_path(stdout, (const uint8_t *)path, strlen(path));
	else
		fputs("/", stdout);
	printf(": %" PRIu64 " files, %s logical; only here: %s stored in %" PRIu64 " chunks; "
	       "shared with the rest of the tree: %s stored in %" PRIu64 " chunks\n", d.files, cli_human(d.logical, h[0], sizeof(h[0])),
	       cli_human(d.unique_stored, h[1], sizeof(h[1])), d.unique_chunks,
	       cli_human(d.shared_stored, h[2], sizeof(h[2])), d.shared_chunks);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "by-source", no_argument, NULL, 'B' },
		{ "du", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_READER };
	struct sctx c = { 0 };
	struct store_stats ss;
	struct store_usage usage = { 0 };
	struct store *st;
	bool by_source = false;
	const char *store = NULL, *du = NULL;
	char h1[32], h2[32], h3[32], h4[32];
	unsigned long errs;
	int ch, rc;

	dfs_log_set_prog(prog);
	while ((ch = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': store = optarg; break;
		case 'J': c.json = true; break;
		case 'B': by_source = true; break;
		case 'D': du = optarg; break;
		case 'h':
			printf("Usage: %s [--store DIR] [--by-source | --du PATH] [--json]\n"
			       "Show what the store holds: space, and per source its filesystem, last\n"
			       "ingest, last defrag-verify --against and whether it is safe to wipe.\n\n"
			       "  -s, --store DIR   the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "      --by-source   per source and per snapshot also the stored bytes\n"
			       "                    only it references (what forgetting it frees) and\n"
			       "                    those it shares (reads the whole index)\n"
			       "      --du PATH     an organized directory (PATH from the tree's root):\n"
			       "                    its files, and the stored bytes only its files\n"
			       "                    reference in the tree, and those shared\n"
			       "      --json        one JSON object on stdout\n"
			       "  -h, --help, --version\n\nSee defrag-stat(8).\n",
			       prog, STORE_DEFAULT_DIR);
			return 0;
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
	if (du) {
		rc = du_report(st, store, du, c.json);
		store_close(st);
		return rc;
	}
	c.st = st;
	rc = store_get_stats(st, &ss);
	if (rc == 0 && by_source) {
		rc = store_usage_by_source(st, &usage);
		c.usage = &usage;
	}
	if (rc == 0) {
		c.arr = json_array();
		rc = store_each_source(st, show, &c);
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, store, dfs_strerror(rc));
		store_close(st);
		store_usage_release(&usage);
		json_decref(c.arr);
		return CLI_EXIT_STORE;
	}
	if (c.json) {
		json_t *o = json_object();

		json_object_set_new(o, "store", json_string(store));
		json_object_set_new(o, "logical_bytes", json_integer((json_int_t)c.logical));
		json_object_set_new(o, "unique_bytes", json_integer((json_int_t)ss.raw_bytes));
		json_object_set_new(o, "stored_bytes", json_integer((json_int_t)ss.stored_bytes));
		json_object_set_new(o, "pack_bytes", json_integer((json_int_t)ss.pack_bytes));
		json_object_set_new(o, "packs", json_integer((json_int_t)ss.packs));
		json_object_set_new(o, "chunks", json_integer((json_int_t)ss.chunks));
		if (by_source)
			json_object_set_new(o, "garbage_stored_bytes",
					    json_integer((json_int_t)usage.garbage_stored));
		json_object_set_new(o, "sources", c.arr);
		json_dumpf(o, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(o);
	} else {
		json_decref(c.arr);
		printf("store %s\n", store);
		printf("  logical %s, unique %s, stored %s in %" PRIu64 " packs (%s), %" PRIu64
		       " chunks\n", cli_human(c.logical, h1, sizeof(h1)),
		       cli_human(ss.raw_bytes, h2, sizeof(h2)),
		       cli_human(ss.stored_bytes, h3, sizeof(h3)), ss.packs,
		       cli_human(ss.pack_bytes, h4, sizeof(h4)), ss.chunks);
		printf("  dedup %.2fx, compression %.2fx, overall %.2fx\n",
		       ss.raw_bytes ? (double)c.logical / (double)ss.raw_bytes : 1.0,
		       ss.stored_bytes ? (double)ss.raw_bytes / (double)ss.stored_bytes : 1.0,
		       ss.pack_bytes ? (double)c.logical / (double)ss.pack_bytes : 1.0);
		if (by_source)
			printf("  garbage: %s stored in %" PRIu64 " chunks no view references "
			       "(defrag-gc frees it)\n",
			       cli_human(usage.garbage_stored, h1, sizeof(h1)), usage.garbage_chunks);
	}
	store_usage_release(&usage);
	store_close(st);
	return 0;
}
