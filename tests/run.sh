#!/usr/bin/env bash
# The test command (README.md, .ci/run): on a fresh Debian 12 root shell, installs the
# dependencies, builds twice (ASan+UBSan with test fault switches, then the normal build)
# and runs every test: unit, fuzz-corpus replay, integration with real FUSE mounts.
# It ends with ctest's "N tests passed, N failed" summary of the normal build.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
bash .ci/deps.sh
if [ -x .ci/checks.sh ] || [ -f .ci/checks.sh ]; then
	bash .ci/checks.sh
fi

# 1. Sanitizer build: every test, leaks checked (the daemon runs under ASan too).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDFS_SANITIZE=ON -DDFS_TEST_FAULTS=ON \
	>/dev/null
cmake --build build-asan -j2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
DFS_SANITIZED=1 ctest --test-dir build-asan --output-on-failure -j2 --timeout 900

# 2. The normal build: the same suite, and its summary is the last word.
unset ASAN_OPTIONS UBSAN_OPTIONS
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 --timeout 900
