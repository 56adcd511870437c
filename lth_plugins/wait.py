"""Waiting for a file another process writes (a random ticket waiting for its winning ticket's masks, a run
waiting for the dense round it reuses): as long as that process is alive, up to an upper bound."""
import os
import sys
import time
from typing import Callable, Optional

from .errors import RunStoreError

ALIVE_CHECK_S = 15.0  # how often the writer's liveness is checked (it may ask the cluster's scheduler)
# How often the other tasks of a multi-task job check it: task 0's verdict ends the whole step (srun
# --kill-on-bad-exit), so they need not ask the scheduler too; this bounds their wait where nothing ends the step.
OTHER_TASKS_CHECK_S = 600.0
# How long a writer may go unseen before the wait gives up on it: a run started (or resumed) beside this one takes
# its lock only once its framework has loaded the model and data.
WRITER_START_S = 90.0


def first_task() -> bool:
    """Whether this process is task 0 of its job (torchrun's RANK, else SLURM_PROCID; a process outside both is):
    the one that checks the writer's liveness every ALIVE_CHECK_S, so that one process per job asks the scheduler
    that often, not every rank."""
    return (os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0").strip() == "0"


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 1.0, stream=None,
               alive: Optional[Callable[[], Optional[bool]]] = None, writer: str = "") -> None:
    """Return once `ready()` holds; say what is awaited (then every 10 minutes). `alive()` tells whether the
    process that will make it ready (`writer`, for messages) still runs: when it has not been seen running for
    WRITER_START_S, the wait ends with a RunStoreError naming it (None: cannot tell, keep waiting). After
    `timeout_s` seconds raise RunStoreError."""
    if ready():
        return
    stream = stream if stream is not None else sys.stderr
    if timeout_s <= 0:
        raise RunStoreError(f"{what} does not exist (not waiting: mask_wait is 0)")
    t0 = last = time.monotonic()
    first = first_task()
    check_s = ALIVE_CHECK_S if first else OTHER_TASKS_CHECK_S
    last_check = t0 - check_s if first else t0  # task 0 looks at once, the others after their interval
    seen = t0  # when the writer was last seen running (or the wait began)
    told = False
    print(f"[lottery] waiting up to {timeout_s:g} s for {what}" + (f", while {writer} runs" if alive else ""),
          file=stream, flush=True)
    while not ready():
        now = time.monotonic()
        if alive is not None and now - last_check >= check_s:
            last_check = now
            if alive() is not False:
                seen = now
            elif ready():  # it may have written it and exited
                break
            elif now - seen >= WRITER_START_S:
                raise RunStoreError(f"{what} does not exist and {writer or 'the run that writes it'} is not "
                                    f"running (no live process holds it, no queued job will resume it): "
                                    f"resume that run first, then this one")
            elif not told:
                told = True
                print(f"[lottery] {writer or 'the run that writes it'} is not running; giving it "
                      f"{WRITER_START_S:g} s to start", file=stream, flush=True)
        if now - t0 >= timeout_s:
            raise RunStoreError(f"gave up after {timeout_s:g} s waiting for {what}: start or resume that run, "
                                f"or wait longer (mask_wait, --lottery-mask-wait)")
        if now - last >= 600:
            print(f"[lottery] still waiting ({now - t0:.0f} s) for {what}", file=stream, flush=True)
            last = now
        time.sleep(min(poll_s, max(0.0, timeout_s - (now - t0))))
