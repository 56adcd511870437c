"""Figure 6 at small scale: winning vs random tickets of a Transformer on the generated translation corpus of
`lth demo`, pruning all weights (left) and only the transformer layers, embeddings excluded (right).

    python examples/small/transformer_fig6.py [--out DIR] [--rounds 2] [--rate 0.7] [--max-update 800]

Settings: `lth demo`'s model, data and converged budget (fairseq_ext/demo.py; benchmarks/bench_demo_convergence.py),
late reset, iterative global pruning, BLEU from plain fairseq-generate with its defaults; one seed.
Runtime: 4 fairseq-train runs side by side (WT and RT of each variant, the RT pipelined behind its WT); about 2x
`lth demo` (measured: see examples/README.md).
Claims checked (paper section 4.2.2): (1) winning tickets beat random tickets when all weights are pruned;
(2) with the embeddings excluded, random tickets fall off faster than when all weights are pruned, while winning
tickets stay close to the dense model. Resumable: rerun the same command.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fairseq_ext import USER_DIR, demo  # noqa: E402
from fairseq_ext.data import make_translation_data  # noqa: E402

VARIANTS = {"all weights": [], "embeddings excluded": ["--lottery-exclude", "*embed_tokens*"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_output/small_transformer")
    p.add_argument("--rounds", type=int, default=demo.DEFAULTS["rounds"])
    p.add_argument("--rate", type=float, default=demo.DEFAULTS["rate"])
    p.add_argument("--max-update", type=int, default=demo.DEFAULTS["max_update"])
    a = p.parse_args()
    out = Path(a.out).resolve()
    t0 = time.time()
    data = make_translation_data(out / "data", seed=0, n_train=demo.DEFAULTS["n_train"], n_valid=200, n_test=200)
    base = [str(data), "--user-dir", USER_DIR, *demo.train_args(a.rounds, a.rate, a.max_update)]
    waits = []  # all four runs side by side; each random ticket's round k waits for its winning ticket's mask k
    for name, extra in VARIANTS.items():
        d = out / name.replace(" ", "_")
        (d / "wt").mkdir(parents=True, exist_ok=True)
        print(f"[fig6] {name}: winning ticket -> {d / 'wt'}, random ticket -> {d / 'rt'}", flush=True)
        waits.append(demo.start_fairseq_train([*base, *extra, "--save-dir", str(d / "wt")], d / "wt.log"))
        waits.append(demo.start_fairseq_train([*base, *extra, "--save-dir", str(d / "rt"), "--lottery-ticket",
                                               "random", "--lottery-masks-from", str(d / "wt")], d / "rt.log"))
    demo.wait_all(waits)
    results = {}
    for name in VARIANTS:
        d = out / name.replace(" ", "_")
        results[name] = (demo.read_rounds(d / "wt"), demo.read_rounds(d / "rt"))
        print(f"\n## {name}\n{demo.table(d / 'wt', d / 'rt')}\n", flush=True)
    print(f"settings: {a.rounds} rounds, rate {a.rate}, {a.max_update} updates per round (dense), late reset "
          f"{demo.LATE_RESET}, 1 seed; runtime {time.time() - t0:.0f} s")
    gaps, rt_drop, wt_drop = {}, {}, {}
    for name, (wt, rt) in results.items():
        dense = wt[0]["metrics"]["bleu"]
        ks = [k for k in sorted(wt) if k > 0 and k in rt]
        gaps[name] = sum(wt[k]["metrics"]["bleu"] - rt[k]["metrics"]["bleu"] for k in ks) / len(ks)
        last = ks[-1]
        rt_drop[name] = dense - rt[last]["metrics"]["bleu"]
        wt_drop[name] = dense - wt[last]["metrics"]["bleu"]
        print(f"{name}: mean WT-RT BLEU over pruned rounds {gaps[name]:+.2f}; at round {last} "
              f"({100 * wt[last]['fraction_pruned']:.1f}% of the prunable weights pruned) WT {wt_drop[name]:+.2f} "
              f"and RT {rt_drop[name]:+.2f} BLEU below the dense {dense:.2f}")
    c1 = gaps["all weights"] > 0
    c2 = rt_drop["embeddings excluded"] > rt_drop["all weights"] and wt_drop["embeddings excluded"] < \
        rt_drop["embeddings excluded"]
    print(f"claim 1 (WT > RT, all weights pruned): {'HELD' if c1 else 'NOT HELD'}")
    print(f"claim 2 (embeddings excluded: RT falls off faster than with all weights pruned, WT stays closer to "
          f"dense than RT): {'HELD' if c2 else 'NOT HELD'}")


if __name__ == "__main__":
    main()
