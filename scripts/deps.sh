#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages csp's build, tests and benchmarks need,
# if any is missing. Needs root (or sudo) only when something must be installed.
set -euo pipefail
packages=(cmake make g++ clang libclang-rt-dev catch2 libbenchmark-dev libasio-dev pkg-config python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "csp: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "csp: missing packages: ${missing[*]} (run as root or install them with apt-get)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
