"""The two places where fairseq is touched, both installed when fairseq imports `--user-dir`:

1. `fairseq.options.add_optimization_args` (called only by `get_training_parser`, after the user dir is
   imported) also adds the `--lottery-*` flags, so `fairseq-train --help` lists them.
2. `fairseq.options.parse_args_and_arch` validates the lottery flags right after parsing (a clear error before
   anything is trained or written) and, only when `--lottery-prune` is given, replaces `fairseq_cli.train.main`
   (which `cli_main` looks up at call time) by the round loop of the run spec (`fairseq_ext.driver.LotteryMain`),
   makes fairseq's SLURM detection work without CUDA, on a task's one GPU and past a taken port
   (`fairseq_ext.distributed.install_slurm_init`) and, under SLURM, catches the warning before the time limit
   (`fairseq_ext.requeue`) and arms its own (`fairseq_ext.trainer.arm_time_limit_warning`, --lottery-save-grace).
Without `--lottery-prune` nothing else changes.
"""
import functools
import sys

from lth_plugins.hparams import flag_message, refuse_flag, short_lottery_errors


def install() -> None:
    """Wrap fairseq's two option functions (once per process)."""
    from fairseq import options

    from .options import add_lottery_args

    if getattr(options.parse_args_and_arch, "lottery_hook", False):
        return
    orig_add_opt = options.add_optimization_args
    orig_parse = options.parse_args_and_arch

    @functools.wraps(orig_add_opt)
    def add_optimization_args(parser):
        group = orig_add_opt(parser)
        add_lottery_args(parser)
        return group

    @functools.wraps(orig_parse)
    def parse_args_and_arch(parser, *args, **kwargs):
        with short_lottery_errors(parser):
            result = orig_parse(parser, *args, **kwargs)
        ns = result[0] if isinstance(result, tuple) else result
        if getattr(ns, "lottery_prune", False):
            _activate(parser, ns)
        return result

    parse_args_and_arch.lottery_hook = True
    options.add_optimization_args = add_optimization_args
    options.parse_args_and_arch = parse_args_and_arch


def _activate(parser, ns) -> None:
    from lth_plugins.errors import LotteryError

    from .options import build_spec

    try:
        spec = build_spec(ns)
    except LotteryError as e:
        refuse_flag(parser, flag_message(e))
    train_mod = sys.modules.get("fairseq_cli.train")
    if train_mod is None:
        import fairseq_cli.train as train_mod
    from .distributed import install_slurm_init
    from .driver import LotteryMain
    from .requeue import PREEMPTION
    from .trainer import arm_time_limit_warning

    train_mod.main = LotteryMain(spec, train_mod.main)
    install_slurm_init(spec.save_dir)  # every node sees it
    PREEMPTION.install()  # noted until the round loop runs, which acts on it
    arm_time_limit_warning(ns.lottery_save_grace)
