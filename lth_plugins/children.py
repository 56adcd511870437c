"""Child processes that do not outlive their parent."""
import ctypes
import os
import signal
from typing import Optional

_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover (not Linux)
    _LIBC = None


def die_with_parent(signum: int = signal.SIGKILL, parent: Optional[int] = None) -> None:
    """In a child process: ask the kernel to send `signum` when the thread that forked it exits (Linux).
    `parent`: the parent's pid; the child exits at once if the parent died before the request was made."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)
