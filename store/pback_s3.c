/*
 * pback_s3.c - packs as objects of an S3 bucket, through libcurl (pback.h).
 *
 * The only module that includes <curl/curl.h>. Requests are signed by libcurl itself
 * (CURLOPT_AWS_SIGV4, "aws:amz:REGION:s3"), with the payload declared UNSIGNED-PAYLOAD
 * (libcurl 7.88 does not hash bodies; RGW and AWS accept it over any transport): the
 * body's integrity is checked by Content-MD5 on upload, and by reading back the size and
 * ETag (the MD5 of a single-part object) before a pack counts as put; a server whose ETag
 * is not that MD5 (multipart, AWS SSE-KMS) has the object read back and compared.
 *
 * Objects: PREFIX/XXXXXXXX.pack (8 hex digits of the pack id). Addressing: path-style
 * (ENDPOINT/BUCKET/KEY) or virtual-host (SCHEME://BUCKET.HOST/KEY).
 *
 * Threads: a pool of easy handles (one per request in flight, each keeping its
 * connection alive), under s->lock. Requests run in parallel.
 * Errors: see pback.h. A server that cannot be reached is logged once, until it answers.
 *
 * SPDX-License-Identifier: MIT
 */
#include "pback.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "fp.h"
#include "log.h"
#include "pack.h"

struct s3_conn {
	CURL *h;
	struct s3_conn *next;
};

struct pback_s3 {
	struct pback base;
	char *scheme;		/* "http" or "https" */
	char *hostport;		/* HOST[:PORT] */
	char *bucket;
	char *prefix;		/* "" or ending in '/' */
	bool vhost;
	char sigv4[96];
	char *userpwd;		/* ACCESS:SECRET (libcurl splits at the first ':') */
	unsigned retries;
	long timeout;
	pthread_mutex_t lock;	/* protects pool */
	struct s3_conn *pool;
	atomic_bool down;	/* the last request could not reach the server */
	atomic_bool etag_said;	/* an ETag that is not the MD5 was logged */
};

/* One request and what came back. */
struct s3_req {
	const char *method;	/* GET PUT HEAD DELETE */
	char url[1024];
	FILE *upload;		/* PUT body (NULL: empty) */
	uint64_t upload_len;	/* bytes of @upload to send (the file may be longer) */
	uint64_t sent;
	const char *content_md5;
	char range[64];		/* GET "A-B", or "" */
	uint8_t *buf;		/* GET into a fixed buffer ... */
	size_t cap, len;
	struct dfs_buf *body;	/* ... or into a growable one */
	bool overflow;
	char err[512];		/* start of an error body */
	size_t errlen;
	long status;
	char etag[80];
	uint64_t clen;
	bool have_clen;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static struct pback_s3 *s3_of(struct pback *b)
{
	return (struct pback_s3 *)b;
}

/* ---- connections and requests ----------------------------------------------------- */

static CURL *conn_get(struct pback_s3 *s)
{
	struct s3_conn *c;
	CURL *h;

	pthread_mutex_lock(&s->lock);
	c = s->pool;
	if (c)
		s->pool = c->next;
	pthread_mutex_unlock(&s->lock);
	if (!c)
		return curl_easy_init();
	h = c->h;
	free(c);
	return h;
}

static void conn_put(struct pback_s3 *s, CURL *h)
{
	struct s3_conn *c = malloc(sizeof(*c));

	if (!c) {
		curl_easy_cleanup(h);
		return;
	}
	c->h = h;
	pthread_mutex_lock(&s->lock);
	c->next = s->pool;
	s->pool = c;
	pthread_mutex_unlock(&s->lock);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;

	if (q->status == 0 || q->status >= 300) {
		size_t room = sizeof(q->err) - 1 - q->errlen;
		size_t k = len < room ? len : room;

		memcpy(q->err + q->errlen, p, k);
		q->errlen += k;
		q->err[q->errlen] = '\0';
		return len;
	}
	if (q->body)
		return dfs_buf_append(q->body, p, len) == 0 ? len : 0;
	if (!q->buf)
		return len;
	if (len > q->cap - q->len) {
		q->overflow = true;	/* more than asked: a server that ignored Range */
		return 0;
	}
	memcpy(q->buf + q->len, p, len);
	q->len += len;
	return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;
	char line[256];

	if (len >= sizeof(line))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {	/* a new response (100 Continue first) */
		const char *sp = strchr(line, ' ');

		q->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		q->have_clen = false;
		q->etag[0] = '\0';
	} else if (strncasecmp(line, "etag:", 5) == 0) {
		const char *v = line + 5;

		size_t vl;

		while (*v == ' ')
			v++;
		vl = strlen(v) < sizeof(q->etag) - 1 ? strlen(v) : sizeof(q->etag) - 1;
		memcpy(q->etag, v, vl);
		q->etag[vl] = '\0';
#ifdef DFS_TEST_FAULTS
		/* DFS_FAULT_S3_ETAG=opaque: the client sees ETags that are not the MD5 of the
		 * object (a multipart upload's, AWS SSE-KMS's), as from such a server */
		if (getenv("DFS_FAULT_S3_ETAG") && !strcmp(getenv("DFS_FAULT_S3_ETAG"), "opaque") &&
		    vl > 2 && vl + 3 < sizeof(q->etag)) {
			memcpy(q->etag + vl - 1, "-1\"", 4);
		}
#endif
	} else if (strncasecmp(line, "content-length:", 15) == 0) {
		q->clen = strtoull(line + 15, NULL, 10);
		q->have_clen = true;
	}
	return len;
}

/* The body of a PUT: the first upload_len bytes of the file (an open pack grows past). */
static size_t on_read_file(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t want = size * n, got;

	if (q->upload_len - q->sent < want)
		want = (size_t)(q->upload_len - q->sent);
	got = want ? fread(p, 1, want, q->upload) : 0;
	if (got < want && ferror(q->upload))
		return CURL_READFUNC_ABORT;
	q->sent += got;
	return got;
}

static size_t on_read_empty(char *p, size_t size, size_t n, void *arg)
{
	(void)p, (void)size, (void)n, (void)arg;
	return 0;
}

/* The <Code> of an S3 error body, or the HTTP status. */
static void err_code(const struct s3_req *q, char *out, size_t cap)
{
	const char *a = strstr(q->err, "<Code>"), *b = a ? strstr(a, "</Code>") : NULL;

	if (a && b)
		snprintf(out, cap, "HTTP %ld %.*s", q->status, (int)(b - a - 6), a + 6);
	else
		snprintf(out, cap, "HTTP %ld", q->status);
}

static bool transient(CURLcode cc, long status)
{
	switch (cc) {
	case CURLE_OK:
		return status >= 500 || status == 429;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return true;
	default:
		return false;
	}
}

static int transport_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static CURLcode perform_once(struct pback_s3 *s, struct s3_req *q, CURL *h)
{
	struct curl_slist *hd = NULL;
	char md5h[64];
	CURLcode cc;

	curl_easy_reset(h);
	hd = curl_slist_append(hd, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (q->content_md5) {
		snprintf(md5h, sizeof(md5h), "Content-MD5: %s", q->content_md5);
		hd = curl_slist_append(hd, md5h);
	}
	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(h, CURLOPT_USERPWD, s->userpwd);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* no wait for "100 Continue" (an "Expect:" header to drop it would be signed) */
	curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->timeout);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	if (strcmp(q->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(q->method, "DELETE") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	} else if (strcmp(q->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->upload_len);
		if (q->upload) {
			rewind(q->upload);
			q->sent = 0;
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_file);
			curl_easy_setopt(h, CURLOPT_READDATA, q);
		} else {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_empty);
		}
	} else if (q->range[0]) {
		curl_easy_setopt(h, CURLOPT_RANGE, q->range);
	}
	cc = curl_easy_perform(h);
	curl_slist_free_all(hd);
	return cc;
}

/*
 * Runs @q with the retries of pback.h. Returns 0 (2xx), -ENOENT (404), -EACCES (401,
 * 403), the HTTP status as a positive number for other answers (the caller decides), or
 * -ECONNREFUSED / -ETIMEDOUT / -EIO when no answer came.
 */
static int s3_do(struct pback_s3 *s, struct s3_req *q)
{
	unsigned delay = 100;
	CURLcode cc = CURLE_OK;
	char what[160];

	for (unsigned attempt = 0;; attempt++) {
		CURL *h = conn_get(s);

		if (!h)
			return -ENOMEM;
		q->status = 0;
		q->len = q->errlen = 0;
		q->err[0] = '\0';
		q->overflow = false;
		if (q->body)
			dfs_buf_clear(q->body);
		cc = perform_once(s, q, h);
		if (cc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
		conn_put(s, h);
		if (!transient(cc, q->status) || attempt >= s->retries)
			break;
		sleep_ms(delay);
		delay = delay * 2 > 2000 ? 2000 : delay * 2;
	}
	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && q->overflow)) {
		if (!atomic_exchange(&s->down, true))
			dfs_err("S3 %s://%s: unreachable (%s, after %u retries); reads and "
				"writes of packs fail with EIO until it answers", s->scheme,
				s->hostport, curl_easy_strerror(cc), s->retries);
		return transport_errno(cc);
	}
	if (q->overflow) {
		dfs_err("S3 %s: more bytes than asked for", q->url);
		return -EIO;
	}
	if (q->status >= 500 || q->status == 429) {
		err_code(q, what, sizeof(what));
		if (!atomic_exchange(&s->down, true))
			dfs_err("S3 %s://%s: %s (after %u retries); reads and writes of packs "
				"fail with EIO until it answers", s->scheme, s->hostport, what,
				s->retries);
		return -EIO;
	}
	if (atomic_exchange(&s->down, false))
		dfs_warn("S3 %s://%s answers again", s->scheme, s->hostport);
	if (q->status >= 200 && q->status < 300)
		return 0;
	if (q->status == 404)
		return -ENOENT;
	if (q->status == 401 || q->status == 403) {
		err_code(q, what, sizeof(what));
		dfs_err("S3 %s %s: refused: %s (check the access key, secret and region)",
			q->method, q->url, what);
		return -EACCES;
	}
	return (int)q->status;
}

/* The URL of @key ("" = the bucket itself) with @query ("" or "?..."). */
static int url_of(struct pback_s3 *s, const char *key, const char *query, char *out,
		  size_t cap)
{
	int n;

	if (s->vhost)
		n = snprintf(out, cap, "%s://%s.%s/%s%s", s->scheme, s->bucket, s->hostport, key,
			     query);
	else
		n = snprintf(out, cap, "%s://%s/%s%s%s%s", s->scheme, s->hostport, s->bucket,
			     key[0] || query[0] ? "/" : "", key, query);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int key_url(struct pback_s3 *s, uint32_t id, struct s3_req *q)
{
	char key[512];

	snprintf(key, sizeof(key), "%s%08" PRIx32 ".pack", s->prefix, id);
	return url_of(s, key, "", q->url, sizeof(q->url));
}

static int unexpected(struct s3_req *q, int rc)
{
	char what[160];

	if (rc <= 0)
		return rc;
	err_code(q, what, sizeof(what));
	dfs_err("S3 %s %s: %s", q->method, q->url, what);
	return -EIO;
}

/* ---- the backend ------------------------------------------------------------------- */

static int s3_stat(struct pback *b, uint32_t id, uint64_t *size)
{
	struct s3_req q = { .method = "HEAD" };
	int rc = key_url(s3_of(b), id, &q);

	*size = 0;
	if (rc == 0)
		rc = unexpected(&q, s3_do(s3_of(b), &q));
	if (rc == 0 && !q.have_clen)
		rc = -EIO;
	if (rc == 0)
		*size = q.clen;
	return rc;
}

static void base64(const uint8_t *p, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

static ssize_t s3_get(struct pback *b, uint32_t id, void *buf, size_t len, uint64_t off);

#define S3_CMP_STEP (4u << 20)

/*
 * Is pack @id on the server the @size bytes of @fd? Read back whole (ranged GETs) and
 * compared byte for byte: the proof when the ETag is not the body's MD5. 1, 0, -errno.
 */
static int s3_same_bytes(struct pback_s3 *s, uint32_t id, int fd, uint64_t size)
{
	uint8_t *a = malloc(S3_CMP_STEP), *b = malloc(S3_CMP_STEP);
	int rc = a && b ? 1 : -ENOMEM;

	for (uint64_t off = 0; rc == 1 && off < size; off += S3_CMP_STEP) {
		size_t want = size - off < S3_CMP_STEP ? (size_t)(size - off) : S3_CMP_STEP;
		ssize_t n = s3_get(&s->base, id, a, want, off);
		ssize_t m = n < 0 ? 0 : pread(fd, b, want, (off_t)off);

		if (n < 0)
			rc = (int)n;
		else if (m < 0)
			rc = -errno;
		else if ((size_t)n != want || (size_t)m != want || memcmp(a, b, want) != 0)
			rc = 0;
	}
	free(a);
	free(b);
	return rc;
}

/*
 * Does the server hold pack @id as the @size bytes of @fd, whose MD5 is @want_etag (as an
 * ETag, quoted)? The size and ETag of a HEAD answer it when the ETag is that MD5 (a
 * single-part object without SSE-KMS). Any other ETag with the right size (a multipart
 * upload's "MD5-N", AWS SSE-KMS's opaque ones, a server's own scheme) proves nothing
 * either way: the object is then read back and compared (s3_same_bytes). 1, 0, -errno.
 */
static int s3_holds(struct pback_s3 *s, uint32_t id, int fd, uint64_t size,
		    const char *want_etag, bool say)
{
	struct s3_req q = { .method = "HEAD" };
	uint64_t got;
	int rc = key_url(s, id, &q);

	if (rc == 0)
		rc = unexpected(&q, s3_do(s, &q));
	if (rc == -ENOENT && !say)
		return 0;
	if (rc < 0)
		return rc;
	got = q.have_clen ? q.clen : UINT64_MAX;
	if (got == size && strcmp(q.etag, want_etag) == 0)
		return 1;
	if (got == size) {
		if (!atomic_exchange(&s->etag_said, true))
			dfs_info("S3 %s: the server's ETag (%s) is not the MD5 of what was put: "
				 "objects are confirmed by reading them back", q.url, q.etag);
		rc = s3_same_bytes(s, id, fd, size);
		if (rc != 0)
			return rc;
		if (say)
			dfs_err("S3 %s: the server holds other bytes than were put (read back "
				"and compared; %" PRIu64 " bytes)", q.url, size);
		return 0;
	}
	if (say)
		dfs_err("S3 %s: the server holds %" PRIu64 " bytes with ETag %s; %" PRIu64
			" bytes with MD5 %s were put", q.url, got, q.etag[0] ? q.etag : "(none)",
			size, want_etag);
	return 0;
}

/*
 * Puts the file and confirms it: the server's size and ETag (the MD5 of a single-part
 * object) read back must be the file's. An object that already is the file (a push
 * resumed, a pack put again after a crash) is not sent again.
 */
static int s3_put(struct pback *b, uint32_t id, const char *path, uint64_t size)
{
	struct pback_s3 *s = s3_of(b);
	struct s3_req q = { .method = "PUT", .upload_len = size };
	uint8_t md5[16];
	char b64[32], want[48];
	struct stat sb;
	FILE *f;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < size) {
		rc = fstat(fd, &sb) < 0 ? -errno : -EBADMSG;
		close(fd);
		return rc;
	}
	rc = fp_md5_fd(fd, size, md5);
	if (rc == 0) {
		want[0] = '"';
		for (int i = 0; i < 16; i++)
			snprintf(want + 1 + 2 * i, 3, "%02x", md5[i]);
		snprintf(want + 33, sizeof(want) - 33, "\"");
		rc = s3_holds(s, id, fd, size, want, false);
	}
	f = rc == 0 ? fdopen(fd, "rb") : NULL;
	if (!f) {
		rc = rc < 0 ? rc : rc == 1 ? 0 : -errno;
		close(fd);
		return rc;
	}
	base64(md5, sizeof(md5), b64);
	q.upload = f;
	q.content_md5 = b64;
	rc = key_url(s, id, &q);
	if (rc == 0)
		rc = unexpected(&q, s3_do(s, &q));
	if (rc == 0)	/* confirm: what the server holds now, read back */
		rc = s3_holds(s, id, fileno(f), size, want, true);
	fclose(f);
	return rc < 0 ? rc : rc ? 0 : -EBADMSG;
}

static ssize_t s3_get(struct pback *b, uint32_t id, void *buf, size_t len, uint64_t off)
{
	struct pback_s3 *s = s3_of(b);
	struct s3_req q = { .method = "GET", .buf = buf, .cap = len };
	int rc;

	if (len == 0)
		return 0;
	snprintf(q.range, sizeof(q.range), "%" PRIu64 "-%" PRIu64, off, off + len - 1);
	rc = key_url(s, id, &q);
	if (rc == 0)
		rc = s3_do(s, &q);
	if (rc == 416)
		return 0;	/* @off is past the end */
	rc = unexpected(&q, rc);
	if (rc < 0)
		return rc;
	if (q.status == 200 && off > 0) {
		dfs_err("S3 %s: the server ignored the byte range", q.url);
		return -EIO;
	}
	return (ssize_t)q.len;
}

static int s3_del(struct pback *b, uint32_t id)
{
	struct s3_req q = { .method = "DELETE" };
	int rc = key_url(s3_of(b), id, &q);

	if (rc == 0)
		rc = unexpected(&q, s3_do(s3_of(b), &q));
	return rc;
}

/* Percent-encodes @in (all but unreserved characters), as SigV4 wants a query. */
static void pct(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; *in && o + 4 < cap; in++) {
		unsigned char ch = (unsigned char)*in;

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
	}
	out[o] = '\0';
}

/* The text between <@tag> and </@tag> from @p (before @end), or NULL. */
static const char *xml_val(const char *p, const char *end, const char *tag, size_t *len)
{
	char open[48], close[48];
	const char *a, *b;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = strstr(p, open);
	if (!a || a >= end)
		return NULL;
	a += strlen(open);
	b = strstr(a, close);
	if (!b || b > end)
		return NULL;
	*len = (size_t)(b - a);
	return a;
}

static int s3_list(struct pback *b, int (*fn)(void *arg, uint32_t id, uint64_t size),
		   void *arg)
{
	struct pback_s3 *s = s3_of(b);
	char token[1024] = "", etok[3072], epre[1536], query[4800];
	struct dfs_buf body;
	int rc = 0;

	dfs_buf_init(&body, 64u << 20);
	pct(s->prefix, epre, sizeof(epre));
	do {
		struct s3_req q = { .method = "GET", .body = &body };
		const char *p, *end, *v;
		size_t vl;

		/* parameters in name order: the canonical query SigV4 signs */
		pct(token, etok, sizeof(etok));
		snprintf(query, sizeof(query), "?%s%s%slist-type=2&prefix=%s",
			 token[0] ? "continuation-token=" : "", etok, token[0] ? "&" : "", epre);
		rc = url_of(s, "", query, q.url, sizeof(q.url));
		if (rc == 0)
			rc = unexpected(&q, s3_do(s, &q));
		if (rc == 0)
			rc = dfs_buf_append(&body, "", 1);
		if (rc < 0)
			break;
		p = (const char *)body.data;
		end = p + body.len;
		while (rc == 0 && (p = strstr(p, "<Contents>"))) {
			const char *ce = strstr(p, "</Contents>");
			size_t pl = strlen(s->prefix);
			char name[64];
			uint64_t size = 0;
			uint32_t id;

			if (!ce)
				break;
			v = xml_val(p, ce, "Key", &vl);
			if (v && vl == pl + 13 && strncmp(v, s->prefix, pl) == 0) {
				memcpy(name, v + pl, 13);
				name[13] = '\0';
				v = xml_val(p, ce, "Size", &vl);
				if (v)
					size = strtoull(v, NULL, 10);
				if (pack_name_parse(name, &id))
					rc = fn(arg, id, size);
			}
			p = ce;
		}
		token[0] = '\0';
		v = xml_val((const char *)body.data, end, "IsTruncated", &vl);
		if (rc == 0 && v && vl == 4 && strncmp(v, "true", 4) == 0) {
			v = xml_val((const char *)body.data, end, "NextContinuationToken", &vl);
			if (!v || vl >= sizeof(token)) {
				dfs_err("S3 list of %s: truncated without a usable token", s->bucket);
				rc = -EIO;
				break;
			}
			memcpy(token, v, vl);
			token[vl] = '\0';
		}
	} while (rc == 0 && token[0]);
	dfs_buf_release(&body);
	return rc;
}

int pback_s3_make_bucket(struct pback *b)
{
	struct pback_s3 *s = s3_of(b);
	struct s3_req q = { .method = "PUT" };
	int rc = url_of(s, "", "", q.url, sizeof(q.url));

	if (rc == 0)
		rc = s3_do(s, &q);
	if (rc == 409)	/* BucketAlreadyOwnedByYou (or taken by another: the puts say) */
		return 0;
	return unexpected(&q, rc);
}

static void s3_free(struct pback *b)
{
	struct pback_s3 *s = s3_of(b);

	while (s->pool) {
		struct s3_conn *c = s->pool;

		s->pool = c->next;
		curl_easy_cleanup(c->h);
		free(c);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->scheme);
	free(s->hostport);
	free(s->bucket);
	free(s->prefix);
	if (s->userpwd) {
		explicit_bzero(s->userpwd, strlen(s->userpwd));
		free(s->userpwd);
	}
	free(s);
}

static const struct pback_ops s3_ops = {
	.name = "s3",
	.put = s3_put,
	.get = s3_get,
	.list = s3_list,
	.del = s3_del,
	.stat = s3_stat,
	.free = s3_free,
};

/* ---- configuration ---------------------------------------------------------------- */

int pback_s3_url_check(const char *url)
{
	const char *b, *slash;
	size_t bl;

	if (strncmp(url, "s3://", 5) != 0)
		return -EINVAL;
	b = url + 5;
	slash = strchr(b, '/');
	bl = slash ? (size_t)(slash - b) : strlen(b);
	if (bl < 3 || bl > 63)
		return -EINVAL;
	for (size_t i = 0; i < bl; i++)
		if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) ||
		      b[i] == '.' || b[i] == '-'))
			return -EINVAL;
	for (const char *p = slash; p && *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("._/-", *p)))
			return -EINVAL;
	return 0;
}

/* "key = value" or "KEY=VALUE" from the credentials file @path into @ak/@sk. */
static int read_credentials(const char *path, char *ak, char *sk, size_t cap)
{
	char line[512];
	struct stat sb;
	FILE *f = fopen(path, "re");

	if (!f) {
		dfs_err("S3 credentials %s: %s", path, strerror(errno));
		return -EACCES;
	}
	if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077))
		dfs_warn("S3 credentials %s: readable by others (chmod 600 it)", path);
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v = strchr(line, '='), *e;

		if (!v || line[0] == '#' || line[0] == '[')
			continue;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\r\n")] = '\0';
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		for (e = k + strlen(k); e > k && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (!strcasecmp(k, "aws_access_key_id"))
			snprintf(ak, cap, "%s", v);
		else if (!strcasecmp(k, "aws_secret_access_key"))
			snprintf(sk, cap, "%s", v);
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return 0;
}

static unsigned env_uint(const char *name, unsigned def, unsigned max)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return def;
	n = strtoul(v, &end, 10);
	return *end || n > max ? def : (unsigned)n;
}

int pback_s3_new(const struct pback_s3_conf *c, struct pback **out)
{
	struct pback_s3 *s;
	const char *bucket, *slash, *host, *region;
	char ak[256] = "", sk[256] = "";
	int rc;

	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc < 0)
		return curl_init_rc;
	if (pback_s3_url_check(c->url) < 0) {
		dfs_err("%s: not an s3://BUCKET[/PREFIX] address", c->url);
		return -EINVAL;
	}
	if (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0) {
		dfs_err("%s: the S3 endpoint is http://HOST[:PORT] or https://HOST[:PORT]",
			c->endpoint);
		return -EINVAL;
	}
	if (getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
		snprintf(ak, sizeof(ak), "%s", getenv("AWS_ACCESS_KEY_ID"));
		snprintf(sk, sizeof(sk), "%s", getenv("AWS_SECRET_ACCESS_KEY"));
	} else if (c->credentials) {
		rc = read_credentials(c->credentials, ak, sk, sizeof(ak));
		if (rc < 0)
			return rc;
	}
	if (!ak[0] || !sk[0] || strchr(ak, ':')) {
		dfs_err("S3 %s: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
			"or name a credentials file at creation)", c->url);
		return -EACCES;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &s3_ops;
	s->base.remote = true;
	pthread_mutex_init(&s->lock, NULL);
	host = strstr(c->endpoint, "://") + 3;
	s->scheme = strndup(c->endpoint, (size_t)(host - 3 - c->endpoint));
	s->hostport = strndup(host, strcspn(host, "/"));
	bucket = c->url + 5;
	slash = strchr(bucket, '/');
	s->bucket = slash ? strndup(bucket, (size_t)(slash - bucket)) : strdup(bucket);
	s->prefix = malloc(strlen(c->url) + 2);
	if (s->prefix) {
		const char *p = slash ? slash + 1 : "";
		size_t pl = strlen(p);

		while (pl && p[pl - 1] == '/')
			pl--;
		snprintf(s->prefix, strlen(c->url) + 2, "%.*s%s", (int)pl, p, pl ? "/" : "");
	}
	s->userpwd = malloc(strlen(ak) + strlen(sk) + 2);
	if (s->userpwd)
		snprintf(s->userpwd, strlen(ak) + strlen(sk) + 2, "%s:%s", ak, sk);
	explicit_bzero(sk, sizeof(sk));
	s->vhost = c->vhost;
	region = c->region ? c->region
			   : getenv("AWS_REGION") ? getenv("AWS_REGION")
			   : getenv("AWS_DEFAULT_REGION") ? getenv("AWS_DEFAULT_REGION")
			   : "us-east-1";
	snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", region);
	s->retries = env_uint("DFS_S3_RETRIES", 4, 100);
	s->timeout = (long)env_uint("DFS_S3_TIMEOUT", 30, 86400);
	if (!s->scheme || !s->hostport || !s->bucket || !s->prefix || !s->userpwd ||
	    !s->hostport[0]) {
		rc = s->hostport && !s->hostport[0] ? -EINVAL : -ENOMEM;
		s3_free(&s->base);
		return rc;
	}
	*out = &s->base;
	return 0;
}
