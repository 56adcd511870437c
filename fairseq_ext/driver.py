"""The round loop: fairseq's own `fairseq_cli.train.main` run once per lottery round, each round in its own
SAVE_DIR/round_KK (fairseq's checkpoint_last.pt there is the round's resume point: kill at any moment, rerun
the same command), trained by `LotteryTrainer`, then evaluated and recorded; checks that need the model or the
data run before the first round, and fairseq's data threads are settled before the process exits."""
import argparse
import contextlib
import copy
import functools
import gc
import logging
import math
import os
import sys
import threading
import time
from typing import Optional

import torch
from omegaconf import open_dict

from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils

from lth_plugins.errors import INTERRUPTED, LotteryError, refusal
from lth_plugins.hparams import LotteryConfig, Reset, Ticket
from lth_plugins.run import LotteryRun
from lth_plugins.selection import pruned_parameters
from lth_plugins.sources import check_transfer_source
from lth_plugins.store import RunStore, Snapshot, round_name

from . import evaluate
from .distributed import (INTERRUPTED_LINE, REFUSAL_LABEL, broadcast_object, refused_together,
                          set_collective_timeout, wait_for_all, watched_peers, world_size)
from .requeue import PREEMPTION, Requeue, requeue_and_wait
from .spec import SCORING_SETTINGS, LotterySpec
from .trainer import LotteryTrainer, RoundContext

logger = logging.getLogger("fairseq_ext.lottery")


class LotteryMain:
    """`fairseq_cli.train.main` under --lottery-prune: the round loop of `spec` around fairseq's own main
    (`original`). fairseq's multi-GPU spawn pickles it to every worker as its spec alone: a worker finds the
    original main where fairseq defines it."""

    def __init__(self, spec: LotterySpec, original):
        self.spec = spec
        self.original = original.original if isinstance(original, LotteryMain) else original

    def __call__(self, cfg, **kwargs) -> None:
        lottery_main(self.spec, self.original, cfg, **kwargs)

    def __reduce__(self):
        return _main_of_this_process, (self.spec,)


def _main_of_this_process(spec: LotterySpec) -> LotteryMain:
    import fairseq_cli.train as train_mod

    return LotteryMain(spec, train_mod.main)


def lottery_main(spec: LotterySpec, fairseq_main, cfg, **kwargs) -> None:
    """Train every round of `spec` that the run store has not finished, each with `fairseq_main`."""
    if isinstance(cfg, argparse.Namespace):
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf
        cfg = convert_namespace_to_omegaconf(cfg)
    is_master = distributed_utils.is_master(cfg.distributed_training)
    try:
        set_collective_timeout(spec.collective_timeout)
        with watched_peers():
            upe = refused_together(lambda: prechecked_updates_per_epoch(cfg, spec))
            for note in (evaluate.rescoring_note(spec), schedule_note(cfg)) if is_master else ():
                if note:
                    logger.warning("lottery: %s", note)
            try:
                PREEMPTION.enter_round_loop()
                run_rounds(spec, cfg, is_master, fairseq_main, kwargs, upe)
            except Requeue as e:
                requeue_and_wait(str(e))
    except LotteryError as e:  # the one line of the refusal
        raise refusal(REFUSAL_LABEL, e) from None
    except KeyboardInterrupt:  # Ctrl-C: one line instead of a traceback through fairseq's training loop
        if is_master:
            print(INTERRUPTED_LINE, file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED) from None
    finally:
        settle_data_threads()


def schedule_note(cfg) -> Optional[str]:
    """Why a round's learning rate does not reach its end where the round ends, when it does not: fairseq's
    polynomial decay runs to --total-num-update, which differs from --max-update (None: they agree)."""
    sched = getattr(cfg, "lr_scheduler", None)
    if getattr(sched, "_name", None) != "polynomial_decay":
        return None
    total, end = int(getattr(sched, "total_num_update", 0) or 0), int(cfg.optimization.max_update or 0)
    if total and end and total != end:
        when = "before" if total < end else "after"
        return (f"--total-num-update {total} differs from --max-update {end}: the learning rate's decay ends at "
                f"update {total}, {when} each round does (at update {end}); give both the same value for a round "
                f"whose learning rate reaches --end-learning-rate as it ends")
    return None


def prechecked_updates_per_epoch(cfg, spec: LotterySpec) -> Optional[int]:
    """The checks that need the model or the data, before any training (e.g. the test split exists); then the
    updates per epoch of the loaded training data."""
    evaluate.precheck(cfg, spec)
    task, model = precheck_model(cfg, spec.config)
    return updates_per_epoch(cfg, spec.config, task, model)


def run_rounds(spec: LotterySpec, cfg, is_master: bool, fairseq_main, kwargs: dict,
               upe: Optional[int] = None) -> None:
    """The rounds, in order. The run checks the late-reset point against the training length in updates and
    epochs, converted with `upe` (updates per epoch) when they are given in different units."""
    opt = cfg.optimization
    run = refused_together(lambda: LotteryRun(
        spec.config, spec.run_dir, task=spec.task or "fairseq", framework="fairseq", settings=spec.settings,
        is_writer=is_master, total_updates=opt.max_update or None, total_epochs=opt.max_epoch or None,
        updates_per_epoch=upe, label=spec.label, scoring=SCORING_SETTINGS))
    with run:
        rounds = broadcast_object(list(run.pending_rounds()))
        if not rounds:
            logger.info("lottery: every round of %s is finished", spec.run_dir)
        for k in rounds:
            ctx = RoundContext(run, k, round_config(cfg, spec, k), is_master)
            try:
                with fairseq_round(ctx):
                    fairseq_main(ctx.cfg, **kwargs)
                stop_progress_timeout(ctx.trainer)
                if ctx.trainer is None:
                    raise LotteryError(f"fairseq did not train round {k} (no trainer was built)")
                ctx.check_masks_held()
                ctx.close()
                metrics, primary, higher = evaluate.round_metrics(ctx, spec, is_master)
                ctx.finish(metrics, primary, higher)
            finally:
                ctx.close()
            # the round's data loaders live in reference cycles: end their workers now, not in a data worker
            # forked later, which would inherit them as garbage
            gc.collect()
            # rank 0 evaluated the round alone, for as long as that took: no collective waits for it
            wait_for_all(f"end_of_{round_name(k)}")


def round_config(cfg, spec: LotterySpec, k: int):
    """fairseq's configuration of round k: its checkpoints in SAVE_DIR/round_KK."""
    cfg_k = copy.deepcopy(cfg)
    with open_dict(cfg_k):
        cfg_k.checkpoint.save_dir = os.path.join(spec.save_dir, round_name(k))
        # every rank reads the round's checkpoint itself: fairseq's broadcast of rank 0's copy is
        # unpickled with torch's weights-only loader, which refuses the DictConfig in it (torch >= 2.6)
        cfg_k.checkpoint.load_checkpoint_on_all_dp_ranks = world_size() > 1
    return cfg_k


@contextlib.contextmanager
def fairseq_round(ctx: RoundContext):
    """fairseq's training module set for round `ctx`: the Trainer it builds is a `LotteryTrainer` of that
    round, its validation stats feed the round's learning curve, and after fairseq's own validation and saving of
    each update the round may stop for a requeue. Restored when the round's training ends."""
    import fairseq_cli.train as train_mod

    orig = train_mod.Trainer, train_mod.get_valid_stats, train_mod.validate_and_save
    orig_stats, orig_validate_and_save = orig[1], orig[2]

    def get_valid_stats(cfg_, trainer, stats, tracking_best):
        stats = orig_stats(cfg_, trainer, stats, tracking_best)
        if tracking_best:
            ctx.record_valid(stats)
        return stats

    def validate_and_save(cfg_, trainer, task, epoch_itr, *args, **kwargs):
        valid_losses, should_stop = orig_validate_and_save(cfg_, trainer, task, epoch_itr, *args, **kwargs)
        if not should_stop:  # the round's end comes first
            trainer.stop_for_requeue(epoch_itr)
        return valid_losses, should_stop

    _reset_fairseq_globals()
    train_mod.Trainer = functools.partial(LotteryTrainer, round_context=ctx)
    train_mod.get_valid_stats = get_valid_stats
    train_mod.validate_and_save = validate_and_save
    try:
        yield
    finally:
        train_mod.Trainer, train_mod.get_valid_stats, train_mod.validate_and_save = orig
    PREEMPTION.leave_training()  # a warning after the round's last update requeues now


def stop_progress_timeout(trainer) -> None:
    """fairseq's --heartbeat-timeout kills a rank whose model has not run forward for N seconds: the round's
    evaluation, and the wait for it, are not training that stalled. Its timer ends with the round's training."""
    from fairseq.distributed import DistributedTimeoutWrapper

    model = getattr(trainer, "_wrapped_model", None)
    if isinstance(model, DistributedTimeoutWrapper) and model._heartbeat is not None:
        model._terminated = True
        model._heartbeat.set()  # wakes its thread, which sees _terminated and ends


def _reset_fairseq_globals():
    """fairseq keeps the best validation score and the early-stopping count on its functions: each round starts
    afresh."""
    import fairseq_cli.train as train_mod

    for fn, attrs in ((checkpoint_utils.save_checkpoint, ("best",)),
                      (train_mod.should_stop_early, ("best", "num_runs"))):
        for a in attrs:
            if hasattr(fn, a):
                delattr(fn, a)


# --- checks before the first round -------------------------------------------------------------------------
def precheck_model(cfg, config: LotteryConfig):
    """Check the include/exclude patterns (a random ticket's masks, a transferred ticket's architecture) against
    the model's parameters before anything is written: the model is built on the meta device (no memory, no
    initialization). Returns (task, meta model or None)."""
    from fairseq import tasks

    task = tasks.setup_task(cfg.task)
    try:
        with torch.device("meta"):
            model = task.build_model(cfg.model)
    except Exception as e:  # a model that cannot be built on meta: checked at round start instead
        logger.warning("lottery: skipping the early parameter check (%s)", e)
        return task, None
    params = pruned_parameters(model, config)
    if config.ticket is Ticket.TRANSFERRED:
        source = RunStore.view(config.source_dir)
        if source.config and source.has_snapshot(Snapshot.INIT):  # a source still starting is checked by the run
            check_transfer_source(source, config, model.state_dict(), params)
    elif config.takes_masks:
        source = RunStore.view(config.masks_from)
        if source.config and source.has_mask(1):  # masks still to come are checked when they arrive
            source.load_mask(1).check_matches(params, source=f"mask of round 1 in {config.masks_from}")
    return task, model


def updates_per_epoch(cfg, config: LotteryConfig, task, model) -> Optional[int]:
    """Updates in one epoch of this rank's shard, as fairseq's trainer will batch it: only computed (by loading
    the training split before any update) when the late-reset point is in epochs and the training length in
    updates, or the other way round."""
    point = config.reset_point
    opt = cfg.optimization
    if config.takes_masks or config.reset is not Reset.LATE or not (
            (point.epochs is not None and opt.max_update) or (point.updates is not None and opt.max_epoch)):
        return None
    from fairseq import utils

    split = cfg.dataset.train_subset
    task.load_dataset(split, combine=True, epoch=1)
    max_positions = utils.resolve_max_positions(
        task.max_positions(), model.max_positions() if model is not None else None, cfg.dataset.max_tokens)
    itr = task.get_batch_iterator(
        dataset=task.dataset(split), max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
        max_positions=max_positions, ignore_invalid_inputs=True,
        required_batch_size_multiple=cfg.dataset.required_batch_size_multiple, seed=cfg.common.seed,
        num_shards=max(1, cfg.distributed_training.distributed_world_size),
        shard_id=max(0, cfg.distributed_training.distributed_rank), num_workers=0, epoch=1,
        data_buffer_size=cfg.dataset.data_buffer_size, disable_iterator_cache=True)
    return max(1, math.ceil(len(itr) / opt.update_freq[0]))


# --- at exit -----------------------------------------------------------------------------------------------
def settle_data_threads(timeout: float = 60.0) -> None:
    """Wait until fairseq's prefetching threads are idle before the interpreter exits.

    A round that stops mid-epoch (`--max-update`) leaves fairseq's `BackgroundConsumer` daemon thread collating
    batches; when the interpreter finalizes while that thread is inside a torch call, the process aborts
    ("terminate called without an active exception", exit -6) after all results are written. A consumer
    blocked on its full queue, or finished, is safe."""
    try:
        from fairseq.data.iterators import BackgroundConsumer
    except ImportError:
        return

    def busy(t):
        waiters = getattr(getattr(t._queue, "not_full", None), "_waiters", None)
        return t.is_alive() and not waiters

    deadline = time.monotonic() + timeout
    consumers = [t for t in threading.enumerate() if isinstance(t, BackgroundConsumer)]
    while any(busy(t) for t in consumers) and time.monotonic() < deadline:
        time.sleep(0.02)
