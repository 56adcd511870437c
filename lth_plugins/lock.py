"""Exclusive locks on a file that records its holder (pid, host, and its SLURM job and attempt when it ran in one):
run directories, sweeps, build caches.

A holder's pid is judged only on its own host: a pid from another node of a cluster is never looked up here. A holder
that ran in a SLURM job is judged by that job wherever it ran: an earlier attempt of this process's own job (the job
was requeued, perhaps onto other nodes) or a job SLURM no longer has is gone, and its lock is taken over, saying so.
Where the filesystem has no flock (Lustre mounted without it), the lock is the file itself, created exclusively.
"""
import errno
import fcntl
import os
import socket
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import LotteryError
from .scheduler import current_attempt, current_job, job_active

# errnos of a filesystem that does not implement flock
_NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
_ATTEMPTS = 5


class LockBusy(LotteryError):
    """The lock is held by a live process (or by one on another host, which cannot be checked from here)."""

    def __init__(self, message: str, holder: "Holder"):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    pid: Optional[int]
    host: Optional[str]   # None: a record written without a host (taken to be this host)
    job: Optional[str] = None  # the SLURM job of the holder, when it ran in one
    attempt: Optional[int] = None  # its SLURM_RESTART_COUNT (None: a record written without it)

    @property
    def here(self) -> bool:
        return self.host in (None, this_host())

    def alive(self) -> bool:
        """Whether the holder still runs (see `gone`); one that cannot be judged from here is taken to be alive."""
        return self.gone() is None

    def gone(self) -> Optional[str]:
        """Why the holder no longer runs, or None when it runs or cannot be judged from here. An earlier attempt
        of this process's own SLURM job is gone (SLURM ends every task of an attempt before it starts the next);
        a pid of this host is looked up; a holder whose job SLURM no longer has is gone wherever it ran (its pid
        may live on in another process; squeue: a requeued job, pending, still counts as running)."""
        mine = current_job()
        if self.job and mine and self.job == mine and (self.attempt or 0) < current_attempt():
            return f"an earlier attempt ({self.attempt or 0}) of this SLURM job {mine}, now in attempt " \
                   f"{current_attempt()}"
        if self.here and self.pid is not None and not pid_alive(self.pid):
            return "its process has ended"
        if self.job and self.job != mine and job_active(self.job) is False:
            return f"SLURM no longer has job {self.job}"
        return None

    def describe(self) -> str:
        where = "" if self.here else f" on host {self.host}"
        job = f", SLURM job {self.job}" if self.job else ""
        attempt = f" attempt {self.attempt}" if self.job and self.attempt else ""
        return f"pid {self.pid if self.pid is not None else '?'}{where}{job}{attempt}"

    @classmethod
    def parse(cls, text: str) -> "Holder":
        parts = text.split()
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        attempt = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
        return cls(pid, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None, attempt)


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid) -> bool:
    """Whether a process with this pid runs on this host (another user's counts; a zombie, dead but not yet
    reaped, does not); False for anything not a pid."""
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (OSError, TypeError, ValueError):
        return False
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal test above is all there is


# Locks held by this process: a forked child (a framework's worker) closes its copies, so that no child outlives
# its parent holding the lock.
_HELD: "weakref.WeakSet[FileLock]" = weakref.WeakSet()


def _close_inherited():
    for lock in list(_HELD):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class FileLock:
    """An exclusive lock on `path` for this process's lifetime (or until `release`). `what` names the locked
    thing in messages, e.g. "run directory runs/x"."""

    def __init__(self, path, what: str):
        self.path, self.what = Path(path), what
        self._fd: Optional[int] = None
        self._exclusive_file = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = False) -> "FileLock":
        """Take the lock, or raise LockBusy naming its holder (`wait`: block until it is free). A lock whose
        holder died on this host (its file still locked by orphans through an inherited descriptor) is replaced
        by a fresh lock file: the orphans keep a lock on the unlinked file, which blocks nobody."""
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = Holder.parse(os.read(fd, 128).decode(errors="replace"))
                gone = holder.gone()
                if gone is not None:
                    if _is_current(fd, self.path):  # not already replaced by another starter
                        self._taken_over(holder, gone)
                        self.path.unlink(missing_ok=True)
                    os.close(fd)
                    continue
                os.close(fd)
                raise LockBusy(f"{self.what} is in use by another process ({holder.describe()}); wait for it to "
                               f"finish or stop it first", holder) from None
            except OSError as e:
                empty = os.fstat(fd).st_size == 0
                os.close(fd)
                if e.errno in _NO_FLOCK:
                    if empty:  # the file this open created: a holder writes its record right after creating it
                        self.path.unlink(missing_ok=True)
                    return self._acquire_exclusive_file()
                raise
            os.ftruncate(fd, 0)
            os.write(fd, _record())
            # Another starter may have replaced the file since our open, or, until our record was written, read
            # the dead holder's pid and replaced it: then the lock we hold is on an unlinked file.
            if not _is_current(fd, self.path):
                os.close(fd)
                continue
            self._fd = fd
            _HELD.add(self)
            return self
        raise LotteryError(f"could not lock {self.what}: its lock file {self.path} keeps changing")

    def _acquire_exclusive_file(self) -> "FileLock":
        """Without flock: the lock is the existence of the lock file, created with O_EXCL. A record left by a
        holder that is gone (`Holder.gone`) is removed; another host's pid is never judged from here."""
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = read_holder(self.path) or Holder(None, None)
                gone = holder.gone()
                if gone is not None:
                    self._taken_over(holder, gone)
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockBusy(
                    f"{self.what} is in use by another process ({holder.describe()}); this filesystem has no "
                    f"flock, so the lock is the file {self.path}: if that process is gone, delete the file",
                    holder) from None
            os.write(fd, _record())
            self._fd, self._exclusive_file = fd, True
            _HELD.add(self)
            return self
        raise LotteryError(f"could not lock {self.what}: its lock file {self.path} keeps changing")

    def _taken_over(self, holder: Holder, why: str) -> None:
        """One line when a lock judged through SLURM is taken over (a dead pid of this host is taken silently)."""
        if holder.job:
            print(f"[lottery] {self.what}: taking over the lock left by {holder.describe()}: {why}",
                  file=sys.stderr, flush=True)

    def release(self) -> None:
        if self._fd is None:
            return
        if self._exclusive_file:
            self.path.unlink(missing_ok=True)
        else:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._forget()

    def _forget(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # this process's copy only
            except OSError:
                pass
            self._fd = None
        _HELD.discard(self)

    def __enter__(self) -> "FileLock":
        return self.acquire() if not self.held else self

    def __exit__(self, *exc) -> None:
        self.release()


def _record() -> bytes:
    job = current_job()
    return f"{os.getpid()} {this_host()}{f' {job} {current_attempt()}' if job else ''}".encode()


def _is_current(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not unlinked or replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def read_holder(path) -> Optional[Holder]:
    try:
        return Holder.parse(Path(path).read_text(errors="replace"))
    except (FileNotFoundError, IsADirectoryError):
        return None


def live_holder(path) -> Optional[Holder]:
    """The holder of the lock at `path` if it is held by a live process (one on another host counts as live),
    else None (never taken, released, or its holder was killed)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(os.read(fd, 128).decode(errors="replace"))
            return holder if holder.pid is not None and holder.alive() else None
        except OSError as e:
            if e.errno not in _NO_FLOCK:
                raise
            holder = Holder.parse(os.read(fd, 128).decode(errors="replace"))  # an exclusive-file lock
            return holder if holder.pid is not None and holder.alive() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
