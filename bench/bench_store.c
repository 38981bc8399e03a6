/*
 * bench_store.c - micro-benchmarks of store/: chunker, fingerprints, codec, chunk puts,
 * and the chunk-size survey. Never run by ctest; results go to docs/BENCHMARKS.md.
 *
 *   bench_store [micro] [--mb N] [--reps N] [--level N] [DIR...]
 *	Every case on one in-memory text corpus (regular files of DIR..., default
 *	/usr/include /usr/share/doc /usr/lib/python3.11, already-compressed files skipped,
 *	capped at N MiB), each beside the baselines it is judged against, measured in the
 *	same run: memory read, memcpy, a plain Gear loop, OpenSSL SHA-256 alone,
 *	ZSTD_compressCCtx alone at the same level on the same chunks. Best of --reps.
 *   bench_store chunk --avg SIZE [--min SIZE] [--max SIZE] [--reps N] DIR...
 *	Chunks and hashes every file the way ingest does (files up to 2 KiB are inline,
 *	chunks never span files) and prints one tab-separated line: files, bytes,
 *	chunks, unique chunks, unique bytes, cut+hash MB/s (one core, data in memory,
 *	best of --reps) and the memcpy MB/s of the same run.
 *   bench_store index STORE
 *	Opens STORE as writer and closes it (RocksDB replays its WAL into SST files, so
 *	du of index/ then measures what the entries cost on disk); prints the chunk count
 *	and raw/stored bytes.
 *
 * The measured paths go through the store's own APIs (cdc_next, fp_sha256,
 * codec_compress, store_has_chunk, store_put_chunk); only the baselines call OpenSSL
 * and zstd directly. Temporary stores live under $TMPDIR (default /tmp) and are removed.
 *
 * Threads: the put cases run 1 or 2 threads over halves of the corpus split at a cut point,
 * so both halves cut exactly as the whole does.
 * Errors: exits 1 with a message on any failure.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "store/cdc.h"
#include "store/codec.h"
#include "store/fp.h"
#include "store/store.h"

#define MIB (1024.0 * 1024.0)
#define WINDOW (8u << 20)	/* tools/lib_ingest.c READ_WINDOW */
#define INLINE_MAX 2048u	/* store default inline_max */
#define MAX_THREADS 2

static int reps = 5;

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("malloc", ENOMEM);
	return p;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keeps a result alive so the compiler cannot drop the loop that made it. */
static volatile uint64_t sink;

/* ---- a set of chunk ids (open addressing, grows at half full) ------------------------ */

struct fpset_ent {
	struct fp256 id;
	uint32_t len;
	bool used;
};

struct fpset {
	struct fpset_ent *tab;
	size_t cap, used;
	uint64_t bytes;		/* sum of the lengths of the distinct ids */
};

static bool fpset_insert(struct fpset *s, const struct fp256 *id, uint32_t len);

static void fpset_grow(struct fpset *s)
{
	struct fpset_ent *old = s->tab;
	size_t ocap = s->cap;

	s->cap = ocap ? ocap * 2 : 1u << 16;
	s->tab = calloc(s->cap, sizeof(*s->tab));
	if (!s->tab)
		die("calloc", ENOMEM);
	s->used = 0;
	s->bytes = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].used)
			fpset_insert(s, &old[i].id, old[i].len);
	free(old);
}

/* @return true if @id was new. */
static bool fpset_insert(struct fpset *s, const struct fp256 *id, uint32_t len)
{
	uint64_t h;
	size_t i;

	if ((s->used + 1) * 2 > s->cap)
		fpset_grow(s);
	memcpy(&h, id->b, sizeof(h));
	for (i = h & (s->cap - 1); s->tab[i].used; i = (i + 1) & (s->cap - 1))
		if (fp_equal(&s->tab[i].id, id))
			return false;
	s->tab[i].id = *id;
	s->tab[i].len = len;
	s->tab[i].used = true;
	s->used++;
	s->bytes += len;
	return true;
}

/* ---- corpus --------------------------------------------------------------------------- */

struct corpus {
	uint8_t *p;
	size_t len, cap;
	size_t files, dup_files;
	struct fpset seen;	/* whole-file ids: a file seen before is skipped */
};

static struct corpus *walk_corpus;	/* nftw has no user pointer */

static bool skip_name(const char *path)
{
	static const char *const ext[] = { ".gz", ".xz", ".bz2", ".zst", ".zip", ".png",
					   ".jpg", ".gif", ".pyc", ".jar", ".lz4" };
	size_t n = strlen(path);

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i]);

		if (n > e && !strcmp(path + n - e, ext[i]))
			return true;
	}
	return false;
}

static int corpus_add(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	struct corpus *c = walk_corpus;
	size_t want;
	ssize_t got;
	int fd;

	(void)f;
	if (type != FTW_F || !S_ISREG(sb->st_mode) || skip_name(path))
		return 0;
	if (c->len >= c->cap)
		return 1;
	want = (size_t)sb->st_size;
	if (want > c->cap - c->len)
		want = c->cap - c->len;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	got = read(fd, c->p + c->len, want);
	close(fd);
	if (got > 0) {
		struct fp256 id;

		fp_sha256(c->p + c->len, (size_t)got, &id);
		if (!fpset_insert(&c->seen, &id, (uint32_t)got)) {
			c->dup_files++;
			return 0;
		}
		c->len += (size_t)got;
		c->files++;
	}
	return 0;
}

static void corpus_load(struct corpus *c, size_t cap, char **dirs, int ndirs)
{
	static char *def[] = { "/usr/include", "/usr/share/doc", "/usr/lib/python3.11" };

	c->p = xmalloc(cap);
	c->cap = cap;
	c->len = 0;
	c->files = 0;
	c->dup_files = 0;
	memset(&c->seen, 0, sizeof(c->seen));
	if (ndirs == 0) {
		dirs = def;
		ndirs = 3;
	}
	walk_corpus = c;
	for (int i = 0; i < ndirs && c->len < c->cap; i++)
		nftw(dirs[i], corpus_add, 32, FTW_PHYS);
	free(c->seen.tab);
	memset(&c->seen, 0, sizeof(c->seen));
	if (c->len == 0)
		die("corpus is empty", ENOENT);
}

/* ---- cut points --------------------------------------------------------------------- */

struct cuts {
	size_t *off;	/* chunk i is [off[i], off[i+1]) */
	size_t n;	/* chunks */
};

static void cuts_make(const struct cdc_params *cp, const uint8_t *p, size_t len,
		      struct cuts *c)
{
	size_t cap = len / cp->min_size + 2, pos = 0;

	c->off = xmalloc(cap * sizeof(*c->off));
	c->n = 0;
	c->off[0] = 0;
	while (pos < len) {
		pos += cdc_next(cp, p + pos, len - pos, 1);
		c->off[++c->n] = pos;
	}
}

/* The chunk index where thread @t of @nt starts (chunk boundaries, equal bytes). */
static size_t cuts_split(const struct cuts *c, int t, int nt)
{
	size_t target = c->off[c->n] / (size_t)nt * (size_t)t, i = 0;

	if (t == 0)
		return 0;
	if (t == nt)
		return c->n;
	while (i < c->n && c->off[i] < target)
		i++;
	return i;
}

/* ---- baselines ---------------------------------------------------------------------- */

static uint64_t gear[256];

/* The same table as store/cdc.c (splitmix64 from a fixed seed). */
static void gear_init(void)
{
	uint64_t x = 0x64656672616766ull;

	for (int i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
}

static uint64_t mem_read(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t a = 0, b = 0, c = 0, d = 0;
	size_t n = len / 32;

	for (size_t i = 0; i < n; i++) {
		a += w[4 * i];
		b ^= w[4 * i + 1];
		c += w[4 * i + 2];
		d ^= w[4 * i + 3];
	}
	return a + b + c + d;
}

/* One table lookup, shift, add and mask test per byte: the loop every Gear CDC starts from. */
static uint64_t gear_plain(const uint8_t *p, size_t len, uint64_t mask)
{
	uint64_t h = 0, cuts = 0;

	for (size_t i = 0; i < len; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask))
			cuts++;
	}
	return cuts;
}

/* ---- timing helpers ----------------------------------------------------------------- */

struct result {
	double best;	/* seconds, fastest repetition */
	double median;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct result summarize(double *t, int n)
{
	struct result r;

	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	r.best = t[0];
	r.median = t[n / 2];
	return r;
}

static void row(const char *name, size_t bytes, struct result r, double base_mbs,
		const char *base)
{
	double mbs = (double)bytes / MIB / r.best;

	printf("%-46s %9.0f MB/s (median %6.0f)", name, mbs, (double)bytes / MIB / r.median);
	if (base)
		printf("  %5.2f x %s", mbs / base_mbs, base);
	printf("\n");
	fflush(stdout);
}

static double mbs_of(size_t bytes, struct result r)
{
	return (double)bytes / MIB / r.best;
}

/* ---- single-thread cases ------------------------------------------------------------ */

enum scase {
	C_READ,
	C_MEMCPY,
	C_GEAR,
	C_CDC,
	C_SHA_EVP,
	C_SHA_FP,
	C_CUT_HASH,
	C_CUT_WINDOW_HASH,
	C_ZSTD,
	C_CODEC,
};

struct sctx {
	const struct cdc_params *cp;
	const uint8_t *p;
	size_t len;
	const struct cuts *cuts;
	uint8_t *dst;
	size_t dst_cap;
	ZSTD_CCtx *zc;
	struct codec *codec;
	int level;
	size_t stored;	/* compressed bytes of the last run */
};

static void run_case(struct sctx *s, enum scase k)
{
	const uint8_t *p = s->p;
	size_t len = s->len, pos = 0, n;
	struct fp256 id;
	uint64_t acc = 0;

	switch (k) {
	case C_READ:
		acc = mem_read(p, len);
		break;
	case C_MEMCPY:
		memcpy(s->dst, p, len);
		acc = s->dst[len / 2];
		break;
	case C_GEAR:
		acc = gear_plain(p, len, ((1ull << 17) - 1) << 47);
		break;
	case C_CDC:
		while (pos < len) {
			pos += cdc_next(s->cp, p + pos, len - pos, 1);
			acc++;
		}
		break;
	case C_SHA_EVP:
		for (size_t i = 0; i < s->cuts->n; i++) {
			unsigned int dl;

			EVP_Digest(p + s->cuts->off[i], s->cuts->off[i + 1] - s->cuts->off[i],
				   id.b, &dl, EVP_sha256(), NULL);
			acc += id.b[0];
		}
		break;
	case C_SHA_FP:
		for (size_t i = 0; i < s->cuts->n; i++) {
			fp_sha256(p + s->cuts->off[i], s->cuts->off[i + 1] - s->cuts->off[i],
				  &id);
			acc += id.b[0];
		}
		break;
	case C_CUT_HASH:
		while (pos < len) {
			n = cdc_next(s->cp, p + pos, len - pos, 1);
			fp_sha256(p + pos, n, &id);
			acc += id.b[0];
			pos += n;
		}
		break;
	case C_CUT_WINDOW_HASH:
		/* as tools/lib_ingest.c does: cut a whole 8 MiB window, then hash its chunks */
		while (pos < len) {
			size_t end = pos + WINDOW < len ? pos + WINDOW : len, w = pos, nc = 0;
			size_t offs[WINDOW / CDC_MIN_LIMIT + 2];

			offs[0] = pos;
			while (w < end && (end == len || end - w >= s->cp->max_size)) {
				w += cdc_next(s->cp, p + w, end - w, end == len);
				offs[++nc] = w;
			}
			for (size_t i = 0; i < nc; i++) {
				fp_sha256(p + offs[i], offs[i + 1] - offs[i], &id);
				acc += id.b[0];
			}
			pos = w;
		}
		break;
	case C_ZSTD:
		s->stored = 0;
		for (size_t i = 0; i < s->cuts->n; i++) {
			size_t z = ZSTD_compressCCtx(s->zc, s->dst, s->dst_cap,
						     p + s->cuts->off[i],
						     s->cuts->off[i + 1] - s->cuts->off[i],
						     s->level);

			if (ZSTD_isError(z))
				die("ZSTD_compressCCtx", EIO);
			s->stored += z;
		}
		break;
	case C_CODEC:
		s->stored = 0;
		for (size_t i = 0; i < s->cuts->n; i++) {
			enum codec_id cid;
			ssize_t z = codec_compress(s->codec, p + s->cuts->off[i],
						   s->cuts->off[i + 1] - s->cuts->off[i],
						   s->dst, s->dst_cap, &cid);

			if (z < 0)
				die("codec_compress", (int)z);
			s->stored += (size_t)z;
		}
		break;
	}
	sink += acc;
}

static struct result time_case(struct sctx *s, enum scase k)
{
	double t[64];

	run_case(s, k);	/* warm-up: page faults, tables, contexts */
	for (int r = 0; r < reps; r++) {
		double t0 = now();

		run_case(s, k);
		t[r] = now() - t0;
	}
	return summarize(t, reps);
}

/* ---- threaded cases (the store's put path, and zstd alone) ------------------------------ */

enum tcase {
	T_PUT,		/* cut, hash, has_chunk, compress+check, put: tools/lib_ingest.c cjob_run */
	T_ZSTD,
	T_CUT_HASH,
};

struct tshared {
	enum tcase kind;
	const struct cdc_params *cp;
	const uint8_t *p;
	const struct cuts *cuts;
	struct store *st;
	int level;
	int nthreads;
	pthread_barrier_t start;
	atomic_uint_least64_t appended, dups;
};

struct targ {
	struct tshared *sh;
	int t;
	int rc;
};

static void *tmain(void *arg)
{
	struct targ *a = arg;
	struct tshared *sh = a->sh;
	size_t c0 = cuts_split(sh->cuts, a->t, sh->nthreads);
	size_t c1 = cuts_split(sh->cuts, a->t + 1, sh->nthreads);
	size_t pos = sh->cuts->off[c0], end = sh->cuts->off[c1];
	size_t cap = codec_bound(sh->cp->max_size);
	uint8_t *dst = xmalloc(cap);
	struct codec *codec = NULL;
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	uint64_t app = 0, dup = 0, acc = 0;
	int rc = codec_new(sh->level, &codec);

	if (rc < 0 || !zc)
		die("codec_new", rc < 0 ? rc : ENOMEM);
	pthread_barrier_wait(&sh->start);
	if (sh->kind == T_ZSTD) {
		for (size_t i = c0; i < c1; i++) {
			size_t z = ZSTD_compressCCtx(zc, dst, cap, sh->p + sh->cuts->off[i],
						     sh->cuts->off[i + 1] - sh->cuts->off[i],
						     sh->level);

			if (ZSTD_isError(z))
				die("ZSTD_compressCCtx", EIO);
			acc += z;
		}
		goto out;
	}
	while (pos < end) {
		size_t n = cdc_next(sh->cp, sh->p + pos, end - pos, 1);
		struct fp256 id;
		enum codec_id cid;
		ssize_t sl;

		fp_sha256(sh->p + pos, n, &id);
		if (sh->kind == T_CUT_HASH) {
			acc += id.b[0];
		} else if (store_has_chunk(sh->st, &id)) {
			dup++;
		} else {
			sl = codec_compress(codec, sh->p + pos, n, dst, cap, &cid);
			if (sl < 0) {
				rc = (int)sl;
				break;
			}
			rc = store_put_chunk(sh->st, &id, (uint32_t)n, dst, (uint32_t)sl, cid);
			if (rc < 0)
				break;
			if (rc == 1)
				app++;
			else
				dup++;
			rc = 0;
		}
		pos += n;
	}
out:
	atomic_fetch_add(&sh->appended, app);
	atomic_fetch_add(&sh->dups, dup);
	sink += acc;
	a->rc = rc;
	codec_free(codec);
	ZSTD_freeCCtx(zc);
	free(dst);
	return NULL;
}

/* Runs @kind on @nt threads once; returns the seconds from the start barrier to the join. */
static double trun(struct tshared *sh, enum tcase kind, int nt)
{
	pthread_t th[MAX_THREADS];
	struct targ a[MAX_THREADS];
	double t0;

	sh->kind = kind;
	sh->nthreads = nt;
	atomic_store(&sh->appended, 0);
	atomic_store(&sh->dups, 0);
	pthread_barrier_init(&sh->start, NULL, (unsigned)nt + 1);
	for (int i = 0; i < nt; i++) {
		a[i].sh = sh;
		a[i].t = i;
		a[i].rc = 0;
		if (pthread_create(&th[i], NULL, tmain, &a[i]))
			die("pthread_create", EAGAIN);
	}
	pthread_barrier_wait(&sh->start);
	t0 = now();
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	t0 = now() - t0;
	pthread_barrier_destroy(&sh->start);
	for (int i = 0; i < nt; i++)
		if (a[i].rc < 0)
			die("put", a[i].rc);
	return t0;
}

static void rm_tree(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_store: cannot remove %s\n", dir);
}

static struct store *open_store(const char *dir, bool create, int level)
{
	struct store_create_opts co;
	struct store_open_opts oo = { .mode = STORE_WRITER, .create = create,
				      .create_opts = &co };
	struct store *st;
	int rc;

	store_create_opts_default(&co);
	co.zstd_level = level;
	rc = store_open(dir, &oo, &st);
	if (rc < 0)
		die(dir, rc);
	return st;
}

static void commit(struct store *st)
{
	struct store_txn *tx;
	int rc = store_txn_begin(st, &tx);

	if (rc == 0)
		rc = store_txn_commit(tx);
	if (rc < 0)
		die("commit", rc);
}

/* ---- micro ---------------------------------------------------------------------------- */

static int cmd_micro(size_t mb, int level, char **dirs, int ndirs)
{
	struct cdc_params cp;
	struct corpus c;
	struct cuts cuts;
	struct sctx s = { 0 };
	struct tshared sh = { 0 };
	struct result r_read, r_cpy, r_gear, r_cdc, r_evp, r_fp, r_ch, r_chw, r_z, r_codec;
	double m_cpy, m_gear, m_evp, m_z, m_ch, t[64];
	char tmpl[4096];
	const char *tmp = getenv("TMPDIR");

	cdc_params_default(&cp);
	gear_init();
	corpus_load(&c, mb << 20, dirs, ndirs);
	cuts_make(&cp, c.p, c.len, &cuts);
	printf("corpus: %zu files (%zu duplicate files skipped), %.1f MiB in memory; "
	       "chunks min/avg/max %u/%u/%u KiB norm %u: %zu chunks, mean %.1f KiB; "
	       "zstd level %d; best of %d\n",
	       c.files, c.dup_files, (double)c.len / MIB, cp.min_size >> 10, cp.avg_size >> 10,
	       cp.max_size >> 10, cp.norm_level, cuts.n, (double)c.len / (double)cuts.n / 1024,
	       level, reps);

	s.cp = &cp;
	s.p = c.p;
	s.len = c.len;
	s.cuts = &cuts;
	s.level = level;
	s.dst_cap = c.len > codec_bound(cp.max_size) ? c.len : codec_bound(cp.max_size);
	s.dst = xmalloc(s.dst_cap);
	s.zc = ZSTD_createCCtx();
	if (!s.zc || codec_new(level, &s.codec) < 0)
		die("contexts", ENOMEM);

	printf("\n# one core: baselines, then the store's chunker and fingerprint\n");
	r_read = time_case(&s, C_READ);
	r_cpy = time_case(&s, C_MEMCPY);
	m_cpy = mbs_of(c.len, r_cpy);
	row("memory read (sum of words)", c.len, r_read, m_cpy, "memcpy");
	row("memcpy", c.len, r_cpy, m_cpy, "memcpy");
	r_gear = time_case(&s, C_GEAR);
	m_gear = mbs_of(c.len, r_gear);
	row("plain Gear loop (every byte)", c.len, r_gear, m_cpy, "memcpy");
	r_evp = time_case(&s, C_SHA_EVP);
	m_evp = mbs_of(c.len, r_evp);
	row("OpenSSL SHA-256 alone (EVP_Digest per chunk)", c.len, r_evp, m_cpy, "memcpy");
	r_fp = time_case(&s, C_SHA_FP);
	row("fp_sha256 per chunk", c.len, r_fp, m_evp, "SHA-256 alone");
	r_cdc = time_case(&s, C_CDC);
	row("cdc_next (FastCDC cut only)", c.len, r_cdc, m_gear, "plain Gear");
	r_ch = time_case(&s, C_CUT_HASH);
	m_ch = mbs_of(c.len, r_ch);
	row("cdc_next + fp_sha256, each chunk as cut", c.len, r_ch, m_gear, "plain Gear");
	printf("%-46s %9.0f MB/s  (1/(1/cut + 1/sha): the cost if nothing overlaps)\n",
	       "  expected from cut and SHA-256 alone",
	       1.0 / (1.0 / mbs_of(c.len, r_cdc) + 1.0 / mbs_of(c.len, r_fp)));
	r_chw = time_case(&s, C_CUT_WINDOW_HASH);
	row("cut an 8 MiB window, then hash its chunks", c.len, r_chw, m_ch, "cut+hash");

	printf("\n# one core: codec on the same chunks, level %d\n", level);
	r_z = time_case(&s, C_ZSTD);
	m_z = mbs_of(c.len, r_z);
	row("ZSTD_compressCCtx alone, one call per chunk", c.len, r_z, m_z, "zstd alone");
	printf("  ratio %.3f (stored/raw)\n", (double)s.stored / (double)c.len);
	r_codec = time_case(&s, C_CODEC);
	row("codec_compress (early test, zstd, check)", c.len, r_codec, m_z, "zstd alone");
	printf("  ratio %.3f (stored/raw)\n", (double)s.stored / (double)c.len);

	/* threaded: the put path through a real store */
	sh.cp = &cp;
	sh.p = c.p;
	sh.cuts = &cuts;
	sh.level = level;
	printf("\n# put path through a real store (cut, fp_sha256, store_has_chunk, "
	       "codec_compress, store_put_chunk), commit not timed\n");
	for (int nt = 1; nt <= MAX_THREADS; nt++) {
		struct result rz, ru;
		char name[96];

		for (int r = 0; r < reps; r++)
			t[r] = trun(&sh, T_ZSTD, nt);
		rz = summarize(t, reps);
		snprintf(name, sizeof(name), "ZSTD_compressCCtx alone, %d thread(s)", nt);
		row(name, c.len, rz, m_z * nt, nt == 1 ? "zstd 1T" : "2 x zstd 1T");
		for (int r = 0; r < reps; r++) {
			snprintf(tmpl, sizeof(tmpl), "%s/bench_store.XXXXXX", tmp ? tmp : "/tmp");
			if (!mkdtemp(tmpl))
				die("mkdtemp", errno);
			sh.st = open_store(tmpl, true, level);
			t[r] = trun(&sh, T_PUT, nt);
			commit(sh.st);
			store_close(sh.st);
			rm_tree(tmpl);
			sh.st = NULL;
		}
		ru = summarize(t, reps);
		snprintf(name, sizeof(name), "unique put, %d thread(s)", nt);
		row(name, c.len, ru, m_z * nt, nt == 1 ? "zstd 1T" : "2 x zstd 1T");
		printf("%-46s %9s       %17s  %5.2f x zstd %dT measured\n", "", "", "",
		       mbs_of(c.len, ru) / mbs_of(c.len, rz), nt);
		printf("  appended %llu, duplicates %llu\n",
		       (unsigned long long)atomic_load(&sh.appended),
		       (unsigned long long)atomic_load(&sh.dups));
	}

	printf("\n# duplicate put: the corpus put and committed once, store reopened, then "
	       "put again\n");
	snprintf(tmpl, sizeof(tmpl), "%s/bench_store.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl))
		die("mkdtemp", errno);
	sh.st = open_store(tmpl, true, level);
	trun(&sh, T_PUT, MAX_THREADS);
	commit(sh.st);
	store_close(sh.st);
	sh.st = open_store(tmpl, false, level);
	for (int nt = 1; nt <= MAX_THREADS; nt++) {
		struct result rc_, rd;
		char name[96];

		for (int r = 0; r < reps; r++)
			t[r] = trun(&sh, T_CUT_HASH, nt);
		rc_ = summarize(t, reps);
		snprintf(name, sizeof(name), "cut+hash, %d thread(s)", nt);
		row(name, c.len, rc_, m_ch, "cut+hash 1T");
		trun(&sh, T_PUT, nt);	/* warm the block cache */
		for (int r = 0; r < reps; r++)
			t[r] = trun(&sh, T_PUT, nt);
		rd = summarize(t, reps);
		snprintf(name, sizeof(name), "duplicate put, %d thread(s)", nt);
		row(name, c.len, rd, mbs_of(c.len, rc_), "cut+hash same threads");
		printf("  appended %llu, duplicates %llu\n",
		       (unsigned long long)atomic_load(&sh.appended),
		       (unsigned long long)atomic_load(&sh.dups));
	}
	store_close(sh.st);
	rm_tree(tmpl);

	codec_free(s.codec);
	ZSTD_freeCCtx(s.zc);
	free(s.dst);
	free(cuts.off);
	free(c.p);
	return 0;
}

/* ---- chunk: the chunk-size survey ------------------------------------------------------- */

struct survey {
	const struct cdc_params *cp;
	struct fpset set;
	uint8_t *buf;
	size_t buf_cap;
	uint64_t files, inline_files, bytes, chunks;
	double secs;		/* cut+hash seconds: per file the best of --reps, summed */
};

static struct survey *walk_survey;

static int survey_file(const char *path, const struct stat *sb, int type, struct FTW *f)
{
	struct survey *s = walk_survey;
	size_t len = (size_t)sb->st_size, pos = 0, nch = 0;
	struct fp256 *ids;
	uint32_t *lens;
	double best = 0;
	ssize_t got;
	int fd;

	(void)f;
	if (type != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	s->files++;
	if (len <= INLINE_MAX) {
		s->inline_files++;
		return 0;
	}
	if (len > s->buf_cap) {
		free(s->buf);
		s->buf_cap = len;
		s->buf = xmalloc(len);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	got = pread(fd, s->buf, len, 0);
	close(fd);
	if (got != (ssize_t)len)
		return 0;
	ids = xmalloc((len / s->cp->min_size + 2) * sizeof(*ids));
	lens = xmalloc((len / s->cp->min_size + 2) * sizeof(*lens));
	for (int r = 0; r < reps; r++) {
		double t0 = now();

		pos = 0;
		nch = 0;
		while (pos < len) {
			size_t n = cdc_next(s->cp, s->buf + pos, len - pos, 1);

			fp_sha256(s->buf + pos, n, &ids[nch]);
			lens[nch++] = (uint32_t)n;
			pos += n;
		}
		t0 = now() - t0;
		if (r == 0 || t0 < best)
			best = t0;
	}
	s->secs += best;
	s->bytes += len;
	s->chunks += nch;
	for (size_t i = 0; i < nch; i++)
		fpset_insert(&s->set, &ids[i], lens[i]);
	free(ids);
	free(lens);
	return 0;
}

static int cmd_chunk(const struct cdc_params *cp, char **dirs, int ndirs)
{
	struct survey s = { .cp = cp };
	struct sctx sc = { 0 };
	struct corpus c;
	struct result rc;
	char *def[] = { "/usr/include" };

	if (cdc_params_check(cp) < 0)
		die("chunk sizes (min <= avg <= max, avg a power of two)", EINVAL);
	walk_survey = &s;
	for (int i = 0; i < ndirs; i++)
		nftw(dirs[i], survey_file, 32, FTW_PHYS);
	/* the memcpy baseline of this run, on 64 MiB of the same kind of data */
	corpus_load(&c, 64u << 20, ndirs ? dirs : def, ndirs ? ndirs : 1);
	sc.p = c.p;
	sc.len = c.len;
	sc.dst = xmalloc(c.len);
	rc = time_case(&sc, C_MEMCPY);
	printf("files\tinline\tbytes\tchunks\tunique_chunks\tunique_bytes\tcuthash_mbs\t"
	       "memcpy_mbs\n");
	printf("%llu\t%llu\t%llu\t%llu\t%zu\t%llu\t%.1f\t%.1f\n",
	       (unsigned long long)s.files, (unsigned long long)s.inline_files,
	       (unsigned long long)s.bytes, (unsigned long long)s.chunks, s.set.used,
	       (unsigned long long)s.set.bytes, (double)s.bytes / MIB / s.secs,
	       mbs_of(c.len, rc));
	free(sc.dst);
	free(c.p);
	free(s.set.tab);
	free(s.buf);
	return 0;
}

/* ---- index ---------------------------------------------------------------------------- */

static int cmd_index(const char *dir)
{
	struct store_open_opts oo = { .mode = STORE_WRITER };
	struct store_stats ss;
	struct store *st;
	int rc = store_open(dir, &oo, &st);

	if (rc < 0)
		die(dir, rc);
	rc = store_get_stats(st, &ss);
	if (rc < 0)
		die("store_get_stats", rc);
	store_close(st);
	printf("chunks\traw_bytes\tstored_bytes\tpack_bytes\n%llu\t%llu\t%llu\t%llu\n",
	       (unsigned long long)ss.chunks, (unsigned long long)ss.raw_bytes,
	       (unsigned long long)ss.stored_bytes, (unsigned long long)ss.pack_bytes);
	return 0;
}

/* ---- main ----------------------------------------------------------------------------- */

static uint32_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end == 'k' || *end == 'K')
		v <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		v <<= 20, end++;
	if (*end || v == 0 || v > CDC_MAX_LIMIT)
		die(s, EINVAL);
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mb", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ "level", required_argument, NULL, 'l' },
		{ "min", required_argument, NULL, 'a' },
		{ "avg", required_argument, NULL, 'b' },
		{ "max", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "micro";
	struct cdc_params cp;
	size_t mb = 256;
	int level = 3, c;

	cdc_params_default(&cp);
	cp.min_size = cp.max_size = 0;
	if (argc > 1 && argv[1][0] != '-' && argv[1][0] != '/') {
		cmd = argv[1];
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mb = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			reps = (int)strtol(optarg, NULL, 10);
			if (reps < 1 || reps > 64)
				die("--reps (1..64)", EINVAL);
			break;
		case 'l':
			level = (int)strtol(optarg, NULL, 10);
			break;
		case 'a':
			cp.min_size = parse_size(optarg);
			break;
		case 'b':
			cp.avg_size = parse_size(optarg);
			break;
		case 'c':
			cp.max_size = parse_size(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_store [micro|chunk|index] [options] "
				"[DIR...]\n");
			return 2;
		}
	}
	if (!cp.min_size)
		cp.min_size = cp.avg_size / 4;
	if (!cp.max_size)
		cp.max_size = cp.avg_size * 4;
	if (!strcmp(cmd, "micro"))
		return cmd_micro(mb ? mb : 256, level, argv + optind, argc - optind);
	if (!strcmp(cmd, "chunk"))
		return cmd_chunk(&cp, argv + optind, argc - optind);
	if (!strcmp(cmd, "index") && argc - optind == 1)
		return cmd_index(argv[optind]);
	fprintf(stderr, "usage: bench_store [micro|chunk|index] [options] [DIR...]\n");
	return 2;
}
