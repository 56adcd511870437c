"""Submission and follow-up: `lth sweep CONFIG SWEEP_DIR` runs until no job can progress.

* Only unfinished jobs are submitted (a job's run directory says which rounds are done; a job another process
  still runs is followed, not submitted again), at most `max_parallel` at once.
* A random ticket is submitted once its winning ticket's mask 1 exists, and its round k waits inside the job for
  the winning ticket's mask k (the core's `--lottery-mask-wait`): it runs pipelined behind the winning ticket.
* A job that fails is reported with its log, is not retried in this invocation, and blocks only the random
  tickets that need its masks; the others go on. Rerunning the command resubmits what is unfinished.
"""
import os
import signal
import sys
import time
from typing import Dict, Optional

from ..errors import SweepError
from ..lock import pid_alive
from ..store import RunStore
from .config import SweepConfig
from .jobs import run_job
from .state import SweepDir, failure, job_state

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # submitit's local default (2 min) would kill every real job


LOCAL_PARAMS = ("timeout_min", "gpus_per_node", "visible_gpus", "tasks_per_node", "nodes", "signal_delay_s",
                "setup", "stderr_to_stdout")


def check_executor_params(cfg: SweepConfig) -> None:
    """Refuse parameters submitit's executor does not know, before anything is written."""
    try:
        import submitit
    except ImportError:
        raise SweepError("lth sweep needs submitit: pip install 'lth-plugins[sweep]'") from None
    known = set(LOCAL_PARAMS) if cfg.executor == "local" else set(submitit.SlurmExecutor._valid_parameters())
    unknown = sorted(set(cfg.executor_params) - known)
    if unknown:
        raise SweepError(f"executor_params are refused by submitit's {cfg.executor} executor: unknown "
                         f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")


def make_executor(cfg: SweepConfig, folder):
    import submitit

    params = cfg.executor_params
    if cfg.executor == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        params.setdefault("timeout_min", LOCAL_TIMEOUT_MIN)
    else:
        executor = submitit.SlurmExecutor(folder=str(folder))
    try:
        executor.update_parameters(**params)
    except (ValueError, TypeError) as e:
        raise SweepError(f"executor_params are refused by submitit's {cfg.executor} executor: {e}") from None
    return executor


class Sweep:
    def __init__(self, cfg: SweepConfig, sweep_dir, poll_s: float = 1.0, stream=None):
        self.cfg, self.poll_s = cfg, poll_s
        self.stream = stream if stream is not None else sys.stderr
        self.sd = SweepDir(sweep_dir)
        self.submitted: Dict[str, object] = {}   # job name -> submitit job, this invocation
        self._last: Dict[str, tuple] = {}
        self._log = None

    def say(self, msg: str) -> None:
        line = f"[sweep {time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=self.stream, flush=True)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def run(self) -> int:
        check_executor_params(self.cfg)
        self.sd.open(self.cfg)
        try:
            self._log = open(self.sd.path / "sweep.log", "a")
            executor = make_executor(self.cfg, self.sd.submitit_dir)
            n = len(self.cfg.jobs)
            self.say(f"{n} jobs on the {self.cfg.executor} executor (at most "
                     f"{self.cfg.max_parallel or 'all'} at once) in {self.sd.path}; random tickets pipelined "
                     f"behind their winning ticket's masks")
            return self._loop(executor)
        except KeyboardInterrupt:
            self.say("interrupted: jobs already started may still run; the same command follows them again "
                     "and submits what is unfinished")
            return 130
        finally:
            if self._log is not None:
                self._log.close()
            self.sd.close()

    def _states(self):
        for job in self.submitted.values():
            if job is not None:
                job.done()  # lets submitit reap a finished local job
        return {j.name: job_state(j, self.sd, self.cfg.data.get("rounds")) for j in self.cfg.jobs}

    def _report_changes(self, states) -> None:
        changed = False
        for j in self.cfg.jobs:
            s = states[j.name]
            key = (s["state"], s["done"])
            if self._last.get(j.name) == key:
                continue
            changed = True
            self._last[j.name] = key
            rounds = f"{s['done']}/{s['total'] if s['total'] is not None else '?'} rounds"
            extra = ""
            if s["state"] == "failed":
                extra = f" ({failure(s)}); log: {s['log']}"
            self.say(f"{j.name}: {s['state']}, {rounds}{extra}")
        if changed:
            counts: Dict[str, int] = {}
            for s in states.values():
                counts[s["state"]] = counts.get(s["state"], 0) + 1
            self.say(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f" of {len(states)} jobs")

    def _blocked_by(self, job, states) -> Optional[str]:
        """Why a random ticket cannot start yet (None: it can)."""
        if job.winning is None:
            return None
        wt = self.cfg.job(job.winning)
        ws = states[wt.name]["state"]
        if ws == "done":
            return None
        if ws == "failed" and wt.name in self.submitted:
            return f"its winning ticket {wt.name} failed"
        if ws in ("running", "queued") and RunStore.view(wt.run_dir).has_mask(1):
            return None
        return "waiting"

    def _stop_random_tickets_of_failed(self, states) -> None:
        """A random ticket whose winning ticket failed in this invocation would wait for the next mask up to
        wait_timeout_s, holding its slot: once it needs a mask that is not there, stop it (the next run of the
        same command resubmits both)."""
        for job in self.cfg.jobs:
            sj = self.submitted.get(job.name)
            if job.winning is None or sj is None or states[job.name]["state"] not in ("running", "queued"):
                continue
            wt = self.cfg.job(job.winning)
            if states[wt.name]["state"] != "failed" or wt.name not in self.submitted:
                continue
            k = states[job.name]["done"] + 1  # the round it trains, or waits for the mask of
            if RunStore.view(wt.run_dir).has_mask(k):
                continue
            why = f"its winning ticket {wt.name} failed before the mask of round {k}"
            try:
                rc = self._cancel(job, sj)
            except Exception as e:  # scancel missing or refused: say so, the job ends at its wait timeout
                self.say(f"{job.name}: could not stop it ({e}); {why}")
                continue
            self.sd.write_state(job, state="failed", rc=rc, error=f"stopped: {why}", executor=self.cfg.executor)
            states[job.name] = dict(states[job.name], state="failed", rc=rc, error=f"stopped: {why}")
            self.say(f"{job.name}: stopped, {why}")

    def _cancel(self, job, submitit_job) -> Optional[int]:
        """Stop a job; returns the exit code its training process recorded, if any. A local job's training
        process is sent SIGTERM: submitit's local cancel sends SIGINT, which a sweep started in the background or
        under nohup ignores (and so do its jobs), and its job process bypasses SIGTERM."""
        if self.cfg.executor != "local":
            submitit_job.cancel(check=False)
            return None
        child = self.sd.read_state(job).get("child_pid")
        if child is not None and pid_alive(child):
            os.kill(int(child), signal.SIGTERM)
        deadline = time.time() + 15  # the job records how its training process ended
        while time.time() < deadline and self.sd.read_state(job).get("state") in ("submitted", "running"):
            time.sleep(0.1)
        return self.sd.read_state(job).get("rc")

    def _loop(self, executor) -> int:
        while True:
            states = self._states()
            self._stop_random_tickets_of_failed(states)
            self._report_changes(states)
            active = sum(1 for s in states.values() if s["state"] in ("running", "queued"))
            slots = (self.cfg.max_parallel or len(self.cfg.jobs)) - active
            started = 0
            for job in self.cfg.jobs:
                if slots <= 0:
                    break
                if states[job.name]["state"] not in ("pending", "interrupted", "failed"):
                    continue
                if job.name in self.submitted or self._blocked_by(job, states) is not None:
                    continue
                self._submit(executor, job)
                slots -= 1
                started += 1
            if not active and not started:
                return self._finish(self._states())
            time.sleep(self.poll_s)

    def _submit(self, executor, job) -> None:
        sd = self.sd
        log, state = str(sd.log_path(job)), str(sd.state_path(job))
        executor.update_parameters(name=f"lth-{job.file_stem}"[:120])
        t0 = time.time()
        try:
            sj = executor.submit(run_job, job.name, job.argv, log, state, self.cfg.executor)
        except Exception as e:  # sbatch refused the job, the folder is unwritable, ...
            sd.write_state(job, state="failed", rc=None, error=str(e), executor=self.cfg.executor)
            self.submitted[job.name] = None
            self.say(f"{job.name}: submission failed: {e}")
            return
        self.submitted[job.name] = sj
        if sd.read_state(job).get("time", 0) < t0:  # unless the job has already written its own state
            sd.write_state(job, state="submitted", job_id=str(sj.job_id), pid=_local_pid(sj),
                           executor=self.cfg.executor)
        self.say(f"{job.name}: submitted (job {sj.job_id}), log: {log}")

    def _finish(self, states) -> int:
        done = [n for n, s in states.items() if s["state"] == "done"]
        failed = [n for n, s in states.items() if s["state"] == "failed"]
        rest = [n for n in states if n not in done and n not in failed]
        self.say(f"finished: {len(done)} of {len(states)} jobs done")
        for n in failed:
            self.say(f"FAILED {n} ({failure(states[n])}); log: {states[n]['log']}")
        for n in rest:
            why = self._blocked_by(self.cfg.job(n), states) or states[n]["state"]
            self.say(f"not run {n}: {why}")
        if failed or rest:
            self.say(f"{len(failed)} failed, {len(rest)} not run; fix the cause and run the same command again "
                     f"(finished rounds are kept)")
            return 1
        return 0


def _local_pid(submitit_job):
    proc = getattr(submitit_job, "_process", None)
    return getattr(proc, "pid", None)


def run_sweep(config_path, sweep_dir, poll_s: float = 1.0) -> int:
    from .config import load_config

    return Sweep(load_config(config_path, sweep_dir), sweep_dir, poll_s=poll_s).run()
