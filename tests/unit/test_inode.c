/*
 * test_inode.c - the table of inodes the kernel holds: lookup counts (ref/forget), and
 * the keep_cache decision of ino_open/ino_release when live follow gives an inode new
 * content: pages are kept only while every open saw the same content and no handle on
 * an older content is open or was released since the cache was last dropped.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>

#include "fs/inode.h"

#include "test_check.h"

static void test_lookup_counts(void)
{
	struct ino_table *t;
	uint64_t v[8];

	CHECK(ino_table_new(&t) == 0, "new");
	ino_ref(t, 10, 2);
	ino_ref(t, 11, 1);
	CHECK(ino_count(t) == 2, "two inodes held");
	ino_forget(t, 10, 1);
	CHECK(ino_count(t) == 2, "one lookup of 10 left");
	ino_forget(t, 10, 1);
	CHECK(ino_count(t) == 1, "10 forgotten");
	CHECK(ino_snapshot(t, v, 8) == 1 && v[0] == 11, "snapshot holds 11 only");
	for (uint64_t i = 100; i < 5100; i++)	/* grows past the initial table */
		ino_ref(t, i, 1);
	CHECK(ino_count(t) == 5001, "5001 held after growth");
	ino_table_free(t);
}

static void test_keep_cache(void)
{
	struct ino_table *t;

	CHECK(ino_table_new(&t) == 0, "new");
	ino_ref(t, 7, 1);
	CHECK(!ino_open(t, 7, 0xa1), "first open: nothing cached yet, no keep");
	CHECK(ino_open(t, 7, 0xa1), "same content: keep");
	ino_release(t, 7, 0xa1);
	ino_release(t, 7, 0xa1);
	CHECK(ino_open(t, 7, 0xa1), "same content after releases: keep");
	/* one handle on A stays open; a re-ingest gives the inode content B */
	CHECK(!ino_open(t, 7, 0xb1), "new content: drop the pages");
	CHECK(!ino_open(t, 7, 0xb1), "an A handle is still open: it may refill the cache");
	ino_release(t, 7, 0xb1);
	ino_release(t, 7, 0xa1);	/* the A handle goes, after reading old pages */
	CHECK(!ino_open(t, 7, 0xb1), "after the A handle's release: drop once more");
	CHECK(ino_open(t, 7, 0xb1), "then keep again");
	ino_release(t, 7, 0xb1);
	ino_release(t, 7, 0xb1);
	ino_release(t, 7, 0xb1);	/* one too many: ignored */
	CHECK(ino_open(t, 7, 0xb1), "still keep");
	CHECK(ino_open(t, 99, 0xc1), "an inode not held: keep (nothing to compare)");
	ino_table_free(t);
}

int main(void)
{
	test_lookup_counts();
	test_keep_cache();
	return test_result("test_inode");
}
