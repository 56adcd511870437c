#!/usr/bin/env bash
# Set up a virtual environment (.venv, or $VENV) with lth-plugins and everything its tests and demos need.
# torch is installed first and pinned (requirements/constraints.txt) so no dependency can pull another build.
set -euo pipefail
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
echo "[setup] lth-plugins with the fairseq, rl and dev extras" >&2
$PIP install -q --no-build-isolation -e ".[fairseq,rl,dev]"
echo "[setup] done: $VENV" >&2
