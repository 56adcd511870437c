"""The multi-node SLURM of `scripts/slurm_local.sh start --nodes N` (fixture `slurm_nodes`): its nodes are separate
hosts to SLURM and to torch.distributed, and a node lost mid-job is declared down and its `--requeue` job requeued
(benchmarks/bench_slurm_nodes.py prints the same figures)."""
import subprocess
import sys

from .slurm_cluster import lose_node_under_a_job, wait_until

# SlurmdTimeout (20 s in slurm_local.sh), the controller's ping cycle and a loaded two-core host
DOWN_WITHIN_S = 90
ALLREDUCE = '''
import os, socket, subprocess
import torch
import torch.distributed as dist

rank, world = int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
nodes = subprocess.check_output(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]], text=True)
port = 29500 + int(os.environ["SLURM_JOB_ID"]) % 1000
dist.init_process_group("gloo", init_method=f"tcp://{nodes.split()[0]}:{port}", rank=rank, world_size=world)
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(rank, socket.gethostname(), os.environ["SLURMD_NODENAME"], t.item(), flush=True)
dist.destroy_process_group()
'''


def sbatch(args, script, timeout=60):
    p = subprocess.run(["sbatch", "--parsable", *args, str(script)], capture_output=True, text=True,
                       timeout=timeout, check=True)
    return p.stdout.strip().split(";")[0]


def test_nodes_are_idle_with_their_own_hostname_and_address(slurm_nodes, tmp_path):
    # an earlier test's job may still be ending
    wait_until(lambda: set(slurm_nodes.node_states().values()) == {"idle"}, 60,
               lambda: f"every node idle ({slurm_nodes.node_states()})")
    n = len(slurm_nodes.nodes)
    p = subprocess.run(["srun", f"--nodes={n}", "--ntasks-per-node=1", "--time=1", "bash", "-c",
                        'echo "$SLURMD_NODENAME $(hostname) $(hostname -I)"'],
                       capture_output=True, text=True, timeout=120, check=True)
    rows = sorted(line.split() for line in p.stdout.splitlines())
    assert [r[0] for r in rows] == slurm_nodes.nodes
    assert [r[1] for r in rows] == slurm_nodes.nodes  # the UTS namespace's hostname is the node's name
    assert len({r[2] for r in rows}) == n  # each node its own address (its own network namespace)


def test_a_two_node_job_all_reduces_with_gloo_across_the_nodes(slurm_nodes, tmp_path):
    (tmp_path / "allreduce.py").write_text(ALLREDUCE)
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\nsrun {sys.executable} {tmp_path}/allreduce.py\n")
    job = sbatch(["--job-name=lth-test-allreduce", "--nodes=2", "--ntasks-per-node=1", "--time=5",
                  f"--output={tmp_path}/out-%j.txt", "--export=ALL,OMP_NUM_THREADS=1"], script)
    state = slurm_nodes.wait_job(job, timeout=240)
    out = (tmp_path / f"out-{job}.txt").read_text()
    assert state == "COMPLETED", out
    rows = sorted(line.split() for line in out.splitlines() if line[:1].isdigit())
    assert [r[0] for r in rows] == ["0", "1"], out
    assert rows[0][1] != rows[1][1] and all(r[1] == r[2] for r in rows), out  # one rank on each node
    assert [float(r[3]) for r in rows] == [3.0, 3.0], out  # 1 + 2 on both ranks


def test_a_killed_node_is_declared_down_and_its_job_requeued(slurm_nodes, tmp_path):
    loss = lose_node_under_a_job(slurm_nodes, 2, tmp_path)
    print(f"node {loss.node} killed under job {loss.job_id}: down after {loss.down_s:.1f} s, "
          f"job requeued after {loss.requeued_s:.1f} s; sacct -D: {' '.join(loss.attempts)}")
    assert loss.down_s < DOWN_WITHIN_S
    assert loss.requeued_s < DOWN_WITHIN_S + 30  # SLURM requeues a NODE_FAIL job when it declares the node down
    assert loss.attempts == ["NODE_FAIL", "COMPLETED"]
    # restored: the node runs jobs again
    assert set(slurm_nodes.node_states().values()) <= {"idle", "mixed", "allocated", "completing"}
