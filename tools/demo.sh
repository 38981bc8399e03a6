#!/usr/bin/env bash
# README command 1: installs the dependencies, builds, and runs the main job on a real
# sample of this machine: three "drives" made of copies of system trees (with the
# duplication real backups have), ingested into a store, mounted, shown, unmounted.
set -eu
cd "$(dirname "$0")/.."
bash .ci/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
bin=$PWD/build/bin
demo=${DEMO_DIR:-/tmp/defragfs-demo}
if mountpoint -q "$demo/organized" 2>/dev/null; then
	fusermount3 -u "$demo/organized" || umount -l "$demo/organized"
fi
rm -rf "$demo"
mkdir -p "$demo/drives/nvme1" "$demo/drives/nvme2" "$demo/drives/hdd0" "$demo/organized"

echo "== making three sample drives from /usr/share/doc, /usr/include, /usr/share/perl5"
cp -a /usr/share/doc "$demo/drives/nvme1/doc"
cp -a /usr/include "$demo/drives/nvme1/include"
# nvme2: a backup of nvme1 taken later (same trees, a few files changed), plus perl5
cp -a "$demo/drives/nvme1/." "$demo/drives/nvme2/backup-2024"
find "$demo/drives/nvme2/backup-2024/include" -name '*.h' | head -n 50 |
	while read -r f; do echo "/* edited */" >>"$f"; done
[ -d /usr/share/perl5 ] && cp -a /usr/share/perl5 "$demo/drives/nvme2/perl5"
# hdd0: a tarball of the docs next to an old copy
cp -a /usr/share/doc "$demo/drives/hdd0/old-doc"
tar -C /usr/share -cf "$demo/drives/hdd0/doc-backup.tar" doc
du -sh "$demo/drives"/*

echo "== ingesting"
# the sample "drives" are directories beside the store, on its filesystem: said so
for d in nvme1 nvme2 hdd0; do
	"$bin/defrag-ingest" --store "$demo/store" --progress=never --allow-same-filesystem \
		"$demo/drives/$d"
done

echo "== mounting at $demo/organized"
"$bin/defragfs" "$demo/store" "$demo/organized"
trap 'fusermount3 -u "$demo/organized" 2>/dev/null || umount -l "$demo/organized"' EXIT
echo "-- ls $demo/organized"
ls -la "$demo/organized"
echo "-- ls $demo/organized/.sources   (hidden from ls of the root, reachable by name)"
ls "$demo/organized/.sources"
echo "-- the organized tree, two levels"
find "$demo/organized" -maxdepth 2 -type d | sort | head -n 40
echo "-- space"
du -sh --apparent-size "$demo/organized"
du -sh "$demo/store"
# each file once: the organized tree's apparent size against its distinct content
python3 bench/redundancy.py "$demo/organized"
"$bin/defrag-stat" --store "$demo/store"
echo "-- a file and its origins"
f=$(find "$demo/organized" -type f -name 'copyright' | head -n 1)
if [ -n "$f" ]; then
	echo "$f"
	getfattr -d -m 'user.defrag' "$f" 2>/dev/null || true
fi
echo "-- proving nvme1 is in the store before wiping it"
"$bin/defrag-verify" --store "$demo/store" --against "$demo/drives/nvme1" || true
"$bin/defrag-stat" --store "$demo/store" | grep -A6 'source nvme1' || true
