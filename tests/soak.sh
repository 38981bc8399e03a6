#!/usr/bin/env bash
# The soak target: the full counts of the trials CI only samples.
#   bash tests/soak.sh [FLIPS]
# Builds build-soak (RelWithDebInfo with the test fault switches), then runs with
# DFS_SOAK=1: the crash-point walk over every mutating pack/config operation of an
# ingest, crashing and failing (EIO, ENOSPC) each one (t_crash_walk); the power-cut walk
# of the fault filesystem over every write, fsync and rename, RocksDB's included
# (t_powercut, when present); the same two walks over defrag-gc and defrag-forget
# (t_gc_crash_walk, t_gc_powercut); and FLIPS random byte flips of packs (t_corrupt_walk,
# default 300); 100 ingests in a row, each followed by a mount (t_live_follow); 20 kills
# of a remote ingest at random points, each rerun checked (t_remote_soak); and
# test_classify with DFS_MIME_SUBSET_ALL=1: the quick MIME pass on the
# binary-only subset of libmagic's database against the whole database, on every file
# under /usr (CI compares 4,000 spread over it); test_store's fault loop at every
# operation (CI takes every 4th). Each test's output goes to
# build-soak/soak-NAME.log; the summary lines are what docs/BENCHMARKS.md "Soak" records.
set -eu
cd "$(dirname "$0")/.."
bash .ci/deps.sh
cmake -S . -B build-soak -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFS_TEST_FAULTS=ON >/dev/null
cmake --build build-soak -j2 >/dev/null
export DFS_BIN=$PWD/build-soak/bin DFS_SRC=$PWD DFS_SOAK=1 DFS_SOAK_FLIPS=${1:-300}
status=0
for t in t_crash_walk t_powercut t_gc_crash_walk t_gc_powercut t_corrupt_walk t_live_follow \
	t_remote_soak; do
	[ -f "tests/integration/$t.sh" ] || continue
	start=$(date +%s)
	rc=0
	bash "tests/integration/$t.sh" >"build-soak/soak-$t.log" 2>&1 || rc=$?
	echo "== $t: exit $rc, $(( $(date +%s) - start )) s"
	grep -E '^(ok|FAIL) - |flips:|mutating operations|walking|^soak:' "build-soak/soak-$t.log" || true
	[ $rc -eq 0 ] || status=1
done
start=$(date +%s)
rc=0
DFS_MIME_SUBSET_ALL=1 build-soak/bin/test_classify >build-soak/soak-mime-subset.log 2>&1 || rc=$?
echo "== mime subset: exit $rc, $(( $(date +%s) - start )) s"
grep -E '^mime subset|FAIL' build-soak/soak-mime-subset.log | head -n 20 || true
[ $rc -eq 0 ] || status=1
start=$(date +%s)
rc=0
build-soak/bin/test_store >build-soak/soak-test-store.log 2>&1 || rc=$?
echo "== test_store (every fault point): exit $rc, $(( $(date +%s) - start )) s"
grep -E '^fault loop|FAIL' build-soak/soak-test-store.log | head -n 20 || true
[ $rc -eq 0 ] || status=1
exit $status
