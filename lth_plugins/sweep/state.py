"""The sweep directory: what each job has done, is doing, or why it stopped.

    SWEEP_DIR/sweep.json          the grid: its config and jobs (a sweep directory may grow, not change its jobs)
    SWEEP_DIR/sweep.log           the sweep's progress lines
    SWEEP_DIR/jobs/<job>.json     the job's state (submitted / running / requeued / stopped / finished / failed)
                                  and every attempt: where it ran, how it ended, the progress it made
    SWEEP_DIR/logs/<job>.log      the job's command output (every attempt appended)
    SWEEP_DIR/submitit/           submitit's own files (pickled job, its stdout/stderr)
    SWEEP_DIR/runs/...            the run directories (the truth about rounds: `lth status` reads them)
"""
import hashlib
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..atomic import atomic_write_json
from ..errors import SweepError
from ..hparams import Ticket
from ..lock import FileLock, LockBusy, live_holder, pid_alive, this_host
from ..store import RunStore, holds_results
from . import accounting, dense, retries
from .config import Job, SweepConfig
from .vocabulary import LIVE_FILE_STATES, Executor, JobState

SWEEP_FILE = "sweep.json"
SWEEP_LOCK = ".sweep.lock"  # held by the `lth sweep` that follows the directory
# A job SLURM has not listed yet is taken to be queued this long after its submission (accounting lags).
SACCT_GRACE_S = 300
PORTS = (20000, 32768)  # below Linux's ephemeral ports (32768-60999), which outgoing connections take


def is_sweep_dir(path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


class SweepDir:
    def __init__(self, path):
        self.path = Path(path).resolve()
        self._lock = FileLock(self.path / SWEEP_LOCK, f"sweep directory {self.path}")

    # --- the directory and its config ---------------------------------------------------------------
    def jobs(self):
        """The jobs as the sweep expanded them (no framework needed to read them back)."""
        return [Job.from_dict(d) for d in self.read()["jobs"]]

    def read(self) -> dict:
        if not is_sweep_dir(self.path):
            raise SweepError(f"{self.path} is not a sweep directory (no {SWEEP_FILE}); start one with "
                             f"`lth sweep CONFIG {self.path}`")
        return json.loads((self.path / SWEEP_FILE).read_text())

    def plan(self, cfg: SweepConfig) -> None:
        """Check that `cfg` fits this directory, give its jobs their ports and their dense rounds (sweep/dense.py);
        writes nothing. A sweep may grow (seeds, ablations, tickets, tasks, rounds); a job with a result, or
        queued or running, keeps its command; no job is dropped once any job has a result."""
        f = self.path / SWEEP_FILE
        stored: List[Job] = []
        if f.is_file():
            stored = [Job.from_dict(d) for d in json.loads(f.read_text()).get("jobs", [])]
        elif self.path.exists() and any(p.name != SWEEP_LOCK for p in self.path.iterdir()):
            raise SweepError(f"{self.path} is not empty and not a sweep directory; give a new or empty folder")
        started = self._started_jobs(stored)
        kept = {j.name: j for j in stored if j.name in started and j.ticket == Ticket.WINNING}
        other = cfg.grid.dense_from
        others = self._other_sweep_trainers(other) if other else []
        dense.assign(cfg.jobs, cfg.grid.share_dense, kept, others)
        if other:
            dense.check_other_sweep_used(cfg.jobs, kept, others, other)
        if started:
            self._check_growth(stored, cfg, started)
        assign_ports(cfg.jobs, stored, str(self.path))

    def _other_sweep_trainers(self, path: str) -> List[Job]:
        """The jobs of the sweep directory `path` (the grid's `dense_from`) that train a dense round this grid may
        reuse (`dense.trainers_of`). Refused naming the problem when `path` is not another sweep directory."""
        where = Path(path).resolve()
        if where == self.path.resolve():
            raise SweepError(f"dense_from = {path!r} is this sweep directory; name another sweep's")
        if not is_sweep_dir(where):
            raise SweepError(f"dense_from = {path!r}: {where} is not a sweep directory (no sweep.json); give the "
                             f"directory of the sweep whose dense rounds this grid reuses (relative to where `lth "
                             f"sweep` runs)")
        return dense.trainers_of(SweepDir(where).jobs(), path)

    def _started_jobs(self, stored: List[Job]) -> set:
        """The names of the stored jobs that have a result on disk or are queued or running (SLURM asked once)."""
        if not stored:
            return set()
        records = accounting.query(self.read_state(j).get("job_id") for j in stored
                                   if self.read_state(j).get("executor") == Executor.SLURM)
        return {j.name for j in stored if self._started(j, records)}

    def _check_growth(self, stored: List[Job], cfg: SweepConfig, started: set) -> None:
        new = {j.name: j for j in cfg.jobs}
        problems = []
        for old in stored:
            j = new.get(old.name)
            if j is None:
                problems.append(f"{old.name} is not in the config")
            elif old.name in started and j.identity() != j.identity(old.argv):
                problems.append(f"{old.name} would change: {_argv_diff(j.identity(old.argv), j.identity())}")
        problems += _scored_unlike_their_winning_ticket(stored, cfg.jobs, started, cfg.grid.rounds)
        if problems:
            raise SweepError(f"{self.path} holds a sweep whose jobs the config {cfg.path} changes: "
                             f"{'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}. A sweep may grow "
                             f"(seeds, ablations, tickets, tasks, rounds) but keeps its jobs and, once they have a "
                             f"result or run, their settings; use another sweep directory for another grid")

    def open(self, cfg: SweepConfig) -> None:
        """Create the sweep directory for `cfg`, or check that `cfg` fits it (plan); lock it against a second
        sweep process; record the grid."""
        self.plan(cfg)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except LockBusy as e:
            raise SweepError(f"another `lth sweep` ({e.holder.describe()}) is following {self.path}; stop it "
                             f"first or watch it with `lth status {self.path}`") from None
        atomic_write_json(self.path / SWEEP_FILE, {"config_path": str(cfg.path.resolve()), "data": cfg.grid.to_dict(),
                                                   "jobs": [j.to_dict() for j in cfg.jobs]})

    def _started(self, job: Job, records) -> bool:
        """Whether the job has a result on disk or is queued or running."""
        return (job.run_dir.is_dir() and holds_results(job.run_dir)) or is_active(self.read_state(job), records)

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
        return read_state(self.state_path(job))

    def write_state(self, job: Job, **values) -> None:
        """Write the job's state; the attempts the job recorded are kept."""
        old = self.read_state(job)
        keep = {"attempts": old["attempts"]} if "attempts" in old else {}
        atomic_write_json(self.state_path(job), {"job": job.name, **keep, **values, "time": time.time()})


def followed(path) -> bool:
    """Whether an `lth sweep` process follows the sweep directory `path` now."""
    return live_holder(Path(path) / SWEEP_LOCK) is not None


def read_state(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _scored_unlike_their_winning_ticket(stored: List[Job], jobs: List[Job], started: set,
                                        grid_rounds: Optional[int]) -> List[str]:
    """A random ticket with rounds to train would train them (now, or when the sweep submits it again) with the
    config's scoring flags, but its started winning ticket keeps those it started with, and a random ticket must
    be scored as its winning ticket is."""
    had = {j.name: j for j in stored}
    problems = []
    for j in jobs:
        wt = had.get(j.winning)
        if wt is None or j.winning not in started:
            continue
        old, new = j.scoring(wt.argv), j.scoring()
        if old == new:
            continue
        done, total = rounds_of(j, grid_rounds)
        if total is None or done < total:
            problems.append(f"{j.name} would be scored with {_argv_diff(old, new)}, but its winning ticket "
                            f"{wt.name} has started with the old flags (a random ticket is scored as its winning "
                            f"ticket is)")
    return problems


def _argv_diff(a: List[str], b: List[str]) -> str:
    only_a = [x for x in a if x not in b]
    only_b = [x for x in b if x not in a]
    return f"{' '.join(only_a) or '(nothing)'} -> {' '.join(only_b) or '(nothing)'}" if only_a or only_b \
        else "argument order"


def assign_ports(jobs: List[Job], stored: List[Job], salt: str) -> None:
    """Give every job its own distributed port (MASTER_PORT, and the command's port flag when it takes one): a job
    keeps the port it had, a new job gets one no other job of the sweep has (its first choice depends on the sweep
    directory and the job, so two sweeps on one node rarely meet)."""
    had = {j.name: j.port for j in stored if j.port is not None}
    used = set(had.values())
    lo, hi = PORTS
    for j in jobs:
        if j.name in had:
            j.port = had[j.name]
        else:
            port = lo + int(hashlib.sha256(f"{salt}:{j.name}".encode()).hexdigest(), 16) % (hi - lo)
            while port in used:
                port = lo + (port + 1 - lo) % (hi - lo)
            j.port = port
            used.add(port)


# --- what a job's state is -------------------------------------------------------------------------------
def rounds_of(job: Job, grid_rounds: Optional[int]):
    """(rounds done, rounds planned or None) read from the job's run directory. The grid's `rounds`, when it
    gives them, is the plan (a grown grid asks for more than the run has recorded)."""
    store = RunStore.view(job.run_dir)
    first = Ticket(job.ticket).first_round
    if grid_rounds is None:
        return store.progress(None, first=first)
    finished = set(store.finished_rounds())
    return sum(1 for k in range(first, grid_rounds + 1) if k in finished), grid_rounds + 1 - first


def slurm_ids(states: List[dict]) -> List[str]:
    """The SLURM job ids of the states that may still run: a job recorded failed too (SLURM may have requeued it,
    e.g. after a node loss that made the surviving ranks exit 1)."""
    return [s["job_id"] for s in states
            if s.get("executor") == Executor.SLURM and s.get("job_id")
            and s.get("state") in (*LIVE_FILE_STATES, JobState.FAILED)]


def is_active(state: dict, records: Optional[Dict[str, "accounting.SlurmRecord"]] = None) -> bool:
    """Whether the job a state file describes is queued, running, or requeued to run again. `records`: SLURM's
    (accounting.query) for SLURM jobs; None when SLURM could not be asked."""
    slurm = state.get("executor") == Executor.SLURM and state.get("job_id")
    if slurm and records is not None and state.get("state") == JobState.FAILED:
        if state.get("by_sweep"):  # the sweep cancelled it: SLURM may still list it a moment as it ends
            return False
        rec = records.get(str(state["job_id"]))
        return rec is not None and rec.active  # SLURM requeued a job whose attempt recorded a failure
    if state.get("state") not in LIVE_FILE_STATES:
        return False
    if slurm:
        if records is None:
            return True  # SLURM cannot be asked (e.g. sacct down): do not submit a second copy
        rec = records.get(str(state["job_id"]))
        if rec is None:
            return time.time() - state.get("submitted", state.get("time", 0)) < SACCT_GRACE_S
        return rec.active
    if state.get("state") == JobState.STOPPED:
        return False
    if state.get("host") not in (None, this_host()):
        return True  # another machine's process: it says itself when it ends
    return pid_alive(state.get("pid") or state.get("job_id"))


def failure(state: dict) -> str:
    """How a failed job ended, for messages: why it never ran or was stopped, and its exit code."""
    code = f"exit code {state['rc']}" if state.get("rc") is not None else ""
    return ", ".join(x for x in (state.get("error"), code) if x) or "no exit code"


def job_state(job: Job, sd: SweepDir, default_rounds: Optional[int],
              records: Optional[Dict[str, "accounting.SlurmRecord"]] = None) -> dict:
    """{'state': a JobState the sweep concludes (done, running, queued, failed, interrupted, pending), 'done': n,
    'total': N|None, 'scheduler': sacct's word or None, 'requeues': n, ...}."""
    done, total = rounds_of(job, default_rounds)
    st = sd.read_state(job)
    slurm = st.get("executor") == Executor.SLURM
    rec = (records or {}).get(str(st.get("job_id"))) if slurm else None
    attempts = st.get("attempts", [])
    out = {"done": done, "total": total, "log": str(sd.log_path(job)), "rc": st.get("rc"),
           "job_id": st.get("job_id"), "error": st.get("error"), "gpus": st.get("gpus"),
           "scheduler": rec.describe() if rec else None,
           "requeues": rec.requeues if rec else max(0, len([a for a in attempts
                                                            if a.get("job_id") == st.get("job_id")]) - 1),
           "attempts": attempts,
           "retries": retries.used(job.run_dir, st["job_id"]) if slurm and st.get("job_id") else 0}
    if total is not None and done >= total:
        state = JobState.DONE
    elif is_active(st, records if slurm else None):
        running = rec.state == "RUNNING" if rec else st.get("state") == JobState.RUNNING
        state = JobState.RUNNING if running else JobState.QUEUED
    elif st.get("state") == JobState.FAILED:
        state = JobState.FAILED
    elif st.get("state") == JobState.STOPPED or (slurm and st.get("state") in LIVE_FILE_STATES):
        state = JobState.FAILED
        ended = f"ended by SLURM: {rec.detail}" if rec else "ended"
        how = attempts[-1].get("end") if attempts and attempts[-1].get("end") else None
        out["error"] = ", ".join(x for x in (ended if slurm else None, how) if x) or "stopped"
    elif st.get("state") in LIVE_FILE_STATES:
        state = JobState.INTERRUPTED
    else:
        state = JobState.PENDING
    out["state"] = state
    return out
