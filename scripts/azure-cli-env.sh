#!/usr/bin/env bash
# Prints the path of a venv holding the Azure CLI (`az`), building it on first use.
#
# The simulator is proven against `az` as an independent client (tests/simulator/test_azure_cli.py).
# azure-cli is large (over a minute to install, ~400 MB), so the venv lives in a cache
# outside the repository and is reused by every clone on this machine, CI's fresh clone included.
#
#   scripts/azure-cli-env.sh            -> prints e.g. /root/.cache/cycle-vmss/azure-cli-2.91.0
#   "$(scripts/azure-cli-env.sh)/bin/az" version
#
# Environment: AZURE_CLI_VERSION (default 2.91.0), CYCLE_VMSS_CACHE_DIR (default
# $XDG_CACHE_HOME/cycle-vmss, else ~/.cache/cycle-vmss), PYTHON (default python3).
set -euo pipefail

version="${AZURE_CLI_VERSION:-2.91.0}"
default_cache="${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}"
# No home at all: the repository's own .cache/ (ignored by git).
default_cache="${default_cache:-$(cd "$(dirname "$0")/.." && pwd)/.cache}"
cache_root="${CYCLE_VMSS_CACHE_DIR:-$default_cache/cycle-vmss}"
env_dir="$cache_root/azure-cli-$version"
# Written last, so an interrupted install is never mistaken for a finished one.
done_marker="$env_dir/.installed"

if [ -f "$done_marker" ] && [ -x "$env_dir/bin/az" ]; then
    echo "$env_dir"
    exit 0
fi

mkdir -p "$cache_root"
# Two test runs may start at once; the second waits for the first build instead of racing it.
exec 9>"$cache_root/azure-cli-$version.lock"
flock 9
if [ ! -f "$done_marker" ]; then
    echo "azure-cli-env: installing azure-cli $version into $env_dir (once per machine)" >&2
    started=$SECONDS
    rm -rf "$env_dir"
    "${PYTHON:-python3}" -m venv "$env_dir"
    # --no-compile halves the time and the size (73 s, 390 MB here): az byte-compiles the few
    # modules it imports on first use instead of all of its ~100 SDKs now.
    "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
        "azure-cli==$version" >&2
    touch "$done_marker"
    echo "azure-cli-env: done in $((SECONDS - started)) s ($(du -sh "$env_dir" | cut -f1))" >&2
fi
echo "$env_dir"
