#!/usr/bin/env bash
# A remote ingest over a link shaped to a rate (issue 21): two network namespaces joined
# by a veth pair, each end's egress shaped with `tc qdisc ... tbf rate RATE`, sshd in the
# "server" namespace, defrag-ingest in the "client" one.
#   bash bench/bench_remote_link.sh [BUILD_DIR] [RATE] [MIB]   (as root; iproute2, sshd)
#   defaults: build-rel, 1gbit, 1024 (MiB of new data)
# Figures:
#   1. the link itself: a plain TCP stream of 512 MiB through it (python sockets), its rate;
#   2. the same remote ingest without shaping (the remote's read+chunk+hash+compress and
#      the local side's check-and-store speed, the other bound of the issue's target), and
#      the same data ingested locally (no ssh) for reference;
#   3. the remote ingest of MIB of new random data (incompressible: each byte crosses)
#      into a new store over the shaped link: seconds, bytes_received / s against the
#      link rate;
#   4. bytes_received (the protocol's own count) against the veth's counters
#      (/sys/class/net/IF/statistics in the client namespace: rx_bytes, which add TCP/IP
#      headers, ssh's framing and MACs) for run 3.
# The load average is printed with each figure (the machine may be shared).
set -eu
build=${1:-build-rel}
rate=${2:-1gbit}
mib=${3:-1024}
DFS_BIN=$(cd "$build/bin" && pwd)
export DEFRAGFS_ALLOW_SAME_FILESYSTEM=1	# the data sits beside the stores
W=$(mktemp -d /tmp/defragfs-bench-link.XXXXXX)
ns_c=dfs-c-$$ ns_s=dfs-s-$$
net=10.211.$(($$ % 250)).
sshd_pid=
cleanup() {
	[ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null
	ip netns del "$ns_c" 2>/dev/null || true
	ip netns del "$ns_s" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- the link: client 1 <-> server 2, both egresses shaped ----
ip netns add "$ns_c"
ip netns add "$ns_s"
ip link add vc-$$ netns "$ns_c" type veth peer name vs-$$ netns "$ns_s"
ip -n "$ns_c" addr add "${net}1/30" dev vc-$$
ip -n "$ns_s" addr add "${net}2/30" dev vs-$$
for n in "$ns_c" "$ns_s"; do ip -n "$n" link set lo up; done
ip -n "$ns_c" link set vc-$$ up
ip -n "$ns_s" link set vs-$$ up
shape() {	# shape RATE|off
	local r=$1 n d
	for x in "$ns_c vc-$$" "$ns_s vs-$$"; do
		read -r n d <<<"$x"
		tc -n "$n" qdisc del dev "$d" root 2>/dev/null || true
		# a burst of 4 ms at 1 Gbit/s (tbf needs at least rate/HZ), a queue of 50 ms
		[ "$r" = off ] || tc -n "$n" qdisc add dev "$d" root tbf rate "$r" burst 512kb latency 50ms
	done
}

# ---- sshd in the server namespace, keys made here ----
ssh-keygen -q -t ed25519 -N '' -f "$W/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$W/userkey"
cp "$W/userkey.pub" "$W/authorized_keys"
chmod 600 "$W/authorized_keys"
mkdir -p /run/sshd
cat >"$W/sshd_config" <<EOF
Port 22
ListenAddress ${net}2
HostKey $W/hostkey
AuthorizedKeysFile $W/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $W/sshd.pid
EOF
ip netns exec "$ns_s" /usr/sbin/sshd -D -e -f "$W/sshd_config" 2>"$W/sshd.log" &
sshd_pid=$!
rsh="ssh -i $W/userkey -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
for _ in $(seq 1 50); do
	ip netns exec "$ns_c" $rsh root@${net}2 true 2>/dev/null && break
	sleep 0.1
done

# ---- the data: MIB of random bytes in 64 MiB files, in the page cache ----
mkdir -p "$W/src"
for i in $(seq 1 $((mib / 64))); do head -c 64M /dev/urandom >"$W/src/f$i"; done
cat "$W/src"/* >/dev/null
size=$(du -sb "$W/src" | cut -f1)
echo "data: $size bytes of random bytes in $((mib / 64)) files; link: $rate; $(nproc) CPUs"

stream() {	# a plain TCP stream of 512 MiB, server -> client: its rate in MB/s
	ip netns exec "$ns_s" python3 - "${net}2" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
c, _ = s.accept()
buf = b"\0" * (1 << 20)
for _ in range(512):
    c.sendall(buf)
c.close()
PY
	sleep 0.5
	ip netns exec "$ns_c" python3 - "${net}2" <<'PY'
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5001))
t0, n = time.time(), 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
print("%.1f" % (n / (time.time() - t0) / 1e6))
PY
	wait
}

counters() {	# rx_bytes tx_bytes of the client's end
	ip netns exec "$ns_c" sh -c "cat /sys/class/net/vc-$$/statistics/rx_bytes /sys/class/net/vc-$$/statistics/tx_bytes" | tr '\n' ' '
}

ingest() {	# ingest STORE JSON: prints seconds; the run's JSON in JSON
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$ns_c" "$DFS_BIN/defrag-ingest" --progress=never --no-organize --json \
		-e "$rsh" --remote-cmd "$DFS_BIN/defrag-ingest" --store "$1" --name src \
		"ssh://root@${net}2$W/src" >"$2"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

report() {	# report LABEL JSON SECONDS
	python3 - "$@" "$size" <<'PY'
import json, sys
label, f, secs, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
d = json.load(open(f))
r = d["bytes_received"]
print("%s: %.2f s, %d bytes received: %.1f MB/s on the wire (%.1f MB/s of data)" %
      (label, secs, r, r / secs / 1e6, size / secs / 1e6))
PY
}

shape "$rate"
echo "1. the shaped link, a plain TCP stream: $(stream) MB/s (load $(load))"
shape off
ingest "$W/s0" "$W/0.json" >"$W/0.secs"
report "2. unshaped (the remote's and the local side's own speed) (load $(load))" "$W/0.json" "$(cat "$W/0.secs")"
rm -rf "$W/s0"
t0=$(date +%s.%N)
"$DFS_BIN/defrag-ingest" --progress=never --no-organize --store "$W/sl" --name src "$W/src" >/dev/null
t1=$(date +%s.%N)
echo "   the same data ingested locally (no ssh): $(awk -v a="$t0" -v b="$t1" -v s="$size" \
	'BEGIN { printf "%.2f s, %.1f MB/s", b - a, s / (b - a) / 1e6 }') (load $(load))"
rm -rf "$W/sl"
shape "$rate"
c0=$(counters)
ingest "$W/s1" "$W/1.json" >"$W/1.secs"
c1=$(counters)
report "3. over the $rate link (load $(load))" "$W/1.json" "$(cat "$W/1.secs")"
python3 - "$W/1.json" "$rate" "$(cat "$W/1.secs")" $c0 $c1 <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
m = re.match(r"(\d+)([kmg]?)bit", sys.argv[2])
link = int(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)] / 8
secs = float(sys.argv[3])
rx0, tx0, rx1, tx1 = (int(x) for x in sys.argv[4:8])
r = d["bytes_received"]
print("   bytes_received / s = %.1f%% of the link (%.1f MB/s)" % (100 * r / secs / link, link / 1e6))
print("4. veth (client end) during run 3: rx %d bytes, tx %d bytes; bytes_received %d = "
      "%.2f%% of rx (the rest: TCP/IP headers, ssh's framing and MACs)" %
      (rx1 - rx0, tx1 - tx0, r, 100 * r / (rx1 - rx0)))
PY
