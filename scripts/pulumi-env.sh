#!/usr/bin/env bash
# Environment for running this repository's Pulumi CLI against the local file
# backend in <repo>/.modelops/state (no Pulumi Cloud, no plugin downloads).
#
#   eval "$(scripts/pulumi-env.sh)"          # apply to the current shell
#   . scripts/pulumi-env.sh                  # same, when sourced from bash
#   scripts/pulumi-env.sh /path/to/checkout  # print for another checkout
#
# It only prints `export` lines (or applies them when sourced); it creates
# nothing. `make` provides .modelops/bin (links to the engine found or built by
# scripts/pulumi.sh), .modelops/state (the file backend refuses a missing
# directory) and .venv. See docs/pulumi-engine.md for
# why each variable is set and how to use a real backend instead.

_modelops_pulumi_env() {
    local repo=${1:-}
    if [ -z "$repo" ]; then
        repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd) || return 1
    else
        repo=$(cd -- "$repo" && pwd) || return 1
    fi
    # shellcheck disable=SC2016  # $PATH is meant to be expanded by the reader
    printf 'export PATH=%q:%q:"$PATH"\n' "$repo/.modelops/bin" "$repo/.venv/bin"
    # The language host we build (docs/pulumi-engine.md) ignores Pulumi.yaml's
    # `virtualenv` option and runs $PULUMI_PYTHON_CMD, else python3 from PATH.
    # The dynamic-provider launcher falls back to it too.
    printf 'export PULUMI_PYTHON_CMD=%q\n' "$repo/.venv/bin/python"
    printf 'export PULUMI_BACKEND_URL=%q\n' "file://$repo/.modelops/state"
    printf 'export PULUMI_CONFIG_PASSPHRASE=\n'
    printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
    printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    eval "$(_modelops_pulumi_env "$@")"
    unset -f _modelops_pulumi_env
else
    set -euo pipefail
    _modelops_pulumi_env "$@"
fi
