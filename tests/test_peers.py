"""Real gloo process groups (one process per rank): differing masks stop every rank with the checksums; a killed
rank makes the others exit naming it, instead of hanging in a collective; a pause of the whole job (SLURM's
suspend: SIGSTOP of every task) and ranks starting far apart are no failure (lth_plugins.peers)."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("peers_probe.py")


def _ranks(mode, world, run_dir, defaults=False):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PROBE_DEFAULTS="1" if defaults else "0")
    return [subprocess.Popen([sys.executable, str(PROBE), mode, str(r), str(world), str(port), str(run_dir)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for r in range(world)]


def test_a_rank_with_other_masks_stops_every_rank_with_the_checksums(tmp_path):
    procs = _ranks("masks", 3, tmp_path / "run")
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 3, f"rank {rank}:\n{out}"
        assert "masks of round 1 differ across ranks (checksums [" in out, out
    sums = outs[0].split("checksums [")[1].split("]")[0].split(", ")
    assert len(sums) == 3 and sums[0] == sums[1] != sums[2]


def test_a_killed_rank_stops_the_others_naming_it_within_60_s(tmp_path):
    """With the watchdog's own defaults (fairseq's: a rank silent for 30 s)."""
    procs = _ranks("kill", 4, tmp_path / "run", defaults=True)
    procs[2].wait(timeout=300)
    killed = time.time()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    took = time.time() - killed
    assert procs[2].returncode == -9
    for rank in (0, 1, 3):
        assert procs[rank].returncode == 1, f"rank {rank}:\n{outs[rank]}"
        assert "finished" not in outs[rank]
        assert "rank 2 stopped: no heartbeat for" in outs[rank] and "failed or was killed" in outs[rank], outs[rank]
    assert took < 60, took


def test_the_whole_job_paused_15_s_then_continued_goes_on(tmp_path):
    run = tmp_path / "run"
    procs = _ranks("pause", 3, run)
    try:
        for p in procs:  # every rank in its loop of collectives
            assert p.stdout.readline().strip().endswith("ready")
        time.sleep(1)
        for p in procs:
            os.kill(p.pid, signal.SIGSTOP)
        time.sleep(15)
        for p in procs:
            os.kill(p.pid, signal.SIGCONT)
        time.sleep(8)  # well past the watchdog's 3 s timeout, running again
        (run / "stop").write_text("")
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and f"rank {rank}: finished" in out, f"rank {rank}:\n{out}"


def test_a_rank_starting_its_heartbeat_late_is_no_failure(tmp_path):
    procs = _ranks("late", 3, tmp_path / "run")
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and f"rank {rank}: finished" in out, f"rank {rank}:\n{out}"


@pytest.mark.parametrize("victim", [0, 1])
def test_a_killed_watcher_is_named_too(tmp_path, victim):
    """Rank 0 watches the others and hosts the store; rank 1 watches rank 0."""
    procs = _ranks(f"kill{victim}", 3, tmp_path / "run")
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert procs[victim].returncode == -9
    for rank in set(range(3)) - {victim}:
        assert procs[rank].returncode == 1, f"rank {rank}:\n{outs[rank]}"
        assert f"rank {victim}" in outs[rank] and "failed or was killed" in outs[rank], outs[rank]
