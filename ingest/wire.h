/*
 * wire.h - the remote source protocol (defrag-ingest --serve over ssh): its frames, their
 * encoders, and the decoder that turns bytes from the other side into checked structs.
 *
 * A frame is a header of 5 bytes, [type u8][payload length u32 big-endian], then the
 * payload; inside a payload integers are buf.h's (u32/u64 big-endian, varints) and byte
 * strings are a varint length then the bytes. The first frame each way is HELLO (local)
 * and WELCOME (remote), each with WIRE_MAGIC and WIRE_VERSION: a side that does not speak
 * the other's version answers ERROR and stops. The whole conversation is described in
 * docs/ARCHITECTURE.md ("Remote sources").
 *
 * The decoders are the only code that reads the other side's bytes: every length is
 * checked against the payload and against the limits below, every count against what
 * the payload can hold; anything else is -EBADMSG (malformed) or -EPROTONOSUPPORT
 * (another version). Nothing decoded points outside the payload it was decoded from.
 *
 * Threads: no state; a struct wire_conn belongs to one reader and one writer thread
 * (writes are serialized by its lock). Errors: 0 or -errno.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_INGEST_WIRE_H
#define DFS_INGEST_WIRE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/buf.h"
#include "store/cdc.h"
#include "store/fp.h"
#include "store/store.h"

#define WIRE_MAGIC "defragfs-remote"
/* 2: FETCH and MISS (the repair of damaged chunks from a remote drive, WIRE_H_FETCH)
 * 3: HELLO carries the store's tar_floor (the cuts around tar members, ingest/tarcut.h) */
#define WIRE_VERSION 3u
#define WIRE_HDR 5
#define WIRE_HELLO_MAX (1u << 20)	/* before the handshake: HELLO, WELCOME, ERROR */
#define WIRE_NAMES_MAX (1ull << 32)	/* a directory listing (SRC_LIST_MAX) */
/* An ENTRY frame after the handshake: a directory's listing and xattrs in one frame. A
 * listing larger than WIRE_LIST_MAX (about 2M names) is reported as not listed (a FAIL
 * frame) by the remote side instead of sent; the local side refuses longer frames. */
#define WIRE_ENTRY_MAX (64u << 20)
#define WIRE_LIST_MAX (WIRE_ENTRY_MAX - (8u << 20))
#define WIRE_AHEAD 1024u		/* entries the remote sends past its oldest
					 * unfinished file (ingest_int.h's IN_RING is more) */

enum wire_type {
	WIRE_HELLO = 1,		/* local -> remote: version, path, parameters, excludes */
	WIRE_WELCOME = 2,	/* remote -> local: version, the root's identity and stat */
	WIRE_ERROR = 3,		/* either way: a message, then the sender stops */
	WIRE_FS = 4,		/* remote: a filesystem met below the root (dev, identity) */
	WIRE_ENTRY = 5,		/* remote: one entry of the walk, in walk order */
	WIRE_FAIL = 6,		/* remote: an entry that could not be walked (path, why) */
	WIRE_SKIPPED = 7,	/* remote: a mount point skipped by --one-file-system */
	WIRE_DONE = 8,		/* remote: the walk is over */
	WIRE_ANSWER = 9,	/* local: for the next asked files: read it? MIME type? */
	WIRE_RESET = 10,	/* remote: the file being sent starts again (it changed) */
	WIRE_HOLE = 11,		/* remote: a hole of the file being sent */
	WIRE_INLINE = 12,	/* remote: the whole (small) file's bytes, compressed */
	WIRE_CHUNKS = 13,	/* remote: the next chunks of the file (length, id) */
	WIRE_NEED = 14,		/* local: which of those chunks to send */
	WIRE_DATA = 15,		/* remote: one needed chunk, compressed */
	WIRE_SIZE = 16,		/* remote (dry run): one needed chunk's compressed size */
	WIRE_FEND = 17,		/* remote: the end of the file (result, final stat, xattrs) */
	WIRE_FETCH = 18,	/* local (WIRE_H_FETCH): a chunk's bytes, from a file's extent */
	WIRE_MISS = 19,		/* remote: a FETCH it cannot serve (an errno; ESTALE: the bytes
				 * there no longer hash to the id), instead of DATA */
	WIRE_TYPE_MAX = 19,
};

/* ANSWER flags, one byte per asked file */
#define WIRE_A_READ 1		/* read and send the file's content */
#define WIRE_A_MIME 2		/* its MIME type from the first bytes */
#define WIRE_A_EXACT 4		/* the exact one (rules name a non-binary type) */
#define WIRE_A_HASH 8		/* a small file too as CHUNKS (its SHA-256), never INLINE
				 * (the gate: no file data crosses) */
/* NEED flags, one byte per chunk of a CHUNKS frame */
#define WIRE_N_DATA 1		/* send the bytes (DATA) */
#define WIRE_N_SIZE 2		/* send the compressed size only (SIZE; a dry run) */
/* ENTRY flags */
#define WIRE_E_ASK 1		/* a regular file: the remote waits for its answer */
#define WIRE_E_LISTED 2		/* a directory listed whole */
/* HELLO flags (others are refused) */
#define WIRE_H_ONE_FS 1
#define WIRE_H_FETCH 2		/* no walk: the remote answers FETCH requests until DONE */
#define WIRE_H_ALL (WIRE_H_ONE_FS | WIRE_H_FETCH)

/* Why an entry failed: the local side's texts, by number (never text from the remote). */
enum wire_why {
	WHY_NONE = 0, WHY_VANISHED, WHY_REPLACED, WHY_CHANGED, WHY_XATTRS, WHY_OPENDIR,
	WHY_READLINK, WHY_LINKCHANGED, WHY_RETRIED, WHY_MAX
};
const char *wire_why_text(unsigned why);	/* NULL for WHY_NONE */

struct wire_hello {
	uint32_t version;
	const uint8_t *pkg; size_t pkg_len;		/* the package's version */
	const uint8_t *path; size_t path_len;
	struct cdc_params cdc;
	uint32_t zstd_level, inline_max, flags;
	struct dfs_buf excl;	/* the excludes, NUL-terminated one after another (decode) */
	size_t nexcl;
};

struct wire_welcome {
	uint32_t version;
	const uint8_t *pkg; size_t pkg_len;
	const uint8_t *fsid; size_t fsid_len;	/* src_fsid() of the root */
	uint64_t fs_id;				/* ing_fs_id() of the root */
	struct stat sb;
};

struct wire_entry {
	uint32_t depth;		/* 0: the root */
	uint8_t flags;
	uint32_t err;		/* errno, 0: none */
	uint8_t why;
	const uint8_t *name; size_t name_len;
	struct stat sb;
	const uint8_t *target; size_t target_len;	/* symlinks */
	struct store_xattr *xattrs;	/* decode: owned (src_xattrs_free), sorted */
	size_t nxattrs;
	const uint8_t *names; size_t names_len;	/* directories: sorted NUL-ended names */
};

struct wire_fend {
	uint32_t err;
	uint8_t why;
	uint64_t bytes_read;
	const uint8_t *mime; size_t mime_len;
	struct stat sb;
	struct store_xattr *xattrs;	/* owned */
	size_t nxattrs;
};

struct wire_chunk {
	uint32_t len;
	struct fp256 id;
};

/* FETCH: the @len bytes at @off of the regular file @path (relative to the root named in
 * HELLO, '/'-separated, no empty, "." or ".." component), whose SHA-256 is @id. */
struct wire_fetch {
	const uint8_t *path; size_t path_len;
	uint64_t off;
	uint32_t len;
	struct fp256 id;
};

/* ---- decoding: @p, @n a frame's payload (the struct may point into it) ---- */
int wire_dec_hello(const uint8_t *p, size_t n, struct wire_hello *h);	/* release h->excl */
int wire_dec_welcome(const uint8_t *p, size_t n, struct wire_welcome *w);
int wire_dec_entry(const uint8_t *p, size_t n, struct wire_entry *e);
int wire_dec_fend(const uint8_t *p, size_t n, struct wire_fend *f);
/* CHUNKS: *@out (malloc'd) of *@count chunks, each 1..@max_len bytes */
int wire_dec_chunks(const uint8_t *p, size_t n, uint32_t max_len, struct wire_chunk **out,
		    size_t *count);
/* ANSWER, NEED: the flag bytes (pointing into @p) */
int wire_dec_flags(const uint8_t *p, size_t n, const uint8_t **flags, size_t *count);
/* DATA: codec id, raw length, stored bytes; SIZE: raw and compressed lengths */
int wire_dec_size(const uint8_t *p, size_t n, uint32_t *raw, uint32_t *stored);
/* INLINE: a small file's bytes as DATA (compressed at the store's level), or empty */
int wire_dec_inline(const uint8_t *p, size_t n, uint8_t *codec, uint32_t *raw,
		    const uint8_t **bytes, size_t *blen);
int wire_dec_data(const uint8_t *p, size_t n, uint8_t *codec, uint32_t *raw,
		  const uint8_t **bytes, size_t *blen);
int wire_dec_u64(const uint8_t *p, size_t n, uint64_t *v);	/* HOLE */
int wire_dec_fetch(const uint8_t *p, size_t n, uint32_t max_len, struct wire_fetch *f);
int wire_dec_miss(const uint8_t *p, size_t n, uint32_t *err);	/* an errno, not 0 */
int wire_dec_fs(const uint8_t *p, size_t n, uint64_t *dev, uint64_t *id);
/* ERROR, FAIL (path then why), SKIPPED, INLINE: a byte string; text is made printable */
int wire_dec_text(const uint8_t *p, size_t n, char *out, size_t outlen);
int wire_dec_fail(const uint8_t *p, size_t n, const uint8_t **path, size_t *plen, char *why,
		  size_t whylen);
int wire_dec_bytes(const uint8_t *p, size_t n, const uint8_t **b, size_t *blen);

/* ---- encoding into @b (a frame: header then payload) ---- */
void wire_begin(struct dfs_buf *b, enum wire_type t);	/* appends a header to fill */
int wire_end(struct dfs_buf *b, size_t start);		/* fills it; b->err */
void wire_put_stat(struct dfs_buf *b, const struct stat *sb);
void wire_put_xattrs(struct dfs_buf *b, const struct store_xattr *x, size_t n);

/* ---- a connection: buffered frames on two fds, bytes counted ---- */
struct wire_conn {
	int in, out;
	uint8_t *rbuf;
	size_t rcap, rpos, rlen;
	uint8_t *frame;		/* the last frame's payload (valid until the next read) */
	size_t fcap;
	size_t max_payload;	/* frames longer are -EBADMSG */
	pthread_mutex_t wlock;
	struct dfs_buf wbuf;	/* written by wire_send / wire_flush */
	atomic_uint_fast64_t bytes_in, bytes_out;
};

int wire_conn_init(struct wire_conn *c, int in, int out);
void wire_conn_release(struct wire_conn *c);
/*
 * Reads the next frame: its type in *@type, payload in *@p (c->frame), *@n. The write
 * buffer is flushed before a read would block. 0, -EPIPE (end of stream), -EBADMSG (a
 * type or length out of bounds), -errno.
 */
int wire_read(struct wire_conn *c, uint8_t *type, const uint8_t **p, size_t *n);
/* Appends the frame(s) in @b to the connection's buffer (flushed past 64 KiB, or with
 * @flush). Thread-safe. 0 or -errno. */
int wire_send(struct wire_conn *c, const struct dfs_buf *b, bool flush);
int wire_flush(struct wire_conn *c);

/*
 * remote.c: a link to `defrag-ingest --serve` on another machine: RSH (default "ssh",
 * split at blanks) [-p PORT] -- [USER@]HOST 'REMOTE_CMD --serve', then HELLO (@a) and
 * WELCOME (the root's stat and identity). 0, or -errno with a message in @err (also
 * what the remote side said in its ERROR); close it in any case.
 */
struct wire_link {
	pid_t pid;
	struct wire_conn c;
	bool conn_ok;
};

struct wire_link_opts {
	const char *rsh, *remote_cmd;	/* NULL: ssh, defrag-ingest */
	const struct store_create_opts *params;
	bool one_fs;
	bool fetch;			/* WIRE_H_FETCH: a repair, no walk */
	const char *const *excludes;
	size_t nexcludes;
};

int wire_link_open(struct wire_link *l, const char *spec, const struct wire_link_opts *a,
		   struct stat *rootsb, char *fsid, size_t fsidlen, uint64_t *root_fs_id,
		   char *err, size_t errlen);
/* Closes the connection and waits for ssh (killed first when @kill_it). */
void wire_link_close(struct wire_link *l, bool kill_it);
/* A failure of the stream, in words. */
const char *wire_stream_error(int rc);

/*
 * Splits @p (@n bytes) into frames and decodes each with the decoder of its type: the
 * fuzz target's entry point (tests/fuzz). Returns the frames decoded, or -errno at the
 * first bad one.
 */
int wire_decode_all(const uint8_t *p, size_t n);

#endif
