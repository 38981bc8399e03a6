/*
 * test_primitives.c - the store's building blocks through their headers: FastCDC tiles
 * the input deterministically within min/max and resynchronises after an insertion;
 * SHA-256 known answers and streaming; zstd round trips, raw fallback for random data,
 * rejected levels and corrupt frames; capped buffers and varints; the one-run hash tables
 * and the id set (sorted once, duplicates dropped).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/buf.h"
#include "store/cdc.h"
#include "store/codec.h"
#include "store/fp.h"
#include "store/hset.h"

#include "test_check.h"

static size_t cut_all(const struct cdc_params *p, const uint8_t *d, size_t n, size_t *cuts,
		      size_t max)
{
	size_t off = 0, k = 0;

	while (off < n && k < max) {
		size_t c = cdc_next(p, d + off, n - off, 1);

		off += c;
		cuts[k++] = off;
	}
	return k;
}

static void test_cdc(void)
{
	struct cdc_params p;
	size_t n = 16u << 20, *a = malloc(4096 * sizeof(*a)), *b = malloc(4096 * sizeof(*b));
	uint8_t *d = malloc(n + 100), *e = malloc(n + 100);
	size_t na, nb, same = 0;

	cdc_params_default(&p);
	CHECK(cdc_params_check(&p) == 0, "default params invalid");
	CHECK(cdc_params_check(&(struct cdc_params){ 4096, 3000, 8192, 2, 0 }) == -EINVAL,
	      "non power of two accepted");
	CHECK(cdc_params_check(&(struct cdc_params){ 9000, 8192, 65536, 2, 0 }) == -EINVAL,
	      "min > avg accepted");
	test_fill(d, n, 42);
	na = cut_all(&p, d, n, a, 4096);
	CHECK(a[na - 1] == n, "chunks do not tile the input");
	for (size_t i = 0; i < na; i++) {
		size_t len = a[i] - (i ? a[i - 1] : 0);

		CHECK(len <= p.max_size && (len >= p.min_size || i == na - 1), "chunk %zu: %zu", i,
		      len);
	}
	CHECK(cut_all(&p, d, n, b, 4096) == na && !memcmp(a, b, na * sizeof(*a)),
	      "not deterministic");
	/* insert 7 bytes near the start: boundaries after the first few shift by exactly 7 */
	memcpy(e, d, 1000);
	memcpy(e + 1000, "INSERT!", 7);
	memcpy(e + 1007, d + 1000, n - 1000);
	nb = cut_all(&p, e, n + 7, b, 4096);
	for (size_t i = 0, j = 0; i < na && j < nb;) {
		if (a[i] + 7 == b[j]) {
			same++;
			i++;
			j++;
		} else if (a[i] + 7 < b[j]) {
			i++;
		} else {
			j++;
		}
	}
	printf("cdc: %zu chunks (mean %zu bytes); after a 7-byte insertion %zu of %zu "
	       "boundaries unchanged\n", na, n / na, same, na);
	CHECK(same + 3 >= na, "boundaries did not resynchronise: %zu of %zu", same, na);
	/* streaming with eof=0 on a short window: 0 means "give me more" */
	CHECK(cdc_next(&p, d, p.min_size - 1, 0) == 0, "cut before min without eof");
	CHECK(cdc_next(&p, d, 10, 1) == 10, "eof remainder");
	free(a);
	free(b);
	free(d);
	free(e);
}

/*
 * XXH3-64 is every record's on-disk checksum: whichever implementation fp_xxh3 runs (the
 * library's SSE2 build or its AVX2/AVX-512 dispatch), it must give these values, taken
 * from libxxhash's XXH3_64bits (its SSE2 build) over test_fill's bytes (seed 7), at
 * lengths that cover each code path of XXH3 (0, 1-3, 4-8, 9-16, 17-128, 129-240 bytes,
 * long inputs, partial stripes).
 */
static void test_xxh3_vectors(void)
{
	static const struct {
		size_t len;
		uint64_t h;
	} v[] = {
		{ 0, 0x2d06800538d394c2ull },
		{ 1, 0xb59060455a04877cull },
		{ 3, 0x2619c5fe6f692b13ull },
		{ 4, 0x1daf8a042f670df0ull },
		{ 8, 0x4fc93d57c286ddffull },
		{ 9, 0x56b7d1bb7677bfe0ull },
		{ 16, 0x118eb55f6548854aull },
		{ 17, 0x62982f2e41a1cc5eull },
		{ 128, 0x14b844b074f64734ull },
		{ 129, 0x7d70370b2d1a20e3ull },
		{ 240, 0xa823af48e57f754full },
		{ 241, 0xf2608f07ad4ef2d6ull },
		{ 1024, 0x436e15487be1fa12ull },
		{ 16384, 0x5af92135ee8bf59cull },
		{ 16385, 0x46c11cf0264f3923ull },
		{ 131072, 0xd91584ef57e703ddull },
		{ 199999, 0xfebd14756f314aa2ull },
	};
	size_t n = 200000;
	uint8_t *b = malloc(n);

	CHECK(b, "malloc");
	if (!b)
		return;
	test_fill(b, n, 7);
	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++)
		CHECK(fp_xxh3(b, v[i].len) == v[i].h, "XXH3 of %zu bytes: %016llx", v[i].len,
		      (unsigned long long)fp_xxh3(b, v[i].len));
	free(b);
}

static void test_fp(void)
{
	static const struct {
		const char *in, *hex;
	} kat[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	struct fp_sha *s;
	struct fp256 a, b;
	char hex[FP_HEX_LEN + 1];

	for (size_t i = 0; i < sizeof(kat) / sizeof(*kat); i++) {
		fp_sha256(kat[i].in, strlen(kat[i].in), &a);
		fp_to_hex(&a, hex);
		CHECK(!strcmp(hex, kat[i].hex), "SHA-256('%s') = %s", kat[i].in, hex);
		CHECK(fp_from_hex(hex, &b) == 0 && fp_equal(&a, &b), "hex round trip");
	}
	CHECK(fp_from_hex("xyz", &b) == -EINVAL, "bad hex accepted");
	fp_sha_new(&s);
	fp_sha_update(s, "abcdbcdecdefdefgefghfghighijhijk", 32);
	fp_sha_update(s, "ijkljklmklmnlmnomnopnopq", 24);
	fp_sha_final(s, &b);
	fp_sha_free(s);
	fp_sha256(kat[2].in, strlen(kat[2].in), &a);
	CHECK(fp_equal(&a, &b), "streaming differs from one-shot");
	CHECK(fp_xxh3("abc", 3) != fp_xxh3("abd", 3), "xxh3");
	test_xxh3_vectors();
}

static void test_codec(void)
{
	struct codec *c;
	size_t n = 1u << 20;
	uint8_t *src = malloc(n), *z = malloc(codec_bound(n)), *back = malloc(n);
	enum codec_id id;
	ssize_t zl;

	CHECK(codec_new(16, &c) == -EINVAL, "level 16 accepted (Debian zstd 1.5.4 bug)");
	CHECK(codec_new(0, &c) == -EINVAL, "level 0 accepted");
	CHECK(codec_new(3, &c) == 0, "level 3");
	for (size_t i = 0; i < n; i++)
		src[i] = (uint8_t)("the quick brown fox "[i % 20]);
	zl = codec_compress(c, src, n, z, codec_bound(n), &id);
	CHECK(zl > 0 && id == CODEC_ZSTD && (size_t)zl < n / 10, "text: %zd bytes", zl);
	CHECK(codec_decompress(c, id, z, (size_t)zl, back, n) == 0 && !memcmp(back, src, n),
	      "text round trip");
	CHECK(codec_decompress(c, id, z, (size_t)zl, back, n - 1) == -EBADMSG, "wrong length");
	z[zl / 2] ^= 0x55;
	CHECK(codec_decompress(c, id, z, (size_t)zl, back, n) < 0 || memcmp(back, src, n) == 0,
	      "corrupt frame decoded to other bytes");
	CHECK(codec_decompress(c, id, z, (size_t)zl / 2, back, n) == -EBADMSG, "truncated frame");
	test_fill(src, n, 9);
	zl = codec_compress(c, src, n, z, codec_bound(n), &id);
	CHECK(zl == (ssize_t)n && id == CODEC_RAW, "random data not stored raw");
	CHECK(codec_decompress(c, (enum codec_id)7, z, (size_t)zl, back, n) == -EPROTONOSUPPORT,
	      "unknown codec");
	zl = codec_compress(c, src, 0, z, codec_bound(0), &id);
	CHECK(zl == 0, "empty input");
	codec_free(c);
	free(src);
	free(z);
	free(back);
}

static void test_buf(void)
{
	struct dfs_buf b;
	struct dfs_rd r;
	static const uint64_t vals[] = { 0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX };

	dfs_buf_init(&b, 16);
	CHECK(dfs_buf_append(&b, "0123456789abcdef", 16) == 0, "fill to cap");
	CHECK(dfs_buf_put_u8(&b, 1) == -E2BIG && b.err == -E2BIG, "cap not enforced");
	CHECK(dfs_buf_put_u8(&b, 1) == -E2BIG, "error not sticky");
	dfs_buf_release(&b);
	dfs_buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++)
		dfs_buf_put_varint(&b, vals[i]);
	dfs_rd_init(&r, b.data, b.len);
	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++)
		CHECK(dfs_rd_varint(&r) == vals[i], "varint %zu", i);
	CHECK(r.err == 0 && r.left == 0, "varint stream");
	dfs_rd_varint(&r);
	CHECK(r.err == -EBADMSG, "overrun not detected");
	{
		uint8_t over[11] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0 };

		dfs_rd_init(&r, over, sizeof(over));
		dfs_rd_varint(&r);
		CHECK(r.err == -EBADMSG, "overlong varint accepted");
	}
	dfs_buf_release(&b);
}

/* The one-run hash tables, grown through many resizes, against a plain model. */
static void test_hset(void)
{
	struct u64set s = { 0 };
	struct pathmap m = { 0 };
	char key[64];
	uint64_t v;
	size_t bad = 0;

	for (uint64_t i = 1; i <= 100000; i++)
		if (u64set_add(&s, i * 3) != 1)
			bad++;
	CHECK(!bad && s.n == 100000, "u64set: %zu adds failed, n %zu", bad, s.n);
	CHECK(u64set_add(&s, 3) == 0 && u64set_add(&s, 300000) == 0, "u64set: re-add is 0");
	for (uint64_t i = 1; i <= 300001; i++)
		if (u64set_has(&s, i) != (i % 3 == 0 && i <= 300000))
			bad++;
	CHECK(!bad, "u64set: %zu wrong answers", bad);
	u64set_release(&s);
	CHECK(!u64set_has(&s, 3), "u64set: released");

	{
		struct u64map um = { 0 };

		for (uint64_t i = 1; i <= 70000; i++)
			if (u64map_put(&um, i * 7, i) < 0)
				bad++;
		CHECK(!bad && um.n == 70000, "u64map: %zu puts failed, n %zu", bad, um.n);
		CHECK(u64map_put(&um, 14, 99) == 0 && um.n == 70000, "u64map: replace");
		for (uint64_t i = 1; i <= 490001; i++) {
			bool want = i % 7 == 0 && i <= 490000;
			bool got = u64map_get(&um, i, &v);

			if (got != want || (got && v != (i == 14 ? 99 : i / 7)))
				bad++;
		}
		CHECK(!bad, "u64map: %zu wrong answers", bad);
		u64map_release(&um);
	}
	for (int i = 0; i < 50000; i++) {
		int n = snprintf(key, sizeof(key), "dir/%d/sub", i);

		if (pathmap_put(&m, (const uint8_t *)key, (size_t)n, (uint64_t)i + 7) < 0)
			bad++;
	}
	CHECK(!bad && m.n == 50000, "pathmap: %zu puts failed, n %zu", bad, m.n);
	CHECK(pathmap_put(&m, (const uint8_t *)"dir/5/sub", 9, 1) == 0 && m.n == 50000,
	      "pathmap: replace keeps the count");
	CHECK(pathmap_put(&m, (const uint8_t *)"", 0, 99) == 0 &&
	      pathmap_get(&m, (const uint8_t *)"", 0, &v) && v == 99, "pathmap: empty key");
	for (int i = 0; i < 50000; i++) {
		int n = snprintf(key, sizeof(key), "dir/%d/sub", i);

		if (!pathmap_get(&m, (const uint8_t *)key, (size_t)n, &v) ||
		    v != (i == 5 ? 1 : (uint64_t)i + 7))
			bad++;
	}
	CHECK(!bad, "pathmap: %zu wrong values", bad);
	CHECK(!pathmap_get(&m, (const uint8_t *)"dir/5/su", 8, &v) &&
	      !pathmap_get(&m, (const uint8_t *)"dir/50000/sub", 13, &v), "pathmap: absent keys");
	pathmap_release(&m);
}

/* The id set: adds in any order and with repeats, then lookups; adds after lookups. */
static void test_fpset(void)
{
	struct fpset s = { 0 };
	struct fp256 id;
	size_t bad = 0;

	memset(&id, 0, sizeof(id));
	CHECK(!fpset_has(&s, &id), "fpset: empty set has an id");
	for (uint32_t i = 0; i < 3000; i++) {
		uint32_t k = (i * 7919u) % 1000;	/* 0..999, each three times */

		memset(&id, 0, sizeof(id));
		memcpy(id.b + 8, &k, sizeof(k));
		if (fpset_add(&s, &id) < 0)
			bad++;
	}
	CHECK(!bad, "fpset: %zu adds failed", bad);
	for (uint32_t k = 0; k < 2000; k++) {
		memset(&id, 0, sizeof(id));
		memcpy(id.b + 8, &k, sizeof(k));
		if (fpset_has(&s, &id) != (k < 1000))
			bad++;
	}
	CHECK(!bad, "fpset: %zu wrong answers", bad);
	CHECK(s.n == 1000, "fpset: %zu ids after lookups, 1000 distinct", s.n);
	for (size_t i = 1; i < s.n; i++)
		if (memcmp(&s.v[i - 1], &s.v[i], sizeof(id)) >= 0)
			bad++;
	CHECK(!bad, "fpset: not in order after a lookup");
	memset(&id, 0xff, sizeof(id));
	CHECK(fpset_add(&s, &id) == 0 && fpset_has(&s, &id) && s.n == 1001,
	      "fpset: an add after lookups is found");
	fpset_release(&s);
	CHECK(!s.n && !s.v && !fpset_has(&s, &id), "fpset: released");
}

int main(void)
{
	test_cdc();
	test_fp();
	test_codec();
	test_buf();
	test_hset();
	test_fpset();
	return test_result("test_primitives");
}
