"""Node loss, a crashed rank, a held winning ticket and preemption on the local multi-node SLURM (scripts/slurm_local.sh start
--nodes N, N >= 2, as root).
* Node loss: a 2-node `--requeue` batch job runs, `slurm_local.sh killnode 2` SIGKILLs node 2's slurmd and every
  process in its namespace. Printed per repeat, in seconds from the kill: until SLURM declares the node down
  (SlurmdTimeout 20 s plus the controller's ping cycle) and until the job is requeued; and the job's attempts in
  sacct. The node is restored after each repeat. The measurement is tests/slurm_cluster.py's, which
  tests/test_slurm_nodes.py asserts on.
* A crashed rank (`--crash`): `lth sweep` of the core's teacher-MLP on SLURM; the winning ticket's training process
  is SIGKILLed in round 1; printed: seconds from the kill until the job's next attempt trains round 1 again (its
  round_01/started.json rewritten), and its attempts in sacct.
* A held winning ticket (`--held`): the winning ticket requeued and held (`scontrol requeuehold`) after its mask 1;
  printed: seconds from the random ticket's last finished round (the start of its wait for mask 2) until every
  node is idle (its allocation given back, `max_idle_s` = 10), and the run's end after the release.
tests/test_sweep_slurm.py asserts on the same two scenarios.
* A lost node under a lottery run (`--killnode`): the sbatch recipe's winning and random ticket on 2 nodes x 1 task
  (the cluster grown to 3 nodes for the block); rank 1's node killed in round 0. Printed, in seconds from the kill:
  node down, job requeued, first update trained again on the live nodes; and the updates trained again.
* Preemption (`--preempt`): the recipe's winning ticket (one node, 2 tasks) preempted by a job of the partition
  `high` that needs its node. Printed: seconds from SLURM's SIGTERM to the save and SLURM's SIGTERM-to-SIGKILL time,
  seconds from the preemptor's submission to the requeue and to the first update trained again; updates trained
  again. tests/fairseq/test_fairseq_slurm.py asserts on the same two scenarios.
Run: python benchmarks/bench_slurm_nodes.py [--repeats 3] [--crash] [--held] [--killnode] [--preempt] [--no-node-loss]
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.slurm_cluster import lose_node_under_a_job, multi_node_cluster  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crash", action="store_true", help="also: a crashed rank under lth sweep")
    parser.add_argument("--held", action="store_true", help="also: a random ticket whose winning ticket is held")
    parser.add_argument("--killnode", action="store_true", help="also: a lost node under the recipe's lottery run")
    parser.add_argument("--preempt", action="store_true", help="also: the recipe's lottery run preempted")
    parser.add_argument("--no-node-loss", action="store_true")
    args = parser.parse_args()
    cluster, reason = multi_node_cluster()
    if reason:
        sys.exit(f"needs the local multi-node SLURM ({reason}): bash scripts/slurm_local.sh start --nodes 2")
    for i in range(args.repeats if args.crash else 0):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:  # a job may still be ending
            s, attempts = crash_to_training_again(Path(folder), cluster)
        print(f"crash repeat {i + 1}: rank 0's process SIGKILLed in round 1 -> round 1 trained again after {s:.1f} s; "
              f"sacct -D: {' '.join(attempts)}", flush=True)
    for i in range(args.repeats if args.held else 0):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:  # a job may still be ending
            idle, total = idle_while_held(Path(folder), cluster)
        print(f"held repeat {i + 1}: random ticket's allocation idle {idle:.1f} s (max_idle_s = 10) while its winning "
              f"ticket was held; the sweep finished {total:.1f} s after the release", flush=True)
    for i in range(args.repeats if args.killnode else 0):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
            print(f"killnode repeat {i + 1}: {lottery_node_loss(Path(folder), cluster).summary()}", flush=True)
    for i in range(args.repeats if args.preempt else 0):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
            print(f"preempt repeat {i + 1}: {lottery_preemption(Path(folder), cluster).summary()}", flush=True)
    if args.no_node_loss:
        return
    down, requeued = [], []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:  # a job may still be ending
            loss = lose_node_under_a_job(cluster, 2, folder)
        down.append(loss.down_s)
        requeued.append(loss.requeued_s)
        print(f"repeat {i + 1}: node {loss.node} killed under job {loss.job_id}: down after {loss.down_s:.1f} s, "
              f"requeued after {loss.requeued_s:.1f} s; sacct -D: {' '.join(loss.attempts)}", flush=True)
    print(f"{len(cluster.nodes)} nodes, {args.repeats} repeats: kill -> down median {statistics.median(down):.1f} s "
          f"(min {min(down):.1f}, max {max(down):.1f}); kill -> requeued median {statistics.median(requeued):.1f} s "
          f"(min {min(requeued):.1f}, max {max(requeued):.1f})")


def crash_to_training_again(folder: Path, cluster):
    """(seconds from the SIGKILL of a winning ticket's training process in round 1 until its next attempt starts
    round 1 again, the job's attempts in sacct)."""
    from tests.test_sweep_slurm import WT, grid, kill_group, sacct_attempts_now, start_sweep, state, wait_until

    cfg = grid(folder / "grid.json", rounds=2, tickets=["winning"],
               experiment=[{"framework": "torch", "args": ["--epochs", "24", "--n-train", "16384"]}])
    sweep, log = folder / "sw", folder / "sweep.log"
    started = sweep / "runs/teacher-mlp/default/s0/wt/round_01/started.json"
    proc = start_sweep(cfg, sweep, log)
    try:
        wait_until(lambda: started.is_file() and state(sweep, WT).get("child_pid"), 600, "round 1", proc, log)
        before = started.stat().st_mtime_ns
        os.kill(int(state(sweep, WT)["child_pid"]), signal.SIGKILL)
        t0 = time.time()
        wait_until(lambda: started.stat().st_mtime_ns != before, 600, "round 1 trained again", proc, log)
        took = started.stat().st_mtime - t0
        proc.wait(timeout=600)
    finally:
        kill_group(proc)
    cluster.wait_job(state(sweep, WT)["job_id"], timeout=120)  # the sweep may end while the job's process exits
    return took, sacct_attempts_now(state(sweep, WT)["job_id"])


def idle_while_held(folder: Path, cluster):
    """(seconds the random ticket's allocation stayed idle while its winning ticket was held, seconds from the
    release to the sweep's end)."""
    from tests.test_sweep_slurm import held_winning_ticket

    figures = held_winning_ticket(folder, cluster, idle_s=10)
    return figures["idle_held_s"], figures["after_release_s"]


def translation_data(folder: Path):
    """The fairseq tests' generated translation data (tests/fairseq/conftest.py's mt_data)."""
    from fairseq_ext.data import make_translation_data
    return make_translation_data(folder / "mt", seed=0, n_train=1000, n_valid=100, n_test=100)


def lottery_node_loss(folder: Path, cluster):
    from tests.fairseq.test_fairseq_slurm import lose_a_node_under_the_recipe
    from tests.slurm_cluster import with_nodes

    data = translation_data(folder)
    with with_nodes(cluster, 3) as grown:
        return lose_a_node_under_the_recipe(grown, data, folder)


def lottery_preemption(folder: Path, cluster):
    from tests.fairseq.test_fairseq_slurm import preempt_the_recipe

    return preempt_the_recipe(cluster, translation_data(folder), folder, cluster.partition)


if __name__ == "__main__":
    main()
