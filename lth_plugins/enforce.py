"""Keeping pruned weights at exactly zero while a framework's own trainer runs, through torch's hooks only.

One bool mask per pruned parameter on its device (1 byte per weight; on the CPU it is the round's mask itself).
Zeroing writes exact +0.0 whatever the value (NaN and infinity included) and allocates nothing per step.
Gradients are zeroed as backward accumulates them (clipping and all-reduce see zeros); before each optimizer step
only gradients changed or replaced since then are zeroed again (tracked by tensor version, so an untouched step
costs no pass); weights are zeroed after each step only for optimizers not declared zero-preserving.
Modules are never reparametrized: state_dict keys, deepcopy and fused kernels see plain dense tensors.
"""
import threading
import weakref
from typing import Dict, List, Mapping, Sequence, Tuple

import torch

from .masks import Mask
from .registry import ZERO_PRESERVING, declared


def is_zero_preserving(optimizer) -> bool:
    """Whether the optimizer's class is declared (entry points of `lth_plugins.zero_preserving_optimizers`) to
    never move a weight whose value, gradient and per-weight state are zero (Adam/AdamW moments, RMSprop averages
    and momentum, SGD momentum, L2 and decoupled weight decay). With such an optimizer zeroed gradients and state
    already keep pruned weights at exactly zero, so the per-step pass over the weights is skipped."""
    return declared(ZERO_PRESERVING, type(optimizer)) is not None


# On the CPU a float tensor is masked as integers, chunk by chunk: its bits ANDed with 0 or all ones (a bool chunk
# turned into a reused integer buffer). torch's CPU where() and masked_fill_ on a bool mask are not vectorized
# (3-5x slower here), and a float multiply by a bool mask first copies the whole mask as floats.
_CHUNK = 1 << 18
_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_scratch = threading.local()
_ZEROS: Dict[Tuple, torch.Tensor] = {}


def _buffer(dtype: torch.dtype) -> torch.Tensor:
    buffers = _scratch.__dict__.setdefault("buffers", {})
    if dtype not in buffers:
        buffers[dtype] = torch.empty(_CHUNK, dtype=dtype)
    return buffers[dtype]


@torch.no_grad()
def zero_where(t: torch.Tensor, keep: torch.Tensor) -> None:
    """Set the entries of `t` where the bool tensor `keep` is False to exactly +0.0, in place."""
    bits_dtype = _BITS.get(t.element_size())
    if (t.device.type == "cpu" and t.dtype.is_floating_point and bits_dtype is not None and t.is_contiguous()
            and keep.is_contiguous() and t.numel() >= 4096):
        bits, flags, buf = t.view(-1).view(bits_dtype), keep.view(-1), _buffer(bits_dtype)
        for start in range(0, bits.numel(), _CHUNK):
            end = min(start + _CHUNK, bits.numel())
            b = buf[:end - start]
            b.copy_(flags[start:end])
            b.neg_()  # 1 -> all bits set, 0 -> none
            bits[start:end].bitwise_and_(b)
        return
    key = (t.device, t.dtype)
    if key not in _ZEROS:
        _ZEROS[key] = torch.zeros((), dtype=t.dtype, device=t.device)
    torch.where(keep, t, _ZEROS[key], out=t)


def zero_pruned(tensors: Sequence[torch.Tensor], keeps: Sequence[torch.Tensor]) -> None:
    """`zero_where` over pairs of tensors and their masks."""
    for t, keep in zip(tensors, keeps):
        zero_where(t, keep)


class MaskEnforcer:
    """Hooks that hold `mask` on `named_params`; `remove()` detaches them."""

    def __init__(self, named_params: Mapping[str, torch.Tensor], mask: Mask, optimizer=None,
                 always_zero_weights: bool = False):
        mask.check_matches(named_params)
        self.always_zero_weights = always_zero_weights
        # Parameters with nothing pruned need no hooks at all (round 0, excluded layers).
        self._params: Dict[str, torch.Tensor] = {}
        self._keep: Dict[str, torch.Tensor] = {}
        for name, m in mask.items():
            if not bool(m.all()):
                p = named_params[name]
                self._params[name] = p
                self._keep[name] = m.to(p.device)  # no copy on the CPU
        # name -> (the gradient tensor last zeroed, its version then): unchanged since means still zero
        self._zeroed: Dict[str, Tuple[weakref.ref, int]] = {}
        self._handles: List = []
        for name, p in self._params.items():
            self._handles.append(p.register_post_accumulate_grad_hook(self._grad_hook(name)))
        self.apply()
        if optimizer is not None:
            self.attach_optimizer(optimizer)

    def device_bytes(self) -> int:
        """Memory the masks of this enforcer hold (one byte per entry of each pruned parameter)."""
        return sum(k.numel() * k.element_size() for k in self._keep.values())

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights in place (param.data)."""
        zero_pruned([p.data for p in self._params.values()], list(self._keep.values()))

    def _record(self, name: str, grad: torch.Tensor) -> None:
        self._zeroed[name] = (weakref.ref(grad), grad._version)

    @torch.no_grad()
    def zero_grads(self, only_changed: bool = False) -> None:
        """Zero the pruned gradients; `only_changed`: only those set, replaced or changed in place since they
        were last zeroed."""
        names, grads = [], []
        for name, p in self._params.items():
            g = p.grad
            if g is None:
                continue
            if only_changed:
                seen = self._zeroed.get(name)
                if seen is not None and seen[0]() is g and seen[1] == g._version:
                    continue
            names.append(name)
            grads.append(g)
        if grads:
            zero_pruned(grads, [self._keep[n] for n in names])
            for n, g in zip(names, grads):
                self._record(n, g)

    def _grad_hook(self, name: str):
        keep = self._keep[name]

        def hook(param):
            if param.grad is not None:
                zero_where(param.grad, keep)
                self._record(name, param.grad)
        return hook

    def before_step(self) -> None:
        """The optimizer's pre-step hook: a pruned gradient set by hand, replaced or changed in place since
        backward is zeroed again; one untouched since costs nothing."""
        self.zero_grads(only_changed=True)

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
        tensors, keeps = [], []
        for name, p in self._params.items():
            for value in optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    tensors.append(value)
                    keeps.append(self._keep[name])
        zero_pruned(tensors, keeps)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
