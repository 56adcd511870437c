"""FLARE A2C on classic control, optionally in lottery-ticket rounds (the paper's Table 1 and Sec. 3.2.3): the
command line, the paper's settings, and one round of FLARE training per lottery round.

    python -m flare_ext.a2c --game CartPole-v0 --lottery-prune --run-dir runs/cartpole_s0_wt --seed 0
    python -m flare_ext.a2c --game CartPole-v0 --lottery-prune --lottery-ticket random \\
        --lottery-masks-from runs/cartpole_s0_wt --run-dir runs/cartpole_s0_rt --seed 0
"""
import argparse
import logging
import os
import sys
import time

from . import FRAMEWORK

GAMES = ("CartPole-v0", "Acrobot-v1", "LunarLander-v3")

# Table 1 of the paper: network and M (games per epoch); N = 20 epochs and L = 100 games for all three.
PAPER_GAME_SETTINGS = {
    "CartPole-v0": dict(hidden=(128, 128, 128), games_per_epoch=160),
    "Acrobot-v1": dict(hidden=(256, 256, 256), games_per_epoch=320),
    "LunarLander-v3": dict(hidden=(256, 256, 256), games_per_epoch=640),
}
# Sec. 3.2.3: 32 game threads, blocked every 4 steps (batch 32x4 = 128 steps), rewards / 100,
# RMSprop lr 1e-4, alpha 0.99, eps 1e-8.  Discount, value and entropy weights: FLARE SimpleAC defaults.
PAPER_COMMON_SETTINGS = dict(epochs=20, last_games=100, agents=32, sample_interval=4, reward_divisor=100.0,
                             lr=1e-4, rmsprop_alpha=0.99, rmsprop_eps=1e-8, discount=0.99, value_weight=1.0,
                             entropy_weight=0.01, grad_clip=None)


def paper_settings(game: str) -> dict:
    from .env import resolve_game

    game = resolve_game(game, warn=False)
    if game not in PAPER_GAME_SETTINGS:
        return dict(PAPER_COMMON_SETTINGS, hidden=(128, 128, 128), games_per_epoch=160)
    return dict(PAPER_COMMON_SETTINGS, **PAPER_GAME_SETTINGS[game])


def parse_hidden(text: str):
    try:
        sizes = tuple(int(x) for x in str(text).replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated layer widths, e.g. 128,128,128; "
                                         f"got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden needs at least one positive width, got {text!r}")
    return sizes


def _positive_int(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from lth_plugins.hparams import LotteryConfig

    p = argparse.ArgumentParser(
        prog="python -m flare_ext.a2c", allow_abbrev=False,  # a misspelt flag is an error, not another flag
        description="FLARE A2C on a classic control game, optionally with lottery-ticket pruning rounds "
                    "(Yu et al., ICLR 2020). Defaults are the paper's settings for the chosen game "
                    "(Table 1, Sec. 3.2.3). Needs FLARE built: `lth deps build flare --source /path/to/flare`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="LunarLander-v2 no longer exists in gymnasium 1.x: LunarLander-v3 is used instead "
               "(--game LunarLander-v2 is accepted as an alias for it).\n"
               "Paper defaults: CartPole-v0 MLP 128-128-128, M=160; Acrobot-v1 and LunarLander-v3 MLP "
               "256-256-256, M=320 / 640; all: N=20 epochs, L=100, 32 agents, 4-step sample interval, "
               "rewards / 100, RMSprop lr 1e-4 alpha 0.99 eps 1e-8, late reset after epoch 1.")
    g = p.add_argument_group("game and training (None = the paper's value for the game)")
    g.add_argument("--game", default="CartPole-v0", choices=GAMES + ("LunarLander-v2",),
                   help="gymnasium game (LunarLander-v2 is an alias of LunarLander-v3; default: CartPole-v0)")
    g.add_argument("--epochs", type=_positive_int, help="N: epochs per round (paper: 20)")
    g.add_argument("--games-per-epoch", type=_positive_int,
                   help="M: games per epoch (paper: 160 CartPole, 320 Acrobot, 640 LunarLander)")
    g.add_argument("--last-games", type=_positive_int,
                   help="L: the ticket reward is the mean episodic reward of the last L games (paper: 100)")
    g.add_argument("--agents", type=_positive_int, help="agents, i.e. game processes (paper: 32)")
    g.add_argument("--hidden", type=parse_hidden,
                   help="MLP widths, comma separated (paper: 128,128,128 CartPole; 256,256,256 others)")
    g.add_argument("--sample-interval", type=int, help="steps per agent between updates (paper: 4)")
    g.add_argument("--reward-divisor", type=float, help="immediate rewards are divided by this (paper: 100)")
    g.add_argument("--lr", type=float, help="RMSprop learning rate (paper: 1e-4)")
    g.add_argument("--rmsprop-alpha", type=float, help="RMSprop alpha (paper: 0.99)")
    g.add_argument("--rmsprop-eps", type=float, help="RMSprop eps (paper: 1e-8)")
    g.add_argument("--discount", type=float, help="discount factor (FLARE SimpleAC default: 0.99)")
    g.add_argument("--value-weight", type=float, help="value cost weight (FLARE SimpleAC default: 1.0)")
    g.add_argument("--entropy-weight", type=float, help="entropy cost weight (FLARE SimpleAC default: 0.01)")
    g.add_argument("--grad-clip", type=float, help="gradient norm clip (default: none, as in FLARE)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, help="seed of the model init, action sampling and the envs")
    r.add_argument("--run-dir", default=None,
                   help="lottery run directory (resumable; default runs/flare_<game>_s<seed>_<ticket>); "
                        "for a dense run, where metrics.json is written (optional)")
    r.add_argument("--torch-threads", type=int, default=1, help="torch threads per process (default: 1)")
    r.add_argument("--flare-print-interval", type=int, default=100,
                   help="FLARE's own statistics block every this many games, on a terminal only (default: 100)")
    p.add_argument("--lottery-prune", action="store_true",
                   help="run lottery-ticket rounds; without it: one plain dense FLARE A2C run")
    LotteryConfig.add_arguments(p, prefix="--lottery-")
    return p


def parse_args(argv=None):
    """Parsed flags with every None filled from the paper's settings for the game; `args.lottery` is a
    LotteryConfig (None without --lottery-prune)."""
    from lth_plugins.errors import LotteryConfigError
    from lth_plugins.hparams import LotteryConfig, flag_message, refuse_flag, short_lottery_errors
    from lth_plugins.store import default_run_dir

    from .env import resolve_game

    p = build_parser()
    with short_lottery_errors(p):
        args = p.parse_args(argv)
    if args.game == "LunarLander-v2":
        print("note: LunarLander-v2 does not exist in gymnasium 1.x; using LunarLander-v3", file=sys.stderr)
    args.game = resolve_game(args.game, warn=False)
    for name, value in paper_settings(args.game).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.hidden = tuple(args.hidden)
    if args.sample_interval < 2:
        p.error("--sample-interval must be >= 2 (FLARE's NoReplacementQueue needs it)")
    if args.reward_divisor == 0:
        p.error("--reward-divisor must be non-zero")
    if args.agents > args.epochs * args.games_per_epoch:
        p.error(f"--agents {args.agents} exceeds the {args.epochs * args.games_per_epoch} games of a round "
                f"(epochs x games-per-epoch): every agent must play at least one game")
    args.lottery = (LotteryConfig.from_namespace(args, prefix="--lottery-", run_seed=args.seed)
                    if args.lottery_prune else None)
    if args.lottery is not None:  # here, so that lth sweep's check of a job refuses what a run would
        try:
            args.lottery.validate(total_epochs=args.epochs)
        except LotteryConfigError as e:
            refuse_flag(p, flag_message(e))
    if args.run_dir is None and args.lottery_prune:
        args.run_dir = str(default_run_dir(FRAMEWORK, args.game, args.seed, args.lottery.ticket))
    return args


# Flags that cannot change results (where files go, threads, console output); every other flag is stored.
NOT_TRAINING_SETTINGS = ("run_dir", "torch_threads", "flare_print_interval", "lottery", "lottery_prune")


def training_settings(args) -> dict:
    """The settings that identify a run (stored in its config.json; a resumed run must repeat them, a random
    ticket must match its winning run's), with the algorithm they configure."""
    from lth_plugins.settings import training_settings as identity

    return {**identity(vars(args), NOT_TRAINING_SETTINGS), "algorithm": "flare.SimpleAC"}


def env_seed(seed: int, k: int) -> int:
    """The env seed of agent 0 in round k; agent i seeds its env with this + i. A multiple of 1024, so that
    the seeds of up to 1024 agents stay 31-bit integers and distinct."""
    from lth_plugins.seeds import mixed_seed

    return mixed_seed(seed, "env", k) % (2**31 // 1024) * 1024


def setup_logging(terminal: bool) -> None:
    """FLARE's GameLogger logs its statistics with logging.info on the root logger; show them on a
    terminal only, so a log file is not flooded.  Configured before FLARE's basicConfig (a no-op then)."""
    root = logging.getLogger()
    if not root.handlers:
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(h)
    root.setLevel(logging.INFO if terminal else logging.WARNING)


class TrainSession:
    """The FLARE pieces shared by all rounds of one run: the model and the per-round training call."""

    def __init__(self, args, flare=None, env_class=None):
        import torch

        from .env import GymnasiumEnv
        from .flare_compat import import_flare
        from .runner import build_model

        self.args = args
        self.flare = flare or import_flare()
        self.env_class = env_class or GymnasiumEnv
        torch.set_num_threads(max(1, args.torch_threads))
        probe = GymnasiumEnv(args.game)
        self.obs_dim = probe.observation_dims()["sensor"][0]
        self.num_actions = probe.action_dims()["action"]
        probe.close()
        self.model = build_model(self.flare, self.obs_dim, self.num_actions, args.hidden, seed=args.seed)

    def train(self, k: int, lottery_round=None):
        """Train the model for round k (N epochs of M games) with fresh FLARE agents, Manager and SimpleAC (a
        fresh RMSprop). `lottery_round` (a lth_plugins Round, None for a dense run) holds the masks on that
        optimizer, hears of every update and epoch, and says where the round starts: a round after a late reset
        continues the dense schedule, playing the games left of the N*M with FLARE's counters continuing."""
        import torch

        from lth_plugins.seeds import round_seed

        from .runner import build_algorithm, run_round, stdout_is_terminal

        a = self.args
        start = lottery_round.start if lottery_round is not None else None
        start_update = (start.update or 0) if start is not None else 0
        start_games = int(start.state.get("games", start.epoch * a.games_per_epoch)) if start is not None else 0
        torch.manual_seed(round_seed(a.seed, k))
        alg = build_algorithm(self.flare, self.model, lr=a.lr, alpha=a.rmsprop_alpha, eps=a.rmsprop_eps,
                              discount=a.discount, value_weight=a.value_weight,
                              entropy_weight=a.entropy_weight, grad_clip=a.grad_clip)
        on_update = on_epoch = None
        if lottery_round is not None:
            lottery_round.attach_optimizer(alg.optim)

            def on_update(n, games):
                lottery_round.after_update(n, state={"games": games})

            def on_epoch(e, n, games):
                # the epoch's own games, not those finished by now: a round resumed from here plays the rest
                lottery_round.after_epoch(e, num_updates=n, state={"games": e * a.games_per_epoch})

        terminal = stdout_is_terminal()
        label = f"[flare {a.game} round {k}]"
        t0 = time.monotonic()

        def epoch_log(e, rewards):  # on a terminal and in a log file alike: a round never looks hung
            if rewards:
                elapsed = time.monotonic() - t0
                rate = (e * a.games_per_epoch - start_games) / max(elapsed, 1e-9)  # games played here
                eta = (a.epochs - e) * a.games_per_epoch / rate if rate > 0 else 0.0
                print(f"{label} epoch {e}/{a.epochs}: mean reward {sum(rewards) / len(rewards):.2f} over "
                      f"{len(rewards)} games, {rate:.1f} games/s, elapsed {elapsed:.0f}s, round ETA {eta:.0f}s",
                      flush=True)

        return run_round(self.flare, alg, game=a.game, num_agents=a.agents,
                         total_games=a.epochs * a.games_per_epoch - start_games,
                         games_per_epoch=a.games_per_epoch, start_update=start_update, start_games=start_games,
                         reward_divisor=a.reward_divisor, sample_interval=a.sample_interval,
                         env_seed=env_seed(a.seed, k), env_class=self.env_class,
                         on_update=on_update, on_epoch=on_epoch, on_epoch_end_log=epoch_log,
                         print_interval=a.flare_print_interval if terminal else 10**9,
                         torch_threads=a.torch_threads)


def round_metrics(result, args) -> dict:
    """The ticket reward (lth_plugins.rl: FLARE's rewards are unclipped game scores) beside FLARE's counters."""
    return {**result.ticket(args.last_games).metrics(),
            "games": result.games, "updates": result.updates, "end_update": result.end_update,
            "first_game": result.first_game, "steps": int(sum(result.steps)),
            "wall_s": round(result.wall_s, 3), "games_per_s": round(result.games_per_s, 3),
            "mean_reward_all_games": float(sum(result.rewards) / len(result.rewards))}


def run_dense(args, session: TrainSession) -> dict:
    from lth_plugins.rl import PRIMARY

    from .runner import stdout_is_terminal

    result = session.train(0)
    metrics = round_metrics(result, args)
    print(f"[flare {args.game} dense] ticket reward (mean of last {metrics['ticket_games']} games) "
          f"{metrics[PRIMARY]:.2f}; {result.games} games, {result.updates} updates in "
          f"{result.wall_s:.1f}s ({result.games_per_s:.2f} games/s)", flush=stdout_is_terminal())
    if args.run_dir:
        from lth_plugins.atomic import atomic_write_json

        os.makedirs(args.run_dir, exist_ok=True)
        atomic_write_json(os.path.join(args.run_dir, "metrics.json"),
                          {"metrics": metrics, "settings": training_settings(args),
                           "curve": result.curve(args.games_per_epoch)})
    return metrics


def open_lottery_run(args, progress: bool = True, model=None):
    """The lottery run of these flags (validated against the winning run for a random ticket, against `model`'s
    parameters when given)."""
    from lth_plugins.run import LotteryRun

    return LotteryRun(args.lottery, args.run_dir, task=args.game, framework=FRAMEWORK,
                      settings=training_settings(args), total_epochs=args.epochs, progress=progress, model=model)


def train_lottery_round(args, session: TrainSession, run, k: int):
    """Round k of `run`, from its reset to its record; returns FLARE's RoundResult."""
    from lth_plugins.rl import PRIMARY

    with run.round(k, session.model) as r:
        result = session.train(k, r)
        r.finish(round_metrics(result, args), primary=PRIMARY, higher_is_better=True,
                 curve=result.curve(args.games_per_epoch))
    return result


def run_lottery(args, session: TrainSession):
    with open_lottery_run(args, model=session.model) as run:
        for k in run.pending_rounds():
            train_lottery_round(args, session, run, k)
    return run


def main(argv=None, env_class=None) -> int:
    args = parse_args(argv)
    from lth_plugins.errors import run_command

    from .flare_compat import FlareNotFoundError
    from .runner import FlareRunError, stdout_is_terminal

    setup_logging(stdout_is_terminal())

    def train():
        session = TrainSession(args, env_class=env_class)
        if args.lottery_prune:
            run_lottery(args, session)
        else:
            run_dense(args, session)

    return run_command(train, failures=[(FlareNotFoundError, "", 2), (FlareRunError, "the FLARE run failed: ", 1)])


if __name__ == "__main__":
    sys.exit(main())
