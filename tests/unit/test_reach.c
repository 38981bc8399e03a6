/*
 * test_reach.c - fs/reach.c's permission check: the kernel's rules for owner, group,
 * supplementary groups and POSIX ACLs (posix_acl_permission), with uid/gid maps, and a
 * malformed ACL refused; the witnesses of organized directories (store/witness.h): their
 * prefixes, and a decoder that refuses what it does not know. The walk over /.sources is
 * tested through a real mount (tests/integration/t_access.sh).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/reach.h"
#include "store/witness.h"

#include "test_check.h"

enum { USER_OBJ = 1, USER = 2, GROUP_OBJ = 4, GROUP = 8, MASK = 0x10, OTHER = 0x20 };

/* An ACL value from (tag, perm, id) triples. */
static size_t acl(uint8_t *out, const unsigned (*e)[3], size_t n)
{
	out[0] = 2;
	out[1] = out[2] = out[3] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + 4 + 8 * i;

		p[0] = (uint8_t)e[i][0];
		p[1] = 0;
		p[2] = (uint8_t)e[i][1];
		p[3] = 0;
		for (int b = 0; b < 4; b++)
			p[4 + b] = (uint8_t)(e[i][2] >> (8 * b));
	}
	return 4 + 8 * n;
}

static int groups_2001(void *arg, gid_t *list, int size)
{
	(void)arg;
	if (size >= 2) {
		list[0] = 2001;
		list[1] = 2003;
	}
	return 2;
}

static bool can(const struct fattr_maps *m, const struct store_inode *in, uid_t uid, gid_t gid,
		bool sup, unsigned want)
{
	struct reach_who w;
	bool r;

	reach_who_init(&w, uid, gid, sup ? groups_2001 : NULL, NULL);
	r = reach_permits(m, in, &w, want);
	reach_who_release(&w);
	return r;
}

static size_t plen(const char *o)
{
	return store_origin_parent_len((const uint8_t *)o, strlen(o));
}

static bool covers(const char *a, const char *b)
{
	return store_prefix_covers((const uint8_t *)a, plen(a), (const uint8_t *)b, plen(b));
}

static void test_witnesses(void)
{
	struct store_str v[3] = { { (uint8_t *)"a:/", 3 }, { (uint8_t *)"a:/x/.", 6 },
				  { (uint8_t *)"b:/y/z/.", 8 } };
	struct store_witnesses ws;
	struct dfs_buf b;

	CHECK(plen("NAME:/a/b/leaf") == 9 && plen("NAME:/leaf") == 5 && plen("NAME:/") == 0,
	      "parent prefixes: NAME:/a/b, NAME:, and none above a source root");
	CHECK(plen("noorigin") == (size_t)-1 && plen(":/x") == (size_t)-1 &&
	      plen("a:x") == (size_t)-1, "bytes that are no origin");
	CHECK(covers("s:/a/.", "s:/a/b/.") && covers("s:/x", "s:/a/b/.") && covers("s:/", "t:/q"),
	      "a prefix covers the ones below it; a source root's covers all");
	CHECK(!covers("s:/a/.", "s:/ab/.") && !covers("s:/a/b/.", "s:/a/.") &&
	      !covers("s:/a/.", "t:/a/b/."), "not a sibling, a parent or another source");

	dfs_buf_init(&b, 4096);
	CHECK(store_witness_encode(true, v, 3, &b) == 0 &&
	      store_witness_decode(b.data, b.len, &ws) == 0 && ws.partial && ws.n == 3 &&
	      ws.len[2] == 8 && !memcmp(ws.p[2], "b:/y/z/.", 8), "witnesses round-trip");
	b.data[0] = 2;
	CHECK(store_witness_decode(b.data, b.len, &ws) == -EPROTONOSUPPORT, "another version");
	b.data[0] = 1;
	b.data[1] = 3;
	CHECK(store_witness_decode(b.data, b.len, &ws) == -EBADMSG, "an unknown flag");
	b.data[1] = 0;
	CHECK(store_witness_decode(b.data, b.len - 1, &ws) == -EBADMSG, "truncated");
	dfs_buf_put_u8(&b, 0);
	CHECK(store_witness_decode(b.data, b.len, &ws) == -EBADMSG, "trailing bytes");
	dfs_buf_clear(&b);
	v[0] = v[2];
	CHECK(store_witness_encode(false, v, 2, &b) == 0 &&
	      store_witness_decode(b.data, b.len, &ws) == -EBADMSG, "unsorted");
	dfs_buf_clear(&b);
	v[0].p = (uint8_t *)"junk";
	v[0].len = 4;
	CHECK(store_witness_encode(false, v, 1, &b) == 0 &&
	      store_witness_decode(b.data, b.len, &ws) == -EBADMSG, "a witness that is no origin");
	dfs_buf_release(&b);
}

int main(void)
{
	struct fattr_maps none = { 0 }, map = { 0 };
	uint8_t buf[128];
	struct store_xattr x = { { (uint8_t *)"system.posix_acl_access", 23 }, { buf, 0 } };
	struct store_inode d = { .mode = S_IFDIR | 0750, .uid = 1001, .gid = 2001 };

	/* modes */
	CHECK(can(&none, &d, 1001, 1001, false, 1), "owner searches 0750");
	CHECK(can(&none, &d, 1002, 2001, false, 1), "primary group searches 0750");
	CHECK(can(&none, &d, 1002, 1002, true, 5), "a supplementary group reads and searches");
	CHECK(!can(&none, &d, 1002, 1002, false, 1), "others do not search 0750");
	CHECK(can(&none, &d, 0, 0, false, 7), "root passes");
	d.mode = S_IFDIR | 0077;
	CHECK(!can(&none, &d, 1001, 1001, false, 1), "the owner class is the owner's only");
	CHECK(can(&none, &d, 1002, 1002, false, 1), "while others may search 0077");

	/* uid and gid maps: the stored 1001 is shown, and checked, as 5001 */
	d.mode = S_IFDIR | 0700;
	map.uid[0] = (struct fattr_idmap){ .from = 1001, .to = 5001, .count = 1 };
	map.nuid = 1;
	CHECK(can(&map, &d, 5001, 5001, false, 1), "the mapped owner searches");
	CHECK(!can(&map, &d, 1001, 1001, false, 1), "the stored owner id does not, once mapped");

	/* ACLs: named user with the mask, named group, the owning group, other */
	{
		const unsigned e[][3] = { { USER_OBJ, 7, 0 }, { USER, 5, 1003 }, { GROUP_OBJ, 0, 0 },
					  { GROUP, 4, 2003 }, { MASK, 5, 0 }, { OTHER, 0, 0 } };

		x.value.len = acl(buf, e, 6);
		d.mode = S_IFDIR | 0750;
		d.xattrs = &x;
		d.nxattrs = 1;
		CHECK(can(&none, &d, 1003, 1003, false, 1), "a named user searches");
		CHECK(!can(&none, &d, 1004, 1004, false, 1), "another user does not");
		CHECK(!can(&none, &d, 1002, 2001, false, 1), "the owning group entry has no x");
		CHECK(can(&none, &d, 1002, 1002, true, 4), "a named group (supplementary) reads");
		CHECK(!can(&none, &d, 1002, 1002, true, 1),
		      "no matching group entry grants x: refused, not other");
		CHECK(can(&none, &d, 1001, 1001, false, 7), "the owner entry");
	}
	{
		const unsigned e[][3] = { { USER_OBJ, 7, 0 }, { USER, 7, 1003 }, { GROUP_OBJ, 5, 0 },
					  { MASK, 4, 0 }, { OTHER, 1, 0 } };

		x.value.len = acl(buf, e, 5);
		CHECK(!can(&none, &d, 1003, 1003, false, 1), "the mask limits a named user");
		CHECK(!can(&none, &d, 1002, 2001, false, 1), "and the owning group");
		CHECK(can(&none, &d, 1004, 1004, false, 1), "other gets its own entry");
	}
	{
		const unsigned e[][3] = { { USER_OBJ, 7, 0 }, { USER, 5, 1003 }, { GROUP_OBJ, 5, 0 },
					  { OTHER, 5, 0 } };

		x.value.len = acl(buf, e, 4);
		buf[0] = 3;	/* an ACL version this code does not know */
		CHECK(!can(&none, &d, 1003, 1003, false, 1), "a malformed ACL refuses");
		buf[0] = 2;
		x.value.len = 9;
		CHECK(!can(&none, &d, 1003, 1003, false, 1), "a truncated ACL refuses");
	}
	test_witnesses();
	return test_result("test_reach");
}
