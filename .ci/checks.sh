#!/usr/bin/env bash
# Mechanical checks of STYLE.md (run by tests/run.sh before building):
#  - banned functions (sprintf strcpy strcat strtok atoi strncpy);
#  - each dependency wrapped by one module: <fuse*> only in fs/ (and tests/tools),
#    rocksdb only in store/index.c, <zstd.h> only in store/codec.c, <xxhash.h> and
#    <openssl/*> only in store/fp.c, <magic.h> only in classify/mime.c, <yaml.h> only in
#    classify/rules.c, <jansson.h> only in tools/;
#  - store/ and classify/ never include fs/ or tools/ headers; store/ never classify/;
#    organize/ never includes tools/, fs/ or ingest/ headers, ingest/ never tools/, fs/
#    or organize/ (the compiler enforces it too: dfs_layer in CMakeLists.txt);
#    <blkid/*> only in ingest/srcfile.c;
#  - the engines (ingest/, organize/) never print to stdout or stderr: they return data,
#    and log through store/log.h;
#  - a .c file with a header of its own includes it first;
#  - clang-format (report only: the tree is formatted by hand to the kernel style).
set -u
cd "$(dirname "$0")/.."
bad=0
src=$(git ls-files '*.c' '*.h' 2>/dev/null || find store classify fs tools tests bench -name '*.[ch]')
say() { echo "checks: $*"; bad=1; }

for f in $src; do
	grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|strncpy)\s*\(' "$f" |
		grep -v 'snprintf\|vsnprintf' | while read -r l; do echo "checks: $f:$l: banned function"; done
done | grep . && bad=1

only() {	# only PATTERN ALLOWED-REGEX WHAT
	local hits
	hits=$(grep -lE "$1" $src 2>/dev/null | grep -vE "$2" || true)
	[ -z "$hits" ] || say "$3 outside its module: $hits"
}
only '#include <fuse' '^(fs/|tests/tools/)' '<fuse*.h>'
only '(rocksdb_|#include <rocksdb)' '^store/index\.c$' 'rocksdb'
# bench/ may call zstd and OpenSSL directly: they are the baselines it measures against;
# classify/container.c decompresses the first bytes of users' files (is it a tar?), not
# the store's data
only '#include <zstd\.h>' '^(store/codec\.c|bench/bench_store\.c|classify/container\.c)$' '<zstd.h>'
only '#include <(zlib|lzma|bzlib)\.h>' '^classify/container\.c$' '<zlib.h>/<lzma.h>/<bzlib.h>'
only '#include <(xxhash\.h|openssl/)' '^(store/fp\.c|bench/bench_store\.c)$' '<xxhash.h>/<openssl/*>'
only '#include <magic\.h>' '^classify/mime\.c$' '<magic.h>'
only '#include <yaml\.h>' '^classify/rules\.c$' '<yaml.h>'
only '#include <jansson' '^tools/' '<jansson.h>'
only '#include <blkid' '^ingest/srcfile\.c$' '<blkid/blkid.h>'
for f in $(echo "$src" | grep -E '^(store|classify)/'); do
	grep -qE '#include "(fs|tools)/' "$f" && say "$f includes fs/ or tools/"
done
for f in $(echo "$src" | grep -E '^store/'); do
	grep -qE '#include "classify/' "$f" && say "$f (store/) includes classify/"
done
for f in $(echo "$src" | grep -E '^(organize|ingest)/'); do
	eng=${f%%/*}
	other=ingest
	[ "$eng" = ingest ] && other=organize
	grep -qE "#include \"(tools|fs|$other)/" "$f" &&
		say "$f ($eng/) includes tools/, fs/ or $other/"
	grep -nE '\b(v?printf|puts|putchar|perror)\s*\(|\b(v?fprintf|fputs|fputc|putc|fwrite)\s*\(.*\b(stdout|stderr)\b' "$f" |
		while read -r l; do echo "checks: $f:$l: $eng/ prints (use dfs_log)"; done | grep . && bad=1
done
for f in $(echo "$src" | grep -E '\.c$'); do
	h=${f%.c}.h
	[ -f "$h" ] || continue
	first=$(grep -m1 '^#include' "$f")
	case "$first" in
	*"\"$(basename "$h")\""*) ;;
	*) say "$f does not include its own header first ($first)";;
	esac
done
if command -v clang-format >/dev/null && [ -f .clang-format ]; then
	n=$(for f in $(echo "$src" | grep -E '^(store|classify|fs|tools)/'); do
		clang-format --dry-run "$f" 2>&1 | grep -c 'warning:' ; done | awk '{s+=$1} END {print s+0}')
	echo "checks: clang-format: $n lines differ from .clang-format (report only)"
fi
[ $bad = 0 ] && echo "checks: ok"
exit $bad
