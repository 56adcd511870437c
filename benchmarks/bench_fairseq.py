"""Overhead of --lottery-prune on fairseq's trainer: the same tiny-transformer fairseq-train run with and without
the plugin, in one invocation; the lottery side is round 1 (masks at 20% pruned, hooks active).

    python benchmarks/bench_fairseq.py [--max-update 300] [--repeats 2]

Prints updates/s of both and their ratio (goal >= 0.97). Times are fairseq's own "done training in X seconds"
(the training loop, excluding process start-up and the lottery's per-round evaluation).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import USER_DIR, demo, train_command  # noqa: E402
from fairseq_ext.data import make_translation_data  # noqa: E402

# the main job's tiny Transformer; quieter logging and no mid-run checkpoints, so the loop itself is timed
MODEL = [*demo.MODEL, *demo.COMMON, "--log-interval", "1000", "--save-interval", "1000"]


def train(data, save, extra):
    cmd = train_command(data, "--save-dir", save, *MODEL, *extra)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    times = [float(t) for t in re.findall(r"done training in ([0-9.]+) seconds", out)]
    if not times:
        raise SystemExit(out[-3000:])
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--max-update", type=int, default=300)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fairseq_"))
    data = make_translation_data(tmp / "data", seed=0, n_train=4000, n_valid=100, n_test=100)
    n = a.max_update
    plain, lottery = [], []
    for r in range(a.repeats):  # interleaved, so drifts in machine load hit both sides
        plain.append(train(data, tmp / f"plain{r}", demo.schedule_args(n))[0])
        t = train(data, tmp / f"lth{r}", [*demo.schedule_args(n), "--user-dir", USER_DIR, "--lottery-prune",
                                          "--lottery-rounds", "1", "--lottery-rate", "0.2",
                                          "--lottery-late-reset", "10u"])
        lottery.append(t[1])  # round 1: 20% pruned, masks enforced
    ups_plain, ups_lth = n / min(plain), n / min(lottery)
    print(f"plain fairseq-train:            {ups_plain:8.2f} updates/s  (best of {a.repeats}: {min(plain):.2f} s)")
    print(f"--lottery-prune, round 1 (20%): {ups_lth:8.2f} updates/s  (best of {a.repeats}: {min(lottery):.2f} s)")
    print(f"every run (fairseq reports 0.1 s): plain {plain} s, lottery {lottery} s")
    print(f"ratio: {ups_lth / ups_plain:.3f}  (goal >= 0.97)")


if __name__ == "__main__":
    main()
