"""Figure 6 at small scale: winning vs random tickets of a Transformer, pruning all weights (left) and only the
transformer layers, embeddings excluded (right); mean ± std over seeds. On `lth demo`'s generated translation task,
or with --data on real English->X translations from `lth data catalogs`.

    python examples/small/transformer_fig6.py [--out DIR] [--seeds 1 2 3] [--rounds 3] [--rate 0.7]
                                              [--max-update 800] [--data OUT/en-X] [--variants ...] [--shuffled]
                                              [--read-only]

Settings: `lth demo`'s model and schedule (fairseq_ext/demo.py), iterative global pruning.
- generated task: the demo's corpus (2,000 valid and 2,000 test sentences) and budget, late reset to update 20,
  BLEU from plain fairseq-generate with its defaults;
- --data: the catalogs' pair (one English side, a joint sentencepiece vocabulary), late reset to epoch 1, BLEU and
  chrF by sacreBLEU on the detokenized beam-5 output against the raw references (--lottery-references), budget
  --max-update (choose it with benchmarks/bench_catalogs_convergence.py, on the validation split).
A seed is fairseq's --seed (model initialization and batch order) and --lottery-seed; the data are the same for
all. The embeddings-excluded winning ticket reuses its seed's dense round (--lottery-dense-from). Beside the first
seed a plain dense model trains to twice the budget: the claims are judged only if the dense round is converged
on the validation split (demo.convergence); the tables report the test split.
Runtime: one seed at a time, its runs side by side; see examples/README.md.
Claims checked (paper section 4.2.2): (1) winning tickets beat random tickets when all weights are pruned (averaged
over the pruned rounds, in every seed); (2) with the embeddings excluded, random tickets fall off faster than when
all weights are pruned, while winning tickets stay closer to the dense model. Resumable: rerun the same command;
with --read-only it trains nothing and judges what the runs have finished so far.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_table import (add_seeds_flag, has_finished_round, mean_std, print_table, ticket_rows,  # noqa: E402
                        write_report)

from fairseq_ext import USER_DIR, catalogs, demo  # noqa: E402
from lth_plugins.errors import run_command  # noqa: E402

VARIANTS = {"all weights": [], "embeddings excluded": ["--lottery-exclude", "*embed_tokens*"]}


def task_flags(a, out: Path):
    """(data folder, model flags, lottery flags, what the runs translate) of the generated task or, with --data,
    of real English->X from lth data catalogs."""
    if a.data is None:
        data = demo.make_data(out / "data")
        return data, [*demo.MODEL, *demo.COMMON], demo.train_args(a.rounds, a.rate, a.max_update, flags=[]), \
            "the generated 'grammar' task"
    data = Path(a.data).resolve()
    model, lottery = demo.pair_flags(data, a.rounds, a.rate, a.max_update)
    return data, model, lottery, f"real {catalogs.SOURCE_LANG}->{catalogs.pair_target(data)} ({data})"


def winning_dir(out: Path, seed: int, variant: str = "all weights") -> Path:
    """Where a run of this script (`out`) keeps seed `seed`'s winning ticket of `variant`."""
    return out / variant.replace(" ", "_") / f"s{seed}" / "wt"


def dense_check_dir(out: Path, seed: int) -> Path:
    """Where a run of this script (`out`) trains seed `seed`'s dense model to twice the budget."""
    return out / f"dense_x2_s{seed}"


def run_seed(out: Path, base, seed: int, variants, shuffled: bool = False) -> None:
    """The runs of one seed side by side: each random (and shuffled) ticket's round k waits for its winning
    ticket's mask k, the embeddings-excluded winning ticket for the dense round of the all-weights one."""
    waits, dense_wt = [], None
    for name in variants:
        extra = VARIANTS[name]
        d = winning_dir(out, seed, name).parent
        (d / "wt").mkdir(parents=True, exist_ok=True)
        reuse = ["--lottery-dense-from", str(dense_wt)] if dense_wt else []
        print(f"[fig6] seed {seed}, {name}: winning ticket -> {d / 'wt'}, random ticket -> {d / 'rt'}", flush=True)
        # the lottery's seed too (the random ticket's re-draw), as lth sweep does: lth report tells seeds apart by it
        seed_args = [*extra, "--seed", str(seed), "--lottery-seed", str(seed)]
        waits.append(demo.start_fairseq_train([*base, *seed_args, *reuse, "--save-dir", str(d / "wt")],
                                              d / "wt.log"))
        waits.append(demo.start_fairseq_train([*base, *seed_args, "--save-dir", str(d / "rt"), "--lottery-ticket",
                                               "random", "--lottery-masks-from", str(d / "wt")], d / "rt.log"))
        if shuffled and not dense_wt:  # the control beside the all-weights winning ticket
            waits.append(demo.start_fairseq_train([*base, *seed_args, "--save-dir", str(d / "sh"), "--lottery-ticket",
                                                   "shuffled", "--lottery-masks-from", str(d / "wt")], d / "sh.log"))
        dense_wt = dense_wt or d / "wt"
    demo.wait_all(waits)


def finished_rows(rows, seeds: int):
    """The rows of `ticket_rows` up to the last round that every run of every seed has finished (round 0: every
    winning ticket's; a random ticket has none)."""
    done = []
    for k, pruned, wt, rt in rows:
        if len(wt) < seeds or (k > 0 and len(rt) < seeds):
            break
        done.append((k, pruned, wt, rt))
    return done


def _score(bleu: float) -> str:
    return "-" if bleu != bleu else f"{bleu:.2f}"  # NaN: not measured


def convergence_check(out: Path, data, model_flags, max_update: int, seed: int, dense_wt: Path):
    """(converged, verdict, valid BLEU at the budget, at twice it): the seed's dense round against a plain dense
    model trained to twice the budget, both scored on the validation split as the rounds score test."""
    at_budget = demo.recorded_score(dense_wt, 0, "valid")["bleu"]
    twice = demo.dense_score(data, dense_check_dir(out, seed), 2 * max_update, lambda save: demo.recorded_score(
        dense_wt, 0, "valid", save / "checkpoint_last.pt")["bleu"], seed, model_flags, name="valid_bleu")
    return demo.convergence(at_budget, twice) + (at_budget, twice)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="work folder (default: lth_output/small_transformer, or "
                                               "lth_output/small_transformer_en-X with --data)")
    add_seeds_flag(p, (1, 2, 3))
    p.add_argument("--rounds", type=int, default=demo.DEFAULTS["rounds"])
    p.add_argument("--rate", type=float, default=demo.DEFAULTS["rate"])
    p.add_argument("--max-update", type=int, default=None,
                   help=f"updates per round (default: the demo's {demo.DEFAULTS['max_update']}; with --data, "
                        f"{catalogs.TRANSFORMER_BUDGET})")
    p.add_argument("--data", default=None, metavar="OUT/en-X", help="real English->X: a pair folder that lth data "
                                                                   "catalogs built (default: the generated task)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"which runs: {', '.join(repr(v) for v in VARIANTS)} (default: both)")
    p.add_argument("--shuffled", action="store_true",
                   help="also the shuffled control ticket beside the all-weights winning ticket: its per-layer "
                        "counts at random positions, its init (which layers vs which weights)")
    p.add_argument("--read-only", action="store_true",
                   help="train nothing: the tables and claims from the rounds the runs have finished so far, the "
                        "claims judged at the last round every run has finished (provisional before the last)")
    a = p.parse_args()
    if a.max_update is None:
        a.max_update = catalogs.TRANSFORMER_BUDGET if a.data else demo.DEFAULTS["max_update"]
    if a.variants[0] != "all weights":
        p.error("--variants: 'all weights' comes first (its dense round is every variant's)")
    suffix = f"_{Path(a.data).name}" if a.data else ""
    out = Path(a.out or f"lth_output/small_transformer{suffix}").resolve()
    t0 = time.time()
    data, model_flags, lottery_flags, what = task_flags(a, out)
    print(f"[fig6] {what}; runs in {out}", flush=True)
    base = [str(data), "--user-dir", USER_DIR, *model_flags, *lottery_flags]
    first = a.seeds[0]
    if not a.read_only:
        check = None if demo.dense_trained(dense_check_dir(out, first)) else \
            demo.start_dense(data, dense_check_dir(out, first), 2 * a.max_update, first, model_flags)
        checks = [check] if check else []
        with demo.stopped_on_error(checks):
            for seed in a.seeds:
                run_seed(out, base, seed, a.variants, a.shuffled)
                print(f"[fig6] seed {seed} done at {time.time() - t0:.0f} s", flush=True)
        demo.wait_all(checks)
    rows = {}
    for name in a.variants:
        d = out / name.replace(" ", "_")
        rows[name] = finished_rows(ticket_rows([(d / f"s{s}" / "wt", d / f"s{s}" / "rt") for s in a.seeds],
                                               unfinished=a.read_only), len(a.seeds))
        print_table(rows[name], f"\n## {name}: test BLEU, mean ± std over seeds {a.seeds}", digits=2)
    if a.shuffled:
        d = out / "all_weights"
        print_table(finished_rows(ticket_rows([(d / f"s{s}" / "wt", d / f"s{s}" / "sh") for s in a.seeds],
                                              unfinished=a.read_only), len(a.seeds)),
                    f"\n## all weights, the shuffled control: test BLEU, mean ± std over seeds {a.seeds}", digits=2,
                    labels=("WT", "shuffled"))
    if not all(rows.values()):
        print("\nthe dense round is not finished by every seed yet: nothing to judge")
        return
    dense = rows["all weights"][0][2]
    if a.read_only and not demo.dense_trained(dense_check_dir(out, first)):
        ok, verdict, at_budget, twice = False, "NOT CHECKED YET (its twin at twice the budget has not " \
            "finished training)", float("nan"), float("nan")
    else:
        ok, verdict, at_budget, twice = convergence_check(out, data, model_flags, a.max_update, first,
                                                          winning_dir(out, first))
    print(f"\ndense test BLEU {mean_std(dense)[0]:.2f} ± {mean_std(dense)[1]:.2f} after {a.max_update} updates; seed "
          f"{first}'s valid BLEU {_score(at_budget)} at the budget, {_score(twice)} at twice it: {verdict}")
    print(f"settings: {what}; {a.rounds} rounds, rate {a.rate}, {a.max_update} updates per round, seeds {a.seeds}; "
          f"runtime {time.time() - t0:.0f} s")
    write_report([out / name.replace(" ", "_") / f"s{s}" / t for name in a.variants for s in a.seeds
                  for t in ("wt", "rt", "sh") if has_finished_round(out / name.replace(" ", "_") / f"s{s}" / t)],
                 out)
    last = min(table[-1][0] for table in rows.values())
    if last == 0:
        print("no pruned round is finished by every run yet: no claim judged")
        return
    if last < a.rounds:
        print(f"judged at round {last} of {a.rounds}, the last round every run has finished: provisional")
    rows = {name: [row for row in table if row[0] <= last] for name, table in rows.items()}
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
    claim1, claim2 = "1 (WT > RT, all weights pruned)", "2 (embeddings excluded: RT falls off faster)"
    if not ok:
        for claim in (claim1, claim2):
            print(f"claim {claim}: NOT TESTED (the dense round: {verdict})")
        return
    gap_m, gap_sd = mean_std(gaps["all weights"])
    c1 = all(g > 0 for g in gaps["all weights"])
    print(f"claim 1 (all weights pruned: WT > RT averaged over the pruned rounds, in every seed; mean gap "
          f"{gap_m:+.2f} ± {gap_sd:.2f}): {'HELD' if c1 else 'NOT HELD'}")
    if "embeddings excluded" not in drop:
        print(f"claim {claim2}: NOT TESTED (no embeddings-excluded runs: --variants)")
        return
    c2 = drop["embeddings excluded"][1] > drop["all weights"][1] and \
        drop["embeddings excluded"][0] < drop["embeddings excluded"][1]
    print(f"claim 2 (embeddings excluded: RT falls further below dense than with all weights pruned, WT stays "
          f"closer to dense than RT): {'HELD' if c2 else 'NOT HELD'}")


if __name__ == "__main__":
    sys.exit(run_command(main, "transformer_fig6.py"))
