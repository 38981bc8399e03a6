/*
 * fattr.c - attributes as the kernel sees them (see fattr.h).
 *
 * user.defrag.origins (organized files, and directories placed from source directories):
 * one "NAME:/path" per line, '\n' written as "\n" and '\\' as "\\",
 * capped to fit the 64 KiB xattr limit; user.defrag.origins_count gives the full count.
 * A source file's own user.defrag.* attributes are kept under /.sources only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fattr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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
	/* user.defrag.versions of an organized file is the organizer's (organize/place.c
	 * leaves the source's own user.defrag.* out of organized files) */
	if (org_view(in) && x->name.len == 20 && !memcmp(x->name.p, "user.defrag.versions", 20))
		return false;
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
	} else if (in->view == STORE_VIEW_ORG) {
		/* a directory placed from source directories: where it came from */
		if (in->norigins) {
			put_name(out, "user.defrag.origins");
			put_name(out, "user.defrag.origins_count");
		}
		if (in->unit.len)
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

/*
 * user.defrag.versions as stored (organize/place.c): "<16 hex inode> <name>\n" per other
 * version; shown as the names alone. None left (a reader's filter, fs/ll.c): ENODATA.
 */
static int render_versions(const struct store_str *v, struct dfs_buf *out)
{
	size_t start = out->len;

	for (size_t off = 0; off < v->len;) {
		const uint8_t *nl = memchr(v->p + off, '\n', v->len - off);
		size_t l = nl ? (size_t)(nl - (v->p + off)) + 1 : v->len - off;

		if (nl && l > 17)
			dfs_buf_append(out, v->p + off + 17, l - 17);
		off += l;
	}
	if (!out->err && out->len == start)
		return -ENODATA;
	return out->err;
}

int fattr_get(const struct store_inode *in, const char *name, struct dfs_buf *out)
{
	size_t nl = strlen(name);

	if (org_view(in) && !strcmp(name, "user.defrag.versions")) {
		for (size_t i = 0; i < in->nxattrs; i++)
			if (in->xattrs[i].name.len == nl &&
			    !memcmp(in->xattrs[i].name.p, name, nl))
				return render_versions(&in->xattrs[i].value, out);
		return -ENODATA;
	}

	for (size_t i = 0; i < in->nxattrs; i++)
		if (in->xattrs[i].name.len == nl && !memcmp(in->xattrs[i].name.p, name, nl) &&
		    !own_hidden(in, &in->xattrs[i]))
			return dfs_buf_append(out, in->xattrs[i].value.p, in->xattrs[i].value.len);
	if (in->view == STORE_VIEW_ORG && in->unit.len && !strcmp(name, "user.defrag.unit"))
		return dfs_buf_append(out, in->unit.p, in->unit.len);
	if (in->view != STORE_VIEW_ORG || (!org_view(in) && !in->norigins))
		return -ENODATA;
	if (!strcmp(name, "user.defrag.origins"))
		return render_origins(in, out);
	if (!strcmp(name, "user.defrag.origins_count")) {
		char n[32];
		int k = snprintf(n, sizeof(n), "%" PRIu64,
				 in->origins_total ? in->origins_total : in->norigins);

		return dfs_buf_append(out, n, (size_t)k);
	}
	if (!org_view(in))
		return -ENODATA;
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

int fattr_map_parse(const char *spec, struct fattr_idmap *out)
{
	unsigned long v[3] = { 0, 0, 1 };
	const char *p = spec;
	char *end;
	int i;

	for (i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')	/* also a missing number after ':' */
			return -EINVAL;
		errno = 0;
		v[i] = strtoul(p, &end, 10);
		if (errno || v[i] > UINT32_MAX)
			return -EINVAL;
		p = end;
		if (!*p)
			break;
		if (*p != ':' || i == 2)
			return -EINVAL;
		p++;
	}
	if (i < 1 || !v[2] || v[0] + v[2] - 1 > UINT32_MAX || v[1] + v[2] - 1 > UINT32_MAX)
		return -EINVAL;
	out->from = (uint32_t)v[0];
	out->to = (uint32_t)v[1];
	out->count = (uint32_t)v[2];
	return 0;
}

uint32_t fattr_map_id(const struct fattr_idmap *m, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (id >= m[i].from && id - m[i].from < m[i].count)
			return m[i].to + (id - m[i].from);
	return id;
}

void fattr_map_owner(const struct fattr_maps *maps, struct stat *st)
{
	st->st_uid = fattr_map_id(maps->uid, maps->nuid, st->st_uid);
	st->st_gid = fattr_map_id(maps->gid, maps->ngid, st->st_gid);
}

/* The kernel's POSIX ACL xattr format: a u32 version 2, then u16 tag, u16 perm, u32 id. */
#define ACL_XATTR_VERSION 2
#define ACL_TAG_USER 0x02
#define ACL_TAG_GROUP 0x08

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int fattr_map_acl(const struct fattr_maps *maps, const char *name, struct dfs_buf *val)
{
	uint8_t *p = val->data;

	if (strcmp(name, "system.posix_acl_access") && strcmp(name, "system.posix_acl_default"))
		return 0;
	if (!maps->nuid && !maps->ngid)
		return 0;
	if (val->len < 4 || (val->len - 4) % 8 || get_le32(p) != ACL_XATTR_VERSION)
		return -EIO;
	for (size_t off = 4; off < val->len; off += 8) {
		uint16_t tag = (uint16_t)(p[off] | p[off + 1] << 8);
		uint32_t id = get_le32(p + off + 4);

		if (tag == ACL_TAG_USER)
			id = fattr_map_id(maps->uid, maps->nuid, id);
		else if (tag == ACL_TAG_GROUP)
			id = fattr_map_id(maps->gid, maps->ngid, id);
		else
			continue;
		put_le32(p + off + 4, id);
	}
	return 0;
}
