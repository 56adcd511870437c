"""ELF's side of `lth sweep`: Atari games (Table 1's names, or ALE ROM files), and the `python -m elf_ext.train
--lottery_prune` command of one ticket. ELF spells flags with underscores: the sweep's `--lottery-*` flags, and
any given in an experiment's args or an ablation, become `--lottery_*`."""
import contextlib
import io
import os
from pathlib import Path

from lth_plugins.errors import SweepError
from lth_plugins.sweep.targets import SweepTarget

from . import FRAMEWORK
from .checkpoints import RESUME


def elf_flag(arg: str) -> str:
    """A `--lottery-*` flag as ELF spells it (`--lottery-late-reset=1ep` -> `--lottery_late_reset=1ep`)."""
    if not arg.startswith("--lottery-"):
        return arg
    name, eq, value = arg.partition("=")
    return "--" + name[2:].replace("-", "_") + eq + value


class ElfTarget(SweepTarget):
    """experiment keys: games (Table 1's names, e.g. "Breakout", or ROM files such as "pong.bin"), args (ELF flags,
    e.g. ["--gpu", "0"]). ELF's model and game come from the environment as for `python -m elf_ext.train`."""

    tasks_key = "games"
    module = "elf_ext.train"
    # --seed: the run seed follows --lottery_seed, which the grid sets per job
    reserved_flags = ("--rom_file", "--seed", "--lottery_prune", "--lottery_run_dir")
    checkpoints = (f"{FRAMEWORK}/round_*/{RESUME}",)  # rewritten at every epoch's end

    def tasks(self, experiment):
        from .games import PAPER_GAMES, RomError, resolve_rom

        games = experiment.get("games")
        if not isinstance(games, list) or not games:
            raise SweepError(f"an elf experiment lists its games: games = [\"Breakout\", ...] (Table 1: "
                             f"{', '.join(PAPER_GAMES)}; or ROM files such as \"pong.bin\")")
        out = []
        for g in games:
            if not isinstance(g, str) or (g not in PAPER_GAMES and not g.endswith(".bin")):
                raise SweepError(f"unknown game {g!r} in the sweep config; Table 1's games: "
                                 f"{', '.join(PAPER_GAMES)} (or a ROM file name ending in .bin)")
            rom = PAPER_GAMES.get(g, g)
            try:
                resolve_rom(rom, None)
            except RomError as e:
                raise SweepError(f"game {g!r}: {e}") from None
            out.append((g if g in PAPER_GAMES else Path(g).stem, ["--rom_file", rom]))
        return out

    def arguments(self, task_args, args, seed, run_dir, lottery_args):
        return [*task_args, *map(elf_flag, args), "--lottery_run_dir", run_dir, "--lottery_prune",
                *map(elf_flag, lottery_args)]

    def check(self, arguments):
        from lth_plugins.errors import LotteryError

        from .games import RomError
        from .paths import ElfNotFoundError
        from .train import prepare, resolve_environ

        err = io.StringIO()
        try:  # ELF's parser prints every setting: keep the sweep's output readable
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                prepare(arguments, resolve_environ(os.environ))
        except SystemExit as e:
            lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
            why = lines[-1].split(": error: ", 1)[-1] if lines else e  # argparse's "prog: error: why"
            raise SweepError(f"{self.program_name} refuses its arguments: {why}") from None
        except (ElfNotFoundError, RomError, LotteryError, ValueError, KeyError, ImportError) as e:
            raise SweepError(f"{self.program_name} refuses its arguments: {e}") from None
