#!/usr/bin/env bash
# Find or build the Pulumi engine this repository runs against.
#
# Contract:
#   - Prints exactly one line on stdout: the absolute path of a directory that
#     holds `pulumi`, `pulumi-language-python`, `pulumi-language-python-exec`
#     and `pulumi-resource-pulumi-python`. Progress goes to stderr, so the
#     Makefile can do `PULUMI_BIN_DIR=$(scripts/pulumi.sh)`.
#   - Idempotent. A `pulumi` on PATH that is new enough, with the Python
#     language host beside it or on PATH, is used as is. Otherwise the engine is
#     built from the Go module proxy (no access to get.pulumi.com needed) into
#     ${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/pulumi/v<version>/bin, and
#     later runs reuse it once its stamp file exists.
#   - On failure it exits non-zero, says what failed and how to install Pulumi,
#     and leaves any complete earlier build untouched. A half-done build only
#     ever lives in a staging directory that is removed on exit.
#
# The pinned version lives in scripts/pulumi-version (the Makefile reads it
# too); pyproject.toml pins the pip package `pulumi` to the same version.
# docs/pulumi-engine.md explains the choices below.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
version=$(tr -d '[:space:]' <"$script_dir/pulumi-version")

# The Python language host is no longer published on the module proxy we can
# reach (its own module, .../sdk/python/cmd/pulumi-language-python/v3, answers
# 403). sdk/v3 v3.68.0 is the newest sdk release there whose module still
# contains the host as a package; it only launches the Python program, and the
# program talks to the engine through the pulumi pip package, so an old host
# works with a new CLI.
langhost_sdk_version=v3.68.0

# pkg/v3's own go.mod swaps this dependency for a fork; repeat it, because a
# dependency's replace directives are ignored.
clipboard_replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e

cache_root=${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/pulumi
version_dir=$cache_root/v$version
bin_dir=$version_dir/bin
stamp=$version_dir/stamp

required_files=(pulumi pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python)

log() { printf 'pulumi.sh: %s\n' "$*" >&2; }

die() {
    died=1
    log "error: $*"
    log "Install Pulumi >= $version with the Python language host (https://www.pulumi.com/docs/install/),"
    log "or put a pulumi >= $version on PATH, or install Go (the engine is then built from the Go module proxy)."
    exit 1
}

# version_at_least HAVE WANT: true when HAVE >= WANT, comparing X.Y.Z only.
version_at_least() {
    local have=${1#v} want=${2#v}
    have=${have%%[-+]*}
    [ "$(printf '%s\n%s\n' "$want" "$have" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$want" ]
}

# has_all DIR: true when DIR holds every required executable.
has_all() {
    local f
    for f in "${required_files[@]}"; do
        [ -x "$1/$f" ] || return 1
    done
}

# locate NAME DIR...: resolved path of the first executable NAME in the DIRs,
# else of NAME on PATH.
locate() {
    local name=$1 dir found=''
    shift
    for dir in "$@"; do
        if [ -x "$dir/$name" ]; then
            found=$dir/$name
            break
        fi
    done
    if [ -z "$found" ]; then
        found=$(command -v "$name" 2>/dev/null) || return 1
    fi
    readlink -f -- "$found"
}

# Prints the directory of a usable pulumi already on PATH, or returns 1.
#
# Every path is resolved through symlinks, and so is the directory printed. The
# Makefile links the printed directory's files into .modelops/bin, and that
# directory is itself on PATH (scripts/pulumi-env.sh). Printing .modelops/bin
# back would make the Makefile link each file to itself.
find_installed() {
    local cli have host exec_script provider dir farm
    local -a dirs
    cli=$(command -v pulumi 2>/dev/null) || return 1
    have=$("$cli" version 2>/dev/null) || return 1
    if ! version_at_least "$have" "$version"; then
        log "ignoring $cli: version $have is older than $version"
        return 1
    fi
    # Beside the pulumi on PATH, beside the file it links to, or on PATH.
    dirs=("$(dirname -- "$cli")" "$(dirname -- "$(readlink -f -- "$cli")")")
    host=$(locate pulumi-language-python "${dirs[@]}") || {
        log "ignoring $cli: no pulumi-language-python beside it or on PATH"
        return 1
    }
    provider=$(locate pulumi-resource-pulumi-python "${dirs[@]}") || {
        log "ignoring $cli: no pulumi-resource-pulumi-python beside it or on PATH"
        return 1
    }
    # The host runs the -exec script found next to its own resolved path.
    exec_script=$(dirname -- "$host")/pulumi-language-python-exec
    if [ ! -x "$exec_script" ]; then
        log "ignoring $cli: no pulumi-language-python-exec beside $host"
        return 1
    fi
    cli=$(readlink -f -- "$cli")
    dir=$(dirname -- "$cli")
    if [ "$(dirname -- "$host")" = "$dir" ] && [ "$(dirname -- "$provider")" = "$dir" ]; then
        printf '%s\n' "$dir"
        return 0
    fi
    # Installed in different directories: link them into one.
    farm=$cache_root/path/bin
    mkdir -p "$farm"
    ln -sfn "$cli" "$farm/pulumi"
    ln -sfn "$host" "$farm/pulumi-language-python"
    ln -sfn "$exec_script" "$farm/pulumi-language-python-exec"
    ln -sfn "$provider" "$farm/pulumi-resource-pulumi-python"
    printf '%s\n' "$farm"
}

# quietly CMD...: run CMD, showing its output only if it fails (`go get` lists
# a few hundred added modules).
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

# new_wrapper_module DIR NAME: an empty main module in DIR. We build through a
# wrapper module because `go install pkg@version` refuses modules whose go.mod
# has replace directives, and both pkg/v3 and sdk/v3 have them; as
# dependencies of our module their replaces are simply ignored.
new_wrapper_module() {
    mkdir -p "$1"
    (cd "$1" && go mod init "modelops.invalid/$2" >/dev/null 2>&1)
}

build_engine() {
    # A go.work from the caller's environment would pull other modules in.
    export GOWORK=off
    local staging=$1 work=$2 sdk_dir
    local -a go_build=(go build -trimpath -tags "osusergo,grpcnotrace")

    log "building pulumi v$version from the Go module proxy (first run only; several minutes)"
    new_wrapper_module "$work/cli" pulumi-cli
    (
        cd "$work/cli"
        go mod edit -replace "$clipboard_replace"
        quietly go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$version" \
            "github.com/pulumi/pulumi/sdk/v3@v$version"
        CGO_ENABLED=0 "${go_build[@]}" \
            -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version" \
            -o "$staging/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    ) >&2

    # The -exec script (run by the host) and the dynamic-provider launcher come
    # from the pinned sdk, to match the pip package. Files in the module cache
    # are read-only and not executable, hence install -m 755.
    sdk_dir=$(cd "$work/cli" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
    install -m 755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$staging/"
    install -m 755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$staging/"

    log "building pulumi-language-python from sdk/v3 $langhost_sdk_version"
    new_wrapper_module "$work/langhost" pulumi-language-python
    (
        cd "$work/langhost"
        quietly go get "github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python@$langhost_sdk_version"
        CGO_ENABLED=0 "${go_build[@]}" \
            -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$langhost_sdk_version" \
            -o "$staging/pulumi-language-python" \
            github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
    ) >&2

    local built
    built=$("$staging/pulumi" version)
    [ "${built#v}" = "$version" ] || die "the freshly built pulumi reports $built, expected v$version"
}

# Set by main before a build; on_exit removes them.
staging=''
work=''
died=''

on_exit() {
    local rc=$?
    rm -rf -- ${staging:+"$staging"} ${work:+"$work"}
    if [ "$rc" -ne 0 ] && [ -n "$staging" ] && [ -z "$died" ]; then
        log "error: building the Pulumi engine from the Go module proxy failed (see above)"
        log "Install Pulumi >= $version (https://www.pulumi.com/docs/install/) or put a pulumi >= $version on PATH."
    fi
}

main() {
    local dir
    if dir=$(find_installed); then
        log "using the pulumi found on PATH ($dir)"
        printf '%s\n' "$dir"
        return 0
    fi

    if [ -f "$stamp" ] && has_all "$bin_dir"; then
        log "using cached build in $bin_dir"
        printf '%s\n' "$bin_dir"
        return 0
    fi

    command -v go >/dev/null 2>&1 || die "no usable pulumi on PATH and no Go toolchain to build one"
    mkdir -p "$version_dir"

    # Serialize concurrent builds (e.g. make -j) where flock exists; the loser
    # waits and then finds the winner's stamp.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$version_dir/lock"
        flock 9
        if [ -f "$stamp" ] && has_all "$bin_dir"; then
            printf '%s\n' "$bin_dir"
            return 0
        fi
    fi

    staging=$(mktemp -d "$version_dir/staging.XXXXXX")
    chmod 755 "$staging" # mktemp -d makes it 0700; the result is shared read-only
    work=$(mktemp -d "${TMPDIR:-/tmp}/modelops-pulumi-build.XXXXXX")
    trap on_exit EXIT

    # Called plainly, not as `build_engine || die`: in an || list bash turns
    # off set -e inside the function, and a failed `go get` would go unnoticed.
    build_engine "$staging" "$work"

    rm -f -- "$stamp"
    rm -rf -- "$bin_dir"
    mv -- "$staging" "$bin_dir"
    # Written last: its presence means bin/ is complete.
    printf 'pulumi v%s\nlanguage host sdk %s\n%s\n' "$version" "$langhost_sdk_version" "$(go version)" >"$stamp"
    log "built pulumi v$version into $bin_dir"
    printf '%s\n' "$bin_dir"
}

main "$@"
