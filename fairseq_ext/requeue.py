"""SLURM's warning before a job's time limit (`sbatch --signal=USR1@SECONDS`): the job requeues itself and resumes
where it stopped, losing nothing it trained.

During a round's training every rank stops after one update they all agree on and fairseq saves the round's
checkpoint_last.pt there. Anywhere else (a round's setup or evaluation, a random ticket waiting for its mask) there
is nothing to save: the job is requeued at once and an interrupted evaluation runs again. One rank runs
`scontrol requeue`; SLURM then ends every task and starts the job again, and fairseq resumes from the round's
checkpoint. Only under SLURM (SLURM_JOB_ID set); elsewhere the signal keeps its default meaning.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time

from .distributed import STORE_PREFIX, default_store, rank, world_size

SIGNAL = signal.SIGUSR1
STOP_KEY = f"{STORE_PREFIX}/requeue/stop_update"
REQUEUER_KEY = f"{STORE_PREFIX}/requeue/by"
KILL_WAIT_S = 120  # after the requeue: how long a rank waits for SLURM to end it


class Requeue(BaseException):
    """The job is being requeued: leave the round loop. Not an Exception, so that no handler of failures (fairseq's,
    the peer watchdog's) takes it for one."""


class Preemption:
    """The warning's state in one rank's process. The handler only notes the warning while the rank trains (the
    stop comes at an update boundary, `stop_at`) or before the round loop runs; elsewhere it raises `Requeue`."""

    def __init__(self):
        self.pid = None  # the process that installed the handler (forked data workers inherit it, and ignore it)
        self.requested = False
        self.immediate = False  # raise at once (outside training, inside the round loop)
        self._published = False

    def install(self) -> None:
        """Catch the warning in this process (idempotent; nothing outside SLURM)."""
        if "SLURM_JOB_ID" in os.environ and self.pid != os.getpid():
            self.pid = os.getpid()
            signal.signal(SIGNAL, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if os.getpid() != self.pid:
            return
        first = not self.requested
        self.requested = True
        if first and self.immediate:
            raise Requeue(f"{signal.Signals(signum).name} outside training")

    def _set_immediate(self, immediate: bool) -> None:
        self.immediate = immediate
        if immediate and self.requested:
            raise Requeue(f"{SIGNAL.name} received")

    def enter_round_loop(self) -> None:
        self.install()
        self._set_immediate(True)

    def enter_training(self) -> None:
        self.immediate = False

    def leave_training(self) -> None:
        """The round's training has ended; a warning that came during it (after its last update) requeues now."""
        if self.pid == os.getpid():
            self._set_immediate(True)

    def stop_at(self, num_updates: int) -> bool:
        """Called by every rank after each update (after fairseq's own validation and saving): whether to stop
        here, the same answer on every rank. The first rank that has the warning names the update after the next:
        the ranks' collectives keep them at most one update apart, so none has passed it."""
        if self.pid != os.getpid():
            return False
        if world_size() == 1:
            return self.requested
        store = default_store()
        if self.requested and not self._published:
            store.compare_set(STOP_KEY, "", str(num_updates + 2))
            self._published = True
        if not store.check([STOP_KEY]):
            return False
        self.requested = True
        return num_updates >= int(store.get(STOP_KEY))


PREEMPTION = Preemption()


@contextlib.contextmanager
def shielded_children():
    """Processes started inside this block do not receive the warning (SLURM signals every process of a job
    step): a child fairseq-generate ends only when its rank does."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {SIGNAL})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def requeue_and_wait(reason: str) -> None:
    """Requeue the job (the first rank to get here does) and wait for SLURM to end this process; never returns."""
    job = os.environ["SLURM_JOB_ID"]
    r = rank()
    try:
        first = world_size() == 1 or default_store().add(REQUEUER_KEY, 1) == 1
    except Exception:  # rank 0, the store's host, is gone: requeue from here
        first = True
    if first:
        p = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"[lottery] rank {r}: {reason}; `scontrol requeue {job}` failed: "
                  f"{(p.stderr or p.stdout).strip()}. The round's last checkpoint is on disk: submit the job again "
                  f"to resume.", file=sys.stderr, flush=True)
            os._exit(1)
        print(f"[lottery] rank {r}: {reason}; SLURM job {job} requeued: it resumes from the round's "
              f"checkpoint_last.pt", file=sys.stderr, flush=True)
    time.sleep(KILL_WAIT_S)
    print(f"[lottery] rank {r}: SLURM job {job} was requeued, but this task was not ended in {KILL_WAIT_S} s; "
          f"exiting", file=sys.stderr, flush=True)
    os._exit(1)
