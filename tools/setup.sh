#!/usr/bin/env bash
# Installs everything assay needs to build and test, skipping what is already there (idempotent):
# Debian packages (compilers, CMake, Ninja, Boost, TOML++, CLI11, spdlog, HDF5, GoogleTest, gloo headers) and the
# pinned Python packages of requirements.txt (the torch wheel provides LibTorch).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build ccache git pkg-config libboost-dev libtomlplusplus-dev
              libcli11-dev libspdlog-dev libhdf5-dev libgtest-dev libgloo-dev
              chromium slurmctld slurmd slurm-client munge)
# chromium: the report tests render HTML headless; slurm + munge: the Slurm launcher's tests start a
# single-node cluster on localhost (tests/slurm_cluster.sh)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages: compare installed versions with the pins first (pip itself takes seconds to decide).
if ! python3 - requirements.txt <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, pinned = line.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != pinned:
        print(f"setup: {name} {have or 'missing'} (want {pinned})")
        ok = False
sys.exit(0 if ok else 1)
PY
then
  echo "setup: installing pinned Python packages (requirements.txt)"
  python3 -m pip install -q -r requirements.txt
fi
