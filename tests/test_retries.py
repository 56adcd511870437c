"""How the sbatch recipe reads srun's report of a failed step: which rank crashed, a node failure, or ranks that
SLURM's own SIGTERM ended (no crash: no retry spent)."""
from lth_plugins.sweep.retries import crashed_task, stopped_by_sigterm

KILLED = "srun: error: lth-node1: task 1: Killed\nsrun: Terminating StepId=7.0\n"
PREEMPTED_IN_GRACE = ("0: [lottery] rank 0: SIGTERM; round 0: checkpoint_last.pt saved at update 6; exiting\n"
                      "srun: error: lth-node1: task 0: Exited with exit code 143\n"
                      "srun: error: lth-node1: task 1: Terminated\n")


def test_a_killed_rank_is_a_crash_named_by_its_rank_and_node():
    assert crashed_task(KILLED) == (1, "rank 1 on lth-node1: Killed")
    assert not stopped_by_sigterm(KILLED)


def test_ranks_ended_by_sigterm_are_no_crash_but_one_other_end_among_them_is():
    assert stopped_by_sigterm(PREEMPTED_IN_GRACE)
    assert stopped_by_sigterm("srun: error: lth-node1: tasks 0-1: Exited with exit code 143\n")
    assert not stopped_by_sigterm(PREEMPTED_IN_GRACE + "srun: error: lth-node2: task 2: Exited with exit code 1\n")
    assert not stopped_by_sigterm("srun: Job step aborted\n")  # no task named: not known to be SLURM's stop
