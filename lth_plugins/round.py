"""One round as an adapter drives it, and the contract the core checks at the natural points of any training loop.

The adapter reports its loop (`attach_optimizer` when the round's optimizer exists, `after_update(n)` after each
optimizer update, `after_epoch(e)` after each epoch, `finish(metrics, ...)` at the end); the core checks:
- the optimizer is new for the round: not one an earlier round used, holding no state (unless resumed);
- the first update trained is j+1 after a reset to the snapshot at update j (budget 'rest'), 1 otherwise, and the
  update counter only counts on;
- the round ends where every round ends, at update T (or epoch T).
A violation raises `RoundContractError`, naming the rule and the numbers seen, before anything is recorded.
"""
import weakref
from dataclasses import dataclass, field
from typing import Optional

import torch

from .enforce import MaskEnforcer
from .errors import RoundContractError


@dataclass(frozen=True)
class StartPoint:
    """Where a round's training starts: `update` optimizer updates and `epoch` epochs are already counted (the
    first update is update + 1); `state` is what the trainer reported when the late snapshot was taken (e.g.
    its data position). A round ends where the dense round ended, so it trains T - update updates.
    `update` is None only for a trainer that reported epochs but no updates."""

    update: Optional[int] = 0
    epoch: int = 0
    state: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"update {self.update}, epoch {self.epoch}" if self.update is not None else f"epoch {self.epoch}"


class OptimizerLedger:
    """Which round each optimizer handed to a run served, to refuse one that crosses rounds."""

    def __init__(self):
        self._rounds: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def check_fresh(self, k: int, optimizer, resumed: bool) -> None:
        earlier = self._rounds.get(optimizer)
        if earlier is not None and earlier != k:
            raise RoundContractError(
                f"round {k} reuses the optimizer of round {earlier}: every round trains with a fresh optimizer, "
                f"built after the reset, so no state crosses rounds")
        held = sum(1 for s in optimizer.state.values() if s)
        if held and not resumed:
            raise RoundContractError(
                f"round {k}'s optimizer already holds state for {held} parameters before the round's first "
                f"update: build it fresh after the reset (a round that continues its own checkpoint opens with "
                f"resume=True)")
        self._rounds[optimizer] = k


class Round:
    """One round of a run: the model reset (or resumed) and masked, its start point, the hooks that keep the
    pruned weights at zero on the optimizer, and its record. Created by `LotteryRun.round` / `open_round`; `run`
    is that LotteryRun, whose steps the round calls in their one correct order."""

    def __init__(self, run, k: int, model: torch.nn.Module, reinit=None, resume: bool = False,
                 num_updates: Optional[int] = None):
        self.run, self.k, self.model, self.resumed = run, k, model, bool(resume)
        self.mask = run._start_round(k, model, reinit=reinit, resume=resume, num_updates=num_updates)
        self.start: StartPoint = run.start
        self.optimizer = None
        self.enforcer: Optional[MaskEnforcer] = run._enforce(model)  # gradients from the first backward
        counted = num_updates if resume else self.start.update
        self.first_update: Optional[int] = None if counted is None else int(counted) + 1
        self._last_reported: Optional[int] = None  # the last update reported in this process

    # --- what the adapter reports ---------------------------------------------------------------------
    def attach_optimizer(self, optimizer):
        """Hold the masks on the round's optimizer (built after the reset, holding no state); returns it."""
        self.run.optimizers.check_fresh(self.k, optimizer, self.resumed)
        self.optimizer = optimizer
        self.enforcer.attach_optimizer(optimizer)
        return optimizer

    def after_update(self, num_updates: int, epoch: Optional[int] = None, state: Optional[dict] = None) -> None:
        """After each optimizer update, with the trainer's update counter (continuing from the start point).
        `epoch`: epochs completed before this update; `state` (JSON): the trainer's position, kept with a late
        snapshot taken here."""
        n = int(num_updates)
        self._check_update(n)
        self._last_reported = n
        self.run._after_update(self.model, n, epoch=epoch, state=state)

    def after_epoch(self, epoch: int, num_updates: Optional[int] = None, state: Optional[dict] = None) -> None:
        """At the end of each epoch (epochs count from 1); `num_updates` the update counter when known."""
        self.run._after_epoch(self.model, epoch, num_updates=num_updates, state=state)

    def finish(self, metrics: dict, primary: str, higher_is_better: bool, curve: Optional[list] = None,
               training: Optional[dict] = None, ended_early: Optional[str] = None) -> None:
        """Check the round reached the end of the schedule, remove the hooks, record the round and prune the
        next round's mask from the trained weights. `ended_early`: why the framework's own rule (e.g. early
        stopping) may end training before the end; recorded with the round when it did."""
        training = dict(training or {})
        if not self._reached_end(ended_early):
            training["ended_early"] = ended_early
        self.close()
        self.run._finish_round(self.k, self.model, metrics, primary=primary, higher_is_better=higher_is_better,
                               curve=curve, training=training)

    def close(self) -> None:
        """Remove the round's hooks (idempotent)."""
        if self.enforcer is not None:
            self.enforcer.remove()
            self.enforcer = None

    # --- the contract ---------------------------------------------------------------------------------
    def _check_update(self, n: int) -> None:
        if self.optimizer is None:
            raise RoundContractError(
                f"round {self.k} reported update {n} before its optimizer was handed over (optimizer= or "
                f"attach_optimizer): the masks are held on the optimizer's steps and state")
        last = self._last_reported
        if last is None and self.first_update is not None and n != self.first_update:
            raise RoundContractError(
                f"round {self.k}'s first update was reported as update {n}, but the round starts after "
                f"{self._start_reason()}, so its first update is {self.first_update}: continue the update counter "
                f"(and every schedule that follows it) from the round's start point (Round.start)")
        if last is not None and n <= last:
            raise RoundContractError(f"round {self.k}: the update counter went from {last} to {n}; it must count "
                                     f"on within a round")
        total = self.run.total_updates
        if total and n > total:
            raise RoundContractError(f"round {self.k} trained update {n}, past the end of the schedule at update "
                                     f"{total}")

    def _start_reason(self) -> str:
        if self.resumed:
            return f"update {self.first_update - 1}, where its checkpoint was saved"
        if self.start.update:
            return (f"the late-reset snapshot at update {self.start.update} (budget 'rest': a ticket reset at update "
                    f"j trains updates j+1..T)")
        return "update 0 (a reset to init, budget 'full' or the dense round)"

    def _reached_end(self, ended_early: Optional[str]) -> bool:
        """Whether the round trained to the end of the schedule; one that did not is refused unless the adapter
        names the rule that ended it (`ended_early`)."""
        run = self.run
        total_u, total_e = run.total_updates, run.total_epochs
        if not (total_u or total_e):
            return True
        if self._last_reported is None and self.resumed and not total_u:
            return True  # resumed after its last epoch: nothing trained here tells the epoch
        last_u, last_e = run._last_update, run._last_epoch
        if (total_u and last_u == total_u) or (total_e and last_e is not None and last_e >= total_e):
            return True
        if ended_early:
            return False
        ends = " / ".join(x for x in (f"update {total_u}" if total_u else "", f"epoch {total_e}" if total_e else "")
                          if x)
        raise RoundContractError(
            f"round {self.k} ended at update {last_u}, epoch {last_e}, but every round ends where the dense round "
            f"ends ({ends}): train to the end of the schedule, or pass finish(ended_early=...) naming the "
            f"framework's rule that stopped it")
