"""Real gloo process groups (one process per rank): differing masks stop every rank with the checksums; a killed
rank makes the others exit naming it, instead of hanging in a collective (lth_plugins.peers)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROBE = Path(__file__).with_name("peers_probe.py")


def _ranks(mode, world, run_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
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


def test_a_killed_rank_stops_the_others_naming_it(tmp_path):
    procs = _ranks("kill", 4, tmp_path / "run")
    procs[2].wait(timeout=300)
    killed = time.time()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert procs[2].returncode == -9
    for rank in (0, 1, 3):
        assert procs[rank].returncode == 1, f"rank {rank}:\n{outs[rank]}"
        assert "finished" not in outs[rank]
        assert "rank 2" in outs[rank] and "failed or was killed" in outs[rank], outs[rank]
    assert time.time() - killed < 60
