"""Figure 2 (Breakout) at small scale on ELF: winning vs random tickets over seeds, then `lth report`.

    python examples/small/breakout_fig2.py [--out DIR] [--seeds 0 1 2] [--rounds 2] [--rate 0.5] [--epochs 2]
                                           [--epoch-batches 20] [--games 8] [--batch 8] [--last-games 8]

Settings: `python -m elf_ext.train --lottery_prune` on the installed elf-rl, the paper's network, A2C with the
importance factor clamped at 1.5, rewards and advantages clipped to [-1, 1], Adam 1e-3 / eps 1e-3, T 6, late reset
after epoch 1 (all the paper's), but 8 game threads (paper 1024), batches of 8 (paper 128), 2 epochs of 20
batches per round (paper 25 x 1000), ticket reward = mean of the last 8 games (paper 1024), prune rate 0.5 over 2
rounds (paper 0.2 x 20). The ticket reward is the mean game score (Breakout's raw points; the agent trains on
rewards clipped to [-1, 1]). On 2 CPU cores ELF runs the paper's network at about 10 game steps/s
(benchmarks/bench_elf.py speed): a round here is under 2,000 game steps, 1e-4 of the paper's 19M: few games
finish, and it is far too few for Breakout's A2C to learn (that needs a GPU), so the dense model's reward is checked
first.
Claim checked (paper section 4.1, Figure 2): at the most pruned round the winning ticket's reward is above the
random ticket's. Tested only where the dense model learned something (ticket reward at least 1.5x the mean reward
of its first epoch's games, a near-random policy); otherwise the script says NOT TESTED. Resumable.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_table import (add_seeds_flag, load_run, mean_std, print_table, run_module, ticket_rows,  # noqa: E402
                        write_report)


def first_epoch_reward(run_dir: Path) -> float:
    """Mean reward of the games the dense round finished in its first epoch (a near-random policy)."""
    import json

    curve = json.loads((run_dir / "round_00" / "metrics.json").read_text()).get("curve") or []
    first = next((e for e in curve if e.get("mean_reward") is not None), None)
    return float("nan") if first is None else first["mean_reward"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_output/small_breakout")
    add_seeds_flag(p, (0, 1, 2))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--epoch-batches", type=int, default=20)
    p.add_argument("--games", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--last-games", type=int, default=8)
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seeds = a.seeds
    t0 = time.time()
    common = ["--rom_file", "breakout.bin", "--num_games", str(a.games), "--batchsize", str(a.batch),
              "--lottery_prune", "--lottery_rounds", str(a.rounds), "--lottery_rate", str(a.rate),
              "--lottery_epochs", str(a.epochs), "--lottery_epoch_batches", str(a.epoch_batches),
              "--lottery_last_games", str(a.last_games)]
    for s in seeds:
        wt, rt = out / f"s{s}" / "wt", out / f"s{s}" / "rt"
        print(f"[fig2] seed {s}: winning ticket -> {wt}", flush=True)
        run_module("elf_ext.train", [*common, "--lottery_seed", str(s), "--lottery_run_dir", str(wt)],
                   out / f"s{s}_wt.log")
        print(f"[fig2] seed {s}: random ticket -> {rt}", flush=True)
        run_module("elf_ext.train", [*common, "--lottery_seed", str(s), "--lottery_run_dir", str(rt),
                                     "--lottery_ticket", "random", "--lottery_masks_from", str(wt)],
                   out / f"s{s}_rt.log")

    # a round in which no game finished has no ticket reward: left out of the means, named below
    rows = [(k, pruned, [v for v in wt if v is not None], [v for v in rt if v is not None])
            for k, pruned, wt, rt in ticket_rows([(out / f"s{s}" / "wt", out / f"s{s}" / "rt") for s in seeds])]
    print_table(rows, f"\nBreakout ticket reward (mean game score of the last {a.last_games} games), mean ± std "
                      f"over seeds {seeds}", digits=2)
    partial = sorted({(k, run.partial(k)) for s in seeds for t in ("wt", "rt")
                      for run in [load_run(out / f"s{s}" / t)] for k in run.records if run.partial(k)})
    for k, why in partial:
        print(f"round {k}: {why} in some run (more --epoch-batches, fewer --games)")
    dense = mean_std(rows[0][2])[0]
    start = mean_std([first_epoch_reward(out / f"s{s}" / "wt") for s in seeds])[0]
    print(f"settings: {len(seeds)} seeds, {a.rounds} rounds, rate {a.rate}, {a.epochs} epochs x {a.epoch_batches} "
          f"batches of {a.batch} per round, {a.games} games; runtime {time.time() - t0:.0f} s")
    write_report([out / f"s{s}" / t for s in seeds for t in ("wt", "rt")], out)
    k, pruned, wt, rt = rows[-1]
    print(f"dense ticket reward {dense:.2f}; its first epoch's games {start:.2f}")
    learned = dense > start and dense >= 1.5 * start
    if not wt or not rt or not learned:
        print("claim: NOT TESTED (the dense model did not learn at this budget: its ticket reward is not 1.5x "
              "its first epoch's)")
        return
    held = mean_std(wt)[0] > mean_std(rt)[0]
    print(f"round {k} ({100 * pruned:.1f}% pruned): WT {mean_std(wt)[0]:.2f}, RT {mean_std(rt)[0]:.2f}")
    print(f"claim (WT above RT at the most pruned round): {'HELD' if held else 'NOT HELD'}")


if __name__ == "__main__":
    main()
