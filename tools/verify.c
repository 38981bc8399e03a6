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
 *      atime/ctime differences are reported but do not fail; the result is recorded in
 *      the source record (the wipe ledger of defrag-stat);
 *   6. --repair (with --against): a damaged chunk whose bytes are still in the source
 *      (an extent of a file that uses it, re-read and re-hashed to the chunk's id) is
 *      appended again to a new pack and the index repointed to the new copy.
 * Exit status: 0 clean, 1 problems found (each listed), 2 usage, 3 store unusable.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "lib_cli.h"
#include "store/buf.h"
#include "store/log.h"
#include "store/store.h"

static const char *prog = "defrag-verify";

struct fpset {
	struct fp256 *v;
	size_t n, cap;
	bool sorted;
};

static int fpset_add(struct fpset *s, const struct fp256 *id)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct fp256 *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *id;
	s->sorted = false;
	return 0;
}

static int fp_cmp(const void *a, const void *b)
{
	return memcmp(a, b, FP_LEN);
}

static bool fpset_has(struct fpset *s, const struct fp256 *id)
{
	if (!s->n)
		return false;
	if (!s->sorted) {
		qsort(s->v, s->n, sizeof(*s->v), fp_cmp);
		s->sorted = true;
	}
	return bsearch(id, s->v, s->n, sizeof(*s->v), fp_cmp) != NULL;
}

struct vctx {
	struct store *st;
	struct codec *codec;
	bool read_data;
	bool json;
	bool verbose;
	bool mute;		/* the repair pass walks the source without reporting */
	uint64_t notes;
	uint8_t *buf;
	uint64_t chunks, chunk_bytes;
	struct fpset bad_chunks;
	struct fpset bad_contents;
	uint64_t files_checked;
	uint64_t problems;
	json_t *jdamaged;
	json_t *jpacks;
	json_t *jproblems;
	json_t *jnotes;
};

static void report(struct vctx *v, bool problem, const char *view, const uint8_t *path,
		   size_t len, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void report(struct vctx *v, bool problem, const char *view, const uint8_t *path,
		   size_t len, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (v->mute)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (problem)
		v->problems++;
	else
		v->notes++;
	if (!problem && !v->verbose && !v->json)
		return;
	if (v->json) {
		json_t *o = json_object();

		cli_json_set_path(o, "path", path, len);
		json_object_set_new(o, "view", json_string(view));
		json_object_set_new(o, "problem", json_string(msg));
		json_array_append_new(problem ? v->jproblems : v->jnotes, o);
		return;
	}
	fprintf(problem ? stdout : stderr, "%s: %s", problem ? "DAMAGED" : "note", view);
	cli_print_path(problem ? stdout : stderr, path, len);
	fprintf(problem ? stdout : stderr, ": %s\n", msg);
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
	if (n < 0 || (size_t)n != l->raw_len) {
		if (n == -ENOMEM)
			return -ENOMEM;
		fpset_add(&v->bad_chunks, id);
	} else {
		v->chunk_bytes += (uint64_t)n;
	}
	return 0;
}

struct refctx {
	struct vctx *v;
	struct fpset known_bad;
};

static int check_ref(void *arg, const struct fp256 *cid, const struct fp256 *chunk)
{
	struct vctx *v = arg;
	struct store_chunk_loc loc;

	if (!chunk) {
		fpset_add(&v->bad_contents, cid);
		return 0;
	}
	if (fpset_has(&v->bad_chunks, chunk) || store_chunk_locate(v->st, chunk, &loc) < 0)
		fpset_add(&v->bad_contents, cid);
	return 0;
}

/* Walks a view and names the files whose content is damaged. */
static int walk_view(struct vctx *v, uint64_t dir, struct dfs_buf *path, const char *view,
		     int depth)
{
	struct store_dir_iter *di;
	const uint8_t *nm;
	size_t nl, base = path->len;
	uint64_t child;
	uint8_t t;
	int rc;

	if (depth > 8192)
		return 0;
	rc = store_dir_open(v->st, dir, NULL, 0, &di);
	if (rc < 0)
		return rc;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		struct store_inode in;

		path->len = base;
		dfs_buf_put_u8(path, '/');
		dfs_buf_append(path, nm, nl);
		rc = store_get_inode(v->st, child, &in);
		if (rc < 0) {
			report(v, true, view, path->data, path->len, "inode %" PRIu64 " %s", child,
			       rc == -ENOENT ? "is missing" : "is corrupt");
			rc = 0;
			continue;
		}
		if (S_ISREG(in.mode)) {
			v->files_checked++;
			if (in.has_content && v->bad_contents.n &&
			    fpset_has(&v->bad_contents, &in.content))
				report(v, true, view, path->data, path->len,
				       "its data is damaged or missing in the store");
		} else if (S_ISDIR(in.mode)) {
			rc = walk_view(v, child, path, view, depth + 1);
		}
		store_inode_release(&in);
		if (rc < 0)
			break;
	}
	store_dir_close(di);
	path->len = base;
	return rc;
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
	return walk_view(w->v, s->root_ino, &w->path, w->view, 0);
}

/* ---- --against --------------------------------------------------------------------------- */

struct against {
	struct vctx *v;
	char view[512];
	char **accept;
	size_t naccept;
	uint64_t entries;
	uint8_t *sbuf;		/* source bytes: 1 MiB, or the store's largest chunk */
	size_t scap;
	/* --repair */
	bool repair_pass;
	struct fpset fixed;	/* chunks appended again in this run */
	uint8_t *cbuf;
	size_t ccap;
	json_t *jrepaired;
};

static bool accepted(struct against *a, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < a->naccept; i++) {
		const char *x = a->accept[i];

		while (*x == '/')
			x++;
		if (strlen(x) == n && !memcmp(x, p, n))
			return true;
	}
	return false;
}

static int cmp_xattrs(int fd, const char *proc, const struct store_inode *in, char *why,
		      size_t wl)
{
	char list[65536];
	ssize_t n = fd >= 0 ? flistxattr(fd, list, sizeof(list)) : llistxattr(proc, list,
									       sizeof(list));
	size_t count = 0;

	if (n < 0)
		n = 0;
	for (ssize_t off = 0; off < n;) {
		const char *name = list + off;
		size_t nl = strlen(name);
		char val[65536];
		ssize_t vl = fd >= 0 ? fgetxattr(fd, name, val, sizeof(val))
				     : lgetxattr(proc, name, val, sizeof(val));
		bool found = false;

		off += (ssize_t)nl + 1;
		count++;
		for (size_t i = 0; i < in->nxattrs; i++) {
			if (in->xattrs[i].name.len == nl && !memcmp(in->xattrs[i].name.p, name, nl)) {
				found = vl >= 0 && (size_t)vl == in->xattrs[i].value.len &&
					!memcmp(in->xattrs[i].value.p, val, (size_t)vl);
				break;
			}
		}
		if (!found) {
			snprintf(why, wl, "extended attribute %s differs or is missing", name);
			return 1;
		}
	}
	if (count != in->nxattrs) {
		snprintf(why, wl, "the store has %zu extended attributes, the source %zu",
			 in->nxattrs, count);
		return 1;
	}
	return 0;
}

static int cmp_data(struct against *a, int fd, const struct store_inode *in, char *why,
		    size_t wl)
{
	struct store_content *c;
	uint64_t off = 0;
	int rc;

	if (!in->has_content) {
		snprintf(why, wl, "no content in the store");
		return 1;
	}
	rc = store_content_open(a->v->st, &in->content, &c);
	if (rc < 0) {
		snprintf(why, wl, "content object unreadable: %s", dfs_strerror(rc));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, a->sbuf, 1u << 20), m;

		if (n < 0) {
			snprintf(why, wl, "cannot read the source: %s", strerror(errno));
			rc = 1;
			break;
		}
		m = store_content_pread(a->v->st, a->v->codec, c, a->v->buf, (size_t)(n ? n : 1),
					off);
		if (m < 0) {
			snprintf(why, wl, "store data unreadable at %" PRIu64 ": %s", off,
				 dfs_strerror((int)m));
			rc = 1;
			break;
		}
		if (n == 0) {
			rc = m == 0 ? 0 : 1;
			if (rc)
				snprintf(why, wl, "the store has more bytes than the source");
			break;
		}
		if (m != n || memcmp(a->sbuf, a->v->buf, (size_t)n)) {
			snprintf(why, wl, "bytes differ at offset %" PRIu64, off);
			rc = 1;
			break;
		}
		off += (uint64_t)n;
	}
	store_content_close(c);
	return rc;
}

/*
 * Re-reads from source file @fd the extents of @in's content that use a damaged chunk; an
 * extent whose bytes still hash to the chunk's id is appended again (store_repair_chunk).
 * A changed source simply does not match and repairs nothing.
 */
static int repair_file(struct against *a, int fd, const struct store_inode *in,
		       const uint8_t *rel, size_t rl)
{
	struct vctx *v = a->v;
	struct store_content *c;
	struct store_extent e;
	uint64_t off = 0;
	int rc;

	if (!in->has_content || !fpset_has(&v->bad_contents, &in->content))
		return 0;
	rc = store_content_open(v->st, &in->content, &c);
	if (rc < 0)
		return 0;	/* a damaged content record cannot be rebuilt from here */
	while ((rc = store_content_extent(c, off, &e)) == 0) {
		struct fp256 id;
		enum codec_id cid;
		ssize_t n, sn;

		off = e.off + e.len;
		if (e.hole || !fpset_has(&v->bad_chunks, &e.chunk) ||
		    fpset_has(&a->fixed, &e.chunk) || e.len > a->scap)
			continue;
		n = pread(fd, a->sbuf, e.len, (off_t)e.off);
		if (n != (ssize_t)e.len)
			continue;
		fp_sha256(a->sbuf, e.len, &id);
		if (!fp_equal(&id, &e.chunk))
			continue;
		sn = codec_compress(v->codec, a->sbuf, e.len, a->cbuf, a->ccap, &cid);
		if (sn < 0) {
			rc = (int)sn;
			break;
		}
		rc = store_repair_chunk(v->st, &id, e.len, a->cbuf, (uint32_t)sn, cid);
		if (rc < 0)
			break;
		rc = fpset_add(&a->fixed, &id);
		if (rc < 0)
			break;
		{
			char hex[FP_HEX_LEN + 1];

			fp_to_hex(&id, hex);
			if (v->json) {
				json_t *o = json_object();

				json_object_set_new(o, "chunk", json_string(hex));
				cli_json_set_path(o, "from", rel, rl);
				json_array_append_new(a->jrepaired, o);
			} else {
				printf("REPAIRED chunk %s from %s", hex, a->view);
				cli_print_path(stdout, rel, rl);
				printf(" at offset %" PRIu64 "\n", e.off);
			}
		}
	}
	store_content_close(c);
	return rc == -ENXIO ? 0 : rc;
}

static void against_dir(struct against *a, int dfd, uint64_t dir, struct dfs_buf *path, int depth)
{
	struct vctx *v = a->v;
	size_t base = path->len;
	struct dirent *de;
	DIR *d;
	int fd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	if (!d) {
		report(v, true, a->view, path->data, path->len, "cannot list the source: %s",
		       strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		struct store_inode in;
		struct stat sb;
		char why[600] = "";
		char proc[600];
		uint64_t child;
		uint8_t t;
		size_t nl = strlen(de->d_name);
		const uint8_t *rel;
		size_t rl;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path->len = base;
		if (base)
			dfs_buf_put_u8(path, '/');
		dfs_buf_append(path, de->d_name, nl);
		rel = path->data;
		rl = path->len;
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		a->entries++;
		if (store_lookup(v->st, dir, de->d_name, nl, &child, &t) < 0 ||
		    store_get_inode(v->st, child, &in) < 0) {
			if (!accepted(a, rel, rl))
				report(v, true, a->view, rel, rl, "missing from the store");
			continue;
		}
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dfd, de->d_name);
		if ((in.mode & S_IFMT) != (sb.st_mode & S_IFMT))
			snprintf(why, sizeof(why), "type differs");
		else if (in.mode != sb.st_mode)
			snprintf(why, sizeof(why), "mode %o in the store, %o in the source",
				 in.mode & 07777, sb.st_mode & 07777);
		else if (in.uid != sb.st_uid || in.gid != sb.st_gid)
			snprintf(why, sizeof(why), "owner differs");
		else if (!S_ISDIR(sb.st_mode) && (in.mtime.tv_sec != sb.st_mtim.tv_sec ||
						  in.mtime.tv_nsec != sb.st_mtim.tv_nsec))
			snprintf(why, sizeof(why), "mtime differs");
		else if ((S_ISREG(sb.st_mode) || S_ISLNK(sb.st_mode)) &&
			 in.size != (uint64_t)sb.st_size)
			snprintf(why, sizeof(why), "size %" PRIu64 " in the store, %lld in the source",
				 in.size, (long long)sb.st_size);
		else if ((S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) && in.rdev != sb.st_rdev)
			snprintf(why, sizeof(why), "device number differs");
		if (!why[0] && S_ISLNK(sb.st_mode)) {
			char tgt[8192];
			ssize_t n = readlinkat(dfd, de->d_name, tgt, sizeof(tgt));

			if (n < 0 || (size_t)n != in.target.len || memcmp(tgt, in.target.p, (size_t)n))
				snprintf(why, sizeof(why), "symlink target differs");
		}
		if (!why[0] && S_ISREG(sb.st_mode)) {
			int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);

			if (fd < 0 && errno == EPERM)
				fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				snprintf(why, sizeof(why), "cannot open the source: %s",
					 strerror(errno));
			} else if (a->repair_pass) {
				int rr = repair_file(a, fd, &in, rel, rl);

				if (rr < 0)
					fprintf(stderr, "%s: repair from %s failed: %s\n", prog,
						de->d_name, dfs_strerror(rr));
				close(fd);
			} else {
				if (!cmp_xattrs(fd, NULL, &in, why, sizeof(why)))
					cmp_data(a, fd, &in, why, sizeof(why));
				close(fd);
			}
		} else if (!why[0] && S_ISDIR(sb.st_mode)) {
			int fd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);

			if (fd >= 0) {
				if (!cmp_xattrs(fd, NULL, &in, why, sizeof(why)) && depth < 8192)
					against_dir(a, fd, child, path, depth + 1);
				close(fd);
				rel = path->data;	/* the buffer may have moved */
				rl = path->len;
			}
		} else if (!why[0]) {
			cmp_xattrs(-1, proc, &in, why, sizeof(why));
		}
		if (why[0])
			report(v, true, a->view, rel, rl, "%s", why);
		else if (in.atime.tv_sec != sb.st_atim.tv_sec ||
			 in.ctime.tv_sec != sb.st_ctim.tv_sec ||
			 in.ctime.tv_nsec != sb.st_ctim.tv_nsec)
			report(v, false, a->view, rel, rl, "atime or ctime differ (not a failure)");
		store_inode_release(&in);
	}
	closedir(d);
	path->len = base;
}

static int load_accept(const char *file, struct against *a)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		char **x;

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (!n)
			continue;
		x = realloc(a->accept, (a->naccept + 1) * sizeof(*x));
		if (!x)
			break;
		a->accept = x;
		a->accept[a->naccept++] = strdup(line);
	}
	free(line);
	fclose(f);
	return 0;
}

/*
 * The repair pass: walks SOURCE beside /.sources/NAME, re-reads the extents that use a
 * damaged chunk, appends verified copies, commits, then reads each repaired chunk back
 * (decompressed and re-hashed) before it leaves the damaged set.
 */
static int repair_from(struct vctx *v, struct against *a, const char *real, const char *name)
{
	struct store_source src;
	struct store_txn *tx;
	struct dfs_buf path;
	struct fpset left = { 0 };
	uint64_t problems = v->problems, notes = v->notes, entries = a->entries;
	int dfd, rc;

	rc = store_get_source(v->st, name, strlen(name), &src);
	if (rc < 0)
		return 0;	/* the --against step says so */
	dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		store_source_release(&src);
		return 0;
	}
	a->v = v;
	snprintf(a->view, sizeof(a->view), "%s/", real);
	dfs_buf_init(&path, 1u << 20);
	a->repair_pass = true;
	v->mute = true;
	against_dir(a, dfd, src.root_ino, &path, 0);
	v->mute = false;
	a->repair_pass = false;
	v->problems = problems;
	v->notes = notes;
	a->entries = entries;
	close(dfd);
	dfs_buf_release(&path);
	store_source_release(&src);
	if (!a->fixed.n)
		return 0;
	rc = store_txn_begin(v->st, &tx);
	if (rc == 0)
		rc = store_txn_commit(tx);
	if (rc < 0) {
		fprintf(stderr, "%s: the repairs could not be committed: %s\n", prog,
			dfs_strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < v->bad_chunks.n; i++) {
		const struct fp256 *id = &v->bad_chunks.v[i];

		if (fpset_has(&a->fixed, id) &&
		    store_chunk_read(v->st, v->codec, id, v->buf, CDC_MAX_LIMIT, true) >= 0)
			continue;
		rc = fpset_add(&left, id);
		if (rc < 0)
			break;
	}
	free(v->bad_chunks.v);
	v->bad_chunks = left;
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
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_open_opts so = { .mode = STORE_READER };
	struct vctx v = { 0 };
	struct against a = { 0 };
	struct srcwalk w = { 0 };
	struct dfs_buf path;
	const char *store = NULL, *against = NULL, *name = NULL, *accept = NULL;
	char *real = NULL;
	bool repair = false;
	uint64_t npacks = 0, nmeta = 0;
	int c, rc, status = CLI_EXIT_OK;

	dfs_log_set_prog(prog);
	while ((c = getopt_long(argc, argv, "s:v", longopts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 'r': v.read_data = true; break;
		case 'a': against = optarg; break;
		case 'n': name = optarg; break;
		case 'm': accept = optarg; break;
		case 'R': repair = true; break;
		case 'J': v.json = true; break;
		case 'v': v.verbose = true; break;
		case 'h':
			printf("Usage: %s [--store DIR] [--read-data] [--against SOURCE [--name NAME]]\n"
			       "       [--accept-missing FILE] [--repair] [--json]\n"
			       "Check the store: every chunk record the index names is read back and\n"
			       "checked; damaged data is mapped to the files that use it.\n\n"
			       "  -s, --store DIR         the store (default: $DEFRAGFS_STORE, else %s)\n"
			       "      --read-data         also decompress every chunk and re-hash it\n"
			       "      --against SOURCE    prove every file of SOURCE is in the store,\n"
			       "                          bit-exact (the gate before wiping a drive)\n"
			       "      --name NAME         the source's name (default: basename)\n"
			       "      --accept-missing F  paths (one per line, relative to SOURCE) that\n"
			       "                          may be missing without failing the gate\n"
			       "      --repair            with --against: append a fresh copy of each\n"
			       "                          damaged chunk whose bytes are still in SOURCE\n"
			       "                          and repoint the index to it (takes the\n"
			       "                          writer lock)\n"
			       "      --json              one JSON object on stdout\n"
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
	if (against) {
		real = realpath(against, NULL);
		if (!real) {
			fprintf(stderr, "%s: %s: %s\n", prog, against, strerror(errno));
			return CLI_EXIT_USAGE;
		}
		if (!name) {
			name = strrchr(real, '/');
			name = name && name[1] ? name + 1 : "root";
		}
		if (accept && load_accept(accept, &a) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, accept, strerror(errno));
			return CLI_EXIT_USAGE;
		}
	}
	store = cli_store_dir(store);
	rc = store_open(store, &so, &v.st);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: cannot use the store: %s\n", prog, store, dfs_strerror(rc));
		return CLI_EXIT_STORE;
	}
	v.buf = malloc(CDC_MAX_LIMIT);
	a.scap = store_params(v.st)->cdc.max_size;
	if (a.scap < (1u << 20))
		a.scap = 1u << 20;
	a.sbuf = malloc(a.scap);
	v.jdamaged = json_array();
	v.jpacks = json_array();
	v.jproblems = json_array();
	v.jnotes = json_array();
	a.jrepaired = json_array();
	a.ccap = codec_bound(CDC_MAX_LIMIT);
	a.cbuf = repair ? malloc(a.ccap) : NULL;
	if (!v.buf || !a.sbuf || (repair && !a.cbuf) ||
	    codec_new(store_params(v.st)->zstd_level, &v.codec) < 0) {
		status = CLI_EXIT_STORE;
		goto out;
	}
	rc = store_each_chunk(v.st, check_chunk, &v);
	if (rc == 0)
		rc = store_check_packs(v.st, bad_pack, &v, &npacks, &nmeta);
	if (rc == 0)
		rc = store_each_content_ref(v.st, check_ref, &v);
	if (rc == 0 && repair && v.bad_chunks.n) {
		rc = repair_from(&v, &a, real, name);
		if (rc == 0 && a.fixed.n) {
			/* the map of damaged contents is redone with what is left */
			free(v.bad_contents.v);
			memset(&v.bad_contents, 0, sizeof(v.bad_contents));
			rc = store_each_content_ref(v.st, check_ref, &v);
		}
	}
	dfs_buf_init(&path, 1u << 20);
	w.v = &v;
	dfs_buf_init(&w.path, 1u << 20);
	if (rc == 0)
		rc = walk_view(&v, STORE_ROOT_INO, &path, "", 0);
	if (rc == 0)
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
		struct store_source src;
		int dfd;

		a.v = &v;
		snprintf(a.view, sizeof(a.view), "/.sources/%s/", name);
		rc = store_get_source(v.st, name, strlen(name), &src);
		if (rc < 0) {
			fprintf(stderr, "%s: no source named '%s' in the store\n", prog, name);
			status = CLI_EXIT_USAGE;
			goto out_buf;
		}
		dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, real, strerror(errno));
			store_source_release(&src);
			status = CLI_EXIT_USAGE;
			goto out_buf;
		}
		dfs_buf_clear(&path);
		{
			uint64_t before = v.problems;

			against_dir(&a, dfd, src.root_ino, &path, 0);
			close(dfd);
			store_close(v.st);
			v.st = NULL;
			/* record the result in the wipe ledger (needs the writer lock) */
			so.mode = STORE_WRITER;
			if (store_open(store, &so, &v.st) == 0) {
				if (store_set_against(v.st, name, strlen(name), time(NULL),
						      (int32_t)(v.problems - before)) < 0)
					fprintf(stderr, "%s: could not record the result\n", prog);
			} else {
				fprintf(stderr, "%s: the result was not recorded (the store is busy)\n",
					prog);
			}
		}
		store_source_release(&src);
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
		json_object_set_new(o, "files_checked", json_integer((json_int_t)v.files_checked));
		json_object_set_new(o, "packs_checked", json_integer((json_int_t)npacks));
		json_object_set_new(o, "meta_records_checked", json_integer((json_int_t)nmeta));
		json_object_set_new(o, "damaged_chunks", v.jdamaged);
		json_object_set_new(o, "damaged_packs", v.jpacks);
		json_object_set_new(o, "problems", v.jproblems);
		json_object_set_new(o, "notes", v.jnotes);
		v.jdamaged = v.jpacks = v.jproblems = v.jnotes = NULL;
		if (against)
			json_object_set_new(o, "against_entries", json_integer((json_int_t)a.entries));
		if (repair) {
			json_object_set_new(o, "repaired_chunks", a.jrepaired);
			a.jrepaired = NULL;
		}
		json_object_set_new(o, "result", json_string(v.problems ? "problems" : "clean"));
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		fputc('\n', stdout);
		json_decref(o);
	} else {
		char h[32];

		printf("%" PRIu64 " chunks (%s) checked%s, %" PRIu64 " packs and %" PRIu64
		       " metadata records checked, %" PRIu64 " files named", v.chunks,
		       cli_human(v.chunk_bytes, h, sizeof(h)),
		       v.read_data ? " and re-hashed" : "", npacks, nmeta, v.files_checked);
		if (against)
			printf(", %" PRIu64 " source entries compared (%" PRIu64 " differ only in "
			       "atime/ctime%s)", a.entries, v.notes, v.notes ? ", -v lists them" : "");
		if (repair)
			printf(", %zu chunks repaired", a.fixed.n);
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
	for (size_t i = 0; i < a.naccept; i++)
		free(a.accept[i]);
	free(a.accept);
	free(a.fixed.v);
	free(a.cbuf);
	json_decref(a.jrepaired);
	free(v.bad_chunks.v);
	free(v.bad_contents.v);
	free(v.buf);
	free(a.sbuf);
	free(real);
	codec_free(v.codec);
	store_close(v.st);
	return status;
}
