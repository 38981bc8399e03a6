/*
 * fs.h - the daemon's shared state (struct dfs_fs), between main.c, ll.c, inode.c and
 * fattr.c. Nothing outside fs/ includes it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_FS_FS_H
#define DFS_FS_FS_H

#define FUSE_USE_VERSION 34

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ccache.h"
#include "fattr.h"
#include "store/store.h"

struct ino_table;
struct ra;
struct reach;

/*
 * The head of every open file and directory handle (struct fh, struct dh in ll.c), on the
 * daemon's list of open handles: the kernel may be gone before it sends a release (an
 * unmount races the RELEASE/RELEASEDIR of a file closed just before), so what is still
 * open when the session ends is freed by fs_free_handles.
 */
struct fs_handle {
	struct fs_handle *prev, *next;
	bool dir;
};

struct dfs_fs {
	struct store *st;		/* thread-safe */
	struct hist *hist;		/* /.history (hist.h) */
	const char *store_dir;
	struct ccache *cc;
	struct ra *ra;			/* read-ahead threads, or NULL */
	struct warm *warm;		/* the index warm-up (warm.h), or NULL */
	struct ino_table *known;	/* inodes the kernel holds (lookup counts) */
	struct fuse_session *se;
	bool sources_visible;
	double entry_timeout;		/* positive entries and attributes */
	double negative_timeout;
	unsigned follow_interval;	/* seconds; 0: no live follow */
	/* bumped by live follow each time the index moves, before the kernel's caches are
	 * invalidated: a fact noted under an older value may be stale */
	_Atomic uint64_t gen;
	/* the store says no inode has a security.* xattr (STORE_META_SECURITY_XATTRS): such
	 * names get EOPNOTSUPP, and ls(1) stops asking for them on this mount */
	_Atomic bool no_security;
	/*
	 * Callers (thread ids) seen asking for the attributes of files listed to them: their
	 * READDIRPLUS replies carry attributes; others get names and types only (see
	 * readdir_common). A small table, the least recently seen replaced.
	 */
	pthread_mutex_t seekers_lock;
	struct seeker {
		pid_t pid;
		uint64_t stamp;		/* 0: empty */
	} seekers[64];
	uint64_t seekers_clock;
	bool posix_acl;			/* -o default_permissions: the kernel enforces ACLs */
	unsigned max_read;		/* -o max_read=N, else 0 (the kernel's maximum) */
	uint32_t read_ahead;		/* -o read_ahead: bytes (0: the kernel's, 128 KiB) */
	struct fattr_maps maps;		/* -o uidmap=, gidmap= */
	/* -o allow_other: who may reach organized entries (reach.h), else NULL */
	struct reach *reach;
	size_t handle_cap;		/* -o handle_mem: bytes open directories may hold */
	_Atomic size_t handle_bytes;	/* what they hold now */
	_Atomic bool handle_warned;	/* the refusal was logged */
	pthread_t follow_thread;
	bool follow_started;
	pthread_mutex_t follow_lock;	/* protects stop */
	pthread_cond_t follow_cond;
	bool stop;
	pthread_mutex_t handles_lock;	/* protects handles */
	struct fs_handle handles;	/* open handles: a circular list, this its head */
};

/* Initialises the list of open handles (before the session starts). */
void fs_handles_init(struct dfs_fs *fs);
/* Frees every handle still open (after the session's loop; the store still open). */
void fs_free_handles(struct dfs_fs *fs);

/* The operation table (ll.c). */
extern const struct fuse_lowlevel_ops dfs_ops;

/* -EBADMSG and other store errors become the errno the kernel gets. */
int fs_errno(int rc);
/* The calling thread's decompression context (created on first use). */
struct codec *fs_codec(void);
/*
 * A reference to chunk @e->chunk in the chunk cache, loading (checksum checked) and
 * inserting it on a miss; one thread loads a chunk, others asking meanwhile wait for it.
 * A @reader waits and logs a damaged chunk with inode @ino; the read-ahead threads
 * (!@reader) do neither and get -EAGAIN for a chunk another thread is loading.
 * Release with ccache_put. 0, -EBADMSG (damaged), -ENOMEM, -EAGAIN, -errno.
 */
int fs_chunk_ref(struct dfs_fs *fs, const struct store_extent *e, uint64_t ino, bool reader,
		 struct ccache_entry **out);

#endif
