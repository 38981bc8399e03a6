/*
 * lib_cli.c - shared command-line helpers of the defrag-* tools.
 *
 * SPDX-License-Identifier: MIT
 */
#include "lib_cli.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "organize/organize.h"
#include "store/log.h"
#include "store/pback.h"
#include "store/store.h"

const char *cli_store_dir(const char *opt)
{
	const char *env = getenv("DEFRAGFS_STORE");

	if (opt && *opt)
		return opt;
	if (env && *env)
		return env;
	return STORE_DEFAULT_DIR;
}

void cli_usage_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(CLI_EXIT_USAGE);
}

void cli_version(const char *prog)
{
	printf("%s (defragfs) %s\n", prog, DFS_VERSION);
	exit(CLI_EXIT_OK);
}

void cli_store_failed(const char *prog, const char *dir, int rc, unsigned long errs_before)
{
	if (dfs_log_errors() == errs_before)
		fprintf(stderr, "%s: %s: cannot use the store: %s\n", prog, dir, dfs_strerror(rc));
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm': case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g': case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 't': case 'T':
		mul = 1ull << 40;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

void cli_print_path(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
			fprintf(f, "\\x%02x", p[i]);
		else
			fputc(p[i], f);
	}
}

bool cli_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (p[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void cli_json_set_path(json_t *obj, const char *key_utf8, const uint8_t *p, size_t n)
{
	char key[64];
	char *out;
	size_t o = 0;

	if (cli_utf8_valid(p, n)) {
		json_object_set_new(obj, key_utf8, json_stringn((const char *)p, n));
		return;
	}
	out = malloc(4 * (n / 3 + 1) + 1);
	if (!out)
		return;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	snprintf(key, sizeof(key), "%s_b64", key_utf8);
	json_object_set_new(obj, key, json_string(out));
	free(out);
}

json_t *cli_categories_json(const struct cls_tally *cats)
{
	json_t *a = json_array();

	for (size_t i = 0; i < cats->n; i++) {
		const struct cls_cat *c = &cats->v[i];
		json_t *o = json_object();

		json_object_set_new(o, "category", json_string(c->name));
		json_object_set_new(o, "files", json_integer((json_int_t)c->files));
		json_object_set_new(o, "bytes", json_integer((json_int_t)c->bytes));
		json_array_append_new(a, o);
	}
	return a;
}

#define CLI_ALIGN_LINES 20

void cli_print_alignments(FILE *f, const struct organize_stats *os)
{
	for (size_t i = 0; i < os->naligned; i++) {
		const struct organize_alignment *a = &os->aligned[i];

		if (i == CLI_ALIGN_LINES) {
			fprintf(f, "  aligned: ... and %zu more (--json lists them all)\n",
				os->naligned - i);
			break;
		}
		fprintf(f, "  aligned: %s:/", a->source);
		cli_print_path(f, a->path, a->path_len);
		fprintf(f, " is a copy of %s:/", a->target_source);
		cli_print_path(f, a->target, a->target_len);
		fprintf(f, " (%.0f%% identical: %" PRIu64 " files identical, %" PRIu64
			" changed, %" PRIu64 " only here, %" PRIu64 " only there)\n",
			a->similarity * 100.0, a->identical, a->changed, a->only_here,
			a->only_there);
	}
}

void cli_print_links(FILE *f, const struct organize_stats *os)
{
	if (!os->links_relative)
		return;
	fprintf(f, "  symlinks: %" PRIu64 " relative, %" PRIu64 " no longer lead to their "
		"target in the organized tree (it was placed elsewhere; /.sources keeps them "
		"as they were), %" PRIu64 " already dangling on the drive\n", os->links_relative,
		os->links_elsewhere, os->links_dangling);
}

static double share(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

void cli_print_figures(FILE *f, const struct organize_stats *os)
{
	if (!os->dirs && !os->files)
		return;
	fprintf(f, "  folders: %" PRIu64 " of %" PRIu64 " source directories with files are "
		"split across categories (%.1f%%); %" PRIu64 " of %" PRIu64 " files are in "
		"unsorted/ (%.1f%%)\n", os->dirs_split, os->dirs, share(os->dirs_split, os->dirs),
		os->files_unsorted, os->files, share(os->files_unsorted, os->files));
}

json_t *cli_figures_json(const struct organize_stats *os)
{
	json_t *o = json_object();

	json_object_set_new(o, "dirs", json_integer((json_int_t)os->dirs));
	json_object_set_new(o, "dirs_split", json_integer((json_int_t)os->dirs_split));
	json_object_set_new(o, "dirs_split_share", json_real(share(os->dirs_split, os->dirs)));
	json_object_set_new(o, "files", json_integer((json_int_t)os->files));
	json_object_set_new(o, "files_unsorted", json_integer((json_int_t)os->files_unsorted));
	json_object_set_new(o, "files_unsorted_share",
			    json_real(share(os->files_unsorted, os->files)));
	return o;
}

json_t *cli_links_json(const struct organize_stats *os)
{
	json_t *o = json_object();

	json_object_set_new(o, "relative", json_integer((json_int_t)os->links_relative));
	json_object_set_new(o, "elsewhere", json_integer((json_int_t)os->links_elsewhere));
	json_object_set_new(o, "dangling_on_drive", json_integer((json_int_t)os->links_dangling));
	return o;
}

json_t *cli_alignments_json(const struct organize_stats *os)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < os->naligned; i++) {
		const struct organize_alignment *a = &os->aligned[i];
		json_t *o = json_object(), *t = json_object();

		json_object_set_new(o, "source", json_string(a->source));
		cli_json_set_path(o, "path", a->path, a->path_len);
		json_object_set_new(t, "source", json_string(a->target_source));
		cli_json_set_path(t, "path", a->target, a->target_len);
		json_object_set_new(o, "copy_of", t);
		json_object_set_new(o, "similarity", json_real(a->similarity));
		json_object_set_new(o, "identical", json_integer((json_int_t)a->identical));
		json_object_set_new(o, "changed", json_integer((json_int_t)a->changed));
		json_object_set_new(o, "only_here", json_integer((json_int_t)a->only_here));
		json_object_set_new(o, "only_there", json_integer((json_int_t)a->only_there));
		json_array_append_new(arr, o);
	}
	return arr;
}

const char *cli_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

void cli_progress_line(FILE *f, bool tty, const struct ingest_progress *p)
{
	double mbs = p->elapsed > 0 ? (double)p->bytes_done / p->elapsed / 1e6 : 0;
	char a[32], b[32], eta[32] = "?";

	if (p->totals_final && mbs > 0 && p->bytes_total > p->bytes_done)
		snprintf(eta, sizeof(eta), "%.0fs",
			 (double)(p->bytes_total - p->bytes_done) / 1e6 / mbs);
	else if (p->totals_final)
		snprintf(eta, sizeof(eta), "0s");
	fprintf(f, "%s%s: %" PRIu64 "/%" PRIu64 "%s files, %s/%s, %.1f MB/s, ETA %s, "
		"dedup %.2fx%s", tty ? "\r\033[K" : "", p->source, p->files_done,
		p->files_total, p->totals_final ? "" : "+", cli_human(p->bytes_done, a, sizeof(a)),
		cli_human(p->bytes_total, b, sizeof(b)), mbs, eta,
		p->new_raw ? (double)p->bytes_read / (double)p->new_raw : 1.0, tty ? "" : "\n");
	fflush(f);
}

void cli_packs_option(const char *prog, int which, const char *arg, struct store_create_opts *o)
{
	static const char *const names[] = { "--packs", "--s3-endpoint", "--s3-addressing",
					     "--s3-region", "--s3-credentials" };
	char *to[] = { o->packs, o->s3_endpoint, NULL, o->s3_region, o->s3_credentials };
	size_t cap[] = { sizeof(o->packs), sizeof(o->s3_endpoint), 0, sizeof(o->s3_region),
			 sizeof(o->s3_credentials) };
	char abs[PATH_MAX];

	if (which == 2) {
		if (strcmp(arg, "path") != 0 && strcmp(arg, "vhost") != 0)
			cli_usage_error(prog, "invalid --s3-addressing '%s' (path, vhost)", arg);
		o->s3_vhost = strcmp(arg, "vhost") == 0;
		return;
	}
	if (which == 0 && pback_s3_url_check(arg) < 0)
		cli_usage_error(prog, "invalid --packs '%s' (s3://BUCKET[/PREFIX]: a bucket of "
				"3..63 of a-z 0-9 . -, a prefix of A-Z a-z 0-9 . _ / -)", arg);
	if (which == 1 && strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
		cli_usage_error(prog, "invalid --s3-endpoint '%s' (http[s]://HOST[:PORT])", arg);
	if (which == 4) {
		if (!realpath(arg, abs))
			cli_usage_error(prog, "--s3-credentials '%s': %s", arg, strerror(errno));
		arg = abs;
	}
	if (!arg[0] || strlen(arg) >= cap[which] || strchr(arg, '\n') || strchr(arg, ' '))
		cli_usage_error(prog, "invalid %s '%s' (empty, too long or with a space)",
				names[which], arg);
	memcpy(to[which], arg, strlen(arg) + 1);
}

void cli_packs_check(const char *prog, const struct store_create_opts *o)
{
	if (!o->packs[0] && (o->s3_endpoint[0] || o->s3_region[0] || o->s3_credentials[0]))
		cli_usage_error(prog, "the --s3-* options go with --packs s3://BUCKET[/PREFIX]");
	if (o->packs[0] && !o->s3_endpoint[0])
		cli_usage_error(prog, "--packs %s needs --s3-endpoint URL", o->packs);
}
