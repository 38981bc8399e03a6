#!/usr/bin/env bash
# What classification costs ingest (issue 5: no more than 5% of ingest time).
#   bash bench/bench_classify.sh [BUILD_DIR] [COPIES] [CORPUS] [ROUNDS]
# Corpus (page cache warm), COPIES copies of:
#   small  /usr/share/doc, /usr/include and /usr/share/perl5 as loose files (small text
#          files: the worst case for the organizer, whose cost is per file)
#   mixed  the same plus /usr/bin and the shared libraries librocksdb and libLLVM when
#          present (the "mixed" corpus of ../shared/notes/performance.md: text and
#          binaries)
# plus, in both, generated units (git working trees, a node_modules tree, __pycache__
# dirs, a Maven repository, a PostgreSQL data dir).
# Each round ingests the corpus into an empty store twice, in turn: with
# --no-organize (the baseline: no classification, no MIME types) and as usual; the
# difference of the two wall times over the baseline is what classification adds (the
# headline: the median of the rounds' differences).
# defrag-ingest --json also reports the wall time of the organized-tree build
# (organize_seconds: unit detection, rules, placement, its commit) and the libmagic
# calls and their thread CPU time in the ingest workers. A no-change re-ingest and a
# defrag-reclassify of the same store are timed too. ROUNDS rounds (default 9); the
# order of the pair alternates.
# The tree's figures (issue 22): after the rounds, the corpus is ingested once more into
# a fresh store, mounted, and bench/tree_figures.py reads every file's category and
# origins from the mount: source directories split across top-level categories, files
# in unsorted/, files per category. With BASE_BUILD=DIR (a build of another commit, e.g.
# the one before issue 22) the same is done with DIR's binaries first: before and after.
set -eu
# the corpora sit beside the stores, on their filesystem (defrag-ingest(8), Guards)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1
build=${1:-build}
copies=${2:-3}
corpus=${3:-small}
rounds=${4:-9}
case $corpus in small|mixed) ;; *) echo "CORPUS: small or mixed" >&2; exit 2 ;; esac
bin=$(cd "$build/bin" && pwd)
w=$(mktemp -d /tmp/defragfs-bench-cls.XXXXXX)
trap 'rm -rf "$w"' EXIT
src=$w/src
for i in $(seq 1 "$copies"); do
	mkdir -p "$src/c$i"
	cp -a /usr/share/doc "$src/c$i/doc"
	cp -a /usr/include "$src/c$i/include"
	[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$src/c$i/perl5"
	if [ "$corpus" = mixed ]; then
		cp -a /usr/bin "$src/c$i/bin"
		mkdir -p "$src/c$i/lib"
		for l in /usr/lib/x86_64-linux-gnu/librocksdb.so.* /usr/lib/*/libLLVM-*.so.1; do
			[ -f "$l" ] && [ ! -L "$l" ] && cp -a "$l" "$src/c$i/lib/"
		done
	fi
	r=$src/c$i/projects/repo
	mkdir -p "$r/src"
	seq 1 5000 >"$r/src/data.txt"
	git -C "$r" init -q && git -C "$r" -c user.name=b -c user.email=b@b add -A &&
		git -C "$r" -c user.name=b -c user.email=b@b commit -qm x
	mkdir -p "$src/c$i/app/node_modules/left-pad" "$src/c$i/app/__pycache__"
	echo '{"name":"left-pad","version":"1.3.0"}' >"$src/c$i/app/node_modules/left-pad/package.json"
	echo 'module.exports = 1' >"$src/c$i/app/node_modules/left-pad/index.js"
	head -c 3000 /dev/urandom >"$src/c$i/app/__pycache__/m.cpython-311.pyc"
	m=$src/c$i/home/.m2/repository/org/x/lib/1.0
	mkdir -p "$m" && head -c 50000 /dev/urandom >"$m/lib-1.0.jar"
	echo '<project/>' >"$m/lib-1.0.pom"
	pg=$src/c$i/var/lib/postgresql/15/main
	mkdir -p "$pg/base/1" "$pg/global"
	echo 15 >"$pg/PG_VERSION"
	head -c 8192 /dev/zero >"$pg/base/1/1259"
done
files=$(find "$src" -type f | wc -l)
mib=$(du -sm "$src" | cut -f1)
echo "corpus $corpus: $files files, $mib MiB" >&2
cat "$(find "$src" -type f | head -n 1)" >/dev/null
find "$src" -type f -exec cat {} + >/dev/null	# warm the page cache

# MIME types are computed by the ingest workers from bytes they read anyway; --json
# reports the libmagic calls and the thread CPU time they took (mime_cpu_seconds, summed
# over the workers). Against the ingest's wall time that is an upper bound of what they
# add (all of it, were they on the critical path with one core); with the two workers of
# this machine about half of it.
field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" "$2" | head -n 1; }
base_all= with_all= diffs= cpu_base= cpu_with=
TIMEFORMAT='%U %S'
for r in $(seq 1 "$rounds"); do
	order="base with"
	[ $((r % 2)) = 0 ] && order="with base"
	for k in $order; do
		# the previous run's writes are on disk, not competing with this one's
		sync
		if [ $k = base ]; then
			rm -rf "$w/sb"
			{ time "$bin/defrag-ingest" --store "$w/sb" --name corpus --progress=never \
				--json --no-organize "$src" >"$w/jb"; } 2>"$w/tb"
		else
			rm -rf "$w/s"
			{ time "$bin/defrag-ingest" --store "$w/s" --name corpus --progress=never \
				--json "$src" >"$w/j"; } 2>"$w/tw"
		fi
	done
	rm -rf "$w/sb"
	"$bin/defrag-ingest" --store "$w/s" --name corpus --progress=never --json "$src" >"$w/j2"
	grep -q '"organize_skipped": true' "$w/j2" || echo "run $r: the no-change re-ingest rebuilt the tree" >&2
	eb=$(field elapsed_seconds "$w/jb")
	el=$(field elapsed_seconds "$w/j")
	org=$(field organize_seconds "$w/j")
	mc=$(field mime_calls "$w/j")
	ms=$(field mime_cpu_seconds "$w/j")
	el2=$(field elapsed_seconds "$w/j2")
	org2=$(field organize_seconds "$w/j2")
	cb=$(awk '{ print $1 + $2 }' "$w/tb")
	cw=$(awk '{ print $1 + $2 }' "$w/tw")
	t0=$(date +%s.%N)
	"$bin/defrag-reclassify" --store "$w/s" >/dev/null
	t1=$(date +%s.%N)
	re=$(echo "$t1 - $t0" | bc -l)
	d=$(echo "100 * ($el - $eb) / $eb" | bc -l)
	base_all="$base_all $eb" with_all="$with_all $el" diffs="$diffs $d"
	cpu_base="$cpu_base $cb" cpu_with="$cpu_with $cw"
	[ $r = 1 ] && {
		echo "| run | files | MiB | ingest --no-organize s | ingest s | classification adds |" \
			"CPU s (--no-organize / as usual) | organize s | organize / ingest |" \
			"libmagic calls | libmagic CPU s | no-change re-ingest s (organize s) |" \
			"reclassify s |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	}
	printf '| %s | %s | %s | %.2f | %.2f | %+.1f%% | %.2f / %.2f | %.2f | %.1f%% | %s | %.2f | %.2f (%.3f) | %.2f |\n' \
		"$r" "$files" "$mib" "$eb" "$el" "$d" "$cb" "$cw" \
		"$org" "$(echo "100 * $org / $el" | bc -l)" "$mc" "$ms" "$el2" "$org2" "$re"
done
# The headline is the median of the rounds' own differences: the two runs of a round
# run back to back, under the same load, and the machine's load changes from round to
# round by more than what is measured. The medians of each column, and of the CPU time
# (user + system, which the scheduling noise touches less), are given beside it.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mb=$(echo "$base_all" | median)
mw=$(echo "$with_all" | median)
md=$(echo "$diffs" | median)
mcb=$(echo "$cpu_base" | median)
mcw=$(echo "$cpu_with" | median)
printf '\nclassification adds %+.1f%% (median of the %s rounds'"'"' differences)\n' "$md" "$rounds"
printf 'medians: ingest --no-organize %.2f s, ingest %.2f s (%+.1f%%); CPU %.2f s and %.2f s (%+.1f%%)\n' \
	"$mb" "$mw" "$(echo "100 * ($mw - $mb) / $mb" | bc -l)" "$mcb" "$mcw" \
	"$(echo "100 * ($mcw - $mcb) / $mcb" | bc -l)"

# the tree's figures, from a mount (before: BASE_BUILD's binaries; after: these)
figures() {	# figures BIN_DIR LABEL
	local b=$1 st=$w/fig-store mnt=$w/fig-mnt pid
	rm -rf "$st"
	mkdir -p "$mnt"
	"$b/defrag-ingest" --store "$st" --name corpus --progress=never "$src" >/dev/null
	"$b/defragfs" "$st" "$mnt" -f >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 1 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
	echo "tree figures, $2:"
	python3 "$(dirname "$0")/tree_figures.py" "$mnt" | sed 's/^/  /'
	fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt"
	wait "$pid" || true
	rm -rf "$st"
}
if [ -n "${BASE_BUILD:-}" ]; then
	figures "$(cd "$BASE_BUILD/bin" && pwd)" "before ($BASE_BUILD)"
fi
figures "$bin" "after ($build)"
