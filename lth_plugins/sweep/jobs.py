"""What a submitit job runs: one ticket's command, its output appended to the job's log, each attempt recorded.

`JobRun` is a submitit Checkpointable: at the time-limit signal (SLURM's USR2, `slurm_signal_delay_s` before the
limit) submitit calls `checkpoint`, which requeues the job unless its attempts stopped making progress; the next
attempt reruns the framework's resumable command, which continues from the run's last finished round or
checkpoint. The state file records how every attempt ended: finished, failed (exit code), requeued at the time
limit, stopped by the scheduler (SIGTERM: preemption, `scontrol requeue`, scancel, node drain), or, when nothing
was recorded, killed (SIGKILL, node loss; `lth status` adds SLURM's word).

Under SLURM a task whose command crashes (any exit but 0, or 2 for refused settings, that the scheduler did not
cause) requeues the job while its retry budget lasts (`retries`, sweep/retries.py: a crashed rank or a lost node,
per job); past it the job fails naming the rank and the budget. A random ticket that waits for a mask of its
winning ticket longer than `idle_s` (`max_idle_s`) gives its nodes back: requeued held, released by the sweep once
the mask exists.

Under SLURM with several tasks (fairseq's multi-node training: one task per node or per GPU, fairseq reads
SLURM's variables), every task runs the command; task 0 records the state, tasks > 0 log to <job>.rank<N>.log.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Sequence

from submitit.helpers import Checkpointable

from ..atomic import atomic_write_json
from ..children import die_with_parent
from ..errors import REFUSED
from ..store import RunStore
from . import retries as retry_budget
from .state import read_state
from .vocabulary import JobState

# Attempts in a row that reach the time limit without a new finished round or checkpoint before the job is
# stopped instead of requeued: one may be unlucky (SLURM signals up to 30 s early), two mean the limit is shorter
# than one resumable unit.
STALLED_ATTEMPTS = 2
IDLE_POLL_S = 2.0  # how often a random ticket's task 0 looks whether it waits for a mask
REQUEUE_WAIT_S = 120  # after requeueing its job, how long a task waits for SLURM to end it


class JobFailed(RuntimeError):
    pass


class JobStopped(RuntimeError):
    """The scheduler stopped this attempt (SIGTERM); SLURM requeues or ends the job."""


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


def _child_setup(parent: int) -> None:
    # The ticket's process dies with the job's (submitit's timeout or cancel signals only the job's process: an
    # orphan would keep the run's lock and train on). SLURM's time-limit warning (USR2) is the job's to handle:
    # SLURM sends it to every process of the step, and its default action would kill the training at once.
    die_with_parent(signal.SIGTERM, parent)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class JobRun(Checkpointable):
    """One ticket's command as a submitit job, requeued at its time limit while it makes progress."""

    def __init__(self, name: str, argv: List[str], log_path: str, state_path: str, executor: str,
                 run_dir: Optional[str] = None, checkpoints: Sequence[str] = (), masks_from: Optional[str] = None,
                 first_round: int = 0, time_limit_min: float = 0.0, gpus: Optional[List[str]] = None,
                 port: Optional[int] = None, retries: int = retry_budget.DEFAULT_BUDGET,
                 idle_s: Optional[float] = None):
        self.name, self.argv, self.executor = name, list(argv), executor
        self.log_path, self.state_path = log_path, state_path
        self.run_dir, self.checkpoints, self.masks_from = run_dir, list(checkpoints), masks_from
        self.first_round, self.time_limit_min = first_round, time_limit_min
        self.gpus, self.port = gpus, port
        self.retries = retries  # crash and node-loss requeues of the SLURM job
        self.idle_s = idle_s  # a random ticket under SLURM: the most seconds it holds its nodes waiting for a mask
        self.stalled = 0  # attempts in a row that reached the time limit without progress
        self._runtime = None

    def __getstate__(self):  # what a requeued attempt gets: no process, no open file
        d = dict(self.__dict__)
        d["_runtime"] = None
        return d

    # --- progress ---------------------------------------------------------------------------------------
    def resume_points(self):
        """What a rerun resumes from: the finished rounds and the framework's checkpoint files (with mtimes)."""
        if not self.run_dir:
            return None
        path = Path(self.run_dir)
        files = sorted((str(p), p.stat().st_mtime_ns) for pattern in self.checkpoints for p in path.glob(pattern)
                       if p.is_file())
        return tuple(RunStore.view(path).finished_rounds()), tuple(files)

    def _next_round(self) -> int:
        done = set(RunStore.view(self.run_dir).finished_rounds()) if self.run_dir else set()
        k = self.first_round
        while k in done:
            k += 1
        return k

    def _masks_ready(self) -> bool:
        """A random ticket: whether the winning ticket's mask of the round it trains next is there."""
        return self.masks_from is None or RunStore.view(self.masks_from).has_mask(self._next_round())

    # --- the attempt's record -----------------------------------------------------------------------------
    def _record(self, **values) -> None:
        rt = self._runtime
        if rt is None or rt["rank"] != 0:
            return
        old = read_state(self.state_path)
        attempts = old.get("attempts", [])
        if attempts and attempts[-1].get("attempt_id") == rt["attempt_id"]:
            attempts[-1].update(values.pop("attempt", {}))
        else:
            attempts.append(values.pop("attempt", {}))
        atomic_write_json(self.state_path, {**rt["base"], "submitted": old.get("submitted"), **values,
                                            "attempts": attempts, "time": time.time()})

    def _start_record(self) -> None:
        rt = self._runtime
        if rt["rank"] != 0:
            return
        old = read_state(self.state_path)
        attempts = old.get("attempts", [])
        last = attempts[-1] if attempts else None
        if last is not None and "end" not in last:
            last["end"] = "killed (no word from it: SIGKILL or node loss)"
        if attempts:
            atomic_write_json(self.state_path, {**old, "attempts": attempts})

    # --- the job --------------------------------------------------------------------------------------------
    def __call__(self) -> int:
        rank = _task_rank()
        log = Path(self.log_path) if rank == 0 else Path(self.log_path).with_suffix(f".rank{rank}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        job_id = os.environ.get("SLURM_JOB_ID", "")
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        me = os.getpid()
        base = {"job": self.name, "executor": self.executor, "host": host, "log": str(log), "pid": me,
                "job_id": job_id or os.environ.get("SUBMITIT_LOCAL_JOB_ID", ""), "gpus": self.gpus,
                "port": self.port}
        self._runtime = rt = {"rank": rank, "base": base, "attempt_id": f"{job_id or me}.{attempt}.{time.time()}",
                              "started": time.time(), "stopped_by": None, "proc": None}
        self._start_record()
        if job_id and self.run_dir:
            if rank == 0:
                retry_budget.count_node_losses(self.run_dir, job_id, attempt)
            why = retry_budget.over_budget(self.run_dir, job_id, self.retries)
            if why:
                self._record(state=JobState.FAILED, rc=None, error=why, ended=time.time(),
                             attempt={"attempt_id": rt["attempt_id"], "job_id": job_id, "host": host,
                                      "started": rt["started"], "end": "retry budget spent", "ended": time.time()})
                raise JobFailed(why)
        rt["points"], rt["masks_ready"] = self.resume_points(), self._masks_ready()

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("OMP_NUM_THREADS", "1")
        if self.gpus is not None:  # the local executor's GPUs for this job; under SLURM, SLURM's
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        if self.port is not None:
            env["MASTER_PORT"] = str(self.port)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            with open(log, "a") as out:
                where = f"{host}, job {job_id}, attempt {attempt + 1}" if job_id else f"{host}"
                out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {self.name} on {where} (pid {me}, GPUs "
                          f"{env.get('CUDA_VISIBLE_DEVICES', 'as given')}, port {self.port or '-'}): "
                          f"{' '.join(self.argv)}\n")
                out.flush()
                proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        preexec_fn=lambda: _child_setup(me))
                rt["proc"] = proc
                try:
                    self._record(state=JobState.RUNNING, child_pid=proc.pid, started=rt["started"],
                                 attempt={"attempt_id": rt["attempt_id"], "job_id": base["job_id"], "host": host,
                                          "started": rt["started"]})
                    rc = self._wait(proc, job_id, rank, out)
                    if rc < 0 and job_id and rt["stopped_by"] is None:
                        time.sleep(1.0)  # SLURM signals every process of the step: ours may come a moment later
                except BaseException:
                    _stop(proc)
                    raise
                out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} exit code {rc}\n")
        finally:
            signal.signal(signal.SIGTERM, previous)
        # The training has ended: a time-limit warning arriving now has nothing to requeue (with the default
        # action it would kill this process on its way out and SLURM would call the job FAILED).
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        ended = time.time()
        if rt.get("held_for_mask") is not None:
            k = rt["held_for_mask"]
            self._record(state=JobState.REQUEUED, rc=rc, ended=ended, held_for_mask=k,
                         attempt={"end": f"waited {self.idle_s:g} s for mask {k}: gave its nodes back, requeued held",
                                  "ended": ended, "rc": rc})
            raise JobStopped(f"{self.name}: requeued held until the mask of round {k} exists")
        if rt["stopped_by"] is not None:
            self._record(state=JobState.STOPPED, rc=rc, ended=ended,
                         attempt={"end": f"stopped by {rt['stopped_by']}", "ended": ended, "rc": rc})
            if job_id:
                # A preemption's GraceTime signals the tasks first: a task that ended now would end the job, which
                # SLURM would then not requeue. It ends this attempt itself at the grace's end.
                retry_budget.wait_for_slurm(job_id)
            raise JobStopped(f"{self.name}: stopped by {rt['stopped_by']} (exit code {rc})")
        if rc not in (0, REFUSED) and job_id and self.run_dir:
            self._crashed(rank, host, job_id, attempt, rc, ended, log)
        self._record(state=JobState.FINISHED if rc == 0 else JobState.FAILED, rc=rc, ended=ended,
                     attempt={"end": "finished" if rc == 0 else f"exit code {rc}", "ended": ended, "rc": rc})
        if rc != 0:
            raise JobFailed(f"{self.name} exited with code {rc}; log: {log}")
        return rc

    def _wait(self, proc: subprocess.Popen, job_id: str, rank: int, out) -> int:
        """The command's exit code. A random ticket under SLURM that has waited longer than `idle_s` for a mask of
        its winning ticket gives its nodes back: its task 0 requeues the job held (`scontrol requeuehold`), and the
        sweep releases it once the mask exists (sweep/runner.py)."""
        if not (job_id and self.masks_from and rank == 0 and self.idle_s):
            return proc.wait()
        rt = self._runtime
        since = None
        while True:
            try:
                return proc.wait(timeout=IDLE_POLL_S)
            except subprocess.TimeoutExpired:
                pass
            if self._masks_ready() or rt["stopped_by"] is not None:
                since = None
                continue
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since < self.idle_s:
                continue
            k = self._next_round()
            rt["held_for_mask"], rt["stopped_by"] = k, f"its wait for mask {k}"
            p = subprocess.run(["scontrol", "requeuehold", job_id], capture_output=True, text=True, timeout=60)
            out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} waited {self.idle_s:g} s for the mask of round {k} "
                      f"of {self.masks_from}: " + ("gave the nodes back; requeued held until it exists\n"
                                                  if p.returncode == 0 else
                                                  f"`scontrol requeuehold` failed: {(p.stderr or p.stdout).strip()}\n"))
            out.flush()
            if p.returncode != 0:  # keep the allocation; try again after another idle_s
                rt["held_for_mask"], rt["stopped_by"], since = None, None, None

    def _crashed(self, rank: int, host: str, job_id: str, attempt: int, rc: int, ended: float, log: Path) -> None:
        """This task's command crashed under SLURM: requeue the job within its retry budget (then wait for SLURM to
        end this attempt), or fail naming the rank and the budget."""
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 and -rc in signal.valid_signals() else \
            f"exit code {rc}"
        requeued, msg = retry_budget.after_crash(self.run_dir, job_id, attempt, self.retries,
                                                 f"rank {rank} on {host}: {how}")
        with open(log, "a") as out:
            out.write(f"=== {msg}\n")
        if not requeued:
            self._record(state=JobState.FAILED, rc=rc, error=msg, ended=ended,
                         attempt={"end": f"{how}: not requeued", "ended": ended, "rc": rc})
            raise JobFailed(msg)
        self._record(state=JobState.REQUEUED, rc=rc, ended=ended,
                     attempt={"end": f"{how}: requeued (retry)", "ended": ended, "rc": rc})
        time.sleep(REQUEUE_WAIT_S)  # SLURM ends every task of the requeued job
        raise JobStopped(f"{self.name}: requeued after {how}, but this task was not ended in {REQUEUE_WAIT_S} s")

    def _on_sigterm(self, signum, frame) -> None:
        """The scheduler ends this attempt (preemption, requeue, cancel, the time limit itself): the training
        process gets SIGTERM too (SLURM signals the step; locally we forward it); record how it ended."""
        rt = self._runtime
        if rt is None:
            return
        if rt["stopped_by"] is None:
            rt["stopped_by"] = "SIGTERM"
        proc = rt.get("proc")
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def checkpoint(self, *args, **kwargs):
        """Called by submitit at the time-limit signal: requeue (return the job itself), or stop a job whose
        attempts no longer make progress (return None; submitit then ends it)."""
        rt = self._runtime
        if rt is None:  # the signal came before the command started: nothing to judge
            return super().checkpoint(*args, **kwargs)
        now = time.time()
        ran_s = now - rt["started"]
        limit_s = self.time_limit_min * 60
        points = self.resume_points()
        progressed = points != rt["points"]
        # submitit's own rule for "timed out" (vs preempted early)
        timed_out = limit_s <= 0 or ran_s >= min(0.8 * limit_s, limit_s - 600)
        waited = not rt["masks_ready"]
        self.stalled = 0 if progressed or waited or not timed_out else self.stalled + 1
        redone = self._redone_s(now)
        attempt = {"ended": now, "ran_s": round(ran_s, 1), "progress": progressed, "redone_s": redone}
        if self.stalled >= STALLED_ATTEMPTS:
            msg = (f"no progress in {self.stalled} attempts in a row: each reached the time limit "
                   f"({self.time_limit_min:g} min) before finishing a round or writing a checkpoint. Raise the "
                   f"time limit (timeout_min) above the time of one round, or checkpoint more often")
            self._record(state=JobState.FAILED, rc=None, error=msg, ended=now, attempt=dict(attempt, end="no progress"))
            return None
        self._record(state=JobState.REQUEUED, ended=now, attempt=dict(attempt, end="time limit: requeued"))
        return super().checkpoint(*args, **kwargs)

    def _redone_s(self, now: float) -> Optional[float]:
        """Seconds of training since the last resume point (or the attempt's start): what the next attempt
        trains again."""
        rt = self._runtime
        newest = rt["started"]
        if self.run_dir:
            store = RunStore.view(self.run_dir)
            for k in store.finished_rounds():
                try:
                    newest = max(newest, store.metrics_path(k).stat().st_mtime)
                except OSError:
                    pass
            for pattern in self.checkpoints:
                for p in Path(self.run_dir).glob(pattern):
                    newest = max(newest, p.stat().st_mtime)
        return round(now - newest, 1)


def run_job(name: str, argv: List[str], log_path: str, state_path: str, executor: str, job_id: str = "") -> int:
    """Run one command as a job without a run directory to follow (no requeue bookkeeping)."""
    return JobRun(name, argv, log_path, state_path, executor)()
