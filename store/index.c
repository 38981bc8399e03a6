/*
 * index.c - RocksDB behind the idx_ API (the only file that sees rocksdb_*).
 *
 * Column families: see enum idx_cf (meta is "default"). A batch reads its own writes:
 * every write goes to a plain RocksDB WriteBatch (what the commit writes, in order) and
 * to a log of its own, indexed by a hash table of the latest write of each key, which
 * answers point reads. Iterators over a batch need the writes in key order: when one is
 * created, the writes under its prefix (chained per column family and 8-byte key prefix,
 * the inode number of a directory's entries) not put there yet go into a
 * WriteBatchWithIndex, and the iterator is built on it "with base" on a database iterator. A batch
 * that is only written and read by key (the organizer's, the ingest's) never pays for
 * the ordered index: a WriteBatchWithIndex put costs a skiplist insert with a search for
 * the key first (docs/BENCHMARKS.md, "Index batches").
 *
 * Readers: a reader's database is a RocksDB secondary instance that live follow may
 * replace by a fresh one (idx_catch_up: RocksDB's own catch-up loses writes when the
 * primary switches MANIFEST or WAL); reads hold a reference on the instance they use.
 * Each instance has a private directory (RocksDB keeps its info LOG there), made with an
 * unpredictable name in the reader's base directory and reached through descriptors
 * only (struct idx_base): a path the reader did not make is never followed or reused.
 *
 * Threads: rocksdb_t is thread-safe; a batch or iterator belongs to one thread; the
 * current instance and its reference counts are under idx.lock, catch-ups are
 * serialized by idx.catch_lock.
 *
 * SPDX-License-Identifier: MIT
 */
#include "index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "fp.h"
#include "log.h"
#include "sio.h"

static const char *const cf_names[IDX_NCF] = {
	"default", "chunks", "contents", "inodes", "dirents", "sources", "srcmap", "packs",
};

/*
 * One open RocksDB instance. A writer has one for its whole life. A reader (a secondary
 * instance) may replace its instance by a fresh one at a catch-up (see idx_catch_up):
 * every read takes a reference on the current instance for its duration, an iterator
 * until it is freed, and an instance that is no longer current closes with its last
 * reference.
 */
struct idx_inst {
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[IDX_NCF];
	/* a secondary's private directory, removed when it closes: its name in the base it
	 * was made in (dir_parent, a descriptor of its own) and its identity */
	int dir_parent;
	char dir_name[16];
	struct stat dir_id;
	char *sig;		/* a secondary: the primary's state when it was opened */
	unsigned refs;		/* under idx.lock */
};

/*
 * A reader's base: the directory its instances make their private directories in. At
 * first the caller's (@secondary_path of idx_open); if that one is removed under a long
 * mount (a cleaner of /tmp), a fresh one made beside it with an unpredictable name. It is
 * reached through descriptors only: a path is never walked again, so a symlink or another
 * user's directory put at its name is never followed; renamed, it is still ours and used.
 */
struct idx_base {
	int parent;		/* the directory holding it */
	int fd;
	char *name;		/* its name in parent: removed at close if still it and empty */
	char *path;		/* for messages (and idx_open's fallback, see follow_path) */
	struct stat id;
};

struct idx {
	char *path;
	rocksdb_options_t *opts;
	rocksdb_options_t *cf_opts[IDX_NCF];
	rocksdb_block_based_table_options_t *topts;
	/* META's: no filter (it is walked by prefix, or read at a few known keys) */
	rocksdb_block_based_table_options_t *topts_meta;
	rocksdb_cache_t *cache;		/* shared by the instances of a reader */
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wsync;
	rocksdb_writeoptions_t *wnosync;
	bool secondary;
	char *sec_base;			/* the caller's directory for the reader (a path) */
	pthread_mutex_t catch_lock;	/* one catch-up at a time; protects the four below */
	struct idx_base base;		/* a reader's (see struct idx_base) */
	unsigned reopen_failures;	/* in a row (warned about from the third) */
	char *seen;			/* the primary's files at the last catch-up */
	uint64_t tails;			/* RocksDB catch-ups run (idx_catch_up_count) */
	pthread_mutex_t lock;		/* protects cur and every refs */
	struct idx_inst *cur;
};

/*
 * A write as the batch keeps it for reads: column family, BATCH_PUT or BATCH_DEL, whether
 * it is in the ordered index yet, key length and value length (u32, host order), the
 * previous write with the same column family and first BATCH_PREFIX key bytes (offset + 1
 * in the log, u64; 0: none), key, value.
 */
#define BATCH_HDR 19u
#define BATCH_PUT 1
#define BATCH_DEL 2
#define BATCH_PREFIX 8u		/* what iterators over a batch ask for: one directory */
#define BATCH_LOG_MAX (1ull << 36)

struct bslot {
	uint64_t h;	/* hash of (column family, key), or of (column family, prefix) */
	size_t off;	/* offset of the latest such write in the log, + 1 (0: empty) */
};

/* An open-addressing table of bslots: power-of-2 size, at most half full. */
struct btab {
	struct bslot *v;
	size_t cap, n;
};

struct idx_batch {
	struct idx *ix;
	rocksdb_writebatch_t *wb;	/* every write, in order: what the commit writes */
	struct dfs_buf log;		/* the same writes, for reads */
	struct btab keys;		/* the latest write of each key */
	struct btab prefixes;		/* the latest write of each prefix (keys that long) */
	rocksdb_writebatch_wi_t *wi;	/* for iterators: the writes marked indexed, by key */
	int err;			/* first failure to keep a write (sticky) */
};

struct idx_iter {
	struct idx *ix;
	struct idx_inst *inst;	/* a reference, dropped by idx_iter_free */
	rocksdb_iterator_t *it;
	uint8_t *prefix;
	size_t plen;
	bool started;
};

static int take_err(char *err, const char *what)
{
	if (!err)
		return 0;
	dfs_err("index: %s: %s", what, err);
	rocksdb_free(err);
	return -EIO;
}

static void inst_close(struct idx_inst *in)
{
	if (!in)
		return;
	for (int i = 0; i < IDX_NCF; i++)
		if (in->cf[i])
			rocksdb_column_family_handle_destroy(in->cf[i]);
	if (in->db)
		rocksdb_close(in->db);
	if (in->dir_parent >= 0) {
		sio_private_remove(in->dir_parent, in->dir_name, &in->dir_id, true);
		close(in->dir_parent);
	}
	free(in->sig);
	free(in);
}

static void base_release(struct idx_base *b, bool remove)
{
	if (remove && b->name && b->parent >= 0)
		sio_private_remove(b->parent, b->name, &b->id, false);
	if (b->fd >= 0)
		close(b->fd);
	if (b->parent >= 0)
		close(b->parent);
	free(b->name);
	free(b->path);
	*b = (struct idx_base){ .parent = -1, .fd = -1 };
}

/*
 * Opens the parent of @path (by path: the caller chose where its reader lives) into
 * @b->parent and sets @b->name and @b->path. 0 or -errno.
 */
static int base_parent_open(const char *path, struct idx_base *b)
{
	char *dir = strdup(path), *slash;
	size_t n;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	for (n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	slash = strrchr(dir, '/');
	b->name = strdup(slash ? slash + 1 : dir);
	b->path = strdup(dir);
	if (slash)
		*slash = '\0';
	if (!b->name || !b->path)
		rc = -ENOMEM;
	else if (!*b->name || !strcmp(b->name, ".") || !strcmp(b->name, ".."))
		rc = -EINVAL;
	else if ((b->parent = open(!slash ? "." : slash == dir ? "/" : dir,
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rc = -errno;
	free(dir);
	return rc;
}

/*
 * The caller's directory for a reader: made if missing (mode 0700), then opened without
 * following a symlink and checked to be ours and private. 0 or -errno (logged).
 */
static int base_open(const char *path, struct idx_base *b)
{
	int rc;

	*b = (struct idx_base){ .parent = -1, .fd = -1 };
	rc = base_parent_open(path, b);
	if (rc == 0 && mkdirat(b->parent, b->name, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc == 0) {
		b->fd = openat(b->parent, b->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			       O_CLOEXEC);
		rc = b->fd < 0 ? -errno : sio_private_check(b->fd, &b->id);
	}
	if (rc < 0) {
		dfs_err("index: %s: not usable as the reader's private directory: %s%s", path,
			dfs_strerror(rc), rc == -ELOOP || rc == -ENOTDIR || rc == -EPERM
			? " (it must be a directory of ours, mode 0700, not a symlink)" : "");
		base_release(b, false);
	}
	return rc;
}

/*
 * The reader's base, still ours (sio_private_check)? If it was removed or changed, a
 * fresh one is made beside the caller's, named after it with an unpredictable suffix;
 * the old one is removed if it is still there, ours and empty. catch_lock held.
 */
static int base_ensure(struct idx *ix)
{
	struct idx_base fresh = { .parent = -1, .fd = -1 };
	char name[NAME_MAX + 1], prefix[NAME_MAX + 1];
	int rc, why;

	why = sio_private_check(ix->base.fd, NULL);
	if (why == 0)
		return 0;
	rc = base_parent_open(ix->sec_base, &fresh);
	if (rc == 0) {
		snprintf(prefix, sizeof(prefix), "%.200s.", fresh.name);
		rc = sio_private_mkdir(fresh.parent, prefix, name, sizeof(name), &fresh.fd,
				       &fresh.id);
	}
	if (rc == 0) {
		/* the caller's path with its last component replaced */
		const char *slash = strrchr(fresh.path, '/');
		int dlen = slash ? (int)(slash - fresh.path) + 1 : 0;
		size_t len = (size_t)dlen + strlen(name) + 1;
		char *p = malloc(len);

		if (p)
			snprintf(p, len, "%.*s%s", dlen, fresh.path, name);
		free(fresh.path);
		fresh.path = p;
		free(fresh.name);
		fresh.name = strdup(name);
		if (!fresh.name || !fresh.path)
			rc = -ENOMEM;
	}
	if (rc < 0) {
		if (fresh.fd >= 0)	/* made, but no memory to keep it */
			sio_private_remove(fresh.parent, name, &fresh.id, false);
		dfs_info("index: %s: the reader's private directory is gone or changed (%s) "
			 "and a fresh one cannot be made: %s", ix->base.path, dfs_strerror(why),
			 dfs_strerror(rc));
		base_release(&fresh, false);
		return rc;
	}
	dfs_warn("index: %s: the reader's private directory is gone or changed (%s); "
		 "following goes on in a fresh one, %s", ix->base.path, dfs_strerror(why),
		 fresh.path);
	base_release(&ix->base, true);
	ix->base = fresh;
	return 0;
}

/*
 * The path RocksDB gets for an instance's private directory open at @fd: the
 * descriptor's own (/proc/self/fd/N), which no rename or symlink can redirect; RocksDB
 * uses it only while the instance opens (its info LOG). Without /proc, the path in the
 * base, if it still leads to that directory (a check a rename could race).
 */
static int follow_path(struct idx *ix, struct idx_inst *in, int fd, char *buf, size_t len)
{
	struct stat sb;

	snprintf(buf, len, "/proc/self/fd/%d", fd);
	if (stat(buf, &sb) == 0 && sb.st_dev == in->dir_id.st_dev &&
	    sb.st_ino == in->dir_id.st_ino)
		return 0;
	snprintf(buf, len, "%s/%s", ix->base.path, in->dir_name);
	if (lstat(buf, &sb) == 0 && sb.st_dev == in->dir_id.st_dev &&
	    sb.st_ino == in->dir_id.st_ino)
		return 0;
	return -ESTALE;
}

/* A fresh private directory for @in in the reader's base (catch_lock held). */
static int follow_dir_make(struct idx *ix, struct idx_inst *in, int *fd)
{
	int rc;

	*fd = -1;
	rc = base_ensure(ix);
	if (rc < 0)
		return rc;
	rc = sio_private_mkdir(ix->base.fd, "i.", in->dir_name, sizeof(in->dir_name), fd,
			       &in->dir_id);
	if (rc < 0)
		return rc;
	in->dir_parent = fcntl(ix->base.fd, F_DUPFD_CLOEXEC, 0);
	if (in->dir_parent < 0) {
		rc = -errno;
		sio_private_remove(ix->base.fd, in->dir_name, &in->dir_id, true);
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/*
 * What identifies the primary's state for a secondary: its CURRENT file (which MANIFEST
 * is live: a new one at every open of the primary) and its newest WAL (a new one at
 * every memtable flush). NULL if it cannot be read (an ingest may be switching). With
 * @tail, the sizes and mtimes of that MANIFEST and WAL are added: both files are only
 * appended to (no WAL recycling; preallocation keeps the size), so while this longer
 * signature stays the same the primary wrote nothing a catch-up could find.
 */
static char *primary_sig(const char *path, bool tail)
{
	char name[4096], cur[256] = "";
	unsigned long long newest = 0;
	struct stat man = { 0 }, wal = { 0 };
	struct dirent *de;
	ssize_t n = -1;
	size_t len;
	char *sig;
	DIR *d;
	int fd;

	snprintf(name, sizeof(name), "%s/CURRENT", path);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, cur, sizeof(cur) - 1);
		close(fd);
	}
	if (n <= 0)
		return NULL;
	cur[n] = '\0';
	cur[strcspn(cur, "\n")] = '\0';
	d = opendir(path);
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		unsigned long long num;
		char tail_name[8];

		if (sscanf(de->d_name, "%llu.%7s", &num, tail_name) == 2 &&
		    !strcmp(tail_name, "log") && num > newest)
			newest = num;
	}
	closedir(d);
	if (tail) {
		snprintf(name, sizeof(name), "%s/%s", path, cur);
		if (strchr(cur, '/') || stat(name, &man) < 0)
			return NULL;
		snprintf(name, sizeof(name), "%s/%06llu.log", path, newest);
		if (newest && stat(name, &wal) < 0)
			return NULL;
	}
	len = strlen(cur) + 160;
	sig = malloc(len);
	if (sig && !tail)
		snprintf(sig, len, "%s|%llu", cur, newest);
	else if (sig)
		snprintf(sig, len, "%s|%llu|%lld.%ld.%ld|%lld.%ld.%ld", cur, newest,
			 (long long)man.st_size, (long)man.st_mtim.tv_sec, man.st_mtim.tv_nsec,
			 (long long)wal.st_size, (long)wal.st_mtim.tv_sec, wal.st_mtim.tv_nsec);
	return sig;
}

/* Opens an instance of @ix's database; a reader's gets the next private directory. */
static int inst_open(struct idx *ix, bool quiet, struct idx_inst **out)
{
	const char *names[IDX_NCF];
	const rocksdb_options_t *cfo[IDX_NCF];
	struct idx_inst *in = calloc(1, sizeof(*in));
	char *err = NULL;

	*out = NULL;
	if (!in)
		return -ENOMEM;
	in->dir_parent = -1;
	for (int i = 0; i < IDX_NCF; i++) {
		names[i] = cf_names[i];
		cfo[i] = ix->cf_opts[i];
	}
	if (ix->secondary) {
		char dpath[PATH_MAX];
		int fd, rc;

		in->sig = primary_sig(ix->path, false);
		rc = follow_dir_make(ix, in, &fd);
		if (rc == 0) {
			rc = follow_path(ix, in, fd, dpath, sizeof(dpath));
			if (rc == 0)
				in->db = rocksdb_open_as_secondary_column_families(
					ix->opts, ix->path, dpath, IDX_NCF, names, cfo, in->cf,
					&err);
			close(fd);
		}
		if (rc < 0) {
			if (quiet)
				dfs_info("index: %s: no private directory for a fresh view: %s",
					 ix->base.path, dfs_strerror(rc));
			else
				dfs_err("index: %s: no private directory for the reader: %s",
					ix->base.path, dfs_strerror(rc));
			inst_close(in);
			return rc;
		}
	} else {
		in->db = rocksdb_open_column_families(ix->opts, ix->path, IDX_NCF, names, cfo,
						      in->cf, &err);
	}
	if (err) {
		if (quiet) {
			dfs_info("index: %s: %s", ix->path, err);
			rocksdb_free(err);
		} else {
			take_err(err, ix->path);
		}
		in->db = NULL;
		inst_close(in);
		return -EIO;
	}
	in->refs = 1;	/* the idx's own, while it is current */
	*out = in;
	return 0;
}

/*
 * The current instance, with a reference for the caller (inst_put). A writer's never
 * changes: no reference is counted for it.
 */
static struct idx_inst *inst_get(struct idx *ix)
{
	struct idx_inst *in;

	if (!ix->secondary)
		return ix->cur;
	pthread_mutex_lock(&ix->lock);
	in = ix->cur;
	in->refs++;
	pthread_mutex_unlock(&ix->lock);
	return in;
}

static void inst_put(struct idx *ix, struct idx_inst *in)
{
	bool last;

	if (!ix->secondary)
		return;
	pthread_mutex_lock(&ix->lock);
	last = --in->refs == 0;
	pthread_mutex_unlock(&ix->lock);
	if (last)
		inst_close(in);
}

/*
 * Table options: partitioned filters and indexes (small blocks, a pinned top level) in
 * the block cache @cache; a bloom filter when @filter.
 */
static rocksdb_block_based_table_options_t *table_opts(rocksdb_cache_t *cache, bool filter)
{
	rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();

	rocksdb_block_based_options_set_block_cache(t, cache);
	if (filter)	/* (the table options own it) */
		rocksdb_block_based_options_set_filter_policy(t,
			rocksdb_filterpolicy_create_bloom_full(10));
	rocksdb_block_based_options_set_index_type(t,
		rocksdb_block_based_table_index_type_two_level_index_search);
	rocksdb_block_based_options_set_partition_filters(t, filter);
	rocksdb_block_based_options_set_metadata_block_size(t, 4096);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
	rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
	rocksdb_block_based_options_set_format_version(t, 5);
	return t;
}

int idx_open(const char *path, bool create, const char *secondary_path, size_t block_cache,
	     struct idx **out)
{
	rocksdb_lru_cache_options_t *lo;
	struct idx *ix;
	int rc;

	*out = NULL;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	pthread_mutex_init(&ix->lock, NULL);
	pthread_mutex_init(&ix->catch_lock, NULL);
	ix->base = (struct idx_base){ .parent = -1, .fd = -1 };
	ix->secondary = secondary_path != NULL;
	ix->path = strdup(path);
	ix->sec_base = secondary_path ? strdup(secondary_path) : NULL;
	if (!ix->path || (secondary_path && !ix->sec_base)) {
		idx_close(ix);
		return -ENOMEM;
	}
	if (secondary_path) {
		rc = base_open(secondary_path, &ix->base);
		if (rc < 0) {
			idx_close(ix);
			return rc;
		}
	}
	/*
	 * Filters and indexes are partitioned (small blocks, a pinned top level) and live
	 * in the block cache: a whole-file filter block of a large SST (1.5 MB for a 69 MB
	 * file) did not fit a cache shard, so every point lookup read it from disk again.
	 * Few shards, so that any block fits one.
	 */
	lo = rocksdb_lru_cache_options_create();
	rocksdb_lru_cache_options_set_capacity(lo, block_cache ? block_cache : (64u << 20));
	rocksdb_lru_cache_options_set_num_shard_bits(lo, 2);
	ix->cache = rocksdb_cache_create_lru_opts(lo);
	rocksdb_lru_cache_options_destroy(lo);
	ix->topts = table_opts(ix->cache, true);
	ix->topts_meta = table_opts(ix->cache, false);

	ix->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(ix->opts, create);
	rocksdb_options_set_create_missing_column_families(ix->opts, create);
	rocksdb_options_set_paranoid_checks(ix->opts, 1);
	rocksdb_options_set_wal_recovery_mode(ix->opts, rocksdb_point_in_time_recovery);
	rocksdb_options_set_max_background_jobs(ix->opts, 2);
	/* memtables of all column families together: memory bounded by configuration */
	rocksdb_options_set_db_write_buffer_size(ix->opts, 64u << 20);
	rocksdb_options_set_write_buffer_size(ix->opts, 32u << 20);
	rocksdb_options_set_keep_log_file_num(ix->opts, 3);
	/* all families flush together: one with an empty memtable would otherwise keep an
	 * older WAL's log number, and that WAL would stay in index/ and every checkpoint */
	rocksdb_options_set_atomic_flush(ix->opts, 1);
	rocksdb_options_set_info_log_level(ix->opts, 2 /* WARN */);
	if (ix->secondary)
		rocksdb_options_set_max_open_files(ix->opts, -1);
	else
		rocksdb_options_set_max_open_files(ix->opts, 512);
	for (int i = 0; i < IDX_NCF; i++) {
		ix->cf_opts[i] = rocksdb_options_create_copy(ix->opts);
		rocksdb_options_set_block_based_table_factory(ix->cf_opts[i],
			i == IDX_META ? ix->topts_meta : ix->topts);
		/*
		 * META holds the derived records (copy alignment's signatures and postings,
		 * mostly hashes): zstd takes 25% off them where lz4 took little (on disk, in
		 * the worst case of bench_align_scale, 12.1% of the rest of the index
		 * before, 9.0% after; docs/BENCHMARKS.md). Each table file says its own
		 * compression: files written before stay readable.
		 */
		rocksdb_options_set_compression(ix->cf_opts[i],
						i == IDX_CHUNKS ? rocksdb_no_compression
						: i == IDX_META ? rocksdb_zstd_compression
								: rocksdb_lz4_compression);
	}
	ix->ropts = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(ix->ropts, 1);
	ix->wsync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(ix->wsync, 1);
	ix->wnosync = rocksdb_writeoptions_create();
	if (ix->secondary)	/* read before the open: the first view holds that state */
		ix->seen = primary_sig(ix->path, true);
	rc = inst_open(ix, false, &ix->cur);
	if (rc < 0) {
		idx_close(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

void idx_close(struct idx *ix)
{
	if (!ix)
		return;
	if (ix->cur && ix->secondary && ix->cur->refs != 1) {
		/* a caller's bug: what is still in use is left allocated, not freed under it */
		dfs_err("index: %s: closed with %u reads or iterators still open", ix->path,
			ix->cur->refs - 1);
		return;
	}
	inst_close(ix->cur);
	base_release(&ix->base, true);
	for (int i = 0; i < IDX_NCF; i++)
		if (ix->cf_opts[i])
			rocksdb_options_destroy(ix->cf_opts[i]);
	if (ix->opts)
		rocksdb_options_destroy(ix->opts);
	if (ix->topts)
		rocksdb_block_based_options_destroy(ix->topts);
	if (ix->topts_meta)
		rocksdb_block_based_options_destroy(ix->topts_meta);
	if (ix->cache)
		rocksdb_cache_destroy(ix->cache);
	if (ix->ropts)
		rocksdb_readoptions_destroy(ix->ropts);
	if (ix->wsync)
		rocksdb_writeoptions_destroy(ix->wsync);
	if (ix->wnosync)
		rocksdb_writeoptions_destroy(ix->wnosync);
	pthread_mutex_destroy(&ix->lock);
	pthread_mutex_destroy(&ix->catch_lock);
	free(ix->path);
	free(ix->sec_base);
	free(ix->seen);
	free(ix);
}

/*
 * RocksDB's catch-up (TryCatchUpWithPrimary, 7.8) loses writes when the primary switches
 * MANIFEST or WAL between two catch-ups: it returns success, its sequence number is the
 * primary's, and it answers from the old state for good (test_store's
 * test_secondary_follows shows it; docs/BENCHMARKS.md "Live follow" has the counts). So a
 * catch-up only tails a WAL it knows: when the
 * primary's CURRENT or newest WAL differs from what the current instance was opened at,
 * a fresh instance is opened (it reads the MANIFEST and replays the WALs like any open)
 * and replaces the current one, which closes when its last reader is done; its private
 * directory goes with it. A switch between reading the signature and catching up is
 * seen at the next call, whose fresh instance repairs what that catch-up lost: 1 is
 * returned for every replacement, since the sequence number alone may not move. If the
 * fresh open fails (the primary may delete a file it lists while it opens), the current
 * view is kept as it is (older, but a state the primary really had; a catch-up across
 * the switch would not be) and the next call tries again. When the primary's MANIFEST and
 * newest WAL have the same names, sizes and mtimes as at the last catch-up, nothing is
 * done: RocksDB's catch-up, even with nothing to read, rebuilds each family's version and
 * starts max_file_opening_threads - 1 threads per family to do it (120 thread starts a
 * tick for 8 families, through every cold read of an idle mount; docs/BENCHMARKS.md).
 */
int idx_catch_up(struct idx *ix)
{
	struct idx_inst *in, *fresh;
	char *err = NULL;
	char *tsig;
	size_t plain;
	int rc;

	if (!ix->secondary)
		return 0;
	pthread_mutex_lock(&ix->catch_lock);
	tsig = primary_sig(ix->path, true);
	if (tsig && ix->seen && strcmp(tsig, ix->seen) == 0) {
		/* nothing written since the last look: RocksDB's catch-up would still read
		 * the MANIFEST's tail and start a file-opening thread pool per family */
		free(tsig);
		pthread_mutex_unlock(&ix->catch_lock);
		return 0;
	}
	free(ix->seen);
	ix->seen = NULL;
	in = inst_get(ix);
	plain = in->sig ? strlen(in->sig) : 0;
	if (tsig && (!in->sig || strncmp(tsig, in->sig, plain) != 0 || tsig[plain] != '|')) {
		rc = inst_open(ix, true, &fresh);
		if (rc == 0) {
			ix->reopen_failures = 0;
			ix->seen = tsig;	/* read before the open: the view holds it */
			pthread_mutex_lock(&ix->lock);
			ix->cur = fresh;
			pthread_mutex_unlock(&ix->lock);
			inst_put(ix, in);	/* the idx's reference */
			inst_put(ix, in);	/* ours */
			pthread_mutex_unlock(&ix->catch_lock);
			return 1;
		}
		free(tsig);
		ix->reopen_failures++;
		if (ix->reopen_failures == 3 || ix->reopen_failures % 100 == 0)
			dfs_warn("index: %s: following the writer failed %u times in a row "
				 "(opening a fresh view: %s); still showing the older view",
				 ix->path, ix->reopen_failures, dfs_strerror(rc));
		inst_put(ix, in);
		pthread_mutex_unlock(&ix->catch_lock);
		return 0;
	}
	rocksdb_try_catch_up_with_primary(in->db, &err);
	ix->tails++;
	inst_put(ix, in);
	rc = take_err(err, "catch up with the writer");
	if (rc == 0)
		ix->seen = tsig;	/* read before the catch-up: it is in the view */
	else
		free(tsig);
	pthread_mutex_unlock(&ix->catch_lock);
	return rc;
}

uint64_t idx_catch_up_count(struct idx *ix)
{
	uint64_t n;

	pthread_mutex_lock(&ix->catch_lock);
	n = ix->tails;
	pthread_mutex_unlock(&ix->catch_lock);
	return n;
}

uint64_t idx_sequence(struct idx *ix)
{
	struct idx_inst *in = inst_get(ix);
	uint64_t seq = rocksdb_get_latest_sequence_number(in->db);

	inst_put(ix, in);
	return seq;
}

static int table_cmp(const void *a, const void *b)
{
	const struct idx_table *x = a, *y = b;

	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return x->size < y->size ? -1 : x->size > y->size;
}

int idx_tables(struct idx *ix, struct idx_table **out, size_t *n)
{
	struct idx_inst *in = inst_get(ix);
	const rocksdb_livefiles_t *lf = rocksdb_livefiles(in->db);
	struct idx_table *t = NULL;
	int count, rc = 0;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	count = lf ? rocksdb_livefiles_count(lf) : 0;
	if (count > 0 && !(t = calloc((size_t)count, sizeof(*t))))
		rc = -ENOMEM;
	for (int i = 0; rc == 0 && i < count; i++) {
		const char *name = rocksdb_livefiles_name(lf, i);

		if (!name)
			continue;
		/* RocksDB names them "/000123.sst", relative to the database's directory */
		if (asprintf(&t[k].path, "%s%s%s", ix->path, name[0] == '/' ? "" : "/",
			     name) < 0) {
			t[k].path = NULL;
			rc = -ENOMEM;
			break;
		}
		t[k].size = rocksdb_livefiles_size(lf, i);
		t[k].level = rocksdb_livefiles_level(lf, i);
		k++;
	}
	if (lf)
		rocksdb_livefiles_destroy(lf);
	inst_put(ix, in);
	if (rc < 0) {
		idx_tables_free(t, k);
		return rc;
	}
	if (k)
		qsort(t, k, sizeof(*t), table_cmp);
	*out = t;
	*n = k;
	return 0;
}

void idx_tables_free(struct idx_table *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		free(t[i].path);
	free(t);
}

int idx_get(struct idx *ix, enum idx_cf cf, const void *key, size_t klen, struct dfs_buf *val)
{
	struct idx_inst *in = inst_get(ix);
	char *err = NULL;
	size_t vlen = 0;
	char *v;
	int rc;

	dfs_buf_clear(val);
	v = rocksdb_get_cf(in->db, ix->ropts, in->cf[cf], key, klen, &vlen, &err);
	inst_put(ix, in);
	rc = take_err(err, "get");
	if (rc < 0)
		return rc;
	if (!v)
		return -ENOENT;
	rc = dfs_buf_append(val, v, vlen);
	rocksdb_free(v);
	return rc;
}

int idx_multi_get(struct idx *ix, enum idx_cf cf, size_t n, const void *const *keys,
		  const size_t *klens,
		  void (*fn)(void *arg, size_t i, int rc, const uint8_t *v, size_t vlen),
		  void *arg)
{
	rocksdb_pinnableslice_t **vals;
	struct idx_inst *in;
	char **errs;

	if (n == 0)
		return 0;
	vals = calloc(n, sizeof(*vals));
	errs = calloc(n, sizeof(*errs));
	if (!vals || !errs) {
		free(vals);
		free(errs);
		return -ENOMEM;
	}
	in = inst_get(ix);
	rocksdb_batched_multi_get_cf(in->db, ix->ropts, in->cf[cf], n, (const char *const *)keys,
				     klens, vals, errs, false);
	for (size_t i = 0; i < n; i++) {
		const char *v;
		size_t vlen = 0;

		if (errs[i]) {
			fn(arg, i, take_err(errs[i], "multi-get"), NULL, 0);
		} else if (!vals[i]) {
			fn(arg, i, -ENOENT, NULL, 0);
		} else {
			v = rocksdb_pinnableslice_value(vals[i], &vlen);
			fn(arg, i, 0, (const uint8_t *)v, vlen);
		}
		if (vals[i])
			rocksdb_pinnableslice_destroy(vals[i]);
	}
	inst_put(ix, in);	/* after the values, which it pins */
	free(errs);
	free(vals);
	return 0;
}

int idx_batch_new(struct idx *ix, struct idx_batch **out)
{
	struct idx_batch *b;

	*out = NULL;
	if (ix->secondary)
		return -EROFS;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ix = ix;
	b->wb = rocksdb_writebatch_create();
	dfs_buf_init(&b->log, BATCH_LOG_MAX);
	*out = b;
	return 0;
}

void idx_batch_free(struct idx_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	if (b->wi)
		rocksdb_writebatch_wi_destroy(b->wi);
	dfs_buf_release(&b->log);
	free(b->keys.v);
	free(b->prefixes.v);
	free(b);
}

static uint64_t batch_hash(enum idx_cf cf, const void *k, size_t klen)
{
	return fp_xxh3(k, klen) ^ ((uint64_t)cf + 1) * 0x9e3779b97f4a7c15ull;
}

/* A write of the log, decoded. */
struct bop {
	uint8_t cf, op, indexed;
	uint32_t klen, vlen;
	size_t prev;
	const uint8_t *k, *v;
};

static void batch_op(const struct idx_batch *b, size_t off, struct bop *o)
{
	const uint8_t *p = b->log.data + off;
	uint64_t prev;

	o->cf = p[0];
	o->op = p[1];
	o->indexed = p[2];
	memcpy(&o->klen, p + 3, 4);
	memcpy(&o->vlen, p + 7, 4);
	memcpy(&prev, p + 11, 8);
	o->prev = (size_t)prev;
	o->k = p + BATCH_HDR;
	o->v = o->k + o->klen;
}

/*
 * The slot for (@cf, the first @klen bytes of @k) in @t: the one holding the latest write
 * with that key (@prefix false) or key prefix (@prefix true), or the empty one where it
 * would go.
 */
static struct bslot *batch_slot(const struct idx_batch *b, const struct btab *t, uint64_t h,
				enum idx_cf cf, const void *k, size_t klen, bool prefix)
{
	size_t mask = t->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct bslot *s = &t->v[i];
		struct bop o;

		if (!s->off)
			return s;
		if (s->h != h)
			continue;
		batch_op(b, s->off - 1, &o);
		if (o.cf == cf && (prefix ? o.klen >= klen : o.klen == klen) &&
		    !memcmp(o.k, k, klen))
			return s;
	}
}

/* Makes room for one more entry in @t (doubling it; entries are distinct, so each goes to
 * the first empty slot). */
static int btab_reserve(struct btab *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	struct bslot *v;

	if ((t->n + 1) * 2 <= t->cap)
		return 0;
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		size_t j = t->v[i].h & (cap - 1);

		if (!t->v[i].off)
			continue;
		while (v[j].off)
			j = (j + 1) & (cap - 1);
		v[j] = t->v[i];
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Sets @s (found by batch_slot) to the write at @off. */
static void btab_set(struct btab *t, struct bslot *s, uint64_t h, size_t off)
{
	if (!s->off) {
		s->h = h;
		t->n++;
	}
	s->off = off + 1;
}

static void batch_write(struct idx_batch *b, enum idx_cf cf, uint8_t op, const void *k,
			size_t klen, const void *v, size_t vlen)
{
	uint8_t hdr[BATCH_HDR] = { (uint8_t)cf, op, 0 };
	uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
	uint64_t h = batch_hash(cf, k, klen), ph = 0, prev = 0;
	size_t off = b->log.len;
	struct bslot *s, *ps = NULL;

	if (b->err)
		return;
	if (klen > UINT32_MAX || vlen > UINT32_MAX) {
		b->err = -E2BIG;
		return;
	}
	if (btab_reserve(&b->keys) < 0 || btab_reserve(&b->prefixes) < 0) {
		b->err = -ENOMEM;
		return;
	}
	if (klen >= BATCH_PREFIX) {
		ph = batch_hash(cf, k, BATCH_PREFIX);
		ps = batch_slot(b, &b->prefixes, ph, cf, k, BATCH_PREFIX, true);
		prev = ps->off;
	}
	memcpy(hdr + 3, &kl, 4);
	memcpy(hdr + 7, &vl, 4);
	memcpy(hdr + 11, &prev, 8);
	dfs_buf_append(&b->log, hdr, sizeof(hdr));
	dfs_buf_append(&b->log, k, klen);
	dfs_buf_append(&b->log, v, vlen);
	if (b->log.err) {
		b->err = b->log.err;
		return;
	}
	s = batch_slot(b, &b->keys, h, cf, k, klen, false);
	btab_set(&b->keys, s, h, off);
	if (ps)
		btab_set(&b->prefixes, ps, ph, off);
	if (op == BATCH_PUT)
		rocksdb_writebatch_put_cf(b->wb, b->ix->cur->cf[cf], k, klen, v, vlen);
	else
		rocksdb_writebatch_delete_cf(b->wb, b->ix->cur->cf[cf], k, klen);
}

void idx_batch_put(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen,
		   const void *v, size_t vlen)
{
	batch_write(b, cf, BATCH_PUT, k, klen, v, vlen);
}

void idx_batch_del(struct idx_batch *b, enum idx_cf cf, const void *k, size_t klen)
{
	batch_write(b, cf, BATCH_DEL, k, klen, NULL, 0);
}

int idx_batch_get(struct idx_batch *b, enum idx_cf cf, const void *key, size_t klen,
		  struct dfs_buf *val)
{
	struct bslot *s;
	struct bop o;

	if (b->err)
		return b->err;
	if (!b->keys.n)
		return idx_get(b->ix, cf, key, klen, val);
	s = batch_slot(b, &b->keys, batch_hash(cf, key, klen), cf, key, klen, false);
	if (!s->off)
		return idx_get(b->ix, cf, key, klen, val);
	dfs_buf_clear(val);
	batch_op(b, s->off - 1, &o);
	if (o.op == BATCH_DEL)
		return -ENOENT;
	return dfs_buf_append(val, o.v, o.vlen);
}

size_t idx_batch_bytes(struct idx_batch *b)
{
	size_t n = 0;

	rocksdb_writebatch_data(b->wb, &n);
	return n;
}

static void batch_clear(struct idx_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
	if (b->wi)
		rocksdb_writebatch_wi_clear(b->wi);
	dfs_buf_clear(&b->log);
	if (b->keys.n)
		memset(b->keys.v, 0, b->keys.cap * sizeof(*b->keys.v));
	if (b->prefixes.n)
		memset(b->prefixes.v, 0, b->prefixes.cap * sizeof(*b->prefixes.v));
	b->keys.n = b->prefixes.n = 0;
	b->err = 0;
}

int idx_batch_commit(struct idx_batch *b, bool sync)
{
	char *err = NULL;
	int rc = b->err;

	if (rc == 0) {
		rocksdb_write(b->ix->cur->db, sync ? b->ix->wsync : b->ix->wnosync, b->wb, &err);
		rc = take_err(err, "commit");
	} else {
		dfs_err("index: a batch lost a write (%s): not committed", dfs_strerror(rc));
	}
	batch_clear(b);
	return rc;
}

/* Puts the write at @off into the ordered index and marks it so. */
static void batch_index_op(struct idx_batch *b, size_t off)
{
	struct bop o;

	batch_op(b, off, &o);
	if (o.op == BATCH_PUT)
		rocksdb_writebatch_wi_put_cf(b->wi, b->ix->cur->cf[o.cf], (const char *)o.k, o.klen,
					     (const char *)o.v, o.vlen);
	else
		rocksdb_writebatch_wi_delete_cf(b->wi, b->ix->cur->cf[o.cf], (const char *)o.k,
						o.klen);
	b->log.data[off + 2] = 1;
}

/*
 * Makes the ordered index hold every write under @prefix of @cf: with a prefix of
 * BATCH_PREFIX bytes, the writes of its chain not yet indexed, oldest first (a chain is
 * indexed from its oldest write up to some point, so the walk stops at the first indexed
 * one); with another prefix, every write not yet indexed.
 */
static int batch_index(struct idx_batch *b, enum idx_cf cf, const void *prefix, size_t plen)
{
	if (b->err)
		return b->err;
	if (!b->wi)
		b->wi = rocksdb_writebatch_wi_create(0, 1 /* overwrite_keys */);
	if (plen == BATCH_PREFIX) {
		struct bslot *s;
		size_t *v = NULL, n = 0, cap = 0;
		struct bop o;

		if (!b->prefixes.n)
			return 0;
		s = batch_slot(b, &b->prefixes, batch_hash(cf, prefix, plen), cf, prefix, plen,
			       true);
		for (size_t off = s->off; off; off = o.prev) {
			batch_op(b, off - 1, &o);
			if (o.indexed)
				break;
			if (n == cap) {
				size_t *x;

				cap = cap ? cap * 2 : 64;
				x = realloc(v, cap * sizeof(*v));
				if (!x) {
					free(v);
					return -ENOMEM;
				}
				v = x;
			}
			v[n++] = off - 1;
		}
		while (n)
			batch_index_op(b, v[--n]);
		free(v);
		return 0;
	}
	for (size_t off = 0; off < b->log.len;) {
		struct bop o;

		batch_op(b, off, &o);
		if (!o.indexed)
			batch_index_op(b, off);
		off += BATCH_HDR + o.klen + o.vlen;
	}
	return 0;
}

int idx_iter_new(struct idx *ix, struct idx_batch *b, enum idx_cf cf, const void *prefix,
		 size_t plen, const void *start, size_t slen, struct idx_iter **out)
{
	struct idx_iter *it = calloc(1, sizeof(*it));
	rocksdb_iterator_t *base;

	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->prefix = malloc(plen ? plen : 1);
	if (!it->prefix) {
		free(it);
		return -ENOMEM;
	}
	memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	it->ix = ix;
	if (b) {
		int rc = batch_index(b, cf, prefix, plen);

		if (rc < 0) {
			free(it->prefix);
			free(it);
			return rc;
		}
	}
	it->inst = inst_get(ix);
	base = rocksdb_create_iterator_cf(it->inst->db, ix->ropts, it->inst->cf[cf]);
	if (b)
		it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(b->wi, base,
									    it->inst->cf[cf]);
	else
		it->it = base;
	if (start)
		rocksdb_iter_seek(it->it, start, slen);
	else
		rocksdb_iter_seek(it->it, prefix, plen);
	*out = it;
	return 0;
}

int idx_iter_next(struct idx_iter *it, const uint8_t **k, size_t *klen, const uint8_t **v,
		  size_t *vlen)
{
	char *err = NULL;
	const char *kp;

	if (it->started)
		rocksdb_iter_next(it->it);
	it->started = true;
	if (!rocksdb_iter_valid(it->it)) {
		rocksdb_iter_get_error(it->it, &err);
		return take_err(err, "iterate");
	}
	kp = rocksdb_iter_key(it->it, klen);
	if (*klen < it->plen || memcmp(kp, it->prefix, it->plen) != 0)
		return 0;
	*k = (const uint8_t *)kp;
	*v = (const uint8_t *)rocksdb_iter_value(it->it, vlen);
	return 1;
}

void idx_iter_free(struct idx_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	inst_put(it->ix, it->inst);
	free(it->prefix);
	free(it);
}

int idx_checkpoint(struct idx *ix, const char *dir)
{
	rocksdb_checkpoint_t *cp;
	char *err = NULL;
	int rc;

	if (ix->secondary)
		return -EROFS;
	cp = rocksdb_checkpoint_object_create(ix->cur->db, &err);
	rc = take_err(err, "checkpoint");
	if (rc < 0)
		return rc;
	rocksdb_checkpoint_create(cp, dir, 0, &err);
	rc = take_err(err, dir);
	rocksdb_checkpoint_object_destroy(cp);
	return rc;
}

int idx_flush(struct idx *ix, bool wait)
{
	rocksdb_flushoptions_t *fo;
	char *err = NULL;

	if (ix->secondary)
		return -EROFS;
	fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, wait);
	for (int i = 0; i < IDX_NCF && !err; i++)
		rocksdb_flush_cf(ix->cur->db, fo, ix->cur->cf[i], &err);
	rocksdb_flushoptions_destroy(fo);
	return take_err(err, "flush");
}

int idx_compact(struct idx *ix)
{
	rocksdb_compactoptions_t *co;
	int rc = idx_flush(ix, true);

	if (rc < 0)
		return rc;
	co = rocksdb_compactoptions_create();
	rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /* kForce */);
	rocksdb_compactoptions_set_change_level(co, 1);
	/* (the C API reports no error of a manual compaction) */
	for (int i = 0; i < IDX_NCF; i++)
		rocksdb_compact_range_cf_opt(ix->cur->db, ix->cur->cf[i], co, NULL, 0, NULL, 0);
	rocksdb_compactoptions_destroy(co);
	return 0;
}
