"""What the sweep does next, given its jobs' states: which jobs to submit, which to stop, what is left undone.

No I/O: the states come from `state.job_state`, the winning tickets' masks are asked through `has_mask`.
* Only unfinished jobs are submitted (a job another process still runs is followed, not submitted again), at most
  `jobs_at_once` at once, each at most once per invocation (a job that failed is not retried in it).
* A random ticket is submitted once its winning ticket's mask 1 exists (its round k waits inside the job for the
  winning ticket's mask k): it runs pipelined behind the winning ticket.
* A winning ticket that reuses another job's dense round (sweep/dense.py) is submitted once that round has
  finished: it never waits for it inside its allocation.
* A random ticket whose winning ticket failed in this invocation is stopped once it needs a mask that will not
  come (it would otherwise hold its slot until its mask wait ends).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Dict, List, Optional, Tuple

from .config import Job
from .vocabulary import ACTIVE_STATES, SUBMITTABLE_STATES, JobState

States = Dict[str, dict]  # job name -> state.job_state(...)


@dataclass
class Policy:
    jobs: List[Job]
    jobs_at_once: Optional[int]               # None: every job at once
    has_mask: Callable[[Path, int], bool]     # whether a run directory holds round k's mask
    dense_done: Callable[[Path], bool]        # whether a run directory's dense round 0 has finished

    def __post_init__(self):
        self._by_name = {j.name: j for j in self.jobs}

    def blocked_by(self, job: Job, states: States, submitted: Collection[str]) -> Optional[str]:
        """Why a job cannot start yet (None: it can); `submitted`: the jobs submitted in this invocation."""
        if job.dense_from is not None:
            return self._dense_blocked_by(job, states, submitted)
        if job.winning is None:
            return None
        wt = self._by_name[job.winning]
        ws = states[wt.name]["state"]
        if ws == JobState.DONE:
            return None
        if ws == JobState.FAILED and wt.name in submitted:
            return f"its winning ticket {wt.name} failed"
        if ws in ACTIVE_STATES and self.has_mask(wt.run_dir, 1):
            return None
        return "waiting"

    def _dense_blocked_by(self, job: Job, states: States, submitted: Collection[str]) -> Optional[str]:
        """Why a winning ticket that reuses another job's dense round cannot start yet (None: it can)."""
        if self.dense_done(job.run_dir) or self.dense_done(Path(job.dense_dir)):
            return None
        source = self._by_name.get(job.dense_from)
        if source is None:
            return f"waiting for the dense round of {job.dense_from} (another sweep's job: run that sweep)"
        if states[source.name]["state"] == JobState.FAILED and source.name in submitted:
            return f"{source.name}, whose dense round it reuses, failed"
        return f"waiting for the dense round of {source.name}"

    def to_stop(self, states: States, submitted: Collection[str]) -> List[Tuple[Job, str]]:
        """[(random ticket, why)] whose winning ticket failed in this invocation before the mask it needs next."""
        out = []
        for job in self.jobs:
            if job.winning is None or states[job.name]["state"] not in ACTIVE_STATES:
                continue
            wt = self._by_name[job.winning]
            if states[wt.name]["state"] != JobState.FAILED or wt.name not in submitted:
                continue
            k = states[job.name]["done"] + 1  # the round it trains, or waits for the mask of
            if not self.has_mask(wt.run_dir, k):
                out.append((job, f"its winning ticket {wt.name} failed before the mask of round {k}"))
        return out

    def free_slots(self, states: States) -> int:
        active = sum(1 for s in states.values() if s["state"] in ACTIVE_STATES)
        return (self.jobs_at_once or len(self.jobs)) - active

    def to_submit(self, states: States, submitted: Collection[str]) -> List[Job]:
        """The jobs that may be submitted now, in the grid's order (the caller takes as many as free_slots)."""
        return [j for j in self.jobs if states[j.name]["state"] in SUBMITTABLE_STATES and j.name not in submitted
                and self.blocked_by(j, states, submitted) is None]

    def not_done(self, states: States, submitted: Collection[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
        """At the end: (failed jobs, [(job not run, why)])."""
        failed = [j.name for j in self.jobs if states[j.name]["state"] == JobState.FAILED]
        rest = [(j.name, self.blocked_by(j, states, submitted) or str(states[j.name]["state"])) for j in self.jobs
                if states[j.name]["state"] not in (JobState.DONE, JobState.FAILED)]
        return failed, rest
