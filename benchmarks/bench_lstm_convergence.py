"""Is the LSTM language model's dense round converged? examples/small/lstm_lm_fig5.py's dense model (its data, flags
and budget) trained for the budget and for twice that, both scored by fairseq-eval-lm on the VALIDATION split,
where the budget is chosen (log perplexity, ln ppl, lower is better); the test split's scores are printed beside
them for the record. Converged = doubling the budget improves the validation log perplexity by at most
fig5.CONVERGED_WITHIN (0.02), `fig5.convergence`; a score that gets worse with more training means the model is past
its best at the budget (overfits): it still counts, as fig5's claims compare tickets with each other, not with the
dense line, but is named.

    python benchmarks/bench_lstm_convergence.py [--max-update N (default: fig5's)] [--out DIR]

The two trainings run side by side (one thread each); plain fairseq-train with fig5's flags is fig5's round 0.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "small"))

import lstm_lm_fig5 as fig5  # noqa: E402

from fairseq_ext import demo  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-update", type=int, default=fig5.MAX_UPDATE, help="fig5's default budget per round")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_lstm_conv_")).resolve()
    data = fig5.make_data(out)
    manifest = json.loads((out / "raw" / "manifest.json").read_text())
    held_out = ", ".join(f"{s} {manifest[s]['tokens']} tokens ({manifest[s]['8-grams also in train']:.1%} of its "
                         f"8-grams also in train)" for s in ("valid", "test"))
    print(f"corpus: train {manifest['train']['tokens']} tokens, {held_out}")
    budgets = (a.max_update, 2 * a.max_update)
    t0 = time.time()  # a rerun in the same --out scores what was trained (and trains what did not finish)
    todo = [n for n in budgets if not demo.dense_trained(out / f"dense_{n}")]
    demo.wait_all([demo.start_dense(data, out / f"dense_{n}", n, flags=fig5.MODEL) for n in todo])
    print(f"trained {todo or 'nothing (done before)'} in {time.time() - t0:.0f} s (side by side)")
    scores = {n: {subset: fig5.dense_log_ppl(data, out / f"dense_{n}", n, subset=subset)
                  for subset in ("valid", "test")} for n in budgets}
    for n in budgets:
        print(f"dense, {n:5d} updates: valid log perplexity {scores[n]['valid']:.3f}, test {scores[n]['test']:.3f}")
    valid = [scores[n]["valid"] for n in budgets]
    ok, verdict = fig5.convergence(*valid)
    print(f"valid log perplexity at {budgets[0]} updates: {valid[0]:.3f}; at {budgets[1]}: {valid[1]:.3f} -> "
          f"{verdict}; {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
