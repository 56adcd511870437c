"""Overhead of --lottery-prune on fairseq's trainer: the same fairseq-train run with and without the plugin, in
one invocation; the lottery side is round 1 (masks at the pruned fraction asked for, hooks active).

    python benchmarks/bench_fairseq.py [--max-update 300] [--repeats 2]                  # CPU, tiny Transformer
    python benchmarks/bench_fairseq.py --gpu --model base --precision fp16 --pruned 0.2 0.8  # a GPU

Prints updates/s of each and the ratios (goal >= 0.97), two ways: over the whole training loop (fairseq's own "done
training in X seconds", excluding process start-up and the lottery's per-round evaluation) and in steady state (the
median of fairseq's per-interval ups after the first interval). The steady-state ratio is the fair one on a GPU:
the plain run's loop includes CUDA's warm-up, round 1 of a lottery run follows round 0 in a warm process. Every
lottery run also prints the plugin's own end-of-round check that the pruned weights are zero in the model (and,
under --fp16, in the optimizer's fp32 master copies).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import USER_DIR, demo, train_command  # noqa: E402
from fairseq_ext.data import make_translation_data  # noqa: E402

NO_CHECKPOINTS = ["--save-interval", "1000"]  # no mid-run checkpoints: the loop is timed
MODELS = {
    # the main job's tiny Transformer
    "tiny": demo.MODEL,
    # the paper's Transformer-base (transformer_wmt_en_de: 6+6 layers, 512, 2048, 8 heads) as in fairseq's recipe
    "base": ["--task", "translation", "--arch", "transformer_wmt_en_de", "--share-all-embeddings",
             "--dropout", "0.1", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "5e-4",
             "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4000", "--max-tokens", "8192",
             "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
}
# no bf16: fairseq 0.12's --bf16 implies --tpu (torch_xla)
PRECISION = {"fp32": [], "fp16": ["--fp16"], "memory-efficient-fp16": ["--memory-efficient-fp16"], "amp": ["--amp"]}


def train(data, save, args):
    cmd = train_command(data, "--save-dir", save, *args)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    times = [float(t) for t in re.findall(r"done training in ([0-9.]+) seconds", out)]
    if not times:
        raise SystemExit(out[-3000:])
    held = re.findall(r"\[lottery\] round 1: (all \d+ pruned weights are zero in .*)", out)
    rounds = re.split(r"done training in [0-9.]+ seconds", out)[:len(times)]
    steady = []
    for text in rounds:  # per round: median ups of fairseq's log intervals, the first (warm-up) left out
        ups = [float(u) for u in re.findall(r"train_inner .*?\bups=([0-9.]+)", text)][1:]
        steady.append(statistics.median(ups) if ups else float("nan"))
    return times, steady, held


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-update", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", choices=sorted(MODELS), default="tiny")
    p.add_argument("--precision", choices=list(PRECISION), default="fp32")
    p.add_argument("--pruned", type=float, nargs="+", default=[0.2], help="fractions pruned in the timed round")
    p.add_argument("--gpu", action="store_true", help="train on the GPU (default: --cpu)")
    p.add_argument("--n-train", type=int, default=4000, help="generated sentence pairs")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fairseq_"))
    data = make_translation_data(tmp / "data", seed=0, n_train=a.n_train, n_valid=100, n_test=100)
    common = [c for c in demo.COMMON if not (a.gpu and c == "--cpu")]
    interval = ["--log-interval", str(max(5, a.max_update // 10))]
    base = [*MODELS[a.model], *common, *NO_CHECKPOINTS, *interval, *PRECISION[a.precision]]
    if a.model == "tiny":
        base += demo.schedule_args(a.max_update)
    else:
        base += ["--max-update", str(a.max_update)]
    n = a.max_update
    plain, plain_steady = [], []
    lottery, steady, held = {f: [] for f in a.pruned}, {f: [] for f in a.pruned}, {}
    for r in range(a.repeats):  # interleaved, so drifts in machine load hit both sides
        times, ups, _ = train(data, tmp / f"plain{r}", base)
        plain.append(times[0])
        plain_steady.append(ups[0])
        for f in a.pruned:
            times, ups, held[f] = train(data, tmp / f"lth{f}_{r}", [*base, "--user-dir", USER_DIR,
                                                                     "--lottery-prune", "--lottery-rounds", "1",
                                                                     "--lottery-rate", str(f),
                                                                     "--lottery-reset", "init"])
            lottery[f].append(times[1])  # round 1: f pruned, masks enforced, reset to init: updates 1..n
            steady[f].append(ups[1])
    ups_plain, steady_plain = n / min(plain), max(plain_steady)
    print(f"{a.model} Transformer, {a.precision}, {'GPU' if a.gpu else 'CPU'}, {n} updates per run, best of "
          f"{a.repeats}; updates/s over the whole loop (fairseq reports 0.1 s) | in steady state")
    print(f"plain fairseq-train:             {ups_plain:8.2f} | {steady_plain:8.2f} updates/s  (loops: {plain} s)")
    for f in a.pruned:
        ups, st = n / min(lottery[f]), max(steady[f])
        print(f"--lottery-prune, round 1 ({100 * f:.0f}%):  {ups:8.2f} | {st:8.2f} updates/s  (loops: {lottery[f]} s)"
              f"  ratio {ups / ups_plain:.3f} | {st / steady_plain:.3f} (goal >= 0.97)")
        print(f"  end-of-round check: {held[f][0] if held[f] else 'NOT PRINTED'}")


if __name__ == "__main__":
    main()
