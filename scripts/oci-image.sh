#!/usr/bin/env bash
# Package one static binary as a single-layer OCI image layout tarball, for `ctr images import`.
#
#   scripts/oci-image.sh NAME BINARY OUT.tar [USER]
#
# NAME is the image reference containerd records (io.containerd.image.name);
# the binary becomes /<basename> and the entrypoint. USER defaults to 65535:65535.
# Reproducible: the layer is sorted, root-owned, with zero mtimes, so the same
# binary always gives the same digests. Writes OUT.tar atomically.
# No image can be pulled on our machines, so every image a local cluster runs
# comes from here.
set -euo pipefail

name=${1:?usage: oci-image.sh NAME BINARY OUT.tar [USER]}
binary=${2:?usage: oci-image.sh NAME BINARY OUT.tar [USER]}
out=${3:?usage: oci-image.sh NAME BINARY OUT.tar [USER]}
user=${4:-65535:65535}
base=$(basename -- "$binary")

work=$(mktemp -d "${TMPDIR:-/tmp}/oci-image.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/root" "$work/layout/blobs/sha256"
install -m 755 "$binary" "$work/root/$base"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/root" -cf "$work/layer.tar" "./$base"

sha() { sha256sum "$1" | cut -d' ' -f1; }
layer_sha=$(sha "$work/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/%s"],"User":"%s"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$base" "$user" "$layer_sha" >"$work/config.json"
config_sha=$(sha "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config_sha" "$(stat -c %s "$work/config.json")" "$layer_sha" "$(stat -c %s "$work/layer.tar")" >"$work/manifest.json"
manifest_sha=$(sha "$work/manifest.json")
mv "$work/layer.tar" "$work/layout/blobs/sha256/$layer_sha"
mv "$work/config.json" "$work/layout/blobs/sha256/$config_sha"
mv "$work/manifest.json" "$work/layout/blobs/sha256/$manifest_sha"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_sha" "$(stat -c %s "$work/layout/blobs/sha256/$manifest_sha")" "$name" "${name##*:}" >"$work/layout/index.json"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/layout" -cf "$work/image.tar" .
mv -- "$work/image.tar" "$out"
