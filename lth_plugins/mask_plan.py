"""Which mask each round of a run trains: round 0 dense; later rounds pruned from the trained weights of the round
before (iterative) or all from the dense trained weights (one-shot); a random, shuffled or transferred ticket's
from its winning run."""
from typing import Callable, Dict, List, Optional

import torch

from .errors import LotteryError, RunStoreError
from .hparams import LotteryConfig, Schedule, Ticket
from .masks import Mask
from .registry import load_pruner
from .seeds import mixed_seed
from .selection import without_kept_dense
from .store import RunStore, Snapshot
from .wait import wait_until


class MaskPlan:
    """The masks of one run: made by its pruner and kept in its store (only when `is_writer`), or taken from
    `source`, the winning run of a random ticket."""

    def __init__(self, config: LotteryConfig, store: RunStore, source: Optional[RunStore], is_writer: bool):
        self.config, self.store, self.source, self.is_writer = config, store, source, is_writer
        self.pruner = load_pruner(config.pruner)(seed=config.seed)
        self._masks: Dict[int, Mask] = {}

    def for_round(self, k: int, params) -> Mask:
        """Round k's mask, checked against the parameters it prunes (a random ticket waits for its winning run's)."""
        if k in self._masks:
            mask = self._masks[k]
        elif k == 0:
            mask = Mask.ones(params)
        elif self.source is not None:
            wait_until(lambda: self.source.has_mask(k), self.config.mask_wait,
                       f"the mask of round {k} from the winning-ticket run {self.source.path}",
                       alive=self.source.alive, writer=f"the winning-ticket run {self.source.path}")
            mask = self.source.load_mask(k)
            if self.config.ticket is Ticket.SHUFFLED:
                mask = shuffled(mask, self.config.seed, k)
            elif self.config.transfer_keep_dense:  # trained dense: their shapes may differ from the source's
                mask = Mask(without_kept_dense(mask, self.config).items())
        elif self.store.has_mask(k):
            mask = self.store.load_mask(k)
        elif self.config.schedule is Schedule.ONESHOT and self.store.has_snapshot(Snapshot.DENSE_TRAINED):
            mask = self._prune_into(k, Mask.ones(params), self.store.load_snapshot(Snapshot.DENSE_TRAINED))
        else:
            raise RunStoreError(f"no mask for round {k} in {self.store.path}: round {k - 1} has not finished")
        mask.check_matches(params, source=f"mask of round {k}")
        self._masks[k] = mask
        return mask

    def after_round(self, k: int, params) -> None:
        """After round k: the mask of round k+1 from the trained weights (iterative; computed after the last
        round too, so that raising `rounds` extends a finished run), or every pruned round's mask from the
        dense trained weights (one-shot, after round 0; kept in the dense_trained snapshot for extensions)."""
        cfg = self.config
        if cfg.takes_masks:
            return
        if cfg.schedule is Schedule.ITERATIVE:
            self._prune_into(k + 1, self._masks[k], params)
        elif k == 0:
            for later in range(1, cfg.rounds + 1):
                self._prune_into(later, Mask.ones(params), params)

    def start_dense(self, params) -> Mask:
        """Round 0's mask (nothing pruned), for a run that takes its dense round from another."""
        self._masks[0] = Mask.ones(params)
        return self._masks[0]

    def _prune_into(self, k: int, base: Mask, weights) -> Mask:
        """Round k's mask: `base` pruned down to round k's density."""
        if self.is_writer and self.store.has_mask(k):
            return self.store.load_mask(k)
        mask = Mask((n, m.clone()) for n, m in base.items())
        self.pruner.prune(weights, mask, (1.0 - self.config.rate) ** k)
        self._masks[k] = mask
        if self.is_writer:
            self.store.save_mask(k, mask)
        return mask

    def checksum(self, k: int) -> str:
        return self._masks[k].checksum()

    def check_consistent(self, k: int, gather: Callable[[str], List[str]]) -> None:
        """Compare the checksum of round k's mask across ranks (`gather` returns every rank's string)."""
        sums = gather(self.checksum(k))
        if len(set(sums)) != 1:
            raise LotteryError(f"masks of round {k} differ across ranks (checksums {sums}); "
                               f"ranks must train identical weights before pruning")


def shuffled(mask: Mask, seed: int, k: int) -> Mask:
    """`mask` with the kept positions of each parameter drawn at random (seeded by the lottery seed, the round and
    the parameter's name): the same count per parameter, other weights. Separates which layers keep how much from
    which weights they keep."""
    out = []
    for name, m in mask.items():
        g = torch.Generator().manual_seed(mixed_seed(seed, "shuffled", k, name))
        flat = m.reshape(-1)
        out.append((name, flat[torch.randperm(flat.numel(), generator=g)].reshape(m.shape)))
    return Mask(out)
