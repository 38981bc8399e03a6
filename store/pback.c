/*
 * pback.c - the pack backend seam (pback.h) and its local directory implementation:
 * packs are the files STORE/packs/NN/XXXXXXXX.pack, as they always were.
 *
 * The store's hot read path keeps its own descriptor cache over these same files
 * (store_pack_fd_get in store.c); this module is what listing, removing, checking and
 * putting a pack go through, whichever backend holds it.
 *
 * Threads: stateless apart from the directory name. Errors: see pback.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "pback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "pack.h"
#include "sio.h"

struct pback_local {
	struct pback base;
	char *dir;
};

void pback_free(struct pback *b)
{
	if (b)
		b->ops->free(b);
}

static char *local_dir(struct pback *b)
{
	return ((struct pback_local *)b)->dir;
}

/* Copies @from into pack @id's place (temp file, fsync, rename, fsync of the directory). */
static int local_copy_in(struct pback *b, uint32_t id, const char *from, const char *to)
{
	char tmp[PATH_MAX + 8], dir[PATH_MAX];
	int in, out, rc = 0;
	uint64_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", to) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	snprintf(dir, sizeof(dir), "%s/packs", local_dir(b));
	rc = sio_mkdir(dir, 0700);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	pack_dir_path(local_dir(b), id, dir, sizeof(dir));
	rc = sio_mkdir(dir, 0700);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = sio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0) {
		close(in);
		return out;
	}
	for (;;) {
		char chunk[1 << 16];
		ssize_t n = sio_pread(in, chunk, sizeof(chunk), (off_t)off);

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		rc = sio_pwrite(out, chunk, (size_t)n, (off_t)off);
		if (rc < 0)
			break;
		off += (uint64_t)n;
	}
	if (rc == 0)
		rc = sio_fsync(out);
	sio_close(out);
	close(in);
	if (rc == 0)
		rc = sio_rename(tmp, to);
	if (rc == 0)
		rc = sio_fsync_dir(to);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int local_put(struct pback *b, uint32_t id, const char *path, uint64_t size)
{
	char own[PATH_MAX];
	struct stat sb;
	int rc = pack_path(local_dir(b), id, own, sizeof(own));

	if (rc < 0)
		return rc;
	/* the staged file is already in its place (written, synced by the commit) */
	if (strcmp(path, own) != 0) {
		rc = local_copy_in(b, id, path, own);
		if (rc < 0)
			return rc;
	}
	if (stat(own, &sb) < 0)
		return -errno;
	if ((uint64_t)sb.st_size != size) {
		dfs_err("pack %08x: %lld bytes in %s, %llu expected", id, (long long)sb.st_size,
			own, (unsigned long long)size);
		return -EBADMSG;
	}
	return 0;
}

static ssize_t local_get(struct pback *b, uint32_t id, void *buf, size_t len, uint64_t off)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, rc = pack_path(local_dir(b), id, path, sizeof(path));

	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = sio_pread(fd, buf, len, (off_t)off);
	close(fd);
	return n;
}

static int local_list(struct pback *b, int (*fn)(void *arg, uint32_t id, uint64_t size),
		      void *arg)
{
	char path[PATH_MAX];
	int rc = 0;

	for (unsigned nn = 0; nn < 256 && rc == 0; nn++) {
		struct dirent *de;
		DIR *d;

		snprintf(path, sizeof(path), "%s/packs/%02x", local_dir(b), nn);
		d = opendir(path);
		if (!d)
			continue;
		while (rc == 0 && (de = readdir(d))) {
			struct stat sb;
			uint32_t id;

			if (!pack_name_parse(de->d_name, &id) ||
			    fstatat(dirfd(d), de->d_name, &sb, 0) < 0)
				continue;	/* not a pack, or removed meanwhile */
			rc = fn(arg, id, (uint64_t)sb.st_size);
		}
		closedir(d);
	}
	return rc;
}

static int local_del(struct pback *b, uint32_t id)
{
	char path[PATH_MAX];
	int rc = pack_path(local_dir(b), id, path, sizeof(path));

	if (rc == 0)
		rc = sio_unlink(path);
	if (rc == 0)
		rc = sio_fsync_dir(path);
	return rc;
}

static int local_stat(struct pback *b, uint32_t id, uint64_t *size)
{
	char path[PATH_MAX];
	struct stat sb;
	int rc = pack_path(local_dir(b), id, path, sizeof(path));

	*size = 0;
	if (rc < 0)
		return rc;
	if (stat(path, &sb) < 0)
		return -errno;
	*size = (uint64_t)sb.st_size;
	return 0;
}

static void local_free(struct pback *b)
{
	free(local_dir(b));
	free(b);
}

static const struct pback_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.list = local_list,
	.del = local_del,
	.stat = local_stat,
	.free = local_free,
};

int pback_local_new(const char *store_dir, struct pback **out)
{
	struct pback_local *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l || !(l->dir = strdup(store_dir))) {
		free(l);
		return -ENOMEM;
	}
	l->base.ops = &local_ops;
	*out = &l->base;
	return 0;
}
