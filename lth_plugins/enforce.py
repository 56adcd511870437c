"""Keeping pruned weights at exactly zero while a framework's own trainer runs, through torch's hooks only.

Gradients of pruned entries are zeroed as soon as backward accumulates them (so gradient clipping and
all-reduce see zeros) and again right before every optimizer step (a gradient changed in place after backward,
by added noise or a custom clipper, cannot revive a pruned weight); the weights are zeroed again after every
optimizer step unless the optimizer is zero-preserving (so optimizers that move a weight with a zero gradient,
such as decoupled weight decay with stale moments, cannot revive it).
Modules are never reparametrized: state_dict keys, deepcopy and fused kernels see plain dense tensors.
"""
from typing import Dict, List, Mapping

import torch

from .masks import Mask
from .registry import ZERO_PRESERVING, declared


def is_zero_preserving(optimizer) -> bool:
    """Whether the optimizer's class is declared (entry points of `lth_plugins.zero_preserving_optimizers`) to
    never move a weight whose value, gradient and per-weight state are zero (Adam/AdamW moments, RMSprop averages
    and momentum, SGD momentum, L2 and decoupled weight decay). With such an optimizer zeroed gradients and state
    already keep pruned weights at exactly zero, so the per-step pass over the weights is skipped."""
    return declared(ZERO_PRESERVING, type(optimizer)) is not None


class _Zeroer:
    """Zeroes the pruned entries of tensors shaped like one parameter, by index rather than by a boolean mask
    (a bool masked_fill_ is several times slower on CPU). It keeps the flat indices of the smaller of the two
    sets, pruned or surviving, so it never holds more than 4 bytes per weight (8-byte indices of at most half)."""

    def __init__(self, mask: torch.Tensor, device):
        flat = mask.reshape(-1)
        self.pruned_count = flat.numel() - int(torch.count_nonzero(flat))
        self.keep_survivors = self.pruned_count > flat.numel() // 2
        chosen = flat if self.keep_survivors else ~flat
        self.index = torch.nonzero(chosen).reshape(-1).to(device)
        self.mask = mask.to(device)  # for the rare non-contiguous tensor

    def __call__(self, t: torch.Tensor) -> None:
        if not t.is_contiguous():
            t.masked_fill_(~self.mask, 0)
            return
        flat = t.view(-1)
        if self.keep_survivors:
            kept = flat.index_select(0, self.index)
            flat.zero_()
            flat.index_copy_(0, self.index, kept)
        else:
            flat.index_fill_(0, self.index, 0)


class MaskEnforcer:
    """Hooks that hold `mask` on `named_params`; `remove()` detaches them."""

    def __init__(self, named_params: Mapping[str, torch.Tensor], mask: Mask, optimizer=None,
                 always_zero_weights: bool = False):
        mask.check_matches(named_params)
        self.always_zero_weights = always_zero_weights
        # Parameters with nothing pruned need no hooks at all (round 0, excluded layers).
        self._zeroers: Dict[str, _Zeroer] = {}
        self._params: Dict[str, torch.Tensor] = {}
        for name, m in mask.items():
            if not bool(m.all()):
                p = named_params[name]
                self._params[name] = p
                self._zeroers[name] = _Zeroer(m, p.device)
        self._handles: List = []
        for name, p in self._params.items():
            self._handles.append(p.register_post_accumulate_grad_hook(self._grad_hook(name)))
        self.apply()
        if optimizer is not None:
            self.attach_optimizer(optimizer)

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights in place (param.data)."""
        for name, p in self._params.items():
            self._zeroers[name](p.data)

    @torch.no_grad()
    def zero_grads(self) -> None:
        for name, p in self._params.items():
            if p.grad is not None:
                self._zeroers[name](p.grad)

    def _grad_hook(self, name: str):
        zeroer = self._zeroers[name]

        def hook(param):
            if param.grad is not None:
                zeroer(param.grad)
        return hook

    def before_step(self) -> None:
        """The optimizer's pre-step hook: every pruned gradient is zeroed again, whatever happened to it
        since backward (set by hand, replaced, or changed in place)."""
        self.zero_grads()

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned gradients before and pruned weights after each `optimizer.step()`, and clear stale
        optimizer state. For zero-preserving optimizers zero gradients and state already keep the weights
        at zero, so the pass over the weights is skipped unless `always_zero_weights`."""
        self._handles.append(optimizer.register_step_pre_hook(lambda *_: self.before_step()))
        if self.always_zero_weights or not is_zero_preserving(optimizer):
            self._handles.append(optimizer.register_step_post_hook(lambda *_: self.apply()))
        self.zero_optimizer_state(optimizer)

    @torch.no_grad()
    def zero_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned entries of per-weight optimizer state (moments, square averages, momentum buffers)."""
        for name, p in self._params.items():
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    self._zeroers[name](value)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
