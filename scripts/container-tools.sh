#!/usr/bin/env bash
# Install what the worker-image tests need, and build their base image once.
#
# Contract:
#   - Installs the Debian packages `docker.io` (dockerd, containerd, runc) and
#     `mmdebstrap` when their commands are missing. The tests start their own
#     dockerd (harness/images.py); this script starts no daemon.
#   - Prints exactly one line on stdout: the absolute path of a root file system
#     tarball, ${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/base-images/<name>/rootfs.tar:
#     a minimal Debian bookworm with python3 (3.11), python3-venv and
#     ca-certificates. No public registry is reachable from the test machines,
#     so the tests push this tarball to their local registry as the base image.
#     Progress and timings go to stderr.
#   - Idempotent. Once `stamp` exists beside the tarball, a run does nothing.
#     Otherwise mmdebstrap writes into a staging directory, which is moved into
#     place whole and stamped last; a failed build leaves any earlier tarball
#     untouched and its staging directory is removed on exit.
#
# The tarball is for the local test registry only.
set -euo pipefail

BASE_NAME=bookworm-python3-v1
SUITE=bookworm
MIRROR=${MODELOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

cache_root=${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}
[[ $cache_root = /* ]] || cache_root=$PWD/$cache_root
base_dir=$cache_root/base-images/$BASE_NAME
tarball=$base_dir/rootfs.tar
stamp=$base_dir/stamp

log() { printf 'container-tools.sh: %s\n' "$*" >&2; }

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    start=$SECONDS
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "installed ${missing[*]} in $((SECONDS - start)) s"
fi

if [ -f "$stamp" ] && [ -f "$tarball" ]; then
    printf '%s\n' "$tarball"
    exit 0
fi

mkdir -p "$base_dir"
exec 9>"$base_dir.lock"
flock 9
if [ -f "$stamp" ] && [ -f "$tarball" ]; then
    printf '%s\n' "$tarball"
    exit 0
fi

staging=$(mktemp -d "$base_dir.staging.XXXXXX")
chmod 755 "$staging" # mktemp -d makes it 0700; the result is shared read-only
trap 'rm -rf -- "$staging"' EXIT
log "building the $SUITE base image with mmdebstrap (first run only; about 2 minutes)"
start=$SECONDS
# minbase + python3: what a slim official Python image holds, from Debian's own packages.
# The merged-usr hook keeps usrmerge (and with it perl) out; docs, man pages and
# locales are left out as in slim images.
$sudo mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$staging/rootfs.tar" "deb $MIRROR $SUITE main" >&2
elapsed=$((SECONDS - start))
log "mmdebstrap took $elapsed s ($(du -m "$staging/rootfs.tar" | cut -f1) MB)"

rm -rf -- "$base_dir"
mv -- "$staging" "$base_dir"
trap - EXIT
printf 'suite %s\nmirror %s\nmmdebstrap %s\nbuild seconds %s\n' "$SUITE" "$MIRROR" \
    "$(mmdebstrap --version 2>/dev/null | head -n1)" "$elapsed" >"$stamp"
printf '%s\n' "$tarball"
