"""Overhead of --lottery-prune on fairseq's trainer, resolved to a few percent: plain fairseq-train against a lottery
round 1 (masks at each fraction asked for, hooks active), run as interleaved pairs of fresh processes.

    python benchmarks/bench_fairseq.py [--pairs 8] [--pruned 0.2 0.8] [--max-update 300]        # CPU, tiny Transformer
    python benchmarks/bench_fairseq.py --gpu --model base --precision fp16 --max-tokens 4096      # a GPU

The lottery side reuses a dense round 0 trained once (--lottery-dense-from), so each of its processes trains round 1
alone, reset to init: the same updates from the same start as the plain run, warmed up the same way. Per pair it
prints the ratio lottery / plain of updates/s over fairseq's whole training loop ("done training in X seconds") and
in steady state (the median of fairseq's per-interval ups after the first interval); then, per fraction, the median
ratio over the pairs after the warm-up pairs, with quartiles and range (goal >= 0.97). Every lottery run also
prints the plugin's own end-of-round check that the pruned weights are zero in the model (and, under --fp16, in
the optimizer's fp32 master copies).
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
    """One fairseq-train process: (whole-loop seconds of its last round, steady-state ups of it, held-check line)."""
    cmd = train_command(data, "--save-dir", save, *args)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    times = [float(t) for t in re.findall(r"done training in ([0-9.]+) seconds", out)]
    if not times:
        raise SystemExit(out[-3000:])
    last = re.split(r"done training in [0-9.]+ seconds", out)[len(times) - 1]
    ups = [float(u) for u in re.findall(r"train_inner .*?\bups=([0-9.]+)", last)][1:]  # first interval: warm-up
    held = re.findall(r"\[lottery\] round 1: (all \d+ pruned weights are zero in .*)", out)
    return times[-1], (statistics.median(ups) if ups else float("nan")), held[0] if held else None


def summary(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"median {statistics.median(xs):.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}, range {min(xs):.3f}-{max(xs):.3f})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-update", type=int, default=300)
    p.add_argument("--pairs", type=int, default=8, help="timed pairs (plain, lottery at each fraction)")
    p.add_argument("--warmup-pairs", type=int, default=1, help="pairs run first and left out of the summary")
    p.add_argument("--model", choices=sorted(MODELS), default="tiny")
    p.add_argument("--precision", choices=list(PRECISION), default="fp32")
    p.add_argument("--max-tokens", type=int, default=None, help="tokens per batch (default: the model's)")
    p.add_argument("--pruned", type=float, nargs="+", default=[0.2, 0.8], help="fractions pruned in round 1")
    p.add_argument("--gpu", action="store_true", help="train on the GPU (default: --cpu)")
    p.add_argument("--n-train", type=int, default=4000, help="generated sentence pairs")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fairseq_"))
    data = make_translation_data(tmp / "data", seed=0, n_train=a.n_train, n_valid=100, n_test=100)
    common = [c for c in demo.COMMON if not (a.gpu and c == "--cpu")]
    interval = ["--log-interval", str(max(5, a.max_update // 10))]
    base = [*MODELS[a.model], *common, *NO_CHECKPOINTS, *interval, *PRECISION[a.precision]]
    base += demo.schedule_args(a.max_update) if a.model == "tiny" else ["--max-update", str(a.max_update)]
    if a.max_tokens:
        base += ["--max-tokens", str(a.max_tokens)]
    lottery = [*base, "--user-dir", USER_DIR, "--lottery-prune", "--lottery-rounds", "1", "--lottery-reset", "init"]
    print(f"{a.model} Transformer, {a.precision}, {'GPU' if a.gpu else 'CPU'}, {a.max_update} updates per process; "
          f"dense round 0 trained once, then {a.warmup_pairs} warm-up + {a.pairs} timed pairs", flush=True)
    dense = tmp / "dense"
    train(data, dense, [*lottery, "--lottery-rate", "0.2"])
    ratios = {f: {"loop": [], "steady": []} for f in a.pruned}
    held = {}
    for i in range(a.warmup_pairs + a.pairs):
        plain_s, plain_ups, _ = train(data, tmp / f"plain{i}", base)
        line = [f"pair {i + 1}{' (warm-up)' if i < a.warmup_pairs else ''}: plain {a.max_update / plain_s:.2f} "
                f"| {plain_ups:.2f} updates/s"]
        for f in a.pruned:
            s, ups, held[f] = train(data, tmp / f"lth{f}_{i}", [*lottery, "--lottery-rate", str(f),
                                                             "--lottery-dense-from", str(dense)])
            loop, steady = plain_s / s, ups / plain_ups
            line.append(f"{100 * f:.0f}% pruned {a.max_update / s:.2f} | {ups:.2f} (ratio {loop:.3f} | {steady:.3f})")
            if i >= a.warmup_pairs:
                ratios[f]["loop"].append(loop)
                ratios[f]["steady"].append(steady)
            if held[f] is None:
                raise SystemExit(f"the lottery run printed no end-of-round check; see {tmp / f'lth{f}_{i}'}")
        print("; ".join(line), flush=True)
    for f in a.pruned:
        print(f"round 1 at {100 * f:.0f}% pruned / plain, updates/s over {a.pairs} pairs: whole loop "
              f"{summary(ratios[f]['loop'])}; steady state {summary(ratios[f]['steady'])} (goal >= 0.97)")
        print(f"  end-of-round check: {held[f]}")


if __name__ == "__main__":
    main()
