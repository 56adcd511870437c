"""A rank that dies must not leave the others hanging: heartbeats through torch.distributed's own store.

Every rank bumps its own counter in the process group's key-value store every `interval` seconds from a daemon
thread. Rank 0 watches every other rank's counter with one `multi_get` per interval, rank 1 watches rank 0's:
about 2 x ranks store requests per interval in all. A watched rank whose counter has not moved for `timeout`
seconds of the watcher's own running time, or a store that cannot be reached any more (its host, rank 0, is
gone), ends this process with exit code 1 and a message naming the failed rank, even while the main thread is
blocked in a collective that would wait forever; the other ranks read the verdict from the store and end too.

Measured on the watcher's running time, a pause of the whole job (SLURM's suspend: SIGSTOP of every task) is no
failure: the watcher stops with the others, and the gap it finds on waking is not counted. A rank that has not
beaten yet has `startup_timeout` seconds (ranks may start minutes apart). A rank that finishes normally says so
first, so its silence is not taken for a failure.
"""
import os
import sys
import threading
import time
from typing import Dict, List, Optional

KEY = "lth_plugins/heartbeat"
DONE = 1 << 40  # added to a rank's counter when it finishes normally


class PeerWatchdog:
    def __init__(self, store, rank: int, world: int, interval: float = 2.0, timeout: float = 30.0,
                 label: str = "lottery", startup_timeout: float = 600.0):
        self.store, self.rank, self.world = store, rank, world
        self.interval, self.timeout, self.label = interval, timeout, label
        self.startup_timeout = startup_timeout
        self._stop = threading.Event()
        self.watched: List[int] = self.watched_by(rank, world)
        self._seen: Dict[int, tuple] = {}  # rank -> (counter, watcher's running time when it last moved)
        self._running = 0.0    # this watcher's running time: wall time without the pauses it found
        self._last_check: Optional[float] = None
        self.failed: Optional[str] = None
        self._thread = threading.Thread(target=self._loop, name="lth-peer-watchdog", daemon=True)

    @staticmethod
    def watched_by(rank: int, world: int) -> List[int]:
        """Rank 0 watches every other rank; rank 1 watches rank 0 (whose death may not take the store down)."""
        if rank == 0:
            return list(range(1, world))
        return [0] if rank == 1 else []

    @classmethod
    def for_default_group(cls, **kw) -> Optional["PeerWatchdog"]:
        """A started watchdog for torch.distributed's default group, or None when not distributed."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        from torch.distributed.distributed_c10d import _get_default_store

        dog = cls(_get_default_store(), dist.get_rank(), dist.get_world_size(), **kw)
        dog.start()
        return dog

    def start(self) -> "PeerWatchdog":
        self._thread.start()
        return self

    def _key(self, r: int) -> str:
        return f"{KEY}/{r}"

    def _loop(self) -> None:
        verdict = None
        try:
            # the watched ranks' keys exist from now on (0: not started), so multi_get never waits for one
            for r in self.watched:
                self.store.add(self._key(r), 0)
        except Exception as e:
            verdict = f"rank 0 (host of the process group's store) is unreachable ({type(e).__name__}: {e})"
        first = True
        while verdict is None and not self._stop.wait(0 if first else self.interval):
            first = False
            try:
                self.store.add(self._key(self.rank), 1)
                verdict = self._check()
                if verdict:  # tell the others which rank failed, before rank 0 takes its store down
                    self.store.set(f"{KEY}/failed", verdict)
                    if self.rank == 0:
                        time.sleep(2 * self.interval)
            except Exception as e:  # the store lives in rank 0's process
                verdict = f"rank 0 (host of the process group's store) is unreachable ({type(e).__name__}: {e})"
        if verdict and not self._stop.is_set():
            self.failed = verdict
            print(f"[{self.label}] rank {self.rank}: {verdict}; it failed or was killed. Stopping this rank "
                  f"too (exit code 1); rerun the same launch to resume from the last checkpoint.",
                  file=sys.stderr, flush=True)
            os._exit(1)

    def _tick(self) -> float:
        """Advance and return the watcher's running time. A gap much longer than one interval is a pause of this
        process (the whole job stopped, or this rank starved): it is not counted."""
        now = time.monotonic()
        if self._last_check is not None:
            self._running += min(now - self._last_check, 2 * self.interval + 1.0)
        self._last_check = now
        return self._running

    def _check(self) -> Optional[str]:
        """One look: the verdict another rank left (one request) and the watched ranks' counters (one
        multi_get). Returns a verdict naming a failed rank, or None."""
        if self.store.check([f"{KEY}/failed"]):  # another rank found it first
            return self.store.get(f"{KEY}/failed").decode()
        if not self.watched:
            return None
        running = self._tick()
        counts = self.store.multi_get([self._key(r) for r in self.watched])
        for r, raw in zip(self.watched, counts):
            count = int(raw)
            if count >= DONE:
                continue
            last = self._seen.get(r)
            if last is None or last[0] != count:
                self._seen[r] = (count, running)
                continue
            quiet = running - last[1]
            if count == 0 and quiet > self.startup_timeout:
                return f"rank {r} never started its heartbeat: none in {quiet:.0f} s"
            if count > 0 and quiet > self.timeout:
                return f"rank {r} stopped: no heartbeat for {quiet:.0f} s"
        return None

    def wait_for_verdict(self) -> None:
        """After a collective failed in the main thread: give the watchdog the time to find (and name) the rank
        that failed; it ends the process when it does. Returns when no rank is found to have failed."""
        deadline = time.monotonic() + self.timeout + 3 * self.interval
        while time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.2)

    def stop(self, finished: bool = True) -> None:
        """Stop watching; `finished`: tell the others this rank ended normally."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 5)
        if finished:
            try:
                self.store.add(self._key(self.rank), DONE)
            except Exception:
                pass
