/*
 * test_store.c - the store through its facade: commit and reopen, reads of inline, chunked
 * and sparse content, uncommitted bytes cut on reopen, one writer at a time, flipped pack
 * bytes found as -EBADMSG, the index rebuilt from packs, and (with DFS_TEST_FAULTS) an
 * I/O error or crash at every mutating operation of a commit: after each, the store opens,
 * nothing committed is lost and nothing half-written is visible. Batched inode reads
 * (store_get_inodes) give what one store_get_inode per inode gives, for present, missing,
 * corrupt and unknown-version records, from the memtable and from table files.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/enc.h"
#include "store/index.h"
#include "store/log.h"
#include "store/pack.h"
#include "store/sio.h"
#include "store/store.h"

#include "test_check.h"

static char root[256];

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(i % 64 < 40 ? 'a' + (x % 8) : x);
	}
}

static int open_writer(const char *dir, struct store **st)
{
	struct store_create_opts co;
	struct store_open_opts o = { .mode = STORE_WRITER, .create = true, .create_opts = &co };

	store_create_opts_default(&co);
	co.pack_target = 1 << 20;	/* several packs in a small test */
	return store_open(dir, &o, st);
}

/* Stores @data as file @name under the root; returns 0 or -errno. */
static int put_file(struct store *st, struct codec *codec, const char *name, const uint8_t *data,
		    size_t len, uint64_t hole_after, bool commit)
{
	struct store_content_builder *cb;
	struct store_inode in = { 0 };
	struct store_txn *tx;
	const struct store_create_opts *p = store_params(st);
	uint8_t *cbuf = malloc(codec_bound(p->cdc.max_size));
	size_t off = 0;
	int rc;

	rc = store_cb_new(&cb);
	if (rc < 0)
		goto out;
	if (len <= p->inline_max && !hole_after) {
		rc = store_cb_set_inline(cb, data, len);
	} else {
		while (off < len && rc == 0) {
			size_t n = cdc_next(&p->cdc, data + off, len - off, 1);
			struct fp256 id;
			enum codec_id c;
			ssize_t sl;

			fp_sha256(data + off, n, &id);
			sl = codec_compress(codec, data + off, n, cbuf, codec_bound(p->cdc.max_size),
					    &c);
			rc = sl < 0 ? (int)sl : store_put_chunk(st, &id, (uint32_t)n, cbuf,
								(uint32_t)sl, c);
			if (rc > 0)
				rc = 0;
			if (rc == 0)
				rc = store_cb_add_chunk(cb, &id, (uint32_t)n);
			off += n;
		}
		if (rc == 0 && hole_after)
			rc = store_cb_add_hole(cb, hole_after);
	}
	if (rc < 0)
		goto out_cb;
	rc = store_txn_begin(st, &tx);
	if (rc < 0)
		goto out_cb;
	in.ino = store_txn_alloc_ino(tx);
	in.view = STORE_VIEW_SRC;
	in.mode = S_IFREG | 0644;
	in.nlink = 1;
	rc = store_txn_put_content(tx, cb, &in.content);
	in.has_content = true;
	in.size = len + hole_after;
	if (rc == 0)
		rc = store_txn_put_inode(tx, &in);
	if (rc == 0)
		rc = store_txn_put_dirent(tx, STORE_ROOT_INO, name, strlen(name), in.ino, 8);
	if (rc == 0 && commit)
		rc = store_txn_commit(tx);
	else
		store_txn_abort(tx);
out_cb:
	store_cb_free(cb);
out:
	free(cbuf);
	return rc;
}

/* Reads file @name back through a reader and compares with @data (+ hole). */
static int check_file(const char *dir, const char *name, const uint8_t *data, size_t len,
		      uint64_t hole_after)
{
	struct store_open_opts o = { .mode = STORE_READER };
	struct store_content *c = NULL;
	struct store_inode in;
	struct codec *codec;
	struct store *st;
	uint64_t ino;
	uint8_t t, *buf;
	ssize_t n;
	int rc;

	rc = store_open(dir, &o, &st);
	if (rc < 0)
		return rc;
	codec_new(1, &codec);
	buf = malloc(len + 4096 + 1);
	rc = store_lookup(st, STORE_ROOT_INO, name, strlen(name), &ino, &t);
	if (rc == 0)
		rc = store_get_inode(st, ino, &in);
	if (rc == 0) {
		rc = store_content_open(st, &in.content, &c);
		store_inode_release(&in);
	}
	if (rc == 0) {
		n = store_content_pread(st, codec, c, buf, len, 0);
		if (n != (ssize_t)len || memcmp(buf, data, len))
			rc = n < 0 ? (int)n : -EBADMSG;
		if (rc == 0 && hole_after) {
			uint64_t res;

			n = store_content_pread(st, codec, c, buf, 4096, len + hole_after - 4096);
			for (ssize_t i = 0; i < n; i++)
				if (buf[i])
					rc = -EBADMSG;
			if (store_content_seek(c, len, SEEK_DATA, &res) != -ENXIO)
				rc = -EBADMSG;
			if (store_content_seek(c, 0, SEEK_HOLE, &res) != 0 || res < len)
				rc = -EBADMSG;
		}
		if (store_content_size(c) != len + hole_after)
			rc = -EBADMSG;
	}
	store_content_close(c);
	free(buf);
	codec_free(codec);
	store_close(st);
	return rc;
}

static void test_roundtrip(void)
{
	char dir[300];
	struct store *st, *st2;
	struct codec *codec;
	uint8_t *big = malloc(3 << 20), small[100];
	struct store_open_opts wo = { .mode = STORE_WRITER };

	snprintf(dir, sizeof(dir), "%s/s1", root);
	fill(big, 3 << 20, 1);
	fill(small, sizeof(small), 2);
	CHECK(open_writer(dir, &st) == 0, "create store");
	CHECK(store_open(dir, &wo, &st2) == -EWOULDBLOCK, "a second writer was let in");
	codec_new(3, &codec);
	CHECK(put_file(st, codec, "big", big, 3 << 20, 0, true) == 0, "put big");
	CHECK(put_file(st, codec, "small", small, sizeof(small), 0, true) == 0, "put small");
	CHECK(put_file(st, codec, "sparse", big, 300000, 1ull << 36, true) == 0, "put sparse");
	CHECK(put_file(st, codec, "dup", big, 3 << 20, 0, true) == 0, "put dup");
	/* written but never committed: must not be visible, and its bytes are cut */
	fill(big, 3 << 20, 3);
	CHECK(put_file(st, codec, "lost", big, 3 << 20, 0, false) == 0, "put uncommitted");
	codec_free(codec);
	store_close(st);
	fill(big, 3 << 20, 1);
	CHECK(check_file(dir, "big", big, 3 << 20, 0) == 0, "read big");
	CHECK(check_file(dir, "dup", big, 3 << 20, 0) == 0, "read dup");
	CHECK(check_file(dir, "small", small, sizeof(small), 0) == 0, "read inline");
	CHECK(check_file(dir, "sparse", big, 300000, 1ull << 36) == 0, "read sparse");
	CHECK(check_file(dir, "lost", big, 10, 0) == -ENOENT, "uncommitted file visible");
	/* reopen as writer: the uncommitted tail is cut; data still reads */
	CHECK(open_writer(dir, &st) == 0, "reopen writer");
	store_close(st);
	CHECK(check_file(dir, "big", big, 3 << 20, 0) == 0, "read big after cut");
	free(big);
}

/* A brief writer (defrag-verify recording a result) is waited for; another is not. */
struct brief_holder {
	const char *dir;
	atomic_int state;	/* 1 holding, 2 released, -1 failed */
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *brief_worker(void *arg)
{
	struct brief_holder *h = arg;
	struct store_open_opts o = { .mode = STORE_WRITER, .brief = true };
	struct store *st;

	if (store_open(h->dir, &o, &st) < 0) {
		atomic_store(&h->state, -1);
		return NULL;
	}
	atomic_store(&h->state, 1);
	usleep(700 * 1000);
	atomic_store(&h->state, 2);
	store_close(st);
	return NULL;
}

static void test_lock_brief(void)
{
	char dir[300];
	struct store *st, *st2;
	struct store_open_opts wo = { .mode = STORE_WRITER }, bo = { .mode = STORE_WRITER,
								    .brief = true };
	struct brief_holder h = { .dir = dir };
	pthread_t t;
	double t0;
	int rc;

	snprintf(dir, sizeof(dir), "%s/lock", root);
	CHECK(open_writer(dir, &st) == 0, "create store");
	/* a writer that is not brief: a second one (brief or not) fails after the grace */
	t0 = mono_s();
	CHECK(store_open(dir, &wo, &st2) == -EWOULDBLOCK, "a second writer was let in");
	CHECK(store_open(dir, &bo, &st2) == -EWOULDBLOCK, "a brief writer was let in");
	CHECK(mono_s() - t0 < 5, "a writer that is not brief was waited for");
	store_close(st);
	/* a brief holder: a writer waits for it, then opens */
	for (int k = 0; k < 2; k++) {
		atomic_store(&h.state, 0);
		pthread_create(&t, NULL, brief_worker, &h);
		while (atomic_load(&h.state) == 0)
			usleep(1000);
		CHECK(atomic_load(&h.state) == 1, "the brief writer did not open");
		rc = store_open(dir, k ? &bo : &wo, &st2);
		CHECK(rc == 0, "a writer did not wait for a brief holder (%d)", rc);
		CHECK(atomic_load(&h.state) == 2, "a writer opened while a brief one held the lock");
		if (rc == 0)
			store_close(st2);
		pthread_join(t, NULL);
	}
}

static int flip_in_packs(const char *dir)
{
	char path[600];
	struct dirent *de;
	DIR *d;

	for (int nn = 0; nn < 256; nn++) {
		snprintf(path, sizeof(path), "%s/packs/%02x", dir, nn);
		d = opendir(path);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (strstr(de->d_name, ".pack")) {
				char p2[900];
				int fd;
				uint8_t b;

				snprintf(p2, sizeof(p2), "%s/%s", path, de->d_name);
				fd = open(p2, O_RDWR);
				/* a byte inside the first record's payload */
				if (fd >= 0 && pread(fd, &b, 1, 4200) == 1) {
					b ^= 0x40;
					if (pwrite(fd, &b, 1, 4200) != 1)
						b = 0;
				}
				if (fd >= 0)
					close(fd);
				closedir(d);
				return 0;
			}
		}
		closedir(d);
	}
	return -ENOENT;
}

static void test_corruption_and_recover(void)
{
	char dir[300], idx[400];
	struct store *st;
	struct codec *codec;
	struct store_recover_report rep;
	uint8_t *big = malloc(2 << 20);
	int rc;

	snprintf(dir, sizeof(dir), "%s/s2", root);
	fill(big, 2 << 20, 5);
	CHECK(open_writer(dir, &st) == 0, "create");
	codec_new(3, &codec);
	CHECK(put_file(st, codec, "f", big, 2 << 20, 0, true) == 0, "put");
	codec_free(codec);
	store_close(st);
	/* the index is a cache: delete it, rebuild, read */
	snprintf(idx, sizeof(idx), "%s/index", dir);
	sio_remove_tree(idx);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.commits >= 1 && rep.chunks > 0 && rep.bad_regions == 0 &&
	      rep.nunrec == 0 && !store_recover_lost(&rep),
	      "recover: rc %d commits %llu chunks %llu", rc, (unsigned long long)rep.commits,
	      (unsigned long long)rep.chunks);
	store_recover_report_release(&rep);
	CHECK(check_file(dir, "f", big, 2 << 20, 0) == 0, "read after recover");
	/* a flipped byte: that read fails with EBADMSG, never wrong bytes */
	CHECK(flip_in_packs(dir) == 0, "flip");
	rc = check_file(dir, "f", big, 2 << 20, 0);
	CHECK(rc == -EBADMSG, "corrupt chunk read gave %d", rc);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.bad_regions == 1 && store_recover_lost(&rep),
	      "recover reports the damage");
	store_recover_report_release(&rep);
	free(big);
}

/* ---- recovery past damage: what comes back, and the exact list of what does not ---- */

#define DMG_FILES 3
#define DMG_LEN (1536u << 10)

struct rec_pos {
	uint32_t pack;
	uint64_t off, len;
	uint8_t type;
	uint64_t seq;
};

struct rec_list {
	struct rec_pos v[2048];
	size_t n;
	uint32_t pack;
	uint32_t npacks;
};

static int list_cb(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload)
{
	struct rec_list *l = arg;

	(void)payload;
	if (l->n < sizeof(l->v) / sizeof(*l->v))
		l->v[l->n++] = (struct rec_pos){ l->pack, off, PACK_REC_HDR + r->stored_len,
						 r->type,
						 r->type == PACK_REC_META ? pack_meta_seq(r) : 0 };
	return 0;
}

/* Every record of every pack of @dir, by pack then offset (packs are numbered from 1). */
static void list_records(const char *dir, struct rec_list *l)
{
	l->n = 0;
	l->npacks = 0;
	for (uint32_t id = 1; id < 200; id++) {
		char p[600];
		uint64_t hlen, end;
		uint32_t hid;
		bool torn;
		int fd;

		pack_path(dir, id, p, sizeof(p));
		fd = open(p, O_RDONLY);
		if (fd < 0)
			break;
		struct pack_src src = pack_src_fd(fd);

		l->pack = id;
		l->npacks = id;
		if (pack_header_read(&src, &hid, &hlen, NULL) == 0)
			pack_scan(&src, id, hlen, list_cb, l, &end, &torn);
		close(fd);
	}
}

static const struct rec_pos *find_meta(const struct rec_list *l, uint64_t seq)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].type == PACK_REC_META && l->v[i].seq == seq)
			return &l->v[i];
	return NULL;
}

static int pack_fd(const char *dir, uint32_t id, int flags)
{
	char p[600];

	pack_path(dir, id, p, sizeof(p));
	return open(p, flags);
}

static void flip_at(const char *dir, uint32_t pack, uint64_t off)
{
	int fd = pack_fd(dir, pack, O_RDWR);
	uint8_t b = 0;

	CHECK(fd >= 0 && pread(fd, &b, 1, (off_t)off) == 1, "read pack %u @%llu", pack,
	      (unsigned long long)off);
	b ^= 0x5a;
	CHECK(fd >= 0 && pwrite(fd, &b, 1, (off_t)off) == 1, "flip pack %u @%llu", pack,
	      (unsigned long long)off);
	if (fd >= 0)
		close(fd);
}

static uint64_t pack_size(const char *dir, uint32_t pack)
{
	struct stat sb;
	char p[600];

	pack_path(dir, pack, p, sizeof(p));
	return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* A store of DMG_FILES files, one commit each, over several packs (1 MiB target). */
static void dmg_store(const char *dir, uint8_t *data[DMG_FILES], struct rec_list *l)
{
	struct store *st;
	struct codec *codec;
	char name[8];

	sio_remove_tree(dir);
	CHECK(open_writer(dir, &st) == 0, "create %s", dir);
	codec_new(3, &codec);
	for (int i = 0; i < DMG_FILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK(put_file(st, codec, name, data[i], DMG_LEN, 0, true) == 0, "put %s", name);
	}
	codec_free(codec);
	store_close(st);
	list_records(dir, l);
}

static int dmg_readable(const char *dir, uint8_t *data[DMG_FILES])
{
	char name[8];
	int ok = 0;

	for (int i = 0; i < DMG_FILES; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ok += check_file(dir, name, data[i], DMG_LEN, 0) == 0;
	}
	return ok;
}

static bool has_unrec(const struct store_recover_report *rep, enum store_unrec_kind kind,
		      uint32_t pack, uint64_t off, uint64_t len)
{
	for (size_t i = 0; i < rep->nunrec; i++) {
		const struct store_unrec *u = &rep->unrec[i];

		if (u->kind == kind && u->pack == pack && u->off == off && u->len == len)
			return true;
	}
	return false;
}

/* Appends @n bytes of a META record for commit @seq whose op log holds a valid put
 * ("marker" in the meta family) and then one the replay must refuse (the chunks family). */
static uint64_t append_bad_meta(const char *dir, uint32_t pack, uint64_t seq, size_t cut)
{
	struct dfs_buf log;
	struct codec *codec;
	struct pack_rec r = { .type = PACK_REC_META };
	uint8_t hdr[PACK_REC_HDR], *z;
	uint64_t at = pack_size(dir, pack);
	enum codec_id c;
	ssize_t zl;
	int fd;

	dfs_buf_init(&log, 1 << 20);
	enc_oplog_begin(seq, &log);
	enc_oplog_add(&log, IDX_META, ENC_OP_PUT, "marker", 6, "1", 1);
	enc_oplog_add(&log, IDX_CHUNKS, ENC_OP_PUT, "k", 1, "v", 1);
	codec_new(1, &codec);
	z = malloc(codec_bound(log.len));
	zl = codec_compress(codec, log.data, log.len, z, codec_bound(log.len), &c);
	CHECK(zl > 0, "compress an op log");
	r.codec = (uint8_t)c;
	r.raw_len = (uint32_t)log.len;
	r.stored_len = (uint32_t)zl;
	pack_meta_seq_set(&r, seq);
	pack_rec_encode(&r, z, hdr);
	fd = pack_fd(dir, pack, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) &&
	      write(fd, z, (size_t)zl) == zl, "append a META record");
	if (fd >= 0) {
		if (cut)
			CHECK(ftruncate(fd, (off_t)(at + cut)) == 0, "cut it");
		close(fd);
	}
	free(z);
	codec_free(codec);
	dfs_buf_release(&log);
	return at;
}

/* ---- version 2 chunk records: a checksum per block, part reads ---------------------- */

struct v2_list {
	struct { struct fp256 id; uint64_t off; uint32_t raw, stored; uint8_t shift; } v[64];
	size_t n, v1_chunks;
};

static int v2_cb(void *arg, uint64_t off, const struct pack_rec *r, const uint8_t *payload)
{
	struct v2_list *l = arg;

	(void)payload;
	if (r->type != PACK_REC_CHUNK)
		return 0;
	if (!r->shift) {
		l->v1_chunks++;
	} else if (l->n < sizeof(l->v) / sizeof(*l->v)) {
		l->v[l->n].id = r->id;
		l->v[l->n].off = off;
		l->v[l->n].raw = r->raw_len;
		l->v[l->n].stored = r->stored_len;
		l->v[l->n++].shift = r->shift;
	}
	return 0;
}

/*
 * Incompressible chunks are version 2 records: read whole and in parts (each part equal
 * to the same bytes of the whole), recovered from the packs, and a damaged block fails
 * every read that uses it and no other; a compressed chunk is not read in parts.
 */
/* A pack source over a file descriptor that counts its reads (pack_read_part's requests). */
struct counted {
	int fd;
	unsigned reads;
};

static ssize_t counted_pread(void *arg, uint32_t id, void *buf, size_t len, uint64_t off)
{
	struct counted *c = arg;

	(void)id;
	c->reads++;
	return sio_pread(c->fd, buf, len, (off_t)off);
}

static void test_block_records(void)
{
	const size_t len = 1536u << 10;
	char dir[300], idx[400], p[600];
	struct store_open_opts ro = { .mode = STORE_READER };
	struct store_recover_report rep;
	struct v2_list l = { 0 };
	struct codec *codec;
	struct store *st, *head = NULL;
	uint8_t *data = malloc(len), *whole = malloc(512u << 10), part[40000];
	uint64_t hlen, end, x = 88172645463325252ull;
	uint32_t hid, tlen;
	bool torn;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s/s-blocks", root);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)x;
	}
	CHECK(open_writer(dir, &st) == 0, "create");
	codec_new(3, &codec);
	fill(whole, 200000, 9);	/* compressible: a version 1 zstd record */
	CHECK(put_file(st, codec, "text", whole, 200000, 0, true) == 0, "put text");
	CHECK(put_file(st, codec, "f", data, len, 0, true) == 0, "put");
	store_close(st);
	pack_path(dir, 1, p, sizeof(p));
	fd = open(p, O_RDONLY);
	struct pack_src src = pack_src_fd(fd);

	CHECK(fd >= 0 && pack_header_read(&src, &hid, &hlen, NULL) == 0 &&
	      pack_scan(&src, 1, hlen, v2_cb, &l, &end, &torn) == 0 && !torn, "scan");
	if (fd >= 0)
		close(fd);
	CHECK(l.n >= 3 && l.v1_chunks >= 1, "%zu version 2 records, %zu others", l.n,
	      l.v1_chunks);
	if (l.n < 3)
		goto out;
	tlen = l.v[1].stored - l.v[1].raw;
	CHECK(l.v[1].shift == PACK_BLOCK_SHIFT &&
	      tlen == 8 * ((l.v[1].raw + (1u << PACK_BLOCK_SHIFT) - 1) >> PACK_BLOCK_SHIFT),
	      "record layout");
	/* recovered from the packs alone */
	snprintf(idx, sizeof(idx), "%s/index", dir);
	sio_remove_tree(idx);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.bad_regions == 0 && !store_recover_lost(&rep), "recover: %d", rc);
	store_recover_report_release(&rep);
	CHECK(check_file(dir, "f", data, len, 0) == 0 &&
	      check_file(dir, "text", whole, 200000, 0) == 0, "read after recover");

	/* far into a record: two requests (header and table, then the blocks), or one for
	 * a disk with a head */
	fd = open(p, O_RDONLY);
	for (size_t k = 0; fd >= 0 && k < l.n; k++) {
		struct counted c = { fd, 0 };
		struct pack_src cs = { .fd = -1, .pread = counted_pread, .arg = &c };
		struct pack_rec r;
		uint64_t from = l.v[k].raw - 5000;

		CHECK(pack_read_part(&cs, 1, l.v[k].off, l.v[k].stored, l.v[k].raw, from, 4096,
				     PACK_ONE_READ, &r, part) == 0 && c.reads == 2,
		      "record %zu: a part far in, two requests (%u)", k, c.reads);
		memcpy(whole, part, 4096);
		c.reads = 0;
		CHECK(pack_read_part(&cs, 1, l.v[k].off, l.v[k].stored, l.v[k].raw, from, 4096,
				     SIZE_MAX, &r, part) == 0 && c.reads == 1 &&
		      !memcmp(part, whole, 4096),
		      "record %zu: one request for a disk with a head (%u), the same bytes", k,
		      c.reads);
		c.reads = 0;
		CHECK(pack_read_part(&cs, 1, l.v[k].off, l.v[k].stored, l.v[k].raw, 100, 4096,
				     PACK_ONE_READ, &r, part) == 0 && c.reads == 1,
		      "record %zu: a part near the start, one request (%u)", k, c.reads);
	}
	if (fd >= 0)
		close(fd);
	CHECK(store_open(dir, &ro, &st) == 0, "reader");
	ro.disk = STORE_DISK_HEAD;
	CHECK(store_open(dir, &ro, &head) == 0 && store_disk_head(head) && !store_disk_head(st),
	      "a reader for a disk with a head");
	ro.disk = STORE_DISK_AUTO;
	for (size_t k = 0; k < l.n; k++) {
		const uint32_t raw = l.v[k].raw;
		const uint64_t at[][2] = { { 0, 1 }, { 16383, 2 }, { raw - 1, 1 },
					   { 5000, 20000 }, { raw / 2, 4096 },
					   { raw - 30000, 30000 } };
		ssize_t n = store_chunk_read(st, codec, &l.v[k].id, whole, 512u << 10, true);

		CHECK(n == (ssize_t)raw, "whole read of record %zu: %zd", k, n);
		for (size_t i = 0; n == (ssize_t)raw && i < 2 * sizeof(at) / sizeof(*at); i++) {
			size_t a = i % (sizeof(at) / sizeof(*at));

			rc = store_chunk_read_part(i < sizeof(at) / sizeof(*at) ? st : head,
						   &l.v[k].id, raw, at[a][0], at[a][1], part);
			CHECK(rc == 0 && !memcmp(part, whole + at[a][0], at[a][1]),
			      "part %llu+%llu of record %zu (%s): %d",
			      (unsigned long long)at[a][0], (unsigned long long)at[a][1], k,
			      i < sizeof(at) / sizeof(*at) ? "flash" : "head", rc);
		}
		CHECK(store_chunk_read_part(st, &l.v[k].id, raw, raw - 10, 11, part) == -EINVAL,
		      "a part past the end");
		CHECK(store_chunk_read_part(st, &l.v[k].id, raw + 1, 0, 10, part) == -EOPNOTSUPP,
		      "another length than the index's");
	}
	{	/* the compressed chunk: whole reads only */
		struct fp256 id;
		size_t n = cdc_next(&store_params(st)->cdc, whole, 200000, 1);

		fill(whole, 200000, 9);
		fp_sha256(whole, n, &id);
		CHECK(store_chunk_read_part(st, &id, (uint32_t)n, 0, 10, part) == -EOPNOTSUPP,
		      "a zstd chunk read in parts");
	}
	/* block 2 of record 1 damaged: its reads fail, block 0's does not */
	flip_at(dir, 1, l.v[1].off + PACK_REC_HDR + tlen + 2 * (1u << PACK_BLOCK_SHIFT) + 77);
	for (int hd = 0; hd < 2; hd++) {
		struct store *s = hd ? head : st;

		CHECK(store_chunk_read_part(s, &l.v[1].id, l.v[1].raw, 100, 4096, part) == 0,
		      "an intact block of a damaged chunk (%s)", hd ? "head" : "flash");
		CHECK(store_chunk_read_part(s, &l.v[1].id, l.v[1].raw, 2 * 16384 + 70, 20,
					    part) == -EBADMSG,
		      "the damaged block was served (%s)", hd ? "head" : "flash");
		CHECK(store_chunk_read_part(s, &l.v[1].id, l.v[1].raw, 16000, 40000, part) ==
		      -EBADMSG, "a range over the damaged block was served (%s)",
		      hd ? "head" : "flash");
	}
	CHECK(store_chunk_read(st, codec, &l.v[1].id, whole, 512u << 10, false) == -EBADMSG,
	      "a whole read of a damaged chunk");
	/* the table of record 2 damaged: nothing of it is served */
	flip_at(dir, 1, l.v[2].off + PACK_REC_HDR + 8 + 3);
	CHECK(store_chunk_read_part(st, &l.v[2].id, l.v[2].raw, 100, 10, part) == -EBADMSG,
	      "a part of a chunk with a damaged table");
	/* its header: the same */
	flip_at(dir, 1, l.v[0].off + 9);
	CHECK(store_chunk_read_part(st, &l.v[0].id, l.v[0].raw, 100, 10, part) == -EBADMSG,
	      "a part of a chunk with a damaged header");
	store_close(st);
	store_close(head);
	CHECK(check_file(dir, "f", data, len, 0) == -EBADMSG, "the file reads as damaged");
out:
	codec_free(codec);
	free(data);
	free(whole);
}

/*
 * Recovery past damage. A pack whose header bytes are flipped still yields every record
 * (only its header is listed); a damaged record between others is listed with its exact
 * offset and length; a META record that checks out but cannot be replayed is counted and
 * listed, and nothing of it applied; a commit whose META record is in damaged bytes is
 * listed as missing; an incomplete record at the end of the newest pack (a crash) is torn,
 * not lost; a complete record failing its checksum at the end, or an incomplete one in a
 * pack older than a commit that completed, is lost.
 */
static void test_recover_damage(void)
{
	uint8_t *data[DMG_FILES];
	struct store_recover_report rep;
	struct rec_list *l = calloc(1, sizeof(*l));
	const struct rec_pos *m, *first1 = NULL, *mid = NULL;
	char dir[300], idir[400];
	uint32_t last;
	int rc;

	snprintf(dir, sizeof(dir), "%s/dmg", root);
	for (int i = 0; i < DMG_FILES; i++) {
		data[i] = malloc(DMG_LEN);
		fill(data[i], DMG_LEN, 21 + (unsigned)i);
	}

	/* undamaged: nothing listed */
	dmg_store(dir, data, l);
	last = l->npacks;
	CHECK(last >= 3 && find_meta(l, DMG_FILES), "%u packs, %zu records", last, l->n);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.commits == DMG_FILES && rep.nunrec == 0 && !store_recover_lost(&rep),
	      "recover of an undamaged store: rc %d, %zu listed", rc, rep.nunrec);
	store_recover_report_release(&rep);

	/* pack 1's header flipped (magic and config copy): every record still comes back */
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].pack == 1 && !first1)
			first1 = &l->v[i];
		/* a chunk record of pack 1 with another record after it */
		if (l->v[i].pack == 1 && l->v[i].type == PACK_REC_CHUNK && i + 1 < l->n &&
		    l->v[i + 1].pack == 1 && !mid)
			mid = &l->v[i];
	}
	CHECK(first1 && mid, "pack 1's records");
	if (!first1 || !mid)
		goto out;
	flip_at(dir, 1, 0);
	flip_at(dir, 1, 24);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.bad_headers == 1 && rep.nunrec == 1 && rep.commits == DMG_FILES &&
	      has_unrec(&rep, STORE_UNREC_HEADER, 1, 0, first1->off) && store_recover_lost(&rep),
	      "a flipped header: rc %d, %llu headers, %zu listed, %llu commits", rc,
	      (unsigned long long)rep.bad_headers, rep.nunrec, (unsigned long long)rep.commits);
	store_recover_report_release(&rep);
	CHECK(dmg_readable(dir, data) == DMG_FILES, "the records past a damaged header are lost");

	/* a damaged record between two others: listed with its offset and length */
	dmg_store(dir, data, l);
	flip_at(dir, mid->pack, mid->off + PACK_REC_HDR + 10);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.bad_regions == 1 && rep.nunrec == 1 &&
	      has_unrec(&rep, STORE_UNREC_RANGE, mid->pack, mid->off, mid->len) &&
	      store_recover_lost(&rep), "a damaged record: rc %d, %zu listed (@%llu +%llu)", rc,
	      rep.nunrec, rep.nunrec ? (unsigned long long)rep.unrec[0].off : 0ull,
	      rep.nunrec ? (unsigned long long)rep.unrec[0].len : 0ull);
	store_recover_report_release(&rep);
	CHECK(dmg_readable(dir, data) == DMG_FILES - 1, "one file uses the damaged chunk");

	/* a commit that checks out but cannot be replayed: counted, listed, not applied */
	dmg_store(dir, data, l);
	{
		uint64_t at = append_bad_meta(dir, last, DMG_FILES + 1, 0);
		struct dfs_buf v;
		struct idx *ix;

		rc = store_recover(dir, &rep);
		CHECK(rc == 0 && rep.failed_commits == 1 && rep.commits == DMG_FILES &&
		      rep.nunrec == 1 && rep.unrec[0].kind == STORE_UNREC_COMMIT &&
		      rep.unrec[0].seq == DMG_FILES + 1 && rep.unrec[0].pack == last &&
		      rep.unrec[0].off == at && rep.unrec[0].len == pack_size(dir, last) - at &&
		      rep.unrec[0].err == -EBADMSG && store_recover_lost(&rep),
		      "a commit that cannot be replayed: rc %d, %llu failed, %zu listed", rc,
		      (unsigned long long)rep.failed_commits, rep.nunrec);
		store_recover_report_release(&rep);
		snprintf(idir, sizeof(idir), "%s/index", dir);
		dfs_buf_init(&v, 64);
		CHECK(idx_open(idir, false, NULL, 0, &ix) == 0, "open the rebuilt index");
		if (ix) {
			CHECK(idx_get(ix, IDX_META, "marker", 6, &v) == -ENOENT,
			      "half of a commit that cannot be replayed was applied");
			idx_close(ix);
		}
		dfs_buf_release(&v);
		CHECK(dmg_readable(dir, data) == DMG_FILES, "the other commits");
	}

	/* commit 2's META record damaged: the range and the commit listed */
	dmg_store(dir, data, l);
	m = find_meta(l, 2);
	CHECK(m && m != &l->v[l->n - 1], "commit 2's record");
	if (!m)
		goto out;
	flip_at(dir, m->pack, m->off + PACK_REC_HDR + 3);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.missing_commits == 1 && rep.commits == DMG_FILES - 1 &&
	      rep.nunrec == 2 && has_unrec(&rep, STORE_UNREC_RANGE, m->pack, m->off, m->len) &&
	      rep.unrec[1].kind == STORE_UNREC_MISSING && rep.unrec[1].seq == 2 &&
	      rep.unrec[1].count == 1 && store_recover_lost(&rep),
	      "a damaged commit record: rc %d, %llu missing, %zu listed", rc,
	      (unsigned long long)rep.missing_commits, rep.nunrec);
	store_recover_report_release(&rep);

	/* a record cut short at the end of the newest pack (a crash): torn, not lost */
	dmg_store(dir, data, l);
	{
		uint64_t at = append_bad_meta(dir, last, DMG_FILES + 1, PACK_REC_HDR + 5);

		rc = store_recover(dir, &rep);
		CHECK(rc == 0 && rep.torn_tails == 1 && rep.nunrec == 1 &&
		      has_unrec(&rep, STORE_UNREC_TORN, last, at, PACK_REC_HDR + 5) &&
		      !store_recover_lost(&rep) && rep.commits == DMG_FILES,
		      "a torn end: rc %d, %llu torn, %zu listed", rc,
		      (unsigned long long)rep.torn_tails, rep.nunrec);
		store_recover_report_release(&rep);
	}

	/* the newest pack's last record complete but damaged: lost, not torn */
	dmg_store(dir, data, l);
	m = &l->v[l->n - 1];
	flip_at(dir, m->pack, m->off + m->len - 1);
	rc = store_recover(dir, &rep);
	CHECK(rc == 0 && rep.torn_tails == 0 && rep.nunrec == 1 &&
	      has_unrec(&rep, STORE_UNREC_RANGE, m->pack, m->off, m->len) &&
	      store_recover_lost(&rep), "a damaged last record: rc %d, %zu listed", rc,
	      rep.nunrec);
	store_recover_report_release(&rep);

	/* pack 1 cut in its last record, though a later pack holds an older commit than the
	 * newest (so pack 1 was synced whole): lost */
	dmg_store(dir, data, l);
	{
		const struct rec_pos *end1 = NULL, *older = NULL;
		int fd;

		for (size_t i = 0; i < l->n; i++) {
			if (l->v[i].pack == 1)
				end1 = &l->v[i];
			if (l->v[i].pack > 1 && l->v[i].type == PACK_REC_META &&
			    l->v[i].seq < DMG_FILES)
				older = &l->v[i];
		}
		CHECK(end1 && older, "a commit older than the newest in a pack after pack 1");
		if (!end1 || !older)
			goto out;
		fd = pack_fd(dir, 1, O_WRONLY);
		CHECK(fd >= 0 && ftruncate(fd, (off_t)(end1->off + 100)) == 0, "cut pack 1");
		if (fd >= 0)
			close(fd);
		rc = store_recover(dir, &rep);
		CHECK(rc == 0 && rep.torn_tails == 0 && rep.nunrec == 1 &&
		      has_unrec(&rep, STORE_UNREC_RANGE, 1, end1->off, 100) &&
		      store_recover_lost(&rep), "pack 1 cut short: rc %d, %zu listed", rc,
		      rep.nunrec);
		store_recover_report_release(&rep);
	}
out:
	for (int i = 0; i < DMG_FILES; i++)
		free(data[i]);
	free(l);
}

#ifdef DFS_TEST_FAULTS
/* Runs one commit in a child with a fault at mutating operation @at; returns how the
 * child ended: 0 success, 1 clean failure, 137 crash. */
static int run_faulted(const char *dir, long at, const char *mode, uint8_t *data, size_t len)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		struct store *s;
		struct codec *codec;
		char n[32];
		int rc;

		snprintf(n, sizeof(n), "%ld", at);
		setenv("DFS_FAULT_AT", n, 1);
		if (!strcmp(mode, "crash"))
			setenv("DFS_FAULT_CRASH", "1", 1);
		else if (!strcmp(mode, "short"))
			setenv("DFS_FAULT_SHORT", "1", 1);
		else
			setenv("DFS_FAULT_ERRNO", mode, 1);
		dfs_log_set_level(DFS_LOG_ERR - 1 < 0 ? DFS_LOG_ERR : DFS_LOG_ERR);
		rc = open_writer(dir, &s);
		if (rc < 0)
			_exit(1);
		codec_new(3, &codec);
		rc = put_file(s, codec, "late", data, len, 0, true);
		codec_free(codec);
		store_close(s);
		_exit(rc < 0 ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/*
 * A crash, EIO, ENOSPC or short write at each mutating operation of a commit (about 28).
 * Each point costs a store's creation and two reopenings (1.4 s under ASan): the suite
 * takes every 4th, the soak (DFS_SOAK=1) every one.
 */
#define FAULT_STRIDE 4

static void test_fault_loop(void)
{
	static const char *const modes[] = { "EIO", "ENOSPC", "short", "crash" };
	uint8_t *base = malloc(1 << 20), *late = malloc(1 << 20);
	char dir[300];

	const char *soak = getenv("DFS_SOAK"), *seed_env = getenv("DFS_TEST_SEED");
	unsigned long seed = seed_env ? strtoul(seed_env, NULL, 10) : (unsigned long)time(NULL);
	/* CI: every FAULT_STRIDE-th point from a rotating offset; the soak: every point */
	long step = soak && !strcmp(soak, "1") ? 1 : FAULT_STRIDE;

	fill(base, 1 << 20, 11);
	fill(late, 1 << 20, 12);
	printf("fault loop: every %ld. operation from the %lu. (DFS_TEST_SEED=%lu repeats it)\n",
	       step, 1 + seed % (unsigned long)step, seed);
	for (size_t m = 0; m < sizeof(modes) / sizeof(*modes); m++) {
		long points = 0, failed = 0;

		for (long at = 1 + (long)(seed % (unsigned long)step); at < 200; at += step) {
			struct store *st;
			struct codec *codec;
			int how, rc;

			snprintf(dir, sizeof(dir), "%s/f-%s-%ld", root, modes[m], at);
			CHECK(open_writer(dir, &st) == 0, "create");
			codec_new(3, &codec);
			CHECK(put_file(st, codec, "base", base, 1 << 20, 0, true) == 0, "base");
			codec_free(codec);
			store_close(st);
			how = run_faulted(dir, at, modes[m], late, 1 << 20);
			points++;
			failed += how != 0;
			/* committed before: always intact */
			CHECK(check_file(dir, "base", base, 1 << 20, 0) == 0,
			      "%s at op %ld: committed file damaged", modes[m], at);
			rc = check_file(dir, "late", late, 1 << 20, 0);
			/* the faulted commit: all or nothing */
			CHECK(rc == 0 || rc == -ENOENT, "%s at op %ld: half-written file (%d)",
			      modes[m], at, rc);
			if (how == 0)
				CHECK(rc == 0, "%s at op %ld: success reported, file missing",
				      modes[m], at);
			/* a writer can always continue */
			CHECK(open_writer(dir, &st) == 0, "%s at op %ld: reopen", modes[m], at);
			if (st) {
				codec_new(3, &codec);
				CHECK(put_file(st, codec, "after", base, 1000, 0, true) == 0,
				      "%s at op %ld: write after fault", modes[m], at);
				codec_free(codec);
				store_close(st);
			}
			sio_remove_tree(dir);
			if (how == 0)
				break;	/* past the last mutating operation */
		}
		printf("fault loop %s: %ld points, %ld faulted runs\n", modes[m], points, failed);
		/* most of the ~28 points fault: at least 16 of them, 4 of a quarter */
		CHECK(failed * step >= 16, "%s: the fault switch fired %ld times", modes[m],
		      failed);
	}
	free(base);
	free(late);
}
#endif

/*
 * Chunks appended by worker threads while commits run, with packs sealing often: after
 * a writer reopens the store (and cuts every pack to its committed length), every chunk
 * that was committed must still read back. A pack that sealed between a commit's
 * snapshot and its end was once forgotten with a stale committed length, and the next
 * open cut committed chunks off it.
 */
#define RACE_CHUNKS 48
#define RACE_LEN (48u << 10)

struct race {
	struct store *st;
	unsigned seed;
	struct fp256 ids[RACE_CHUNKS];
	int rc;
};

static void *race_worker(void *arg)
{
	struct race *r = arg;
	struct codec *codec;
	uint8_t *data = malloc(RACE_LEN), *cbuf = malloc(codec_bound(RACE_LEN));

	r->rc = codec_new(1, &codec);
	for (unsigned i = 0; i < RACE_CHUNKS && r->rc == 0 && data && cbuf; i++) {
		enum codec_id c;
		ssize_t sl;

		fill(data, RACE_LEN, r->seed * 1000 + i);
		for (size_t k = 0; k < RACE_LEN; k += 8)	/* incompressible enough */
			data[k] = (uint8_t)(k * 131 + i * 7 + r->seed);
		fp_sha256(data, RACE_LEN, &r->ids[i]);
		sl = codec_compress(codec, data, RACE_LEN, cbuf, codec_bound(RACE_LEN), &c);
		r->rc = sl < 0 ? (int)sl
			       : store_put_chunk(r->st, &r->ids[i], RACE_LEN, cbuf, (uint32_t)sl, c);
		if (r->rc > 0)
			r->rc = 0;
	}
	codec_free(codec);
	free(data);
	free(cbuf);
	return NULL;
}

static void test_commit_while_sealing(void)
{
	char dir[300];
	struct store *st;
	struct race r[2] = { { 0 } };
	pthread_t t[2];
	struct codec *codec;
	uint8_t *buf = malloc(RACE_LEN);
	int bad = 0;

	snprintf(dir, sizeof(dir), "%s/race", root);
	CHECK(open_writer(dir, &st) == 0, "open");
	for (int i = 0; i < 2; i++) {
		r[i].st = st;
		r[i].seed = (unsigned)i + 1;
		pthread_create(&t[i], NULL, race_worker, &r[i]);
	}
	for (int n = 0; n < 400; n++) {	/* commits while the workers append */
		struct store_txn *tx;

		CHECK(store_txn_begin(st, &tx) == 0 && store_txn_commit(tx) == 0, "commit %d", n);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].rc == 0, "worker %d: %d", i, r[i].rc);
	}
	{
		struct store_txn *tx;

		CHECK(store_txn_begin(st, &tx) == 0 && store_txn_commit(tx) == 0, "last commit");
	}
	store_close(st);
	CHECK(open_writer(dir, &st) == 0, "reopen (cuts uncommitted bytes)");
	codec_new(1, &codec);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < RACE_CHUNKS; k++)
			if (store_chunk_read(st, codec, &r[i].ids[k], buf, RACE_LEN, true) !=
			    (ssize_t)RACE_LEN)
				bad++;
	CHECK(bad == 0, "%d committed chunks lost after reopen", bad);
	codec_free(codec);
	store_close(st);
	free(buf);
}

#ifdef DFS_TEST_FAULTS
/*
 * A commit reads the chunks it names after its snapshot, without the writer mutex, while
 * workers append more: an append that grew the pending array (realloc) once left the
 * commit reading freed memory (found by ASan in t_remote's rerun). Here the commit's
 * hook appends enough chunks to move the array while the commit is at its first chunk.
 */
#define HOOK_CHUNKS 3000

static struct fp256 hook_ids[HOOK_CHUNKS];
static int hook_rc;

static void hook_data(unsigned i, uint8_t *d)
{
	fill(d, 64, 7000 + i);
}

static void append_in_commit(struct store *st)
{
	uint8_t d[64];

	store_fault_commit_hook = NULL;	/* once */
	for (unsigned i = 0; i < HOOK_CHUNKS && hook_rc >= 0; i++) {
		hook_data(i, d);
		fp_sha256(d, sizeof(d), &hook_ids[i]);
		hook_rc = store_put_chunk(st, &hook_ids[i], sizeof(d), d, sizeof(d), CODEC_RAW);
	}
}

static void test_commit_moves_pending(void)
{
	char dir[300];
	struct store *st;
	struct store_txn *tx;
	struct codec *codec;
	struct fp256 first[8];
	uint8_t d[64], back[64];
	int bad = 0;

	snprintf(dir, sizeof(dir), "%s/movepend", root);
	CHECK(open_writer(dir, &st) == 0, "open");
	for (unsigned i = 0; i < 8; i++) {
		hook_data(100000 + i, d);
		fp_sha256(d, sizeof(d), &first[i]);
		CHECK(store_put_chunk(st, &first[i], sizeof(d), d, sizeof(d), CODEC_RAW) >= 0,
		      "put %u", i);
	}
	hook_rc = 0;
	store_fault_commit_hook = append_in_commit;
	CHECK(store_txn_begin(st, &tx) == 0 && store_txn_commit(tx) == 0, "the commit");
	store_fault_commit_hook = NULL;
	CHECK(hook_rc >= 0, "appends during the commit: %d", hook_rc);
	CHECK(store_txn_begin(st, &tx) == 0 && store_txn_commit(tx) == 0, "the next commit");
	store_close(st);
	CHECK(open_writer(dir, &st) == 0, "reopen");
	codec_new(1, &codec);
	for (unsigned i = 0; i < 8; i++)
		if (store_chunk_read(st, codec, &first[i], back, sizeof(back), true) != 64)
			bad++;
	for (unsigned i = 0; i < HOOK_CHUNKS; i++)
		if (store_chunk_read(st, codec, &hook_ids[i], back, sizeof(back), true) != 64)
			bad++;
	CHECK(bad == 0, "%d chunks lost", bad);
	codec_free(codec);
	store_close(st);
}
#endif

#define MANY_INODES 300

/* Writes raw bytes @v as the record of inode @ino, behind the store's back. */
static int put_raw_inode(struct idx *ix, uint64_t ino, const void *v, size_t vlen)
{
	struct idx_batch *b;
	uint8_t key[8];
	int rc;

	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(ino >> (56 - 8 * i));
	rc = idx_batch_new(ix, &b);
	if (rc < 0)
		return rc;
	idx_batch_put(b, IDX_INODES, key, sizeof(key), v, vlen);
	rc = idx_batch_commit(b, true);
	idx_batch_free(b);
	return rc;
}

/* store_get_inodes(@inos) against one store_get_inode per inode: 0 or the first mismatch. */
static int compare_batch(struct store *st, const uint64_t *inos, size_t n, const char *what)
{
	struct store_inode *out = calloc(n ? n : 1, sizeof(*out));
	int *rcs = calloc(n ? n : 1, sizeof(*rcs));
	int bad = 0;

	CHECK(store_get_inodes(st, inos, n, out, rcs) == 0, "%s: batch ran", what);
	for (size_t i = 0; i < n; i++) {
		struct store_inode one;
		int rc = store_get_inode(st, inos[i], &one);

		if (rc != rcs[i]) {
			CHECK(0, "%s: inode %llu: batch %d, single %d", what,
			      (unsigned long long)inos[i], rcs[i], rc);
			bad++;
		} else if (rc == 0 && (!store_inode_same(&one, &out[i]) || one.gen != out[i].gen ||
				       out[i].ino != inos[i])) {
			CHECK(0, "%s: inode %llu: batch read another record", what,
			      (unsigned long long)inos[i]);
			bad++;
		}
		store_inode_release(&one);
		store_inode_release(&out[i]);
	}
	free(rcs);
	free(out);
	return bad;
}

static int count_rc(struct store *st, const uint64_t *inos, size_t n, int want)
{
	struct store_inode *out = calloc(n, sizeof(*out));
	int *rcs = calloc(n, sizeof(*rcs));
	int k = 0;

	store_get_inodes(st, inos, n, out, rcs);
	for (size_t i = 0; i < n; i++) {
		k += rcs[i] == want;
		store_inode_release(&out[i]);
	}
	free(rcs);
	free(out);
	return k;
}

static void check_batches(struct store *st, uint64_t first, const char *when)
{
	uint64_t dense[MANY_INODES + 4], mixed[MANY_INODES], sparse[10], one = first + 7;
	size_t nd = 0;
	char what[128];

	/* dense and sorted (one pass), with a missing number before, inside and after */
	dense[nd++] = first - 1;
	for (uint64_t i = 0; i < MANY_INODES + 1; i++)
		dense[nd++] = first + i;	/* first + MANY_INODES is missing */
	dense[nd++] = first + MANY_INODES + 2;
	snprintf(what, sizeof(what), "%s, dense", when);
	CHECK(compare_batch(st, dense, nd, what) == 0, "%s", what);
	CHECK(count_rc(st, dense, nd, -ENOENT) == 3, "%s: three missing", what);
	/* unsorted, with repeats (hard links in one directory) */
	for (size_t i = 0; i < MANY_INODES; i++)
		mixed[i] = first + (i * 7919) % (MANY_INODES / 2);
	snprintf(what, sizeof(what), "%s, mixed", when);
	CHECK(compare_batch(st, mixed, MANY_INODES, what) == 0, "%s", what);
	/* sparse: far apart numbers (point reads of one batch) */
	for (size_t i = 0; i < 10; i++)
		sparse[i] = i % 3 == 2 ? (1ull << 40) + i : first + (i * 37) % MANY_INODES;
	snprintf(what, sizeof(what), "%s, sparse", when);
	CHECK(compare_batch(st, sparse, 10, what) == 0, "%s", what);
	CHECK(count_rc(st, sparse, 10, -ENOENT) == 3, "%s: three missing", what);
	snprintf(what, sizeof(what), "%s, one", when);
	CHECK(compare_batch(st, &one, 1, what) == 0, "%s", what);
	snprintf(what, sizeof(what), "%s, none", when);
	CHECK(compare_batch(st, NULL, 0, what) == 0, "%s", what);
}

static void test_get_inodes(void)
{
	static const uint8_t truncated[] = { 1, 2 }, unknown[] = { 9, 1, 0x81 };
	struct store_open_opts ro = { .mode = STORE_READER };
	char dir[300], idir[400];
	struct store_txn *tx;
	struct store *st;
	struct idx *ix;
	uint64_t first = 0, sparse[3];
	int rc;

	snprintf(dir, sizeof(dir), "%s/inodes", root);
	CHECK(open_writer(dir, &st) == 0, "create store");
	rc = store_txn_begin(st, &tx);
	for (int i = 0; rc == 0 && i < MANY_INODES; i++) {
		struct store_xattr xa = {
			{ (uint8_t *)"user.k", 6 }, { (uint8_t *)"value", (size_t)(i % 5) }
		};
		struct store_inode in = { 0 };

		in.ino = store_txn_alloc_ino(tx);
		if (i == 0)
			first = in.ino;
		in.view = i % 2 ? STORE_VIEW_SRC : STORE_VIEW_ORG;
		in.mode = (i % 3 ? S_IFREG : S_IFLNK) | 0644;
		in.nlink = 1 + i % 4;
		in.size = (uint64_t)i * 1000;
		in.mtime.tv_sec = 1700000000 + i;
		in.gen = (uint64_t)i;
		if (i % 3 == 0) {
			in.target.p = (uint8_t *)"target";
			in.target.len = 6;
		}
		if (i % 4 == 0) {
			in.xattrs = &xa;
			in.nxattrs = 1;
		}
		rc = store_txn_put_inode(tx, &in);
	}
	CHECK(rc == 0 && first, "put inodes");
	store_txn_alloc_ino(tx);	/* a number never written: first + MANY_INODES */
	CHECK(store_txn_commit(tx) == 0, "commit");
	check_batches(st, first, "writer (memtable)");
	store_close(st);

	CHECK(store_open(dir, &ro, &st) == 0, "open reader");
	check_batches(st, first, "reader (table files)");
	store_close(st);

	/* damaged records, written by other means than the store */
	snprintf(idir, sizeof(idir), "%s/index", dir);
	CHECK(idx_open(idir, false, NULL, 0, &ix) == 0, "open the index");
	CHECK(put_raw_inode(ix, first + 10, truncated, sizeof(truncated)) == 0, "put truncated");
	CHECK(put_raw_inode(ix, first + 11, unknown, sizeof(unknown)) == 0, "put unknown");
	CHECK(put_raw_inode(ix, first + 12, "", 0) == 0, "put empty");
	CHECK(idx_flush(ix, true) == 0, "flush");
	idx_close(ix);
	CHECK(store_open(dir, &ro, &st) == 0, "open reader");
	check_batches(st, first, "reader, damaged");
	for (int i = 0; i < 3; i++)
		sparse[i] = first + 10 + (uint64_t)i;
	CHECK(count_rc(st, sparse, 3, -EBADMSG) == 2, "truncated and empty: -EBADMSG");
	CHECK(count_rc(st, sparse, 3, -EPROTONOSUPPORT) == 1, "unknown version");
	store_close(st);
}

/* ---- a batch reads its own writes ------------------------------------------------------ */

#define MODEL_MAX 4096

/* What the index holds, as seen through the batch: keys and values, or deleted. */
static struct model_ent {
	enum idx_cf cf;
	uint8_t k[16];
	size_t klen;
	uint8_t v[24];
	size_t vlen;
	bool live;
} model[MODEL_MAX];
static size_t nmodel;
static uint32_t mrng = 12345u;

static uint32_t mnext(void)
{
	mrng ^= mrng << 13;
	mrng ^= mrng >> 17;
	mrng ^= mrng << 5;
	return mrng;
}

static struct model_ent *model_find(enum idx_cf cf, const uint8_t *k, size_t klen)
{
	for (size_t i = 0; i < nmodel; i++)
		if (model[i].cf == cf && model[i].klen == klen && !memcmp(model[i].k, k, klen))
			return &model[i];
	return NULL;
}

/* RocksDB's bytewise order */
static int key_cmp(const void *a, const void *b)
{
	const struct model_ent *x = *(struct model_ent *const *)a;
	const struct model_ent *y = *(struct model_ent *const *)b;
	size_t m = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->k, y->k, m);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* A random key: a directory entry (8-byte parent 0..5, a 1..3 letter name), an inode, or
 * a short meta key. */
static void random_key(enum idx_cf *cf, uint8_t *k, size_t *klen)
{
	uint32_t r = mnext();

	memset(k, 0, 16);
	if (r % 3 == 0) {
		*cf = IDX_DIRENTS;
		k[7] = (uint8_t)(r / 3 % 6);
		*klen = 8 + 1 + (r / 18) % 3;
		for (size_t i = 8; i < *klen; i++)
			k[i] = (uint8_t)('a' + mnext() % 3);
	} else if (r % 3 == 1) {
		*cf = IDX_INODES;
		k[7] = (uint8_t)(r / 3 % 40);
		*klen = 8;
	} else {
		*cf = IDX_META;
		k[0] = 'm';
		k[1] = (uint8_t)('0' + r / 3 % 7);
		*klen = 2;
	}
}

/* Iterates @cf under @prefix through @b (NULL: the database alone) and compares with the
 * model. */
static void model_iter(struct idx *ix, struct idx_batch *b, enum idx_cf cf,
		       const uint8_t *prefix, size_t plen, const char *what)
{
	struct model_ent *want[MODEL_MAX];
	struct idx_iter *it;
	const uint8_t *k, *v;
	size_t n = 0, got = 0, klen, vlen;
	int rc;

	for (size_t i = 0; i < nmodel; i++)
		if (model[i].live && model[i].cf == cf && model[i].klen >= plen &&
		    !memcmp(model[i].k, prefix, plen))
			want[n++] = &model[i];
	qsort(want, n, sizeof(*want), key_cmp);
	CHECK(idx_iter_new(ix, b, cf, prefix, plen, NULL, 0, &it) == 0, "%s: iterator", what);
	while ((rc = idx_iter_next(it, &k, &klen, &v, &vlen)) == 1) {
		CHECK(got < n && klen == want[got]->klen && !memcmp(k, want[got]->k, klen) &&
		      vlen == want[got]->vlen && !memcmp(v, want[got]->v, vlen),
		      "%s: entry %zu differs", what, got);
		got++;
	}
	CHECK(rc == 0 && got == n, "%s: %zu entries, want %zu (rc %d)", what, got, n, rc);
	idx_iter_free(it);
}

/*
 * Random puts, deletes, point reads, prefix iterations (one directory: the chained case;
 * a whole column family: every write indexed) and commits, on a batch and against a
 * model of what it must show: reads see the batch's latest write over the database, in
 * key order for iterators, whether or not the key was written since the last iterator.
 */
static void test_batch_reads(void)
{
	char dir[PATH_MAX];
	struct idx *ix;
	struct idx_batch *b;
	struct dfs_buf val;
	int commits = 0, iters = 0;

	snprintf(dir, sizeof(dir), "%s/batch-index", root);
	CHECK(idx_open(dir, true, NULL, 0, &ix) == 0, "open a new index");
	CHECK(idx_batch_new(ix, &b) == 0, "new batch");
	dfs_buf_init(&val, 1u << 20);
	for (int op = 0; op < 20000; op++) {
		uint32_t r = mnext() % 100;
		enum idx_cf cf;
		uint8_t k[16];
		size_t klen;
		struct model_ent *m;

		random_key(&cf, k, &klen);
		m = model_find(cf, k, klen);
		if (r < 45) {
			if (!m && nmodel < MODEL_MAX) {
				m = &model[nmodel++];
				m->cf = cf;
				memcpy(m->k, k, klen);
				m->klen = klen;
			}
			if (!m)
				continue;
			m->vlen = mnext() % sizeof(m->v);
			for (size_t i = 0; i < m->vlen; i++)
				m->v[i] = (uint8_t)mnext();
			m->live = true;
			idx_batch_put(b, cf, k, klen, m->v, m->vlen);
		} else if (r < 60) {
			if (m)
				m->live = false;
			idx_batch_del(b, cf, k, klen);
		} else if (r < 85) {
			int rc = idx_batch_get(b, cf, k, klen, &val);

			if (m && m->live)
				CHECK(rc == 0 && val.len == m->vlen &&
				      !memcmp(val.data, m->v, m->vlen),
				      "op %d: get of a live key (rc %d)", op, rc);
			else
				CHECK(rc == -ENOENT, "op %d: get of a missing key: rc %d", op, rc);
		} else if (r < 95) {
			uint8_t p[8] = { 0 };

			p[7] = (uint8_t)(mnext() % 6);
			model_iter(ix, b, IDX_DIRENTS, p, sizeof(p), "directory");
			iters++;
		} else if (r < 97) {
			model_iter(ix, b, r == 95 ? IDX_INODES : IDX_META, (const uint8_t *)"", 0,
				   "column family");
			iters++;
		} else if (r == 99 && mnext() % 4 == 0) {
			CHECK(idx_batch_commit(b, false) == 0, "commit");
			commits++;
		}
	}
	CHECK(idx_batch_commit(b, true) == 0, "last commit");
	/* the database alone now holds what the batch showed */
	for (uint8_t d = 0; d < 6; d++) {
		uint8_t p[8] = { 0, 0, 0, 0, 0, 0, 0, d };

		model_iter(ix, NULL, IDX_DIRENTS, p, sizeof(p), "committed directory");
	}
	model_iter(ix, NULL, IDX_INODES, (const uint8_t *)"", 0, "committed inodes");
	model_iter(ix, NULL, IDX_META, (const uint8_t *)"", 0, "committed meta");
	CHECK(commits > 5 && iters > 1000, "the walk committed %d times, iterated %d", commits,
	      iters);
	dfs_buf_release(&val);
	idx_batch_free(b);
	idx_close(ix);
}

/* Entries of @dir (but "." names) whose names start with @prefix; the last one's name
 * into @name. -1 if @dir cannot be listed. */
static int count_prefixed(const char *dir, const char *prefix, char *name, size_t cap)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (name)
			snprintf(name, cap, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

static int count_entries(const char *dir)
{
	return count_prefixed(dir, "", NULL, 0);
}

static void put_round(struct idx *ix, const char *key, uint32_t r, size_t pad)
{
	struct idx_batch *b;
	uint8_t *v = calloc(1, pad + sizeof(r));

	if (!v || idx_batch_new(ix, &b) < 0) {
		CHECK(0, "batch for %s", key);
		free(v);
		return;
	}
	memcpy(v, &r, sizeof(r));
	for (size_t i = sizeof(r); i < pad + sizeof(r); i++)
		v[i] = (uint8_t)mnext();
	idx_batch_put(b, IDX_INODES, key, strlen(key), v, pad + sizeof(r));
	CHECK(idx_batch_commit(b, true) == 0, "commit %s", key);
	idx_batch_free(b);
	free(v);
}

static uint32_t get_round(struct idx *ix, const char *key)
{
	struct dfs_buf val;
	uint32_t r = UINT32_MAX;

	dfs_buf_init(&val, 1u << 20);
	if (idx_get(ix, IDX_INODES, key, strlen(key), &val) == 0 && val.len >= sizeof(r))
		memcpy(&r, val.data, sizeof(r));
	dfs_buf_release(&val);
	return r;
}

/* A directory of ours, mode 0700, not a symlink. */
static bool is_private_dir(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == geteuid() &&
	       (sb.st_mode & 0777) == 0700;
}

/* A decoy: a directory holding one file "keep", which no cleanup may touch. */
static void decoy_make(const char *decoy)
{
	char f[PATH_MAX + 8];
	int fd;

	snprintf(f, sizeof(f), "%s/keep", decoy);
	CHECK(mkdir(decoy, 0755) == 0, "mkdir %s", decoy);
	fd = open(f, O_CREAT | O_WRONLY | O_EXCL, 0644);
	CHECK(fd >= 0 && write(fd, "keep", 4) == 4, "write %s", f);
	if (fd >= 0)
		close(fd);
}

static bool decoy_intact(const char *decoy)
{
	char f[PATH_MAX + 8], b[8];
	ssize_t n = -1;
	int fd;

	snprintf(f, sizeof(f), "%s/keep", decoy);
	fd = open(f, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, b, sizeof(b));
		close(fd);
	}
	return count_entries(decoy) == 1 && n == 4 && !memcmp(b, "keep", 4);
}

/*
 * A secondary instance follows a primary that is closed and reopened (every ingest),
 * flushed (new WALs) and written, catching up at random points and after each session:
 * after each session it must show that session's last write and every key written.
 * RocksDB 7.8's catch-up alone lost the last write of 11 of the 80 sessions here (and 99
 * of 300 in a stress without catch-ups mid-session), and answered from the old state
 * for good. Also: an iterator opened before a catch-up keeps working on the view it was
 * opened on, the private directories of replaced views are removed, a catch-up that
 * repaired the view says so, and the reader's private directory (in follow-tmp, which
 * stands for /tmp) is never reached by its path again: removed (a /tmp cleaner) and a
 * symlink put at its name, it is not made again there and the symlink is not followed,
 * but a fresh one with an unpredictable name is made beside it; swapped for a
 * symlink, the reader goes on in its own directory and never writes where the symlink
 * leads; when no fresh one can be made, the reader keeps the view it has (no partial
 * catch-up) and follows again once it can. At close nothing of it is left.
 */
static void test_secondary_follows(void)
{
	char dir[PATH_MAX], ftmp[400], priv[PATH_MAX], cur[PATH_MAX], decoy[PATH_MAX];
	char swapped[PATH_MAX], link[PATH_MAX], name[256], ftmp_away[PATH_MAX + 8];
	struct idx *p, *sec;
	int stale = 0, missing = 0;
	const int rounds = 80;

	snprintf(dir, sizeof(dir), "%s/follow-index", root);
	snprintf(ftmp, sizeof(ftmp), "%s/follow-tmp", root);
	snprintf(ftmp_away, sizeof(ftmp_away), "%s.away", ftmp);
	snprintf(priv, sizeof(priv), "%s/follow-private", ftmp);
	snprintf(swapped, sizeof(swapped), "%s/swapped", ftmp);
	snprintf(decoy, sizeof(decoy), "%s/follow-decoy", root);
	snprintf(cur, sizeof(cur), "%s", priv);
	CHECK(mkdir(ftmp, 01777) == 0 && chmod(ftmp, 01777) == 0, "mkdir %s", ftmp);
	CHECK(mkdir(priv, 0700) == 0, "mkdir %s", priv);
	decoy_make(decoy);
	CHECK(idx_open(dir, true, NULL, 0, &p) == 0, "create the primary");
	put_round(p, "round", 0, 0);
	idx_close(p);
	CHECK(idx_open(dir, false, priv, 0, &sec) == 0, "open the secondary");
	CHECK(get_round(sec, "round") == 0, "the secondary shows round 0");
	for (uint32_t r = 1; r <= (uint32_t)rounds; r++) {
		uint32_t n = mnext() % 12, got;
		struct idx_iter *held = NULL;
		uint64_t seq;
		char key[32];
		int rc;

		CHECK(idx_open(dir, false, NULL, 0, &p) == 0, "reopen the primary");
		if (r % 7 == 0)
			CHECK(idx_iter_new(sec, NULL, IDX_INODES, "", 0, NULL, 0, &held) == 0,
			      "iterator");
		for (uint32_t i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "k%u-%u", r, i);
			put_round(p, key, r, mnext() % 50000);
			if (mnext() % 8 == 0)
				CHECK(idx_flush(p, mnext() % 2) == 0, "flush");
			/* not in round 50, whose view must be from before the session */
			if (r != 50 && mnext() % 10 == 0)
				CHECK(idx_catch_up(sec) >= 0, "catch up mid-session");
		}
		put_round(p, "round", r, 0);
		if (mnext() % 3 == 0)
			CHECK(idx_flush(p, true) == 0, "flush");
		idx_close(p);
		if (r == 20) {	/* a session without writes: a new MANIFEST, the same data */
			CHECK(idx_catch_up(sec) >= 0, "catch up");
			CHECK(idx_open(dir, false, NULL, 0, &p) == 0, "reopen the primary");
			idx_close(p);
			seq = idx_sequence(sec);
			CHECK(idx_catch_up(sec) == 1 && idx_sequence(sec) == seq,
			      "a fresh view is reported even where the sequence did not move");
		} else if (r == 30) {	/* a cleaner of /tmp removes the private directory, */
			sio_remove_tree(priv);	/* and someone puts a symlink at its name */
			CHECK(access(priv, F_OK) < 0 && symlink(decoy, priv) == 0,
			      "%s replaced by a symlink", priv);
		} else if (r == 40) {	/* swapped for a symlink to another directory */
			snprintf(link, sizeof(link), "%s", cur);
			CHECK(rename(cur, swapped) == 0 && symlink(decoy, link) == 0,
			      "%s swapped for a symlink", cur);
		} else if (r == 50) {	/* removed, and no fresh one can be made */
			sio_remove_tree(swapped);
			CHECK(unlink(link) == 0, "unlink the symlink %s", link);
			CHECK(rename(ftmp, ftmp_away) == 0 &&
			      close(open(ftmp, O_CREAT | O_WRONLY, 0600)) == 0, "a file at %s",
			      ftmp);
			seq = idx_sequence(sec);
			CHECK(idx_catch_up(sec) == 0 && idx_sequence(sec) == seq &&
			      get_round(sec, "round") == r - 1,
			      "without a fresh view the view stays as it was");
			CHECK(unlink(ftmp) == 0 && rename(ftmp_away, ftmp) == 0, "%s back", ftmp);
		}
		seq = idx_sequence(sec);
		got = get_round(sec, "round");
		rc = idx_catch_up(sec);
		CHECK(rc >= 0, "catch up: %d", rc);
		CHECK(get_round(sec, "round") == got || rc == 1 || idx_sequence(sec) != seq,
		      "round %u: the catch-up that showed it said nothing moved", r);
		got = get_round(sec, "round");
		stale += got != r;
		for (uint32_t i = 0; i < n; i++) {
			snprintf(key, sizeof(key), "k%u-%u", r, i);
			missing += get_round(sec, key) != r;
		}
		if (held) {
			const uint8_t *k, *v;
			size_t kl, vl;
			int rows = 0;

			while ((rc = idx_iter_next(held, &k, &kl, &v, &vl)) > 0)
				rows++;
			CHECK(rc == 0 && rows >= 1, "a held iterator after a catch-up: rc %d, %d rows",
			      rc, rows);
			idx_iter_free(held);
		}
		if (r == 30 || r == 50) {
			struct stat sb;

			CHECK(r == 30 ? lstat(priv, &sb) == 0 && S_ISLNK(sb.st_mode) &&
					decoy_intact(decoy) && unlink(priv) == 0
				      : access(priv, F_OK) < 0,
			      "round %u: %s made again at its name, or followed", r, priv);
			CHECK(count_prefixed(ftmp, "follow-private.", name, sizeof(name)) == 1,
			      "round %u: %d fresh private directories", r,
			      count_prefixed(ftmp, "follow-private.", NULL, 0));
			snprintf(cur, sizeof(cur), "%s/%s", ftmp, name);
			CHECK(is_private_dir(cur) &&
			      strlen(name) == strlen("follow-private.") + SIO_PRIVATE_RANDOM,
			      "round %u: %s is not a fresh private directory", r, cur);
		} else if (r == 40) {
			CHECK(decoy_intact(decoy),
			      "round 40: the reader wrote through the symlink");
			CHECK(count_prefixed(ftmp, "follow-private", NULL, 0) == 1,
			      "round 40: a fresh directory while its own was still there");
			snprintf(cur, sizeof(cur), "%s", swapped);
		}
		CHECK(count_entries(cur) == 1, "round %u: %d private directories in %s", r,
		      count_entries(cur), cur);
	}
	CHECK(stale == 0, "the secondary missed the last write of %d of %d sessions", stale,
	      rounds);
	CHECK(missing == 0, "the secondary misses %d keys", missing);
	idx_close(sec);
	CHECK(count_entries(ftmp) == 0, "left in %s at close: %d", ftmp, count_entries(ftmp));
	CHECK(decoy_intact(decoy), "the decoy was touched");
}

/*
 * What a reader makes in a directory others can write, and removes from it: a symlink or
 * another user's directory at the caller's name is refused, never followed; a symlink
 * planted in the reader's directory, inside an instance's directory, or in place of an
 * instance's directory is never followed by a removal; a removal takes only a directory
 * whose identity it made; sio_remove_tree never follows a symlink.
 */
/*
 * idx_tables (the mount's index warm-up): every table file of the current view, each
 * path a file of the stated size, upper levels first and smaller first within a level;
 * a secondary lists the primary's files, and after a compaction the new set.
 */
static bool tables_ok(struct idx *ix, const char *what, size_t min_n, struct idx_table **tp,
		      size_t *np)
{
	struct idx_table *t;
	size_t n;
	bool ok = true;

	CHECK(idx_tables(ix, &t, &n) == 0, "%s: list the table files", what);
	CHECK(n >= min_n, "%s: %zu table files, at least %zu", what, n, min_n);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(t[i].path, &st) < 0 || (uint64_t)st.st_size != t[i].size ||
		    !strstr(t[i].path, ".sst"))
			ok = false;
		if (i && (t[i].level < t[i - 1].level ||
			  (t[i].level == t[i - 1].level && t[i].size < t[i - 1].size)))
			ok = false;
	}
	CHECK(ok, "%s: each a table file of its size, in level then size order", what);
	*tp = t;
	*np = n;
	return ok;
}

static void test_tables(void)
{
	char dir[PATH_MAX], priv[PATH_MAX], key[32];
	struct idx *p, *sec;
	struct idx_table *t, *t2;
	size_t n, n2;
	bool same = true;

	snprintf(dir, sizeof(dir), "%s/tables-index", root);
	snprintf(priv, sizeof(priv), "%s/tables-private", root);
	CHECK(mkdir(priv, 0700) == 0, "mkdir %s", priv);
	CHECK(idx_open(dir, true, NULL, 0, &p) == 0, "create an index");
	for (int f = 0; f < 3; f++) {	/* three flushes: three level-0 files */
		for (int i = 0; i < 200; i++) {
			snprintf(key, sizeof(key), "t%d-%d", f, i);
			put_round(p, key, (uint32_t)i, 100 + (size_t)f * 400);
		}
		CHECK(idx_flush(p, true) == 0, "flush %d", f);
	}
	tables_ok(p, "primary", 3, &t, &n);
	CHECK(idx_open(dir, false, priv, 0, &sec) == 0, "open a secondary");
	tables_ok(sec, "secondary", 3, &t2, &n2);
	same = n == n2;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(t[i].path, t2[i].path) == 0;
	CHECK(same, "the secondary lists the primary's files");
	idx_tables_free(t2, n2);
	CHECK(idx_compact(p) == 0, "compact");
	CHECK(idx_catch_up(sec) >= 0, "catch up");
	tables_ok(sec, "after compaction", 1, &t2, &n2);
	same = n2 < n;
	for (size_t i = 0; i < n2; i++)
		for (size_t j = 0; j < n; j++)
			same = same && strcmp(t2[i].path, t[j].path) != 0;
	CHECK(same, "after compaction: %zu new files, none of the %zu before", n2, n);
	idx_tables_free(t2, n2);
	idx_tables_free(t, n);
	idx_close(sec);
	idx_close(p);
}

/*
 * A catch-up when the primary wrote nothing since the last one does not run RocksDB's
 * (which starts threads per family even with nothing to read); a write of an open primary
 * (its WAL grows, same name), a flush (a new WAL) and a compaction-free reopen (a new
 * MANIFEST) are each still seen.
 */
static void test_catch_up_idle(void)
{
	char dir[PATH_MAX], priv[PATH_MAX];
	struct idx *p, *sec;
	uint64_t n;

	snprintf(dir, sizeof(dir), "%s/idle-index", root);
	snprintf(priv, sizeof(priv), "%s/idle-private", root);
	CHECK(idx_open(dir, true, NULL, 0, &p) == 0, "create the primary");
	put_round(p, "round", 1, 0);
	CHECK(idx_open(dir, false, priv, 0, &sec) == 0, "open the secondary");
	CHECK(idx_catch_up(sec) >= 0, "first catch-up");
	n = idx_catch_up_count(sec);
	for (int i = 0; i < 5; i++)
		CHECK(idx_catch_up(sec) == 0, "idle catch-up %d", i);
	CHECK(idx_catch_up_count(sec) == n, "idle catch-ups ran RocksDB's: %llu -> %llu",
	      (unsigned long long)n, (unsigned long long)idx_catch_up_count(sec));
	put_round(p, "round", 2, 0);	/* the same WAL, longer */
	CHECK(idx_catch_up(sec) >= 0 && get_round(sec, "round") == 2,
	      "a write to the open WAL is seen");
	CHECK(idx_catch_up_count(sec) == n + 1, "the write was not tailed");
	CHECK(idx_catch_up(sec) == 0 && idx_catch_up_count(sec) == n + 1, "idle again");
	CHECK(idx_flush(p, true) == 0, "flush");
	put_round(p, "round", 3, 0);	/* a new WAL */
	CHECK(idx_catch_up(sec) == 1 && get_round(sec, "round") == 3, "a flush is seen");
	idx_close(p);
	CHECK(idx_open(dir, false, NULL, 0, &p) == 0, "reopen the primary");
	put_round(p, "round", 4, 0);
	CHECK(idx_catch_up(sec) == 1 && get_round(sec, "round") == 4, "a reopen is seen");
	n = idx_catch_up_count(sec);
	CHECK(idx_catch_up(sec) == 0 && idx_catch_up(sec) == 0 && idx_catch_up_count(sec) == n,
	      "idle after a reopen");
	idx_close(p);
	idx_close(sec);
}

static void test_private_dirs(void)
{
	char dir[PATH_MAX], base[PATH_MAX], decoy[PATH_MAX], f[PATH_MAX * 2], g[PATH_MAX * 2];
	char name[64], name2[64];
	struct stat id, id2;
	struct idx *p, *sec;
	int pfd, fd, fd2, fd3, rc;

	snprintf(dir, sizeof(dir), "%s/private-index", root);
	snprintf(decoy, sizeof(decoy), "%s/private-decoy", root);
	decoy_make(decoy);
	CHECK(idx_open(dir, true, NULL, 0, &p) == 0, "create the primary");
	put_round(p, "round", 1, 0);
	idx_close(p);

	/* a symlink planted at a predictable name: refused, nothing made where it leads */
	snprintf(base, sizeof(base), "%s/planted", root);
	CHECK(symlink(decoy, base) == 0, "symlink %s", base);
	rc = idx_open(dir, false, base, 0, &sec);
	CHECK((rc == -ELOOP || rc == -ENOTDIR) && !sec, "a symlinked private directory: %d",
	      rc);
	CHECK(decoy_intact(decoy), "idx_open followed the planted symlink");
	/* a directory others may write, or another user's: refused */
	snprintf(base, sizeof(base), "%s/open-dir", root);
	CHECK(mkdir(base, 0700) == 0 && chmod(base, 0770) == 0, "mkdir %s", base);
	rc = idx_open(dir, false, base, 0, &sec);
	CHECK(rc == -EPERM && !sec, "a group-writable private directory: %d", rc);
	CHECK(count_entries(base) == 0, "something made in a refused directory");
	if (geteuid() == 0) {
		CHECK(chmod(base, 0700) == 0 && chown(base, 65534, 65534) == 0, "chown");
		rc = idx_open(dir, false, base, 0, &sec);
		CHECK(rc == -EPERM && !sec, "another user's private directory: %d", rc);
	}

	/* a symlink planted inside an instance's directory: its removal does not follow */
	snprintf(base, sizeof(base), "%s/reader1", root);
	CHECK(idx_open(dir, false, base, 0, &sec) == 0, "open a reader");
	CHECK(is_private_dir(base), "%s made private", base);
	CHECK(count_prefixed(base, "i.", name, sizeof(name)) == 1, "one instance directory");
	snprintf(f, sizeof(f), "%s/%s/planted", base, name);
	CHECK(symlink(decoy, f) == 0, "symlink %s", f);
	CHECK(get_round(sec, "round") == 1, "the reader reads");
	idx_close(sec);
	CHECK(access(base, F_OK) < 0, "%s left at close", base);
	CHECK(decoy_intact(decoy), "the close followed a symlink in an instance's directory");

	/* an instance's directory swapped for a symlink, and a symlink at an old-style name:
	 * left as they are, and so is the base, which is not empty then */
	snprintf(base, sizeof(base), "%s/reader2", root);
	CHECK(idx_open(dir, false, base, 0, &sec) == 0, "open a reader");
	CHECK(count_prefixed(base, "i.", name, sizeof(name)) == 1, "one instance directory");
	snprintf(f, sizeof(f), "%s/%s", base, name);
	snprintf(g, sizeof(g), "%s/moved", base);
	CHECK(rename(f, g) == 0 && symlink(decoy, f) == 0, "swap %s", f);
	snprintf(g, sizeof(g), "%s/0", base);
	CHECK(symlink(decoy, g) == 0, "symlink %s", g);
	idx_close(sec);
	CHECK(decoy_intact(decoy), "the close followed a symlink");
	CHECK(count_entries(base) == 3, "the close removed what it did not make: %d left of 3",
	      count_entries(base));

	/* sio_private_mkdir: unpredictable names, 0700; sio_private_remove: identity */
	pfd = open(root, O_RDONLY | O_DIRECTORY);
	CHECK(sio_private_mkdir(pfd, "t.", name, sizeof(name), &fd, &id) == 0 &&
	      sio_private_mkdir(pfd, "t.", name2, sizeof(name2), &fd2, &id2) == 0,
	      "sio_private_mkdir");
	CHECK(strcmp(name, name2) != 0 && strlen(name) == 2 + SIO_PRIVATE_RANDOM,
	      "names %s %s", name, name2);
	snprintf(f, sizeof(f), "%s/%s", root, name);
	CHECK(is_private_dir(f), "%s is not private", f);
	CHECK(sio_private_mkdir(pfd, "t.", g, 8, &fd3, &id) == -ENAMETOOLONG && fd3 == -1,
	      "a short name buffer");
	/* another directory at the name: -ESTALE, nothing removed */
	snprintf(g, sizeof(g), "%s/%s.moved", root, name);
	CHECK(rename(f, g) == 0 && mkdir(f, 0700) == 0, "replace %s", f);
	snprintf(g, sizeof(g), "%s/%s/x", root, name);
	CHECK(close(open(g, O_CREAT | O_WRONLY, 0600)) == 0, "a file in the replacement");
	CHECK(sio_private_remove(pfd, name, &id, true) == -ESTALE && access(g, F_OK) == 0,
	      "a directory that is not the one made was removed");
	/* a symlink at the name: left, not followed */
	snprintf(g, sizeof(g), "%s/%s", root, name);
	sio_remove_tree(g);
	CHECK(symlink(decoy, g) == 0, "symlink %s", g);
	rc = sio_private_remove(pfd, name, &id, true);
	CHECK((rc == -ELOOP || rc == -ENOTDIR) && decoy_intact(decoy),
	      "sio_private_remove on a symlink: %d", rc);
	CHECK(unlink(g) == 0, "the symlink was left");
	/* the one made, found again by its identity: removed with what is in it */
	snprintf(g, sizeof(g), "%s/%s.moved", root, name);
	snprintf(f, sizeof(f), "%s/%s", root, name);
	CHECK(rename(g, f) == 0, "back");
	snprintf(g, sizeof(g), "%s/%s/sub", root, name);
	CHECK(mkdir(g, 0700) == 0, "mkdir %s", g);
	snprintf(g, sizeof(g), "%s/%s/sub/link", root, name);
	CHECK(symlink(decoy, g) == 0, "symlink %s", g);
	CHECK(sio_private_remove(pfd, name, &id, false) == -ENOTEMPTY,
	      "not empty: left without @tree");
	CHECK(sio_private_remove(pfd, name, &id, true) == 0 && access(f, F_OK) < 0 &&
	      decoy_intact(decoy), "the private directory removed, the decoy not");
	CHECK(sio_private_remove(pfd, name2, &id2, false) == 0, "an empty one removed");
	close(fd);
	close(fd2);
	close(pfd);

	/* sio_remove_tree: a symlink at the top is left, symlinks below are unlinked */
	snprintf(f, sizeof(f), "%s/link-top", root);
	CHECK(symlink(decoy, f) == 0, "symlink %s", f);
	sio_remove_tree(f);
	CHECK(decoy_intact(decoy), "sio_remove_tree followed the symlink it was given");
	snprintf(f, sizeof(f), "%s/tree", root);
	CHECK(mkdir(f, 0755) == 0, "mkdir %s", f);
	snprintf(g, sizeof(g), "%s/tree/a", root);
	CHECK(mkdir(g, 0755) == 0, "mkdir %s", g);
	snprintf(g, sizeof(g), "%s/tree/a/link", root);
	CHECK(symlink(decoy, g) == 0, "symlink %s", g);
	snprintf(g, sizeof(g), "%s/tree/keep-link", root);
	CHECK(symlink("../private-decoy/keep", g) == 0, "symlink %s", g);
	sio_remove_tree(f);
	CHECK(access(f, F_OK) < 0 && decoy_intact(decoy),
	      "sio_remove_tree: the tree stays or the decoy was touched");
	/* 100 levels, a file at the bottom: all removed */
	snprintf(f, sizeof(f), "%s/deep", root);
	CHECK(mkdir(f, 0755) == 0, "mkdir %s", f);
	pfd = open(f, O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < 100 && pfd >= 0; i++) {
		int sub = mkdirat(pfd, "d", 0755) == 0 ? openat(pfd, "d", O_RDONLY) : -1;

		close(pfd);
		pfd = sub;
	}
	CHECK(pfd >= 0 && (fd = openat(pfd, "x", O_CREAT | O_WRONLY, 0600)) >= 0,
	      "a tree 100 levels deep");
	if (pfd >= 0) {
		close(fd);
		close(pfd);
	}
	sio_remove_tree(f);
	CHECK(access(f, F_OK) < 0, "sio_remove_tree left a tree 100 levels deep");
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	dfs_log_set_level(DFS_LOG_ERR);
	test_roundtrip();
	test_lock_brief();
	test_corruption_and_recover();
	test_recover_damage();
	test_block_records();
	test_commit_while_sealing();
	test_get_inodes();
	test_batch_reads();
	test_secondary_follows();
	test_catch_up_idle();
	test_tables();
	test_private_dirs();
#ifdef DFS_TEST_FAULTS
	test_fault_loop();
	test_commit_moves_pending();
#endif
	sio_remove_tree(root);
	return test_result("test_store");
}
