"""The retry budget of a SLURM job: a crashed rank (a CUDA, NCCL or OOM crash: one task's process dies, its node
up) or a lost node requeues the job, at most `budget` times per SLURM job id; the next attempt resumes from the
run's last finished round or checkpoint. Requeues at the time limit and by preemption are not retries: they cost
no work beyond one save interval and are SLURM's own.

Every retry is recorded in the run directory (RUN_DIR/slurm_retries.json: the job, the attempt, what failed), so
that a requeued attempt on another node, `lth status RUN_DIR` and `lth status SWEEP_DIR` read one count. A lost node
is requeued by SLURM itself (`--requeue`, NODE_FAIL); the next attempt counts it from `sacct -D`.
Used by the sweep's jobs (sweep/jobs.py) and by the sbatch recipe (`python -m lth_plugins.sweep.retries`).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..atomic import atomic_write_json
from ..errors import REFUSED
from ..scheduler import duration_s, job_record
from . import accounting
from .vocabulary import DEFAULT_RETRIES as DEFAULT_BUDGET

RECORD = "slurm_retries.json"
# srun's own line for a task that ended badly: "srun: error: NODE: task N: Killed" / "...: Exited with exit code 1"
_TASK_LINE = re.compile(r"srun: error: (\S+): tasks? (\d+)(?:-\d+)?: (.+)")
_NODE_FAILURE = re.compile(r"[Nn]ode failure on (\S+)")
# how a task that SLURM's SIGTERM ended reads there: killed by it, or exited 128 + 15 after saving
_SIGTERM_ENDS = ("Terminated", "Exited with exit code 143")


def read(run_dir) -> List[dict]:
    try:
        data = json.loads((Path(run_dir) / RECORD).read_text())
        return data if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def used(run_dir, job_id: str) -> int:
    """Retries SLURM job `job_id` has used."""
    return sum(1 for r in read(run_dir) if r.get("job") == str(job_id))


def add(run_dir, job_id: str, attempt: int, what: str) -> bool:
    """Record one retry of (job, attempt); False when that attempt is already recorded (two ranks saw it)."""
    records = read(run_dir)
    if any(r.get("job") == str(job_id) and r.get("attempt") == attempt for r in records):
        return False
    records.append({"job": str(job_id), "attempt": attempt, "what": what, "time": time.time()})
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(run_dir) / RECORD, records)
    return True


def describe(run_dir, budget: Optional[int] = None) -> str:
    """'' without retries, else e.g. 'retries 1 (job 12: rank 1 on lth-node2: Killed)'."""
    records = read(run_dir)
    if not records:
        return ""
    last = records[-1]
    of = f" of {budget}" if budget is not None else ""
    return f"retries {len(records)}{of} (last: job {last.get('job')}, attempt {last.get('attempt', 0) + 1}: " \
           f"{last.get('what')})"


def node_losses(job_id: str) -> List[int]:
    """The attempts (0, 1, ...) of `job_id` that SLURM ended with NODE_FAIL (`sacct -D`); [] without sacct."""
    record = (accounting.query([job_id]) or {}).get(str(job_id))
    return [i for i, s in enumerate(record.attempts) if s == "NODE_FAIL"] if record else []


def count_node_losses(run_dir, job_id: str, attempt: int) -> None:
    """At the start of attempt `attempt`: record every earlier attempt a lost node ended (SLURM requeued it)."""
    for i in node_losses(job_id):
        if i < attempt:
            add(run_dir, job_id, i, "node loss (NODE_FAIL): SLURM requeued the job")


def over_budget(run_dir, job_id: str, budget: int) -> Optional[str]:
    """At an attempt's start: why it must not run (the retries used exceed the budget), else None."""
    n = used(run_dir, job_id)
    if n <= budget:
        return None
    last = read(run_dir)[-1]
    return (f"SLURM job {job_id}: {last['what']} (attempt {last.get('attempt', 0) + 1}); the retry budget of "
            f"{budget} is spent ({n} retries): not run again. Resubmit to resume from the last checkpoint")


def crashed_task(srun_text: str) -> Tuple[Optional[int], str]:
    """(rank, how) of the first task srun reports ended badly, from its stderr; (None, why) when none is named."""
    for line in srun_text.splitlines():
        m = _NODE_FAILURE.search(line)
        if m:
            return None, f"node failure on {m.group(1)}"
        m = _TASK_LINE.search(line)
        if m:
            return int(m.group(2)), f"rank {m.group(2)} on {m.group(1)}: {m.group(3).strip()}"
    return None, ""


def stopped_by_sigterm(srun_text: str) -> bool:
    """Whether every task srun reports ended badly was ended by a SIGTERM: a preemption with a grace time signals
    the tasks first and the batch script only at the grace's end, when SLURM requeues or ends the job itself."""
    ends = [m.group(3).strip() for m in map(_TASK_LINE.search, srun_text.splitlines()) if m]
    return bool(ends) and all(end in _SIGTERM_ENDS for end in ends)


def _clock(value: str) -> Optional[float]:
    try:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # Unknown, None
        return None


def grace_left_s(job_id: str) -> Optional[float]:
    """Seconds until the end SLURM set for the job when that end comes before its time limit's: a preemption's
    grace time (SLURM moves the end to now + GraceTime); None otherwise (a requeue, a cancel, no answer)."""
    rec = job_record(job_id)
    end, start, limit = _clock(rec.get("EndTime", "")), _clock(rec.get("StartTime", "")), duration_s(
        rec.get("TimeLimit"))
    now = time.time()
    if end is None or end <= now or (start is not None and limit is not None and end >= start + limit - 1):
        return None
    return end - now


def wait_for_slurm(job_id: str, margin_s: float = 120) -> bool:
    """Within a preemption's grace time, wait while SLURM ends the job at the grace's end (it signals this process
    too), up to `margin_s` past it; whether there was a grace time to wait out."""
    left = grace_left_s(job_id)
    if left is None:
        return False
    time.sleep(left + margin_s)
    return True


def remove(run_dir, job_id: str, attempt: int) -> None:
    records = [r for r in read(run_dir) if not (r.get("job") == str(job_id) and r.get("attempt") == attempt)]
    atomic_write_json(Path(run_dir) / RECORD, records)


def requeue(job_id: str) -> Optional[str]:
    """`scontrol requeue JOB`; the error text, or None when SLURM took it (scontrol killed by a signal: SLURM is
    ending the job's processes, it took the requeue)."""
    try:
        p = subprocess.run(["scontrol", "requeue", str(job_id)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if p.returncode <= 0 else (p.stderr or p.stdout).strip() or f"exit code {p.returncode}"


def after_crash(run_dir, job_id: str, attempt: int, budget: int, what: str) -> Tuple[bool, str]:
    """A rank crashed (`what` names it): requeue the job when the budget allows. (requeued, message)."""
    n = used(run_dir, job_id)
    if n >= budget:
        return False, (f"SLURM job {job_id}: {what}; retry budget {budget} spent ({n} retries used): not "
                       f"requeued. Resubmit to resume from the last checkpoint, or raise the budget")
    # recorded first: SLURM ends every process of the job as it requeues it, scontrol and this one included
    added = add(run_dir, job_id, attempt, what)
    err = requeue(job_id)
    if err is not None:  # SLURM refused, e.g. it already ends or requeues the job (time limit, node failure, cancel)
        if added:
            remove(run_dir, job_id, attempt)
        return False, f"SLURM job {job_id}: {what}; `scontrol requeue {job_id}` failed: {err}"
    return True, (f"SLURM job {job_id}: {what}; requeued (retry {used(run_dir, job_id)} of {budget}): the next "
                  f"attempt resumes from the last checkpoint")


def main(argv=None) -> int:
    """The sbatch recipe's side: `start` before srun (count node losses, refuse an attempt over the budget),
    `crashed` after a failed srun (requeue within the budget, or fail naming the rank and the budget)."""
    p = argparse.ArgumentParser(prog="python -m lth_plugins.sweep.retries", description=main.__doc__)
    p.add_argument("action", choices=("start", "crashed"))
    p.add_argument("--run-dir", required=True)
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET)
    p.add_argument("--srun-stderr", help="crashed: a file with srun's stderr (names the failed task)")
    p.add_argument("--rc", type=int, default=1, help="crashed: srun's exit code")
    a = p.parse_args(argv)
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        print("retries: not in a SLURM job (SLURM_JOB_ID unset)", file=sys.stderr)
        return 2
    attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    if a.action == "start":
        count_node_losses(a.run_dir, job, attempt)
        why = over_budget(a.run_dir, job, a.budget)
        if why:
            print(f"[lth] {why}", file=sys.stderr, flush=True)
            return 1
        return 0
    text = Path(a.srun_stderr).read_text(errors="replace") if a.srun_stderr else ""
    rank, what = crashed_task(text)
    if what.endswith(f"exit code {REFUSED}") or (not what and a.rc == REFUSED):  # refused settings: no crash
        print(f"[lth] SLURM job {job}: {what or 'the command'} refused its settings (see above): not a crash, not "
              f"requeued", file=sys.stderr, flush=True)
        return 1
    if stopped_by_sigterm(text):
        print(f"[lth] SLURM job {job}: SLURM's SIGTERM ended the ranks (a preemption's grace time): not a crash, no "
              f"retry spent; SLURM requeues or ends the job", file=sys.stderr, flush=True)
        waited = wait_for_slurm(job)
        print(f"[lth] SLURM job {job}: " + ("SLURM did not end the job by the grace's end" if waited else
                                            "no grace time runs (the steps alone were signalled)")
              + "; this attempt ends", file=sys.stderr, flush=True)
        return 1
    if rank is None and what.startswith("node failure"):
        print(f"[lth] SLURM job {job}: {what}: SLURM requeues the job (--requeue); the next attempt counts it",
              file=sys.stderr, flush=True)
        return 0
    requeued, msg = after_crash(a.run_dir, job, attempt, a.budget, what or f"srun exited with code {a.rc}")
    print(f"[lth] {msg}", file=sys.stderr, flush=True)
    return 0 if requeued else 1


if __name__ == "__main__":
    sys.exit(main())
