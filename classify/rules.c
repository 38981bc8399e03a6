/*
 * rules.c - the rules file: YAML parsing with libyaml (line/column for every error),
 * glob matching, and destination templates that cannot escape the tree (see rules.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "rules.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <yaml.h>

#include "mime.h"
#include "store/fp.h"
#include "unit.h"

#define MAX_LIST 64

enum rtype { T_ANY = 0, T_FILE, T_DIR, T_SYMLINK, T_OTHER };

/*
 * What a glob's subject must hold, found once when the rules are parsed: every file is
 * tested against every rule (twice: rules_need_mime, then rules_match), and most tests
 * fail, so a failing one should cost a memcmp or a memmem, not a backtracking walk.
 */
struct glob_lits {
	size_t prefix;		/* the pattern's leading literal bytes: the subject's prefix */
	const char *lit;	/* its longest literal run (into the pattern): in the subject */
	size_t lit_len;
};

struct rule {
	char *name;
	char *category;
	char *to;
	char *exts[MAX_LIST];
	/* exts[i]'s length, and its first 8 bytes packed: one compare rejects most */
	size_t ext_len[MAX_LIST];
	uint64_t ext_key[MAX_LIST];
	uint64_t ext_bits;	/* ext_bit() of every ext: most others miss all of them */
	int next;
	char *name_glob;
	char *path_glob;
	char *mime_glob;
	struct glob_lits name_lits, path_lits, mime_lits;
	char *unit;
	uint64_t size_min, size_max;
	bool has_size_max;
	enum rtype type;
	bool merge;
	bool alone;		/* a file it places leaves its folder (folder rules) */
	/* a folder rule: 'contains: {category: GLOB, at_least: N%, except: [...]}' */
	bool folder;
	char *cat_glob;
	char *except[MAX_LIST];
	int nexcept;
	unsigned at_least;	/* percent */
	bool to_mime;		/* 'to' uses {mime_type} */
	yaml_mark_t start;	/* where it starts in its file, for messages */
};

struct rules {
	struct rule *v;
	size_t n, cap;
	char **warns;		/* "FILE:LINE:COL: warning: ..." of every text parsed */
	size_t nwarns;
	struct fp256 digest;	/* of every text parsed, in order (rules_digest) */
};

int rules_new(struct rules **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void rule_release(struct rule *r)
{
	free(r->name);
	free(r->category);
	free(r->to);
	for (int i = 0; i < r->next; i++)
		free(r->exts[i]);
	free(r->name_glob);
	free(r->path_glob);
	free(r->mime_glob);
	free(r->unit);
	free(r->cat_glob);
	for (int i = 0; i < r->nexcept; i++)
		free(r->except[i]);
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_release(&r->v[i]);
	for (size_t i = 0; i < r->nwarns; i++)
		free(r->warns[i]);
	free(r->warns);
	free(r->v);
	free(r);
}

const char *const *rules_warnings(const struct rules *r, size_t *n)
{
	*n = r->nwarns;
	return (const char *const *)r->warns;
}

const char *rules_name(const struct rules *r, int idx)
{
	return r->v[idx].name;
}

const char *rules_category(const struct rules *r, int idx)
{
	return r->v[idx].category ? r->v[idx].category : "";
}

bool rules_merges(const struct rules *r, int idx)
{
	return r->v[idx].merge;
}

bool rules_alone(const struct rules *r, int idx)
{
	return r->v[idx].alone;
}

size_t rules_count(const struct rules *r)
{
	return r->n;
}

/* ---- globs ------------------------------------------------------------------------- */

static bool glob_at(const char *p, const uint8_t *s, size_t n)
{
	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			p += 2;
			if (*p == '/')	/* "**" + "/" also matches zero directories */
				if (glob_at(p + 1, s, n))
					return true;
			for (size_t i = 0; i <= n; i++)
				if (glob_at(p, s + i, n - i))
					return true;
			return false;
		}
		if (*p == '*') {
			p++;
			for (size_t i = 0; i <= n; i++) {
				if (glob_at(p, s + i, n - i))
					return true;
				if (i < n && s[i] == '/')
					return false;
			}
			return false;
		}
		if (!n)
			return false;
		if (*p == '?') {
			if (*s == '/')
				return false;
		} else if (*p == '[') {
			const char *q = p + 1;
			bool neg = *q == '!' || *q == '^', hit = false;

			if (neg)
				q++;
			while (*q && *q != ']') {
				if (q[1] == '-' && q[2] && q[2] != ']') {
					hit |= *s >= (uint8_t)q[0] && *s <= (uint8_t)q[2];
					q += 3;
				} else {
					hit |= *s == (uint8_t)*q++;
				}
			}
			if (!*q || hit == neg || *s == '/')
				return false;
			p = q;
		} else if ((uint8_t)*p != *s) {
			return false;
		}
		p++;
		s++;
		n--;
	}
	return n == 0;
}

bool rules_glob(const char *pat, const uint8_t *s, size_t n)
{
	return glob_at(pat, s, n);
}

/*
 * The literal runs of @pat, tokenised as glob_at() reads it: "*", "?" and a class end a
 * run, and so does the "/" after "**" (it may match nothing). Every literal byte of the
 * pattern matches one equal byte of the subject, in order and adjacent within a run, so
 * a subject without a run cannot match; and one that does not start with the leading run
 * cannot either.
 */
static void glob_lits(const char *pat, struct glob_lits *g)
{
	const char *p = pat, *run = pat;

	memset(g, 0, sizeof(*g));
	for (;;) {
		const char *end = p;

		if (!*p || *p == '*' || *p == '?' || *p == '[') {
			if (run == pat)
				g->prefix = (size_t)(end - run);
			if ((size_t)(end - run) > g->lit_len) {
				g->lit = run;
				g->lit_len = (size_t)(end - run);
			}
		}
		if (!*p)
			return;
		if (p[0] == '*' && p[1] == '*') {
			p += 2;
			if (*p == '/')
				p++;
		} else if (*p == '*' || *p == '?') {
			p++;
		} else if (*p == '[') {
			const char *q = p + 1;

			if (*q == '!' || *q == '^')
				q++;
			while (*q && *q != ']')
				q += q[1] == '-' && q[2] && q[2] != ']' ? 3 : 1;
			if (!*q) {	/* an open class never matches: what follows is not read */
				run = q;
				p = q;
				continue;
			}
			p = q + 1;
		} else {
			p++;
			continue;
		}
		run = p;
	}
}

/* rules_glob(), after the quick tests of @g (of the same pattern). */
static bool glob_lits_match(const char *pat, const struct glob_lits *g, const uint8_t *s,
			    size_t n)
{
	if (n < g->prefix || memcmp(s, pat, g->prefix))
		return false;
	if (g->lit_len > g->prefix && !memmem(s + g->prefix, n - g->prefix, g->lit, g->lit_len))
		return false;
	return glob_at(pat + g->prefix, s + g->prefix, n - g->prefix);
}

static uint64_t ext_key(const char *e, size_t len)
{
	uint64_t k = 0;

	memcpy(&k, e, len < 8 ? len : 8);
	return k;
}

/* One of 64 bits for an ext key (a filter: equal exts have the same bit). */
static uint64_t ext_bit(uint64_t key)
{
	return 1ull << ((key * 0x9e3779b97f4a7c15ull) >> 58);
}

/* Fills what match_static() tests first, once the rule is parsed. */
static void rule_compile(struct rule *r)
{
	for (int i = 0; i < r->next; i++) {
		r->ext_len[i] = strlen(r->exts[i]);
		r->ext_key[i] = ext_key(r->exts[i], r->ext_len[i]);
		r->ext_bits |= ext_bit(r->ext_key[i]);
	}
	if (r->name_glob)
		glob_lits(r->name_glob, &r->name_lits);
	if (r->path_glob)
		glob_lits(r->path_glob, &r->path_lits);
	if (r->mime_glob)
		glob_lits(r->mime_glob, &r->mime_lits);
}

/* ---- parsing -------------------------------------------------------------------------- */

struct parser {
	yaml_parser_t y;
	yaml_event_t ev;
	bool have;
	struct rules *rs;	/* where warnings go */
	const char *file;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%zu:%zu: %s", p->file, m->line + 1, m->column + 1, msg);
	return -EINVAL;
}

/* A warning at @m: the rules are kept, the message goes to rules_warnings(). */
static int pwarn(struct parser *p, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int pwarn(struct parser *p, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[400], *w, **x;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x = realloc(p->rs->warns, (p->rs->nwarns + 1) * sizeof(*x));
	if (!x)
		return -ENOMEM;
	p->rs->warns = x;
	n = strlen(p->file) + strlen(msg) + 64;
	w = malloc(n);
	if (!w)
		return -ENOMEM;
	if (m)
		snprintf(w, n, "%s:%zu:%zu: warning: %s", p->file, m->line + 1, m->column + 1,
			 msg);
	else
		snprintf(w, n, "%s: warning: %s", p->file, msg);
	x[p->rs->nwarns++] = w;
	return 0;
}

static int next(struct parser *p)
{
	if (p->have)
		yaml_event_delete(&p->ev);
	p->have = false;
	if (!yaml_parser_parse(&p->y, &p->ev)) {
		snprintf(p->err, p->errlen, "%s:%zu:%zu: %s", p->file,
			 p->y.problem_mark.line + 1, p->y.problem_mark.column + 1,
			 p->y.problem ? p->y.problem : "YAML syntax error");
		return -EINVAL;
	}
	p->have = true;
	return 0;
}

static int expect(struct parser *p, yaml_event_type_t t, const char *what)
{
	int rc = next(p);

	if (rc < 0)
		return rc;
	if (p->ev.type != t)
		return perr(p, &p->ev.start_mark, "expected %s", what);
	return 0;
}

static const char *scalar(struct parser *p)
{
	return (const char *)p->ev.data.scalar.value;
}

static int parse_size(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x = strtoull(s, &end, 10);
	int shift = 0;

	if (end == s)
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*v = (uint64_t)x << shift;
	return 0;
}

/* A scalar, or a sequence of scalars, into @out (ext lists). */
static int parse_list(struct parser *p, char **out, int *n)
{
	int rc = next(p);

	if (rc < 0)
		return rc;
	if (p->ev.type == YAML_SCALAR_EVENT) {
		out[*n] = strdup(scalar(p));
		return out[(*n)++] ? 0 : -ENOMEM;
	}
	if (p->ev.type != YAML_SEQUENCE_START_EVENT)
		return perr(p, &p->ev.start_mark, "expected a name or a list of names");
	for (;;) {
		rc = next(p);
		if (rc < 0)
			return rc;
		if (p->ev.type == YAML_SEQUENCE_END_EVENT)
			return 0;
		if (p->ev.type != YAML_SCALAR_EVENT)
			return perr(p, &p->ev.start_mark, "expected a name");
		if (*n >= MAX_LIST)
			return perr(p, &p->ev.start_mark, "too many entries (at most %d)", MAX_LIST);
		out[*n] = strdup(scalar(p));
		if (!out[(*n)++])
			return -ENOMEM;
	}
}

static int scalar_value(struct parser *p, char **out)
{
	int rc = expect(p, YAML_SCALAR_EVENT, "a value");

	if (rc < 0)
		return rc;
	free(*out);
	*out = strdup(scalar(p));
	return *out ? 0 : -ENOMEM;
}

/*
 * The next key of a mapping being read: 0 with *@key (the caller frees it) and its
 * mark, 1 at the mapping's end, or -errno (@what: what a key would be, for the error).
 */
static int next_key(struct parser *p, const char *what, char **key, yaml_mark_t *m)
{
	int rc = next(p);

	if (rc < 0)
		return rc;
	if (p->ev.type == YAML_MAPPING_END_EVENT)
		return 1;
	if (p->ev.type != YAML_SCALAR_EVENT)
		return perr(p, &p->ev.start_mark, "expected %s", what);
	*key = strdup(scalar(p));
	*m = p->ev.start_mark;
	return *key ? 0 : -ENOMEM;
}

/* "60%" or "60": a whole percentage from 1 to 100 */
static int parse_percent(const char *s, unsigned *v)
{
	char *end;
	unsigned long x = strtoul(s, &end, 10);

	if (end == s || (*end == '%' && *++end) || *end || x < 1 || x > 100)
		return -EINVAL;
	*v = (unsigned)x;
	return 0;
}

/* 'contains: {category: GLOB, at_least: N%, except: [CATEGORY, ...]}': a folder rule */
static int parse_contains(struct parser *p, struct rule *r)
{
	yaml_mark_t start;
	int rc = expect(p, YAML_MAPPING_START_EVENT, "a mapping under 'contains' (category, "
			"at_least, except)");

	start = p->ev.start_mark;
	r->folder = true;
	while (rc == 0) {
		yaml_mark_t m;
		char *key = NULL;

		rc = next_key(p, "'category', 'at_least' or 'except'", &key, &m);
		if (rc)
			break;
		if (!strcmp(key, "category")) {
			rc = scalar_value(p, &r->cat_glob);
		} else if (!strcmp(key, "at_least")) {
			rc = expect(p, YAML_SCALAR_EVENT, "a percentage");
			if (rc == 0 && parse_percent(scalar(p), &r->at_least) < 0)
				rc = perr(p, &p->ev.start_mark, "at_least must be a percentage "
					  "from 1%% to 100%% ('%s')", scalar(p));
		} else if (!strcmp(key, "except")) {
			rc = parse_list(p, r->except, &r->nexcept);
		} else {
			rc = perr(p, &m, "unknown key '%s' under 'contains' (category, at_least, "
				  "except)", key);
		}
		free(key);
	}
	if (rc == 1)
		rc = 0;
	if (rc == 0 && (!r->cat_glob || !r->at_least))
		rc = perr(p, &start, "'contains' needs 'category' (a glob on categories) and "
			  "'at_least' (a percentage)");
	return rc;
}

static int parse_match(struct parser *p, struct rule *r)
{
	int rc = expect(p, YAML_MAPPING_START_EVENT, "a mapping of conditions under 'match'");

	while (rc == 0) {
		yaml_mark_t m;
		char *key;

		rc = next(p);
		if (rc < 0)
			break;
		if (p->ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		if (p->ev.type != YAML_SCALAR_EVENT)
			return perr(p, &p->ev.start_mark, "expected a condition name");
		key = strdup(scalar(p));
		m = p->ev.start_mark;
		if (!strcmp(key, "ext")) {
			rc = parse_list(p, r->exts, &r->next);
			for (int i = 0; rc == 0 && i < r->next; i++)
				for (char *c = r->exts[i]; *c; c++)
					if (*c >= 'A' && *c <= 'Z')
						*c = (char)(*c - 'A' + 'a');
			/* the extension is what follows the last dot: ".db" never matches */
			for (int i = 0; rc == 0 && i < r->next; i++)
				if (r->exts[i][0] == '.')
					rc = pwarn(p, &m, "ext '%s' starts with a dot and never "
						   "matches: extensions are written without it "
						   "('%s')", r->exts[i], r->exts[i] + 1);
		} else if (!strcmp(key, "name")) {
			rc = scalar_value(p, &r->name_glob);
		} else if (!strcmp(key, "path")) {
			rc = scalar_value(p, &r->path_glob);
		} else if (!strcmp(key, "mime")) {
			rc = scalar_value(p, &r->mime_glob);
		} else if (!strcmp(key, "unit")) {
			rc = scalar_value(p, &r->unit);
			if (rc == 0 && !unit_kind_known(r->unit))
				rc = perr(p, &p->ev.start_mark, "unknown unit kind '%s': 'unit' "
					  "names a kind of directory defragfs recognises "
					  "(defragfs-rules(5) lists them); files are matched with "
					  "ext, name or mime", r->unit);
		} else if (!strcmp(key, "type")) {
			char *t = NULL;

			rc = scalar_value(p, &t);
			if (rc == 0) {
				r->type = !strcmp(t, "file") ? T_FILE : !strcmp(t, "dir") ? T_DIR
					  : !strcmp(t, "symlink") ? T_SYMLINK
					  : !strcmp(t, "other") ? T_OTHER : T_ANY;
				if (r->type == T_ANY)
					rc = perr(p, &m, "type must be file, dir, symlink or other");
			}
			free(t);
		} else if (!strcmp(key, "contains")) {
			rc = parse_contains(p, r);
		} else if (!strcmp(key, "size_min") || !strcmp(key, "size_max")) {
			rc = expect(p, YAML_SCALAR_EVENT, "a size");
			if (rc == 0) {
				uint64_t v;

				if (parse_size(scalar(p), &v) < 0)
					rc = perr(p, &p->ev.start_mark, "invalid size '%s'", scalar(p));
				else if (key[5] == 'm' && key[6] == 'i')
					r->size_min = v;
				else {
					r->size_max = v;
					r->has_size_max = true;
				}
			}
		} else {
			rc = perr(p, &m, "unknown condition '%s' (ext, name, path, mime, size_min, "
				  "size_max, unit, type, contains)", key);
		}
		free(key);
	}
	return rc;
}

static int check_template(struct parser *p, const yaml_mark_t *m, const char *t)
{
	static const char *const vars[] = { "source", "path", "dir", "name", "stem", "ext",
					    "unit", "year", "mime_type" };

	if (t[0] == '/')
		return perr(p, m, "'to' must be a relative path");
	for (const char *c = t; *c; c++) {
		if (*c == '{') {
			const char *e = strchr(c, '}');
			bool ok = false;

			if (!e)
				return perr(p, m, "unclosed '{' in 'to'");
			for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
				if ((size_t)(e - c - 1) == strlen(vars[i]) &&
				    !strncmp(c + 1, vars[i], strlen(vars[i])))
					ok = true;
			if (!ok)
				return perr(p, m, "unknown variable '%.*s' in 'to'", (int)(e - c + 1), c);
			c = e;
		}
	}
	return 0;
}

/* A category is a relative path of names: no empty, "." or ".." component. */
static bool category_ok(const char *c)
{
	const char *s = c;

	if (!*c)
		return true;	/* none */
	for (;;) {
		size_t n = strcspn(s, "/");

		if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return false;
		if (!s[n])
			return true;
		s += n + 1;
	}
}

static int parse_rule(struct parser *p, struct rule *r)
{
	yaml_mark_t start = p->ev.start_mark;
	int rc = 0;

	r->start = start;
	while (rc == 0) {
		yaml_mark_t m;
		char *key = NULL;

		rc = next_key(p, "a rule key", &key, &m);
		if (rc)
			break;
		if (!strcmp(key, "name"))
			rc = scalar_value(p, &r->name);
		else if (!strcmp(key, "category")) {
			rc = scalar_value(p, &r->category);
			if (rc == 0 && !category_ok(r->category))
				rc = perr(p, &p->ev.start_mark, "category '%s' must be names "
					  "separated by '/' (no empty, '.' or '..' part, no leading "
					  "or trailing '/')", r->category);
		}
		else if (!strcmp(key, "to")) {
			rc = scalar_value(p, &r->to);
			if (rc == 0)
				rc = check_template(p, &m, r->to);
			if (rc == 0)
				r->to_mime = strstr(r->to, "{mime_type}") != NULL;
		} else if (!strcmp(key, "match"))
			rc = parse_match(p, r);
		else if (!strcmp(key, "merge") || !strcmp(key, "alone")) {
			char *v = NULL;

			rc = scalar_value(p, &v);
			if (rc == 0 && strcmp(v, "true") && strcmp(v, "false"))
				rc = perr(p, &m, "%s must be true or false", key);
			if (key[0] == 'm')
				r->merge = v && !strcmp(v, "true");
			else
				r->alone = v && !strcmp(v, "true");
			free(v);
		} else
			rc = perr(p, &m, "unknown key '%s' in a rule (name, category, match, to, "
				  "merge, alone)", key);
		free(key);
	}
	if (rc == 1)
		rc = 0;
	if (rc == 0 && !r->name)
		rc = perr(p, &start, "a rule needs 'name'");
	/* a folder rule may leave 'to' out: its files follow their folder's main rule */
	if (rc == 0 && !r->to && !r->folder)
		rc = perr(p, &start, "a rule needs 'name' and 'to' (only a folder rule, with "
			  "'contains', may leave 'to' out)");
	if (rc == 0 && r->folder && (r->next || r->mime_glob || r->unit || r->size_min ||
				     r->has_size_max || (r->type != T_ANY && r->type != T_DIR)))
		rc = perr(p, &start, "a folder rule ('contains') matches a directory: only "
			  "'name' and 'path' may go with it");
	if (rc == 0 && r->folder && r->alone)
		rc = perr(p, &start, "'alone' is for rules that place files, not folder rules");
	return rc;
}

/* digest = SHA-256(digest | u64 len | text): the rules in force, in order */
static int digest_fold(struct rules *rs, const char *text, size_t len)
{
	struct fp_sha *sha;
	uint64_t l = len;
	int rc;

	rc = fp_sha_new(&sha);
	if (rc < 0)
		return rc;
	rc = fp_sha_update(sha, rs->digest.b, FP_LEN);
	if (rc == 0)
		rc = fp_sha_update(sha, &l, sizeof(l));
	if (rc == 0)
		rc = fp_sha_update(sha, text, len);
	if (rc == 0)
		rc = fp_sha_final(sha, &rs->digest);
	fp_sha_free(sha);
	return rc;
}

void rules_digest(const struct rules *r, struct fp256 *out)
{
	*out = r->digest;
}

int rules_parse(struct rules *rs, const char *file, const char *text, size_t len, char *err,
		size_t errlen)
{
	struct parser p = { .rs = rs, .file = file, .err = err, .errlen = errlen };
	size_t first = rs->n;	/* this text's rules start here */
	bool seen_version = false;
	int rc;

	err[0] = '\0';
	if (!yaml_parser_initialize(&p.y))
		return -ENOMEM;
	yaml_parser_set_input_string(&p.y, (const unsigned char *)text, len);
	rc = expect(&p, YAML_STREAM_START_EVENT, "a YAML stream");
	if (rc == 0)
		rc = next(&p);
	if (rc == 0 && p.ev.type == YAML_STREAM_END_EVENT) {
		/* an empty file: no rules (the built-in ones apply) */
		rc = pwarn(&p, NULL, "an empty rules file: it has no rules, only the built-in "
			   "ones apply");
		goto out;
	}
	if (rc == 0 && p.ev.type != YAML_DOCUMENT_START_EVENT)
		rc = perr(&p, &p.ev.start_mark, "expected a document");
	if (rc == 0)
		rc = expect(&p, YAML_MAPPING_START_EVENT, "a mapping with 'version' and 'rules'");
	while (rc == 0) {
		yaml_mark_t m;
		char *key;

		rc = next(&p);
		if (rc < 0 || p.ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (p.ev.type != YAML_SCALAR_EVENT) {
			rc = perr(&p, &p.ev.start_mark, "expected 'version' or 'rules'");
			break;
		}
		key = strdup(scalar(&p));
		m = p.ev.start_mark;
		if (!strcmp(key, "version")) {
			rc = expect(&p, YAML_SCALAR_EVENT, "a version number");
			if (rc == 0 && strcmp(scalar(&p), "1"))
				rc = perr(&p, &p.ev.start_mark, "unsupported rules version '%s' (this "
					  "defragfs reads version %d)", scalar(&p), RULES_VERSION);
			seen_version = true;
		} else if (!strcmp(key, "rules")) {
			rc = expect(&p, YAML_SEQUENCE_START_EVENT, "a list of rules");
			while (rc == 0) {
				struct rule *r;

				rc = next(&p);
				if (rc < 0 || p.ev.type == YAML_SEQUENCE_END_EVENT)
					break;
				if (p.ev.type != YAML_MAPPING_START_EVENT) {
					rc = perr(&p, &p.ev.start_mark, "expected a rule (a mapping)");
					break;
				}
				if (rs->n == rs->cap) {
					size_t cap = rs->cap ? rs->cap * 2 : 32;

					r = realloc(rs->v, cap * sizeof(*r));
					if (!r) {
						rc = -ENOMEM;
						break;
					}
					rs->v = r;
					rs->cap = cap;
				}
				r = &rs->v[rs->n];
				memset(r, 0, sizeof(*r));
				rc = parse_rule(&p, r);
				for (size_t k = first; rc == 0 && k < rs->n; k++)
					if (!strcmp(rs->v[k].name, r->name))
						rc = pwarn(&p, &r->start, "rule name '%s' is "
							   "already used at line %zu (user.defrag.rule "
							   "and --explain cannot tell them apart)",
							   r->name, rs->v[k].start.line + 1);
				if (rc < 0) {
					rule_release(r);
				} else {
					rule_compile(r);
					rs->n++;
				}
			}
		} else {
			rc = perr(&p, &m, "unknown key '%s' (version, rules)", key);
		}
		free(key);
	}
	if (rc == 0 && !seen_version)
		snprintf(err, errlen, "%s:1:1: missing 'version: %d'", file, RULES_VERSION),
			rc = -EINVAL;
	if (rc == 0 && rs->n == first)
		rc = pwarn(&p, NULL, "no rules in this file: only the built-in ones apply");
out:
	if (rc == 0)
		rc = digest_fold(rs, text, len);
	if (p.have)
		yaml_event_delete(&p.ev);
	yaml_parser_delete(&p.y);
	return rc;
}

int rules_load(struct rules *r, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fseek(f, 0, SEEK_END) == 0) {
		long n = ftell(f);

		if (n >= 0 && n < (16 << 20)) {
			len = (size_t)n;
			text = malloc(len + 1);
			rewind(f);
			if (text && fread(text, 1, len, f) != len) {
				free(text);
				text = NULL;
			}
		}
	}
	fclose(f);
	if (!text) {
		snprintf(err, errlen, "%s: cannot read (or larger than 16 MiB)", path);
		return -EINVAL;
	}
	rc = rules_parse(r, path, text, len, err, errlen);
	free(text);
	return rc;
}

/* ---- matching ----------------------------------------------------------------------------- */

static enum rtype type_of(uint32_t mode)
{
	return S_ISREG(mode) ? T_FILE : S_ISDIR(mode) ? T_DIR : S_ISLNK(mode) ? T_SYMLINK
								     : T_OTHER;
}

/* A subject's extension (lower-cased; "" for none), as rule_compile() keys a rule's. */
struct subject_ext {
	char s[64];
	size_t len;
	uint64_t key;
	uint64_t bit;		/* ext_bit(key) */
	size_t stem_len;	/* the name without ".ext" */
};

static void ext_of(const struct rules_subject *s, struct subject_ext *x)
{
	size_t dot = s->name_len;

	x->s[0] = '\0';
	x->len = 0;
	x->stem_len = s->name_len;
	for (size_t i = s->name_len; i > 1; i--) {
		if (s->name[i - 1] == '.') {
			dot = i - 1;
			break;
		}
	}
	if (dot < s->name_len && s->name_len - dot - 1 < sizeof(x->s)) {
		size_t n = s->name_len - dot - 1;

		for (size_t i = 0; i < n; i++) {
			char c = (char)s->name[dot + 1 + i];

			x->s[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		x->s[n] = '\0';
		x->len = n;
		x->stem_len = dot;
	}
	x->key = ext_key(x->s, x->len);
	x->bit = ext_bit(x->key);
}

/* Does @r match, apart from MIME? */
static bool ext_hit(const struct rule *r, const struct subject_ext *ext)
{
	bool hit = false;

	if (!(r->ext_bits & ext->bit))
		return false;
	/* a name's bytes hold no NUL, so equal keys of up to 8 bytes are equal exts */
	for (int i = 0; i < r->next && !hit; i++)
		hit = r->ext_key[i] == ext->key && r->ext_len[i] == ext->len &&
		      (ext->len <= 8 || !memcmp(r->exts[i] + 8, ext->s + 8, ext->len - 8));
	return hit;
}

static bool match_static(const struct rule *r, const struct rules_subject *s,
			 const struct subject_ext *ext, const char **why)
{
	if (r->folder) {	/* rules_folder's */
		*why = "a folder rule";
		return false;
	}
	if (r->type != T_ANY && r->type != type_of(s->mode)) {
		*why = "type";
		return false;
	}
	if (r->unit && (!s->unit_kind || strcmp(r->unit, s->unit_kind))) {
		*why = "unit";
		return false;
	}
	if (!r->unit && s->unit_kind) {
		*why = "unit root";
		return false;
	}
	if (r->next && !ext_hit(r, ext)) {
		*why = "ext";
		return false;
	}
	if (r->name_glob && !glob_lits_match(r->name_glob, &r->name_lits, s->name, s->name_len)) {
		*why = "name";
		return false;
	}
	if (r->path_glob && !glob_lits_match(r->path_glob, &r->path_lits, s->path, s->path_len)) {
		*why = "path";
		return false;
	}
	if (s->size < r->size_min || (r->has_size_max && s->size > r->size_max)) {
		*why = "size";
		return false;
	}
	return true;
}

enum rules_mime rules_need_mime(const struct rules *r, const struct rules_subject *s)
{
	enum rules_mime need = RULES_MIME_NONE;
	struct subject_ext ext;
	const char *why;

	ext_of(s, &ext);
	for (size_t i = 0; i < r->n && need != RULES_MIME_EXACT; i++) {
		const struct rule *x = &r->v[i];

		if (!match_static(x, s, &ext, &why))	/* folder rules too: they place no file */
			continue;
		if (x->to_mime)
			need = RULES_MIME_EXACT;
		/* the first rule that matches without MIME decides: later ones never run */
		if (!x->mime_glob)
			break;
		if (need < RULES_MIME_BINARY)
			need = RULES_MIME_BINARY;
		if (!mime_glob_binary_only(x->mime_glob))
			need = RULES_MIME_EXACT;
	}
	return need;
}

/* Appends one template variable value as a single safe component. */
static void put_component(struct dfs_buf *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dfs_buf_put_u8(out, p[i] == '/' || p[i] == 0 ? '_' : p[i]);
}

static int render(const struct rule *r, const struct rules_subject *s,
		  const struct subject_ext *x, struct dfs_buf *out)
{
	dfs_buf_clear(out);
	for (const char *c = r->to; *c; c++) {
		const char *e;
		size_t vl;

		if (*c != '{') {
			dfs_buf_put_u8(out, (uint8_t)*c);
			continue;
		}
		e = strchr(c, '}');
		vl = (size_t)(e - c - 1);
		if (vl == 4 && !strncmp(c + 1, "path", 4)) {
			dfs_buf_append(out, s->path, s->path_len);
		} else if (vl == 3 && !strncmp(c + 1, "dir", 3)) {
			size_t d = s->path_len - s->name_len;

			dfs_buf_append(out, s->path, d ? d - 1 : 0);
		} else if (vl == 6 && !strncmp(c + 1, "source", 6)) {
			put_component(out, (const uint8_t *)s->source, strlen(s->source));
		} else if (vl == 4 && !strncmp(c + 1, "name", 4)) {
			put_component(out, s->name, s->name_len);
		} else if (vl == 4 && !strncmp(c + 1, "stem", 4)) {
			put_component(out, s->name, x->stem_len);
		} else if (vl == 3 && !strncmp(c + 1, "ext", 3)) {
			put_component(out, (const uint8_t *)(x->len ? x->s : "none"),
				      x->len ? x->len : strlen("none"));
		} else if (vl == 4 && !strncmp(c + 1, "unit", 4)) {
			const char *u = s->unit_kind ? s->unit_kind : "none";

			put_component(out, (const uint8_t *)u, strlen(u));
		} else if (vl == 4 && !strncmp(c + 1, "year", 4)) {
			char y[16];
			struct tm tm;
			time_t t = (time_t)s->mtime;

			gmtime_r(&t, &tm);
			snprintf(y, sizeof(y), "%04d", tm.tm_year + 1900);
			put_component(out, (const uint8_t *)y, strlen(y));
		} else if (vl == 9 && !strncmp(c + 1, "mime_type", 9)) {
			const char *m = s->mime ? s->mime : "unknown";

			put_component(out, (const uint8_t *)m, strlen(m));
		}
		c = e;
	}
	if (out->err)
		return out->err;
	/* Safety: relative, no empty, "." or ".." component, no NUL, components <= 255. */
	if (!out->len || out->data[0] == '/')
		return -EINVAL;
	for (size_t i = 0, start = 0; i <= out->len; i++) {
		if (i == out->len || out->data[i] == '/') {
			size_t n = i - start;

			if (n == 0 || n > 255 || (n == 1 && out->data[start] == '.') ||
			    (n == 2 && out->data[start] == '.' && out->data[start + 1] == '.'))
				return -EINVAL;
			start = i + 1;
		} else if (out->data[i] == 0) {
			return -EINVAL;
		}
	}
	return 0;
}

static bool mime_hit(const struct rule *x, const struct rules_subject *s)
{
	/* MIME_NOT_BINARY decides binary-only globs; callers compute the exact type for the
	 * others (rules_need_mime), so it never reaches them */
	return !x->mime_glob || (s->mime && strcmp(s->mime, MIME_NOT_BINARY) &&
				 glob_lits_match(x->mime_glob, &x->mime_lits,
						 (const uint8_t *)s->mime, strlen(s->mime)));
}

/*
 * Did rule @x, which does not match, come close? It is for this kind of entry (type and
 * unit hold) and of its conditions on the entry (ext, name, path, size, mime) at least
 * one holds and exactly one fails.
 */
static bool came_close(const struct rule *x, const struct rules_subject *s,
		       const struct subject_ext *ext)
{
	unsigned held = 0, failed = 0;

	if (x->folder || (x->type != T_ANY && x->type != type_of(s->mode)) ||
	    (x->unit && (!s->unit_kind || strcmp(x->unit, s->unit_kind))) ||
	    (!x->unit && s->unit_kind))
		return false;
	if (x->next)
		ext_hit(x, ext) ? held++ : failed++;
	if (x->name_glob)
		glob_lits_match(x->name_glob, &x->name_lits, s->name, s->name_len) ? held++
										    : failed++;
	if (x->path_glob)
		glob_lits_match(x->path_glob, &x->path_lits, s->path, s->path_len) ? held++
										    : failed++;
	if (x->size_min || x->has_size_max)
		s->size >= x->size_min && (!x->has_size_max || s->size <= x->size_max) ? held++
											: failed++;
	if (x->mime_glob)
		mime_hit(x, s) ? held++ : failed++;
	return held >= 1 && failed <= 1;
}

/* One rule that does not match, as --explain says it (all of them, or the close ones). */
static void explain_miss(const struct rules_explain *ex, const struct rule *x,
			 const struct rules_subject *s, const struct subject_ext *ext,
			 const char *why, size_t *hidden)
{
	if (!ex->all && !came_close(x, s, ext)) {
		(*hidden)++;
		return;
	}
	fprintf(ex->f, "  rule %-28s no (%s)\n", x->name, why);
}

int rules_match(const struct rules *r, const struct rules_subject *s, struct dfs_buf *dest,
		const struct rules_explain *ex)
{
	struct subject_ext ext;
	size_t hidden = 0;
	char why[300];
	int idx = -ENOENT;

	if (ex && !ex->f)
		ex = NULL;
	ext_of(s, &ext);
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *x = &r->v[i];
		const char *w = NULL;

		if (!match_static(x, s, &ext, &w)) {
			if (ex)
				explain_miss(ex, x, s, &ext, w, &hidden);
			continue;
		}
		if (!mime_hit(x, s)) {
			if (ex) {
				snprintf(why, sizeof(why), "mime %s", s->mime ? s->mime : "unknown");
				explain_miss(ex, x, s, &ext, why, &hidden);
			}
			continue;
		}
		if (render(x, s, &ext, dest) < 0) {
			if (ex)
				explain_miss(ex, x, s, &ext, "its destination would leave the tree",
					     &hidden);
			continue;
		}
		if (ex)
			fprintf(ex->f, "  rule %-28s MATCH -> %.*s\n", x->name, (int)dest->len,
				(const char *)dest->data);
		idx = (int)i;
		break;
	}
	if (ex && hidden)
		fprintf(ex->f, "  (%zu other rule%s did not come close; -v lists every rule)\n",
			hidden, hidden == 1 ? "" : "s");
	return idx;
}

int rules_render(const struct rules *r, int idx, const struct rules_subject *s,
		 struct dfs_buf *dest)
{
	struct subject_ext ext;

	if (!r->v[idx].to)
		return -EINVAL;
	ext_of(s, &ext);
	return render(&r->v[idx], s, &ext, dest);
}

/* Does category @c match a folder rule's glob, and none of its exceptions? */
static bool folder_cat(const struct rule *x, const char *c)
{
	if (!rules_glob(x->cat_glob, (const uint8_t *)c, strlen(c)))
		return false;
	for (int i = 0; i < x->nexcept; i++)
		if (rules_glob(x->except[i], (const uint8_t *)c, strlen(c)))
			return false;
	return true;
}

int rules_folder(const struct rules *r, const struct rules_subject *dir,
		 const uint32_t *per_rule, uint32_t total, struct rules_folder_result *out,
		 FILE *ex)
{
	memset(out, 0, sizeof(*out));
	out->rule = out->main = -1;
	out->total = total;
	if (!total)
		return -ENOENT;
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *x = &r->v[i];
		uint32_t best = 0;
		int main = -1;

		if (!x->folder)
			continue;
		if ((x->name_glob && !glob_lits_match(x->name_glob, &x->name_lits, dir->name,
						     dir->name_len)) ||
		    (x->path_glob && !glob_lits_match(x->path_glob, &x->path_lits, dir->path,
						     dir->path_len))) {
			if (ex)
				fprintf(ex, "  folder rule %-21s no (%s)\n", x->name,
					x->path_glob ? "path or name" : "name");
			continue;
		}
		/* the category with the most files (the first in rule order on a tie) */
		for (size_t j = 0; j < r->n; j++) {
			const char *c = rules_category(r, (int)j);
			uint32_t n = 0;
			bool seen = false;

			if (!per_rule[j] || !folder_cat(x, c))
				continue;
			for (size_t k = 0; k < j && !seen; k++)
				seen = per_rule[k] && !strcmp(rules_category(r, (int)k), c);
			if (seen)
				continue;
			for (size_t k = j; k < r->n; k++)
				if (per_rule[k] && !strcmp(rules_category(r, (int)k), c))
					n += per_rule[k];
			if (n > best) {
				best = n;
				main = (int)j;
			}
		}
		if (main < 0 || (uint64_t)best * 100 < (uint64_t)x->at_least * total) {
			if (ex)
				fprintf(ex, "  folder rule %-21s no (%s%s: %u of %u files, needs "
					"%u%%)\n", x->name, main < 0 ? "no category matches" :
					"most are ", main < 0 ? "" : rules_category(r, main), best,
					total, x->at_least);
			continue;
		}
		/* the main category's rule: the one that placed most of its files */
		for (size_t k = (size_t)main, most = 0; k < r->n; k++)
			if (per_rule[k] > most && !strcmp(rules_category(r, (int)k),
							  rules_category(r, main))) {
				most = per_rule[k];
				out->main = (int)k;
			}
		out->rule = (int)i;
		out->files = best;
		out->category = x->category && *x->category ? x->category
							     : rules_category(r, main);
		return (int)i;
	}
	return -ENOENT;
}

bool rules_folder_to(const struct rules *r, int idx)
{
	return r->v[idx].to != NULL;
}
