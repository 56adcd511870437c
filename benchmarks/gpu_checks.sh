#!/usr/bin/env bash
# Every check that needs a GPU, in one command for a borrowed GPU machine with no network (docs/gpu.md):
#   benchmarks/gpu_checks.sh --prepare DIR   here: DIR gets cp312 x86_64 wheels of all the machine's image lacks
#                                            (benchmarks/gpu_prepare.py; needs the network and a Python 3.12)
#   benchmarks/gpu_checks.sh --dry-run DIR [OUT]  here, no CUDA: DIR installed offline into a fresh folder on a
#                                            Python 3.12 stand-in for the image, then each part's set-up at toy sizes
#   benchmarks/gpu_checks.sh --stand-in      here: only make the dry run's stand-in (a few GB, minutes)
#   benchmarks/gpu_checks.sh DIR [OUT]       on the GPU machine: install from DIR only, then the parts
#                                            (benchmarks/gpu_parts.py), at most GPU_BUDGET_S (500) s in all;
#                                            OUT (default gpu_checks) gets a log, one JSON and one PNG
# PYTHON: the interpreter of the GPU run (python3); GPU_PARTS: run only these parts (names as in docs/gpu.md);
# PYTHON312: the Python 3.12 of --prepare / --dry-run;
# GPU_DRY_RUN_VENV: the stand-in venv (made on first use: torch 2.11.0 as on the machine, and the image's
# packages the parts import).
set -euo pipefail
usage="usage: benchmarks/gpu_checks.sh --prepare DIR | --dry-run DIR [OUT] | --stand-in | DIR [OUT]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
here=$PWD
cd "$(dirname "$0")/.."
abs() { case $1 in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }

# the offline install the GPU machine does: nothing from an index, nothing beyond the folder
install_from() {  # PYTHON DIR SITE
  "$1" benchmarks/gpu_prepare.py check "$2"
  "$1" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$3" "$2"/*.whl
  # ELF's Atari module links libtbb.so.12, which the image lacks; the folder carries it
  export PYTHONPATH="$3${PYTHONPATH:+:$PYTHONPATH}" LD_LIBRARY_PATH="$2${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# the dry run's stand-in for the GPU machine's image, made on first use
stand_in() {
  venv=${GPU_DRY_RUN_VENV:-${LTH_CACHE:-$HOME/.cache/lth-plugins}/gpu-py312}
  if [ ! -f "$venv/ready" ]; then
    local py312
    py312=$(cd benchmarks && ../.venv/bin/python -c "import gpu_prepare as g; print(g.python312())")
    echo "[gpu dry run] making the stand-in for the GPU machine's image: $venv (torch 2.11.0, a few GB)" >&2
    "$py312" -m venv --clear "$venv"
    # the image's torch, not the one this project's constraints pin
    env -u PIP_CONSTRAINT "$venv/bin/python" -m pip install -q --disable-pip-version-check torch==2.11.0 numpy \
      sacrebleu sentencepiece pyyaml tqdm regex packaging cython scikit-learn matplotlib pytest
    touch "$venv/ready"
  fi
}

case $1 in
  --stand-in)
    stand_in ;;
  --prepare)
    [ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }
    exec "${PREPARE_PYTHON:-.venv/bin/python}" benchmarks/gpu_prepare.py prepare "$(abs "$2")" ;;
  --dry-run)
    [ $# -eq 2 ] || [ $# -eq 3 ] || { echo "$usage" >&2; exit 2; }
    dir=$(abs "$2")
    stand_in
    site=$(mktemp -d /tmp/gpu_dry_site.XXXXXX)
    out=$(abs "${3:-$(mktemp -d /tmp/gpu_dry_out.XXXXXX)}")
    trap 'rm -rf "$site"' EXIT
    install_from "$venv/bin/python" "$dir" "$site"
    echo "[gpu dry run] installed $(ls "$dir"/*.whl | wc -l) wheels into $site; results in $out" >&2
    "$venv/bin/python" benchmarks/gpu_parts.py "$out" --dry-run --budget "${GPU_BUDGET_S:-1200}" ;;
  -*)
    echo "$usage" >&2; exit 2 ;;
  *)
    dir=$(abs "$1")
    out=$(abs "${2:-gpu_checks}")
    py=${PYTHON:-python3}
    mkdir -p "$out"
    nvidia-smi -L >&2 || true
    install_from "$py" "$dir" /tmp/gpu_checks_site
    "$py" benchmarks/gpu_parts.py "$out" --budget "${GPU_BUDGET_S:-500}" ${GPU_PARTS:+--only $GPU_PARTS} ;;
esac
