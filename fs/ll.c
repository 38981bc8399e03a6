/*
 * ll.c - the FUSE low-level operation handlers of defragfs.
 *
 * Every op is split in two: do_<op>() does the work and returns 0/-errno without touching
 * the request; op_<op>() unpacks, calls it, and replies exactly once on every path, after
 * dropping locks and cache references. Content is immutable, so replies carry long
 * entry/attribute timeouts and open files keep the page cache; missing names get a short
 * negative timeout. Every write-type op answers EROFS.
 *
 * Threads: handlers run on libfuse's worker threads; shared state is the store
 * (thread-safe), the chunk cache and the inode table (both locked inside). A file handle
 * (struct fh) is used by one request at a time per open file; its content cursor has its
 * own mutex because the kernel may send concurrent reads on one handle.
 *
 * Errors: store errors map through fs_errno(): -EBADMSG (corrupt data) -> EIO, already
 * logged where it was found with the pack and offset.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fattr.h"
#include "hist.h"
#include "inode.h"
#include "ra.h"
#include "warm.h"
#include "reach.h"
#include "store/log.h"
#include "store/witness.h"

#define SOURCES_NAME ".sources"
#define XATTR_CAP (STORE_XATTR_MAX + 4096)

struct fh {
	struct fs_handle hd;		/* first: on the list of open handles */
	pthread_mutex_t lock;		/* protects c */
	struct store_content *c;	/* NULL for empty files */
	uint64_t ino;
	uint64_t tag;			/* digest of the content id (never 0) */
	size_t bytes;			/* memory it may hold, counted in fs->handle_bytes */
	/* sequential-read detection (protected by lock) */
	uint64_t next_off;		/* where a sequential reader reads next */
	uint64_t ra_until;		/* read-ahead queued up to here */
	unsigned seq;			/* sequential reads in a row */
};

#define RA_WINDOW (2u << 20)	/* bytes past a sequential read that are read ahead */
#define KERNEL_RA (1u << 20)	/* the least max_readahead we give the kernel */

/*
 * A read of @size at @off that goes on where the handle's reader stopped. Within the
 * kernel's read-ahead of it, not only exactly there: the kernel has several reads of one
 * stream in flight (async reads) and our threads take them in any order. Only exact
 * matches counted, a third of a cold 1 GiB stream's chunks were not seen served whole;
 * kept in the cache, they filled it (256 MiB of fresh heap faulted in) and halved the
 * stream's speed. The reads in flight span a few of the kernel's requests, which are as
 * large as its read-ahead (128 KiB by default, up to max_pages, 1 MiB, with a larger
 * read_ahead_kb on the mount's bdi; a window of 4 MiB keeps more than 4 of them in
 * flight): the read-ahead (-o read_ahead, at least KERNEL_RA) or 16 requests, the larger.
 * Random readers send small requests.
 */
static uint64_t kernel_ra(const struct dfs_fs *fs)
{
	return fs->read_ahead > KERNEL_RA ? fs->read_ahead : KERNEL_RA;
}

static bool goes_on(const struct dfs_fs *fs, const struct fh *h, uint64_t off, size_t size)
{
	uint64_t slack = (uint64_t)size * 16 > kernel_ra(fs) ? (uint64_t)size * 16 : kernel_ra(fs);

	return off + slack >= h->next_off && off <= h->next_off + slack;
}

struct dent {
	char *name;
	size_t len;
	uint64_t ino;
	uint8_t type;
	bool guarded;		/* reach.h: zero timeouts */
};

struct dh {
	struct fs_handle hd;		/* first: on the list of open handles */
	struct dent *v;
	size_t n;
	size_t bytes;		/* memory it holds, counted in fs->handle_bytes while open */
	bool names_only;	/* READDIRPLUS without attributes (see op_opendir) */
	bool guarded;		/* holds guarded entries: filtered per caller, not cached */
};

static pthread_key_t codec_key;
static pthread_once_t codec_once = PTHREAD_ONCE_INIT;

static void codec_destroy(void *p)
{
	codec_free(p);
}

static void codec_key_init(void)
{
	pthread_key_create(&codec_key, codec_destroy);
}

struct codec *fs_codec(void)
{
	struct codec *c;

	pthread_once(&codec_once, codec_key_init);
	c = pthread_getspecific(codec_key);
	if (!c && codec_new(1, &c) == 0)
		pthread_setspecific(codec_key, c);
	return c;
}

int fs_errno(int rc)
{
	if (rc >= 0)
		return 0;
	switch (-rc) {
	case EBADMSG:
	case EPROTONOSUPPORT:
	case EOVERFLOW:
		return EIO;
	default:
		return -rc;
	}
}

/* Every request's first call: the index warm-up hears that the mount is in use. */
static struct dfs_fs *fs_of(fuse_req_t req)
{
	struct dfs_fs *fs = fuse_req_userdata(req);

	warm_poke(fs->warm);
	return fs;
}

/* ---- access through the organized tree (reach.h) ------------------------------------- */

static int req_groups(void *arg, gid_t *list, int size)
{
	return fuse_req_getgroups(arg, size, list);
}

/*
 * With access checks on (-o allow_other): is @in guarded (*guarded: the kernel must not
 * cache it for other users), and may the caller of @req reach it (*ok)? Off: false, true.
 */
static int check_reach(fuse_req_t req, struct dfs_fs *fs, const struct store_inode *in,
		       bool *guarded, bool *ok)
{
	const struct fuse_ctx *ctx;
	struct reach_who who;
	int rc;

	*guarded = false;
	*ok = true;
	if (!fs->reach || !reach_applies(in))
		return 0;
	rc = reach_guarded(fs->reach, in, guarded);
	if (rc < 0 || !*guarded)
		return rc;
	ctx = fuse_req_ctx(req);
	reach_who_init(&who, ctx->uid, ctx->gid, req_groups, req);
	rc = reach_entry(fs->reach, in, &who, ok);
	reach_who_release(&who);
	return rc;
}

/* ---- attributes and lookup ---------------------------------------------------------- */

/* Has @in no xattrs of its own to show (a directory's witnesses are never shown)? */
static bool no_own_xattrs(const struct store_inode *in)
{
	return in->nxattrs == 0 || (in->nxattrs == 1 && store_witness_find(in));
}

/*
 * @plain (may be NULL): set to whether the inode has no xattrs of its own.
 * @guarded (may be NULL): set to whether the kernel must not cache it (check_reach).
 */
static int do_getattr(struct dfs_fs *fs, fuse_ino_t ino, struct stat *st, bool *plain,
		      bool *guarded)
{
	struct store_inode in;
	int rc = hist_get_inode(fs->hist, ino, &in);

	if (rc < 0)
		return rc;
	fattr_fill(&in, st);
	fattr_map_owner(&fs->maps, st);
	if (plain)
		*plain = no_own_xattrs(&in);
	if (guarded) {
		*guarded = false;
		if (fs->reach && reach_applies(&in))
			rc = reach_guarded(fs->reach, &in, guarded);
	}
	store_inode_release(&in);
	return rc;
}

/*
 * Notes what a reply tells the kernel about @ino: one more lookup, and whether it has
 * xattrs of its own (read under live follow's generation @gen), so that the xattrs it
 * lacks (ls asks two per file, the kernel does not cache the answers) can be refused
 * without reading the index.
 */
static void note_known(struct dfs_fs *fs, uint64_t ino, bool plain, uint64_t gen)
{
	ino_ref(fs->known, ino, 1);
	if (plain)
		ino_set_plain(fs->known, ino, gen);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs_fs *fs = fs_of(req);
	struct stat st;
	int rc;

	bool guarded;

	(void)fi;
	rc = do_getattr(fs, ino, &st, NULL, &guarded);
	if (rc < 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_attr(req, &st, guarded ? 0 : fs->entry_timeout);
}

/* @guarded: the answer (an entry, or -ENOENT for a caller who may not reach it) must not
 * be cached by the kernel for other users. */
static int do_lookup(fuse_req_t req, struct dfs_fs *fs, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *e, bool *plain, bool *guarded)
{
	struct store_inode in;
	uint64_t child;
	uint8_t dtype;
	bool ok;
	int rc;

	*guarded = false;
	memset(e, 0, sizeof(*e));
	if (parent == FUSE_ROOT_ID && !strcmp(name, SOURCES_NAME)) {
		child = STORE_SOURCES_INO;
	} else if (parent == FUSE_ROOT_ID && !strcmp(name, HIST_NAME)) {
		child = HIST_INO;
	} else if (hist_is(parent) && !hist_index_ino(parent)) {
		rc = hist_lookup(fs->hist, parent, name, &child);
		if (rc < 0)
			return rc;
	} else {
		rc = store_lookup(fs->st, hist_index_ino(parent), name, strlen(name), &child,
				  &dtype);
		if (rc == 0 && hist_is(parent))
			rc = hist_child(parent, child, &child);
		if (rc < 0)
			return rc;
	}
	rc = hist_get_inode(fs->hist, child, &in);
	if (rc < 0)
		return rc == -ENOENT ? -EIO : rc;	/* a dangling entry is damage */
	rc = check_reach(req, fs, &in, guarded, &ok);
	if (rc == 0 && !ok)
		rc = -ENOENT;	/* not even its name: as under /.sources */
	if (rc == 0) {
		fattr_fill(&in, &e->attr);
		fattr_map_owner(&fs->maps, &e->attr);
		*plain = no_own_xattrs(&in);
		e->ino = child;
		e->attr_timeout = e->entry_timeout = *guarded ? 0 : fs->entry_timeout;
	}
	store_inode_release(&in);
	return rc;
}

/* Does the calling thread @pid want the attributes of what it lists (fs->seekers)? */
static bool seeks_attrs(struct dfs_fs *fs, pid_t pid)
{
	bool found = false;

	pthread_mutex_lock(&fs->seekers_lock);
	for (size_t i = 0; i < sizeof(fs->seekers) / sizeof(fs->seekers[0]); i++) {
		if (fs->seekers[i].stamp && fs->seekers[i].pid == pid) {
			fs->seekers[i].stamp = ++fs->seekers_clock;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&fs->seekers_lock);
	return found;
}

static void note_seeker(struct dfs_fs *fs, pid_t pid)
{
	size_t n = sizeof(fs->seekers) / sizeof(fs->seekers[0]), old = 0;

	pthread_mutex_lock(&fs->seekers_lock);
	for (size_t i = 0; i < n; i++) {
		if (fs->seekers[i].stamp && fs->seekers[i].pid == pid) {
			old = i;
			break;
		}
		if (fs->seekers[i].stamp < fs->seekers[old].stamp)
			old = i;	/* the empty or least recently seen slot */
	}
	fs->seekers[old].pid = pid;
	fs->seekers[old].stamp = ++fs->seekers_clock;
	pthread_mutex_unlock(&fs->seekers_lock);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dfs_fs *fs = fs_of(req);
	uint64_t gen = atomic_load(&fs->gen);	/* before the index is read */
	struct fuse_entry_param e;
	bool plain = false, guarded;
	int rc = do_lookup(req, fs, parent, name, &e, &plain, &guarded);

	if (rc == -ENOENT) {
		/* a negative entry: ino 0 with a short timeout (none for one user's answer) */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = guarded ? 0 : fs->negative_timeout;
		fuse_reply_entry(req, &e);
	} else if (rc < 0) {
		fuse_reply_err(req, fs_errno(rc));
	} else {
		/* a file looked up (not a directory walked into): its caller wants attributes */
		if (!S_ISDIR(e.attr.st_mode))
			note_seeker(fs, fuse_req_ctx(req)->pid);
		note_known(fs, e.ino, plain, gen);
		fuse_reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	ino_forget(fs_of(req)->known, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct dfs_fs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		ino_forget(fs->known, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static int do_readlink(struct dfs_fs *fs, fuse_ino_t ino, char **out)
{
	struct store_inode in;
	int rc = hist_get_inode(fs->hist, ino, &in);

	*out = NULL;
	if (rc < 0)
		return rc;
	if (!S_ISLNK(in.mode)) {
		store_inode_release(&in);
		return -EINVAL;
	}
	*out = malloc(in.target.len + 1);
	if (*out) {
		memcpy(*out, in.target.p, in.target.len);
		(*out)[in.target.len] = '\0';
	}
	store_inode_release(&in);
	return *out ? 0 : -ENOMEM;
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char *target;
	int rc = do_readlink(fs_of(req), ino, &target);

	if (rc < 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_readlink(req, target);
	free(target);
}

/* ---- open handles --------------------------------------------------------------------- */

void fs_handles_init(struct dfs_fs *fs)
{
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->handles.prev = fs->handles.next = &fs->handles;
}

static void handle_add(struct dfs_fs *fs, struct fs_handle *h, bool dir)
{
	h->dir = dir;
	pthread_mutex_lock(&fs->handles_lock);
	h->next = &fs->handles;
	h->prev = fs->handles.prev;
	h->prev->next = h;
	fs->handles.prev = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

static void handle_del(struct dfs_fs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
	h->prev = h->next = NULL;
}

/* ---- directories ------------------------------------------------------------------------ */

static void dh_free(struct dh *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d);
}

static int dh_add(struct dh *d, size_t *cap, const void *name, size_t len, uint64_t ino,
		  uint8_t type)
{
	if (d->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct dent *v = realloc(d->v, c * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->bytes += (c - *cap) * sizeof(*v);
		*cap = c;
	}
	d->bytes += len + 1 + 16;	/* the name and its allocation's overhead */
	d->v[d->n].name = malloc(len + 1);
	if (!d->v[d->n].name)
		return -ENOMEM;
	memcpy(d->v[d->n].name, name, len);
	d->v[d->n].name[len] = '\0';
	d->v[d->n].len = len;
	d->v[d->n].ino = ino;
	d->v[d->n].type = type;
	d->v[d->n].guarded = false;
	d->n++;
	return 0;
}

/* A virtual directory of /.history: its entries (hist_list). */
struct dh_hist {
	struct dh *d;
	size_t *cap;
};

static int dh_add_hist(void *arg, const void *name, size_t len, uint64_t ino, uint8_t type)
{
	struct dh_hist *a = arg;

	return dh_add(a->d, a->cap, name, len, ino, type);
}

/* Snapshots the entries at opendir, so offsets stay stable for this handle. */
static int do_opendir(struct dfs_fs *fs, fuse_ino_t ino, struct dh **out)
{
	struct store_dir_iter *it;
	struct dh *d = calloc(1, sizeof(*d));
	const uint8_t *name;
	size_t len, cap = 0;
	uint64_t child;
	uint8_t type;
	int rc;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	rc = dh_add(d, &cap, ".", 1, ino, DT_DIR);
	if (rc == 0)
		/*
		 * The parent is not tracked: ".." gets the root's number (any non-zero one;
		 * with 0 the C library drops the entry, and ls -a showed no "..")
		 */
		rc = dh_add(d, &cap, "..", 2, FUSE_ROOT_ID, DT_DIR);
	if (rc == 0 && ino == FUSE_ROOT_ID && fs->sources_visible)
		rc = dh_add(d, &cap, SOURCES_NAME, strlen(SOURCES_NAME), STORE_SOURCES_INO,
			    DT_DIR);
	if (rc == 0 && ino == FUSE_ROOT_ID && fs->sources_visible)
		rc = dh_add(d, &cap, HIST_NAME, strlen(HIST_NAME), HIST_INO, DT_DIR);
	if (rc == 0 && hist_is(ino) && !hist_index_ino(ino)) {
		rc = hist_list(fs->hist, ino, dh_add_hist, &(struct dh_hist){ d, &cap });
		if (rc < 0) {
			dh_free(d);
			return rc;
		}
		*out = d;
		return 0;
	}
	if (rc == 0)
		rc = store_dir_open(fs->st, hist_index_ino(ino), NULL, 0, &it);
	if (rc < 0) {
		dh_free(d);
		return rc;
	}
	while ((rc = store_dir_next(it, &name, &len, &child, &type)) == 1) {
		if (hist_is(ino) && (rc = hist_child(ino, child, &child)) < 0)
			break;
		rc = dh_add(d, &cap, name, len, child, type);
		if (rc < 0)
			break;
	}
	store_dir_close(it);
	if (rc < 0) {
		dh_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

/*
 * The memory of open directory handles is bounded (-o handle_mem, FS.md): with
 * allow_other any local user could otherwise open one large directory many times and
 * grow the daemon without bound. @bytes taken from the budget, or false (ENFILE).
 */
static bool handles_take(struct dfs_fs *fs, size_t bytes)
{
	size_t was = atomic_fetch_add(&fs->handle_bytes, bytes);

	if (was + bytes <= fs->handle_cap)
		return true;
	atomic_fetch_sub(&fs->handle_bytes, bytes);
	if (!atomic_exchange(&fs->handle_warned, true))
		dfs_err("open files and directories hold %zu bytes; refusing more (ENFILE) until "
			"some are closed: raise -o handle_mem (now %zu) if this is expected", was,
			fs->handle_cap);
	return false;
}

static void handles_give(struct dfs_fs *fs, size_t bytes)
{
	atomic_fetch_sub(&fs->handle_bytes, bytes);
}

/*
 * With access checks (reach.h): marks the guarded entries of the organized directory @d
 * and drops those the caller of @req may not reach, reading the records a batch at a
 * time. Entries whose record cannot be read stay (readdir reports them).
 */
static int filter_listing(fuse_req_t req, struct dfs_fs *fs, struct dh *d)
{
	enum { BATCH = 256 };
	uint64_t inos[BATCH];
	struct store_inode in[BATCH];
	int rcs[BATCH];
	size_t out = 2, i = 2;

	while (i < d->n) {
		size_t k = d->n - i < BATCH ? d->n - i : BATCH;
		int rc = 0;

		for (size_t j = 0; j < k; j++)
			inos[j] = d->v[i + j].ino;
		store_get_inodes(fs->st, inos, k, in, rcs);
		for (size_t j = 0; j < k; j++) {
			struct dent *e = &d->v[i + j];
			bool ok = true;

			if (rc == 0 && rcs[j] == 0)
				rc = check_reach(req, fs, &in[j], &e->guarded, &ok);
			store_inode_release(&in[j]);
			d->guarded |= e->guarded;
			if (!ok) {
				free(e->name);
				continue;
			}
			d->v[out++] = *e;
		}
		i += k;
		if (rc < 0) {
			while (i < d->n)	/* the rest keep their names, freed with d */
				d->v[out++] = d->v[i++];
			d->n = out;
			return rc;
		}
	}
	d->n = out;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs_fs *fs = fs_of(req);
	struct store_inode in;
	struct dh *d = NULL;
	bool guarded = false, ok = true, org = false;
	int rc = hist_get_inode(fs->hist, ino, &in);

	if (rc == 0) {
		org = in.view == STORE_VIEW_ORG;
		if (!S_ISDIR(in.mode))
			rc = -ENOTDIR;
		else
			rc = check_reach(req, fs, &in, &guarded, &ok);
		store_inode_release(&in);
	}
	if (rc == 0 && !ok)
		rc = -EACCES;
	if (rc == 0)
		rc = do_opendir(fs, ino, &d);
	if (rc == 0 && fs->reach && org) {
		rc = filter_listing(req, fs, d);
		if (rc < 0)
			dh_free(d);
	}
	if (rc == 0) {
		d->bytes += sizeof(*d);
		if (!handles_take(fs, d->bytes)) {
			dh_free(d);
			rc = -ENFILE;
		}
	}
	if (rc < 0) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	/*
	 * Attributes in READDIRPLUS only for callers that have looked up a file on this
	 * mount before (fs->seekers): a find(1) that needs names and types gets no
	 * attributes, so the kernel creates no inodes for the entries; du, ls -l, rsync, tar
	 * look up the files of the first directory they list and get attributes from their
	 * next one on. A directory once listed with attributes keeps getting them: its
	 * entries' inodes exist in the kernel already.
	 *
	 * Every listing is kept in the kernel's directory cache (cache_readdir), so a second
	 * find is served by the kernel. But a cached listing of names only would make a later
	 * du or ls -l look up every entry: a caller that wants attributes opens a directory
	 * whose cached listing has names only without keep_cache, which drops it, and its
	 * own listing (with attributes) is cached instead.
	 */
	switch (ino_listing(fs->known, ino)) {
	case INO_LISTED_ATTRS:
		d->names_only = false;
		fi->keep_cache = 1;
		break;
	case INO_LISTED_NAMES:
		d->names_only = !seeks_attrs(fs, fuse_req_ctx(req)->pid);
		fi->keep_cache = d->names_only;
		break;
	default:
		d->names_only = !seeks_attrs(fs, fuse_req_ctx(req)->pid);
		fi->keep_cache = 1;
		break;
	}
	ino_set_listing(fs->known, ino, d->names_only ? INO_LISTED_NAMES : INO_LISTED_ATTRS);
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 1;
	if (d->guarded) {
		/* this caller's listing: the kernel would serve it to every other user, and
		 * a listing it cached before must go */
		fi->cache_readdir = 0;
		fi->keep_cache = 0;
	}
	handle_add(fs, &d->hd, true);
	if (fuse_reply_open(req, fi) == -ENOENT) {	/* interrupted: no release will come */
		handle_del(fs, &d->hd);
		handles_give(fs, d->bytes);
		dh_free(d);
	}
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;

	(void)ino;
	handle_del(fs_of(req), &d->hd);
	handles_give(fs_of(req), d->bytes);
	dh_free(d);
	fuse_reply_err(req, 0);
}

/*
 * How many entries of @d from @off fit in a READDIRPLUS reply of @size bytes: an entry's
 * size depends on its name only, so this is known before any attribute is read (asked
 * with no room: fuse_add_direntry_plus then only returns the size).
 */
static size_t plus_fit(fuse_req_t req, const struct dh *d, size_t off, size_t size)
{
	const struct fuse_entry_param ep = { 0 };
	size_t i, used = 0;
	char none;

	for (i = off; i < d->n; i++) {
		size_t n = fuse_add_direntry_plus(req, &none, 0, d->v[i].name, &ep, (off_t)(i + 1));

		if (n > size - used)
			break;
		used += n;
	}
	return i - off;
}

/* The inode records of the entries of one READDIRPLUS reply ("." and ".." aside). */
struct plus_attrs {
	uint64_t *inos;
	struct store_inode *in;
	int *rcs;
	bool *plain;	/* in[i] has no xattrs of its own */
	size_t n;
};

static void plus_attrs_release(struct plus_attrs *pa)
{
	for (size_t i = 0; i < pa->n; i++)
		store_inode_release(&pa->in[i]);
	free(pa->plain);
	free(pa->rcs);
	free(pa->in);
	free(pa->inos);
	memset(pa, 0, sizeof(*pa));
}

/*
 * Reads the records of entries [@off, @off + @k) of @d ("." and ".." aside) in one batch:
 * one index pass per reply instead of a point read per entry. A record that cannot be
 * read has its error in pa->rcs[]. @return 0, or -ENOMEM (nothing read, pa->n == 0).
 */
static int do_plus_attrs(struct dfs_fs *fs, const struct dh *d, size_t off, size_t k,
			 struct plus_attrs *pa)
{
	size_t m = 0;

	memset(pa, 0, sizeof(*pa));
	for (size_t i = off; i < off + k; i++)
		m += i >= 2;
	if (!m)
		return 0;
	pa->inos = calloc(m, sizeof(*pa->inos));
	pa->in = calloc(m, sizeof(*pa->in));
	pa->rcs = calloc(m, sizeof(*pa->rcs));
	pa->plain = calloc(m, sizeof(*pa->plain));
	if (!pa->inos || !pa->in || !pa->rcs || !pa->plain) {
		plus_attrs_release(pa);
		return -ENOMEM;
	}
	for (size_t i = off; i < off + k; i++)
		if (i >= 2)
			pa->inos[pa->n++] = d->v[i].ino;
	/* its failure as a whole is in every rcs[i] too */
	if (hist_is(d->v[0].ino))
		for (size_t j = 0; j < pa->n; j++)
			pa->rcs[j] = hist_get_inode(fs->hist, pa->inos[j], &pa->in[j]);
	else
		store_get_inodes(fs->st, pa->inos, pa->n, pa->in, pa->rcs);
	for (size_t j = 0; j < pa->n; j++)
		pa->plain[j] = pa->rcs[j] == 0 && no_own_xattrs(&pa->in[j]);
	return 0;
}

static void readdir_common(fuse_req_t req, fuse_ino_t dir, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	struct dfs_fs *fs = fs_of(req);
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;
	uint64_t gen = atomic_load(&fs->gen);	/* before the index is read */
	struct plus_attrs pa = { 0 };
	char *buf = malloc(size);
	size_t used = 0, added = 0;	/* added: entries of pa that went into buf */
	int rc = 0, parc = 0;
	bool names_only = false;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* no attributes: fuse_entry_param.ino 0, the kernel creates no inode (op_opendir) */
	if (plus && d->names_only)
		names_only = true;
	if (plus && !names_only)
		parc = do_plus_attrs(fs, d, (size_t)off, plus_fit(req, d, (size_t)off, size), &pa);
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct dent *e = &d->v[i];
		size_t n;

		if (plus) {
			struct fuse_entry_param ep = { 0 };
			bool dot = i < 2;

			if (!dot && names_only) {
				ep.attr.st_ino = e->ino;
				ep.attr.st_mode = (mode_t)DTTOIF(e->type);
			} else if (!dot) {
				if (added == pa.n) {	/* past what fits (or nothing read) */
					rc = parc;
					break;
				}
				rc = pa.rcs[added];
				if (rc == -ENOENT) {
					/* a name without its inode: damage, as in do_lookup */
					dfs_err("directory %" PRIu64 ": entry '%s' names inode %"
						PRIu64 ", which is missing", (uint64_t)dir, e->name,
						e->ino);
					rc = -EIO;
				}
				if (rc < 0)
					break;
				fattr_fill(&pa.in[added], &ep.attr);
				fattr_map_owner(&fs->maps, &ep.attr);
				ep.ino = e->ino;
				ep.attr_timeout = ep.entry_timeout =
					e->guarded ? 0 : fs->entry_timeout;
			} else {
				ep.attr.st_ino = e->ino;
				ep.attr.st_mode = S_IFDIR;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, e->name, &ep,
						   (off_t)(i + 1));
			if (n > size - used)
				break;
			if (!dot && !names_only)
				added++;
		} else {
			struct stat st = { .st_ino = e->ino, .st_mode = (mode_t)DTTOIF(e->type) };

			n = fuse_add_direntry(req, buf + used, size - used, e->name, &st,
					      (off_t)(i + 1));
			if (n > size - used)
				break;
		}
		used += n;
	}
	/* what the reply tells the kernel: one lookup per entry added (note_known) */
	ino_ref_many(fs->known, pa.inos, pa.plain, added, gen);
	plus_attrs_release(&pa);
	if (rc < 0 && used == 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

/* ---- files ------------------------------------------------------------------------------ */

static void fh_free(struct fh *h)
{
	if (!h)
		return;
	store_content_close(h->c);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int do_open(fuse_req_t req, struct dfs_fs *fs, fuse_ino_t ino, int flags,
		   struct fh **out)
{
	struct store_inode in;
	struct fh *h;
	bool guarded, ok;
	int rc;

	*out = NULL;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT)))
		return -EROFS;
	rc = hist_get_inode(fs->hist, ino, &in);
	if (rc < 0)
		return rc;
	if (S_ISDIR(in.mode)) {
		store_inode_release(&in);
		return -EISDIR;
	}
	rc = check_reach(req, fs, &in, &guarded, &ok);
	if (rc < 0 || !ok) {
		store_inode_release(&in);
		return rc < 0 ? rc : -EACCES;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		store_inode_release(&in);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->ino = ino;
	h->tag = 1;
	if (in.has_content) {
		memcpy(&h->tag, in.content.b, sizeof(h->tag));
		h->tag |= 1;
	}
	if (S_ISREG(in.mode) && in.has_content) {
		rc = store_content_open(fs->st, &in.content, &h->c);
		if (rc < 0) {
			dfs_err("inode %" PRIu64 ": cannot open its content: %s", (uint64_t)ino,
				dfs_strerror(rc));
			fh_free(h);
			store_inode_release(&in);
			return rc;
		}
	}
	store_inode_release(&in);
	*out = h;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs_fs *fs = fs_of(req);
	struct fh *h;
	int rc = do_open(req, fs, ino, fi->flags, &h);

	if (rc == 0) {
		/* open files count against -o handle_mem too: each holds its extent list */
		h->bytes = sizeof(*h) + (h->c ? store_content_mem(h->c) : 0);
		if (!handles_take(fs, h->bytes)) {
			fh_free(h);
			rc = -ENFILE;
		}
	}
	if (rc < 0) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	/* content is immutable, unless a re-ingest gave this inode other content */
	fi->keep_cache = ino_open(fs->known, ino, h->tag);
	handle_add(fs, &h->hd, false);
	if (fuse_reply_open(req, fi) == -ENOENT) {	/* interrupted: no release will come */
		handle_del(fs, &h->hd);
		ino_release(fs->known, ino, h->tag);
		handles_give(fs, h->bytes);
		fh_free(h);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;

	handle_del(fs_of(req), &h->hd);
	ino_release(fs_of(req)->known, ino, h->tag);
	handles_give(fs_of(req), h->bytes);
	fh_free(h);
	fuse_reply_err(req, 0);
}

int fs_chunk_ref(struct dfs_fs *fs, const struct store_extent *e, uint64_t ino, bool reader,
		 struct ccache_entry **out)
{
	struct codec *codec = fs_codec();
	uint8_t *data;
	ssize_t n;
	int r;

	r = ccache_acquire(fs->cc, &e->chunk, reader, out);
	if (r == CCACHE_HIT) {
		size_t have;

		ccache_data(*out, &have);
		if (have == e->len)
			return 0;
		/*
		 * The same chunk id with another length in another content object: a damaged
		 * index. Reading past the cached bytes would serve heap memory: EIO instead.
		 */
		ccache_put(fs->cc, *out);
		*out = NULL;
		if (reader) {
			char hex[FP_HEX_LEN + 1];

			fp_to_hex(&e->chunk, hex);
			dfs_err("inode %" PRIu64 " @%" PRIu64 ": chunk %.16s is %zu bytes, the "
				"extent says %" PRIu32 ": damaged index", ino, e->off, hex, have,
				e->len);
		}
		return -EBADMSG;
	}
	if (r == CCACHE_BUSY)
		return -EAGAIN;
	if (r < 0)
		return r;
	if (reader)
		ra_drop(fs->ra, &e->chunk);
	data = codec ? malloc(e->len ? e->len : 1) : NULL;
	if (!data) {
		ccache_abandon(fs->cc, *out);
		*out = NULL;
		return -ENOMEM;
	}
	n = store_chunk_read(fs->st, codec, &e->chunk, data, e->len, false);
	if (n < 0 || (size_t)n != e->len) {
		char hex[FP_HEX_LEN + 1];

		free(data);
		ccache_abandon(fs->cc, *out);
		*out = NULL;
		fp_to_hex(&e->chunk, hex);
		if (reader)
			dfs_err("inode %" PRIu64 " @%" PRIu64 ": chunk %.16s unreadable: %s", ino,
				e->off, hex, n < 0 ? dfs_strerror((int)n) : "wrong length");
		/* the chunk's pack is gone (a deleted file or object): damage, not "no such
		 * file" for a file that is listed */
		return n == -ENOENT ? -EIO : n < 0 ? (int)n : -EBADMSG;
	}
	ccache_fill(fs->cc, *out, data, e->len);
	return 0;
}

/*
 * After a read of [off, end): a reader that goes on where it stopped (twice in a row) gets
 * the chunks of the next RA_WINDOW bytes loaded into the cache by the read-ahead threads.
 */
static void read_ahead(struct dfs_fs *fs, struct fh *h, uint64_t off, uint64_t end,
		       uint64_t fsize)
{
	struct store_extent e;
	uint64_t pos, until;

	if (!fs->ra)
		return;
	pthread_mutex_lock(&h->lock);
	if (goes_on(fs, h, off, (size_t)(end - off))) {
		h->seq++;
		if (end > h->next_off)
			h->next_off = end;
	} else {
		h->seq = 0;
		h->next_off = end;
	}
	if (h->seq < 2) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	/*
	 * Refilled in batches, once less than half the window is ahead: the loaders then
	 * wake once for the chunks of a megabyte, not once for each chunk (20k context
	 * switches of the daemon a GiB read, 14k with this).
	 */
	if (h->ra_until > end && h->ra_until - end >= RA_WINDOW / 2 && h->ra_until < fsize) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	pos = h->ra_until > end ? h->ra_until : end;
	until = end + RA_WINDOW < fsize ? end + RA_WINDOW : fsize;
	while (pos < until && store_content_extent(h->c, pos, &e) == 0) {
		if (!e.hole && !ccache_has(fs->cc, &e.chunk))
			ra_push(fs->ra, &e, h->ino);
		pos = e.off + e.len;
	}
	if (pos > h->ra_until)
		h->ra_until = pos;
	pthread_mutex_unlock(&h->lock);
}

/*
 * A read's reply: pieces of cached chunks (held until the reply is sent) and of a zero
 * block for holes, handed to the kernel in one writev, so the bytes are copied once (into
 * the page cache) instead of twice. A read of more pieces than READ_SEGS, and inline
 * content, go through one buffer.
 */
#define READ_SEGS 128
#define ZERO_SEG (64u << 10)

static uint8_t zero_seg[ZERO_SEG];

struct rd_reply {
	struct iovec iov[READ_SEGS];
	struct ccache_entry *held[READ_SEGS];
	size_t streamed[READ_SEGS];	/* bytes of held[i] served to a sequential reader */
	void *owned[READ_SEGS];		/* buffers of part reads (read_part), freed after */
	unsigned n, nheld, nowned;
	bool copying;		/* pieces past READ_SEGS: everything goes to copy */
	struct dfs_buf copy;
};

static void rd_init(struct rd_reply *r, size_t size)
{
	r->n = r->nheld = r->nowned = 0;
	r->copying = false;
	dfs_buf_init(&r->copy, size);
}

static void rd_release(struct dfs_fs *fs, struct rd_reply *r)
{
	for (unsigned i = 0; i < r->nheld; i++) {
		ccache_put_streamed(fs->cc, r->held[i], r->streamed[i]);
	}
	r->nheld = 0;
	for (unsigned i = 0; i < r->nowned; i++)
		free(r->owned[i]);
	r->nowned = 0;
	dfs_buf_release(&r->copy);
}

/* Adds @n bytes at @p; @ce (or NULL) is the cache entry they are in, referenced by the
 * caller and now owned by @r. */
static int rd_add(struct dfs_fs *fs, struct rd_reply *r, const void *p, size_t n,
		  struct ccache_entry *ce, size_t streamed)
{
	int rc = 0;

	if (!r->copying && r->n == READ_SEGS) {
		r->copying = true;
		rc = dfs_buf_reserve(&r->copy, r->copy.max);	/* the request's size */
		for (unsigned i = 0; rc == 0 && i < r->n; i++)
			rc = dfs_buf_append(&r->copy, r->iov[i].iov_base, r->iov[i].iov_len);
	}
	if (r->copying) {
		if (rc == 0)
			rc = dfs_buf_append(&r->copy, p, n);
		ccache_put_streamed(fs->cc, ce, streamed);
	} else {
		r->iov[r->n].iov_base = (void *)p;
		r->iov[r->n++].iov_len = n;
		if (ce) {
			r->streamed[r->nheld] = streamed;
			r->held[r->nheld++] = ce;
		}
	}
	return rc;
}

/*
 * A small piece of a chunk that is not in the cache (a random read): only the blocks it
 * is in are read and checked (store_chunk_read_part), into a buffer @r owns. 1 if done,
 * 0 if the chunk is not stored in blocks or the piece is large (the caller reads the
 * chunk whole), -errno.
 */
static int read_part(struct dfs_fs *fs, struct rd_reply *r, const struct store_extent *e,
		     size_t in, size_t n)
{
	uint8_t *buf;
	int rc;

	if (n > e->len / 4 || r->copying || r->n == READ_SEGS || ccache_has(fs->cc, &e->chunk))
		return 0;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	rc = store_chunk_read_part(fs->st, &e->chunk, e->len, in, n, buf);
	if (rc < 0) {
		free(buf);
		return rc == -EOPNOTSUPP ? 0 : rc;
	}
	r->owned[r->nowned++] = buf;
	r->iov[r->n].iov_base = buf;
	r->iov[r->n++].iov_len = n;
	return 1;
}

static int do_read(struct dfs_fs *fs, struct fh *h, off_t off, size_t size,
		   struct rd_reply *out)
{
	uint64_t fsize, pos = (uint64_t)off, end;
	const uint8_t *inl;
	size_t ilen;
	bool stream;
	int rc = 0;

	if (!h->c)
		return 0;
	/* a sequential reader (read_ahead's count) that goes on where it stopped: the
	 * chunks it has been served whole leave the cache (ccache_put_streamed) */
	pthread_mutex_lock(&h->lock);
	stream = h->seq >= 2 && goes_on(fs, h, (uint64_t)off, size);
	pthread_mutex_unlock(&h->lock);
	fsize = store_content_size(h->c);
	if (pos >= fsize)
		return 0;
	end = pos + size > fsize ? fsize : pos + size;
	inl = store_content_inline(h->c, &ilen);
	if (inl) {
		/*
		 * Copied: the inline bytes belong to the handle, which a RELEASE may free in
		 * another thread as soon as the kernel has this reply (still inside our writev,
		 * where sanitizers check the iovecs after the call).
		 */
		out->copying = true;
		return dfs_buf_append(&out->copy, inl + pos, (size_t)(end - pos));
	}
	while (pos < end && rc == 0) {
		struct store_extent e;
		struct ccache_entry *ce;
		size_t n, in;

		pthread_mutex_lock(&h->lock);
		rc = store_content_extent(h->c, pos, &e);
		pthread_mutex_unlock(&h->lock);
		if (rc < 0)
			break;
		in = (size_t)(pos - e.off);
		n = e.len - in < end - pos ? e.len - in : (size_t)(end - pos);
		if (e.hole) {
			for (size_t z = 0; z < n && rc == 0; z += ZERO_SEG)
				rc = rd_add(fs, out, zero_seg, n - z < ZERO_SEG ? n - z : ZERO_SEG,
					    NULL, 0);
		} else if (!stream && (rc = read_part(fs, out, &e, in, n)) != 0) {
			if (rc < 0)
				break;
			rc = 0;
		} else {
			const uint8_t *data;
			size_t dl;

			rc = fs_chunk_ref(fs, &e, h->ino, true, &ce);
			if (rc < 0)
				break;
			data = ccache_data(ce, &dl);
			rc = rd_add(fs, out, data + in, n, ce, stream ? n : 0);
		}
		pos += n;
	}
	if (rc == 0)
		read_ahead(fs, h, (uint64_t)off, end, fsize);
	/* Never a short read: the kernel would take it for the end of the file and a copy
	 * would end silently truncated. Damage anywhere in the range fails the read. */
	return rc < 0 ? rc : 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct dfs_fs *fs = fs_of(req);
	struct rd_reply rr, *r = &rr;	/* 4 KiB */
	int rc;

	(void)ino;
	rd_init(r, size);
	rc = do_read(fs, (struct fh *)(uintptr_t)fi->fh, off, size, r);
	if (rc < 0)
		fuse_reply_err(req, fs_errno(rc));
	else if (r->copying)
		fuse_reply_buf(req, (const char *)r->copy.data, r->copy.len);
	else
		fuse_reply_iov(req, r->iov, (int)r->n);
	rd_release(fs, r);
}

static int do_lseek(struct fh *h, off_t off, int whence, off_t *res)
{
	uint64_t r;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	if (!h->c)
		return -ENXIO;
	pthread_mutex_lock(&h->lock);
	rc = store_content_seek(h->c, (uint64_t)off, whence, &r);
	pthread_mutex_unlock(&h->lock);
	if (rc == 0)
		*res = (off_t)r;
	return rc;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t res = 0;
	int rc;

	(void)ino;
	rc = do_lseek((struct fh *)(uintptr_t)fi->fh, off, whence, &res);
	if (rc < 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_lseek(req, res);
}

/* ---- extended attributes --------------------------------------------------------------- */

/*
 * With access checks: keeps of @in's origins those the caller of @req can reach
 * (user.defrag.origins never names a path its reader could not reach), and then counts
 * only those. The origins a capped list left out cannot be checked and are not counted.
 */
static int filter_origins(fuse_req_t req, struct dfs_fs *fs, struct store_inode *in)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct reach_who who;
	size_t k = 0;
	int rc = 0;

	if (!fs->reach || ctx->uid == 0 || in->view != STORE_VIEW_ORG || !in->norigins)
		return 0;
	reach_who_init(&who, ctx->uid, ctx->gid, req_groups, req);
	for (size_t i = 0; i < in->norigins; i++) {
		bool ok = false;

		if (rc == 0)
			rc = reach_origin(fs->reach, in->origins[i].p, in->origins[i].len, &who,
					  &ok);
		if (ok)
			in->origins[k++] = in->origins[i];
		else
			free(in->origins[i].p);
	}
	reach_who_release(&who);
	if (k < in->norigins)
		in->origins_total = k;
	in->norigins = k;
	return rc;
}

/*
 * With access checks: keeps of @in's user.defrag.versions the lines ("<16 hex inode>
 * <name>") of versions the caller of @req can reach; with none left the attribute is
 * neither listed nor returned.
 */
static int filter_versions(fuse_req_t req, struct dfs_fs *fs, struct store_inode *in)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct store_xattr *x = NULL;
	struct reach_who who;
	size_t k = 0;
	int rc = 0;

	if (!fs->reach || ctx->uid == 0 || in->view != STORE_VIEW_ORG)
		return 0;
	for (size_t i = 0; i < in->nxattrs; i++)
		if (in->xattrs[i].name.len == 20 &&
		    !memcmp(in->xattrs[i].name.p, "user.defrag.versions", 20))
			x = &in->xattrs[i];
	if (!x)
		return 0;
	reach_who_init(&who, ctx->uid, ctx->gid, req_groups, req);
	for (size_t off = 0; off < x->value.len && rc == 0;) {
		const uint8_t *nl = memchr(x->value.p + off, '\n', x->value.len - off);
		size_t l = nl ? (size_t)(nl - (x->value.p + off)) + 1 : x->value.len - off;
		struct store_inode v;
		bool ok = false;

		if (store_get_inode(fs->st, strtoull((const char *)x->value.p + off, NULL, 16),
				    &v) == 0) {
			rc = reach_entry(fs->reach, &v, &who, &ok);
			store_inode_release(&v);
		}
		if (ok) {
			memmove(x->value.p + k, x->value.p + off, l);
			k += l;
		}
		off += l;
	}
	reach_who_release(&who);
	x->value.len = k;
	if (k == 0) {	/* none: not there at all for this reader */
		free(x->name.p);
		free(x->value.p);
		*x = in->xattrs[--in->nxattrs];
		/* the list stays sorted: the one moved in was the last */
		for (size_t i = (size_t)(x - in->xattrs); i + 1 < in->nxattrs; i++) {
			struct store_xattr t = in->xattrs[i];

			in->xattrs[i] = in->xattrs[i + 1];
			in->xattrs[i + 1] = t;
		}
	}
	return rc;
}

static int do_xattr(fuse_req_t req, struct dfs_fs *fs, fuse_ino_t ino, const char *name,
		    struct dfs_buf *out)
{
	struct store_inode in;
	int rc;

	/*
	 * No security.* xattr anywhere in the store: "not supported here" (ls -l asks every
	 * file for security.selinux, a round trip each, unless the answer is EOPNOTSUPP)
	 */
	if (name && !strncmp(name, "security.", 9) && atomic_load(&fs->no_security))
		return -EOPNOTSUPP;
	/* user.defrag.* can exist without xattrs of the inode's own (fattr_get) */
	if (name && strncmp(name, "user.defrag.", 12) &&
	    ino_is_plain(fs->known, ino, atomic_load(&fs->gen)))
		return -ENODATA;
	rc = hist_get_inode(fs->hist, ino, &in);
	if (rc < 0)
		return rc;
	if (name && !strncmp(name, "user.defrag.origins", 19))
		rc = filter_origins(req, fs, &in);
	else if (!name || !strcmp(name, "user.defrag.versions"))
		rc = filter_versions(req, fs, &in);
	if (rc == 0)
		rc = name ? fattr_get(&in, name, out) : fattr_list(&in, out);
	if (rc == 0 && name)
		rc = fattr_map_acl(&fs->maps, name, out);
	store_inode_release(&in);
	return rc;
}

static void reply_xattr(fuse_req_t req, int rc, const struct dfs_buf *b, size_t size)
{
	if (rc < 0)
		fuse_reply_err(req, fs_errno(rc));
	else if (size == 0)
		fuse_reply_xattr(req, b->len);
	else if (b->len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)b->data, b->len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, XATTR_CAP);
	rc = do_xattr(req, fs_of(req), ino, name, &b);
	reply_xattr(req, rc, &b, size);
	dfs_buf_release(&b);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, XATTR_CAP);
	rc = do_xattr(req, fs_of(req), ino, NULL, &b);
	reply_xattr(req, rc, &b, size);
	dfs_buf_release(&b);
}

/* ---- the filesystem -------------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct dfs_fs *fs = fs_of(req);
	struct store_stats ss;
	struct statvfs sv;
	int rc;

	(void)ino;
	rc = store_get_stats(fs->st, &ss);
	if (rc < 0) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (ss.pack_bytes + 4095) / 4096;
	sv.f_files = ss.next_ino;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct dfs_fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat st;
	int rc = do_getattr(fs, ino, &st, NULL, NULL);
	mode_t bits;

	if (rc < 0) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	if (mask & W_OK) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ctx->uid == 0) {
		bool x_ok = !(mask & X_OK) || S_ISDIR(st.st_mode) || (st.st_mode & 0111);

		fuse_reply_err(req, x_ok ? 0 : EACCES);
		return;
	}
	bits = ctx->uid == st.st_uid ? (st.st_mode >> 6) & 7
	       : ctx->gid == st.st_gid ? (st.st_mode >> 3) & 7 : st.st_mode & 7;
	fuse_reply_err(req, ((mask & R_OK) && !(bits & 4)) || ((mask & X_OK) && !(bits & 1))
			    ? EACCES : 0);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct dfs_fs *fs = userdata;

	/* the kernel takes the smaller of this and the mount's read_ahead_kb (main.c) */
	conn->max_readahead = (unsigned)kernel_ra(fs);
	if (fs->max_read)
		conn->max_read = fs->max_read;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/*
	 * With -o default_permissions the kernel checks modes; ACLs too, with this. Only
	 * then: asking for POSIX ACLs makes the kernel check permissions by itself.
	 */
	if (fs->posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

/* ---- write-type operations: a read-only filesystem ------------------------------------- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino; (void)attr; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino; (void)buf; (void)size; (void)off; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino; (void)name; (void)value; (void)size; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino; (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)offset; (void)length; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in; (void)off_in; (void)fi_in; (void)ino_out; (void)off_out; (void)fi_out;
	(void)len; (void)flags;
	fuse_reply_err(req, EROFS);
}

void fs_free_handles(struct dfs_fs *fs)
{
	unsigned nf = 0, nd = 0;

	pthread_mutex_lock(&fs->handles_lock);
	while (fs->handles.next != &fs->handles) {
		struct fs_handle *h = fs->handles.next;

		h->prev->next = h->next;
		h->next->prev = h->prev;
		if (h->dir) {
			dh_free((struct dh *)h);
			nd++;
		} else {
			fh_free((struct fh *)h);
			nf++;
		}
	}
	pthread_mutex_unlock(&fs->handles_lock);
	if (nf || nd)
		dfs_debug("%u files and %u directories were still open at the end", nf, nd);
}

const struct fuse_lowlevel_ops dfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.lseek = op_lseek,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
	.access = op_access,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
};
