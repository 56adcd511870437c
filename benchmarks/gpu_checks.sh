#!/usr/bin/env bash
# The checks that need a GPU, as docs/gpu.md reports them:
#   1. updates/s of fairseq's Transformer-base (--fp16, --max-tokens 4096) with --lottery-prune round 1 at 20% and
#      80% pruned against plain fairseq-train, in interleaved pairs (median ratio and spread), with the plugin's
#      end-of-round check that pruned weights are zero in the model and in FP16Optimizer's fp32 master copies;
#   2. masked lottery runs under --fp16, --memory-efficient-fp16 and --amp (tests that skip without CUDA; fairseq
#      0.12's --bf16 implies --tpu);
#   3. one global pruning round, the masks' GPU memory at 20/50/90% pruned, and masked against dense training steps
#      (batches of 16x64 and 64x64 tokens) on GPU-resident Transformer-base weights;
#   4. ELF (built here from ELF_SRC if elf-rl is not installed): Breakout with the paper's settings (1024 games,
#      batch 128, T 6) on --gpu 0 for a few minutes, round 0 and round 1 (20% pruned): game steps/s, GPU memory,
#      and the plugin's check at every epoch's end that pruned weights are zero in the model and ELF's acting copy.
# Usage: benchmarks/gpu_checks.sh [OUT_DIR]   (CUDA, fairseq and this package installed; PYTHON picks the interpreter;
#        ELF_SRC: ELF's tarball or checkout, default shared/third_party/ELF-1f79017.tar.gz; ELF_EPOCH_BATCHES: 100)
set -u
out=$(realpath -m "${1:-gpu_checks}")
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"

echo "== 1. updates/s, Transformer-base, fp16 =="
timeout 300 "$py" benchmarks/bench_fairseq.py --gpu --model base --precision fp16 --max-tokens 4096 \
  --pruned 0.2 0.8 --max-update "${MAX_UPDATE:-100}" --pairs 3 --warmup-pairs 1 --n-train 20000 2>&1 \
  | tee "$out/bench_fairseq.txt"

echo "== 2. masks under mixed precision =="
parallel=()
"$py" -c "import xdist" 2>/dev/null && parallel=(-n 4)
timeout 240 "$py" -m pytest -q -p no:cacheprovider "${parallel[@]}" tests/fairseq/test_fairseq_mixed_precision.py \
  -k "gpu or master" -rs 2>&1 | tail -n 30 | tee "$out/tests.txt"

echo "== 3. pruning round and masked step on the GPU =="
timeout 150 "$py" benchmarks/bench_core.py --device cuda --repeats 10 --batches 16x64 64x64 \
  --json "$out/bench_core.json" 2>&1 \
  | tee "$out/bench_core.txt"

echo "== 4. ELF: Breakout at the paper's settings on the GPU =="
if ! "$py" -c "import rlpytorch, atari_game" 2>/dev/null; then
  elf_src=${ELF_SRC:-shared/third_party/ELF-1f79017.tar.gz}
  # needs the network once (ale-py's source distribution, pybind11) and ELF's Debian packages (lth deps names them)
  timeout 1200 "$py" -m lth_plugins.cli deps build elf --source "$elf_src" 2>&1 | tail -n 20 | tee "$out/elf_build.txt"
fi
( while sleep 5; do nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader; done ) \
  > "$out/elf_nvidia_smi.csv" 2>/dev/null &
smi=$!
timeout 900 "$py" benchmarks/bench_elf.py gpu --gpu 0 --epoch-batches "${ELF_EPOCH_BATCHES:-100}" --out "$out" 2>&1 \
  | tee "$out/bench_elf_gpu.txt"
kill "$smi" 2>/dev/null
echo "most GPU memory nvidia-smi saw in use by a process (MiB): $(cut -d, -f2 "$out/elf_nvidia_smi.csv" \
  | tr -dc '0-9\n' | sort -n | tail -n 1)" | tee -a "$out/bench_elf_gpu.txt"
