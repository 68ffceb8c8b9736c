#!/usr/bin/env bash
# Install the third-party OCI tools the interop tests use to prove bundles are plain OCI artifacts:
#   oras   (the ORAS CLI, built from its Go module into a per-version cache outside the repo)
#   skopeo (Debian package)
# Idempotent; prints progress on stderr and links both into <repo>/.modelops/bin.
set -euo pipefail
ORAS_VERSION=v1.3.6
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/oras/$ORAS_VERSION/bin"
mkdir -p "$root/.modelops/bin"

if ! command -v oras >/dev/null 2>&1 && [ ! -x "$cache/oras" ]; then
    echo "interop-tools: building oras $ORAS_VERSION from the Go module proxy" >&2
    GOBIN="$cache" go install "oras.land/oras/cmd/oras@$ORAS_VERSION"
fi
oras_bin="$(command -v oras 2>/dev/null || echo "$cache/oras")"
[ "$oras_bin" = "$root/.modelops/bin/oras" ] || ln -sfn "$oras_bin" "$root/.modelops/bin/oras"

if ! command -v skopeo >/dev/null 2>&1; then
    echo "interop-tools: installing skopeo (Debian package)" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq skopeo >/dev/null
fi
