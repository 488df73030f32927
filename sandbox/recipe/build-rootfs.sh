#!/usr/bin/env bash
# Build the sandbox root filesystem: a minimal Debian (debootstrap minbase) with python3, stripped
# of package caches and docs, packed as a tarball for `docker import`.
# Usage: build-rootfs.sh OUT.tar   (needs root and debootstrap; env SANDBOX_MIRROR overrides the mirror)
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
suite=$(sed -n 's/^suite=//p' "$here/rootfs.txt")
mirror=${SANDBOX_MIRROR:-$(sed -n 's/^mirror=//p' "$here/rootfs.txt")}
packages=$(sed -n 's/^packages=//p' "$here/rootfs.txt")
root=$(mktemp -d /var/tmp/grpo-sandbox-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
log=$(mktemp)
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" > "$log" 2>&1; then
  tail -30 "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
# apt lists, caches and docs are not needed at run time and double the image size
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
# the unprivileged run user; numeric uid 10001 so no host user is ever matched
echo 'sandbox:x:10001:10001:sandbox:/work:/usr/sbin/nologin' >> "$root/etc/passwd"
echo 'sandbox:x:10001:' >> "$root/etc/group"
# scratch mount points: world-writable + sticky, because the engine copies the image dir's mode onto the tmpfs
install -d -m 1777 "$root/work"
chmod 1777 "$root/tmp"
tar --numeric-owner -C "$root" -cf "$out" .
