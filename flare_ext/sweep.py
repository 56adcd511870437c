"""FLARE's side of `lth sweep`: games, and the `python -m flare_ext.a2c` command of one ticket."""
from lth_plugins.errors import SweepError
from lth_plugins.sweep.targets import SweepTarget, check_with_parser


class FlareTarget(SweepTarget):
    tasks_key = "games"
    module = "flare_ext.a2c"
    reserved_flags = ("--seed", "--run-dir", "--lottery-prune")

    def tasks(self, experiment):
        from .a2c import GAMES

        games = experiment.get("games")
        if not isinstance(games, list) or not games:
            raise SweepError(f"a flare experiment lists its games: games = [\"CartPole-v0\", ...] "
                             f"(available: {', '.join(GAMES)})")
        for g in games:
            if g not in GAMES + ("LunarLander-v2",):
                raise SweepError(f"unknown game {g!r} in the sweep config; available: {', '.join(GAMES)}")
        return [(g, ["--game", g]) for g in games]

    def arguments(self, task_args, args, seed, run_dir, lottery_args):
        return [*task_args, *args, "--seed", str(seed), "--run-dir", run_dir, "--lottery-prune", *lottery_args]

    def check(self, arguments):
        from .a2c import parse_args

        check_with_parser(parse_args, arguments, self.program_name)
