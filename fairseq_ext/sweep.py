"""fairseq's side of `lth sweep`: one task per experiment (its data and fairseq-train arguments), and the
`fairseq-train --user-dir fairseq_ext --lottery-prune` command of one ticket (run through this interpreter)."""
import os

from lth_plugins.errors import LotteryError, SweepError
from lth_plugins.hparams import flag
from lth_plugins.sweep.targets import SweepTarget, check_with_parser

from . import USER_DIR, train_command
from .spec import SCORING_OPTIONS


class FairseqTarget(SweepTarget):
    """experiment keys: data (the binarized data folder), args (fairseq-train arguments, `--task` among them),
    name (the task's label; default: the fairseq task and the data folder's name)."""

    tasks_key = "data"
    reserved_flags = ("--seed", "--save-dir", "--lottery-run-dir", "--lottery-prune")
    port_flag = "--distributed-port"
    world_size_flag = "--distributed-world-size"
    checkpoints = ("round_*/checkpoint*.pt",)
    scoring_flags = tuple(flag(name) for name in SCORING_OPTIONS)

    def tasks(self, experiment):
        data = experiment.get("data")
        if not isinstance(data, str) or not data:
            raise SweepError("a fairseq experiment names its binarized data folder: data = \"data-bin/...\"")
        if not os.path.isdir(data):
            raise SweepError(f"fairseq data folder {data!r} does not exist")
        args = [str(a) for a in experiment.get("args", [])]
        task = args[args.index("--task") + 1] if "--task" in args[:-1] else "translation"
        from fairseq.tasks import TASK_REGISTRY

        if task not in TASK_REGISTRY:
            raise SweepError(f"unknown fairseq task {task!r} in the sweep config; fairseq has: "
                             f"{', '.join(sorted(TASK_REGISTRY))}")
        label = f"{task}-{os.path.basename(os.path.normpath(data))}"
        return [(label, [os.path.abspath(data)])]

    def program(self):
        return train_command()

    @property
    def program_name(self):
        return "fairseq-train"

    def arguments(self, task_args, args, seed, run_dir, lottery_args):
        return [*task_args, "--user-dir", USER_DIR, *args, "--seed", str(seed), "--save-dir", run_dir,
                "--lottery-prune", *lottery_args]

    def check(self, arguments):
        """fairseq-train's own parser (abbreviations refused, the lottery flags among its own) and the lottery run's
        checks, on this machine, without training: a misspelt or invalid flag fails the grid at `--dry-run`
        instead of every submitted job."""
        from fairseq import options

        from .hooks import install
        from .options import build_spec

        install()
        # the parse alone: the hook's activation of the round loop belongs in the job, not in the sweep
        parse = getattr(options.parse_args_and_arch, "__wrapped__", options.parse_args_and_arch)

        def parse_and_check(argv):
            parser = options.get_training_parser()
            parser.prog = self.program_name
            ns = parse(parser, argv)
            try:
                build_spec(ns, sources_exist=False)  # a random ticket's winning run is a job of the grid
            except LotteryError as e:
                raise SweepError(f"{self.program_name} refuses its arguments: {e}") from None

        check_with_parser(parse_and_check, arguments, self.program_name)
