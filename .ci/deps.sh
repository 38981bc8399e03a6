#!/usr/bin/env bash
# Installs every build and test dependency of defragfs on Debian 12 (idempotent, quiet).
# Run as root. Skips apt entirely when everything is already present.
set -eu
pkgs="build-essential cmake pkg-config git \
 libfuse3-dev fuse3 librocksdb-dev libzstd-dev zlib1g-dev libbz2-dev liblzma-dev libxxhash-dev libmagic-dev \
 libssl-dev libyaml-dev libjansson-dev libblkid-dev libacl1-dev libcurl4-openssl-dev \
 acl attr e2fsprogs xxd file kmod procps psmisc util-linux util-linux-extra zstd xz-utils bzip2 sqlite3 \
 openssh-server openssh-client debhelper dpkg-dev fakeroot python3 jq \
 restic borgbackup python3-pyfuse3 squashfs-tools squashfuse casync \
 ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl iproute2"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: need root to install:$missing" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# /dev/fuse must exist for the mount tests (containers sometimes lack the node).
if [ ! -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
	modprobe fuse 2>/dev/null || true
	[ -e /dev/fuse ] || mknod -m 666 /dev/fuse c 10 229 2>/dev/null || true
fi
