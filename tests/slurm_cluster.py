"""The `slurm_cluster` fixture: the real one-node SLURM of scripts/slurm_local.sh, for tests that submit jobs.

It checks that the local SLURM answers (sinfo shows a usable node, sacct answers: submitit follows its jobs with
sacct). If not, and LTH_START_SLURM=1, it runs `scripts/slurm_local.sh start` once; if SLURM still does not
answer, the test skips with the reason. .ci/run starts the cluster itself and lists "slurm" in
LTH_REQUIRE_FRAMEWORK_TESTS, so there such a skip fails the run (tests/ci_gate.py).
"""
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
START_TIMEOUT_S = 900  # a first start installs the Debian packages
USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}
# sacct states after which a job never runs again (REQUEUED, PENDING, RUNNING... are not final)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE"}


def _run(cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def why_unavailable():
    """None when the local SLURM can run and account for jobs, else the reason it cannot."""
    for tool in ("sinfo", "sacct", "sbatch", "srun"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        p = _run(["sinfo", "-h", "-N", "-o", "%T"])
        if p.returncode != 0:
            return f"sinfo fails: {(p.stderr or p.stdout).strip()}"
        states = {s.rstrip("*~#!%$@^-") for s in p.stdout.split()}
        if not states & USABLE_NODE_STATES or any(s.endswith("*") for s in p.stdout.split()):
            return f"no SLURM node can run jobs (node states: {' '.join(p.stdout.split()) or 'none'})"
        p = _run(["sacct", "-n", "-X", "-S", "now-1minutes", "-o", "JobID"])
        if p.returncode != 0:
            return f"sacct fails (SLURM accounting is needed to follow jobs): {(p.stderr or p.stdout).strip()}"
    except subprocess.TimeoutExpired as e:
        return f"{' '.join(e.cmd)} did not answer in {e.timeout:.0f} s"
    return None


@dataclass
class SlurmCluster:
    partition: str
    cpus: int  # CPUs of the (first) node

    def job_state(self, job_id):
        """The job's state in sacct, its first word ("CANCELLED by 0" -> CANCELLED); "" until accounting has it."""
        p = _run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"])
        lines = p.stdout.split("\n")
        return lines[0].split()[0] if p.returncode == 0 and lines[0].strip() else ""

    def wait_job(self, job_id, timeout=120):
        """Poll sacct until the job reaches a final state; returns that state. The job shows in sacct only
        about a second after sbatch returns."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in FINAL_STATES:
                return state
            time.sleep(0.5)
        raise TimeoutError(f"SLURM job {job_id} not finished after {timeout} s (last sacct state: {state or 'none'})")


def _describe():
    p = _run(["sinfo", "-h", "-o", "%P %c"])
    partition, cpus = "", 0
    for line in p.stdout.splitlines():
        name, c = line.split()
        if name.endswith("*") or not partition:
            partition, cpus = name.rstrip("*"), int(c.rstrip("+"))
    return SlurmCluster(partition=partition, cpus=cpus)


@pytest.fixture(scope="session")
def slurm_cluster():
    reason = why_unavailable()
    if reason and os.environ.get("LTH_START_SLURM") == "1":
        try:
            p = _run(["bash", str(SCRIPT), "start"], timeout=START_TIMEOUT_S)
            if p.returncode != 0:
                reason += f"; {SCRIPT.name} start failed ({p.returncode}): {p.stderr.strip()[-2000:]}"
            else:
                reason = why_unavailable()
        except subprocess.TimeoutExpired:
            reason += f"; {SCRIPT.name} start did not finish in {START_TIMEOUT_S} s"
    if reason:
        pytest.skip(f"no local SLURM: {reason} (start it with `bash scripts/slurm_local.sh start` as root, "
                    "or set LTH_START_SLURM=1)")
    return _describe()
