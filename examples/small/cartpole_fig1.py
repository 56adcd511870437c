"""Figure 1 (CartPole-v0) at small scale on FLARE: winning vs random tickets over 3 seeds.

    python examples/small/cartpole_fig1.py [--out DIR] [--seeds 0 1 2] [--rounds 6] [--rate 0.5] [--epochs 10]
                                           [--games-per-epoch 80] [--last-games 50] [--agents 8] [--lr 1e-3]

Settings: flare_ext.a2c (A2C on the installed flare-rl), the paper's CartPole MLP 128-128-128 and late reset after
epoch 1, but lr 1e-3 (paper 1e-4), 8 agents (paper 32), 10 epochs of 80 games per round (paper 20 x 160; with
5 the dense model was not converged), ticket reward = mean of the last 50 games (paper 100), prune rate 0.5 over 6
rounds (98.4% pruned; paper 0.2 x 20).
Claim checked (paper section 4.1, Figure 1): past 90% pruned, winning tickets stay near the dense reward (mean
>= 80% of it) while random tickets collapse (mean <= 50% of it). Judged only if the dense model is converged: a
plain dense run of each seed with twice the epochs changes the mean dense reward by at most CONVERGED_WITHIN of it.
Resumable: rerun the same command.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lth_plugins.rl import PRIMARY  # noqa: E402

from seed_table import add_seeds_flag, mean_std, print_table, run_module, ticket_rows, write_report  # noqa: E402

CONVERGED_WITHIN = 0.1  # relative change of the mean dense reward from doubling the epochs


def dense_reward(out: Path, common, seed: int, epochs: int) -> float:
    """The ticket reward of a plain dense run (no lottery) of `epochs` epochs, run unless done before."""
    d = out / f"dense_x2_s{seed}"
    if not (d / "metrics.json").is_file():
        dense = [x for x in common if x != "--lottery-prune"]
        dense = dense[:dense.index("--lottery-rounds")]
        dense[dense.index("--epochs") + 1] = str(epochs)
        run_module("flare_ext.a2c", [*dense, "--seed", str(seed), "--run-dir", str(d)], out / f"dense_x2_s{seed}.log")
    return json.loads((d / "metrics.json").read_text())["metrics"][PRIMARY]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_output/small_cartpole")
    add_seeds_flag(p, (0, 1, 2))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--games-per-epoch", type=int, default=80)
    p.add_argument("--last-games", type=int, default=50)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seeds = a.seeds
    t0 = time.time()
    common = ["--game", "CartPole-v0", "--epochs", str(a.epochs), "--games-per-epoch", str(a.games_per_epoch),
              "--last-games", str(a.last_games), "--agents", str(a.agents), "--lr", str(a.lr), "--lottery-prune",
              "--lottery-rounds", str(a.rounds), "--lottery-rate", str(a.rate)]
    for s in seeds:
        wt, rt = out / f"s{s}" / "wt", out / f"s{s}" / "rt"
        print(f"[fig1] seed {s}: winning ticket -> {wt}", flush=True)
        run_module("flare_ext.a2c", [*common, "--seed", str(s), "--run-dir", str(wt)], out / f"s{s}_wt.log")
        print(f"[fig1] seed {s}: random ticket -> {rt}", flush=True)
        run_module("flare_ext.a2c", [*common, "--seed", str(s), "--run-dir", str(rt), "--lottery-ticket", "random",
                                     "--lottery-masks-from", str(wt)], out / f"s{s}_rt.log")

    rows = ticket_rows([(out / f"s{s}" / "wt", out / f"s{s}" / "rt") for s in seeds])
    print_table(rows, f"\nCartPole-v0 ticket reward (mean of the last {a.last_games} games), mean ± std over seeds "
                      f"{seeds}")
    dense = mean_std(rows[0][2])[0]
    high_wt = [v for _, pruned, wt, _ in rows if pruned > 0.9 for v in wt]
    high_rt = [v for _, pruned, _, rt in rows if pruned > 0.9 for v in rt]
    print(f"settings: {len(seeds)} seeds, {a.rounds} rounds, rate {a.rate}, {a.epochs} epochs x "
          f"{a.games_per_epoch} games per round, {a.agents} agents, lr {a.lr}; runtime {time.time() - t0:.0f} s")
    write_report([out / f"s{s}" / t for s in seeds for t in ("wt", "rt")], out)
    twice = mean_std([dense_reward(out, common, s, 2 * a.epochs) for s in seeds])[0]
    converged = abs(twice - dense) <= CONVERGED_WITHIN * abs(twice)
    print(f"dense with {2 * a.epochs} epochs: {twice:.1f} (mean over seeds) against {dense:.1f} with {a.epochs}: "
          f"{'CONVERGED' if converged else 'NOT CONVERGED'} (goal: within {CONVERGED_WITHIN:.0%})")
    if not converged:
        print("claim: NOT TESTED (the dense model is not converged: raise --epochs)")
        return
    if not high_wt or not high_rt:
        print("claim: NOT TESTED (no round of both tickets past 90% pruned; raise --rounds)")
        return
    wt_hi, rt_hi = sum(high_wt) / len(high_wt), sum(high_rt) / len(high_rt)
    held = wt_hi >= 0.8 * dense and rt_hi <= 0.5 * dense
    print(f"past 90% pruned: WT mean {wt_hi:.1f}, RT mean {rt_hi:.1f}, dense {dense:.1f}")
    print(f"claim (WT >= 80% of dense and RT <= 50% of dense past 90% pruned): {'HELD' if held else 'NOT HELD'}")


if __name__ == "__main__":
    main()
