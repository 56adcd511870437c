"""Node loss on the local multi-node SLURM (scripts/slurm_local.sh start --nodes N, N >= 2, as root): a 2-node
`--requeue` batch job runs, `slurm_local.sh killnode 2` SIGKILLs node 2's slurmd and every process in its namespace.
Printed per repeat, in seconds from the kill: until SLURM declares the node down (SlurmdTimeout 20 s plus the
controller's ping cycle) and until the job is requeued; and the job's attempts in sacct. The node is restored after
each repeat. The measurement is tests/slurm_cluster.py's, which tests/test_slurm_nodes.py asserts on.
Run: python benchmarks/bench_slurm_nodes.py [--repeats 3]
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.slurm_cluster import lose_node_under_a_job, multi_node_cluster  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cluster, reason = multi_node_cluster()
    if reason:
        sys.exit(f"needs the local multi-node SLURM ({reason}): bash scripts/slurm_local.sh start --nodes 2")
    down, requeued = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            loss = lose_node_under_a_job(cluster, 2, folder)
        down.append(loss.down_s)
        requeued.append(loss.requeued_s)
        print(f"repeat {i + 1}: node {loss.node} killed under job {loss.job_id}: down after {loss.down_s:.1f} s, "
              f"requeued after {loss.requeued_s:.1f} s; sacct -D: {' '.join(loss.attempts)}", flush=True)
    print(f"{len(cluster.nodes)} nodes, {args.repeats} repeats: kill -> down median {statistics.median(down):.1f} s "
          f"(min {min(down):.1f}, max {max(down):.1f}); kill -> requeued median {statistics.median(requeued):.1f} s "
          f"(min {min(requeued):.1f}, max {max(requeued):.1f})")


if __name__ == "__main__":
    main()
