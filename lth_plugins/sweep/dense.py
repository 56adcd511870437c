"""Each dense round 0 trained once per grid: which winning-ticket job trains it and which reuse it (`dense_from`).

Winning jobs of one task and seed whose dense round is the same share it: one trains round 0, the others reuse
it (`--lottery-dense-from`). "The same" is the rule a run checks itself when it starts
(`sources.dense_round_mismatch`), applied to what the jobs' commands set. The sweep submits a reusing job only
once that round has finished (sweep/policy.py), as it submits a random ticket only once its first mask exists:
a reusing job never waits inside its allocation.

A job that has started (a result on disk, or queued or running) keeps what it had, its own dense round or the one
it reuses; only jobs not started yet are assigned. So a grid started before the sweep shared dense rounds goes on
as it was, and its jobs not started yet share.
"""
import argparse
from typing import Callable, Dict, List, Optional

from ..hparams import LotteryConfig, Ticket
from ..sources import dense_round_mismatch
from ..store import RunStore, Snapshot
from .config import DENSE_FLAG, Job, flag_of

OWN_RUN_DIR = "RUN_DIR"  # stands for a job's own run directory, which shapes nothing it trains


def dense_config(job: Job) -> dict:
    """What shapes the job's dense round, as a run directory stores a configuration: its framework and task, its
    lottery flags parsed as the run parses them, and the rest of its command as its settings (its own run
    directory left out)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    LotteryConfig.add_arguments(parser)
    ns, rest = parser.parse_known_args([_dashed(a) for a in job.argv])
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


def assign(jobs: List[Job], share: bool, kept: Dict[str, Optional[str]],
           serves_others: Callable[[Job], bool] = can_serve) -> None:
    """Set every winning job's `dense_from` (the name of the job whose dense round it reuses; None: it trains its
    own) and its command. `kept`: the winning jobs that have started, with the `dense_from` they had (they keep it).
    With `share`, the others reuse the round of a job of their task and seed that trains its own; the fewest
    jobs the rule allows train one."""
    by_name = {j.name: j for j in jobs}
    groups: Dict[tuple, List[Job]] = {}
    for j in jobs:
        if j.ticket == Ticket.WINNING:
            groups.setdefault((j.task, j.seed), []).append(j)
            j.dense_from = kept.get(j.name)
    if share:
        for group in groups.values():
            trainers = [j for j in group if j.name in kept and kept[j.name] is None and serves_others(j)]
            _share(group, [j for j in group if j.name not in kept], trainers)
    for group in groups.values():
        for j in group:
            source = by_name.get(j.dense_from)  # absent: a dropped job, which the sweep directory refuses
            j.argv = _with_dense_flag(j, source.run_dir if source else None)


def _share(group: List[Job], open_jobs: List[Job], trainers: List[Job]) -> None:
    """Give each of `open_jobs` the first of `trainers` whose dense round is its own; where none is, the open job
    that the most of the rest could reuse trains its own (the grid's order breaks ties)."""
    configs = {j.name: dense_config(j) for j in group}

    def serves(trainer: Job, job: Job) -> bool:
        return dense_round_mismatch(configs[trainer.name], configs[job.name], trainer.name) is None

    left = list(open_jobs)
    while left:
        for j in list(left):
            trainer = next((t for t in trainers if serves(t, j)), None)
            if trainer is not None:
                j.dense_from = trainer.name
                left.remove(j)
        if left:
            best = max(left, key=lambda t: sum(serves(t, j) for j in left))
            trainers.append(best)
            left.remove(best)


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


def summary(jobs: List[Job], share: bool) -> str:
    """One line: how many dense rounds the grid trains and how many it reuses."""
    winning = [j for j in jobs if j.ticket == Ticket.WINNING]
    reused = sum(1 for j in winning if j.dense_from)
    how = ("winning tickets of one task and seed share a dense round 0 where its settings match (share_dense)"
           if share else "share_dense = false: every winning ticket trains its own"
           + (", except jobs that started reusing one" if reused else ""))
    return f"dense rounds: {len(winning) - reused} trained, {reused} reused; {how}"


def describe(job: Job, jobs: List[Job]) -> Optional[str]:
    """What a winning job does with its dense round, for `--dry-run --verbose` and `lth status` (None: not a
    winning job)."""
    if job.ticket != Ticket.WINNING:
        return None
    if job.dense_from:
        return f"reuses round 0 of {job.dense_from}"
    users = reusers(jobs).get(job.name)
    return "trains its own round 0" + (f", reused by {', '.join(users)}" if users else "")
