"""The one lock of run directories, sweeps and build caches: it records pid and host, never judges another host's
pid, and works (with a clear message) on a filesystem without flock."""
import errno
import fcntl
import os
import socket
import subprocess

import pytest

from lth_plugins import LotteryConfig, RunStore
from lth_plugins import lock as lock_module
from lth_plugins.errors import RunStoreError
from lth_plugins.lock import FileLock, LockBusy, live_holder, read_holder

CFG = {"lottery": LotteryConfig().to_dict(), "task": "t"}


def hold_as(path, record: str):
    """Hold the lock file at `path` from this process, recording `record` as its holder (another host's pid)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, record.encode())
    return fd


def test_a_lock_held_from_another_host_is_never_replaced(tmp_path):
    RunStore(tmp_path / "r", CFG).close()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is dead here, recorded by a process of another node
    fd = hold_as(tmp_path / "r" / ".lock", f"{dead.pid} node-17.cluster 4242")
    try:
        with pytest.raises(RunStoreError, match=rf"in use by another process \(pid {dead.pid} on host "
                                                r"node-17.cluster, SLURM job 4242\)"):
            RunStore(tmp_path / "r", CFG)
        assert read_holder(tmp_path / "r" / ".lock").host == "node-17.cluster"  # not replaced
        # `lth status` on a login node: the writer on the other node counts as running
        assert live_holder(tmp_path / "r" / ".lock").host == "node-17.cluster"
    finally:
        os.close(fd)


def test_the_lock_records_pid_and_host(tmp_path):
    with RunStore(tmp_path / "r", CFG):
        holder = read_holder(tmp_path / "r" / ".lock")
        assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())


def test_without_flock_the_lock_file_itself_is_the_lock(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

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
