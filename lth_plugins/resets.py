"""What the surviving weights are reset to before a ticket is retrained (entry points in `lth_plugins.resets`)."""
import abc
from typing import Callable, Dict, Optional, Set

import torch

from .seeds import mixed_seed
from .store import Snapshot

Weights = Dict[str, torch.Tensor]  # a snapshot's tensors by parameter name
Reinit = Callable[[int], None]  # re-initializes the live model in place with the framework's initializers


def take_snapshot(model: torch.nn.Module) -> Weights:
    """A CPU copy of the model's whole state (parameters and buffers), never a view of live tensors."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@torch.no_grad()
def load_snapshot(model: torch.nn.Module, snapshot: Weights) -> None:
    model.load_state_dict(snapshot, strict=True)


_INIT_FNS = ("reset_parameters", "_reset_parameters")


def _covered(model: torch.nn.Module) -> Set[int]:
    """ids of the parameters owned directly by a module with its own initializer."""
    return {id(p) for m in model.modules() if any(callable(getattr(m, fn, None)) for fn in _INIT_FNS)
            for p in m.parameters(recurse=False)}


def reinit_rules(model: torch.nn.Module, initial: Optional[Weights]) -> Dict[str, str]:
    """How a random ticket re-draws each parameter without a framework initializer:
    "reset_parameters" (its module's own initializer), "constant" (a parameter whose initial values are all
    equal, e.g. a gain of ones, gets them back) or "permuted" (a bare parameter without an initializer gets a
    seeded permutation of its own initial values, so it keeps their distribution but none of its training)."""
    covered = _covered(model)
    rules = {}
    for n, p in model.named_parameters():
        if id(p) in covered:
            rules[n] = "reset_parameters"
        else:
            init = initial.get(n) if initial is not None else None
            flat = init.reshape(-1) if init is not None else p.detach().reshape(-1)
            rules[n] = "constant" if flat.numel() and bool((flat == flat[0]).all()) else "permuted"
    return rules


@torch.no_grad()
def reset_parameters_reinit(model: torch.nn.Module, seed: int,
                            initial: Optional[Callable[[], Weights]] = None) -> Dict[str, str]:
    """Re-draw every weight: modules' own initializers (`reset_parameters`), children before parents so that a
    parent's custom init (e.g. nn.Transformer's `_reset_parameters`) wins, as at construction; parameters no
    initializer covers follow `reinit_rules` (from `initial()`, the model's initial values). Returns the
    rule each parameter got."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in reversed(list(model.modules())):
            for fn in _INIT_FNS:
                if callable(getattr(module, fn, None)):
                    getattr(module, fn)()
    rules = reinit_rules(model, None)
    bare = [n for n, r in rules.items() if r != "reset_parameters"]
    if not bare:
        return rules
    if initial is None:
        raise ValueError(f"parameters {bare[:5]} have no initializer and no initial values to re-draw from")
    init = initial()
    rules = reinit_rules(model, init)
    params = dict(model.named_parameters())
    for n in bare:
        start = init[n].to(params[n].device, params[n].dtype)
        if rules[n] == "constant":
            params[n].copy_(start)
        else:
            g = torch.Generator().manual_seed(mixed_seed(seed, n))
            perm = torch.randperm(start.numel(), generator=g).to(start.device)
            params[n].copy_(start.reshape(-1)[perm].reshape(start.shape))
    return rules


class Reset(abc.ABC):
    """Strategy interface: put the model's weights where a ticket starts training."""

    name = "abstract"

    @abc.abstractmethod
    def apply(self, model: torch.nn.Module, snapshots: Callable[[str], Weights], seed: int,
              reinit: Optional[Reinit] = None) -> Optional[Dict[str, str]]:
        """Returns, for a re-draw, the rule each parameter got (recorded in the round's metrics)."""


class InitReset(Reset):
    """Winning ticket, original LTH: weights at initialization."""

    name = "init"

    def apply(self, model, snapshots, seed, reinit=None):
        load_snapshot(model, snapshots(Snapshot.INIT))


class LateReset(Reset):
    """Winning ticket with late resetting: weights after j updates or after an epoch of dense training."""

    name = "late"

    def apply(self, model, snapshots, seed, reinit=None):
        load_snapshot(model, snapshots(Snapshot.LATE))


class RandomReinit(Reset):
    """Random ticket: the same mask, weights re-drawn from the model's own initializers with another seed."""

    name = "random"

    def apply(self, model, snapshots, seed, reinit=None):
        if reinit is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                reinit(seed)
            return {n: "reinit" for n, _ in model.named_parameters()}  # the framework's own initializers
        return reset_parameters_reinit(model, seed, lambda: snapshots(Snapshot.INIT))
