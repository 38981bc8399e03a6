/*
 * ingest.c - defrag-ingest: read source drives once into the store, then bring the
 * organized tree up to date. The order: ingest_source() for each SOURCE (ingest/), then
 * organize_run() (organize/), then the checkpoint; this file chooses the exit status and
 * prints the progress line and the summary (text or JSON).
 * Exit status: 0 all stored, 1 some files could not be stored (listed), 2 usage error or
 * a refused action, 3 the store could not be used, 130 interrupted (SIGINT, SIGTERM:
 * what was applied is committed, the next run finishes). A refused or failed source
 * prints why, and no summary line of its own.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "classify/classify.h"
#include "ingest/ingest.h"
#include "lib_cli.h"
#include "lib_rules.h"
#include "organize/align.h"
#include "organize/organize.h"
#include "store/log.h"
#include "store/pack.h"

static const char *prog = "defrag-ingest";

enum ingest_progress_when { PROGRESS_AUTO, PROGRESS_ALWAYS, PROGRESS_NEVER };

/* The command line, and what it makes of it. */
struct run {
	const char *store_dir;
	const char *name;		/* only with one source */
	bool json;
	bool allow_same_fs;		/* --allow-same-filesystem */
	bool tty;			/* progress lines redrawn on a terminal */
	enum ingest_progress_when progress;
	struct ingest_opts in;
	struct store_create_opts create;	/* used when the store is created */
	unsigned create_given;		/* GIVEN_*: the creation options on the command line */
	/* a dry run: what it would add, against the store as it is */
	struct ingest_dry_estimate est;
	uint64_t store_bytes;		/* committed pack bytes now (0: no store yet) */
	double meta_per_file;		/* pack bytes of metadata per stored file */
	bool have_cost;			/* the store's record of per-file costs */
	struct ingest_cost cost;
	uint64_t free_bytes;		/* available on the store's filesystem */
	struct cli_rules_note rules;	/* the rules in force, and a change of them */
};

enum { GIVEN_CMIN = 1, GIVEN_CAVG = 2, GIVEN_CMAX = 4, GIVEN_TAR = 8, GIVEN_ZLEVEL = 16 };

/*
 * A store keeps the chunking and compression it was created with: a creation option
 * given for an existing store that holds another value is ignored, and said so (a
 * script that always passes the same values is not stopped by it).
 */
static void note_create_params(const struct run *o, struct store *st)
{
	const struct store_create_opts *p = store_params(st);
	const struct cdc_params *w = &o->create.cdc;
	const struct {
		unsigned bit;
		const char *opt;
		uint64_t want, have;
	} v[] = {
		{ GIVEN_CMIN, "--chunk-min", w->min_size, p->cdc.min_size },
		{ GIVEN_CAVG, "--chunk-avg", w->avg_size, p->cdc.avg_size },
		{ GIVEN_CMAX, "--chunk-max", w->max_size, p->cdc.max_size },
		{ GIVEN_TAR, "--tar-floor", w->tar_floor, p->cdc.tar_floor },
		{ GIVEN_ZLEVEL, "--zstd-level", (uint64_t)o->create.zstd_level,
		  (uint64_t)p->zstd_level },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++)
		if ((o->create_given & v[i].bit) && v[i].want != v[i].have)
			fprintf(stderr, "defrag-ingest: warning: %s %" PRIu64 " ignored: %s keeps "
				"%" PRIu64 " (set when it was created)\n", v[i].opt, v[i].want,
				o->store_dir, v[i].have);
}

/* The exit status of one source's outcome. */
static int cli_ingest_status(const struct ingest_report *r)
{
	switch (r->outcome) {
	case INGEST_DONE: return CLI_EXIT_OK;
	case INGEST_PARTIAL: return CLI_EXIT_PARTIAL;
	case INGEST_REFUSED: return CLI_EXIT_USAGE;
	case INGEST_SOURCE_FAILED: return CLI_EXIT_PARTIAL;
	case INGEST_STORE_FAILED: return CLI_EXIT_STORE;
	case INGEST_INTERRUPTED: return CLI_EXIT_INTERRUPTED;
	}
	return CLI_EXIT_STORE;
}

/* SIGINT, SIGTERM: the signal's number; the ingest stops and commits what it applied. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

/* The first SIGINT or SIGTERM stops the run cleanly; a second one kills it. */
static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Did the source finish (all stored, or some files listed as failed)? Only those are
 * summed up; a refused, failed or interrupted one has said why. */
static bool source_ran(const struct ingest_report *r)
{
	return r->outcome == INGEST_DONE || r->outcome == INGEST_PARTIAL;
}

static void on_progress(const struct ingest_progress *p, void *arg)
{
	const struct run *o = arg;

	cli_progress_line(stderr, o->tty, p);
}

/* A dry run's plan: the categories of every source's report, added up. */
static int plan_totals(const struct ingest_report *sums, int nsum, struct organize_stats *os)
{
	for (int k = 0; k < nsum; k++) {
		for (size_t j = 0; j < sums[k].cats.n; j++) {
			const struct cls_cat *c = &sums[k].cats.v[j];
			int rc = cls_tally_add(&os->cats, c->name, c->files, c->bytes);

			if (rc < 0)
				return rc;
		}
		os->entries += sums[k].planned;
	}
	return 0;
}

/*
 * A dry run's copy alignment: each source's live tree aligned against the store as it is
 * (read-only), as its ingest would align it; the alignments into @os (the summary's).
 * A source is not aligned against another source of the same dry run.
 */
static int dry_align(struct store *st, const struct ingest_report *sums, int nsum,
		     struct organize_stats *os)
{
	int rc = 0;

	for (int k = 0; rc == 0 && k < nsum; k++) {
		const struct ingest_report *r = &sums[k];
		struct org_align_live_entry *e = calloc(r->nlive ? r->nlive : 1, sizeof(*e));
		struct organize_stats one = { 0 };
		void *nv;

		if (!e)
			return -ENOMEM;
		for (size_t i = 0; i < r->nlive; i++) {
			const struct ingest_live_entry *l = &r->live[i];

			e[i] = (struct org_align_live_entry){
				.path = l->path, .len = l->len, .mode = l->mode, .size = l->size,
				.digest = l->digest, .target = l->target,
				.target_len = l->target_len, .rdev = l->rdev };
		}
		if (r->nlive)
			rc = organize_align_live(st, r->name, e, r->nlive, &one);
		free(e);
		nv = rc == 0 ? realloc(os->aligned, (os->naligned + one.naligned + 1) *
				       sizeof(*os->aligned)) : NULL;
		if (rc == 0 && !nv)
			rc = -ENOMEM;
		if (rc == 0) {	/* moved: their strings are @os's now */
			os->aligned = nv;
			memcpy(os->aligned + os->naligned, one.aligned,
			       one.naligned * sizeof(*one.aligned));
			os->naligned += one.naligned;
			one.naligned = 0;
			os->align_dirs_read += one.align_dirs_read;
			os->align_dirs_loaded += one.align_dirs_loaded;
			os->align_dirs_listed += one.align_dirs_listed;
			os->align_replayed += one.align_replayed;
			os->align_lookups += one.align_lookups;
			os->align_swept += one.align_swept;
		}
		organize_stats_release(&one);
	}
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A dry run's metadata: with the store's record of per-file costs, the measured op log
 * of the new contents plus each file's view records and its place in the organized tree
 * at what earlier runs paid; without it, the store's (or a typical) average per file.
 */
static uint64_t dry_meta(const struct run *o, uint64_t files)
{
	const struct ingest_cost *c = &o->cost;
	double per = 0;

	if (!o->have_cost)
		return (uint64_t)(o->meta_per_file * (double)files);
	per = (double)c->view_bytes / (double)c->view_files;
	if (c->org_files)
		per += (double)c->org_bytes / (double)c->org_files;
	return o->est.new_content_meta + (uint64_t)(per * (double)files);
}

static void print_summary(const struct run *o, const struct ingest_report *sums, int nsum,
			  const struct organize_stats *os, bool organized, double secs)
{
	uint64_t files = 0, bytes = 0, rd = 0, nraw = 0, nst = 0, meta = 0, recv = 0, would = 0;
	size_t nfails = 0;
	char a[32], b[32], c[32];

	for (int i = 0; i < nsum; i++) {
		files += sums[i].files;
		bytes += sums[i].bytes;
		rd += sums[i].bytes_read;
		recv += sums[i].bytes_received;
		would += sums[i].would_receive;
		nraw += sums[i].new_raw;
		nst += sums[i].new_stored;
	}
	if (o->in.dry_run) {	/* the run's estimate, deduplicated across its sources */
		nraw = o->est.new_raw;
		nst = o->est.new_stored;
		meta = dry_meta(o, files);
	}
	if (o->json) {
		json_t *root = json_object(), *srcs = json_array(), *fl = json_array();

		json_object_set_new(root, "dry_run", json_boolean(o->in.dry_run));
		json_object_set_new(root, "files", json_integer((json_int_t)files));
		json_object_set_new(root, "logical_bytes", json_integer((json_int_t)bytes));
		json_object_set_new(root, "bytes_read", json_integer((json_int_t)rd));
		json_object_set_new(root, "bytes_received", json_integer((json_int_t)recv));
		if (o->in.dry_run)	/* remote sources: what a real run would receive */
			json_object_set_new(root, "would_receive_bytes",
					    json_integer((json_int_t)would));
		json_object_set_new(root,
				    o->in.dry_run ? "estimated_unique_bytes" : "new_raw_bytes",
				    json_integer((json_int_t)nraw));
		json_object_set_new(root, "new_stored_bytes", json_integer((json_int_t)nst));
		if (o->in.dry_run) {
			json_object_set_new(root, "would_add_bytes",
					    json_integer((json_int_t)(nst + meta)));
			json_object_set_new(root, "would_add_metadata_bytes",
					    json_integer((json_int_t)meta));
			json_object_set_new(root, "new_content_metadata_bytes",
					    o->have_cost ? json_integer((json_int_t)
							o->est.new_content_meta) : json_null());
			json_object_set_new(root, "store_bytes",
					    json_integer((json_int_t)o->store_bytes));
			json_object_set_new(root, "store_free_bytes",
					    json_integer((json_int_t)o->free_bytes));
			json_object_set_new(root, "estimate_sample_every",
					    json_integer((json_int_t)o->est.sample_every));
			json_object_set_new(root, "estimate_incomplete",
					    json_boolean(o->est.incomplete));
		}
		/* everything read was a duplicate: no finite ratio, null (not 1.0) */
		json_object_set_new(root, "dedup_ratio",
				    nraw ? json_real((double)rd / (double)nraw)
					 : rd ? json_null() : json_real(1.0));
		json_object_set_new(root, "compression_ratio",
				    json_real(o->in.dry_run ? o->est.compression
					      : nst ? (double)nraw / (double)nst : 1.0));
		json_object_set_new(root, "elapsed_seconds", json_real(secs));
		for (int i = 0; i < nsum; i++) {
			json_t *s = json_object();

			json_object_set_new(s, "name", json_string(sums[i].name));
			json_object_set_new(s, "files", json_integer((json_int_t)sums[i].files));
			json_object_set_new(s, "unchanged_files",
					    json_integer((json_int_t)sums[i].unchanged));
			json_object_set_new(s, "logical_bytes",
					    json_integer((json_int_t)sums[i].bytes));
			json_object_set_new(s, "bytes_read",
					    json_integer((json_int_t)sums[i].bytes_read));
			json_object_set_new(s, "bytes_received",
					    json_integer((json_int_t)sums[i].bytes_received));
			json_object_set_new(s, "new_stored_bytes",
					    json_integer((json_int_t)sums[i].new_stored));
			json_object_set_new(s, "elapsed_seconds", json_real(sums[i].secs));
			json_object_set_new(s, "mime_calls",
					    json_integer((json_int_t)sums[i].mime_calls));
			json_object_set_new(s, "mime_cpu_seconds", json_real(sums[i].mime_secs));
			json_object_set_new(s, "status", json_integer(cli_ingest_status(&sums[i])));
			json_array_append_new(srcs, s);
		}
		json_object_set_new(root, "sources", srcs);
		if (o->in.no_organize)
			json_object_set_new(root, "organize_deferred", json_true());
		if (organized) {
			json_object_set_new(root, "categories", cli_categories_json(&os->cats));
			json_object_set_new(root, "organize_figures", cli_figures_json(os));
			json_object_set_new(root, "organize_seconds", json_real(os->seconds));
			json_object_set_new(root, "organize_align_seconds",
					    json_real(os->align_seconds));
			json_object_set_new(root, "organize_align_dirs_read",
					    json_integer((json_int_t)os->align_dirs_read));
			json_object_set_new(root, "organize_align_dirs_loaded",
					    json_integer((json_int_t)os->align_dirs_loaded));
			json_object_set_new(root, "organize_align_dirs_listed",
					    json_integer((json_int_t)os->align_dirs_listed));
			json_object_set_new(root, "organize_align_replayed",
					    json_integer((json_int_t)os->align_replayed));
			json_object_set_new(root, "organize_align_lookups",
					    json_integer((json_int_t)os->align_lookups));
			json_object_set_new(root, "organize_align_swept",
					    json_integer((json_int_t)os->align_swept));
			json_object_set_new(root, "organize_mime_computed",
					    json_integer((json_int_t)os->mimes));
			json_object_set_new(root, "organize_symlinks", cli_links_json(os));
			json_object_set_new(root, "organize_skipped", json_boolean(os->skipped));
			json_object_set_new(root, "organize_append", json_boolean(os->append));
			json_object_set_new(root, "alignments", cli_alignments_json(os));
		}
		for (int k = 0; k < nsum; k++) {
			for (size_t i = 0; i < sums[k].nfails; i++) {
				const struct ingest_failure *fi = &sums[k].fails[i];
				json_t *f = json_object();

				json_object_set_new(f, "source", json_string(sums[k].name));
				cli_json_set_path(f, "path", fi->path, fi->len);
				json_object_set_new(f, "error", json_string(fi->why));
				json_array_append_new(fl, f);
			}
		}
		json_object_set_new(root, "failures", fl);
		fl = json_array();
		for (int k = 0; k < nsum; k++) {
			for (size_t i = 0; i < sums[k].nskipped; i++) {
				json_t *f = json_object();

				json_object_set_new(f, "source", json_string(sums[k].name));
				cli_json_set_path(f, "path", sums[k].skipped[i].path,
						  sums[k].skipped[i].len);
				json_array_append_new(fl, f);
			}
		}
		json_object_set_new(root, "skipped_filesystems", fl);
		if (!o->in.dry_run)
			json_object_set_new(root, "rules", cli_rules_json(&o->rules));
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		fputc('\n', stdout);
		json_decref(root);
		return;
	}
	printf("%s%" PRIu64 " files, %s logical, %s read, %s %s, ",
	       o->in.dry_run ? "dry run: " : "", files, cli_human(bytes, a, sizeof(a)),
	       cli_human(rd, b, sizeof(b)), cli_human(nraw, c, sizeof(c)),
	       o->in.dry_run ? "unique (estimate)" : "new unique");
	printf("%s %s\n", cli_human(nst, a, sizeof(a)),
	       o->in.dry_run ? "to store (estimate)" : "newly stored");
	if (recv && o->in.dry_run)	/* remote sources: what would cross the network */
		printf("would receive %s from remote sources (%s received for the dry run)\n",
		       cli_human(would, a, sizeof(a)), cli_human(recv, b, sizeof(b)));
	else if (recv)
		printf("%s received from remote sources\n", cli_human(recv, a, sizeof(a)));
	if (o->in.dry_run) {
		printf("would add %s to the store (now %s, %s free on its filesystem)%s\n",
		       cli_human(nst + meta, a, sizeof(a)), cli_human(o->store_bytes, b, sizeof(b)),
		       cli_human(o->free_bytes, c, sizeof(c)),
		       nst + meta > o->free_bytes ? ": MORE THAN IS FREE" : "");
		if (o->have_cost)
			printf("  content %s, metadata about %s (%s for %" PRIu64 " new contents, "
			       "%.0f B a file as earlier ingests)\n", cli_human(nst, a, sizeof(a)),
			       cli_human(meta, b, sizeof(b)),
			       cli_human(o->est.new_content_meta, c, sizeof(c)),
			       o->est.new_contents, (double)(meta - o->est.new_content_meta) /
			       (double)(files ? files : 1));
		else
			printf("  content %s, metadata about %s (%.0f B a file, %s)\n",
			       cli_human(nst, a, sizeof(a)), cli_human(meta, b, sizeof(b)),
			       o->meta_per_file, o->store_bytes ? "as the store so far"
			       : "a typical figure");
		if (o->est.sample_every > 1 || o->est.incomplete)
			printf("  (estimated from %s: one chunk in %" PRIu64 ")\n",
			       o->est.incomplete ? "a sample, out of memory once" : "a sample",
			       o->est.sample_every);
	}
	if (!nraw && rd)
		printf("dedup: every byte read was already stored, ");
	else
		printf("dedup %.2fx, ", nraw ? (double)rd / (double)nraw : 1.0);
	printf("compression %.2fx%s, %.1f s (%.1f MB/s)\n",
	       o->in.dry_run ? o->est.compression : nst ? (double)nraw / (double)nst : 1.0,
	       o->in.dry_run ? " (estimated on a sample)" : "", secs,
	       secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
	for (int i = 0; i < nsum; i++)
		printf("  source %-20s %10" PRIu64 " files (%" PRIu64 " unchanged)  %s  %s new"
		       "  %.1f s\n", sums[i].name, sums[i].files, sums[i].unchanged,
		       cli_human(sums[i].bytes, a, sizeof(a)),
		       cli_human(sums[i].new_stored, b, sizeof(b)), sums[i].secs);
	if (o->in.no_organize && !o->in.dry_run) {
		printf("organized: not updated (--no-organize); the next ingest or "
		       "defrag-reclassify updates it\n");
	} else if (organized && os->skipped) {
		printf("organized: unchanged (no source changed since the last build, same "
		       "rules), %.1f s\n", os->seconds);
	} else if (organized) {
		for (size_t i = 0; i < os->cats.n; i++)
			printf("  category %-30s %10" PRIu64 " files  %s\n", os->cats.v[i].name,
			       os->cats.v[i].files, cli_human(os->cats.v[i].bytes, a, sizeof(a)));
		printf("organized%s: %" PRIu64 " entries, %" PRIu64 " merged origins, %" PRIu64
		       " renamed on conflict, %" PRIu64 " units, %.1f s\n",
		       os->append ? " (the new sources only)" : "", os->entries, os->merged,
		       os->conflicts, os->units, os->seconds);
		cli_print_alignments(stdout, os);
		cli_print_figures(stdout, os);
		cli_print_links(stdout, os);
	}
	if (o->rules.line[0] && !o->in.dry_run)
		printf("%s\n", o->rules.line);
	for (int k = 0; k < nsum; k++) {
		for (size_t i = 0; i < sums[k].nskipped; i++) {
			printf("  skipped (another filesystem, --one-file-system): %s:",
			       sums[k].name);
			cli_print_path(stdout, sums[k].skipped[i].path, sums[k].skipped[i].len);
			putchar('\n');
		}
	}
	for (int k = 0; k < nsum; k++)
		nfails += sums[k].nfails;
	if (nfails) {
		fprintf(stderr, "%zu item(s) could not be stored:\n", nfails);
		for (int k = 0; k < nsum; k++) {
			for (size_t i = 0; i < sums[k].nfails; i++) {
				fputs("  ", stderr);
				cli_print_path(stderr, sums[k].fails[i].path, sums[k].fails[i].len);
				fprintf(stderr, ": %s\n", sums[k].fails[i].why);
			}
		}
	}
}

/* Available bytes on the filesystem of @dir, or of its nearest existing parent. */
static uint64_t free_bytes(const char *dir)
{
	char *d = strdup(dir);
	struct statvfs sv;
	uint64_t n = 0;

	while (d && statvfs(d, &sv) < 0) {
		char *slash = strrchr(d, '/');

		if (!slash || slash == d) {
			if (statvfs(slash ? "/" : ".", &sv) < 0)
				sv.f_bavail = 0;
			break;
		}
		*slash = '\0';
	}
	if (d)
		n = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	free(d);
	return n;
}

/* What a file costs in op logs when the store cannot tell (measured: 135-170 B a file in
 * stores of a few hundred files of generated data). */
#define DRY_META_PER_FILE 160.0

static int add_files(void *arg, const struct store_source *s)
{
	*(uint64_t *)arg += s->files;
	return 0;
}

/* The pack bytes of @ss that are not chunk records (op logs, pack headers); 0 if none. */
static uint64_t stats_meta(const struct store_stats *ss)
{
	uint64_t chunk_bytes = ss->stored_bytes + ss->chunks * PACK_REC_HDR;

	return ss->pack_bytes > chunk_bytes ? ss->pack_bytes - chunk_bytes : 0;
}

/*
 * A dry run against the store as it is: opened as a reader when it holds an index (its
 * chunks count as known, its chunking is the one that would be used), else none. 0, or
 * -errno (said).
 */
static int dry_store_open(struct run *o, struct store **st)
{
	struct store_open_opts so = { .mode = STORE_READER, .block_cache = 32u << 20 };
	struct store_stats ss;
	char path[PATH_MAX];
	unsigned long errs = dfs_log_errors();
	uint64_t files = 0, meta;
	int rc;

	*st = NULL;
	o->free_bytes = free_bytes(o->store_dir);
	o->meta_per_file = DRY_META_PER_FILE;
	snprintf(path, sizeof(path), "%s/index", o->store_dir);
	if (access(path, F_OK) < 0)
		return 0;	/* no store yet: everything is new */
	rc = store_open(o->store_dir, &so, st);
	if (rc == 0)
		rc = store_get_stats(*st, &ss);
	if (rc < 0) {
		cli_store_failed(prog, o->store_dir, rc, errs);
		store_close(*st);
		*st = NULL;
		return rc;
	}
	o->store_bytes = ss.pack_bytes;
	note_create_params(o, *st);
	rc = store_each_source(*st, add_files, &files);
	/* op logs (files, directories, the organized tree) per file stored so far */
	meta = stats_meta(&ss);
	if (rc == 0 && files && meta)
		o->meta_per_file = (double)meta / (double)files;
	o->have_cost = ingest_cost_get(*st, &o->cost) == 0 && o->cost.view_files;
	o->in.create = store_params(*st);
	ingest_dryset_use_store(o->in.dry, *st);
	return 0;
}

static int any_complete(void *arg, const struct store_source *s)
{
	if (s->last_ingest)
		*(bool *)arg = true;
	return 0;
}

/* The committed pack bytes of @st that are not chunk records: op logs and pack headers. */
static int meta_bytes(struct store *st, uint64_t *out)
{
	struct store_stats ss;
	int rc = store_get_stats(st, &ss);

	*out = rc == 0 ? stats_meta(&ss) : 0;
	return rc;
}

/*
 * After a complete run: what its files' records cost, into the store's record of per-file
 * costs (ingest_cost), for later dry runs. The view part: the op log the sources' commits
 * wrote, less their new contents' (metered), over the files they wrote; the organized
 * part only from a first or an append build, whose entries are all this run's files.
 * 0, or -errno of the commit (said: the store failed to write, though what the run
 * stored is committed).
 */
static int note_costs(struct store *st, const struct ingest_report *sums, int nran,
		      uint64_t before, uint64_t after_view, uint64_t after_org, bool org_new)
{
	struct ingest_cost c = { 0 };
	uint64_t content = 0, files = 0, all = 0;
	int rc;

	for (int i = 0; i < nran; i++) {
		content += sums[i].content_meta;
		files += sums[i].files - sums[i].unchanged;
		all += sums[i].files;
	}
	if (files && after_view >= before + content) {
		c.view_files = files;
		c.view_bytes = after_view - before - content;
	}
	if (org_new && all && after_org >= after_view) {
		c.org_files = all;
		c.org_bytes = after_org - after_view;
	}
	if (!c.view_files)
		return 0;	/* nothing written that a dry run could learn from */
	rc = ingest_cost_note(st, &c);
	if (rc < 0)
		fprintf(stderr, "defrag-ingest: %s: cannot write the record of per-file costs: "
			"%s (everything this run stored is committed)\n", store_dir(st),
			dfs_strerror(rc));
	return rc;
}

/* Moves the reports of sources that ran to the front; their number. */
static int ran_first(struct ingest_report *sums, int nsum)
{
	int n = 0;

	for (int i = 0; i < nsum; i++) {
		if (source_ran(&sums[i])) {
			struct ingest_report t = sums[n];

			sums[n++] = sums[i];
			sums[i] = t;
		}
	}
	return n;
}

/*
 * Ingests @reals (resolved SOURCE paths, each checked to be a directory), then organizes
 * and checkpoints. The exit status.
 */
static int run_ingest(struct run *o, char **reals, int nsources)
{
	struct store_open_opts so = { .mode = STORE_WRITER, .create = true,
				      .create_opts = &o->create,
				      .block_cache = 32u << 20 };
	struct organize_stats os = { 0 };
	struct ingest_report *sums;
	struct store_txn *tx = NULL;
	struct store *st = NULL;
	bool organized = false, stopped = false;
	double t0 = now_s();
	int status = CLI_EXIT_OK, rc, nsum = 0, nran;
	uint64_t committed = 0, m_start = 0;
	bool had_sources = false;
	char err[512];

	sums = calloc((size_t)nsources, sizeof(*sums));
	if (!sums)
		return CLI_EXIT_STORE;
	if (o->in.dry_run) {
		rc = ingest_dryset_new(&o->in.dry);
		if (rc == 0)
			rc = dry_store_open(o, &st);
		if (rc < 0) {
			ingest_dryset_free(o->in.dry);
			o->in.dry = NULL;
			free(sums);
			return CLI_EXIT_STORE;
		}
	} else {
		unsigned long errs = dfs_log_errors();

		rc = store_open(o->store_dir, &so, &st);
		if (rc < 0) {
			cli_store_failed(prog, o->store_dir, rc, errs);
			free(sums);
			return CLI_EXIT_STORE;
		}
		if (o->create.packs[0] && strcmp(store_params(st)->packs, o->create.packs)) {
			fprintf(stderr, "%s: %s keeps its packs %s%s; --packs applies when a "
				"store is created (defrag-store push moves packs)\n", prog,
				o->store_dir, store_params(st)->packs[0] ? "in " : "in itself",
				store_params(st)->packs);
			store_close(st);
			free(sums);
			return CLI_EXIT_USAGE;
		}
		note_create_params(o, st);
		/* what a dry run learns from this run: the op log bytes it adds */
		if (meta_bytes(st, &m_start) == 0)
			store_each_source(st, any_complete, &had_sources);
		rc = store_txn_begin(st, &tx);
		if (rc == 0)
			rc = ingest_ensure_roots(tx);
		/* --rules FILE is kept (builtin: dropped) with this run's first commit */
		if (rc == 0)
			rc = cli_rules_keep(tx, o->in.rules, &o->rules, err, sizeof(err));
		if (rc == -EINVAL) {
			fprintf(stderr, "defrag-ingest: %s\n", err);
			status = CLI_EXIT_USAGE;
			goto out;
		}
		if (rc < 0) {
			fprintf(stderr, "defrag-ingest: %s: %s\n", o->store_dir, dfs_strerror(rc));
			status = CLI_EXIT_STORE;
			goto out;
		}
	}
	for (int i = 0; i < nsources && !interrupted; i++) {
		const char *name = o->name;
		int s;

		if (!name && ingest_is_remote(reals[i])) {
			name = ingest_remote_base(reals[i]);
		} else if (!name) {
			const char *slash = strrchr(reals[i], '/');

			name = slash && slash[1] ? slash + 1 : "root";
		}
		ingest_source(o->in.dry_run ? NULL : st, &tx, reals[i], name, &o->in, &sums[nsum]);
		if (o->tty && o->in.progress)
			fputc('\n', stderr);
		if (sums[nsum].message[0])
			fprintf(stderr, "defrag-ingest: %s\n", sums[nsum].message);
		if (sums[nsum].outcome == INGEST_INTERRUPTED)
			stopped = true;
		committed += sums[nsum].files;
		s = cli_ingest_status(&sums[nsum]);
		nsum++;
		if (s > status)
			status = s;
		if (s == CLI_EXIT_STORE)
			break;
	}
	nran = ran_first(sums, nsum);
	if (interrupted && !stopped && status != CLI_EXIT_STORE && !o->in.dry_run) {
		/* between two sources: every source so far is complete */
		fprintf(stderr, "defrag-ingest: interrupted: %" PRIu64 " files committed, run "
			"the same command to finish\n", committed);
		stopped = true;
	}
	if (interrupted && !stopped && o->in.dry_run) {
		fprintf(stderr, "defrag-ingest: interrupted: the dry run stopped\n");
		stopped = true;
	}
	if (stopped && status != CLI_EXIT_STORE)
		status = CLI_EXIT_INTERRUPTED;
	if (o->in.dry_run) {
		ingest_dryset_estimate(o->in.dry, &o->est);
		organized = plan_totals(sums, nran, &os) == 0;
		rc = organized && st && !stopped ? dry_align(st, sums, nran, &os) : 0;
		if (rc < 0)
			fprintf(stderr, "defrag-ingest: the dry run's copy alignment failed: %s\n",
				dfs_strerror(rc));
	} else if (status != CLI_EXIT_STORE) {
		uint64_t m_view = 0, m_org = 0;
		bool org_new = false;

		/* what a refused or interrupted source applied before it stopped is kept */
		rc = store_txn_commit(tx);
		tx = NULL;
		if (rc == 0)
			meta_bytes(st, &m_view);
		if (rc == 0 && !o->in.no_organize && nran && !stopped) {
			/* the checkpoint below flushes the index: the ingest's part is
			 * flushed on RocksDB's thread beside the build's final commit */
			if (o->in.progress)
				fprintf(stderr, "defrag-ingest: organizing the tree\n");
			rc = organize_run_stoppable(st, o->in.rules, ORG_FLUSH, &interrupted, &os,
						    err, sizeof(err));
			if (rc == -EINTR) {
				fprintf(stderr, "defrag-ingest: interrupted while organizing: %"
					PRIu64 " files committed; the organized tree is incomplete "
					"until the next defrag-ingest or defrag-reclassify\n",
					committed);
				stopped = true;
				status = CLI_EXIT_INTERRUPTED;
				rc = 0;
			} else if (rc < 0) {
				fprintf(stderr, "defrag-ingest: organizing the tree failed: %s\n",
					err[0] ? err : dfs_strerror(rc));
			}
			organized = rc == 0 && !stopped;
			/* a first build, or an append one: every entry it wrote is this run's */
			org_new = organized && !os.skipped && (os.append || !had_sources);
			if (organized)
				meta_bytes(st, &m_org);
		}
		if (rc == 0 && !stopped && nran && m_view)
			rc = note_costs(st, sums, nran, m_start, m_view,
					org_new ? m_org : m_view, org_new);
		if (rc == 0 && !stopped)
			rc = store_checkpoint(st);
		if (rc < 0)
			status = CLI_EXIT_STORE;
	}
	if (nran && !stopped)
		print_summary(o, sums, nran, &os, organized, now_s() - t0);
out:
	store_txn_abort(tx);
	store_close(st);
	ingest_dryset_free(o->in.dry);
	o->in.dry = NULL;
	organize_stats_release(&os);
	for (int i = 0; i < nsum; i++)
		ingest_report_release(&sums[i]);
	free(sums);
	return status;
}

/*
 * Resolves every SOURCE before anything is created: each must be a directory (exit 2
 * otherwise). Then, unless --allow-same-filesystem or a dry run, a store on a source's
 * filesystem (or inside it) is refused. *@reals: the resolved paths. The exit status.
 */
static int check_sources(const struct run *o, char **sources, int n, char ***reals)
{
	char **v = calloc((size_t)n, sizeof(*v));
	int status = CLI_EXIT_OK;

	*reals = v;
	if (!v)
		return CLI_EXIT_STORE;
	for (int i = 0; i < n; i++) {
		const char *name = o->name;
		struct stat sb;
		char why[64];
		int rc;

		if (ingest_is_remote(sources[i])) {	/* checked there, by the handshake */
			v[i] = strdup(sources[i]);
			if (!name)
				name = ingest_remote_base(sources[i]);
			if (!v[i])
				return CLI_EXIT_STORE;
			if (!name || !ingest_valid_name(name)) {
				fprintf(stderr, "defrag-ingest: %s: no valid source name in it; "
					"give one with --name\n", sources[i]);
				return CLI_EXIT_USAGE;
			}
			continue;
		}
		v[i] = realpath(sources[i], NULL);
		if (!v[i] || stat(v[i], &sb) < 0) {
			fprintf(stderr, "defrag-ingest: %s: %s\n", sources[i], strerror(errno));
			return CLI_EXIT_USAGE;
		}
		if (!S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "defrag-ingest: %s: not a directory (a SOURCE is a drive's "
				"mount point or a directory)\n", sources[i]);
			return CLI_EXIT_USAGE;
		}
		if (!name) {
			name = strrchr(v[i], '/');
			name = name && name[1] ? name + 1 : "root";
		}
		if (!ingest_valid_name(name)) {
			fprintf(stderr, "defrag-ingest: '%s' is not a valid source name\n", name);
			return CLI_EXIT_USAGE;
		}
		if (o->allow_same_fs || o->in.dry_run)
			continue;
		rc = ingest_path_shares_store_fs(o->store_dir, v[i], why, sizeof(why));
		if (rc > 0) {
			fprintf(stderr, "defrag-ingest: refused: %s: the store %s %s: wiping "
				"the drive would wipe the store; put the store on another drive "
				"(--store), or add --allow-same-filesystem\n", sources[i],
				o->store_dir, why);
			status = CLI_EXIT_USAGE;
		}
	}
	return status;
}

/* @what (inside @source: relative to it, or absolute) as a source-relative path, or NULL. */
static char *source_relative(const char *source, const char *what)
{
	char *rs = realpath(source, NULL), *copy = strdup(what), *dir = NULL, *out = NULL;
	const char *base;
	size_t rl;

	if (!rs || !copy)
		goto out;
	if (what[0] != '/') {
		const char *p = what;

		while (p[0] == '.' && p[1] == '/')
			p += 2;
		out = strdup(p);
		goto out;
	}
	base = strrchr(copy, '/') + 1;
	copy[base - copy - 1] = '\0';
	dir = realpath(copy[0] ? copy : "/", NULL);	/* the last component is not followed */
	rl = strlen(rs);
	if (!dir || strncmp(dir, rs, rl) || (dir[rl] && dir[rl] != '/'))
		goto out;
	if (asprintf(&out, "%s%s%s", dir[rl] ? dir + rl + 1 : "", dir[rl] && *base ? "/" : "",
		     base) < 0)
		out = NULL;
out:
	free(rs);
	free(copy);
	free(dir);
	return out;
}

struct id_name {
	uint32_t id;
	char name[256];
};

static int find_id(void *arg, const struct store_source *s)
{
	struct id_name *x = arg;

	if (s->id != x->id)
		return 0;
	snprintf(x->name, sizeof(x->name), "%.*s", (int)s->name.len, (const char *)s->name.p);
	return 1;
}

/*
 * --explain's last lines: the aligned folder above the entry, if any (copy alignment,
 * CLASSIFY.md): which folder it copies, how similar they are, and the counts. From the
 * index alone (the alignment's kept signatures), as the last build saw the sources.
 */
static void explain_alignment(struct store *st, const char *source, const char *what,
			      const char *name)
{
	struct store_source s = { 0 };
	struct org_align *a = NULL;
	const struct org_align_report *hit = NULL;
	char *rel = source_relative(source, what), *rs = NULL;
	struct id_name t = { 0 };

	if (!name) {
		rs = realpath(source, NULL);
		name = rs && strrchr(rs, '/')[1] ? strrchr(rs, '/') + 1 : "root";
	}
	if (!rel || store_get_source(st, name, strlen(name), &s) < 0 ||
	    org_align_compute(st, NULL, &a) < 0)
		goto out;
	for (size_t i = 0; i < org_align_count(a) && !hit; i++) {
		const struct org_align_report *r = org_align_get(a, i);

		if (r->source == s.id &&
		    (!r->path_len || (!strncmp(rel, (const char *)r->path, r->path_len) &&
				      (rel[r->path_len] == '/' || !rel[r->path_len]))))
			hit = r;
	}
	if (!hit) {
		printf("alignment: none (no folder above it copies another folder)\n");
		goto out;
	}
	t.id = hit->target_source;
	if (store_each_source(st, find_id, &t) < 0 || !t.name[0])
		snprintf(t.name, sizeof(t.name), "source %u", hit->target_source);
	printf("alignment: %s:/", name);
	cli_print_path(stdout, hit->path, hit->path_len);
	printf(" is a copy of %s:/", t.name);
	cli_print_path(stdout, hit->target, hit->target_len);
	printf(" (%.0f%% identical: %" PRIu64 " files identical, %" PRIu64 " changed, %" PRIu64
	       " only here, %" PRIu64 " only there); it is placed as if it were there\n",
	       hit->similarity * 100.0, hit->identical, hit->changed, hit->only_here,
	       hit->only_there);
out:
	org_align_free(a);
	store_source_release(&s);
	free(rel);
	free(rs);
}

/*
 * --explain: the store is opened as a reader when there is one, to show where it placed
 * the entry and to use the rules it keeps; without a store, only the rules' result.
 */
static int explain_run(const struct run *o, const char *source, const char *what,
		       bool verbose, char *err, size_t errlen)
{
	struct store_open_opts so = { .mode = STORE_READER };
	struct store *st = NULL;
	char cfg[PATH_MAX];
	int rc;

	snprintf(cfg, sizeof(cfg), "%s/config", o->store_dir);
	if (access(cfg, F_OK) == 0) {
		rc = store_open(o->store_dir, &so, &st);
		if (rc < 0)
			fprintf(stderr, "%s: %s: the store cannot be read (%s): only the rules' "
				"result is shown\n", prog, o->store_dir, dfs_strerror(rc));
	}
	rc = ingest_explain(st, source, what, o->name, o->in.rules, verbose, stdout, err, errlen);
	if (rc == 0 && st)
		explain_alignment(st, source, what, o->name);
	store_close(st);
	return rc;
}

static void usage(void)
{
	printf("Usage: %s [OPTION]... SOURCE...\n"
	       "SOURCE is a directory, or one on another machine: ssh://[USER@]HOST[:PORT]/PATH\n"
	       "or HOST:PATH (defrag-ingest --serve runs there through ssh; only chunks the\n"
	       "store lacks cross the network).\n"
	       "Read each SOURCE directory (a drive's mount point) once, store its content\n"
	       "deduplicated and compressed, and update the organized tree.\n\n"
	       "  -s, --store DIR          the store (default: $DEFRAGFS_STORE, else %s);\n"
	       "                           created on first use\n"
	       "  -n, --name NAME          the source's name (default: basename of SOURCE;\n"
	       "                           only with one SOURCE)\n"
	       "  -r, --rules FILE         classification rules, kept in the store for later\n"
	       "                           runs; 'builtin': the built-in rules again (default:\n"
	       "                           the rules the store keeps, else the built-in rules\n"
	       "                           and %s if present)\n"
	       "  -x, --exclude GLOB       skip paths matching GLOB (repeatable)\n"
	       "  -j, --jobs N             worker threads (default: number of CPUs)\n"
	       "      --one-file-system    do not cross into other filesystems\n"
	       "      --explain PATH       show how PATH (inside SOURCE: relative to it, or\n"
	       "                           absolute) is classified: its unit, the rules that\n"
	       "                           came close (-v: every rule), the result, and where\n"
	       "                           the store placed it\n"
	       "  -e, --rsh COMMAND        the ssh command for remote sources (default: ssh),\n"
	       "                           as rsync's: -e 'ssh -p 2222 -i KEY'\n"
	       "      --remote-cmd PATH    the defrag-ingest to run on the remote machine\n"
	       "                           (default: defrag-ingest, found in its PATH)\n"
	       "      --serve              the remote side (run by ssh, not by hand): reads\n"
	       "                           the handshake on stdin, answers on stdout\n"
	       "      --dry-run            walk, read and hash; say what the run would add\n"
	       "                           to the store as it is; write nothing\n"
	       "      --no-organize        store the sources only; the organized tree is\n"
	       "                           brought up to date by the next run without it\n"
	       "                           or by defrag-reclassify\n"
	       "      --progress=WHEN      auto (on a terminal), always, never\n"
	       "      --json               print the summary as one JSON object\n"
	       "      --replace            accept a source name now on another filesystem\n"
	       "                           (a run that would remove more than half of its\n"
	       "                           files still needs --allow-deletions)\n"
	       "      --allow-deletions    accept a run that removes more than half of a\n"
	       "                           source's stored files\n"
	       "      --alias              accept a second name (--name) for a directory\n"
	       "                           that is already a source of the store\n"
	       "      --allow-same-filesystem  accept a store on the source's filesystem or\n"
	       "                           inside it (wiping the drive wipes the store)\n"
	       "      --chunk-min SIZE, --chunk-avg SIZE, --chunk-max SIZE, --zstd-level N\n"
	       "                           parameters of a store being created (ignored\n"
	       "                           after, with a warning where they differ)\n"
	       "      --tar-floor SIZE     a store being created cuts chunks around the\n"
	       "                           members of tar archives of at least SIZE bytes\n"
	       "                           (default 2049; 0: never; ignored after, as above)\n"
	       "      --packs s3://BUCKET[/PREFIX]  a store being created keeps its packs\n"
	       "                           in this S3 bucket (the index and a staging area\n"
	       "                           stay in the store); with --s3-endpoint URL and\n"
	       "                           optionally --s3-addressing path|vhost (default\n"
	       "                           path), --s3-region R, --s3-credentials FILE\n"
	       "                           (else $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)\n"
	       "  -v, --verbose            more messages\n"
	       "  -h, --help               display this help and exit\n"
	       "      --version            output version information and exit\n\n"
	       "Exit status: 0 all stored; 1 some files could not be stored (each listed);\n"
	       "2 usage error or refused action; 3 the store could not be used;\n"
	       "130 interrupted (what was stored is kept: run the same command to finish).\n"
	       "See defrag-ingest(8).\n",
	       prog, STORE_DEFAULT_DIR, CLS_SYSTEM_RULES);
	exit(CLI_EXIT_OK);
}

enum { OPT_ONEFS = 256, OPT_DRY, OPT_PROGRESS, OPT_JSON, OPT_REPLACE, OPT_ALLOWDEL,
       OPT_CMIN, OPT_CAVG, OPT_CMAX, OPT_TARFLOOR, OPT_ZLEVEL, OPT_HELP, OPT_VERSION, OPT_EXPLAIN,
       OPT_NOORG, OPT_ALIAS, OPT_SAMEFS, OPT_SERVE, OPT_REMOTE_CMD, OPT_PACKS,
       OPT_S3_ENDPOINT, OPT_S3_ADDRESSING, OPT_S3_REGION, OPT_S3_CREDENTIALS };

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
		{ "alias", no_argument, NULL, OPT_ALIAS },
		{ "allow-same-filesystem", no_argument, NULL, OPT_SAMEFS },
		{ "chunk-min", required_argument, NULL, OPT_CMIN },
		{ "tar-floor", required_argument, NULL, OPT_TARFLOOR },
		{ "chunk-avg", required_argument, NULL, OPT_CAVG },
		{ "chunk-max", required_argument, NULL, OPT_CMAX },
		{ "zstd-level", required_argument, NULL, OPT_ZLEVEL },
		{ "explain", required_argument, NULL, OPT_EXPLAIN },
		{ "rsh", required_argument, NULL, 'e' },
		{ "remote-cmd", required_argument, NULL, OPT_REMOTE_CMD },
		{ "serve", no_argument, NULL, OPT_SERVE },
		CLI_PACKS_LONGOPTS(OPT_PACKS),
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct run o = { 0 };
	const char **excludes;
	char **reals = NULL;
	const char *store = NULL, *explain = NULL;
	bool verbose = false, serve = false;
	char err[512];
	uint64_t v;
	int c, rc;

	dfs_log_set_prog(prog);
	/* the ssh of a remote source that ends makes writes fail with EPIPE, which is said
	 * and gets its exit status, instead of killing the process silently */
	signal(SIGPIPE, SIG_IGN);
	store_create_opts_default(&o.create);
	o.progress = PROGRESS_AUTO;
	excludes = calloc((size_t)argc, sizeof(*excludes));
	if (!excludes)
		return CLI_EXIT_STORE;
	o.in.excludes = excludes;
	while ((c = getopt_long(argc, argv, "s:n:r:x:j:e:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			store = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'r':
			o.in.rules = optarg;
			break;
		case 'x':
			if (ingest_exclude_check(optarg))
				cli_usage_error(prog, "--exclude '%s': not supported: %s",
						optarg, ingest_exclude_check(optarg));
			excludes[o.in.nexcludes++] = optarg;
			break;
		case 'j':
			if (cli_parse_size(optarg, &v) < 0 || v < 1 || v > 256)
				cli_usage_error(prog, "invalid --jobs '%s' (1..256)", optarg);
			o.in.jobs = (int)v;
			break;
		case OPT_ONEFS:
			o.in.one_fs = true;
			break;
		case OPT_DRY:
			o.in.dry_run = true;
			break;
		case OPT_NOORG:
			o.in.no_organize = true;
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
			o.in.replace = true;
			break;
		case OPT_ALLOWDEL:
			o.in.allow_deletions = true;
			break;
		case OPT_ALIAS:
			o.in.alias = true;
			break;
		case OPT_SAMEFS:
			o.allow_same_fs = true;
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
			o.create_given |= c == OPT_CMIN ? GIVEN_CMIN : c == OPT_CAVG ? GIVEN_CAVG
										: GIVEN_CMAX;
			break;
		case OPT_TARFLOOR:
			if (cli_parse_size(optarg, &v) < 0 || v > UINT32_MAX)
				cli_usage_error(prog, "invalid --tar-floor '%s'", optarg);
			o.create.cdc.tar_floor = (uint32_t)v;
			o.create_given |= GIVEN_TAR;
			break;
		case OPT_ZLEVEL:
			if (cli_parse_size(optarg, &v) < 0 || v < 1 || v > CODEC_MAX_LEVEL)
				cli_usage_error(prog, "invalid --zstd-level '%s' (1..%d)", optarg,
						CODEC_MAX_LEVEL);
			o.create.zstd_level = (int)v;
			o.create_given |= GIVEN_ZLEVEL;
			break;
		case OPT_EXPLAIN:
			explain = optarg;
			break;
		case 'e':
			o.in.rsh = optarg;
			break;
		case OPT_REMOTE_CMD:
			o.in.remote_cmd = optarg;
			break;
		case OPT_SERVE:
			serve = true;
			break;
		case OPT_PACKS:
		case OPT_S3_ENDPOINT:
		case OPT_S3_ADDRESSING:
		case OPT_S3_REGION:
		case OPT_S3_CREDENTIALS:
			cli_packs_option(prog, c - OPT_PACKS, optarg, &o.create);
			break;
		case 'v':
			dfs_log_set_level(DFS_LOG_INFO);
			verbose = true;
			break;
		case 'h':
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
	if (serve) {	/* the remote side of a remote source: stdin and stdout are ssh's */
		if (optind < argc)
			cli_usage_error(prog, "--serve takes no SOURCE (the local side names it)");
		rc = ingest_serve(STDIN_FILENO, STDOUT_FILENO, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "%s --serve: %s\n", prog, err);
		free(excludes);
		return rc < 0 ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
	}
	if (optind >= argc)
		cli_usage_error(prog, "missing SOURCE");
	if (o.name && argc - optind > 1)
		cli_usage_error(prog, "--name applies to a single SOURCE");
	if (cdc_params_check(&o.create.cdc) < 0)
		cli_usage_error(prog, "invalid chunk sizes: need min <= avg <= max, avg a power "
				"of two, within 1 KiB .. 64 MiB");
	cli_packs_check(prog, &o.create);
	o.store_dir = cli_store_dir(store);
	/* scripts (and the test suite, whose stores sit beside their sources) say it once */
	if (!o.allow_same_fs) {
		const char *e = getenv("DEFRAGFS_ALLOW_SAME_FILESYSTEM");

		o.allow_same_fs = e && !strcmp(e, "1");
	}
	o.in.create = &o.create;
	o.tty = o.progress == PROGRESS_AUTO ? isatty(STDERR_FILENO) : false;
	if (o.tty || o.progress == PROGRESS_ALWAYS) {
		o.in.progress = on_progress;
		o.in.progress_arg = &o;
		o.in.progress_interval = o.tty ? 0.5 : 10;
	}
	/* A broken rules file stops everything before any byte is ingested. */
	if (cli_rules_check(prog, o.in.rules)) {
		free(excludes);
		return CLI_EXIT_USAGE;
	}
	if (explain) {
		if (argc - optind != 1)
			cli_usage_error(prog, "--explain needs exactly one SOURCE");
		if (access(argv[optind], F_OK) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[optind], strerror(errno));
			free(excludes);
			return CLI_EXIT_USAGE;
		}
		rc = explain_run(&o, argv[optind], explain, verbose, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "%s: %s\n", prog, err);
		free(excludes);
		return rc == -EXDEV ? CLI_EXIT_USAGE : rc < 0 ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
	}
	rc = check_sources(&o, argv + optind, argc - optind, &reals);
	if (rc == CLI_EXIT_OK) {
		catch_signals();
		o.in.interrupt = &interrupted;
		rc = run_ingest(&o, reals, argc - optind);
	}
	for (int i = 0; reals && i < argc - optind; i++)
		free(reals[i]);
	free(reals);
	free(excludes);
	return rc;
}
