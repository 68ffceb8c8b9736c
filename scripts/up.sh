#!/usr/bin/env bash
# `make up`: deploy the local stack (registry + Dask + BundleSmokeTest) with the real Pulumi engine.
# Expects PATH to hold .modelops/bin (pulumi) and .venv/bin, and the PULUMI_* settings the Makefile exports.
set -euo pipefail
stack="${1:-local}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

pulumi stack select --create "$stack" >/dev/null
pulumi up --stack "$stack" --yes --skip-preview
echo
pulumi stack output --stack "$stack"
cat <<TXT

The local stack is up. To use this pulumi CLI and state from the repository root, run:

$("$root/scripts/pulumi-env.sh" "$root")

then, for example:
  pulumi stack output acr_login_server --stack $stack
  mops dev smoke-test --registry "\$(pulumi stack output acr_login_server --stack $stack)" \\
      --scheduler "\$(pulumi stack output scheduler_address --stack $stack)"
Tear it down with: make down
TXT
