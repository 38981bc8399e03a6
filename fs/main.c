/*
 * main.c - defragfs STORE MOUNTPOINT [-f] [-d] [-o OPTIONS]: mounts a store read-only.
 *
 * Works as `mount -t fuse.defragfs STORE MNT` and from /etc/fstab (mount.fuse3 runs this
 * program with "STORE MNT -o OPTS"). Checks everything it can before mounting (the store
 * opens, the mount point is not inside the store, allow_other only with
 * default_permissions), mounts, daemonizes (the parent returns once the mount is live),
 * then opens the store for real (a RocksDB secondary instance, started after the fork
 * because threads do not survive it), follows a running ingest, and exits cleanly on
 * umount, SIGTERM and SIGINT. Logs to syslog when in the background.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fs.h"
#include "reach.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "inode.h"
#include "ra.h"
#include "warm.h"
#include "store/log.h"

static const char *prog = "defragfs";

struct opts {
	char *store;
	char *cache_size;
	char *pack_cache;
	char *pack_cache_size;
	char *handle_mem;
	char *sources;
	char *read_ahead;
	char *index_warm;
	char *rotational;
	unsigned follow_interval;
	int allow_other;
	int default_permissions;
	unsigned max_read;
	struct fattr_maps maps;
	int nonopts;
	char *mnt;		/* the second argument: the mount point, as given */
	int rw;			/* -o rw was given (the mount stays read-only) */
};

enum { KEY_ALLOW_OTHER, KEY_DEFPERM, KEY_MAXREAD, KEY_DISCARD, KEY_HELP, KEY_VERSION,
       KEY_UIDMAP, KEY_GIDMAP, KEY_RW };

/* below this a pack cache holds too few blocks to be of use */
#define PCACHE_MIN (16u << 20)

#define OPT(t, p) { t, offsetof(struct opts, p), 1 }
static const struct fuse_opt dfs_opts[] = {
	OPT("cache_size=%s", cache_size),
	OPT("pack_cache=%s", pack_cache),
	OPT("pack_cache_size=%s", pack_cache_size),
	OPT("handle_mem=%s", handle_mem),
	OPT("sources=%s", sources),
	OPT("read_ahead=%s", read_ahead),
	OPT("index_warm=%s", index_warm),
	OPT("rotational=%s", rotational),
	OPT("follow_interval=%u", follow_interval),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFPERM),
	FUSE_OPT_KEY("max_read=%u", KEY_MAXREAD),
	FUSE_OPT_KEY("uidmap=", KEY_UIDMAP),
	FUSE_OPT_KEY("gidmap=", KEY_GIDMAP),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("user", KEY_DISCARD),
	FUSE_OPT_KEY("users", KEY_DISCARD),
	FUSE_OPT_KEY("nouser", KEY_DISCARD),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_END
};

static void usage(void)
{
	printf("Usage: %s STORE MOUNTPOINT [-f] [-d] [-o OPTION[,OPTION...]]\n"
	       "Mount the defragfs store STORE (read-only) at MOUNTPOINT: the organized tree at\n"
	       "the root, each source drive as it was under MOUNTPOINT/.sources/NAME.\n\n"
	       "  -f                     stay in the foreground (log to stderr)\n"
	       "  -d                     debug: foreground, every FUSE request logged\n"
	       "  -o cache_size=SIZE     decompressed chunk cache (default 256M; K/M/G suffixes)\n"
	       "  -o pack_cache=DIR       a store whose packs are on S3: where their bytes are\n"
	       "                         kept on disk once read (default STORE/pack-cache)\n"
	       "  -o pack_cache_size=SIZE at most this much of it (default 1G; K/M/G suffixes)\n"
	       "  -o max_read=N          largest read request (default: what the kernel allows)\n"
	       "  -o read_ahead=SIZE     the kernel's read-ahead on this mount (default 4M; 0\n"
	       "                         leaves the kernel's 128K; set as root only)\n"
	       "  -o index_warm=SIZE     keep up to this much of the index's files in the page\n"
	       "                         cache while the mount is used (default 1/16 of the\n"
	       "                         memory, at most 1G; 0: off)\n"
	       "  -o rotational=auto|0|1 the packs' disk has a head (1): a small read takes a\n"
	       "                         chunk's header and data in one request (default auto:\n"
	       "                         as the kernel says for the disk of STORE/packs)\n"
	       "  -o handle_mem=SIZE     memory open directories may hold (default 256M; more\n"
	       "                         opens get ENFILE until some are closed)\n"
	       "  -o uidmap=FROM:TO[:COUNT], gidmap=FROM:TO[:COUNT]\n"
	       "                         show stored owner ids FROM.. as TO.. (another machine's\n"
	       "                         drive); repeatable; ids no map holds are shown as stored\n"
	       "  -o sources=hidden|visible  list .sources in the root (default hidden: it is\n"
	       "                         reachable by name, like ZFS's .zfs)\n"
	       "  -o follow_interval=S   catch up with a running defrag-ingest every S seconds\n"
	       "                         (default 2; 0 disables)\n"
	       "  -o allow_other         let other users in (requires default_permissions)\n"
	       "  -o default_permissions let the kernel check modes and ACLs\n"
	       "  --help, --version\n\n"
	       "As a filesystem type: mount -t fuse.defragfs STORE MOUNTPOINT\n"
	       "In /etc/fstab: STORE MOUNTPOINT fuse.defragfs ro,allow_other,default_permissions 0 0\n"
	       "See defragfs(8).\n", prog);
}

static void usage_error(const char *msg)
{
	fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", prog, msg, prog);
	exit(2);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct opts *o = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->store) {
			o->store = strdup(arg);
			return 0;
		}
		if (!o->nonopts++ && !o->mnt)
			o->mnt = strdup(arg);
		return 1;
	case FUSE_OPT_KEY_OPT:
		if (!strncmp(arg, "x-", 2) || !strncmp(arg, "comment=", 8))
			return 0;	/* fstab annotations for other programs */
		return 1;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case KEY_DEFPERM:
		o->default_permissions = 1;
		return 1;
	case KEY_MAXREAD:	/* kept for libfuse; init must ask for the same size */
		if (sscanf(arg, "max_read=%u", &o->max_read) != 1)
			return -1;
		return 1;
	case KEY_UIDMAP:
	case KEY_GIDMAP: {
		bool uid = key == KEY_UIDMAP;
		size_t *n = uid ? &o->maps.nuid : &o->maps.ngid;
		struct fattr_idmap *m = uid ? o->maps.uid : o->maps.gid;

		if (*n == FATTR_MAX_MAPS) {
			fprintf(stderr, "%s: at most %d %s options\n", prog, FATTR_MAX_MAPS,
				uid ? "uidmap" : "gidmap");
			return -1;
		}
		if (fattr_map_parse(arg + 7, &m[*n]) < 0) {
			fprintf(stderr, "%s: invalid %s (FROM:TO[:COUNT])\n", prog, arg);
			return -1;
		}
		(*n)++;
		return 0;	/* ours, not libfuse's */
	}
	case KEY_RW:	/* mount(8) passes it for "defaults": said, not obeyed */
		o->rw = 1;
		return 0;
	case KEY_DISCARD:
		return 0;
	case KEY_HELP:
		usage();
		exit(0);
	case KEY_VERSION:
		printf("%s (defragfs) %s\n", prog, DFS_VERSION);
		exit(0);
	default:
		return 1;
	}
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

/*
 * Sets the read-ahead of the mount at @mnt (its backing device, /sys/class/bdi/MAJ:MIN,
 * found in /proc/self/mountinfo without a request to the mount) to @kib KiB. The kernel
 * gives a FUSE mount 128 KiB: a sequential reader then has one or two 128 KiB READs in
 * flight and the daemon's threads sleep between them (docs/BENCHMARKS.md, "The mount's
 * read-ahead"). 0 or -errno (EACCES: not root).
 */
static int set_read_ahead(const char *mnt, unsigned long kib)
{
	char line[PATH_MAX * 2 + 512], dev[32] = "", path[PATH_MAX + 64];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char d[32], at[PATH_MAX * 2], *sep, *p, *q;

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - TYPE SOURCE OPTIONS */
		if (sscanf(line, "%*u %*u %31s %*s %8191s", d, at) != 2)
			continue;
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "fuse", 4) != 0)
			continue;
		for (p = q = at; *p; q++) {	/* \040 and the like: octal escapes */
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
			    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
				*q = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 4;
			} else {
				*q = *p++;
			}
		}
		*q = 0;
		if (!strcmp(at, mnt))
			snprintf(dev, sizeof(dev), "%s", d);	/* the last one: the newest */
	}
	fclose(f);
	if (!dev[0])
		return -ENOENT;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "%lu\n", kib) < 0)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Drops what the kernel caches of every inode it holds (and the two roots). */
static void inval_known(struct dfs_fs *fs, uint64_t **inos, size_t *cap)
{
	size_t n = ino_count(fs->known) + 2;

	if (n > *cap) {
		uint64_t *v = realloc(*inos, n * 2 * sizeof(*v));

		if (v) {
			*inos = v;
			*cap = n * 2;
		}
	}
	n = *inos ? ino_snapshot(fs->known, *inos, *cap) : 0;
	fuse_lowlevel_notify_inval_inode(fs->se, FUSE_ROOT_ID, 0, 0);
	fuse_lowlevel_notify_inval_inode(fs->se, STORE_SOURCES_INO, 0, 0);
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, (*inos)[i], 0, 0);
	dfs_info("live follow: %zu cached inodes invalidated", n);
}

/*
 * Live follow: catch up with the writer and drop what the kernel caches. A reply built
 * from the old state just before the catch-up (a directory listing, attributes) can reach
 * the kernel's cache after the invalidation, so the next tick invalidates once more.
 */
/* Store-wide facts the daemon answers from (after opening, and after each catch-up). */
static void refresh_facts(struct dfs_fs *fs)
{
	uint64_t v;

	atomic_store(&fs->no_security,
		     store_get_meta_u64(fs->st, STORE_META_SECURITY_XATTRS, &v) == 0 && v == 0);
}

/* A /.history entry gone (hist_refresh): the kernel's cached name goes too. */
static void hist_gone(void *arg, uint64_t parent, const char *name)
{
	struct dfs_fs *fs = arg;

	fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
}

static void *follow_main(void *arg)
{
	struct dfs_fs *fs = arg;
	uint64_t *inos = NULL;
	size_t cap = 0;
	bool again = false;

	pthread_mutex_lock(&fs->follow_lock);
	while (!fs->stop) {
		struct timespec ts;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += fs->follow_interval;
		pthread_cond_timedwait(&fs->follow_cond, &fs->follow_lock, &ts);
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->follow_lock);
		rc = store_catch_up(fs->st);
		if (rc < 0)
			dfs_warn("live follow: cannot catch up with the writer: %s",
				 dfs_strerror(rc));
		if (rc == 1) {
			refresh_facts(fs);
			if (fs->reach)
				reach_reset(fs->reach);
			rc = hist_refresh(fs->hist, hist_gone, fs);
			if (rc < 0)
				dfs_warn("live follow: /.history not refreshed: %s",
					 dfs_strerror(rc));
			rc = 1;
			atomic_fetch_add(&fs->gen, 1);
		}
		if (rc == 1 || again) {
			inval_known(fs, &inos, &cap);
			again = rc == 1;
		}
		pthread_mutex_lock(&fs->follow_lock);
	}
	pthread_mutex_unlock(&fs->follow_lock);
	free(inos);
	return NULL;
}

/*
 * Opens and closes the store in a child process, so that a missing or damaged store is
 * reported before mounting. Not in this process: RocksDB starts process-wide threads on
 * an open (its timer and thread pools), and after fuse_daemonize() forks, the serving
 * child would try to join the parent's threads at exit (every daemon started through
 * mount -t died of SIGSEGV in pthread_join after its unmount). 0, or -1 with the error
 * already printed.
 */
static int probe_store(const char *dir, const struct store_open_opts *so)
{
	int status = 0;
	pid_t pid;

	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		struct store *st;
		int rc = store_open(dir, so, &st);

		if (rc < 0)
			fprintf(stderr, "%s: %s: cannot open the store: %s\n", prog, dir,
				dfs_strerror(rc));
		else
			store_close(st);
		fflush(stderr);
		_exit(rc < 0 ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "%s: waitpid: %s\n", prog, strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!WIFEXITED(status))
		fprintf(stderr, "%s: %s: opening the store failed (signal %d)\n", prog, dir,
			WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

static bool path_inside(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return !strncmp(inner, outer, n) && (inner[n] == '/' || inner[n] == '\0' ||
					      (n == 1 && outer[0] == '/'));
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 10 };
	/* RocksDB block cache: index and filter blocks of the metadata, not file data */
	struct store_open_opts so = { .mode = STORE_READER, .block_cache = 16u << 20 };
	struct opts o = { .follow_interval = 2 };
	struct stat mst;
	struct dfs_fs fs = { 0 };
	char store_real[PATH_MAX], mnt_real[PATH_MAX], fsname[PATH_MAX + 64];
	size_t cache = 256u << 20, handle_mem = 256u << 20, pack_cache_size = 1u << 30;
	size_t read_ahead = 4u << 20, index_warm;
	char pack_cache[PATH_MAX];
	int rc, ret = 1;

	dfs_log_set_prog(prog);
	/*
	 * Memory bounded by the chunk cache: chunk buffers (32 KiB - 512 KiB) are allocated
	 * by one thread and freed on eviction by another; with an arena per thread, glibc
	 * kept 100+ MiB of freed chunks resident under random reads. One arena keeps them
	 * reusable (measured: 441 -> 306 MiB with a 256 MiB cache, no loss of speed; a low
	 * fixed mmap threshold also bounded it but halved sequential reads).
	 * A high fixed one (4 MiB, above the default chunk sizes) keeps chunks of 128 KiB and
	 * more off mmap(): glibc's sliding threshold sent them there often enough that a
	 * sequential read faulted in 470 MiB of fresh pages per GiB with a 256 MiB cache,
	 * 260 MiB with this (the cache filling once).
	 * A stream's chunks leave the cache once served (ccache_put_streamed), so its heap
	 * stays small and its top is freed and grown back all the time: glibc gave it back to
	 * the kernel past 128 KiB free (brk down, then fresh pages faulted in again, 12-23k
	 * faults per GiB read); kept up to 16 MiB, 3k.
	 */
	mallopt(M_ARENA_MAX, 1);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	if (fuse_opt_parse(&args, &o, dfs_opts, opt_proc) < 0)
		usage_error("invalid options");
	if (!o.store)
		usage_error("missing STORE and MOUNTPOINT");
	if (!o.mnt)
		usage_error("missing MOUNTPOINT");
	/* before libfuse, whose "bad mount point" ended in "invalid options" */
	if (stat(o.mnt, &mst) < 0) {
		fprintf(stderr, "%s: mount point %s: %s\n", prog, o.mnt, errno == ENOENT
			? "does not exist (create it with mkdir)" : strerror(errno));
		goto out_args;
	}
	if (!S_ISDIR(mst.st_mode)) {
		fprintf(stderr, "%s: mount point %s: not a directory\n", prog, o.mnt);
		goto out_args;
	}
	if (o.rw)
		fprintf(stderr, "%s: warning: -o rw is not possible: defragfs mounts are "
			"read-only (the store changes through defrag-ingest and "
			"defrag-reclassify); mounting read-only\n", prog);
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		usage_error("invalid options");
	if (!cmd.mountpoint)
		usage_error("missing MOUNTPOINT");
	if (o.cache_size && parse_size(o.cache_size, &cache) < 0)
		usage_error("invalid cache_size");
	if (o.pack_cache_size && (parse_size(o.pack_cache_size, &pack_cache_size) < 0 ||
				  pack_cache_size < PCACHE_MIN))
		usage_error("invalid pack_cache_size (at least 16M)");
	if (o.handle_mem && (parse_size(o.handle_mem, &handle_mem) < 0 || !handle_mem))
		usage_error("invalid handle_mem");
	if (o.read_ahead && (parse_size(o.read_ahead, &read_ahead) < 0 ||
			     read_ahead > (1u << 30)))
		usage_error("invalid read_ahead (at most 1G)");
	{
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		uint64_t mem = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;

		index_warm = mem / 16 < (1u << 30) ? (size_t)(mem / 16) : (size_t)1 << 30;
	}
	if (o.index_warm && parse_size(o.index_warm, &index_warm) < 0)
		usage_error("invalid index_warm");
	if (o.rotational && strcmp(o.rotational, "auto") && strcmp(o.rotational, "0") &&
	    strcmp(o.rotational, "1"))
		usage_error("invalid rotational (auto, 0 or 1)");
	so.disk = !o.rotational || !strcmp(o.rotational, "auto") ? STORE_DISK_AUTO
		  : !strcmp(o.rotational, "1")			 ? STORE_DISK_HEAD
								 : STORE_DISK_FLASH;
	if (o.sources && strcmp(o.sources, "visible") && strcmp(o.sources, "hidden"))
		usage_error("sources= takes 'visible' or 'hidden'");
	if (o.allow_other && !o.default_permissions) {
		fprintf(stderr, "%s: allow_other needs default_permissions too (otherwise every "
			"user could read every file)\n", prog);
		goto out_args;
	}
	if (!realpath(o.store, store_real)) {
		fprintf(stderr, "%s: %s: %s\n", prog, o.store, strerror(errno));
		goto out_args;
	}
	if (!realpath(cmd.mountpoint, mnt_real)) {
		fprintf(stderr, "%s: %s: %s\n", prog, cmd.mountpoint, strerror(errno));
		goto out_args;
	}
	if (path_inside(mnt_real, store_real) || path_inside(store_real, mnt_real)) {
		fprintf(stderr, "%s: the mount point %s and the store %s must not contain each "
			"other\n", prog, mnt_real, store_real);
		goto out_args;
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "%s: /dev/fuse: %s (is the fuse module loaded? apt-get install "
			"fuse3)\n", prog, strerror(errno));
		goto out_args;
	}
	/* the daemon leaves the working directory: an absolute path (made if missing) */
	if (o.pack_cache && (mkdir(o.pack_cache, 0700) < 0 && errno != EEXIST)) {
		fprintf(stderr, "%s: pack_cache %s: %s\n", prog, o.pack_cache, strerror(errno));
		goto out_args;
	}
	if (o.pack_cache ? !realpath(o.pack_cache, pack_cache)
			 : snprintf(pack_cache, sizeof(pack_cache), "%s/pack-cache",
				    store_real) >= (int)sizeof(pack_cache)) {
		fprintf(stderr, "%s: pack_cache %s: %s\n", prog, o.pack_cache ? o.pack_cache
			: store_real, strerror(o.pack_cache ? errno : ENAMETOOLONG));
		goto out_args;
	}
	so.pack_cache = pack_cache;
	so.pack_cache_size = pack_cache_size;
	/* Open once now (in a child) so a missing or damaged store is reported before
	 * mounting. */
	if (probe_store(store_real, &so) < 0)
		goto out_args;

	snprintf(fsname, sizeof(fsname), "-ofsname=%s,subtype=defragfs,ro,nosuid,nodev",
		 store_real);
	fuse_opt_add_arg(&args, fsname);
	fs.store_dir = store_real;
	fs.sources_visible = o.sources && !strcmp(o.sources, "visible");
	fs.entry_timeout = 3600.0;
	fs.negative_timeout = 1.0;
	fs.follow_interval = o.follow_interval;
	fs.posix_acl = o.default_permissions;
	fs.max_read = o.max_read;
	fs.read_ahead = (uint32_t)read_ahead;
	fs.maps = o.maps;
	fs.handle_cap = (size_t)handle_mem;
	pthread_mutex_init(&fs.follow_lock, NULL);
	pthread_mutex_init(&fs.seekers_lock, NULL);
	fs_handles_init(&fs);
	pthread_cond_init(&fs.follow_cond, NULL);
	if (ccache_new(cache, &fs.cc) < 0 || ino_table_new(&fs.known) < 0)
		goto out_args;
	fs.se = fuse_session_new(&args, &dfs_ops, sizeof(dfs_ops), &fs);
	if (!fs.se)
		goto out_free;
	if (fuse_set_signal_handlers(fs.se) != 0)
		goto out_session;
	if (fuse_session_mount(fs.se, mnt_real) != 0) {
		fprintf(stderr, "%s: cannot mount at %s\n", prog, mnt_real);
		goto out_signals;
	}
	if (!cmd.foreground)
		dfs_log_use_syslog(prog);
	if (cmd.debug)
		dfs_log_set_level(DFS_LOG_DEBUG);
	if (read_ahead) {
		rc = set_read_ahead(mnt_real, (unsigned long)((read_ahead + 1023) >> 10));
		if (rc < 0)
			dfs_info("read-ahead of the mount left at the kernel's: %s%s",
				 dfs_strerror(rc), rc == -EACCES ? " (only root can set it)" : "");
	}
	/* The store must open in the process that serves (its threads do not survive fork). */
	if (fuse_daemonize(cmd.foreground) != 0)
		goto out_unmount;
	rc = store_open(store_real, &so, &fs.st);
	if (rc < 0) {
		dfs_err("%s: cannot open the store: %s", store_real, dfs_strerror(rc));
		goto out_unmount;
	}
	if ((rc = hist_new(fs.st, &fs.hist)) < 0) {
		dfs_err("%s", dfs_strerror(rc));
		goto out_unmount;
	}
	refresh_facts(&fs);
	/* other users: the organized tree keeps what its origins' directories protect */
	if (o.allow_other && (rc = reach_new(fs.st, &fs.maps, &fs.reach)) < 0) {
		dfs_err("cannot set up access checks: %s", dfs_strerror(rc));
		goto out_unmount;
	}
	if (fs.follow_interval &&
	    pthread_create(&fs.follow_thread, NULL, follow_main, &fs) == 0)
		fs.follow_started = true;
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		/* read-ahead is an optimisation: without its threads reads still work */
		if (ra_start(&fs, cpus > 1 ? (unsigned)cpus : 1, &fs.ra) < 0)
			dfs_warn("read-ahead threads could not start; reading without");
	}
	if (index_warm && (rc = warm_start(fs.st, index_warm, &fs.warm)) < 0)
		dfs_warn("index warm-up could not start: %s", dfs_strerror(rc));
	dfs_info("serving %s at %s", store_real, mnt_real);
	if (store_disk_head(fs.st))
		dfs_info("the packs' disk has a head: a small read takes a chunk's header and "
			 "its data in one request");
	rc = fuse_session_loop_mt(fs.se, &lc);
	/* libfuse returns -errno on failure, or the (positive) signal that ended the loop:
	 * SIGTERM, SIGINT and SIGHUP are a requested shutdown (the mount is removed below) */
	ret = rc < 0 || (rc > 0 && rc != SIGTERM && rc != SIGINT && rc != SIGHUP);
	if (fs.follow_started) {
		pthread_mutex_lock(&fs.follow_lock);
		fs.stop = true;
		pthread_cond_signal(&fs.follow_cond);
		pthread_mutex_unlock(&fs.follow_lock);
		pthread_join(fs.follow_thread, NULL);
	}
out_unmount:
	ra_stop(fs.ra);
	fs.ra = NULL;
	warm_stop(fs.warm);
	fs.warm = NULL;
	/* handles the kernel never released (it may be gone first): their contents hold the
	 * store */
	fs_free_handles(&fs);
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_free:
	reach_free(fs.reach);
	hist_free(fs.hist);
	store_close(fs.st);
	ccache_free(fs.cc);
	ino_table_free(fs.known);
out_args:
	free(cmd.mountpoint);
	free(o.mnt);
	free(o.store);
	free(o.cache_size);
	free(o.pack_cache);
	free(o.pack_cache_size);
	free(o.handle_mem);
	free(o.sources);
	free(o.read_ahead);
	free(o.index_warm);
	free(o.rotational);
	fuse_opt_free_args(&args);
	return ret;
}
