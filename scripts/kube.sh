#!/usr/bin/env bash
# Find or build the binaries of a single-node Kubernetes, and the Pulumi
# Kubernetes provider plugin, from the Go module proxy.
#
# Contract:
#   - Prints exactly one line on stdout: the absolute path of a directory that
#     holds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#     kube-proxy, kubectl, coredns, pause, pause-image.tar (an OCI image layout
#     of the pause binary, for `ctr images import`) and
#     pulumi-resource-kubernetes. Progress goes to stderr.
#   - Idempotent. The result lives in
#     ${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/kube/<versions>/bin and is
#     reused once its stamp file exists. A build runs in a staging directory
#     beside bin/ and is moved into place whole; the stamp is written last.
#   - On failure it exits non-zero, says which component failed, and leaves
#     any complete earlier build untouched. Go's module and build caches keep
#     what was already compiled, so a second try is much faster.
#   - Go builds run under `nice -n 19` (MODELOPS_NICE overrides it): the
#     machines are shared, and a cold build takes tens of minutes on two cores.
#
# docs/kubernetes.md explains the choices below; the facts behind them are in
# docs/pulumi-engine.md (the provider) and the notes the docs cite.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

# Kubelet 1.35 and later refuse cgroup v1 by default; 1.34 runs on this
# machine's cgroup v1 controllers with `failCgroupV1: false`.
k8s_version=1.34.4
# The staging modules are released as v0.<minor>.<patch> of the same release.
staging_version=v0.${k8s_version#1.}
coredns_version=v1.14.7
# Only this pseudo-version of the provider module is served. Its commit is the
# sdk/v4.25.0 release's, so it speaks what pip `pulumi-kubernetes==4.25.0` asks for.
provider_module=github.com/pulumi/pulumi-kubernetes/provider/v4
provider_pseudo=v4.0.0-20260115033456-f47bc2d6f199
provider_version=4.25.0
pause_image_name=modelops.local/pause:3.10

nice_level=${MODELOPS_NICE:-19}
cache_root=${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/kube
version_dir=$cache_root/k8s${k8s_version}_coredns${coredns_version#v}_pk${provider_version}
bin_dir=$version_dir/bin
stamp=$version_dir/stamp

k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
required_files=("${k8s_commands[@]}" coredns pause pause-image.tar pulumi-resource-kubernetes)

log() { printf 'kube.sh: %s\n' "$*" >&2; }

die() {
    died=1
    log "error: $*"
    exit 1
}

has_all() {
    local f
    for f in "${required_files[@]}"; do
        [ -s "$1/$f" ] || return 1
    done
}

quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

# Static binaries; -mod=mod resolves imports the wrapper module does not list yet.
gobuild() { GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n "$nice_level" go build "$@"; }

new_wrapper_module() {
    mkdir -p "$1"
    (cd "$1" && go mod init "modelops.invalid/$2" >/dev/null 2>&1)
}

# Seconds each component took, for the stamp and docs/benchmarks.md.
timings=()
timed() {
    local label=$1 start=$SECONDS
    shift
    "$@"
    timings+=("$label $((SECONDS - start))s")
    log "$label done in $((SECONDS - start)) s"
}

# k8s.io/kubernetes points every k8s.io/* staging module at ./staging/... in
# its go.mod. As a dependency those replaces are ignored, so the wrapper module
# repeats each one, at the released staging version.
build_k8s() {
    local staging=$1 work=$2 dir=$work/k8s m
    local -a replaces=()
    new_wrapper_module "$dir" kube
    (
        cd "$dir"
        quietly go mod download -json "k8s.io/kubernetes@v$k8s_version" >/dev/null
        local mod
        mod=$(go mod download -json "k8s.io/kubernetes@v$k8s_version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
        [ -f "$mod" ] || die "cannot find the go.mod of k8s.io/kubernetes@v$k8s_version"
        while read -r m; do
            replaces+=(-replace "$m=$m@$staging_version")
        done < <(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*|\1|p' "$mod")
        [ "${#replaces[@]}" -gt 20 ] || die "found only ${#replaces[@]} staging replaces in $mod"
        go mod edit -require "k8s.io/kubernetes@v$k8s_version" "${replaces[@]}"
        # Not `go mod tidy`: two sample-* staging modules answer 403. -mod=mod
        # below resolves only what the commands import, and they import neither.
        local minor=${k8s_version#*.}
        minor=${minor%%.*}
        local ld="-s -w"
        local pkg
        for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
            ld+=" -X $pkg.gitVersion=v$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
            ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
        done
        for m in "${k8s_commands[@]}"; do
            timed "$m" gobuild -ldflags "$ld" -o "$staging/$m" "k8s.io/kubernetes/cmd/$m"
        done
        printf '%s\n' "${timings[@]}" >"$staging/.timings-k8s"
    ) >&2
    local have
    have=$("$staging/kube-apiserver" --version)
    [ "$have" = "Kubernetes v$k8s_version" ] || die "kube-apiserver reports '$have', expected Kubernetes v$k8s_version"
}

build_coredns() {
    local staging=$1 work=$2 dir=$work/coredns
    new_wrapper_module "$dir" coredns
    (
        cd "$dir"
        quietly go get "github.com/coredns/coredns@$coredns_version"
        gobuild -ldflags "-s -w" -o "$staging/coredns" github.com/coredns/coredns
    ) >&2
}

# A static pause binary and an OCI image layout holding it. No image can be
# pulled here, so containerd's sandbox image must come from this tarball.
build_pause() {
    local staging=$1 work=$2 dir=$work/pause
    mkdir -p "$dir"
    cat >"$dir/pause.c" <<'EOF'
/* The pod sandbox's only process: sleep until told to stop, reap orphans. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &term, NULL);
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
    return 1;
}
EOF
    command -v gcc >/dev/null || die "gcc is needed for the pause binary (apt-get install gcc libc6-dev)"
    gcc -Os -static -o "$dir/pause" "$dir/pause.c"
    strip "$dir/pause"
    install -m 755 "$dir/pause" "$staging/pause"
    "$script_dir/oci-image.sh" "$pause_image_name" "$staging/pause" "$staging/pause-image.tar"
    printf '%s\n' "$pause_image_name" >"$staging/pause-image.name"
}

# The provider module's go.mod replaces its sdk with ../sdk (refused by
# `go install`), and its schema-embed.json / terraform-mapping-embed.json are
# generated files missing from the module zip. So: copy the source, point the
# replace at the released sdk, generate the two files, build.
build_provider() {
    local staging=$1 work=$2 dir=$work/provider src
    src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$provider_module@$provider_pseudo" \
        | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -d "$src" ] || die "cannot download $provider_module@$provider_pseudo"
    cp -r "$src" "$dir"
    chmod -R u+w "$dir"
    (
        cd "$dir"
        go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@v$provider_version"
        GOFLAGS=-mod=mod quietly go mod download
        cd cmd/pulumi-resource-kubernetes
        VERSION=$provider_version GOFLAGS=-mod=mod nice -n "$nice_level" go run generate.go
        cd "$dir"
        gobuild -ldflags "-s -w -X $provider_module/pkg/version.Version=$provider_version" \
            -o "$staging/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes
    ) >&2
}

staging=''
work=''
died=''

on_exit() {
    local rc=$?
    rm -rf -- ${staging:+"$staging"} ${work:+"$work"}
    if [ "$rc" -ne 0 ] && [ -n "$staging" ] && [ -z "$died" ]; then
        log "error: building the cluster binaries failed (see above); a complete earlier build is untouched"
    fi
}

main() {
    if [ -f "$stamp" ] && has_all "$bin_dir"; then
        log "using cached build in $bin_dir"
        printf '%s\n' "$bin_dir"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "no Go toolchain: install Go 1.25 or later"
    mkdir -p "$version_dir"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$version_dir/lock"
        flock 9
        if [ -f "$stamp" ] && has_all "$bin_dir"; then
            printf '%s\n' "$bin_dir"
            return 0
        fi
    fi
    export GOWORK=off
    staging=$(mktemp -d "$version_dir/staging.XXXXXX")
    chmod 755 "$staging"
    work=$(mktemp -d "${TMPDIR:-/tmp}/modelops-kube-build.XXXXXX")
    trap on_exit EXIT

    log "building Kubernetes v$k8s_version, CoreDNS $coredns_version and pulumi-resource-kubernetes $provider_version"
    log "from the Go module proxy (first run only; tens of minutes on two cores)"
    local start=$SECONDS
    build_k8s "$staging" "$work"
    timed coredns build_coredns "$staging" "$work"
    timed pause build_pause "$staging" "$work"
    timed pulumi-resource-kubernetes build_provider "$staging" "$work"
    local total=$((SECONDS - start))

    {
        printf 'kubernetes v%s (staging %s)\ncoredns %s\npulumi-resource-kubernetes %s (%s@%s)\n%s\n' \
            "$k8s_version" "$staging_version" "$coredns_version" "$provider_version" "$provider_module" \
            "$provider_pseudo" "$(go version)"
        printf 'build seconds: %s\n' "$total"
        cat "$staging/.timings-k8s"
        printf '%s\n' "${timings[@]}"
    } >"$staging/.stamp"
    rm -f -- "$staging/.timings-k8s"
    rm -f -- "$stamp"
    rm -rf -- "$bin_dir"
    mv -- "$staging/.stamp" "$version_dir/stamp.new"
    mv -- "$staging" "$bin_dir"
    staging=''
    # Written last: its presence means bin/ is complete.
    mv -- "$version_dir/stamp.new" "$stamp"
    log "built into $bin_dir in $total s"
    printf '%s\n' "$bin_dir"
}

main "$@"
