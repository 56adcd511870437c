"""Tickets across languages: winning tickets found on English->SOURCE (default German) trained on English->X for
the other languages, beside each target's own winning ticket, random ticket and shuffled ticket; mean ± std over
seeds. Real translations from `lth data catalogs` (one English side, one split and one vocabulary for all
languages, so every pair has the same parameter shapes and no test sentence of one language trains another).

    python examples/small/tickets_across_languages.py --data OUT [--source de] [--targets fr es] [--out DIR]
                                                      [--seeds 1 2 3] [--rounds 3] [--rate 0.7] [--max-update N]
                                                      [--source-runs FIG6_OUT]

Settings: transformer_fig6.py's with --data (`lth demo`'s Transformer, late reset to epoch 1, sacreBLEU and chrF
against raw references), all weights pruned. Per seed, side by side: the source's winning ticket; per target its
winning ticket (whose round 0 is the target's dense model), its random ticket (the winning ticket's masks, weights
re-drawn), its shuffled ticket (the winning ticket's per-layer counts at random positions) and the transferred
ticket (--lottery-transfer-from: the source's round-k mask and reset weights, trained on the target). Beside the
first seed, each language's dense model trains to twice the budget: a language's verdicts are judged only if its
dense round is converged on the validation split (demo.convergence); the tables report the test split. Last, how
much of each vocabulary row the first seed's source ticket keeps, by language (vocabulary_rows.py).
Verdict rules, fixed before any run:
  (a) at the highest sparsity where the target's own winning ticket beats its random ticket (means over seeds),
      the transferred ticket beats the random ticket too: HELD / NOT HELD (NOT TESTED where no such sparsity);
  (b) the transferred ticket's gap to the target's own winning ticket, per sparsity (mean over seeds).
Resumable: rerun the same command.
"""
import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transformer_fig6 as fig6  # noqa: E402
import vocabulary_rows  # noqa: E402
from seed_table import add_seeds_flag, load_run, mean_std, print_table, write_report  # noqa: E402

from fairseq_ext import USER_DIR, catalogs, demo  # noqa: E402
from lth_plugins.errors import run_command  # noqa: E402

TICKETS = ("winning", "transferred", "random", "shuffled")  # the columns of a target's table


def pair_setup(a, data_root: Path, lang: str, out: Path):
    """(data folder, model flags, fairseq-train's base arguments) of English->LANG."""
    task = SimpleNamespace(data=data_root / f"{catalogs.SOURCE_LANG}-{lang}", rounds=a.rounds, rate=a.rate,
                           max_update=a.max_update)
    data, model, lottery, _ = fig6.task_flags(task, out)
    return data, model, [str(data), "--user-dir", USER_DIR, *model, *lottery]


def run_dirs(out: Path, seed: int, source: str, targets, source_runs: Optional[Path] = None) -> dict:
    """{(language, ticket): run directory} of one seed; the source's winning ticket is a transformer_fig6.py
    run's when `source_runs` names one."""
    dirs = {(source, "winning"): fig6.winning_dir(source_runs, seed) if source_runs else
            out / source / f"s{seed}" / "wt"}
    for lang in targets:
        for ticket in TICKETS:
            dirs[(lang, ticket)] = out / lang / f"s{seed}" / ticket
    return dirs


def run_seed(out: Path, bases: dict, seed: int, source: str, targets, source_runs: Optional[Path] = None) -> dict:
    """Every run of one seed side by side: random and shuffled tickets wait for their winning ticket's mask k, a
    transferred ticket for the source's. Each run's log is OUT/LANG/sSEED/TICKET.log."""
    dirs = run_dirs(out, seed, source, targets, source_runs)
    seed_args = ["--seed", str(seed), "--lottery-seed", str(seed)]
    extra = {"winning": [], "random": ["--lottery-ticket", "random"], "shuffled": ["--lottery-ticket", "shuffled"],
             "transferred": ["--lottery-transfer-from", str(dirs[(source, "winning")])]}
    waits = []
    for (lang, ticket), d in dirs.items():
        d.mkdir(parents=True, exist_ok=True)
        masks = ["--lottery-masks-from", str(dirs[(lang, "winning")])] if ticket in ("random", "shuffled") else []
        waits.append(demo.start_fairseq_train([*bases[lang], *seed_args, *extra[ticket], *masks, "--save-dir",
                                               str(d)], out / lang / f"s{seed}" / f"{ticket}.log"))
    print(f"[transfer] seed {seed}: {len(waits)} runs under {out}/*/s{seed}", flush=True)
    demo.wait_all(waits)
    return dirs


def table(out: Path, seeds, lang: str) -> dict:
    """{round: (fraction pruned, {ticket: [test BLEU per seed]})} of target LANG; round 0 is its dense model."""
    runs = {t: [load_run(out / lang / f"s{s}" / t) for s in seeds] for t in TICKETS}
    rows = {}
    for k in sorted(runs["winning"][0].records):
        values = {t: [r.value(k) for r in rs if k in r.records] for t, rs in runs.items()}
        rows[k] = (runs["winning"][0].records[k].fraction_pruned, values)
    return rows


def verdicts(rows: dict):
    """Rule (a) as (word, the round it was judged at) and rule (b) as {round: transferred - winning}."""
    mean = lambda v: mean_std(v)[0]  # noqa: E731
    pruned = [k for k in rows if k > 0 and all(rows[k][1][t] for t in ("winning", "random", "transferred"))]
    gaps = {k: mean(rows[k][1]["transferred"]) - mean(rows[k][1]["winning"]) for k in pruned}
    wins = [k for k in pruned if mean(rows[k][1]["winning"]) > mean(rows[k][1]["random"])]
    if not wins:
        return "NOT TESTED (the own winning ticket beats the random ticket at no pruned round)", None, gaps
    k = wins[-1]
    held = mean(rows[k][1]["transferred"]) > mean(rows[k][1]["random"])
    return ("HELD" if held else "NOT HELD"), k, gaps


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="OUT", help="what lth data catalogs built (OUT/en-X folders)")
    p.add_argument("--source", default="de", help="the language whose winning tickets are transferred")
    p.add_argument("--targets", nargs="+", default=None, metavar="LANG",
                   help="target languages (default: every other pair under OUT)")
    p.add_argument("--out", default="lth_output/tickets_across_languages")
    p.add_argument("--source-runs", default=None, metavar="FIG6_OUT",
                   help="the --out of a transformer_fig6.py --data run on English->SOURCE with these settings: its "
                        "all-weights winning tickets and dense check are the source's (a finished run is not "
                        "trained again; one of other settings is refused)")
    add_seeds_flag(p, (1, 2, 3))
    p.add_argument("--rounds", type=int, default=demo.DEFAULTS["rounds"])
    p.add_argument("--rate", type=float, default=demo.DEFAULTS["rate"])
    p.add_argument("--max-update", type=int, default=catalogs.TRANSFORMER_BUDGET,
                   help=f"updates per round (default: {catalogs.TRANSFORMER_BUDGET})")
    a = p.parse_args()
    root, out = Path(a.data).resolve(), Path(a.out).resolve()
    source_runs = Path(a.source_runs).resolve() if a.source_runs else None
    pairs = catalogs.built_targets(root)
    targets = a.targets or [lang for lang in pairs if lang != a.source]
    for lang in [a.source, *targets]:
        catalogs.pair_target(root / f"{catalogs.SOURCE_LANG}-{lang}")  # one error naming a missing pair
    if a.source in targets or not targets:
        p.error(f"--targets: give languages other than the source {a.source!r} (pairs under {root}: {pairs})")
    t0 = time.time()
    setups = {lang: pair_setup(a, root, lang, out) for lang in [a.source, *targets]}
    bases = {lang: base for lang, (_, _, base) in setups.items()}
    first = a.seeds[0]
    homes = {lang: out / lang for lang in setups}  # where each language's dense check trains
    if source_runs:
        homes[a.source] = source_runs
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
    checks = [demo.start_dense(data, fig6.dense_check_dir(homes[lang], first), 2 * a.max_update, first, model)
              for lang, (data, model, _) in setups.items()
              if not demo.dense_trained(fig6.dense_check_dir(homes[lang], first))]
    with demo.stopped_on_error(checks):
        for seed in a.seeds:
            run_seed(out, bases, seed, a.source, targets, source_runs)
            print(f"[transfer] seed {seed} done at {time.time() - t0:.0f} s", flush=True)
    demo.wait_all(checks)
    converged = {}
    for lang, (data, model, _) in setups.items():
        wt = run_dirs(out, first, a.source, targets, source_runs)[(lang, "winning")]
        ok, verdict, at_budget, twice = fig6.convergence_check(homes[lang], data, model, a.max_update, first, wt)
        converged[lang] = ok
        print(f"dense en-{lang}: seed {first}'s valid BLEU {at_budget:.2f} at the budget, {twice:.2f} at twice it: "
              f"{verdict}")
    for lang in targets:
        rows = table(out, a.seeds, lang)
        print_table([(k, pruned, *(values[t] for t in TICKETS)) for k, (pruned, values) in rows.items()],
                    f"\n## en-{lang}: test BLEU, mean ± std over seeds {a.seeds}; transferred from en-{a.source}",
                    digits=2, labels=TICKETS)
        word, k, gaps = verdicts(rows)
        if not (converged[lang] and converged[a.source]):
            word, k = "NOT TESTED (a dense model is not converged)", None
        at = f" at round {k} ({100 * rows[k][0]:.1f}% pruned)" if k is not None else ""
        print(f"en-{lang} (a) transferred > random where the own winning ticket beats random{at}: {word}")
        print(f"en-{lang} (b) transferred - own winning ticket, BLEU: " +
              ", ".join(f"round {k} {g:+.2f}" for k, g in gaps.items()))
    vocabulary_rows.print_rows(run_dirs(out, first, a.source, targets, source_runs)[(a.source, "winning")], root,
                               a.source, targets)
    print(f"settings: source en-{a.source}, targets {', '.join('en-' + t for t in targets)}; {a.rounds} rounds, rate "
          f"{a.rate}, {a.max_update} updates per round, seeds {a.seeds}; runtime {time.time() - t0:.0f} s")
    write_report([d for s in a.seeds for d in run_dirs(out, s, a.source, targets, source_runs).values()], out)


if __name__ == "__main__":
    sys.exit(run_command(main, "tickets_across_languages.py"))
