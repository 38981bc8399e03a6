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
	return test_result("test_fattr");
}
