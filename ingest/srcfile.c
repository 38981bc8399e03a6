/*
 * srcfile.c - opening and reading source entries (see srcfile.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "srcfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <blkid/blkid.h>

#include "store/buf.h"
#include "store/cdc.h"

/* O_NOATIME needs the file's owner (or CAP_FOWNER): retried without it on EPERM. */
static int open_at(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOATIME | O_CLOEXEC);

	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int src_open_file(int dirfd, const char *name)
{
	return open_at(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
}

int src_reopen_file(int dirfd, const char *name, ino_t ino, struct stat *sb)
{
	int fd = src_open_file(dirfd, name), rc;

	if (fd < 0)
		return fd;
	if (fstat(fd, sb) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(sb->st_mode) || sb->st_ino != ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int src_open_dir(int dirfd, const char *name)
{
	if (!name || !strcmp(name, "."))
		return open_at(dirfd, ".", O_RDONLY | O_DIRECTORY);
	return open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
}

int src_open_root(const char *path)
{
	return open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
}

static int name_cmp(const void *a, const void *b)
{
	/* no name holds a NUL: strcmp compares the bytes as unsigned, a prefix first */
	return strcmp(((const struct src_name *)a)->p, ((const struct src_name *)b)->p);
}

int src_list_dir(int dirfd, struct src_listing *out)
{
	struct dfs_buf names;
	struct src_name *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	char *p;
	DIR *d;
	int fd, rc = 0;

	memset(out, 0, sizeof(*out));
	/* its own open file description: a dup() would share (and move) the offset */
	fd = src_open_dir(dirfd, NULL);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	dfs_buf_init(&names, SRC_LIST_MAX);
	for (;;) {
		size_t l;

		errno = 0;
		de = readdir(d);
		if (!de) {
			out->err = -errno;
			break;
		}
		l = strlen(de->d_name);
		if ((l == 1 && de->d_name[0] == '.') ||
		    (l == 2 && de->d_name[0] == '.' && de->d_name[1] == '.'))
			continue;
		if (n == cap) {
			struct src_name *x;

			cap = cap ? cap * 2 : 64;
			x = realloc(v, cap * sizeof(*x));
			if (!x) {
				rc = -ENOMEM;
				break;
			}
			v = x;
		}
		rc = dfs_buf_append(&names, de->d_name, l + 1);
		if (rc == -E2BIG) {
			out->err = rc;	/* a listing past the cap: what was read, and an error */
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		v[n++].len = l;
	}
	closedir(d);
	if (rc < 0) {
		free(v);
		dfs_buf_release(&names);
		out->err = 0;
		return rc;
	}
	/* the names lie end to end in read order: each pointer follows from the lengths */
	p = (char *)names.data;
	for (size_t i = 0; i < n; i++) {
		v[i].p = p;
		p += v[i].len + 1;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), name_cmp);
	out->buf = (char *)names.data;
	out->len = names.len;
	out->v = v;
	out->n = n;
	return 0;
}

void src_listing_release(struct src_listing *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void src_next_data(int fd, off_t off, off_t size, off_t *data, off_t *hole)
{
	off_t d = lseek(fd, off, SEEK_DATA), h;

	if (d < 0 && errno == ENXIO) {	/* a hole up to the end */
		*data = *hole = size;
		return;
	}
	if (d < 0) {
		d = off;	/* SEEK_DATA unsupported: all data */
		h = size;
	} else {
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > size)
			h = size;
	}
	*data = d > size ? size : d;
	*hole = h;
}

void src_window_init(struct src_window *w, uint8_t *buf, size_t cap, off_t start, off_t end)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
	w->off = start;
	w->end = end;
}

ssize_t src_window_fill(struct src_window *w, int fd)
{
	size_t want;
	ssize_t got;

	memmove(w->buf, w->buf + w->pos, w->have - w->pos);
	w->have -= w->pos;
	w->pos = 0;
	want = w->cap - w->have;
	if ((off_t)want > w->end - w->off)
		want = (size_t)(w->end - w->off);
	do
		got = want ? pread(fd, w->buf + w->have, want, w->off) : 0;
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	if (got == 0 && want)
		return -ESTALE;	/* shrank while read */
	w->have += (size_t)got;
	w->off += got;
	if (w->off >= w->end)
		w->eof = true;
	return got;
}

size_t src_window_cut(struct src_window *w, const struct cdc_params *cp)
{
	size_t avail = w->have - w->pos, len = avail, n;
	uint64_t at = (uint64_t)w->off - avail;	/* the file offset of buf[pos] */
	bool end = w->eof;

	if (!avail)
		return 0;
	if (!w->tar_seen) {
		/* a tar only from the file's first byte, and only if the window holds the
		 * finder's look-ahead beyond a chunk (ing_window_cap makes it so) */
		bool room = (size_t)cp->max_size + TARCUT_LOOKAHEAD <= w->cap / 2;

		w->tar_seen = true;
		tarcut_start(&w->tar, at == 0 && room ? cp->tar_floor : 0, w->buf + w->pos, avail);
	}
	if (!w->eof && avail < cp->max_size + (w->tar.active ? TARCUT_LOOKAHEAD : 0))
		return 0;
	if (w->tar.active) {
		uint64_t b = tarcut_next(&w->tar, at, w->buf + w->pos, avail, w->eof,
					 cp->max_size);

		if (b != TARCUT_NONE && b - at <= avail) {
			len = (size_t)(b - at);
			end = true;	/* the member (or the run between two) ends there */
		}
	}
	n = cdc_next(cp, w->buf + w->pos, len, end);
	w->pos += n;
	return n;
}

size_t src_window_max_cuts(size_t cap, const struct cdc_params *cp)
{
	/* a tar's member and the header before it are two chunks per 1 KiB at worst */
	return cp->tar_floor ? cap / TARCUT_BLOCK + 2 : cap / cp->min_size + 2;
}

uint8_t src_dtype(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	default: return DT_UNKNOWN;
	}
}

int src_xattr_cmp(const void *a, const void *b)
{
	const struct store_xattr *x = a, *y = b;
	size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
	int c = memcmp(x->name.p, y->name.p, n);

	return c ? c : (x->name.len > y->name.len) - (x->name.len < y->name.len);
}

void src_xattrs_free(struct store_xattr *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name.p);
		free(x[i].value.p);
	}
	free(x);
}

/* "/proc/self/fd/N/name": the l*xattr calls reach an entry of a directory fd by path,
 * whatever its depth, and never follow its last component. */
static int proc_path(char *buf, size_t len, int dirfd, const char *name)
{
	int n = snprintf(buf, len, "/proc/self/fd/%d/%s", dirfd, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int src_read_xattrs(int fd, int dirfd, const char *entry, struct store_xattr **out, size_t *nout)
{
	struct store_xattr *xs = NULL;
	size_t nx = 0;
	char *list = NULL, pbuf[PATH_MAX + 32];
	const char *path = pbuf;
	ssize_t n;
	int rc = 0;

	*out = NULL;
	*nout = 0;
	if (fd < 0) {
		rc = proc_path(pbuf, sizeof(pbuf), dirfd, entry);
		if (rc < 0)
			return rc;
	}
	for (int tries = 0; tries < 4; tries++) {
		n = fd >= 0 ? flistxattr(fd, NULL, 0) : llistxattr(path, NULL, 0);
		if (n <= 0) {
			rc = n == 0 || errno == ENOTSUP || errno == ENODATA ? 0 : -errno;
			free(list);
			return rc;
		}
		free(list);
		list = malloc((size_t)n);
		if (!list)
			return -ENOMEM;
		n = fd >= 0 ? flistxattr(fd, list, (size_t)n) : llistxattr(path, list, (size_t)n);
		if (n >= 0)
			break;
		if (errno != ERANGE) {
			free(list);
			return -errno;
		}
	}
	if (n < 0) {
		free(list);
		return -ERANGE;
	}
	for (ssize_t off = 0; off < n && rc == 0;) {
		const char *name = list + off;
		size_t nl = strlen(name);
		struct store_xattr *x;
		ssize_t vl;

		off += (ssize_t)nl + 1;
		x = realloc(xs, (nx + 1) * sizeof(*x));
		if (!x) {
			rc = -ENOMEM;
			break;
		}
		xs = x;
		x = &xs[nx];
		memset(x, 0, sizeof(*x));
		vl = fd >= 0 ? fgetxattr(fd, name, NULL, 0) : lgetxattr(path, name, NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;	/* removed meanwhile */
			rc = -errno;
			break;
		}
		x->value.p = malloc((size_t)vl + 1);
		x->name.p = (uint8_t *)strdup(name);
		if (!x->value.p || !x->name.p) {
			free(x->value.p);
			free(x->name.p);
			rc = -ENOMEM;
			break;
		}
		x->name.len = nl;
		vl = fd >= 0 ? fgetxattr(fd, name, x->value.p, (size_t)vl)
			     : lgetxattr(path, name, x->value.p, (size_t)vl);
		if (vl < 0) {
			rc = errno == ERANGE ? -EAGAIN : -errno;
			free(x->value.p);
			free(x->name.p);
			break;
		}
		x->value.len = (size_t)vl;
		nx++;
	}
	free(list);
	if (rc < 0) {
		src_xattrs_free(xs, nx);
		return rc;
	}
	if (nx > 1)
		qsort(xs, nx, sizeof(*xs), src_xattr_cmp);
	*out = xs;
	*nout = nx;
	return 0;
}

/* Filesystem identity: "uuid:..." from libblkid, else "fsid:<f_fsid>:<root inode>". */
void src_fsid(int fd, const struct stat *sb, char *out, size_t len)
{
	char *dev = blkid_devno_to_devname(sb->st_dev);
	struct statfs sfs;

	if (dev) {
		blkid_cache cache = NULL;
		char *uuid = NULL;

		if (blkid_get_cache(&cache, "/dev/null") == 0) {
			uuid = blkid_get_tag_value(cache, "UUID", dev);
			blkid_put_cache(cache);
		}
		free(dev);
		if (uuid) {
			snprintf(out, len, "uuid:%s", uuid);
			free(uuid);
			return;
		}
	}
	if (fstatfs(fd, &sfs) == 0) {
		unsigned a, b;

		memcpy(&a, &sfs.f_fsid, sizeof(a));
		memcpy(&b, (char *)&sfs.f_fsid + sizeof(a), sizeof(b));
		snprintf(out, len, "fsid:%08x%08x:%llu", a, b, (unsigned long long)sb->st_ino);
		return;
	}
	snprintf(out, len, "dev:%u:%u:%llu", major(sb->st_dev), minor(sb->st_dev),
		 (unsigned long long)sb->st_ino);
}
