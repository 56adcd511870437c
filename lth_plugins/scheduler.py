"""What the cluster's scheduler says about a job: whether SLURM still has it (pending, running or requeued).
A run whose process is gone is still alive while its job waits in the queue to be started again."""
import os
import shutil
import subprocess
from typing import Optional

# squeue states of a job that will (again) run; anything else, or no line at all, means it is over
ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                 "SUSPENDED", "RESIZING", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}


def current_job() -> Optional[str]:
    """The SLURM job this process runs in, or None."""
    return os.environ.get("SLURM_JOB_ID") or None


def current_attempt() -> int:
    """Which attempt of its SLURM job this process runs in: 0, then one more at each requeue."""
    count = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(count) if count.isdigit() else 0


def job_active(job_id: Optional[str]) -> Optional[bool]:
    """True while SLURM still has the job, False once it has left the queue, None when SLURM cannot be asked."""
    if not job_id or not shutil.which("squeue"):
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue exits 1 with "Invalid job id specified" for a job that has left the queue
        return False if "Invalid job id" in out.stderr else None
    return any(line.strip() in ACTIVE_STATES for line in out.stdout.splitlines())


def job_record(job_id: Optional[str]) -> dict:
    """`scontrol show job` of the job as {field: value} (TimeLimit, RunTime, Requeue, ...); {} when SLURM cannot
    be asked or does not know the job."""
    if not job_id or not shutil.which("scontrol"):
        return {}
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        return {}
    return dict(field.split("=", 1) for field in out.stdout.split() if "=" in field)


def duration_s(value) -> Optional[float]:
    """Seconds of a SLURM time as sbatch --time reads it (a number or "M" is minutes; "M:S", "H:M:S", "D-H",
    "D-H:M", "D-H:M:S"), which also covers what squeue and scontrol print; None for UNLIMITED or anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 60
    days, _, clock = str(value or "").rpartition("-")
    parts = clock.split(":")
    if not (days == "" or days.isdigit()) or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    numbers = [int(p) for p in parts]
    if days:  # D-H, D-H:M, D-H:M:S
        numbers += [0] * (3 - len(numbers))
    elif len(numbers) == 1:  # minutes
        numbers = [0, numbers[0], 0]
    elif len(numbers) == 2:  # minutes:seconds
        numbers = [0, *numbers]
    hours, minutes, seconds = numbers
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds