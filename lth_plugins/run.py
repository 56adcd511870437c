"""One lottery-ticket experiment, framework-independent: the rounds, what each starts from and leaves behind.

An adapter drives its framework's own trainer through `LotteryRun.round`, which performs every step of a round
in the one correct order (reset, start point, fresh optimizer, mask enforcement; record; hooks removed) and checks
the round's contract (lth_plugins.round):

    with LotteryRun(config, run_dir, task=..., framework=..., settings=...) as run:
        for k in run.pending_rounds():
            with run.round(k, model, optimizer=lambda: make_optimizer(model)) as r:
                ... train from r.start, calling r.after_update(n) / r.after_epoch(e) ...
                r.finish(metrics, primary="...", higher_is_better=...)
"""
import contextlib
import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import torch

from .enforce import MaskEnforcer
from .errors import LotteryConfigError, LotteryError, RunStoreError
from .hparams import Budget, LotteryConfig, Reset, Ticket, fraction_pruned
from .masks import Mask
from .mask_plan import MaskPlan
from .progress import RoundProgress
from .record import RoundRecord, sparsity_report
from .registry import load_reset
from .resets import Reinit, load_snapshot, reinit_rules, take_snapshot
from .round import OptimizerLedger, Round, StartPoint
from .seeds import round_seed
from .selection import matching, pruned_parameters, select_parameters
from .sources import (check_ticket_source, check_transfer_source, open_dense_run, open_transfer_source,
                      open_winning_run)
from .store import RunStore, Snapshot


def run_config(config: LotteryConfig, *, task: str, framework: str, settings: Optional[dict] = None,
               label: Optional[str] = None, scoring: Sequence[str] = ()) -> dict:
    """The configuration a run directory stores in config.json (LotteryRun's arguments of the same names), as
    JSON reads it back."""
    full = {"lottery": config.to_dict(), "framework": framework, "task": task, "label": label or task,
            "settings": settings or {}, "scoring": sorted(scoring)}
    return json.loads(json.dumps(full, default=str))


class LotteryRun:
    """State of one experiment across rounds, persisted in a RunStore (only when `is_writer`)."""

    def __init__(self, config: LotteryConfig, run_dir, *, task: str, framework: str,
                 settings: Optional[dict] = None, is_writer: bool = True,
                 total_updates: Optional[int] = None, total_epochs: Optional[int] = None,
                 updates_per_epoch: Optional[int] = None, progress: bool = True,
                 model: Optional[torch.nn.Module] = None, label: Optional[str] = None,
                 scoring: Sequence[str] = ()):
        """Everything is validated before anything is written: the configuration, the late-reset point against
        every training length given, a random ticket against its winning run (settings, rounds, mask shapes),
        a transferred ticket against its source (architecture, rounds) and, when `model` is given, the
        include/exclude patterns. `settings` is the framework's whole configuration (whatever changes training):
        a rerun must repeat it, but for the names in `scoring`, settings that change only how finished rounds are
        scored. `label` names the task for people (e.g. 'translation en-de'; default `task`)."""
        self.config = config.validate(total_updates=total_updates, total_epochs=total_epochs,
                                      updates_per_epoch=updates_per_epoch)
        params = pruned_parameters(model, config) if model is not None else None
        label = label or task
        full = run_config(config, task=task, framework=framework, settings=settings, label=label, scoring=scoring)
        self.source = None
        if config.ticket is Ticket.TRANSFERRED:
            if Path(config.source_dir).resolve() == Path(run_dir).resolve():
                raise LotteryConfigError("transfer_from names this run's own directory; give another run's")
            self.source = open_transfer_source(config)
            if model is not None:
                check_transfer_source(self.source, config, model.state_dict(), params)
            else:
                check_transfer_source(self.source, config, self.source.load_snapshot(Snapshot.INIT))
            self._check_late_point_within(total_updates)
        elif config.takes_masks:
            self.source = open_winning_run(config.masks_from, config.mask_wait)
            self._check_budget_matches_source()
            check_ticket_source(self.source, full, config.rounds, params)
        dense_source = None
        if config.dense_from and not RunStore.view(run_dir).round_done(0):
            if Path(config.dense_from).resolve() == Path(run_dir).resolve():
                raise LotteryConfigError("dense_from names this run's own directory; give another run's")
            dense_source = open_dense_run(config.dense_from, full, config)
        self.store = RunStore(run_dir, full, writer=is_writer)
        self.total_updates, self.total_epochs = total_updates, total_epochs
        self._reinit_rules: Dict[str, str] = {}
        self.is_writer = is_writer
        # a shuffled or transferred ticket resets as its winning run does (to that run's snapshots)
        self.reset = load_reset((self.source.lottery if config.ticket.resets_to_source else config).reset_strategy)()
        self.masks = MaskPlan(self.config, self.store, self.source, is_writer)
        self._snapshots: Dict[str, dict] = {}
        self._own_init: Optional[dict] = None  # a transferred ticket's own init (its kept-dense parameters)
        self.mask: Optional[Mask] = None
        self.active_round: Optional[int] = None
        self.start: StartPoint = StartPoint()
        self._last_update: Optional[int] = None  # the trainer's update counter, as last reported
        self._last_epoch: int = 0
        self._late_meta: Optional[dict] = None
        self.optimizers = OptimizerLedger()  # a round's optimizer is its own
        self.progress = RoundProgress(self.first_round, config.rounds, label=f"lottery {label} {config.ticket}",
                                      enabled=progress and is_writer)
        if dense_source is not None:
            self._reuse_dense_round(dense_source)

    # --- which rounds -------------------------------------------------------------------------------
    @property
    def first_round(self) -> int:
        return self.config.first_round

    def pending_rounds(self) -> Iterator[int]:
        for k in range(self.first_round, self.config.rounds + 1):
            if not self.store.round_done(k):
                yield k

    @property
    def current_round(self) -> Optional[int]:
        return next(self.pending_rounds(), None)

    @property
    def finished(self) -> bool:
        return self.current_round is None

    def fraction_pruned(self, k: int) -> float:
        """Round k's nominal fraction pruned, at the prune rate of the run that makes the masks."""
        return fraction_pruned(self._winning_lottery().rate, k)

    def selected(self, model) -> Dict[str, torch.Tensor]:
        return pruned_parameters(model, self.config)

    # --- snapshots ----------------------------------------------------------------------------------
    def _save_snapshot(self, kind: str, model, meta: Optional[dict] = None) -> None:
        state = take_snapshot(model)
        self._snapshots[kind] = state
        if self.is_writer:
            self.store.save_snapshot(kind, state, meta)

    def snapshot(self, kind: str) -> dict:
        """The weights of a snapshot kind: this run's, or for a shuffled or transferred ticket its winning run's
        (with this run's own initial values of the parameters a transferred ticket keeps dense)."""
        store = self.source if self.config.ticket.resets_to_source else self.store
        if kind not in self._snapshots:
            if not store.has_snapshot(kind):
                raise RunStoreError(f"the {kind} snapshot of {store.path} is missing: the dense round 0 "
                                    f"did not record it (was round 0 trained by this run?)")
            state = store.load_snapshot(kind)
            if self.config.transfer_keep_dense:
                own = self._own_init if self._own_init is not None else self.store.load_snapshot(Snapshot.INIT)
                state.update((n, own[n]) for n in matching(own, self.config.transfer_keep_dense,
                                                           "transfer_keep_dense"))
            self._snapshots[kind] = state
        return self._snapshots[kind]

    def _keep_own_init(self, model) -> None:
        """A transferred ticket's own initial weights, for the parameters it keeps dense: recorded at its first
        start (before any reset), read back by every later start."""
        if self.store.has_snapshot(Snapshot.INIT):
            self._own_init = self.store.load_snapshot(Snapshot.INIT)
        else:
            self._own_init = take_snapshot(model)
            if self.is_writer:
                self.store.save_snapshot(Snapshot.INIT, self._own_init)

    def _check_late_point_within(self, total_updates: Optional[int]) -> None:
        """A transferred ticket continuing from its source's late snapshot at update j (budget 'rest') needs
        updates after j in this run's training length."""
        meta = self.source.read_snapshot_meta(Snapshot.LATE)
        if (self.source.lottery.reset is Reset.LATE and self.config.budget is Budget.REST and total_updates
                and meta and meta.get("update") is not None and int(meta["update"]) >= total_updates):
            raise LotteryConfigError(
                f"the transfer source {self.source.path} resets to its late snapshot at update {meta['update']}, "
                f"at or beyond this run's {total_updates} updates: train longer, or give budget 'full' "
                f"(--lottery-budget full) to train from update 0")

    # --- start points -------------------------------------------------------------------------------
    def _winning_lottery(self) -> LotteryConfig:
        """The configuration whose masks and start points this run trains: its winning run's for a random ticket."""
        return self.source.lottery if self.source is not None else self.config

    def _check_budget_matches_source(self) -> None:
        if self.source is None:
            return
        src = self._winning_lottery()
        theirs = src.budget
        if src.reset is Reset.LATE and theirs != self.config.budget:
            raise LotteryConfigError(
                f"the {self.config.ticket} ticket's budget {self.config.budget!r} differs from the winning ticket's {theirs!r} "
                f"({self.source.path}): give the same budget (--lottery-budget {theirs}) so both train the same "
                f"updates")

    def start_point(self, k: int) -> StartPoint:
        """Where round k trains from: round 0 and rounds reset to init start at 0; rounds reset to the late
        snapshot continue from it (budget 'rest'), or start at 0 again (budget 'full'). A random, shuffled or
        transferred ticket uses its winning ticket's start point."""
        src = self._winning_lottery()
        if k == 0 or src.reset is not Reset.LATE or self.config.budget is Budget.FULL:
            return StartPoint()
        store = self.source or self.store
        own = self.source is None and self._late_meta
        meta = self._late_meta if own else store.read_snapshot_meta(Snapshot.LATE)
        if meta is None:
            if store.has_snapshot(Snapshot.LATE):
                raise RunStoreError(
                    f"the late snapshot of {store.path} has no recorded start point (it was taken before "
                    f"budgets existed): continue that run with budget 'full' (--lottery-budget full) or start "
                    f"it again in a fresh directory")
            self.snapshot(Snapshot.LATE)  # the clear error of a missing snapshot
        # the source's position in its own data means nothing in a transferred ticket's: its data starts with
        # the next epoch
        state = {} if self.config.ticket is Ticket.TRANSFERRED else dict(meta.get("state") or {})
        return StartPoint(meta.get("update"), int(meta.get("epoch", 0)), state)

    def end_point(self) -> str:
        """Where every round ends, for the log."""
        if self.total_updates:
            return f"update {self.total_updates}"
        return f"epoch {self.total_epochs}" if self.total_epochs else "the end of training"

    def _reuse_dense_round(self, source: RunStore) -> None:
        """Take round 0 from `source` (open_dense_run checked it): its snapshots, its record, and this run's
        masks pruned from its trained dense weights. The record is written last: it marks round 0 done."""
        if not self.is_writer:
            return
        for kind in (Snapshot.INIT, Snapshot.LATE, Snapshot.DENSE_TRAINED):
            if source.has_snapshot(kind):
                self.store.save_snapshot(kind, source.load_snapshot(kind), source.read_snapshot_meta(kind))
        params = select_parameters(self.store.load_snapshot(Snapshot.DENSE_TRAINED), self.config.include,
                                   self.config.exclude)
        dense = self.masks.start_dense(params)
        self.masks.after_round(0, params)
        record = dataclasses.replace(source.read_round(0), dense_from=str(source.path),
                                     surviving=dense.num_surviving(), selected=dense.num_selected(),
                                     ticket=str(self.config.ticket))
        self.store.write_started(0, dict(source.read_started(0) or {}, dense_from=str(source.path)))
        self.store.write_round(0, record, sparsity_report(0, dense))
        self.progress.note(f"round 0 is the dense round of {source.path} (its settings match): not trained again")

    def mask_checksum(self, k: int) -> str:
        return self.masks.checksum(k)

    def check_consistent(self, k: int, gather: Callable[[str], List[str]]) -> None:
        """Compare the checksum of round k's mask across ranks (`gather` returns every rank's string)."""
        self.masks.check_consistent(k, gather)

    # --- the round ----------------------------------------------------------------------------------
    def _start_round(self, k: int, model: torch.nn.Module, reinit: Optional[Reinit] = None,
                    resume: bool = False, num_updates: Optional[int] = None) -> Mask:
        """Prepare `model` for round k: reset the weights (unless `resume`: the framework restored the round's
        own checkpoint, whose update counter is `num_updates`) and zero the pruned ones. Returns the mask."""
        params = self.selected(model)
        mask = self.masks.for_round(k, params)
        if self.config.is_random and not self.store.has_snapshot(Snapshot.INIT) and not resume:
            self._save_snapshot(Snapshot.INIT, model)  # the initial values bare parameters are re-drawn from
        if self.config.transfer_keep_dense and self._own_init is None and not resume:
            self._keep_own_init(model)
        if not resume:
            if k == 0:
                if self.store.has_snapshot(Snapshot.INIT):  # a restart of round 0 starts from the recorded init
                    self.reset_to(model, Snapshot.INIT)
                    self._discard_round0_products()
                else:
                    self._save_snapshot(Snapshot.INIT, model)
            else:
                self._reinit_rules = self.reset.apply(model, self.snapshot, round_seed(self.config.seed, k),
                                                      reinit) or {}
        elif self.config.is_random:
            init = self.snapshot(Snapshot.INIT) if self.store.has_snapshot(Snapshot.INIT) else None
            self._reinit_rules = ({n: "reinit" for n, _ in model.named_parameters()} if reinit is not None
                                  else reinit_rules(model, init))
        with torch.no_grad():
            for n, p in params.items():
                p.masked_fill_(~mask[n].to(p.device), 0)
        self.mask, self.active_round = mask, k
        self.start = self.start_point(k)
        self._last_update, self._last_epoch = (num_updates if resume else None), self.start.epoch
        if self.is_writer:
            self.store.write_started(k, {"round": k, "start": {"update": self.start.update,
                                                               "epoch": self.start.epoch},
                                         "end": {"update": self.total_updates, "epoch": self.total_epochs},
                                         "budget": str(self.config.budget), "resumed": bool(resume),
                                         "started_at": time.time()})
        note = f"resumed at update {num_updates}" if resume and num_updates is not None else (
            "resumed" if resume else "")
        self.progress.start(k, 1 - mask.density(), note=note,
                            span=f"from {self.start.describe()}, to {self.end_point()}")
        return mask

    def _discard_round0_products(self) -> None:
        """Round 0 trains again from init (its earlier attempt was killed): a late snapshot or dense weights that
        attempt left belong to another trajectory, so they are taken again, unless a mask made from them is
        already out (a random ticket may train on it)."""
        if not self.is_writer or self.store.has_mask(1):
            return
        for kind in (Snapshot.LATE, Snapshot.DENSE_TRAINED):
            if self.store.has_snapshot(kind):
                self.store.discard_snapshot(kind)
            self._snapshots.pop(kind, None)
        self._late_meta = None

    def reset_to(self, model, kind: str) -> None:
        load_snapshot(model, self.snapshot(kind))

    def _enforce(self, model: torch.nn.Module) -> MaskEnforcer:
        """Hooks that keep this round's pruned gradients at zero (the round adds its optimizer's)."""
        if self.mask is None:
            raise LotteryError("_start_round() must be called before _enforce()")
        return MaskEnforcer(self.selected(model), self.mask)

    def _late_point_reached(self, model, reached: bool, passed: bool, state: Optional[dict]) -> None:
        cfg = self.config
        if self.active_round != 0 or cfg.takes_masks or cfg.reset is not Reset.LATE:
            return
        if Snapshot.LATE in self._snapshots or self.store.has_snapshot(Snapshot.LATE):
            return
        if reached:
            meta = {"update": self._last_update, "epoch": self._last_epoch, "point": str(cfg.reset_point),
                    "state": state or {}}
            self._late_meta = meta
            self._save_snapshot(Snapshot.LATE, model, meta)
            then = ("pruned rounds start again at update 0 (budget 'full')" if cfg.budget is Budget.FULL
                    else f"pruned rounds train from there to {self.end_point()}")
            where = StartPoint(meta["update"], meta["epoch"]).describe()
            self.progress.note(f"late-reset snapshot taken after {where}; {then}")
        elif passed:
            raise RunStoreError(f"training went past the late-reset point {cfg.reset_point} without a late "
                                f"snapshot in {self.store.path}; start the run again in a fresh directory")

    def _after_update(self, model, num_updates: int, epoch: Optional[int] = None,
                     state: Optional[dict] = None) -> None:
        """Call after each optimizer update of a round with the trainer's update counter (counting from 1,
        continuing from the round's start point). `epoch`: epochs completed before this update (default: the
        last `after_epoch`); `state` (JSON): the trainer's position, kept with a late snapshot taken here."""
        self.progress.update(num_updates, self.total_updates)
        self._last_update = int(num_updates)
        if epoch is not None:
            self._last_epoch = int(epoch)
        point = self.config.reset_point
        if point.updates is not None:
            self._late_point_reached(model, num_updates == point.updates, num_updates > point.updates, state)

    def _after_epoch(self, model, epoch: int, num_updates: Optional[int] = None,
                    state: Optional[dict] = None) -> None:
        """Call at the end of each epoch; epochs count from 1. `num_updates`: the update counter when known
        (default: the last `after_update`); `state` as in `after_update`."""
        if not isinstance(epoch, int) or epoch < 1:
            raise LotteryError(f"after_epoch({epoch!r}): epochs count from 1 (call it after epoch 1, 2, ...)")
        self._last_epoch = epoch
        if num_updates is not None:
            self._last_update = int(num_updates)
        point = self.config.reset_point
        if point.epochs is not None:
            self._late_point_reached(model, epoch == point.epochs, epoch > point.epochs, state)

    def _finish_round(self, k: int, model, metrics: dict, primary: str, higher_is_better: bool,
                     curve: Optional[list] = None, training: Optional[dict] = None) -> None:
        """Record round k (idempotent) and compute the next round's mask from the trained weights. `training`
        (JSON): what the trainer reports about the round's training (e.g. optimizer steps taken)."""
        started_here = self.active_round == k and self.mask is not None
        # Another rank (the writer) may have recorded round k already; a rank that trained it still computes its
        # own next mask, or the cross-rank checksum would compare the writer's mask with itself.
        if self.store.round_done(k) and (self.is_writer or not started_here):
            return
        if not started_here:
            raise LotteryError(f"round {k} was finished without being started")
        if primary not in metrics:  # before any file of the round is written
            raise LotteryError(f"metrics of round {k} lack the primary metric {primary!r}")
        cfg = self.config
        if k == 0 and not cfg.takes_masks and cfg.reset is Reset.LATE and cfg.rounds > 0:
            self.snapshot(Snapshot.LATE)  # raises a clear error if the point was never reached
        params = self.selected(model)
        if (k == 0 and not cfg.takes_masks and self.is_writer
                and not self.store.has_snapshot(Snapshot.DENSE_TRAINED)):
            # the trained dense weights: one-shot masks of later rounds, and runs that reuse this dense round
            self.store.save_snapshot(Snapshot.DENSE_TRAINED, {n: p.detach().cpu().clone()
                                                       for n, p in model.named_parameters()})
        self.masks.after_round(k, params)
        record = RoundRecord(
            round=k, ticket=str(cfg.ticket), fraction_pruned=1.0 - self.mask.density(),
            nominal_fraction_pruned=self.fraction_pruned(k), surviving=self.mask.num_surviving(),
            selected=self.mask.num_selected(), primary=primary, higher_is_better=bool(higher_is_better),
            metrics=metrics, curve=curve or [], finished_at=time.time(), budget=str(cfg.budget),
            start={"update": self.start.update, "epoch": self.start.epoch}, end_update=self._last_update,
            updates=(self._last_update - self.start.update
                     if None not in (self._last_update, self.start.update) else None),
            training=training or {},
            reinit=dict(self._reinit_rules) if cfg.is_random else None)  # how each parameter was re-drawn
        if self.is_writer:
            self.store.write_round(k, record, sparsity_report(k, self.mask))
        self.progress.finish(k, record.fraction_pruned, primary, metrics[primary])
        if self.finished:
            path = shlex.quote(str(self.store.path))
            self.progress.note(f"every round is finished; the table: lth status {path}; the figures: "
                               f"lth report {path} -o REPORT_DIR")

    # --- the round as one unit ----------------------------------------------------------------------
    def open_round(self, k: int, model: torch.nn.Module, reinit: Optional[Reinit] = None,
                   resume: bool = False, num_updates: Optional[int] = None) -> "Round":
        """Start round k (see `Round`); the caller closes it. `round()` is the same as a context manager."""
        return Round(self, k, model, reinit=reinit, resume=resume, num_updates=num_updates)

    @contextlib.contextmanager
    def round(self, k: int, model: torch.nn.Module, optimizer: Optional[Callable[[], object]] = None,
              reinit: Optional[Reinit] = None, resume: bool = False,
              num_updates: Optional[int] = None) -> Iterator["Round"]:
        """Round k from its reset to its record. `optimizer`: builds the round's fresh optimizer (after the
        reset, so it holds the reset weights; no state crosses rounds); a framework that builds its own later
        hands it to `Round.attach_optimizer`. The hooks are removed when the block ends, however it ends."""
        r = self.open_round(k, model, reinit=reinit, resume=resume, num_updates=num_updates)
        try:
            if optimizer is not None:
                r.attach_optimizer(optimizer())
            yield r
        finally:
            r.close()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "LotteryRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
