#!/usr/bin/env bash
# Set up a virtual environment (.venv, or $VENV) with lth-plugins and everything its tests and demos need.
# torch is installed first and pinned (requirements/constraints.txt) so no dependency can pull another build.
# FLARE_SRC / ELF_SRC (a checkout or a tarball of the upstream repository): also build and install flare-rl /
# elf-rl from it (`lth deps build`, cached: a second run takes seconds). The Debian packages those builds need
# are installed with apt-get when run as root; otherwise the script stops naming the `sudo apt-get install` line.
set -euo pipefail
for v in FLARE_SRC ELF_SRC; do  # relative to the caller's directory, not the repository's
  if [ -n "${!v:-}" ] && [ -e "${!v}" ]; then export "$v=$(cd "$(dirname "${!v}")" && pwd)/$(basename "${!v}")"; fi
done
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
export PIP_CONSTRAINT="$PWD/requirements/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[setup] torch, build tools" >&2
$PIP install -q --upgrade pip setuptools wheel
$PIP install -q torch==2.13.0 cython numpy
if ! "$VENV/bin/python" -c "import fairseq" 2>/dev/null; then
  echo "[setup] fairseq (fairseq-fixed 0.12.3.1: fairseq 0.12 for Python 3.11; builds in a few minutes)" >&2
  $PIP install -q --no-build-isolation fairseq-fixed==0.12.3.1
fi
echo "[setup] lth-plugins with the fairseq, rl, sweep and dev extras" >&2
$PIP install -q --no-build-isolation -e ".[fairseq,rl,sweep,dev]"
names=() srcs=()
for dep in flare:"${FLARE_SRC:-}" elf:"${ELF_SRC:-}"; do
  name=${dep%%:*} src=${dep#*:}
  [ -n "$src" ] || continue
  if ! "$VENV/bin/python" -c "import sys; from lth_deps import available_builders as a; sys.exit('$name' not in a())"; then
    echo "[setup] warning: no '$name' builder is registered in this version of lth-plugins; ${name^^}_SRC=$src is not built" >&2
    continue
  fi
  names+=("$name") srcs+=("$src")
done
if [ ${#names[@]} -gt 0 ]; then
  # the builders list the Debian packages they need; this prints the apt-get line of the missing ones, or nothing
  apt_line=$("$VENV/bin/python" -m lth_deps.system "${names[@]}")
  if [ -n "$apt_line" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      echo "[setup] error: building ${names[*]} needs system packages that are not installed; install them with:" >&2
      echo "    sudo $apt_line" >&2
      exit 1
    fi
    echo "[setup] system packages: $apt_line" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $apt_line >&2
  fi
fi
for i in "${!names[@]}"; do
  echo "[setup] ${names[i]} from ${srcs[i]} (lth deps build ${names[i]}; cached)" >&2
  "$VENV/bin/lth" deps build "${names[i]}" --source "${srcs[i]}" >/dev/null
done
echo "[setup] done: $VENV" >&2
