/*
 * test_chunkref.c - fs_chunk_ref (fs/ll.c), the mount's way to a chunk's bytes: a cached
 * chunk whose length differs from the extent that asks for it (the same chunk id with
 * another length: a damaged index) is EIO-class (-EBADMSG), never a read past the cached
 * bytes; the right length is served from the cache.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "store/codec.h"
#include "store/fp.h"
#include "store/log.h"
#include "store/sio.h"
#include "store/store.h"

#include "test_check.h"

int main(void)
{
	struct store_create_opts co;
	struct store_open_opts so = { .mode = STORE_WRITER, .create = true, .create_opts = &co };
	struct dfs_fs fs;
	struct store_extent e = { 0 };
	struct ccache_entry *ce = NULL;
	struct store_txn *tx = NULL;
	struct codec *codec = NULL;
	uint8_t data[20000], cbuf[40000];
	char root[64], dir[128];
	enum codec_id cid;
	ssize_t sl;
	size_t have;
	int rc;

	snprintf(root, sizeof(root), "/tmp/test_chunkref.XXXXXX");
	if (!mkdtemp(root))
		return 1;
	dfs_log_set_level(DFS_LOG_ERR);
	snprintf(dir, sizeof(dir), "%s/store", root);
	store_create_opts_default(&co);
	memset(&fs, 0, sizeof(fs));
	CHECK(store_open(dir, &so, &fs.st) == 0, "store");
	CHECK(ccache_new(1u << 20, &fs.cc) == 0, "ccache");
	CHECK(codec_new(3, &codec) == 0, "codec");
	if (!fs.st || !fs.cc || !codec)
		return test_result("test_chunkref");
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 100);
	fp_sha256(data, sizeof(data), &e.chunk);
	sl = codec_compress(codec, data, sizeof(data), cbuf, sizeof(cbuf), &cid);
	CHECK(sl > 0, "compress");
	rc = store_put_chunk(fs.st, &e.chunk, sizeof(data), cbuf, (uint32_t)sl, cid);
	CHECK(rc >= 0, "put chunk");
	CHECK(store_txn_begin(fs.st, &tx) == 0 && store_txn_commit(tx) == 0, "commit");

	/* the right length: loaded, then a hit */
	e.len = sizeof(data);
	for (int pass = 0; pass < 2; pass++) {
		rc = fs_chunk_ref(&fs, &e, 1, true, &ce);
		CHECK(rc == 0 && ce, "pass %d: the chunk (%d)", pass, rc);
		if (ce) {
			const uint8_t *p = ccache_data(ce, &have);

			CHECK(have == sizeof(data) && !memcmp(p, data, have), "its bytes");
			ccache_put(fs.cc, ce);
			ce = NULL;
		}
	}
	/* cached, asked for with another length: refused, not served past its end */
	e.len = sizeof(data) + 4096;
	rc = fs_chunk_ref(&fs, &e, 2, true, &ce);
	CHECK(rc == -EBADMSG && !ce, "a longer extent on a cached chunk: -EBADMSG (%d)", rc);
	e.len = sizeof(data) - 1;
	rc = fs_chunk_ref(&fs, &e, 2, false, &ce);
	CHECK(rc == -EBADMSG && !ce, "a shorter one too (%d)", rc);
	if (ce)
		ccache_put(fs.cc, ce);
	codec_free(codec);
	ccache_free(fs.cc);
	store_close(fs.st);
	sio_remove_tree(root);
	return test_result("test_chunkref");
}
