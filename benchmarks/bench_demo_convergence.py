"""Is the main job's dense round converged? `lth demo`'s dense Transformer trained for the demo's budget of
updates per round and for twice that, both scored with the command the demo records (fairseq-generate with its
own defaults) on the VALIDATION split, where the budget is chosen; converged = the score at the budget is within
1 BLEU of the score at twice the budget, either way, and the model learned something (fairseq_ext/demo.py:
`convergence`). The test split's scores are printed beside them, for the record only.

    python benchmarks/bench_demo_convergence.py [--max-update N (default: the demo's)] [--out DIR]

The two trainings run side by side (one thread each). Plain fairseq-train with the demo's flags is the demo's
round 0 (the lottery's dense round trains unmasked, as plain fairseq does).
"""
import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import demo  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-update", type=int, default=demo.DEFAULTS["max_update"])
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_demo_conv_"))
    out.mkdir(parents=True, exist_ok=True)
    data = demo.make_data(out / "data")
    budgets = (a.max_update, 2 * a.max_update)
    t0 = time.time()  # a rerun in the same --out scores what was trained (and trains what did not finish)
    todo = [n for n in budgets if not demo.dense_trained(out / f"dense_{n}")]
    demo.wait_all([demo.start_dense(data, out / f"dense_{n}", n) for n in todo])
    print(f"trained {todo or 'nothing (done before)'} in {time.time() - t0:.0f} s (side by side)")
    scores = {n: demo.dense_score(data, out / f"dense_{n}", n, lambda save: {
        subset: demo.dense_bleu(data, save, subset)["bleu"] for subset in ("valid", "test")}, name="bleu_valid_test")
        for n in budgets}
    for n in budgets:
        command = shlex.join(demo.dense_generate_command(data, out / f"dense_{n}", "valid"))
        print(f"dense, {n:5d} updates: valid BLEU {scores[n]['valid']:.2f}, test BLEU {scores[n]['test']:.2f}   "
              f"({command})")
    valid = [scores[n]["valid"] for n in budgets]
    ok, verdict = demo.convergence(*valid)
    which = "the demo's budget" if a.max_update == demo.DEFAULTS["max_update"] else "the budget given"
    print(f"valid BLEU at {budgets[0]} updates ({which}): {valid[0]:.2f}; at {budgets[1]}: {valid[1]:.2f} -> "
          f"{verdict} (goal: |change| <= {demo.CONVERGED_WITHIN} BLEU); {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
