"""Round progress lines: round k of K, fraction pruned, last metric, elapsed time and ETA.

One line per round start and per round end, and within a round a line on updates at most every
`update_interval_s` seconds (rate and the round's ETA when its length is known), whether or not the output is a
terminal: a long round never looks hung and a log file never floods. The run's ETA is the mean duration of the
rounds finished by this process times the rounds left.
"""
import sys
import time
from typing import List, Optional


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _fmt_value(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class RoundProgress:
    update_interval_s = 30.0

    def __init__(self, first_round: int, last_round: int, label: str = "lottery", stream=None,
                 enabled: bool = True, clock=time.monotonic):
        self.clock = clock  # seconds, monotonic
        self.first, self.last, self.label = first_round, last_round, label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.t0 = self.clock()
        self._round_t0 = None
        self._done = 0
        self._durations: List[float] = []
        self._last_metric: Optional[str] = None
        self._round = None
        self._tick = None  # (time, updates) of the last update line or of the round's first update

    def _emit(self, text: str) -> None:
        if self.enabled:
            print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def _eta(self, rounds_left: int, now: float) -> Optional[float]:
        if self._durations:
            return sum(self._durations) / len(self._durations) * rounds_left
        if self._done:
            return (now - self.t0) / self._done * rounds_left
        return None

    def note(self, text: str) -> None:
        self._emit(text)

    def start(self, k: int, fraction_pruned: float, note: str = "", span: str = "") -> None:
        """`span`: where the round's training starts and ends (e.g. 'from update 136, epoch 1, to update 816')."""
        now = self.clock()
        self._round_t0, self._round, self._tick = now, k, None
        eta = self._eta(self.last - k + 1, now)
        self._emit(f"round {k}/{self.last} start: {100 * fraction_pruned:.1f}% pruned"
                   + (f" ({note})" if note else "") + (f", {span}" if span else "")
                   + (f", last {self._last_metric}" if self._last_metric else "")
                   + f" | elapsed {_fmt_seconds(now - self.t0)}"
                   + (f", ETA {_fmt_seconds(eta)}" if eta is not None else ""))

    def update(self, num_updates: int, total_updates: Optional[int] = None) -> None:
        """Within a round: a line with the update count, the rate and the round's ETA, at most every
        `update_interval_s` seconds."""
        now = self.clock()
        if self._tick is None:
            self._tick = self._first = (now, num_updates)
            return
        if now - self._tick[0] < self.update_interval_s:
            return
        t_first, n_first = self._first
        rate = (num_updates - n_first) / max(now - t_first, 1e-9)
        line = f"round {self._round}/{self.last}: update {num_updates}"
        if total_updates:
            line += f"/{total_updates}"
        line += f", {rate:.2f} updates/s"
        if total_updates and rate > 0:
            line += f", round ETA {_fmt_seconds(max(0, total_updates - num_updates) / rate)}"
        self._emit(line + f" | elapsed {_fmt_seconds(now - self.t0)}")
        self._tick = (now, num_updates)

    def finish(self, k: int, fraction_pruned: float, metric: Optional[str] = None,
               value: Optional[float] = None) -> None:
        self._done += 1
        now = self.clock()
        if self._round_t0 is not None:
            self._durations.append(now - self._round_t0)
        eta = self._eta(self.last - k, now) or 0.0
        shown = f"{metric}={_fmt_value(value)}" if metric is not None and value is not None else "done"
        if metric is not None and value is not None:
            self._last_metric = shown
        took = f" in {_fmt_seconds(now - self._round_t0)}" if self._round_t0 is not None else ""
        self._round_t0 = None
        self._emit(f"round {k}/{self.last} finished{took}: {100 * fraction_pruned:.1f}% pruned, {shown} | "
                   f"elapsed {_fmt_seconds(now - self.t0)}, ETA {_fmt_seconds(eta)}")
