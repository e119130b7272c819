#!/usr/bin/env bash
# Installs what Sluice needs on a Debian 12 machine and is missing: the C libraries' -dev
# packages (and the compression CLIs that regenerate test fixtures). Safe to run repeatedly:
# it only calls apt-get when a package is absent. Swift 6.3 itself is assumed present.
set -euo pipefail

# fio and librdkafka-dev: the experiment and benchmark tooling (fio baselines, kperf). fuse3 and
# libfuse3-dev: the power-loss test's file system (Tests/PowerLoss). e2fsprogs: the chaos disk.
packages=(liburing-dev liblz4-dev libzstd-dev libsnappy-dev zlib1g-dev pkg-config lz4 zstd kcat fio librdkafka-dev fuse3 libfuse3-dev e2fsprogs)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
    echo "install-deps: swift is not on PATH; install Swift 6.3 from swift.org first" >&2
    exit 1
fi

# The interop tests' clients, in a virtualenv inside the project (.venv, git-ignored).
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/python" ]; then
    echo "install-deps: creating $root/.venv"
    python3 -m venv "$root/.venv"
fi
stamp="$root/.venv/.requirements"
if ! cmp -s "$root/Tests/Interop/requirements.txt" "$stamp" 2>/dev/null; then
    echo "install-deps: installing the Python test clients"
    "$root/.venv/bin/pip" install -q --disable-pip-version-check -r "$root/Tests/Interop/requirements.txt"
    cp "$root/Tests/Interop/requirements.txt" "$stamp"
fi
