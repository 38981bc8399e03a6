/*
 * itree.c - the index seen as a tree, for classify/: the struct cls_tree callbacks the
 * producer runs classify_source over (handles are inode numbers of source views).
 *
 * A listing reads the records of its entries LIST_BATCH at a time (store_get_inodes) and
 * keeps them in a cache (struct org's icache) until the producer hands each, with its
 * result, to the placer (org_icache_take): each source record is read and decoded once.
 * A MIME type classify had to compute is handed to the placer too, which stores it in
 * its transaction.
 *
 * Threads: the producer's only (organize_int.h), but org_itree_release (the placer's,
 * once no producer runs).
 * Errors: 0 or -errno from the store; a listing stops at the first error, its own or
 * its callback's, and returns it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "organize_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void icache_put(struct org *o, struct store_inode *in)
{
	struct icache_slot *sl = &o->icache[in->ino % ICACHE_SLOTS];

	if (sl->ino)
		store_inode_release(&sl->in);
	sl->in = *in;	/* moved */
	sl->ino = in->ino;
}

/* The source record @ino, from the cache (moved out) or the index. */
int org_icache_take(struct org *o, uint64_t ino, struct store_inode *out)
{
	struct icache_slot *sl = &o->icache[ino % ICACHE_SLOTS];

	if (sl->ino != ino)
		return store_get_inode(o->st, ino, out);
	*out = sl->in;
	sl->ino = 0;
	return 0;
}

static void icache_drop(struct org *o, uint64_t ino)
{
	struct icache_slot *sl = &o->icache[ino % ICACHE_SLOTS];

	if (sl->ino == ino) {
		store_inode_release(&sl->in);
		sl->ino = 0;
	}
}

#define LIST_BATCH 256	/* directory entries whose records are read in one batch */

/* A batch of listed entries: names (copied), inode numbers, then their records. */
struct list_batch {
	struct dfs_buf names;
	size_t off[LIST_BATCH + 1];
	uint64_t ino[LIST_BATCH];
	struct store_inode in[LIST_BATCH];
	int rcs[LIST_BATCH];
	size_t n;
};

/* Reads the records of the batch in one go and hands each entry to @fn. */
static int list_flush(struct org *o, struct list_batch *b,
		      int (*fn)(void *arg, const struct cls_entry *e), void *arg)
{
	size_t i = 0;
	int rc = b->names.err;

	if (rc < 0)
		goto out;
	/* every record read is moved into the cache or released here */
	rc = store_get_inodes(o->st, b->ino, b->n, b->in, b->rcs);
	for (; i < b->n && rc == 0; i++) {
		struct store_inode *in = &b->in[i];
		struct cls_entry e = { 0 };
		struct fp256 lh;

		rc = b->rcs[i];
		if (rc < 0)
			break;
		e.name = b->names.data + b->off[i];
		e.name_len = b->off[i + 1] - b->off[i];
		e.mode = in->mode;
		e.size = in->size;
		e.mtime = in->mtime.tv_sec;
		e.handle = b->ino[i];
		e.content_id = in->has_content ? in->content.b : NULL;
		if (S_ISLNK(in->mode)) {	/* a unit's tree hash covers symlink targets */
			fp_sha256(in->target.p ? in->target.p : (const uint8_t *)"", in->target.len,
				  &lh);
			e.content_id = lh.b;
		}
		e.mime = in->mime.len ? (const char *)in->mime.p : NULL;
		rc = fn(arg, &e);
		in->ino = b->ino[i];
		icache_put(o, in);	/* moved: nothing left to release */
	}
	for (; i < b->n; i++)
		store_inode_release(&b->in[i]);
out:
	b->n = 0;
	dfs_buf_clear(&b->names);
	return rc;
}

int org_tree_list(void *ctx, uint64_t dir, int (*fn)(void *arg, const struct cls_entry *e),
		  void *arg)
{
	struct org *o = ctx;
	struct store_dir_iter *di;
	struct list_batch *b;
	const uint8_t *nm;
	size_t nl;
	uint64_t child;
	uint8_t t;
	int rc;

	if (o->lb && !o->lb_busy) {
		b = o->lb;
	} else {	/* the first listing, or @fn lists too (classify's never do) */
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		dfs_buf_init(&b->names, 1u << 20);
		if (!o->lb)
			o->lb = b;
	}
	if (b == o->lb)
		o->lb_busy = true;
	rc = store_dir_open(o->st, dir, NULL, 0, &di);
	if (rc < 0)
		goto out;
	while ((rc = store_dir_next(di, &nm, &nl, &child, &t)) == 1) {
		b->off[b->n] = b->names.len;
		dfs_buf_append(&b->names, nm, nl);
		b->ino[b->n++] = child;
		b->off[b->n] = b->names.len;
		if (b->n == LIST_BATCH) {
			rc = list_flush(o, b, fn, arg);
			if (rc)
				break;
		}
	}
	if (rc == 0 && b->n)
		rc = list_flush(o, b, fn, arg);
	store_dir_close(di);
out:
	b->n = 0;
	dfs_buf_clear(&b->names);
	if (b == o->lb) {
		o->lb_busy = false;
	} else {
		dfs_buf_release(&b->names);
		free(b);
	}
	return rc;
}

ssize_t org_tree_head(void *ctx, uint64_t file, void *buf, size_t len)
{
	struct org *o = ctx;
	struct store_content *c;
	struct store_inode in;
	ssize_t n;
	int rc;

	rc = store_get_inode(o->st, file, &in);
	if (rc < 0)
		return rc;
	if (!in.has_content) {
		store_inode_release(&in);
		return 0;
	}
	rc = store_content_open(o->st, &in.content, &c);
	store_inode_release(&in);
	if (rc < 0)
		return rc;
	n = store_content_pread(o->st, o->codec, c, buf, len, 0);
	store_content_close(c);
	return n;
}

/* The producer's: the record it cached is out of date; the placer stores the type. */
void org_tree_mime(void *ctx, uint64_t file, const char *mime)
{
	struct org *o = ctx;

	o->stats->mimes++;
	icache_drop(o, file);	/* its MIME type changes */
	if (!o->dry_run)
		org_queue_mime(o->q, file, mime);
}

void org_itree_release(struct org *o)
{
	for (size_t i = 0; o->icache && i < ICACHE_SLOTS; i++)
		if (o->icache[i].ino)
			store_inode_release(&o->icache[i].in);
	free(o->icache);
	if (o->lb) {
		dfs_buf_release(&o->lb->names);
		free(o->lb);
	}
}
