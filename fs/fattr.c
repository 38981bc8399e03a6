/*
 * fattr.c - attributes as the kernel sees them (see fattr.h).
 *
 * user.defrag.origins: one "NAME:/path" per line, '\n' written as "\n" and '\\' as "\\",
 * capped to fit the 64 KiB xattr limit; user.defrag.origins_count gives the full count.
 * A source file's own user.defrag.* attributes are kept under /.sources only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fattr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void fattr_fill(const struct store_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink ? in->nlink : 1;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((in->data_bytes + 511) / 512);
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
}

static bool org_view(const struct store_inode *in)
{
	return in->view == STORE_VIEW_ORG && !S_ISDIR(in->mode);
}

/*
 * A source file's own "user.defrag.*" attribute: shown as it was under /.sources, hidden
 * in the organized tree, where that namespace holds what defragfs computed (a file copied
 * out of another defragfs mount must not pass its old origins off as this entry's).
 */
static bool own_hidden(const struct store_inode *in, const struct store_xattr *x)
{
	return in->view == STORE_VIEW_ORG && x->name.len >= 12 &&
	       !memcmp(x->name.p, "user.defrag.", 12);
}

static int put_name(struct dfs_buf *out, const char *n)
{
	return dfs_buf_append(out, n, strlen(n) + 1);
}

int fattr_list(const struct store_inode *in, struct dfs_buf *out)
{
	for (size_t i = 0; i < in->nxattrs; i++) {
		if (own_hidden(in, &in->xattrs[i]))
			continue;
		dfs_buf_append(out, in->xattrs[i].name.p, in->xattrs[i].name.len);
		dfs_buf_put_u8(out, 0);
	}
	if (org_view(in)) {
		put_name(out, "user.defrag.origins");
		put_name(out, "user.defrag.origins_count");
		put_name(out, "user.defrag.category");
		put_name(out, "user.defrag.rule");
		if (in->has_content)
			put_name(out, "user.defrag.hash");
		if (in->unit.len)
			put_name(out, "user.defrag.unit");
	} else if (in->view == STORE_VIEW_ORG && in->unit.len) {
		put_name(out, "user.defrag.unit");
	}
	return out->err;
}

static int render_origins(const struct store_inode *in, struct dfs_buf *out)
{
	for (size_t i = 0; i < in->norigins; i++) {
		size_t start = out->len;

		for (size_t j = 0; j < in->origins[i].len; j++) {
			uint8_t c = in->origins[i].p[j];

			if (c == '\n')
				dfs_buf_append(out, "\\n", 2);
			else if (c == '\\')
				dfs_buf_append(out, "\\\\", 2);
			else
				dfs_buf_put_u8(out, c);
		}
		dfs_buf_put_u8(out, '\n');
		if (out->err || out->len > STORE_XATTR_MAX) {
			out->err = 0;
			out->len = start;	/* the cap: origins_count tells the rest */
			break;
		}
	}
	return out->err;
}

int fattr_get(const struct store_inode *in, const char *name, struct dfs_buf *out)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < in->nxattrs; i++)
		if (in->xattrs[i].name.len == nl && !memcmp(in->xattrs[i].name.p, name, nl) &&
		    !own_hidden(in, &in->xattrs[i]))
			return dfs_buf_append(out, in->xattrs[i].value.p, in->xattrs[i].value.len);
	if (in->view == STORE_VIEW_ORG && in->unit.len && !strcmp(name, "user.defrag.unit"))
		return dfs_buf_append(out, in->unit.p, in->unit.len);
	if (!org_view(in))
		return -ENODATA;
	if (!strcmp(name, "user.defrag.origins"))
		return render_origins(in, out);
	if (!strcmp(name, "user.defrag.origins_count")) {
		char n[32];
		int k = snprintf(n, sizeof(n), "%" PRIu64,
				 in->origins_total ? in->origins_total : in->norigins);

		return dfs_buf_append(out, n, (size_t)k);
	}
	if (!strcmp(name, "user.defrag.category"))
		return dfs_buf_append(out, in->category.p, in->category.len);
	if (!strcmp(name, "user.defrag.rule"))
		return dfs_buf_append(out, in->rule.p, in->rule.len);
	if (!strcmp(name, "user.defrag.hash") && in->has_content) {
		char hex[FP_HEX_LEN + 1];

		fp_to_hex(&in->content, hex);
		return dfs_buf_append(out, hex, FP_HEX_LEN);
	}
	return -ENODATA;
}
