"""Is the LSTM language model's dense round converged? examples/small/lstm_lm_fig5.py's dense model (its data, flags
and budget) trained for the budget and for twice that, both scored on the test split by fairseq-eval-lm (test log
perplexity, ln ppl, lower is better). Converged = doubling the budget changes the test log perplexity by at most
0.02; a test score that gets worse with more training means the model overfits at the budget (the dense line is
then past its best, and pruning may beat it by regularizing).

    python benchmarks/bench_lstm_convergence.py [--max-update N (default: fig5's)] [--out DIR]

The two trainings run side by side (one thread each); plain fairseq-train with fig5's flags is fig5's round 0.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "small"))

import lstm_lm_fig5 as fig5  # noqa: E402

from fairseq_ext import demo  # noqa: E402
from fairseq_ext.data import binarize_lm  # noqa: E402

TOLERANCE = 0.02  # ln ppl


def test_log_ppl(data, checkpoint) -> float:
    """fairseq-eval-lm's test loss (base 2) as ln ppl."""
    # plain fairseq-train's checkpoints hold objects torch's default weights_only loader refuses
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", OMP_NUM_THREADS="1")
    # scored on fig5's samples (35 tokens), as the lottery's round metrics are, not eval-lm's default 1024
    samples = [x for flag in ("--tokens-per-sample", "--sample-break-mode")
               for x in (flag, fig5.MODEL[fig5.MODEL.index(flag) + 1])]
    out = subprocess.run([sys.executable, "-m", "fairseq_cli.eval_lm", str(data), "--path", str(checkpoint),
                          "--gen-subset", "test", "--cpu", "--batch-size", "32", *samples], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    m = re.search(r"Loss \(base 2\): ([0-9.]+)", out)
    if not m:
        raise SystemExit(f"fairseq-eval-lm gave no loss:\n{out[-3000:]}")
    return float(m.group(1)) * math.log(2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-update", type=int, default=600, help="fig5's default budget per round")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_lstm_conv_")).resolve()
    data = binarize_lm(fig5.write_corpus(out / "raw"), out / "bin")
    budgets = (a.max_update, 2 * a.max_update)
    logs = {n: out / f"dense_{n}.log" for n in budgets}
    todo = [n for n in budgets if not (logs[n].is_file() and "done training" in logs[n].read_text())]
    t0 = time.time()  # a rerun in the same --out scores what was trained (and trains what did not finish)
    demo.wait_all([demo.start_fairseq_train([str(data), "--save-dir", str(out / f"dense_{n}"), *fig5.MODEL,
                                             "--max-update", str(n)], logs[n]) for n in todo])
    print(f"trained {todo or 'nothing (done before)'} in {time.time() - t0:.0f} s (side by side)")
    scores = {}
    for n in budgets:
        scores[n] = test_log_ppl(data, out / f"dense_{n}" / "checkpoint_last.pt")
        print(f"dense, {n:5d} updates: test log perplexity {scores[n]:.3f}")
    change = scores[budgets[1]] - scores[budgets[0]]
    verdict = ("CONVERGED" if abs(change) <= TOLERANCE else
               "NOT CONVERGED (still improving)" if change < 0 else "OVERFITTING (the test score got worse)")
    print(f"test log perplexity at {budgets[0]} updates: {scores[budgets[0]]:.3f}; at {budgets[1]}: "
          f"{scores[budgets[1]]:.3f}; change from doubling {change:+.3f} -> {verdict} "
          f"(goal: |change| <= {TOLERANCE})")
    return 0 if abs(change) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
