"""What a framework contributes to a sweep: its tasks and its resumable command line.

An adapter registers a :class:`SweepTarget` subclass under the entry-point namespace ``lth_plugins.sweep_targets``
(``name = package.module:TargetClass``). The core never imports a framework: a target imports its own only when
asked to check an experiment.
"""
import sys
from typing import List, Optional, Tuple

from ..errors import SweepError
from ..registry import available, load

NAMESPACE = "lth_plugins.sweep_targets"


class SweepTarget:
    """One framework's side of `lth sweep`. A job's command is `program()` followed by `arguments(...)`."""

    #: the config key that lists this framework's tasks (e.g. "games"), or None when an experiment is one task
    tasks_key = "tasks"
    #: further keys an experiment of this framework may have (besides framework, name, args and tasks_key)
    extra_keys: Tuple[str, ...] = ()
    #: the module the command runs (`python -m MODULE`); a target whose program is not a module overrides `program`
    module: Optional[str] = None
    #: the framework's own flags whose value the grid decides for every job, set by `arguments` or following a
    #: flag it sets (seed, run directory...): an experiment, an ablation or `lottery` may not set them (the
    #: lottery flags the sweep sets are the core's, sweep.config)
    reserved_flags: Tuple[str, ...] = ()
    #: the flag by which the command takes its distributed port (e.g. "--distributed-port"); the sweep gives
    #: each job its own
    port_flag: Optional[str] = None
    #: the flag by which the command takes the number of ranks of a multi-task SLURM job (e.g.
    #: "--distributed-world-size"); the sweep sets it to nodes x tasks_per_node
    world_size_flag: Optional[str] = None
    #: globs, inside the run directory, of the framework's checkpoints a rerun resumes from (beyond finished
    #: rounds, which every target has): a requeued job that wrote none of them in an attempt made no progress
    checkpoints: Tuple[str, ...] = ()
    #: the flags that change only how finished rounds are scored (the settings its runs declare as "scoring"): a
    #: started job may change them, as its run directory lets it
    scoring_flags: Tuple[str, ...] = ()

    def program(self) -> List[str]:
        """The argv that starts the framework's training, run by this interpreter; the arguments follow."""
        return [sys.executable, "-m", self.module]

    @property
    def program_name(self) -> str:
        """The program as messages name it."""
        return f"python -m {self.module}"

    def tasks(self, experiment: dict) -> List[Tuple[str, List[str]]]:
        """[(label, task arguments)] of an experiment; raise SweepError naming an unknown task."""
        raise NotImplementedError

    def arguments(self, task_args: List[str], args: List[str], seed: int, run_dir: str,
                  lottery_args: List[str]) -> List[str]:
        """The arguments of one ticket's command: the framework's own resumable lottery run."""
        raise NotImplementedError

    def check(self, arguments: List[str]) -> None:
        """Raise SweepError if the program would refuse `arguments` (from `arguments`); default: no check."""

    def command(self, task_args: List[str], args: List[str], seed: int, run_dir: str,
                lottery_args: List[str]) -> List[str]:
        """The argv of one ticket, its arguments checked."""
        arguments = self.arguments(task_args, args, seed, run_dir, lottery_args)
        self.check(arguments)
        return self.program() + arguments


def load_target(name: str) -> SweepTarget:
    names = available(NAMESPACE)
    if name not in names:
        raise SweepError(f"unknown framework {name!r} in the sweep config; available: {', '.join(names) or '-'}")
    return load(NAMESPACE, name)()


def check_with_parser(parse, arguments: List[str], what: str) -> None:
    """Run an argparse-based `parse(arguments)`; turn its usage error (SystemExit) into one SweepError."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parse(arguments)
    except SystemExit as e:
        if e.code not in (0, None):
            lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
            raise SweepError(f"{what} refuses its arguments: {lines[-1] if lines else e}") from None


class TorchTarget(SweepTarget):
    """The core's teacher-MLP demo (`python -m lth_plugins.demo`): one task, 'teacher-mlp'."""

    TASKS = ("teacher-mlp",)
    module = "lth_plugins.demo"
    reserved_flags = ("--seed", "--run-dir")

    def tasks(self, experiment):
        tasks = experiment.get("tasks", list(self.TASKS))
        for t in tasks:
            if t not in self.TASKS:
                raise SweepError(f"unknown task {t!r} for framework 'torch'; available: {', '.join(self.TASKS)}")
        return [(t, []) for t in tasks]

    def arguments(self, task_args, args, seed, run_dir, lottery_args):
        return [*task_args, *args, "--seed", str(seed), "--run-dir", run_dir, *lottery_args]

    def check(self, arguments):
        from ..demo import build_parser

        check_with_parser(build_parser().parse_args, arguments, self.program_name)
