#!/usr/bin/env bash
# Remote sources at scale (issue 21, "a re-ingest of an unchanged 1M-file remote tree,
# time / the same re-ingest local"), through a real sshd on the loopback address
# (tests/integration/lib.sh's dfs_sshd).
#   bash bench/bench_remote_reingest.sh [BUILD_DIR] [NFILES]    (as root; openssh-server)
# Corpus: NFILES (default 1,000,000) small distinct files, 1,000 to a directory, in
# directories of 100 (page cache warm: the re-ingest is what is measured, not the disk).
# Each side gets its own store: the tree ingested once over ssh into one and locally
# into the other, then re-ingested unchanged, 3 times each, alternating. Printed: each
# run's wall time, what was read and received, and the peak RSS of the local process
# and of the remote one (defrag-ingest --serve, run under /usr/bin/time by the remote
# command); then the median remote / local ratio.
set -eu
build=${1:-build}
nfiles=${2:-1000000}
DFS_BIN=$(cd "$build/bin" && pwd)
export DFS_BIN
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the corpus sits beside the stores
W=$(mktemp -d /tmp/defragfs-bench-reingest.XXXXXX)
export W
_dfs_pass=0 _dfs_fail=0
_dfs_pids=()
. "$(dirname "$0")/../tests/integration/lib.sh"
trap '_dfs_cleanup' EXIT
dfs_sshd
python3 - "$W/tree" "$nfiles" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = "%s/g%03d/d%05d" % (root, i // 100000, i // 1000)
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open("%s/f%04d.txt" % (d, i % 1000), "w") as f:
        f.write("file %d of the remote tree\n" % i)
PY
echo "tree: $(find "$W/tree" -type f | wc -l) files in $(find "$W/tree" -type d | wc -l) directories"
cat >"$W/serve.sh" <<EOF
#!/bin/sh
exec /usr/bin/time -f %M -o "$W/serve.rss" "$DFS_BIN/defrag-ingest" "\$@"
EOF
chmod +x "$W/serve.sh"
run() {	# run LABEL STORE JSON [remote]
	local t0 t1 rss
	rm -f "$W/serve.rss"
	t0=$(date +%s.%N)
	if [ "${4:-}" = remote ]; then
		rss=$( { /usr/bin/time -f %M "$DFS_BIN/defrag-ingest" --progress=never --store "$2" \
			--name tree -e "$rsh" --remote-cmd "$W/serve.sh" --json \
			"ssh://root@127.0.0.1:$port$W/tree" >"$3"; } 2>&1 | tail -n 1)
	else
		rss=$( { /usr/bin/time -f %M "$DFS_BIN/defrag-ingest" --progress=never --store "$2" \
			--name tree --json "$W/tree" >"$3"; } 2>&1 | tail -n 1)
	fi
	t1=$(date +%s.%N)
	python3 - "$3" "$t0" "$t1" "$1" "$rss" "$(cat "$W/serve.rss" 2>/dev/null || echo 0)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
line = "%-14s %8.2f s; %d files, read %d bytes, received %d; peak RSS local %d MiB" % (
    sys.argv[4], secs, d["files"], d["bytes_read"], d.get("bytes_received", 0),
    int(sys.argv[5]) // 1024)
if int(sys.argv[6]):
    line += ", remote %d MiB" % (int(sys.argv[6]) // 1024)
print(line)
print("TIME %s %.3f" % (sys.argv[4].split()[0], secs), file=sys.stderr)
PY
}
echo "uptime: $(uptime)"
run "first remote" "$W/rs" "$W/r0.json" remote 2>/dev/null
run "first local" "$W/ls" "$W/l0.json" 2>/dev/null
for i in 1 2 3; do
	run "remote re-ingest" "$W/rs" "$W/r$i.json" remote 2>>"$W/times"
	run "local re-ingest" "$W/ls" "$W/l$i.json" 2>>"$W/times"
done
echo "uptime: $(uptime)"
python3 - "$W/times" <<'PY'
import statistics, sys
t = {"remote": [], "local": []}
for line in open(sys.argv[1]):
    if line.startswith("TIME "):
        _, k, v = line.split()
        t[k].append(float(v))
r, l = statistics.median(t["remote"]), statistics.median(t["local"])
print("re-ingest of the unchanged tree, medians: remote %.2f s, local %.2f s: %.2fx" % (r, l, r / l))
PY
