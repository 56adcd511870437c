"""What a submitit job runs: one ticket's command, its output appended to the job's log, its state recorded.

Under SLURM with several tasks (fairseq's multi-node training: one task per node or per GPU, fairseq reads
SLURM's variables), every task runs the command; task 0 records the state, tasks > 0 log to <job>.rank<N>.log.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List

from ..atomic import atomic_write_json
from ..children import die_with_parent


class JobFailed(RuntimeError):
    pass


def _task_rank() -> int:
    for var in ("SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID", "SUBMITIT_GLOBAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_job(name: str, argv: List[str], log_path: str, state_path: str, executor: str, job_id: str = "") -> int:
    rank = _task_rank()
    log = Path(log_path) if rank == 0 else Path(log_path).with_suffix(f".rank{rank}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    base = {"job": name, "executor": executor, "host": socket.gethostname(), "log": str(log),
            "job_id": os.environ.get("SLURM_JOB_ID") or job_id}

    def record(**values):
        if rank == 0:
            atomic_write_json(state_path, {**base, **values, "time": time.time()})

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    me = os.getpid()
    with open(log, "a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {name} on {base['host']} (pid {me}): "
                  f"{' '.join(argv)}\n")
        out.flush()
        # The ticket's process dies with this one, and stops when this one is stopped (submitit's timeout or
        # cancel signals only this process): an orphan would keep the run's lock and train beyond the job.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=lambda: die_with_parent(signal.SIGTERM, me))
        try:
            record(state="running", pid=me, child_pid=proc.pid, started=time.time())
            rc = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} exit code {rc}\n")
    record(state="finished" if rc == 0 else "failed", rc=rc, ended=time.time())
    if rc != 0:
        raise JobFailed(f"{name} exited with code {rc}; log: {log}")
    return rc

