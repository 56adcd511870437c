"""The sweep directory: what each job has done, is doing, or why it stopped.

    SWEEP_DIR/sweep.json          the config (a sweep directory refuses another grid)
    SWEEP_DIR/sweep.log           the sweep's progress lines
    SWEEP_DIR/jobs/<job>.json     the job's last attempt: submitted / running / finished / failed, pid, exit code
    SWEEP_DIR/logs/<job>.log      the job's command output (every attempt appended)
    SWEEP_DIR/submitit/           submitit's own files (pickled job, its stdout/stderr)
    SWEEP_DIR/runs/...            the run directories (the truth about rounds: `lth status` reads them)
"""
import json
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..atomic import atomic_write_json
from ..errors import SweepError
from ..hparams import Ticket
from ..lock import FileLock, LockBusy, pid_alive, this_host
from ..store import RunStore, holds_results
from .config import Job, SweepConfig

SWEEP_FILE = "sweep.json"
ACTIVE_SLURM = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING",
                "UNKNOWN"}


def is_sweep_dir(path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


class SweepDir:
    def __init__(self, path):
        self.path = Path(path).resolve()
        self._lock = FileLock(self.path / ".sweep.lock", f"sweep directory {self.path}")

    # --- the directory and its config ---------------------------------------------------------------
    def jobs(self):
        """The jobs as the sweep expanded them (no framework needed to read them back)."""
        return [Job.from_dict(d) for d in self.read()["jobs"]]

    def read(self) -> dict:
        if not is_sweep_dir(self.path):
            raise SweepError(f"{self.path} is not a sweep directory (no {SWEEP_FILE}); start one with "
                             f"`lth sweep CONFIG {self.path}`")
        return json.loads((self.path / SWEEP_FILE).read_text())

    def open(self, cfg: SweepConfig) -> None:
        """Create the sweep directory for `cfg`, or check that it holds this grid; lock it against a second
        sweep process."""
        f = self.path / SWEEP_FILE
        if f.is_file():
            stored = json.loads(f.read_text())
            if stored.get("identity") != cfg.identity() and self._started(stored):
                diff = _diff(stored.get("identity", {}), cfg.identity())
                raise SweepError(f"{self.path} holds the sweep of another config ({stored.get('config_path')}); "
                                 f"differing settings: {'; '.join(diff)}. Use another sweep directory, or the "
                                 f"config this directory was made with (a grid may change only while no job has "
                                 f"a result or runs)")
        elif self.path.exists() and any(p.name != ".sweep.lock" for p in self.path.iterdir()):
            raise SweepError(f"{self.path} is not empty and not a sweep directory; give a new or empty folder")
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except LockBusy as e:
            raise SweepError(f"another `lth sweep` ({e.holder.describe()}) is following {self.path}; stop it "
                             f"first or watch it with `lth status {self.path}`") from None
        atomic_write_json(f, {"config_path": str(cfg.path.resolve()), "identity": cfg.identity(),
                              "data": cfg.data, "jobs": [j.to_dict() for j in cfg.jobs]})

    def _started(self, stored: dict) -> bool:
        """Whether any job of the stored grid has a result on disk or is queued or running."""
        for d in stored.get("jobs", []):
            job = Job.from_dict(d)
            if (job.run_dir.is_dir() and holds_results(job.run_dir)) or is_active(self.read_state(job),
                                                                                   self.submitit_dir):
                return True
        return False

    def close(self) -> None:
        self._lock.release()

    # --- per-job files ------------------------------------------------------------------------------
    def state_path(self, job: Job) -> Path:
        return self.path / "jobs" / f"{job.file_stem}.json"

    def log_path(self, job: Job) -> Path:
        return self.path / "logs" / f"{job.file_stem}.log"

    @property
    def submitit_dir(self) -> Path:
        return self.path / "submitit"

    def read_state(self, job: Job) -> dict:
        try:
            return json.loads(self.state_path(job).read_text())
        except (OSError, ValueError):
            return {}

    def write_state(self, job: Job, **values) -> None:
        atomic_write_json(self.state_path(job), {"job": job.name, **values, "time": time.time()})


def _diff(a: dict, b: dict):
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)] or ["(order)"]


# --- what a job's state is -------------------------------------------------------------------------------
def rounds_of(job: Job, default_rounds: Optional[int]):
    """(rounds done, rounds planned or None) read from the job's run directory."""
    return RunStore.view(job.run_dir).progress(default_rounds, first=Ticket(job.ticket).first_round)


# One SlurmJob per job: creating one makes submitit's shared watcher run sacct at its next question, so a new
# object per poll would run sacct for every job every second; kept, they share one sacct call per minute or so.
_SLURM_JOBS: Dict[Tuple[str, str], object] = {}


def is_active(state: dict, submitit_dir: Path) -> bool:
    """Whether the attempt a state file describes is still queued or running."""
    if state.get("state") not in ("submitted", "running"):
        return False
    if state.get("executor") == "slurm" and state.get("job_id"):
        try:
            import submitit

            key = (str(submitit_dir), str(state["job_id"]))
            if key not in _SLURM_JOBS:
                _SLURM_JOBS[key] = submitit.SlurmJob(submitit_dir, key[1])
            return _SLURM_JOBS[key].state.split()[0] in ACTIVE_SLURM
        except Exception:
            return True  # SLURM cannot be asked (e.g. sacct down): do not submit a second copy
    if state.get("host") not in (None, this_host()):
        return True  # another machine's process: it says itself when it ends
    return pid_alive(state.get("pid") or state.get("job_id"))


def failure(state: dict) -> str:
    """How a failed job ended, for messages: why it never ran or was stopped, and its exit code."""
    code = f"exit code {state['rc']}" if state.get("rc") is not None else ""
    return ", ".join(x for x in (state.get("error"), code) if x) or "no exit code"


def job_state(job: Job, sd: SweepDir, default_rounds: Optional[int]) -> dict:
    """{'state': done|running|queued|failed|interrupted|pending, 'done': n, 'total': N|None, ...}."""
    done, total = rounds_of(job, default_rounds)
    st = sd.read_state(job)
    out = {"done": done, "total": total, "log": str(sd.log_path(job)), "rc": st.get("rc"),
           "job_id": st.get("job_id"), "error": st.get("error")}
    if total is not None and done >= total:
        state = "done"
    elif is_active(st, sd.submitit_dir):
        state = "running" if st.get("state") == "running" else "queued"
    elif st.get("state") == "failed":
        state = "failed"
    elif st.get("state") in ("submitted", "running"):
        state = "interrupted"
    else:
        state = "pending"
    out["state"] = state
    return out
