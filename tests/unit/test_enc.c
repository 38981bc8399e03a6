/*
 * test_enc.c - every index value round-trips, and every decoder rejects truncated,
 * flipped, trailing-garbage and unknown-version input with an error, never a crash.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/enc.h"

#include "test_check.h"

static struct store_str mkstr(const char *s)
{
	struct store_str r = { (uint8_t *)s, strlen(s) };

	return r;
}

/* Every strict prefix and every single-bit flip of @b must not crash the decoder; prefixes
 * must fail. */
static void mutate_inode(const struct dfs_buf *b)
{
	struct store_inode out;
	uint8_t *copy = malloc(b->len);

	for (size_t n = 0; n < b->len; n++) {
		int rc = dec_inode(1, b->data, n, &out);

		CHECK(rc < 0, "inode prefix of %zu bytes accepted", n);
		if (rc == 0)
			store_inode_release(&out);
	}
	for (size_t i = 0; i < b->len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, b->data, b->len);
			copy[i] ^= (uint8_t)(1u << bit);
			if (dec_inode(1, copy, b->len, &out) == 0)
				store_inode_release(&out);
		}
	}
	free(copy);
}

static void test_inode_roundtrip(void)
{
	struct store_xattr xa[2] = { { mkstr("user.a"), mkstr("") },
				     { mkstr("user.b"), { (uint8_t *)"\0\1\2", 3 } } };
	struct store_str origins[2] = { mkstr("nvme1:/a/b"), mkstr("nvme2:/x\ny") };
	struct store_inode in = { 0 }, out;
	struct dfs_buf b;
	int rc;

	in.ino = 77;
	in.view = STORE_VIEW_ORG;
	in.mode = S_IFREG | 04755;
	in.uid = 100000;
	in.gid = 7;
	in.nlink = 3;
	in.size = 1ull << 40;
	in.data_bytes = 12345;
	in.rdev = 0;
	in.atime.tv_sec = -5;
	in.atime.tv_nsec = 999999999;
	in.mtime.tv_sec = 4102444800;
	in.mtime.tv_nsec = 1;
	in.ctime.tv_sec = 0;
	in.has_content = true;
	memset(in.content.b, 0xab, FP_LEN);
	in.source_id = 2;
	in.src_ino = 99;
	in.gen = 5;
	in.target = mkstr("");
	in.xattrs = xa;
	in.nxattrs = 2;
	in.mime = mkstr("text/plain");
	in.category = mkstr("documents");
	in.rule = mkstr("docs");
	in.origins = origins;
	in.norigins = 2;
	in.origins_total = 9;
	in.unit = mkstr("git-worktree");
	dfs_buf_init(&b, 1 << 20);
	CHECK(enc_inode(&in, &b) == 0, "encode inode");
	rc = dec_inode(77, b.data, b.len, &out);
	CHECK(rc == 0, "decode inode: %d", rc);
	if (rc == 0) {
		CHECK(out.mode == in.mode && out.uid == in.uid && out.size == in.size,
		      "inode fields");
		CHECK(out.atime.tv_sec == -5 && out.atime.tv_nsec == 999999999, "pre-1970 time");
		CHECK(out.mtime.tv_sec == 4102444800, "post-2038 time");
		CHECK(out.nxattrs == 2 && out.xattrs[1].value.len == 3 &&
		      !memcmp(out.xattrs[1].value.p, "\0\1\2", 3), "xattrs");
		CHECK(out.norigins == 2 && out.origins[1].len == 10 && out.origins_total == 9,
		      "origins");
		CHECK(fp_equal(&out.content, &in.content), "content id");
		store_inode_release(&out);
	}
	/* trailing garbage */
	dfs_buf_put_u8(&b, 0);
	CHECK(dec_inode(77, b.data, b.len, &out) == -EBADMSG, "trailing byte accepted");
	b.len--;
	/* unknown version */
	b.data[0] = 2;
	CHECK(dec_inode(77, b.data, b.len, &out) == -EPROTONOSUPPORT, "version 2 accepted");
	b.data[0] = 1;
	mutate_inode(&b);
	dfs_buf_release(&b);
}

static void test_small_values(void)
{
	struct store_chunk_loc l = { 3, 1234567, 65536, 100, 1 }, m;
	struct dfs_buf b;
	uint64_t child, v;
	uint8_t t;

	dfs_buf_init(&b, 1024);
	CHECK(enc_chunk_loc(&l, &b) == 0 && dec_chunk_loc(b.data, b.len, &m) == 0 &&
	      m.pack == 3 && m.off == 1234567 && m.raw_len == 65536 && m.codec == 1,
	      "chunk loc round trip");
	for (size_t n = 0; n < b.len; n++)
		CHECK(dec_chunk_loc(b.data, n, &m) < 0, "chunk loc prefix %zu accepted", n);
	b.data[b.len - 1] = 7;	/* codec 7 */
	CHECK(dec_chunk_loc(b.data, b.len, &m) == -EBADMSG, "unknown codec accepted");
	dfs_buf_clear(&b);
	CHECK(enc_dirent_val(42, 4, &b) == 0 && dec_dirent_val(b.data, b.len, &child, &t) == 0 &&
	      child == 42 && t == 4, "dirent round trip");
	dfs_buf_clear(&b);
	enc_dirent_val(0, 4, &b);
	CHECK(dec_dirent_val(b.data, b.len, &child, &t) == -EBADMSG, "dirent to inode 0");
	dfs_buf_clear(&b);
	CHECK(enc_u64_val(UINT64_MAX, &b) == 0 && dec_u64_val(b.data, b.len, &v) == 0 &&
	      v == UINT64_MAX, "u64 round trip");
	dfs_buf_release(&b);
}

static void test_content(void)
{
	struct enc_extent ext[3] = { { 100, false, { { 1 } } }, { 1ull << 33, true, { { 0 } } },
				     { 7, false, { { 2 } } } };
	struct enc_content_head h;
	struct enc_extent *got;
	struct dfs_buf b;
	size_t n;
	uint64_t starts[2] = { 0, 50 };

	dfs_buf_init(&b, 1 << 20);
	CHECK(enc_content_head(107 + (1ull << 33), 107, NULL, 0, false, 3, NULL, 0, ext, 3, &b) == 0,
	      "encode head");
	CHECK(dec_content_head(b.data, b.len, &h) == 0 && h.nblocks == 0 && h.nextents == 3,
	      "decode head");
	CHECK(dec_extents(h.extents, h.extents_len, false, &got, &n) == 0 && n == 3 &&
	      got[1].hole && got[1].len == (1ull << 33) && got[2].chunk.b[0] == 2,
	      "decode inline extents");
	free(got);
	enc_content_head_release(&h);
	dfs_buf_clear(&b);
	/* blocks must start at 0, increase, and lie inside the file */
	starts[1] = 0;
	enc_content_head(100, 100, NULL, 0, false, 4, starts, 2, NULL, 0, &b);
	CHECK(dec_content_head(b.data, b.len, &h) == -EBADMSG, "non-increasing blocks accepted");
	dfs_buf_clear(&b);
	enc_content_head(3, 3, "abc", 3, true, 0, NULL, 0, NULL, 0, &b);
	CHECK(dec_content_head(b.data, b.len, &h) == 0 && h.is_inline && h.inline_len == 3,
	      "inline head");
	enc_content_head_release(&h);
	b.data[2] = 4;	/* size 4 but 3 inline bytes */
	CHECK(dec_content_head(b.data, b.len, &h) < 0, "inline size mismatch accepted");
	dfs_buf_clear(&b);
	enc_extent_block(ext, 3, &b);
	CHECK(dec_extents(b.data, b.len, true, &got, &n) == 0 && n == 3, "block round trip");
	free(got);
	b.data[1] = 4;	/* claims 4 extents */
	CHECK(dec_extents(b.data, b.len, true, &got, &n) < 0, "short block accepted");
	dfs_buf_release(&b);
}

static int count_ops(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	(*(int *)arg)++;
	(void)cf; (void)op; (void)k; (void)klen; (void)v; (void)vlen;
	return 0;
}

static void test_oplog(void)
{
	struct dfs_buf b;
	uint64_t seq;
	int n = 0;

	dfs_buf_init(&b, 1 << 20);
	enc_oplog_begin(9, &b);
	enc_oplog_add(&b, 3, ENC_OP_PUT, "k", 1, "v", 1);
	enc_oplog_add(&b, 4, ENC_OP_DEL, "kk", 2, NULL, 0);
	CHECK(dec_oplog(b.data, b.len, &seq, count_ops, &n) == 0 && seq == 9 && n == 2,
	      "oplog round trip");
	n = 0;
	CHECK(dec_oplog(b.data, b.len - 1, &seq, count_ops, &n) < 0, "truncated oplog accepted");
	b.data[3] = 9;	/* op 9 */
	CHECK(dec_oplog(b.data, b.len, &seq, count_ops, &n) < 0, "unknown op accepted");
	b.data[3] = ENC_OP_DROP;	/* a DROP (with a value) in a version-1 log */
	CHECK(dec_oplog(b.data, b.len, &seq, count_ops, &n) < 0, "DROP accepted in a v1 log");

	/* a gc's log: version 2 once it holds a DROP; DROP carries its 4-byte bound */
	dfs_buf_clear(&b);
	enc_oplog_begin(10, &b);
	enc_oplog_add(&b, 3, ENC_OP_DEL, "c", 1, NULL, 0);
	CHECK(b.data[0] == ENC_VERSION, "a log without DROP is not version 1");
	enc_oplog_add(&b, 1, ENC_OP_DROP, "0123456789abcdef0123456789abcdef", 32, "\0\0\0\7", 4);
	CHECK(b.data[0] == ENC_OPLOG_V2, "a log with a DROP is not version 2");
	n = 0;
	CHECK(dec_oplog(b.data, b.len, &seq, count_ops, &n) == 0 && seq == 10 && n == 2,
	      "v2 oplog round trip");
	b.data[0] = 3;	/* a version no decoder knows */
	CHECK(dec_oplog(b.data, b.len, &seq, count_ops, &n) == -EPROTONOSUPPORT,
	      "unknown oplog version accepted");
	dfs_buf_release(&b);
}

/* A source record: v1 without exclude patterns (as before), v2 with them; a v2 whose
 * patterns do not end in a NUL, a prefix, and an unknown version are refused. */
static void test_source(void)
{
	struct store_source s = { .id = 7, .name = mkstr("nvme3"), .fsid = mkstr("uuid:x"),
				  .path = mkstr("/mnt/nvme3"), .root_ino = 42, .files = 3 };
	struct store_source o;
	struct dfs_buf b;
	int rc;

	dfs_buf_init(&b, 1 << 16);
	CHECK(enc_source(&s, &b) == 0 && b.data[0] == ENC_VERSION, "v1 source record");
	rc = dec_source(b.data, b.len, &o);
	CHECK(rc == 0 && o.id == 7 && o.files == 3 && !o.excludes.len, "v1 decodes: %d", rc);
	store_source_release(&o);
	dfs_buf_clear(&b);
	s.excludes = (struct store_str){ (uint8_t *)"*.tmp\0cache\0", 12 };
	CHECK(enc_source(&s, &b) == 0 && b.data[0] == ENC_SOURCE_V2, "v2 source record");
	rc = dec_source(b.data, b.len, &o);
	CHECK(rc == 0 && o.excludes.len == 12 && !memcmp(o.excludes.p, "*.tmp\0cache\0", 12),
	      "v2 decodes its patterns: %d", rc);
	store_source_release(&o);
	for (size_t n = 0; n < b.len; n++)
		CHECK(dec_source(b.data, n, &o) < 0, "a prefix of %zu bytes accepted", n);
	b.data[b.len - 1] = 'x';	/* the last pattern no longer ends in a NUL */
	CHECK(dec_source(b.data, b.len, &o) == -EBADMSG, "v2 without its NUL accepted");
	b.data[0] = 4;
	CHECK(dec_source(b.data, b.len, &o) == -EPROTONOSUPPORT, "version 4 accepted");
	/* v3: the snapshots, in order; out of order refused */
	struct store_snap sn[2] = { { 100, 1, 42 }, { 200, 3, 57 } };

	s.snaps = sn;
	s.nsnaps = 2;
	s.excludes = (struct store_str){ 0 };
	dfs_buf_clear(&b);
	CHECK(enc_source(&s, &b) == 0 && b.data[0] == ENC_SOURCE_V3, "v3 source record");
	rc = dec_source(b.data, b.len, &o);
	CHECK(rc == 0 && o.nsnaps == 2 && o.snaps[1].time == 200 && o.snaps[1].gen == 3 &&
	      o.snaps[1].root == 57 && !o.excludes.len, "v3 decodes its snapshots: %d", rc);
	store_source_release(&o);
	for (size_t n = 0; n < b.len; n++)
		CHECK(dec_source(b.data, n, &o) < 0, "a v3 prefix of %zu bytes accepted", n);
	sn[1].time = 100;
	dfs_buf_clear(&b);
	CHECK(enc_source(&s, &b) == 0 && dec_source(b.data, b.len, &o) == -EBADMSG,
	      "snapshots out of order accepted");
	dfs_buf_release(&b);
}

int main(void)
{
	test_source();
	test_inode_roundtrip();
	test_small_values();
	test_content();
	test_oplog();
	return test_result("test_enc");
}
