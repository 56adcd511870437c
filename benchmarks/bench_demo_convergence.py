"""Is the main job's dense round converged? `lth demo`'s dense Transformer trained for the demo's budget of
updates per round and for twice that, both scored with the command the demo records (fairseq-generate with its
own defaults); converged = the score at the budget is within 1 BLEU of the score at twice the budget, either
way (a score that falls with more training means the schedule is unstable, not converged), and the model
learned something (BLEU >= 1 at one of them).

    python benchmarks/bench_demo_convergence.py [--max-update N (default: the demo's)] [--out DIR]

The two trainings run side by side (one thread each). Plain fairseq-train with the demo's flags is the demo's
round 0 (the lottery's dense round trains unmasked, as plain fairseq does).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import demo  # noqa: E402
from fairseq_ext.data import make_translation_data  # noqa: E402
from fairseq_ext.evaluate import generate_command, run_generate  # noqa: E402


def start(data, save, max_update):
    """Plain fairseq-train with the demo's flags to `max_update` (log: SAVE.log)."""
    return demo.start_fairseq_train([str(data), "--save-dir", str(save), *demo.MODEL, *demo.COMMON,
                                     *demo.schedule_args(max_update)], f"{save}.log")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-update", type=int, default=demo.DEFAULTS["max_update"])
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_demo_conv_"))
    out.mkdir(parents=True, exist_ok=True)
    data = make_translation_data(out / "data", seed=0, n_train=demo.DEFAULTS["n_train"], n_valid=200, n_test=200)
    budgets = (a.max_update, 2 * a.max_update)
    t0 = time.time()
    demo.wait_all([start(data, out / f"dense_{n}", n) for n in budgets])
    print(f"trained in {time.time() - t0:.0f} s (both side by side)")
    cfg = SimpleNamespace(task=SimpleNamespace(data=str(data), source_lang="src", target_lang="tgt"),
                          common=SimpleNamespace(cpu=True))
    # plain fairseq-train's checkpoints hold objects torch's default weights_only loader refuses (the lottery's
    # round checkpoints do not): let this fairseq-generate load them as torch < 2.6 did
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    scores = {}
    for n in budgets:
        res = run_generate(generate_command(cfg, out / f"dense_{n}" / "checkpoint_last.pt", {}),
                           str(out / f"dense_{n}" / "generate"))
        scores[n] = res["bleu"]
        print(f"dense, {n:5d} updates: BLEU {res['bleu']:.2f}   ({res['generate_command']})")
    gap = scores[budgets[1]] - scores[budgets[0]]
    # A score that falls when training goes on is no plateau either (a loss spike, an unstable schedule).
    # Nor is a model that learned nothing at either budget (tiny budgets score 0 twice).
    learned = max(scores.values()) >= 1.0
    ok = learned and abs(gap) <= 1.0
    verdict = ("NOT LEARNED (BLEU < 1 at both budgets)" if not learned else "CONVERGED" if ok
               else "NOT CONVERGED" if gap > 0 else "UNSTABLE (the score fell)")
    which = "the demo's budget" if a.max_update == demo.DEFAULTS["max_update"] else "the budget given"
    print(f"BLEU at {budgets[0]} updates ({which}): {scores[budgets[0]]:.2f}; at {budgets[1]}: "
          f"{scores[budgets[1]]:.2f}; change from doubling {gap:+.2f} -> {verdict} (goal: |change| <= 1 BLEU)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
