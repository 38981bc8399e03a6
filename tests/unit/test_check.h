/*
 * test_check.h - the one assertion of the unit tests: CHECK(cond, fmt, ...) prints
 * "FAIL file:line: message" and counts the failure; the test's main() ends with
 * test_result(name), which prints the count and gives the exit status.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DFS_TESTS_TEST_CHECK_H
#define DFS_TESTS_TEST_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
			fprintf(stderr, __VA_ARGS__);                                     \
			fputc('\n', stderr);                                              \
			__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);               \
		}                                                                         \
	} while (0)

/* @n bytes of xorshift64 noise from seed @x (not 0): the same bytes for the same seed. */
static inline void test_fill(uint8_t *p, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* 0 when every CHECK held, else 1 (and the count on stderr). */
static inline int test_result(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d failure(s)\n", name, failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

#endif
