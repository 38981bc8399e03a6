/*
 * store_recover.c - rebuild the index from config + packs (defrag-recover).
 *
 * Every committed change is in the packs: chunk records carry the data, META records the
 * op log of each commit (enc.h). Recovery indexes chunk records (first valid copy wins),
 * then replays META records by commit sequence, so the rebuilt index equals the lost
 * one for everything whose records survive. A damaged record is skipped by searching
 * for the next record magic whose header and checksum are valid.
 *
 * Threads: single-threaded; holds the writer lock through store_open(STORE_WRITER).
 *
 * SPDX-License-Identifier: MIT
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "enc.h"
#include "log.h"
#include "sio.h"
#include "store_int.h"

struct meta_ref {
	uint64_t seq;
	uint32_t pack;
	uint64_t off;
};

struct rec_state {
	struct store *st;
	struct idx_batch *b;
	struct store_recover_report *rep;
	struct meta_ref *metas;
	size_t nmeta, capmeta;
	uint64_t max_ino;
};

/* Commit order; for one sequence number, the later pack last (see the replay loop). */
static int cmp_meta(const void *a, const void *b)
{
	const struct meta_ref *x = a, *y = b;

	if (x->seq != y->seq)
		return (x->seq > y->seq) - (x->seq < y->seq);
	if (x->pack != y->pack)
		return (x->pack > y->pack) - (x->pack < y->pack);
	return (x->off > y->off) - (x->off < y->off);
}

static int flush_batch(struct rec_state *rs, bool force)
{
	if (!force && idx_batch_bytes(rs->b) < (32u << 20))
		return 0;
	return idx_batch_commit(rs->b, force);
}

static int index_chunk(struct rec_state *rs, uint32_t pack, uint64_t off, const struct pack_rec *r)
{
	struct store_chunk_loc loc = { .pack = pack, .off = off, .raw_len = r->raw_len,
				       .stored_len = r->stored_len, .codec = r->codec };
	struct dfs_buf v;
	int rc;

	dfs_buf_init(&v, 64);
	if (idx_batch_get(rs->b, IDX_CHUNKS, r->id.b, FP_LEN, &v) == 0) {
		dfs_buf_release(&v);
		return 0;	/* a second copy (repair, resume): the first stays */
	}
	dfs_buf_clear(&v);
	rc = enc_chunk_loc(&loc, &v);
	if (rc == 0) {
		idx_batch_put(rs->b, IDX_CHUNKS, r->id.b, FP_LEN, v.data, v.len);
		rs->st->stat_chunks++;
		rs->st->stat_raw += r->raw_len;
		rs->st->stat_stored += r->stored_len;
		rs->rep->chunks++;
	}
	dfs_buf_release(&v);
	return rc;
}

/* Scans one pack in memory, resynchronising after damage. */
static int scan_pack(struct rec_state *rs, uint32_t id, const char *path)
{
	struct dfs_buf cfg, data;
	uint64_t hlen, off, end;
	struct stat sb;
	uint32_t hid;
	int fd, rc;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		dfs_err("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		rs->rep->bad_packs++;
		return 0;
	}
	dfs_buf_init(&cfg, PACK_CONFIG_MAX);
	dfs_buf_init(&data, (size_t)sb.st_size + 1);
	rc = pack_header_read(fd, &hid, &hlen, &cfg);
	if (rc < 0 || hid != id) {
		dfs_err("%s: bad pack header; the pack is skipped", path);
		rs->rep->bad_packs++;
		rc = 0;
		goto out;
	}
	rc = dfs_buf_reserve(&data, (size_t)sb.st_size);
	if (rc < 0)
		goto out;
	n = sio_pread(fd, data.data, (size_t)sb.st_size, 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	data.len = (size_t)n;
	off = hlen;
	end = hlen;
	while (off + PACK_REC_HDR <= data.len) {
		struct pack_rec r;
		const uint8_t *p = data.data + off;

		if (pack_rec_decode(p, &r) == 0 && off + PACK_REC_HDR + r.stored_len <= data.len &&
		    pack_rec_check(p, p + PACK_REC_HDR, r.stored_len)) {
			if (r.type == PACK_REC_CHUNK) {
				rc = index_chunk(rs, id, off, &r);
			} else {
				struct meta_ref *m;
				uint64_t seq = pack_meta_seq(&r);

				if (rs->nmeta == rs->capmeta) {
					size_t cap = rs->capmeta ? rs->capmeta * 2 : 256;

					m = realloc(rs->metas, cap * sizeof(*m));
					if (!m) {
						rc = -ENOMEM;
						goto out;
					}
					rs->metas = m;
					rs->capmeta = cap;
				}
				rs->metas[rs->nmeta++] = (struct meta_ref){ seq, id, off };
			}
			if (rc < 0)
				goto out;
			off += PACK_REC_HDR + r.stored_len;
			end = off;
			continue;
		}
		/* damage: find the next valid record */
		{
			uint64_t bad = off++;

			while (off + PACK_REC_HDR <= data.len) {
				const uint8_t *q = data.data + off;

				if (q[0] == 'D' && q[1] == 'F' && q[2] == 'S' && q[3] == 'R' &&
				    pack_rec_decode(q, &r) == 0 &&
				    off + PACK_REC_HDR + r.stored_len <= data.len &&
				    pack_rec_check(q, q + PACK_REC_HDR, r.stored_len))
					break;
				off++;
			}
			if (off + PACK_REC_HDR > data.len) {
				rs->rep->torn_tails++;
				dfs_warn("pack %08" PRIx32 ": %" PRIu64 " bytes at the end are not a "
					 "complete record (torn write or damage)", id,
					 (uint64_t)data.len - bad);
				break;
			}
			rs->rep->bad_regions++;
			rs->rep->bad_bytes += off - bad;
			dfs_err("pack %08" PRIx32 " @%" PRIu64 ": %" PRIu64 " damaged bytes skipped",
				id, bad, off - bad);
		}
	}
	{
		uint8_t key[4];
		struct dfs_buf v;

		dfs_buf_init(&v, 32);
		dfs_put_be32(key, id);
		enc_pack_val(end, true, &v);
		idx_batch_put(rs->b, IDX_PACKS, key, sizeof(key), v.data, v.len);
		dfs_buf_release(&v);
	}
	rs->rep->packs++;
	rc = flush_batch(rs, false);
out:
	close(fd);
	dfs_buf_release(&cfg);
	dfs_buf_release(&data);
	return rc;
}

static int replay_op(void *arg, uint8_t cf, uint8_t op, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct rec_state *rs = arg;

	if (cf >= IDX_NCF || cf == IDX_CHUNKS || cf == IDX_PACKS)
		return -EBADMSG;
	if (op == ENC_OP_PUT)
		idx_batch_put(rs->b, (enum idx_cf)cf, k, klen, v, vlen);
	else
		idx_batch_del(rs->b, (enum idx_cf)cf, k, klen);
	if (cf == IDX_INODES && klen == 8 && op == ENC_OP_PUT) {
		uint64_t ino = dfs_get_be64(k);

		if (ino >= rs->max_ino)
			rs->max_ino = ino + 1;
	}
	return 0;
}

static int replay_meta(struct rec_state *rs, const struct meta_ref *m, struct codec *codec)
{
	struct dfs_buf payload, raw;
	struct pack_rec r;
	uint64_t seq;
	int fd, rc;

	rc = store_pack_fd_get(rs->st, m->pack, &fd);
	if (rc < 0)
		return rc;
	dfs_buf_init(&payload, PACK_REC_MAX);
	dfs_buf_init(&raw, PACK_REC_MAX);
	rc = pack_read_record(fd, m->pack, m->off, &r, &payload);
	store_pack_fd_put(rs->st, m->pack);
	if (rc == 0)
		rc = dfs_buf_reserve(&raw, r.raw_len);
	if (rc == 0)
		rc = codec_decompress(codec, (enum codec_id)r.codec, payload.data, payload.len,
				      raw.data, r.raw_len);
	if (rc == 0)
		rc = dec_oplog(raw.data, r.raw_len, &seq, replay_op, rs);
	if (rc < 0)
		dfs_err("pack %08" PRIx32 " @%" PRIu64 ": commit %" PRIu64 " cannot be replayed: %s",
			m->pack, m->off, m->seq, dfs_strerror(rc));
	else
		rs->rep->commits++;
	dfs_buf_release(&payload);
	dfs_buf_release(&raw);
	return rc == -ENOMEM ? rc : 0;
}

int store_recover(const char *dir, struct store_recover_report *rep)
{
	struct store_open_opts so = { .mode = STORE_WRITER, .rebuilding = true };
	struct rec_state rs = { 0 };
	struct codec *codec = NULL;
	char path[PATH_MAX], moved[PATH_MAX];
	struct stat sb;
	uint32_t max_pack = 0;
	int rc, lockfd;

	memset(rep, 0, sizeof(*rep));
	snprintf(path, sizeof(path), "%s/config", dir);
	if (stat(path, &sb) < 0) {
		dfs_err("%s: no defragfs store here (no config file)", dir);
		return -ENOENT;
	}
	/* Hold the writer lock while the index is moved aside. */
	snprintf(path, sizeof(path), "%s/lock", dir);
	lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0)
		return -errno;
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		close(lockfd);
		dfs_err("%s: the store is in use by another writer", dir);
		return -EWOULDBLOCK;
	}
	/* released just before store_open() takes it again on its own descriptor */
	snprintf(path, sizeof(path), "%s/index", dir);
	if (stat(path, &sb) == 0) {
		snprintf(moved, sizeof(moved), "%s/index.broken-%lld", dir, (long long)time(NULL));
		rc = sio_rename(path, moved);
		if (rc < 0) {
			close(lockfd);
			dfs_err("%s: cannot move the old index aside: %s", path, dfs_strerror(rc));
			return rc;
		}
		snprintf(rep->moved_to, sizeof(rep->moved_to), "%s", moved);
	}
	flock(lockfd, LOCK_UN);
	close(lockfd);
	rc = store_open(dir, &so, &rs.st);
	if (rc < 0)
		return rc;
	rs.rep = rep;
	rs.max_ino = STORE_FIRST_INO;
	rs.st->stat_chunks = rs.st->stat_raw = rs.st->stat_stored = 0;
	rc = idx_batch_new(rs.st->ix, &rs.b);
	if (rc == 0)
		rc = codec_new(1, &codec);
	for (unsigned nn = 0; nn < 256 && rc == 0; nn++) {
		struct dirent **ents = NULL;
		int n;

		snprintf(path, sizeof(path), "%s/packs/%02x", dir, nn);
		n = scandir(path, &ents, NULL, alphasort);
		for (int i = 0; i < n; i++) {
			char *end;
			unsigned long id = strtoul(ents[i]->d_name, &end, 16);

			if (rc == 0 && end == ents[i]->d_name + 8 && !strcmp(end, ".pack")) {
				char pp[PATH_MAX + 300];

				snprintf(pp, sizeof(pp), "%s/%s", path, ents[i]->d_name);
				rc = scan_pack(&rs, (uint32_t)id, pp);
				if (id > max_pack)
					max_pack = (uint32_t)id;
			}
			free(ents[i]);
		}
		free(ents);
	}
	if (rc == 0)
		rc = flush_batch(&rs, true);
	if (rs.nmeta > 1)
		qsort(rs.metas, rs.nmeta, sizeof(*rs.metas), cmp_meta);
	for (size_t i = 0; i < rs.nmeta && rc == 0; i++) {
		/*
		 * Two commits with one number: a writer crashed after syncing a new pack
		 * with its META record but before the index named it, and the next writer
		 * (whose packs come later) reused the number. History went on without the
		 * first: replay the one in the later pack only.
		 */
		if (i + 1 < rs.nmeta && rs.metas[i + 1].seq == rs.metas[i].seq)
			continue;
		rc = replay_meta(&rs, &rs.metas[i], codec);
		if (rc == 0)
			rc = flush_batch(&rs, false);
	}
	if (rc == 0) {
		struct dfs_buf v;
		const char *keys[] = { "commit_seq", "next_pack", "stat_chunks", "stat_raw",
				       "stat_stored", "next_ino" };
		uint64_t vals[6];

		vals[0] = rs.nmeta ? rs.metas[rs.nmeta - 1].seq : 0;
		vals[1] = (uint64_t)max_pack + 1;
		vals[2] = rs.st->stat_chunks;
		vals[3] = rs.st->stat_raw;
		vals[4] = rs.st->stat_stored;
		vals[5] = rs.max_ino;
		dfs_buf_init(&v, 32);
		for (int i = 0; i < 6; i++) {
			uint64_t cur = 0;

			if (i == 5 && idx_batch_get(rs.b, IDX_META, "next_ino", 8, &v) == 0 &&
			    dec_u64_val(v.data, v.len, &cur) == 0 && cur > vals[5])
				vals[5] = cur;
			dfs_buf_clear(&v);
			enc_u64_val(vals[i], &v);
			idx_batch_put(rs.b, IDX_META, keys[i], strlen(keys[i]), v.data, v.len);
		}
		dfs_buf_release(&v);
		rc = flush_batch(&rs, true);
	}
	free(rs.metas);
	codec_free(codec);
	idx_batch_free(rs.b);
	store_close(rs.st);
	return rc;
}
