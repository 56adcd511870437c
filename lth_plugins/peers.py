"""A rank that dies must not leave the others hanging: heartbeats through torch.distributed's own store.

Every rank bumps its counter in the process group's key-value store every `interval` seconds from a daemon
thread and watches the others' counters. A rank whose counter has not moved for `timeout` seconds, or a store
that cannot be reached any more (its host, rank 0, is gone), ends this process with exit code 1 and a message
naming the failed rank, even while the main thread is blocked in a collective that would wait forever.
A rank that finishes normally says so first, so its silence is not taken for a failure.
"""
import os
import sys
import threading
import time
from typing import Dict, Optional

KEY = "lth_plugins/heartbeat"


class PeerWatchdog:
    def __init__(self, store, rank: int, world: int, interval: float = 2.0, timeout: float = 20.0,
                 label: str = "lottery"):
        self.store, self.rank, self.world = store, rank, world
        self.interval, self.timeout, self.label = interval, timeout, label
        self._stop = threading.Event()
        self._seen: Dict[int, tuple] = {}  # rank -> (counter, monotonic time it last moved)
        self.failed: Optional[str] = None
        self._thread = threading.Thread(target=self._loop, name="lth-peer-watchdog", daemon=True)

    @classmethod
    def for_default_group(cls, **kw) -> Optional["PeerWatchdog"]:
        """A started watchdog for torch.distributed's default group, or None when not distributed."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        from torch.distributed.distributed_c10d import _get_default_store

        dog = cls(_get_default_store(), dist.get_rank(), dist.get_world_size(), **kw)
        dog._thread.start()
        return dog

    def _loop(self) -> None:
        beats = 0
        while not self._stop.wait(self.interval if beats else 0):
            beats += 1
            try:
                self.store.add(f"{KEY}/{self.rank}", 1)
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

    def _check(self) -> Optional[str]:
        if self.store.check([f"{KEY}/failed"]):  # another rank found it first
            return self.store.get(f"{KEY}/failed").decode()
        now = time.monotonic()
        for r in range(self.world):
            if r == self.rank:
                continue
            if self.store.check([f"{KEY}/{r}/done"]):
                continue
            count = self.store.add(f"{KEY}/{r}", 0)
            last = self._seen.get(r)
            if last is None or last[0] != count:
                self._seen[r] = (count, now)
            elif now - last[1] > self.timeout:
                return f"rank {r} stopped: no heartbeat for {now - last[1]:.0f} s"
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
        if finished:
            try:
                self.store.set(f"{KEY}/{self.rank}/done", "1")
            except Exception:
                pass
