#!/usr/bin/env bash
# Remote sources (issue 21): bytes on the wire and time, through a real sshd on the
# loopback address (tests/integration/lib.sh's dfs_sshd: a free port, keys made here).
#   bash bench/bench_remote.sh [BUILD_DIR]     (as root; openssh-server installed)
# Corpus (page cache warm): /usr/share/doc and /usr/include copied twice (d1, d2: the same
# bytes at two paths, so d2 is "a drive already in the store" once d1 is ingested), and
# 64 MiB of compressible new data (a text log, generated).
# Figures:
#   1. d1 over ssh into a new store: new compressible data, bytes_received against the
#      bytes stored (compressed) and the raw bytes;
#   2. d2 over ssh as a second source: already in the store, bytes_received / its size;
#   3. the log over ssh: bytes_received against its zstd size;
#   4. a re-ingest of unchanged d2, over ssh and local (3 runs each, the median).
set -eu
build=${1:-build}
DFS_BIN=$(cd "$build/bin" && pwd)
export DFS_BIN
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the corpus sits beside the store
W=$(mktemp -d /tmp/defragfs-bench-remote.XXXXXX)
export W
_dfs_pass=0 _dfs_fail=0
_dfs_pids=()
. "$(dirname "$0")/../tests/integration/lib.sh"
trap '_dfs_cleanup' EXIT
dfs_sshd
mkdir -p "$W/d1" "$W/d2" "$W/log"
cp -a /usr/share/doc "$W/d1/doc"
cp -a /usr/include "$W/d1/include"
cp -a "$W/d1/." "$W/d2/"
python3 - "$W/log/app.log" <<'PY'
import random, sys
r = random.Random(21)
words = ["GET", "POST", "/api/v1/items", "/login", "200", "404", "500", "user", "session",
         "timeout", "ok", "cache", "miss", "hit", "db", "query", "ms", "worker", "queue"]
with open(sys.argv[1], "w") as f:
    n = 0
    while n < 64 << 20:
        line = "2026-12-06T%02d:%02d:%02d.%06dZ %s\n" % (
            r.randrange(24), r.randrange(60), r.randrange(60), r.randrange(10**6),
            " ".join(r.choice(words) for _ in range(r.randrange(6, 14))))
        f.write(line)
        n += len(line)
PY
size() { du -sb "$1" | cut -f1; }
echo "d1, d2: $(find "$W/d1" -type f | wc -l) files, $(size "$W/d1") bytes each; log $(size "$W/log") bytes ($(zstd -3 -c "$W/log/app.log" | wc -c) with zstd -3)"
ing() {	# ing STORE NAME SOURCE JSON [remote]
	local t0 t1
	t0=$(date +%s.%N)
	if [ "${5:-}" = remote ]; then
		"$DFS_BIN/defrag-ingest" --progress=never --store "$1" --name "$2" -e "$rsh" \
			--remote-cmd "$DFS_BIN/defrag-ingest" --json "ssh://root@127.0.0.1:$port$3" >"$4"
	else
		"$DFS_BIN/defrag-ingest" --progress=never --store "$1" --name "$2" --json "$3" >"$4"
	fi
	t1=$(date +%s.%N)
	python3 - "$4" "$t0" "$t1" "$(size "$3")" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
size = int(sys.argv[4])
recv = d.get("bytes_received", 0)
print("  %d files, %d bytes; read %d; new raw %d, stored %d; received %d (%.2f%% of its size); %.2f s" %
      (d["files"], size, d["bytes_read"], d["new_raw_bytes"], d["new_stored_bytes"], recv,
       100.0 * recv / size, secs))
PY
}
s=$W/store
echo "1. d1 over ssh into a new store (new data):"
ing "$s" d1 "$W/d1" "$W/1.json" remote
echo "2. d2 over ssh, a second source with the same bytes (already in the store):"
ing "$s" d2 "$W/d2" "$W/2.json" remote
echo "3. the log over ssh (new compressible data):"
ing "$s" log "$W/log" "$W/3.json" remote
echo "4. re-ingest of unchanged d2: over ssh, then local (3 runs each)"
"$DFS_BIN/defrag-ingest" --progress=never --store "$W/ls" --name d2 "$W/d2" >/dev/null
for i in 1 2 3; do
	ing "$s" d2 "$W/d2" "$W/4r$i.json" remote
	ing "$W/ls" d2 "$W/d2" "$W/4l$i.json"
done
