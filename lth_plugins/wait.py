"""Waiting for a file another process writes (a random ticket waiting for its winning ticket's masks)."""
import sys
import time
from typing import Callable

from .errors import RunStoreError


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 1.0,
               stream=None) -> None:
    """Return once `ready()` holds; say what is awaited (then every 10 minutes); after `timeout_s` seconds
    raise RunStoreError naming it."""
    if ready():
        return
    stream = stream if stream is not None else sys.stderr
    if timeout_s <= 0:
        raise RunStoreError(f"{what} does not exist (not waiting: mask_wait is 0)")
    t0 = last = time.monotonic()
    print(f"[lottery] waiting up to {timeout_s:g} s for {what}", file=stream, flush=True)
    while not ready():
        now = time.monotonic()
        if now - t0 >= timeout_s:
            raise RunStoreError(f"gave up after {timeout_s:g} s waiting for {what}: start or resume that run, "
                                f"or wait longer (mask_wait, --lottery-mask-wait)")
        if now - last >= 600:
            print(f"[lottery] still waiting ({now - t0:.0f} s) for {what}", file=stream, flush=True)
            last = now
        time.sleep(min(poll_s, max(0.0, timeout_s - (now - t0))))
