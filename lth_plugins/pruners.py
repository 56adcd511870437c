"""Pruning strategies (entry points in `lth_plugins.pruners`).

A pruner turns the surviving entries of a mask into fewer survivors: `prune(weights, mask, density)` keeps
round(n * density) of the n selected entries, choosing only among entries that survive already, and updates
`mask` in place. Selection is an exact, chunked radix select over the float bit patterns of the scores, so no
copy of all the weights is ever made (transient memory stays a few MB whatever the model size), and ties at the
threshold are broken deterministically by (parameter order, flat index).
"""
import abc
import zlib
from typing import Callable, List, Mapping, Optional, Tuple

import torch

from .hparams import survivors
from .masks import Mask

CHUNK = 1 << 20
_BINS = 1 << 16

ScoreFn = Callable[[str, torch.Tensor, int], torch.Tensor]  # (name, flat weights chunk, offset) -> float32 scores >= 0


class Pruner(abc.ABC):
    """Strategy interface: update `mask` in place so that round(n * density) selected entries survive."""

    name = "abstract"

    def __init__(self, seed: int = 0):
        self.seed = seed

    @abc.abstractmethod
    def prune(self, weights: Mapping[str, torch.Tensor], mask: Mask, density: float) -> Mask:
        ...


class GlobalMagnitude(Pruner):
    """The paper's method: pool every selected entry, biases included, and keep the largest magnitudes."""

    name = "global_magnitude"

    def prune(self, weights, mask, density):
        names = list(mask)
        _keep_top([(n, weights[n], mask[n]) for n in names], survivors(mask.num_selected(), 1 - density, 1),
                  _magnitude)
        return mask


class LayerwiseMagnitude(Pruner):
    """Ablation: every parameter keeps the same fraction of its own largest-magnitude entries."""

    name = "layerwise_magnitude"

    def prune(self, weights, mask, density):
        for n, m in mask.items():
            _keep_top([(n, weights[n], m)], survivors(m.numel(), 1 - density, 1), _magnitude)
        return mask


class RandomPruner(Pruner):
    """Ablation: keep a uniformly random subset of the survivors (global count, seeded, reproducible)."""

    name = "random"

    def prune(self, weights, mask, density):
        def random_scores(name, chunk, offset):
            # Every pass over the weights must see the same scores: seed by (seed, parameter, chunk).
            key = zlib.crc32(f"{self.seed}:{name}:{offset}".encode())
            return torch.rand(chunk.numel(), generator=torch.Generator().manual_seed(key))

        _keep_top([(n, weights[n], mask[n]) for n in mask], survivors(mask.num_selected(), 1 - density, 1),
                  random_scores)
        return mask


def _magnitude(name, chunk, offset):
    return chunk.float().abs() if chunk.dtype != torch.float32 else chunk.abs()


def _chunks(items, score_fn):
    """Yield (flat mask view, start, end, int32 bit pattern of the scores) chunk by chunk."""
    for name, weight, mask in items:
        w = weight.detach().reshape(-1)
        if w.device.type != "cpu":
            w = w.cpu()
        m = mask.reshape(-1)
        for start in range(0, w.numel(), CHUNK):
            end = min(start + CHUNK, w.numel())
            scores = score_fn(name, w[start:end], start)
            if not torch.isfinite(scores).all():
                raise ValueError(f"parameter {name} holds NaN or infinite values: refusing to prune it")
            yield m, start, end, scores.view(torch.int32)


def _histogram(items, score_fn, select: Callable[[torch.Tensor], torch.Tensor], shift: int) -> torch.Tensor:
    """Counts of ((bits >> shift) & 0xFFFF) over surviving entries for which `select(bits)` holds."""
    counts = torch.zeros(_BINS + 1, dtype=torch.int64)
    for m, s, e, bits in _chunks(items, score_fn):
        keep = m[s:e] & select(bits)
        key = torch.where(keep, (bits >> shift) & 0xFFFF, _BINS)
        counts += torch.bincount(key, minlength=_BINS + 1)
    return counts[:_BINS]


def _split(counts: torch.Tensor, target: int) -> Tuple[int, int]:
    """The bin b where the `target` largest end, and how many of them lie in bins above b."""
    above = torch.flip(torch.cumsum(torch.flip(counts, [0]), 0), [0])  # above[b] = count(bin >= b)
    b = int(torch.nonzero(above >= target).max())
    return b, int(above[b] - counts[b])


def _keep_top(items: List[Tuple[str, torch.Tensor, torch.Tensor]], target: int, score_fn: ScoreFn) -> None:
    """Leave exactly `target` survivors among the current ones: the highest scores, ties by position."""
    surviving = sum(int(m.sum()) for _, _, m in items)
    if target >= surviving:
        return
    if target <= 0:
        for _, _, m in items:
            m.zero_()
        return
    hi_counts = _histogram(items, score_fn, lambda bits: torch.ones_like(bits, dtype=torch.bool), 16)
    hi, n_above_hi = _split(hi_counts, target)
    lo_counts = _histogram(items, score_fn, lambda bits: (bits >> 16) == hi, 0)
    lo, n_above = _split(lo_counts, target - n_above_hi)
    threshold = (hi << 16) | lo
    ties_to_keep = target - n_above_hi - n_above
    for m, s, e, bits in _chunks(items, score_fn):
        alive = m[s:e]
        tie = alive & (bits == threshold)
        alive &= bits > threshold
        if ties_to_keep > 0:
            idx = torch.nonzero(tie).reshape(-1)[:ties_to_keep]
            alive[idx] = True
            ties_to_keep -= idx.numel()
