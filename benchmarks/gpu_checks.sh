#!/usr/bin/env bash
# The checks that need a GPU, as README's "On a GPU" reports them:
#   1. updates/s of fairseq's Transformer-base (--fp16, --max-tokens 4096) with --lottery-prune round 1 at 20% and
#      80% pruned against plain fairseq-train, in interleaved pairs (median ratio and spread), with the plugin's
#      end-of-round check that pruned weights are zero in the model and in FP16Optimizer's fp32 master copies;
#   2. masked lottery runs under --fp16, --memory-efficient-fp16 and --amp (tests that skip without CUDA; fairseq
#      0.12's --bf16 implies --tpu);
#   3. one global pruning round, the masks' GPU memory at 20/50/90% pruned, and masked against dense training steps
#      (batches of 16x64 and 64x64 tokens) on GPU-resident Transformer-base weights.
# Usage: benchmarks/gpu_checks.sh [OUT_DIR]   (CUDA, fairseq and this package installed; PYTHON picks the interpreter)
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
