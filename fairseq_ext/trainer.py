"""One lottery round inside fairseq's own training: `LotteryTrainer`, the Trainer fairseq builds for the round,
starts the core's round when fairseq has restored (or not found) the round's checkpoint, holds the masks on
the optimizer fairseq builds, reports updates and epochs, and keeps checkpoints weights-only loadable;
`RoundContext` is that round's state, handed to the trainer when fairseq constructs it."""
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

from fairseq import checkpoint_utils
from fairseq.trainer import Trainer

from lth_plugins.atomic import atomic_write_json
from lth_plugins.errors import LotteryError
from lth_plugins.round import Round
from lth_plugins.run import LotteryRun
from lth_plugins.scheduler import current_job, duration_s, job_record

from .checkpoints import resumable_checkpoint, weights_only_safe
from .distributed import gather_strings, rank, wait_for_all, world_size
from .fp16 import first_revived, torch_optimizer, verify_pruned_weights_zero, zero_pruned_masters
from .requeue import PREEMPTION, SIGNAL, Requeue


class Termination:
    """SIGTERM under SLURM (a preemption with PreemptMode=REQUEUE, `scontrol requeue`, scancel, the time limit) while
    a round trains: every rank stops at the update they agree on, as for the warning before the time limit
    (fairseq_ext.requeue), fairseq saves the round's checkpoint_last.pt there, and the rank exits, leaving the requeue
    or the end of the job to SLURM (within its KillWait or the partition's GraceTime). Outside a round's training
    (setup, evaluation) SIGTERM keeps its default meaning. Data workers ignore it (`_data_workers_ignore_sigterm`)."""

    def __init__(self):
        self.pid = None
        self.received = False

    def install(self) -> None:
        if "SLURM_JOB_ID" not in os.environ or self.pid == os.getpid():
            return
        self.pid = os.getpid()
        signal.signal(signal.SIGTERM, self._on_signal)
        _data_workers_ignore_sigterm()
        # A round's training that ends before the agreed update (its last update, which fairseq saves, came first)
        # would requeue the job when it leaves training, as after the warning: `scontrol requeue` brings even a
        # cancelled job back, so after SIGTERM the rank exits there instead.
        leave = PREEMPTION.leave_training

        def leave_training():
            if self.received and self.pid == os.getpid():
                self.exit("the round's training ended, its checkpoint_last.pt saved")
            leave()

        PREEMPTION.leave_training = leave_training

    def _on_signal(self, signum, frame) -> None:
        # PREEMPTION.immediate: outside a round's training, where nothing is to be saved
        if os.getpid() != self.pid or PREEMPTION.pid != self.pid or PREEMPTION.immediate:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = True
        PREEMPTION.requested = True  # the stop at an agreed update, as for the warning

    def exit(self, what: str) -> None:
        print(f"[lottery] rank {rank()}: SIGTERM; {what}; exiting (SLURM requeues or ends the job)", file=sys.stderr,
              flush=True)
        raise SystemExit(128 + signal.SIGTERM)


TERMINATION = Termination()


def _data_workers_ignore_sigterm() -> None:
    """SLURM sends SIGTERM to every process of the step. torch's data workers die of it (their C handler), and their
    rank then waits for their batches until SIGKILL, saving nothing. They ignore it instead, unless it comes from
    their rank (the data loader ending them, as torch's handler allows); a worker whose rank is gone exits by itself."""
    from torch.utils.data._utils import signal_handling
    torch_handlers = signal_handling._set_worker_signal_handlers  # called by each worker as it starts
    if getattr(torch_handlers, "ignores_sigterm", False):
        return

    def set_worker_signal_handlers(*args):
        torch_handlers(*args)
        # blocked here, SIGTERM waits for the thread below, which learns who sent it
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_exit_on_sigterm_from_parent, name="lth-worker-sigterm", daemon=True).start()

    set_worker_signal_handlers.ignores_sigterm = True
    signal_handling._set_worker_signal_handlers = set_worker_signal_handlers


def _exit_on_sigterm_from_parent() -> None:
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == os.getppid():
            os._exit(0)


def arm_time_limit_warning(grace_s: float) -> Optional[float]:
    """The warning before the time limit from the plugin itself (--lottery-save-grace): `grace_s` seconds before the
    job's time limit this process sends itself the signal `sbatch --signal=USR1@SECONDS` would (fairseq_ext.requeue
    saves and requeues). Only in a SLURM job with a time limit that SLURM may requeue (Requeue=1), and not in a
    sweep's job (submitit has its own warning). Returns the seconds until the warning, or None when none is armed."""
    if grace_s <= 0 or PREEMPTION.pid != os.getpid() or os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    job = job_record(current_job())
    limit, ran = duration_s(job.get("TimeLimit")), duration_s(job.get("RunTime"))
    if job.get("Requeue") != "1" or limit is None or ran is None:
        return None
    if limit <= grace_s:  # every attempt would be warned at its start and requeued without training
        print(f"[lottery] --lottery-save-grace {grace_s:g} s is not shorter than SLURM job {current_job()}'s time "
              f"limit ({limit:g} s): no warning before it", file=sys.stderr, flush=True)
        return None
    delay = max(0.0, limit - ran - grace_s)
    timer = threading.Timer(delay, os.kill, (os.getpid(), SIGNAL))
    timer.daemon = True
    timer.start()
    return delay


class RoundContext:
    """Round k of `run` as fairseq trains it under the round's configuration `cfg` (checkpoints in
    cfg.checkpoint.save_dir): the core's `Round` once started, the learning curve of fairseq's validations and
    what the optimizer really did (kept in the round's checkpoints)."""

    def __init__(self, run: LotteryRun, k: int, cfg, is_master: bool):
        self.run, self.k, self.cfg, self.is_master = run, k, cfg, is_master
        self.trainer: Optional[Trainer] = None
        self.round: Optional[Round] = None
        self.max_update = cfg.optimization.max_update or 0
        self.curve_path = Path(cfg.checkpoint.save_dir) / "lottery_curve.json"
        self.curve: list = []
        # optimizer steps the round really took and the lr of its first one
        self.training = {"optimizer_steps": 0, "first_update": None, "first_lr": None}
        self._step_hooks: list = []

    @property
    def active(self) -> bool:
        """The round has started and its hooks are in place."""
        return self.round is not None and self.round.enforcer is not None

    def begin(self, trainer: Trainer, resume: bool, extra_state: Optional[dict] = None) -> None:
        """Called once per round, right after fairseq restored (or did not find) the round's checkpoint."""
        self.trainer = trainer
        model = trainer._model
        if resume and (extra_state or {}).get("lottery_training"):
            self.training.update(extra_state["lottery_training"])
        self.round = self.run.open_round(self.k, model, reinit=self._reinit, resume=resume,
                                         num_updates=trainer.get_num_updates() if resume else None)
        # every rank holds identical masks: compare checksums, stop on mismatch
        self.run.check_consistent(self.k, gather_strings)
        # one line per rank (fairseq silences the INFO log of ranks > 0)
        print(f"[lottery] round {self.k} mask checksum {self.run.mask_checksum(self.k)} (rank "
              f"{self.cfg.distributed_training.distributed_rank} of {world_size()}, identical on all ranks)",
              file=sys.stderr, flush=True)
        if trainer._optimizer is not None:  # fairseq built it while restoring the checkpoint
            self.attach_optimizer(trainer._optimizer)
        if resume and self.curve_path.is_file():
            n = trainer.get_num_updates()
            self.curve = [p for p in json.loads(self.curve_path.read_text()) if p["num_updates"] <= n]
        if resume:
            self._check_resumed_weights(model)

    def attach_optimizer(self, fairseq_optimizer) -> None:
        """Hold the masks on the optimizer fairseq built for the round (also in its fp32 master copies) and
        count its steps."""
        optimizer = self.round.attach_optimizer(torch_optimizer(fairseq_optimizer))
        zero_pruned_masters(self.run.selected(self.trainer._model), self.round.mask, fairseq_optimizer)
        self._remove_step_hooks()

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
        start = self.round.start
        if not start.update and not start.epoch:
            return None
        self.trainer.set_num_updates(start.update or 0)
        itr = start.state.get("train_iterator") or {"version": 2, "epoch": start.epoch + 1,
                                                    "iterations_in_epoch": 0, "shuffle": True}
        return {"train_iterator": dict(itr)}

    def iterator_state(self) -> Optional[dict]:
        """fairseq's position in the training data (kept with a late snapshot taken now)."""
        itr = getattr(self.trainer, "_lottery_epoch_itr", None)
        return {"train_iterator": weights_only_safe(itr.state_dict())} if itr is not None else None

    def _check_resumed_weights(self, model) -> None:
        name = first_revived(self.run.selected(model), self.round.mask)
        if name is not None:
            raise LotteryError(
                f"checkpoint of round {self.k} in {self.cfg.checkpoint.save_dir} has non-zero weights where "
                f"the round's mask prunes them ({name}); it does not belong to this lottery run")

    def check_masks_held(self) -> None:
        """After training: the pruned weights are still exactly zero (see `verify_pruned_weights_zero`)."""
        mask = self.round.mask
        pruned = mask.num_selected() - mask.num_surviving()
        if not pruned:
            return
        where = verify_pruned_weights_zero(self.run.selected(self.trainer._model), mask, self.trainer._optimizer,
                                           f"round {self.k}")
        print(f"[lottery] round {self.k}: all {pruned} pruned weights are zero in the {' and the '.join(where)} "
              f"after {self.trainer.get_num_updates()} updates", file=sys.stderr, flush=True)

    def _reinit(self, seed: int) -> None:
        """Random ticket: re-draw all weights with fairseq's own initializers (a fresh task.build_model under
        the seed the core sets) and copy them into the live model."""
        fresh = self.trainer.task.build_model(self.cfg.model)
        self.trainer._model.load_state_dict(fresh.state_dict(), strict=True)

    def record_valid(self, stats: dict) -> None:
        """One point of the learning curve from fairseq's validation stats (rank 0 keeps it in the round's
        checkpoint folder, so that a resumed round continues it)."""
        point = {"num_updates": int(stats.get("num_updates", 0))}
        for key in ("loss", "nll_loss", "ppl", "bleu"):
            if key in stats and stats[key] is not None:
                point["valid_" + key] = float(stats[key])
        self.curve = [p for p in self.curve if p["num_updates"] < point["num_updates"]] + [point]
        if self.is_master:
            self.curve_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.curve_path, self.curve)

    def finish(self, metrics: dict, primary: str, higher_is_better: bool) -> None:
        """Record the round and prune the next mask from the trained weights."""
        self.round.finish(metrics, primary=primary, higher_is_better=higher_is_better, curve=self.curve,
                          training=self.training, ended_early=self.early_stopping())

    def early_stopping(self) -> Optional[str]:
        """fairseq's own rules set to end training before --max-update / --max-epoch, named (or None)."""
        c = self.cfg
        rules = [f"--{flag} {value}" for flag, value in (
            ("patience", c.checkpoint.patience), ("stop-time-hours", c.optimization.stop_time_hours),
            ("stop-min-lr", c.optimization.stop_min_lr)) if value is not None and value > 0]
        return f"fairseq's early stopping ({', '.join(rules)})" if rules else None

    def close(self) -> None:
        """Remove every hook of the round (the masks' and the step counters')."""
        self._remove_step_hooks()
        if self.round is not None:
            self.round.close()

    def _remove_step_hooks(self) -> None:
        for h in self._step_hooks:
            h.remove()
        self._step_hooks = []


class LotteryTrainer(Trainer):
    """fairseq's Trainer for one round: fairseq constructs it with its own arguments; `round_context` (bound
    by the round loop) is the round it trains."""

    def __init__(self, *args, round_context: RoundContext, **kwargs):
        self.round_context = round_context
        self._lottery_saved_at = None  # the update of the last checkpoint this rank wrote
        super().__init__(*args, **kwargs)
        TERMINATION.install()

    def load_checkpoint(self, filename, *args, **kwargs):
        ctx = self.round_context
        filename, torn = resumable_checkpoint(filename, repair=ctx.is_master)
        extra_state = super().load_checkpoint(filename, *args, **kwargs)
        if torn and ctx.is_master:
            at = f" (update {self.get_num_updates()})" if extra_state is not None else ""
            print(f"[lottery] round {ctx.k}: {torn}{at}", file=sys.stderr, flush=True)
        self.round_context.begin(self, resume=extra_state is not None, extra_state=extra_state)
        if extra_state is None:
            extra_state = self.round_context.start_state()
        return extra_state

    def _build_optimizer(self):
        super()._build_optimizer()
        if self.round_context.active:  # else the round attaches it when it starts
            self.round_context.attach_optimizer(self._optimizer)

    def train_step(self, samples, raise_oom=False):
        ctx = self.round_context
        # a round that already reached --max-update (killed before its evaluation) must not train further
        if ctx.max_update and self.get_num_updates() >= ctx.max_update:
            return None
        PREEMPTION.enter_training()
        before = self.get_num_updates()
        out = super().train_step(samples, raise_oom=raise_oom)
        after = self.get_num_updates()
        if after > before:
            state = ctx.iterator_state()
            epoch = None
            if state is not None:  # epochs completed: the iterator's epoch is the one in progress
                epoch = state["train_iterator"]["epoch"] - 1
            ctx.round.after_update(after, epoch=epoch, state=state)
        return out

    def stop_for_requeue(self, epoch_itr) -> None:
        """Called after fairseq's own validation and saving of each update. SLURM's warning before the time limit
        (fairseq_ext.requeue) or its SIGTERM (`Termination`): at the update every rank agrees on, the round's
        checkpoint_last.pt is saved (unless fairseq just saved it) and the rank leaves for the requeue (the warning)
        or exits (SIGTERM: SLURM requeues or ends the job itself)."""
        n = self.get_num_updates()
        if not PREEMPTION.stop_at(n):
            return
        if self._lottery_saved_at != n:
            checkpoint_utils.save_checkpoint(self.cfg.checkpoint, self, epoch_itr, None)
        wait_for_all("requeue_checkpoint_saved")  # rank 0 has written it before anyone requeues
        saved = f"round {self.round_context.k}: checkpoint_last.pt saved at update {n}"
        if TERMINATION.received:
            TERMINATION.exit(saved)
        raise Requeue(saved)

    def save_checkpoint(self, filename, extra_state):
        super().save_checkpoint(filename, extra_state)
        self._lottery_saved_at = self.get_num_updates()

    def begin_epoch(self, epoch):
        if epoch > 1:  # epoch - 1 is complete: the late snapshot at "<N>ep" is taken before epoch N+1 trains
            self.round_context.round.after_epoch(epoch - 1, num_updates=self.get_num_updates(),
                                                 state=self.round_context.iterator_state())
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
        state["extra_state"]["lottery_training"] = dict(self.round_context.training)
        return state
