"""Pruning strategies (entry points in `lth_plugins.pruners`).

A pruner turns the surviving entries of a mask into fewer survivors: `prune(weights, mask, density)` keeps
round(n * density) of the n selected entries, choosing only among entries that survive already, and updates
`mask` in place. Selection is an exact, chunked radix select over the float bit patterns of the scores, so no
copy of all the weights is ever made (transient memory stays a few MB whatever the model size), and ties at the
threshold are broken deterministically by (parameter order, flat index).
"""
import abc
from typing import Callable, List, Mapping, Tuple

import torch

from .hparams import kept
from .masks import Mask
from .seeds import mixed_seed

CHUNK = 1 << 20
_BINS = 1 << 16

# (name, flat weights chunk, its offset, float32 buffer to fill) -> the buffer, holding scores >= 0
ScoreFn = Callable[[str, torch.Tensor, int, torch.Tensor], torch.Tensor]


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
        _keep_top([(n, weights[n], mask[n]) for n in names], kept(mask.num_selected(), density),
                  _magnitude)
        return mask


class LayerwiseMagnitude(Pruner):
    """Ablation: every parameter keeps the same fraction of its own largest-magnitude entries."""

    name = "layerwise_magnitude"

    def prune(self, weights, mask, density):
        for n, m in mask.items():
            _keep_top([(n, weights[n], m)], kept(m.numel(), density), _magnitude)
        return mask


class RandomPruner(Pruner):
    """Ablation: keep a uniformly random subset of the survivors (global count, seeded, reproducible)."""

    name = "random"

    def prune(self, weights, mask, density):
        def random_scores(name, chunk, offset, out):
            # Every pass over the weights must see the same scores: seed by (seed, parameter, chunk).
            key = mixed_seed(self.seed, name, offset)
            return torch.rand(chunk.numel(), generator=torch.Generator().manual_seed(key), out=out)

        _keep_top([(n, weights[n], mask[n]) for n in mask], kept(mask.num_selected(), density),
                  random_scores)
        return mask


def _magnitude(name, chunk, offset, out):
    return torch.abs(chunk, out=out) if chunk.dtype == torch.float32 else out.copy_(chunk).abs_()


class _Buffers:
    """Chunk-sized scratch tensors reused across chunks: repeated large allocations fragment the heap and
    made peak memory grow with the number of chunks."""

    def __init__(self):
        self.scores = torch.empty(CHUNK, dtype=torch.float32)
        self.hi = torch.empty(CHUNK, dtype=torch.int32)
        self.flag = torch.empty(CHUNK, dtype=torch.bool)


def _chunks(items, score_fn, buf: _Buffers):
    """Yield (name, flat mask view, top 16 bits of the scores' bit patterns, the bit patterns) chunk by chunk.

    Scores are >= 0, so their IEEE-754 bit patterns sort like the scores themselves. The yielded tensors are
    views of `buf`, valid until the next chunk."""
    for name, weight, mask in items:
        w = weight.detach().reshape(-1)
        if w.device.type != "cpu":
            w = w.cpu()
        m = mask.reshape(-1)
        for start in range(0, w.numel(), CHUNK):
            end = min(start + CHUNK, w.numel())
            n = end - start
            bits = score_fn(name, w[start:end], start, buf.scores[:n]).view(torch.int32)
            hi = torch.bitwise_right_shift(bits, 16, out=buf.hi[:n])
            yield name, m[start:end], hi, bits


_NON_FINITE_BIN = 0x7F80  # top 16 bits of +inf; NaNs lie above it


def _keep_top(items: List[Tuple[str, torch.Tensor, torch.Tensor]], target: int, score_fn: ScoreFn) -> None:
    """Leave exactly `target` survivors among the current ones: the highest scores, ties by position.

    Pass 1 histograms the top 16 bits of the survivors' scores and finds the bin b holding the cut. Pass 2 keeps
    survivors above b, drops those below, and collects the few in b; those are ranked exactly by a stable sort.
    """
    surviving = sum(int(torch.count_nonzero(m)) for _, _, m in items)  # bool .sum() makes an int64 copy
    if target >= surviving:
        return
    if target <= 0:
        for _, _, m in items:
            m.zero_()
        return
    buf = _Buffers()
    counts = torch.zeros(_BINS, dtype=torch.int64)
    for name, alive, hi, _ in _chunks(items, score_fn, buf):
        # pruned entries go to bin 0, whose count never decides the cut (the cut falls in bin 0 exactly when the
        # bins above hold fewer than `target`); a multiply costs a tenth of torch.where
        chunk_counts = torch.bincount(hi.mul_(alive), minlength=_BINS)
        if chunk_counts[_NON_FINITE_BIN:].any():
            raise ValueError(f"parameter {name} holds NaN or infinite values: refusing to prune it")
        counts += chunk_counts
    # above[b]: survivors in bins >= b (bin 0 also holds the pruned)
    above = torch.flip(torch.cumsum(torch.flip(counts, [0]), 0), [0])
    b = int(torch.nonzero(above >= target).max())
    need = target - int(above[b] - counts[b])  # how many of bin b's entries survive

    in_bin_views, in_bin_idx, in_bin_bits = [], [], []
    for name, alive, hi, bits in _chunks(items, score_fn, buf):
        n = hi.numel()
        in_bin = torch.eq(hi, b, out=buf.flag[:n])
        in_bin &= alive
        idx = torch.nonzero(in_bin).reshape(-1)
        alive &= torch.gt(hi, b, out=buf.flag[:n])
        if idx.numel():
            in_bin_views.append((alive, idx.numel()))
            in_bin_idx.append(idx)
            in_bin_bits.append(bits[idx])
    order = torch.sort(torch.cat(in_bin_bits), descending=True, stable=True).indices[:need]
    keep = torch.zeros(sum(n for _, n in in_bin_views), dtype=torch.bool)
    keep[order] = True
    offset = 0
    for (alive, n), idx in zip(in_bin_views, in_bin_idx):
        alive[idx[keep[offset:offset + n]]] = True
        offset += n
