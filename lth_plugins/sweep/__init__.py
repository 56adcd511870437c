"""`lth sweep`: a grid of lottery experiments (tasks or games x seeds x {winning, random} x ablations) run through
submitit, on one machine (its local executor) or on a SLURM cluster, from one small config file.

    config   - read and check the config file; expand it into jobs (each the framework's own resumable command)
    targets  - the framework side: entry points of ``lth_plugins.sweep_targets`` turn a task into a command
    state    - the sweep directory: its config, one state file per job, what is done, running or failed
    jobs     - what a submitit job runs: the command, its output appended to the job's log
    runner   - submission and the follow-up loop (random tickets pipelined behind their winning ticket)
    view     - `lth status SWEEP_DIR` and the run directories `lth report SWEEP_DIR` draws
"""
from .config import SweepConfig, load_config  # noqa: F401
