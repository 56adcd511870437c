"""What the surviving weights are reset to before a ticket is retrained (entry points in `lth_plugins.resets`)."""
import abc
from typing import Callable, Dict, Optional

import torch

Snapshot = Dict[str, torch.Tensor]
Reinit = Callable[[int], None]  # re-initializes the live model in place with the framework's initializers


def take_snapshot(model: torch.nn.Module) -> Snapshot:
    """A CPU copy of the model's whole state (parameters and buffers), never a view of live tensors."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@torch.no_grad()
def load_snapshot(model: torch.nn.Module, snapshot: Snapshot) -> None:
    model.load_state_dict(snapshot, strict=True)


def reset_parameters_reinit(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every weight from the modules' own initializers (`reset_parameters`), children before parents
    so that a parent's custom init (e.g. nn.Transformer's `_reset_parameters`) wins, as at construction."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in reversed(list(model.modules())):
            for fn in ("reset_parameters", "_reset_parameters"):
                if callable(getattr(module, fn, None)):
                    getattr(module, fn)()


class Reset(abc.ABC):
    """Strategy interface: put the model's weights where a ticket starts training."""

    name = "abstract"

    @abc.abstractmethod
    def apply(self, model: torch.nn.Module, snapshots: Callable[[str], Snapshot], seed: int,
              reinit: Optional[Reinit] = None) -> None:
        ...


class InitReset(Reset):
    """Winning ticket, original LTH: weights at initialization."""

    name = "init"

    def apply(self, model, snapshots, seed, reinit=None):
        load_snapshot(model, snapshots("init"))


class LateReset(Reset):
    """Winning ticket with late resetting: weights after j updates or after an epoch of dense training."""

    name = "late"

    def apply(self, model, snapshots, seed, reinit=None):
        load_snapshot(model, snapshots("late"))


class RandomReinit(Reset):
    """Random ticket: the same mask, weights re-drawn from the model's own initializers with another seed."""

    name = "random"

    def apply(self, model, snapshots, seed, reinit=None):
        if reinit is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                reinit(seed)
        else:
            reset_parameters_reinit(model, seed)
