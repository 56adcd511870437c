"""Waiting for another process's file: task 0 of a job checks the writer's liveness (which may ask the scheduler)
every ALIVE_CHECK_S, the other tasks rarely, so that one process per job asks; a dead writer still ends every
task's wait."""
import io
import time

import pytest

from lth_plugins import wait
from lth_plugins.errors import RunStoreError


def checks_while_waiting(monkeypatch, env: dict, wait_s: float = 1.0) -> int:
    """How many times wait_until asks whether the writer lives while it waits `wait_s` seconds for a file."""
    for var in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    asked = []
    t0 = time.monotonic()
    wait.wait_until(lambda: time.monotonic() - t0 >= wait_s, 60, "a file", poll_s=0.01, stream=io.StringIO(),
                    alive=lambda: asked.append(time.monotonic()) or True, writer="the writer")
    return len(asked)


def test_only_task_0_of_a_job_checks_the_writer_every_interval(monkeypatch):
    monkeypatch.setattr(wait, "ALIVE_CHECK_S", 0.05)
    monkeypatch.setattr(wait, "OTHER_TASKS_CHECK_S", 30.0)
    for env in ({}, {"SLURM_PROCID": "0"}, {"RANK": "0", "SLURM_PROCID": "3"}):
        assert checks_while_waiting(monkeypatch, env) >= 10, env  # at once, then every 0.05 s
    for env in ({"SLURM_PROCID": "1"}, {"RANK": "7"}, {"RANK": "2", "SLURM_PROCID": "0"}):
        assert checks_while_waiting(monkeypatch, env) == 0, env


@pytest.mark.parametrize("env", [{"SLURM_PROCID": "0"}, {"SLURM_PROCID": "5"}])
def test_a_dead_writer_ends_the_wait_of_every_task(monkeypatch, env):
    monkeypatch.setattr(wait, "ALIVE_CHECK_S", 0.05)
    monkeypatch.setattr(wait, "OTHER_TASKS_CHECK_S", 0.3)
    monkeypatch.setattr(wait, "WRITER_START_S", 0.5)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv(*next(iter(env.items())))
    t0 = time.monotonic()
    with pytest.raises(RunStoreError, match="a file does not exist and the writer is not running"):
        wait.wait_until(lambda: False, 60, "a file", poll_s=0.01, stream=io.StringIO(), alive=lambda: False,
                        writer="the writer")
    assert 0.5 <= time.monotonic() - t0 < 5  # given WRITER_START_S to start, then given up on


def test_a_writer_that_starts_after_the_wait_began_is_waited_for(monkeypatch):
    """A run resumed beside this one takes its lock only once its framework has loaded: not seen running at the
    first checks, it is given WRITER_START_S to start, and its file is then waited for as usual."""
    monkeypatch.setattr(wait, "ALIVE_CHECK_S", 0.05)
    monkeypatch.setattr(wait, "WRITER_START_S", 2.0)
    for var in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    t0, said = time.monotonic(), io.StringIO()
    starts, writes = 1.0, 3.5  # the writer is seen at 1.0 s, past the 2 s it would have had from the start
    wait.wait_until(lambda: time.monotonic() - t0 >= writes, 60, "a file", poll_s=0.01, stream=said,
                    alive=lambda: time.monotonic() - t0 >= starts, writer="the writer")
    assert time.monotonic() - t0 >= writes
    assert "the writer is not running; giving it 2 s to start" in said.getvalue()
