"""The one lock of run directories, sweeps and build caches: it records pid, host and SLURM job, never judges another
host's pid, judges a holder's SLURM job with the real local SLURM (an earlier attempt of the same job, or a job SLURM
no longer has, is taken over with a line), and works (with a clear message) on a filesystem without flock."""
import errno
import fcntl
import os
import socket
import subprocess
import sys

import pytest

from lth_plugins import LotteryConfig, RunStore
from lth_plugins import lock as lock_module
from lth_plugins.errors import RunStoreError
from lth_plugins.lock import FileLock, LockBusy, live_holder, read_holder

from .slurm_cluster import NODE_PREFIX, ROOT, wait_until

CFG = {"lottery": LotteryConfig().to_dict(), "task": "t"}


def hold_as(path, record: str):
    """Hold the lock file at `path` from this process, recording `record` as its holder (another host's pid)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, record.encode())
    return fd


def test_a_lock_held_from_another_host_is_never_judged_by_its_pid(tmp_path):
    RunStore(tmp_path / "r", CFG).close()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is dead here, recorded by a process of another node outside SLURM
    fd = hold_as(tmp_path / "r" / ".lock", f"{dead.pid} node-17.cluster")
    try:
        with pytest.raises(RunStoreError, match=rf"in use by another process \(pid {dead.pid} on host "
                                                r"node-17.cluster\)"):
            RunStore(tmp_path / "r", CFG)
        assert read_holder(tmp_path / "r" / ".lock").host == "node-17.cluster"  # not replaced
        # `lth status` on a login node: the writer on the other node counts as running
        assert live_holder(tmp_path / "r" / ".lock").host == "node-17.cluster"
    finally:
        os.close(fd)


def test_the_lock_records_pid_and_host_and_slurm_job(tmp_path, monkeypatch):
    with RunStore(tmp_path / "r", CFG):
        holder = read_holder(tmp_path / "r" / ".lock")
        assert (holder.pid, holder.host, holder.job) == (os.getpid(), socket.gethostname(), None)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    with FileLock(tmp_path / "l", "the test directory"):
        assert read_holder(tmp_path / "l") == lock_module.Holder(os.getpid(), socket.gethostname(), "77", 2)
    # the same attempt of this job on another node (another task of the job) holds it
    fd = hold_as(tmp_path / "l", "123 node-3 77 2")
    try:
        with pytest.raises(LockBusy, match=r"\(pid 123 on host node-3, SLURM job 77 attempt 2\)"):
            FileLock(tmp_path / "l", "the test directory").acquire()
    finally:
        os.close(fd)


def no_flock(fd, op):
    raise OSError(errno.ENOSYS, "Function not implemented")


def test_without_flock_the_lock_file_itself_is_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    first = FileLock(tmp_path / "l", "the test directory").acquire()
    with pytest.raises(LockBusy, match=r"in use by another process \(pid \d+\); this filesystem has no flock, so "
                                       r"the lock is the file .*: if that process is gone, delete the file"):
        FileLock(tmp_path / "l", "the test directory").acquire()
    first.release()
    assert not (tmp_path / "l").exists()
    # a record left by a process of this host that died is taken over
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "l").write_text(f"{dead.pid} {socket.gethostname()}")
    FileLock(tmp_path / "l", "the test directory").acquire().release()
    # one left by another host is not
    (tmp_path / "l").write_text(f"{dead.pid} node-3")
    with pytest.raises(LockBusy, match="on host node-3"):
        FileLock(tmp_path / "l", "the test directory").acquire()
    # and a whole run works there
    (tmp_path / "l").unlink()
    with RunStore(tmp_path / "r", CFG):
        with pytest.raises(RunStoreError, match="in use by another process"):
            RunStore(tmp_path / "r", CFG)


# A job's rank 0 on a filesystem without flock: it holds the lock file (O_EXCL), says where, and sleeps until SLURM
# ends it; its next attempt takes the lock and says so.
LOCKING_JOB = f"""
import errno, os, socket, sys, time
sys.path.insert(0, {str(ROOT)!r})
from lth_plugins import lock
def no_flock(fd, op):
    raise OSError(errno.ENOSYS, "Function not implemented")
lock.fcntl.flock = no_flock
held = lock.FileLock(sys.argv[1], "the run directory").acquire()
print("attempt", os.environ.get("SLURM_RESTART_COUNT", "0"), "holds the lock on", socket.gethostname(), flush=True)
time.sleep(300)
"""


def test_a_lock_left_on_another_node_by_an_earlier_attempt_of_the_job_is_taken_over(slurm_nodes, tmp_path):
    """The job holds the lock (O_EXCL fallback) on node 1, is requeued (SIGTERM: the lock file stays) and its next
    attempt runs on node 2: it takes the lock over, naming the earlier attempt, and runs."""
    (tmp_path / "job.py").write_text(LOCKING_JOB)
    out = tmp_path / "out.txt"
    job = subprocess.run(["sbatch", "--parsable", "--requeue", "--open-mode=append", "--time=5",
                          f"--nodelist={NODE_PREFIX}1", f"--output={out}", "--wrap",
                          f"exec {sys.executable} {tmp_path / 'job.py'} {tmp_path / 'lock'}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip().split(";")[0]
    try:
        wait_until(lambda: "attempt 0 holds" in (out.read_text() if out.exists() else ""), 120,
                   lambda: f"job {job}'s first attempt to take the lock ({out.read_text() if out.exists() else ''})")
        first = read_holder(tmp_path / "lock")
        assert (first.host, first.job, first.attempt) == (f"{NODE_PREFIX}1", job, 0)
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
        wait_until(lambda: "Restarts=1 " in _scontrol_job(job) and "JobState=PENDING" in _scontrol_job(job), 120,
                   lambda: f"job {job} pending again ({_scontrol_job(job)})")
        assert (tmp_path / "lock").exists()  # left by the ended attempt
        # SLURM holds a requeued job back for a while (BeginTime): start it now, on the other node
        subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now", f"ReqNodeList={NODE_PREFIX}2"],
                       check=True, timeout=30)
        wait_until(lambda: "attempt 1 holds" in out.read_text(), 120,
                   lambda: f"job {job}'s second attempt to take the lock ({out.read_text()})")
        text = out.read_text()
        assert f"attempt 1 holds the lock on {NODE_PREFIX}2" in text, text
        assert (f"[lottery] the run directory: taking over the lock left by pid {first.pid} on host {NODE_PREFIX}1, "
                f"SLURM job {job}: an earlier attempt (0) of this SLURM job {job}, now in attempt 1" in text), text
        assert read_holder(tmp_path / "lock").host == f"{NODE_PREFIX}2"
    finally:
        subprocess.run(["scancel", job], timeout=30)


def test_a_lock_of_a_job_slurm_still_runs_is_kept_and_taken_once_it_ended(slurm_cluster, tmp_path, monkeypatch,
                                                                          capfd):
    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    job = subprocess.run(["sbatch", "--parsable", "--time=5", "--output=/dev/null", "--wrap", "sleep 300"],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip().split(";")[0]
    try:
        (tmp_path / "l").write_text(f"4321 node-9 {job} 0")  # written by that job on a node gone from this network
        with pytest.raises(LockBusy, match=rf"pid 4321 on host node-9, SLURM job {job}\)"):
            FileLock(tmp_path / "l", "the test directory").acquire()
        assert live_holder(tmp_path / "l").job == job  # `lth status`: the run is being written
    finally:
        subprocess.run(["scancel", job], check=True, timeout=30)
    slurm_cluster.wait_job(job)
    assert live_holder(tmp_path / "l") is None
    FileLock(tmp_path / "l", "the test directory").acquire().release()
    assert (f"[lottery] the test directory: taking over the lock left by pid 4321 on host node-9, SLURM job {job}: "
            f"SLURM no longer has job {job}") in capfd.readouterr().err
    # on this host, its pid now another live process's (this one's)
    (tmp_path / "l").write_text(f"{os.getpid()} {socket.gethostname()} {job} 0")
    FileLock(tmp_path / "l", "the test directory").acquire().release()
    assert f"SLURM job {job}: SLURM no longer has job {job}" in capfd.readouterr().err


def _scontrol_job(job):
    return subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30).stdout
