/*
 * store.c - the store facade: create/open/close, config, the writer lock, pack reader
 * fds, chunk appends with the pending set, inode/directory/content reads.
 *
 * Transactions and the commit protocol live in store_txn.c; the rebuild of the index
 * from packs in store_recover.c. The on-disk format is described in
 * docs/ARCHITECTURE.md; pack records in pack.h; index values in enc.h.
 *
 * Threads: see store.h. wlock guards the writer state (pending chunks, dirty packs);
 * packs_lock guards the reader fd cache. Lock order: wlock before packs_lock.
 * Errors: 0/-errno as in store.h; every failure is logged once here with its path.
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enc.h"
#include "log.h"
#include "pcache.h"
#include "sio.h"
#include "store_int.h"

void store_create_opts_default(struct store_create_opts *o)
{
	memset(o, 0, sizeof(*o));
	cdc_params_default(&o->cdc);
	o->zstd_level = 3;
	o->pack_target = 64ull << 20;
	o->inline_max = 2048;
	o->keep_checkpoints = 3;
}

const char *store_dir(const struct store *st)
{
	return st->dir;
}

const struct store_create_opts *store_params(const struct store *st)
{
	return &st->params;
}

const char *store_id_hex(const struct store *st)
{
	return st->id_hex;
}

/* ---- config ------------------------------------------------------------------- */

/* The backend lines of a version 2 config (a store whose packs are remote). */
static int config_render_backend(const struct store_create_opts *o, struct dfs_buf *out)
{
	char text[1024];
	int n = snprintf(text, sizeof(text),
			 "packs %s\n"
			 "s3_endpoint %s\n"
			 "s3_addressing %s\n"
			 "%s%s%s"
			 "%s%s%s",
			 o->packs, o->s3_endpoint, o->s3_vhost ? "vhost" : "path",
			 o->s3_region[0] ? "s3_region " : "", o->s3_region,
			 o->s3_region[0] ? "\n" : "",
			 o->s3_credentials[0] ? "s3_credentials " : "", o->s3_credentials,
			 o->s3_credentials[0] ? "\n" : "");

	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return dfs_buf_append(out, text, (size_t)n);
}

static int config_render(const char *id_hex, const struct store_create_opts *o,
			 struct dfs_buf *out)
{
	char text[1024];
	int n = snprintf(text, sizeof(text),
			 "defragfs-store %d\n"
			 "id %s\n"
			 "hash sha256\n"
			 "checksum xxh3-64\n"
			 "chunker fastcdc\n"
			 "cdc_min %" PRIu32 "\n"
			 "cdc_avg %" PRIu32 "\n"
			 "cdc_max %" PRIu32 "\n"
			 "cdc_norm %" PRIu32 "\n"
			 "cdc_tar_floor %" PRIu32 "\n"
			 "codec zstd\n"
			 "zstd_level %d\n"
			 "pack_target %" PRIu64 "\n"
			 "inline_max %" PRIu32 "\n"
			 "keep_checkpoints %" PRIu32 "\n",
			 o->packs[0] ? STORE_CONFIG_VERSION_REMOTE : STORE_CONFIG_VERSION,
			 id_hex, o->cdc.min_size, o->cdc.avg_size,
			 o->cdc.max_size, o->cdc.norm_level, o->cdc.tar_floor, o->zstd_level,
			 o->pack_target, o->inline_max, o->keep_checkpoints);

	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	dfs_buf_clear(out);
	n = dfs_buf_append(out, text, (size_t)n);
	return n < 0 || !o->packs[0] ? n : config_render_backend(o, out);
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -EBADMSG : 0;
}

/* A backend line of a version 2 config into @o; 1 if @key is not one. */
static int config_parse_backend(const char *key, const char *val, struct store_create_opts *o)
{
	char *to;
	size_t cap;

	if (strcmp(key, "s3_addressing") == 0) {
		if (strcmp(val, "path") != 0 && strcmp(val, "vhost") != 0)
			return -EPROTONOSUPPORT;
		o->s3_vhost = strcmp(val, "vhost") == 0;
		return 0;
	}
	if (strcmp(key, "packs") == 0) {
		if (strncmp(val, "s3://", 5) != 0)
			return -EPROTONOSUPPORT;	/* a backend we do not know */
		to = o->packs, cap = sizeof(o->packs);
	} else if (strcmp(key, "s3_endpoint") == 0) {
		to = o->s3_endpoint, cap = sizeof(o->s3_endpoint);
	} else if (strcmp(key, "s3_region") == 0) {
		to = o->s3_region, cap = sizeof(o->s3_region);
	} else if (strcmp(key, "s3_credentials") == 0) {
		to = o->s3_credentials, cap = sizeof(o->s3_credentials);
	} else {
		return 1;
	}
	if (!val[0] || strlen(val) >= cap)
		return -EBADMSG;
	memcpy(to, val, strlen(val) + 1);
	return 0;
}

/* Strict: every line known, every value valid. -EPROTONOSUPPORT: an unknown version,
 * algorithm, backend or numeric setting (a newer build's); -EBADMSG otherwise. */
int store_config_parse(const uint8_t *p, size_t n, char id_hex[33], struct store_create_opts *o)
{
	char line[512];
	size_t i = 0;
	int version = -1, seen = 0;

	memset(o, 0, sizeof(*o));
	id_hex[0] = '\0';
	while (i < n) {
		size_t j = i, len;
		char *val;
		uint64_t v = 0;

		while (j < n && p[j] != '\n')
			j++;
		len = j - i;
		if (len >= sizeof(line) || j == n)
			return -EBADMSG;
		memcpy(line, p + i, len);
		line[len] = '\0';
		i = j + 1;
		val = strchr(line, ' ');
		if (!val)
			return -EBADMSG;
		*val++ = '\0';
		if (strcmp(line, "defragfs-store") == 0) {
			if (parse_u64(val, &v) < 0)
				return -EBADMSG;
			version = (int)v;
			if (version != STORE_CONFIG_VERSION &&
			    version != STORE_CONFIG_VERSION_REMOTE)
				return -EPROTONOSUPPORT;
			continue;
		}
		if (version < 0)
			return -EBADMSG;
		if (version == STORE_CONFIG_VERSION_REMOTE) {
			int brc = config_parse_backend(line, val, o);

			if (brc <= 0) {
				if (brc < 0)
					return brc;
				seen++;
				continue;
			}
		}
		if (strcmp(line, "id") == 0) {
			if (strlen(val) != 32)
				return -EBADMSG;
			memcpy(id_hex, val, 33);
		} else if (strcmp(line, "hash") == 0) {
			if (strcmp(val, "sha256") != 0)
				return -EPROTONOSUPPORT;
		} else if (strcmp(line, "checksum") == 0) {
			if (strcmp(val, "xxh3-64") != 0)
				return -EPROTONOSUPPORT;
		} else if (strcmp(line, "chunker") == 0) {
			if (strcmp(val, "fastcdc") != 0)
				return -EPROTONOSUPPORT;
		} else if (strcmp(line, "codec") == 0) {
			if (strcmp(val, "zstd") != 0)
				return -EPROTONOSUPPORT;
		} else {
			if (parse_u64(val, &v) < 0)
				return -EBADMSG;
			if (strcmp(line, "cdc_min") == 0)
				o->cdc.min_size = (uint32_t)v;
			else if (strcmp(line, "cdc_avg") == 0)
				o->cdc.avg_size = (uint32_t)v;
			else if (strcmp(line, "cdc_max") == 0)
				o->cdc.max_size = (uint32_t)v;
			else if (strcmp(line, "cdc_norm") == 0)
				o->cdc.norm_level = (uint32_t)v;
			else if (strcmp(line, "cdc_tar_floor") == 0 && v <= UINT32_MAX)
				o->cdc.tar_floor = (uint32_t)v;
			else if (strcmp(line, "zstd_level") == 0)
				o->zstd_level = (int)v;
			else if (strcmp(line, "pack_target") == 0)
				o->pack_target = v;
			else if (strcmp(line, "inline_max") == 0)
				o->inline_max = (uint32_t)v;
			else if (strcmp(line, "keep_checkpoints") == 0)
				o->keep_checkpoints = (uint32_t)v;
			else	/* a setting a newer build added (cdc_tar_floor was one) */
				return -EPROTONOSUPPORT;
		}
		seen++;
	}
	/* version 2 is a remote backend's: its place is given */
	if (version == STORE_CONFIG_VERSION_REMOTE && (!o->packs[0] || !o->s3_endpoint[0]))
		return -EBADMSG;
	if (version < 0 || !id_hex[0] || cdc_params_check(&o->cdc) < 0 || o->zstd_level < 1 ||
	    o->zstd_level > CODEC_MAX_LEVEL || o->pack_target < (1u << 20) ||
	    o->inline_max > 65536)
		return -EBADMSG;
	(void)seen;
	return 0;
}

static int read_file(const char *path, struct dfs_buf *out, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	ssize_t n;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || (size_t)sb.st_size > max) {
		rc = fstat(fd, &sb) < 0 ? -errno : -EBADMSG;
		goto out_close;
	}
	dfs_buf_clear(out);
	rc = dfs_buf_reserve(out, (size_t)sb.st_size);
	if (rc < 0)
		goto out_close;
	n = sio_pread(fd, out->data, (size_t)sb.st_size, 0);
	if (n < 0) {
		rc = (int)n;
		goto out_close;
	}
	out->len = (size_t)n;
out_close:
	close(fd);
	return rc;
}

/* Writes @data to @path atomically: temp file, fsync, rename, fsync of the directory. */
int store_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = sio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return fd;
	rc = sio_commit_tmp(fd, sio_pwrite(fd, data, len, 0), tmp, path);
	if (rc < 0)
		dfs_err("%s: %s", path, dfs_strerror(rc));
	return rc;
}

static int mkdir_sync(const char *path, mode_t mode)
{
	int rc = sio_mkdir(path, mode);

	if (rc == -EEXIST)
		return 0;
	if (rc == 0)
		rc = sio_fsync_dir(path);
	if (rc == 0) {
		/* the new entry in the parent */
		char parent[PATH_MAX];
		const char *slash = strrchr(path, '/');

		if (slash && (size_t)(slash - path) < sizeof(parent)) {
			memcpy(parent, path, (size_t)(slash - path));
			parent[slash - path] = '\0';
			rc = sio_fsync_dir(parent[0] ? parent : "/");
		}
	}
	return rc;
}

static int remote_backend_prepare(const char *dir, const struct store_create_opts *o);

static int store_create(const char *dir, const struct store_create_opts *o)
{
	struct store_create_opts def;
	struct dfs_buf cfg;
	uint8_t rnd[16];
	char id_hex[33], path[PATH_MAX];
	int rc;

	if (!o) {
		store_create_opts_default(&def);
		o = &def;
	}
#ifdef DFS_TEST_FAULTS
	/* DFS_FAULT_PACK_TARGET=BYTES (>= 1 MiB): packs sealed by size with a few MiB */
	if (getenv("DFS_FAULT_PACK_TARGET")) {
		def = *o;
		def.pack_target = strtoull(getenv("DFS_FAULT_PACK_TARGET"), NULL, 10);
		if (def.pack_target < (1u << 20))
			def.pack_target = 1u << 20;
		o = &def;
	}
#endif
	if (cdc_params_check(&o->cdc) < 0 || o->zstd_level < 1 ||
	    o->zstd_level > CODEC_MAX_LEVEL) {
		dfs_err("%s: invalid store parameters (chunk sizes or zstd level 1..%d)", dir,
			CODEC_MAX_LEVEL);
		return -EINVAL;
	}
	if (o->packs[0]) {
		rc = remote_backend_prepare(dir, o);
		if (rc < 0)
			return rc;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	for (int i = 0; i < 16; i++)
		snprintf(id_hex + 2 * i, 3, "%02x", rnd[i]);
	rc = mkdir_sync(dir, 0700);
	if (rc < 0) {
		dfs_err("%s: cannot create the store: %s", dir, dfs_strerror(rc));
		return rc;
	}
	chmod(dir, 0700);
	snprintf(path, sizeof(path), "%s/packs", dir);
	rc = mkdir_sync(path, 0700);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/checkpoints", dir);
		rc = mkdir_sync(path, 0700);
	}
	if (rc < 0) {
		dfs_err("%s: %s", path, dfs_strerror(rc));
		return rc;
	}
	dfs_buf_init(&cfg, 4096);
	rc = config_render(id_hex, o, &cfg);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/config", dir);
		rc = store_write_file_atomic(path, cfg.data, cfg.len);
	}
	dfs_buf_release(&cfg);
	return rc;
}

/* ---- the writer lock ------------------------------------------------------------ */

static int64_t lock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The holder's line in STORE/lock: "PID\n", or "PID brief\n" for a brief holder. */
static bool lock_holder(int fd, char *pid, size_t size)
{
	char line[64];
	int n = (int)pread(fd, line, sizeof(line) - 1, 0);
	bool brief;

	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	brief = strstr(line, " brief") != NULL;
	line[strcspn(line, " ")] = '\0';
	if (!line[0])
		snprintf(line, sizeof(line), "unknown");
	line[size - 1 < sizeof(line) - 1 ? size - 1 : sizeof(line) - 1] = '\0';
	memcpy(pid, line, strlen(line) + 1);
	return brief;
}

int store_writer_lock(const char *dir, bool brief, int *fd_out)
{
	char path[PATH_MAX], pid[32];
	int64_t start = lock_now_ms();
	bool said = false;
	int fd, n;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		dfs_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	for (;;) {
		int64_t waited;
		bool held_brief;

		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK) {
			int rc = -errno;

			dfs_err("%s: cannot lock: %s", path, strerror(-rc));
			close(fd);
			return rc;
		}
		/*
		 * Held. A brief holder is waited for; another one fails the open after a
		 * grace that covers a new holder's flock-to-write window (its line not yet
		 * written, or still the previous holder's).
		 */
		held_brief = lock_holder(fd, pid, sizeof(pid));
		waited = lock_now_ms() - start;
		if ((!held_brief && waited >= STORE_LOCK_GRACE_MS) ||
		    waited >= STORE_LOCK_BRIEF_WAIT_MS) {
			dfs_err("%s: the store is in use by another writer (pid %s)", dir, pid);
			close(fd);
			return -EWOULDBLOCK;
		}
		if (held_brief && !said && waited >= 1000) {
			dfs_warn("%s: waiting for pid %s, which records a result in the store",
				 dir, pid);
			said = true;
		}
		usleep(20 * 1000);
	}
	n = snprintf(pid, sizeof(pid), "%ld%s\n", (long)getpid(), brief ? " brief" : "");
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) < 0) {
		/* the line is what waiters read: without it they fail after the grace */
	}
	*fd_out = fd;
	return 0;
}

/* ---- pack fds for readers ------------------------------------------------------ */

int store_pack_fd_get(struct store *st, uint32_t id, int *fd)
{
	char path[PATH_MAX];
	struct pack_slot *victim = NULL;
	int nfd, rc;

	pthread_mutex_lock(&st->packs_lock);
	for (unsigned i = 0; i < st->npacks; i++) {
		struct pack_slot *s = &st->packs[i];

		if (s->fd >= 0 && s->id == id) {
			s->refs++;
			s->tick = ++st->tick;
			*fd = s->fd;
			pthread_mutex_unlock(&st->packs_lock);
			return 0;
		}
		if (s->refs == 0 && (!victim || s->fd < 0 || (victim->fd >= 0 &&
							    s->tick < victim->tick)))
			victim = s;
	}
	if (!victim) {
		pthread_mutex_unlock(&st->packs_lock);
		return -EMFILE;
	}
	rc = pack_path(st->dir, id, path, sizeof(path));
	nfd = rc < 0 ? rc : open(path, O_RDONLY | O_CLOEXEC);
	if (nfd < 0) {
		rc = rc < 0 ? rc : -errno;
		pthread_mutex_unlock(&st->packs_lock);
		if (rc == -ENOENT && st->pc)
			return rc;	/* not staged: the remote backend has it */
		/* a reader behind the writer may ask for a pack a gc removed: its caller
		 * catches up and looks again (store_chunk_read), and says it if that fails */
		if (rc == -ENOENT && st->mode == STORE_READER)
			dfs_info("pack %08" PRIx32 ": %s is gone (rewritten by a gc?)", id, path);
		else
			dfs_err("pack %08" PRIx32 ": cannot open %s: %s", id, path,
				dfs_strerror(rc));
		return rc;
	}
	if (victim->fd >= 0)
		close(victim->fd);
	victim->fd = nfd;
	victim->id = id;
	victim->refs = 1;
	victim->tick = ++st->tick;
	*fd = nfd;
	pthread_mutex_unlock(&st->packs_lock);
	return 0;
}

void store_pack_fd_put(struct store *st, uint32_t id)
{
	pthread_mutex_lock(&st->packs_lock);
	for (unsigned i = 0; i < st->npacks; i++) {
		if (st->packs[i].fd >= 0 && st->packs[i].id == id && st->packs[i].refs) {
			st->packs[i].refs--;
			break;
		}
	}
	pthread_mutex_unlock(&st->packs_lock);
}

/* ---- packs through the backend (pback.h) ------------------------------------------ */

/*
 * A remote pack's bytes, through the pack cache. Every failure is -EIO to the caller but
 * -EBADMSG (the object is shorter than it said: damaged) and -ENOENT; the backend logs
 * an unreachable server once, until it answers again.
 */
static ssize_t remote_pread(void *arg, uint32_t id, void *buf, size_t len, uint64_t off)
{
	struct store *st = arg;
	ssize_t n = pcache_read(st->pc, id, buf, len, off);

	return n >= 0 || n == -EBADMSG || n == -ENOENT ? n : -EIO;
}

int store_pack_src_get(struct store *st, uint32_t id, struct pack_src *src)
{
	uint64_t size;
	int fd, rc;

	*src = (struct pack_src){ .fd = -1, .id = id };
	rc = store_pack_fd_get(st, id, &fd);
	if (rc == 0) {
		src->fd = fd;
		return 0;
	}
	if (rc != -ENOENT || !st->pc)
		return rc;
	/* -ENOENT: not on the backend either (the caller says it, as of a local pack) */
	rc = pcache_size(st->pc, id, &size);
	if (rc < 0)
		return rc == -ENOENT ? rc : -EIO;
	src->pread = remote_pread;
	src->arg = st;
	return 0;
}

void store_pack_src_put(struct store *st, const struct pack_src *src)
{
	if (src->fd >= 0)
		store_pack_fd_put(st, src->id);
}

int store_pack_size(struct store *st, uint32_t id, uint64_t *size)
{
	int rc = pback_stat(st->stage, id, size);

	if (rc == -ENOENT && st->pc)
		rc = pcache_size(st->pc, id, size);
	return rc;
}

int store_pack_remove(struct store *st, uint32_t id)
{
	int rc = -ENOENT, lrc;

	if (st->pb != st->stage) {
		rc = pback_del(st->pb, id);
		if (st->pc)
			pcache_drop(st->pc, id);
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	lrc = pback_del(st->stage, id);
	if (lrc < 0 && lrc != -ENOENT)
		return lrc;
	return rc == 0 || lrc == 0 ? 0 : -ENOENT;
}

int store_pack_put(struct store *st, uint32_t id, uint64_t len)
{
	char path[PATH_MAX];
	int rc = pack_path(st->dir, id, path, sizeof(path));

	if (rc == 0)
		rc = pback_put(st->pb, id, path, len);
	if (rc < 0)
		dfs_err("pack %08" PRIx32 ": cannot put it on the %s backend: %s", id,
			st->pb->ops->name, dfs_strerror(rc));
	return rc;
}

void store_pack_unstage(struct store *st, uint32_t id)
{
	int rc = pback_del(st->stage, id);

	if (rc < 0 && rc != -ENOENT)
		dfs_warn("pack %08" PRIx32 ": cannot remove its staged copy (it is on the %s "
			 "backend): %s; the next writer removes it", id, st->pb->ops->name,
			 dfs_strerror(rc));
}

/* The remote backend of a config's backend lines (@o->packs set). */
static int remote_backend_new(const struct store_create_opts *o, struct pback **out)
{
	struct pback_s3_conf c = {
		.url = o->packs,
		.endpoint = o->s3_endpoint,
		.vhost = o->s3_vhost,
		.region = o->s3_region[0] ? o->s3_region : NULL,
		.credentials = o->s3_credentials[0] ? o->s3_credentials : NULL,
	};

	return pback_s3_new(&c, out);
}

static int note_any(void *arg, uint32_t id, uint64_t size)
{
	(void)id, (void)size;
	*(bool *)arg = true;
	return 1;
}

/*
 * A new store's remote backend: reachable with these credentials, its bucket made, and
 * no packs at its place yet (another store's would be overwritten: pack ids restart).
 */
static int remote_backend_prepare(const char *dir, const struct store_create_opts *o)
{
	struct pback *pb;
	bool any = false;
	int rc = remote_backend_new(o, &pb);

	if (rc == 0)
		rc = pback_s3_make_bucket(pb);
	if (rc == 0)
		rc = pback_list(pb, note_any, &any);
	if (rc == 1 || any) {
		dfs_err("%s: %s already holds packs (another store's?): a new store needs a "
			"place of its own", dir, o->packs);
		rc = -EEXIST;
	} else if (rc < 0) {
		dfs_err("%s: cannot use %s: %s", dir, o->packs, dfs_strerror(rc));
	}
	pback_free(pb);
	return rc;
}

#define PCACHE_STALE_SECS 60

/*
 * Removes the private pack caches (STORE/pcache.XXXXXX) of tools that ended without
 * closing the store (a crash, a kill -9): each is flock()ed by its owner while the store
 * is open, so one whose lock can be taken, and whose directory is older than
 * PCACHE_STALE_SECS (an owner between its mkdtemp and its flock), is nobody's.
 */
static void remove_stale_caches(struct store *st)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(st->dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat sb;
		int fd;

		if (strncmp(de->d_name, "pcache.", 7) != 0 || strlen(de->d_name) != 13 ||
		    snprintf(path, sizeof(path), "%s/%s", st->dir, de->d_name) >= (int)sizeof(path) ||
		    !strcmp(path, st->pc_private))
			continue;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &sb) == 0 && sb.st_mtime + PCACHE_STALE_SECS < time(NULL) &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0) {
			sio_remove_tree(path);
			dfs_info("%s: removed a pack cache its tool left (it ended without "
				 "closing the store)", path);
		}
		close(fd);
	}
	closedir(d);
}

/* The backend the config names, and the pack cache of a remote one. */
static int open_backend(struct store *st, const struct store_open_opts *o)
{
	char path[PATH_MAX];
	int rc = pback_local_new(st->dir, &st->stage);

	if (rc < 0)
		return rc;
	if (!st->params.packs[0]) {
		st->pb = st->stage;
		return 0;
	}
	rc = remote_backend_new(&st->params, &st->pb);
	if (rc < 0)
		return rc;
	if (o->pack_cache) {
		if (snprintf(path, sizeof(path), "%s/%s", o->pack_cache, st->id_hex) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		if (mkdir(o->pack_cache, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			dfs_err("pack cache %s: %s", o->pack_cache, strerror(-rc));
			return rc;
		}
	} else {
		/* private: STORE/pcache.XXXXXX, flock()ed while open, removed at close */
		if (snprintf(path, sizeof(path), "%s/pcache.XXXXXX", st->dir) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		if (!mkdtemp(path))
			return -errno;
		st->pc_private = strdup(path);
		if (!st->pc_private)
			return -ENOMEM;
		st->pc_lock_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (st->pc_lock_fd < 0 || flock(st->pc_lock_fd, LOCK_EX) < 0)
			return -errno;
		remove_stale_caches(st);
	}
	rc = pcache_open(path, o->pack_cache_size ? o->pack_cache_size : 1ull << 30, st->pb,
			 &st->pc);
	if (rc < 0)
		dfs_err("pack cache %s: %s", path, dfs_strerror(rc));
	return rc;
}

/* ---- open / close ---------------------------------------------------------------- */

int store_read_meta_u64(struct store *st, const char *key, uint64_t *val)
{
	int rc = store_get_meta_u64(st, key, val);

	if (rc == -ENOENT)
		*val = 0;
	return rc == -ENOENT ? 0 : rc;
}

/*
 * Calls @fn for each pack the index records, with its committed length, in id order; a
 * malformed record is logged and counted in *@bad (if not NULL). A non-zero return of
 * @fn stops the walk and is returned.
 */
static int each_pack(struct store *st, int (*fn)(void *arg, uint32_t id, uint64_t committed),
		     void *arg, uint64_t *bad)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc;

	rc = idx_iter_new(st->ix, NULL, IDX_PACKS, "", 0, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		uint64_t committed;
		bool sealed;

		if (kl != 4 || dec_pack_val(v, vl, &committed, &sealed) < 0) {
			dfs_err("index: bad pack record");
			if (bad)
				(*bad)++;
			continue;
		}
		rc = fn(arg, dfs_get_be32(k), committed);
		if (rc)
			break;
	}
	idx_iter_free(it);
	return rc;
}

/*
 * The highest commit sequence number among the META records of pack @id from @off on
 * (0: the records start after the pack header), into *@seq (0 if none). Walks record
 * headers, reading only META payloads (to check them); a torn or bad record ends the walk
 * quietly, as a crash leaves one.
 */
static int pack_max_meta_seq(const char *store_dir, uint32_t id, uint64_t off, uint64_t *seq)
{
	char path[PATH_MAX];
	uint8_t hdr[PACK_REC_HDR];
	struct dfs_buf payload;
	struct pack_rec r;
	int fd, rc = 0;

	*seq = 0;
	pack_path(store_dir, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (off == 0) {
		uint32_t hid;

		struct pack_src src = pack_src_fd(fd);

		if (pack_header_read(&src, &hid, &off, NULL) < 0) {
			close(fd);
			return 0;	/* no whole header: no record either */
		}
	}
	dfs_buf_init(&payload, PACK_REC_MAX);
	for (;;) {
		ssize_t n = pread(fd, hdr, sizeof(hdr), (off_t)off);

		if (n < 0) {
			rc = -errno;
			break;
		}
		if ((size_t)n < sizeof(hdr) || pack_rec_decode(hdr, &r) < 0)
			break;
		if (r.type == PACK_REC_META) {
			dfs_buf_clear(&payload);
			rc = dfs_buf_reserve(&payload, r.stored_len);
			if (rc < 0)
				break;
			n = pread(fd, payload.data, r.stored_len, (off_t)(off + PACK_REC_HDR));
			if (n != (ssize_t)r.stored_len || !pack_rec_check(hdr, payload.data, n))
				break;
			if (pack_meta_seq(&r) > *seq)
				*seq = pack_meta_seq(&r);
		}
		off += PACK_REC_HDR + r.stored_len;
	}
	dfs_buf_release(&payload);
	close(fd);
	return rc;
}

/*
 * Is the index older than the packs? A crash leaves at most one commit the index does
 * not know (sequence commit_seq + 1, in a pack's tail or in packs the index never
 * recorded); a later one means the index was put back from an older copy (a checkpoint),
 * and a writer on it would reuse the later commits' sequence numbers, after which
 * defrag-recover could not order the two histories. So the writer refuses.
 */
static int stale_index(const struct store *st, uint32_t id, uint64_t seq)
{
	if (seq < st->commit_seq + 2)
		return 0;
	dfs_err("pack %08" PRIx32 " holds commit %" PRIu64 ", and the index knows commits up "
		"to %" PRIu64 " only: the index is older than the packs (an old checkpoint or "
		"copy put in place?). Nothing was changed. Run defrag-recover to rebuild the "
		"index from the packs.", id, seq, st->commit_seq);
	return -ESTALE;
}

/*
 * Writer start-up: bytes past a pack's committed length were never named by the index
 * (a crash between append and commit); cut them. A pack shorter than its committed
 * length lost committed data: say so loudly, never write to it again. This is one pack.
 */
static int fix_pack_local(struct store *st, uint32_t id, uint64_t committed);

/*
 * Is pack @id (@committed bytes) the one a remote store's writer goes on appending to:
 * the newest the index records, not sealed, smaller than STORE_REMOTE_OPEN_MAX?
 */
static bool remote_reopenable(struct store *st, uint32_t id, uint64_t committed)
{
	struct dfs_buf v;
	uint8_t key[4];
	uint64_t len;
	bool sealed = true;

	uint64_t size;

	if (committed >= STORE_REMOTE_OPEN_MAX || id + 1 != st->next_pack ||
	    pback_stat(st->stage, id + 1, &size) != -ENOENT)
		return false;	/* (a staged pack after it: the next writer's to adopt) */
	dfs_put_be32(key, id);
	dfs_buf_init(&v, 64);
	if (idx_get(st->ix, IDX_PACKS, key, sizeof(key), &v) < 0 ||
	    dec_pack_val(v.data, v.len, &len, &sealed) < 0)
		sealed = true;
	dfs_buf_release(&v);
	return !sealed;
}

/*
 * Writer start-up, remote backend: a committed pack still staged was put and confirmed
 * before its commit (store_txn_commit), and the writer stopped before it removed the
 * staged copy. It is checked on the backend (put again if it holds another size) and
 * removed; kept if the backend lacks it.
 */
static int fix_remote_pack(struct store *st, uint32_t id, uint64_t committed)
{
	uint64_t size;
	bool keep;
	int rc = pback_stat(st->stage, id, &size);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (size > committed) {
		/* the newest pack, kept open (store_txn.c): records past its committed length
		 * (a crash before the commit that would have named them; the server may hold
		 * them too, put before that crash) are cut, and the server's copy put back to
		 * the committed bytes */
		rc = fix_pack_local(st, id, committed);
		if (rc < 0)
			return rc;
		rc = store_pack_put(st, id, committed);
		if (rc < 0)
			return rc;
		size = committed;
	}
	if (size != committed) {
		dfs_err("pack %08" PRIx32 ": the staged copy has %" PRIu64 " bytes, %" PRIu64
			" committed: left as it is; run defrag-verify", id, size, committed);
		return 0;
	}
	rc = pback_stat(st->pb, id, &size);
	if (rc == -ENOENT) {
		/* a pull cut short (it deletes objects before it switches the config), or
		 * an object deleted on the server: the staged copy is the pack now */
		dfs_warn("pack %08" PRIx32 ": committed and not on the %s backend; its copy in "
			 "%s/packs is kept (defrag-store pull or push finishes the move)", id,
			 st->pb->ops->name, st->dir);
		return 0;
	}
	if (rc == 0 && size != committed)
		rc = store_pack_put(st, id, committed);
	if (rc < 0)
		return rc;
	keep = remote_reopenable(st, id, committed);
	if (!keep)
		store_pack_unstage(st, id);
	return 0;
}

static int fix_pack(void *arg, uint32_t id, uint64_t committed)
{
	struct store *st = arg;

	if (st->pb != st->stage)
		return fix_remote_pack(st, id, committed);
	return fix_pack_local(st, id, committed);
}

static int fix_pack_local(struct store *st, uint32_t id, uint64_t committed)
{
	char path[PATH_MAX];
	struct stat sb;
	int fd, rc;

	pack_path(st->dir, id, path, sizeof(path));
	if (stat(path, &sb) < 0) {
		dfs_err("pack %08" PRIx32 ": missing (%s): its chunks are lost; run "
			"defrag-verify", id, path);
		return 0;
	}
	if ((uint64_t)sb.st_size < committed) {
		dfs_err("pack %08" PRIx32 ": shorter (%lld) than its committed length "
			"(%" PRIu64 "): data was lost; run defrag-verify",
			id, (long long)sb.st_size, committed);
		return 0;
	}
	if ((uint64_t)sb.st_size == committed)
		return 0;
	{
		uint64_t seq;

		rc = pack_max_meta_seq(st->dir, id, committed, &seq);
		if (rc == 0)
			rc = stale_index(st, id, seq);
		if (rc < 0)
			return rc;
	}
	fd = sio_open(path, O_WRONLY, 0);
	if (fd < 0)
		return fd;
	rc = sio_ftruncate(fd, (off_t)committed);
	if (rc == 0)
		rc = sio_fdatasync(fd);
	sio_close(fd);
	if (rc < 0) {
		dfs_err("pack %08" PRIx32 ": cannot cut uncommitted bytes: %s", id,
			dfs_strerror(rc));
		return rc;
	}
	dfs_info("pack %08" PRIx32 ": cut %lld uncommitted bytes", id,
		 (long long)((uint64_t)sb.st_size - committed));
	return 0;
}

/* What the writer's start-up learns from the pack files there are (one walk). */
struct pack_scan {
	struct store *st;
	bool check;	/* stale_index() for packs the index does not know yet */
	uint32_t max_id;
	bool any;
	uint32_t *unnamed;	/* packs no commit names (never committed: removed) */
	size_t nunnamed, cap;
	bool any_meta;		/* one of them holds a commit's META record */
};

static bool pack_known(struct store *st, uint32_t id)
{
	struct dfs_buf v;
	uint8_t key[4];
	int rc;

	dfs_put_be32(key, id);
	dfs_buf_init(&v, 64);
	rc = idx_get(st->ix, IDX_PACKS, key, sizeof(key), &v);
	dfs_buf_release(&v);
	return rc != -ENOENT;	/* an error counts as known: never removed */
}

static int scan_pack_file(void *arg, uint32_t id, uint64_t size)
{
	struct pack_scan *ps = arg;
	uint64_t seq;
	int rc;

	(void)size;
	if (!ps->any || id > ps->max_id)
		ps->max_id = id;
	ps->any = true;
	/* a pack the index does not record: a crashed or interrupted run's, whose commit
	 * never happened (each commit records every pack it wrote to), or (refused) a later
	 * commit's of an index put back from an older copy */
	if (!ps->check || pack_known(ps->st, id))
		return 0;
	rc = pack_max_meta_seq(ps->st->dir, id, 0, &seq);
	if (rc == 0)
		rc = stale_index(ps->st, id, seq);
	if (rc < 0)
		return rc;
	if (seq)
		ps->any_meta = true;
	if (ps->nunnamed == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 8;
		uint32_t *v = realloc(ps->unnamed, cap * sizeof(*v));

		if (!v)
			return 0;	/* kept: removed by a later open */
		ps->unnamed = v;
		ps->cap = cap;
	}
	ps->unnamed[ps->nunnamed++] = id;
	return 0;
}

static int adopt_staged(struct store *st, uint32_t id, bool *adopted);

static int id_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Removes the pack files of @ps->unnamed (the whole pack is uncommitted bytes). Not when
 * the index has no commit while a pack holds one: that index replaced a lost one (a
 * writer creates a missing index), and the packs are defrag-recover's to read.
 * A remote store first adopts each one that is whole (adopt_staged): it is put, and the
 * next commit names it and its chunks, so the rerun does not store them again.
 */
static int remove_unnamed(struct pack_scan *ps)
{
	if (ps->st->commit_seq == 0 && ps->any_meta) {
		dfs_warn("%s: the index has no commit, and the packs hold some: they are kept "
			 "(run defrag-recover if the index was lost)", ps->st->dir);
		return 0;
	}
	if (ps->nunnamed)
		qsort(ps->unnamed, ps->nunnamed, sizeof(*ps->unnamed), id_cmp);
	for (size_t i = 0; i < ps->nunnamed; i++) {
		struct pback *pb = ps->st->pb;
		bool adopted = false;
		uint64_t size;
		int rc;

		if (pb != ps->st->stage) {
			rc = adopt_staged(ps->st, ps->unnamed[i], &adopted);
			if (rc < 0)
				return rc;
			if (adopted)
				continue;
		}

		/* put, maybe, before the crash that kept its commit from happening */
		if (pb != ps->st->stage) {
			rc = pback_del(pb, ps->unnamed[i]);
			if (rc < 0 && rc != -ENOENT) {
				dfs_err("pack %08" PRIx32 ": cannot remove it from the %s backend "
					"(no commit names it): %s", ps->unnamed[i],
					pb->ops->name, dfs_strerror(rc));
				return rc;
			}
		}
		if (pback_stat(ps->st->stage, ps->unnamed[i], &size) < 0)
			continue;
		rc = pback_del(ps->st->stage, ps->unnamed[i]);
		if (rc < 0) {
			dfs_err("pack %08" PRIx32 ": cannot remove it (no commit names it): %s",
				ps->unnamed[i], dfs_strerror(rc));
			return rc;
		}
		dfs_info("pack %08" PRIx32 ": removed %lld uncommitted bytes (no commit names "
			 "it)", ps->unnamed[i], (long long)size);
	}
	return 0;
}

struct orphans {
	struct store *st;
	uint32_t *ids;
	size_t n, cap;
};

static int note_orphan(void *arg, uint32_t id, uint64_t size)
{
	struct orphans *o = arg;
	uint64_t ssize;

	(void)size;
	/* ids >= next_pack: not this index's to judge (an index older than the packs) */
	if (id >= o->st->next_pack || pack_known(o->st, id) ||
	    pback_stat(o->st->stage, id, &ssize) == 0)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint32_t *v = realloc(o->ids, cap * sizeof(*v));

		if (!v)
			return 0;	/* the rest is for the next call */
		o->ids = v;
		o->cap = cap;
	}
	o->ids[o->n++] = id;
	return 0;
}

uint64_t store_remove_orphans(struct store *st)
{
	struct orphans o = { .st = st };
	uint64_t removed = 0;
	int rc;

	if (st->pb == st->stage || st->mode != STORE_WRITER)
		return 0;
	rc = pback_list(st->pb, note_orphan, &o);
	if (rc < 0)
		dfs_warn("%s: cannot list the %s backend for objects no pack record names: %s",
			 st->dir, st->pb->ops->name, dfs_strerror(rc));
	for (size_t i = 0; rc == 0 && i < o.n; i++) {
		int drc = pback_del(st->pb, o.ids[i]);

		if (st->pc)
			pcache_drop(st->pc, o.ids[i]);
		if (drc < 0 && drc != -ENOENT)
			dfs_warn("pack %08" PRIx32 ": no pack record names its object, which "
				 "cannot be removed (%s); the next gc tries again", o.ids[i],
				 dfs_strerror(drc));
		else
			removed++;
	}
	if (removed)
		dfs_info("%s: removed %" PRIu64 " objects no pack record names", st->dir,
			 removed);
	free(o.ids);
	return removed;
}

/* The pack the index records last, and whether it may take more records. */
struct last_pack {
	uint32_t id;
	uint64_t committed;
	bool found;
};

static int note_last_pack(void *arg, uint32_t id, uint64_t committed)
{
	struct last_pack *l = arg;

	l->id = id;
	l->committed = committed;
	l->found = true;
	return 0;
}

/*
 * Goes on appending to the newest pack when it is not sealed and has room: a run that
 * stores little (an unchanged re-ingest, a verify that records its result) adds a few
 * records to it instead of a new pack file each time. Its bytes past the committed length
 * were cut by fix_pack. Any failure just leaves it: the next append starts a new pack.
 */
static void reopen_last_pack(struct store *st)
{
	struct last_pack l = { 0 };
	char path[PATH_MAX];
	struct dfs_buf v;
	uint8_t key[4];
	uint64_t committed;
	struct stat sb;
	bool sealed = true;
	int fd;

	/* a remote store's: the newest while small, kept staged (fix_remote_pack), and not
	 * when a pack of a run that stopped was adopted after it (adopt_staged) */
	uint64_t max = st->pb != st->stage ? STORE_REMOTE_OPEN_MAX : st->params.pack_target;

	if (st->pb != st->stage && st->ndirty)
		return;
	if (each_pack(st, note_last_pack, &l, NULL) < 0 || !l.found ||
	    l.committed >= max || l.id + 1 != st->next_pack)
		return;
	dfs_put_be32(key, l.id);
	dfs_buf_init(&v, 64);
	if (idx_get(st->ix, IDX_PACKS, key, sizeof(key), &v) == 0 &&
	    dec_pack_val(v.data, v.len, &committed, &sealed) < 0)
		sealed = true;
	dfs_buf_release(&v);
	if (sealed)
		return;
	pack_path(st->dir, l.id, path, sizeof(path));
	if (stat(path, &sb) < 0 || (uint64_t)sb.st_size != l.committed)
		return;
	if (st->ndirty == st->cap_dirty) {
		struct dirty_pack *d = realloc(st->dirty, 8 * sizeof(*d));

		if (!d)
			return;
		st->dirty = d;
		st->cap_dirty = 8;
	}
	fd = sio_open(path, O_RDWR, 0);
	if (fd < 0)
		return;
	st->dirty[st->ndirty++] = (struct dirty_pack){
		.id = l.id, .fd = fd, .len = l.committed, .put_len = l.committed };
}

static int writer_fix_packs(struct store *st, bool rebuilding)
{
	struct pack_scan ps = { .st = st, .check = !rebuilding };
	int rc = pback_list(st->stage, scan_pack_file, &ps);

	if (rc == 0)
		rc = each_pack(st, fix_pack, st, NULL);
	if (rc == 0)
		rc = remove_unnamed(&ps);
	free(ps.unnamed);
	if (rc < 0)
		return rc;
	if (!rebuilding)
		reopen_last_pack(st);
	/* pack ids are never used twice, not even those of packs removed above */
	if (ps.any && ps.max_id + 1 > st->next_pack)
		st->next_pack = ps.max_id + 1;
	if (st->next_pack == 0)
		st->next_pack = 1;
	return 0;
}

/*
 * A new index is built aside (index.new: every column family created, every file and
 * the directory fsynced), then renamed into place and STORE/ fsynced, so a power cut
 * leaves either no index or a whole one, never a directory RocksDB cannot open (or
 * one that vanishes because its directory entry was never made durable).
 */
static int create_index(const char *dir, size_t block_cache)
{
	char tmp[PATH_MAX], path[PATH_MAX], f[PATH_MAX + 256];
	struct idx *ix;
	struct dirent *de;
	DIR *d;
	int rc;

	snprintf(tmp, sizeof(tmp), "%s/index.new", dir);
	snprintf(path, sizeof(path), "%s/index", dir);
	sio_remove_tree(tmp);	/* left by a crash mid-creation */
	rc = idx_open(tmp, true, NULL, block_cache, &ix);
	if (rc < 0)
		return rc;
	idx_close(ix);
	d = opendir(tmp);
	if (!d)
		return -errno;
	while (rc == 0 && (de = readdir(d))) {
		int fd;

		if (de->d_type != DT_REG)
			continue;
		snprintf(f, sizeof(f), "%s/%s", tmp, de->d_name);
		fd = sio_open(f, O_RDONLY, 0);
		if (fd < 0) {
			rc = fd;
			break;
		}
		rc = sio_fsync(fd);
		sio_close(fd);
	}
	closedir(d);
	if (rc == 0)
		rc = sio_fsync_dir(tmp);
	if (rc == 0)
		rc = sio_rename(tmp, path);
	if (rc == 0)
		rc = sio_fsync_dir(dir);	/* STORE/ itself: the new entry */
	if (rc < 0)
		dfs_err("%s: cannot create the index: %s", path, dfs_strerror(rc));
	return rc;
}

/*
 * A reader keeps every file of the index open (a RocksDB secondary instance needs
 * max_open_files = -1), twice for a moment while live follow replaces its view, beside up
 * to max_open_packs packs; a writer keeps up to 512 index files. A large index outgrows
 * the usual soft limit of 1024 open files, so it is raised towards the hard limit (at most
 * 65536: children that close every descriptor up to the limit stay quick). Idempotent.
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= 65536 ||
	    rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		dfs_info("cannot raise the open files limit: %s", strerror(errno));
}

int store_open(const char *dir, const struct store_open_opts *o, struct store **out)
{
	struct store_open_opts defo = { 0 };
	char path[PATH_MAX];
	struct store *st;
	struct stat sb;
	int rc;

	*out = NULL;
	if (!o)
		o = &defo;
	if (strlen(dir) > PATH_MAX - 64)
		return -ENAMETOOLONG;
	raise_nofile();
	snprintf(path, sizeof(path), "%s/config", dir);
	if (stat(path, &sb) < 0) {
		rc = -errno;
		if (rc != -ENOENT || !o->create || o->mode != STORE_WRITER) {
			if (rc == -ENOENT)
				dfs_err("%s: no defragfs store here (no config file)", dir);
			else
				dfs_err("%s: %s", path, strerror(-rc));
			return rc;
		}
		rc = store_create(dir, o->create_opts);
		if (rc < 0)
			return rc;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
	st->pc_lock_fd = -1;
	st->mode = o->mode;
	store_upl_init(st);
	pthread_mutex_init(&st->packs_lock, NULL);
	pthread_mutex_init(&st->wlock, NULL);
	dfs_buf_init(&st->config, PACK_CONFIG_MAX);
	st->dir = strdup(dir);
	st->npacks = o->max_open_packs ? o->max_open_packs : 64;
	st->one_read = o->disk == STORE_DISK_HEAD ? SIZE_MAX : PACK_ONE_READ;
	if (o->disk == STORE_DISK_AUTO) {
		char pd[PATH_MAX];

		snprintf(pd, sizeof(pd), "%s/packs", dir);
		if (sio_rotational(pd) == 1)
			st->one_read = SIZE_MAX;
	}
	st->packs = calloc(st->npacks, sizeof(*st->packs));
	if (!st->dir || !st->packs) {
		rc = -ENOMEM;
		goto out_close;
	}
	for (unsigned i = 0; i < st->npacks; i++)
		st->packs[i].fd = -1;
	rc = read_file(path, &st->config, PACK_CONFIG_MAX);
	if (rc == 0)
		rc = store_config_parse(st->config.data, st->config.len, st->id_hex, &st->params);
	if (rc < 0) {
		dfs_err("%s: %s", path, rc == -EPROTONOSUPPORT
			? "written by a newer defragfs (unknown format version, algorithm or "
			  "setting)"
			: rc == -EBADMSG ? "not a valid store config" : dfs_strerror(rc));
		goto out_close;
	}
	rc = open_backend(st, o);
	if (rc < 0)
		goto out_close;
	if (o->mode == STORE_WRITER) {
		rc = store_writer_lock(st->dir, o->brief, &st->lock_fd);
		if (rc < 0)
			goto out_close;
		snprintf(path, sizeof(path), "%s/index", dir);
		rc = 0;
		if (access(path, F_OK) < 0)
			rc = create_index(dir, o->block_cache);
		if (rc == 0)
			rc = idx_open(path, true, NULL, o->block_cache, &st->ix);
	} else {
		char tmpl[] = "/tmp/defragfs-follow-XXXXXX";

		snprintf(path, sizeof(path), "%s/index", dir);
		if (access(path, F_OK) < 0) {
			rc = -ENOENT;
			dfs_err("%s: the store has no index yet (nothing was ingested); run "
				"defrag-ingest, or defrag-recover if it was lost", dir);
			goto out_close;
		}
		if (!mkdtemp(tmpl)) {
			rc = -errno;
			goto out_close;
		}
		st->secondary_dir = strdup(tmpl);
		rc = st->secondary_dir ? idx_open(path, false, tmpl, o->block_cache, &st->ix)
				       : -ENOMEM;
	}
	if (rc < 0)
		goto out_close;
	if (o->mode == STORE_WRITER) {
		uint64_t v = 0;

		rc = store_read_meta_u64(st, "next_ino", &st->next_ino);
		if (rc == 0 && st->next_ino < STORE_FIRST_INO)
			st->next_ino = STORE_FIRST_INO;
		if (rc == 0)
			rc = store_read_meta_u64(st, "commit_seq", &st->commit_seq);
		if (rc == 0)
			rc = store_read_meta_u64(st, "next_pack", &v);
		st->next_pack = (uint32_t)v;
		if (rc == 0)
			rc = store_read_meta_u64(st, "stat_chunks", &st->stat_chunks);
		if (rc == 0)
			rc = store_read_meta_u64(st, "stat_raw", &st->stat_raw);
		if (rc == 0)
			rc = store_read_meta_u64(st, "stat_stored", &st->stat_stored);
		/* op logs at zstd level 1 whatever the data's: a few MB a commit, whose size
		 * matters little next to the data's, and faster to compress */
		if (rc == 0)
			rc = codec_new(STORE_META_LEVEL, &st->meta_codec);
		if (rc == 0)
			rc = writer_fix_packs(st, o->rebuilding);
		if (rc < 0)
			goto out_close;
	}
	atomic_store(&st->reported_seq, idx_sequence(st->ix));
	*out = st;
	return 0;
out_close:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	store_upl_stop(st);	/* first: the uploader uses the backend and the packs */
	for (size_t i = 0; i < st->ndirty; i++)
		sio_close(st->dirty[i].fd);
	free(st->dirty);
	free(st->pending);
	free(st->pend_hash);
	codec_free(st->meta_codec);
	idx_close(st->ix);
	if (st->secondary_dir) {
		sio_remove_tree(st->secondary_dir);
		free(st->secondary_dir);
	}
	for (unsigned i = 0; st->packs && i < st->npacks; i++)
		if (st->packs[i].fd >= 0)
			close(st->packs[i].fd);
	free(st->packs);
	pcache_close(st->pc);
	if (st->pc_private) {
		sio_remove_tree(st->pc_private);
		free(st->pc_private);
	}
	if (st->pc_lock_fd >= 0)
		close(st->pc_lock_fd);
	if (st->pb != st->stage)
		pback_free(st->pb);
	pback_free(st->stage);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	dfs_buf_release(&st->config);
	pthread_mutex_destroy(&st->packs_lock);
	pthread_mutex_destroy(&st->wlock);
	free(st->dir);
	free(st);
}

int store_catch_up(struct store *st)
{
	uint64_t before = atomic_load(&st->reported_seq), now;
	int rc = idx_catch_up(st->ix);

	if (rc < 0)
		return rc;
	/* against what the last call reported, not the view before this call: a chunk
	 * read may have caught up in between (store_chunk_read after a gc) */
	now = idx_sequence(st->ix);
	atomic_store(&st->reported_seq, now);
	/* a fresh view may repair what a catch-up lost with the same sequence number */
	return rc > 0 || now != before;
}

/* ---- inodes, directories ---------------------------------------------------------- */

bool store_inode_same(const struct store_inode *a, const struct store_inode *b)
{
	struct store_inode x = *a;	/* shallow: only the generation differs */
	struct dfs_buf ea, eb;
	bool same;

	x.gen = b->gen;
	dfs_buf_init(&ea, 64u << 20);
	dfs_buf_init(&eb, 64u << 20);
	same = enc_inode(&x, &ea) == 0 && enc_inode(b, &eb) == 0 && ea.len == eb.len &&
	       !memcmp(ea.data, eb.data, ea.len);
	dfs_buf_release(&ea);
	dfs_buf_release(&eb);
	return same;
}

void store_inode_release(struct store_inode *in)
{
	free(in->target.p);
	for (size_t i = 0; i < in->nxattrs; i++) {
		free(in->xattrs[i].name.p);
		free(in->xattrs[i].value.p);
	}
	free(in->xattrs);
	free(in->mime.p);
	free(in->category.p);
	free(in->rule.p);
	for (size_t i = 0; i < in->norigins; i++)
		free(in->origins[i].p);
	free(in->origins);
	free(in->unit.p);
	memset(in, 0, sizeof(*in));
}

int store_inode_copy(struct store_inode *dst, const struct store_inode *src)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 64u << 20);
	rc = enc_inode(src, &b);
	if (rc == 0)
		rc = dec_inode(src->ino, b.data, b.len, dst);
	dfs_buf_release(&b);
	return rc;
}

static int decode_inode_logged(uint64_t ino, const void *p, size_t n, struct store_inode *out)
{
	int rc = dec_inode(ino, p, n, out);

	if (rc < 0)
		dfs_err("index: inode %" PRIu64 ": %s", ino,
			rc == -EPROTONOSUPPORT ? "record of an unknown version" : "corrupt record");
	return rc;
}

int store_get_inode(struct store *st, uint64_t ino, struct store_inode *out)
{
	struct dfs_buf b;
	uint8_t key[8];
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_buf_init(&b, 64u << 20);
	dfs_put_be64(key, ino);
	rc = idx_get(st->ix, IDX_INODES, key, sizeof(key), &b);
	if (rc == 0)
		rc = decode_inode_logged(ino, b.data, b.len, out);
	dfs_buf_release(&b);
	return rc;
}

/* A wanted inode and its place in the caller's arrays. */
struct ino_pos {
	uint64_t ino;
	size_t i;
};

static int ino_pos_cmp(const void *a, const void *b)
{
	const struct ino_pos *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Dense batch (@v sorted, spanning few more numbers than it holds): one iterator pass over
 * the keys from v[0] to v[n - 1], where the inodes of one directory usually are (ingest
 * numbers them as it meets them). A seek and a step per key, against a seek through the
 * index and a filter probe per key for a MultiGet.
 */
static void get_inodes_scan(struct store *st, const struct ino_pos *v, size_t n,
			    struct store_inode *out, int *rcs)
{
	const uint8_t *k, *val;
	struct idx_iter *it;
	uint8_t start[8];
	size_t klen, vlen, j = 0;
	int rc;

	dfs_put_be64(start, v[0].ino);
	rc = idx_iter_new(st->ix, NULL, IDX_INODES, start, 0, start, sizeof(start), &it);
	while (rc >= 0 && j < n && (rc = idx_iter_next(it, &k, &klen, &val, &vlen)) == 1) {
		uint64_t ino;

		if (klen != 8)
			continue;	/* not an inode key: never written */
		ino = dfs_get_be64(k);
		for (; j < n && v[j].ino < ino; j++)
			rcs[v[j].i] = -ENOENT;
		for (; j < n && v[j].ino == ino; j++)
			rcs[v[j].i] = decode_inode_logged(ino, val, vlen, &out[v[j].i]);
	}
	for (; j < n; j++)
		rcs[v[j].i] = rc < 0 ? rc : -ENOENT;
	idx_iter_free(it);
}

struct get_inodes {
	const uint64_t *inos;
	struct store_inode *out;
	int *rcs;
};

static void got_inode(void *arg, size_t i, int rc, const uint8_t *v, size_t vlen)
{
	struct get_inodes *g = arg;

	if (rc == 0)
		rc = decode_inode_logged(g->inos[i], v, vlen, &g->out[i]);
	g->rcs[i] = rc;
}

/* Sparse batch: RocksDB's batched MultiGet. */
static int get_inodes_multi(struct store *st, const uint64_t *inos, size_t n,
			    struct store_inode *out, int *rcs)
{
	struct get_inodes g = { .inos = inos, .out = out, .rcs = rcs };
	uint8_t *keys = malloc(n * 8);
	const void **kp = calloc(n, sizeof(*kp));
	size_t *kl = calloc(n, sizeof(*kl));
	int rc = -ENOMEM;

	if (keys && kp && kl) {
		for (size_t i = 0; i < n; i++) {
			dfs_put_be64(keys + i * 8, inos[i]);
			kp[i] = keys + i * 8;
			kl[i] = 8;
		}
		rc = idx_multi_get(st->ix, IDX_INODES, n, kp, kl, got_inode, &g);
	}
	free(kl);
	free(kp);
	free(keys);
	return rc;
}

int store_get_inodes(struct store *st, const uint64_t *inos, size_t n, struct store_inode *out,
		     int *rcs)
{
	struct ino_pos *v;
	bool sorted = true;
	int rc = 0;

	if (n == 0)
		return 0;
	memset(out, 0, n * sizeof(*out));
	v = malloc(n * sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		v[i].ino = inos[i];
		v[i].i = i;
		sorted = sorted && (i == 0 || inos[i - 1] <= inos[i]);
	}
	if (!sorted)
		qsort(v, n, sizeof(*v), ino_pos_cmp);
	/* a scan reads every key in the span: worth it while most of them are wanted */
	if (n >= 8 && v[n - 1].ino - v[0].ino < 4 * (uint64_t)n)
		get_inodes_scan(st, v, n, out, rcs);
	else
		rc = get_inodes_multi(st, inos, n, out, rcs);
	free(v);
out:
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			rcs[i] = rc;
	return rc;
}

int store_lookup(struct store *st, uint64_t parent, const void *name, size_t name_len,
		 uint64_t *child, uint8_t *dtype)
{
	uint8_t key[8 + 256];
	struct dfs_buf b;
	int rc;

	if (name_len == 0 || name_len > 255)
		return name_len ? -ENAMETOOLONG : -ENOENT;
	dfs_buf_init(&b, 64);
	rc = idx_get(st->ix, IDX_DIRENTS, key, enc_dirent_key(parent, name, name_len, key), &b);
	if (rc == 0)
		rc = dec_dirent_val(b.data, b.len, child, dtype);
	dfs_buf_release(&b);
	return rc;
}

struct store_dir_iter {
	struct idx_iter *it;
	uint8_t *start;
};

int store_dir_iter_new(struct idx *ix, struct idx_batch *batch, uint64_t dir, const void *after,
		       size_t after_len, struct store_dir_iter **out)
{
	struct store_dir_iter *di;
	uint8_t prefix[8];
	size_t slen = 0;
	int rc;

	*out = NULL;
	di = calloc(1, sizeof(*di));
	if (!di)
		return -ENOMEM;
	dfs_put_be64(prefix, dir);
	if (after) {
		/* Seek to after|0x00: the first name strictly greater than @after. */
		slen = 8 + after_len + 1;
		di->start = malloc(slen);
		if (!di->start) {
			free(di);
			return -ENOMEM;
		}
		enc_dirent_key(dir, after, after_len, di->start);
		di->start[slen - 1] = 0;
	}
	rc = idx_iter_new(ix, batch, IDX_DIRENTS, prefix, 8, di->start, slen, &di->it);
	if (rc < 0) {
		free(di->start);
		free(di);
		return rc;
	}
	*out = di;
	return 0;
}

int store_dir_open(struct store *st, uint64_t dir, const void *after, size_t after_len,
		   struct store_dir_iter **out)
{
	return store_dir_iter_new(st->ix, NULL, dir, after, after_len, out);
}

int store_dir_next(struct store_dir_iter *di, const uint8_t **name, size_t *name_len,
		   uint64_t *ino, uint8_t *dtype)
{
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc = idx_iter_next(di->it, &k, &kl, &v, &vl);

	if (rc <= 0)
		return rc;
	if (kl <= 8 || dec_dirent_val(v, vl, ino, dtype) < 0) {
		dfs_err("index: corrupt directory entry under inode %" PRIu64, dfs_get_be64(k));
		return -EBADMSG;
	}
	*name = k + 8;
	*name_len = kl - 8;
	return 1;
}

void store_dir_close(struct store_dir_iter *di)
{
	if (!di)
		return;
	idx_iter_free(di->it);
	free(di->start);
	free(di);
}

/* ---- chunks ------------------------------------------------------------------------- */

int store_chunk_locate(struct store *st, const struct fp256 *id, struct store_chunk_loc *out)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 64);
	rc = idx_get(st->ix, IDX_CHUNKS, id->b, FP_LEN, &b);
	if (rc == 0) {
		rc = dec_chunk_loc(b.data, b.len, out);
		if (rc < 0)
			dfs_err("index: corrupt chunk location record");
	}
	dfs_buf_release(&b);
	return rc;
}

ssize_t store_chunk_read(struct store *st, struct codec *codec, const struct fp256 *id,
			 void *dst, size_t cap, bool verify_id)
{
	struct store_chunk_loc loc;
	struct pack_rec r;
	char hex[FP_HEX_LEN + 1];
	uint8_t *payload;
	struct pack_src src;
	bool raw, again = st->mode == STORE_READER, refetched = false;
	int rc;

relocate:
	rc = store_chunk_locate(st, id, &loc);
	if (rc < 0) {
		if (rc == -ENOENT) {
			fp_to_hex(id, hex);
			dfs_err("chunk %.16s: not in the index", hex);
			rc = -EBADMSG;
		}
		return rc;
	}
	if (loc.raw_len > cap)
		return -EOVERFLOW;
	if (loc.stored_len > PACK_REC_MAX) {
		fp_to_hex(id, hex);
		dfs_err("chunk %.16s: stored length %" PRIu32 " in the index is too large", hex,
			loc.stored_len);
		return -EBADMSG;
	}
	/* raw bytes go straight to @dst (a version 2 record's table aside); compressed ones
	 * to the codec's scratch buffer */
	raw = loc.codec == CODEC_RAW;
	payload = raw ? dst : codec_scratch(codec, loc.stored_len ? loc.stored_len : 1);
	if (!payload)
		return -ENOMEM;
	rc = store_pack_src_get(st, loc.pack, &src);
	/*
	 * A reader whose view predates a gc may find the chunk's old pack removed (the gc
	 * commits the new location before it removes the pack): it catches up with the
	 * writer once and reads the chunk where the index now puts it.
	 */
	if (rc == -ENOENT && again && idx_catch_up(st->ix) >= 0) {
		again = false;
		goto relocate;
	}
	if (rc < 0) {
		if (rc == -ENOENT && st->mode == STORE_READER)
			dfs_err("pack %08" PRIx32 ": missing, also after catching up with the "
				"writer", loc.pack);
		return rc;
	}
	for (;;) {
		if (raw)
			rc = pack_read_chunk_into(&src, loc.pack, loc.off, loc.stored_len,
						  loc.raw_len, &r, payload);
		else
			rc = pack_read_record_into(&src, loc.pack, loc.off, loc.stored_len, &r,
						   payload);
		/* a remote pack's cached bytes that fail their check are fetched once
		 * more: the cache file may hold a block a crash tore */
		if (rc != -EBADMSG || src.fd >= 0 || refetched)
			break;
		pcache_forget(st->pc, loc.pack, loc.off, PACK_REC_HDR + loc.stored_len);
		refetched = true;
	}
	store_pack_src_put(st, &src);
	if (rc < 0)
		return rc;
	if (r.type != PACK_REC_CHUNK || !fp_equal(&r.id, id) || r.raw_len != loc.raw_len ||
	    r.codec != loc.codec) {
		fp_to_hex(id, hex);
		dfs_err("pack %08" PRIx32 " @%" PRIu64 ": holds another record than chunk %.16s",
			loc.pack, loc.off, hex);
		return -EBADMSG;
	}
	if (!raw) {
		rc = codec_decompress(codec, (enum codec_id)r.codec, payload, r.stored_len, dst,
				      r.raw_len);
		if (rc < 0) {
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": chunk does not decompress",
				loc.pack, loc.off);
			return rc;
		}
	}
	if (verify_id) {
		struct fp256 got;

		fp_sha256(dst, r.raw_len, &got);
		if (!fp_equal(&got, id)) {
			fp_to_hex(id, hex);
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": chunk %.16s: SHA-256 mismatch",
				loc.pack, loc.off, hex);
			return -EBADMSG;
		}
	}
	return (ssize_t)r.raw_len;
}

int store_chunk_read_part(struct store *st, const struct fp256 *id, uint32_t raw_len,
			  uint64_t from, size_t len, void *dst)
{
	struct store_chunk_loc loc;
	struct pack_src src;
	struct pack_rec r;
	char hex[FP_HEX_LEN + 1];
	int rc;

	rc = store_chunk_locate(st, id, &loc);
	if (rc < 0)
		return rc == -ENOENT ? -EOPNOTSUPP : rc;	/* the whole read says why */
	if (loc.codec != CODEC_RAW || loc.stored_len == loc.raw_len || loc.raw_len != raw_len)
		return -EOPNOTSUPP;
	rc = store_pack_src_get(st, loc.pack, &src);
	if (rc < 0)
		return -EOPNOTSUPP;
	if (src.fd < 0) {	/* a remote pack: the whole read, with its refetch */
		store_pack_src_put(st, &src);
		return -EOPNOTSUPP;
	}
	rc = pack_read_part(&src, loc.pack, loc.off, loc.stored_len, loc.raw_len, from, len,
			    st->one_read, &r, dst);
	store_pack_src_put(st, &src);
	if (rc < 0)
		return rc;
	if (r.type != PACK_REC_CHUNK || !fp_equal(&r.id, id)) {
		fp_to_hex(id, hex);
		dfs_err("pack %08" PRIx32 " @%" PRIu64 ": holds another record than chunk %.16s",
			loc.pack, loc.off, hex);
		return -EBADMSG;
	}
	return 0;
}

/* Pending set: chunks appended but not yet committed (wlock held). */
static size_t pend_slot(const struct fp256 *id, size_t cap)
{
	uint64_t h;

	memcpy(&h, id->b, sizeof(h));
	return (size_t)(h & (cap - 1));
}

int store_pending_lookup_locked(struct store *st, const struct fp256 *id)
{
	if (!st->hash_cap)
		return -1;
	for (size_t s = pend_slot(id, st->hash_cap);; s = (s + 1) & (st->hash_cap - 1)) {
		uint32_t v = st->pend_hash[s];

		if (!v)
			return -1;
		if (fp_equal(&st->pending[v - 1].id, id))
			return (int)(v - 1);
	}
}

static void pend_hash_insert(struct store *st, size_t idx)
{
	size_t s = pend_slot(&st->pending[idx].id, st->hash_cap);

	while (st->pend_hash[s])
		s = (s + 1) & (st->hash_cap - 1);
	st->pend_hash[s] = (uint32_t)idx + 1;
}

int store_pending_rehash(struct store *st, size_t want)
{
	size_t cap = 1024;

	while (cap < want * 2)
		cap *= 2;
	if (cap != st->hash_cap) {
		uint32_t *h = calloc(cap, sizeof(*h));

		if (!h)
			return -ENOMEM;
		free(st->pend_hash);
		st->pend_hash = h;
		st->hash_cap = cap;
	} else {
		memset(st->pend_hash, 0, cap * sizeof(*st->pend_hash));
	}
	for (size_t i = 0; i < st->npending; i++)
		pend_hash_insert(st, i);
	return 0;
}

int store_meta_codec_new(struct codec **out)
{
	return codec_new(STORE_META_LEVEL, out);
}

bool store_has_content(struct store *st, const struct fp256 *cid)
{
	struct dfs_buf b;
	bool found;

	dfs_buf_init(&b, 64u << 20);
	found = idx_get(st->ix, IDX_CONTENTS, cid->b, FP_LEN, &b) == 0;
	dfs_buf_release(&b);
	return found;
}

bool store_has_chunk(struct store *st, const struct fp256 *id)
{
	struct dfs_buf b;
	bool found;
	int rc;

	pthread_mutex_lock(&st->wlock);
	found = store_pending_lookup_locked(st, id) >= 0;
	pthread_mutex_unlock(&st->wlock);
	if (found)
		return true;
	dfs_buf_init(&b, 64);
	rc = idx_get(st->ix, IDX_CHUNKS, id->b, FP_LEN, &b);
	dfs_buf_release(&b);
	return rc == 0;
}

static int start_pack_locked(struct store *st)
{
	char path[PATH_MAX], dir[PATH_MAX];
	struct dfs_buf hdr;
	struct dirty_pack *dp;
	uint32_t id = st->next_pack;
	int fd, rc;

	pack_dir_path(st->dir, id, dir, sizeof(dir));
	rc = mkdir_sync(dir, 0700);
	if (rc < 0) {
		dfs_err("%s: %s", dir, dfs_strerror(rc));
		return rc;
	}
	pack_path(st->dir, id, path, sizeof(path));
	fd = sio_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		dfs_err("%s: cannot create pack: %s", path, dfs_strerror(fd));
		return fd;
	}
	dfs_buf_init(&hdr, PACK_CONFIG_MAX + 64);
	rc = pack_header_encode(id, st->config.data, st->config.len, &hdr);
	if (rc == 0)
		rc = sio_pwrite(fd, hdr.data, hdr.len, 0);
	if (rc == 0 && st->ndirty == st->cap_dirty) {
		size_t cap = st->cap_dirty ? st->cap_dirty * 2 : 8;
		struct dirty_pack *d = realloc(st->dirty, cap * sizeof(*d));

		if (!d)
			rc = -ENOMEM;
		else {
			st->dirty = d;
			st->cap_dirty = cap;
		}
	}
	if (rc < 0) {
		dfs_err("%s: %s", path, dfs_strerror(rc));
		sio_close(fd);
		unlink(path);
		dfs_buf_release(&hdr);
		return rc;
	}
	st->next_pack = id + 1;
	dp = &st->dirty[st->ndirty++];
	dp->id = id;
	dp->fd = fd;
	dp->len = hdr.len;
	dp->is_new = true;
	dp->sealed = false;
	dp->put_len = 0;
	dp->named = false;
	dfs_buf_release(&hdr);
	return 0;
}

uint32_t store_seal_current(struct store *st)
{
	uint32_t next;

	pthread_mutex_lock(&st->wlock);
	if (st->ndirty)
		st->dirty[st->ndirty - 1].sealed = true;
	next = st->next_pack;
	pthread_mutex_unlock(&st->wlock);
	return next;
}

void store_drop_dirty(struct store *st, uint32_t id)
{
	pthread_mutex_lock(&st->wlock);
	for (size_t i = 0; i < st->ndirty; i++) {
		if (st->dirty[i].id != id || !st->dirty[i].sealed)
			continue;
		sio_close(st->dirty[i].fd);
		memmove(st->dirty + i, st->dirty + i + 1,
			(st->ndirty - i - 1) * sizeof(*st->dirty));
		st->ndirty--;
		break;
	}
	pthread_mutex_unlock(&st->wlock);
}

/*
 * Appends a record whose payload is @head (@head_len bytes: a version 2 record's table)
 * then @payload (the rest).
 */
static int append_parts_locked(struct store *st, const struct pack_rec *r, const void *head,
			       uint32_t head_len, const void *payload, struct store_chunk_loc *loc)
{
	uint8_t hdr[PACK_REC_HDR];
	struct dirty_pack *cur;
	int rc;

	if (st->werr)
		return st->werr;
	cur = st->ndirty ? &st->dirty[st->ndirty - 1] : NULL;
	if (cur && !cur->sealed && cur->len >= st->params.pack_target) {
		cur->sealed = true;
		/* a remote store puts it now, while the next one fills (store_upload.c) */
		if (st->pb != st->stage) {
			rc = store_upl_queue(st, cur->id, cur->len);
			if (rc < 0) {
				st->werr = rc;
				return rc;
			}
		}
	}
	if (!cur || cur->sealed) {
		rc = start_pack_locked(st);
		if (rc < 0) {
			st->werr = rc;
			return rc;
		}
		cur = &st->dirty[st->ndirty - 1];
	}
	pack_rec_encode(r, head_len ? head : payload, hdr);
	rc = sio_pwrite(cur->fd, hdr, sizeof(hdr), (off_t)cur->len);
	if (rc == 0 && head_len)
		rc = sio_pwrite(cur->fd, head, head_len, (off_t)(cur->len + sizeof(hdr)));
	if (rc == 0)
		rc = sio_pwrite(cur->fd, payload, r->stored_len - head_len,
				(off_t)(cur->len + sizeof(hdr) + head_len));
	if (rc < 0) {
		/* Bytes past the committed length are cut at the next open. */
		dfs_err("pack %08" PRIx32 ": append failed: %s", cur->id, dfs_strerror(rc));
		st->werr = rc;
		return rc;
	}
	loc->pack = cur->id;
	loc->off = cur->len;
	loc->raw_len = r->raw_len;
	loc->stored_len = r->stored_len;
	loc->codec = r->codec;
	cur->len += sizeof(hdr) + r->stored_len;
	return 0;
}

/* Room for one more pending chunk (wlock held). */
static int pending_reserve_locked(struct store *st)
{
	if (st->npending == st->cap_pending) {
		size_t cap = st->cap_pending ? st->cap_pending * 2 : 1024;
		struct pending_chunk *p = realloc(st->pending, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		st->pending = p;
		st->cap_pending = cap;
	}
	if ((st->npending + 1) * 2 > st->hash_cap)
		return store_pending_rehash(st, st->npending + 1);
	return 0;
}

/* What adopt_staged learns from a staged pack's records. */
struct adopt {
	uint32_t id;
	struct pending_chunk *c;	/* its chunk records */
	size_t n, cap;
};

static int adopt_rec(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload)
{
	struct adopt *a = arg;

	(void)payload;
	if (r->type != PACK_REC_CHUNK)
		return 0;	/* the META record of the commit that never happened */
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		struct pending_chunk *v = realloc(a->c, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->c = v;
		a->cap = cap;
	}
	a->c[a->n++] = (struct pending_chunk){
		.id = r->id,
		.loc = { .pack = a->id, .off = off, .raw_len = r->raw_len,
			 .stored_len = r->stored_len, .codec = r->codec },
	};
	return 0;
}

/*
 * Writer start-up, remote backend: staged pack @id, which no commit names, was written
 * (and sealed, maybe put) by a run that stopped before the commit that would have named
 * it. If it is whole - its header names it and holds this store's config, every record's
 * checksum holds, and the last record ends where the file ends - it is put (and
 * confirmed: the same rule as a commit's packs), and joins the writer's state as a sealed
 * pack already put, its chunks pending: the next commit names it. Chunks the index has
 * already are left out (the index keeps their place; these copies are garbage for gc).
 * Its META record (of the commit that never happened, sequence commit_seq + 1) is left
 * as it is: the next commit reuses that number in a later pack, and defrag-recover replays
 * the later of two records with one number. Not whole: *@adopted false (it is removed).
 * Fails only when the put fails or memory runs out.
 */
static int adopt_staged(struct store *st, uint32_t id, bool *adopted)
{
	struct adopt a = { .id = id };
	char path[PATH_MAX];
	struct dfs_buf cfg;
	struct pack_src src;
	uint64_t hlen, end;
	struct stat sb;
	uint32_t hid;
	bool torn;
	int fd, rc;

	*adopted = false;
	pack_path(st->dir, id, path, sizeof(path));
	fd = sio_open(path, O_RDWR, 0);
	if (fd < 0)
		return 0;
	dfs_buf_init(&cfg, PACK_CONFIG_MAX);
	src = pack_src_fd(fd);
	if (fstat(fd, &sb) < 0 || pack_header_read(&src, &hid, &hlen, &cfg) < 0 || hid != id ||
	    cfg.len != st->config.len || memcmp(cfg.data, st->config.data, cfg.len) != 0) {
		rc = 0;
		goto out;
	}
	rc = pack_scan(&src, id, hlen, adopt_rec, &a, &end, &torn);
	if (rc == -ENOMEM)
		goto out;
	if (rc < 0 || torn || end != (uint64_t)sb.st_size) {
		dfs_info("pack %08" PRIx32 ": staged, not whole (%s at %" PRIu64 " of %lld "
			 "bytes): removed", id, rc < 0 ? dfs_strerror(rc) : "a bad record", end,
			 (long long)sb.st_size);
		rc = 0;
		goto out;
	}
	rc = sio_fdatasync(fd);
	if (rc == 0)
		rc = store_pack_put(st, id, (uint64_t)sb.st_size);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&st->wlock);
	if (st->ndirty == st->cap_dirty) {
		size_t cap = st->cap_dirty ? st->cap_dirty * 2 : 8;
		struct dirty_pack *d = realloc(st->dirty, cap * sizeof(*d));

		if (!d) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		st->dirty = d;
		st->cap_dirty = cap;
	}
	for (size_t i = 0; i < a.n; i++) {
		struct dfs_buf v;
		int found;

		if (store_pending_lookup_locked(st, &a.c[i].id) >= 0)
			continue;
		dfs_buf_init(&v, 64);
		found = idx_get(st->ix, IDX_CHUNKS, a.c[i].id.b, FP_LEN, &v);
		dfs_buf_release(&v);
		if (found != -ENOENT)
			continue;	/* indexed (or unreadable: not repointed) */
		rc = pending_reserve_locked(st);
		if (rc < 0)
			goto out_unlock;
		st->pending[st->npending] = a.c[i];
		pend_hash_insert(st, st->npending);
		st->npending++;
	}
	/* is_new: the crashed run may not have synced its directory entry */
	st->dirty[st->ndirty++] = (struct dirty_pack){ .id = id, .fd = fd, .len = end,
						       .is_new = true, .sealed = true,
						       .put_len = end };
	fd = -1;
	*adopted = true;
	dfs_info("pack %08" PRIx32 ": staged and whole (%" PRIu64 " bytes), no commit names "
		 "it: put, and the next commit names it", id, end);
out_unlock:
	pthread_mutex_unlock(&st->wlock);
out:
	if (fd >= 0)
		sio_close(fd);
	free(a.c);
	dfs_buf_release(&cfg);
	return rc;
}

int store_append_locked(struct store *st, const struct pack_rec *r, const void *payload,
			struct store_chunk_loc *loc)
{
	return append_parts_locked(st, r, NULL, 0, payload, loc);
}

uint32_t store_chunk_table_len(uint32_t raw_len, uint32_t stored_len, enum codec_id codec)
{
	struct pack_rec r = { .shift = PACK_BLOCK_SHIFT, .raw_len = raw_len };
	uint32_t tlen;

	if (codec != CODEC_RAW || stored_len != raw_len || raw_len <= (1u << PACK_BLOCK_SHIFT))
		return 0;
	tlen = pack_rec_table_len(&r);
	return (uint64_t)raw_len + tlen <= PACK_REC_MAX ? tlen : 0;
}

/*
 * Appends a chunk record. @force: append even though the index names @id (its copy is
 * damaged); @old is then that copy's location, kept for the counters.
 */
static int put_chunk(struct store *st, const struct fp256 *id, uint32_t raw_len,
		     const void *stored, uint32_t stored_len, enum codec_id codec,
		     const struct store_chunk_loc *old)
{
	struct pack_rec r = { .type = PACK_REC_CHUNK, .codec = (uint8_t)codec,
			      .raw_len = raw_len, .stored_len = stored_len, .id = *id };
	struct pending_chunk *pc;
	uint8_t *table = NULL;
	uint32_t tlen = 0;
	int rc;

	/*
	 * A raw chunk of more than one block is a version 2 record (a checksum per block):
	 * a small read through the mount reads and checks its blocks, not the chunk.
	 */
	tlen = store_chunk_table_len(raw_len, stored_len, codec);
	if (tlen) {
		r.shift = PACK_BLOCK_SHIFT;
		table = malloc(tlen);
		if (!table)
			return -ENOMEM;
		pack_blocks_table(stored, raw_len, r.shift, table);
		r.stored_len = raw_len + tlen;
	}

	pthread_mutex_lock(&st->wlock);
	if (store_pending_lookup_locked(st, id) >= 0) {
		rc = 0;
		goto out_unlock;
	}
	rc = pending_reserve_locked(st);
	if (rc < 0)
		goto out_unlock;
	pc = &st->pending[st->npending];
	rc = append_parts_locked(st, &r, table, tlen, stored, &pc->loc);
	if (rc < 0)
		goto out_unlock;
	pc->id = *id;
	pc->repair = old != NULL;
	pc->old_stored_len = old ? old->stored_len : 0;
	pend_hash_insert(st, st->npending);
	st->npending++;
	rc = 1;
out_unlock:
	pthread_mutex_unlock(&st->wlock);
	free(table);
	return rc;
}

int store_put_chunk(struct store *st, const struct fp256 *id, uint32_t raw_len,
		    const void *stored, uint32_t stored_len, enum codec_id codec)
{
	struct dfs_buf b;
	int rc;

	if (st->mode != STORE_WRITER)
		return -EROFS;
	/* Outside the lock: the common duplicate case costs one Bloom-filtered get. */
	dfs_buf_init(&b, 64);
	rc = idx_get(st->ix, IDX_CHUNKS, id->b, FP_LEN, &b);
	dfs_buf_release(&b);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT)
		return rc;
	return put_chunk(st, id, raw_len, stored, stored_len, codec, NULL);
}

int store_repair_chunk(struct store *st, const struct fp256 *id, uint32_t raw_len,
		       const void *stored, uint32_t stored_len, enum codec_id codec)
{
	struct store_chunk_loc old;
	int rc;

	if (st->mode != STORE_WRITER)
		return -EROFS;
	rc = store_chunk_locate(st, id, &old);
	if (rc < 0)
		return rc;
	if (old.raw_len != raw_len) {
		dfs_err("chunk repair: the index says %" PRIu32 " bytes, the copy has %" PRIu32,
			old.raw_len, raw_len);
		return -EINVAL;
	}
	return put_chunk(st, id, raw_len, stored, stored_len, codec, &old);
}

/* ---- content ------------------------------------------------------------------------- */

struct store_content {
	struct store *st;
	struct fp256 cid;
	struct dfs_buf head_raw;
	struct enc_content_head head;
	/* The decoded extents of one block (or of the head), with file offsets. */
	struct enc_extent *ext;
	uint64_t *ext_off;
	size_t next;
	int64_t cur_block;	/* -1: the head's own list; -2: nothing loaded */
};

static int content_load_block(struct store_content *c, int64_t block)
{
	struct enc_extent *ext = NULL;
	size_t n = 0;
	uint64_t off;
	int rc;

	if (c->cur_block == block)
		return 0;
	if (block < 0) {
		rc = dec_extents(c->head.extents, c->head.extents_len, false, &ext, &n);
		off = 0;
	} else {
		uint8_t key[FP_LEN + 4];
		struct dfs_buf b;

		memcpy(key, c->cid.b, FP_LEN);
		dfs_put_be32(key + FP_LEN, (uint32_t)block);
		dfs_buf_init(&b, 64u << 20);
		rc = idx_get(c->st->ix, IDX_CONTENTS, key, sizeof(key), &b);
		if (rc == -ENOENT)
			rc = -EBADMSG;
		if (rc == 0)
			rc = dec_extents(b.data, b.len, true, &ext, &n);
		dfs_buf_release(&b);
		off = c->head.block_start[block];
	}
	if (rc < 0) {
		char hex[FP_HEX_LEN + 1];

		fp_to_hex(&c->cid, hex);
		dfs_err("index: content %.16s: corrupt extent list (block %lld)", hex,
			(long long)block);
		return rc;
	}
	free(c->ext);
	free(c->ext_off);
	c->ext = ext;
	c->next = n;
	c->ext_off = calloc(n ? n : 1, sizeof(*c->ext_off));
	if (!c->ext_off) {
		c->cur_block = -2;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		c->ext_off[i] = off;
		off += ext[i].len;
	}
	c->cur_block = block;
	return 0;
}

int store_content_open(struct store *st, const struct fp256 *cid, struct store_content **out)
{
	struct store_content *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->st = st;
	c->cid = *cid;
	c->cur_block = -2;
	dfs_buf_init(&c->head_raw, 64u << 20);
	rc = idx_get(st->ix, IDX_CONTENTS, cid->b, FP_LEN, &c->head_raw);
	if (rc == 0) {
		rc = dec_content_head(c->head_raw.data, c->head_raw.len, &c->head);
		if (rc < 0) {
			char hex[FP_HEX_LEN + 1];

			fp_to_hex(cid, hex);
			dfs_err("index: content %.16s: corrupt record", hex);
		}
	}
	if (rc < 0) {
		dfs_buf_release(&c->head_raw);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

size_t store_content_mem(const struct store_content *c)
{
	/* the extents of the head, or of the largest block, with their file offsets */
	uint64_t ext = c->head.nblocks ? ENC_BLOCK_EXTENTS : c->head.nextents;

	return sizeof(*c) + c->head_raw.cap + c->head.nblocks * sizeof(uint64_t) +
	       (size_t)ext * (sizeof(struct enc_extent) + sizeof(uint64_t));
}

void store_content_close(struct store_content *c)
{
	if (!c)
		return;
	enc_content_head_release(&c->head);
	dfs_buf_release(&c->head_raw);
	free(c->ext);
	free(c->ext_off);
	free(c);
}

uint64_t store_content_size(const struct store_content *c)
{
	return c->head.size;
}

const uint8_t *store_content_inline(const struct store_content *c, size_t *len)
{
	if (!c->head.is_inline)
		return NULL;
	*len = c->head.inline_len;
	return c->head.inline_data;
}

int store_content_extent(struct store_content *c, uint64_t off, struct store_extent *out)
{
	int64_t block = -1;
	size_t lo, hi;
	int rc;

	if (off >= c->head.size)
		return -ENXIO;
	if (c->head.is_inline) {
		out->off = 0;
		out->len = (uint32_t)c->head.size;
		out->hole = false;
		memset(&out->chunk, 0, sizeof(out->chunk));
		return 0;
	}
	if (c->head.nblocks) {
		lo = 0;
		hi = c->head.nblocks;
		while (hi - lo > 1) {
			size_t mid = (lo + hi) / 2;

			if (c->head.block_start[mid] <= off)
				lo = mid;
			else
				hi = mid;
		}
		block = (int64_t)lo;
	}
	rc = content_load_block(c, block);
	if (rc < 0)
		return rc;
	lo = 0;
	hi = c->next;
	if (!hi)
		return -EBADMSG;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (c->ext_off[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	if (off < c->ext_off[lo] || off >= c->ext_off[lo] + c->ext[lo].len)
		return -EBADMSG;
	out->off = c->ext_off[lo];
	out->len = (uint32_t)(c->ext[lo].len > UINT32_MAX ? UINT32_MAX : c->ext[lo].len);
	out->hole = c->ext[lo].hole;
	if (out->hole && c->ext[lo].len > UINT32_MAX) {
		/* A long hole is reported from @off in pieces of at most 4 GiB - 1. */
		uint64_t left = c->ext_off[lo] + c->ext[lo].len - off;

		out->off = off;
		out->len = (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left);
	}
	out->chunk = c->ext[lo].chunk;
	return 0;
}

int store_content_seek(struct store_content *c, uint64_t off, int whence, uint64_t *res)
{
	struct store_extent e;
	int rc;

	for (;;) {
		if (off >= c->head.size) {
			if (whence == SEEK_HOLE && off == c->head.size) {
				*res = off;
				return 0;
			}
			return -ENXIO;
		}
		rc = store_content_extent(c, off, &e);
		if (rc < 0)
			return rc;
		if ((whence == SEEK_DATA && !e.hole) || (whence == SEEK_HOLE && e.hole)) {
			*res = off;
			return 0;
		}
		off = e.off + e.len;
		if (whence == SEEK_HOLE && off >= c->head.size) {
			*res = c->head.size;
			return 0;
		}
	}
}

ssize_t store_content_pread(struct store *st, struct codec *codec, struct store_content *c,
			    void *buf, size_t len, uint64_t off)
{
	uint8_t *dst = buf, *chunk = NULL;
	size_t done = 0, cap = 0;
	struct fp256 cached;
	bool have = false;
	ssize_t rc = 0;

	if (off >= c->head.size)
		return 0;
	if (len > c->head.size - off)
		len = (size_t)(c->head.size - off);
	if (c->head.is_inline) {
		memcpy(dst, c->head.inline_data + off, len);
		return (ssize_t)len;
	}
	while (done < len) {
		struct store_extent e;
		uint64_t pos = off + done, in;
		size_t n;

		rc = store_content_extent(c, pos, &e);
		if (rc < 0)
			break;
		in = pos - e.off;
		n = (size_t)(e.len - in < len - done ? e.len - in : len - done);
		if (e.hole) {
			memset(dst + done, 0, n);
		} else {
			/* as large as the chunks met (not the 64 MiB limit: a read of a few
			 * bytes must not map and fault in that much) */
			if (cap < e.len) {
				free(chunk);
				chunk = malloc(e.len);
				cap = chunk ? e.len : 0;
				have = false;
				if (!chunk) {
					rc = -ENOMEM;
					break;
				}
			}
			if (!have || !fp_equal(&cached, &e.chunk)) {
				rc = store_chunk_read(st, codec, &e.chunk, chunk, cap, false);
				if (rc < 0)
					break;
				if ((uint64_t)rc != e.len) {
					rc = -EBADMSG;
					break;
				}
				cached = e.chunk;
				have = true;
			}
			memcpy(dst + done, chunk + in, n);
		}
		done += n;
	}
	free(chunk);
	if (rc < 0)
		return rc;
	return (ssize_t)done;
}

/* The u64 value at @key of column family @cf. */
static int get_u64(struct store *st, enum idx_cf cf, const void *key, size_t klen,
		   uint64_t *val)
{
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 64);
	rc = idx_get(st->ix, cf, key, klen, &b);
	if (rc == 0)
		rc = dec_u64_val(b.data, b.len, val);
	dfs_buf_release(&b);
	return rc;
}

int store_get_srcmap(struct store *st, uint32_t source, uint64_t st_ino, uint64_t *ino)
{
	uint8_t key[12];

	dfs_put_be32(key, source);
	dfs_put_be64(key + 4, st_ino);
	return get_u64(st, IDX_SRCMAP, key, sizeof(key), ino);
}

int store_each_chunk(struct store *st,
		     int (*fn)(void *arg, const struct fp256 *id, const struct store_chunk_loc *l),
		     void *arg)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc;

	rc = idx_iter_new(st->ix, NULL, IDX_CHUNKS, "", 0, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct store_chunk_loc loc;
		struct fp256 id;

		if (kl != FP_LEN || dec_chunk_loc(v, vl, &loc) < 0) {
			dfs_err("index: corrupt chunk record");
			rc = -EBADMSG;
			break;
		}
		memcpy(id.b, k, FP_LEN);
		rc = fn(arg, &id, &loc);
		if (rc)
			break;
	}
	idx_iter_free(it);
	return rc;
}

int store_content_rec_extents(size_t kl, const void *v, size_t vl, struct enc_extent **ext,
			      size_t *n)
{
	struct enc_content_head h;
	int rc;

	*ext = NULL;
	*n = 0;
	if (kl != FP_LEN)
		return dec_extents(v, vl, true, ext, n);
	rc = dec_content_head(v, vl, &h);
	if (rc == 0) {
		if (!h.is_inline && h.nblocks == 0)
			rc = dec_extents(h.extents, h.extents_len, false, ext, n);
		enc_content_head_release(&h);
	}
	return rc;
}

int store_each_content_ref(struct store *st,
			   int (*fn)(void *arg, const struct fp256 *cid, const struct fp256 *chunk),
			   void *arg)
{
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl;
	int rc;

	rc = idx_iter_new(st->ix, NULL, IDX_CONTENTS, "", 0, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct enc_extent *ext = NULL;
		struct fp256 cid;
		size_t n = 0;
		int drc = 0;

		if (kl != FP_LEN && kl != FP_LEN + 4)
			continue;
		memcpy(cid.b, k, FP_LEN);
		drc = store_content_rec_extents(kl, v, vl, &ext, &n);
		rc = 0;
		if (drc < 0)
			rc = fn(arg, &cid, NULL);
		for (size_t i = 0; i < n && rc == 0; i++)
			if (!ext[i].hole)
				rc = fn(arg, &cid, &ext[i].chunk);
		free(ext);
		if (rc)
			break;
	}
	idx_iter_free(it);
	return rc;
}

int store_set_against(struct store *st, const void *name, size_t len, int64_t when,
		      int32_t result, uint64_t gen)
{
	struct store_source s;
	struct store_txn *tx;
	int rc;

	rc = store_txn_begin(st, &tx);
	if (rc < 0)
		return rc;
	rc = store_txn_get_source(tx, name, len, &s);
	if (rc == 0) {
		s.last_against = when;
		s.against_result = result;
		s.against_gen = gen;
		rc = store_txn_put_source(tx, &s);
		store_source_release(&s);
	}
	if (rc == 0)
		return store_txn_commit(tx);
	store_txn_abort(tx);
	return rc;
}

/* ---- sources, stats ------------------------------------------------------------------ */

void store_source_release(struct store_source *s)
{
	free(s->name.p);
	free(s->fsid.p);
	free(s->path.p);
	free(s->excludes.p);
	free(s->snaps);
	memset(s, 0, sizeof(*s));
}

int store_source_add_snap(struct store_source *s, const struct store_snap *sn)
{
	struct store_snap *v;

	if (s->nsnaps >= STORE_SNAPS_MAX)
		return -E2BIG;
	v = realloc(s->snaps, (s->nsnaps + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[s->nsnaps++] = *sn;
	s->snaps = v;
	return 0;
}

void store_snap_name(int64_t t, char *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, STORE_SNAP_NAME_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

int store_get_source(struct store *st, const void *name, size_t len, struct store_source *out)
{
	struct dfs_buf b;
	int rc;

	memset(out, 0, sizeof(*out));
	dfs_buf_init(&b, 1u << 20);
	rc = idx_get(st->ix, IDX_SOURCES, name, len, &b);
	if (rc == 0)
		rc = dec_source(b.data, b.len, out);
	dfs_buf_release(&b);
	return rc;
}

int store_get_meta_u64(struct store *st, const char *key, uint64_t *val)
{
	return get_u64(st, IDX_META, key, strlen(key), val);
}

int store_get_cache(struct store *st, const void *key, size_t klen, struct dfs_buf *val)
{
	uint8_t k[sizeof(STORE_CACHE_PREFIX) + STORE_CACHE_KEY_MAX];
	size_t pl = sizeof(STORE_CACHE_PREFIX) - 1;

	if (klen > STORE_CACHE_KEY_MAX)
		return -EINVAL;
	memcpy(k, STORE_CACHE_PREFIX, pl);
	memcpy(k + pl, key, klen);
	return idx_get(st->ix, IDX_META, k, pl + klen, val);
}

int store_each_cache(struct store *st, const void *prefix, size_t plen, const void *start,
		     size_t slen,
		     int (*fn)(void *arg, const uint8_t *k, size_t klen, const uint8_t *v,
			       size_t vlen),
		     void *arg)
{
	uint8_t p[sizeof(STORE_CACHE_PREFIX) + STORE_CACHE_KEY_MAX];
	uint8_t s[sizeof(STORE_CACHE_PREFIX) + STORE_CACHE_KEY_MAX];
	size_t pl = sizeof(STORE_CACHE_PREFIX) - 1, kl, vl;
	const uint8_t *k, *v;
	struct idx_iter *it;
	int rc;

	if (plen > STORE_CACHE_KEY_MAX || slen > STORE_CACHE_KEY_MAX)
		return -EINVAL;
	memcpy(p, STORE_CACHE_PREFIX, pl);
	memcpy(p + pl, prefix, plen);
	memcpy(s, STORE_CACHE_PREFIX, pl);
	if (start)
		memcpy(s + pl, start, slen);
	rc = idx_iter_new(st->ix, NULL, IDX_META, p, pl + plen, start ? s : NULL,
			  start ? pl + slen : 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		rc = fn(arg, k + pl, kl - pl, v, vl);
		if (rc)
			break;
	}
	idx_iter_free(it);
	return rc;
}

int store_each_source(struct store *st, int (*fn)(void *arg, const struct store_source *s),
		      void *arg)
{
	struct store_source *all = NULL;
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t kl, vl, n = 0, cap = 0;
	int rc;

	rc = idx_iter_new(st->ix, NULL, IDX_SOURCES, "", 0, NULL, 0, &it);
	if (rc < 0)
		return rc;
	while ((rc = idx_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (n == cap) {
			struct store_source *a;

			cap = cap ? cap * 2 : 16;
			a = realloc(all, cap * sizeof(*a));
			if (!a) {
				rc = -ENOMEM;
				break;
			}
			all = a;
		}
		rc = dec_source(v, vl, &all[n]);
		if (rc < 0) {
			dfs_err("index: corrupt source record");
			break;
		}
		n++;
	}
	idx_iter_free(it);
	/* id order: the order sources were first ingested */
	for (size_t i = 1; rc == 0 && i < n; i++)
		for (size_t j = i; j > 0 && all[j - 1].id > all[j].id; j--) {
			struct store_source t = all[j];

			all[j] = all[j - 1];
			all[j - 1] = t;
		}
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = fn(arg, &all[i]);
	for (size_t i = 0; i < n; i++)
		store_source_release(&all[i]);
	free(all);
	return rc;
}

static int count_pack(void *arg, uint32_t id, uint64_t committed)
{
	struct store_stats *out = arg;

	(void)id;
	out->pack_bytes += committed;
	out->packs++;
	return 0;
}

int store_get_stats(struct store *st, struct store_stats *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_read_meta_u64(st, "stat_chunks", &out->chunks);
	if (rc == 0)
		rc = store_read_meta_u64(st, "stat_raw", &out->raw_bytes);
	if (rc == 0)
		rc = store_read_meta_u64(st, "stat_stored", &out->stored_bytes);
	if (rc == 0)
		rc = store_read_meta_u64(st, "next_ino", &out->next_ino);
	if (rc == 0)
		rc = each_pack(st, count_pack, out, NULL);
	return rc;
}

/* ---- pack structure (defrag-verify) ------------------------------------------------- */

/* Walks one pack's records up to @committed; fills @what and returns the damaged offset,
 * or returns UINT64_MAX when the pack is whole. */
static uint64_t check_one_pack(struct store *st, uint32_t id, uint64_t committed,
			       uint64_t *meta, char *what, size_t wl)
{
	struct dfs_buf payload;
	uint64_t off, hlen, size, bad = UINT64_MAX;
	struct pack_src src;
	uint32_t hid;
	int rc;

	rc = store_pack_size(st, id, &size);
	if (rc == 0)
		rc = store_pack_src_get(st, id, &src);
	if (rc < 0) {
		snprintf(what, wl, "%s: %s", rc == -ENOENT ? "missing" : "cannot open",
			 dfs_strerror(rc));
		return 0;
	}
	if (size < committed) {
		snprintf(what, wl, "shorter (%" PRIu64 " bytes) than its committed length %"
			 PRIu64, size, committed);
		store_pack_src_put(st, &src);
		return size;
	}
	rc = pack_header_read(&src, &hid, &hlen, NULL);
	if (rc < 0 || hid != id) {
		snprintf(what, wl, "%s", rc < 0 ? "damaged pack header" : "header names another pack");
		store_pack_src_put(st, &src);
		return 0;
	}
	dfs_buf_init(&payload, PACK_REC_MAX);
	for (off = hlen; off < committed;) {
		uint8_t hdr[PACK_REC_HDR];
		struct pack_rec r;
		ssize_t n = pack_src_pread(&src, hdr, sizeof(hdr), off);

		if (n != (ssize_t)sizeof(hdr) || pack_rec_decode(hdr, &r) < 0 ||
		    off + PACK_REC_HDR + r.stored_len > committed) {
			snprintf(what, wl, "%s", n < 0 ? "cannot read" : "damaged record header");
			bad = off;
			break;
		}
		if (r.type == PACK_REC_META) {
			if (pack_read_record(&src, id, off, &r, &payload) < 0) {
				snprintf(what, wl, "damaged metadata record (an index rebuild "
					 "would lose that commit)");
				bad = off;
				break;
			}
			(*meta)++;
		}
		off += PACK_REC_HDR + r.stored_len;
	}
	dfs_buf_release(&payload);
	store_pack_src_put(st, &src);
	return bad;
}

struct check_packs {
	struct store *st;
	int (*fn)(void *arg, uint32_t pack, uint64_t off, const char *what);
	void *arg;
	uint64_t packs, meta;
};

static int check_pack(void *arg, uint32_t id, uint64_t committed)
{
	struct check_packs *c = arg;
	char what[256] = "";
	uint64_t bad;

	c->packs++;
	bad = check_one_pack(c->st, id, committed, &c->meta, what, sizeof(what));
	return bad == UINT64_MAX ? 0 : c->fn(c->arg, id, bad, what);
}

int store_check_packs(struct store *st,
		      int (*fn)(void *arg, uint32_t pack, uint64_t off, const char *what),
		      void *arg, uint64_t *packs, uint64_t *meta)
{
	struct check_packs c = { .st = st, .fn = fn, .arg = arg };
	uint64_t malformed = 0;
	int rc = each_pack(st, check_pack, &c, &malformed);

	if (rc == 0 && malformed)
		rc = fn(arg, 0, 0, "the index holds malformed pack records");
	*packs = c.packs;
	*meta = c.meta;
	return rc;
}

/* ---- checkpoints ---------------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_flush_start(struct store *st)
{
	return st->mode == STORE_WRITER ? idx_flush(st->ix, false) : -EROFS;
}

bool store_disk_head(const struct store *st)
{
	return st->one_read == SIZE_MAX;
}

int store_index_tables(struct store *st, struct idx_table **out, size_t *n)
{
	return idx_tables(st->ix, out, n);
}

int store_checkpoint(struct store *st)
{
	char dir[PATH_MAX], path[PATH_MAX + 300];
	char *names[1024];
	size_t n = 0;
	struct dirent *de;
	time_t now = time(NULL);
	struct tm tm;
	DIR *d;
	int rc;

	gmtime_r(&now, &tm);
	snprintf(dir, sizeof(dir), "%s/checkpoints", st->dir);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%04d%02d%02dT%02d%02d%02dZ-%" PRIu64, dir,
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 st->commit_seq);
	rc = idx_checkpoint(st->ix, path);
	if (rc == 0)
		rc = sio_fsync_dir(dir);	/* checkpoints/ itself: the new entry */
	if (rc < 0)
		return rc;
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < 1024) {
		if (de->d_name[0] == '.')
			continue;
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + st->params.keep_checkpoints < n) {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
			sio_remove_tree(path);
		}
		free(names[i]);
	}
	return 0;
}

/* ---- moving packs between backends ---------------------------------------------------- */

struct move {
	struct store *st;
	struct pback *to;
	struct store_move_report *rep;
};

static int foreign_object(void *arg, uint32_t id, uint64_t size)
{
	struct move *m = arg;

	(void)size;
	return pack_known(m->st, id) ? 0 : -EEXIST;
}

/*
 * DFS_TEST_FAULTS builds: DFS_FAULT_MOVE=N ends the process (_exit(137), a kill -9) after
 * the N-th pack a push put, or a pull fetched or deleted (counted together).
 */
static void move_fault(void)
{
#ifdef DFS_TEST_FAULTS
	static unsigned long done;
	const char *s = getenv("DFS_FAULT_MOVE");

	if (s && ++done == strtoul(s, NULL, 10))
		_exit(137);
#endif
}

static int push_one(void *arg, uint32_t id, uint64_t committed)
{
	struct move *m = arg;
	char path[PATH_MAX];
	int rc = pack_path(m->st->dir, id, path, sizeof(path));

	if (rc == 0)
		rc = pback_put(m->to, id, path, committed);
	if (rc < 0) {
		dfs_err("pack %08" PRIx32 ": cannot put it: %s", id, dfs_strerror(rc));
		return rc;
	}
	m->rep->packs++;
	m->rep->bytes += committed;
	move_fault();
	return 0;
}

static int unstage_one(void *arg, uint32_t id, uint64_t committed)
{
	(void)committed;
	store_pack_unstage(arg, id);
	return 0;
}

/* The config of @st with the backend lines of @o (none when @o->packs is empty). */
static int config_switch(struct store *st, const struct store_create_opts *o)
{
	struct store_create_opts np = st->params;
	char path[PATH_MAX];
	struct dfs_buf cfg;
	int rc;

	memcpy(np.packs, o->packs, sizeof(np.packs));
	memcpy(np.s3_endpoint, o->s3_endpoint, sizeof(np.s3_endpoint));
	memcpy(np.s3_region, o->s3_region, sizeof(np.s3_region));
	memcpy(np.s3_credentials, o->s3_credentials, sizeof(np.s3_credentials));
	np.s3_vhost = o->s3_vhost;
	dfs_buf_init(&cfg, PACK_CONFIG_MAX);
	rc = config_render(st->id_hex, &np, &cfg);
	snprintf(path, sizeof(path), "%s/config", st->dir);
	if (rc == 0)
		rc = store_write_file_atomic(path, cfg.data, cfg.len);
	dfs_buf_release(&cfg);
	return rc;
}

/* The writer's store for a move: -EEXIST (push) / -EINVAL (pull) if the packs are there. */
static int move_open(const char *dir, bool to_remote, struct move *m)
{
	struct store_open_opts so = { .mode = STORE_WRITER };
	int rc;

	memset(m->rep, 0, sizeof(*m->rep));
	rc = store_open(dir, &so, &m->st);
	if (rc < 0)
		return rc;
	if (!m->st->params.packs[0] == !to_remote) {
		dfs_err("%s: its packs are %s%s already", dir, to_remote ? "on " : "local",
			m->st->params.packs);
		store_close(m->st);
		m->st = NULL;
		return to_remote ? -EEXIST : -EINVAL;
	}
	return 0;
}

int store_push(const char *dir, const struct store_create_opts *to,
	       struct store_move_report *rep)
{
	struct move m = { .rep = rep };
	struct store *st;
	int rc = move_open(dir, true, &m);

	if (rc < 0)
		return rc;
	st = m.st;
	rc = remote_backend_new(to, &m.to);
	if (rc == 0)
		rc = pback_s3_make_bucket(m.to);
	/* objects there must be ours (a push cut short), never another store's */
	if (rc == 0)
		rc = pback_list(m.to, foreign_object, &m);
	if (rc == -EEXIST)
		dfs_err("%s: %s holds packs this store does not know (another store's?)", dir,
			to->packs);
	if (rc == 0)
		rc = each_pack(st, push_one, &m, NULL);
	if (rc == 0)
		rc = config_switch(st, to);
	if (rc == 0)
		each_pack(st, unstage_one, st, NULL);
	pback_free(m.to);
	store_close(st);
	return rc;
}

static int pull_one(void *arg, uint32_t id, uint64_t committed)
{
	struct move *m = arg;
	struct store *st = m->st;
	char path[PATH_MAX], tmp[PATH_MAX + 8], dir[PATH_MAX];
	uint64_t size, off = 0;
	uint8_t *buf;
	int fd, rc;

	if (pback_stat(st->stage, id, &size) == 0 && size == committed)
		goto done;	/* a pull cut short fetched it */
	pack_path(st->dir, id, path, sizeof(path));
	pack_dir_path(st->dir, id, dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rc = sio_mkdir(dir, 0700);
	if (rc < 0 && rc != -EEXIST)
		return rc;
	buf = malloc(4u << 20);
	fd = buf ? sio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600) : -ENOMEM;
	if (fd < 0) {
		free(buf);
		return fd;
	}
	rc = 0;
	while (rc == 0 && off < committed) {
		size_t want = committed - off < (4u << 20) ? (size_t)(committed - off) : 4u << 20;
		ssize_t n = pback_get(st->pb, id, buf, want, off);

		if (n < 0)
			rc = (int)n;
		else if ((size_t)n != want)
			rc = -EBADMSG;	/* shorter than committed */
		else
			rc = sio_pwrite(fd, buf, want, (off_t)off);
		off += want;
	}
	free(buf);
	rc = sio_commit_tmp(fd, rc, tmp, path);
	if (rc < 0) {
		dfs_err("pack %08" PRIx32 ": cannot fetch it: %s", id, dfs_strerror(rc));
		return rc;
	}
done:
	m->rep->packs++;
	m->rep->bytes += committed;
	move_fault();
	return 0;
}

static int delete_one(void *arg, uint32_t id, uint64_t committed)
{
	struct pback *pb = arg;
	int rc = pback_del(pb, id);

	(void)committed;
	if (rc < 0 && rc != -ENOENT)
		dfs_warn("pack %08" PRIx32 ": its object stays on the server (%s)", id,
			 dfs_strerror(rc));
	move_fault();
	return 0;
}

int store_pull(const char *dir, struct store_move_report *rep)
{
	struct store_create_opts local = { 0 };
	struct move m = { .rep = rep };
	struct store *st;
	int rc = move_open(dir, false, &m);

	if (rc < 0)
		return rc;
	st = m.st;
	rc = each_pack(st, pull_one, &m, NULL);
	/* the objects go before the config changes: a cut between leaves a remote store
	 * whose packs are all staged (read from there; a writer would put them again), and
	 * the rerun finishes; the other order would leave objects no config names */
	if (rc == 0)
		each_pack(st, delete_one, st->pb, NULL);
	if (rc == 0)
		rc = config_switch(st, &local);
	store_close(st);
	return rc;
}
