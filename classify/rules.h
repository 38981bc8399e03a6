/*
 * rules.h - classification rules: parsing (YAML, the only user of libyaml), matching and
 * destination templates.
 *
 * A rules file:
 *     version: 1
 *     rules:
 *       - name: photos
 *         category: media/images
 *         match:                      # every condition given must hold
 *           ext: [jpg, jpeg, png]     # lower-case extension without the dot
 *           name: "IMG_*"             # glob on the file name
 *           path: "home/USER/Pictures/..."  # a glob on the source-relative path; "**" crosses dirs
 *           mime: "image/png"         # glob on the libmagic MIME type
 *           size_min: 1K              # bytes, K/M/G/T suffixes
 *           size_max: 10G
 *           unit: git-worktree        # the entry is the root of a unit of this kind
 *           type: file                # file, dir, symlink, other
 *         to: "media/images/{path}"   # destination template
 *         merge: false                # units: copies from several sources merge
 *         alone: false                # a file it places leaves its folder
 *       - name: folder                # a folder rule: a loose directory's files
 *         match: {contains: {category: "*", at_least: 60%, except: [unsorted]}}
 *                                     # follow its main category (no 'to': its rule's)
 * The first rule that matches wins; user rules come before the built-in ones.
 * Template variables: {source} {path} {dir} {name} {stem} {ext} {unit} {year}
 * {mime_type}. {path} and {dir} keep their '/' (each component checked); every other
 * variable is one component ('/' replaced by '_'). A result with an empty, "." or ".."
 * component, or that is absolute, is rejected (the entry goes to the fallback).
 *
 * Threads: a compiled struct rules is read-only and may be shared.
 * Errors: rules_load returns -EINVAL with "FILE:LINE:COL: message" in @err.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_CLASSIFY_RULES_H
#define DFS_CLASSIFY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store/buf.h"
#include "store/fp.h"

#define RULES_VERSION 1

struct rules;

/* What a rule looks at. Strings are borrowed; mime may be NULL (not computed yet) or
 * MIME_NOT_BINARY (classify/mime.h). */
struct rules_subject {
	const uint8_t *path;		/* source-relative path */
	size_t path_len;
	const uint8_t *name;
	size_t name_len;
	uint32_t mode;
	uint64_t size;
	int64_t mtime;
	const char *unit_kind;		/* the entry is a unit root of this kind, or NULL */
	const char *source;
	const char *mime;
};

/* Parses YAML rules from @text (named @file in messages) and appends them to @r. */
int rules_parse(struct rules *r, const char *file, const char *text, size_t len, char *err,
		size_t errlen);
int rules_new(struct rules **out);
void rules_free(struct rules *r);
/* Loads @path (appending its rules). -ENOENT if the file does not exist. */
int rules_load(struct rules *r, const char *path, char *err, size_t errlen);

/*
 * The warnings of every text parsed, in order ("FILE:LINE:COL: warning: ..."; borrowed,
 * valid until rules_free): an empty file or one without rules, an 'ext' with a leading
 * dot (it never matches), a rule name used twice in one file. What is wrong is an error
 * instead (-EINVAL): an unknown condition or key, an unknown unit kind (unit.h), a
 * malformed category or template.
 */
const char *const *rules_warnings(const struct rules *r, size_t *n);

/* What identifies the rules in force: a digest of every text parsed, in order. */
void rules_digest(const struct rules *r, struct fp256 *out);

/* How much of a MIME type the rules that could match a subject need. */
enum rules_mime {
	RULES_MIME_NONE,	/* none */
	RULES_MIME_BINARY,	/* only globs mime_glob_binary_only() decides */
	RULES_MIME_EXACT,	/* the exact type (other globs, or {mime_type} in a 'to') */
};

/* What the rules that could match @s need of its MIME type (s->mime is not looked at). */
enum rules_mime rules_need_mime(const struct rules *r, const struct rules_subject *s);
/* What --explain writes of a match: to @f; every rule considered (@all), or only the
 * rules that came close (for this kind of entry, at least one of their conditions on it
 * holds and one fails) and the number of the others. */
struct rules_explain {
	FILE *f;
	bool all;
};

/*
 * The first matching rule: writes the destination into @dest (cleared first), and returns
 * the rule's index (>= 0) or -ENOENT when none matches (or only with unsafe results).
 * With @ex (NULL: nothing written), explains as struct rules_explain says.
 */
int rules_match(const struct rules *r, const struct rules_subject *s, struct dfs_buf *dest,
		const struct rules_explain *ex);
const char *rules_name(const struct rules *r, int idx);
const char *rules_category(const struct rules *r, int idx);
/* Rule @idx places a unit whose copies from several sources merge into one tree. */
bool rules_merges(const struct rules *r, int idx);

/* Rule @idx's files leave their folder (alone: true). */
bool rules_alone(const struct rules *r, int idx);
/* The number of rules (indexes 0 .. n-1). */
size_t rules_count(const struct rules *r);
/*
 * Rule @idx's destination for @s, whatever its conditions: 0, or -EINVAL when it would
 * leave the tree (or the rule has no 'to').
 */
int rules_render(const struct rules *r, int idx, const struct rules_subject *s,
		 struct dfs_buf *dest);

/* What rules_folder decided for a loose directory. */
struct rules_folder_result {
	int rule;		/* the folder rule that matched, or -1 */
	int main;		/* the rule that placed most files of the main category */
	const char *category;	/* the folder's category (the rule's, else the main one) */
	uint32_t files;		/* files of the main category */
	uint32_t total;		/* files that vote */
};

/*
 * The first folder rule (one with 'contains') that holds for directory @dir, whose
 * voting files (regular files whose own rule is not 'alone') number @total, @per_rule[i]
 * of them placed by rule i (rules_count entries): the category matching its glob (and
 * none of its 'except') that the most files have must have at least its percentage of
 * @total. Returns its index (@out filled), or -ENOENT. With @ex, writes why each folder
 * rule did not hold.
 */
int rules_folder(const struct rules *r, const struct rules_subject *dir,
		 const uint32_t *per_rule, uint32_t total, struct rules_folder_result *out,
		 FILE *ex);
/* Does folder rule @idx have a 'to' of its own (else its files take their main rule's)? */
bool rules_folder_to(const struct rules *r, int idx);

/* Glob matching: '*' and '?' stop at '/', '**' crosses it, [...] classes. */
bool rules_glob(const char *pat, const uint8_t *s, size_t n);

#endif
