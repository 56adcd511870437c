"""Which parameters a lottery experiment prunes: include/exclude name patterns."""
from collections import OrderedDict
from fnmatch import fnmatchcase
from typing import Dict, Iterable, List, Sequence

import torch

from .errors import LotteryConfigError


def named_parameters(model) -> "OrderedDict[str, torch.Tensor]":
    """Parameters by name, each shared (tied) parameter once, for a module or a name->tensor mapping."""
    if isinstance(model, torch.nn.Module):
        return OrderedDict(model.named_parameters())
    return OrderedDict(model)


def select_parameters(model, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
    """The parameters whose names match an `include` pattern (all when empty) and no `exclude` pattern.

    Patterns are shell-style (fnmatch, case-sensitive), e.g. `encoder.layers.*` or `*.bias`. A pattern that
    selects nothing is an error: it is almost always a typo that would silently prune the wrong thing.
    """
    params = named_parameters(model)
    if not params:
        raise LotteryConfigError("the model has no parameters to prune")
    _check_patterns_match("include", include, params)
    chosen = OrderedDict((n, p) for n, p in params.items() if not include or _matches(n, include))
    _check_patterns_match("exclude", exclude, chosen)
    chosen = OrderedDict((n, p) for n, p in chosen.items() if not _matches(n, exclude))
    if not chosen:
        raise LotteryConfigError(
            f"include {list(include)} / exclude {list(exclude)} leave no parameter to prune; "
            f"parameters are: {_preview(params)}")
    return chosen


def pruned_parameters(model, config) -> Dict[str, torch.Tensor]:
    """The parameters a run of LotteryConfig `config` prunes: its include/exclude selection, less those a
    transferred ticket keeps dense (`transfer_keep_dense`)."""
    return without_kept_dense(select_parameters(model, config.include, config.exclude), config)


def without_kept_dense(named, config) -> "OrderedDict[str, object]":
    """The (name, value) pairs of `named` (parameters, a mask) whose names no `transfer_keep_dense` pattern
    matches."""
    return OrderedDict((n, v) for n, v in named.items() if not _matches(n, config.transfer_keep_dense))


def matching(params, patterns: Sequence[str], kind: str) -> List[str]:
    """The names of `params` that match a pattern; a pattern that matches none is an error naming `kind`."""
    _check_patterns_match(kind, patterns, params)
    return [n for n in params if _matches(n, patterns)]


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _check_patterns_match(kind: str, patterns: Sequence[str], params) -> None:
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in params):
            raise LotteryConfigError(
                f"{kind} pattern {pattern!r} matches no parameter name; parameters are: {_preview(params)}")


def _preview(params, limit: int = 12) -> str:
    names = list(params)
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
