"""The fixtures of the real SLURM of scripts/slurm_local.sh, for tests that submit jobs: `slurm_cluster` (any
node count) and `slurm_nodes` (at least two nodes, each in its own namespaces: `start --nodes N`).

They check that the local SLURM answers (sinfo shows usable nodes, sacct answers: submitit follows its jobs with
sacct). If not, and LTH_START_SLURM=1, they run `scripts/slurm_local.sh start` (`slurm_nodes`: `start --nodes 2`)
once; if SLURM still does not answer, the test skips with the reason. .ci/run starts the cluster itself and lists
"slurm" in LTH_REQUIRE_FRAMEWORK_TESTS, so there such a skip fails the run (tests/ci_gate.py).
"""
import contextlib
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
NODE_PREFIX = "lth-node"  # the nodes of `slurm_local.sh start --nodes N`: lth-node1..N
MIN_NODES = 2
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
    nodes: list  # node names, sorted

    def node_states(self):
        """{node: state} as sinfo prints it ("down*": not answering)."""
        p = _run(["sinfo", "-h", "-N", "-o", "%N %T"])
        return dict(line.split() for line in p.stdout.splitlines() if line.strip())

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
    nodes = sorted(set(_run(["sinfo", "-h", "-N", "-o", "%N"]).stdout.split()))
    return SlurmCluster(partition=partition, cpus=cpus, nodes=nodes)


def _start(args, reason):
    """Run `slurm_local.sh ARGS` when LTH_START_SLURM=1; the reason SLURM is still unavailable, or None."""
    if os.environ.get("LTH_START_SLURM") != "1":
        return reason
    try:
        p = _run(["bash", str(SCRIPT), *args], timeout=START_TIMEOUT_S)
        if p.returncode != 0:
            return reason + f"; {SCRIPT.name} {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}"
    except subprocess.TimeoutExpired:
        return reason + f"; {SCRIPT.name} {' '.join(args)} did not finish in {START_TIMEOUT_S} s"
    return why_unavailable()


@pytest.fixture(scope="session")
def slurm_cluster():
    reason = why_unavailable()
    if reason:
        reason = _start(["start"], reason)
    if reason:
        pytest.skip(f"no local SLURM: {reason} (start it with `bash scripts/slurm_local.sh start` as root, "
                    "or set LTH_START_SLURM=1)")
    return _describe()


def multi_node_cluster():
    """(the running cluster, None) when it has at least MIN_NODES nodes of `start --nodes N`, else (None, why not)."""
    reason = why_unavailable()
    if reason:
        return None, reason
    cluster = _describe()
    if len(cluster.nodes) >= MIN_NODES and all(n.startswith(NODE_PREFIX) for n in cluster.nodes):
        return cluster, None
    return None, f"the running cluster has the nodes {' '.join(cluster.nodes)}"


@pytest.fixture(scope="session")
def slurm_nodes():
    """A cluster of at least MIN_NODES namespaced nodes (lth-node1..N). A running one-node cluster is left alone
    (switching restarts slurmctld under whoever uses it): the test skips."""
    reason = why_unavailable()
    if reason:
        _start(["start", "--nodes", str(MIN_NODES)], reason)
    cluster, reason = multi_node_cluster()
    if reason:
        pytest.skip(f"no local multi-node SLURM: {reason} (start it with `bash scripts/slurm_local.sh start "
                    f"--nodes {MIN_NODES}` as root, or set LTH_START_SLURM=1 with no cluster running)")
    return cluster


@dataclass
class NodeLoss:
    """What SLURM did when a node of a running `--requeue` job died, in seconds from the kill."""
    node: str
    job_id: str
    down_s: float  # until sinfo shows the node down
    requeued_s: float  # until the job is pending again for its next attempt
    attempts: list  # the job's states in `sacct -D`, oldest first, once its second attempt ended


def lose_node_under_a_job(cluster, index, folder, timeout=180.0):
    """Node loss as a cluster meets it: a 2-node `--requeue` batch job runs one task on lth-node1 and one on
    lth-node{index} (index > 1); `slurm_local.sh killnode index` SIGKILLs that node's slurmd and every process in
    its namespace. Measured: the seconds until SLURM declares the node down and until the job is requeued. Then the
    node is restored (`start --nodes N` restarts its slurmd and resumes it), and the job's second attempt, which
    only reports itself, runs to the end."""
    node = f"{NODE_PREFIX}{index}"
    folder = Path(folder)
    script = folder / "node_loss_job.sh"
    script.write_text(
        "#!/bin/bash\n"
        'echo "attempt ${SLURM_RESTART_COUNT:-0} on $SLURM_JOB_NODELIST"\n'
        '[ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] && exit 0\n'
        f"srun bash -c 'touch {folder}/up.$(hostname); exec sleep 600'\n")
    p = _run(["sbatch", "--parsable", "--job-name=lth-node-loss", "--nodes=2", "--ntasks-per-node=1", "--requeue",
              "--time=10", f"--nodelist={NODE_PREFIX}1,{node}", f"--output={folder}/out-%j.txt", str(script)])
    assert p.returncode == 0, p.stderr
    job_id = p.stdout.strip().split(";")[0]
    restored = False
    try:
        wait_until(lambda: all((folder / f"up.{n}").exists() for n in (f"{NODE_PREFIX}1", node)), timeout,
                   f"job {job_id}'s task on both nodes")
        t_kill = time.monotonic()
        p = _run(["bash", str(SCRIPT), "killnode", str(index)])
        assert p.returncode == 0, p.stderr
        down_s = requeued_s = None
        while down_s is None or requeued_s is None:
            now = time.monotonic() - t_kill
            assert now < timeout, f"after {timeout} s: node {node} down at {down_s} s, job requeued at {requeued_s} s"
            if down_s is None and cluster.node_states().get(node, "").startswith("down"):
                down_s = now
            if requeued_s is None:
                job = _run(["scontrol", "show", "job", "-o", job_id]).stdout
                if "JobState=PENDING" in job and "Restarts=0 " not in job:
                    requeued_s = now
            time.sleep(0.25)
        restore_nodes(cluster)
        restored = True
        wait_until(lambda: len(attempts(job_id)) >= 2 and attempts(job_id)[-1] in FINAL_STATES, timeout,
                   lambda: f"job {job_id}'s second attempt to end (sacct -D: {' '.join(attempts(job_id))})")
        return NodeLoss(node, job_id, down_s, requeued_s, attempts(job_id))
    finally:
        _run(["scancel", job_id])
        if not restored:
            restore_nodes(cluster)


@contextlib.contextmanager
def with_nodes(cluster, n):
    """The multi-node cluster grown to at least n nodes for the block (`start --nodes n` restarts slurmctld and the
    slurmds: start it while no job runs); yields the grown cluster. Afterwards the cluster's own node count again,
    a killed node's slurmd restarted and the node resumed."""
    if len(cluster.nodes) < n:
        p = _run(["bash", str(SCRIPT), "start", "--nodes", str(n)], timeout=START_TIMEOUT_S)
        assert p.returncode == 0, p.stderr
    try:
        yield _describe()
    finally:
        restore_nodes(cluster)


def restore_nodes(cluster):
    """`slurm_local.sh start --nodes N` again: a killed node's slurmd restarted and the node resumed."""
    p = _run(["bash", str(SCRIPT), "start", "--nodes", str(len(cluster.nodes))], timeout=START_TIMEOUT_S)
    assert p.returncode == 0, p.stderr


def attempts(job_id):
    """Every attempt's state of a job in `sacct -D`, oldest first."""
    p = _run(["sacct", "-D", "-X", "-P", "-n", "-j", job_id, "-o", "State"])
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def wait_until(cond, timeout, what):
    """Poll cond until true; `what` (a string, or a function giving one) names it when the time is up."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not after {timeout} s: {what() if callable(what) else what}"
        time.sleep(0.25)
