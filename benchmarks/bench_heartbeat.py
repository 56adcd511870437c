"""Peer heartbeat (lth_plugins.peers) at 8, 128 and 1024 simulated ranks, all figures printed.

Every rank is a thread with its own client of one TCPStore (as every process of a job has its own connection to
rank 0's store), running the real PeerWatchdog at its default interval. Measured:
1. store requests per interval and per second, all ranks together (goal: O(ranks), about 2 x ranks + 2);
   beside them the figure of a design where every rank reads every other rank's key (2 x ranks^2).
2. seconds per check of the watcher (rank 0: the verdict key, then one multi_get of every other rank's
   counter), median of repeated checks once the beating threads are stopped (goal: under 1 ms at 128 ranks).
Run: python benchmarks/bench_heartbeat.py [--ranks 8 128 1024] [--intervals 3]
"""
import argparse
import statistics
import threading
import time
from datetime import timedelta

from torch.distributed import TCPStore

from lth_plugins.peers import PeerWatchdog

METHODS = ("add", "set", "get", "check", "multi_get")


class CountingStore:
    """A store client that counts the requests made through it."""

    def __init__(self, store, counter):
        self._store, self._counter = store, counter

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in METHODS:
            return attr

        def call(*args, **kwargs):
            self._counter.add()
            return attr(*args, **kwargs)

        return call


class Counter:
    def __init__(self):
        self.n, self._lock = 0, threading.Lock()

    def add(self):
        with self._lock:
            self.n += 1


def client(port):
    return TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=60))


def bench(world: int, intervals: int, interval: float) -> dict:
    server = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60))
    counter = Counter()
    t0 = time.perf_counter()
    dogs = [PeerWatchdog(CountingStore(client(server.port), counter), r, world, interval=interval,
                         timeout=3600) for r in range(world)]
    for d in dogs:
        d.start()
    setup_s = time.perf_counter() - t0
    time.sleep(2 * interval)  # every rank has made its first beats
    start_n, start_t = counter.n, time.perf_counter()
    time.sleep(intervals * interval)
    n, dt = counter.n - start_n, time.perf_counter() - start_t
    for d in dogs:
        d.stop(finished=False)
    failed = [d.failed for d in dogs if d.failed]
    # the watcher's own check, on a quiet store (rank 0: every other rank's counter)
    watcher = PeerWatchdog(client(server.port), 0, world, interval=interval, timeout=3600)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        verdict = watcher._check()
        times.append(time.perf_counter() - t)
    assert verdict is None and not failed, (verdict, failed)
    return {"ranks": world, "requests_per_interval": n / dt * interval, "requests_per_s": n / dt,
            "expected_per_interval": 2 * world + 2, "all_pairs_per_interval": 2 * world * world,
            "check_ms": statistics.median(times) * 1e3, "check_ms_p90": sorted(times)[180] * 1e3,
            "setup_s": setup_s}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[8, 128, 1024])
    p.add_argument("--intervals", type=int, default=3, help="intervals measured per size")
    p.add_argument("--interval", type=float, default=2.0, help="heartbeat interval (PeerWatchdog's default)")
    args = p.parse_args()
    print(f"heartbeat interval {args.interval:g} s, {args.intervals} intervals measured per size")
    print(f"{'ranks':>6}  {'requests/interval':>17}  {'(2N+2)':>7}  {'requests/s':>10}  "
          f"{'all-pairs/interval':>18}  {'check ms':>8}  {'p90 ms':>7}")
    for world in args.ranks:
        r = bench(world, args.intervals, args.interval)
        print(f"{r['ranks']:>6}  {r['requests_per_interval']:>17.0f}  {r['expected_per_interval']:>7}  "
              f"{r['requests_per_s']:>10.0f}  {r['all_pairs_per_interval']:>18}  {r['check_ms']:>8.3f}  "
              f"{r['check_ms_p90']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
