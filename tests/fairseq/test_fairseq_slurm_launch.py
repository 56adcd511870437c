"""How srun tasks form fairseq's group under the real local multi-node SLURM: a port taken on rank 0's node (by
another job there) is not fatal, the ranks meet on the next free one; and the CUDA device of a task that SLURM shows
one GPU."""
import os
import subprocess

import pytest

from fairseq_ext.distributed import task_device
from lth_plugins.errors import LotteryConfigError

from ..slurm_cluster import NODE_PREFIX, wait_until
from .helpers import BIN, COMMON, MT_MODEL, USER_DIR, env

BLOCKER = "import socket, sys, time\ns = socket.socket()\ns.bind(('', int(sys.argv[1])))\ns.listen()\n" \
          "open(sys.argv[2], 'w').close()\ntime.sleep(600)\n"


def sbatch(args, **kw):
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=60, check=True,
                          **kw).stdout.strip().split(";")[0]


def test_a_port_taken_on_rank_0s_node_moves_the_group_to_the_next_free_port(slurm_nodes, mt_data, tmp_path):
    port = 30000 + os.getpid() % 5000
    (tmp_path / "blocker.py").write_text(BLOCKER)
    blocker = sbatch(["--nodes=1", "--ntasks=1", "--cpus-per-task=1", f"--nodelist={NODE_PREFIX}1", "--time=10",
                      "--output=/dev/null", "--wrap",
                      f"exec {BIN / 'python'} {tmp_path / 'blocker.py'} {port} {tmp_path / 'listening'}"])
    job = None
    try:
        wait_until(lambda: (tmp_path / "listening").exists(), 120, f"job {blocker} listening on port {port}")
        save, out = tmp_path / "run", tmp_path / "job.out"
        train = " ".join([str(BIN / "fairseq-train"), str(mt_data), "--save-dir", str(save), *COMMON, *MT_MODEL,
                          "--max-update", "4", "--lottery-prune", "--lottery-rounds", "1", "--distributed-world-size",
                          "2", "--distributed-port", str(port), "--distributed-backend", "gloo", "--ddp-backend",
                          "legacy_ddp", "--user-dir", USER_DIR])
        e = env()
        e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
        job = sbatch(["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1",
                      f"--nodelist={NODE_PREFIX}1,{NODE_PREFIX}2", "--time=10", f"--output={out}", "--wrap",
                      f"srun --kill-on-bad-exit=1 {train}"], env=e)
        assert slurm_nodes.wait_job(job, timeout=600) == "COMPLETED", out.read_text()[-4000:]
        text = out.read_text()
        assert f"[lottery] port {port} is taken on {NODE_PREFIX}1: the ranks meet on port {port + 1}" in text, text
        for rank in (0, 1):
            assert f"(rank {rank} of 2, identical on all ranks)" in text, text
        assert [f.read_text() for f in save.glob(".distributed_port.*.tmp")] == [str(port + 1)]  # no result
    finally:
        subprocess.run(["scancel", blocker, *([job] if job else [])], timeout=30)


def test_a_task_shown_one_gpu_trains_on_device_0():
    assert task_device(3, 8) == 3  # each task sees every GPU of its node: device SLURM_LOCALID, as fairseq takes it
    assert task_device(3, 1) == 0  # srun --gpus-per-task=1: CUDA_VISIBLE_DEVICES names one GPU
    with pytest.raises(LotteryConfigError, match=r"SLURM task 3 of its node sees 2 GPUs .*each task must see every "
                                                 r"GPU of its node or exactly one"):
        task_device(3, 2)
