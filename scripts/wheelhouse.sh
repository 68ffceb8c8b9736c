#!/usr/bin/env bash
# Download the wheelhouse the tests serve as a local package index (tests/services.py).
#
# Contract:
#   - Prints exactly one line on stdout: the absolute path of the wheelhouse,
#     ${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}/wheelhouse/v1. Progress goes
#     to stderr, so the Makefile can do `dir=$(scripts/wheelhouse.sh)`.
#   - The wheelhouse holds exactly the wheels pinned in scripts/wheelhouse.txt
#     (NAME==VERSION per line), for CPython 3.11 on manylinux x86_64, whatever
#     host runs this; SHA256SUMS lists them, and `stamp` lists the pins.
#   - Idempotent. Once the stamp exists and lists the current pins, a run does
#     nothing. Otherwise every wheel is downloaded from the configured index
#     (PyPI unless pip is configured otherwise) into a staging directory beside
#     the wheelhouse, checked, stamped, and moved into place.
#   - On failure it exits non-zero, says which pin failed, and leaves any
#     complete earlier wheelhouse untouched. A half-done download only ever
#     lives in a staging directory that is removed on exit.
#
# The interpreter whose pip downloads: $PYTHON, else <repo>/.venv/bin/python if
# it exists, else python3. pip's --platform/--python-version/--implementation/
# --abi flags make the choice of wheels independent of that interpreter.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname -- "$script_dir")
pins_file=$script_dir/wheelhouse.txt

cache_root=${MODELOPS_TOOLS_CACHE:-$HOME/.cache/modelops}
[[ $cache_root = /* ]] || cache_root=$PWD/$cache_root
wheelhouse_root=$cache_root/wheelhouse
wheelhouse=$wheelhouse_root/v1
stamp=$wheelhouse/stamp

# The target the wheels are for. pip matches --platform tags exactly (no
# implied older manylinux), so list every tag a pinned wheel may carry.
platforms=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
target_flags=(--python-version 3.11 --implementation cp --abi cp311)
for p in "${platforms[@]}"; do
    target_flags+=(--platform "$p")
done

log() { printf 'wheelhouse.sh: %s\n' "$*" >&2; }

die() {
    log "error: $*"
    exit 1
}

# read_pins: fills the array `pins` from wheelhouse.txt, in file order, without
# comments or blank lines. Pure bash, so the no-op run stays fast.
pins=()
read_pins() {
    local raw line n=0
    [ -f "$pins_file" ] || die "pin list $pins_file not found"
    while IFS= read -r raw || [ -n "$raw" ]; do
        n=$((n + 1))
        line=${raw%%#*}
        line=${line//[[:space:]]/}
        [ -n "$line" ] || continue
        [[ $line =~ ^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!_-]*$ ]] \
            || die "$pins_file line $n: expected NAME==VERSION, got '$raw'"
        pins+=("$line")
    done <"$pins_file"
    [ "${#pins[@]}" -gt 0 ] || die "$pins_file lists no pins"
}

# quietly CMD...: run CMD, showing its output only if it fails.
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
}

choose_python() {
    if [ -n "${PYTHON:-}" ]; then
        printf '%s\n' "$PYTHON"
    elif [ -x "$repo_root/.venv/bin/python" ]; then
        printf '%s\n' "$repo_root/.venv/bin/python"
    else
        printf '%s\n' python3
    fi
}

# wheel_for DIR PIN: the one wheel for PIN in DIR, or returns 1. Wheel file
# names spell the project name with `_` for runs of `-_.`, in any case.
wheel_for() {
    local dir=$1 pin=$2 name version
    local -a found
    name=${pin%%==*}
    version=${pin#*==}
    name=$(sed -E 's/[-_.]+/_/g' <<<"$name")
    found=()
    shopt -s nullglob nocaseglob
    found=("$dir/$name-$version-"*.whl)
    shopt -u nullglob nocaseglob
    [ "${#found[@]}" -eq 1 ] || return 1
    printf '%s\n' "${found[0]}"
}

staging=''
on_exit() {
    rm -rf -- ${staging:+"$staging"}
}

current() {
    [ -f "$stamp" ] && [ "$(<"$stamp")" = "$(printf '%s\n' "${pins[@]}")" ]
}

main() {
    read_pins
    if current; then
        printf '%s\n' "$wheelhouse"
        return 0
    fi

    mkdir -p "$wheelhouse_root"
    # Serialize concurrent runs (e.g. make -j, two worktrees) where flock exists;
    # the loser waits and then finds the winner's stamp.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$wheelhouse_root/lock"
        flock 9
        if current; then
            printf '%s\n' "$wheelhouse"
            return 0
        fi
    fi

    local python pin wheel n
    python=$(choose_python)
    quietly "$python" -m pip --version || die "$python has no pip (set PYTHON to an interpreter with pip)"

    staging=$(mktemp -d "$wheelhouse_root/staging.XXXXXX")
    chmod 755 "$staging" # mktemp -d makes it 0700; the result is shared read-only
    trap on_exit EXIT

    log "downloading ${#pins[@]} wheels into $wheelhouse (first run only)"
    # One pip call per pin: a single call refuses two versions of one project.
    for pin in "${pins[@]}"; do
        log "  $pin"
        quietly "$python" -m pip download -q --only-binary=:all: --no-deps "${target_flags[@]}" \
            --dest "$staging" "$pin" \
            || die "downloading $pin failed (pip's output above): check that $pin has a wheel for" \
                "CPython 3.11 on manylinux x86_64 and that the package index is reachable"
    done

    for pin in "${pins[@]}"; do
        wheel=$(wheel_for "$staging" "$pin") || die "after download, no single wheel for $pin in $staging"
        [ -s "$wheel" ] || die "the wheel for $pin is empty: $wheel"
    done
    n=$(find "$staging" -maxdepth 1 -name '*.whl' | wc -l)
    [ "$n" -eq "${#pins[@]}" ] || die "expected ${#pins[@]} wheels, pip left $n in $staging"

    (cd "$staging" && sha256sum -- *.whl >SHA256SUMS)
    # Written last inside staging: the move below publishes it with the wheels.
    printf '%s\n' "${pins[@]}" >"$staging/stamp"

    # An earlier wheelhouse (stale pins, or never stamped) is moved aside, not
    # deleted, until the new one is in place.
    local old=''
    if [ -e "$wheelhouse" ]; then
        old=$(mktemp -d "$wheelhouse_root/old.XXXXXX")
        mv -- "$wheelhouse" "$old/"
    fi
    if ! mv -- "$staging" "$wheelhouse"; then
        [ -z "$old" ] || mv -- "$old/${wheelhouse##*/}" "$wheelhouse"
        die "could not move $staging to $wheelhouse"
    fi
    staging=''
    [ -z "$old" ] || rm -rf -- "$old"
    log "wheelhouse ready: $(du -sh "$wheelhouse" | cut -f1) in $wheelhouse"
    printf '%s\n' "$wheelhouse"
}

main "$@"
