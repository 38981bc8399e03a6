/*
 * fuzz_rules.c - the rules parser on arbitrary text: errors must be reported, never a
 * crash; rules it accepts must never place a sample entry outside the tree.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a.txt", "..", "x/../y", "dots..", "" };
	struct rules *r;
	struct dfs_buf d;
	char err[512];

	if (rules_new(&r) < 0)
		return 0;
	if (rules_parse(r, "fuzz", (const char *)data, size, err, sizeof(err)) == 0) {
		dfs_buf_init(&d, 1 << 20);
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			struct rules_subject s = { 0 };

			s.path = (const uint8_t *)"dir/../sub/f";
			s.path_len = 12;
			s.name = (const uint8_t *)names[i];
			s.name_len = strlen(names[i]);
			s.mode = S_IFREG | 0644;
			s.source = "../src";
			if (rules_match(r, &s, &d, NULL) >= 0) {
				/* the result: relative, no empty, "." or ".." component */
				if (!d.len || d.data[0] == '/')
					abort();
				for (size_t k = 0, st = 0; k <= d.len; k++) {
					if (k == d.len || d.data[k] == '/') {
						size_t n = k - st;

						if (!n || (n == 1 && d.data[st] == '.') ||
						    (n == 2 && d.data[st] == '.' && d.data[st + 1] == '.'))
							abort();
						st = k + 1;
					}
				}
			}
		}
		dfs_buf_release(&d);
	}
	rules_free(r);
	return 0;
}
