/*
 * lib_rules.c - the rules a store keeps, as the tools apply them (see lib_rules.h).
 *
 * Threads: single-threaded. Errors: 0 or -errno, with a message for the user in @err.
 *
 * SPDX-License-Identifier: MIT
 */
#include "lib_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "lib_cli.h"
#include "store/log.h"
#include "store/store.h"

/* The whole of rules file @path into *@text (returned, free()), at most STORE_RULES_MAX. */
static int read_rules(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	*text = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -EINVAL;
	}
	buf = malloc(STORE_RULES_MAX + 2);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, STORE_RULES_MAX + 1, f);
	if (ferror(f) || n > STORE_RULES_MAX || memchr(buf, '\0', n)) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? strerror(errno) :
			 n > STORE_RULES_MAX ? "a rules file larger than 1 MiB" :
			 "a NUL byte in a rules file");
		fclose(f);
		free(buf);
		return -EINVAL;
	}
	fclose(f);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int cli_rules_keep(struct store_txn *tx, const char *rules, struct cli_rules_note *note,
		   char *err, size_t errlen)
{
	struct store_rules old;
	struct classify *c;
	char *text = NULL, was[320];
	size_t len = 0;
	bool kept;
	int rc;

	memset(note, 0, sizeof(*note));
	err[0] = '\0';
	rc = store_txn_get_rules(tx, &old);
	if (rc < 0 && rc != -ENOENT && !rules) {
		snprintf(err, errlen, "the rules kept in the store cannot be read: %s (give "
			 "--rules FILE or --rules builtin)", dfs_strerror(rc));
		return rc;
	}
	kept = rc == 0;
	if (kept)
		snprintf(was, sizeof(was), "%s (kept in the store)", old.name);
	else
		snprintf(was, sizeof(was), rc == -ENOENT ? "the built-in rules" :
			 "the store's damaged rules");
	if (!rules) {
		snprintf(note->in_force, sizeof(note->in_force), "%s", was);
		if (kept)
			snprintf(note->line, sizeof(note->line), "rules: %s", was);
		rc = 0;
		goto out;
	}
	if (!strcmp(rules, CLS_RULES_BUILTIN)) {
		snprintf(note->in_force, sizeof(note->in_force), "the built-in rules");
		if (rc == -ENOENT) {
			rc = 0;
			goto out;
		}
		rc = store_txn_del_rules(tx);
		note->changed = true;
		snprintf(note->line, sizeof(note->line), "rules: changed to the built-in rules "
			 "(the store no longer keeps %s)", kept ? old.name : "its damaged rules");
		goto out;
	}
	rc = read_rules(rules, &text, &len, err, errlen);
	if (rc == 0)
		rc = classify_open_text(rules, text, len, &c, err, errlen);
	if (rc < 0)
		goto out;
	classify_close(c);
	snprintf(note->in_force, sizeof(note->in_force), "%s (kept in the store)", rules);
	if (kept && old.len == len && !memcmp(old.text, text, len)) {
		snprintf(note->line, sizeof(note->line), "rules: %s, the same as the store keeps",
			 rules);
		if (!strcmp(old.name, rules))
			goto out;	/* nothing to write */
	} else {
		note->changed = true;
		snprintf(note->line, sizeof(note->line), "rules: changed to %s, kept in the store "
			 "for later runs (before: %s)", rules, was);
	}
	rc = store_txn_put_rules(tx, rules, text, len);
out:
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "the rules could not be kept in the store: %s",
			 dfs_strerror(rc));
	if (kept)
		store_rules_release(&old);
	free(text);
	return rc;
}

int cli_rules_check(const char *prog, const char *rules)
{
	const char *const *w;
	struct classify *c;
	char err[512] = "";
	size_t n;
	int rc = classify_open(rules, &c, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err[0] ? err : dfs_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	w = classify_warnings(c, &n);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s: %s\n", prog, w[i]);
	classify_close(c);
	return 0;
}

json_t *cli_rules_json(const struct cli_rules_note *note)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "in_force", json_string(note->in_force));
	json_object_set_new(o, "changed", json_boolean(note->changed));
	return o;
}
