"""Keeping pruned weights at exactly zero while a framework's own trainer runs, through torch's hooks only.

Gradients of pruned entries are zeroed as soon as they are accumulated (so gradient clipping, all-reduce and
optimizer state all see zeros), and the weights are zeroed again after every optimizer step (so optimizers that
move a weight with a zero gradient, such as decoupled weight decay with stale moments, cannot revive it).
Modules are never reparametrized: state_dict keys, deepcopy and fused kernels see plain dense tensors.
"""
from typing import Dict, List, Mapping

import torch

from .masks import Mask


class MaskEnforcer:
    """Hooks that hold `mask` on `named_params`; `remove()` detaches them."""

    def __init__(self, named_params: Mapping[str, torch.Tensor], mask: Mask, optimizer=None):
        mask.check_matches(named_params)
        # Parameters with nothing pruned need no hooks at all (round 0, excluded layers).
        self._pruned: Dict[str, torch.Tensor] = {}
        self._params: Dict[str, torch.Tensor] = {}
        for name, m in mask.items():
            if not bool(m.all()):
                p = named_params[name]
                self._params[name] = p
                self._pruned[name] = (~m).to(p.device)
        self._handles: List = []
        for name, p in self._params.items():
            self._handles.append(p.register_post_accumulate_grad_hook(_grad_zeroer(self._pruned[name])))
        self.apply()
        if optimizer is not None:
            self.attach_optimizer(optimizer)

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights in place (param.data)."""
        for name, p in self._params.items():
            p.masked_fill_(self._pruned[name], 0)

    @torch.no_grad()
    def zero_grads(self) -> None:
        for name, p in self._params.items():
            if p.grad is not None:
                p.grad.masked_fill_(self._pruned[name], 0)

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned grads before and pruned weights after each `optimizer.step()`; clear stale state."""
        self._handles.append(optimizer.register_step_pre_hook(lambda *_: self.zero_grads()))
        self._handles.append(optimizer.register_step_post_hook(lambda *_: self.apply()))
        self.zero_optimizer_state(optimizer)

    @torch.no_grad()
    def zero_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned entries of per-weight optimizer state (moments, square averages, momentum buffers)."""
        for name, p in self._params.items():
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    value.masked_fill_(self._pruned[name], 0)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _grad_zeroer(pruned: torch.Tensor):
    def hook(param):
        if param.grad is not None:
            param.grad.masked_fill_(pruned, 0)
    return hook
