/*
 * regression_driver.c - replays a fuzz target's committed corpus under plain gcc, so
 * every input that once found a bug runs in the normal test suite: main(DIR) calls
 * LLVMFuzzerTestOneInput on every file of DIR (a missing directory replays nothing).
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (argc < 2)
		return 2;
	d = opendir(argv[1]);
	if (!d) {
		printf("%s: no corpus\n", argv[1]);
		return 0;
	}
	while ((de = readdir(d))) {
		char path[4096];
		uint8_t *buf;
		long len;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		rewind(f);
		buf = malloc(len > 0 ? (size_t)len : 1);
		if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
			LLVMFuzzerTestOneInput(buf, (size_t)len);
		free(buf);
		fclose(f);
		n++;
	}
	closedir(d);
	/* a few generated inputs too: empty, one byte, all zeros, all 0xff */
	{
		uint8_t z[4096];

		LLVMFuzzerTestOneInput(z, 0);
		memset(z, 0, sizeof(z));
		LLVMFuzzerTestOneInput(z, 1);
		LLVMFuzzerTestOneInput(z, sizeof(z));
		memset(z, 0xff, sizeof(z));
		LLVMFuzzerTestOneInput(z, sizeof(z));
	}
	printf("%s: %zu inputs replayed\n", argv[1], n);
	return 0;
}
