"""Throughput of flare_ext against plain FLARE on CartPole-v0, and the wall time of one paper-sized round.

    python benchmarks/bench_flare.py [--games 640 --repeats 2] [--full-round]

* plain:  FLARE's own a2c example pipeline (SimpleRLAgent x A, SimpleAC + RMSprop, SimpleModelAC on an MLP,
          Manager), with only what FLARE needs to run here at all: the collections.Iterable alias, the
          fork start method and the gymnasium env bridge.
* plugin: round 0 of a lottery run through flare_ext (reporting agents, watcher thread, optimizer hooks for
          updates/epochs, the core's LotteryRun: init snapshot, late snapshot after epoch 1, mask of round 1
          computed at the end).  Dense: round 0 prunes nothing.
Both use the same settings (paper settings for CartPole-v0: 32 agents, 4-step interval, MLP 128x3, RMSprop
1e-4, rewards / 100) and fresh processes, alternating plain/plugin `--repeats` times; games/s = games of the
run / wall time of FLARE's Manager.start() (the plugin's round wall time, with snapshots and pruning, is
reported too).  Goal: plugin/plain games/s >= 0.95.
`--full-round`: the wall time of one full CartPole-v0 round with paper settings (20 epochs x 160 games).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plain_flare(games: int, agents: int, seed: int) -> dict:
    import torch
    import torch.nn as nn
    import torch.optim as optim

    from flare_ext.env import GymnasiumEnv
    from flare_ext.flare_compat import import_flare

    import_flare()  # the fork start method; nothing else of flare_ext runs
    from flare.agent_zoo.simple_rl_agents import SimpleRLAgent
    from flare.algorithm_zoo.simple_algorithms import SimpleAC
    from flare.framework.agent import OnlineHelper
    from flare.framework.manager import Manager
    from flare.model_zoo.simple_models import SimpleModelAC

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    game = "CartPole-v0"
    env = GymnasiumEnv(game)
    state_shape = env.observation_dims()["sensor"]
    num_actions = env.action_dims()["action"]
    per_agent = [games // agents + (1 if i < games % agents else 0) for i in range(agents)]
    agent_list = []
    for i in range(agents):
        agent = SimpleRLAgent(per_agent[i], reward_shaping_f=lambda x: x / 100.0)
        agent.set_env(GymnasiumEnv, game_name=game, seed=seed * 64 + i)
        agent_list.append(agent)
    mlp = nn.Sequential(nn.Linear(state_shape[0], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, 128), nn.ReLU())
    alg = SimpleAC(model=SimpleModelAC(dims=state_shape, num_actions=num_actions, perception_net=mlp),
                   optim=(optim.RMSprop, dict(lr=1e-4, alpha=0.99, eps=1e-8)), gpu_id=-1)
    manager = Manager({"RL": dict(alg=alg, agent_helper=OnlineHelper, sample_interval=4)},
                      dict(print_interval=10**9))
    manager.add_agents(agent_list)
    t0 = time.monotonic()
    manager.start()
    wall = time.monotonic() - t0
    n = manager.stats["All"].num_games
    return {"mode": "plain", "games": n, "wall_s": wall, "games_per_s": n / wall}


def plugin_round0(games: int, agents: int, seed: int, epochs: int = 20) -> dict:
    from flare_ext import a2c

    run_dir = tempfile.mkdtemp(prefix="bench_flare_")
    args = a2c.parse_args(["--game", "CartPole-v0", "--agents", str(agents), "--epochs", str(epochs),
                           "--games-per-epoch", str(games // epochs), "--seed", str(seed), "--run-dir", run_dir,
                           "--lottery-prune", "--lottery-rounds", "20"])
    a2c.setup_logging(False)
    t0 = time.monotonic()
    session = a2c.TrainSession(args)
    with a2c.open_lottery_run(args, progress=False) as run:
        result = a2c.train_lottery_round(args, session, run, 0)
    total = time.monotonic() - t0
    return {"mode": "plugin", "games": result.games, "wall_s": result.wall_s, "games_per_s": result.games_per_s,
            "round_wall_s": total, "updates": result.updates,
            "ticket_reward": result.ticket(args.last_games).value, "run_dir": run_dir}


def _child(mode: str, games: int, agents: int, seed: int, epochs: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, __file__, "--child", mode, "--games", str(games), "--agents", str(agents),
                        "--seed", str(seed), "--epochs", str(epochs)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{mode} run failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", type=int, default=640, help="games per throughput run (default 640 = 20 x 32)")
    ap.add_argument("--agents", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20, help="epochs the plugin run splits the games into")
    ap.add_argument("--repeats", type=int, default=2, help="alternating plain/plugin pairs (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full-round", action="store_true",
                    help="also time one full CartPole-v0 round with paper settings (3200 games)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--child", choices=("plain", "plugin"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        res = plain_flare(a.games, a.agents, a.seed) if a.child == "plain" else \
            plugin_round0(a.games, a.agents, a.seed, a.epochs)
        print(json.dumps(res))
        return 0
    from flare_ext.flare_compat import FlareNotFoundError, import_flare

    try:
        import_flare()
    except FlareNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = []
    for i in range(a.repeats):
        for mode in (("plain", "plugin") if i % 2 == 0 else ("plugin", "plain")):
            r = _child(mode, a.games, a.agents, a.seed + i, a.epochs)
            runs.append(r)
            print(f"{mode:<7} games {r['games']:>5}  wall {r['wall_s']:7.1f}s  {r['games_per_s']:6.2f} games/s",
                  flush=True)
    plain = statistics.median(r["games_per_s"] for r in runs if r["mode"] == "plain")
    plugin = statistics.median(r["games_per_s"] for r in runs if r["mode"] == "plugin")
    summary = {"games": a.games, "agents": a.agents, "repeats": a.repeats, "plain_games_per_s": plain,
               "plugin_games_per_s": plugin, "ratio": plugin / plain, "goal": 0.95, "runs": runs,
               "cpus": os.cpu_count()}
    print(f"median games/s: plain FLARE {plain:.2f}, flare_ext {plugin:.2f}; ratio {plugin / plain:.3f} "
          f"(goal >= 0.95)", flush=True)
    if a.full_round:
        r = _child("plugin", 3200, 32, a.seed, 20)
        summary["full_round"] = r
        print(f"full CartPole-v0 round (paper settings: 20 x 160 games, 32 agents): {r['round_wall_s']:.1f}s "
              f"wall ({r['games_per_s']:.2f} games/s, {r['updates']} updates, ticket reward "
              f"{r['ticket_reward']:.1f})", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
