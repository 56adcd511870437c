"""One lottery-ticket experiment, framework-independent: what a round starts from and what it leaves behind.

An adapter drives a framework's own trainer through this object:

    run = LotteryRun(config, run_dir, task="...", framework="...")
    for k in run.pending_rounds():
        run.start_round(k, model, reinit=..., resume=<framework checkpoint of round k loaded?>)
        enforcer = run.enforce(model, optimizer)
        ... train, calling run.after_update(model, n) / run.after_epoch(model, e) ...
        run.finish_round(k, model, metrics, primary="...", higher_is_better=...)
        enforcer.remove()
"""
import json
import time
from typing import Callable, Dict, Iterator, List, Optional

import torch

from .errors import LotteryConfigError, LotteryError, RunStoreError
from .hparams import LotteryConfig, fraction_pruned
from .masks import Mask
from .progress import RoundProgress
from .registry import load_pruner, load_reset
from .resets import Reinit, load_snapshot, reinit_rules, take_snapshot
from .selection import select_parameters
from .store import RunStore, config_diff
from .enforce import MaskEnforcer

# What a random ticket may set differently from the winning run it takes masks from: besides these, every
# setting (the framework's whole configuration included) must match. Keys ending in ".seed" are free too.
RANDOM_TICKET_FREE_KEYS = ("lottery.ticket", "lottery.masks_from", "lottery.rounds", "lottery.reset",
                           "lottery.late_reset")


def open_winning_run(path) -> RunStore:
    """The read-only store of the winning-ticket run whose masks a random ticket uses."""
    store = RunStore(path)
    if store.config.get("lottery", {}).get("ticket") != "winning":
        raise RunStoreError(f"masks_from {path} is not a winning-ticket run")
    return store


def masks_available(source: RunStore) -> int:
    """The last round a winning run has (or will have) a mask for."""
    masks = [k for k in source.rounds_on_disk() if source.has_mask(k)]
    return max([int(source.config.get("lottery", {}).get("rounds", 0))] + masks)


def check_ticket_source(source: RunStore, full: dict, rounds: int, params=None) -> None:
    """A random ticket trains exactly as the winning run did, up to its seed; it has masks for every round
    asked for, and they fit the model. Raises LotteryConfigError before anything is written."""
    diff = [(k, a, b) for k, a, b in config_diff(source.config, full)
            if k not in RANDOM_TICKET_FREE_KEYS and k != "seed" and not k.endswith(".seed")]
    if diff:
        raise LotteryConfigError(
            f"the random ticket must train as the winning run {source.path} did (only the ticket type and its "
            f"seed may differ); differing settings: "
            + "; ".join(f"{k}: winning run {a!r} vs now {b!r}" for k, a, b in diff[:12])
            + (f" ... ({len(diff) - 12} more)" if len(diff) > 12 else ""))
    available = masks_available(source)
    if rounds > available:
        raise LotteryConfigError(f"the random ticket asks for {rounds} rounds but the winning run "
                                 f"{source.path} has masks for {available}; use rounds <= {available} or extend "
                                 f"the winning run first")
    if params is not None:
        first = next((k for k in range(1, available + 1) if source.has_mask(k)), None)
        if first is not None:
            source.load_mask(first).check_matches(params, source=f"mask of round {first} in {source.path}")


def ticket_seed(seed: int, round_index: int) -> int:
    """Seed of a random ticket's re-initialization in a round: distinct per round and per base seed."""
    return 1_000_003 * (seed + 1) + round_index


class LotteryRun:
    """State of one experiment across rounds, persisted in a RunStore (only when `is_writer`)."""

    def __init__(self, config: LotteryConfig, run_dir, *, task: str, framework: str,
                 settings: Optional[dict] = None, is_writer: bool = True,
                 total_updates: Optional[int] = None, total_epochs: Optional[int] = None,
                 updates_per_epoch: Optional[int] = None, progress: bool = True,
                 model: Optional[torch.nn.Module] = None):
        """Everything is validated before anything is written: the configuration, the late-reset point against
        every training length given, a random ticket against its winning run (settings, rounds, mask shapes)
        and, when `model` is given, the include/exclude patterns. `settings` is the framework's whole
        configuration (whatever changes training): a rerun must repeat it."""
        self.config = config.validate(total_updates=total_updates, total_epochs=total_epochs,
                                      updates_per_epoch=updates_per_epoch)
        params = select_parameters(model, config.include, config.exclude) if model is not None else None
        full = {"lottery": config.to_dict(), "framework": framework, "task": task, "settings": settings or {}}
        full = json.loads(json.dumps(full, default=str))
        self.source = None
        if config.ticket == "random":
            self.source = open_winning_run(config.masks_from)
            check_ticket_source(self.source, full, config.rounds, params)
        self.store = RunStore(run_dir, full, writer=is_writer)
        self.total_updates = total_updates
        self._reinit_rules: Dict[str, str] = {}
        self.is_writer = is_writer
        self.pruner = load_pruner(config.pruner)(seed=config.seed)
        self.reset = load_reset(config.reset_strategy)()
        self._masks: Dict[int, Mask] = {}
        self._snapshots: Dict[str, dict] = {}
        self.mask: Optional[Mask] = None
        self.round: Optional[int] = None
        self.progress = RoundProgress(self.first_round, config.rounds, label=f"lottery {task} {config.ticket}",
                                      enabled=progress and is_writer)

    # --- which rounds -------------------------------------------------------------------------------
    @property
    def first_round(self) -> int:
        """Random tickets start at round 1: round 0 is the dense network, shared with the winning ticket."""
        return 1 if self.config.ticket == "random" else 0

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
        return fraction_pruned(self.config.rate, k)

    def selected(self, model) -> Dict[str, torch.Tensor]:
        return select_parameters(model, self.config.include, self.config.exclude)

    # --- snapshots ----------------------------------------------------------------------------------
    def _save_snapshot(self, kind: str, model) -> None:
        state = take_snapshot(model)
        self._snapshots[kind] = state
        if self.is_writer:
            self.store.save_snapshot(kind, state)

    def snapshot(self, kind: str) -> dict:
        if kind not in self._snapshots:
            if not self.store.has_snapshot(kind):
                raise RunStoreError(f"the {kind} snapshot of {self.store.path} is missing: the dense round 0 "
                                    f"did not record it (was round 0 trained by this run?)")
            self._snapshots[kind] = self.store.load_snapshot(kind)
        return self._snapshots[kind]

    # --- masks --------------------------------------------------------------------------------------
    def mask_for_round(self, k: int, params) -> Mask:
        if k in self._masks:
            mask = self._masks[k]
        elif k == 0:
            mask = Mask.ones(params)
        elif self.source is not None:
            if not self.source.has_mask(k):
                raise RunStoreError(f"the winning-ticket run {self.source.path} has no mask for round {k} yet")
            mask = self.source.load_mask(k)
        elif self.store.has_mask(k):
            mask = self.store.load_mask(k)
        elif self.config.schedule == "oneshot" and self.store.has_snapshot("dense_trained"):
            mask = self._prune_into(k, Mask.ones(params), self.store.load_snapshot("dense_trained"))
        else:
            raise RunStoreError(f"no mask for round {k} in {self.store.path}: round {k - 1} has not finished")
        mask.check_matches(params, source=f"mask of round {k}")
        self._masks[k] = mask
        return mask

    def _compute_next_masks(self, k: int, params) -> None:
        """After round k: the mask of round k+1 from the trained weights (iterative; computed after the last
        round too, so that raising `rounds` extends a finished run), or every pruned round's mask from the
        dense trained weights (one-shot, after round 0, which also keeps those weights for extensions)."""
        cfg = self.config
        if cfg.ticket != "winning":
            return
        if cfg.schedule == "iterative":
            self._prune_into(k + 1, self._masks[k], params)
        elif k == 0:
            if self.is_writer and not self.store.has_snapshot("dense_trained"):
                self.store.save_snapshot("dense_trained", {n: p.detach().cpu().clone() for n, p in params.items()})
            for j in range(1, cfg.rounds + 1):
                self._prune_into(j, Mask.ones(params), params)

    def _prune_into(self, j: int, base: Mask, weights) -> Mask:
        if self.is_writer and self.store.has_mask(j):
            return self.store.load_mask(j)
        mask = Mask((n, m.clone()) for n, m in base.items())
        self.pruner.prune(weights, mask, (1.0 - self.config.rate) ** j)
        self._masks[j] = mask
        if self.is_writer:
            self.store.save_mask(j, mask)
        return mask

    def mask_checksum(self, k: int) -> str:
        return self._masks[k].checksum()

    def check_consistent(self, k: int, gather: Callable[[str], List[str]]) -> None:
        """Compare the checksum of round k's mask across ranks (`gather` returns every rank's string)."""
        sums = gather(self.mask_checksum(k))
        if len(set(sums)) != 1:
            raise LotteryError(f"masks of round {k} differ across ranks (checksums {sums}); "
                               f"ranks must train identical weights before pruning")

    # --- the round ----------------------------------------------------------------------------------
    def start_round(self, k: int, model: torch.nn.Module, reinit: Optional[Reinit] = None,
                    resume: bool = False) -> Mask:
        """Prepare `model` for round k: reset the weights (unless `resume`: the framework restored the round's
        own checkpoint) and zero the pruned ones. Returns the round's mask."""
        params = self.selected(model)
        mask = self.mask_for_round(k, params)
        if self.config.ticket == "random" and not self.store.has_snapshot("init") and not resume:
            self._save_snapshot("init", model)  # the initial values bare parameters are re-drawn from
        if not resume:
            if k == 0:
                if self.store.has_snapshot("init"):  # a restart of round 0 starts from the recorded init
                    self.reset_to(model, "init")
                else:
                    self._save_snapshot("init", model)
            else:
                self._reinit_rules = self.reset.apply(model, self.snapshot, ticket_seed(self.config.seed, k),
                                                      reinit) or {}
        elif self.config.ticket == "random":
            init = self.snapshot("init") if self.store.has_snapshot("init") else None
            self._reinit_rules = ({n: "reinit" for n, _ in model.named_parameters()} if reinit is not None
                                  else reinit_rules(model, init))
        with torch.no_grad():
            for n, p in params.items():
                p.masked_fill_(~mask[n].to(p.device), 0)
        self.mask, self.round = mask, k
        self.progress.start(k, 1 - mask.density(), note="resumed" if resume else "")
        return mask

    def reset_to(self, model, kind: str) -> None:
        load_snapshot(model, self.snapshot(kind))

    def enforce(self, model: torch.nn.Module, optimizer=None) -> MaskEnforcer:
        """Hooks that keep this round's pruned weights at zero on `optimizer` (None: gradients only)."""
        if self.mask is None:
            raise LotteryError("start_round() must be called before enforce()")
        return MaskEnforcer(self.selected(model), self.mask, optimizer)

    def _late_point_reached(self, model, reached: bool, passed: bool) -> None:
        cfg = self.config
        if self.round != 0 or cfg.ticket != "winning" or cfg.reset != "late":
            return
        if "late" in self._snapshots or self.store.has_snapshot("late"):
            return
        if reached:
            self._save_snapshot("late", model)
        elif passed:
            raise RunStoreError(f"training went past the late-reset point {cfg.reset_point} without a late "
                                f"snapshot in {self.store.path}; start the run again in a fresh directory")

    def after_update(self, model, num_updates: int) -> None:
        """Call after each optimizer update of a round (fairseq's num_updates counts from 1)."""
        self.progress.update(num_updates, self.total_updates)
        point = self.config.reset_point
        if point.updates is not None:
            self._late_point_reached(model, num_updates == point.updates, num_updates > point.updates)

    def after_epoch(self, model, epoch: int) -> None:
        """Call at the end of each epoch; epochs count from 1."""
        if not isinstance(epoch, int) or epoch < 1:
            raise LotteryError(f"after_epoch({epoch!r}): epochs count from 1 (call it after epoch 1, 2, ...)")
        point = self.config.reset_point
        if point.epochs is not None:
            self._late_point_reached(model, epoch == point.epochs, epoch > point.epochs)

    def finish_round(self, k: int, model, metrics: dict, primary: str, higher_is_better: bool,
                     curve: Optional[list] = None) -> None:
        """Record round k (idempotent) and compute the next round's mask from the trained weights."""
        if self.store.round_done(k):
            return
        if self.round != k or self.mask is None:
            raise LotteryError(f"finish_round({k}) without start_round({k})")
        cfg = self.config
        if k == 0 and cfg.ticket == "winning" and cfg.reset == "late" and cfg.rounds > 0:
            self.snapshot("late")  # raises a clear error if the point was never reached
        params = self.selected(model)
        self._compute_next_masks(k, params)
        record = {
            "round": k, "ticket": cfg.ticket, "fraction_pruned": 1.0 - self.mask.density(),
            "nominal_fraction_pruned": self.fraction_pruned(k), "surviving": self.mask.num_surviving(),
            "selected": self.mask.num_selected(), "primary": primary, "higher_is_better": bool(higher_is_better),
            "metrics": metrics, "curve": curve or [], "finished_at": time.time(),
        }
        if cfg.ticket == "random":
            record["reinit"] = dict(self._reinit_rules)  # how each parameter was re-drawn
        if primary not in metrics:
            raise LotteryError(f"metrics of round {k} lack the primary metric {primary!r}")
        sparsity = {"round": k, "density": self.mask.densities(),
                    "numel": {n: m.numel() for n, m in self.mask.items()}}
        if self.is_writer:
            self.store.write_round(k, record, sparsity)
        self.progress.finish(k, record["fraction_pruned"], primary, metrics[primary])

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "LotteryRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
