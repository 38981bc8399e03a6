/*
 * walk.c - the walker: lists each directory once (sorted), stats its entries, skips what
 * is excluded (--exclude, the store itself, defragfs mounts, other filesystems with
 * --one-file-system), decides what must be read (new or changed files; a hard link's
 * later names and unchanged files are not read again) and appends the items to the ring
 * in walk order; and the pre-walk, which counts the totals for the progress line.
 *
 * Threads and locks: see ingest_int.h. Errors: an item's err/why, or a failure added to
 * the run's list; g->fatal (-ENOMEM) stops the run.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "exclude.h"
#include "ingest_int.h"
#include "srcfile.h"
#include "store/log.h"

static void wdir_put(struct wdir *d)
{
	while (d && atomic_fetch_sub(&d->refs, 1) == 1) {
		struct wdir *up = d->up;

		if (d->fd >= 0)
			close(d->fd);
		free(d->name);
		free(d);
		d = up;
	}
}

static struct wdir *wdir_get(struct wdir *d)
{
	if (d)
		atomic_fetch_add(&d->refs, 1);
	return d;
}

void ing_item_free(struct item *it)
{
	if (!it)
		return;
	free(it->path);
	wdir_put(it->parent);
	wdir_put(it->self);
	store_cb_free(it->cb);
	free(it->target.p);
	src_xattrs_free(it->xattrs, it->nxattrs);
	free(it->names);
	free(it->mime);
	free(it);
}

const uint8_t *ing_item_name(const struct item *it, size_t *len)
{
	*len = it->path_len - it->name_off;
	return it->path + it->name_off;
}

void ing_stop_all(struct ing *g)
{
	pthread_mutex_lock(&g->ring_lock);
	g->stop = true;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
}

/* ---- the walker --------------------------------------------------------------------------- */

const char *ingest_exclude_check(const char *pat)
{
	if (!pat[0] || !strcmp(pat, "/"))
		return "an empty pattern";
	if ((pat[0] == '+' || pat[0] == '-') && pat[1] == ' ')
		return "rsync's filter rules (\"+ PATTERN\", \"- PATTERN\"): give the pattern "
		       "alone; there are no includes";
	if (strlen(pat) >= PATH_MAX)
		return "a pattern longer than PATH_MAX";
	return NULL;
}

/* Is the entry at @path (source-relative), named @name, excluded? Both NUL-terminated. */
static bool excluded(struct ing *g, const char *path, const char *name, bool is_dir)
{
	return excl_match(g->o->excludes, (size_t)g->o->nexcludes, path, name, is_dir);
}

/*
 * Was @ino (a multiply-linked entry) seen before in this run? Out of memory, the item
 * fails (-ENOMEM) rather than become a separate copy of the file.
 */
static int hl_seen(struct ing *g, unsigned fs, uint64_t ino)
{
	int rc;

#ifdef DFS_TEST_FAULTS
	/* DFS_FAULT_HLSET=1: the set is out of memory (tests/unit/test_ingest.c) */
	if (getenv("DFS_FAULT_HLSET"))
		return -ENOMEM;
#endif
	rc = u64set_add(&g->fs[fs].hl, ino + 1);	/* 0 is the set's empty slot */

	return rc < 0 ? rc : rc == 0;
}

/* Queues @it for the committer; false when the run is stopping (@it is freed then). */
static bool ring_push(struct ing *g, struct item *it)
{
	pthread_mutex_lock(&g->ring_lock);
	while (g->tail - g->head >= IN_RING && !g->stop)
		pthread_cond_wait(&g->ring_cond, &g->ring_lock);
	if (g->stop) {
		pthread_mutex_unlock(&g->ring_lock);
		ing_item_free(it);
		return false;
	}
	g->ring[g->tail % IN_RING] = it;
	g->tail++;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
	return true;
}

static struct item *item_new(const uint8_t *ppath, size_t plen, const uint8_t *name, size_t nlen)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it)
		return NULL;
	it->path_len = plen ? plen + 1 + nlen : nlen;
	it->path = malloc(it->path_len + 1);
	if (!it->path) {
		free(it);
		return NULL;
	}
	if (plen) {
		memcpy(it->path, ppath, plen);
		it->path[plen] = '/';
		it->name_off = plen + 1;
	}
	memcpy(it->path + it->name_off, name, nlen);
	it->path[it->path_len] = '\0';
	return it;
}

/* Is the file unchanged since the last committed ingest of this source? */
static bool incremental_hit(struct ing *g, struct item *it)
{
	struct store_inode in;
	uint64_t ino;
	bool hit;

	if (!g->st || g->fresh)
		return false;
	if (store_get_srcmap(g->st, ING_FS_MAP(g->source_id, it->fs), (uint64_t)it->sb.st_ino,
			     &ino) < 0)
		return false;
	if (store_get_inode(g->st, ino, &in) < 0)
		return false;
	hit = in.view == STORE_VIEW_SRC && in.size == (uint64_t)it->sb.st_size &&
	      in.mode == it->sb.st_mode && src_same_time(&in.mtime, &it->sb.st_mtim) &&
	      src_same_time(&in.ctime, &it->sb.st_ctim) && in.has_content &&
	      in.src_ino == (uint64_t)it->sb.st_ino;
	store_inode_release(&in);
	if (hit)
		it->old_ino = ino;
	return hit;
}

/*
 * The walk keeps its levels on the heap, not on the C stack: a frame per directory being
 * walked (its wdir and its sorted listing, with a cursor), so any depth the filesystem
 * holds is walked, up to ING_MAX_DEPTH levels (memory) and the open files limit (each
 * level holds its directory's fd: an open that fails is a failed entry, as any other).
 */
struct wframe {
	struct wdir *self;		/* one reference */
	struct src_listing names;	/* sorted */
	size_t next;			/* the next name to walk */
	size_t plen;			/* its path: the first plen bytes of walker.path */
};

struct walker {
	struct ing *g;
	struct wframe *v;		/* v[0] the source root, v[n - 1] the directory walked */
	size_t n, cap;
	struct dfs_buf path;		/* the path of v[n - 1]; each frame's is a prefix */
};

/*
 * The filesystem of entry @name of @pdir (stat @sb): its directory's, or another one met
 * in this run (by st_dev), or one of earlier runs (by identity), or a new one. Its index
 * in g->fs, or -EMLINK (more than ING_MAX_FS), -errno.
 */
static int entry_fs(struct ing *g, struct wdir *pdir, const char *name, const struct stat *sb)
{
	uint64_t id;
	unsigned k;
	int fd;

	if (sb->st_dev == g->fs[pdir->fs].dev)
		return pdir->fs;
	for (k = 0; k < g->nfs; k++)
		if (g->fs[k].dev == sb->st_dev)
			return (int)k;
	fd = openat(pdir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	id = ing_fs_id(fd, sb);
	close(fd);
	for (k = 1; k < g->nfs; k++)	/* met in an earlier run, not yet in this one */
		if (!g->fs[k].dev && g->fs[k].id == id)
			break;
	if (k == g->nfs) {
		if (g->nfs == ING_MAX_FS || g->source_id >= (1u << 23))
			return -EMLINK;	/* ING_FS_MAP has 8 bits for k, 23 for the source */
		k = g->nfs++;
		g->fs[k].id = id;
	}
	g->fs[k].dev = sb->st_dev;
	return (int)k;
}

/*
 * Creates the item for entry @name of directory @pdir (path @ppath), at level @depth (1
 * for the root's entries), and pushes it; a directory to walk is returned instead, with
 * its fd in *@dfd (both the caller's), else NULL.
 */
static struct item *walk_entry(struct ing *g, struct wdir *pdir, const uint8_t *ppath,
			       size_t plen, const char *name, size_t nlen, size_t depth, int *dfd)
{
	struct item *it;
	struct stat sb;

	it = item_new(ppath, plen, (const uint8_t *)name, nlen);
	if (!it) {
		g->fatal = -ENOMEM;
		return NULL;
	}
	if (nlen > NAME_MAX) {
		/* a FUSE source (sshfs, ntfs-3g) can show one; no local filesystem, and no
		 * organized tree, can hold it: a failed entry, and the run goes on */
		ing_add_failure(g, it->path, it->path_len, "a name of %zu bytes, longer than "
				"%d: not stored", nlen, NAME_MAX);
		ing_item_free(it);
		return NULL;
	}
	if (fstatat(pdir->fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			ing_add_failure(g, it->path, it->path_len, "cannot stat: %s",
					strerror(errno));
		ing_item_free(it);
		return NULL;
	}
	it->sb = sb;
	it->parent = wdir_get(pdir);
	if (g->o->nexcludes && excluded(g, (const char *)it->path, name, S_ISDIR(sb.st_mode))) {
		ing_item_free(it);
		return NULL;
	}
	if (!(g->o->one_fs && S_ISDIR(sb.st_mode) && sb.st_dev != g->root_dev)) {
		int fs = entry_fs(g, pdir, name, &sb);

		if (fs < 0) {
			ing_add_failure(g, it->path, it->path_len, "%s", fs == -EMLINK ?
					"more than 255 filesystems below the source: not stored" :
					strerror(-fs));
			ing_item_free(it);
			return NULL;
		}
		it->fs = (uint16_t)fs;
	}
	if (S_ISDIR(sb.st_mode)) {
		int fd;

		if (sb.st_dev == g->store_dev && sb.st_ino == g->store_ino) {
			dfs_warn("skipping %s: it is the store itself", (char *)it->path);
			ing_item_free(it);
			return NULL;
		}
		for (size_t i = 0; i < g->nskip_devs; i++) {
			if (sb.st_dev == g->skip_devs[i]) {
				dfs_warn("skipping %s: a defragfs mount", (char *)it->path);
				ing_item_free(it);
				return NULL;
			}
		}
		if (g->o->one_fs && sb.st_dev != g->root_dev) {
			struct ingest_failure *s = realloc(g->skipped, (g->nskipped + 1) *
								       sizeof(*s));

			dfs_info("skipping %s: another filesystem (--one-file-system)",
				 (char *)it->path);
			if (s) {
				g->skipped = s;
				s[g->nskipped].path = it->path;	/* taken from the item */
				s[g->nskipped].len = it->path_len;
				s[g->nskipped].why = NULL;
				g->nskipped++;
				it->path = NULL;
			} else {
				g->fatal = -ENOMEM;
			}
			ing_item_free(it);
			return NULL;
		}
		if (depth > ING_MAX_DEPTH) {
			/* memory, not the C stack, bounds the walk: a failed entry */
			ing_add_failure(g, it->path, it->path_len, "a directory deeper than %u "
					"levels: not stored", ING_MAX_DEPTH);
			ing_item_free(it);
			return NULL;
		}
		fd = src_open_dir(pdir->fd, name);
		if (fd < 0) {
			it->err = fd;
			it->why = "cannot open directory";
			ring_push(g, it);
			return NULL;
		}
		*dfd = fd;
		return it;
	}
	if (sb.st_nlink > 1) {	/* not a directory: those returned above */
		int seen = hl_seen(g, it->fs, (uint64_t)sb.st_ino);

		if (seen < 0) {
			it->err = seen;
			it->why = "cannot remember a hard link";
			ring_push(g, it);
			return NULL;
		}
		it->link_only = seen == 1;
	}
	if (S_ISREG(sb.st_mode)) {
		if (!it->link_only && incremental_hit(g, it)) {
			it->unchanged = true;
			atomic_fetch_add(&g->bytes_done, (uint64_t)sb.st_size);
		} else if (!it->link_only) {
			it->is_file_work = true;
		}
	} else {
		int rc;

		if (S_ISLNK(sb.st_mode)) {
			size_t cap = (size_t)sb.st_size + 1 > 256 ? (size_t)sb.st_size + 1 : 256;
			ssize_t n;

			it->target.p = malloc(cap + 1);
			n = it->target.p ? readlinkat(pdir->fd, name, (char *)it->target.p, cap)
					 : -1;
			if (n < 0 || (size_t)n >= cap) {
				it->err = n < 0 ? -errno : -ESTALE;
				it->why = n < 0 ? "cannot read symlink"
					       : "symlink changed while read";
			} else {
				it->target.len = (size_t)n;
				it->target.p[n] = '\0';
			}
		}
		rc = src_read_xattrs(-1, pdir->fd, name, &it->xattrs, &it->nxattrs);
		if (rc < 0 && !it->err) {
			it->err = rc;
			it->why = "cannot read extended attributes";
		}
	}
	ring_push(g, it);
	return NULL;
}

/*
 * Enters directory @it (open at @fd; both owned): reads its xattrs and lists it, pushes it
 * (a directory goes before its entries), and makes it the walker's top frame.
 */
static void dir_enter(struct walker *w, struct item *it, int fd)
{
	struct ing *g = w->g;
	struct wframe *f;
	struct wdir *self;
	int rc;

	/* its path: the parent's (a prefix of w->path already), then its name */
	w->path.len = it->name_off ? it->name_off - 1 : 0;
	if (it->name_off)
		dfs_buf_put_u8(&w->path, '/');
	dfs_buf_append(&w->path, it->path + it->name_off, it->path_len - it->name_off);
	self = calloc(1, sizeof(*self));
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct wframe *v = realloc(w->v, cap * sizeof(*v));

		if (v) {
			w->v = v;
			w->cap = cap;
		}
	}
	if (!self || w->path.err || w->n == w->cap) {
		free(self);
		close(fd);
		g->fatal = w->path.err ? w->path.err : -ENOMEM;
		ing_item_free(it);
		return;
	}
	self->fd = fd;
	self->fs = it->fs;
	self->st_ino = (uint64_t)it->sb.st_ino;
	atomic_init(&self->refs, 1);
	/* its place in the view, for copy-on-write (commit.c dir_writable) */
	self->name_len = it->path_len - it->name_off;
	self->name = malloc(self->name_len + 1);
	if (!self->name) {
		free(self);
		close(fd);
		g->fatal = -ENOMEM;
		ing_item_free(it);
		return;
	}
	memcpy(self->name, it->path + it->name_off, self->name_len);
	self->up = wdir_get(it->parent);
	it->self = wdir_get(self);
	rc = src_read_xattrs(fd, -1, NULL, &it->xattrs, &it->nxattrs);
	if (rc < 0) {
		it->err = rc;
		it->why = "cannot read extended attributes";
	}
	f = &w->v[w->n];
	memset(f, 0, sizeof(*f));
	f->self = self;
	f->plen = w->path.len;
	rc = src_list_dir(fd, &f->names);
	if (rc < 0) {
		ing_add_failure(g, it->path, it->path_len, "cannot list directory: %s",
				strerror(-rc));
		ring_push(g, it);
		wdir_put(self);
		return;
	}
	it->listing_ok = f->names.err == 0;
	if (!it->listing_ok)
		ing_add_failure(g, it->path, it->path_len, "cannot list directory: %s",
				strerror(-f->names.err));
	/* the item's own copy, sorted: the committer frees the item while the walk goes on */
	it->names = malloc(f->names.len ? f->names.len : 1);
	if (it->names) {
		for (size_t i = 0; i < f->names.n; i++) {
			memcpy(it->names + it->names_len, f->names.v[i].p, f->names.v[i].len + 1);
			it->names_len += f->names.v[i].len + 1;
		}
	} else {
		it->listing_ok = false;
	}
	ring_push(g, it);
	w->n++;
}

static void frame_pop(struct walker *w)
{
	struct wframe *f = &w->v[--w->n];

	src_listing_release(&f->names);
	wdir_put(f->self);
}

/* Walks the directory @root (open at @fd; both owned) and everything below it. */
static void walk(struct ing *g, struct item *root, int fd)
{
	struct walker w = { .g = g };

	/* a path of ING_MAX_DEPTH names of NAME_MAX bytes */
	dfs_buf_init(&w.path, (size_t)(ING_MAX_DEPTH + 1) * (NAME_MAX + 1));
	dir_enter(&w, root, fd);
	while (w.n) {
		struct wframe *f = &w.v[w.n - 1];
		const struct src_name *nm;
		struct item *it;
		int cfd = -1;

		if (f->next == f->names.n || g->stop || g->fatal) {
			frame_pop(&w);
			continue;
		}
		nm = &f->names.v[f->next++];
		it = walk_entry(g, f->self, w.path.data, f->plen, nm->p, nm->len, w.n, &cfd);
		if (it)
			dir_enter(&w, it, cfd);
	}
	free(w.v);
	dfs_buf_release(&w.path);
}

/* ---- stat pre-walk (progress totals) ------------------------------------------------------ */

/* Counts every entry below the directory open at @fd (owned), as the walk goes: one open
 * directory stream per level, on the heap. Whatever it cannot open or stat it skips. */
static void prewalk(struct ing *g, int fd)
{
	DIR **v = malloc(64 * sizeof(*v));
	size_t n = 0, cap = 64;

	if (v)
		v[n] = fdopendir(fd);
	if (!v || !v[n]) {
		free(v);
		close(fd);
		return;
	}
	n++;
	while (n && !g->stop) {
		DIR *d = v[n - 1], *cd;
		struct dirent *de = readdir(d);
		struct stat sb;
		int cfd;

		if (!de) {
			closedir(d);
			n--;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* files only: the progress line's files done count regular files */
		if (S_ISREG(sb.st_mode)) {
			atomic_fetch_add(&g->total_files, 1);
			atomic_fetch_add(&g->total_bytes, (uint64_t)sb.st_size);
		}
		/* the entry is at level n: the walk's rule (walk_entry) */
		if (!S_ISDIR(sb.st_mode) || n > ING_MAX_DEPTH ||
		    (g->o->one_fs && sb.st_dev != g->root_dev) ||
		    (sb.st_dev == g->store_dev && sb.st_ino == g->store_ino))
			continue;
		if (n == cap) {
			DIR **x = realloc(v, cap * 2 * sizeof(*x));

			if (!x)
				continue;
			v = x;
			cap *= 2;
		}
		cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		cd = cfd >= 0 ? fdopendir(cfd) : NULL;
		if (cd)
			v[n++] = cd;
		else if (cfd >= 0)
			close(cfd);
	}
	while (n)
		closedir(v[--n]);
	free(v);
}

void *ing_prewalk_main(void *arg)
{
	struct walk_start *p = arg;

#ifdef DFS_TEST_FAULTS
	/* DFS_FAULT_PREWALK_LATE=1: the pre-walk counts nothing before the run stops it (a
	 * walk of a tiny tree ending first: t_ingest_small checks the last progress line) */
	if (getenv("DFS_FAULT_PREWALK_LATE"))
		while (!p->g->stop)
			usleep(1000);
#endif
	prewalk(p->g, p->fd);
	atomic_store(&p->g->prewalk_done, true);
	return NULL;
}

void *ing_walker_main(void *arg)
{
	struct walk_start *w = arg;
	struct ing *g = w->g;
	struct item *root = item_new((const uint8_t *)"", 0, (const uint8_t *)"", 0);

	if (!root) {
		g->fatal = -ENOMEM;
		close(w->fd);
	} else {
		root->sb = w->sb;
		walk(g, root, w->fd);
	}
	pthread_mutex_lock(&g->ring_lock);
	g->walk_done = true;
	pthread_cond_broadcast(&g->ring_cond);
	pthread_mutex_unlock(&g->ring_lock);
	return NULL;
}

void ing_collect_skip_devs(struct ing *g)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char *sep = strstr(line, " - ");

		if (!sep || strncmp(sep + 3, "fuse.defragfs ", 14) != 0)
			continue;
		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) == 2) {
			dev_t *d = realloc(g->skip_devs, (g->nskip_devs + 1) * sizeof(*d));

			if (d) {
				g->skip_devs = d;
				g->skip_devs[g->nskip_devs++] = makedev(maj, min);
			}
		}
	}
	fclose(f);
}

/* ---- for the remote source (remote.c): its items go through the same checks ---------------- */

struct item *ing_item_new(const uint8_t *ppath, size_t plen, const uint8_t *name, size_t nlen)
{
	return item_new(ppath, plen, name, nlen);
}

bool ing_ring_push(struct ing *g, struct item *it)
{
	return ring_push(g, it);
}

int ing_hl_seen(struct ing *g, unsigned fs, uint64_t ino)
{
	return hl_seen(g, fs, ino);
}

bool ing_incremental_hit(struct ing *g, struct item *it)
{
	return incremental_hit(g, it);
}

struct wdir *ing_wdir_get(struct wdir *d)
{
	return wdir_get(d);
}

void ing_wdir_put(struct wdir *d)
{
	wdir_put(d);
}
