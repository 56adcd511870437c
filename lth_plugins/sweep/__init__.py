"""`lth sweep`: a grid of lottery experiments (tasks or games x seeds x {winning, random} x ablations) run through
submitit, on one machine (its local executor) or on a SLURM cluster, from one small config file.

    config      - the config file as dataclasses (Grid, Experiment), checked; expanded into jobs (each the
                  framework's own resumable command)
    targets     - the framework side: entry points of ``lth_plugins.sweep_targets`` turn a task into a command
    vocabulary  - the executors and the job states
    state       - the sweep directory: its config, one state file per job, what is done, running or failed
    jobs        - what a submitit job runs: the command, its output appended to the job's log
    policy      - what to submit, stop or leave given the jobs' states (random tickets pipelined behind their
                  winning ticket)
    runner      - submission and the follow-up loop: reads the states, acts on the policy, reports
    view        - `lth status SWEEP_DIR` and the run directories `lth report SWEEP_DIR` draws
"""
from .config import Grid, SweepConfig, load_config  # noqa: F401
