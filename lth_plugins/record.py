"""A round's record (`metrics.json`): one typed dataclass written by the run and read by the report, `lth status`,
the sweep and the tests. Records written before it had a version still read."""
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional

from .masks import Mask

RECORD_VERSION = 2  # 1: the untyped dict of earlier versions (no "version" key)


def partial_key(metric: str) -> str:
    """The metrics key that flags a round's value of `metric` as standing on less than the metric asks for (e.g.
    fewer finished games than the ticket reward averages); its value says why. Reports draw such points hollow."""
    return f"{metric}_partial"


@dataclass
class RoundRecord:
    """What round `round` of a run trained and scored. `metrics[primary]` is the round's value; `start` / `end_update`
    / `updates` say which updates it trained; `training` is what the trainer reported (e.g. optimizer steps, an
    early end); `reinit` (random tickets) how each parameter was re-drawn; `dense_from` a reused dense round."""

    round: int
    ticket: str
    fraction_pruned: float
    surviving: int
    selected: int
    primary: str
    higher_is_better: bool
    metrics: Dict[str, object]
    nominal_fraction_pruned: Optional[float] = None
    curve: List[dict] = field(default_factory=list)
    finished_at: Optional[float] = None
    budget: Optional[str] = None
    start: Dict[str, Optional[int]] = field(default_factory=dict)
    end_update: Optional[int] = None
    updates: Optional[int] = None
    training: Dict[str, object] = field(default_factory=dict)
    reinit: Optional[Dict[str, str]] = None
    dense_from: Optional[str] = None
    version: int = RECORD_VERSION

    @property
    def value(self):
        """The primary metric's value (None for a round that has none)."""
        return self.metrics.get(self.primary)

    @property
    def partial(self) -> Optional[str]:
        """Why the primary value stands on less than its metric asks for, or None."""
        return self.metrics.get(partial_key(self.primary))

    @property
    def start_update(self) -> int:
        return int(self.start.get("update") or 0)

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None or k in _ALWAYS}

    @classmethod
    def from_json(cls, d: dict) -> "RoundRecord":
        """A record as stored by any version (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values.setdefault("version", 1)
        if not isinstance(values.get("metrics"), dict):
            raise ValueError("its 'metrics' is not a mapping of metric names to values")
        return cls(**values)


_ALWAYS = ("end_update", "updates")


def sparsity_report(k: int, mask: Mask) -> dict:
    """`sparsity.json` of round k: each parameter's density and size."""
    return {"round": k, "density": mask.densities(), "numel": {n: m.numel() for n, m in mask.items()}}
