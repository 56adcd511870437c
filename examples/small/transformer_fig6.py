"""Figure 6 at small scale: winning vs random tickets of a Transformer on `lth demo`'s generated translation task,
pruning all weights (left) and only the transformer layers, embeddings excluded (right); mean ± std over seeds.

    python examples/small/transformer_fig6.py [--out DIR] [--seeds 1 2 3] [--rounds 3] [--rate 0.7]
                                              [--max-update 800]

Settings: `lth demo`'s model, corpus (2,000 valid and 2,000 test sentences) and budget (fairseq_ext/demo.py), late reset, iterative
global pruning, BLEU from plain fairseq-generate with its defaults. A seed is fairseq's --seed (model initialization
and batch order; 1 is the demo's) and --lottery-seed; the corpus is the same for all. The embeddings-excluded
winning ticket reuses its seed's dense round (--lottery-dense-from). Beside the first seed a plain dense model
trains to twice the budget: the claims are judged only if the dense round is converged on the validation split
(demo.convergence); the table reports the test split.
Runtime: one seed at a time, its four runs side by side; see examples/README.md.
Claims checked (paper section 4.2.2): (1) winning tickets beat random tickets when all weights are pruned (averaged
over the pruned rounds, in every seed); (2) with the embeddings excluded, random tickets fall off faster than when
all weights are pruned, while winning tickets stay closer to the dense model. Resumable: rerun the same command.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_table import add_seeds_flag, mean_std, print_table, ticket_rows, write_report  # noqa: E402

from fairseq_ext import USER_DIR, demo  # noqa: E402

VARIANTS = {"all weights": [], "embeddings excluded": ["--lottery-exclude", "*embed_tokens*"]}


def run_seed(out: Path, data, base, seed: int) -> None:
    """The four runs of one seed side by side: each random ticket's round k waits for its winning ticket's mask k,
    the embeddings-excluded winning ticket for the dense round of the all-weights one."""
    waits, dense_wt = [], None
    for name, extra in VARIANTS.items():
        d = out / name.replace(" ", "_") / f"s{seed}"
        (d / "wt").mkdir(parents=True, exist_ok=True)
        reuse = ["--lottery-dense-from", str(dense_wt)] if dense_wt else []
        print(f"[fig6] seed {seed}, {name}: winning ticket -> {d / 'wt'}, random ticket -> {d / 'rt'}", flush=True)
        # the lottery's seed too (the random ticket's re-draw), as lth sweep does: lth report tells seeds apart by it
        seed_args = [*extra, "--seed", str(seed), "--lottery-seed", str(seed)]
        waits.append(demo.start_fairseq_train([*base, *seed_args, *reuse, "--save-dir", str(d / "wt")],
                                              d / "wt.log"))
        waits.append(demo.start_fairseq_train([*base, *seed_args, "--save-dir", str(d / "rt"), "--lottery-ticket",
                                               "random", "--lottery-masks-from", str(d / "wt")], d / "rt.log"))
        dense_wt = dense_wt or d / "wt"
    demo.wait_all(waits)


def convergence_check(out: Path, data, max_update: int, seed: int):
    """(converged, verdict, valid BLEU at the budget, at twice it): the seed's dense round against a plain dense
    model trained to twice the budget, both on the validation split."""
    at_budget = demo.round_bleu(out / "all_weights" / f"s{seed}" / "wt", 0, "valid")
    twice = demo.dense_score(data, out / f"dense_x2_s{seed}", 2 * max_update,
                             lambda save: demo.dense_bleu(data, save, "valid")["bleu"], seed)
    return demo.convergence(at_budget, twice) + (at_budget, twice)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_output/small_transformer")
    add_seeds_flag(p, (1, 2, 3))
    p.add_argument("--rounds", type=int, default=demo.DEFAULTS["rounds"])
    p.add_argument("--rate", type=float, default=demo.DEFAULTS["rate"])
    p.add_argument("--max-update", type=int, default=demo.DEFAULTS["max_update"])
    a = p.parse_args()
    out = Path(a.out).resolve()
    t0 = time.time()
    data = demo.make_data(out / "data")
    base = [str(data), "--user-dir", USER_DIR, *demo.train_args(a.rounds, a.rate, a.max_update)]
    first = a.seeds[0]
    check = None if demo.dense_trained(out / f"dense_x2_s{first}") else \
        demo.start_dense(data, out / f"dense_x2_s{first}", 2 * a.max_update, first)
    for seed in a.seeds:
        run_seed(out, data, base, seed)
        print(f"[fig6] seed {seed} done at {time.time() - t0:.0f} s", flush=True)
    if check:
        demo.wait_all([check])
    rows = {}
    for name in VARIANTS:
        d = out / name.replace(" ", "_")
        rows[name] = ticket_rows([(d / f"s{s}" / "wt", d / f"s{s}" / "rt") for s in a.seeds])
        print_table(rows[name], f"\n## {name}: test BLEU, mean ± std over seeds {a.seeds}", digits=2)
    dense = rows["all weights"][0][2]
    ok, verdict, at_budget, twice = convergence_check(out, data, a.max_update, first)
    print(f"\ndense test BLEU {mean_std(dense)[0]:.2f} ± {mean_std(dense)[1]:.2f} after {a.max_update} updates; seed "
          f"{first}'s valid BLEU {at_budget:.2f} at the budget, {twice:.2f} at twice it: {verdict}")
    print(f"settings: {a.rounds} rounds, rate {a.rate}, {a.max_update} updates per round, late reset "
          f"{demo.LATE_RESET}, seeds {a.seeds}; runtime {time.time() - t0:.0f} s")
    write_report([out / name.replace(" ", "_") / f"s{s}" / t for name in VARIANTS for s in a.seeds
                  for t in ("wt", "rt")], out)
    drop, gaps = {}, {}
    for name, table in rows.items():
        pruned_rows = table[1:]
        # per seed: WT - RT averaged over the pruned rounds
        gaps[name] = [sum(wt[i] - rt[i] for _, _, wt, rt in pruned_rows) / len(pruned_rows)
                      for i in range(len(a.seeds))]
        k, pruned, wt, rt = table[-1]
        drop[name] = (mean_std(dense)[0] - mean_std(wt)[0], mean_std(dense)[0] - mean_std(rt)[0])
        print(f"{name}: WT - RT averaged over the pruned rounds, per seed {', '.join(f'{g:+.2f}' for g in gaps[name])}"
              f"; at round {k} ({100 * pruned:.1f}% pruned) WT {drop[name][0]:+.2f} and RT {drop[name][1]:+.2f} BLEU "
              f"below the dense")
    if not ok:
        for claim in ("1 (WT > RT, all weights pruned)", "2 (embeddings excluded: RT falls off faster)"):
            print(f"claim {claim}: NOT TESTED (the dense round is not converged: {verdict})")
        return
    gap_m, gap_sd = mean_std(gaps["all weights"])
    c1 = all(g > 0 for g in gaps["all weights"])
    c2 = drop["embeddings excluded"][1] > drop["all weights"][1] and \
        drop["embeddings excluded"][0] < drop["embeddings excluded"][1]
    print(f"claim 1 (all weights pruned: WT > RT averaged over the pruned rounds, in every seed; mean gap "
          f"{gap_m:+.2f} ± {gap_sd:.2f}): {'HELD' if c1 else 'NOT HELD'}")
    print(f"claim 2 (embeddings excluded: RT falls further below dense than with all weights pruned, WT stays "
          f"closer to dense than RT): {'HELD' if c2 else 'NOT HELD'}")


if __name__ == "__main__":
    main()
