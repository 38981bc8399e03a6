/*
 * test_pback.c - the pack backend seam: the local directory backend (put, ranged get,
 * list, stat, delete), the pack cache over a backend (ranged fetches, hits, the size
 * bound, a torn block forgotten and fetched again, the cache kept across a reopen), the
 * store config's backend lines (version 2, refused when not understood), and S3 address
 * checks. The S3 backend against a real server is tests/integration/t_s3.sh.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/pack.h"
#include "store/pback.h"
#include "store/pcache.h"
#include "store/sio.h"
#include "store/store_int.h"

#include "test_check.h"

static char root[256];

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n, "write %s", path);
	close(fd);
}

struct seen {
	uint32_t ids[16];
	uint64_t sizes[16];
	unsigned n;
};

static int note(void *arg, uint32_t id, uint64_t size)
{
	struct seen *s = arg;

	if (s->n < 16) {
		s->ids[s->n] = id;
		s->sizes[s->n++] = size;
	}
	return 0;
}

/* A backend that counts the bytes asked of it (the "remote" of the cache tests). */
struct counting {
	struct pback base;
	struct pback *inner;
	uint64_t got;
	unsigned gets;
};

static ssize_t cnt_get(struct pback *b, uint32_t id, void *buf, size_t len, uint64_t off)
{
	struct counting *c = (struct counting *)b;
	ssize_t n = pback_get(c->inner, id, buf, len, off);

	if (n > 0)
		c->got += (uint64_t)n;
	c->gets++;
	return n;
}

static int cnt_stat(struct pback *b, uint32_t id, uint64_t *size)
{
	return pback_stat(((struct counting *)b)->inner, id, size);
}

static const struct pback_ops cnt_ops = { .name = "counting", .get = cnt_get,
					  .stat = cnt_stat };

static void test_local(void)
{
	char dir[300], src[320];
	static uint8_t data[3 << 20], back[3 << 20];
	struct pback *b;
	struct seen s = { 0 };
	uint64_t size;

	snprintf(dir, sizeof(dir), "%s/local", root);
	mkdir(dir, 0700);
	snprintf(src, sizeof(src), "%s/sealed", root);
	fill(data, sizeof(data), 1);
	write_file(src, data, sizeof(data));
	CHECK(pback_local_new(dir, &b) == 0, "local backend");
	CHECK(!b->remote, "local is not remote");
	CHECK(pback_stat(b, 0x123, &size) == -ENOENT, "no pack yet");
	CHECK(pback_put(b, 0x123, src, sizeof(data) + 1) == -EBADMSG, "put checks the size");
	CHECK(pback_put(b, 0x123, src, sizeof(data)) == 0, "put copies in");
	CHECK(pback_stat(b, 0x123, &size) == 0 && size == sizeof(data), "stat");
	CHECK(pback_get(b, 0x123, back, 1000, 5) == 1000 && !memcmp(back, data + 5, 1000),
	      "ranged get");
	CHECK(pback_get(b, 0x123, back, 100, sizeof(data) - 10) == 10, "short at the end");
	CHECK(pback_put(b, 0x7, src, sizeof(data)) == 0, "second put");
	CHECK(pback_list(b, note, &s) == 0 && s.n == 2, "list: %u", s.n);
	CHECK(s.sizes[0] == sizeof(data) && s.sizes[1] == sizeof(data), "list sizes");
	CHECK(pback_del(b, 0x123) == 0 && pback_stat(b, 0x123, &size) == -ENOENT, "delete");
	CHECK(pback_del(b, 0x123) == -ENOENT, "delete twice");
	pback_free(b);
}

static void test_cache(void)
{
	char dir[300], cdir[300], src[320], path[400];
	static uint8_t data[(5 << 20) + 777], back[3 << 20];
	struct counting cnt = { .base = { .ops = &cnt_ops, .remote = true } };
	struct pcache *c;
	uint64_t size, fetched, hit;
	struct stat sb;

	snprintf(dir, sizeof(dir), "%s/remote", root);
	snprintf(cdir, sizeof(cdir), "%s/cache", root);
	mkdir(dir, 0700);
	snprintf(src, sizeof(src), "%s/sealed2", root);
	fill(data, sizeof(data), 2);
	write_file(src, data, sizeof(data));
	CHECK(pback_local_new(dir, &cnt.inner) == 0, "inner");
	CHECK(pback_put(cnt.inner, 9, src, sizeof(data)) == 0, "put 9");
	CHECK(pback_put(cnt.inner, 10, src, sizeof(data)) == 0, "put 10");

	CHECK(pcache_open(cdir, 4u << 20, &cnt.base, &c) == 0, "cache open");
	CHECK(pcache_size(c, 11, &size) == -ENOENT, "missing pack");
	CHECK(pcache_size(c, 9, &size) == 0 && size == sizeof(data), "size");
	/* 100 bytes across the first block boundary: two blocks fetched, one GET */
	cnt.got = cnt.gets = 0;
	CHECK(pcache_read(c, 9, back, 100, PCACHE_BLOCK - 50) == 100 &&
	      !memcmp(back, data + PCACHE_BLOCK - 50, 100), "read across blocks");
	CHECK(cnt.got == 2 * PCACHE_BLOCK && cnt.gets == 1, "fetched %llu in %u",
	      (unsigned long long)cnt.got, cnt.gets);
	/* again: from the cache */
	CHECK(pcache_read(c, 9, back, 100, PCACHE_BLOCK + 7) == 100 &&
	      !memcmp(back, data + PCACHE_BLOCK + 7, 100), "cached read");
	CHECK(cnt.got == 2 * PCACHE_BLOCK, "no fetch for a cached range");
	/* the short last block */
	CHECK(pcache_read(c, 9, back, 2000, sizeof(data) - 1000) == 1000 &&
	      !memcmp(back, data + sizeof(data) - 1000, 1000), "last block");
	pcache_stats(c, &fetched, &hit);
	CHECK(hit >= 100 && fetched == cnt.got, "stats %llu %llu", (unsigned long long)fetched,
	      (unsigned long long)hit);
	/* a torn block: forgotten, then fetched again with the right bytes */
	snprintf(path, sizeof(path), "%s/00000009.pack", cdir);
	{
		int fd = open(path, O_WRONLY);

		CHECK(fd >= 0 && pwrite(fd, "XXXX", 4, PCACHE_BLOCK + 7) == 4, "tear");
		close(fd);
	}
	CHECK(pcache_read(c, 9, back, 4, PCACHE_BLOCK + 7) == 4 && memcmp(back, "XXXX", 4) == 0,
	      "the cache serves what it holds");
	pcache_forget(c, 9, PCACHE_BLOCK + 7, 4);
	CHECK(pcache_read(c, 9, back, 4, PCACHE_BLOCK + 7) == 4 &&
	      !memcmp(back, data + PCACHE_BLOCK + 7, 4), "forgotten block fetched again");
	/* the bound: a whole second pack (5 MiB) pushes the first out */
	CHECK(pcache_read(c, 10, back, sizeof(back), 0) == (ssize_t)sizeof(back) &&
	      !memcmp(back, data, sizeof(back)), "pack 10");
	pcache_close(c);
	CHECK(stat(path, &sb) < 0, "pack 9's file evicted past the bound");
	/* reopen: pack 10's blocks are still there */
	CHECK(pcache_open(cdir, 4u << 20, &cnt.base, &c) == 0, "cache reopen");
	cnt.got = 0;
	CHECK(pcache_read(c, 10, back, 1000, 12345) == 1000 && !memcmp(back, data + 12345, 1000),
	      "read after reopen");
	CHECK(cnt.got == 0, "kept across a reopen (fetched %llu)", (unsigned long long)cnt.got);
	pcache_drop(c, 10);
	snprintf(path, sizeof(path), "%s/0000000a.pack", cdir);
	CHECK(stat(path, &sb) < 0, "dropped");
	pcache_close(c);
	pback_free(cnt.inner);
}

static int parse(const char *text, struct store_create_opts *o)
{
	char id[33];

	return store_config_parse((const uint8_t *)text, strlen(text), id, o);
}

static void test_config(void)
{
	const char *base = "id 0123456789abcdef0123456789abcdef\nhash sha256\n"
			   "checksum xxh3-64\nchunker fastcdc\ncdc_min 16384\ncdc_avg 65536\n"
			   "cdc_max 262144\ncdc_norm 2\ncodec zstd\nzstd_level 3\n"
			   "pack_target 67108864\ninline_max 2048\nkeep_checkpoints 3\n";
	struct store_create_opts o;
	char t[2048];

	snprintf(t, sizeof(t), "defragfs-store 1\n%s", base);
	CHECK(parse(t, &o) == 0 && !o.packs[0], "version 1: local");
	snprintf(t, sizeof(t), "defragfs-store 1\n%spacks s3://b/p\n", base);
	CHECK(parse(t, &o) == -EBADMSG, "version 1 has no backend lines");
	snprintf(t, sizeof(t), "defragfs-store 2\n%spacks s3://bkt/pre\ns3_endpoint "
		 "http://127.0.0.1:1\ns3_addressing vhost\ns3_region eu-1\n"
		 "s3_credentials /etc/c\n", base);
	CHECK(parse(t, &o) == 0 && !strcmp(o.packs, "s3://bkt/pre") && o.s3_vhost &&
	      !strcmp(o.s3_region, "eu-1") && !strcmp(o.s3_credentials, "/etc/c") &&
	      !strcmp(o.s3_endpoint, "http://127.0.0.1:1"), "version 2");
	snprintf(t, sizeof(t), "defragfs-store 2\n%spacks gs://bkt\ns3_endpoint http://h\n",
		 base);
	CHECK(parse(t, &o) == -EPROTONOSUPPORT, "an unknown backend");
	snprintf(t, sizeof(t), "defragfs-store 2\n%spacks s3://bkt\ns3_endpoint http://h\n"
		 "s3_addressing dns\n", base);
	CHECK(parse(t, &o) == -EPROTONOSUPPORT, "an unknown addressing");
	snprintf(t, sizeof(t), "defragfs-store 2\n%spacks s3://bkt\ns3_endpoint http://h\n"
		 "s3_secret abc\n", base);
	CHECK(parse(t, &o) == -EBADMSG, "an unknown line (a secret has no place here)");
	snprintf(t, sizeof(t), "defragfs-store 2\n%s", base);
	CHECK(parse(t, &o) == -EBADMSG, "version 2 without its backend");
	snprintf(t, sizeof(t), "defragfs-store 1\n%scdc_later 5\n", base);
	CHECK(parse(t, &o) == -EPROTONOSUPPORT, "a numeric setting this build does not know");
	snprintf(t, sizeof(t), "defragfs-store 1\n%scdc_tar_floor 2049\n", base);
	CHECK(parse(t, &o) == 0 && o.cdc.tar_floor == 2049, "cdc_tar_floor");
	snprintf(t, sizeof(t), "defragfs-store 1\n%s", base);
	CHECK(parse(t, &o) == 0 && o.cdc.tar_floor == 0, "no cdc_tar_floor: 0 (stores before it)");
	snprintf(t, sizeof(t), "defragfs-store 3\n%s", base);
	CHECK(parse(t, &o) == -EPROTONOSUPPORT, "version 3");
}

static void test_s3_url(void)
{
	CHECK(pback_s3_url_check("s3://bucket") == 0, "bucket");
	CHECK(pback_s3_url_check("s3://my.bucket-1/a/b_c") == 0, "bucket and prefix");
	CHECK(pback_s3_url_check("s3://ab") == -EINVAL, "short bucket");
	CHECK(pback_s3_url_check("s3://Bucket") == -EINVAL, "upper case");
	CHECK(pback_s3_url_check("http://bucket") == -EINVAL, "scheme");
	CHECK(pback_s3_url_check("s3://bucket/a b") == -EINVAL, "space in the prefix");
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/test_pback.%d", (int)getpid());
	mkdir(root, 0700);
	test_local();
	test_cache();
	test_config();
	test_s3_url();
	sio_remove_tree(root);
	return test_result("test_pback");
}
