/*
 * test_fattr.c - fs/fattr.c: the attributes the kernel sees. A source file's own
 * user.defrag.* attributes show under /.sources only; in the organized tree the computed
 * ones answer, each listed once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fattr.h"
#include "store/buf.h"
#include "store/store.h"

#include "test_check.h"

#define S(x) { (uint8_t *)(x), sizeof(x) - 1 }

static int count_name(const struct dfs_buf *b, const char *name)
{
	int n = 0;

	for (size_t off = 0; off < b->len;) {
		const char *p = (const char *)b->data + off;

		n += !strcmp(p, name);
		off += strlen(p) + 1;
	}
	return n;
}

int main(void)
{
	struct store_xattr xs[] = {
		{ S("user.comment"), S("mine") },
		{ S("user.defrag.category"), S("forged") },
		{ S("user.defrag.origins"), S("evil:/x\n") },
	};
	struct store_str origin = S("drv:/docs/a.txt");
	struct store_inode in;
	struct dfs_buf b;

	memset(&in, 0, sizeof(in));
	in.mode = S_IFREG | 0644;
	in.xattrs = xs;
	in.nxattrs = 3;
	in.category = (struct store_str)S("documents");
	in.rule = (struct store_str)S("docs");
	in.origins = &origin;
	in.norigins = 1;

	/* the organized tree: computed values, each name once; the source's own others stay */
	in.view = STORE_VIEW_ORG;
	dfs_buf_init(&b, 1u << 20);
	CHECK(fattr_get(&in, "user.defrag.category", &b) == 0 && b.len == 9 &&
	      !memcmp(b.data, "documents", 9), "organized: the computed category");
	b.len = 0;
	CHECK(fattr_get(&in, "user.defrag.origins", &b) == 0 &&
	      !memcmp(b.data, "drv:/docs/a.txt\n", b.len), "organized: the computed origins");
	b.len = 0;
	CHECK(fattr_get(&in, "user.comment", &b) == 0 && b.len == 4, "organized: user.comment");
	b.len = 0;
	CHECK(fattr_list(&in, &b) == 0, "list");
	CHECK(count_name(&b, "user.defrag.category") == 1, "category listed once");
	CHECK(count_name(&b, "user.defrag.origins") == 1, "origins listed once");
	CHECK(count_name(&b, "user.comment") == 1, "the source's own attribute listed");

	/* /.sources: the file as it was */
	in.view = STORE_VIEW_SRC;
	b.len = 0;
	CHECK(fattr_get(&in, "user.defrag.category", &b) == 0 && b.len == 6 &&
	      !memcmp(b.data, "forged", 6), "/.sources: the source's own value");
	b.len = 0;
	CHECK(fattr_list(&in, &b) == 0 && count_name(&b, "user.defrag.category") == 1 &&
	      count_name(&b, "user.defrag.rule") == 0, "/.sources: only the source's names");
	dfs_buf_release(&b);

	/* owner maps: -o uidmap=FROM:TO[:COUNT] */
	{
		struct fattr_maps maps = { 0 };
		struct fattr_idmap m;
		struct stat st = { .st_uid = 1005, .st_gid = 7 };
		/* version 2; USER_OBJ; USER 1001; GROUP 1002; MASK; OTHER */
		static const uint8_t acl[] = {
			2, 0, 0, 0,
			0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
			0x02, 0, 4, 0, 0xe9, 0x03, 0, 0,
			0x08, 0, 4, 0, 0xea, 0x03, 0, 0,
			0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
			0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
		};
		struct dfs_buf v;

		CHECK(fattr_map_parse("1000:2000:10", &m) == 0 && m.from == 1000 && m.to == 2000 &&
		      m.count == 10, "FROM:TO:COUNT");
		CHECK(fattr_map_parse("5:6", &m) == 0 && m.count == 1, "COUNT defaults to 1");
		CHECK(fattr_map_parse("5", &m) < 0 && fattr_map_parse("a:b", &m) < 0 &&
		      fattr_map_parse("1:2:0", &m) < 0 && fattr_map_parse("1:2:3:4", &m) < 0 &&
		      fattr_map_parse("-1:2", &m) < 0 && fattr_map_parse("4294967295:0:2", &m) < 0 &&
		      fattr_map_parse("0:4294967295:2", &m) < 0 && fattr_map_parse("1:2:", &m) < 0,
		      "bad maps refused");
		fattr_map_parse("1000:2000:10", &maps.uid[maps.nuid++]);
		fattr_map_parse("1002:3002", &maps.gid[maps.ngid++]);
		fattr_map_owner(&maps, &st);
		CHECK(st.st_uid == 2005 && st.st_gid == 7, "uid 1005 -> 2005, gid 7 as stored (%u:%u)",
		      (unsigned)st.st_uid, (unsigned)st.st_gid);
		dfs_buf_init(&v, 1u << 16);
		dfs_buf_append(&v, acl, sizeof(acl));
		CHECK(fattr_map_acl(&maps, "system.posix_acl_access", &v) == 0 &&
		      v.data[16] == 0xd1 && v.data[17] == 0x07 &&	/* USER 1001 -> 2001 */
		      v.data[24] == 0xba && v.data[25] == 0x0b &&	/* GROUP 1002 -> 3002 */
		      v.data[8] == 0xff, "the ACL's user and group entries mapped, the rest not");
		v.len = 0;
		dfs_buf_append(&v, acl, sizeof(acl));
		CHECK(fattr_map_acl(&maps, "user.other", &v) == 0 && v.data[16] == 0xe9,
		      "other attributes untouched");
		v.len = 5;
		CHECK(fattr_map_acl(&maps, "system.posix_acl_default", &v) == -EIO,
		      "a damaged ACL value: EIO");
		dfs_buf_release(&v);
	}
	return test_result("test_fattr");
}
