"""The sweep's named values: its executors and the states of its jobs."""
from ..hparams import Choice


class Executor(Choice):
    """Where jobs run (submitit's executor of that name)."""
    LOCAL = "local"
    SLURM = "slurm"


class JobState(Choice):
    """A job's state. A job's own file records its last attempt (SUBMITTED, RUNNING, REQUEUED, STOPPED, FINISHED,
    FAILED); the sweep concludes from that file, the run directory and the scheduler what `lth sweep` and
    `lth status` act on and show (PENDING, QUEUED, RUNNING, INTERRUPTED, FAILED, DONE)."""
    PENDING = "pending"          # nothing runs it and rounds are left
    SUBMITTED = "submitted"      # handed to the executor
    QUEUED = "queued"            # handed to the executor, not training yet
    RUNNING = "running"
    REQUEUED = "requeued"        # reached its time limit and waits to run again
    STOPPED = "stopped"          # the scheduler ended the attempt (SIGTERM)
    INTERRUPTED = "interrupted"  # its process ended without a word (the sweep and its jobs were killed)
    FINISHED = "finished"        # its command exited 0
    FAILED = "failed"
    DONE = "done"                # every round the grid asks for has finished


# What a job's file may say while the job may still run (or run again after a requeue).
LIVE_FILE_STATES = (JobState.SUBMITTED, JobState.RUNNING, JobState.REQUEUED, JobState.STOPPED)
# Concluded states of a job that holds one of the sweep's slots.
ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
# Concluded states of a job the sweep may submit.
SUBMITTABLE_STATES = (JobState.PENDING, JobState.INTERRUPTED, JobState.FAILED)

# SLURM: how many times a crashed rank or a lost node requeues a job (sweep/retries.py)
DEFAULT_RETRIES = 3
