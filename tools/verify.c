/*
 * verify.c - defrag-verify: prove the store is whole, and that a source drive is in it.
 *
 *   1. every chunk record the index names is read back and its checksum checked
 *      (--read-data: also decompressed and re-hashed to its SHA-256 id);
 *   2. every committed pack: header, records tiling it up to its committed length,
 *      every META record's checksum (what an index rebuild replays);
 *   3. one scan of the content objects maps damaged or missing chunks to content ids;
 *   4. a walk of both views names every file that uses them;
 *   5. --against SOURCE: every entry of the source is compared with /.sources/NAME
 *      (type, mode, owner, mtime, size, symlink target, xattrs and ACLs, every byte);
 *      atime/ctime differences are reported but do not fail; each entry that differs is
 *      reported once, with every difference, and where it happened: CHANGED on the drive
 *      since the last ingest (a newer mtime or ctime, another size; the store's copy read
 *      whole and intact), DAMAGED in the store (its copy fails a check), or DIFFERS
 *      (neither can be told, or the drive cannot be read there); entries the last
 *      ingest's --exclude patterns left out (kept in the source record) are skipped and
 *      counted; a store on the drive's filesystem is warned about; the result is
 *      recorded in the source record (the wipe ledger of defrag-stat);
 *   6. --repair (with --against): a damaged chunk whose bytes are still in the source
 *      (an extent of a file that uses it, re-read and re-hashed to the chunk's id) is
 *      appended again to a new pack and the index repointed to the new copy; each
 *      repaired chunk is then read back before it counts as repaired; from a remote
 *      SOURCE only those extents are fetched through ssh (FETCH, cmp_remote).
 * Steps 5 and 6 are the engine of ingest/compare.h (cmp_source, cmp_remote); this file
 * prints what it reports.
 * Exit status: 0 clean, 1 problems found (each listed), 2 usage, 3 store unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/compare.h"
#include "ingest/exclude.h"
#include "ingest/ingest.h"
#include "lib_cli.h"
#include "store/buf.h"
#include "store/hset.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-verify";

struct vctx {
	struct store *st;
	struct codec *codec;
	bool read_data;
	bool json;
	bool verbose;
	uint8_t *buf;
	uint64_t chunks, chunk_bytes;
	struct fpset bad_chunks;
	struct fpset bad_contents;
	struct fpset fixed;	/* chunks appended again by --repair */
	uint64_t received;	/* bytes from a remote drive by --repair */
	uint64_t files_checked;
	uint64_t problems;
	uint64_t notes;		/* source entries that differ only in atime/ctime */
	char gate_view[300];	/* "/.sources/NAME" of --against, else "" */
	uint64_t gate_problems;	/* problems found in that view by the store checks */
	char view[512];		/* what a source-relative path is printed after */
	json_t *jdamaged;
	json_t *jpacks;
	json_t *jproblems;
	json_t *jnotes;
	json_t *jrepaired;
	json_t *jwarnings;
	uint64_t kinds[4];	/* entries reported per enum cmp_kind (--against) */
	/* the progress line (stderr, on a terminal or with --progress=always) */
	bool progress;
	bool tty;
	const char *phase;		/* "checking chunks", "comparing NAME" */
	double t0, last;		/* the phase's start, the last line (monotonic s) */
	uint64_t total_n, total_bytes;	/* what the phase will cover (0: unknown) */
	uint64_t done_n, done_bytes;
	const char *unit;		/* "chunks", "files" */
	bool drawn;			/* a line is on the terminal */
};

#ifdef DFS_TEST_FAULTS
/*
 * DFS_FAULT_GATE_HOLD=STAGE:FILE (tests, DFS_TEST_FAULTS builds): at STAGE the gate
 * creates FILE.held and waits until FILE exists (a minute at most). Stages: "compare"
 * (its generation read, nothing compared yet), "record" (the writer lock held, the
 * result not yet written). Lets a test put an ingest at either point without racing.
 */
static void fault_hold(const char *stage)
{
	const char *e = getenv("DFS_FAULT_GATE_HOLD");
	size_t n = strlen(stage);
	char held[4096];
	FILE *f;

	if (!e || strncmp(e, stage, n) || e[n] != ':')
		return;
	snprintf(held, sizeof(held), "%s.held", e + n + 1);
	f = fopen(held, "w");
	if (f)
		fclose(f);
	for (int i = 0; i < 6000 && access(e + n + 1, F_OK) < 0; i++)
		usleep(10 * 1000);
}
#else
static void fault_hold(const char *stage)
{
	(void)stage;
}
#endif

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The progress line, at most twice a second (every 10 s when not a terminal). */
static void progress_line(struct vctx *v, bool final)
{
	double t = now_s(), el = t - v->t0, mbs;
	char a[32], b[32], eta[32] = "?";

	if (!v->progress || !v->phase)
		return;
	if (!final && t - v->last < (v->tty ? 0.5 : 10))
		return;
	v->last = t;
	mbs = el > 0 ? (double)v->done_bytes / el / 1e6 : 0;
	if (v->total_bytes > v->done_bytes && mbs > 0)
		snprintf(eta, sizeof(eta), "%.0fs",
			 (double)(v->total_bytes - v->done_bytes) / 1e6 / mbs);
	else if (v->total_bytes && v->done_bytes >= v->total_bytes)
		snprintf(eta, sizeof(eta), "0s");
	fprintf(stderr, "%s%s: %s: %" PRIu64, v->tty ? "\r\033[K" : "", prog, v->phase,
		v->done_n);
	if (v->total_n)
		fprintf(stderr, "/%" PRIu64, v->total_n);
	fprintf(stderr, " %s, %s", v->unit, cli_human(v->done_bytes, a, sizeof(a)));
	if (v->total_bytes)
		fprintf(stderr, "/%s", cli_human(v->total_bytes, b, sizeof(b)));
	fprintf(stderr, ", %.1f MB/s, ETA %s%s", mbs, eta, v->tty ? "" : "\n");
	fflush(stderr);
	v->drawn = v->tty;
}

static void progress_begin(struct vctx *v, const char *phase, const char *unit, uint64_t n,
			   uint64_t bytes)
{
	v->phase = phase;
	v->unit = unit;
	v->total_n = n;
	v->total_bytes = bytes;
	v->done_n = v->done_bytes = 0;
	v->t0 = v->last = now_s();
}

/* The phase is over: its last line stays (a newline ends it on a terminal). */
static void progress_end(struct vctx *v)
{
	if (v->progress && v->phase && v->done_n)
		progress_line(v, true);
	if (v->drawn)
		fputc('\n', stderr);
	v->drawn = false;
	v->phase = NULL;
}

/* Anything printed while a line is drawn starts on a line of its own. */
static void progress_clear(struct vctx *v)
{
	if (v->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		v->drawn = false;
		v->last = 0;	/* drawn again at the next step */
	}
}

static void on_progress(void *arg, const struct cmp_stats *s)
{
	struct vctx *v = arg;

	v->done_n = s->files;
	v->done_bytes = s->bytes;
	progress_line(v, false);
}

/* What a report's kind says: the word it starts with, the words after its message. */
static const char *const kind_word[] = { "note", "CHANGED", "DAMAGED", "DIFFERS" };
static const char *const kind_json[] = { "note", "changed", "damaged", "differs" };
static const char *const kind_where[] = {
	"", " (changed on the drive since the last ingest; the store's copy is intact)",
	" (damaged in the store)", "",
};

static void report(struct vctx *v, enum cmp_kind kind, const char *view, const uint8_t *path,
		   size_t len, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct vctx *v, enum cmp_kind kind, const char *view, const uint8_t *path,
		   size_t len, const char *fmt, ...)
{
	bool problem = kind != CMP_NOTE;
	char msg[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (problem)
		v->problems++;
	else
		v->notes++;
	/* damage in the gate's source's view, found by the store checks of this run */
	if (problem && v->gate_view[0] && !strcmp(view, v->gate_view))
		v->gate_problems++;
	if (!problem && !v->verbose && !v->json)
		return;
	if (v->json) {
		json_t *o = json_object();

		cli_json_set_path(o, "path", path, len);
		json_object_set_new(o, "view", json_string(view));
		json_object_set_new(o, "problem", json_string(msg));
		json_object_set_new(o, "kind", json_string(kind_json[kind]));
		json_array_append_new(problem ? v->jproblems : v->jnotes, o);
		return;
	}
	progress_clear(v);
	fprintf(problem ? stdout : stderr, "%s: %s", kind_word[kind], view);
	cli_print_path(problem ? stdout : stderr, path, len);
	fprintf(problem ? stdout : stderr, ": %s%s\n", msg, kind_where[kind]);
	fflush(problem ? stdout : stderr);
}

static int bad_pack(void *arg, uint32_t pack, uint64_t off, const char *what)
{
	struct vctx *v = arg;

	v->problems++;
	if (v->json) {
		json_t *o = json_object();

		json_object_set_new(o, "pack", json_integer(pack));
		json_object_set_new(o, "offset", json_integer((json_int_t)off));
		json_object_set_new(o, "problem", json_string(what));
		json_array_append_new(v->jpacks, o);
	} else {
		printf("DAMAGED pack %08" PRIx32 " at offset %" PRIu64 ": %s\n", pack, off, what);
	}
	return 0;
}

static int check_chunk(void *arg, const struct fp256 *id, const struct store_chunk_loc *l)
{
	struct vctx *v = arg;
	ssize_t n = store_chunk_read(v->st, v->codec, id, v->buf, CDC_MAX_LIMIT, v->read_data);

	v->chunks++;
	v->done_n++;
	v->done_bytes += l->raw_len;
	progress_line(v, false);
	if (n < 0 || (size_t)n != l->raw_len) {
		if (n == -ENOMEM)
			return -ENOMEM;
		return fpset_add(&v->bad_chunks, id);	/* a lost id would read as clean */
	} else {
		v->chunk_bytes += (uint64_t)n;
	}
	return 0;
}

static int check_ref(void *arg, const struct fp256 *cid, const struct fp256 *chunk)
{
	struct vctx *v = arg;
	struct store_chunk_loc loc;

	if (!chunk || fpset_has(&v->bad_chunks, chunk) ||
	    store_chunk_locate(v->st, chunk, &loc) < 0)
		return fpset_add(&v->bad_contents, cid);
	return 0;
}

#define VIEW_MAX_DEPTH (1u << 20)	/* as CLS_MAX_DEPTH: bounds the walk's memory */

struct vwalk {
	struct vctx *v;
	const char *view;
};

/* One entry of a view (store_walk_tree): a file whose content is damaged is named. */
static int view_entry(void *arg, const struct dfs_buf *path, size_t depth, uint64_t child,
		      uint8_t t)
{
	struct vwalk *w = arg;
	struct vctx *v = w->v;
	struct store_inode in;
	int rc = store_get_inode(v->st, child, &in);

	(void)t;
	if (rc < 0) {
		report(v, CMP_DAMAGED, w->view, path->data, path->len, "inode %" PRIu64 " %s",
		       child, rc == -ENOENT ? "is missing" : "is corrupt");
		return 0;
	}
	rc = 0;
	if (S_ISREG(in.mode)) {
		v->files_checked++;
		if (in.has_content && v->bad_contents.n && fpset_has(&v->bad_contents, &in.content))
			report(v, CMP_DAMAGED, w->view, path->data, path->len,
			       "its data is damaged or missing in the store");
	} else if (S_ISDIR(in.mode)) {
		if (depth >= VIEW_MAX_DEPTH)
			report(v, CMP_DIFFERS, w->view, path->data, path->len,
			       "deeper than %u levels: not checked", VIEW_MAX_DEPTH);
		else
			rc = 1;
	}
	store_inode_release(&in);
	return rc;
}

/*
 * Walks a view and names the files whose content is damaged (a tree 5,000 levels deep is
 * a real tree: store_walk_tree keeps the levels on the heap); a directory past
 * VIEW_MAX_DEPTH is named as not checked, never skipped silently.
 */
static int walk_view(struct vctx *v, uint64_t dir, struct dfs_buf *path, const char *view)
{
	struct vwalk w = { v, view };

	return store_walk_tree(v->st, dir, path, view_entry, &w);
}

struct srcwalk {
	struct vctx *v;
	struct dfs_buf path;
	char view[512];
};

static int walk_source_root(void *arg, const struct store_source *s)
{
	struct srcwalk *w = arg;

	if (!s->root_ino)
		return 0;
	snprintf(w->view, sizeof(w->view), "/.sources/%.*s", (int)s->name.len,
		 (const char *)s->name.p);
	dfs_buf_clear(&w->path);
	return walk_view(w->v, s->root_ino, &w->path, w->view);
}

/* ---- --against and --repair: the comparison is ingest/compare.c's ---------------------- */

static void on_diff(void *arg, enum cmp_kind kind, const uint8_t *rel, size_t rlen,
		    const char *msg)
{
	struct vctx *v = arg;

	v->kinds[kind]++;
	report(v, kind, v->view, rel, rlen, "%s", msg);
}

static void on_repaired(void *arg, const struct fp256 *chunk, const uint8_t *rel, size_t rlen,
			uint64_t off)
{
	struct vctx *v = arg;
	char hex[FP_HEX_LEN + 1];

	fp_to_hex(chunk, hex);
	if (v->json) {
		json_t *o = json_object();

		json_object_set_new(o, "chunk", json_string(hex));
		cli_json_set_path(o, "from", rel, rlen);
		json_array_append_new(v->jrepaired, o);
	} else {
		printf("REPAIRED chunk %s from %s", hex, v->view);
		cli_print_path(stdout, rel, rlen);
		printf(" at offset %" PRIu64 "\n", off);
	}
}

/* cmp_source failed before it compared anything: the source root could not be opened. */
static bool source_unusable(int rc, const struct cmp_stats *cs)
{
	return rc < 0 && rc != -ENOMEM && !cs->entries;
}

static int load_accept(const char *file, char ***accept, size_t *naccept)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		char **x;

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (!n)
			continue;
		x = realloc(*accept, (*naccept + 1) * sizeof(*x));
		if (!x || !(x[*naccept] = strdup(line))) {
			if (x)
				*accept = x;
			rc = -ENOMEM;
			break;
		}
		*accept = x;
		(*naccept)++;
	}
	free(line);
	fclose(f);
	return rc;
}

/*
 * The repair pass (ingest/compare.c) appends and commits verified copies of the damaged
 * chunks still in SOURCE; each repaired chunk is then read back (decompressed and
 * re-hashed) before it leaves the damaged set.
 */
static int repair_from(struct vctx *v, const char *real, const char *name, bool remote,
		       const char *rsh, const char *remote_cmd)
{
	struct cmp_repair rp = { .bad_chunks = &v->bad_chunks, .bad_contents = &v->bad_contents,
				 .fixed = &v->fixed, .repaired = on_repaired };
	struct cmp_opts o = { .repair = &rp, .arg = v };
	struct store_source src;
	struct cmp_stats cs;
	struct fpset left = { 0 };
	int rc;

	rc = store_get_source(v->st, name, strlen(name), &src);
	if (rc < 0)
		return 0;	/* the --against step says so */
	snprintf(v->view, sizeof(v->view), "%s/", real);
	if (remote) {
		/* the damaged chunks' extents fetched from the drive there (FETCH) */
		char msg[1024];
		uint64_t received;

		rc = cmp_remote(v->st, v->codec, &src, real, rsh, remote_cmd, &o, &cs, &received,
				msg, sizeof(msg));
		if (rc < 0 && rc != -ENOMEM) {
			/* the link or the drive: nothing more is repaired, the gate says why */
			fprintf(stderr, "%s: --repair: %s\n", prog, msg);
			rc = 0;
		}
		v->received += received;
	} else {
		rc = cmp_source(v->st, v->codec, src.root_ino, real, &o, &cs);
	}
	store_source_release(&src);
	if (source_unusable(rc, &cs))
		return 0;	/* the --against step says so */
	if (rc < 0 || !v->fixed.n)
		return rc;
	for (size_t i = 0; i < v->bad_chunks.n; i++) {
		const struct fp256 *id = &v->bad_chunks.v[i];

		if (fpset_has(&v->fixed, id) &&
		    store_chunk_read(v->st, v->codec, id, v->buf, CDC_MAX_LIMIT, true) >= 0)
			continue;
		rc = fpset_add(&left, id);
		if (rc < 0)
			break;
	}
	fpset_release(&v->bad_chunks);
	v->bad_chunks = left;
	return rc;
}

/*
 * The store against the drive at @real: a store on the drive's filesystem is warned
 * about (wiping the drive wipes the store); a store inside the drive is also not compared
 * (ingest skipped it), its path relative to the drive added to @acc. 0 or -ENOMEM.
 */
static int same_filesystem(struct vctx *v, const char *store, const char *real, char ***acc,
			   size_t *nacc)
{
	char *sreal = realpath(store, NULL), msg[600], why[64];
	size_t rl = strlen(real);
	int rc = 0;

	if (!sreal)
		return errno == ENOMEM ? -ENOMEM : 0;
	/* the ingest's own check (its refusal and defrag-stat's warning use it too) */
	if (ingest_path_shares_store_fs(sreal, real, why, sizeof(why)) > 0) {
		snprintf(msg, sizeof(msg), "%s (the store %s %s: %s)", INGEST_SAMEFS_WARNING,
			 sreal, why, real);
		if (v->json)
			json_array_append_new(v->jwarnings, json_string(msg));
		else
			fprintf(stderr, "%s: warning: %s\n", prog, msg);
	}
	if (!strncmp(sreal, real, rl) && (sreal[rl] == '/' || rl == 1)) {
		const char *rel = sreal + rl + (rl > 1);
		char **x = realloc(*acc, (*nacc + 1) * sizeof(*x));

		snprintf(msg, sizeof(msg), "the store is inside this drive (%s): it is not "
			 "compared", rel);
		if (v->json)
			json_array_append_new(v->jwarnings, json_string(msg));
		else
			fprintf(stderr, "%s: warning: %s\n", prog, msg);
		if (!x || !(x[*nacc] = strdup(rel))) {
			if (x)
				*acc = x;
			rc = -ENOMEM;
		} else {
			*acc = x;
			(*nacc)++;
		}
	}
	free(sreal);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "read-data", no_argument, NULL, 'r' },
		{ "against", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "accept-missing", required_argument, NULL, 'm' },
		{ "repair", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'J' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "progress", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "rsh", required_argument, NULL, 'e' },
		{ "remote-cmd", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_READER };
	struct vctx v = { 0 };
	struct srcwalk w = { 0 };
	struct cmp_stats cs = { 0 };
	struct store_source gsrc = { 0 };
	uint64_t gen = 0;
	struct dfs_buf path;
	const char *store = NULL, *against = NULL, *name = NULL, *accept = NULL;
	const char *rsh = NULL, *remote_cmd = NULL;
	char *real = NULL, **acc = NULL;
	bool remote = false;
	uint64_t received = 0;
	size_t nacc = 0;
	bool repair = false, store_checks = true;
	const char **excl = NULL, *progress = "auto";
	size_t nexcl = 0;
	double t_start = now_s();
	uint64_t npacks = 0, nmeta = 0;
	unsigned long errs;
	int c, rc, status = CLI_EXIT_OK;

	dfs_log_set_prog(prog);
	/* the ssh of a remote source that ends makes writes fail with EPIPE, which is said
	 * and gets its exit status, instead of killing the process silently */
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "s:e:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': rsh = optarg; break;
		case 'C': remote_cmd = optarg; break;
		case 's': store = optarg; break;
		case 'r': v.read_data = true; break;
		case 'a': against = optarg; break;
		case 'n': name = optarg; break;
		case 'm': accept = optarg; break;
		case 'R': repair = true; break;
		case 'J': v.json = true; break;
		case 'v': v.verbose = true; break;
		case 'P':
			if (strcmp(optarg, "auto") && strcmp(optarg, "always") &&
			    strcmp(optarg, "never"))
				cli_usage_error(prog, "invalid --progress '%s' (auto, always, never)",
						optarg);
			progress = optarg;
			break;
		case 'h':
			printf("Usage: %s [--store DIR] [--read-data] [--against SOURCE [--name NAME]]\n"
			       "       [--accept-missing FILE] [--repair] [--json] [--progress=WHEN]\n"
			       "Check the store: every chunk record the index names is read back and\n"
			       "checked; damaged data is mapped to the files that use it.\n\n"
			       "  -s, --store DIR         the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "      --read-data         also decompress every chunk and re-hash it\n"
			       "      --against SOURCE    prove every file of SOURCE is in the store,\n"
			       "                          bit-exact (the gate before wiping a drive)\n"
			       "      --name NAME         the source's name (default: basename)\n"
			       "                          SOURCE may be on another machine:\n"
			       "                          ssh://[USER@]HOST[:PORT]/PATH or HOST:PATH\n"
			       "                          (only metadata and chunk ids cross)\n"
			       "  -e, --rsh COMMAND       the ssh command for a remote SOURCE\n"
			       "      --remote-cmd PATH   defrag-ingest on the remote machine\n"
			       "      --accept-missing F  paths (one per line, relative to SOURCE) that\n"
			       "                          may be missing without failing the gate\n"
			       "      --repair            with --against: append a fresh copy of each\n"
			       "                          damaged chunk whose bytes are still in SOURCE\n"
			       "                          and repoint the index to it (takes the\n"
			       "                          writer lock)\n"
			       "      --json              one JSON object on stdout\n"
			       "      --progress=WHEN     a progress line on stderr: auto (on a\n"
			       "                          terminal), always, never\n"
			       "  -v, --verbose           list entries whose atime/ctime differ\n"
			       "      --help, --version\n\n"
			       "Exit status: 0 clean; 1 problems found (each listed); 2 usage error;\n"
			       "3 the store could not be used. See defrag-verify(8).\n",
			       prog, STORE_DEFAULT_DIR);
			return 0;
		case 'V': cli_version(prog);
		default: cli_usage_error(prog, "invalid option");
		}
	}
	if (optind < argc)
		cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
	if ((name || accept || repair) && !against)
		cli_usage_error(prog, "--name, --accept-missing and --repair go with --against");
	if (repair)
		so.mode = STORE_WRITER;
	v.tty = !strcmp(progress, "auto") && isatty(STDERR_FILENO);
	v.progress = v.tty || !strcmp(progress, "always");
	remote = against && ingest_is_remote(against);
	if (remote && !name && !ingest_remote_base(against))
		cli_usage_error(prog, "%s: give the source's name with --name", against);
	if (against) {
		real = remote ? strdup(against) : realpath(against, NULL);
		if (remote && !name)
			name = ingest_remote_base(against);
		if (!real) {
			fprintf(stderr, "%s: %s: %s\n", prog, against, strerror(errno));
			return CLI_EXIT_USAGE;
		}
		if (!name) {
			name = strrchr(real, '/');
			name = name && name[1] ? name + 1 : "root";
		}
		rc = accept ? load_accept(accept, &acc, &nacc) : 0;
		if (rc < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, accept, strerror(-rc));
			status = CLI_EXIT_USAGE;
			goto out;
		}
	}
	store = cli_store_dir(store);
	errs = dfs_log_errors();
	rc = store_open(store, &so, &v.st);
	if (rc < 0) {
		cli_store_failed(prog, store, rc, errs);
		return CLI_EXIT_STORE;
	}
	v.buf = malloc(CDC_MAX_LIMIT);
	v.jdamaged = json_array();
	v.jpacks = json_array();
	v.jproblems = json_array();
	v.jnotes = json_array();
	v.jrepaired = json_array();
	v.jwarnings = json_array();
	if (!v.buf || codec_new(store_params(v.st)->zstd_level, &v.codec) < 0) {
		status = CLI_EXIT_STORE;
		goto out;
	}
	if (against) {
		char msg[1024];

		/* the source, and proof that the path is that source, before anything else */
		rc = store_get_source(v.st, name, strlen(name), &gsrc);
		if (rc < 0) {
			fprintf(stderr, "%s: no source named '%s' in the store\n", prog, name);
			status = CLI_EXIT_USAGE;
			goto out;
		}
		/* a remote drive's identity comes with its handshake (cmp_remote) */
		rc = remote ? 0 : cmp_identity(v.st, &gsrc, real, msg, sizeof(msg));
		if (rc < 0) {
			fprintf(stderr, "%s: %s\n", prog, msg);
			status = rc == -EXDEV || rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES
					 ? CLI_EXIT_USAGE : CLI_EXIT_STORE;
			goto out;
		}
		/* the generation this run compares: an ingest that commits meanwhile makes
		 * the recorded result stale (defrag-stat then says "no") */
		gen = gsrc.ingest_gen;
		fault_hold("compare");
		snprintf(v.gate_view, sizeof(v.gate_view), "/.sources/%s", name);
		rc = excl_unpack(&gsrc.excludes, &excl, &nexcl);
		if (rc == 0 && !remote)
			rc = same_filesystem(&v, store, real, &acc, &nacc);
		if (rc < 0) {
			status = CLI_EXIT_STORE;
			goto out;
		}
	}
	/*
	 * The gate alone reads only what the drive needs: every chunk of its view, through
	 * the comparison (each read checks the chunk's checksum, and damage fails the
	 * comparison). The store-wide checks (every chunk of every source, the packs, the
	 * names of damaged files in every view) are for a plain run, --read-data and
	 * --repair.
	 */
	store_checks = !against || repair || v.read_data;
	if (store_checks) {
		struct store_stats ss = { 0 };

		if (v.progress)
			store_get_stats(v.st, &ss);	/* the totals of the line, if known */
		progress_begin(&v, "checking chunks", "chunks", ss.chunks, ss.raw_bytes);
		rc = store_each_chunk(v.st, check_chunk, &v);
		progress_end(&v);
	}
	if (rc == 0 && store_checks)
		rc = store_check_packs(v.st, bad_pack, &v, &npacks, &nmeta);
	if (rc == 0 && store_checks)
		rc = store_each_content_ref(v.st, check_ref, &v);
	if (rc == 0 && repair && v.bad_chunks.n) {
		rc = repair_from(&v, real, name, remote, rsh, remote_cmd);
		if (rc == 0 && v.fixed.n) {
			/* the map of damaged contents is redone with what is left */
			fpset_release(&v.bad_contents);
			rc = store_each_content_ref(v.st, check_ref, &v);
		}
	}
	dfs_buf_init(&path, 1u << 20);
	w.v = &v;
	dfs_buf_init(&w.path, 1u << 20);
	if (rc == 0 && store_checks)
		rc = walk_view(&v, STORE_ROOT_INO, &path, "");
	if (rc == 0 && store_checks)
		rc = store_each_source(v.st, walk_source_root, &w);
	for (size_t i = 0; i < v.bad_chunks.n; i++) {
		char hex[FP_HEX_LEN + 1];

		fp_to_hex(&v.bad_chunks.v[i], hex);
		if (v.json)
			json_array_append_new(v.jdamaged, json_string(hex));
		else
			printf("DAMAGED chunk %s\n", hex);
		v.problems++;
	}
	if (rc == 0 && against) {
		struct cmp_opts o = { .accept = (const char *const *)acc, .naccept = nacc,
				      .excludes = excl, .nexcludes = nexcl,
				      .last_ingest = gsrc.last_ingest, .diff = on_diff,
				      .progress = on_progress, .arg = &v };
		char phase[300];

		snprintf(v.view, sizeof(v.view), "/.sources/%s/", name);
		snprintf(phase, sizeof(phase), "comparing %s", name);
		progress_begin(&v, phase, "files", gsrc.files, gsrc.bytes);
		if (remote) {
			char msg[1024];

			rc = cmp_remote(v.st, v.codec, &gsrc, real, rsh, remote_cmd, &o, &cs,
					&received, msg, sizeof(msg));
			progress_end(&v);
			if (rc < 0) {	/* not compared: the drive, the link or the stream */
				fprintf(stderr, "%s: %s\n", prog, msg);
				status = rc == -ENOMEM ? CLI_EXIT_STORE : CLI_EXIT_USAGE;
				goto out_buf;
			}
		} else {
			rc = cmp_source(v.st, v.codec, gsrc.root_ino, real, &o, &cs);
			progress_end(&v);
		}
		if (source_unusable(rc, &cs)) {
			fprintf(stderr, "%s: %s: %s\n", prog, real, strerror(-rc));
			status = CLI_EXIT_USAGE;
			goto out_buf;
		}
		if (rc == 0) {
			/* record the result in the wipe ledger (needs the writer lock) */
			store_close(v.st);
			so.mode = STORE_WRITER;
			so.brief = true;
			rc = store_open(store, &so, &v.st);
			if (rc == 0)
				fault_hold("record");
			if (rc < 0)
				fprintf(stderr, "%s: the result was not recorded (the store is "
					"busy)\n", prog);
			else if (store_set_against(v.st, name, strlen(name), time(NULL),
						   (int32_t)(cs.problems + v.gate_problems),
						   gen) < 0)
				fprintf(stderr, "%s: could not record the result\n", prog);
			rc = 0;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, store, dfs_strerror(rc));
		status = CLI_EXIT_STORE;
	} else if (v.problems) {
		status = CLI_EXIT_PARTIAL;
	}
	if (v.json) {
		json_t *o = json_object();

		json_object_set_new(o, "chunks_checked", json_integer((json_int_t)v.chunks));
		json_object_set_new(o, "chunk_bytes", json_integer((json_int_t)v.chunk_bytes));
		json_object_set_new(o, "read_data", json_boolean(v.read_data));
		json_object_set_new(o, "store_checks", json_boolean(store_checks));
		json_object_set_new(o, "files_checked", json_integer((json_int_t)v.files_checked));
		json_object_set_new(o, "packs_checked", json_integer((json_int_t)npacks));
		json_object_set_new(o, "meta_records_checked", json_integer((json_int_t)nmeta));
		json_object_set_new(o, "damaged_chunks", v.jdamaged);
		json_object_set_new(o, "damaged_packs", v.jpacks);
		json_object_set_new(o, "problems", v.jproblems);
		json_object_set_new(o, "notes", v.jnotes);
		v.jdamaged = v.jpacks = v.jproblems = v.jnotes = NULL;
		if (against) {
			json_t *jx = json_array();

			for (size_t i = 0; i < nexcl; i++)
				json_array_append_new(jx, json_string(excl[i]));
			json_object_set_new(o, "against_entries",
					    json_integer((json_int_t)cs.entries));
			json_object_set_new(o, "against_bytes",
					    json_integer((json_int_t)cs.bytes));
			json_object_set_new(o, "bytes_received",
					    json_integer((json_int_t)(received + v.received)));
			json_object_set_new(o, "changed_on_drive",
					    json_integer((json_int_t)v.kinds[CMP_CHANGED]));
			json_object_set_new(o, "damaged_in_store",
					    json_integer((json_int_t)v.kinds[CMP_DAMAGED]));
			json_object_set_new(o, "differ_otherwise",
					    json_integer((json_int_t)v.kinds[CMP_DIFFERS]));
			json_object_set_new(o, "excluded_entries",
					    json_integer((json_int_t)cs.excluded));
			json_object_set_new(o, "excludes", jx);
		}
		json_object_set_new(o, "warnings", v.jwarnings);
		v.jwarnings = NULL;
		json_object_set_new(o, "seconds", json_real(now_s() - t_start));
		if (repair) {
			json_object_set_new(o, "repaired_chunks", v.jrepaired);
			v.jrepaired = NULL;
		}
		json_object_set_new(o, "result", json_string(v.problems ? "problems" : "clean"));
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		char h[32];

		if (store_checks)
			printf("%" PRIu64 " chunks (%s) checked%s, %" PRIu64 " packs and %" PRIu64
			       " metadata records checked, %" PRIu64 " files named%s", v.chunks,
			       cli_human(v.chunk_bytes, h, sizeof(h)),
			       v.read_data ? " and re-hashed" : "", npacks, nmeta,
			       v.files_checked, against ? ", " : "");
		if (against) {
			printf("%" PRIu64 " source entries compared (%" PRIu64 " differ only in "
			       "atime/ctime%s)", cs.entries, v.notes,
			       v.notes ? ", -v lists them" : "");
			if (v.kinds[CMP_CHANGED])
				printf(", %" PRIu64 " changed on the drive since the last ingest",
				       v.kinds[CMP_CHANGED]);
			if (v.kinds[CMP_DAMAGED])
				printf(", %" PRIu64 " damaged in the store", v.kinds[CMP_DAMAGED]);
			if (cs.excluded) {
				printf(", %" PRIu64 " excluded at ingest (not in the store: --exclude",
				       cs.excluded);
				for (size_t i = 0; i < nexcl; i++)
					printf(" %s", excl[i]);
				printf("; %" PRIu64 " not accepted by --accept-missing)",
				       cs.excluded_unaccepted);
			}
		}
		if (repair)
			printf(", %zu chunks repaired", v.fixed.n);
		printf(": %s\n", v.problems ? "PROBLEMS FOUND" : "clean");
	}
out_buf:
	dfs_buf_release(&path);
	dfs_buf_release(&w.path);
out:
	json_decref(v.jdamaged);
	json_decref(v.jpacks);
	json_decref(v.jproblems);
	json_decref(v.jnotes);
	json_decref(v.jrepaired);
	json_decref(v.jwarnings);
	free(excl);
	for (size_t i = 0; i < nacc; i++)
		free(acc[i]);
	free(acc);
	fpset_release(&v.fixed);
	fpset_release(&v.bad_chunks);
	fpset_release(&v.bad_contents);
	free(v.buf);
	free(real);
	codec_free(v.codec);
	store_source_release(&gsrc);
	store_close(v.st);
	return status;
}
