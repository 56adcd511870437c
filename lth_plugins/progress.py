"""Round progress lines: round k of K, fraction pruned, last metric, elapsed time and ETA.

One line per round start and per round end, whether or not the output is a terminal, so a log file never
floods; frameworks keep their own per-update logging.
"""
import sys
import time
from typing import Optional


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class RoundProgress:
    def __init__(self, first_round: int, last_round: int, label: str = "lottery", stream=None,
                 enabled: bool = True):
        self.first, self.last, self.label = first_round, last_round, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.t0 = time.monotonic()
        self._round_t0 = None
        self._done = 0

    def _emit(self, text: str) -> None:
        if self.enabled:
            print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def start(self, k: int, fraction_pruned: float, note: str = "") -> None:
        self._round_t0 = time.monotonic()
        self._emit(f"round {k}/{self.last} start: {100 * fraction_pruned:.1f}% pruned"
                   + (f" ({note})" if note else "") + f" | elapsed {_fmt_seconds(time.monotonic() - self.t0)}")

    def finish(self, k: int, fraction_pruned: float, metric: Optional[str] = None,
               value: Optional[float] = None) -> None:
        self._done += 1
        now = time.monotonic()
        remaining = self.last - k
        eta = (now - self.t0) / self._done * remaining
        shown = f"{metric}={value:.4g}" if metric is not None and value is not None else "done"
        took = f" in {_fmt_seconds(now - self._round_t0)}" if self._round_t0 else ""
        self._emit(f"round {k}/{self.last} finished{took}: {100 * fraction_pruned:.1f}% pruned, {shown} | "
                   f"elapsed {_fmt_seconds(now - self.t0)}, ETA {_fmt_seconds(eta)}")
