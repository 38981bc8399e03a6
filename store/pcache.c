/*
 * pcache.c - the on-disk cache of remote packs (pcache.h).
 *
 * State: a table of entries, one per pack file in the directory (found at open or made
 * on first read), each with its size, the bytes it holds, a use tick and a reader count.
 * Lock order: c->lock (the table, totals) before e->lock (one pack's file and fetches).
 * A fetch runs under e->lock only, so readers of other packs are not held up.
 *
 * SPDX-License-Identifier: MIT
 */
#include "pcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pack.h"
#include "sio.h"

struct pcache_ent {
	uint32_t id;
	int fd;			/* -1 until first used in this process */
	uint64_t size;		/* the pack's size (the file's length) */
	uint64_t bytes;		/* allocated bytes of the file (counted in c->used) */
	uint64_t tick;
	unsigned refs;
	bool gone;		/* removed from the table: freed by its last reader */
	pthread_mutex_t lock;
};

struct pcache {
	char *dir;
	int dfd;
	uint64_t max;
	struct pback *b;
	pthread_mutex_t lock;
	struct pcache_ent **ents;
	size_t n, cap;
	uint64_t used, tick, fetched, hit;
};

static void ent_name(uint32_t id, char name[16])
{
	snprintf(name, 16, "%08" PRIx32 ".pack", id);
}

static uint64_t file_bytes(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) < 0 ? 0 : (uint64_t)sb.st_blocks * 512;
}

static void ent_free(struct pcache_ent *e)
{
	if (e->fd >= 0)
		close(e->fd);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static struct pcache_ent *ent_new(uint32_t id, uint64_t size, uint64_t bytes, uint64_t tick)
{
	struct pcache_ent *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->id = id;
	e->fd = -1;
	e->size = size;
	e->bytes = bytes;
	e->tick = tick;
	pthread_mutex_init(&e->lock, NULL);
	return e;
}

static int table_add(struct pcache *c, struct pcache_ent *e)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct pcache_ent **v = realloc(c->ents, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->ents = v;
		c->cap = cap;
	}
	c->ents[c->n++] = e;
	return 0;
}

/* Takes entry @i out of the table and removes its file (c->lock held). */
static void table_remove(struct pcache *c, size_t i)
{
	struct pcache_ent *e = c->ents[i];
	char name[16];

	ent_name(e->id, name);
	unlinkat(c->dfd, name, 0);
	c->used -= e->bytes < c->used ? e->bytes : c->used;
	c->ents[i] = c->ents[--c->n];
	if (e->refs)
		e->gone = true;
	else
		ent_free(e);
}

/* Removes the least recently used files no reader holds until under the bound. */
static void evict_locked(struct pcache *c)
{
	while (c->used > c->max) {
		size_t victim = SIZE_MAX;

		for (size_t i = 0; i < c->n; i++)
			if (!c->ents[i]->refs &&
			    (victim == SIZE_MAX || c->ents[i]->tick < c->ents[victim]->tick))
				victim = i;
		if (victim == SIZE_MAX)
			return;
		table_remove(c, victim);
	}
}

/* The files already there: entries in mtime order (an older file is evicted first). */
static int load_dir(struct pcache *c)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(c->dfd);
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (rc == 0 && (de = readdir(d))) {
		struct pcache_ent *e;
		struct stat sb;
		uint32_t id;

		if (!pack_name_parse(de->d_name, &id) ||
		    fstatat(c->dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		e = ent_new(id, (uint64_t)sb.st_size, (uint64_t)sb.st_blocks * 512,
			    (uint64_t)sb.st_mtim.tv_sec);
		if (!e || table_add(c, e) < 0) {
			free(e);
			rc = -ENOMEM;
			break;
		}
		c->used += e->bytes;
	}
	closedir(d);
	/* ticks from here on are larger than any mtime */
	c->tick = (uint64_t)time(NULL) + 1;
	return rc;
}

int pcache_open(const char *dir, uint64_t max_bytes, struct pback *b, struct pcache **out)
{
	struct pcache *c;
	int rc;

	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->b = b;
	c->max = max_bytes;
	c->dir = strdup(dir);
	c->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!c->dir || c->dfd < 0) {
		rc = !c->dir ? -ENOMEM : -errno;
		goto out_close;
	}
	rc = load_dir(c);
	if (rc < 0)
		goto out_close;
	pthread_mutex_lock(&c->lock);
	evict_locked(c);
	pthread_mutex_unlock(&c->lock);
	*out = c;
	return 0;
out_close:
	pcache_close(c);
	return rc;
}

void pcache_close(struct pcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		ent_free(c->ents[i]);
	free(c->ents);
	if (c->dfd >= 0)
		close(c->dfd);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

/* Pack @id's entry with a reader reference, its file open (made on first use). */
static int ent_get(struct pcache *c, uint32_t id, struct pcache_ent **out)
{
	struct pcache_ent *e = NULL;
	uint64_t size = 0;
	bool found = false;
	char name[16];
	int rc;

	*out = NULL;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++)
		if (c->ents[i]->id == id) {
			e = c->ents[i];
			break;
		}
	if (e) {
		e->refs++;
		e->tick = ++c->tick;
	}
	pthread_mutex_unlock(&c->lock);
	if (!e) {
		/* first use: its size from the backend (-ENOENT: no such pack) */
		rc = pback_stat(c->b, id, &size);
		if (rc < 0)
			return rc;
		e = ent_new(id, size, 0, 0);
		if (!e)
			return -ENOMEM;
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < c->n; i++)
			if (c->ents[i]->id == id) {	/* another reader was quicker */
				ent_free(e);
				e = c->ents[i];
				found = true;
				break;
			}
		if (!found) {
			rc = table_add(c, e);
			if (rc < 0) {
				pthread_mutex_unlock(&c->lock);
				ent_free(e);
				return rc;
			}
		}
		e->refs++;
		e->tick = ++c->tick;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_lock(&e->lock);
	if (e->fd < 0) {
		ent_name(id, name);
		e->fd = openat(c->dfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (e->fd < 0 || ftruncate(e->fd, (off_t)e->size) < 0) {
			rc = -errno;
			pthread_mutex_unlock(&e->lock);
			dfs_err("pack cache %s/%s: %s", c->dir, name, strerror(-rc));
			if (e->fd >= 0)
				close(e->fd);
			e->fd = -1;
			pthread_mutex_lock(&c->lock);
			e->refs--;
			pthread_mutex_unlock(&c->lock);
			return rc;
		}
	}
	pthread_mutex_unlock(&e->lock);
	*out = e;
	return 0;
}

static void ent_put(struct pcache *c, struct pcache_ent *e)
{
	pthread_mutex_lock(&c->lock);
	if (--e->refs == 0 && e->gone)
		ent_free(e);
	else
		evict_locked(c);
	pthread_mutex_unlock(&c->lock);
}

int pcache_size(struct pcache *c, uint32_t id, uint64_t *size)
{
	struct pcache_ent *e;
	int rc = ent_get(c, id, &e);

	*size = rc < 0 ? 0 : e->size;
	if (rc == 0)
		ent_put(c, e);
	return rc;
}

/* Is [@off, @end) all data in @fd (no hole)? */
static bool have_range(int fd, uint64_t off, uint64_t end)
{
	off_t h = lseek(fd, (off_t)off, SEEK_HOLE);

	return h >= 0 && (uint64_t)h >= end;
}

/* Fetches the missing blocks of [@off, @end) of @e (e->lock held). */
static int fetch_locked(struct pcache *c, struct pcache_ent *e, uint64_t off, uint64_t end,
			uint64_t *fetched)
{
	uint64_t b0 = off / PCACHE_BLOCK * PCACHE_BLOCK;
	uint8_t *buf = NULL;
	int rc = 0;

	*fetched = 0;
	if (end > e->size)
		end = e->size;
	while (b0 < end && rc == 0) {
		uint64_t b1 = b0;
		ssize_t n;

		/* a run of missing blocks: one ranged GET */
		while (b1 < end) {
			uint64_t be = b1 + PCACHE_BLOCK < e->size ? b1 + PCACHE_BLOCK : e->size;

			if (have_range(e->fd, b1, be))
				break;
			b1 = be;
		}
		if (b1 == b0) {
			b0 += PCACHE_BLOCK;
			continue;
		}
		if (!buf && !(buf = malloc(PCACHE_BLOCK * 4ull))) {
			rc = -ENOMEM;
			break;
		}
		for (uint64_t p = b0; p < b1 && rc == 0;) {
			size_t want = b1 - p < PCACHE_BLOCK * 4ull ? (size_t)(b1 - p)
								  : PCACHE_BLOCK * 4u;

			n = pback_get(c->b, e->id, buf, want, p);
			if (n < 0) {
				rc = (int)n;
				break;
			}
			if ((size_t)n != want) {
				dfs_err("pack %08" PRIx32 ": %zd bytes at %" PRIu64 " from the "
					"backend, %zu expected (the object is shorter)", e->id, n,
					p, want);
				rc = -EBADMSG;
				break;
			}
			rc = sio_pwrite(e->fd, buf, want, (off_t)p);
			p += want;
			*fetched += want;
		}
		b0 = b1;
	}
	free(buf);
	return rc;
}

ssize_t pcache_read(struct pcache *c, uint32_t id, void *buf, size_t len, uint64_t off)
{
	struct pcache_ent *e;
	uint64_t end, fetched = 0, before, after;
	ssize_t n;
	int rc = ent_get(c, id, &e);

	if (rc < 0)
		return rc;
	if (off >= e->size) {
		ent_put(c, e);
		return 0;
	}
	end = off + len < e->size ? off + len : e->size;
	pthread_mutex_lock(&e->lock);
	/* a hit costs one SEEK_HOLE per block and the read; the allocated bytes are
	 * counted only when something was fetched */
	before = after = 0;
	if (!have_range(e->fd, off, end)) {
		before = file_bytes(e->fd);
		rc = fetch_locked(c, e, off, end, &fetched);
		after = file_bytes(e->fd);
	}
	n = rc < 0 ? rc : sio_pread(e->fd, buf, (size_t)(end - off), (off_t)off);
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&c->lock);
	if (!e->gone && after > before) {
		e->bytes += after - before;
		c->used += after - before;
	}
	c->fetched += fetched;
	if (n > 0 && (uint64_t)n > fetched)
		c->hit += (uint64_t)n - fetched;
	pthread_mutex_unlock(&c->lock);
	ent_put(c, e);
	return n;
}

void pcache_forget(struct pcache *c, uint32_t id, uint64_t off, size_t len)
{
	struct pcache_ent *e;
	uint64_t b0 = off / PCACHE_BLOCK * PCACHE_BLOCK;
	uint64_t b1 = (off + len + PCACHE_BLOCK - 1) / PCACHE_BLOCK * PCACHE_BLOCK;
	uint64_t before, after;

	if (ent_get(c, id, &e) < 0)
		return;
	pthread_mutex_lock(&e->lock);
	before = file_bytes(e->fd);
	if (fallocate(e->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)b0,
		      (off_t)(b1 - b0)) < 0)
		dfs_warn("pack cache %s: pack %08" PRIx32 ": cannot drop bytes: %s", c->dir,
			 id, strerror(errno));
	after = file_bytes(e->fd);
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&c->lock);
	if (!e->gone && after <= before) {
		e->bytes -= before - after < e->bytes ? before - after : e->bytes;
		c->used -= before - after < c->used ? before - after : c->used;
	}
	pthread_mutex_unlock(&c->lock);
	ent_put(c, e);
}

void pcache_drop(struct pcache *c, uint32_t id)
{
	char name[16];

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++)
		if (c->ents[i]->id == id) {
			table_remove(c, i);
			pthread_mutex_unlock(&c->lock);
			return;
		}
	pthread_mutex_unlock(&c->lock);
	ent_name(id, name);
	unlinkat(c->dfd, name, 0);
}

void pcache_stats(struct pcache *c, uint64_t *fetched, uint64_t *hit)
{
	pthread_mutex_lock(&c->lock);
	*fetched = c->fetched;
	*hit = c->hit;
	pthread_mutex_unlock(&c->lock);
}
