"""Each dense round 0 trained once per grid: which winning-ticket job trains it and which reuse it (`dense_from`).

Winning jobs of one task and seed whose dense round is the same share it: one trains round 0, the others reuse
it (`--lottery-dense-from`). "The same" is the rule a run checks itself when it starts
(`sources.dense_round_mismatch`), applied to what the jobs' commands set. The sweep submits a reusing job only
once that round has finished (sweep/policy.py), as it submits a random ticket only once its first mask exists:
a reusing job never waits inside its allocation.

A job that has started (a result on disk, or queued or running) keeps what it had, its own dense round or the one
it reuses; only jobs not started yet are assigned. So a grid started before the sweep shared dense rounds goes on
as it was, and its jobs not started yet share.

A grid may also reuse the dense rounds of another sweep directory (`dense_from`, e.g. Figure 4's ablations those of
Figure 2's main runs): its winning tickets that train their own dense round come first.
"""
import argparse
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import SweepError
from ..hparams import LotteryConfig, Ticket
from ..sources import dense_round_mismatch
from ..store import RunStore, Snapshot
from .config import DENSE_FLAG, Job, flag_of

OWN_RUN_DIR = "RUN_DIR"  # stands for a job's own run directory, which shapes nothing it trains


def dense_config(job: Job) -> dict:
    """What shapes the job's dense round, as a run directory stores a configuration: its framework and task, its
    lottery flags parsed as the run parses them, and the rest of its command as its settings (without the
    interpreter or program path, which two sweeps may spell differently, and its own run directory)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    LotteryConfig.add_arguments(parser)
    ns, rest = parser.parse_known_args([_dashed(a) for a in job.argv[1:]])
    return {"framework": job.framework, "task": job.task,
            "settings": {"command": [OWN_RUN_DIR if a == str(job.run_dir) else a for a in rest]},
            "lottery": LotteryConfig.from_namespace(ns, run_seed=job.seed).to_dict()}


def _dashed(arg: str) -> str:
    """A lottery flag in the core's spelling (ELF writes `--lottery_late_reset`)."""
    if not arg.startswith("--lottery_"):
        return arg
    name, eq, value = arg.partition("=")
    return name.replace("_", "-") + eq + value


def can_serve(job: Job) -> bool:
    """Whether another run may reuse this job's dense round: not when round 0 finished without keeping its trained
    weights (runs of versions before shared dense rounds)."""
    store = RunStore.view(job.run_dir)
    return not store.round_done(0) or store.has_snapshot(Snapshot.DENSE_TRAINED)


def assign(jobs: List[Job], share: bool, kept: Dict[str, Job], others: Sequence[Job] = (),
           serves_others: Callable[[Job], bool] = can_serve) -> None:
    """Set every winning job's `dense_from` and `dense_dir` (None: it trains its own dense round) and its command.
    `kept`: the stored winning jobs that have started (they keep what they had). With `share`, the others reuse
    the round of a job of their task and seed that trains its own: first of `others` (another sweep's, named
    "SWEEP_DIR:name"), then of this grid; the fewest jobs the rule allows train one."""
    groups: Dict[tuple, List[Job]] = {}
    for j in jobs:
        if j.ticket == Ticket.WINNING:
            groups.setdefault((j.task, j.seed), []).append(j)
            old = kept.get(j.name)
            j.dense_from, j.dense_dir = (old.dense_from, old.dense_dir) if old else (None, None)
    if share:
        for (task, seed), group in groups.items():
            trainers = [o for o in others if (o.task, o.seed) == (task, seed) and serves_others(o)]
            trainers += [j for j in group if j.name in kept and j.dense_from is None and serves_others(j)]
            _share(group, [j for j in group if j.name not in kept], trainers)
    for group in groups.values():
        for j in group:
            j.argv = _with_dense_flag(j, j.dense_dir)


def _share(group: List[Job], open_jobs: List[Job], trainers: List[Job]) -> None:
    """Give each of `open_jobs` the first of `trainers` whose dense round is its own; where none is, the open job
    that the most of the rest could reuse trains its own (the grid's order breaks ties)."""
    configs = {j.name: dense_config(j) for j in [*group, *trainers]}

    def serves(trainer: Job, job: Job) -> bool:
        return dense_round_mismatch(configs[trainer.name], configs[job.name], trainer.name) is None

    left = list(open_jobs)
    while left:
        for j in list(left):
            trainer = next((t for t in trainers if serves(t, j)), None)
            if trainer is not None:
                j.dense_from, j.dense_dir = trainer.name, str(trainer.run_dir)
                left.remove(j)
        if left:
            best = max(left, key=lambda t: sum(serves(t, j) for j in left))
            trainers.append(best)
            left.remove(best)


def trainers_of(jobs: List[Job], path: str) -> List[Job]:
    """The winning jobs among `jobs` of the sweep directory `path` (a grid's `dense_from`) that train their own dense
    round, named "PATH:name"."""
    return [replace(j, name=f"{path}:{j.name}") for j in jobs if j.ticket == Ticket.WINNING and not j.dense_from]


def check_other_sweep_used(jobs: List[Job], kept: Dict[str, Job], others: List[Job], path: str) -> None:
    """A grid that names another sweep's dense rounds (`dense_from`) reuses at least one of them: refused before
    anything is written otherwise, naming why its first winning job cannot."""
    open_jobs = [j for j in jobs if j.ticket == Ticket.WINNING and j.name not in kept]
    names = {o.name for o in others}
    if not open_jobs or any(j.dense_from in names for j in open_jobs):
        return
    j = open_jobs[0]
    same = [o for o in others if (o.task, o.seed) == (j.task, j.seed)]
    if not same:
        why = f"{path} has no winning ticket of task {j.task!r} and seed {j.seed} that trains its dense round"
    else:
        why = dense_round_mismatch(dense_config(same[0]), dense_config(j), same[0].name) or \
            f"{same[0].name} kept no trained dense weights (runs of versions before shared dense rounds)"
    raise SweepError(f"dense_from = {path!r}: no winning ticket of this grid can reuse a dense round of that sweep; "
                     f"{j.name}: {why}")


def _with_dense_flag(job: Job, source_dir) -> List[str]:
    """The job's command reusing the dense round in `source_dir` (None: training its own)."""
    argv, skip = [], False
    for a in job.argv:
        if skip:
            skip = False
        elif flag_of(a) == DENSE_FLAG:
            skip = "=" not in a
        else:
            argv.append(a)
    return argv + ([job.dense_flag, str(source_dir)] if source_dir is not None else [])


def reusers(jobs: List[Job]) -> Dict[str, List[str]]:
    """{job that trains a dense round: the jobs that reuse it}."""
    out: Dict[str, List[str]] = {}
    for j in jobs:
        if j.dense_from:
            out.setdefault(j.dense_from, []).append(j.name)
    return out


def summary(jobs: List[Job], share: bool, other: Optional[str] = None) -> str:
    """One line: how many dense rounds the grid trains and how many it reuses (from the sweep `other`)."""
    winning = [j for j in jobs if j.ticket == Ticket.WINNING]
    reused = sum(1 for j in winning if j.dense_from)
    elsewhere = sum(1 for j in winning if j.dense_from and j.dense_from.startswith(f"{other}:")) if other else 0
    how = ("winning tickets of one task and seed share a dense round 0 where its settings match (share_dense)"
           if share else "share_dense = false: every winning ticket trains its own"
           + (", except jobs that started reusing one" if reused else ""))
    return (f"dense rounds: {len(winning) - reused} trained, {reused} reused"
            + (f" ({elsewhere} of the sweep {other})" if other else "") + f"; {how}")


def describe(job: Job, jobs: List[Job]) -> Optional[str]:
    """What a winning job does with its dense round, for `--dry-run --verbose` and `lth status` (None: not a
    winning job)."""
    if job.ticket != Ticket.WINNING:
        return None
    if job.dense_from:
        return f"reuses round 0 of {job.dense_from}"
    users = reusers(jobs).get(job.name)
    return "trains its own round 0" + (f", reused by {', '.join(users)}" if users else "")
