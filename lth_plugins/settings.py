"""Which settings identify a run: every setting of the framework's parsed configuration except those an adapter
declares unable to change results (a deny-list). A rerun must repeat them; a random ticket must match its
winning run's. A new flag is therefore part of a run's identity unless it is declared otherwise."""
import math
from typing import Iterable, Mapping


def training_settings(values: Mapping, not_training: Iterable[str], prefixes: Iterable[str] = ("lottery_",)) -> dict:
    """`values` (e.g. vars(parsed_args)) as plain JSON, without the keys in `not_training`, private keys
    (leading underscore) and keys starting with one of `prefixes` (the lottery settings, stored apart)."""
    drop, prefixes = set(not_training), tuple(prefixes)
    return {k: plain(v) for k, v in sorted(values.items())
            if k not in drop and not k.startswith("_") and not (prefixes and k.startswith(prefixes))}


def plain(v):
    """A JSON value for a setting: lists for sequences, strings for infinities and other objects."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, float) and math.isinf(v):
        return str(v)
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
