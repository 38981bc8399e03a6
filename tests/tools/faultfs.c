/*
 * faultfs.c - dfs-faultfs, a FUSE passthrough that forgets what was not synced (tests only).
 *
 *   dfs-faultfs BACKING_DIR MOUNTPOINT [-o OPTIONS] [-d]
 *
 * Serves BACKING_DIR at MOUNTPOINT and keeps enough undo information to put BACKING_DIR
 * back into the state a power cut would leave: everything made durable by fsync /
 * fdatasync / a directory fsync is kept, everything else is undone. The store's own
 * sio layer cannot reach RocksDB's files (its C API has no custom Env); running the
 * store on this filesystem can.
 *
 * What is modelled
 *   File data and size. The first write, truncate, O_TRUNC open or hole punch of an inode
 *   after its last sync notes the inode's size then; every later overwrite of bytes below
 *   that size first saves the bytes it replaces (in memory, with an O_RDWR fd on the
 *   inode, so renames and unlinks do not matter). fsync or fdatasync of any fd of the
 *   inode drops the undo. At the cut the saved ranges are written back newest first and
 *   the file is cut to the noted size: the inode holds exactly its last synced content.
 *   Directory entries (strict POSIX, stricter than ext4's journal). create, mknod,
 *   mkdir, symlink, link, unlink, rmdir and rename are journaled in order. An entry is
 *   durable only once every directory it changed (both, for a rename) was fsynced after
 *   it; fsync of the file itself does not make its name durable. At the cut, the journal
 *   is undone newest first, skipping durable operations: new names are removed, a removed
 *   or replaced name comes back (unlink, rmdir and rename-over move the old inode into
 *   BACKING_DIR/.faultfs-trash instead of deleting it, so it can be restored with its
 *   content), a rename is moved back. An undo that no longer applies (the name now
 *   belongs to another inode because a later durable operation reused it) is skipped
 *   with a warning on stderr.
 * What is not modelled
 *   Torn or partial writes (a cut keeps all of a synced file or none of the unsynced
 *   part, never some of it), reordering between unsynced writes, attribute changes
 *   (chmod, chown, utimens are passed through and survive the cut), xattrs (not
 *   implemented: ENOSYS), RENAME_EXCHANGE (EINVAL), mmap writes that are not sent as
 *   FUSE writes (the mount has no writeback cache, so write(2) reaches us at once), a
 *   sync(2)/syncfs(2) (FUSE does not forward it: the backing files stay as they are).
 *   The undo lives in this process's memory: if dfs-faultfs itself is killed (SIGKILL),
 *   BACKING_DIR keeps every write, as after a clean unmount, plus the trash directory.
 * BACKING_DIR/.faultfs-trash is hidden from the mount and removed at exit; if it exists
 * at start (a run that was killed), dfs-faultfs refuses to start.
 *
 * Options (-o, comma separated; anything else goes to libfuse, e.g. allow_other, debug):
 *   cut_after=N      power cut right after the Nth mutating operation: every later
 *                    operation (reads too) fails with EIO, nothing changes any more, and
 *                    at unmount the undo is applied. A run with fewer operations is cut at
 *                    unmount (so cut_after=HUGE is "power cut right after the run").
 *                    SIGUSR1 cuts at the next operation. Without cut_after,
 *                    cut_after_match or SIGUSR1 an unmount is clean: every write stays,
 *                    as a real unmount syncs.
 *   cut_after_match=K:OP:GLOB  the same, right after the Kth mutating operation OP
 *                    (as named in the log: fdatasync, rename ...) on a path matching
 *                    GLOB (fnmatch, '*' also matches '/'), e.g. right after the 2nd
 *                    sync of a RocksDB WAL: 2:fdatasync:/store/index/[0-9]*.log
 *                    Unlike an op number, this names the same event in every run, however
 *                    threads and background work order the other operations.
 *   fail_at=N        the Nth mutating operation fails without doing anything ...
 *   fail_errno=E     ... with E: EIO (default), ENOSPC, or a number
 *   count_file=PATH  at exit, the number of mutating operations is written to PATH
 *   log_file=PATH    one line per mutating operation: "N op path" (to name a cut point;
 *                    fd-based operations show the name the file was opened under)
 *   no_dir_undo      model file data only: directory entries are always durable
 *   long_names       a backing entry "P@@LONG<N>" is shown as a name of N bytes (P padded
 *                    with 'L'): names over 255 bytes, which FUSE sources can show
 *   real_sync        also pass fsync/fdatasync to BACKING_DIR (off: the backing
 *                    filesystem never loses power, so its syncs would only cost time)
 *   eio_read=GLOB    read() of a file whose path in the mount ("/d/f") matched GLOB when
 *                    it was opened fails with EIO (a bad sector), from
 *   eio_read_from=N  ... byte N on (default 0): a request that reaches byte N or past it
 *                    fails whole; the bytes before are served
 *   seek_us=N        a read that does not start where the previous read ended (in any
 *                    file) waits N microseconds first: a disk with one head, whose
 *                    random reads cost a seek and whose sequential ones do not (the
 *                    loop is single-threaded, so waits add up as on such a disk)
 *   keep_cache       the kernel keeps a file's cached pages across opens, as a local
 *                    filesystem does (default: dropped at each open), for benchmarks
 *   eio_opendir=GLOB opendir of a matching directory fails with EIO
 *   eio_readdir=GLOB opendir works, but reading the listing fails with EIO
 *                    (GLOB as for cut_after_match; each failure is logged on stderr)
 * Mutating operations (counted, and where cut_after/fail_at apply): write, truncate
 * (setattr size, ftruncate, O_TRUNC open), fallocate, fsync/fdatasync, fsyncdir, create,
 * mknod, mkdir, symlink, link, unlink, rmdir, rename. A write(2) larger than the FUSE
 * max_write arrives as several writes.
 *
 * Threads: single-threaded (always runs as with -s, in the foreground).
 * Errors: handlers return 0 or -errno (libfuse's high-level convention); exit status 0,
 * or 1 when the mount failed or an undo could not be applied.
 *
 * SPDX-License-Identifier: MIT
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define FF_TRASH ".faultfs-trash"

/* Bytes of one inode that an unsynced change replaced (saved before the change). */
struct ff_range {
	off_t off;
	size_t len;
	char *data;
};

/* The undo of one inode changed since its last sync. */
struct ff_file {
	dev_t dev;
	ino_t ino;
	int fd;			/* O_RDWR on the inode, valid after unlink and rename */
	off_t size;		/* size at the last sync (the first change after it) */
	struct ff_range *r;	/* oldest first */
	size_t nr, cap;
	struct ff_file *next;
};

enum ff_ns_kind {
	FF_NS_NEW,		/* create, mknod, symlink, link: undo removes the name */
	FF_NS_MKDIR,		/* undo moves the directory (and what is in it) to the trash */
	FF_NS_REMOVED,		/* unlink, rmdir: undo moves the inode back from the trash */
	FF_NS_RENAME,		/* undo renames back, then restores a replaced target */
};

/* One journaled directory-entry change. */
struct ff_ns {
	unsigned long seq;
	enum ff_ns_kind kind;
	char *path;		/* FF_NS_RENAME: the new name; else the name changed */
	char *from;		/* FF_NS_RENAME: the old name */
	char *trash;		/* in FF_TRASH: the removed or replaced inode, or NULL */
	ino_t ino;		/* the inode that got the name */
	ino_t dir[2];		/* directories changed */
	int ndir;
};

struct ff_dirsync {
	ino_t ino;
	unsigned long seq;	/* op number of the last fsyncdir */
};

struct ff {
	const char *backing;
	const char *mountpoint;
	int root;			/* O_PATH fd on BACKING_DIR */
	unsigned long ops;		/* mutating operations so far */
	unsigned long cut_after;
	int cut_set;
	char *cut_match;		/* "K:OP:GLOB" */
	unsigned long match_k;		/* cut_match parsed */
	char *match_op, *match_glob;
	unsigned long matched;		/* operations that matched so far */
	int cut_next;			/* the cut comes before the next operation */
	unsigned long fail_at;
	char *fail_errno_s;
	int fail_errno;
	char *count_file;
	char *log_file;
	FILE *log;
	int no_dir_undo;
	int real_sync;
	int long_names;
	char *eio_read;			/* GLOB */
	unsigned long eio_read_from;
	unsigned long seek_us;
	int keep_cache;
	int head_fd;			/* where the last read ended: file and offset */
	off_t head_off;
	char *eio_opendir;		/* GLOB */
	char *eio_readdir;		/* GLOB */
	int frozen;			/* the power is off */
	unsigned long trash_seq;
	struct ff_file *files;
	struct ff_ns *ns;
	size_t nns, cap_ns;
	struct ff_dirsync *ds;
	size_t nds, cap_ds;
	int positional;
};

static struct ff g;
static volatile sig_atomic_t g_sigcut;

#define FF_OPT(t, p, v) { t, offsetof(struct ff, p), v }
static const struct fuse_opt ff_opts[] = {
	FF_OPT("cut_after=%lu", cut_after, 0),
	FF_OPT("cut_after=", cut_set, 1),
	FF_OPT("cut_after_match=%s", cut_match, 0),
	FF_OPT("fail_at=%lu", fail_at, 0),
	FF_OPT("fail_errno=%s", fail_errno_s, 0),
	FF_OPT("count_file=%s", count_file, 0),
	FF_OPT("log_file=%s", log_file, 0),
	FF_OPT("no_dir_undo", no_dir_undo, 1),
	FF_OPT("real_sync", real_sync, 1),
	FF_OPT("long_names", long_names, 1),
	FF_OPT("eio_read=%s", eio_read, 0),
	FF_OPT("eio_read_from=%lu", eio_read_from, 0),
	FF_OPT("seek_us=%lu", seek_us, 0),
	FF_OPT("keep_cache", keep_cache, 1),
	FF_OPT("eio_opendir=%s", eio_opendir, 0),
	FF_OPT("eio_readdir=%s", eio_readdir, 0),
	FUSE_OPT_END
};

static void ff_warn(const char *fmt, const char *a, int err)
{
	fprintf(stderr, "dfs-faultfs: ");
	fprintf(stderr, fmt, a);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
}

/*
 * long_names: a backing entry named "P@@LONG<N>" (P not ending in 'L') is shown as a name
 * of N bytes, P padded with 'L' (names over 255 bytes, as FUSE sources such as sshfs can
 * show them, which the backing filesystem cannot hold).
 */
#define FF_LONG "@@LONG"

/* The shown name of backing name @name into @out (@cap bytes), or NULL if not long. */
static const char *long_shown(const char *name, char *out, size_t cap)
{
	const char *m = strstr(name, FF_LONG);
	size_t pl, n;
	char *end;

	if (!g.long_names || !m || !m[strlen(FF_LONG)])
		return NULL;
	pl = (size_t)(m - name);
	n = strtoul(m + strlen(FF_LONG), &end, 10);
	if (*end || n <= pl || n >= cap)
		return NULL;
	memcpy(out, name, pl);
	memset(out + pl, 'L', n - pl);
	out[n] = '\0';
	return out;
}

/* "/a/b" -> "a/b", "/" -> "." (relative to g.root); long_names: shown names back to the
 * backing ones (a ring of buffers per thread: a rename uses two results at once). */
static const char *rel(const char *path)
{
	static __thread char ring[4][PATH_MAX];
	static __thread unsigned next;
	const char *p, *c;
	char *out;
	size_t o = 0;
	int longer = 0;

	if (!path || !path[0] || strcmp(path, "/") == 0)
		return ".";
	p = path[0] == '/' ? path + 1 : path;
	if (!g.long_names)
		return p;
	for (c = p; *c;) {
		size_t l = strcspn(c, "/");

		longer |= l > 255;
		c += l + (c[l] == '/');
	}
	if (!longer)
		return p;
	out = ring[next++ % 4];
	for (c = p; *c;) {
		size_t l = strcspn(c, "/"), keep = l;
		char tail[32] = "";

		if (l > 255) {
			while (keep && c[keep - 1] == 'L')
				keep--;
			snprintf(tail, sizeof(tail), FF_LONG "%zu", l);
		}
		if (o + keep + strlen(tail) + 2 >= PATH_MAX)
			return p;	/* too long to map: ENOENT at the backing side */
		memcpy(out + o, c, keep);
		o += keep;
		memcpy(out + o, tail, strlen(tail));
		o += strlen(tail);
		c += l;
		if (*c == '/')
			out[o++] = *c++;
	}
	out[o] = '\0';
	return out;
}

static int is_trash(const char *path)
{
	const char *r = rel(path);
	size_t n = strlen(FF_TRASH);

	return strncmp(r, FF_TRASH, n) == 0 && (r[n] == '\0' || r[n] == '/');
}

/* What fi->fh points to: the backing fd, the faults chosen for it at open (eio_read,
 * eio_readdir), and the name at open (for the log). */
struct ff_fh {
	int fd;
	int eio_read;
	int eio_readdir;
	char path[];
};

/* Does @path match the option @glob (NULL: not given)? */
static int eio_match(const char *glob, const char *path)
{
	return glob && path && fnmatch(glob, path, 0) == 0;
}

static int fh_fd(const struct fuse_file_info *fi)
{
	return ((const struct ff_fh *)(uintptr_t)fi->fh)->fd;
}

static const char *fh_path(const char *path, const struct fuse_file_info *fi)
{
	return path ? path : ((const struct ff_fh *)(uintptr_t)fi->fh)->path;
}

static int fh_new(int fd, const char *path, struct fuse_file_info *fi)
{
	size_t n = strlen(path) + 1;
	struct ff_fh *h = malloc(sizeof(*h) + n);

	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->eio_read = eio_match(g.eio_read, path);
	h->eio_readdir = eio_match(g.eio_readdir, path);
	memcpy(h->path, path, n);
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static void fh_free(struct fuse_file_info *fi)
{
	struct ff_fh *h = (struct ff_fh *)(uintptr_t)fi->fh;

	close(h->fd);
	free(h);
	fi->fh = 0;
}

/* The inode of the directory holding @path; 0 if it cannot be found. */
static ino_t parent_ino(const char *path)
{
	char dir[PATH_MAX];
	const char *r = rel(path), *slash = strrchr(r, '/');
	struct stat sb;

	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else {
		size_t n = (size_t)(slash - r);

		if (n >= sizeof(dir))
			return 0;
		memcpy(dir, r, n);
		dir[n] = '\0';
	}
	if (fstatat(g.root, dir, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return sb.st_ino;
}

static ino_t path_ino(const char *r)
{
	struct stat sb;

	if (fstatat(g.root, r, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return sb.st_ino;
}

/* Non-mutating operations: only refused once the power is off. */
static int ff_alive(void)
{
	if (g.cut_next && !g.frozen) {
		g.frozen = 1;
		fprintf(stderr, "dfs-faultfs: power cut after op %lu (match %lu of %s)\n", g.ops,
			g.matched, g.cut_match);
	}
	if (g_sigcut && !g.frozen) {
		g.frozen = 1;
		fprintf(stderr, "dfs-faultfs: SIGUSR1: power cut after op %lu\n", g.ops);
	}
	return g.frozen ? -EIO : 0;
}

/* Counts one mutating operation. 0: go on; -errno: fail it without doing anything. */
static int ff_mutate(const char *what, const char *path)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (g.cut_set && g.ops == g.cut_after) {
		g.frozen = 1;
		fprintf(stderr, "dfs-faultfs: power cut after op %lu (before %s %s)\n", g.ops,
			what, path ? path : "(unlinked)");
		return -EIO;
	}
	g.ops++;
	if (g.log)
		fprintf(g.log, "%lu %s %s\n", g.ops, what, path ? path : "(unlinked)");
	if (g.match_op && path && strcmp(what, g.match_op) == 0 &&
	    fnmatch(g.match_glob, path, 0) == 0 && ++g.matched == g.match_k)
		g.cut_next = 1;
	if (g.ops == g.fail_at) {
		fprintf(stderr, "dfs-faultfs: op %lu (%s %s) fails with %s\n", g.ops, what,
			path ? path : "(unlinked)", strerror(g.fail_errno));
		return -g.fail_errno;
	}
	return 0;
}

/* ---- file data undo ------------------------------------------------------------------- */

static struct ff_file *file_find(dev_t dev, ino_t ino, struct ff_file ***link)
{
	struct ff_file **pp;

	for (pp = &g.files; *pp; pp = &(*pp)->next) {
		if ((*pp)->dev == dev && (*pp)->ino == ino) {
			if (link)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

static void file_free(struct ff_file *f)
{
	for (size_t i = 0; i < f->nr; i++)
		free(f->r[i].data);
	free(f->r);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

/* The undo of the inode behind @fd, started now if this is its first unsynced change. */
static int file_undo(int fd, struct ff_file **out)
{
	char proc[64];
	struct ff_file *f;
	struct stat sb;

	*out = NULL;
	if (fstat(fd, &sb) < 0)
		return -errno;
	f = file_find(sb.st_dev, sb.st_ino, NULL);
	if (f) {
		*out = f;
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	f->fd = open(proc, O_RDWR | O_CLOEXEC);
	if (f->fd < 0) {
		int rc = -errno;

		free(f);
		return rc;
	}
	f->dev = sb.st_dev;
	f->ino = sb.st_ino;
	f->size = sb.st_size;
	f->next = g.files;
	g.files = f;
	*out = f;
	return 0;
}

/* Saves the bytes of [off, off + len) that lie below the synced size, before a change. */
static int file_save(struct ff_file *f, off_t off, off_t len)
{
	struct ff_range *r;
	off_t end = off + len;
	ssize_t n;
	char *buf;

	if (end > f->size)
		end = f->size;
	if (off >= end)
		return 0;
	buf = malloc((size_t)(end - off));
	if (!buf)
		return -ENOMEM;
	n = pread(f->fd, buf, (size_t)(end - off), off);
	if (n <= 0) {
		/* nothing there any more: an earlier truncate saved these bytes */
		free(buf);
		return n < 0 ? -errno : 0;
	}
	if (f->nr == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;

		r = realloc(f->r, cap * sizeof(*r));
		if (!r) {
			free(buf);
			return -ENOMEM;
		}
		f->r = r;
		f->cap = cap;
	}
	r = &f->r[f->nr++];
	r->off = off;
	r->len = (size_t)n;
	r->data = buf;
	return 0;
}

/* Prepares a change of [off, off + len) of the file behind @fd (len < 0: to the end). */
static int file_before_change(int fd, off_t off, off_t len)
{
	struct ff_file *f;
	int rc = file_undo(fd, &f);

	if (rc < 0)
		return rc;
	if (len < 0) {
		struct stat sb;

		if (fstat(fd, &sb) < 0)
			return -errno;
		len = sb.st_size > off ? sb.st_size - off : 0;
	}
	return file_save(f, off, len);
}

static void file_synced(int fd)
{
	struct ff_file *f, **link;
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return;
	f = file_find(sb.st_dev, sb.st_ino, &link);
	if (!f)
		return;
	*link = f->next;
	file_free(f);
}

static int files_undo(unsigned long *nfiles, unsigned long *nranges)
{
	int bad = 0;

	while (g.files) {
		struct ff_file *f = g.files;

		for (size_t i = f->nr; i-- > 0;) {
			if (pwrite(f->fd, f->r[i].data, f->r[i].len, f->r[i].off) !=
			    (ssize_t)f->r[i].len)
				bad = 1;
		}
		if (ftruncate(f->fd, f->size) < 0)
			bad = 1;
		(*nfiles)++;
		*nranges += f->nr;
		g.files = f->next;
		file_free(f);
	}
	return bad ? -EIO : 0;
}

/* ---- directory entry journal --------------------------------------------------------- */

static int ns_add(enum ff_ns_kind kind, const char *path, const char *from, const char *trash,
		  ino_t ino, ino_t d0, ino_t d1)
{
	struct ff_ns *e;

	if (g.no_dir_undo)
		return 0;
	if (g.nns == g.cap_ns) {
		size_t cap = g.cap_ns ? g.cap_ns * 2 : 64;

		e = realloc(g.ns, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		g.ns = e;
		g.cap_ns = cap;
	}
	e = &g.ns[g.nns];
	memset(e, 0, sizeof(*e));
	e->seq = g.ops;
	e->kind = kind;
	e->ino = ino;
	e->path = strdup(rel(path));
	e->from = from ? strdup(rel(from)) : NULL;
	e->trash = trash ? strdup(trash) : NULL;
	if (!e->path || (from && !e->from) || (trash && !e->trash)) {
		free(e->path);
		free(e->from);
		free(e->trash);
		return -ENOMEM;
	}
	e->dir[e->ndir++] = d0;
	if (d1 && d1 != d0)
		e->dir[e->ndir++] = d1;
	g.nns++;
	return 0;
}

static void dir_synced(ino_t ino)
{
	for (size_t i = 0; i < g.nds; i++) {
		if (g.ds[i].ino == ino) {
			g.ds[i].seq = g.ops;
			return;
		}
	}
	if (g.nds == g.cap_ds) {
		size_t cap = g.cap_ds ? g.cap_ds * 2 : 32;
		struct ff_dirsync *d = realloc(g.ds, cap * sizeof(*d));

		if (!d)
			return;	/* the directory stays unsynced: stricter, never wrong */
		g.ds = d;
		g.cap_ds = cap;
	}
	g.ds[g.nds].ino = ino;
	g.ds[g.nds].seq = g.ops;
	g.nds++;
}

static int ns_durable(const struct ff_ns *e)
{
	for (int i = 0; i < e->ndir; i++) {
		size_t j;

		for (j = 0; j < g.nds; j++)
			if (g.ds[j].ino == e->dir[i])
				break;
		if (j == g.nds || g.ds[j].seq <= e->seq)
			return 0;
	}
	return 1;
}

/* A fresh name in the trash directory for an inode that loses its name. */
static void trash_name(char *out, size_t cap)
{
	snprintf(out, cap, FF_TRASH "/%lu", ++g.trash_seq);
}

static int ns_undo_one(const struct ff_ns *e)
{
	char t[64];

	switch (e->kind) {
	case FF_NS_NEW:
		if (path_ino(e->path) != e->ino)
			return 1;
		return unlinkat(g.root, e->path, 0) < 0 ? -errno : 0;
	case FF_NS_MKDIR:
		if (path_ino(e->path) != e->ino)
			return 1;
		trash_name(t, sizeof(t));
		return renameat(g.root, e->path, g.root, t) < 0 ? -errno : 0;
	case FF_NS_REMOVED:
		return renameat2(g.root, e->trash, g.root, e->path, RENAME_NOREPLACE) < 0 ? -errno
											     : 0;
	case FF_NS_RENAME:
		if (path_ino(e->path) != e->ino)
			return 1;
		if (renameat2(g.root, e->path, g.root, e->from, RENAME_NOREPLACE) < 0)
			return -errno;
		if (e->trash && renameat2(g.root, e->trash, g.root, e->path, RENAME_NOREPLACE) < 0)
			return -errno;
		return 0;
	}
	return 0;
}

static int ns_undo(unsigned long *nundone)
{
	int bad = 0;

	for (size_t i = g.nns; i-- > 0;) {
		const struct ff_ns *e = &g.ns[i];
		int rc;

		if (ns_durable(e))
			continue;
		rc = ns_undo_one(e);
		if (rc == 0)
			(*nundone)++;
		else
			ff_warn("cannot undo the change of %s", e->path, rc < 0 ? -rc : 0);
		if (rc < 0)
			bad = 1;
	}
	return bad ? -EIO : 0;
}

static void ns_free(void)
{
	for (size_t i = 0; i < g.nns; i++) {
		free(g.ns[i].path);
		free(g.ns[i].from);
		free(g.ns[i].trash);
	}
	free(g.ns);
	free(g.ds);
}

/* Moves @r to the trash (its inode keeps its content for an undo); name in @t. */
static int move_to_trash(const char *r, char *t, size_t cap)
{
	trash_name(t, cap);
	return renameat(g.root, r, g.root, t) < 0 ? -errno : 0;
}

static int dir_is_empty(const char *r)
{
	int fd = openat(g.root, r, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;
	int rc = 1;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			rc = 0;
			break;
		}
	}
	closedir(d);
	return rc;
}

/* ---- operations ----------------------------------------------------------------------- */

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;	/* unlink really unlinks (our trash keeps the inode) */
	cfg->nullpath_ok = 1;	/* ... and fd-based ops on an unlinked file get NULL */
	cfg->kernel_cache = g.keep_cache;
	cfg->direct_io = 0;
	return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (fi)
		return fstat(fh_fd(fi), st) < 0 ? -errno : 0;
	if (is_trash(path))
		return -ENOENT;
	return fstatat(g.root, rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ff_access(const char *path, int mask)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (is_trash(path))
		return -ENOENT;
	return faccessat(g.root, rel(path), mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ff_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	n = readlinkat(g.root, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int ff_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd, rc = ff_alive();

	if (rc < 0)
		return rc;
	if (eio_match(g.eio_opendir, path)) {
		ff_warn("opendir %s: EIO (eio_opendir)", path, 0);
		return -EIO;
	}
	fd = openat(g.root, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fh_new(fd, path, fi);
	if (rc < 0)
		close(fd);
	return rc;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	int root = strcmp(rel(path), ".") == 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = ff_alive();

	(void)off;
	(void)flags;
	if (rc < 0)
		return rc;
	if (((const struct ff_fh *)(uintptr_t)fi->fh)->eio_readdir) {
		ff_warn("readdir %s: EIO (eio_readdir)", fh_path(path, fi), 0);
		return -EIO;
	}
	fd = openat(fh_fd(fi), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	/* offset 0 everywhere: libfuse collects the whole directory in one call */
	while ((de = readdir(d))) {
		char shown[1100];
		const char *name;
		struct stat st;

		if (root && strcmp(de->d_name, FF_TRASH) == 0)
			continue;
		name = long_shown(de->d_name, shown, sizeof(shown));
		memset(&st, 0, sizeof(st));
		st.st_ino = de->d_ino;
		st.st_mode = (mode_t)(de->d_type << 12);
		if (fill(buf, name ? name : de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int ff_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	fh_free(fi);
	return 0;
}

static int ff_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct stat sb;
	int rc = ff_mutate("fsyncdir", fh_path(path, fi));

	(void)datasync;
	if (rc < 0)
		return rc;
	if (fstat(fh_fd(fi), &sb) < 0)
		return -errno;
	dir_synced(sb.st_ino);
	if (g.real_sync && fsync(fh_fd(fi)) < 0)
		return -errno;
	return 0;
}

static int ff_mknod(const char *path, mode_t mode, dev_t rdev)
{
	const char *r = rel(path);
	int rc = ff_mutate("mknod", path);

	if (rc < 0)
		return rc;
	if (is_trash(path))
		return -EPERM;
	if (mknodat(g.root, r, mode, rdev) < 0)
		return -errno;
	return ns_add(FF_NS_NEW, path, NULL, NULL, path_ino(r), parent_ino(path), 0);
}

static int ff_mkdir(const char *path, mode_t mode)
{
	const char *r = rel(path);
	int rc = ff_mutate("mkdir", path);

	if (rc < 0)
		return rc;
	if (is_trash(path))
		return -EPERM;
	if (mkdirat(g.root, r, mode) < 0)
		return -errno;
	return ns_add(FF_NS_MKDIR, path, NULL, NULL, path_ino(r), parent_ino(path), 0);
}

static int ff_symlink(const char *target, const char *path)
{
	const char *r = rel(path);
	int rc = ff_mutate("symlink", path);

	if (rc < 0)
		return rc;
	if (symlinkat(target, g.root, r) < 0)
		return -errno;
	return ns_add(FF_NS_NEW, path, NULL, NULL, path_ino(r), parent_ino(path), 0);
}

static int ff_link(const char *from, const char *to)
{
	const char *r = rel(to);
	int rc = ff_mutate("link", to);

	if (rc < 0)
		return rc;
	if (linkat(g.root, rel(from), g.root, r, 0) < 0)
		return -errno;
	return ns_add(FF_NS_NEW, to, NULL, NULL, path_ino(r), parent_ino(to), 0);
}

static int ff_remove(const char *what, const char *path, int dir)
{
	const char *r = rel(path);
	char t[64];
	struct stat sb;
	ino_t pino;
	int rc = ff_mutate(what, path);

	if (rc < 0)
		return rc;
	if (fstatat(g.root, r, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (dir && !S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	if (!dir && S_ISDIR(sb.st_mode))
		return -EISDIR;
	if (dir) {
		rc = dir_is_empty(r);
		if (rc <= 0)
			return rc < 0 ? rc : -ENOTEMPTY;
	}
	pino = parent_ino(path);
	if (g.no_dir_undo) {
		rc = unlinkat(g.root, r, dir ? AT_REMOVEDIR : 0);
		return rc < 0 ? -errno : 0;
	}
	rc = move_to_trash(r, t, sizeof(t));
	if (rc < 0)
		return rc;
	return ns_add(FF_NS_REMOVED, path, NULL, t, sb.st_ino, pino, 0);
}

static int ff_unlink(const char *path)
{
	return ff_remove("unlink", path, 0);
}

static int ff_rmdir(const char *path)
{
	return ff_remove("rmdir", path, 1);
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
	const char *rf = rel(from), *rt = rel(to);
	struct stat sf, st;
	char t[64];
	int have_to, rc = ff_mutate("rename", to);

	if (rc < 0)
		return rc;
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if (is_trash(from) || is_trash(to))
		return -EPERM;
	if (fstatat(g.root, rf, &sf, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	have_to = fstatat(g.root, rt, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (have_to && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (have_to && st.st_ino == sf.st_ino)
		return 0;	/* two names of one inode: rename(2) does nothing */
	if (g.no_dir_undo)
		return renameat(g.root, rf, g.root, rt) < 0 ? -errno : 0;
	t[0] = '\0';
	if (have_to) {
		/* rename(2)'s checks, done here because the target goes to the trash first */
		if (S_ISDIR(sf.st_mode) && !S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if (!S_ISDIR(sf.st_mode) && S_ISDIR(st.st_mode))
			return -EISDIR;
		if (S_ISDIR(st.st_mode)) {
			rc = dir_is_empty(rt);
			if (rc <= 0)
				return rc < 0 ? rc : -ENOTEMPTY;
		}
		rc = move_to_trash(rt, t, sizeof(t));
		if (rc < 0)
			return rc;
	}
	if (renameat(g.root, rf, g.root, rt) < 0) {
		rc = -errno;
		if (t[0])
			renameat(g.root, t, g.root, rt);
		return rc;
	}
	return ns_add(FF_NS_RENAME, to, from, t[0] ? t : NULL, sf.st_ino, parent_ino(from),
		      parent_ino(to));
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (fi)
		return fchmod(fh_fd(fi), mode) < 0 ? -errno : 0;
	return fchmodat(g.root, rel(path), mode, 0) < 0 ? -errno : 0;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (fi)
		return fchown(fh_fd(fi), uid, gid) < 0 ? -errno : 0;
	return fchownat(g.root, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (fi)
		return futimens(fh_fd(fi), tv) < 0 ? -errno : 0;
	return utimensat(g.root, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, rc = ff_mutate("truncate", fi ? fh_path(path, fi) : path);

	if (rc < 0)
		return rc;
	fd = fi ? fh_fd(fi) : openat(g.root, rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = file_before_change(fd, size, -1);
	if (rc == 0 && ftruncate(fd, size) < 0)
		rc = -errno;
	if (!fi)
		close(fd);
	return rc;
}

/* Opens @path for a FUSE open or create; O_TRUNC is done here, as a counted change. */
static int open_backing(const char *path, int flags, mode_t mode, int trunc_counted,
			struct fuse_file_info *fi)
{
	int fd, rc;

	flags &= ~(O_APPEND | O_DIRECT | O_NOFOLLOW);
	fd = openat(g.root, rel(path), (flags & ~O_TRUNC) | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (flags & O_TRUNC) {
		rc = trunc_counted ? 0 : ff_mutate("truncate", path);
		if (rc == 0)
			rc = file_before_change(fd, 0, -1);
		if (rc == 0 && ftruncate(fd, 0) < 0)
			rc = -errno;
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	rc = fh_new(fd, path, fi);
	if (rc < 0)
		close(fd);
	return rc;
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (is_trash(path))
		return -ENOENT;
	return open_backing(path, fi->flags, 0, 0, fi);
}

static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	const char *r = rel(path);
	int existed, rc = ff_mutate("create", path);

	if (rc < 0)
		return rc;
	if (is_trash(path))
		return -EPERM;
	existed = path_ino(r) != 0;
	rc = open_backing(path, fi->flags | O_CREAT, mode, 1, fi);
	if (rc < 0 || existed)
		return rc;
	rc = ns_add(FF_NS_NEW, path, NULL, NULL, path_ino(r), parent_ino(path), 0);
	if (rc < 0) {
		fh_free(fi);
		unlinkat(g.root, r, 0);
	}
	return rc;
}

static int ff_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n;
	int rc = ff_alive();

	if (rc < 0)
		return rc;
	if (((const struct ff_fh *)(uintptr_t)fi->fh)->eio_read &&
	    (unsigned long long)off + size > g.eio_read_from) {
		fprintf(stderr, "dfs-faultfs: read %s @%lld+%zu: EIO (eio_read)\n",
			fh_path(path, fi), (long long)off, size);
		return -EIO;
	}
	if (g.seek_us && (fh_fd(fi) != g.head_fd || off != g.head_off)) {
		struct timespec ts = { (time_t)(g.seek_us / 1000000),
				       (long)(g.seek_us % 1000000) * 1000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	n = pread(fh_fd(fi), buf, size, off);
	g.head_fd = fh_fd(fi);
	g.head_off = n > 0 ? off + n : off;
	return n < 0 ? -errno : (int)n;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t n;
	int rc = ff_mutate("write", fh_path(path, fi));

	if (rc < 0)
		return rc;
	rc = file_before_change(fh_fd(fi), off, (off_t)size);
	if (rc < 0)
		return rc;
	n = pwrite(fh_fd(fi), buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int ff_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	int rc;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	rc = ff_mutate("fallocate", fh_path(path, fi));
	if (rc < 0)
		return rc;
	/* plain allocation changes no byte below the old size; the undo restores the size */
	rc = file_before_change(fh_fd(fi), off,
				mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) ? len : 0);
	if (rc < 0)
		return rc;
	return fallocate(fh_fd(fi), mode, off, len) < 0 ? -errno : 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int rc = ff_mutate(datasync ? "fdatasync" : "fsync", fh_path(path, fi));

	if (rc < 0)
		return rc;
	file_synced(fh_fd(fi));
	if (g.real_sync && (datasync ? fdatasync(fh_fd(fi)) : fsync(fh_fd(fi))) < 0)
		return -errno;
	return 0;
}

static int ff_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return ff_alive();
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	fh_free(fi);
	return 0;
}

static int ff_statfs(const char *path, struct statvfs *sv)
{
	int rc = ff_alive();

	(void)path;
	if (rc < 0)
		return rc;
	return fstatvfs(g.root, sv) < 0 ? -errno : 0;
}

static const struct fuse_operations ff_ops = {
	.init = ff_init,
	.getattr = ff_getattr,
	.access = ff_access,
	.readlink = ff_readlink,
	.opendir = ff_opendir,
	.readdir = ff_readdir,
	.releasedir = ff_releasedir,
	.fsyncdir = ff_fsyncdir,
	.mknod = ff_mknod,
	.mkdir = ff_mkdir,
	.symlink = ff_symlink,
	.link = ff_link,
	.unlink = ff_unlink,
	.rmdir = ff_rmdir,
	.rename = ff_rename,
	.chmod = ff_chmod,
	.chown = ff_chown,
	.utimens = ff_utimens,
	.truncate = ff_truncate,
	.open = ff_open,
	.create = ff_create,
	.read = ff_read,
	.write = ff_write,
	.fallocate = ff_fallocate,
	.fsync = ff_fsync,
	.flush = ff_flush,
	.release = ff_release,
	.statfs = ff_statfs,
};

/* ---- main ----------------------------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(p) < 0 ? -1 : 0;
	return unlink(p) < 0 ? -1 : 0;
}

static int trash_remove(void)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/" FF_TRASH, g.backing);
	return nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

static void on_sigusr1(int sig)
{
	(void)sig;
	g_sigcut = 1;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	(void)data;
	(void)out;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (g.positional == 0)
		g.backing = arg;
	else if (g.positional == 1)
		g.mountpoint = arg;
	else {
		fprintf(stderr, "dfs-faultfs: unexpected argument %s\n", arg);
		return -1;
	}
	g.positional++;
	return 0;
}

/* Applies the power cut to BACKING_DIR, or forgets the undo after a clean unmount. */
static int finish(void)
{
	unsigned long nfiles = 0, nranges = 0, nundone = 0;
	int rc = 0;

	if (g.cut_set || g.cut_match || g.frozen || g_sigcut) {
		rc = files_undo(&nfiles, &nranges);
		if (ns_undo(&nundone) < 0)
			rc = -EIO;
		fprintf(stderr, "dfs-faultfs: power cut after op %lu: %lu files back to their "
			"synced content (%lu saved ranges), %lu directory changes undone%s\n",
			g.ops, nfiles, nranges, nundone, rc < 0 ? " (with errors)" : "");
	} else {
		while (g.files) {
			struct ff_file *f = g.files;

			g.files = f->next;
			file_free(f);
		}
	}
	ns_free();
	if (trash_remove() < 0) {
		ff_warn("%s/" FF_TRASH ": cannot remove", g.backing, errno);
		rc = -EIO;
	}
	if (g.count_file) {
		FILE *f = fopen(g.count_file, "w");

		if (!f || fprintf(f, "%lu\n", g.ops) < 0 || fclose(f) != 0) {
			ff_warn("%s: cannot write the count", g.count_file, errno);
			rc = -EIO;
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct sigaction sa;
	struct fuse *fuse;
	char trash[PATH_MAX];
	int rc = 1;

	g.fail_errno = EIO;
	if (fuse_opt_parse(&args, &g, ff_opts, opt_proc) < 0)
		return 1;
	if (!g.backing || !g.mountpoint) {
		fprintf(stderr, "usage: dfs-faultfs BACKING_DIR MOUNTPOINT [-o cut_after=N,"
			"cut_after_match=K:OP:GLOB,fail_at=N,fail_errno=EIO|ENOSPC,\n"
			"\tcount_file=PATH,log_file=PATH,no_dir_undo,real_sync,long_names,\n"
			"\teio_read=GLOB,eio_read_from=N,seek_us=N,keep_cache,eio_opendir=GLOB,eio_readdir=GLOB]\n");
		goto out_args;
	}
	if (g.fail_errno_s) {
		if (strcmp(g.fail_errno_s, "ENOSPC") == 0)
			g.fail_errno = ENOSPC;
		else if (strcmp(g.fail_errno_s, "EIO") == 0)
			g.fail_errno = EIO;
		else
			g.fail_errno = (int)strtol(g.fail_errno_s, NULL, 10);
		if (g.fail_errno <= 0) {
			fprintf(stderr, "dfs-faultfs: bad fail_errno %s\n", g.fail_errno_s);
			goto out_args;
		}
	}
	if (g.cut_match) {
		char *end, *colon;

		g.match_k = strtoul(g.cut_match, &end, 10);
		colon = *end == ':' ? strchr(end + 1, ':') : NULL;
		if (g.match_k == 0 || !colon) {
			fprintf(stderr, "dfs-faultfs: bad cut_after_match %s (K:OP:GLOB)\n",
				g.cut_match);
			goto out_args;
		}
		g.match_op = strndup(end + 1, (size_t)(colon - end - 1));
		g.match_glob = colon + 1;
		if (!g.match_op)
			goto out_args;
	}
	g.root = open(g.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (g.root < 0) {
		ff_warn("%s", g.backing, errno);
		goto out_args;
	}
	if (snprintf(trash, sizeof(trash), "%s/" FF_TRASH, g.backing) >= (int)sizeof(trash) ||
	    mkdir(trash, 0700) < 0) {
		ff_warn("%s/" FF_TRASH ": cannot create (left by a run that did not finish?)",
			g.backing, errno);
		goto out_root;
	}
	if (g.log_file) {
		g.log = fopen(g.log_file, "w");
		if (!g.log) {
			ff_warn("%s", g.log_file, errno);
			goto out_trash;
		}
	}
	fuse = fuse_new(&args, &ff_ops, sizeof(ff_ops), NULL);
	if (!fuse)
		goto out_log;
	if (fuse_mount(fuse, g.mountpoint) < 0)
		goto out_fuse;
	if (fuse_set_signal_handlers(fuse_get_session(fuse)) < 0)
		goto out_unmount;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	rc = fuse_loop(fuse) < 0 ? 1 : 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
	fuse_unmount(fuse);
out_fuse:
	fuse_destroy(fuse);
out_log:
	if (g.log)
		fclose(g.log);
out_trash:
	if (finish() < 0)
		rc = 1;
out_root:
	close(g.root);
out_args:
	fuse_opt_free_args(&args);
	free(g.fail_errno_s);
	free(g.cut_match);
	free(g.match_op);
	free(g.count_file);
	free(g.log_file);
	free(g.eio_read);
	free(g.eio_opendir);
	free(g.eio_readdir);
	return rc;
}
