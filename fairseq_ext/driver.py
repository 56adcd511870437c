"""The round loop: fairseq's own `fairseq_cli.train.main` run once per lottery round.

Per round k (only the rounds the run store has not finished):
  * `save_dir` becomes SAVE_DIR/round_KK, so fairseq's own checkpoint_last.pt of that directory is the resume
    point of the round (kill at any moment, rerun the same command);
  * `fairseq_cli.train.Trainer` is replaced, for the duration of the round, by `LotteryTrainer`, whose
    `load_checkpoint` calls `LotteryRun.start_round` (reset + mask, or only mask on resume) and installs the
    core's mask enforcer on fairseq's model and (lazily built) optimizer; a round that starts (not resumes)
    at the run's start point j (late reset, budget 'rest') gets fairseq's update counter, lr schedule, epoch
    counter and data iterator as the dense round had them after update j (open_lth rewinding, fresh
    optimizer), by handing fairseq the iterator state recorded with the late snapshot; `train_step` /
    `begin_epoch` feed the late-reset snapshot, and `state_dict` keeps checkpoints loadable by torch's
    weights_only loader (plain `fairseq-generate` on torch >= 2.6 without any environment variable);
  * then the round is evaluated (valid loss/ppl from fairseq's validations, test log-perplexity as
    fairseq-eval-lm computes it, BLEU as plain fairseq-generate prints it) and `LotteryRun.finish_round` prunes.
"""
import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from omegaconf import open_dict

from fairseq import checkpoint_utils
from fairseq.distributed import utils as distributed_utils
from fairseq.trainer import Trainer

from lth_plugins.atomic import atomic_write_json
from lth_plugins.enforce import register_zero_preserving
from lth_plugins.errors import LotteryError
from lth_plugins.hparams import LotteryConfig
from lth_plugins.peers import PeerWatchdog
from lth_plugins.run import LotteryRun

logger = logging.getLogger("fairseq_ext.lottery")


def _register_zero_preserving_optimizers() -> None:
    """fairseq's own Adam (what --optimizer adam builds on CPU and without apex) moves no weight whose value,
    gradient and moments are zero: the masks need no pass over the weights after its steps."""
    from fairseq.optim.adam import Adam

    register_zero_preserving(Adam)


_register_zero_preserving_optimizers()

_CTX: Optional["RoundContext"] = None


# --- helpers the core does not provide (fairseq-specific) --------------------------------------------------
def torch_optimizer(fairseq_optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside fairseq's optimizer wrappers (FairseqOptimizer, FP16Optimizer, ...)."""
    opt = fairseq_optimizer
    for _ in range(5):
        if isinstance(opt, torch.optim.Optimizer):
            return opt
        opt = getattr(opt, "optimizer", None) or getattr(opt, "_optimizer", None)
    raise LotteryError(f"cannot find the torch optimizer inside {type(fairseq_optimizer).__name__}")


def fp32_master_copies(fairseq_optimizer) -> Dict[int, torch.Tensor]:
    """id(model parameter) -> its fp32 master copy shaped like it, for FP16Optimizer (--fp16, --bf16), whose
    torch optimizer steps these copies and writes them back to the model; {} for optimizers that keep none
    (fp32 training, --memory-efficient-fp16) or no optimizer yet (None)."""
    model_params = getattr(fairseq_optimizer, "fp16_params", None)
    masters = getattr(fairseq_optimizer, "fp32_params", None)
    if model_params is None or masters is None:
        return {}
    if isinstance(masters, list):  # --fp16-no-flatten-grads: one copy per parameter
        return {id(p): q.data.view(p.shape) for p, q in zip(model_params, masters)}
    flats = {None: masters} if torch.is_tensor(masters) else masters  # flat copies, one per device
    out = {}
    for device, flat in flats.items():
        offset = 0
        for p in model_params:  # build_fp32_params lays the parameters of a device out in this order
            if len(flats) > 1 and p.device.index != device:
                continue
            out[id(p)] = flat.data[offset:offset + p.numel()].view(p.shape)
            offset += p.numel()
    return out


def weights_only_safe(obj):
    """Replace what torch's weights_only unpickler refuses (argparse.Namespace, numpy scalars, other objects)
    by plain dicts / Python scalars / strings. fairseq reads a dict model config back as a DictConfig."""
    if isinstance(obj, argparse.Namespace):
        return {k: weights_only_safe(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return type(obj)((k, weights_only_safe(v)) for k, v in obj.items()) if type(obj) in (dict,) else \
            {k: weights_only_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [weights_only_safe(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(weights_only_safe(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.Size, torch.dtype,
                                       torch.device)):
        return obj
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def _world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def gather_strings(s: str) -> List[str]:
    if _world() == 1:
        return [s]
    out = [None] * _world()
    torch.distributed.all_gather_object(out, s)
    return out


def broadcast_object(obj):
    if _world() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier():
    if _world() > 1:
        torch.distributed.barrier()


# --- per-round state shared with the trainer --------------------------------------------------------------
class RoundContext:
    def __init__(self, run: LotteryRun, k: int, cfg, is_master: bool):
        self.run, self.k, self.cfg, self.is_master = run, k, cfg, is_master
        self.trainer: Optional[Trainer] = None
        self.enforcer = None
        self.resumed: Optional[bool] = None
        self.max_update = cfg.optimization.max_update or 0
        self.curve_path = Path(cfg.checkpoint.save_dir) / "lottery_curve.json"
        self.curve: list = []
        # optimizer steps the round really took and the lr of its first one (kept in the round's checkpoints)
        self.training = {"optimizer_steps": 0, "first_update": None, "first_lr": None}
        self._step_hooks: list = []

    def begin(self, trainer: Trainer, resume: bool, extra_state: Optional[dict] = None) -> None:
        """Called once per round, right after fairseq restored (or did not find) the round's checkpoint."""
        self.trainer, self.resumed = trainer, resume
        model = trainer._model
        if resume and (extra_state or {}).get("lottery_training"):
            self.training.update(extra_state["lottery_training"])
        self.run.start_round(self.k, model, reinit=self._reinit, resume=resume,
                             num_updates=trainer.get_num_updates() if resume else None)
        # every rank holds identical masks: compare checksums, stop on mismatch
        self.run.check_consistent(self.k, gather_strings)
        # one line per rank (fairseq silences the INFO log of ranks > 0)
        print(f"[lottery] round {self.k} mask checksum {self.run.mask_checksum(self.k)} (rank "
              f"{self.cfg.distributed_training.distributed_rank} of {_world()}, identical on all ranks)",
              file=sys.stderr, flush=True)
        self.enforcer = self.run.enforce(model, None)
        if trainer._optimizer is not None:  # fairseq built it while restoring the checkpoint
            self.attach_optimizer(trainer._optimizer)
        if resume and self.curve_path.is_file():
            n = trainer.get_num_updates()
            self.curve = [p for p in json.loads(self.curve_path.read_text()) if p["num_updates"] <= n]
        if resume:
            self._check_resumed_weights(model)

    def attach_optimizer(self, fairseq_optimizer) -> None:
        optimizer = torch_optimizer(fairseq_optimizer)
        self.enforcer.attach_optimizer(optimizer)
        # FP16Optimizer copied the weights into its fp32 masters when it was built: zero the pruned ones there
        # too, whichever came first (the checkpoint's restore may build it before this round's masks exist)
        masters = _masters_by_name(self.run.selected(self.trainer._model), fairseq_optimizer)
        with torch.no_grad():
            for name, master in masters.items():
                master.masked_fill_(~self.run.mask[name].to(master.device), 0)
        for h in self._step_hooks:
            h.remove()

        def before_step(opt, args, kwargs):
            if self.training["first_lr"] is None:
                self.training["first_lr"] = float(opt.param_groups[0]["lr"])
                self.training["first_update"] = self.trainer.get_num_updates() + 1

        def after_step(opt, args, kwargs):
            self.training["optimizer_steps"] += 1

        self._step_hooks = [optimizer.register_step_pre_hook(before_step),
                            optimizer.register_step_post_hook(after_step)]

    def start_state(self) -> Optional[dict]:
        """A round that starts at the run's start point j > 0: fairseq's update counter (hence the lr of every
        update-based schedule) set to j, and the extra state fairseq restores its epoch counter and data
        iterator from (the state recorded with the late snapshot), so that the round trains updates j+1..T
        on the batches the dense round trained them on. None: the round starts at update 0."""
        sp = self.run.start
        if not sp.update and not sp.epoch:
            return None
        self.trainer.set_num_updates(sp.update or 0)
        itr = sp.state.get("train_iterator") or {"version": 2, "epoch": sp.epoch + 1, "iterations_in_epoch": 0,
                                                 "shuffle": True}
        return {"train_iterator": dict(itr)}

    def iterator_state(self) -> Optional[dict]:
        itr = getattr(self.trainer, "_lottery_epoch_itr", None)
        return {"train_iterator": weights_only_safe(itr.state_dict())} if itr is not None else None

    def _check_resumed_weights(self, model) -> None:
        name = _first_revived(self.run.selected(model), self.run.mask)
        if name is not None:
            raise LotteryError(
                f"checkpoint of round {self.k} in {self.cfg.checkpoint.save_dir} has non-zero weights where "
                f"the round's mask prunes them ({name}); it does not belong to this lottery run")

    def check_masks_held(self) -> None:
        """After training: the pruned weights are still exactly zero (see `verify_pruned_weights_zero`)."""
        pruned = self.run.mask.num_selected() - self.run.mask.num_surviving()
        if not pruned:
            return
        where = verify_pruned_weights_zero(self.run.selected(self.trainer._model), self.run.mask,
                                           self.trainer._optimizer, f"round {self.k}")
        print(f"[lottery] round {self.k}: all {pruned} pruned weights are zero in the {' and the '.join(where)} "
              f"after {self.trainer.get_num_updates()} updates", file=sys.stderr, flush=True)

    def _reinit(self, seed: int) -> None:
        """Random ticket: re-draw all weights with fairseq's own initializers (a fresh task.build_model under
        the seed the core sets) and copy them into the live model."""
        trainer = self.trainer
        fresh = trainer.task.build_model(self.cfg.model)
        trainer._model.load_state_dict(fresh.state_dict(), strict=True)

    def record_valid(self, stats: dict) -> None:
        point = {"num_updates": int(stats.get("num_updates", 0))}
        for key in ("loss", "nll_loss", "ppl", "bleu"):
            if key in stats and stats[key] is not None:
                point["valid_" + key] = float(stats[key])
        self.curve = [p for p in self.curve if p["num_updates"] < point["num_updates"]] + [point]
        if self.is_master:
            self.curve_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.curve_path, self.curve)

    def end(self) -> None:
        for h in self._step_hooks:
            h.remove()
        self._step_hooks = []
        if self.enforcer is not None:
            self.enforcer.remove()
            self.enforcer = None


def verify_pruned_weights_zero(params, mask, fairseq_optimizer, what: str) -> List[str]:
    """Check that every weight `mask` prunes is exactly zero in `params` and, under --fp16/--bf16, in the fp32
    master copies that FP16Optimizer steps and writes back to the model (a weight revived there reaches the
    model at the next step). Returns where it looked; a violation is a bug in the enforcement, so it raises."""
    held = {"model": params}
    masters = _masters_by_name(params, fairseq_optimizer)
    if masters:
        held["fp32 master copy"] = masters
    for where, tensors in held.items():
        name = _first_revived(tensors, mask)
        if name is not None:
            raise LotteryError(f"{what}: pruned weights of {name} are non-zero in the {where}; the masks were "
                               f"not enforced")
    return list(held)


def _masters_by_name(params, fairseq_optimizer) -> Dict[str, torch.Tensor]:
    """The fp32 master copies of `params` (name -> copy), for those the optimizer keeps one of."""
    masters = fp32_master_copies(fairseq_optimizer)
    return {n: masters[id(p)] for n, p in params.items() if id(p) in masters}


def _first_revived(tensors, mask) -> Optional[str]:
    """The first parameter with a non-zero entry where `mask` prunes it (None: all pruned entries are zero)."""
    for name, m in mask.items():
        t = tensors.get(name)
        if t is not None and bool((t.detach()[~m.to(t.device)] != 0).any()):
            return name
    return None


class LotteryTrainer(Trainer):
    """fairseq's Trainer with the lottery hooks of the current round (see module docstring)."""

    def load_checkpoint(self, filename, *args, **kwargs):
        extra_state = super().load_checkpoint(filename, *args, **kwargs)
        _CTX.begin(self, resume=extra_state is not None, extra_state=extra_state)
        if extra_state is None:
            extra_state = _CTX.start_state()
        return extra_state

    def _build_optimizer(self):
        super()._build_optimizer()
        if _CTX is not None and _CTX.enforcer is not None:
            _CTX.attach_optimizer(self._optimizer)

    def train_step(self, samples, raise_oom=False):
        # a round that already reached --max-update (killed before its evaluation) must not train further
        if _CTX.max_update and self.get_num_updates() >= _CTX.max_update:
            return None
        before = self.get_num_updates()
        out = super().train_step(samples, raise_oom=raise_oom)
        after = self.get_num_updates()
        if after > before:
            state = _CTX.iterator_state()
            epoch = None
            if state is not None:  # epochs completed: the iterator's epoch is the one in progress
                epoch = state["train_iterator"]["epoch"] - 1
            _CTX.run.after_update(self._model, after, epoch=epoch, state=state)
        return out

    def begin_epoch(self, epoch):
        if epoch > 1:  # epoch - 1 is complete: the late snapshot at "<N>ep" is taken before epoch N+1 trains
            _CTX.run.after_epoch(self._model, epoch - 1, num_updates=self.get_num_updates(),
                                 state=_CTX.iterator_state())
        return super().begin_epoch(epoch)

    def get_train_iterator(self, epoch, combine=True, load_dataset=True, data_selector=None,
                           shard_batch_itr=True, disable_iterator_cache=False):
        """Bit-exact resume: fairseq caches the epoch iterator built for the first epoch of a process and
        reuses it (its batch order) in later epochs, so a process resumed at epoch e > 1 would batch the data
        differently from the uninterrupted run. Build the epoch-1 iterator first, as the uninterrupted run did,
        then let fairseq reuse it for epoch e."""
        primed = getattr(self, "_lottery_itr_primed", False)
        self._lottery_itr_primed = True
        if (epoch > 1 and not primed and load_dataset and not disable_iterator_cache
                and not self.task.has_sharded_data("train")):
            super().get_train_iterator(1, combine, True, data_selector, shard_batch_itr, disable_iterator_cache)
            itr = super().get_train_iterator(epoch, combine, False, data_selector, shard_batch_itr,
                                             disable_iterator_cache)
        else:
            itr = super().get_train_iterator(epoch, combine, load_dataset, data_selector, shard_batch_itr,
                                             disable_iterator_cache)
        self._lottery_epoch_itr = itr  # its state is the start point recorded with a late snapshot
        return itr

    def state_dict(self):
        state = super().state_dict()
        state["cfg"] = weights_only_safe(state["cfg"])
        state["extra_state"] = weights_only_safe(state["extra_state"])
        if _CTX is not None:
            state["extra_state"]["lottery_training"] = dict(_CTX.training)
        return state


# --- the loop ---------------------------------------------------------------------------------------------
def _reset_fairseq_globals():
    import fairseq_cli.train as train_mod

    for fn, attrs in ((checkpoint_utils.save_checkpoint, ("best",)),
                      (train_mod.should_stop_early, ("best", "num_runs"))):
        for a in attrs:
            if hasattr(fn, a):
                delattr(fn, a)


def round_dir(save_dir: str, k: int) -> str:
    return os.path.join(save_dir, f"round_{k:02d}")


def lottery_main(spec: dict, cfg, **kwargs) -> None:
    """Replacement of `fairseq_cli.train.main` under --lottery-prune (spec from fairseq_ext.options)."""
    import fairseq_cli.train as train_mod

    from . import evaluate
    from .hooks import ORIGINAL

    fairseq_main = ORIGINAL.get("train_main") or train_mod.main
    if isinstance(cfg, argparse.Namespace):
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf
        cfg = convert_namespace_to_omegaconf(cfg)
    is_master = distributed_utils.is_master(cfg.distributed_training)
    config = LotteryConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in spec["config"].items()})
    try:
        evaluate.precheck(cfg, spec)  # e.g. the test split exists: fail before any training
        task, model = precheck_model(cfg, config)
        upe = updates_per_epoch(cfg, config, task, model)
        config.validate(total_updates=cfg.optimization.max_update or None,
                        total_epochs=cfg.optimization.max_epoch or None, updates_per_epoch=upe)
    except LotteryError as e:
        raise SystemExit(f"fairseq-train: lottery error: {e}") from None
    # a rank that dies makes the others stop (naming it) instead of hanging in a collective
    watchdog = PeerWatchdog.for_default_group(timeout=float(os.environ.get("LTH_PEER_TIMEOUT_S", 30)))
    finished = False
    try:
        _run_rounds(spec, cfg, config, is_master, fairseq_main, kwargs, upe)
        finished = True
    except LotteryError as e:
        logger.error("lottery error: %s", e)
        raise SystemExit(f"fairseq-train: lottery error: {e}") from None
    except Exception:
        if watchdog is not None:  # e.g. gloo's "connection closed by peer": which peer?
            watchdog.wait_for_verdict()
        raise
    finally:
        if watchdog is not None:
            watchdog.stop(finished=finished)
            if finished:
                barrier()  # no rank leaves (taking rank 0's store with it) while another still watches
        settle_data_threads()


def settle_data_threads(timeout: float = 60.0) -> None:
    """Wait until fairseq's prefetching threads are idle before the interpreter exits.

    A round that stops mid-epoch (`--max-update`) leaves fairseq's `BackgroundConsumer` daemon thread collating
    batches; when the interpreter finalizes while that thread is inside a torch call, the process aborts
    ("terminate called without an active exception", exit -6) after all results are written. A consumer
    blocked on its full queue, or finished, is safe."""
    import threading

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


def precheck_model(cfg, config: LotteryConfig):
    """Check the include/exclude patterns (and a random ticket's masks) against the model's parameter names
    before anything is written: the model is built on the meta device (no memory, no initialization).
    Returns (task, meta model or None)."""
    from fairseq import tasks
    from lth_plugins.selection import select_parameters
    from lth_plugins.store import RunStore

    task = tasks.setup_task(cfg.task)
    try:
        with torch.device("meta"):
            model = task.build_model(cfg.model)
    except Exception as e:  # a model that cannot be built on meta: checked at round start instead
        logger.warning("lottery: skipping the early parameter check (%s)", e)
        return task, None
    params = select_parameters(model, config.include, config.exclude)
    if config.ticket == "random" and os.path.isfile(os.path.join(config.masks_from, "config.json")):
        src = RunStore(config.masks_from)
        if src.has_mask(1):  # masks still to come are checked when they arrive
            src.load_mask(1).check_matches(params, source=f"mask of round 1 in {config.masks_from}")
    return task, model


def updates_per_epoch(cfg, config: LotteryConfig, task, model) -> Optional[int]:
    """Updates in one epoch of this rank's shard, as fairseq's trainer will batch it: only computed (by loading
    the training split before any update) when the late-reset point is in epochs and the training length in
    updates, or the other way round."""
    point = config.reset_point
    opt = cfg.optimization
    if config.ticket != "winning" or config.reset != "late" or not (
            (point.epochs is not None and opt.max_update) or (point.updates is not None and opt.max_epoch)):
        return None
    import math

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


def _run_rounds(spec, cfg, config, is_master, fairseq_main, kwargs, upe=None) -> None:
    global _CTX
    import fairseq_cli.train as train_mod

    from . import evaluate

    run = LotteryRun(config, spec["run_dir"], task=spec["task"] or "fairseq", framework="fairseq",
                     settings=spec["settings"], is_writer=is_master,
                     total_updates=cfg.optimization.max_update or None,
                     total_epochs=cfg.optimization.max_epoch or None, updates_per_epoch=upe)
    try:
        rounds = broadcast_object(list(run.pending_rounds()))
        if not rounds:
            logger.info("lottery: every round of %s is finished", spec["run_dir"])
        orig_trainer, orig_stats = train_mod.Trainer, train_mod.get_valid_stats
        for k in rounds:
            cfg_k = copy.deepcopy(cfg)
            with open_dict(cfg_k):
                cfg_k.checkpoint.save_dir = round_dir(spec["save_dir"], k)
                # every rank reads the round's checkpoint itself: fairseq's broadcast of rank 0's copy is
                # unpickled with torch's weights-only loader, which refuses the DictConfig in it (torch >= 2.6)
                cfg_k.checkpoint.load_checkpoint_on_all_dp_ranks = _world() > 1
            _CTX = ctx = RoundContext(run, k, cfg_k, is_master)

            def get_valid_stats(cfg_, trainer, stats, tracking_best, _ctx=ctx):
                stats = orig_stats(cfg_, trainer, stats, tracking_best)
                if tracking_best:
                    _ctx.record_valid(stats)
                return stats

            _reset_fairseq_globals()
            train_mod.Trainer, train_mod.get_valid_stats = LotteryTrainer, get_valid_stats
            try:
                fairseq_main(cfg_k, **kwargs)
            finally:
                train_mod.Trainer, train_mod.get_valid_stats = orig_trainer, orig_stats
            if ctx.trainer is None:
                raise LotteryError(f"fairseq did not train round {k} (no trainer was built)")
            ctx.check_masks_held()
            ctx.end()
            metrics, primary, higher = evaluate.round_metrics(ctx, spec, is_master)
            run.finish_round(k, ctx.trainer._model, metrics, primary=primary, higher_is_better=higher,
                             curve=ctx.curve, training=ctx.training)
            barrier()
            _CTX = None
            del ctx
    finally:
        run.close()
