"""What SLURM's accounting says about a sweep's jobs: one `sacct` call for all of them, every attempt included.

A requeued job keeps its id; `sacct -D` lists each attempt (REQUEUED for the ones that were requeued), the last
one with its current or final state: RUNNING, PENDING, COMPLETED, TIMEOUT, PREEMPTED, NODE_FAIL, CANCELLED,
OUT_OF_MEMORY, FAILED.
"""
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from ..scheduler import ACTIVE_STATES

FIELDS = ("JobIDRaw", "State", "ExitCode", "Reason", "Start", "End", "NodeList")
# States sacct keeps for a job that SLURM requeued (PreemptMode=REQUEUE, --requeue after a node failure) until its
# next attempt starts: squeue tells whether it waits in the queue.
REQUEUED_ENDS = ("PREEMPTED", "NODE_FAIL")


@dataclass
class SlurmRecord:
    job_id: str
    detail: str                 # the last attempt's state as sacct writes it, e.g. "CANCELLED by 0"
    reason: str = ""            # sacct's Reason (why it waits: BeginTime, Resources...; "None")
    exit_code: str = ""
    nodes: str = ""
    attempts: List[str] = field(default_factory=list)  # every attempt's state, oldest first

    @property
    def state(self) -> str:
        """The last attempt's state, its first word ("CANCELLED by 0" -> CANCELLED)."""
        return self.detail.split()[0] if self.detail else ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def requeues(self) -> int:
        return max(0, len(self.attempts) - 1)

    def describe(self) -> str:
        """The scheduler's word on the job: its state, why it waits, and how earlier attempts ended."""
        text = self.detail
        if self.state == "PENDING" and self.reason not in ("", "None"):
            text += f" ({self.reason})"
        earlier = self.attempts[:-1]
        if earlier:
            counts: Dict[str, int] = {}
            for s in earlier:
                counts[s] = counts.get(s, 0) + 1
            text += "; before: " + ", ".join(f"{s} x{n}" if n > 1 else s for s, n in counts.items())
        return text


def parse(text: str) -> Dict[str, SlurmRecord]:
    """Records from `sacct -D -X -P -n -o <FIELDS>` output."""
    out: Dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(FIELDS) or not parts[0].strip():
            continue
        row = dict(zip(FIELDS, (p.strip() for p in parts)))
        rec = out.setdefault(row["JobIDRaw"], SlurmRecord(row["JobIDRaw"], ""))
        rec.attempts.append(row["State"].split()[0] if row["State"] else "")
        rec.detail, rec.reason = row["State"], row["Reason"]
        rec.exit_code, rec.nodes = row["ExitCode"], row["NodeList"]
    return out


def query(job_ids: Iterable[str], timeout: float = 60) -> Optional[Dict[str, SlurmRecord]]:
    """The records of `job_ids` in one sacct call; None when sacct cannot be asked. A job submitted a moment ago
    may be missing (accounting lags about a second)."""
    ids = sorted({str(j) for j in job_ids if j}, key=lambda j: (len(j), j))
    if not ids:
        return {}
    if shutil.which("sacct") is None:
        return None
    try:
        p = subprocess.run(["sacct", "-D", "-X", "-P", "-n", "-o", ",".join(FIELDS), "-j", ",".join(ids)],
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    records = parse(p.stdout)
    ended = [r.job_id for r in records.values() if r.state in REQUEUED_ENDS]
    for job_id, (state, reason) in (queued(ended, timeout) if ended else {}).items():
        rec = records[job_id]
        rec.attempts.append(state)
        rec.detail, rec.reason = state, reason
    return records


def queued(job_ids: List[str], timeout: float = 60) -> Dict[str, tuple]:
    """{job id: (state, reason)} of those of `job_ids` that squeue lists (still queued or running)."""
    if shutil.which("squeue") is None:
        return {}
    try:
        p = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i|%T|%r"], capture_output=True,
                           text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rows = (line.split("|") for line in p.stdout.splitlines() if line.count("|") == 2)
    return {job: (state, reason) for job, state, reason in rows if job in job_ids} if p.returncode == 0 else {}


class Accounting:
    """sacct for a following sweep: at most one call every `interval_s` seconds, sooner only for a job id it has
    not asked about yet."""

    def __init__(self, interval_s: float = 5.0):
        self.interval_s = interval_s
        self.records: Optional[Dict[str, SlurmRecord]] = {}
        self._asked: set = set()
        self._last = 0.0
        self.calls = 0

    def refresh(self, job_ids: Iterable[str]) -> Optional[Dict[str, SlurmRecord]]:
        ids = {str(j) for j in job_ids if j}
        now = time.monotonic()
        if ids and (now - self._last >= self.interval_s or not ids <= self._asked):
            self.records = query(ids)
            self.calls += 1
            self._asked, self._last = ids, now
        return self.records
