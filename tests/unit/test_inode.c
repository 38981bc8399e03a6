/*
 * test_inode.c - the table of inodes the kernel holds: lookup counts (ref/forget), and
 * the keep_cache decision of ino_open/ino_release when live follow gives an inode new
 * content: pages are kept only while every open saw the same content and no handle on
 * an older content is open or was released since the cache was last dropped. The batch
 * ino_ref_many counts as one ino_ref per number, and notes the xattr-less inodes (ino_is_plain)
 * under the generation it is given.
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
	ino_forget(t, 7, 1);
	CHECK(ino_open(t, 7, 0xb1), "forgotten: not held, keep");
	ino_ref(t, 7, 1);
	CHECK(!ino_open(t, 7, 0xb1), "held again: its opens start over");
	/* many opened inodes (the bookkeeping grows), then forgotten and held again */
	for (uint64_t i = 1000; i < 1300; i++) {
		ino_ref(t, i, 1);
		CHECK(!ino_open(t, i, i) && ino_open(t, i, i), "inode %llu: first open, then keep",
		      (unsigned long long)i);
	}
	for (uint64_t i = 1000; i < 1300; i++)
		ino_forget(t, i, 1);
	CHECK(ino_count(t) == 1, "only 7 held");
	for (uint64_t i = 1000; i < 1300; i++) {
		ino_ref(t, i, 1);
		CHECK(!ino_open(t, i, i), "inode %llu held again: first open",
		      (unsigned long long)i);
	}
	ino_table_free(t);
}

static void test_plain(void)
{
	struct ino_table *t;

	CHECK(ino_table_new(&t) == 0, "new");
	ino_set_plain(t, 5, 3);
	CHECK(!ino_is_plain(t, 5, 3), "not held: nothing noted");
	ino_ref(t, 5, 1);
	CHECK(!ino_is_plain(t, 5, 3), "held, not noted yet");
	ino_set_plain(t, 5, 3);
	CHECK(ino_is_plain(t, 5, 3), "noted under generation 3");
	CHECK(!ino_is_plain(t, 5, 4), "a catch-up since: unknown again");
	ino_set_plain(t, 5, 0);
	CHECK(ino_is_plain(t, 5, 0) && !ino_is_plain(t, 5, 3), "generation 0 is a generation");
	ino_forget(t, 5, 1);
	ino_ref(t, 5, 1);
	CHECK(!ino_is_plain(t, 5, 0), "forgotten, then looked up again: unknown");
	ino_table_free(t);
}

static void test_ref_many(void)
{
	uint64_t inos[3000], v[8];
	bool plain[3000];
	struct ino_table *t;
	size_t n = 0;

	CHECK(ino_table_new(&t) == 0, "new");
	ino_ref(t, 40, 1);
	ino_set_plain(t, 40, 1);
	/* 2998 distinct numbers (past the initial table: it grows under one lock), 41 twice,
	 * 0 (never an inode) once; even ones are plain */
	for (uint64_t i = 41; n < 2998; i++) {
		inos[n] = i;
		plain[n] = i % 2 == 0;
		n++;
	}
	inos[n] = 41;
	plain[n++] = false;
	inos[n] = 0;
	plain[n++] = true;
	ino_ref_many(t, inos, plain, n, 7);
	CHECK(ino_count(t) == 2999, "2999 held: %zu", ino_count(t));
	CHECK(ino_is_plain(t, 42, 7) && ino_is_plain(t, 3038, 7), "plain ones noted");
	CHECK(!ino_is_plain(t, 43, 7) && !ino_is_plain(t, 42, 6), "others not, nor elsewhen");
	CHECK(!ino_is_plain(t, 40, 7) && ino_is_plain(t, 40, 1), "40 left as it was");
	CHECK(!ino_is_plain(t, 0, 7), "0 is never held");
	/* each occurrence is one lookup: 41 goes after two forgets, 42 after one */
	ino_forget(t, 41, 1);
	ino_forget(t, 42, 1);
	CHECK(ino_count(t) == 2998, "41 held once more");
	ino_forget(t, 41, 1);
	CHECK(ino_count(t) == 2997, "41 forgotten");
	/* without plain notes, and none at all */
	ino_ref_many(t, inos, NULL, 2, 8);
	ino_ref_many(t, inos, plain, 0, 8);
	CHECK(ino_count(t) == 2999, "41 and 42 back");
	CHECK(!ino_is_plain(t, 42, 8), "no plain notes without @plain");
	ino_table_free(t);

	CHECK(ino_table_new(&t) == 0, "new");
	ino_ref_many(t, (const uint64_t[]){ 9, 9, 9 }, NULL, 3, 0);
	ino_forget(t, 9, 2);
	CHECK(ino_snapshot(t, v, 8) == 1 && v[0] == 9, "9 held once more");
	ino_forget(t, 9, 1);
	CHECK(ino_count(t) == 0, "9 forgotten after three");
	ino_table_free(t);
}

/* The "listed with attributes" note of a directory, beside the plain note of the same slot. */
static void test_listed(void)
{
	struct ino_table *t;
	uint64_t inos[1] = { 9 };
	bool plain[1] = { true };

	CHECK(ino_table_new(&t) == 0, "new");
	ino_set_listing(t, 9, INO_LISTED_ATTRS);
	CHECK(ino_listing(t, 9) == INO_UNLISTED, "not held: nothing noted");
	ino_ref(t, 9, 1);
	CHECK(ino_listing(t, 9) == INO_UNLISTED, "held, not noted yet");
	ino_set_plain(t, 9, 2);
	ino_set_listing(t, 9, INO_LISTED_NAMES);
	CHECK(ino_listing(t, 9) == INO_LISTED_NAMES && ino_is_plain(t, 9, 2),
	      "names listing and plain note, one slot");
	ino_set_listing(t, 9, INO_LISTED_ATTRS);
	CHECK(ino_listing(t, 9) == INO_LISTED_ATTRS && ino_is_plain(t, 9, 2),
	      "attribute listing replaces the names listing");
	ino_set_plain(t, 9, 5);
	CHECK(ino_listing(t, 9) == INO_LISTED_ATTRS && ino_is_plain(t, 9, 5) &&
	      !ino_is_plain(t, 9, 2), "a new plain note keeps the listing note");
	ino_ref_many(t, inos, plain, 1, 6);
	CHECK(ino_listing(t, 9) == INO_LISTED_ATTRS && ino_is_plain(t, 9, 6),
	      "so does ino_ref_many");
	ino_forget(t, 9, 2);
	ino_ref(t, 9, 1);
	CHECK(ino_listing(t, 9) == INO_UNLISTED && !ino_is_plain(t, 9, 6),
	      "forgotten: both gone");
	ino_table_free(t);
}

int main(void)
{
	test_lookup_counts();
	test_keep_cache();
	test_plain();
	test_ref_many();
	test_listed();
	return test_result("test_inode");
}
