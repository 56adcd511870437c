"""The pieces every build step shares: `BuildError`, the build log (progress lines on stderr and in a log file)
and `run_step`, which runs one command with its output in the log and a heartbeat line while it runs."""
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional, Sequence

from lth_plugins.errors import LotteryError

HEARTBEAT_S = 30.0


class BuildError(LotteryError):
    """A source, a system prerequisite or a build step failed; the message says what and what to do."""


class BuildLog:
    """``log(msg)``: a progress line on stderr and in the build's log file (``path``)."""

    def __init__(self, name: str, path: Optional[Path] = None, stream=None):
        self.name, self.path = name, path
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self._file = open(path, "a", buffering=1) if path is not None else None

    def __call__(self, msg: str) -> None:
        line = f"[lth deps {self.name}] {msg}"
        print(line, file=self.stream, flush=True)
        self.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def write(self, text: str) -> None:
        """Append raw text (a command's output) to the log file only."""
        if self._file is not None:
            self._file.write(text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def run_step(cmd: Sequence[str], log: Callable[[str], None], cwd=None, env=None, what: Optional[str] = None) -> None:
    """Run one build command: its output goes to the log file, a progress line is printed at the start and every
    30 s, and a failure raises BuildError with the command's last output lines and the log's location."""
    what = what or " ".join(str(c) for c in cmd[:3])
    log(f"{what} ...")
    t0 = time.monotonic()
    tail: deque = deque(maxlen=40)
    write = getattr(log, "write", None)
    if write:
        write(f"$ {' '.join(str(c) for c in cmd)}\n")
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
    except FileNotFoundError as e:
        raise BuildError(f"{what}: command not found: {cmd[0]}") from e
    last = t0
    for line in proc.stdout:
        tail.append(line)
        if write:
            write(line)
        now = time.monotonic()
        if now - last >= HEARTBEAT_S:
            log(f"{what}: still running ({int(now - t0)} s): {line.strip()[:100]}")
            last = now
    rc = proc.wait()
    if rc != 0:
        where = f"; full log: {log.path}" if getattr(log, "path", None) else ""
        raise BuildError(f"{what} failed (exit {rc}){where}. Last output:\n" + "".join(tail).rstrip())
    log(f"{what} done in {int(time.monotonic() - t0)} s")
