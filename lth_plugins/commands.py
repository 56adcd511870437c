"""`lth` subcommands as plugins (entry points of ``lth_plugins.commands``, as cliff does) and the core's own.
A command's module imports its framework only inside :meth:`Command.run`: ``lth`` loads every command class to
build its parser."""
import argparse
import sys
from pathlib import Path
from typing import Dict

from .registry import COMMANDS, load_all


class DefaultsShown(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is empty, off, or the help already speaks of it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        off = default is None or default is False or default == "" or default == argparse.SUPPRESS
        if off or "default" in text or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".lstrip()


class Command:
    """One ``lth`` subcommand: a one-line help, its arguments and what it does (returns the exit code)."""

    help = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's arguments to its subparser."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def load_commands() -> Dict[str, Command]:
    """name -> Command of every registered command; one that fails to load is named on stderr and left out."""
    return {name: cls() for name, cls in load_all(COMMANDS).items()}


class StatusCommand(Command):
    help = "table of rounds of one or more run directories, or of every job of a sweep directory"

    def add_arguments(self, parser):
        parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR|SWEEP_DIR")
        parser.add_argument("--attempts", action="store_true",
                            help="a sweep's jobs: every attempt (where it ran, how it ended, training redone); "
                                 "of a run directory a sweep ran, its job's")

    def run(self, args):
        from .status import run_attempts, status_table
        from .sweep.state import is_sweep_dir
        from .sweep.view import status_table as sweep_table

        sweeps = [p for p in args.run_dirs if is_sweep_dir(p)]
        runs = [p for p in args.run_dirs if p not in sweeps]
        attempts = [run_attempts(p) for p in runs] if args.attempts else []  # a run no sweep ran: refused first
        for p in sweeps:
            print(sweep_table(p, attempts=args.attempts))
        if runs:
            print(status_table(runs))
        for table in attempts:
            print(f"\n{table}")
        return 0


class SweepCommand(Command):
    help = ("run a grid of lottery experiments (tasks x seeds x winning/random tickets x ablations) from a "
            "config file through submitit (local or SLURM); rerun it to submit only what is unfinished")

    def add_arguments(self, parser):
        parser.add_argument("config", help="sweep config, TOML or JSON: its keys, defaults and rules in docs/sweep.md")
        parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="where the runs, logs and states go")
        parser.add_argument("--poll", type=float, default=2.0, metavar="S", help="seconds between checks")
        parser.add_argument("--dry-run", action="store_true",
                            help="check every job's arguments with its framework's own parser and print the grid "
                                 "on one screen (its shape, resources, what this machine lacks); submit and write "
                                 "nothing")
        parser.add_argument("--verbose", action="store_true",
                            help="with --dry-run: also every job with its command, resources and run directory")

    def run(self, args):
        from .sweep.runner import run_sweep

        return run_sweep(args.config, args.sweep_dir, poll_s=args.poll, dry_run=args.dry_run, verbose=args.verbose)


class PluginsCommand(Command):
    help = "list registered pruners, resets, framework adapters and lth commands"

    def add_arguments(self, parser):
        pass

    def run(self, args):
        from .registry import describe_all

        for ns, entries in describe_all().items():
            print(ns)
            for name, target in entries.items():
                print(f"  {name:<22} {target}")
        return 0


class ReportCommand(Command):
    help = "figures (PNG), tables (CSV, Markdown) and index.html of lottery runs"

    def add_arguments(self, parser):
        parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                            help="run directories, folders whose subdirectories are run directories, or sweep "
                                 "directories (their runs with a finished round; missing ones are named). Runs "
                                 "are averaged as seeds of one curve only when every setting but the seeds "
                                 "matches; runs of a task that differ in another setting (learning rate, depth, "
                                 "data...) get figures of their own, named by the settings that differ")
        parser.add_argument("-o", "--out", required=True, help="report folder (created; files of an earlier "
                            "report in it are replaced, other files are kept)")
        parser.add_argument("--layer-round", type=int, default=None, metavar="K",
                            help="round of the per-parameter sparsity chart; -1 is the last round finished, -2 the one "
                                 "before (default: the last round finished)")

    def run(self, args):
        from .report import build_report
        from .sweep.state import is_sweep_dir
        from .sweep.view import report_dirs

        dirs, notes = [], []
        for p in args.run_dirs:
            if is_sweep_dir(p):
                found, missing = report_dirs(p)
                dirs += found
                notes += missing
            else:
                dirs.append(p)
        for note in notes:
            print(f"lth: note: {note}", file=sys.stderr)
        if not dirs:
            from .report import ReportError

            raise ReportError("no run of the sweep has finished a round yet: nothing to draw")
        report = build_report(dirs, args.out, layer_round=args.layer_round)
        for note in report.notes:
            print(f"lth: note: {note}", file=sys.stderr)
        print(report.summary)
        print(f"\nwrote {len(report.files)} files to {report.out}; open {report.out / 'index.html'}")
        return 0


class DemoCoreCommand(Command):
    help = "winning vs random tickets of a small MLP on generated data (plain torch)"

    def add_arguments(self, parser):
        parser.add_argument("--out", default="lth_output/demo-core", help="folder of the runs")
        parser.add_argument("--rounds", type=int, default=5, help="pruned rounds after the dense one")
        parser.add_argument("--epochs", type=int, default=4,
                            help="epochs per round; at least 2, as the late reset is after epoch 1")
        parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                            help="a winning and a random ticket per seed")

    def run(self, args):
        from . import demo
        from .status import status_table

        dirs = demo.main(Path(args.out), rounds=args.rounds, seeds=args.seeds, epochs=args.epochs)
        for i in range(0, len(dirs), 2):
            print(status_table(dirs[i:i + 2]))
        return 0

