"""Submission and follow-up: `lth sweep CONFIG SWEEP_DIR` runs until no job can progress. What to submit or stop
is the policy's (sweep/policy.py); this module reads the states, submits, stops and reports.

A job that fails is reported with its log and blocks only the random tickets that need its masks; the others go
on. Rerunning the command resubmits what is unfinished.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from ..errors import INTERRUPTED, SweepError
from ..hparams import Ticket
from ..lock import pid_alive
from ..store import RunStore
from . import dense, resources
from .accounting import Accounting
from .config import Job, SweepConfig
from .jobs import JobRun
from .policy import Policy
from .state import SweepDir, failure, followed, job_state, slurm_ids
from .vocabulary import ACTIVE_STATES, SUBMITTABLE_STATES, Executor, JobState


def make_executor(executor: str, params: dict, folder):
    """submitit's AutoExecutor for one set of job parameters (sweep/resources.py vocabulary)."""
    import submitit

    ex = submitit.AutoExecutor(folder=str(folder), cluster=str(executor),
                               slurm_max_num_timeout=resources.max_num_timeout(params))
    try:
        ex.update_parameters(**resources.submitit_params(params, executor, gpus_managed=True))
    except (ValueError, TypeError, NameError, AssertionError) as e:
        raise SweepError(f"executor_params are refused by submitit's {executor} executor: {e}") from None
    return ex


def has_mask(run_dir, k: int) -> bool:
    return RunStore.view(run_dir).has_mask(k)


def dense_done(run_dir) -> bool:
    return RunStore.view(run_dir).round_done(0)


class Sweep:
    """One invocation of `lth sweep`: follows the grid's jobs, submits and stops them as the policy says."""

    def __init__(self, cfg: SweepConfig, sweep_dir, poll_s: float = 1.0, stream=None):
        self.cfg, self.grid, self.poll_s = cfg, cfg.grid, poll_s
        self.policy = Policy(cfg.jobs, cfg.grid.jobs_at_once, has_mask, dense_done)
        self.stream = stream if stream is not None else sys.stderr
        self.sd = SweepDir(sweep_dir)
        self.submitted: Dict[str, object] = {}   # job name -> submitit job, this invocation
        self._last: Dict[str, tuple] = {}
        self._log = None
        self._executors: Dict[str, object] = {}
        self.acct = Accounting(interval_s=max(poll_s, 5.0))
        self.records = {}
        self.pool: Optional[resources.GpuPool] = None
        self.gpus_needed: Dict[str, int] = {}
        self._released = set()  # (job, SLURM job id, mask round) released after a wait for that mask
        self._said_waiting = False  # for the dense rounds of another sweep

    @property
    def local(self) -> bool:
        return self.grid.executor is Executor.LOCAL

    def say(self, msg: str) -> None:
        line = f"[sweep {time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=self.stream, flush=True)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def prepare(self) -> None:
        """Everything that may refuse the grid on this machine, before anything is written: the local GPUs."""
        if self.local:
            gpus = resources.local_pool(j.resources for j in self.cfg.jobs)
            self.pool = resources.GpuPool(gpus)
            self.gpus_needed = {j.name: resources.local_gpus(j.resources, gpus, j.name) for j in self.cfg.jobs}

    def run(self) -> int:
        self.prepare()
        self.sd.open(self.cfg)
        try:
            self._log = open(self.sd.path / "sweep.log", "a")
            n = len(self.cfg.jobs)
            self.say(f"{n} jobs on the {self.grid.executor} executor (at most "
                     f"{self.grid.jobs_at_once or 'all'} at once) in {self.sd.path}; random tickets pipelined "
                     f"behind their winning ticket's masks")
            for line in self._executor_notes():
                self.say(line)
            self.say(dense.summary(self.cfg.jobs, self.grid.share_dense, self.grid.dense_from))
            return self._loop()
        except KeyboardInterrupt:
            self.say("interrupted: jobs already started may still run; the same command follows them again "
                     "and submits what is unfinished")
            return INTERRUPTED
        finally:
            if self._log is not None:
                self._log.close()
            self.sd.close()

    def _executor_notes(self) -> List[str]:
        """What the executor does with the jobs: requeues under SLURM, the GPUs each local job gets."""
        if not self.local:
            return ["a job reaching its time limit is requeued and resumes from its last finished round or "
                    f"checkpoint, while its attempts make progress (up to slurm_max_num_timeout, default "
                    f"{resources.MAX_NUM_TIMEOUT}); preemption requeues it too; a crashed rank or a lost node "
                    f"requeues it at most {self.grid.retries} times (retries)"]
        if not self.pool.gpus:
            return []
        asked = sorted({self.gpus_needed[j.name] for j in self.cfg.jobs})
        default = [j for j in self.cfg.jobs if resources.gpus_asked(j.resources) is None]
        return [f"GPUs {','.join(self.pool.gpus)}: each job gets its own ({' or '.join(map(str, asked))} per job"
                f"{'; 1 where gpus_per_node is not given, 0 runs on the CPU' if default else ''}); a job waits "
                f"for free GPUs"]

    def _executor(self, job: Job):
        key = json.dumps(job.resources, sort_keys=True)
        if key not in self._executors:
            self._executors[key] = make_executor(self.grid.executor, job.resources, self.sd.submitit_dir)
        return self._executors[key]

    def _states(self):
        for job in self.submitted.values():
            if job is not None and self.local:
                job.done()  # lets submitit reap a finished local job
        if not self.local:
            self.records = self.acct.refresh(slurm_ids([self.sd.read_state(j) for j in self.cfg.jobs]))
        states = {j.name: job_state(j, self.sd, self.grid.rounds, self.records) for j in self.cfg.jobs}
        if self.pool is not None:
            active = {n for n, s in states.items() if s["state"] in ACTIVE_STATES}
            self.pool.keep_only(active)
            for n in active:  # jobs of an earlier invocation keep their GPUs
                if n not in self.pool.in_use and states[n].get("gpus"):
                    self.pool.in_use[n] = list(states[n]["gpus"])
        return states

    def _report_changes(self, states) -> None:
        changed = False
        for j in self.cfg.jobs:
            s = states[j.name]
            key = (s["state"], s["done"], s["requeues"], s["retries"])
            if self._last.get(j.name) == key:
                continue
            changed = True
            self._last[j.name] = key
            rounds = f"{s['done']}/{s['total'] if s['total'] is not None else '?'} rounds"
            extra = ""
            if s["requeues"]:
                extra += f", requeued {s['requeues']}x"
            if s["retries"]:
                extra += f" ({s['retries']} of {self.grid.retries} retries after a crash or node loss)"
            if s["state"] == JobState.FAILED:
                extra += f" ({failure(s)}); log: {s['log']}"
            self.say(f"{j.name}: {s['state']}, {rounds}{extra}")
        if changed:
            counts: Dict[str, int] = {}
            for s in states.values():
                counts[s["state"]] = counts.get(s["state"], 0) + 1
            self.say(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" of {len(states)} jobs")

    def _stop(self, states) -> None:
        """Stop the jobs the policy says to stop (the next run of the same command resubmits them)."""
        for job, why in self.policy.to_stop(states, self.submitted):
            try:
                rc = self._cancel(job)
            except Exception as e:  # scancel missing or refused: say so, the job ends at its wait timeout
                self.say(f"{job.name}: could not stop it ({e}); {why}")
                continue
            self.sd.write_state(job, state=JobState.FAILED, rc=rc, error=f"stopped: {why}",
                                executor=self.grid.executor, job_id=states[job.name].get("job_id"), by_sweep=True)
            states[job.name] = dict(states[job.name], state=JobState.FAILED, rc=rc, error=f"stopped: {why}")
            self.say(f"{job.name}: stopped, {why}")

    def _release(self, states) -> None:
        """Release the random tickets that gave their nodes back while waiting for a mask (requeued held,
        sweep/jobs.py) once their winning ticket has it, or is done."""
        for job in self.cfg.jobs:
            if job.winning is None or states[job.name]["state"] != JobState.QUEUED:
                continue
            st = self.sd.read_state(job)
            k, job_id = st.get("held_for_mask"), st.get("job_id")
            wt = self.cfg.job(job.winning)
            if k is None or (job.name, job_id, k) in self._released:
                continue
            if not (has_mask(wt.run_dir, k) or states[wt.name]["state"] == JobState.DONE):
                continue
            p = subprocess.run(["scontrol", "release", str(job_id)], capture_output=True, text=True, timeout=60)
            self._released.add((job.name, job_id, k))
            self.say(f"{job.name}: " + (f"released (job {job_id}): the mask of round {k} exists" if p.returncode == 0
                                        else f"`scontrol release {job_id}` failed: {(p.stderr or p.stdout).strip()}"))

    def _cancel(self, job) -> Optional[int]:
        """Stop a job; returns the exit code its training process recorded, if any. A local job's training
        process is sent SIGTERM: submitit's local cancel sends SIGINT, which a sweep started in the background or
        under nohup ignores (and so do its jobs), and its job process bypasses SIGTERM. A SLURM job is cancelled
        (SIGTERM to its processes, which record it)."""
        st = self.sd.read_state(job)
        if not self.local:
            subprocess.run(["scancel", str(st["job_id"])], check=True, capture_output=True, timeout=60)
        else:
            child = st.get("child_pid")
            if child is not None and pid_alive(child):
                os.kill(int(child), signal.SIGTERM)
        waiting = (JobState.SUBMITTED, JobState.RUNNING) if self.local else (JobState.RUNNING,)
        deadline = time.time() + 15  # the job records how its training process ended
        while time.time() < deadline and self.sd.read_state(job).get("state") in waiting:
            time.sleep(0.1)
        return self.sd.read_state(job).get("rc")

    def _loop(self) -> int:
        while True:
            states = self._states()
            self._stop(states)
            self._release(states)
            self._report_changes(states)
            slots = self.policy.free_slots(states)
            started = 0
            for job in self.policy.to_submit(states, self.submitted):
                if slots <= 0:
                    break
                if self._submit(job):
                    slots -= 1
                    started += 1
            if started == 0 and not any(s["state"] in ACTIVE_STATES for s in states.values()) \
                    and not self._other_sweep_trains(states):
                return self._finish(self._states())
            time.sleep(self.poll_s)

    def _other_sweep_trains(self, states) -> bool:
        """Whether jobs wait for dense rounds of the sweep `dense_from` names while an `lth sweep` follows it (it
        will train them): then this sweep waits too instead of ending."""
        other = self.grid.dense_from
        waiting = other is not None and any(
            j.dense_from and j.dense_from.startswith(f"{other}:") and states[j.name]["state"] in SUBMITTABLE_STATES
            and j.name not in self.submitted and not dense_done(j.dense_dir) for j in self.cfg.jobs)
        if not (waiting and followed(other)):
            return False
        if not self._said_waiting:
            self._said_waiting = True
            self.say(f"waiting for dense rounds of the sweep {other}, which another `lth sweep` follows")
        return True

    def _submit(self, job) -> bool:
        """Submit `job`; False when it must wait (its GPUs are taken)."""
        sd = self.sd
        gpus = None
        if self.local:
            gpus = self.pool.take(job.name, self.gpus_needed[job.name])
            if gpus is None:
                return False
        log, state = str(sd.log_path(job)), str(sd.state_path(job))
        executor = self._executor(job)
        executor.update_parameters(name=f"lth-{job.file_stem}"[:120])
        run = JobRun(job.name, job.command(), log, state, self.grid.executor, run_dir=str(job.run_dir),
                     checkpoints=job.checkpoints,
                     masks_from=str(self.cfg.job(job.winning).run_dir) if job.winning else None,
                     first_round=Ticket(job.ticket).first_round,
                     time_limit_min=resources.time_limit_min(job.resources, self.grid.executor), gpus=gpus,
                     port=job.port, retries=self.grid.retries, idle_s=self.grid.max_idle_s)
        t0 = time.time()
        try:
            sj = executor.submit(run)
        except Exception as e:  # sbatch refused the job, the folder is unwritable, ...
            sd.write_state(job, state=JobState.FAILED, rc=None, error=str(e), executor=self.grid.executor)
            self.submitted[job.name] = None
            self.say(f"{job.name}: submission failed: {e}")
            return True
        self.submitted[job.name] = sj
        if sd.read_state(job).get("time", 0) < t0:  # unless the job has already written its own state
            sd.write_state(job, state=JobState.SUBMITTED, job_id=str(sj.job_id), pid=_local_pid(sj), submitted=t0,
                           executor=self.grid.executor, gpus=gpus, port=job.port)
        where = f", GPUs {','.join(gpus)}" if gpus else ""
        self.say(f"{job.name}: submitted (job {sj.job_id}{where}), log: {log}")
        return True

    def _finish(self, states) -> int:
        failed, rest = self.policy.not_done(states, self.submitted)
        self.say(f"finished: {sum(1 for s in states.values() if s['state'] == JobState.DONE)} of {len(states)} "
                 f"jobs done")
        for n in failed:
            self.say(f"FAILED {n} ({failure(states[n])}); log: {states[n]['log']}")
        for n, why in rest:
            self.say(f"not run {n}: {why}")
        if failed or rest:
            self.say(f"{len(failed)} failed, {len(rest)} not run; fix the cause and run the same command again "
                     f"(finished rounds are kept)")
            return 1
        return 0

    def dry_run(self, verbose: bool = False) -> int:
        """Print the grid's shape, its resources and what this machine lacks for it, then (`verbose`) every job
        with its command, resources and run directory; submit and write nothing. Every job's arguments were
        checked by its framework's own parser when the config was loaded."""
        out = self.stream
        try:
            self.prepare()
            lacking = None
        except SweepError as e:  # a preview of a grid for another machine: said, not refused
            lacking = str(e)
            self.pool, self.gpus_needed = resources.GpuPool([]), {}
        self.sd.plan(self.cfg)
        exists = (self.sd.path / "sweep.json").is_file()
        states = {}
        if exists:
            records = None if self.local else Accounting(0).refresh(
                slurm_ids([self.sd.read_state(j) for j in self.cfg.jobs]))
            states = {j.name: job_state(j, self.sd, self.grid.rounds, records) for j in self.cfg.jobs}
        for line in self._summary(states, lacking):
            print(line, file=out)
        if not verbose:
            print("(--verbose lists every job with its command)", file=out)
            return 0
        for j in self.cfg.jobs:
            s = states.get(j.name)
            note = f"{s['state']}, {s['done']}/{s['total'] if s['total'] is not None else '?'} rounds" if s \
                else "new"
            if s and s["state"] in (JobState.DONE, *ACTIVE_STATES):
                note += " (not submitted)"
            elif j.winning:
                note += f" (submitted once {j.winning} has written its first mask)"
            elif j.dense_from:
                note += f" (submitted once {j.dense_from} has finished its dense round)"
            res = resources.describe(j.resources, self.grid.executor)
            if self.local and j.name in self.gpus_needed:
                res += f"; GPUs: {self.gpus_needed[j.name] or 'none (CPU)'}"
            print(f"\n{j.name}: {note}", file=out)
            print(f"  run dir:   {j.run_dir}", file=out)
            print(f"  resources: {res}", file=out)
            if dense.describe(j, self.cfg.jobs):
                print(f"  dense:     {dense.describe(j, self.cfg.jobs)}", file=out)
            if j.port is not None:
                print(f"  port:      {j.port} (MASTER_PORT{', ' + j.port_flag if j.port_flag else ''})", file=out)
            print(f"  command:   {shlex.join(j.command())}", file=out)
        return 0

    def _summary(self, states: dict, lacking: Optional[str]) -> List[str]:
        """The grid on one screen: its shape, the resources its jobs ask, where the sweep stands, what this machine
        lacks."""
        jobs = self.cfg.jobs

        def axis(name, values):
            values = list(dict.fromkeys(values))
            return f"{len(values)} {name}{'s' * (len(values) != 1)} ({', '.join(map(str, values))})"

        tasks = [f"{j.framework}:{j.task}" for j in jobs]
        lines = [f"{len(jobs)} jobs = " + " x ".join([axis("task", tasks), axis("ablation", [j.ablation for j in jobs]),
                                                     axis("seed", [j.seed for j in jobs]),
                                                     axis("ticket", [j.ticket for j in jobs])]),
                 f"executor {self.grid.executor}, at most {self.grid.jobs_at_once or 'all'} at once; sweep directory "
                 f"{self.sd.path} (dry run: nothing is submitted or written)"]
        asked: Dict[str, int] = {}
        for j in jobs:
            key = resources.describe(j.resources, self.grid.executor)
            asked[key] = asked.get(key, 0) + 1
        lines += [f"resources: {n} job{'s' * (n != 1)} with {r}" for r, n in asked.items()]
        lines += self._executor_notes() if lacking is None else []
        lines.append(dense.summary(jobs, self.grid.share_dense, self.grid.dense_from))
        if states:
            counts: Dict[str, int] = {}
            for s in states.values():
                counts[str(s["state"])] = counts.get(str(s["state"]), 0) + 1
            lines.append("where it stands: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        if lacking:
            lines.append(f"this machine cannot run it: {lacking}")
        return lines


def _local_pid(submitit_job):
    proc = getattr(submitit_job, "_process", None)
    return getattr(proc, "pid", None)


def run_sweep(config_path, sweep_dir, poll_s: float = 1.0, dry_run: bool = False, verbose: bool = False) -> int:
    from .config import load_config

    sweep = Sweep(load_config(config_path, sweep_dir), sweep_dir, poll_s=poll_s,
                  stream=sys.stdout if dry_run else None)
    return sweep.dry_run(verbose=verbose) if dry_run else sweep.run()
